"""One run path for every board, and run directories that lose nothing: the same summary keys
on the host and on a board, a directory never clobbered (--force moves it aside, --resume
continues exactly this job or names what differs), the host reference resuming bit-exactly,
one line per epoch, and a board that gives back its heap run after run."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bitflip.cli import main
from bitflip.training.records import LINK_FIELDS
from bitflip.training.runner import TrainRequest, train
from click.testing import CliRunner

BITFLIP = str(Path(sys.executable).parent / "bitflip")
TIMING = {
    "wall_s",
    "device_busy_s",
    "energy",
    "device_s",
    "joules",
    "device_s_per_sample",
    "joules_per_sample",
    "energy_source",
    "run_dir",
    "board",
}


def _cli(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.stdout, r.stderr


def test_a_replayed_answer_is_one_event(tmp_path: Path) -> None:
    """A frame resent before its answer arrived (a tail-loss probe on a loaded machine) is
    answered twice, identically: the run directory holds the event once; a new answer with
    the same sequence number (a board that restarted its numbering) is kept."""
    from bitflip.training.plan import prepare
    from bitflip.training.records import Collector
    from bitflip.training.rundir import RunDir

    plan = prepare(TrainRequest(board="host", dataset="digits", epochs=2, limit=200, out=tmp_path / "r"))
    got = Collector(plan, RunDir(tmp_path / "r", {"id": "x"}))
    rec = {"ev": "epoch", "epoch": 0, "seen": 180, "correct": 150, "step": 180, "busy_us": 5, "wall_us": 9, "seq": 7}
    got.record(dict(rec))
    got.record(dict(rec))
    got.record(dict(rec, busy_us=6))
    got.run.close()
    recs = [json.loads(line) for line in (tmp_path / "r" / "events.jsonl").read_text().splitlines()]
    assert [r["busy_us"] for r in recs if r.get("ev") == "epoch"] == [5, 6]


def test_host_and_board_summaries_have_the_same_keys(tmp_path: Path) -> None:
    req = {"dataset": "digits", "epochs": 1, "limit": 300, "seed": 1}
    host = train(TrainRequest(board="host", out=tmp_path / "h", **req))
    dev = train(TrainRequest(board="sim-pico", out=tmp_path / "d", **req))
    assert set(host) == set(dev)
    assert host["weights_sha256"] == dev["weights_sha256"]
    for key in set(host) - TIMING - set(LINK_FIELDS) - {"resumed_from"}:
        assert host[key] == dev[key], key
    assert Path(host["run_dir"]).is_absolute()
    for name in ("job.json", "events.jsonl", "metrics.csv", "summary.json", "model.npz"):
        assert (tmp_path / "h" / name).is_file() and (tmp_path / "d" / name).is_file()


def test_a_run_directory_is_never_clobbered(tmp_path: Path) -> None:
    base = ["train", "--board", "host", "--dataset", "digits", "--epochs", "1", "--limit", "200", "--quiet"]
    run = tmp_path / "run"
    assert _cli(*base, "--out", str(run))[0] == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    # the same command again: refused, nothing changed
    code, _, err = _cli(*base, "--out", str(run))
    assert code == 2 and err.count("\n") == 1 and "holds a run" in err and "--resume" in err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    # a bad seed after the directory exists: one line, nothing truncated
    code, _, err = _cli(*base, "--seed", "-1", "--out", str(run))
    assert code == 2 and "--seed" in err and {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    # a user's own folder with a summary.json of theirs
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "summary.json").write_text("my notes\n")
    code, _, err = _cli(*base, "--out", str(mine))
    assert code == 2 and "not a bitflip run" in err and (mine / "summary.json").read_text() == "my notes\n"
    # --force moves it aside, never deletes
    code, _, _ = _cli(*base, "--out", str(mine), "--force")
    assert code == 0 and (tmp_path / "mine.old-1" / "summary.json").read_text() == "my notes\n"
    assert json.loads((mine / "summary.json").read_text())["dataset"] == "digits"
    for bad, msg in (
        (["--out", ""], "--out must name a directory"),
        (["--out", "/proc/nope/x"], "cannot create"),
        (["--out", str(tmp_path / "gone"), "--resume"], "does not exist"),
    ):
        code, _, err = _cli(*base, *bad)
        assert code == 2 and msg in err and err.count("\n") == 1, (bad, err)


def test_resume_continues_exactly_this_job_or_names_the_difference(tmp_path: Path) -> None:
    base = [
        "train",
        "--board",
        "host",
        "--dataset",
        "digits",
        "--limit",
        "200",
        "--quiet",
        "--out",
        str(tmp_path / "r"),
    ]
    assert _cli(*base, "--epochs", "2")[0] == 0
    code, _, err = _cli(*base, "--epochs", "2", "--seed", "5", "--resume")
    assert code == 2 and "seed: this run has 5, the directory's job 0" in err
    code, _, err = _cli(*base, "--epochs", "3", "--resume")
    assert code == 2 and "epochs: this run has 3" in err
    metrics = (tmp_path / "r" / "metrics.csv").read_text().splitlines()
    assert [ln.split(",")[0] for ln in metrics[1:]] == ["0", "1"]  # untouched by the refusals


def test_the_host_reference_resumes_bit_exactly_after_a_kill(tmp_path: Path) -> None:
    args = [
        BITFLIP,
        "train",
        "--board",
        "host",
        "--dataset",
        "digits",
        "--epochs",
        "3",
        "--ckpt-every",
        "300",
        "--quiet",
        "--json",
    ]
    clean = json.loads(
        subprocess.run(
            args + ["--out", str(tmp_path / "clean")], capture_output=True, text=True, check=True, timeout=300
        ).stdout
    )
    out = tmp_path / "killed"
    p = subprocess.Popen(args + ["--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ckpt = out / "host.ckpt.npz"
    t0 = time.monotonic()
    while not ckpt.exists() and time.monotonic() - t0 < 120:
        time.sleep(0.05)
    time.sleep(0.3)
    p.kill()
    p.wait()
    assert ckpt.exists()
    r = subprocess.run(args + ["--out", str(out), "--resume"], capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["weights_sha256"] == clean["weights_sha256"] and s["test_accuracy"] == clean["test_accuracy"]
    assert s["resumed_from"] and s["samples_seen"] == clean["samples_seen"]
    rows = (out / "metrics.csv").read_text().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["0", "1", "2"]


def test_one_line_per_epoch_on_stderr_when_piped(tmp_path: Path) -> None:
    r = subprocess.run(
        [
            BITFLIP,
            "train",
            "--board",
            "host",
            "--dataset",
            "digits",
            "--epochs",
            "2",
            "--limit",
            "300",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("epoch ")]
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2: train ") and "val " in lines[1]
    assert "flips" in lines[0] and " J estimated (rp2040 model)" in lines[0]
    q = subprocess.run(
        [
            BITFLIP,
            "train",
            "--board",
            "host",
            "--dataset",
            "digits",
            "--epochs",
            "1",
            "--limit",
            "300",
            "--out",
            str(tmp_path / "q"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert "epoch " not in q.stderr


FEC_MODULE = 2048  # heap of the imported fec.py on the x64 unix port (measured: 1,888 bytes)


@pytest.mark.slow
@pytest.mark.parametrize("cores", [2])
def test_a_board_gives_its_heap_back_run_after_run(tmp_path: Path, cores: int) -> None:
    """Three jobs on one board process without a reset (a `bitflip sim` stands in for a Pico
    that stays plugged in), the second core's worker forced on: nothing a run allocated is
    kept (before the fix, the second run lost the first run's whole model: 'model does not fit'
    on the genuine Pico). The second and third runs build on exactly the same free heap; the
    first may differ by less than 1 KiB — runtime state MicroPython creates on first use, and
    blocks its conservative stack scan keeps — plus the FEC decoder module the first run loaded
    after its model (imported once, like every firmware module; its tables go with the link),
    and that difference does not grow."""
    sim = subprocess.Popen(
        [BITFLIP, "sim", "--board", "sim-pico", "--flash", str(tmp_path / "flash"), "--with-sources"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert sim.stdout is not None
        port = sim.stdout.readline().strip()
        heaps = []
        for i in range(3):
            s = train(
                TrainRequest(
                    board="sim-pico",
                    port=port,
                    dataset="digits",
                    model="10x30",
                    epochs=1,
                    limit=300,
                    cores=cores,
                    out=tmp_path / f"run{i}",
                )
            )
            heaps.append((s["heap_free_before_model"], s["heap_free_after_alloc"]))
        assert heaps[0][0] > heaps[0][1] > 0
        assert heaps[2][0] == heaps[1][0], heaps  # nothing accumulates from run to run
        assert abs(heaps[1][0] - heaps[0][0]) < 1024 + FEC_MODULE and abs(heaps[2][1] - heaps[1][1]) < 256, heaps
        model = heaps[0][0] - heaps[0][1]
        assert abs((heaps[1][0] - heaps[1][1]) - model) < 1024, heaps  # the model takes what it took
    finally:
        sim.terminate()
        sim.wait(timeout=10)


def test_best_before_leaves_out_the_epochs_a_resumed_run_evaluates_again():
    # a board killed after the validation record of its best epoch but before it kept that
    # model: the resumed run evaluates the epoch again and must keep it again, so the best
    # it compares with is the one of the epochs before (the final digest was wrong otherwise)
    from bitflip.training.records import Collector

    got = Collector.__new__(Collector)
    got.evals = {e: {"correct": c, "seen": 142} for e, c in enumerate([135, 137, 138, 139])}
    assert got.best() == (139 / 142, 3)
    assert got.best(before=3) == (138 / 142, 2)
    assert got.best(before=0) is None


def test_a_directory_in_use_by_a_run_is_refused_before_anything_moves(tmp_path: Path) -> None:
    # two runs with one --out: the second gets one line (UsageError: exit 2), even with --force
    # or --resume, and the first one's files stay where they are; after it ends, --force works
    from bitflip.errors import UsageError
    from bitflip.training.rundir import LOCK, RunDir

    job = {"dataset": "digits", "seed": 0}
    first = RunDir(tmp_path / "run", job)
    first.event({"kind": "start"})
    for kw in ({}, {"force": True}, {"resume": True}):
        with pytest.raises(UsageError, match="in use by another bitflip run"):
            RunDir(tmp_path / "run", job, **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert (tmp_path / "run" / "events.jsonl").read_text().count("start") == 1
    first.close()
    second = RunDir(tmp_path / "run", job, force=True)
    assert second.moved_aside is not None and (second.moved_aside / "events.jsonl").exists()
    second.discard()  # put back: the directory is the first run's again, with no lock held
    assert (tmp_path / "run" / "events.jsonl").exists() and (tmp_path / "run" / LOCK).exists()
    RunDir(tmp_path / "run", job, resume=True).close()  # the lock is free again
