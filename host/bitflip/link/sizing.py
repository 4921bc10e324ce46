"""Frame sizing on a noisy line: the byte error rate of the host -> board direction,
estimated from what became of every transmission, and the frame length (samples per
TRAIN/EVAL frame, with or without FEC check bytes) with the least expected cost per sample
at that rate. FrameSender (arq.py) feeds the one and asks the other."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from ..device import payload as PL
from ..device import protocol as P

FRAME_COST = 100  # per-frame work of both sides in bytes-equivalents (unix port, measured: 100 beat 40, 200, 400)


def log_taken(p: Any, n: int, fec: bool) -> Any:
    """log P(a frame with n payload bytes is taken) at byte error rate p (array or float):
    its two sync bytes intact and at most one damaged byte among the other six header bytes
    (the device repairs one: frames.header_repair), and then every payload+crc32 byte
    intact, or with FEC (protocol.FEC_FLAG) at most two damaged bytes in each segment of
    payload+crc32 with its FEC_CHECK check bytes."""
    lq = np.log1p(-p)
    r = p / (1 - p)
    head = P.HEADER_SIZE * lq + np.log1p((P.HEADER_SIZE - 2) * r)
    if not fec:
        return head + (n + P.CRC_SIZE) * lq
    out = head
    m = n + P.CRC_SIZE
    for i in range(0, m, P.FEC_SEG):
        g = min(P.FEC_SEG, m - i) + P.FEC_CHECK
        out = out + g * lq + np.log1p(g * r + g * (g - 1) / 2 * r**2)
    return out


class ErrorRate:
    """Byte error rate of the host -> board direction, estimated from what became of each
    transmission (taken, or known lost) and its length: the likelihood of every rate on a
    log grid, older observations fading (x DECAY each). The prior is 2 KB seen clean."""

    GRID = np.geomspace(1e-6, 0.3, 64)
    DECAY = 0.99

    def __init__(self) -> None:
        self.ll = -2e3 * self.GRID
        self.pending: list[tuple[int, bool, bool]] = []
        self._cache: dict[tuple[int, bool], tuple[Any, Any]] = {}
        self.p = 1e-6
        self.version = 0  # bumped when p changes

    def observe(self, n: int, ok: bool, fec: bool = False) -> None:
        """n: payload bytes of the frame."""
        self.pending.append((n, ok, fec))
        if len(self.pending) >= 8 or not ok:  # (a loss is news: frames may have to shrink)
            self.update()

    def update(self) -> None:
        for n, ok, fec in self.pending:
            key = (n, fec)
            if key not in self._cache:
                lk = log_taken(self.GRID, n, fec)
                self._cache[key] = (lk, np.log(-np.expm1(lk)))
            self.ll *= self.DECAY
            self.ll += self._cache[key][0 if ok else 1]
        self.pending.clear()
        w = np.exp(self.ll - self.ll.max())
        p = float(np.exp((w * np.log(self.GRID)).sum() / w.sum()))  # posterior mean of log p
        if abs(p - self.p) > 0.05 * self.p:
            self.p = p
            self.version += 1


def best_frame(
    p: float, row_bytes: int, cap: int, credit: int, filler: int, slots: int, fec: bool = True
) -> tuple[int, bool, int]:
    """(samples, fec, frame bytes) of the TRAIN/EVAL frame with the least expected cost per
    sample at byte error rate p: (FRAME_COST + bytes) x transmissions / samples, where a
    frame is taken with exp(log_taken) (with or without FEC check bytes, whichever is
    cheaper) and a lost one costs itself (selective repeat: frames that fit a slot) or the
    window of `credit` frames behind it too (go-back-N). filler: the longest frame; fec: the
    device corrects FEC frames (else only frames without check bytes are considered)."""
    # the choice is kept per 5 % step of the rate: p moves by more than 5 % often on a
    # noisy line and each choice costs ~100 log_taken evaluations
    return _best_frame(round(math.log(p) / math.log(1.05)), row_bytes, cap, credit, filler, slots, fec)


@lru_cache(maxsize=4096)
def _best_frame(
    p_bin: int, row_bytes: int, cap: int, credit: int, filler: int, slots: int, can_fec: bool
) -> tuple[int, bool, int]:
    p = 1.05**p_bin
    slot = P.slot_bytes(filler - P.HEADER_SIZE - P.CRC_SIZE)
    best: tuple[float, int, bool, int] = (float("inf"), 1, False, filler)
    for s in range(1, max(1, cap) + 1):
        n = PL.block_layout(s, row_bytes)[2]
        for fec in (False, True) if can_fec else (False,):
            size = P.HEADER_SIZE + n + P.CRC_SIZE + (P.fec_size(n) if fec else 0)
            if size > filler:
                continue
            ok = math.exp(float(log_taken(p, n, fec)))
            sr = slots and size <= slot
            tx = 1 / ok if sr else (1 + (credit - 1) * (1 - ok)) / ok
            cost = (FRAME_COST + size) * tx / s
            if cost < best[0]:
                best = (cost, s, fec, size)
    return best[1], best[2], best[3]
