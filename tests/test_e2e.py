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


def test_pool_rule_on_the_virtual_pico_matches_the_host(tmp_path: Path) -> None:
    # the pool rule's hidden layer is 1-bit with int32 thresholds: both reach the run's
    # digest and the model file, and the board ends where the reference does
    args = ["--model", "48-10x3", "--epochs", "2", "--limit", "500", "--rule", "pool=16", "--rule", "pool_every=50",
            "--rule", "pool_tau=2", "--rule", "near=20"]
    dev = _train(tmp_path, "sim-pico", *args)
    host = _train(tmp_path, "host", *args)
    assert dev["weights_sha256"] == host["weights_sha256"] and dev["test_accuracy"] == host["test_accuracy"]
    assert dev["flips"] == host["flips"] > 0
    assert dev["test_accuracy"] > 0.6, dev
    for run in (dev, host):
        m = np.load(Path(run["run_dir"]) / "model.npz")
        assert m["layer0_s"].shape == (48, 6) and "layer0_c" not in m.files  # 192 bits -> 6 words, 1 plane
        assert m["layer1_s"].shape == m["layer1_c"].shape == (30, 2)
        assert m["layer0_t"].dtype == np.int32 and np.any(m["layer0_t"] != 0)
    assert dev["weight_bytes"] == host["weight_bytes"] == 48 * 6 * 4 + 2 * 30 * 2 * 4
