"""Link faults for the virtual board: what a noisy UART, a flaky USB cable or a board reset
does to the byte stream. Hooks plug into VirtualBoard's relay (host -> board and
board -> host); all randomness is seeded so a failing scenario can be replayed."""

from __future__ import annotations

import random
import threading
import time
from typing import Callable

Hook = Callable[[bytes], bytes]


class ByteFaults:
    """Corrupt, drop, duplicate or delay bytes, each with its own probability per byte."""

    def __init__(self, seed: int, corrupt: float = 0.0, drop: float = 0.0, dup: float = 0.0,
                 delay: float = 0.0, delay_s: float = 0.02, after: int = 0):
        self.rng = random.Random(seed)
        self.corrupt, self.drop, self.dup, self.delay, self.delay_s = corrupt, drop, dup, delay, delay_s
        self.after = after  # leave the first bytes alone (e.g. the raw-REPL launch), 0 = none
        self.seen = 0
        self.counts = {"corrupted": 0, "dropped": 0, "duplicated": 0, "delayed": 0}

    def __call__(self, data: bytes) -> bytes:
        out = bytearray()
        rng = self.rng
        for b in data:
            self.seen += 1
            if self.seen <= self.after:
                out.append(b)
                continue
            r = rng.random()
            if r < self.drop:
                self.counts["dropped"] += 1
                continue
            r -= self.drop
            if r < self.corrupt:
                b ^= 1 << rng.randrange(8)
                self.counts["corrupted"] += 1
            elif r - self.corrupt < self.dup:
                out.append(b)
                self.counts["duplicated"] += 1
            out.append(b)
        if self.delay and rng.random() < self.delay:
            self.counts["delayed"] += 1
            time.sleep(self.delay_s)
        return bytes(out)


class Chain:
    def __init__(self, *hooks: Hook):
        self.hooks = hooks

    def __call__(self, data: bytes) -> bytes:
        for h in self.hooks:
            data = h(data)
        return data


class KillSwitch:
    """Kills the board process ('pulls the plug') when the host has sent `every` more
    frames of kind `kind`, after a random delay of up to max_delay_s — e.g. in the middle
    of a checkpoint write. `board` is set once the VirtualBoard exists."""

    def __init__(self, seed: int, kind: int, every: int, max_kills: int, max_delay_s: float = 0.01):
        self.rng = random.Random(seed)
        self.kind, self.every, self.left, self.max_delay_s = kind, every, max_kills, max_delay_s
        self.board = None
        self.count = 0
        self.kills = 0
        self._tail = b""

    def __call__(self, data: bytes) -> bytes:
        # spot frame headers 'B' 'F' kind in the stream (a header split across reads is
        # caught by keeping the last two bytes)
        scan = self._tail + data
        i = scan.find(b"BF")
        while i >= 0:
            if i + 2 < len(scan) and scan[i + 2] == self.kind:
                self.count += 1
                if self.count % self.every == 0 and self.left > 0 and self.board is not None:
                    self.left -= 1
                    self.kills += 1
                    delay = self.rng.random() * self.max_delay_s
                    threading.Timer(delay, self.board.kill).start()
            i = scan.find(b"BF", i + 1)
        self._tail = scan[-2:]
        return data
