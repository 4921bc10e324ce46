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
    p = subprocess.run(
        [micropython_exe(), "-X", f"heapsize={heap}", "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
        check=False,
    )
    if p.returncode != 0:
        pytest.fail(f"micropython exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p.stdout


@pytest.fixture
def upy():
    return run_micropython


def reference_block(tmp: Path, cfg: dict, seed: int, count: int) -> tuple:
    """Train the numpy reference on `count` random samples (density 0.4, labels < 4) and write
    the same samples as a frame block (labels, padding to 4, packed rows) to tmp/block.bin for
    Trainer.train_block on the device. Returns (reference, label bytes incl. padding, packed
    rows, labels)."""
    import numpy as np
    from bitflip.training import reference as R

    rng = np.random.default_rng(seed)
    n_in = cfg["sizes"][0]
    X = R.pack_bits(rng.random((count, n_in)) < 0.4)
    y = rng.integers(0, 4, count)
    ref = R.Reference(cfg)
    for i in range(count):
        ref.train_sample(X[i], int(y[i]))
    lab_pad = (count + 3) & ~3
    (tmp / "block.bin").write_bytes(bytes(y.astype(np.uint8)) + bytes(lab_pad - count) + X.astype("<u4").tobytes())
    return ref, lab_pad, X, y


# one device configuration per hidden-layer rule (none, flip, pool), for tests that run each
CONFIGS = [
    {"sizes": [70, 12], "classes": 4, "weights": "binary", "seed": 1, "window": 4, "margin": -1, "k": [2]},
    {
        "sizes": [70, 40, 12],
        "classes": 4,
        "weights": "binary2",
        "seed": 1,
        "window": 4,
        "margin": 2,
        "k": [2, 3],
        "ks": 2,
    },
    {
        "sizes": [70, 40, 24, 8],
        "classes": 4,
        "weights": "ternary",
        "seed": 1,
        "window": 4,
        "margin": -1,
        "k": [2, 2, 3],
        "pool": {"rows": 16, "every": 7, "tau": 1, "flips": 6, "near": 30},
    },
]
