"""PNG plots of training runs (matplotlib, Agg backend: no display needed).

Every run directory gets two at the end of `bitflip train`:
  accuracy.png  train and test accuracy vs samples seen;
  energy.png    test accuracy vs cumulative device energy (joules), labelled with the
                energy source (measured / time x power model / estimated / none).
`bitflip report` draws several runs into one figure with `compare_plot`.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError


@dataclass
class RunData:
    path: Path
    summary: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)  # metrics.csv, numbers parsed

    @property
    def label(self) -> str:
        s = self.summary
        return f"{self.path.name}: {s.get('board', '?')} {s.get('dataset', '?')} {s.get('model', '?')}"

    def series(self, key: str) -> tuple[list[float], list[float]]:
        """(samples seen, key) over the epochs that have both."""
        xs, ys = [], []
        for r in self.rows:
            if isinstance(r.get("samples_seen"), float) and isinstance(r.get(key), float):
                xs.append(r["samples_seen"])
                ys.append(r[key])
        return xs, ys

    def energy_curve(self) -> tuple[list[float], list[float]]:
        """(cumulative joules at the end of each epoch, test accuracy then)."""
        per = {int(p["epoch"]): float(p["joules"]) for p in self.summary.get("energy", {}).get("per_epoch", [])}
        acc = {
            int(r["epoch"]): r["val_accuracy"]
            for r in self.rows
            if isinstance(r.get("epoch"), float) and isinstance(r.get("val_accuracy"), float)
        }
        xs, ys, total = [], [], 0.0
        for e in sorted(per):
            total += per[e]
            if e in acc:
                xs.append(total)
                ys.append(acc[e])
        return xs, ys


def _num(v: str) -> float | str:
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def load_run(path: Path, summary: dict[str, Any] | None = None) -> RunData:
    """A run directory's summary.json and metrics.csv; UsageError if it is not one."""
    path = Path(path)
    if not path.is_dir():
        raise UsageError(f"{path} is not a run directory (no such directory)")
    if summary is None:
        sp = path / "summary.json"
        if not sp.is_file():
            raise UsageError(f"{path} is not a finished run directory (no summary.json)")
        try:
            summary = json.loads(sp.read_text())
        except ValueError as e:
            raise UsageError(f"{sp}: not valid JSON ({e})") from None
    rows: list[dict[str, Any]] = []
    mp = path / "metrics.csv"
    if mp.is_file():
        with open(mp, newline="") as f:
            rows = [{k: _num(v) for k, v in r.items()} for r in csv.DictReader(f)]
    return RunData(path, summary, rows)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _energy_label(s: dict[str, Any]) -> str:
    return f"energy: {s.get('energy_source', 'none')}"


def write_run_plots(path: Path, summary: dict[str, Any], rows: list[dict[str, Any]]) -> list[Path]:
    """accuracy.png and energy.png of a run, from its summary and metric rows in memory."""
    run = RunData(Path(path), summary, [{k: _num(str(v)) for k, v in r.items()} for r in rows])
    plt = _pyplot()
    out = []
    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=90)
    for key, style in (("train_accuracy", "--o"), ("val_accuracy", "-o")):
        xs, ys = run.series(key)
        if xs:
            ax.plot(xs, ys, style, label=key.replace("_", " "), ms=3)
    ax.set_xlabel("training samples seen")
    ax.set_ylabel("accuracy")
    ax.set_title(run.label, fontsize=8)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=7)
    fig.tight_layout()
    out.append(path / "accuracy.png")
    fig.savefig(out[-1])
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=90)
    xs, ys = run.energy_curve()
    if xs:
        ax.plot(xs, ys, "-o", ms=3)
        ax.set_xlabel("cumulative device energy in training (J)")
    else:
        ax.text(0.5, 0.5, "no energy figures for this run", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("device energy (J)")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"{run.label}\n{_energy_label(run.summary)}", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out.append(path / "energy.png")
    fig.savefig(out[-1])
    plt.close(fig)
    return out


def _spread(curves: list[list[float]]) -> bool:
    """Do these runs' lengths differ so much that a linear axis squashes the short ones?"""
    ends = [max(c) for c in curves if c and max(c) > 0]
    return len(ends) > 1 and max(ends) / min(ends) >= 8


def compare_plot(runs: list[RunData], out: Path) -> Path:
    """Accuracy vs samples and accuracy vs energy of several runs: one row of two panels per
    dataset (runs of different datasets never share an axis); a log x axis when the runs of
    a dataset differ in length by 8x or more; at most 6 tick labels per axis, in k/M/m units."""
    from matplotlib.ticker import EngFormatter, MaxNLocator

    plt = _pyplot()
    by_dataset: dict[str, list[RunData]] = {}
    for run in runs:
        by_dataset.setdefault(str(run.summary.get("dataset", "?")), []).append(run)
    n = len(by_dataset)
    fig, axes = plt.subplots(n, 2, figsize=(10, 3.8 * n), dpi=90, squeeze=False)
    for (dataset, group), (a1, a2) in zip(by_dataset.items(), axes):
        curves = []
        for run in group:
            xs, ys = run.series("val_accuracy")
            a1.plot(xs, ys, "-o", ms=3, label=run.label)
            ex, ey = run.energy_curve()
            a2.plot(ex, ey, "-o", ms=3, label=f"{run.path.name} ({run.summary.get('energy_source', 'none')})")
            curves.append((xs, ex))
        a1.set_xlabel("training samples seen")
        a2.set_xlabel("cumulative device energy in training (J)")
        for ax, k, unit in ((a1, 0, ""), (a2, 1, "J")):
            if _spread([c[k] for c in curves]):
                ax.set_xscale("log")
            else:
                ax.xaxis.set_major_locator(MaxNLocator(6))
            ax.xaxis.set_major_formatter(EngFormatter(unit=unit, sep=""))
            ax.set_ylabel("validation accuracy")
            ax.set_title(dataset, fontsize=9)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out, format="png")
    plt.close(fig)
    return out
