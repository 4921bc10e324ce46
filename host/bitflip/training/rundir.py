"""A run directory: job.json (what the job is), events.jsonl (every record, in order, only ever
appended), metrics.csv (one row per epoch), summary.json, model.npz (the final planes and the
configuration) and the plots. Files other than the event log are replaced atomically, so a
crash never leaves one half-written or truncated.

A directory is never clobbered: `check` (read-only, called before anything starts) refuses a
non-empty directory that is not this job's run, unless --force (its contents are moved aside
to DIR.old-N, never deleted); --resume continues exactly this job or names the first setting
that differs; --resume of a directory that does not exist is an error. A directory in use by
another run (its `.lock` held with flock) is refused before anything in it moves.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import UsageError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, so no guard against two runs in one directory
    fcntl = None  # type: ignore[assignment]

JOB = "job.json"
LOCK = ".lock"
METRIC_FIELDS = [
    "epoch",
    "samples_seen",
    "train_accuracy",
    "val_accuracy",
    "flips",
    "updates",
    "device_busy_s",
    "wall_s",
]


def _job_of(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads((path / JOB).read_text())["job"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _first_difference(a: Any, b: Any, where: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            d = _first_difference(a.get(key), b.get(key), f"{where}.{key}" if where else str(key))
            if d:
                return d
        return None
    return None if a == b else f"{where}: this run has {b!r}, the directory's job {a!r}"


def describe(job: dict[str, Any]) -> str:
    return f"{job.get('dataset')} {job.get('model')} {job.get('weights')}, seed {job.get('seed')}, {job.get('epochs')} epochs"


def check(path: Path, job: dict[str, Any], resume: bool, force: bool) -> None:
    """Raise UsageError if the job may not run in `path` (never writes)."""
    if resume:
        if not path.is_dir():
            raise UsageError(f"--resume: {path} does not exist (nothing to continue)")
        old = _job_of(path)
        if old is None:
            raise UsageError(f"--resume: {path} is not a bitflip run directory (no readable {JOB})")
        diff = _first_difference(old, job)
        if diff:
            raise UsageError(f"--resume: {path} holds another job ({describe(old)}): {diff}")
        return
    if not path.exists() or not any(p.name != LOCK for p in path.iterdir()) or force:
        return
    old = _job_of(path)
    if old is not None:
        raise UsageError(
            f"--out {path} holds a run ({describe(old)}): --resume to continue it, --force to move "
            "it aside, or another --out"
        )
    raise UsageError(
        f"--out {path} is not empty and is not a bitflip run: choose another --out (or --force to move "
        "its contents aside)"
    )


def move_aside(path: Path) -> Path:
    """Rename a non-empty directory to DIR.old-N (the first free N); returns the new name."""
    n = 1
    while (aside := path.with_name(f"{path.name}.old-{n}")).exists():
        n += 1
    path.rename(aside)
    return aside


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class RunDir:
    """Open (create, or continue with resume) a checked run directory."""

    def __init__(self, path: Path, job: dict[str, Any], resume: bool = False, force: bool = False):
        self.path = Path(path)
        self.moved_aside: Path | None = None
        self._lock: IO[bytes] | None = None
        if (self.path / LOCK).exists():  # a run made it: before --force moves anything, is it running?
            self._take_lock()
        if force and self.path.is_dir() and any(p.name != LOCK for p in self.path.iterdir()):
            self._release_lock()
            self.moved_aside = move_aside(self.path)
        # the topmost directory this run makes (None: it existed): discard() removes it again
        self.created: Path | None = None
        for d in (self.path, *self.path.parents):
            if d.exists():
                break
            self.created = d
        self.path.mkdir(parents=True, exist_ok=True)
        if self._lock is None:
            self._take_lock()
        if not resume:
            self.write_json(JOB, {"job": job, "created": time.strftime("%Y-%m-%dT%H:%M:%S")})
        self._events = open(self.path / "events.jsonl", "a")  # noqa: SIM115 (open for the run; close())

    def event(self, rec: dict[str, Any]) -> None:
        self._events.write(json.dumps({"t": round(time.time(), 3), **rec}) + "\n")
        self._events.flush()

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=METRIC_FIELDS)
        w.writeheader()
        for row in rows:
            w.writerow({k: row.get(k, "") for k in METRIC_FIELDS})
        _replace(self.path / "metrics.csv", buf.getvalue().encode())

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        _replace(self.path / name, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())

    def write_model(self, planes: list[tuple[int, str, np.ndarray]], cfg: dict[str, Any]) -> None:
        # "t": the pool rule's thresholds, signed
        arrays: dict[str, Any] = {
            f"layer{i}_{name}": np.asarray(p, dtype=np.uint32).view(np.int32 if name == "t" else np.uint32)
            for i, name, p in planes
        }
        buf = io.BytesIO()
        np.savez(buf, config=json.dumps(cfg), **arrays)
        _replace(self.path / "model.npz", buf.getvalue())

    def _take_lock(self) -> None:
        if fcntl is None:
            return
        f = open(self.path / LOCK, "ab")  # noqa: SIM115 (held for the run; _release_lock())
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            raise UsageError(
                f"{self.path} is in use by another bitflip run: wait for it to end, or pick another --out"
            ) from None
        self._lock = f

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file drops the flock
            self._lock = None

    def close(self) -> None:
        self._events.close()
        self._release_lock()

    def discard(self) -> None:
        """Undo opening a run that never started (bad input found at the board: nothing
        answered, another board, bitflip not deployed): the directories it made are removed,
        contents moved aside by --force are put back. A directory that existed is kept."""
        import shutil

        self.close()
        if self.created is not None:
            shutil.rmtree(self.created, ignore_errors=True)
        elif self.moved_aside is not None:
            shutil.rmtree(self.path, ignore_errors=True)
        else:  # a directory that existed and stays: leave no lock file in it either
            (self.path / LOCK).unlink(missing_ok=True)
        if self.moved_aside is not None and not self.path.exists():
            self.moved_aside.rename(self.path)


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every record in a run directory's events.jsonl, in order (a line cut short when the
    host was killed is skipped)."""
    events = Path(path) / "events.jsonl"
    out: list[dict[str, Any]] = []
    if not events.is_file():
        return out
    for line in events.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def read_epoch_records(path: Path) -> tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]]:
    """The last epoch and eval record of every epoch in a run directory (later records of an
    epoch, e.g. one redone after a resume, replace earlier ones)."""
    epochs: dict[int, dict[str, Any]] = {}
    evals: dict[int, dict[str, Any]] = {}
    for rec in read_records(path):
        try:
            if rec.get("ev") == "epoch":
                epochs[int(rec["epoch"])] = rec
            elif rec.get("ev") == "eval":
                evals[int(rec["epoch"])] = rec
        except (KeyError, TypeError, ValueError):
            continue
    return epochs, evals
