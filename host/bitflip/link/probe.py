"""Tail-loss probe for FrameSender: when the device has said nothing for a couple of round
trips while frames are unaccounted for, one frame is resent at once instead of waiting for
the retransmission timeout (its floor, FrameSender.RTO_MIN, is many round trips on a fast
line).

Why it pays (measured, benchmarks/faults.py, 1 % of the bytes corrupted both ways): the
device acks after ~480 bytes of frames or when its input goes idle, and naks a damaged
frame at once; a 57-byte answer (protocol 3; 22 bytes since protocol 4) is damaged ~44 % (20 %) of the time at 1 %, so a lost frame whose
nak is lost too, with no later frame the device could report (the last frames before a
flush), is found only by the timeout: 74 timeouts, ~1.9 s of a 6 s run.

The probe resends the oldest frame the device has not reported holding: if it was lost, it
is taken now; if it arrived (only the answers were lost), the device acks the duplicate at
once, which says where it is. Either way one frame's bytes, and one probe per silence: the
next one waits for an answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar


class _Frame(Protocol):
    held: bool
    frame: bytes


E = TypeVar("E", bound=_Frame)


class TailProbe:
    PTO_MIN = 0.004  # s: the device answers within ~1 ms when idle (unix port), a busy one acks every ~4 frames
    PTO_RTTS = 2.0  # probe after this many smoothed round trips of silence

    def __init__(self) -> None:
        self.last = 0.0  # when the device last answered (ack or nak), or the last probe went out
        self.armed = False  # a probe may go out: the device answered since the last one
        self.sent = 0  # probes sent

    def answered(self, now: float) -> None:
        self.last, self.armed = now, True

    def due(self, srtt: float | None) -> float:
        """When to probe (monotonic time), or inf when no probe may go out now."""
        if not self.armed or srtt is None:
            return float("inf")
        return self.last + max(self.PTO_MIN, self.PTO_RTTS * srtt)

    def pick(self, inflight: Iterable[E]) -> E | None:
        """The frame to resend: the oldest one not held by the device, else the shortest."""
        frames = list(inflight)
        if not frames:
            return None
        for e in frames:
            if not e.held:
                return e
        return min(frames, key=lambda f: len(f.frame))

    def fire(self, inflight: Iterable[E], transmit: Callable[[E], None]) -> int:
        """Silent for a few round trips: resend one frame now (transmit(frame)); returns
        the number of frames resent (0 or 1). No further probe until the device answers."""
        e = self.pick(inflight)
        self.armed, self.last = False, time.monotonic()
        if e is None:
            return 0
        transmit(e)
        self.sent += 1
        return 1
