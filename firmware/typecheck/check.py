"""Type-check the firmware against a MicroPython port's own API (its published stubs).

    python firmware/typecheck/check.py rp2|esp32 [FILE ...]

Runs mypy with this folder's mypy.ini, the port's stubs (micropython-<port>-stubs plus
micropython-stdlib-stubs, pinned in pyproject.toml [dependency-groups], installed by
`make setup` into .venv/mpy-stubs/<port>) as typeshed and search path, and --platform
set to the port, so `sys.platform == "rp2"` branches are checked only for rp2. Without
files it checks the port's module set of firmware/bitflip (esp32: everything but the
Arm-only kernels_thumb.py, which accel.py imports only on rp2). Exit status is mypy's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FIRMWARE = ROOT / "firmware" / "bitflip"
PORTS = ("rp2", "esp32")
ARM_ONLY = ("kernels_thumb.py",)  # as tests/test_targets.py


def stubs_dir(port: str) -> Path:
    return Path(os.environ.get("BITFLIP_MPY_STUBS", ROOT / ".venv" / "mpy-stubs")) / port


def module_set(port: str) -> list[Path]:
    files = sorted(FIRMWARE.glob("*.py"))
    return [f for f in files if port == "rp2" or f.name not in ARM_ONLY]


def mypy_command(port: str, files: list[Path]) -> tuple[list[str], dict[str, str]]:
    stubs = stubs_dir(port)
    if not (stubs / "stdlib" / "VERSIONS").is_file():
        raise SystemExit(f"no MicroPython stubs for {port} in {stubs}: run `make setup`")
    cmd = [
        sys.executable,
        "-m",
        "mypy",
        "--config-file",
        str(HERE / "mypy.ini"),
        "--custom-typeshed-dir",
        str(stubs),
        "--platform",
        port,
        "--cache-dir",
        os.environ.get("MYPY_CACHE_DIR", str(ROOT / ".mypy_cache" / f"firmware-{port}")),
        *map(str, files),
    ]
    env = dict(os.environ, MYPYPATH=str(stubs))
    return cmd, env


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in PORTS:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    port = argv[0]
    files = [Path(a) for a in argv[1:]] or module_set(port)
    cmd, env = mypy_command(port, files)
    print(f"mypy firmware ({port}): {len(files)} files", flush=True)
    return subprocess.call(cmd, env=env, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
