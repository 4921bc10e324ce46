"""Reliable frames over a SerialLink (automatic repeat request): sequence numbers inside the
device's credit window, selective repeat of what the device reports lost, retransmission on
timeout (RTO from measured round trips), frame size and forward error correction chosen from
the measured byte error rate, and records the device repeats on request."""

from __future__ import annotations

import math
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..device import protocol as P
from ..errors import DeviceError, LinkError
from . import frames
from .probe import TailProbe
from .serial import TRACE, Record, SerialLink
from .sizing import ErrorRate, best_frame, log_taken


class FramesTooLong(LinkError):
    """Frames keep arriving damaged: the caller should resend from `acked_tag` with
    smaller frames. The device expects sequence number `expect` next."""

    def __init__(self, acked_tag: Any, expect: int):
        super().__init__("frames keep arriving damaged")
        self.acked_tag, self.expect = acked_tag, expect


def _before(a: int, b: int) -> bool:
    """Sequence number a comes before b (16-bit, wrapping)."""
    return 0 < ((b - a) & 0xFFFF) < 0x8000


class _Frame:
    __slots__ = ("fails", "fec", "frame", "held", "live", "n", "sends", "seq", "split", "t", "tag", "tx")

    def __init__(self, seq: int, frame: bytes, tag: Any, split: bool):
        self.seq, self.frame, self.tag, self.split = seq, frame, tag, split
        self.t = 0.0  # time of the last transmission
        self.tx = 0  # number of the last transmission (the host counts every frame it writes)
        self.live = 0  # first transmission that may still arrive intact (earlier ones are known lost)
        self.sends = 0
        self.fails = 0  # transmissions known lost
        self.held = False  # the device said it holds this frame (ahead of a gap)
        self.n = len(frame) - P.HEADER_SIZE - P.CRC_SIZE  # payload bytes
        self.fec = False  # with FEC check bytes


class FrameSender:
    """Sends frames with sequence numbers inside the device's window; selective repeat.

    The device acks cumulatively (every frame up to seq processed) and says which frames
    ahead of a gap it holds; acks are deferred on the device (sent after ~480 bytes of
    frames or when its input goes idle), naks come at once. A serial line does not reorder:
    when the device reports a frame sent after another one that it neither processed nor
    holds, that one was lost, and only it is resent (likewise the first unaccounted frame
    after a nak: the damaged one). A frame nobody reported within the retransmission
    timeout (srtt + 4 rttvar of measured round trips, doubled on every miss) is resent too.
    Frames that fit a device slot (protocol.slot_bytes) may be sent up to slots + 1 ahead;
    longer ones only `credit` ahead (the device cannot hold them: go-back-N).
    A frame whose answer is a record (config, marks, checkpoints, done) goes through
    request(): if its ack arrives but the record was lost on the wire, the same frame is
    resent and the device replays the record.
    The error rate of the line is estimated from what became of every transmission; the
    caller sizes frames with best_samples(). Frames sent with a tag can be abandoned: when
    one much longer than the best size was lost shrink_after times, FramesTooLong tells the
    caller to resend from the last acked tag in smaller frames.
    After max_retries silent timeouts in a row, with nothing heard for dead_s, the link is
    declared dead.
    """

    RTO_MIN = 0.01  # s (20 ms before: A/B in docs/results/faults.md)
    RTO_MAX = 2.0

    def __init__(
        self,
        link: SerialLink,
        credit: int,
        on_record: Callable[[Record], None] | None = None,
        max_retries: int = 6,
        rto: float = 0.25,
        shrink_after: int = 2,
        max_payload: int = P.MAX_PAYLOAD,
        dead_s: float = 5.0,
    ):
        self.link = link
        self.credit = max(1, credit)
        self.on_record = on_record
        self.max_retries = max_retries
        self.shrink_after = shrink_after
        self.dead_s = dead_s
        self.filler = P.HEADER_SIZE + max_payload + P.CRC_SIZE
        self.slots = P.sr_slots(max_payload)
        self.slot = P.slot_bytes(max_payload)  # frames up to this long may be held by the device
        self.device_fec = False  # the device corrects FEC frames (its config record says)
        self.seq = 0
        self.inflight: deque[_Frame] = deque()  # unacknowledged frames, in sequence order
        self.retransmitted = 0
        self.frames_sent = 0
        self.naks = 0
        self.timeouts = 0
        self.acked_tag: Any = None
        self.tags: dict[int, Any] = {}  # seq -> tag of tagged frames (the caller clears it)
        self.rto = rto  # retransmission timeout, adapted to measured round trips
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.errors = ErrorRate()
        self.tx = 0  # transmissions so far
        self.known = 0  # the device has read every transmission before this one
        self._silent = 0
        self._asked = (0, 0)  # (damaged records, repeats seen) when repeated records were last asked for
        self._big = 0  # frames in flight that do not fit a slot
        self._want: tuple[str, int] | None = None
        self._got: Record | None = None
        self.best_len = self.filler  # length of the frames best_samples chose last
        self.fec = False  # ... and whether they carry FEC check bytes
        self._last_key: tuple[int, int] | None = None
        self.probe = TailProbe()  # (only while draining: flush, request)
        self._draining = False

    def rebind(self, link: SerialLink, credit: int, seq: int) -> None:
        """Continue on a (new) link from sequence number seq, which must be what the
        device expects (from a pong: the device answers a ping after everything sent
        before it, and drops the frames it held, so no old frame can be taken for a new
        one); unacknowledged frames are dropped: the caller resends from the matching
        position."""
        self.link = link
        self.credit = max(1, credit)
        self.seq = seq & 0xFFFF
        self.inflight.clear()
        self._big = 0
        self._asked = (0, 0)
        self.acked_tag = None
        self.known = self.tx + 1

    # --- frame sizing ----------------------------------------------------------------------
    def best_samples(self, row_bytes: int, cap: int) -> int:
        """Samples per TRAIN/EVAL frame with the least expected cost per sample at the
        estimated error rate (sizing.best_frame); sets self.fec and self.best_len to the
        chosen frame's FEC and length."""
        self._last_key = (row_bytes, cap)
        s, self.fec, self.best_len = best_frame(
            self.errors.p, row_bytes, cap, self.credit, self.filler, self.slots, self.device_fec
        )
        return s

    # --- sending ---------------------------------------------------------------------------
    def _window(self, nbytes: int) -> int:
        if self.slots and nbytes <= self.slot and not self._big:
            # never more bytes in flight than credit long frames (UART boards' RX buffers)
            return max(self.credit, min(self.slots + 1, self.credit * self.filler // nbytes))
        return self.credit

    def _transmit(self, e: _Frame) -> None:
        self.tx += 1
        e.tx = self.tx
        e.t = time.monotonic()
        e.sends += 1
        self.link.write(e.frame)

    def send(self, kind: int, payload: bytes = b"", tag: Any = None, splittable: bool = False) -> int:
        """Send one frame; blocks while the window is full. Returns its seq."""
        seq = self.seq
        fec = self.fec if kind in (P.K_TRAIN, P.K_EVAL) else self.device_fec and self.errors.p > 1e-3
        if fec and P.HEADER_SIZE + len(payload) + P.CRC_SIZE + P.fec_size(len(payload)) > self.filler:
            fec = False
        frame = frames.encode_frame(kind, seq, payload, fec=fec)
        big = len(frame) > self.slot
        # a long frame overwrites what the device holds: send it only when nothing is held
        while len(self.inflight) >= self._window(len(frame)) or (big and any(e.held for e in self.inflight)):
            self._pump()
        e = _Frame(seq, frame, tag, splittable)
        e.n, e.fec = len(payload), fec and self.device_fec  # (what the device makes of it)
        e.live = self.tx + 1
        self.inflight.append(e)
        self._big += big
        if tag is not None:
            self.tags[seq] = tag
        self._transmit(e)
        self.frames_sent += 1
        self.seq = (self.seq + 1) & 0xFFFF
        return seq

    def flush(self) -> None:
        """Wait until every frame sent so far is acknowledged."""
        self._draining = True
        try:
            while self.inflight:
                self._pump()
        finally:
            self._draining = False

    def request(self, kind: int, payload: bytes, ev: str, tries: int = 200) -> Record:
        """Send a frame whose answer is the record `ev` (carrying the frame's seq)."""
        self.flush()
        self.ask_repeat()
        seq = self.send(kind, payload)
        e = self.inflight[-1]
        self._want, self._got = (ev, seq), None
        try:
            for _ in range(tries):
                self._draining = True
                while self.inflight and self._got is None:
                    self._pump()
                self._draining = False
                if self._got is not None:
                    self.flush()
                    return self._got
                # acked, answer lost: the device replays it for a repeated frame
                e.held = False
                self.inflight.append(e)
                self._big += len(e.frame) > self.slot
                self._transmit(e)
                self.retransmitted += 1
            raise LinkError(f"{self.link.name}: the answer '{ev}' to frame {seq} kept getting lost")
        finally:
            self._want = None

    def ask_repeat(self) -> None:
        """Records arrive damaged and the board does not repeat them yet: ask it to (a PING
        whose payload byte is protocol.REPEAT's value; its pong is ignored)."""
        link = self.link
        if link.bad_records > self._asked[0] and link.repeats_seen == self._asked[1]:
            link.write(frames.encode_frame(P.K_PING, 0, bytes((3,))))
        self._asked = (link.bad_records, link.repeats_seen)

    def quiesce(self, quiet_s: float) -> None:
        """Read (and handle) whatever the device still says until it has been silent
        for quiet_s: every byte already written has then been consumed."""
        while True:
            rec = self.link.next_record(quiet_s)
            if rec is None:
                return
            if rec.get("ev") == P.R_ACK:
                self._pop(int(rec["seq"]) + 1, time.monotonic())
            elif rec.get("ev") not in (P.R_NAK, P.R_PONG) and self.on_record is not None:
                self.on_record(rec)

    # --- receiving -------------------------------------------------------------------------
    def _pump(self) -> None:
        """Handle one incoming record (or one timeout)."""
        while True:
            now = time.monotonic()
            due = min((e.t for e in self.inflight if not e.held), default=now) + self.rto
            pdue = self.probe.due(self.srtt) if self.inflight and self._draining else due
            rec = self.link.next_record(max(0.0005, min(due, pdue) - now))
            if rec is not None:
                break
            if self.link.eof:
                raise LinkError(f"{self.link.name}: the board is gone{self.link.log_tail()}")
            if time.monotonic() >= due:
                self._timed_out()
            elif time.monotonic() >= pdue:
                self.retransmitted += self.probe.fire(self.inflight, self._transmit)
        ev = rec.get("ev")
        if TRACE:
            print(
                f"[link] {time.monotonic():.4f} {rec} inflight={[(i.seq, i.held) for i in self.inflight]} "
                f"rto={self.rto:.3f} p={self.errors.p:.2g}",
                file=sys.stderr,
            )
        if ev == P.R_ACK:
            self.credit = max(1, int(rec.get(P.F_CREDIT, self.credit)))
            self._state((int(rec["seq"]) + 1) & 0xFFFF, int(rec.get(P.F_HELD, 0)), None)
        elif ev == P.R_NAK:
            code = int(rec.get("code", 0))
            if code in (P.E_STATE, P.E_PAYLOAD, P.E_CONFIG):
                raise DeviceError(f"device rejected a frame: {P.ERROR_NAMES.get(code, code)}")
            self.naks += 1
            self._state(int(rec["seq"]), int(rec.get(P.F_HELD, 0)), code)
        elif ev == P.R_ERROR:
            raise DeviceError(f"device error: {rec.get('msg', rec)}")
        elif ev != P.R_PONG:
            if self._want is not None and ev == self._want[0] and rec.get("seq") == self._want[1]:
                self._got = rec
            if self.on_record is not None:
                self.on_record(rec)

    def _timed_out(self) -> None:
        if TRACE:
            print(f"[link]   timeout rto={self.rto:.3f} silent={self._silent}", file=sys.stderr)
        self._silent += 1
        self.timeouts += 1
        quiet = time.monotonic() - self.link.last_rx
        if self._silent > self.max_retries and quiet > self.dead_s:
            raise LinkError(
                f"{self.link.name}: no answer from the board after {self._silent - 1} resends{self.link.log_tail()}"
            )
        if self._silent >= 2:
            # The board may sit inside a frame whose length field it could not check (or
            # whose bytes were lost), waiting for bytes that will never come: complete it
            # with filler (not sync bytes); it fails its CRC and the resent frames are read.
            self.link.write(bytes(self.filler))
        now = time.monotonic()
        resent = 0
        for e in list(self.inflight):
            if not e.held and now - e.t >= self.rto * 0.999:
                self._transmit(e)  # not known lost: an earlier copy may still arrive
                self.retransmitted += 1
                resent += 1
        if not resent and self.inflight:
            # every frame in flight is held by the device (the last ack said so) and the
            # acks after it were lost: a held or processed frame sent again is answered
            # with an ack at once (a duplicate), which says where the device is now
            e = min(self.inflight, key=lambda f: len(f.frame))
            self._transmit(e)
            self.retransmitted += 1
        self.rto = min(self.rto * 2, self.RTO_MAX)  # back off, like TCP

    def _rtt(self, rtt: float) -> None:
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt

    def _arrived(self, e: _Frame, now: float) -> None:
        if e.sends == 1:  # Karn: no round trip from resent frames
            self._rtt(now - e.t)
        self.errors.observe(e.n, True, e.fec)
        self.known = max(self.known, e.live + 1)

    def _pop(self, expect: int, now: float) -> bool:
        progress = False
        while self.inflight and _before(self.inflight[0].seq, expect):
            e = self.inflight.popleft()
            self._big -= len(e.frame) > self.slot
            progress = True
            if e.tag is not None:
                self.acked_tag = e.tag
            if not e.held:
                self._arrived(e, now)
        return progress

    def _state(self, expect: int, held: int, nak: int | None) -> None:
        """The device processed everything before `expect` and holds the frames of `held`
        (bit i: expect + i); nak: it has just read a damaged or unusable transmission."""
        now = time.monotonic()
        self.probe.answered(now)
        self._pop(expect, now)
        for e in self.inflight:
            d = (e.seq - expect) & 0xFFFF
            has = d < 16 and bool(held >> d & 1)
            if has and not e.held:
                self._arrived(e, now)
            e.held = has  # (a held frame can be dropped again: a ping, or a long frame)
        # the board answers (an ack or nak): drop the back-off (a lost answer on a noisy
        # line is no reason to wait longer)
        self._silent = 0
        if self.srtt is not None:
            self.rto = min(self.RTO_MAX, max(self.RTO_MIN, self.srtt + 4 * self.rttvar))
        # a frame all of whose copies were sent before one the device has read is lost
        for e in list(self.inflight):
            if not e.held and e.tx < self.known:
                self._lost(e)
        if nak is not None:
            # the device read a damaged transmission: the first one it has not accounted for
            cand = [e for e in self.inflight if not e.held and e.tx >= self.known]
            if TRACE:
                print(
                    f"[link]   nak: known={self.known} tx={[(e.seq, e.tx, e.held) for e in self.inflight]}",
                    file=sys.stderr,
                )
            if cand:
                e = min(cand, key=lambda f: f.tx)
                self.known = e.tx + 1  # (the device has read it)
                self._lost(e)

    def _hopeless(self, e: _Frame) -> bool:
        # taken less than one time in four at the estimated rate: a long frame without FEC
        # sent before the noise was known is near the best length only if it carried FEC
        return float(log_taken(self.errors.p, e.n, e.fec)) < math.log(0.25)

    def _lost(self, e: _Frame) -> None:
        if TRACE:
            print(f"[link]   lost {e.seq} tx={e.tx} fails={e.fails} known={self.known}", file=sys.stderr)
        self.errors.observe(e.n, False, e.fec)
        e.fails += 1
        if e.split and self._last_key is not None:
            self.best_samples(*self._last_key)  # (sets best_len at the current estimate)
        if e.split and (
            (e.fails > self.shrink_after and (len(e.frame) > 2 * self.best_len or self._hopeless(e)))
            or (e.fails > 1 and len(e.frame) > 4 * self.best_len)
        ):
            raise FramesTooLong(self.acked_tag, self.inflight[0].seq if self.inflight else self.seq)
        self._transmit(e)
        e.live = e.tx
        self.retransmitted += 1
