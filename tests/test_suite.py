"""A small run of the generality suite (benchmarks/suite.py): the whole pipeline — defaults
chosen on validation, the rule, the gradient baselines, 1-NN, the table — on two datasets."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_suite_prints_one_row_per_dataset_with_measured_numbers(tmp_path: Path) -> None:
    out = tmp_path / "suite.md"
    p = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "suite.py"),
            "--datasets",
            "iris,shift1d",
            "--seeds",
            "2",
            "--epochs",
            "2",
            "--limit",
            "400",
            "--write",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT / "benchmarks",
        check=False,
    )
    assert p.returncode == 0, p.stderr
    assert out.read_text() == p.stdout
    rows = [ln for ln in p.stdout.splitlines() if ln.startswith(("| iris", "| shift1d"))]
    assert len(rows) == 2
    head = next(ln for ln in p.stdout.splitlines() if ln.startswith("| dataset"))
    assert len(head.split("|")) == len(rows[0].split("|"))  # every column filled
    for row in rows:
        cells = [c.strip() for c in row.split("|")[1:-1]]
        rule, ste = cells[2], cells[3]
        assert "±" in rule and "±" in ste  # two seeds: mean and spread
        for c in cells[2:10]:  # rule, three STE nets, two float nets, log. reg., 1-NN
            mean = float(c.split("±")[0])
            assert 0.0 <= mean <= 100.0
        assert cells[11] in ("met", "NOT met") and cells[14] in ("yes", "no")
        assert all(c.endswith("x") for c in cells[15:18])  # SGD/rule updates, three ways
        assert cells[18].endswith("of 2")
    # the shift1d row is the 10-class default derived from the data, not the digits model
    assert re.search(r"\| shift1d \| (\d+-)?10x\d+, ", p.stdout), p.stdout
    assert "suite: shift1d seed 1:" in p.stderr
