"""Estimated device cycles, seconds and joules per sample (energy.py's "estimated (<chip>
model)" source): the device's work counters x per-op cycle costs of the exact kernel machine
code measured in the armv6m emulator (kernel_costs.json, `benchmarks/kernel_costs.py --write`),
plus the interpreter's statements and calls per path (traced on the unix port,
bitflip.armv6m.trace) x cycles per statement and per call fitted to the genuine Pico firmware
(pico_calibration.json, bitflip.measure.calibrate), / the clock of the board imitated x its supply
power. ESP32 (Xtensa) cannot be emulated: its estimate prices the armv6m viper *instruction*
counts as Xtensa cycles and the Pico's interpreter cycles as they are, an uncalibrated proxy.
per_sample_table is the bench's per-board table of the default MNIST model.

Dual core: on RP2040/RP2350 the firmware (dual.py) splits the forward pass of every layer
with >= 256 neurons over both cores; the model prices the two halves in parallel plus the
hand-over, everything else single-core. ESP32 MicroPython has a GIL: one core.
"""

from __future__ import annotations

import json
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any

from ..boards import Board, load
from ..device import spec

COSTS_PATH = Path(__file__).resolve().parent / "kernel_costs.json"
SPLIT_MIN_ROWS = spec.SPLIT_MIN_ROWS  # layers this wide split over two cores (dual.py)

# Everything neither the emulator nor the trace gives, with its source. "estimate:" = our assumption.
# The interpreter terms (cycles per bytecode statement and per call) are no longer guesses:
# they are fitted to the genuine firmware (pico_calibration.json, bitflip.measure.calibrate).
ASSUMPTIONS: dict[str, Any] = {
    "dual_bus_penalty": 0.01,
    "second_core_ma": 5.0,
    "xtensa_cycles_per_armv6m_instruction": 1.0,
    "updates_per_training_sample": 1.07,
    "statements_per_hidden_layer": 12,
    "calls_per_hidden_layer": 4,
    "source": (
        "measured: two viper jobs on two cores ran 1.96-2.00x faster than serially on the genuine RP2040 "
        "firmware (SRAM bank conflicts ~1%); estimate: a busy second RP2040 core +5 mA; Xtensa: armv6m viper "
        "instructions priced 1 cycle each and the Pico's interpreter cycles used as they are (uncalibrated); "
        "updates per training sample 1.07 = 4307 row updates / 4040 post-initialisation samples of `bitflip train "
        "--board host --dataset mnist --limit 5000 --epochs 1` (default model 400-10x96); hidden layers (no trace "
        "yet): 12 statements and 4 calls per voted layer and learning sample, read off rule.py"
    ),
}
CHIP_MODEL = {"rp2040": "rp2040", "rp2350": "rp2040", "esp32": "esp32", "esp32s3": "esp32", "esp32c3": "esp32"}
NO_GIL = ("rp2040", "rp2350")  # MicroPython ports where _thread runs on both cores at once


@cache
def load_costs(path: Path = COSTS_PATH) -> dict[str, Any]:
    return json.loads(path.read_text())


def default_sizes() -> list[int]:
    """Layer sizes of the default MNIST model (rules.DEFAULT_MODEL, default encoding)."""
    from ..data.encoding import parse_encoding
    from ..data.named import MNIST_ENCODING
    from ..training.hparams import DEFAULT_MODEL

    n_in = parse_encoding(MNIST_ENCODING, 255).n_bits(28 * 28)  # 400 bits after deskew + crop
    spec = DEFAULT_MODEL["mnist"]  # e.g. '10x96': 960 prototypes
    *hidden, last = spec.split("-")
    c, _, p = last.partition("x")
    return [n_in] + [int(h) for h in hidden] + [int(c) * int(p or 1)]


def _words(n: int) -> int:
    return (n + 31) >> 5


class Model:
    """Per-op cycle costs of one chip running one kernel variant: kernels at their emulated
    armv6m cost (kernel_costs.json), the interpreter at the cycles per statement and per call
    calibrated on the genuine Pico firmware, times the statements and calls each path executes
    (traced, pico_calibration.json "interp_counts")."""

    def __init__(
        self,
        chip: str,
        kernel: str,
        clock_hz: float,
        cores: int,
        costs: dict[str, Any] | None = None,
        fast: bool = False,
    ):
        from .calibrate import load_calibration

        self.chip = CHIP_MODEL.get(chip, chip)
        self.kernel = kernel if self.chip == "rp2040" else "viper"  # asm_thumb exists on Arm only
        self.clock_hz = float(clock_hz)
        self.cores = cores if self.chip in ("rp2040",) else 1
        self.costs = (costs or load_costs())["kernels"]
        # ESP32: armv6m instruction counts as the Xtensa cycle proxy
        self.unit = "cycles" if self.chip == "rp2040" else "instructions"
        self.scale = 1.0 if self.chip == "rp2040" else float(ASSUMPTIONS["xtensa_cycles_per_armv6m_instruction"])
        cal = load_calibration()
        self.stmt = float(cal["terms"]["statement_cycles"])
        self.call = float(cal["terms"]["call_cycles"])
        # fast: the firmware's fast path (fast.py: prototype-only binary2 models), its fused
        # forward + winner kernel and its traced statements and calls
        self.fast = fast
        self.counts = cal["interp_counts_fast" if fast else "interp_counts"]

    def interp(self, c: dict[str, float], scale: float = 1.0) -> float:
        """Cycles of {"statements": n, "calls": m} in the interpreter."""
        return scale * (self.stmt * float(c["statements"]) + self.call * float(c["calls"]))

    def term(self, kernel: str, term: str, variant: str | None = None) -> float:
        k = self.costs[kernel]
        v = k.get(variant or self.kernel) or k["viper"]
        return float(v[term][self.unit]) * self.scale if term in v else 0.0

    def _dense(self, kind: str, nw: int, rows: int) -> float:
        name = "dense_argmax" if self.fast else "dense_ternary" if kind == "ternary" else "dense_binary"
        # asm_thumb: whole triples of words, then nw % 3 single words ("tail" extra each)
        tail = (nw % 3) * self.term(name, "tail")
        return self.term(name, "call") + rows * (self.term(name, "row") + nw * self.term(name, "word") + tail)

    def forward(self, sizes: list[int], weights: str, split: bool) -> dict[str, float]:
        """Cycles of one forward pass (an evaluation sample), by part: the dense kernels, the
        other kernels and the interpreter (the traced evaluation path; a hidden layer adds the
        per-layer statements), and the dual-core hand-over."""
        dense = hand = 0.0
        other = self.term("load_row", "call") + _words(sizes[0]) * self.term("load_row", "word")
        h = self.counts["handover"]
        for li, (n_in, n_out) in enumerate(pairwise(sizes)):
            nw = _words(n_in)
            if split and n_out >= SPLIT_MIN_ROWS:
                half = n_out >> 1
                k0, k1 = self._dense(weights, nw, half), self._dense(weights, nw, n_out - half)
                # core 1 runs its loop body and its job's Python before its kernel: it finishes
                # after core 0 by what that takes beyond core 0's work between go and wait
                w1 = k1 + self.interp(h["core1"])
                p0 = k0 + self.interp(h["parallel_core0"])
                dense += k0
                hand += self.interp(h["core0"]) + float(h["sync_kernel_cycles"]) * self.scale + max(0.0, w1 - p0)
                hand += float(ASSUMPTIONS["dual_bus_penalty"]) * min(k0, k1)
            else:
                dense += self._dense(weights, nw, n_out)
            if li < len(sizes) - 2:  # the top layer's sign bits are not packed (nothing reads them)
                other += self.term("sign_pack", "call") + n_out * self.term("sign_pack", "neuron")
        if not self.fast:  # the fast path's forward kernel finds the winner itself
            other += self.term("argmax", "call") + sizes[-1] * self.term("argmax", "neuron")
        interp = self.interp(self.counts["eval"])
        if split:  # the traced two-core path counted Worker.start/wait as hand-over, not here
            interp -= self.interp(h["core0"])
        interp += (len(sizes) - 2) * self.interp({"statements": 9 + 5, "calls": 6})  # Dense.forward per layer
        return {"dense": dense, "other": other + interp, "handover": hand}

    def update_word(self, weights: str, k: int, ks: int) -> tuple[float, float]:
        """(cycles per updated word, cycles per row update call with its interpreter work)
        at k (+ ks) hash draws."""
        if weights == "binary":
            name, draws = "flip_row", k
        else:
            name, draws = f"update_row_{weights}", k + (ks if weights == "binary2" else 0)
        word = self.term(name, "word") + draws * self.term(name, "draw")
        c = self.counts
        per_update = {key: c["wrong"][key] - c["correct"][key] for key in ("statements", "calls")}
        return word, self.term(name, "call") + self.interp(per_update)

    def learn_fixed(self, sizes: list[int]) -> float:
        """Per training sample, besides forward and row updates: step key, the learning path's
        interpreter work (a learning sample with one update, less its update and its forward),
        votes and hidden directions (per vote call, not per voted row)."""
        c = self.counts
        per_update = {key: c["wrong"][key] - c["correct"][key] for key in ("statements", "calls")}
        base = {key: c["correct"][key] - c["eval"][key] - per_update[key] for key in ("statements", "calls")}
        cyc = self.term("step_key", "call") + self.interp(base)
        for li in range(1, len(sizes) - 1):  # a vote from layer li onto layer li-1's units
            n_in, n_out = sizes[li], sizes[li + 1]
            cyc += self.term("vote", "call") + n_in * self.term("vote", "input") + n_out * self.term("vote", "neuron")
            cyc += self.term("hidden_dirs", "call") + n_in * self.term("hidden_dirs", "neuron")
            cyc += self.interp(
                {
                    "statements": ASSUMPTIONS["statements_per_hidden_layer"],
                    "calls": ASSUMPTIONS["calls_per_hidden_layer"],
                }
            )
        return cyc

    def vote_word(self) -> float:
        return 32 * self.term("vote", "bit")

    def vote_row(self) -> float:
        return self.term("vote", "row")

    def seconds(self, cycles: float) -> float:
        return cycles / self.clock_hz


def fast_path(sizes: list[int], weights: str | None, cfg: dict[str, Any] | None = None) -> bool:
    """The firmware runs its fast path (fast.py; spec.fast_path): no hidden layer,
    binary2 weights, no margin, no anneal."""
    return spec.fast_path(dict(cfg or {}, sizes=sizes, weights=weights or (cfg or {}).get("weights")))


def model_for(
    board: Board, sizes: list[int], cfg: dict[str, Any] | None = None, weights: str | None = None
) -> tuple[Board, Model]:
    """The real board a run is priced on (a virtual board's original; the Pico for the host)
    and its cost model; two cores where the firmware would split a layer; the fast path's
    kernels and interpreter counts where the firmware takes it."""
    real = load("pico") if board.is_host else (load(board.real) if board.is_virtual else board)
    chip = str(real.data.get("chip", "rp2040"))
    split = any(n >= SPLIT_MIN_ROWS for n in sizes[1:]) and int((cfg or {}).get("cores", 0)) != 1
    cores = int(real.data.get("cores", 1)) if split and CHIP_MODEL.get(chip) in NO_GIL else 1
    fast = fast_path(sizes, weights, cfg)
    return real, Model(chip, str(real.data.get("kernel", "viper")), real.clock_hz, cores, fast=fast)


def power_w(real: Board, cores: int) -> float:
    p = real.power
    ma = float(p["active_ma"]) + (float(ASSUMPTIONS["second_core_ma"]) if cores > 1 else 0.0)
    return float(p["supply_v"]) * ma / 1000.0


def sample_estimate(
    model: Model, sizes: list[int], weights: str, k: list[int], ks: int, updates_per_sample: float | None = None
) -> dict[str, float]:
    """Cycles and seconds of one training sample (steady state: no prototype filling),
    `updates_per_sample` rows updated in the top layer (and as many in each hidden layer)."""
    ups = float(ASSUMPTIONS["updates_per_training_sample"] if updates_per_sample is None else updates_per_sample)
    split = model.cores > 1
    f = model.forward(sizes, weights, split)
    upd = 0.0
    for li, (n_in, _) in enumerate(pairwise(sizes)):
        word, call = model.update_word(weights, k[li], ks)
        upd += ups * (call + _words(n_in) * word)
        if li > 0:
            upd += ups * (model.vote_row() + _words(n_in) * model.vote_word())
    fixed = model.learn_fixed(sizes)
    total = f["dense"] + f["other"] + f["handover"] + upd + fixed
    return {
        "cycles": total,
        "seconds": model.seconds(total),
        "forward_dense_cycles": f["dense"],
        "update_cycles": upd,
        "other_cycles": f["other"] + fixed,
        "handover_cycles": f["handover"],
    }


def traced_sample(real: Board, cores: int, sizes: list[int]) -> dict[str, float]:
    """The calibrated per-sample estimate of an RP2040 board (steady state), from the trace of
    the firmware's own training path of the default MNIST model (pico_calibration.json
    "headline" profiles: every native call at its emulated cycles, statements and calls at the
    fitted terms; bitflip.measure.calibrate.estimate, the function the bench's per-part table uses)."""
    from ..errors import BitflipError
    from . import calibrate as C

    cal = C.load_calibration()
    name = cal.get("headline", {}).get(str(cores))
    prof = cal["profiles"].get(name) if name else None
    if prof is None or list(prof["cfg"]["sizes"]) != list(sizes):
        raise BitflipError(
            f"pico_calibration.json has no trace of the default model {sizes} on {cores} core(s): "
            "run `.venv/bin/python benchmarks/pico_calibration.py --write`"
        )
    e = C.estimate(prof["steady"], cal["terms"], clock_hz=real.clock_hz)
    other = e["statements"] + e["calls"] + e["vote"] + e["other_kernels"]
    return {
        "cycles": e["cycles"],
        "seconds": e["seconds"],
        "forward_dense_cycles": e["forward"],
        "update_cycles": e["update"],
        "other_cycles": other,
        "handover_cycles": e["handover"],
    }


def per_sample_table(boards: tuple[str, ...] = ("pico", "esp32")) -> dict[str, Any]:
    """Estimated seconds and joules per MNIST training sample of the default model, per
    board, single- and dual-core (dual = the firmware's split of layers >= 256 neurons).
    RP2040 boards: the calibrated trace of the firmware's path (traced_sample: the same
    figures as the bench's per-part table); others: the per-op model (Model)."""
    from ..training.hparams import DEFAULT_WEIGHTS, DEFAULTS
    from .calibrate import LABEL

    sizes, weights = default_sizes(), DEFAULT_WEIGHTS["mnist"]
    hp = DEFAULTS["mnist"]
    k = [hp["k_hidden"]] * (len(sizes) - 2) + [hp["k_out"]]
    cfg = {"margin": -1, "weights": weights}  # the MNIST default: no margin, no anneal
    out: dict[str, Any] = {"model": sizes, "weights": weights, "dataset": "mnist", "boards": {}}
    for name in boards:
        real = load(name)
        chip = str(real.data["chip"])
        rp2040 = CHIP_MODEL.get(chip) == "rp2040"
        row: dict[str, Any] = {
            "chip": chip,
            "clock_hz": real.clock_hz,
            "kernel": real.data.get("kernel"),
            "power_source": real.power["source"],
        }
        for label, cores in (("single_core", 1), ("dual_core", int(real.data.get("cores", 1)))):
            m = Model(
                chip, str(real.data.get("kernel", "viper")), real.clock_hz, cores, fast=fast_path(sizes, weights, cfg)
            )
            est = traced_sample(real, m.cores, sizes) if rp2040 else sample_estimate(m, sizes, weights, k, hp["ks"])
            pw = power_w(real, m.cores)
            row[label] = {
                "seconds": est["seconds"],
                "joules": est["seconds"] * pw,
                "cycles": round(est["cycles"]),
                "cores_used": m.cores,
                "power_w": round(pw, 4),
                "forward_dense_cycles": round(est["forward_dense_cycles"]),
                "update_cycles": round(est["update_cycles"]),
                "other_cycles": round(est["other_cycles"]),
                "handover_cycles": round(est["handover_cycles"]),
            }
        row["dual_core_gain"] = row["single_core"]["seconds"] / row["dual_core"]["seconds"]
        row["source"] = (
            f"{LABEL}: the traced path of this firmware (pico_calibration.json), as in the per-part table"
            if rp2040
            else "estimated (esp32 model): armv6m viper instruction counts as Xtensa cycles, uncalibrated; "
            "GIL: one core"
        )
        out["boards"][name] = row
    return out
