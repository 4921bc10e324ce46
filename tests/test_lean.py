"""`pip install bitflip` without extras: training a user's CSV on the host and on the virtual
Pico works with matplotlib, scikit-learn, unicorn and capstone missing (they are blocked at
import here, in a subprocess), and what needs them says which extra to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BLOCKER = """
import sys, importlib.abc
BLOCK = {"matplotlib", "sklearn", "unicorn", "capstone", "scipy"}
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCK:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Blocker())
from bitflip.cli import main
sys.argv = ["bitflip"] + sys.argv[1:]
main()
"""


def _bitflip(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = tmp / "lean_bitflip.py"
    script.write_text(BLOCKER)
    env = {"BITFLIP_DATA": str(tmp / "data"), "PATH": "/usr/bin:/bin", "HOME": str(tmp)}
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=300,
                          cwd=tmp, env=env, check=False)  # fmt: skip


@pytest.mark.slow
def test_a_user_csv_trains_without_the_optional_parts(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = np.arange(300) % 3
    x = rng.normal(y[:, None] * 3.0, 1.0, (300, 5))
    np.savetxt(tmp_path / "mine.csv", np.c_[y, x], delimiter=",", fmt="%.3f")
    for board in ("host", "sim-pico"):
        r = _bitflip(tmp_path, "train", "--board", board, "--dataset", "mine.csv", "--epochs", "2", "--out", board)
        assert r.returncode == 0, r.stderr
        assert "test accuracy" in r.stdout and (tmp_path / board / "summary.json").is_file()
        assert "Traceback" not in r.stderr


def test_what_needs_an_extra_names_it(tmp_path: Path) -> None:
    r = _bitflip(tmp_path, "train", "--board", "host", "--dataset", "digits", "--out", "run")
    assert r.returncode == 2 and r.stderr.strip().endswith("pip install 'bitflip[sklearn]'"), r.stderr
    assert not (tmp_path / "run").exists()
    r = _bitflip(tmp_path, "bench", "--quick")
    assert r.returncode == 1 and "pip install 'bitflip[emulator]'" in r.stderr and "Traceback" not in r.stderr
