"""Real-board tests: `pytest -m device --port PORT --board NAME` deploys the firmware to the
board on PORT, trains one epoch of digits through the serial link and checks the weights
digest against the host reference, bit for bit. Skipped without --port.

They run unchanged against a virtual board started with `bitflip sim` (--board sim-pico
--port /dev/pts/N): the last test here does exactly that, so the device tests are known to
work before anyone plugs in a board."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from bitflip.cli import main
from bitflip.training.runner import TrainRequest, train
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
BITFLIP = str(Path(sys.executable).parent / "bitflip")


def _opts(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.config.getoption("--port"), request.config.getoption("--board")


@pytest.fixture(scope="module")
def deployed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """Deploy once per session: the board on --port runs this checkout's firmware."""
    port, board = _opts(request)
    build = tmp_path_factory.mktemp("build")
    r = CliRunner().invoke(main, ["deploy", "--board", board, "--port", port, "--build-dir", str(build)])
    assert r.exit_code == 0, r.output
    assert f"{board} on {port}: bitflip " in r.output
    return port, board


@pytest.mark.device
@pytest.mark.parametrize("model", [None, "256-10"], ids=["default", "256-10"])
def test_device_one_epoch_of_digits_matches_the_host(
    deployed: tuple[str, str], model: str | None, tmp_path: Path
) -> None:
    port, board = deployed
    req = {"dataset": "digits", "model": model, "epochs": 1, "seed": 0}
    dev = train(TrainRequest(board=board, port=port, out=tmp_path / "dev", **req))
    host = train(TrainRequest(board="host", out=tmp_path / "host", **req))
    assert dev["samples_seen"] == host["samples_seen"] == 1437 - host["val_samples"]  # validation does not train
    assert dev["weights_sha256"] == host["weights_sha256"]
    assert dev["test_accuracy"] == host["test_accuracy"]
    assert dev["flips"] == host["flips"]


@pytest.mark.device
def test_device_second_deploy_copies_nothing(deployed: tuple[str, str], tmp_path: Path) -> None:
    from bitflip.link.deploy import deploy

    port, board = deployed
    deploy(board, port, build_root=tmp_path)
    res = deploy(board, port, build_root=tmp_path)
    assert res.copied == [] and res.removed == []


def test_train_port_is_checked_before_anything_starts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from bitflip.link import ports

    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", "--board", "pico", "--port", "/dev/ttyNOPE9", "--out", str(out)])
    assert r.exit_code == 2 and "port /dev/ttyNOPE9 does not exist" in r.output
    monkeypatch.setattr(ports, "list_ports", lambda records=None: [])
    r = CliRunner().invoke(main, ["train", "--board", "esp32", "--port", "auto", "--out", str(out)])
    assert r.exit_code == 2 and "no serial port looks like a esp32" in r.output
    assert len(r.output.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.slow
def test_the_device_tests_pass_against_a_bitflip_sim(tmp_path: Path) -> None:
    """Run this file's device tests the way a user with a board would, with the port of an
    empty virtual board started by `bitflip sim` standing in for the board."""
    sim = subprocess.Popen(
        [BITFLIP, "sim", "--board", "sim-pico", "--flash", str(tmp_path / "flash")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert sim.stdout is not None
        port = sim.stdout.readline().strip()
        assert port.startswith("/dev/"), port
        p = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-m",
                "device",
                "--port",
                port,
                "--board",
                "sim-pico",
                str(Path(__file__)),
            ],
            capture_output=True,
            text=True,
            timeout=240,
            cwd=ROOT,
            check=False,
        )
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
        assert "3 passed" in p.stdout and "skipped" not in p.stdout, p.stdout[-1000:]
        # the firmware really went to the sim's flash, and the job checkpointed there
        assert (tmp_path / "flash" / "lib" / "bitflip" / "app.mpy").is_file()
        assert (tmp_path / "flash" / "bitflip.ckpt").exists()
    finally:
        sim.terminate()
        sim.wait(timeout=10)
