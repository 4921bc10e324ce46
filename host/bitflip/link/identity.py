"""What a board says it is (sys.platform + machine, sys.implementation._mpy), checked against
the board file named on the command line before anything is sent to it."""

from __future__ import annotations

from ..armv6m.mpy import ARCHS
from ..boards import Board

# Native arch numbers of the .mpy header and sys.implementation._mpy (py/persistentcode.h)
MPY_ARCHS = {0: "none", **ARCHS}  # sys.implementation._mpy bits 10-13; 0: no native code
ARCH_NUM = {v: k for k, v in MPY_ARCHS.items()}
THUMB = range(ARCH_NUM["armv6m"], ARCH_NUM["armv7emdp"] + 1)


def native_arch(mpy: int) -> str:
    return MPY_ARCHS.get((int(mpy) >> 10) & 0xF, "unknown")


def loads(build_arch: str, mpy: int) -> bool:
    """Does a port with this _mpy run native code built for build_arch? (Thumb code runs on
    any Thumb core at least as capable.)"""
    want, dev = ARCH_NUM[build_arch], (int(mpy) >> 10) & 0xF
    return (want in THUMB and dev in THUMB and want <= dev) or want == dev


def describe(platform: str, mpy: int) -> str:
    return f"{platform.strip() or 'an unknown port'} ({native_arch(mpy)} native code)"


def mismatch(platform: str, mpy: int, board: Board) -> str | None:
    """None when the board that answered can be --board `board`; else why not, in words."""
    arch = board.deploy_arch
    if not loads(arch, mpy):
        return f"it runs {native_arch(mpy)} native code, --board {board.name} is built for {arch}"
    suffix = board.data.get("machine_suffix")
    if suffix and not board.is_virtual and not platform.endswith(suffix):
        return f"it is not a {board.title} (expected a machine '... {suffix}')"
    return None
