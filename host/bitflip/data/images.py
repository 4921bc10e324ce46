"""Image steps an encoding may apply before the bits (see encoding.py): deskew, centre crop,
mean pooling. Input and output are (N, side*side) arrays of whole numbers 0..max_value;
the image is square (side = sqrt(features)).

Deskewing (LeCun et al. 1998 list it for MNIST): the image is sheared along x so that its
ink's principal axis is vertical, and shifted so its centre of mass sits in the middle.
Sums of ink moments are exact integers and every float step is elementwise, so the result
is the same on every machine (no order-dependent float reductions).
"""

from __future__ import annotations

import math

import numpy as np


def side_of(n_features: int) -> int | None:
    """Side of a square image with n_features pixels, or None."""
    s = math.isqrt(n_features)
    return s if s * s == n_features and s >= 2 else None


def deskew(x: np.ndarray, side: int) -> np.ndarray:
    n = len(x)
    img = x.reshape(n, side, side).astype(np.int64)
    yy, xx = np.mgrid[:side, :side].astype(np.int64)
    m = img.sum(axis=(1, 2))
    sy, sx = (img * yy).sum(axis=(1, 2)), (img * xx).sum(axis=(1, 2))
    syy, sxy = (img * yy * yy).sum(axis=(1, 2)), (img * xx * yy).sum(axis=(1, 2))
    mf = np.maximum(m, 1).astype(np.float64)
    cy, cx = sy / mf, sx / mf
    vyy = syy / mf - cy * cy
    vxy = sxy / mf - cx * cy
    alpha = np.where(vyy > 1e-9, vxy / np.maximum(vyy, 1e-9), 0.0)
    alpha = np.where(m > 0, alpha, 0.0)
    mid = side / 2.0
    fy, fx = yy.astype(np.float64)[None], xx.astype(np.float64)[None]
    # output pixel (y, x) samples the input at (y + cy - mid, x + alpha*(y - mid) + cx - mid)
    src_y = fy + (cy - mid)[:, None, None]
    src_x = fx + alpha[:, None, None] * (fy - mid) + (cx - mid)[:, None, None]
    return _bilinear(img.astype(np.float64), src_y, src_x).reshape(n, side * side)


def _bilinear(img: np.ndarray, sy: np.ndarray, sx: np.ndarray) -> np.ndarray:
    n, side, _ = img.shape
    y0, x0 = np.floor(sy), np.floor(sx)
    wy1, wx1 = sy - y0, sx - x0
    out = np.zeros(sy.shape, dtype=np.float64)
    rows = np.arange(n)[:, None, None]
    for dy, wy in ((0, 1.0 - wy1), (1, wy1)):
        for dx, wx in ((0, 1.0 - wx1), (1, wx1)):
            yi, xi = (y0 + dy).astype(np.int64), (x0 + dx).astype(np.int64)
            inside = (yi >= 0) & (yi < side) & (xi >= 0) & (xi < side)
            v = img[rows, np.clip(yi, 0, side - 1), np.clip(xi, 0, side - 1)]
            out += np.where(inside, v, 0.0) * (wy * wx)
    return np.floor(out + 0.5).astype(np.int64)


def crop(x: np.ndarray, side: int, keep: int) -> np.ndarray:
    o = (side - keep) // 2
    return x.reshape(len(x), side, side)[:, o : o + keep, o : o + keep].reshape(len(x), keep * keep)


def pool(x: np.ndarray, side: int, f: int) -> np.ndarray:
    s = side // f
    v = x.reshape(len(x), s, f, s, f).astype(np.int64).sum(axis=(2, 4))
    return ((v + f * f // 2) // (f * f)).reshape(len(x), s * s)  # rounded integer mean
