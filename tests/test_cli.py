"""Bad input gets one clear line and exit code 2, before anything starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bitflip.cli import main
from click.testing import CliRunner


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--board", "nosuchboard"], "unknown board 'nosuchboard'"),
        (["--dataset", "nosuchdata"], "unknown dataset 'nosuchdata'"),
        (["--epochs", "0"], "--epochs must be positive"),
        (["--epochs", "-3"], "--epochs must be positive"),
        (["--model", "256-7"], "must have 10 outputs"),
        (["--model", "abc"], "bad model"),
        (["--encoding", "thermo:99,1"], "bad encoding"),
        (["--encoding", "deskew+crop:9+threshold:8"], "crop:9 must be within 1..8"),  # digits are 8x8
        (["--encoding", "pool:3+threshold:8"], "pool:3 must divide the image side 8"),
        (["--rule", "nosuch=1"], "unknown rule parameter"),
        (["--board", "pico"], "give --port"),
    ],
)
def test_bad_input_is_one_line_exit_2(args: list[str], needle: str, tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["train", *args, "--out", str(tmp_path / "run")])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert not (tmp_path / "run").exists()  # nothing was started or written


def test_out_that_is_a_file_is_refused_and_kept(tmp_path: Path) -> None:
    f = tmp_path / "precious.txt"
    f.write_text("keep me")
    r = CliRunner().invoke(main, ["train", "--board", "host", "--out", str(f)])
    assert r.exit_code == 2 and f.read_text() == "keep me"


def test_boards_lists_real_and_virtual() -> None:
    r = CliRunner().invoke(main, ["boards", "--json"])
    assert r.exit_code == 0
    names = {b["name"] for b in json.loads(r.output)}
    assert {"pico", "esp32", "sim-pico", "sim-esp32", "host"} <= names
