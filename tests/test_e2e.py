"""End to end through the real console command: the virtual Pico (unix port behind a pty,
Pico heap) trains digits to the foundation figure and ends with the host reference's
weights, bit for bit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

BITFLIP = str(Path(sys.executable).parent / "bitflip")
KEYS = {"board", "dataset", "model", "epochs", "samples_seen", "train_accuracy", "test_accuracy", "flips",
        "weights_sha256", "energy_source", "run_dir"}


def _train(tmp: Path, board: str, *extra: str) -> dict:
    out = tmp / board
    p = subprocess.run([BITFLIP, "train", "--board", board, "--dataset", "digits", "--json", "--out", str(out), *extra],
                       capture_output=True, text=True, timeout=600, check=False)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_virtual_pico_matches_host_and_learns_digits(tmp_path: Path) -> None:
    dev = _train(tmp_path, "sim-pico")
    host = _train(tmp_path, "host")
    assert KEYS <= dev.keys() and KEYS <= host.keys()
    assert dev["weights_sha256"] == host["weights_sha256"]
    assert dev["test_accuracy"] == host["test_accuracy"]
    assert dev["test_accuracy"] >= 0.90, dev
    assert dev["samples_seen"] == dev["epochs"] * 1437
    run = Path(dev["run_dir"])
    for name in ("events.jsonl", "metrics.csv", "summary.json", "model.npz"):
        assert (run / name).is_file(), name
    # the model file holds the device's final planes: same digest as reported
    import hashlib

    m = np.load(run / "model.npz")
    h = hashlib.sha256()
    order = {"s": 0, "c": 1, "z": 1}  # the device's plane order: sign, then the second bit
    keys = [k for k in m.files if k.startswith("layer")]
    for key in sorted(keys, key=lambda k: (int(k[5:].split("_")[0]), order[k.split("_")[1]])):
        h.update(m[key].astype("<u4").tobytes())
    assert h.hexdigest() == dev["weights_sha256"]


def test_image_step_encoding_reaches_the_board_bit_exact(tmp_path: Path) -> None:
    # digits are 8x8 images: deskew + crop run on the host, the board gets 36-bit rows
    enc = ["--encoding", "deskew+crop:6+thermo:4,8", "--epochs", "1", "--limit", "400", "--model", "10x4"]
    dev = _train(tmp_path, "sim-pico", *enc)
    host = _train(tmp_path, "host", *enc)
    assert dev["weights_sha256"] == host["weights_sha256"] and dev["test_accuracy"] == host["test_accuracy"]
    assert dev["test_accuracy"] > 0.5
    summary = json.loads((Path(dev["run_dir"]) / "summary.json").read_text())
    assert summary["sizes"] == [72, 40]  # 6x6 pixels x 2 levels
