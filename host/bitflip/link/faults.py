"""Link faults for the virtual board: what a noisy UART, a flaky USB cable or a board reset
does to the byte stream. Hooks plug into VirtualBoard's relay (host -> board and
board -> host); all randomness is seeded so a failing scenario can be replayed."""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .virtual import VirtualBoard

Hook = Callable[[bytes], bytes]


class ByteFaults:
    """Corrupt (flip one bit of), drop or duplicate bytes, each with its own probability
    per byte, and delay chunks. The gap to the next faulty byte is drawn from the geometric
    distribution, so the hook costs per fault, not per byte (it sits on the relay's path)."""

    def __init__(
        self,
        seed: int,
        corrupt: float = 0.0,
        drop: float = 0.0,
        dup: float = 0.0,
        delay: float = 0.0,
        delay_s: float = 0.02,
        after: int = 0,
    ):
        self.rng = random.Random(seed)
        self.corrupt, self.drop, self.dup, self.delay, self.delay_s = corrupt, drop, dup, delay, delay_s
        self.after = after  # leave the first bytes alone (e.g. the raw-REPL launch), 0 = none
        self.seen = 0
        self.counts = {"corrupted": 0, "dropped": 0, "duplicated": 0, "delayed": 0}
        self._q = drop + corrupt + dup
        self._at = after + self._gap() if self._q > 0 else -1  # index of the next faulty byte

    def _gap(self) -> int:
        if self._q >= 1:
            return 0
        return int(math.log(1.0 - self.rng.random()) / math.log(1.0 - self._q))

    def __call__(self, data: bytes) -> bytes:
        base = self.seen
        self.seen += len(data)
        if self._at < 0 or self._at >= self.seen:
            out = data
        else:
            buf = bytearray()
            pos = 0
            rng = self.rng
            while 0 <= self._at < self.seen:
                i = self._at - base
                buf += data[pos:i]
                b = data[i]
                r = rng.random() * self._q
                if r < self.drop:
                    self.counts["dropped"] += 1
                elif r < self.drop + self.corrupt:
                    buf.append(b ^ (1 << rng.randrange(8)))
                    self.counts["corrupted"] += 1
                else:
                    buf += bytes((b, b))
                    self.counts["duplicated"] += 1
                pos = i + 1
                self._at += 1 + self._gap()
            buf += data[pos:]
            out = bytes(buf)
        if self.delay and self.rng.random() < self.delay:
            self.counts["delayed"] += 1
            time.sleep(self.delay_s)
        return out


class Chain:
    def __init__(self, *hooks: Hook):
        self.hooks = hooks  # the VirtualBoard hands itself to hooks that want it (KillSwitch)

    def __call__(self, data: bytes) -> bytes:
        for h in self.hooks:
            data = h(data)
        return data


class KillSwitch:
    """Kills the board process ('pulls the plug') when the host has sent `every` more
    frames of kind `kind`, after a random delay of up to max_delay_s — e.g. in the middle
    of a checkpoint write — or, with max_delay_bytes, once a random number of bytes (below
    it) more has passed: a point in the stream that does not move with the machine's load,
    where a timed kill can land after a short run has ended. `board` is set once the
    VirtualBoard exists."""

    def __init__(
        self,
        seed: int,
        kind: int,
        every: int,
        max_kills: int,
        max_delay_s: float = 0.01,
        distinct: bool = False,
        max_delay_bytes: int = 0,
    ):
        self.rng = random.Random(seed)
        self.kind, self.every, self.left, self.max_delay_s = kind, every, max_kills, max_delay_s
        self.max_delay_bytes = max_delay_bytes
        self._bytes = 0  # bytes seen so far
        self._kill_at: int | None = None  # max_delay_bytes: the byte count that kills
        # distinct: count a frame only if its sequence number is newer than the last one
        # counted (retransmissions are not new frames); numbering restarts after a kill
        self.distinct = distinct
        self._last_seq: int | None = None
        self.board: VirtualBoard | None = None
        self.count = 0
        self.kills = 0
        self._rearm = False  # a kill given back: the next new frame schedules it
        self.events: list[tuple[float, str, int]] = []  # (time, what, frame count): for test messages
        self._tail = b""

    def _kill(self) -> None:
        # a reset board keeps its flash: when it is started again nothing is redeployed
        assert self.board is not None  # scheduled only once the board is set
        self.board.install = False
        self.events.append((time.monotonic(), "kill" if self.board.alive else "dead", self.count))
        if self.board.alive:  # (not one that died already: that is no second reset)
            self.board.kill()
            self.kills += 1
        else:
            # two kills scheduled close together: the second fired while the host was still
            # restarting the board from the first. Give it back and kill at the next new
            # frame of the resumed run, rather than after `every` more, which a loaded
            # machine may not send before the run ends (a flaky kill count)
            self.left += 1
            self._rearm = True
        self._last_seq = None  # the restarted board's frames are numbered from 0 again

    def _new(self, seq: int) -> bool:
        if self._last_seq is not None and not 0 < (seq - self._last_seq) & 0xFFFF < 0x8000:
            return False
        self._last_seq = seq
        return True

    def __call__(self, data: bytes) -> bytes:
        # spot frame headers 'B' 'F' kind in the stream (a header split across reads is
        # caught by keeping the last bytes)
        keep = 6 if self.distinct else 2
        scan = self._tail + data
        i = scan.find(b"BF")
        while i >= 0:
            if self.distinct and i + 6 > len(scan):
                break  # the seq is in the next chunk: look again then
            if i + 2 < len(scan) and scan[i + 2] & 0x7F == self.kind:  # (FEC_FLAG or not)
                if self.distinct and not self._new(scan[i + 4] | scan[i + 5] << 8):
                    i = scan.find(b"BF", i + 1)
                    continue
                self.count += 1
                board = self.board
                # a given-back kill waits for a frame to a restarted board: the host trains again
                if (
                    board is not None
                    and self.left > 0
                    and (self.count % self.every == 0 or (self._rearm and board.alive))
                ):
                    self.left -= 1
                    self._rearm = False
                    if self.max_delay_bytes:
                        self._kill_at = self._bytes + i - len(self._tail) + self.rng.randrange(self.max_delay_bytes)
                        self.events.append((time.monotonic(), f"schedule at byte {self._kill_at}", self.count))
                    else:
                        delay = self.rng.random() * self.max_delay_s
                        self.events.append((time.monotonic(), f"schedule +{delay:.3f}", self.count))
                        threading.Timer(delay, self._kill).start()
            i = scan.find(b"BF", i + 1)
        if self.distinct and i >= 0:
            self._tail = scan[i:]
        else:
            self._tail = scan[-keep:]
        self._bytes += len(data)
        if self._kill_at is not None and self._bytes >= self._kill_at:
            self._kill_at = None
            threading.Timer(0.0, self._kill).start()  # not on the relay thread that feeds the board
        return data


class Cut:
    """Cuts the line in both directions: once the host has sent `at` bytes, nothing passes
    either way for `for_s` seconds (None: for good, a dead cable). The board keeps running,
    as when a USB cable is pulled from a self-powered board. Use `.inbound` as the
    host -> board hook and `.outbound` as the board -> host hook."""

    def __init__(self, at: int, for_s: float | None = None):
        self.at, self.for_s = at, for_s
        self.seen = 0
        self.t_cut: float | None = None
        self.cuts = 0
        self.dropped = 0

    def _down(self) -> bool:
        if self.t_cut is None:
            return False
        return not (self.for_s is not None and time.monotonic() - self.t_cut > self.for_s)

    def inbound(self, data: bytes) -> bytes:
        if self.t_cut is None and self.seen + len(data) >= self.at:
            self.t_cut = time.monotonic()
            self.cuts += 1
            keep = max(0, self.at - self.seen)
            self.seen += len(data)
            self.dropped += len(data) - keep
            return data[:keep]
        self.seen += len(data)
        if self._down():
            self.dropped += len(data)
            return b""
        return data

    def outbound(self, data: bytes) -> bytes:
        if self._down():
            self.dropped += len(data)
            return b""
        return data
