"""The firmware package as a target board loads it, runnable under the MicroPython unix port.

The unix port is x64 and has no inline Thumb assembler, so the rp2 module set is imported with
two stand-ins: a `sys` whose platform, native arch and thread model are the board's (the
firmware reads only those; `as_target` is the MicroPython prelude that installs it), and
`kernels_thumb.py` with the body of every `@micropython.asm_thumb` function replaced by a call
to its viper twin (`asm_standins`; the machine code itself is checked in the armv6m emulator,
tests/test_armv6m.py). Everything else in kernels_thumb.py — its top level, the wrappers and
their parameter blocks — runs as written.

Used by tests/test_targets.py (every module's top level runs per target) and by
bitflip.armv6m.trace (interpreter work of the Pico's training path).
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parents[3] / "firmware" / "bitflip"

# asm_thumb function -> MicroPython source of a stand-in body with the asm function's arguments
# (r0..r3): the viper twin it is bit-identical to (K = bitflip.kernels)
STANDINS = {
    "dense_binary_asm": "K.dense_binary(r0, r1, r2, r3[0], r3[1], r3[2])\n    return 0",
    "flip_row_asm": "return K.flip_row(r0, r3[0], r1, r3[1], r3[2], r3[3], r3[4], r2, r3[5])",
    "dense_argmax_asm": "return KF.dense_argmax(r0, r1, r2, r3)",
    "update_row_b2_asm": "return K.update_row(2, r0, r1, r3[1], r2, r3[2], r3[3], r3[4], r3[5], r3[6], r3, r3[7])",
}

# (sys.platform, sys.implementation._mpy native arch number, _thread) of each target
TARGETS = {
    "rp2": ("rp2", 4, "unsafe"),  # RP2040: armv6m, no GIL
    "esp32": ("esp32", 10, "GIL"),  # xtensawin
    "esp32c3": ("esp32", 11, "GIL"),  # rv32imc
}
ARM_ONLY = ("kernels_thumb",)


def asm_standins(source: str) -> str:
    """kernels_thumb.py with every asm_thumb body replaced by its viper twin; the rest as is."""
    tree = ast.parse(source)
    lines = source.splitlines()
    out: list[str] = []
    pos = 0
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        if not any(ast.unparse(d) == "micropython.asm_thumb" for d in node.decorator_list):
            continue
        if node.name not in STANDINS:
            raise AssertionError(f"kernels_thumb.{node.name} has no viper stand-in: add it to STANDINS")
        start = min(d.lineno for d in node.decorator_list) - 1
        assert node.end_lineno is not None
        out += lines[pos:start]
        args = ", ".join(a.arg for a in node.args.args)
        out += [f"def {node.name}({args}):", f"    {STANDINS[node.name]}"]
        pos = node.end_lineno
    out += lines[pos:]
    # kernels_fast is imported at module level (a per-call import raced on the worker thread);
    # firmware older than the fast path (the calibration commit's, traced by
    # benchmarks/pico_calibration.py) has none: without the guard its kernels_thumb would fail
    # to import and the trace would silently fall back to the viper kernels
    head = (
        "from bitflip import kernels as K\n"
        "try:\n"
        "    from bitflip import kernels_fast as KF\n"
        "except ImportError:\n"
        "    KF = None\n"
    )
    return head + "\n".join(out) + "\n"


def target_package(
    tmp: Path, target: str, transform: Callable[[str, str], str] | None = None, src: Path = FIRMWARE
) -> Path:
    """A copy of the firmware package as the target loads it (tmp/lib/bitflip: the board's view
    of the sources, build.device_source); returns tmp/lib. `transform(module name, source)`
    rewrites each module's source after the stand-ins."""
    from ..link.build import device_source

    root = tmp / "lib"
    pkg = root / "bitflip"
    pkg.mkdir(parents=True)
    for f in sorted(src.glob("*.py")):
        text = device_source(f.read_text())
        if f.stem in ARM_ONLY:
            if target != "rp2":
                continue
            text = asm_standins(text)
        if transform is not None:
            text = transform(f.stem, text)
        (pkg / f.name).write_text(text)
    return root


def as_target(target: str) -> str:
    """MicroPython prelude: from here on `import sys` gives the target's platform."""
    platform, arch, thread = TARGETS[target]
    return f"""
import sys
class _Sys:
    pass
class _Impl:
    pass
_s = _Sys()
for _k in dir(sys):
    try:
        setattr(_s, _k, getattr(sys, _k))
    except AttributeError:
        pass
_i = _Impl()
_i.name = 'micropython'
_i.version = sys.implementation.version
_i._mpy = ({arch} << 10) | (sys.implementation._mpy & 0x3FF)
_i._thread = {thread!r}
_s.implementation = _i
_s.platform = {platform!r}
sys.modules['sys'] = _s
import sys
"""


def modules(target: str, src: Path = FIRMWARE) -> list[str]:
    names = sorted(f.stem for f in src.glob("*.py") if f.stem != "__init__")
    return [n for n in names if target == "rp2" or n not in ARM_ONLY]
