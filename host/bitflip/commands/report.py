"""`bitflip report RUN_DIR [RUN_DIR...]`: runs side by side (a table, and one PNG with their
accuracy vs samples and accuracy vs energy curves)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from .common import handled

# (column title, summary key, format)
COLUMNS = [
    ("run", None, "{}"),
    ("board", "board", "{}"),
    ("dataset", "dataset", "{}"),
    ("model", "model", "{}"),
    ("weights", "weights", "{}"),
    ("epochs", "epochs", "{}"),
    ("samples", "samples_seen", "{}"),
    ("test acc", "test_accuracy", "{:.4f}"),
    ("train acc", "train_accuracy", "{:.4f}"),
    ("flips", "flips", "{}"),
    ("device s", "device_s", "{:.3f}"),
    ("J", "joules", "{:.4f}"),
    ("ms/sample", "device_s_per_sample", "{:.3f}"),
    ("mJ/sample", "joules_per_sample", "{:.4f}"),
    ("energy source", "energy_source", "{}"),
    ("wall s", "wall_s", "{:.1f}"),
]
SCALE = {"device_s_per_sample": 1e3, "joules_per_sample": 1e3}


def table_rows(runs: list[Any]) -> list[dict[str, str]]:
    rows = []
    for r in runs:
        row = {}
        for title, key, fmt in COLUMNS:
            v = r.path.name if key is None else r.summary.get(key)
            if v is None:
                row[title] = "-"
                continue
            try:
                row[title] = fmt.format(v * SCALE.get(key or "", 1) if isinstance(v, (int, float)) else v)
            except (ValueError, TypeError):
                row[title] = str(v)
        rows.append(row)
    return rows


def json_rows(runs: list[Any]) -> list[dict[str, Any]]:
    """The table's rows with numbers as numbers (scaled as in the table), null for missing,
    and the run's absolute directory."""
    rows = []
    for r in runs:
        row: dict[str, Any] = {}
        for title, key, _ in COLUMNS:
            v = r.path.name if key is None else r.summary.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and key in SCALE:
                v = v * SCALE[key]
            row[title] = v
        row["run_dir"] = str(r.path.resolve())
        rows.append(row)
    return rows


def format_table(rows: list[dict[str, str]]) -> str:
    titles = [c[0] for c in COLUMNS]
    width = {t: max(len(t), *(len(r[t]) for r in rows)) for t in titles}
    lines = ["  ".join(t.ljust(width[t]) for t in titles), "  ".join("-" * width[t] for t in titles)]
    lines += ["  ".join(r[t].ljust(width[t]) for t in titles) for r in rows]
    return "\n".join(lines)


@click.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--png",
    type=click.Path(path_type=Path),
    default=None,
    help="combined plot (default: report.png in the current directory)",
)
@click.option("--json", "as_json", is_flag=True, help="print the table as JSON (one object per run)")
@handled
def report(run_dirs: tuple[Path, ...], png: Path | None, as_json: bool) -> None:
    """Compare finished runs side by side: a table and one combined PNG."""
    from ..errors import UsageError
    from ..measure.plots import compare_plot, load_run
    from ..paths import check_file

    runs = [load_run(p) for p in run_dirs]  # a bad directory: UsageError, one line, exit 2
    png = png or Path("report.png")
    check_file(png, "--png", force=True)
    tmp = png.with_name(f".{png.name}.{os.getpid()}.tmp")
    try:  # written whole or not at all: a failed write leaves an existing file as it was
        compare_plot(runs, tmp)
        os.replace(tmp, png)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"--png {png}: cannot write it ({e.strerror or e})") from None
    if as_json:
        click.echo(json.dumps({"runs": json_rows(runs), "png": str(png.resolve())}))
        return
    rows = table_rows(runs)
    click.echo(format_table(rows))
    click.echo(f"plot: {png}")


COMMANDS = [report]
