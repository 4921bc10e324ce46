"""`bitflip predict`: a model file's predictions on a dataset's test split, on the host (the
numpy reference) or on a board (real or virtual: the board encodes the raw values itself),
with the accuracy and a CSV of every prediction. On the host and on a board the numbers
are the training run's test accuracy: the same bits, the same integer forward pass."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data import load_dataset
from ..errors import UsageError
from .modelfile import ModelFile

Log = Callable[[str], None]


@dataclass
class PredictRequest:
    model_file: Path
    dataset: str
    board: str = "host"
    port: str | None = None
    out: Path | None = None  # predictions CSV (None: not written)
    force: bool = False
    limit: int = 0  # the first N test samples only


def test_split(mf: ModelFile, dataset: str, limit: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """(raw test features, labels, dataset name), checked against the model."""
    data = load_dataset(dataset)
    if data.n_features != mf.n_features:
        raise UsageError(
            f"dataset {data.name} has {data.n_features} features per sample, the model takes {mf.n_features}"
        )
    if data.n_classes > mf.classes:
        raise UsageError(f"dataset {data.name} has {data.n_classes} classes, the model knows {mf.classes}")
    if limit < 0:
        raise UsageError(f"--limit must be positive (got {limit})")
    x = data.raw_test if data.raw_test is not None else data.x_test
    y = data.y_test
    if limit:
        x, y = x[:limit], y[:limit]
    return x, y, data.name


def write_csv(path: Path, y: np.ndarray, pred: np.ndarray, labels: list[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "label", "predicted"])
        for i, (a, b) in enumerate(zip(y.tolist(), pred.tolist())):
            w.writerow([i, labels[a] if a < len(labels) else a, labels[b]])
    tmp.replace(path)


def predict(
    req: PredictRequest, progress: Callable[[int], None] = lambda n: None, log: Log = lambda s: None
) -> dict[str, Any]:
    mf = ModelFile.read(req.model_file)
    if req.out is not None:
        from ..paths import check_file

        check_file(Path(req.out), "--out", req.force)
    x, y, name = test_split(mf, req.dataset, req.limit)
    result: dict[str, Any] = {
        "model_file": str(req.model_file),
        "dataset": name,
        "board": req.board,
        "samples": len(y),
        "job": mf.meta.get("job", ""),
        "run_test_accuracy": mf.meta.get("test_accuracy"),
    }
    t0 = time.monotonic()
    if req.board == "host":
        pred = mf.predict(x)
        progress(len(y))
    else:
        from .board import board_for, predict_on_board

        board = board_for(req.board)
        pred, us = predict_on_board(board, req.port, mf, Path(req.model_file).read_bytes(), x, progress, log)
        result["us_per_sample"] = round(us, 2)
        result["timing"] = (
            "measured on the board (ticks_us around predict())"
            if not board.is_virtual
            else "measured on the virtual board (x64 unix port: says nothing about the real board's speed)"
        )
    result["wall_s"] = round(time.monotonic() - t0, 3)
    correct = int((pred == y).sum())
    result.update(correct=correct, accuracy=correct / max(1, len(y)))
    if req.out is not None:
        try:
            write_csv(Path(req.out), y, pred, mf.labels)
        except OSError as e:
            raise UsageError(f"--out {req.out}: cannot write it ({e.strerror or e})") from None
        result["predictions"] = str(req.out)
    return result
