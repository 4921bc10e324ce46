"""Shared test fixtures. Tests that need a real board are marked `device` and run only
with --port PORT (and --board NAME)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--port", default=None, help="serial port of a real board for device tests")
    parser.addoption("--board", default="pico", help="board file name of the board on --port")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--port"):
        return
    skip = pytest.mark.skip(reason="needs a real board: run with --port PORT")
    for item in items:
        if "device" in item.keywords:
            item.add_marker(skip)


def micropython_exe() -> str:
    return str(Path(sys.executable).parent / "micropython")


def run_micropython(script: str, heap: str = "2M", timeout: float = 120, cwd: Path | None = None) -> str:
    """Run a script under the real unix port with firmware/ on its path; returns stdout.
    Fails the test with the device's traceback if it exits non-zero."""
    env = dict(os.environ, MICROPYPATH=f"{FIRMWARE}:.frozen")
    p = subprocess.run([micropython_exe(), "-X", f"heapsize={heap}", "-c", script], capture_output=True,
                       text=True, timeout=timeout, env=env, cwd=cwd, check=False)
    if p.returncode != 0:
        pytest.fail(f"micropython exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p.stdout


@pytest.fixture
def upy():
    return run_micropython
