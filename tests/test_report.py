"""Run plots (accuracy.png, energy.png in every run directory) and `bitflip report`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from bitflip.training.runner import TrainRequest, train

BITFLIP = str(Path(sys.executable).parent / "bitflip")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("runs")
    out = []
    for board, limit in (("host", 300), ("sim-pico", 200)):
        s = train(TrainRequest(board=board, dataset="digits", epochs=2, limit=limit, out=root / board))
        out.append(Path(s["run_dir"]))
    return out


def test_every_run_dir_gets_plots_and_energy(runs: list[Path]) -> None:
    for run in runs:
        for name in ("accuracy.png", "energy.png"):
            assert (run / name).read_bytes()[:8] == PNG, (run, name)
        s = json.loads((run / "summary.json").read_text())
        assert s["energy_source"] == "estimated (rp2040 model)"
        assert s["device_s"] > 0 and s["joules"] > 0
        assert s["joules_per_sample"] == pytest.approx(s["joules"] / s["samples_seen"], rel=1e-4)
        assert len(s["energy"]["per_epoch"]) == 2


def test_device_records_carry_counters_and_time(runs: list[Path]) -> None:
    recs = [json.loads(line) for line in (runs[1] / "events.jsonl").read_text().splitlines()]
    epochs = [r for r in recs if r.get("ev") == "epoch"]
    evals = [r for r in recs if r.get("ev") == "eval"]
    assert len(epochs) == 2 and [r["split"] for r in evals] == ["val", "val", "test"]  # test: once, at the end
    for r in epochs:
        assert {
            "busy_us",
            "wall_us",
            "fwd_words",
            "upd_words",
            "updates",
            "writes",
            "vote_words",
            "samples",
        } <= r.keys()
    n = 2 * epochs[0]["seen"]  # the 200 samples less the validation split, twice
    assert n == 2 * (200 - json.loads((runs[1] / "summary.json").read_text())["val_samples"])
    assert epochs[-1]["samples"] == n  # run totals of training samples
    assert epochs[-1]["fwd_words"] == n * 8 * 500  # [256, 500]: 8 words x 500 rows per sample
    for r in evals:  # evaluation is counted apart from training
        assert r["busy_us"] > 0 and r["eval_fwd_words"] == r["eval_samples"] * 8 * 500


def test_report_compares_runs(runs: list[Path], tmp_path: Path) -> None:
    png = tmp_path / "cmp.png"
    p = subprocess.run(
        [BITFLIP, "report", *map(str, runs), "--png", str(png)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    assert png.read_bytes()[:8] == PNG
    lines = p.stdout.splitlines()
    assert "energy source" in lines[0] and "test acc" in lines[0]
    assert any(line.startswith("host") for line in lines) and any(line.startswith("sim-pico") for line in lines)
    p = subprocess.run(
        [BITFLIP, "report", str(runs[0]), "--json", "--png", str(png)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    rows = json.loads(p.stdout)["runs"]
    assert rows[0]["board"] == "host" and rows[0]["energy source"] == "estimated (rp2040 model)"


@pytest.mark.parametrize("make", ["missing", "empty", "badjson"])
def test_report_bad_dir_is_one_line_exit_2(tmp_path: Path, make: str) -> None:
    d = tmp_path / "run"
    if make != "missing":
        d.mkdir()
    if make == "badjson":
        (d / "summary.json").write_text("{nope")
    p = subprocess.run(
        [BITFLIP, "report", str(d), "--png", str(tmp_path / "x.png")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and str(d) in p.stderr
