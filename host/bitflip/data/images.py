"""Image steps an encoding may apply before the bits (see encoding.py): deskew, centre crop,
mean pooling. Input and output are (N, side*side) arrays of whole numbers 0..max_value;
the image is square (side = sqrt(features)).

Deskewing (LeCun et al. 1998 list it for MNIST): the image is sheared along x so that its
ink's principal axis is vertical, and shifted so its centre of mass sits in the middle.
Every step is integer arithmetic (moments, then the centre and the shear in 1/256 px and
8-bit bilinear weights), the same on the host and on a board: firmware/bitflip/encode.py is
the twin, and tests compare both on the same images.
"""

from __future__ import annotations

import math

import numpy as np

MIN_SIDE = 4  # image steps on fewer than 4x4 features: tabular data that happens to be a square


def side_of(n_features: int) -> int | None:
    """Side of a square image with n_features pixels (at least MIN_SIDE x MIN_SIDE), or None."""
    s = math.isqrt(n_features)
    return s if s * s == n_features and s >= MIN_SIDE else None


# fixed point of the integer deskew (firmware/bitflip/encode.py deskew is its twin)
QB = 10  # positions and interpolation weights in 1/1024 px
Q = 1 << QB
AB = 12  # the shear in 1/4096 px per row
AMAX = 4 << AB  # |shear| <= 4 px per row (the float deskew has no clamp; MNIST never needs one)
BIG = 1 << 17  # moments are shifted below this before the shear division
MAX_SIDE = 32  # the board's 32-bit arithmetic stays below 2**30 up to this side


def deskew(x: np.ndarray, side: int) -> np.ndarray:
    """Integer deskew, bit-identical to the board's (encode.py): integer ink moments, the
    centre of mass in 1/1024 px, the shear in 1/4096 px per row, bilinear resampling with
    10-bit weights.
    Output pixel (y, x) samples the input at (y + cy - side/2, x + alpha*(y - side/2) + cx - side/2)."""
    n = len(x)
    img = x.reshape(n, side, side).astype(np.int64)
    ys = np.arange(side, dtype=np.int64)
    r = img.sum(axis=2)  # (n, side) row sums
    rx = (img * ys[None, None, :]).sum(axis=2)  # (n, side) sum of v*x per row
    m = r.sum(axis=1)
    sy = (r * ys).sum(axis=1)
    sx = rx.sum(axis=1)
    ok = m > 0
    mm = np.where(ok, m, 1)
    ci, cj = sy // mm, sx // mm
    sy1, sx1 = sy - ci * mm, sx - cj * mm
    dy = ys[None, :] - ci[:, None]
    syy = (dy * dy * r).sum(axis=1)
    sxy = (dy * (rx - cj[:, None] * r)).sum(axis=1)
    fy = (sy1 * 2 * Q + mm) // (mm * 2)
    fx = (sx1 * 2 * Q + mm) // (mm * 2)
    vyy = syy - ((sy1 * fy + Q // 2) >> QB)
    vxy = sxy - ((sx1 * fy + Q // 2) >> QB)
    alpha = np.array([_shear(int(a), int(b)) for a, b in zip(vxy, vyy)], dtype=np.int64)
    half = side * Q // 2
    cyq = ci * Q + fy - half
    cxq = cj * Q + fx - half
    syq = ys[None, :] * Q + cyq[:, None]  # (n, side): source row per output row
    shear = (alpha[:, None] * (ys[None, :] * Q - half) + (1 << (AB - 1))) >> AB
    sxq = ys[None, None, :] * Q + shear[:, :, None] + cxq[:, None, None]  # (n, side, side)
    y0 = (syq >> QB)[:, :, None]
    wy = (syq & (Q - 1))[:, :, None]
    x0, wx = sxq >> QB, sxq & (Q - 1)
    rows = np.arange(n)[:, None, None]
    acc = np.zeros((n, side, side), dtype=np.int64)
    for ddy, wyy in ((0, Q - wy), (1, wy)):
        for ddx, wxx in ((0, Q - wx), (1, wx)):
            yi, xi = y0 + ddy, x0 + ddx
            inside = (yi >= 0) & (yi < side) & (xi >= 0) & (xi < side)
            v = img[rows, np.clip(yi, 0, side - 1), np.clip(xi, 0, side - 1)]
            acc += np.where(inside, v, 0) * wyy * wxx
    out = (acc + (1 << (2 * QB - 1))) >> (2 * QB)
    out[~ok] = 0
    return out.reshape(n, side * side)


def _shear(vxy: int, vyy: int) -> int:
    """vxy / vyy in 1/4096, clamped to +-AMAX (the board's integer steps)."""
    if vyy <= 0:
        return 0
    num, den = abs(vxy), vyy
    while num >= BIG or den >= BIG:
        num, den = num >> 1, den >> 1
    a = AMAX if den == 0 else min(AMAX, (num << AB) // den)
    return -a if vxy < 0 else a


def deskew_float(x: np.ndarray, side: int) -> np.ndarray:
    """The float deskew used before the integer one (kept for comparison)."""
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
