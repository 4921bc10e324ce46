"""A pytest plugin (entry point pytest11) so that the README's device-test line works as
written: `pytest -m device --port /dev/ttyACM0 --board pico`.

pytest finds its rootdir and configuration file from the command line *before* any conftest
can declare --port: the value after a space, an existing path such as /dev/ttyACM0, is taken
for a test path, the rootdir becomes /dev, the project's configuration is not read, and
tests/conftest.py, which declares --port, is never loaded ("unrecognized arguments").
`--port=/dev/ttyACM0` works. So when pytest found no configuration file although the
invocation directory (or a parent) holds a pyproject.toml with [tool.pytest.ini_options],
and an option of ours was given its value after a space, pytest is started again with
`--port=VALUE`: the same run, with the rootdir it would have found. Otherwise this plugin
does nothing."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

OPTIONS = ("--port", "--board")  # declared in tests/conftest.py
_GUARD = "BITFLIP_PYTEST_REEXEC"


def joined(args: list[str]) -> list[str]:
    """['--port', 'P', ...] -> ['--port=P', ...] for OPTIONS (anything else unchanged)."""
    out: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            out += args[i:]
            break
        if a in OPTIONS and i + 1 < len(args) and not args[i + 1].startswith("-"):
            out.append(f"{a}={args[i + 1]}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def _project_config(start: Path) -> Path | None:
    for d in (start, *start.parents):
        p = d / "pyproject.toml"
        try:
            if "[tool.pytest.ini_options]" in p.read_text():
                return p
        except OSError:
            continue
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: Any, args: list[str]) -> None:
    if early_config.inipath is not None or os.environ.get(_GUARD):
        return
    given = [str(a) for a in early_config.invocation_params.args]
    fixed = joined(given)
    if fixed == given or _project_config(early_config.invocation_params.dir) is None:
        return
    os.environ[_GUARD] = "1"
    capman = early_config.pluginmanager.getplugin("capturemanager")
    if capman is not None:  # pytest already captures fds 1 and 2: give them back to the new process
        capman.stop_global_capturing()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "pytest", *fixed])
