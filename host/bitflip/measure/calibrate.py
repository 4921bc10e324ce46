"""The Pico per-sample model, calibrated on the genuine firmware.

Per training sample, on one core:

    cycles = sum over native calls of their emulated cycles     (exact per call: bitflip.armv6m.price)
           + statement_cycles x statements executed in bytecode  (bitflip.armv6m.trace)
           + call_cycles x call expressions executed             (bytecode functions, natives, builtins)

and with the dual-core split of dual.py the two halves of a split layer run in parallel: the
sample costs core 0's whole path plus what core 1's job (its loop body, its Python and its
kernel) takes beyond core 0's work between handing the job over and starting to wait, plus
a bus-contention penalty on the overlapped kernel cycles.

The emulator gives the kernels' cycles; the trace gives the interpreter's work; the two free
terms (statement_cycles, call_cycles) are fitted to board time measured on the genuine
MicroPython v1.28.0 RPI_PICO firmware in a cycle-counting RP2040 emulator (125 MHz, zero-wait
memory: a lower bound for silicon), notes/micropython.md section 6.1. A call's price includes
what the emulator cannot see of a native call (the VM's dispatch and the runtime's argument
conversions), so there is no separate per-native-call term: the measurements cannot tell the
kinds of call apart.

`benchmarks/pico_calibration.py --write` traces the calibration runs and the bench workloads,
fits the terms and writes host/bitflip/measure/pico_calibration.json, which costmodel.py and
`bitflip bench` read.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

CALIBRATION_PATH = Path(__file__).resolve().parent / "pico_calibration.json"
LABEL = (
    "estimated, calibrated on genuine v1.28.0 firmware in a cycle-counting emulator (zero-wait memory: a lower bound)"
)
CLOCK_HZ = 125_000_000

# board time per training sample measured on the genuine firmware (notes/micropython.md 6.1):
# `bitflip train --board pico --dataset D [--limit N] --epochs 1` with the default model
GENUINE: dict[str, dict[str, Any]] = {
    "digits": {
        "dataset": "digits",
        "limit": 0,
        "cores": 1,
        "ms": 0.835,
        "what": "digits 10x20 binary2, 1 epoch (1437 samples), one core (200 rows < 256)",
    },
    "mnist2000": {
        "dataset": "mnist",
        "limit": 2000,
        "cores": 2,
        "ms": 2.13,
        "what": "MNIST 10x96 binary2, 2,000 samples, dual-core forward",
    },
    "mnist1000": {
        "dataset": "mnist",
        "limit": 1000,
        "cores": 2,
        "ms": 1.95,
        "what": "MNIST 10x96 binary2, 1,000 samples, dual-core forward",
    },
}
FIT_ON = ("digits", "mnist2000")  # the brief's two figures; mnist1000 is the out-of-sample check
# two viper jobs on two cores ran 1.96-2.00x faster than serially on the genuine firmware
DUAL_BUS_PENALTY = 0.01
# the module-level `for i in range(10000): pass` on the genuine firmware: 45.9 ms
MODULE_LOOP_CYCLES = 45.9e-3 * CLOCK_HZ / 10000

FORWARD = (
    "dense_binary",
    "dense_binary_asm",
    "dense_ternary",
    "argmax",
    "load_row",
    "sign_pack",
    "sub_thresholds",
    "dense_argmax",
    "dense_argmax_asm",
)
UPDATE = (
    "update_row",
    "flip_row",
    "flip_row_asm",
    "init_row",
    "step_key",
    "update_row_b2_asm",
    "learn_top",
    "learn_top_asm",
    "step_thresholds",
    "add_evidence",
    "flush_row",
)
VOTE = ("vote", "hidden_dirs")
SYNC = ("_spin", "_spin_ne")
LEADS = ("dense_argmax", "dense_argmax_asm")  # fast.py's leader / server kernel (block mode 1 / 2)


def _zero() -> dict[str, float]:
    return {"statements": 0.0, "ops": 0.0, "fcalls": 0.0, "builtin_calls": 0.0, "native_calls": 0.0}


def _add(d: dict[str, float], s: dict[str, float], w: float = 1.0) -> None:
    for k, v in s.items():
        d[k] = d.get(k, 0.0) + w * v


def _counts(
    seg: Any,
    core: int,
    lo: tuple[int, ...] | None = None,
    hi: tuple[int, ...] | None = None,
    natives: list[Any] | None = None,
) -> dict[str, float]:
    """Interpreter counts of a segment's core, or (core 0) of the part between two marks."""
    if lo is None or hi is None:
        nat = sum(1 for n in seg.natives if n[0] == core)
        return {
            "statements": seg.statements[core],
            "ops": seg.ops[core],
            "fcalls": seg.fcalls[core],
            "builtin_calls": seg.calls[core] - seg.fcalls[core] - nat,
            "native_calls": nat,
        }
    # the call expressions of Worker.start / wait are in layers.py, outside the marks, their
    # entries inside: a region's calls are its entries and natives (and any builtins)
    nat = sum(1 for n in natives or [] if n[0] == 0)
    calls = hi[4] - lo[4]
    fc = hi[3] - lo[3]
    return {
        "statements": hi[1] - lo[1],
        "ops": hi[2] - lo[2],
        "fcalls": fc,
        "builtin_calls": max(0, calls - fc - nat),
        "native_calls": nat,
    }


def profile(segments: list[Any], pre: list[Any] | None = None, n: int | None = None) -> dict[str, Any]:
    """Per-sample averages of traced segments (bitflip.armv6m.trace.Segment): interpreter counts
    per core, emulated kernel cycles per kernel and core, and the dual-core split's parts.
    `pre`: block prologues, amortised over the samples."""
    from ..armv6m.price import argmax_mode, price

    segs = list(segments) + list(pre or [])
    n = n or max(1, sum(1 for s in segments))
    kern: dict[str, Counter[str]] = {"0": Counter(), "1": Counter()}
    calls: dict[str, Counter[str]] = {"0": Counter(), "1": Counter()}
    interp = {"0": _zero(), "1": _zero()}
    par0, hand = _zero(), _zero()
    par0_k = hand_k = 0.0
    for s in segs:
        for core in (0, 1):
            _add(interp[str(core)], _counts(s, core))
        for core, name, args, extra in s.natives:
            c = price(name, args, extra)
            kern[str(core)][name] += c
            calls[str(core)][name] += 1
            if core == 0 and name in LEADS and argmax_mode(args[3]) == 1:
                # fast.py's two-core split inside one call: core 0's own rows (the same call
                # as one core) run beside core 1's serve call; the rest of the call (the GO,
                # the spin, the merge) is its own
                block = list(args[3])
                block[14] = 0
                par0_k += price(name, [*args[:3], block], extra)
        m = {mk[0]: mk for mk in s.marks}
        if "go" in m:
            # core 0: [start, go) and [wait, done) hand the job over; [go, wait) runs beside core 1
            for a, b, into in (("start", "go", hand), ("go", "wait", par0), ("wait", "done", hand)):
                nat = s.natives[m[a][5] : m[b][5]]
                _add(into, _counts(s, 0, m[a], m[b], nat))
                k = sum(price(x[1], x[2], x[3]) for x in nat if x[0] == 0)
                if into is par0:
                    par0_k += k
                else:
                    hand_k += k
    out: dict[str, Any] = {
        "samples": sum(1 for _ in segments),
        "interp": {c: {k: v / n for k, v in d.items()} for c, d in interp.items()},
        "kernels": {c: {k: v / n for k, v in sorted(d.items())} for c, d in kern.items()},
        "native_calls": {c: {k: v / n for k, v in sorted(d.items())} for c, d in calls.items()},
    }
    if par0_k or hand_k:
        out["parallel_core0"] = {**{k: v / n for k, v in par0.items()}, "kernel_cycles": par0_k / n}
        out["handover_core0"] = {**{k: v / n for k, v in hand.items()}, "kernel_cycles": hand_k / n}
    return out


def trace_profiles(trace: Any) -> dict[str, Any]:
    """The run's profile (all samples, as the board's busy time averages them), the steady
    state's (learning samples only: prototypes filled) and the sample mix."""
    samples = [s for s in trace.segments if s.tag == "sample"]
    pre = [s for s in trace.segments if s.tag == "pre"]
    learn = [s for s in samples if s.kind.startswith("learn")]
    # block prologues are per block: amortise them at the run's samples per block
    per_block = len(pre) / max(len(samples), 1)
    out = {
        "cores": trace.cores,
        "mix": trace.mix(),
        "digest": trace.digest,
        "run": profile(samples, pre),
        "steady": profile(learn, pre[: max(1, round(per_block * len(learn)))] if learn else [], len(learn)),
    }
    out["by_kind"] = {}
    for kind in sorted({s.kind for s in samples}):
        segs = [s for s in samples if s.kind == kind]
        out["by_kind"][kind] = profile(segs, pre[: max(1, round(per_block * len(segs)))])
    if trace.eval_segments:
        ev = [s for s in trace.eval_segments if s.tag == "sample"]
        epre = [s for s in trace.eval_segments if s.tag == "pre"]
        out["eval"] = profile(ev, epre)
    out["functions"] = {k: v for k, v in sorted(trace.functions.items(), key=lambda kv: -sum(kv[1]))}
    return out


def _sc(c: dict[str, float]) -> dict[str, float]:
    return {
        "statements": round(c["statements"], 2),
        "calls": round(c["fcalls"] + c["builtin_calls"] + c["native_calls"], 2),
    }


def interp_counts(one_core: dict[str, Any], dual: dict[str, Any]) -> dict[str, Any]:
    """Statements and calls per sample of each path (for estimates from device counters,
    energy.Model): an evaluation sample (forward only), a prototype-initialisation sample, a
    learning sample with one row update (correct winner) and with two (wrong winner), from a
    one-core trace; the dual-core hand-over's parts from a two-core trace."""
    bk = one_core["by_kind"]
    out: dict[str, Any] = {
        "eval": _sc(one_core["eval"]["interp"]["0"]),
        "init": _sc(bk["init"]["interp"]["0"]),
        "correct": _sc(bk["learn, correct winner"]["interp"]["0"]),
        "wrong": _sc(bk["learn, wrong winner"]["interp"]["0"]),
    }
    d = dual["run"]
    out["handover"] = {
        "core0": _sc(d["handover_core0"]),
        "parallel_core0": _sc(d["parallel_core0"]),
        "core1": _sc(d["interp"]["1"]),
        "sync_kernel_cycles": round(d["handover_core0"]["kernel_cycles"] + d["kernels"]["1"].get("_spin_ne", 0.0), 1),
    }
    out["source"] = "bitflip.armv6m.trace of the firmware's path: MNIST 10x96 binary2, one and two cores"
    return out


# --- the model ------------------------------------------------------------------------------
def _interp_cycles(c: dict[str, float], terms: dict[str, float]) -> tuple[float, float]:
    calls = c["fcalls"] + c["builtin_calls"] + c["native_calls"]
    return terms["statement_cycles"] * c["statements"], terms["call_cycles"] * calls


def estimate(prof: dict[str, Any], terms: dict[str, float], clock_hz: float = CLOCK_HZ) -> dict[str, float]:
    """Cycles and seconds of one sample of a profile, by part: forward (dense, argmax, row
    load on the calling core), update (row updates, prototype initialisation, step key),
    vote (hidden-layer votes), interpreter statements and calls, dual hand-over (start/wait on
    core 0, the sync kernels, what core 1 takes beyond core 0's parallel work, bus contention)."""
    k0 = prof["kernels"]["0"]
    parts = {"forward": 0.0, "update": 0.0, "vote": 0.0, "other_kernels": 0.0}
    for name, cyc in k0.items():
        if name in SYNC:
            continue
        part = (
            "forward"
            if name in FORWARD
            else "update"
            if name in UPDATE
            else "vote"
            if name in VOTE
            else "other_kernels"
        )
        parts[part] += cyc
    st, ca = _interp_cycles(prof["interp"]["0"], terms)
    hand = 0.0
    if "handover_core0" in prof:
        h, p0 = prof["handover_core0"], prof["parallel_core0"]
        hs, hc = _interp_cycles(h, terms)
        st -= hs
        ca -= hc
        w1 = sum(prof["kernels"]["1"].values()) + sum(_interp_cycles(prof["interp"]["1"], terms))
        ps, pc = _interp_cycles(p0, terms)
        par0 = p0["kernel_cycles"] + ps + pc
        k1 = sum(prof["kernels"]["1"].values())
        hand = hs + hc + h["kernel_cycles"] + max(0.0, w1 - par0) + DUAL_BUS_PENALTY * min(k1, p0["kernel_cycles"])
    out = {**parts, "statements": st, "calls": ca, "handover": hand}
    out["cycles"] = sum(out.values())
    out["seconds"] = out["cycles"] / clock_hz
    return out


def fit(profiles: dict[str, dict[str, Any]], names: tuple[str, ...] = FIT_ON) -> dict[str, float]:
    """statement_cycles and call_cycles that reproduce the genuine figures of `names` (least
    squares on relative error; exact for two figures). The dual-core hand-over term depends on
    the two terms too (max(0, ...)): solved by fixed-point iteration."""
    terms = {"statement_cycles": 300.0, "call_cycles": 1500.0}
    for _ in range(50):
        A, b = [], []
        for name in names:
            prof = profiles[name]["run"]
            target = GENUINE[name]["ms"] * 1e-3 * CLOCK_HZ
            # the part that does not scale with the terms, at the current terms
            e = estimate(prof, terms)
            s, c = (
                prof["interp"]["0"]["statements"],
                sum(prof["interp"]["0"][k] for k in ("fcalls", "builtin_calls", "native_calls")),
            )
            rest = e["cycles"] - terms["statement_cycles"] * s - terms["call_cycles"] * c
            A.append([s / target, c / target])
            b.append((target - rest) / target)
        x, *_ = np.linalg.lstsq(np.array(A), np.array(b), rcond=None)
        new = {"statement_cycles": float(x[0]), "call_cycles": float(x[1])}
        if all(abs(new[k] - terms[k]) < 1e-6 for k in terms):
            break
        terms = new
    return terms


@cache
def load_calibration(path: Path = CALIBRATION_PATH) -> dict[str, Any]:
    return json.loads(path.read_text())


def terms() -> dict[str, float]:
    return dict(load_calibration()["terms"])
