"""The serial link to a board: one implementation for USB boards, UART boards and the
virtual board (a pty).

- a reader thread drains the port all the time, so device output never blocks the device;
- raw-REPL launch of the app (Ctrl-C, Ctrl-A, code, Ctrl-D), every wait with a timeout;
- record lines 'BF {json}' are parsed into dicts; other lines are kept as the device log;
- frames go out through `FrameSender`: sequence numbers, credit window, retransmission on
  nak or on ack timeout, paced writes for UART bridges.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import serial

from ..device import protocol as P
from ..errors import DeviceError, LinkError

Record = dict[str, Any]
TRACE = bool(os.environ.get("BITFLIP_TRACE"))  # print every record the sender handles


class SerialLink:
    def __init__(self, port: str, baudrate: int = 115200, pace_bytes_per_s: int = 0, name: str = ""):
        self.name = name or port
        try:
            self.ser = serial.Serial(port, baudrate=baudrate, timeout=0.05, write_timeout=30)
        except (serial.SerialException, OSError) as e:
            raise LinkError(f"cannot open {port}: {e}") from None
        self.pace = pace_bytes_per_s
        self._rx = bytearray()
        self._cond = threading.Condition()
        self._closed = False
        self._eof = False
        self.records: deque[Record] = deque()
        self.log: deque[str] = deque(maxlen=200)  # non-record device output
        self._line_start = 0  # records are parsed from here once the app runs
        self._parse_lines = False
        self.bytes_out = 0
        self.bad_records = 0
        self.dead_check: Callable[[], bool] | None = None  # e.g. "the board process exited"
        self.last_rx = 0.0  # time.monotonic() of the last byte from the board (0: none yet)
        self._thread = threading.Thread(target=self._reader, daemon=True)
        self._thread.start()

    # --- reading ---------------------------------------------------------------------
    def _reader(self) -> None:
        while not self._closed:
            try:
                # block for the first byte only, then take whatever has arrived: low latency
                data = self.ser.read(max(1, self.ser.in_waiting))
            except (serial.SerialException, OSError, TypeError):
                with self._cond:
                    self._eof = True
                    self._cond.notify_all()
                return
            if data:
                self.last_rx = time.monotonic()
                with self._cond:
                    self._rx += data
                    if self._parse_lines:
                        self._split_lines()
                    self._cond.notify_all()

    def _split_lines(self) -> None:
        while True:
            nl = self._rx.find(b"\n", self._line_start)
            if nl < 0:
                break
            line = bytes(self._rx[self._line_start : nl]).rstrip(b"\r")
            self._line_start = nl + 1
            rec = P.parse_record(line)
            if rec:
                self.records.append(rec)
            elif rec is False:
                self.bad_records += 1  # corrupted on the wire: dropped, never misread
            else:
                self.log.append(line.decode("utf-8", "replace"))
        if self._line_start > 1 << 20:  # trim consumed input
            del self._rx[: self._line_start]
            self._line_start = 0

    def wait_for(self, pattern: bytes, timeout: float, start: int = 0) -> int:
        """Block until pattern appears in the raw input after `start`; returns the offset
        just past it. Raises LinkError on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                i = self._rx.find(pattern, start)
                if i >= 0:
                    return i + len(pattern)
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    got = bytes(self._rx[-200:]).decode("utf-8", "replace")
                    raise LinkError(f"{self.name}: no {pattern!r} within {timeout:g} s (got {got!r})")
                self._cond.wait(left)

    def next_record(self, timeout: float) -> Record | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self.records:
                left = deadline - time.monotonic()
                if self.dead_check is not None and self.dead_check():
                    self._eof = True
                if left <= 0 or self._eof:
                    return None
                self._cond.wait(min(left, 0.2))
            return self.records.popleft()

    def expect(self, ev: str, timeout: float, on_record: Callable[[Record], None] | None = None) -> Record:
        """Wait for a record named ev; error records raise DeviceError, others go to
        on_record. A silent device raises LinkError after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            rec = self.next_record(max(left, 0))
            if rec is None:
                raise LinkError(f"{self.name}: no '{ev}' record within {timeout:g} s{self._log_tail()}")
            if rec.get("ev") == ev:
                return rec
            if rec.get("ev") == P.R_ERROR:
                raise DeviceError(f"device error: {rec.get('msg', rec)}")
            if on_record is not None:
                on_record(rec)

    def _log_tail(self) -> str:
        with self._cond:
            self._split_tail()
            tail = [line for line in self.log if line.strip()][-3:]
        return (": device said " + " | ".join(tail)) if tail else ""

    def _split_tail(self) -> None:
        rest = bytes(self._rx[self._line_start :]).decode("utf-8", "replace").strip()
        if rest:
            self.log.append(rest)
            self._line_start = len(self._rx)

    # --- writing ---------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        try:
            if self.pace <= 0:
                self.ser.write(data)
            else:  # UART bridge without flow control: never outrun the board's RX buffer
                step = 64
                for i in range(0, len(data), step):
                    chunk = data[i : i + step]
                    self.ser.write(chunk)
                    time.sleep(len(chunk) / self.pace)
        except (serial.SerialException, OSError) as e:
            raise LinkError(f"{self.name}: write failed: {e}") from None
        self.bytes_out += len(data)

    # --- raw REPL ----------------------------------------------------------------------
    def launch(self, code: str, timeout: float = 10.0) -> None:
        """Run code on the board through the raw REPL without waiting for it to finish;
        from then on, device lines are parsed as records. On a noisy line the banner may
        arrive damaged: the caller's wait for the app's (checksummed) boot record decides
        whether the launch worked."""
        # Ctrl-C twice stops whatever runs; Ctrl-B leaves a raw REPL the last job ran in, so
        # that its input buffer (grown by probes of a board with no app) is freed and the
        # new job starts on the same free heap as the last one
        self.write(b"\r\x03\x03\x02")
        time.sleep(0.1)
        mark = len(self._rx)
        self.write(b"\x01")
        try:
            self.wait_for(b"raw REPL", timeout, mark)
        except LinkError:
            if self._eof:
                raise
        self.start_records()
        self.write(code.encode() + b"\x04")

    def start_records(self) -> None:
        """Parse device output as records from now on (an app may already be running)."""
        with self._cond:
            if not self._parse_lines:
                self._line_start = len(self._rx)
                self._parse_lines = True

    def close(self) -> None:
        self._closed = True
        try:
            self.ser.close()
        except (serial.SerialException, OSError):
            pass
        self._thread.join(timeout=1)


class FramesTooLong(LinkError):
    """Frames keep arriving damaged: the caller should resend from `acked_tag` with
    smaller frames. The device expects sequence number `expect` next."""

    def __init__(self, acked_tag: Any, expect: int):
        super().__init__("frames keep arriving damaged")
        self.acked_tag, self.expect = acked_tag, expect


class FrameSender:
    """Sends frames with sequence numbers inside the device's credit window.

    The device acks every frame after processing it (acks are cumulative: it processes in
    order); a nak names the sequence number it expects and everything from there is
    resent (once per round trip); an ack that does not come within the retransmission
    timeout (adaptive, from measured round trips, doubled on every miss) resends the
    oldest unacknowledged frame. A frame whose answer is a record (config, marks,
    checkpoints, done) goes through request(): if its ack arrives but the record was lost
    on the wire, the same frame is resent and the device replays the record.
    Frames sent with a tag can be abandoned: when one is nak'ed shrink_after times,
    FramesTooLong tells the caller to resend from the last acked tag in smaller frames.
    After max_retries silent timeouts in a row the link is declared dead.
    """

    def __init__(
        self,
        link: SerialLink,
        credit: int,
        on_record: Callable[[Record], None] | None = None,
        max_retries: int = 6,
        rto: float = 2.0,
        shrink_after: int = 2,
        max_payload: int = P.MAX_PAYLOAD,
    ):
        self.link = link
        self.credit = max(1, credit)
        self.on_record = on_record
        self.max_retries = max_retries
        self.shrink_after = shrink_after
        self.filler = P.HEADER_SIZE + max_payload + P.CRC_SIZE
        self.seq = 0
        # seq, frame bytes, time sent, tag, times nak'ed, may be split
        self.inflight: deque[list[Any]] = deque()
        self.retransmitted = 0
        self.frames_sent = 0
        self.naks = 0
        self.acked_tag: Any = None
        self.tags: dict[int, Any] = {}  # seq -> tag of tagged frames (the caller clears it)
        self.rto = rto  # retransmission timeout, adapted to measured round trips
        self.srtt: float | None = None
        self._want: tuple[str, int] | None = None
        self._got: Record | None = None
        self._stale = (-1, 0)

    def rebind(self, link: SerialLink, credit: int, seq: int) -> None:
        """Continue on a (new) link from sequence number seq, which must be what the
        device expects (from a pong, after the link went quiet: a sequence number is never
        reused for different content while an old copy may still be on the wire);
        unacknowledged frames are dropped: the caller resends from the matching position."""
        self.link = link
        self.credit = max(1, credit)
        self.seq = seq & 0xFFFF
        self.inflight.clear()
        self.acked_tag = None

    def send(self, kind: int, payload: bytes = b"", tag: Any = None, splittable: bool = False) -> int:
        """Send one frame; blocks while the window is full. Returns its seq."""
        while len(self.inflight) >= self.credit:
            self._pump()
        seq = self.seq
        frame = P.encode_frame(kind, seq, payload)
        self.inflight.append([seq, frame, time.monotonic(), tag, 0, splittable])
        if tag is not None:
            self.tags[seq] = tag
        self.link.write(frame)
        self.frames_sent += 1
        self.seq = (self.seq + 1) & 0xFFFF
        return seq

    def flush(self) -> None:
        """Wait until every frame sent so far is acknowledged."""
        while self.inflight:
            self._pump()

    def request(self, kind: int, payload: bytes, ev: str, tries: int = 60) -> Record:
        """Send a frame whose answer is the record `ev` (carrying the frame's seq)."""
        self.flush()
        seq = self.send(kind, payload)
        frame = self.inflight[-1][1]
        self._want, self._got = (ev, seq), None
        try:
            for _ in range(tries):
                while self.inflight and self._got is None:
                    self._pump()
                if self._got is not None:
                    self.flush()
                    return self._got
                # acked, answer lost: the device replays it for a repeated frame
                self.inflight.append([seq, frame, time.monotonic(), None, 0, False])
                self.link.write(frame)
                self.retransmitted += 1
            raise LinkError(f"{self.link.name}: the answer '{ev}' to frame {seq} kept getting lost")
        finally:
            self._want = None

    def quiesce(self, quiet_s: float) -> None:
        """Read (and handle) whatever the device still says until it has been silent
        for quiet_s: every byte already written has then been consumed."""
        while True:
            rec = self.link.next_record(quiet_s)
            if rec is None:
                return
            if rec.get("ev") == P.R_ACK:
                self._acked(int(rec["seq"]))
            elif rec.get("ev") not in (P.R_NAK, P.R_PONG) and self.on_record is not None:
                self.on_record(rec)

    def _pump(self) -> None:
        """Handle one incoming record (or one timeout)."""
        silent = 0
        while True:
            rec = self.link.next_record(self.rto)
            if rec is not None:
                break
            silent += 1
            if silent > self.max_retries or self.link._eof:
                raise LinkError(f"{self.link.name}: no answer from the board after {silent - 1} resends{self.link._log_tail()}")
            self.rto = min(self.rto * 2, 30.0)  # back off, like TCP
            if self.inflight:
                # The board may sit inside a frame whose length field was damaged, waiting
                # for bytes that will never come: complete it with filler (not sync bytes),
                # it fails its CRC, and the resent frames are read cleanly.
                self.link.write(bytes(self.filler))
                self._resend_from(self.inflight[0][0], force=True)
        ev = rec.get("ev")
        if TRACE:
            print(f"[link] {time.monotonic():.3f} {rec} inflight={[i[0] for i in self.inflight]} rto={self.rto:.2f}", file=sys.stderr)
        if ev == P.R_ACK:
            self._acked(int(rec["seq"]))
            self.credit = max(1, int(rec.get("cr", self.credit)))
        elif ev == P.R_NAK:
            code = int(rec.get("code", 0))
            if code in (P.E_STATE, P.E_PAYLOAD, P.E_CONFIG):
                raise DeviceError(f"device rejected a frame: {P.ERROR_NAMES.get(code, code)}")
            self.naks += 1
            expect = int(rec["seq"])
            self._acked((expect - 1) & 0xFFFF)  # "I expect E" also says "I have all before E"
            if self.inflight and self.inflight[0][0] == expect:
                head = self.inflight[0]
                head[4] += 1
                if head[4] > self.shrink_after and head[5]:
                    raise FramesTooLong(self.acked_tag, expect)
            self._resend_from(expect)
        elif ev == P.R_ERROR:
            raise DeviceError(f"device error: {rec.get('msg', rec)}")
        else:
            if self._want is not None and ev == self._want[0] and rec.get("seq") == self._want[1]:
                self._got = rec
            if self.on_record is not None:
                self.on_record(rec)

    def _acked(self, seq: int) -> None:
        now = time.monotonic()
        progress = False
        while self.inflight and ((seq - self.inflight[0][0]) & 0xFFFF) < 0x8000:
            s, _, t, tag, naks, _ = self.inflight.popleft()
            progress = True
            if tag is not None:
                self.acked_tag = tag
            if s == seq and naks == 0:  # Karn: no round trip from resent frames
                rtt = now - t
                self.srtt = rtt if self.srtt is None else 0.875 * self.srtt + 0.125 * rtt
        if progress and self.srtt is not None:  # the link moves again: drop the back-off
            self.rto = min(30.0, max(0.5, 4 * self.srtt))

    def _resend_from(self, seq: int, force: bool = False) -> None:
        # One damaged frame in a window of k draws k naks: its own and one "gap" nak for
        # each later frame. Resend on the first; the next k-1 naks for the same seq are stale.
        stale_seq, stale_left = self._stale
        if not force and stale_seq == seq and stale_left > 0:
            self._stale = (seq, stale_left - 1)
            return
        now = time.monotonic()
        later = 0
        for item in self.inflight:
            if ((item[0] - seq) & 0xFFFF) < 0x8000:
                self.link.write(item[1])
                self.retransmitted += 1
                item[2] = now
                later += 1
        self._stale = (seq, max(0, later - 1))
