"""Checks of the paths a user gives for output, made before anything is written: one
UsageError line (exit 2) instead of an OSError from deep inside, and nothing created."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import UsageError

NAME_MAX, PATH_MAX = 255, 4096  # Linux's limits, in bytes of the file system encoding


def _stat_problem(path: Path, option: str) -> None:
    """UsageError for a path the system refuses (a name too long, even where a folder before
    it does not exist yet, so that nothing is created before mkdir fails; a loop)."""
    if len(os.fsencode(path)) > PATH_MAX or any(len(os.fsencode(part)) > NAME_MAX for part in path.parts):
        raise UsageError(f"{option} {str(path)[:40]}...: file name too long (at most {NAME_MAX} bytes a name)")
    try:
        path.exists()
    except OSError as e:
        raise UsageError(f"{option} {path}: {e.strerror or e}") from None


def check_dir(path: Path, option: str) -> None:
    """`path` must be a directory or creatable as one, under a writable directory."""
    path = Path(path)
    _stat_problem(path, option)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path} exists and is not a directory")
    parent = path.absolute()
    while not parent.exists():
        parent = parent.parent
    try:  # a probe entry, made and removed again: write permission is what the filesystem says
        if not parent.is_dir():
            raise OSError("not a directory")
        os.rmdir(tempfile.mkdtemp(prefix=".bitflip-probe-", dir=parent))
    except OSError as e:
        raise UsageError(f"{option} {path}: cannot create a directory under {parent} ({e.strerror or e})") from None


def check_file(path: Path, option: str, force: bool = False) -> None:
    """`path` must name a file that can be written: its folder exists, it is not a directory,
    and it does not exist yet unless force."""
    path = Path(path)
    _stat_problem(path, option)
    if not path.name or path.name in (".", ".."):
        raise UsageError(f"{option} {path}: give a file name")
    if path.is_dir():
        raise UsageError(f"{option} {path} is a directory: give a file name")
    if path.exists() and not force:
        raise UsageError(f"{option} {path} exists: pass --force to replace it")
    parent = path.absolute().parent
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: no such directory {parent}")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{option} {path}: cannot write in {parent}")
