"""`bitflip train`: one training job on a board (real or virtual) or on the host reference.
A thin shell over bitflip.training.runner.train."""

from __future__ import annotations

import json

import click

from ..errors import UsageError
from .common import handled, kv_pairs, log, progress_bar


@click.command()
@click.option("--board", default="sim-pico", show_default=True, help="a name from `bitflip boards`")
@click.option("--dataset", default="digits", show_default=True)
@click.option(
    "--model", default=None, help="hidden widths, then CLASSESxPROTOTYPES, e.g. 256-10x16 (default per dataset)"
)
@click.option(
    "--weights",
    default=None,
    type=click.Choice(["binary", "binary2", "ternary"]),
    help="1-bit, sign+confidence 2-bit, or ternary 2-bit weights (default per dataset)",
)
@click.option(
    "--encoding",
    default=None,
    help="[deskew+][crop:C+][pool:F+]thermo:K, thermo:t1,t2,... or threshold:T (default per dataset)",
)
@click.option("--epochs", default=10, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--out", default=None, help="run directory (default: ./runs/<dataset>-<board>-<time>); never overwritten")
@click.option("--port", default=None, help="serial port of a real board, auto, or the port of a running `bitflip sim`")
@click.option("--rule", multiple=True, metavar="KEY=VALUE", help="override a rule hyper-parameter")
@click.option(
    "--eval-every",
    default=1,
    show_default=True,
    type=int,
    help="evaluate on the validation split every N epochs (the best is the model)",
)
@click.option(
    "--val",
    default=None,
    type=float,
    help="validation split: this fraction of the training data, stratified (default 0.1; 0: none, the last "
    "epoch is the model); the test split is read once, at the end",
)
@click.option("--limit", default=None, type=int, help="train on the first N training samples only")
@click.option("--resume", is_flag=True, help="continue exactly the job in --out from its last checkpoint")
@click.option("--force", is_flag=True, help="--out holds something else: move it aside to OUT.old-N and start")
@click.option("--cores", default=None, type=int, help="1 or 2: the dual-core forward (default: the board's)")
@click.option("--quiet", is_flag=True, help="no per-epoch lines on stderr")
@click.option("--ckpt-every", default=1000, show_default=True, type=int, help="checkpoint every N training samples")
@click.option("--json", "as_json", is_flag=True, help="print the summary as one JSON object")
@handled
def train(
    board: str,
    dataset: str,
    model: str | None,
    weights: str | None,
    encoding: str | None,
    epochs: int,
    seed: int,
    out: str | None,
    port: str | None,
    rule: tuple[str, ...],
    eval_every: int,
    val: float | None,
    limit: int | None,
    resume: bool,
    force: bool,
    cores: int | None,
    quiet: bool,
    ckpt_every: int,
    as_json: bool,
) -> None:
    """Train on a board (real or virtual) or on the host reference."""
    from .. import api

    if out is not None and not out.strip():
        raise UsageError("--out must name a directory (got an empty string)")
    summary = api.train(
        dataset,
        board,
        model=model,
        epochs=epochs,
        seed=seed,
        out=out,
        weights=weights,
        encoding=encoding,
        port=port,
        rule=kv_pairs(rule),
        eval_every=eval_every,
        resume=resume,
        force=force,
        ckpt_every=ckpt_every,
        limit=limit,
        cores=cores,
        val=val,
        say=None if quiet else log,
        progress_factory=progress_bar,
    )
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
    else:
        click.echo(
            f"{summary['board']}: {summary['dataset']} {summary['model']} {summary['weights']} "
            f"after {summary['epochs']} epochs: test accuracy {summary['test_accuracy']:.4f}"
            + (
                f" (the best on validation, {summary['val_accuracy']:.4f}, epoch {summary['best_epoch'] + 1})"
                if summary.get("best_epoch") is not None
                else ""
            )
            + f", train accuracy {summary['train_accuracy']:.4f}, {summary['flips']} bit flips, "
            f"weights sha256 {summary['weights_sha256'][:16]}... -> {summary['run_dir']}"
        )


COMMANDS = [train]
