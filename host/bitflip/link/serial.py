"""The serial link to a board: one transport for USB boards, UART boards and the virtual
board (a pty).

- a reader thread drains the port all the time, so device output never blocks the device;
- raw-REPL launch of the app (Ctrl-C, Ctrl-A, code, Ctrl-D), every wait with a timeout;
- record lines 'BF {json}' are parsed into dicts; other lines are kept as the device log;
- paced writes for UART bridges.
Frames go out through arq.FrameSender (sequence numbers, windows, retransmission).
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import serial

from ..device import protocol as P
from ..errors import DeviceError, LinkError

Record = dict[str, Any]
# a nak that comes again is news (another damaged frame); an ack again is not
_NAK = P.NAK_TEMPLATE[:2]  # nak lines are never deduplicated
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
        self.good_records = 0
        self.voted_records = 0  # records rebuilt from three damaged copies
        self.repeats_seen = 0  # repeated copies skipped (the board repeats its records)
        self._last_line = b""
        self._damaged: deque[bytes] = deque(maxlen=3)
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
            if line == self._last_line and not line.startswith(_NAK):
                self.repeats_seen += 1
                continue  # a repeated copy of the record just taken (protocol.REPEAT)
            rec = P.parse_record(line)
            if rec:
                self._last_line = line
                self._damaged.clear()
                self.records.append(rec)
                self.good_records += 1
                continue
            # damaged copies of a repeated record: the bitwise majority of three may be intact
            self._damaged.append(line)
            if len(self._damaged) >= 3 and len({len(x) for x in list(self._damaged)[-3:]}) == 1:
                a, b, c = (int.from_bytes(x, "little") for x in list(self._damaged)[-3:])
                voted = ((a & b) | (a & c) | (b & c)).to_bytes(len(line), "little")
                vrec = P.parse_record(voted)
                if vrec:
                    self._last_line = voted
                    self._damaged.clear()
                    self.records.append(vrec)
                    self.voted_records += 1
                    continue
            if rec is False:
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
                self._cond.wait(min(left, 0.02))  # (dead_check: a killed board is noticed soon)
            return self.records.popleft()

    def expect(self, ev: str, timeout: float, on_record: Callable[[Record], None] | None = None) -> Record:
        """Wait for a record named ev; error records raise DeviceError, others go to
        on_record. A silent device raises LinkError after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            rec = self.next_record(max(left, 0))
            if rec is None:
                raise LinkError(f"{self.name}: no '{ev}' record within {timeout:g} s{self.log_tail()}")
            if rec.get("ev") == ev:
                return rec
            if rec.get("ev") == P.R_ERROR:
                raise DeviceError(f"device error: {rec.get('msg', rec)}")
            if on_record is not None:
                on_record(rec)

    def log_tail(self) -> str:
        with self._cond:
            self._split_tail()
            tail = [line for line in self.log if line.strip()][-3:]
        return (": device said " + " | ".join(tail)) if tail else ""

    def _split_tail(self) -> None:
        rest = bytes(self._rx[self._line_start :]).decode("utf-8", "replace").strip()
        if rest:
            self.log.append(rest)
            self._line_start = len(self._rx)

    def gone(self) -> None:
        """The board vanished (told by whoever knows, e.g. the virtual board's relay)."""
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    @property
    def eof(self) -> bool:
        """The port went away (the board vanished, the virtual board's process exited)."""
        return self._eof

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
    def launch(self, code: str, timeout: float = 10.0, fresh: bool = False, copies: int = 1) -> None:
        """Run code on the board through the raw REPL without waiting for it to finish;
        from then on, device lines are parsed as records. On a noisy line the banner may
        arrive damaged: the caller's wait for the app's (checksummed) answer decides
        whether the launch worked. fresh: the board has just started and sits in its
        REPL: nothing to interrupt, no banner to wait for (the REPL reads its input in
        order). copies: the code is sent that many times, each ended by Ctrl-D: when the
        line damaged one copy (a syntax error), the raw REPL runs the next; once the app
        runs it reads the rest as noise between frames."""
        body = (code.encode() + b"\x04") * max(1, copies)
        if fresh:
            self.start_records()
            self.write(b"\x01\x01" + body)  # (a second Ctrl-A only resets the raw REPL)
            return
        # Ctrl-C twice stops whatever runs; Ctrl-B leaves a raw REPL the last job ran in, so
        # that its input buffer (grown by probes of a board with no app) is freed and the
        # new job starts on the same free heap as the last one
        self.write(b"\r\x03\x03\x02")
        time.sleep(0.05)
        mark = len(self._rx)
        self.write(b"\x01")
        try:
            self.wait_for(b"raw REPL", timeout, mark)
        except LinkError:
            if self._eof:
                raise
        self.start_records()
        self.write(body)

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
