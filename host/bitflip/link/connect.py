"""Reaching the app on a board: ping it (is it listening, with which settings), start it
through the raw REPL when it is not, and turn what a wrong port, a board without bitflip
or another board says into one clear error. A training job (training/device.py) connects
through a Connector after every link loss."""

from __future__ import annotations

import time
from typing import Any

from ..boards import Board
from ..device import protocol as P
from ..errors import LinkError, ProtocolMismatch, UsageError
from . import frames, identity
from .serial import SerialLink
from .targets import SerialTarget, Target


class Connector:
    """Connects to the bitflip app of one board behind one target."""

    # a port where nothing at all has answered this long after it was opened holds no board
    # running MicroPython (a bare UART, the wrong port): a UsageError, nothing was started
    first_contact_s = 12.0

    def __init__(self, target: Target, board: Board):
        self.target, self.board = target, board
        self._boot_s: float | None = None  # launch to first pong, measured once
        self._opened: float | None = None  # when a real port was opened (None: a virtual board)

    def opened(self) -> None:
        """The target was just opened: a real port starts the first-contact clock."""
        if isinstance(self.target, SerialTarget):
            self._opened = time.monotonic()

    def probe(
        self,
        link: SerialLink,
        damaged: int,
        tries: int = 3,
        filler: bool = False,
        budget: float = 1.5,
        srtt: float = 0.0,
    ) -> dict[str, Any] | None:
        """Is an app listening? Its pong (expected seq, protocol, link settings), or None.
        Pings go out every 20 ms at first, less often later (every 4 round trips at most
        250 ms), for `budget` seconds and at least `tries` pings; while the app shows signs
        of life (other records) the budget grows: on a noisy line only its pongs may have
        been damaged. filler: from the third ping on, complete a frame the board may be
        stuck in (every third ping). damaged: records seen damaged on this run (the board is
        then asked to repeat its records); srtt: the round trip measured so far (0: none)."""
        link.start_records()
        repeat = 3 if damaged else 1
        t0 = time.monotonic()
        sent = 0
        gap = 0.02
        while sent < tries or time.monotonic() - t0 < budget:
            if filler and sent >= 2 and sent % 3 == 2:
                link.write(bytes(P.HEADER_SIZE + int(self.board.link["max_payload"]) + P.CRC_SIZE))
            link.write(frames.encode_frame(P.K_PING, 0, bytes((repeat,))))
            sent += 1
            deadline = time.monotonic() + max(gap, 4 * srtt)
            gap = min(0.25, gap * 1.5)
            while True:
                rec = link.next_record(max(0.0, deadline - time.monotonic()))
                if rec is None:
                    break
                if rec.get(P.F_EV) == P.R_PONG:
                    return rec
                if rec.get(P.F_EV) in (P.R_BOOT, P.R_READY, P.R_ACK, P.R_NAK) and budget < 10:
                    budget += 0.25
            if link.eof:
                return None
            self.silent_port(link)
        return None

    def silent_port(self, link: SerialLink) -> None:
        """Give up on a real port where nothing has said a single byte since it was opened."""
        if self._opened is None or link.last_rx or time.monotonic() - self._opened < self.first_contact_s:
            return
        port = getattr(self.target, "port", link.name)
        raise UsageError(
            f"--port {port}: nothing answered within {self.first_contact_s:.0f} s; no board running "
            "MicroPython on this port? (`bitflip ports` lists the ports, `bitflip deploy` installs bitflip)"
        )

    def check(self, pong: dict[str, Any], link_name: str) -> None:
        """The board that answered is the one named, and speaks this protocol."""
        board = self.board
        platform, mpy = str(pong.get(P.F_PLATFORM, "")), int(pong.get(P.F_MPY, 0))
        why = identity.mismatch(platform, mpy, board)
        if why is not None:
            raise UsageError(
                f"the board on {link_name} is {identity.describe(platform, mpy)}: {why}; "
                f"pass the --board it is (`bitflip boards` lists them)"
            )
        if int(pong.get(P.F_PROTO, -1)) != P.VERSION:
            raise ProtocolMismatch(
                f"the board's firmware speaks protocol {pong.get(P.F_PROTO)} but this host speaks "
                f"{P.VERSION}: run `bitflip deploy` to update the board"
            )

    def not_deployed(self, link: SerialLink) -> None:
        """A board without bitflip says so at once: that is permanent, not a link problem.
        (Only the exact message counts: a launch line damaged by noise can name a module
        that does not exist.)"""
        if any("ImportError" in line and ("'bitflip'" in line or "'bitflip.app'" in line) for line in list(link.log)):
            board = self.board
            port = getattr(self.target, "port", "PORT")
            raise UsageError(
                f"bitflip is not installed on the board on {link.name}: run "
                f"`bitflip deploy --board {board.name} --port {port}` first"
            )

    def launch(self, link: SerialLink, damaged: int) -> int:
        """Start the app through the raw REPL. Whether it runs, and with the settings asked
        for, is read from its (checksummed) pong: on a noisy line the banner or the launch
        command itself can arrive damaged (it is sent five times: the raw REPL runs the
        next copy when one fails)."""
        lk = self.board.link
        code = f"import bitflip.app as A\nA.main({lk['max_payload']}, {lk['credit']})"
        for attempt in range(6):
            fresh = self.target.fresh and attempt == 0
            t0 = time.monotonic()
            link.launch(code, timeout=0.5 if self.target.fresh else 3, fresh=fresh, copies=5)
            # how long the app takes to answer was measured at the first launch: a launch
            # damaged beyond repair is given up after a few times that, not seconds
            budget = 3.0 if self._boot_s is None else max(0.4, 4 * self._boot_s)
            pong = self.probe(link, damaged, tries=4, budget=budget if fresh else max(budget, 1.0))
            if pong is not None:
                self.check(pong, link.name)
                if (int(pong[P.F_MAX_PAYLOAD]), int(pong[P.F_CREDIT])) == (lk["max_payload"], lk["credit"]):
                    if self._boot_s is None:
                        self._boot_s = time.monotonic() - t0
                    return int(pong[P.F_EXPECT])
                link.write(frames.encode_frame(P.K_EXIT, 0))  # started with damaged settings: leave
            self.not_deployed(link)
            self.silent_port(link)
            if link.eof:
                break
            time.sleep(0.05)
        raise LinkError(f"{link.name}: the app did not start{link.log_tail()}")
