"""Board files (boards/*.json): data about where training runs, never code.

A virtual board ("kind": "virtual") names the real board it imitates with "of" and inherits
every field it does not override, so a sim twin always has its real board's heap budget.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError

KINDS = ("board", "virtual", "host")
ARCHS = ("armv6m", "armv7m", "armv7emsp", "xtensawin", "rv32imc", "x64")
# usb_cdc: native USB, the host's writes block when the board's buffer is full
# (back-pressure); uart: a USB-UART bridge, no flow control, so writes are paced.
LINK_KINDS = ("usb_cdc", "uart", "pty")
# Every measured or quoted figure names where it comes from (see notes/micropython.md).
SOURCE_KINDS = ("datasheet", "report", "source", "measured", "estimate")
FLASH_METHODS = ("uf2", "esptool")
_VERSION_RE = re.compile(r"^\d+\.\d+(\.\d+)?$")
_USB_ID_RE = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{4}$")


def boards_dir() -> Path:
    env = os.environ.get("BITFLIP_BOARDS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "boards"


@dataclass(frozen=True)
class Board:
    name: str
    title: str
    kind: str
    data: dict[str, Any] = field(repr=False)

    @property
    def is_host(self) -> bool:
        return self.kind == "host"

    @property
    def is_virtual(self) -> bool:
        return self.kind == "virtual"

    @property
    def arch(self) -> str:
        return self.data["arch"]

    @property
    def heap_bytes(self) -> int:
        return int(self.data["heap_bytes"])

    @property
    def link(self) -> dict[str, Any]:
        return self.data["link"]

    @property
    def clock_hz(self) -> int:
        return int(self.data["clock_hz"])

    @property
    def power(self) -> dict[str, Any]:
        return self.data["power"]

    @property
    def usb_ids(self) -> list[str]:
        return list(self.data.get("usb_ids", []))

    @property
    def deploy_arch(self) -> str:
        """The mpy-cross arch of the code this board loads: its own arch, or (virtual
        boards) the arch of the unix port they run on."""
        return str(self.data.get("deploy_arch", self.arch))

    @property
    def word_bytes(self) -> int:
        """Machine word of the MicroPython that runs the firmware (object sizes)."""
        return 8 if self.deploy_arch in ("x64",) else 4

    @property
    def min_micropython(self) -> tuple[int, ...]:
        return version_tuple(str(self.data.get("min_micropython", "1.23")))

    @property
    def flash(self) -> dict[str, Any]:
        return dict(self.data.get("flash", {}))

    @property
    def real(self) -> str:
        """Name of the real board this one is (itself) or imitates."""
        return self.data.get("of", self.name)


def version_tuple(text: str) -> tuple[int, ...]:
    """'1.26' -> (1, 26, 0)."""
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def _cited(value: Any) -> bool:
    """A source string starts with its kind: 'report: ...', 'datasheet: ...', ..."""
    return isinstance(value, str) and value.split(":", 1)[0].strip() in SOURCE_KINDS and ":" in value


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UsageError(f"board file {path}: {e}") from None


def validate(d: dict[str, Any], where: str) -> None:
    """Schema check of a merged board record; raises UsageError naming the problem."""

    def need(key: str, typ: type | tuple[type, ...]) -> Any:
        if key not in d:
            raise UsageError(f"{where}: missing '{key}'")
        if not isinstance(d[key], typ):
            raise UsageError(f"{where}: '{key}' has the wrong type")
        return d[key]

    need("name", str)
    need("title", str)
    kind = need("kind", str)
    if kind not in KINDS:
        raise UsageError(f"{where}: kind must be one of {', '.join(KINDS)}")
    if kind == "host":
        return
    if need("arch", str) not in ARCHS:
        raise UsageError(f"{where}: unknown arch {d['arch']!r}")
    need("chip", str)
    need("kernel", str)
    for key in ("heap_bytes", "clock_hz", "cores"):
        if need(key, int) <= 0:
            raise UsageError(f"{where}: '{key}' must be positive")
    if not _cited(need("heap_source", str)):
        raise UsageError(f"{where}: heap_source must start with one of {', '.join(SOURCE_KINDS)} and ':'")
    if "clock_source" in d and not _cited(d["clock_source"]):
        raise UsageError(f"{where}: clock_source must start with one of {', '.join(SOURCE_KINDS)} and ':'")
    for key in ("arch_note", "notes", "machine_suffix"):
        if key in d and not isinstance(d[key], str):
            raise UsageError(f"{where}: '{key}' must be a string")
    if "deploy_arch" in d and d["deploy_arch"] not in ARCHS:
        raise UsageError(f"{where}: unknown deploy_arch {d['deploy_arch']!r}")
    if "min_micropython" in d and not (
        isinstance(d["min_micropython"], str) and _VERSION_RE.match(d["min_micropython"])
    ):
        raise UsageError(f"{where}: min_micropython must be a version like '1.26'")
    link = need("link", dict)
    if link.get("kind") not in LINK_KINDS:
        raise UsageError(f"{where}: link.kind must be one of {', '.join(LINK_KINDS)}")
    for key in ("credit", "max_payload", "pace_bytes_per_s"):
        if not isinstance(link.get(key), int) or link[key] < 0:
            raise UsageError(f"{where}: link.{key} must be a non-negative integer")
    if link["credit"] < 1 or not 64 <= link["max_payload"] <= 2048:
        raise UsageError(f"{where}: link.credit >= 1 and 64 <= link.max_payload <= 2048")
    if link["kind"] == "uart" and link["pace_bytes_per_s"] <= 0:
        raise UsageError(f"{where}: a uart link has no flow control: give link.pace_bytes_per_s > 0")
    if kind == "board" and link["kind"] == "pty":
        raise UsageError(f"{where}: a real board cannot have a pty link")
    if kind == "virtual" and link["kind"] != "pty":
        raise UsageError(f"{where}: a virtual board's link is a pty")
    power = need("power", dict)
    for key in ("supply_v", "active_ma", "idle_ma"):
        if not isinstance(power.get(key), (int, float)) or power[key] <= 0:
            raise UsageError(f"{where}: power.{key} must be a positive number")
    if not _cited(power.get("source")):
        raise UsageError(
            f"{where}: power.source must cite where the figure comes from ({', '.join(SOURCE_KINDS)}: ...)"
        )
    ids = d.get("usb_ids", [])
    if not isinstance(ids, list) or not all(isinstance(i, str) and _USB_ID_RE.match(i) for i in ids):
        raise UsageError(f"{where}: usb_ids must be a list of lower-case 'vvvv:pppp' strings")
    if "flash" in d:
        _validate_flash(d["flash"], where)


def _validate_flash(fl: Any, where: str) -> None:
    """How a MicroPython firmware gets onto the board (bitflip flash)."""
    if not isinstance(fl, dict) or fl.get("method") not in FLASH_METHODS:
        raise UsageError(f"{where}: flash.method must be one of {', '.join(FLASH_METHODS)}")
    if not isinstance(fl.get("download"), str) or not fl["download"].startswith("https://"):
        raise UsageError(f"{where}: flash.download must be the https page of the firmware")
    if fl["method"] == "uf2":
        fams = fl.get("uf2_families")
        if not isinstance(fams, list) or not fams or not all(isinstance(f, str) and _hex(f) for f in fams):
            raise UsageError(f"{where}: flash.uf2_families must be a list of hex strings like '0xe48bff56'")
        if not isinstance(fl.get("boot_drive_id"), str):
            raise UsageError(f"{where}: flash.boot_drive_id must name the Board-ID of INFO_UF2.TXT")
    else:
        if not isinstance(fl.get("chip"), str):
            raise UsageError(f"{where}: flash.chip must be the esptool chip name")
        if not isinstance(fl.get("offset"), str) or not _hex(fl["offset"]):
            raise UsageError(f"{where}: flash.offset must be a hex string like '0x1000'")
        if not isinstance(fl.get("baud"), int) or fl["baud"] <= 0:
            raise UsageError(f"{where}: flash.baud must be a positive integer")


def _hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return text.startswith("0x")


def load(name: str) -> Board:
    """The board called name, merged with the board it imitates, validated."""
    path = boards_dir() / f"{name}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in boards_dir().glob("*.json")))
        raise UsageError(f"unknown board '{name}' (known: {known})")
    d = _read(path)
    if "of" in d:
        parent = _read(boards_dir() / f"{d['of']}.json")
        merged = {**parent, **{k: v for k, v in d.items()}}
        for key in ("usb_ids", "flash", "machine_suffix"):  # a sim has no USB, no flash, no chip
            merged.pop(key, None)
        d = merged
    validate(d, str(path))
    return Board(d["name"], d["title"], d["kind"], d)


def all_boards() -> list[Board]:
    return [load(p.stem) for p in sorted(boards_dir().glob("*.json"))]
