"""One exception tree, caught once in the CLI.

UsageError (exit 2) is for bad input found before anything is sent to a board; the
others (exit 1) are failures while running.
"""

from __future__ import annotations


def one_line(msg: str) -> str:
    """A message as one line however it was built: a user's value with a newline, a tab or
    another control or line-separator character in it (argv may hold any of them) is shown
    escaped, as repr() shows it, so that the error stays exactly one line on a terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in msg)


class BitflipError(Exception):
    """Base class: str(e) is the one line shown to the user."""

    exit_code = 1


class UsageError(BitflipError):
    """Bad input (file, option, model too large for the board): nothing was started."""

    exit_code = 2


class LinkError(BitflipError):
    """The serial link failed (timeout, port vanished, too many retransmissions)."""


class DeviceError(BitflipError):
    """The board reported an error record or crashed."""


class ProtocolMismatch(LinkError):
    """Host and firmware speak different protocol versions."""
