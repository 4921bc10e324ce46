"""How the host reaches a board for a training job: a serial port (a real board, or a
`bitflip sim` already running), or a virtual board this process starts and restarts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..errors import LinkError
from .serial import SerialLink


class Target:
    """How to reach a board: open() gives a fresh SerialLink; reopen() after a failure."""

    fresh = True  # the board was just (re)started: no app can be running

    def open(self) -> SerialLink:
        raise NotImplementedError

    def reopen(self) -> SerialLink:
        raise NotImplementedError

    def close(self) -> None:
        pass


class SerialTarget(Target):
    def __init__(self, port: str, pace: int, wait_s: float = 20.0):
        self.port, self.pace, self.wait_s = port, pace, wait_s
        self.link: SerialLink | None = None
        self.fresh = False  # a real board may still run an app from an earlier session

    def open(self) -> SerialLink:
        self.link = SerialLink(self.port, pace_bytes_per_s=self.pace)
        return self.link

    def reopen(self) -> SerialLink:
        if self.link is not None:
            self.link.close()
        deadline = time.monotonic() + self.wait_s  # a USB board re-enumerates after a reset
        while True:
            try:
                return self.open()
            except LinkError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def close(self) -> None:
        if self.link is not None:
            self.link.close()


class VirtualTarget(Target):
    def __init__(self, board: Any, flash: Path, fault_in: Any = None, fault_out: Any = None):
        from .virtual import VirtualBoard

        self.vb = VirtualBoard(board, flash, fault=fault_in, fault_out=fault_out)
        self.link: SerialLink | None = None

    def open(self) -> SerialLink:
        self.vb.start()
        self.fresh = True
        return self._link()

    def _link(self) -> SerialLink:
        self.link = SerialLink(self.vb.port, name=f"virtual {self.vb.board.name}")
        self.link.dead_check = lambda: not self.vb.alive
        self.vb.on_exit = self.link.gone
        return self.link

    def reopen(self) -> SerialLink:
        if self.link is not None:
            self.link.close()
        if self.vb.alive:  # link trouble only: the app may still be running
            self.vb.reconnect()
            self.fresh = False
        else:  # the board "reset": start it again on the same flash
            self.vb.stop()
            self.vb.start()
            self.fresh = True
        return self._link()

    def close(self) -> None:
        if self.link is not None:
            self.link.close()
        self.vb.stop()
