"""Serial ports and the boards they look like (`bitflip ports`, `--port auto`).

A port is matched to boards by its USB VID:PID against the usb_ids of the board files.
Ids are not unique: every rp2 MicroPython build (Pico and Pico 2) enumerates as 2e8a:0005,
the Espressif USB-Serial/JTAG port 303a:1001 is on both the ESP32-S3 and the ESP32-C3, and
a CP210x/CH340 bridge can sit in front of any board. So a match is "looks like", and a
choice between several candidates is left to the user with one clear message.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..boards import Board, all_boards
from ..errors import UsageError

# What the shared ids mean, for the listing.
SHARED_NOTES = {
    "2e8a:0005": "MicroPython on any RP2040/RP2350 board",
    "303a:1001": "Espressif USB-Serial/JTAG: ESP32-S3 or ESP32-C3",
    "303a:4001": "MicroPython TinyUSB CDC on an Espressif chip",
    "10c4:ea60": "CP210x USB-UART bridge: any board behind it",
    "1a86:7523": "CH340 USB-UART bridge: any board behind it",
    "1a86:55d4": "CH9102 USB-UART bridge: any board behind it",
    "0403:6001": "FTDI USB-UART bridge: any board behind it",
}


@dataclass(frozen=True)
class PortInfo:
    device: str
    usb_id: str  # 'vvvv:pppp', '' for a port without USB ids (pty, built-in UART)
    description: str = ""
    serial_number: str = ""
    manufacturer: str = ""

    @classmethod
    def from_record(cls, rec: Any) -> PortInfo:
        """From a serial.tools.list_ports record (or any object with the same fields)."""
        vid, pid = getattr(rec, "vid", None), getattr(rec, "pid", None)
        usb_id = f"{vid:04x}:{pid:04x}" if vid is not None and pid is not None else ""
        desc = getattr(rec, "description", "") or ""
        return cls(
            device=str(rec.device),
            usb_id=usb_id,
            description="" if desc == "n/a" else str(desc),
            serial_number=str(getattr(rec, "serial_number", "") or ""),
            manufacturer=str(getattr(rec, "manufacturer", "") or ""),
        )


def list_ports(records: Iterable[Any] | None = None) -> list[PortInfo]:
    """Serial ports of this machine (or the given fake records), sorted by device."""
    if records is None:
        from serial.tools import list_ports as lp

        records = lp.comports()
    return sorted((PortInfo.from_record(r) for r in records), key=lambda p: p.device)


def real_boards() -> list[Board]:
    return [b for b in all_boards() if b.kind == "board"]


def looks_like(port: PortInfo, boards: list[Board] | None = None) -> list[str]:
    """Names of the real boards whose usb_ids contain this port's id."""
    if not port.usb_id:
        return []
    return [b.name for b in (boards if boards is not None else real_boards()) if port.usb_id in b.usb_ids]


def describe(port: PortInfo, boards: list[Board] | None = None) -> str:
    """One line for the listing: device, id, candidates, and why they are ambiguous."""
    names = looks_like(port, boards)
    if not port.usb_id:
        guess = "no USB id (not a USB board)"
    elif not names:
        guess = "unknown device"
    elif len(names) == 1:
        guess = f"looks like {names[0]}"
    else:
        guess = f"looks like {' or '.join(names)} (same USB id: pass the right --board)"
    note = SHARED_NOTES.get(port.usb_id, "")
    extra = f" [{note}]" if note else ""
    desc = f" {port.description}" if port.description else ""
    return f"{port.device:<16} {port.usb_id or '-':<9}  {guess}{extra}{desc}"


def resolve_port(spec: str | None, board: Board | None, records: Iterable[Any] | None = None) -> str:
    """The port to use for `--port spec` with `--board board`.

    'auto' (or nothing) picks the single connected port that looks like the board (any
    real board when board is None). Zero or several candidates raise UsageError naming
    what to do. A path or pyserial URL is returned as given (a missing /dev path is an
    error, before anything is opened)."""
    if board is not None and board.is_virtual and (not spec or spec == "auto"):
        raise UsageError(
            f"board '{board.name}' is virtual: start it with `bitflip sim --board {board.name}` and pass its --port"
        )
    if spec and spec != "auto":
        if spec.startswith("/dev/") and not os.path.exists(spec):
            raise UsageError(f"port {spec} does not exist (see `bitflip ports`)")
        if "://" not in spec:  # a pyserial URL (socket://, rfc2217://, loop://) is not a file
            check_serial_device(spec)
        return spec
    ports = list_ports(records)
    boards = [board] if board is not None else real_boards()
    cands = [p for p in ports if looks_like(p, boards)]
    what = f"a {board.name}" if board is not None else "a known board"
    if len(cands) == 1:
        return cands[0].device
    if not cands:
        ids = ", ".join(board.usb_ids) if board is not None else "see boards/*.json"
        seen = "; ".join(f"{p.device} ({p.usb_id or 'no USB id'})" for p in ports) or "no serial ports at all"
        raise UsageError(f"--port auto: no serial port looks like {what} (USB ids {ids}); found: {seen}")
    listing = "; ".join(f"{p.device} ({p.usb_id}, {' or '.join(looks_like(p, boards))})" for p in cands)
    raise UsageError(f"--port auto: {len(cands)} ports look like {what}: {listing}; choose one with --port PATH")


def check_serial_device(path: str) -> None:
    """A --port path must be a terminal device (a serial port or a pty): UsageError for a
    regular file, a directory or a device such as /dev/null. Linux answers from sysfs
    without opening the port; elsewhere the device is opened without waiting and closed."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise UsageError(f"--port {path}: {e.strerror or e} (see `bitflip ports`)") from None
    if not stat.S_ISCHR(st.st_mode):
        what = "a directory" if stat.S_ISDIR(st.st_mode) else "a file"
        raise UsageError(f"--port {path} is {what}, not a serial port (see `bitflip ports`)")
    major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    subsystem = f"/sys/dev/char/{major}:{minor}/subsystem"
    if sys.platform.startswith("linux") and os.path.exists(subsystem):
        tty = os.path.basename(os.path.realpath(subsystem)) == "tty"
    else:  # ptys have no sysfs entry; other systems have no sysfs
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as e:
            raise UsageError(f"--port {path}: cannot open it ({e.strerror or e})") from None
        try:
            tty = os.isatty(fd)
        finally:
            os.close(fd)
    if not tty:
        raise UsageError(
            f"--port {path} is not a serial port (a {major}:{minor} device that is not a terminal; see `bitflip ports`)"
        )
