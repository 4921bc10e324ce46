"""Using a trained model: `bitflip export` (run directory -> .bfm model file or C header),
`bitflip push` / `bitflip pull` (a model file to / from a board's flash) and `bitflip
predict` (a model file on a dataset's test split, on the host or on a board). Thin shells
over bitflip.use."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .common import handled, log, progress_bar


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "-o", "--out", required=True, type=click.Path(path_type=Path), help="model.bfm, or NAME.h with --format c"
)
@click.option("--format", "fmt", type=click.Choice(["bfm", "c"]), default="bfm", show_default=True)
@click.option("--dataset", default=None, help="the run's dataset (default: the one its summary names)")
@click.option("--force", is_flag=True, help="replace an existing output file")
@click.option("--json", "as_json", is_flag=True)
@handled
def export(run_dir: Path, out: Path, fmt: str, dataset: str | None, force: bool, as_json: bool) -> None:
    """Write the model of a finished run directory as a model file (or C source)."""
    from ..errors import UsageError
    from ..paths import check_file
    from ..use.export import export_run

    check_file(out, "--out", force)
    mf = export_run(run_dir, dataset)
    try:
        if fmt == "c":
            from ..use.cexport import export_c

            files = [str(p) for p in export_c(mf, out)]
            size = out.stat().st_size
        else:
            size = mf.write(out)
            files = [str(out)]
    except OSError as e:
        raise UsageError(f"--out {out}: cannot write it ({e.strerror or e})") from None
    res: dict[str, object] = {"files": files, "bytes": size}
    res.update(
        job=mf.meta.get("job"),
        digest=mf.digest(),
        sizes=mf.sizes,
        labels=mf.labels,
        encoding=mf.encoding.spec,
        test_accuracy=mf.meta.get("test_accuracy"),
    )
    if as_json:
        click.echo(json.dumps(res, sort_keys=True))
    else:
        click.echo(
            f"{', '.join(files)}: {size} bytes, model {'-'.join(map(str, mf.sizes))}, "
            f"encoding {mf.encoding.spec}, weights sha256 {mf.digest()[:16]}..."
        )


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--board", required=True, help="a board name (pico, esp32, ..., or sim-... with --port)")
@click.option("--port", default=None, help="serial port, auto, or the port of a running `bitflip sim`")
@click.option("--dest", default="model.bfm", show_default=True, help="path on the board (relative: its working folder)")
@handled
def push(model: Path, board: str, port: str | None, dest: str) -> None:
    """Copy a model file to a board's flash (checked by CRC on the board)."""
    from ..use.board import push as do_push

    do_push(board, port, model, dest, log=click.echo)


@click.command()
@click.option("--board", required=True, help="a board name")
@click.option("--port", default=None, help="serial port, auto, or the port of a running `bitflip sim`")
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path))
@click.option("--src", default="model.bfm", show_default=True, help="path on the board")
@click.option("--force", is_flag=True, help="replace an existing output file")
@handled
def pull(board: str, port: str | None, out: Path, src: str, force: bool) -> None:
    """Copy a model file from a board's flash (e.g. after it learned on the board)."""
    from ..use.board import pull as do_pull

    do_pull(board, port, out, src, force, log=click.echo)


@click.command()
@click.option("--model-file", "model_file", required=True, type=click.Path(path_type=Path))
@click.option("--dataset", required=True, help="a dataset name or file (its test split is predicted)")
@click.option("--board", default="host", show_default=True, help="host, a real board, or a virtual one (sim-...)")
@click.option("--port", default=None, help="serial port of a real board, or of a running `bitflip sim`")
@click.option("-o", "--out", type=click.Path(path_type=Path), default=None, help="write every prediction to this CSV")
@click.option("--force", is_flag=True, help="replace an existing --out file")
@click.option("--limit", default=0, type=int, help="the first N test samples only")
@click.option("--json", "as_json", is_flag=True)
@handled
def predict(
    model_file: Path,
    dataset: str,
    board: str,
    port: str | None,
    out: Path | None,
    force: bool,
    limit: int,
    as_json: bool,
) -> None:
    """Predict a dataset's test split with a model file; report the accuracy."""
    from ..use.predict import PredictRequest
    from ..use.predict import predict as run

    req = PredictRequest(model_file, dataset, board, port, out, force, limit)
    bar = progress_bar(0)
    try:
        res = run(req, progress=bar.update, log=log)
    finally:
        bar.close()
    if as_json:
        click.echo(json.dumps(res, sort_keys=True))
        return
    speed = f", {res['us_per_sample']} us per predict on the board" if "us_per_sample" in res else ""
    written = f" -> {res['predictions']}" if "predictions" in res else ""
    click.echo(
        f"{res['board']}: {res['dataset']} test accuracy {res['accuracy']:.4f} ({res['correct']}/{res['samples']})"
        f"{speed}{written}"
    )


COMMANDS = [export, push, pull, predict]
