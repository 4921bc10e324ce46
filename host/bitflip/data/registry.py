"""The public entry to the datasets: a name or a path -> one Dataset (uint8 features, uint8
labels, and the official test split where one exists).

Named datasets are in named.py; a name that is also a local path means the named dataset:
write ./mnist for a directory called mnist. User files (IDX directory, .npz, .csv) are read
by files.py; every loader ends in dataset.build, whose docstring gives the validation and the
rule by which feature values become uint8.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from . import fetch
from .dataset import Dataset, build, stratified_split
from .files import load_csv, load_file, load_idx_dir, load_npz, read_csv
from .named import ALIASES, DATASETS, FASHION_ENCODING, MNIST_ENCODING, SHAPES, SOURCES

# what other modules (and tests, benchmarks) import from here
__all__ = [
    "ALIASES",
    "DATASETS",
    "FASHION_ENCODING",
    "MNIST_ENCODING",
    "SHAPES",
    "SOURCES",
    "Dataset",
    "build",
    "canonical",
    "catalog",
    "describe",
    "load_csv",
    "load_dataset",
    "load_file",
    "load_idx_dir",
    "load_npz",
    "read_csv",
    "stratified_split",
]


def canonical(name: str) -> str | None:
    n = ALIASES.get(name, name)
    return n if n in DATASETS else None


def load_dataset(name: str, log: fetch.Log | None = None) -> Dataset:
    """A named dataset (fetched on demand, messages to `log`, default stderr) or a user file."""
    canon = canonical(name)
    if canon is not None:
        return DATASETS[canon](log or fetch._stderr)
    p = Path(name)
    if p.exists():
        return load_file(p)
    if "/" in name or "\\" in name or p.suffix.lower() in (".npz", ".csv", ".gz"):
        raise UsageError(f"dataset file '{name}' not found")
    raise UsageError(f"unknown dataset '{name}' (known: {', '.join(sorted([*DATASETS, *ALIASES]))}, or a file path)")


def describe(ds: Dataset) -> dict[str, Any]:
    """Shapes, class counts, value range and default encoding, for `bitflip data info`."""
    from .encoding import parse_encoding

    enc = parse_encoding(ds.default_encoding, ds.max_value)
    c = ds.n_classes
    return {
        "name": ds.name,
        "source": ds.source,
        "train_shape": list(ds.x_train.shape),
        "test_shape": list(ds.x_test.shape),
        "classes": c,
        "train_counts": np.bincount(ds.y_train, minlength=c).tolist(),
        "test_counts": np.bincount(ds.y_test, minlength=c).tolist(),
        "value_range": [int(min(ds.x_train.min(), ds.x_test.min())), int(max(ds.x_train.max(), ds.x_test.max()))],
        "max_value": ds.max_value,
        "default_encoding": ds.default_encoding,
        "bits_per_sample": enc.n_bits(ds.n_features),
        "labels": list(ds.labels) if ds.labels else None,
    }


def catalog() -> list[dict[str, Any]]:
    """The named datasets without loading them, for `bitflip data list`."""
    out = []
    for name in DATASETS:
        ntr, nte, nf, nc = SHAPES[name]
        if name in fetch.PACKAGES:
            d = fetch.locate(name)
            fetched, path = d is not None, str(d) if d else f"(not fetched: bitflip data fetch {name})"
        else:
            fetched, path = True, SOURCES[name]
        out.append(
            {
                "name": name,
                "aliases": [a for a, n in ALIASES.items() if n == name],
                "fetched": fetched,
                "train": ntr,
                "test": nte,
                "features": nf,
                "classes": nc,
                "path": path,
            }
        )
    return out
