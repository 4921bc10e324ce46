"""Named datasets and user files -> one Dataset shape: uint8 images/features, int labels,
the official test split (digits: a fixed seeded 80/20 split)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import UsageError

DIGITS_SPLIT_SEED = 0  # fixed: every method and every run sees the same digits split


@dataclass
class Dataset:
    name: str
    x_train: np.ndarray  # (N, F) uint8
    y_train: np.ndarray  # (N,) uint8
    x_test: np.ndarray
    y_test: np.ndarray
    max_value: int  # largest feature value (16 for digits, 255 for images)
    default_encoding: str
    source: str

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])


def _digits() -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(X, y, test_size=0.2, stratify=y, random_state=DIGITS_SPLIT_SEED)
    return Dataset(
        "digits",
        xtr.astype(np.uint8),
        ytr.astype(np.uint8),
        xte.astype(np.uint8),
        yte.astype(np.uint8),
        16,
        "thermo:2,6,10",
        "scikit-learn load_digits, stratified 80/20 split, random_state=0",
    )


DATASETS: dict[str, Callable[[], Dataset]] = {"digits": _digits}


def load_dataset(name: str) -> Dataset:
    if name in DATASETS:
        return DATASETS[name]()
    if Path(name).exists():
        raise UsageError(f"dataset file '{name}': user files are not supported yet")
    raise UsageError(f"unknown dataset '{name}' (known: {', '.join(sorted(DATASETS))}, or a file path)")
