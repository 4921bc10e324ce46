"""The serial link to a board: one implementation for USB boards, UART boards and the
virtual board (a pty).

- a reader thread drains the port all the time, so device output never blocks the device;
- raw-REPL launch of the app (Ctrl-C, Ctrl-A, code, Ctrl-D), every wait with a timeout;
- record lines 'BF {json}' are parsed into dicts; other lines are kept as the device log;
- frames go out through `FrameSender`: sequence numbers, credit window, retransmission on
  nak or on ack timeout, paced writes for UART bridges.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Callable, Iterable

import serial

from .device import protocol as P
from .errors import DeviceError, LinkError

Record = dict[str, Any]


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
        self._thread = threading.Thread(target=self._reader, daemon=True)
        self._thread.start()

    # --- reading ---------------------------------------------------------------------
    def _reader(self) -> None:
        while not self._closed:
            try:
                data = self.ser.read(4096)
            except (serial.SerialException, OSError, TypeError):
                with self._cond:
                    self._eof = True
                    self._cond.notify_all()
                return
            if data:
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
                if left <= 0 or self._eof:
                    return None
                self._cond.wait(min(left, 0.5))
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
        from then on, device lines are parsed as records."""
        self.write(b"\r\x03\x03")
        time.sleep(0.1)
        mark = len(self._rx)
        self.write(b"\x01")
        end = self.wait_for(b"raw REPL; CTRL-B to exit\r\n>", timeout, mark)
        with self._cond:
            self._line_start = len(self._rx)
            self._parse_lines = False
        self.write(code.encode() + b"\x04")
        ok = self.wait_for(b"OK", timeout, end)
        with self._cond:
            self._line_start = ok
            self._parse_lines = True
            self._split_lines()

    def start_records(self) -> None:
        """Parse device output as records from now on (an app may already be running)."""
        with self._cond:
            self._line_start = len(self._rx)
            self._parse_lines = True

    def close(self) -> None:
        self._closed = True
        try:
            self.ser.close()
        except (serial.SerialException, OSError):
            pass
        self._thread.join(timeout=1)


class FrameSender:
    """Sends frames with sequence numbers inside the device's credit window.

    The device acks every frame after processing it (acks are cumulative: it processes in
    order); a nak names the sequence number it expects and everything from there is
    resent; an ack that does not come within the retransmission timeout (adaptive, from
    measured round trips) resends the oldest unacknowledged frame. A frame whose answer is
    a record (config, marks, checkpoints, done) goes through request(): if its ack arrives
    but the record was lost on the wire, the same frame is resent and the device replays
    the record. After max_retries silent timeouts in a row the link is declared dead.
    """

    def __init__(
        self,
        link: SerialLink,
        credit: int,
        on_record: Callable[[Record], None] | None = None,
        max_retries: int = 6,
        rto: float = 5.0,
    ):
        self.link = link
        self.credit = max(1, credit)
        self.on_record = on_record
        self.max_retries = max_retries
        self.seq = 0
        self.inflight: deque[tuple[int, bytes, float]] = deque()
        self.retransmitted = 0
        self.frames_sent = 0
        self.naks = 0
        self.rto = rto  # retransmission timeout, adapted to measured round trips
        self.srtt: float | None = None
        self._want: tuple[str, int] | None = None
        self._got: Record | None = None

    def rebind(self, link: SerialLink, credit: int, seq: int) -> None:
        """Continue on a new link (after a reconnect); unacknowledged frames are dropped:
        the caller restarts from the device's checkpoint."""
        self.link = link
        self.credit = max(1, credit)
        self.seq = seq & 0xFFFF
        self.inflight.clear()

    def send(self, kind: int, payload: bytes = b"") -> int:
        """Send one frame; blocks while the window is full. Returns its seq."""
        while len(self.inflight) >= self.credit:
            self._pump()
        seq = self.seq
        frame = P.encode_frame(kind, seq, payload)
        self.inflight.append((seq, frame, time.monotonic()))
        self.link.write(frame)
        self.frames_sent += 1
        self.seq = (self.seq + 1) & 0xFFFF
        return seq

    def flush(self) -> None:
        """Wait until every frame sent so far is acknowledged."""
        while self.inflight:
            self._pump()

    def request(self, kind: int, payload: bytes, ev: str, tries: int = 6) -> Record:
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
                self.inflight.append((seq, frame, time.monotonic()))
                self.link.write(frame)
                self.retransmitted += 1
            raise LinkError(f"{self.link.name}: the answer '{ev}' to frame {seq} kept getting lost")
        finally:
            self._want = None

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
                self._resend_from(self.inflight[0][0])
        ev = rec.get("ev")
        if ev == P.R_ACK:
            self._acked(int(rec["seq"]))
            self.credit = max(1, int(rec.get("cr", self.credit)))
        elif ev == P.R_NAK:
            code = int(rec.get("code", 0))
            if code in (P.E_STATE, P.E_PAYLOAD, P.E_CONFIG):
                raise DeviceError(f"device rejected a frame: {P.ERROR_NAMES.get(code, code)}")
            self.naks += 1
            self._resend_from(int(rec["seq"]))
        elif ev == P.R_ERROR:
            raise DeviceError(f"device error: {rec.get('msg', rec)}")
        else:
            if self._want is not None and ev == self._want[0] and rec.get("seq") == self._want[1]:
                self._got = rec
            if self.on_record is not None:
                self.on_record(rec)

    def _acked(self, seq: int) -> None:
        now = time.monotonic()
        while self.inflight and ((seq - self.inflight[0][0]) & 0xFFFF) < 0x8000:
            s, _, t = self.inflight.popleft()
            if s == seq:
                rtt = now - t
                self.srtt = rtt if self.srtt is None else 0.875 * self.srtt + 0.125 * rtt
                self.rto = min(30.0, max(0.3, 4 * self.srtt))

    def _resend_from(self, seq: int) -> None:
        now = time.monotonic()
        again: deque[tuple[int, bytes, float]] = deque()
        for s, frame, _ in self.inflight:
            if ((s - seq) & 0xFFFF) < 0x8000:
                self.link.write(frame)
                self.retransmitted += 1
            again.append((s, frame, now))
        self.inflight = again
