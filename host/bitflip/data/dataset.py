"""The one shape every dataset takes (uint8 features, uint8 labels, a test split), and the
checks and conversion every loader ends with (`build`).

Validation (each failure is a UsageError with one line naming the file and the problem):
non-empty splits, equal sample counts for features and labels, equal feature counts in
train and test, finite numbers, integer labels in 0..255 with at least 2 classes, every class
1..C-1 present in the training labels (class 0 may be absent: 1-based labels such as EMNIST
letters then leave output 0 unused), and no test label outside the training classes.

Feature values become uint8 deterministically:
  1. whole numbers within 0..255 (any integer or float dtype) are used unchanged;
  2. otherwise, floats all within [0, 1] (normalised images) become floor(255*x + 0.5);
  3. otherwise (other floats, integers outside 0..255) each feature is min-max scaled with
     the *training* split's min and max: floor(255*(x-min)/(max-min) + 0.5), clipped to
     0..255 (so test values outside the training range saturate); constant features become 0.
The rule applied is written into Dataset.source and shown by `bitflip data info`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UsageError
from . import scaling
from .scaling import NONE, Scaling

# user files: thermo:K, K = min(2, max_value); on small tabular sets (digits, wine, breast
# cancer) two levels beat one mid-range threshold by 3-6 points
USER_THERMO_LEVELS = 2


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
    scaling: Scaling = NONE  # how raw values became these bytes (a model file keeps it)
    raw_test: np.ndarray | None = None  # the test features before scaling (None: unchanged)
    labels: tuple[str, ...] | None = None  # class names (a CSV with names as labels), class i is labels[i]

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])


# ---------------------------------------------------------------- validation and conversion


def _labels(y: np.ndarray, where: str, what: str) -> np.ndarray:
    """Any numeric labels -> uint8, or a UsageError naming the file and the problem."""
    if y.ndim == 2 and y.shape[1] == 1:  # (N, 1), as Keras stores CIFAR labels
        y = y[:, 0]
    if y.ndim != 1:
        raise UsageError(f"{where}: {what} must be 1-D (N,), got shape {y.shape}")
    if y.size == 0:
        raise UsageError(f"{where}: {what} is empty")
    if y.dtype.kind not in "biuf":
        raise UsageError(f"{where}: {what} has dtype {y.dtype}; labels must be integers 0..255")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            raise UsageError(f"{where}: {what} contains NaN or infinity")
        if (y != np.floor(y)).any():
            raise UsageError(f"{where}: {what} has non-integer values (e.g. {y[y != np.floor(y)][0]:g})")
    lo, hi = y.min(), y.max()
    if lo < 0 or hi > 255:
        bad = lo if lo < 0 else hi
        raise UsageError(f"{where}: {what} has label {bad:g} outside 0..255")
    return y.astype(np.uint8)


def _check_classes(ytr: np.ndarray, yte: np.ndarray, where: str) -> None:
    c = int(ytr.max()) + 1
    if c < 2:
        raise UsageError(f"{where}: the training labels hold a single class ({int(ytr.max())}); need at least 2")
    missing = np.flatnonzero(np.bincount(ytr, minlength=c)[1:] == 0) + 1
    if missing.size:
        shown = ", ".join(str(int(m)) for m in missing[:8]) + (" ..." if missing.size > 8 else "")
        raise UsageError(
            f"{where}: labels must be classes 0..C-1 but training labels never use {shown} "
            f"(of 0..{c - 1}); relabel them, or is the label column wrong?"
        )
    if int(yte.max()) >= c:
        raise UsageError(f"{where}: test label {int(yte.max())} is not a training class (0..{c - 1})")


def _numeric(x: np.ndarray, where: str, what: str) -> None:
    if x.dtype.kind not in "biuf":
        raise UsageError(f"{where}: {what} has dtype {x.dtype}; features must be numbers")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise UsageError(f"{where}: {what} contains NaN or infinity")


def _features(xtr: np.ndarray, xte: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray, Scaling]:
    """Both splits -> uint8 by the rule in the module docstring (scaling.py); returns (train,
    test, the scaling, which a model file keeps for new data)."""
    _numeric(xtr, where, "training features")
    _numeric(xte, where, "test features")
    sc = scaling.fit(xtr, xte, where)
    return sc.apply(xtr), sc.apply(xte), sc


def _flatten(x: np.ndarray, where: str, what: str) -> np.ndarray:
    if x.ndim == 3:  # explicit width: reshape(N, -1) fails for N == 0
        return x.reshape(x.shape[0], x.shape[1] * x.shape[2])
    if x.ndim != 2:
        raise UsageError(f"{where}: {what} must be (N, F) or (N, H, W), got shape {x.shape}")
    return x


def _user_encoding(max_value: int) -> str:
    k = min(USER_THERMO_LEVELS, max_value)
    return f"threshold:{max_value}" if k == 1 else f"thermo:{k}"


def build(
    name: str,
    xtr: np.ndarray,
    ytr: np.ndarray,
    xte: np.ndarray,
    yte: np.ndarray,
    where: str,
    source: str,
    max_value: int | None = None,
    default_encoding: str | None = None,
    labels: list[str] | None = None,
) -> Dataset:
    """Validate and convert four raw arrays into a Dataset (every user-file loader ends here)."""
    xtr = _flatten(np.asarray(xtr), where, "training features")
    xte = _flatten(np.asarray(xte), where, "test features")
    ytr = _labels(np.asarray(ytr), where, "training labels")
    yte = _labels(np.asarray(yte), where, "test labels")
    for x, y, split in ((xtr, ytr, "training"), (xte, yte, "test")):
        if x.shape[0] != y.shape[0]:
            raise UsageError(f"{where}: {x.shape[0]} {split} samples but {y.shape[0]} {split} labels")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise UsageError(f"{where}: the {split} split is empty (shape {x.shape})")
    if xtr.shape[1] != xte.shape[1]:
        raise UsageError(f"{where}: training samples have {xtr.shape[1]} features, test samples {xte.shape[1]}")
    _check_classes(ytr, yte, where)
    xtr8, xte8, sc = _features(xtr, xte, where)
    if max_value is None:
        max_value = max(1, int(xtr8.max()), int(xte8.max()))
    enc = default_encoding or _user_encoding(max_value)
    return Dataset(
        name,
        np.ascontiguousarray(xtr8),
        ytr,
        np.ascontiguousarray(xte8),
        yte,
        max_value,
        enc,
        source + sc.note,
        sc,
        None if sc.kind == "none" else xte,
        tuple(labels) if labels else None,
    )


def stratified_split(y: np.ndarray, seed: int, frac: float) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split: per class, a seeded shuffle sends round(frac*n) to test,
    keeping at least one sample of every class in train. Returns sorted (train, test) indices."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    test = []
    for c in np.unique(y):
        members = perm[y[perm] == c]
        k = min(round(frac * len(members)), len(members) - 1)
        test.append(members[:k])
    te = np.sort(np.concatenate(test)) if test else np.zeros(0, np.int64)
    mask = np.ones(len(y), bool)
    mask[te] = False
    return np.flatnonzero(mask), te


def stratified_folds(y: np.ndarray, seed: int, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Deterministic stratified k-fold: per class, a seeded shuffle deals the samples to the k
    folds in turn (the next class starting where the last one stopped, so the folds differ in
    size by one at most). Returns k sorted (train, validation) index pairs; every sample
    validates once. A class with fewer than k samples is missing from some validation folds."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    fold = np.zeros(len(y), np.int64)
    start = 0
    for c in np.unique(y):
        members = perm[y[perm] == c]
        fold[members] = (start + np.arange(len(members))) % k
        start = (start + len(members)) % k
    return [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(k)]
