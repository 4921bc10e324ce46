"""Feature -> bit encodings.

A spec is optional image steps then one bit step, joined by '+':
  bit steps:   'thermo:t1,t2,...' sets bit (level l, feature i) when x_i >= t_l (level-major
               layout); 'thermo:K' spaces K thresholds evenly over the value range;
               'threshold:T' is thermo with one level.
  image steps: 'deskew' (shear the ink upright, centre it), 'crop:C' (keep the centre CxC),
               'pool:F' (mean of FxF blocks); square images only (images.py).
  selection:   after the bit step, 'mi:PCT' keeps the PCT % of the bits that carry the most
               information about the class on the training rows (selection.py); the
               encoding must then be fitted (Encoding.fit) before it packs anything.
Example: 'deskew+crop:20+threshold:32' (the MNIST default: 400 bits per sample),
'thermo:8+mi:30' (8 levels per feature, the most informative 30 % of those bits).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

import numpy as np

from ..bitplanes import pack_bits
from ..errors import UsageError
from . import images, selection

MAX_SELECT_BITS = 65535  # the model file keeps a selected bit's index in a u16
CHUNK = 4096  # images per deskew pass: bounds the float temporaries to ~100 MB


@dataclass(frozen=True)
class Encoding:
    spec: str
    thresholds: tuple[int, ...]
    steps: tuple[tuple[str, int], ...] = ()  # image steps in order: ("deskew", 0), ("crop", C), ("pool", F)
    select: int = 0  # mi:PCT: the percent of the bits kept (0: all of them)
    keep: tuple[int, ...] = ()  # the kept bits' indices in the full bit row, ascending (after fit)

    def out_side(self, n_features: int) -> int | None:
        """Side of the image the bit step sees (None: not an image or no image steps);
        raises UsageError when a step does not fit the data."""
        if not self.steps:
            return None
        side = images.side_of(n_features)
        if side is None:
            raise UsageError(
                f"encoding '{self.spec}': image steps (deskew, crop, pool) need square images of at "
                f"least {images.MIN_SIDE}x{images.MIN_SIDE} pixels; this data has {n_features} features "
                f"per sample{' (not a square)' if math.isqrt(n_features) ** 2 != n_features else ''}"
            )
        for name, arg in self.steps:
            if name == "crop":
                if not 1 <= arg <= side:
                    raise UsageError(f"encoding '{self.spec}': crop:{arg} must be within 1..{side}")
                side = arg
            elif name == "pool":
                if side % arg:
                    raise UsageError(f"encoding '{self.spec}': pool:{arg} must divide the image side {side}")
                side //= arg
        return side

    def image(self, x: np.ndarray) -> np.ndarray:
        """Apply the image steps: (N, F) -> (N, F') whole numbers in the same value range."""
        side = images.side_of(x.shape[1])
        self.out_side(x.shape[1])  # validate before any work
        for name, arg in self.steps:
            assert side is not None
            if name == "deskew":
                x = np.concatenate(
                    [images.deskew(x[i : i + CHUNK], side) for i in range(0, len(x), CHUNK)] or [x.astype(np.int64)]
                )
            elif name == "crop":
                x, side = images.crop(x, side, arg), arg
            else:
                x, side = images.pool(x, side, arg), side // arg
        return x

    def all_bits(self, x: np.ndarray) -> np.ndarray:
        """Every bit of the bit step, before any selection: (N, F) -> (N, levels x F') bool."""
        x = self.image(x)
        return np.concatenate([x >= t for t in self.thresholds], axis=1)

    def bits(self, x: np.ndarray) -> np.ndarray:
        full = self.all_bits(x)
        if self.keep:
            return full[:, list(self.keep)]
        if self.select:
            raise RuntimeError(f"encoding '{self.spec}' selects bits: fit it on training rows first")
        return full

    def full_bits(self, n_features: int) -> int:
        side = self.out_side(n_features)
        n = n_features if side is None else side * side
        return n * len(self.thresholds)

    def n_bits(self, n_features: int) -> int:
        if self.keep:
            return len(self.keep)
        full = self.full_bits(n_features)
        return selection.kept(full, self.select) if self.select else full

    def fit(self, x: np.ndarray, y: np.ndarray, n_classes: int) -> Encoding:
        """The encoding with its kept bits chosen on these (training) rows; itself when it
        selects nothing."""
        if not self.select:
            return self
        full = self.full_bits(x.shape[1])
        if full > MAX_SELECT_BITS:
            raise UsageError(
                f"encoding '{self.spec}': mi:PCT selects among at most {MAX_SELECT_BITS} bits (this gives {full})"
            )
        keep = selection.select(self.all_bits(x), np.asarray(y, dtype=np.int64), n_classes, self.select)
        return dataclasses.replace(self, keep=keep)

    def pack(self, x: np.ndarray) -> np.ndarray:
        """(N, F) uint8 -> (N, words) uint32 rows for the wire and the kernels."""
        return pack_bits(self.bits(x))


HELP = "[deskew+][crop:C+][pool:F+] then thermo:K, thermo:t1,t2,... or threshold:T, then [+mi:PCT]"


_NUM = re.compile(r"^[0-9]+$")  # ASCII digits only: int() also takes '３２'


def _int(text: str) -> int:
    if not _NUM.match(text):
        raise ValueError(text)
    return int(text)


def _step(part: str) -> tuple[str, int]:
    name, _, arg = part.partition(":")
    if name == "deskew" and not arg:
        return ("deskew", 0)
    if name in ("crop", "pool") and _NUM.match(arg) and int(arg) >= 1:
        return (name, int(arg))
    raise ValueError


def parse_encoding(spec: str, max_value: int, n_features: int | None = None) -> Encoding:
    """An encoding spec -> Encoding; with n_features, its image steps are checked against the
    data (UsageError for e.g. deskew on data that is not a square image)."""
    *head, last = spec.split("+")
    kind, _, arg = last.partition(":")
    select = 0
    if kind == "mi" and head:
        if not _NUM.match(arg) or not 1 <= int(arg) <= 100:
            raise UsageError(f"bad encoding '{spec}': mi:PCT keeps PCT % of the bits, 1..100")
        select = int(arg)
        *head, last = head
        kind, _, arg = last.partition(":")
    try:
        steps = tuple(_step(p) for p in head)
        if kind == "threshold":
            ts: tuple[int, ...] = (_int(arg),)
        elif kind == "thermo" and "," in arg:
            ts = tuple(_int(a) for a in arg.split(","))
        elif kind == "thermo":
            k = _int(arg)
            if k < 1:
                raise ValueError
            if k > max_value:  # K distinct thresholds within 1..max_value: checked before they are made
                raise UsageError(
                    f"bad encoding '{spec}': thermo:{k} needs {k} levels, the data has values "
                    f"up to {max_value} (use thermo:1..{max_value})"
                )
            ts = tuple(round((i + 1) * (max_value + 1) / (k + 1)) for i in range(k))
        else:
            raise ValueError
    except ValueError:
        raise UsageError(f"bad encoding '{spec}' (use {HELP})") from None
    if not all(0 < t <= max_value for t in ts) or list(ts) != sorted(set(ts)):
        raise UsageError(f"bad encoding '{spec}': thresholds must rise within 1..{max_value}")
    enc = Encoding(spec, ts, steps, select)
    if n_features is not None:
        enc.out_side(n_features)
    return enc
