"""The firmware type check of `make lint` (firmware/typecheck/check.py: mypy against each
port's own MicroPython stubs) passes on the firmware and catches the bug class that shipped:
`array("i", 8)`, which CPython's array accepts nowhere either but MicroPython fails on only
when the line runs ("'int' object isn't iterable" on every Pico train, commit 0b273a8).

The probes run the same command, configuration and stubs as `make lint`, on a tiny package
named `bitflip` like the firmware (only the cache is the test's own).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT

CHECK = ROOT / "firmware" / "typecheck" / "check.py"

pytestmark = pytest.mark.typecheck


def check(port: str, files: list[Path], cache: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MYPY_CACHE_DIR=str(cache))
    return subprocess.run(
        [sys.executable, str(CHECK), port, *map(str, files)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
        check=False,
    )


def errors(out: str) -> dict[str, set[int]]:
    """file name -> lines with an error."""
    found: dict[str, set[int]] = {}
    for m in re.finditer(r"^(.+?\.py):(\d+): error:", out, re.MULTILINE):
        found.setdefault(Path(m.group(1)).name, set()).add(int(m.group(2)))
    return found


def probe_package(tmp: Path, modules: dict[str, str]) -> list[Path]:
    pkg = tmp / "bitflip"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    files = []
    for name, source in modules.items():
        f = pkg / f"{name}.py"
        f.write_text(textwrap.dedent(source))
        files.append(f)
    return files


# each "# ERROR" line must be reported, and nothing else in these modules
PROBES = {
    # the shipped bug: kernels_thumb.py's parameter blocks, at module level
    "blocks_module": """\
        import micropython
        from array import array

        _PB = array("i", 8)  # ERROR
        _PF = array("i", [0] * 16)
        """,
    # the same in a method of an unannotated class (bodies are checked too)
    "blocks_method": """\
        from array import array


        class Worker:
            def __init__(self, n):
                self.ctl = array("i", [0, 0, 0, 0])
                self.pb = array("i", bytes(32))
                self.scratch = array("i", 16)  # ERROR
                self.rows = array("i", n)  # n is untyped: not known to be an int
        """,
    # viper: a ptr32 parameter takes any buffer or an address, not a list; the ports' own API
    "viper_calls": """\
        import micropython
        import time
        from array import array


        @micropython.viper
        def clear(p: ptr32, n: int) -> int:
            for i in range(n):
                p[i] = uint(0)
            return n


        buf = bytearray(32)
        clear(buf, 8)
        clear(array("i", [0] * 8), 8)
        clear(memoryview(buf)[4:], 4)
        clear([0] * 8, 8)  # ERROR
        clear(buf)  # ERROR
        t0 = time.ticks_ms()
        time.sleep_ms(1)
        time.ticks_diff(time.ticks_ms(), t0)
        micropython.heap_lock()
        micropython.heap_unlock()
        micropython.mem_total()  # ERROR
        """,
    # asm_thumb bodies: mnemonics, registers and labels come from firmware/typecheck/stubs
    "asm_body": """\
        import micropython
        from micropython import const

        _TYPE_CHECKING = const(0)
        if _TYPE_CHECKING:
            from asm_thumb import *

            loop = done = Label()


        @micropython.asm_thumb
        def count_down(r0):
            label(loop)
            sub(r0, 1)
            cmp(r0, 0)
            bne(loop)
            ldr(r1, [r0, 4])
            push({r4, r5})
            pop({r4, r5})
            mov(r4, r13)
            movv(r1, r0)  # ERROR
            mov(r16, r0)  # ERROR
            mov(1, r0)  # ERROR
            b(nowhere)  # ERROR
            label(done)
        """,
}


def expected(source: str) -> set[int]:
    return {i for i, line in enumerate(textwrap.dedent(source).splitlines(), 1) if line.endswith("# ERROR")}


def test_the_probes_fail_exactly_where_marked(tmp_path: Path) -> None:
    files = probe_package(tmp_path, PROBES)
    p = check("rp2", files, tmp_path / "cache")
    assert p.returncode == 1, p.stdout + p.stderr
    found = errors(p.stdout)
    assert found == {f"{name}.py": expected(src) for name, src in PROBES.items()}, p.stdout
    # the shipped bug is named for what it is
    assert re.search(
        r'blocks_module\.py:4: error: No overload variant of "array" matches argument types "str", "int"', p.stdout
    ), p.stdout


def test_the_fixed_blocks_pass(tmp_path: Path) -> None:
    files = probe_package(tmp_path, {"blocks": PROBES["blocks_module"].replace('array("i", 8)', 'array("i", [0] * 8)')})
    for port in ("rp2", "esp32"):
        p = check(port, files, tmp_path / f"cache-{port}")
        assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.parametrize("port", ["rp2", "esp32"])
def test_the_firmware_passes(port: str, tmp_path: Path) -> None:
    p = check(port, [], tmp_path / "cache")
    assert p.returncode == 0, p.stdout + p.stderr
    n = len(list((ROOT / "firmware" / "bitflip").glob("*.py"))) - (port != "rp2")  # esp32: no kernels_thumb.py
    assert f"no issues found in {n} source files" in p.stdout
