"""Hidden-layer rules of the reference: twins of firmware/bitflip/hidden.py (rule v1,
"flip") and of pool.py's PoolRule ("pool"), on the same seam as the device's Trainer uses:
votes_from_updates / near, start, learn, end, planes, thresholds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..bitplanes import pack_bits, unpack_pm
from ..device import spec

if TYPE_CHECKING:
    from .reference import Layer, Reference


class HiddenRule:
    votes_from_updates = True  # the top's update directions vote (else: error pair and near-misses)
    near = 0

    def __init__(self, ref: Reference, cfg: dict[str, Any]):
        self.ref = ref

    def start(self, pres: list[np.ndarray]) -> None:
        """Before a sample's learning step (pres: its pre-activations per layer)."""

    def learn(self, li: int, units: np.ndarray, up: np.ndarray, x: np.ndarray, base: np.uint32) -> None:
        """Layer li's units in error (ascending), their directions, its input x."""
        raise NotImplementedError

    def end(self, e: int) -> None:
        """After the step; e = the sample's epoch (0-based)."""

    def planes(self, li: int) -> list[tuple[str, np.ndarray]]:
        """Extra model planes of hidden layer li (spec.planes order)."""
        return []

    def thresholds(self, li: int) -> np.ndarray | None:
        """Subtracted from layer li's pre-activations (None: none)."""
        return None

    def state(self) -> dict[str, np.ndarray]:
        """The rule's training state besides the model planes (host checkpoints)."""
        return {}

    def load_state(self, st: dict[str, np.ndarray]) -> None:
        pass


class FlipRule(HiddenRule):
    """Rule v1: the units in error move a random 1/2**k subset of their erroneous
    contributions, every sample."""

    def learn(self, li: int, units: np.ndarray, up: np.ndarray, x: np.ndarray, base: np.uint32) -> None:
        if len(units):
            self.ref.update(li, units, up, x, base, self.ref.k[li])


class PoolRef:
    """Twin of pool.py Pool: thresholds and the evidence window of one 1-bit hidden layer."""

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
            self.c[r[keep]] = np.clip(self.c[r[keep]] + sgn[:, None] * xpm[None, :], -spec.SAT, spec.SAT)
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


class PoolRule(HiddenRule):
    """The pool rule: thresholds per unit, evidence counters over a rotating window of
    units, every `every` samples the most opposed weights flip."""

    votes_from_updates = False

    def __init__(self, ref: Reference, cfg: dict[str, Any]):
        super().__init__(ref, cfg)
        pc = cfg["pool"]
        self.pools = [PoolRef(layer, int(pc["rows"])) for layer in ref.layers[:-1]]
        self.every, self.tau, self.flips = int(pc["every"]), int(pc["tau"]), int(pc["flips"])
        self.near, self.tau_step = int(pc["near"]), int(pc.get("tau_step", 0))

    def start(self, pres: list[np.ndarray]) -> None:
        for li, pool in enumerate(self.pools):
            pool.t += np.sign(pres[li]).astype(np.int32)

    def learn(self, li: int, units: np.ndarray, up: np.ndarray, x: np.ndarray, base: np.uint32) -> None:
        self.ref.totals["evidence_bytes"] += self.pools[li].add(units, up, x)

    def end(self, e: int) -> None:
        ref = self.ref
        if ref.step % self.every:
            return
        for pool in self.pools:
            ref.totals["writes"] += pool.flush(max(self.flips >> e, 1), self.tau + self.tau_step * ref.extra)
            ref.totals["evidence_bytes"] += 2 * pool.rows * pool.layer.n_in

    def planes(self, li: int) -> list[tuple[str, np.ndarray]]:
        return [("t", self.pools[li].t.view(np.uint32))]

    def thresholds(self, li: int) -> np.ndarray | None:
        return self.pools[li].t if li < len(self.pools) else None

    def state(self) -> dict[str, np.ndarray]:
        out = {}
        for i, pool in enumerate(self.pools):
            out[f"c{i}"] = pool.c.copy()
            out[f"pos{i}"] = np.array([pool.pos], dtype=np.int64)
        return out

    def load_state(self, st: dict[str, np.ndarray]) -> None:
        for i, pool in enumerate(self.pools):
            pool.c[...] = st[f"c{i}"]
            pool.pos = int(st[f"pos{i}"][0])


RULES: dict[str, type[HiddenRule]] = {"flip": FlipRule, "pool": PoolRule}


def make_hidden_rule(ref: Reference, cfg: dict[str, Any]) -> HiddenRule | None:
    name = spec.hidden_rule(cfg)
    return RULES[name](ref, cfg) if name is not None else None
