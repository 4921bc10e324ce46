"""Board files (boards/*.json): data about where training runs, never code.

A virtual board ("kind": "virtual") names the real board it imitates with "of" and inherits
every field it does not override, so a sim twin always has its real board's heap budget.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError

KINDS = ("board", "virtual", "host")
ARCHS = ("armv6m", "armv7m", "armv7emsp", "xtensawin", "rv32imc", "x64")
LINK_KINDS = ("usb_cdc", "uart", "pty")


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
    def real(self) -> str:
        """Name of the real board this one is (itself) or imitates."""
        return self.data.get("of", self.name)


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
    need("heap_source", str)
    link = need("link", dict)
    if link.get("kind") not in LINK_KINDS:
        raise UsageError(f"{where}: link.kind must be one of {', '.join(LINK_KINDS)}")
    for key in ("credit", "max_payload", "pace_bytes_per_s"):
        if not isinstance(link.get(key), int) or link[key] < 0:
            raise UsageError(f"{where}: link.{key} must be a non-negative integer")
    if link["credit"] < 1 or not 64 <= link["max_payload"] <= 2048:
        raise UsageError(f"{where}: link.credit >= 1 and 64 <= link.max_payload <= 2048")
    power = need("power", dict)
    for key in ("supply_v", "active_ma", "idle_ma"):
        if not isinstance(power.get(key), (int, float)) or power[key] <= 0:
            raise UsageError(f"{where}: power.{key} must be a positive number")
    if not isinstance(power.get("source"), str) or not power["source"]:
        raise UsageError(f"{where}: power.source must cite where the figure comes from")
    ids = d.get("usb_ids", [])
    if not isinstance(ids, list) or not all(isinstance(i, str) and len(i) == 9 for i in ids):
        raise UsageError(f"{where}: usb_ids must be a list of 'vvvv:pppp' strings")


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
        merged.pop("usb_ids", None)
        d = merged
    validate(d, str(path))
    return Board(d["name"], d["title"], d["kind"], d)


def all_boards() -> list[Board]:
    return [load(p.stem) for p in sorted(boards_dir().glob("*.json"))]
