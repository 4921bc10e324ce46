"""A run directory: events.jsonl (every record, in order), metrics.csv (one row per epoch),
summary.json, model.npz (the final weight planes and the configuration)."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

METRIC_FIELDS = [
    "epoch",
    "samples_seen",
    "train_accuracy",
    "test_accuracy",
    "flips",
    "updates",
    "device_busy_s",
    "wall_s",
]


class RunDir:
    def __init__(self, path: Path, resume: bool = False):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        mode = "a" if resume else "w"
        self._events = open(self.path / "events.jsonl", mode)  # noqa: SIM115 (open for the run; close())
        new_metrics = not resume or not (self.path / "metrics.csv").exists()
        self._metrics_f = open(self.path / "metrics.csv", mode, newline="")  # noqa: SIM115
        self._metrics = csv.DictWriter(self._metrics_f, fieldnames=METRIC_FIELDS)
        if new_metrics:
            self._metrics.writeheader()

    def event(self, rec: dict[str, Any]) -> None:
        self._events.write(json.dumps({"t": round(time.time(), 3), **rec}) + "\n")
        self._events.flush()

    def metric(self, row: dict[str, Any]) -> None:
        self._metrics.writerow({k: row.get(k, "") for k in METRIC_FIELDS})
        self._metrics_f.flush()

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        tmp = self.path / (name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.path / name)

    def write_model(self, planes: list[tuple[int, str, np.ndarray]], cfg: dict[str, Any]) -> None:
        # "t": the pool rule's thresholds, signed
        arrays: dict[str, Any] = {f"layer{i}_{name}": np.asarray(p, dtype=np.uint32).view(np.int32 if name == "t" else np.uint32)
                  for i, name, p in planes}
        tmp = self.path / "model.tmp.npz"
        np.savez(tmp, config=json.dumps(cfg), **arrays)
        os.replace(tmp, self.path / "model.npz")

    def close(self) -> None:
        self._events.close()
        self._metrics_f.close()


def read_epoch_records(path: Path) -> tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]]:
    """The last epoch and eval record of every epoch in a run directory's events.jsonl
    (later records of an epoch, e.g. one redone after a resume, replace earlier ones; a line
    cut short when the host was killed is skipped)."""
    epochs: dict[int, dict[str, Any]] = {}
    evals: dict[int, dict[str, Any]] = {}
    events = Path(path) / "events.jsonl"
    if not events.is_file():
        return epochs, evals
    for line in events.read_text().splitlines():
        try:
            rec = json.loads(line)
            if rec.get("ev") == "epoch":
                epochs[int(rec["epoch"])] = rec
            elif rec.get("ev") == "eval":
                evals[int(rec["epoch"])] = rec
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return epochs, evals
