"""The tail-loss probe of FrameSender (host/bitflip/link/probe.py): while the host drains
(flush, request) and the device has been silent for a few round trips, one frame is resent
at once instead of at the retransmission timeout; one probe per silence."""

from __future__ import annotations

import time
from typing import Any

from bitflip.device import protocol as P
from bitflip.link.arq import FrameSender
from bitflip.link.probe import TailProbe


class FakeLink:
    """A device that loses the first `lose` transmissions silently (no nak), then acks
    every frame it reads at once."""

    name = "fake"
    eof = False
    last_rx = 0.0

    def __init__(self, lose: int):
        self.lose = lose
        self.writes: list[tuple[float, bytes]] = []
        self.answers: list[dict[str, Any]] = []

    def write(self, data: bytes) -> None:
        self.writes.append((time.monotonic(), data))
        if len(self.writes) > self.lose:
            seq = data[4] | (data[5] << 8)
            self.answers.append({P.F_EV: P.R_ACK, "seq": seq, P.F_HELD: 0, P.F_CREDIT: 4})

    def next_record(self, timeout: float) -> dict[str, Any] | None:
        if self.answers:
            self.last_rx = time.monotonic()
            return self.answers.pop(0)
        time.sleep(timeout)
        return None


def _sender(link: FakeLink) -> FrameSender:
    snd = FrameSender(link, 4, max_payload=256)  # type: ignore[arg-type]
    snd.srtt, snd.rttvar, snd.rto = 0.001, 0.0, 1.0  # a fast line, a timeout far away
    snd.probe.answered(time.monotonic())
    return snd


def test_lost_tail_frame_is_resent_before_the_timeout() -> None:
    link = FakeLink(lose=1)
    snd = _sender(link)
    t0 = time.monotonic()
    snd.send(P.K_TRAIN, b"x" * 40)
    snd.flush()
    assert len(link.writes) == 2 and link.writes[1][1] == link.writes[0][1]  # the same frame, once more
    assert snd.probe.sent == 1 and snd.timeouts == 0 and snd.retransmitted == 1
    assert time.monotonic() - t0 < 0.5  # (the timeout was 1 s away)


def test_one_probe_per_silence_then_the_timeout() -> None:
    link = FakeLink(lose=2)  # the probe is lost too: the next resend is the timeout's
    snd = _sender(link)
    snd.rto = 0.3
    snd.send(P.K_TRAIN, b"x" * 40)
    snd.flush()
    assert len(link.writes) == 3
    assert snd.probe.sent == 1 and snd.timeouts == 1
    gap = link.writes[2][0] - link.writes[1][0]
    assert gap > 0.2  # no second probe while the device stayed silent


def test_no_probe_while_streaming() -> None:
    # outside flush/request (a frame is sent, the window is not full) nothing is resent
    link = FakeLink(lose=1)
    snd = _sender(link)
    snd.send(P.K_TRAIN, b"x" * 40)
    time.sleep(0.05)
    assert len(link.writes) == 1 and snd.probe.sent == 0


class F:
    def __init__(self, held: bool, n: int):
        self.held, self.frame = held, bytes(n)


def test_pick_oldest_unheld_else_shortest() -> None:
    p = TailProbe()
    a, b, c = F(True, 50), F(False, 90), F(False, 20)
    assert p.pick([a, b, c]) is b
    d, e = F(True, 90), F(True, 30)
    assert p.pick([d, e]) is e
    assert p.pick([]) is None
    assert p.due(0.001) == float("inf")  # not armed before the device has answered
    p.answered(10.0)
    assert p.due(0.001) == 10.0 + TailProbe.PTO_MIN and p.due(0.01) == 10.0 + 0.02
