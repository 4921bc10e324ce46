"""The numpy reference trainer: the integer-exact twin of firmware/bitflip/rule.py.

Same bit-planes (uint32 words, little-endian bit order), same hash, same order of
operations, so a run here and a run on a (virtual) board with the same seed and data end
with the same weights digest. Keep the two files in lock-step.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

M32 = np.uint32(0xFFFFFFFF)
GOLD = np.uint32(0x9E3779B9)
INIT_SALT = 0x5BD1E995


def hash32(x: np.ndarray | int) -> np.ndarray:
    """lowbias32 (C. Wellons), elementwise on uint32, all arithmetic mod 2**32."""
    x = np.asarray(x, dtype=np.uint32)
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint32(16))
        x = x * np.uint32(0x7FEB352D)
        x = x ^ (x >> np.uint32(15))
        x = x * np.uint32(0x846CA68B)
        x = x ^ (x >> np.uint32(16))
    return x


def words(n: int) -> int:
    return (n + 31) >> 5


def valid_mask(n: int) -> np.ndarray:
    v = np.full(words(n), 0xFFFFFFFF, dtype=np.uint32)
    if n & 31:
        v[-1] = np.uint32((1 << (n & 31)) - 1)
    return v


def popcount(a: np.ndarray) -> np.ndarray:
    return np.bitwise_count(a)


def step_key(seed: int, step: int) -> np.uint32:
    with np.errstate(over="ignore"):
        return hash32(hash32(np.uint32(seed & 0xFFFFFFFF)) + np.uint32(step & 0xFFFFFFFF))[()]


def row_keys(base: np.uint32, layer: int, rows: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return hash32(np.uint32(base) + np.uint32(layer << 20) + rows.astype(np.uint32))


def draws(keys: np.ndarray, nw: int, k: int) -> np.ndarray:
    """(len(keys), nw) masks of density 1/2**k: AND of draws t < k of
    hash(key + (t*nw + i) * GOLD)."""
    out = np.full((len(keys), nw), 0xFFFFFFFF, dtype=np.uint32)
    i = np.arange(nw, dtype=np.uint32)
    with np.errstate(over="ignore"):
        for t in range(k):
            out &= hash32(keys[:, None] + (np.uint32(t * nw) + i)[None, :] * GOLD)
    return out


def init_plane(seed: int, layer: int, n_out: int, n_in: int) -> np.ndarray:
    base = hash32(hash32(np.uint32((seed ^ INIT_SALT) & 0xFFFFFFFF)))[()]
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


@dataclass
class Layer:
    n_in: int
    n_out: int
    s: np.ndarray  # (n_out, nw) uint32 sign plane

    @property
    def nw(self) -> int:
        return words(self.n_in)


@dataclass
class Reference:
    """Host twin of firmware Trainer (rule v0: binary weights)."""

    cfg: dict[str, Any]
    layers: list[Layer] = field(init=False)
    step: int = 0
    flips: int = 0
    updates: int = 0

    def __post_init__(self) -> None:
        sizes = self.cfg["sizes"]
        if self.cfg.get("weights", "binary") != "binary":
            raise ValueError("ternary weights are not supported by this rule")
        self.seed = int(self.cfg["seed"])
        self.margin = int(self.cfg["margin"])
        self.window = int(self.cfg["window"])
        self.k = [int(k) for k in self.cfg["k"]]
        self.layers = [
            Layer(sizes[i], sizes[i + 1], init_plane(self.seed, i, sizes[i + 1], sizes[i])) for i in range(len(sizes) - 1)
        ]

    # forward ---------------------------------------------------------------------------
    def _forward(self, x: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """x: (nw,) packed input -> per-layer pre-activations and packed outputs."""
        pres, outs = [], [x]
        for layer in self.layers:
            pc = popcount(outs[-1][None, :] ^ layer.s).sum(axis=1, dtype=np.int64)
            pre = layer.n_in - 2 * pc
            pres.append(pre)
            outs.append(pack_bits(pre >= 0))
        return pres, outs

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Batch prediction (N, nw) -> labels; same integer math as the device."""
        h = X
        pre = None
        for layer in self.layers:
            pc = popcount(h[:, None, :] ^ layer.s[None, :, :]).sum(axis=2, dtype=np.int64)
            pre = layer.n_in - 2 * pc
            h = pack_bits(pre >= 0)
        assert pre is not None
        return np.argmax(pre, axis=1)  # first index on ties, like kernels.argmax

    # learning --------------------------------------------------------------------------
    def train_sample(self, x: np.ndarray, label: int) -> bool:
        pres, outs = self._forward(x)
        correct = int(np.argmax(pres[-1])) == label
        base = step_key(self.seed, self.step)
        top = len(self.layers) - 1
        y = np.where(np.arange(self.layers[top].n_out) == label, 1, -1)
        d = np.where(y * pres[top] < self.margin, y, 0)
        for li in range(top, -1, -1):
            layer = self.layers[li]
            d_below = None
            if li > 0:
                w = unpack_pm(layer.s, layer.n_in)  # (n_out, n_in)
                v = (d[:, None] * w).sum(axis=0)
                a = pres[li - 1]
                h_up = a >= 0
                err = (v != 0) & ((v > 0) != h_up) & (a <= self.window) & (a >= -self.window - 1)
                d_below = np.where(err, np.sign(v), 0)
            x_in = outs[li]
            rows = np.nonzero(d)[0]
            if len(rows):
                wrong = x_in[None, :] ^ layer.s[rows]
                wrong = np.where((d[rows] > 0)[:, None], wrong, ~wrong) & valid_mask(layer.n_in)[None, :]
                keys = row_keys(base, li, rows)
                f = wrong & draws(keys, layer.nw, self.k[li])
                layer.s[rows] ^= f
                self.flips += int(popcount(f).sum())
                self.updates += len(rows)
            if d_below is not None:
                d = d_below
        self.step += 1
        return correct

    def planes(self) -> list[tuple[int, str, np.ndarray]]:
        return [(i, "s", layer.s) for i, layer in enumerate(self.layers)]

    def digest(self) -> str:
        h = hashlib.sha256()
        for _, _, p in self.planes():
            h.update(np.ascontiguousarray(p, dtype="<u4").tobytes())
        return h.hexdigest()

    def weight_bytes(self) -> int:
        return sum(p.size * 4 for _, _, p in self.planes())
