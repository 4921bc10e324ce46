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

from .emu import EmuError, Run, run_function
from .isa import IsaError, check_thumb1, decode_reachable, listing
from .measure import FUNCTIONS, measure_kernel, row_cost, run_case
from .mpy import MpyError, compile_mpy, find_function, load_module, parse_mpy

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
