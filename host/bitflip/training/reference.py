"""The numpy reference trainer: the integer-exact twin of firmware/bitflip/rule.py.

Same bit-planes (uint32 words, little-endian bit order), same hash, same order of
operations, so a run here and a run on a (virtual) board with the same seed and data end
with the same weights digest. The top layer's step lives here, the hidden-layer rules in
hidden.py, like the firmware's rule.py / hidden.py / pool.py; the model's shape comes from
the shared spec (bitflip.device.spec). Keep the twins in lock-step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..bitplanes import (
    GOLD,
    draws,
    hash32,
    init_plane,
    pack_bits,
    popcount_rows,
    row_keys,
    step_key,
    unpack_pm,
    valid_mask,
    words,
)
from ..device import spec
from .hidden import HiddenRule, make_hidden_rule

__all__ = [
    "GOLD",
    "Layer",
    "Reference",
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
        if self.kind == spec.TERNARY:
            assert self.aux is not None
            return popcount_rows(self.aux) - 2 * popcount_rows(d & self.aux)
        return self.n_in - 2 * popcount_rows(d)

    def planes(self) -> list[tuple[str, np.ndarray]]:
        if self.aux is None:
            return [("s", self.s)]
        return [("s", self.s), (spec.AUX_NAME[self.kind], self.aux)]

    def update(self, rows: np.ndarray, up: np.ndarray, x: np.ndarray, keys: np.ndarray, k: int, ks: int) -> int:
        """kernels.flip_row / update_row for these rows (toward x when up); returns the
        weight state bits written."""
        valid = valid_mask(self.n_in)[None, :]
        t = np.where(up[:, None], x[None, :], ~x[None, :]) & valid
        r = draws(keys, self.nw, k) & valid
        sv = self.s[rows]
        if self.kind == spec.BINARY:
            f = (sv ^ t) & r
            self.s[rows] = sv ^ f
            return int(popcount_rows(f).sum())
        assert self.aux is not None
        av = self.aux[rows]
        if self.kind == spec.BINARY2:
            # the confidence mask uses draws k .. k+ks-1 of the same counter
            r2 = valid & ~(sv ^ t) & ~av & draws(keys, self.nw, ks, first=k)
            wrong = (sv ^ t) & r
            flip = wrong & ~av
            self.s[rows] = sv ^ flip
            self.aux[rows] = (av & ~(wrong & av)) | r2
            return int(popcount_rows(flip).sum() + popcount_rows((wrong & av) | r2).sum())
        to_zero = av & (sv ^ t) & r
        grow = ~av & valid & r
        self.aux[rows] = (av & ~to_zero) | grow
        self.s[rows] = (sv & ~grow) | (t & grow)
        return int(popcount_rows(grow & (sv ^ t)).sum() + popcount_rows(to_zero | grow).sum())

    def votes(self, dirs: np.ndarray) -> np.ndarray:
        """kernels.vote: sum over rows c of dirs_c * weight_ck, per input k."""
        w = unpack_pm(self.s, self.n_in)
        if self.kind == spec.TERNARY:
            assert self.aux is not None
            w = w * ((unpack_pm(self.aux, self.n_in) + 1) // 2)
        return (dirs[:, None] * w).sum(axis=0)


class Reference:
    """Host twin of firmware/bitflip/rule.py Trainer."""

    def __init__(self, cfg: dict[str, Any]):
        self.cfg = cfg
        sizes = cfg["sizes"]
        self.kind = spec.KINDS[cfg.get("weights", "binary")]
        self.seed = int(cfg["seed"])
        self.n_classes = int(cfg["classes"])
        self.window = int(cfg["window"])
        self.margin = int(cfg["margin"])
        self.k = [int(k) for k in cfg["k"]]
        self.ks = int(cfg.get("ks", 0))
        if sizes[-1] % self.n_classes:
            raise ValueError("the last layer must hold P prototypes per class")
        self.P = sizes[-1] // self.n_classes
        self.layers: list[Layer] = []
        for i, (n_in, n_out, kind) in enumerate(spec.layers(cfg)):
            s = init_plane(self.seed, i, n_out, n_in)
            aux = None
            if kind == spec.BINARY2:
                aux = np.zeros_like(s)
            elif kind == spec.TERNARY:
                aux = np.tile(valid_mask(n_in), (n_out, 1))
            self.layers.append(Layer(n_in, n_out, kind, s, aux))
        self.anneal, self.epoch, self.extra = int(cfg.get("anneal", 0)), int(cfg.get("epoch", 0)), 0
        self.fill = [self.P] * self.n_classes  # data-initialised prototypes (rule.py step 3)
        self.step = 0
        self.totals = {name: 0 for name in spec.COUNTERS}  # training work, as the device counts it
        self.eval_totals = {name: 0 for name in spec.COUNTERS}  # prediction work
        self.hidden: HiddenRule | None = make_hidden_rule(self, cfg)
        self.near = self.hidden is not None and not self.hidden.votes_from_updates

    # forward ---------------------------------------------------------------------------
    def _pre(self, li: int, x: np.ndarray) -> np.ndarray:
        pre = self.layers[li].pre(x)
        t = self.hidden.thresholds(li) if self.hidden is not None else None
        return pre if t is None else pre - t

    def _forward(self, x: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        pres, outs = [], [x]
        for li, layer in enumerate(self.layers):
            pre = self._pre(li, outs[-1])
            pres.append(pre)
            outs.append(pack_bits(pre >= 0))
            self.totals["fwd_words"] += layer.nw * layer.n_out
        return pres, outs

    def predict(self, X: np.ndarray, chunk: int = 512) -> np.ndarray:
        """Batch prediction (N, nw) -> class labels; same integer math as the device."""
        return self.scores(X, chunk).argmax(axis=1) // self.P  # first index on ties, like kernels.argmax

    def scores(self, X: np.ndarray, chunk: int = 512) -> np.ndarray:
        """Top-layer pre-activations (N, classes x P) of packed rows X."""
        out = []
        for i in range(0, len(X), chunk):
            h = X[i : i + chunk]
            pre = None
            for li in range(len(self.layers)):
                pre = self._pre(li, h)
                h = pack_bits(pre >= 0)
            assert pre is not None
            out.append(pre)
        self.eval_totals["samples"] += len(X)
        self.eval_totals["fwd_words"] += len(X) * sum(layer.nw * layer.n_out for layer in self.layers)
        return np.concatenate(out) if out else np.zeros((0, self.layers[-1].n_out), dtype=np.int64)

    # learning --------------------------------------------------------------------------
    def train_sample(self, x: np.ndarray, label: int) -> bool:
        pres, outs = self._forward(x)
        top = len(self.layers) - 1
        winner = int(np.argmax(pres[top]))
        correct = winner // self.P == label
        base = step_key(self.seed, self.step)
        self.step += 1
        self.totals["samples"] += 1
        e = (self.step - 1) // self.epoch if self.epoch else 0
        if self.anneal and e + 2 > self.anneal:
            self.extra = e + 2 - self.anneal
        if self.hidden is not None:
            self.hidden.start(pres)
        if not self.fill[label]:
            self._learn(label, winner, pres, outs, base)
        else:
            self._fill(label, outs[top])
        if self.hidden is not None:
            self.hidden.end(e)
        return correct

    def _fill(self, label: int, bits: np.ndarray) -> None:
        out, P = self.layers[-1], self.P
        row = label * P + P - self.fill[label]
        valid = valid_mask(out.n_in)
        out.s[row] = bits & valid  # the input bits or the hidden sign bits below
        if out.kind == spec.BINARY2:
            assert out.aux is not None
            out.aux[row] = 0
        elif out.kind == spec.TERNARY:
            assert out.aux is not None
            out.aux[row] = valid
        self.fill[label] -= 1
        self.totals["writes"] += out.n_in

    def update(self, li: int, rows: np.ndarray, up: np.ndarray, x: np.ndarray, base: np.uint32, k: int) -> None:
        """Rows of layer li move toward (up) or away from x: the top's and rule v1's step."""
        layer = self.layers[li]
        self.totals["writes"] += layer.update(rows, up, x, row_keys(base, li, rows), k, self.ks)
        self.totals["updates"] += len(rows)
        self.totals["upd_words"] += len(rows) * layer.nw

    def _vote(self, li: int, dv: np.ndarray, pres: list[np.ndarray]) -> np.ndarray:
        """Directions (+1 up, -1 down, 0) of layer li-1's units from the votes of layer li's
        rows with directions dv (kernels.vote + hidden_dirs)."""
        layer = self.layers[li]
        v = layer.votes(dv)
        self.totals["vote_words"] += int(np.count_nonzero(dv)) * layer.nw
        a = pres[li - 1]
        err = (v != 0) & ((v > 0) != (a >= 0)) & (a <= self.window) & (a >= -self.window - 1)
        return np.where(err, np.sign(v), 0)

    def _rival(self, pre: np.ndarray, lo: int) -> int:
        rival = -1
        if lo > 0:
            rival = int(np.argmax(pre[:lo]))
        if lo + self.P < len(pre):
            r2 = lo + self.P + int(np.argmax(pre[lo + self.P :]))
            if rival < 0 or pre[r2] > pre[rival]:
                rival = r2
        return rival

    def _learn(self, label: int, winner: int, pres: list[np.ndarray], outs: list[np.ndarray], base: np.uint32) -> None:
        top = len(self.layers) - 1
        out, P = self.layers[top], self.P
        pre = pres[top]
        lo = label * P
        votes: dict[int, int] = {}  # near: the top rows that vote on the hidden layers
        if winner // P == label:
            rows, up = [winner], [True]
            if self.margin >= 0 or self.near:
                rival = self._rival(pre, lo)
                if self.margin >= 0 and rival >= 0 and pre[rival] - pre[winner] > -self.margin:
                    rows.append(rival)
                    up.append(False)
                if self.near and rival >= 0 and pre[rival] - pre[winner] > -self.hidden.near:  # type: ignore[union-attr]
                    votes = {winner: 1, rival: -1}
        else:
            best = lo + int(np.argmax(pre[lo : lo + P]))
            rows, up = [winner, best], [False, True]
            votes = {winner: -1, best: 1}
        below = None
        if top > 0:  # the top votes before it learns
            dv = np.zeros(out.n_out, dtype=np.int64)
            if self.near:
                for r, sgn in votes.items():
                    dv[r] = sgn
            else:
                for r, u in zip(rows, up):
                    dv[r] = 1 if u else -1
            if dv.any():
                below = self._vote(top, dv, pres)
        # the device updates the top rows in the order it chose them
        self.update(top, np.array(rows, dtype=np.int64), np.array(up), outs[top], base, self.k[top] + self.extra)
        li = top - 1
        while li >= 0 and below is not None and below.any():
            d = below
            below = self._vote(li, d, pres) if li > 0 else None
            units = np.nonzero(d)[0]
            assert self.hidden is not None
            self.hidden.learn(li, units, d[units] > 0, outs[li], base)
            li -= 1

    # model ------------------------------------------------------------------------------
    def planes(self) -> list[tuple[int, str, np.ndarray]]:
        """The model's planes in spec.planes order (rule.py Trainer.planes)."""
        out = []
        top = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            out += [(i, name, p) for name, p in layer.planes()]
            if self.hidden is not None and i < top:
                out += [(i, name, p) for name, p in self.hidden.planes(i)]
        return out

    def state(self) -> dict[str, np.ndarray]:
        """Everything training keeps (model, prototypes to fill, the hidden rule's state, the
        step, the work counters): what a host checkpoint saves to continue bit-exactly."""
        out = {f"plane{i}": np.asarray(p).copy() for i, (_, _, p) in enumerate(self.planes())}
        out["fill"] = np.array(self.fill, dtype=np.int64)
        out["step"] = np.array([self.step], dtype=np.int64)
        out["totals"] = np.array([self.totals[n] for n in spec.COUNTERS], dtype=np.int64)
        if self.hidden is not None:
            out.update({f"hidden.{k}": v for k, v in self.hidden.state().items()})
        return out

    def load_state(self, st: dict[str, np.ndarray]) -> None:
        for i, (_, _, p) in enumerate(self.planes()):
            p[...] = st[f"plane{i}"].view(p.dtype)
        self.fill = [int(v) for v in st["fill"]]
        self.step = int(st["step"][0])
        self.totals = {n: int(v) for n, v in zip(spec.COUNTERS, st["totals"])}
        if self.hidden is not None:
            self.hidden.load_state({k[7:]: v for k, v in st.items() if k.startswith("hidden.")})

    def digest(self) -> str:
        return spec.digest([np.ascontiguousarray(p).astype("<u4").tobytes() for _, _, p in self.planes()])

    def weight_bytes(self) -> int:
        return sum(p.size * 4 for layer in self.layers for _, p in layer.planes())
