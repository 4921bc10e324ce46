"""`bitflip train`: one training job on a board (real or virtual) or on the host reference.
A thin shell over bitflip.training.runner.train."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .common import handled, kv_pairs, progress_bar


@click.command()
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
    from ..training.runner import TrainRequest
    from ..training.runner import train as run_train

    if resume and out is None:
        raise click.UsageError("--resume needs the --out directory of the job to continue")
    req = TrainRequest(board=board, dataset=dataset, model=model, epochs=epochs, seed=seed, out=out,
                       weights=weights, encoding=encoding, port=port, rule=kv_pairs(rule),
                       eval_every=max(1, eval_every), resume=resume, ckpt_every=ckpt_every, limit=limit)
    summary = run_train(req, progress_factory=progress_bar)
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
    else:
        click.echo(
            f"{summary['board']}: {summary['dataset']} {summary['model']} {summary['weights']} "
            f"after {summary['epochs']} epochs: test accuracy {summary['test_accuracy']:.4f}, "
            f"train accuracy {summary['train_accuracy']:.4f}, {summary['flips']} bit flips, "
            f"weights sha256 {summary['weights_sha256'][:16]}... -> {summary['run_dir']}"
        )


COMMANDS = [train]
