"""Per-word armv6m cost of the firmware kernels, measured on their real machine code.

Each kernel has a case builder: random inputs of a given size, the argument list the
device code takes, and a numpy check of what the code wrote/returned. `measure_kernel`
runs a case at `words` and at `2 * words` words per row and divides the difference by the
extra words, so entry, argument conversion and per-row overheads cancel and what is left is
the inner-loop cost per 32-bit word. `row_cost` gives the other view: the whole function
(entry, per-row work, tails) for a concrete layer shape, i.e. what one call costs.

Variants: "viper" runs firmware/bitflip/kernels.py, "asm" runs the asm_thumb twin in
firmware/bitflip/kernels_thumb.py (through its raw 4-argument entry; the Python wrapper that
packs the parameter array is mirrored by `thumb_params`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import NotRequired, TypedDict

import numpy as np

from .emu import Run, run_function
from .mpy import Mpy, find_function, load_module

FIRMWARE = Path(__file__).resolve().parents[3] / "firmware" / "bitflip"
SOURCES = {"viper": FIRMWARE / "kernels.py", "asm": FIRMWARE / "kernels_thumb.py"}
# kernels whose viper variant lives in a module of its own (the Pico does not load it)
VIPER_MODULE = {"dense_argmax": FIRMWARE / "kernels_fast.py"}
# kernel name -> {variant: function name in that variant's file}
FUNCTIONS: dict[str, dict[str, str]] = {
    "dense_binary": {"viper": "dense_binary", "asm": "dense_binary_asm"},
    "dense_ternary": {"viper": "dense_ternary"},
    "flip_row": {"viper": "flip_row", "asm": "flip_row_asm"},
    "dense_argmax": {"viper": "dense_argmax", "asm": "dense_argmax_asm"},
}
M32 = 0xFFFFFFFF


class KernelCost(TypedDict):
    instructions_per_word: float
    cycles_per_word: float
    ok: bool  # both runs matched numpy
    error: NotRequired[str]  # what differed, when not ok


class LayerCost(TypedDict):
    instructions: int
    cycles: int
    instructions_per_word: float
    cycles_per_word: float
    runtime_calls: int
    ok: bool


@dataclass
class Case:
    args: list[np.ndarray | int]
    check: Callable[[Run], str | None]  # None when the run matches numpy, else what differs
    words: int  # 32-bit words of input the call processes


def thumb_params(size: int, *values: int) -> np.ndarray:
    """The parameter block kernels_thumb's wrappers pass as the 4th argument: the scalar
    arguments, then scratch words the asm code uses for its own state (mirrors _PB / _PF)."""
    p = np.zeros(size, np.int32)
    p[: len(values)] = values
    return p


def _rand(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.integers(0, 1 << 32, shape, dtype=np.uint32)


def _out_check(out: np.ndarray, ref: np.ndarray) -> Callable[[Run], str | None]:
    def check(_: Run) -> str | None:
        bad = np.flatnonzero(out.astype(np.int64) != ref)
        return None if not bad.size else f"out[{bad[0]}] = {out[bad[0]]}, numpy says {ref[bad[0]]}"

    return check


def case_dense_binary(rng: np.random.Generator, nw: int, nout: int, variant: str) -> Case:
    x, w = _rand(rng, nw), _rand(rng, nout, nw)
    nbits = 32 * nw - int(rng.integers(0, 32)) if nw else 0  # nbits is only an offset here
    out = np.zeros(nout, np.int32)
    ref = nbits - 2 * np.bitwise_count(x ^ w).sum(axis=1, dtype=np.int64)
    if variant == "asm":
        args: list[np.ndarray | int] = [x, w, out, thumb_params(8, nw, nout, nbits)]
    else:
        args = [x, w, out, nw, nout, nbits]
    return Case(args, _out_check(out, ref), nw * nout)


def case_dense_argmax(
    rng: np.random.Generator, nw: int, nout: int, variant: str, lo: int = -1, hi: int = -1, base: int = 0
) -> Case:
    """dense_argmax (both variants take the same block): the values, the winner and the best
    row of [lo, hi) (default: the middle third of the rows) against numpy."""
    x, w = _rand(rng, nw), _rand(rng, nout, nw)
    nbits = 32 * nw - int(rng.integers(0, 32)) if nw else 0
    if lo < 0:
        lo, hi = base + nout // 3, base + (2 * nout) // 3
    out = np.zeros(nout, np.int32)
    ref = nbits - 2 * np.bitwise_count(x ^ w).sum(axis=1, dtype=np.int64)
    g = np.arange(nout) + base
    win = int(g[np.argmax(ref)]) if nout else -1
    sel = (g >= lo) & (g < hi)
    best = int(g[sel][np.argmax(ref[sel])]) if sel.any() else -1
    p = thumb_params(16, nw, nout, nbits, lo, hi, base)

    def check(run: Run) -> str | None:
        err = _out_check(out, ref)(run)
        if err:
            return err
        got = (run.ret, int(p[6]), int(p[8]))
        if got != (win, win, best):
            return f"(returned, winner, best in range) = {got}, numpy says {(win, win, best)}"
        if nout and int(p[7]) != int(ref[win - base]):
            return "winner value differs"
        if best >= 0 and int(p[9]) != int(ref[best - base]):
            return "best-in-range value differs"
        return None

    return Case([x, w, out, p], check, nw * nout)


def case_dense_ternary(rng: np.random.Generator, nw: int, nout: int, variant: str) -> Case:
    x, s, z = _rand(rng, nw), _rand(rng, nout, nw), _rand(rng, nout, nw)
    out = np.zeros(nout, np.int32)
    ref = np.bitwise_count(z).sum(axis=1, dtype=np.int64) - 2 * np.bitwise_count((x ^ s) & z).sum(
        axis=1, dtype=np.int64
    )
    return Case([x, s, z, out, nw, nout], _out_check(out, ref), nw * nout)


def _hash32(v: np.ndarray) -> np.ndarray:
    # lowbias32, as kernels.hash32 / bitflip.reference.hash32 (kept local: this module checks
    # the device code, it should not inherit a bug from the host twin)
    v = v.astype(np.uint32)
    with np.errstate(over="ignore"):
        v ^= v >> np.uint32(16)
        v *= np.uint32(0x7FEB352D)
        v ^= v >> np.uint32(15)
        v *= np.uint32(0x846CA68B)
        v ^= v >> np.uint32(16)
    return v


def flip_row_reference(
    w: np.ndarray, row: int, x: np.ndarray, n_in: int, up: int, k: int, st0: int, layer: int
) -> tuple[np.ndarray, int]:
    """What kernels.flip_row does, in numpy: returns (new row, number of flips)."""
    nw = x.size
    key = _hash32(np.array([(st0 + (layer << 20) + row) & M32], np.uint32))[0]
    wrong = x ^ w[row] ^ np.uint32(0 if up else M32)
    if n_in & 31:
        wrong[-1] &= np.uint32((1 << (n_in & 31)) - 1)
    i = np.arange(nw, dtype=np.uint64)
    for t in range(k):
        wrong &= _hash32((int(key) + (t * nw + i) * 0x9E3779B9) & M32)
    return w[row] ^ wrong, int(np.bitwise_count(wrong).sum())


def case_flip_row(
    rng: np.random.Generator, nw: int, nout: int, variant: str, k: int = 2, up: int = 1, pad: int = 5
) -> Case:
    # one row of a (nout x nw) plane; the other rows must come back untouched
    w, x = _rand(rng, max(nout, 1), nw), _rand(rng, nw)
    n_in = max(32 * nw - pad, 0)  # `pad` padding bits in the last word, 0 in both planes
    if nw and pad:
        w[:, -1] &= np.uint32((1 << (32 - pad)) - 1)
        x[-1] &= np.uint32((1 << (32 - pad)) - 1)
    row, layer = nout // 2, 1
    st = np.array([rng.integers(0, 1 << 32)], np.uint32)
    before = w.copy()
    new_row, flips = flip_row_reference(w, row, x, n_in, up, k, int(st[0]), layer)

    def check(run: Run) -> str | None:
        expect = before.copy()
        expect[row] = new_row
        if run.ret != flips:
            return f"returned {run.ret} flips, numpy says {flips}"
        if not np.array_equal(w, expect):
            return "weight plane differs from numpy"
        return None

    if variant == "asm":
        return Case([w, x, st, thumb_params(16, row, nw, n_in, up, k, layer)], check, nw)
    return Case([w, row, x, nw, n_in, up, k, st, layer], check, nw)


CASES: dict[str, Callable[..., Case]] = {
    "dense_binary": case_dense_binary,
    "dense_ternary": case_dense_ternary,
    "flip_row": case_flip_row,
    "dense_argmax": case_dense_argmax,
}


@cache
def _module(variant: str, arch: str = "armv6m") -> Mpy:
    return load_module(SOURCES[variant], arch)


@dataclass
class CaseRun:
    run: Run
    error: str | None  # None when the results match numpy
    args: list[np.ndarray | int]  # the arguments after the call (buffers updated in place)
    words: int  # 32-bit input words the call processed


def run_case(kernel: str, variant: str, nw: int, nout: int, seed: int = 0, **opts: int) -> CaseRun:
    """One emulated call on random inputs (the same inputs for every variant, given the
    seed), checked against numpy. `opts` go to the case builder (flip_row: k, up, pad)."""
    mpy = (
        load_module(VIPER_MODULE[kernel], "armv6m")
        if variant == "viper" and kernel in VIPER_MODULE
        else _module(variant)
    )
    fn = find_function(mpy, FUNCTIONS[kernel][variant])
    case = CASES[kernel](np.random.default_rng(seed), nw, nout, variant, **opts)
    run = run_function(mpy, fn, case.args)
    return CaseRun(run, case.check(run), case.args, case.words)


def measure_kernel(name: str, words: int = 48, variant: str = "viper", rows: int = 2, seed: int = 0) -> KernelCost:
    """Inner-loop cost per 32-bit word: (cost at 2*words - cost at words) / extra words.

    `words` should be a multiple of the kernels' unrolling (8 for viper dense_binary, 3 for
    the asm one; the default 48 is both) so no tail code lands in the difference.
    `ok` is True when both runs matched numpy (an ISA violation or a fault raises)."""
    a, b = run_case(name, variant, words, rows, seed), run_case(name, variant, 2 * words, rows, seed + 1)
    small, big, err1, err2 = a.run, b.run, a.error, b.error
    extra = b.words - a.words
    if extra <= 0:
        raise ValueError("measure_kernel needs words >= 1 and rows >= 1")
    res: KernelCost = {
        "instructions_per_word": (big.instructions - small.instructions) / extra,
        "cycles_per_word": (big.cycles - small.cycles) / extra,
        "ok": err1 is None and err2 is None,
    }
    if err1 or err2:
        res["error"] = err1 or err2 or ""
    return res


def row_cost(name: str, n_in: int, rows: int, variant: str = "viper", seed: int = 0) -> LayerCost:
    """Everything in the function (entry, per-row work, tails) for one call on a layer of
    `rows` outputs over `n_in` inputs, per word and per call. The runtime calls a viper
    entry makes (one argument conversion per typed argument) count only as the call
    instruction: `runtime_calls` says how many there were."""
    nw = (n_in + 31) >> 5
    r = run_case(name, variant, nw, rows, seed)
    words = max(r.words, 1)
    return {
        "instructions": r.run.instructions,
        "cycles": r.run.cycles,
        "instructions_per_word": r.run.instructions / words,
        "cycles_per_word": r.run.cycles / words,
        "runtime_calls": r.run.runtime_calls,
        "ok": r.error is None,
    }
