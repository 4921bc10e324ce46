# Kernel selection: the asm_thumb kernels on rp2 boards running Arm code (RP2040, RP2350
# in Arm mode), the viper kernels everywhere else (ESP32, RP2350-RISC-V, the unix port).
# Both give identical results; callers use accel.dense_binary / accel.flip_row exactly as
# the kernels.* functions, and accel.dense_argmax / accel.update_b2 with parameter blocks
# (fast.py). `KIND` says which one was picked ("asm_thumb" or "viper").
import sys

from . import kernels

# MicroPython encodes the native architecture of the running port in sys.implementation._mpy
# bits 10..15 (py/persistentcode.h): 4..8 are the Thumb targets (armv6m .. armv7emdp), 11 is
# rv32imc. RISC-V rp2 builds report 'rp2' as well, so the platform alone is not enough.
_ARCH = (getattr(sys.implementation, "_mpy", 0) >> 10) & 0x3F
_THUMB = 4 <= _ARCH <= 8

dense_binary = kernels.dense_binary
flip_row = kernels.flip_row


def update_b2(s, aux, x, p):
    # binary2 row update with kernels_thumb.update_row_b2_asm's block p = [key word, row, nw,
    # n_in, up, k, ks, layer, ...]: p[0] is read as the step-key state (kernels.update_row's st)
    return kernels.update_row(2, s, aux, p[1], x, p[2], p[3], p[4], p[5], p[6], p, p[7])


KIND = "viper"

if sys.platform == "rp2" and _THUMB:
    try:
        from . import kernels_thumb
    except (ImportError, SyntaxError):  # a firmware built without asm_thumb
        kernels_thumb = None  # type: ignore[assignment]
    if kernels_thumb is not None:
        dense_binary = kernels_thumb.dense_binary
        flip_row = kernels_thumb.flip_row
        update_b2 = kernels_thumb.update_row_b2_asm
        KIND = "asm_thumb"


def _fast_forward():
    # the fast path's forward: the asm one on Thumb, else the viper twin (a module of its own,
    # so the Pico does not load it)
    if KIND == "asm_thumb":
        from . import kernels_thumb

        return kernels_thumb.dense_argmax_asm
    from .kernels_fast import dense_argmax

    return dense_argmax


dense_argmax = _fast_forward()
