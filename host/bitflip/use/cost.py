"""What one `Model.predict()` costs on a Pico (estimated, not measured on a board).

The board's encoding kernels (firmware/bitflip/encode.py: copy, deskew, crop, pool, bit
levels) run as the exact armv6m machine code mpy-cross emits, in the emulator
(bitflip.armv6m), on the sample given; the forward pass is priced by the energy model's
kernel costs (bitflip.measure.energy.Model.forward, emulated asm_thumb/viper cycles per word); the
interpreter work of Model.predict itself is an assumption (PREDICT_STATEMENTS statements and
PREDICT_CALLS calls at the interpreter terms calibrated on the genuine firmware,
pico_calibration.json; formerly bytecode ops at
energy.ASSUMPTIONS' cycles per op). The per-sample kernel work (words XOR-popcounted,
bytes encoded) is returned too, so a recalibrated cost model can price it again."""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import numpy as np

from ..armv6m import emu
from ..armv6m.measure import FIRMWARE
from ..armv6m.mpy import Mpy, find_function, load_module
from ..bitplanes import pack_bits
from ..boards import load
from ..device import spec
from ..measure import energy
from ..measure.calibrate import load_calibration
from .modelfile import ModelFile

# estimate, read off model.py / encode.py / rule.py: statements of Model.predict, Encoder.encode and
# scale, Trainer.forward's loop; calls: those functions and the layer forward
PREDICT_STATEMENTS = 22
PREDICT_CALLS = 5
DIV_CYCLES = 40  # estimate: mp_small_int_floor_divide via the RP2040's hardware divider (SIO), call included
SUBSCRIPT_CYCLES = 150  # estimate: values[i] of a list/array through the runtime, per feature (not emulated)


@cache
def _encode_mpy() -> Mpy:
    return load_module(FIRMWARE / "encode.py")


def _run(name: str, args: list[Any]) -> emu.Run:
    """One emulated call; viper's floor division (a runtime helper) is answered here and
    charged DIV_CYCLES."""
    mpy = _encode_mpy()
    orig = emu._ViperRuntime._on_stub
    divs = [0]

    def stub(self: Any, uc: Any, addr: int, size: int, data: object) -> None:
        if (addr - emu.STUBS) // 4 == 46:  # small_int_floor_divide(a, b)
            from unicorn.arm_const import UC_ARM_REG_R0, UC_ARM_REG_R1

            a, b = (uc.reg_read(r) for r in (UC_ARM_REG_R0, UC_ARM_REG_R1))
            a, b = a - ((a >> 31) << 32), b - ((b >> 31) << 32)
            uc.reg_write(UC_ARM_REG_R0, (a // b) & 0xFFFFFFFF)
            divs[0] += 1
            self.calls += 1
            return
        orig(self, uc, addr, size, data)

    emu._ViperRuntime._on_stub = stub  # type: ignore[method-assign,assignment]
    try:
        r = emu.run_function(mpy, find_function(mpy, name), args, max_instructions=200_000_000)
    finally:
        emu._ViperRuntime._on_stub = orig  # type: ignore[method-assign]
    return emu.Run(
        ret=r.ret,
        instructions=r.instructions,
        cycles=r.cycles + divs[0] * DIV_CYCLES,
        mix=r.mix,
        runtime_calls=r.runtime_calls,
    )


def encode_cycles(mf: ModelFile, sample: np.ndarray) -> dict[str, int]:
    """Emulated armv6m cycles of each encoding step of one raw sample (a uint8 row for
    scaling "none": the bytes fast path)."""
    out: dict[str, int] = {}
    n = mf.n_features
    feat = mf.scaling.apply(np.asarray(sample)[None, :])[0].astype(np.uint8)
    if mf.scaling.kind == "none":
        out["scale"] = _run("copy8", [feat.copy(), n, np.zeros(n, np.uint8)]).cycles
    else:
        out["scale"] = n * SUBSCRIPT_CYCLES  # estimate: the runtime subscript dominates
    side = math.isqrt(n)
    img = feat.copy()
    for name, arg in mf.encoding.steps:
        dst = np.zeros(n, np.uint8)
        if name == "deskew":
            r = _run("deskew", [img, dst, side, np.zeros(2 * side, np.uint32)])
        elif name == "crop":
            r = _run("crop", [img, dst, side, arg])
            side = arg
        else:
            r = _run("pool", [img, dst, side, arg])
            side //= arg
        out[name] = out.get(name, 0) + r.cycles
        img = dst
    m = side * side if mf.encoding.steps else n
    nl = len(mf.encoding.thresholds)
    nw = spec.words(m * nl)
    r = _run(
        "levels", [img[:m].copy(), m, np.array(mf.encoding.thresholds, np.uint16), nl, np.zeros(nw, np.uint32), nw]
    )
    out["levels"] = r.cycles
    keep = mf.encoding.keep
    if keep:  # mi:PCT: the kept bits gathered from the full row
        kw = spec.words(len(keep))
        full = pack_bits(np.concatenate([img[:m] >= t for t in mf.encoding.thresholds]))
        r = _run("gather", [full, np.array(keep, np.uint16), len(keep), np.zeros(kw, np.uint32), kw])
        out["gather"] = r.cycles
    return out


def predict_work(mf: ModelFile) -> dict[str, int]:
    """Kernel work of one predict: words XOR-popcounted per layer and in all, bytes encoded."""
    ls = spec.layers(mf.cfg)
    per_layer = [spec.words(n_in) * n_out for n_in, n_out, _ in ls]
    return {
        "fwd_words": sum(per_layer),
        "fwd_words_per_layer": per_layer,
        "features": mf.n_features,
        "input_bits": mf.sizes[0],
        "neurons": sum(n_out for _, n_out, _ in ls),
    }


def pico_estimate(mf: ModelFile, sample: np.ndarray, cores: int = 1) -> dict[str, Any]:
    """Estimated Pico (RP2040, 125 MHz, asm_thumb forward) time of one Model.predict."""
    board = load("pico")
    kind = "ternary" if mf.cfg.get("weights") == "ternary" else "binary"
    model = energy.Model("rp2040", str(board.data.get("kernel", "asm_thumb")), board.clock_hz, cores)
    fwd = model.forward(mf.sizes, kind, split=cores > 1)
    enc = encode_cycles(mf, sample)
    terms = load_calibration()["terms"]
    ops = PREDICT_STATEMENTS * float(terms["statement_cycles"])
    calls = (PREDICT_CALLS + len(enc) + 1) * float(terms["call_cycles"])  # Python calls, encode kernels, forward
    total = fwd["dense"] + fwd["other"] + sum(enc.values()) + ops + calls
    return {
        "board": "pico",
        "clock_hz": board.clock_hz,
        "cores": cores,
        "cycles": round(total),
        "us": round(total / board.clock_hz * 1e6, 1),
        "forward_dense_cycles": round(fwd["dense"]),
        "forward_other_cycles": round(fwd["other"]),
        "encode_cycles": enc,
        "interpreter_cycles": round(ops + calls),
        "work": predict_work(mf),
        "source": "estimate: encode kernels emulated (armv6m machine code from mpy-cross, floor divisions "
        f"{DIV_CYCLES} cycles each), forward from kernel_costs.json via energy.Model.forward, "
        f"{PREDICT_STATEMENTS} statements and {PREDICT_CALLS} calls + one native call per kernel at the interpreter "
        "terms calibrated on genuine v1.28.0 firmware (pico_calibration.json)",
    }
