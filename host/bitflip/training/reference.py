"""The numpy reference trainer: the integer-exact twin of firmware/bitflip/rule.py.

Same bit-planes (uint32 words, little-endian bit order), same hash, same order of
operations, so a run here and a run on a (virtual) board with the same seed and data end
with the same weights digest. Keep the two files in lock-step.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
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


KINDS = {"binary": 1, "binary2": 2, "ternary": 3}
AUX_NAME = {2: "c", 3: "z"}
COUNTERS = ("writes", "updates", "fwd_words", "upd_words", "evidence_bytes")


def popcount_rows(a: np.ndarray) -> np.ndarray:
    return np.bitwise_count(a).sum(axis=-1, dtype=np.int64)


@dataclass
class Layer:
    n_in: int
    n_out: int
    kind: int
    s: np.ndarray  # (n_out, nw) uint32 sign plane
    aux: np.ndarray | None  # confidence (binary2) or nonzero (ternary) plane

    @property
    def nw(self) -> int:
        return words(self.n_in)

    def pre(self, x: np.ndarray) -> np.ndarray:
        """Pre-activations for packed input rows x (..., nw) -> (..., n_out)."""
        d = x[..., None, :] ^ self.s
        if self.kind == 3:
            assert self.aux is not None
            return popcount_rows(self.aux) - 2 * popcount_rows(d & self.aux)
        return self.n_in - 2 * popcount_rows(d)

    def planes(self) -> list[tuple[str, np.ndarray]]:
        if self.aux is None:
            return [("s", self.s)]
        return [("s", self.s), (AUX_NAME[self.kind], self.aux)]


SAT = 127  # pool.py _SAT: counters saturate at +-127 (int8)


class PoolRef:
    """Twin of firmware/bitflip/pool.py Pool: thresholds and the evidence window of one
    1-bit hidden layer."""

    def __init__(self, layer: Layer, rows: int):
        self.layer = layer
        self.rows = min(rows, layer.n_out)
        self.t = np.zeros(layer.n_out, dtype=np.int32)
        self.c = np.zeros((self.rows, layer.n_in), dtype=np.int64)
        self.pos = 0

    def add(self, units: np.ndarray, up: np.ndarray, x: np.ndarray) -> int:
        """Evidence from the units in error; returns the counter bytes written."""
        r = (units - self.pos) % self.layer.n_out
        keep = r < self.rows
        if keep.any():
            xpm = unpack_pm(x, self.layer.n_in)
            sgn = np.where(up[keep], 1, -1)
            self.c[r[keep]] = np.clip(self.c[r[keep]] + sgn[:, None] * xpm[None, :], -SAT, SAT)
        return int(keep.sum()) * self.layer.n_in

    def flush(self, flips: int, tau: int) -> int:
        layer, done = self.layer, 0
        for r in range(self.rows):
            j = (self.pos + r) % layer.n_out
            e = -self.c[r] * unpack_pm(layer.s[j], layer.n_in)  # evidence against each weight
            order = np.argsort(-e, kind="stable")[:flips]  # largest first, lowest input on ties
            sel = order[e[order] >= tau]
            if len(sel):
                bits = np.zeros(layer.n_in, dtype=bool)
                bits[sel] = True
                layer.s[j] ^= pack_bits(bits)
                done += len(sel)
        self.c[:] = 0
        self.pos = (self.pos + self.rows) % layer.n_out
        return done


class Reference:
    """Host twin of firmware/bitflip/rule.py Trainer."""

    def __init__(self, cfg: dict[str, Any]):
        self.cfg = cfg
        sizes = cfg["sizes"]
        self.kind = KINDS[cfg.get("weights", "binary")]
        self.seed = int(cfg["seed"])
        self.n_classes = int(cfg["classes"])
        self.window = int(cfg["window"])
        self.margin = int(cfg["margin"])
        self.k = [int(k) for k in cfg["k"]]
        self.ks = int(cfg.get("ks", 0))
        if sizes[-1] % self.n_classes:
            raise ValueError("the last layer must hold P prototypes per class")
        self.P = sizes[-1] // self.n_classes
        pc = cfg.get("pool")
        self.layers: list[Layer] = []
        for i in range(len(sizes) - 1):
            n_in, n_out = sizes[i], sizes[i + 1]
            kind = 1 if pc and i < len(sizes) - 2 else self.kind  # pool: 1-bit hidden layers
            s = init_plane(self.seed, i, n_out, n_in)
            aux = None
            if kind == 2:
                aux = np.zeros_like(s)
            elif kind == 3:
                aux = np.tile(valid_mask(n_in), (n_out, 1))
            self.layers.append(Layer(n_in, n_out, kind, s, aux))
        self.pools = [PoolRef(layer, int(pc["rows"])) for layer in self.layers[:-1]] if pc else []
        if pc:
            self.every, self.tau, self.flips = int(pc["every"]), int(pc["tau"]), int(pc["flips"])
            self.near, self.tau_step = int(pc["near"]), int(pc.get("tau_step", 0))
        self.anneal, self.epoch, self.extra = int(cfg.get("anneal", 0)), int(cfg.get("epoch", 0)), 0  # rule.py
        self.fill = [self.P] * self.n_classes  # data-initialised prototypes (rule.py step 2)
        self.step = 0
        self.totals = {name: 0 for name in COUNTERS}

    # forward ---------------------------------------------------------------------------
    def _forward(self, x: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        pres, outs = [], [x]
        for li, layer in enumerate(self.layers):
            pre = layer.pre(outs[-1])
            if li < len(self.pools):
                pre = pre - self.pools[li].t
            pres.append(pre)
            outs.append(pack_bits(pre >= 0))
            self.totals["fwd_words"] += layer.nw * layer.n_out
        return pres, outs

    def predict(self, X: np.ndarray, chunk: int = 512) -> np.ndarray:
        """Batch prediction (N, nw) -> class labels; same integer math as the device."""
        out = []
        for i in range(0, len(X), chunk):
            h = X[i : i + chunk]
            pre = None
            for li, layer in enumerate(self.layers):
                pre = layer.pre(h)
                if li < len(self.pools):
                    pre = pre - self.pools[li].t
                h = pack_bits(pre >= 0)
            assert pre is not None
            out.append(np.argmax(pre, axis=1) // self.P)  # first index on ties, like kernels.argmax
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    # learning --------------------------------------------------------------------------
    def _update(self, li: int, rows: np.ndarray, up: np.ndarray, x: np.ndarray, base: np.uint32) -> None:
        layer = self.layers[li]
        nw, valid = layer.nw, valid_mask(layer.n_in)[None, :]
        keys = row_keys(base, li, rows)
        t = np.where(up[:, None], x[None, :], ~x[None, :]) & valid
        k = self.k[li] + (self.extra if li == len(self.layers) - 1 else 0)  # annealed top (rule.py)
        r = draws(keys, nw, k) & valid
        sv = layer.s[rows]
        if layer.kind == 1:
            f = (sv ^ t) & r
            layer.s[rows] = sv ^ f
            self.totals["writes"] += int(popcount_rows(f).sum())
        elif layer.kind == 2:
            assert layer.aux is not None
            av = layer.aux[rows]
            # the confidence mask uses draws k .. k+ks-1 of the same counter
            r2_full = np.full_like(sv, 0xFFFFFFFF)
            i = np.arange(nw, dtype=np.uint32)
            with np.errstate(over="ignore"):
                for d in range(k, k + self.ks):
                    r2_full &= hash32(keys[:, None] + (np.uint32(d * nw) + i)[None, :] * GOLD)
            r2 = valid & ~(sv ^ t) & ~av & r2_full
            wrong = (sv ^ t) & r
            flip = wrong & ~av
            layer.s[rows] = sv ^ flip
            layer.aux[rows] = (av & ~(wrong & av)) | r2
            self.totals["writes"] += int(popcount_rows(flip).sum() + popcount_rows((wrong & av) | r2).sum())
        else:
            assert layer.aux is not None
            av = layer.aux[rows]
            to_zero = av & (sv ^ t) & r
            grow = ~av & valid & r
            layer.aux[rows] = (av & ~to_zero) | grow
            layer.s[rows] = (sv & ~grow) | (t & grow)
            self.totals["writes"] += int(popcount_rows(grow & (sv ^ t)).sum() + popcount_rows(to_zero | grow).sum())
        self.totals["updates"] += len(rows)
        self.totals["upd_words"] += len(rows) * nw

    def train_sample(self, x: np.ndarray, label: int) -> bool:
        pres, outs = self._forward(x)
        top = len(self.layers) - 1
        winner = int(np.argmax(pres[top]))
        correct = winner // self.P == label
        base = step_key(self.seed, self.step)
        self.step += 1
        e = (self.step - 1) // self.epoch if self.epoch else 0
        if self.anneal and e + 2 > self.anneal:
            self.extra = e + 2 - self.anneal
        for li, pool in enumerate(self.pools):
            pool.t += np.sign(pres[li])
        if not self.fill[label]:
            self._learn(label, winner, pres, outs, base)
        else:
            self._fill(label, outs[top])
        if self.pools and self.step % self.every == 0:
            for pool in self.pools:
                self.totals["writes"] += pool.flush(max(self.flips >> e, 1), self.tau + self.tau_step * self.extra)
                self.totals["evidence_bytes"] += 2 * pool.rows * pool.layer.n_in
        return correct

    def _fill(self, label: int, bits: np.ndarray) -> None:
        out, P = self.layers[-1], self.P
        row = label * P + P - self.fill[label]
        valid = valid_mask(out.n_in)
        out.s[row] = bits & valid  # the input bits or the hidden sign bits below
        if out.kind == 2:
            assert out.aux is not None
            out.aux[row] = 0
        elif out.kind == 3:
            assert out.aux is not None
            out.aux[row] = valid
        self.fill[label] -= 1
        self.totals["writes"] += out.n_in

    def _learn(self, label: int, winner: int, pres: list[np.ndarray], outs: list[np.ndarray], base: np.uint32) -> None:
        top = len(self.layers) - 1
        out, P = self.layers[top], self.P
        correct = winner // P == label
        pre = pres[top]
        lo = label * P
        vote: dict[int, int] = {}  # pool rule: the top rows that vote on the hidden layers
        if correct:
            rows, up = [winner], [True]
            if self.margin >= 0 or self.pools:
                rival = -1
                if lo > 0:
                    rival = int(np.argmax(pre[:lo]))
                if lo + P < out.n_out:
                    r2 = lo + P + int(np.argmax(pre[lo + P :]))
                    if rival < 0 or pre[r2] > pre[rival]:
                        rival = r2
                if self.margin >= 0 and rival >= 0 and pre[rival] - pre[winner] > -self.margin:
                    rows.append(rival)
                    up.append(False)
                if self.pools and rival >= 0 and pre[rival] - pre[winner] > -self.near:
                    vote = {winner: 1, rival: -1}
        else:
            best = lo + int(np.argmax(pre[lo : lo + P]))
            rows, up = [winner, best], [False, True]
            vote = {winner: -1, best: 1}
        d = np.zeros(out.n_out, dtype=np.int64)
        for r, u in zip(rows, up):
            d[r] = 1 if u else -1
        for li in range(top, -1, -1):
            layer = self.layers[li]
            d_below = None
            dv = d
            if li == top and self.pools:
                dv = np.zeros(out.n_out, dtype=np.int64)
                for r, sgn in vote.items():
                    dv[r] = sgn
            if li > 0 and dv.any():
                w = unpack_pm(layer.s, layer.n_in)
                if layer.kind == 3:
                    assert layer.aux is not None
                    w = w * ((unpack_pm(layer.aux, layer.n_in) + 1) // 2)
                v = (dv[:, None] * w).sum(axis=0)
                a = pres[li - 1]
                err = (v != 0) & ((v > 0) != (a >= 0)) & (a <= self.window) & (a >= -self.window - 1)
                d_below = np.where(err, np.sign(v), 0)
            sel = np.nonzero(d)[0]
            if li == top:  # the device updates the top rows in the order it chose them
                sel = np.array(rows, dtype=np.int64)
            if li < top and self.pools:
                self.totals["evidence_bytes"] += self.pools[li].add(sel, d[sel] > 0, outs[li])
            elif len(sel):
                self._update(li, sel, d[sel] > 0, outs[li], base)
            if d_below is None:
                break
            d = d_below

    def planes(self) -> list[tuple[int, str, np.ndarray]]:
        """Weight planes and, under the pool rule, the hidden thresholds ("t"), in the
        device's order (rule.py Trainer.planes)."""
        out = []
        for i, layer in enumerate(self.layers):
            out += [(i, name, p) for name, p in layer.planes()]
            if i < len(self.pools):
                out.append((i, "t", self.pools[i].t.view(np.uint32)))
        return out

    def digest(self) -> str:
        h = hashlib.sha256()
        for _, _, p in self.planes():
            h.update(np.ascontiguousarray(p, dtype="<u4").tobytes())
        return h.hexdigest()

    def weight_bytes(self) -> int:
        return sum(p.size * 4 for layer in self.layers for _, p in layer.planes())
