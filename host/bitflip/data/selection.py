"""Bit selection: keep the input bits that tell the most about the class.

A Hamming distance weighs every input bit alike, so bits that carry no information about
the class (a sensor column of noise, a thermometer level no sample crosses) only add noise
to every prototype's distance. The `mi:PCT` encoding step keeps the PCT % of the bits with
the largest mutual information with the label, measured on the training rows only (never
the validation or test split); the kept bit indices become part of the encoding (the model
file's KEEP section), so the board gathers the same bits when it predicts.

A bit is kept only if its information is above chance: for a bit independent of the class,
2·N·I (in nats) is χ²-distributed with C − 1 degrees of freedom (the G-test), so a bit below
that distribution's 1 - CHANCE_P quantile is one a noise column could have given. Without
this floor mi:25 of 16 thermometer levels on 4 informative columns among 16 filled its
quota with levels of noise columns (tests/test_defaults.py).
"""

from __future__ import annotations

import math

import numpy as np

CHANCE_P = 0.001  # a noise bit passes the floor with this probability
_Z = 3.0902  # the standard normal's 1 - CHANCE_P quantile


def mutual_information(bits: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """I(bit; class) in nats for every column of a (N, B) 0/1 array, from integer counts."""
    n = len(y)
    if n == 0:
        return np.zeros(bits.shape[1])
    onehot = np.zeros((n, n_classes), dtype=np.int64)
    onehot[np.arange(n), y] = 1
    ones = bits.astype(np.int64).T @ onehot  # (B, C) samples of class c with the bit set
    per_class = onehot.sum(axis=0)[None, :]
    joint = np.stack([per_class - ones, ones]) / n  # (2, B, C): p(bit = v, class = c)
    p_bit = joint.sum(axis=2, keepdims=True)
    p_cls = per_class[None] / n
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(joint > 0, joint * np.log(joint / (p_bit * p_cls)), 0.0)
    return np.asarray(terms.sum(axis=(0, 2)))


def kept(n_bits: int, pct: int) -> int:
    """How many of n_bits the step mi:pct keeps (at least one)."""
    return max(1, min(n_bits, (n_bits * pct + 50) // 100))


def chance_floor(n_rows: int, n_classes: int) -> float:
    """The MI (nats) a bit independent of the class stays below with probability 1 - CHANCE_P:
    the χ²(C − 1) quantile by the Wilson–Hilferty approximation, over 2N."""
    k = max(1, n_classes - 1)
    q = k * (1 - 2 / (9 * k) + _Z * math.sqrt(2 / (9 * k))) ** 3
    return q / (2 * max(1, n_rows))


def select(bits: np.ndarray, y: np.ndarray, n_classes: int, pct: int) -> tuple[int, ...]:
    """The indices (ascending) of the kept bits: at most kept(B, pct) of the most informative,
    none below the chance floor (but at least one); ties go to the lower index, so the choice
    is a function of the training rows alone."""
    mi = np.round(mutual_information(bits, y, n_classes), 12)
    order = np.lexsort((np.arange(len(mi)), -mi))[: kept(bits.shape[1], pct)]
    above = order[mi[order] > chance_floor(len(y), n_classes)]
    return tuple(int(i) for i in np.sort(above if len(above) else order[:1]))
