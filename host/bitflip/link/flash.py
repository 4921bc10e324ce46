"""`bitflip flash`: put a MicroPython firmware on a board (no downloads: the user brings
the file from micropython.org/download/<board>/).

- RP2 boards (.uf2): copied onto the UF2 boot drive (hold BOOTSEL while plugging in); the
  drive is recognised by its INFO_UF2.TXT, the file by the UF2 family id of its blocks.
- ESP32 chips (.bin): written by esptool at the chip's offset; the image header's chip id
  must match the board.
Everything is checked before a byte is written; a mismatch is a UsageError (exit 2).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .. import boards as boards_mod
from ..boards import Board
from ..errors import BitflipError, UsageError

Log = Callable[[str], None]

# Where desktops mount removable drives (Linux udisks, older Linux, macOS).
DRIVE_GLOBS = ["/media/*/*", "/run/media/*/*", "/Volumes/*"]

UF2_MAGIC0, UF2_MAGIC1, UF2_MAGIC_END = 0x0A324655, 0x9E5D5157, 0x0AB16F30
UF2_FLAG_FAMILY = 0x00002000
# RP2350 UF2 files may carry extra blocks of these families (an 'absolute' block that
# works around erratum RP2350-E10, data blocks); they say nothing about the target chip.
UF2_NEUTRAL = {0xE48BFF57, 0xE48BFF58}
UF2_FAMILY_NAMES = {
    0xE48BFF56: "RP2040",
    0xE48BFF59: "RP2350 Arm",
    0xE48BFF5A: "RP2350 RISC-V",
    0xE48BFF5B: "RP2350 Arm non-secure",
    0x1C5F21B0: "ESP32",
    0xC47E5767: "ESP32-S3",
    0xD42BA06C: "ESP32-C3",
    0xBFDD4EEE: "ESP32-S2",
}
# Chip id in the ESP image header (esp_image_header_t.chip_id, bytes 12-13).
ESP_CHIP_IDS = {
    0: "esp32",
    2: "esp32s2",
    5: "esp32c3",
    9: "esp32s3",
    12: "esp32c2",
    13: "esp32c6",
    16: "esp32h2",
    18: "esp32p4",
}


def _board_for_flash(name: str) -> Board:
    board = boards_mod.load(name)
    if board.kind != "board" or not board.flash:
        raise UsageError(f"board '{name}' has no firmware to flash (real boards: pico, pico2, esp32, esp32s3, esp32c3)")
    return board


def _where(board: Board) -> str:
    return board.flash.get("download", "https://micropython.org/download/")


# --- UF2 ----------------------------------------------------------------------------------
def uf2_families(path: Path) -> set[int]:
    """Family ids of the blocks of a .uf2 file (raises UsageError if it is not UF2)."""
    data = path.read_bytes()
    if not data or len(data) % 512:
        raise UsageError(f"{path} is not a UF2 file (size {len(data)} is not a multiple of 512)")
    fams: set[int] = set()
    for off in range(0, len(data), 512):
        m0, m1, flags = struct.unpack_from("<III", data, off)
        fam = struct.unpack_from("<I", data, off + 28)[0]
        end = struct.unpack_from("<I", data, off + 508)[0]
        if (m0, m1, end) != (UF2_MAGIC0, UF2_MAGIC1, UF2_MAGIC_END):
            raise UsageError(f"{path} is not a UF2 file (bad magic in block {off // 512})")
        if flags & UF2_FLAG_FAMILY:
            fams.add(fam)
    return fams


def check_uf2(path: Path, board: Board) -> None:
    want = {int(f, 16) for f in board.flash["uf2_families"]}
    fams = uf2_families(path) - UF2_NEUTRAL
    if fams and not fams & want:
        names = ", ".join(UF2_FAMILY_NAMES.get(f, hex(f)) for f in sorted(fams))
        raise UsageError(f"{path.name} is a firmware for {names}, not for {board.name}: get one from {_where(board)}")


def read_info(drive: Path) -> dict[str, str]:
    """INFO_UF2.TXT as a dict ('Board-ID' -> 'RPI-RP2', ...)."""
    out = {}
    for line in (drive / "INFO_UF2.TXT").read_text(errors="replace").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def find_boot_drives(globs: list[str] | None = None) -> list[Path]:
    """Mounted folders that hold an INFO_UF2.TXT (UF2 boot drives)."""
    found = []
    for pattern in globs if globs is not None else DRIVE_GLOBS:
        for d in sorted(glob.glob(pattern)):
            if os.path.isfile(os.path.join(d, "INFO_UF2.TXT")):
                found.append(Path(d))
    return found


def pick_drive(board: Board, drive: Path | None, globs: list[str] | None = None) -> Path:
    want = board.flash["boot_drive_id"]
    if drive is not None:
        if not (drive / "INFO_UF2.TXT").is_file():
            raise UsageError(f"{drive} is not a UF2 boot drive (no INFO_UF2.TXT)")
        got = read_info(drive).get("Board-ID", "")
        if got != want:
            raise UsageError(f"{drive} is the boot drive of a '{got}' board, not of a {board.name} ('{want}')")
        return drive
    drives = find_boot_drives(globs)
    mine = [d for d in drives if read_info(d).get("Board-ID") == want]
    if len(mine) == 1:
        return mine[0]
    if not mine:
        others = ", ".join(f"{d} ({read_info(d).get('Board-ID', '?')})" for d in drives)
        raise UsageError(
            f"no {board.name} boot drive (Board-ID {want}) is mounted"
            + (f" (found {others})" if others else "")
            + ": hold BOOTSEL while plugging the board in, or give --drive"
        )
    raise UsageError(
        f"several {board.name} boot drives are mounted ({', '.join(map(str, mine))}): choose one with --drive"
    )


def flash_uf2(board: Board, firmware: Path, drive: Path | None, log: Log, globs: list[str] | None = None) -> Path:
    check_uf2(firmware, board)
    target = pick_drive(board, drive, globs)
    dst = target / firmware.name
    log(f"copying {firmware.name} ({firmware.stat().st_size} bytes) to {target}")
    try:
        with open(firmware, "rb") as src, open(dst, "wb") as out:
            shutil.copyfileobj(src, out, 64 * 1024)
            out.flush()
            os.fsync(out.fileno())  # the board reboots when the last block lands
    except OSError as e:
        raise BitflipError(f"copy to {target} failed: {e}") from None
    log(f"done: the {board.name} reboots into MicroPython; then run `bitflip deploy --board {board.name} --port auto`")
    return dst


# --- esptool ------------------------------------------------------------------------------
def check_bin(path: Path, board: Board) -> None:
    head = path.read_bytes()[:16]
    if len(head) < 16 or head[0] != 0xE9:
        raise UsageError(
            f"{path.name} is not an ESP firmware image (no 0xE9 image header): get one from {_where(board)}"
        )
    chip = ESP_CHIP_IDS.get(struct.unpack_from("<H", head, 12)[0], "an unknown chip")
    if chip != board.flash["chip"]:
        raise UsageError(f"{path.name} is a firmware for {chip}, not for {board.name}: get one from {_where(board)}")


def esptool_base() -> list[str] | None:
    """How to run esptool here: the module in this Python, or an esptool on PATH."""
    if importlib.util.find_spec("esptool") is not None:
        return [sys.executable, "-m", "esptool"]
    for exe in ("esptool", "esptool.py"):
        found = shutil.which(exe)
        if found:
            return [found]
    return None


def esptool_command(
    chip: str, port: str, firmware: Path | str, offset: int, baud: int = 460800, base: list[str] | None = None
) -> list[str]:
    """The esptool command line that writes a MicroPython image."""
    return [
        *(base or ["esptool"]),
        "--chip",
        chip,
        "--port",
        port,
        "--baud",
        str(baud),
        "write_flash",
        "-z",
        hex(offset),
        str(firmware),
    ]


def flash_bin(board: Board, firmware: Path, port: str | None, log: Log, timeout: float = 600) -> list[str]:
    check_bin(firmware, board)
    base = esptool_base()
    if base is None:
        raise UsageError("esptool is not installed: pip install esptool (then run bitflip flash again)")
    from .ports import resolve_port

    dev = resolve_port(port, board)
    fl = board.flash
    cmd = esptool_command(fl["chip"], dev, firmware, int(fl["offset"], 16), int(fl["baud"]), base)
    log("running " + " ".join(cmd))
    try:
        p = subprocess.run(cmd, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BitflipError(f"esptool did not finish within {timeout:g} s") from None
    if p.returncode != 0:
        raise BitflipError(f"esptool failed (exit {p.returncode}); hold BOOT while pressing RESET and try again")
    log(f"done: reset the {board.name}, then run `bitflip deploy --board {board.name} --port {dev}`")
    return cmd


def flash(
    board_name: str,
    firmware: Path,
    port: str | None = None,
    drive: Path | None = None,
    log: Log = lambda s: None,
    globs: list[str] | None = None,
) -> None:
    board = _board_for_flash(board_name)
    method = board.flash["method"]
    firmware = Path(firmware)
    if not firmware.is_file():
        raise UsageError(f"firmware file {firmware} does not exist: get one from {_where(board)}")
    ext = firmware.suffix.lower()
    want = ".uf2" if method == "uf2" else ".bin"
    if ext != want:
        how = "copied to its UF2 boot drive" if method == "uf2" else "written with esptool"
        raise UsageError(
            f"{board.name} takes a {want} firmware ({how}), not {firmware.name}: get one from {_where(board)}"
        )
    if method == "uf2":
        flash_uf2(board, firmware, drive, log, globs)
    else:
        flash_bin(board, firmware, port, log)
