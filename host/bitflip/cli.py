"""The bitflip command line: thin click shells over library functions. Every BitflipError
is caught once, here, and shown as one line (exit 2 for bad input, 1 for failures)."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import BitflipError


def handled(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BitflipError as e:
            click.echo(f"bitflip: error: {e}", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("bitflip: interrupted", err=True)
            sys.exit(130)

    return wrapper


def _bar(total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="sample", file=sys.stderr, dynamic_ncols=True, leave=False,
                disable=not sys.stderr.isatty())


def _kv(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep:
            raise click.BadParameter(f"'{p}' is not KEY=VALUE", param_hint="--rule")
        out[key] = value
    return out


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bitflip")
def main() -> None:
    """Gradient-free training of binary and ternary networks on microcontrollers."""


@main.command()
@click.option("--board", default="sim-pico", show_default=True, help="a name from `bitflip boards`")
@click.option("--dataset", default="digits", show_default=True)
@click.option("--model", default=None, help="hidden widths, then CLASSESxPROTOTYPES, e.g. 256-10x16 (default per dataset)")
@click.option("--weights", default=None, type=click.Choice(["binary", "binary2", "ternary"]),
              help="1-bit, sign+confidence 2-bit, or ternary 2-bit weights (default per dataset)")
@click.option("--encoding", default=None, help="[deskew+][crop:C+][pool:F+]thermo:K, thermo:t1,t2,... or threshold:T (default per dataset)")
@click.option("--epochs", default=10, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="run directory (default: a new temp dir)")
@click.option("--port", default=None, help="serial port of a real board, auto, or the port of a running `bitflip sim`")
@click.option("--rule", multiple=True, metavar="KEY=VALUE", help="override a rule hyper-parameter")
@click.option("--eval-every", default=1, show_default=True, type=int, help="evaluate on the test split every N epochs")
@click.option("--limit", default=0, type=int, help="train on the first N training samples only")
@click.option("--resume", is_flag=True, help="continue the job in --out from the board's last checkpoint")
@click.option("--ckpt-every", default=1000, show_default=True, type=int, help="checkpoint every N training samples")
@click.option("--json", "as_json", is_flag=True, help="print the summary as one JSON object")
@handled
def train(board: str, dataset: str, model: str | None, weights: str | None, encoding: str | None, epochs: int, seed: int,
          out: Path | None, port: str | None, rule: tuple[str, ...], eval_every: int, limit: int, resume: bool,
          ckpt_every: int, as_json: bool) -> None:
    """Train on a board (real or virtual) or on the host reference."""
    from .training.runner import TrainRequest
    from .training.runner import train as run_train

    if resume and out is None:
        raise click.UsageError("--resume needs the --out directory of the job to continue")
    req = TrainRequest(board=board, dataset=dataset, model=model, epochs=epochs, seed=seed, out=out,
                       weights=weights, encoding=encoding, port=port, rule=_kv(rule), eval_every=max(1, eval_every),
                       resume=resume, ckpt_every=ckpt_every, limit=limit)
    summary = run_train(req, progress_factory=_bar)
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
    else:
        click.echo(
            f"{summary['board']}: {summary['dataset']} {summary['model']} {summary['weights']} "
            f"after {summary['epochs']} epochs: test accuracy {summary['test_accuracy']:.4f}, "
            f"train accuracy {summary['train_accuracy']:.4f}, {summary['flips']} bit flips, "
            f"weights sha256 {summary['weights_sha256'][:16]}... -> {summary['run_dir']}"
        )


@main.command()
@click.option("--json", "as_json", is_flag=True)
@handled
def boards(as_json: bool) -> None:
    """List the boards in boards/."""
    from .boards import all_boards

    bs = all_boards()
    if as_json:
        click.echo(json.dumps([{"name": b.name, "kind": b.kind, "title": b.title} for b in bs]))
        return
    for b in bs:
        d = b.data
        heap = f"{d['heap_bytes'] // 1024} KiB heap" if "heap_bytes" in d else ""
        arch = d.get("arch", "")
        click.echo(f"{b.name:<12} {b.kind:<8} {arch:<10} {heap:<14} {b.title}")


# command modules (host/bitflip/commands/*.py): each exports COMMANDS or one click command;
# imported at the end because they use `handled` from this module
from .commands import bench as _bench
from .commands import boards as _boards
from .commands import report as _report
from .commands.compare import compare as _compare
from .commands.data import data as _data

for _command in [_data, *_boards.COMMANDS, _compare, *_bench.COMMANDS, *_report.COMMANDS]:
    main.add_command(_command)


if __name__ == "__main__":
    main()
