"""numpy helpers for bit-planes and the counter hash, the host side of firmware kernels.py:
uint32 words, little-endian bit order (bit i of word w = column 32*w+i), padding bits 0,
lowbias32 and the key/draw derivation (constants from the shared model spec)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .device.spec import GOLD as _GOLD
from .device.spec import HASH_C1, HASH_C2, INIT_SALT, LAYER_SHIFT, words

GOLD = np.uint32(_GOLD)

__all__ = [
    "GOLD",
    "draws",
    "hash32",
    "init_plane",
    "pack_bits",
    "popcount_rows",
    "row_keys",
    "step_key",
    "unpack_pm",
    "valid_mask",
    "words",
]


def hash32(v: npt.ArrayLike) -> npt.NDArray[np.uint32]:
    """lowbias32 (C. Wellons), elementwise on uint32, all arithmetic mod 2**32."""
    x = np.asarray(v, dtype=np.uint32)
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint32(16))
        x = x * np.uint32(HASH_C1)
        x = x ^ (x >> np.uint32(15))
        x = x * np.uint32(HASH_C2)
        x = x ^ (x >> np.uint32(16))
    return x


def valid_mask(n: int) -> np.ndarray:
    v = np.full(words(n), 0xFFFFFFFF, dtype=np.uint32)
    if n & 31:
        v[-1] = np.uint32((1 << (n & 31)) - 1)
    return v


def popcount_rows(a: np.ndarray) -> np.ndarray:
    return np.bitwise_count(a).sum(axis=-1, dtype=np.int64)


def step_key(seed: int, step: int) -> np.uint32:
    with np.errstate(over="ignore"):
        return np.uint32(hash32(hash32(np.uint32(seed & 0xFFFFFFFF)) + np.uint32(step & 0xFFFFFFFF))[()])


def row_keys(base: np.uint32, layer: int, rows: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return hash32(np.uint32(base) + np.uint32(layer << LAYER_SHIFT) + rows.astype(np.uint32))


def draws(keys: np.ndarray, nw: int, k: int, first: int = 0) -> np.ndarray:
    """(len(keys), nw) masks of density 1/2**k: AND of draws t = first .. first+k-1 of
    hash(key + (t*nw + i) * GOLD)."""
    out = np.full((len(keys), nw), 0xFFFFFFFF, dtype=np.uint32)
    i = np.arange(nw, dtype=np.uint32)
    with np.errstate(over="ignore"):
        for t in range(first, first + k):
            out &= hash32(keys[:, None] + (np.uint32(t * nw) + i)[None, :] * GOLD)
    return out


def init_plane(seed: int, layer: int, n_out: int, n_in: int) -> np.ndarray:
    """Initial sign bits (kernels.fill_random): density 1/2 draws with the init key."""
    base = np.uint32(hash32(hash32(np.uint32((seed ^ INIT_SALT) & 0xFFFFFFFF)))[()])
    keys = row_keys(base, layer, np.arange(n_out))
    return draws(keys, words(n_in), 1) & valid_mask(n_in)[None, :]


def unpack_pm(plane: np.ndarray, n: int) -> np.ndarray:
    """uint32 rows -> +-1 int32 matrix (rows, n)."""
    bits = np.unpackbits(np.ascontiguousarray(plane).view(np.uint8), axis=-1, bitorder="little")[..., :n]
    return bits.astype(np.int32) * 2 - 1


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """bool (N, n) -> uint32 (N, words(n)); bit i of word w = column 32*w+i."""
    bits = np.asarray(bits, dtype=bool)
    n = bits.shape[-1]
    pad = np.zeros(bits.shape[:-1] + (words(n) * 32,), dtype=np.uint8)
    pad[..., :n] = bits
    by = np.packbits(pad, axis=-1, bitorder="little")
    return np.ascontiguousarray(by).view("<u4").astype(np.uint32)
