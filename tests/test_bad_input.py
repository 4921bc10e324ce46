"""Issue 14's list of bad input, one row each: one `bitflip: error:` line on stderr, exit code
2, and no run directory (or other file) left behind. Plus what bad input must not be
confused with: ';'-separated CSVs and class names as labels are read."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from bitflip.cli import main
from bitflip.data.registry import load_csv
from bitflip.pytest_plugin import joined
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]


def one_line_exit_2(args: list[str], needle: str) -> None:
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("bitflip: error: ") and needle in lines[0], r.stderr
    assert "Traceback" not in r.output


def _csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    four = ["label,a,b,c,d"] + [f"{i % 3},{i % 7},{i % 5},{i % 11},{i % 13}" for i in range(60)]
    return {"four": str(_csv(tmp_path / "four.csv", four)), "tmp": str(tmp_path)}


# (argv with {four} / {tmp} filled in, the fragment of the one line)
TRAIN = [
    (["--seed", "-1"], "--seed must be an integer within 0..4294967295"),
    (["--model", ""], "bad model ''"),
    (["--model", " 10x5"], "bad model ' 10x5'"),
    (["--model", "10x"], "bad model '10x'"),
    (["--limit", "0"], "--limit must be positive"),
    (["--eval-every", "0"], "--eval-every must be positive"),
    (["--encoding", "threshold:\uff13\uff12"], "bad encoding"),  # full-width digits
    (
        ["--dataset", "{four}", "--model", "3x2", "--encoding", "deskew+threshold:5"],
        "need square images of at least 4x4",
    ),
    (["--board", "sim-pico", "--port", "auto"], "is virtual"),
    (["--board", "sim-pico", "--port", "/dev/null"], "--port /dev/null is not a serial port"),
    (["--board", "sim-pico", "--port", "{four}"], "is a file, not a serial port"),
    (["--board", "sim-pico", "--port", "/dev/ttyNOPE"], "does not exist"),
    (["--epochs", "x"], "Invalid value for '--epochs'"),  # click's own errors: one line too
    (["--bogus"], "No such option '--bogus'"),
    (["--weights", "quad"], "Invalid value for '--weights'"),
]


@pytest.mark.parametrize("args, needle", TRAIN, ids=[" ".join(a) for a, _ in TRAIN])
def test_train_bad_input_is_one_line_exit_2_and_no_run_dir(args: list[str], needle: str, files: dict[str, str]) -> None:
    out = Path(files["tmp"]) / "run"
    one_line_exit_2(
        ["train", "--board", "host", "--epochs", "1", *[a.format(**files) for a in args], "--out", str(out)], needle
    )
    assert not out.exists()


def test_out_under_proc_is_one_line_exit_2() -> None:
    one_line_exit_2(["train", "--board", "host", "--epochs", "1", "--out", "/proc/nope"], "--out /proc/nope")
    assert not Path("/proc/nope").exists()


OTHER = [
    (["compare", "--only", "mlp-adam", "--limit", "50"], "model 10x100 has no hidden layers"),
    (["compare", "--only", "ste-matched", "--limit", "50"], "needs --matched"),
    (["compare", "--only", "nope", "--limit", "50"], "'nope' cannot run here (no such method)"),
    (["report"], "Missing argument"),
    (["nosuchcommand"], "No such command 'nosuchcommand'"),
    (["data", "info", "--bogus", "digits"], "No such option '--bogus'"),
]


@pytest.mark.parametrize("args, needle", OTHER, ids=[" ".join(a) for a, _ in OTHER])
def test_other_commands_bad_input_is_one_line_exit_2(args: list[str], needle: str) -> None:
    one_line_exit_2(args, needle)


def test_compare_help_offers_only_methods_that_exist() -> None:
    r = CliRunner().invoke(main, ["compare", "--help"])
    assert "mlp-adam when the model has hidden layers" in " ".join(r.output.split())


def test_silent_port_gives_up_with_one_line_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A terminal where nothing answers (a pty nobody reads: a bare UART, the wrong port)."""
    from bitflip.link.connect import Connector

    monkeypatch.setattr(Connector, "first_contact_s", 1.0)
    master, slave = os.openpty()
    stop = threading.Event()

    def void() -> None:  # what is written goes nowhere, as on a UART with nothing attached
        while not stop.is_set():
            if select.select([master], [], [], 0.05)[0]:
                try:
                    os.read(master, 4096)
                except OSError:
                    return

    drain = threading.Thread(target=void, daemon=True)
    drain.start()
    try:
        keep = tmp_path / "keep"
        keep.mkdir()
        (keep / "mine.txt").write_text("keep me")
        for out, extra in ((tmp_path / "new" / "run", []), (keep, ["--force"])):
            one_line_exit_2(
                [
                    "train",
                    "--board",
                    "sim-pico",
                    "--epochs",
                    "1",
                    "--port",
                    os.ttyname(slave),
                    "--out",
                    str(out),
                    *extra,
                ],
                "nothing answered within 1 s",
            )
        assert not (tmp_path / "new").exists()
        assert (keep / "mine.txt").read_text() == "keep me" and not list(tmp_path.glob("keep.old-*"))
    finally:
        stop.set()
        drain.join(timeout=2)
        os.close(master)
        os.close(slave)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("runs")
    runs = []
    for name, extra in (("a", ["--epochs", "1"]), ("b", ["--epochs", "3", "--limit", "100"])):
        r = CliRunner().invoke(main, ["train", "--board", "host", "--quiet", "--out", str(d / name), *extra])
        assert r.exit_code == 0, r.output
        runs.append(d / name)
    return runs


def test_report_png_that_cannot_be_written_is_one_line_exit_2(two_runs: list[Path]) -> None:
    one_line_exit_2(["report", *map(str, two_runs), "--png", "/proc/x.png"], "--png /proc/x.png: cannot write it")


def test_report_json_has_numbers_and_absolute_run_dirs(two_runs: list[Path], tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["report", *map(str, two_runs), "--json", "--png", str(tmp_path / "r.png")])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["runs"]
    for row in rows:
        assert isinstance(row["test acc"], float) and isinstance(row["epochs"], int)
        assert isinstance(row["samples"], int) and isinstance(row["ms/sample"], float)
        assert Path(row["run_dir"]).is_absolute()
    assert [row["epochs"] for row in rows] == [1, 3]
    summary = json.loads((two_runs[0] / "summary.json").read_text())
    assert Path(summary["run_dir"]).is_absolute()


def test_semicolon_csv_with_decimal_commas_is_read(tmp_path: Path) -> None:
    p = _csv(tmp_path / "semi.csv", ["label;a;b"] + [f"{i % 2};{i % 5},5;{i % 3}" for i in range(40)])
    d = load_csv(p)
    assert d.n_features == 2 and d.n_classes == 2


def test_one_column_csv_names_the_separator(tmp_path: Path) -> None:
    p = _csv(tmp_path / "one.csv", ["0", "1", "0", "1"])
    one_line_exit_2(["data", "info", str(p)], "(read as comma-separated: separate them by commas, semicolons or tabs)")


def test_string_labels_are_class_names_in_sorted_order(tmp_path: Path) -> None:
    names = ["dog", "cat", "bird"]
    rows = [f"{names[i % 3]},{(i % 3) * 80 + i % 7},{(i % 3) * 80 + i % 5}" for i in range(90)]
    p = _csv(tmp_path / "pets.csv", rows)  # no header: the first row's label is a name too
    d = load_csv(p)
    assert d.labels == ("bird", "cat", "dog") and len(d.y_train) + len(d.y_test) == 90
    first = int(d.y_train[0]) if d.x_train[0].tolist() == [0, 0] else None
    assert first in (None, 2)  # row 0 is a dog: class 2 of the sorted names
    run = tmp_path / "run"
    r = CliRunner().invoke(
        main,
        [
            "train",
            "--board",
            "host",
            "--dataset",
            str(p),
            "--model",
            "3x2",
            "--epochs",
            "1",
            "--quiet",
            "--out",
            str(run),
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads((run / "summary.json").read_text())["labels"] == ["bird", "cat", "dog"]
    r = CliRunner().invoke(main, ["export", str(run), "--out", str(tmp_path / "m.bfm")])
    assert r.exit_code == 0, r.output
    from bitflip.use.modelfile import ModelFile

    assert ModelFile.read(tmp_path / "m.bfm").labels == ["bird", "cat", "dog"]


def test_pytest_plugin_joins_our_options_only() -> None:
    assert joined(["-m", "device", "--port", "/dev/ttyACM0", "--board", "pico", "-x"]) == [
        "-m",
        "device",
        "--port=/dev/ttyACM0",
        "--board=pico",
        "-x",
    ]
    assert joined(["--port=/dev/x", "tests", "--", "--port", "y"]) == ["--port=/dev/x", "tests", "--", "--port", "y"]


def test_readme_device_test_line_parses_with_an_existing_port_path() -> None:
    """`pytest -m device --port P --board B` with P an existing path (here /dev/null): pytest
    finds the project's configuration and collects the device tests (collect only)."""
    env = {k: v for k, v in os.environ.items() if k != "BITFLIP_PYTEST_REEXEC"}
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-m",
            "device",
            "--port",
            "/dev/null",
            "--board",
            "pico",
            "--co",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "unrecognized arguments" not in p.stderr and "tests/test_device.py::" in p.stdout
