"""Device seconds and joules of a training run, with where the figures come from.

Three sources, never mixed up (DESIGN.md "Measuring"):

- "measured": the board file has a `power_meter` (INA219/INA226 on the board's I2C) and the
  device's epoch records carry the energy it integrated from it (`energy_uj`). The host side
  of this is in place; the device side has not run on hardware (no board here).
- "time x power model": a real board: the device's own `time.ticks_us` busy time in training
  blocks x the board file's supply power (supply_v x active_ma, sources cited there).
- "estimated (<chip> model)": virtual boards and the host reference: the device's work
  counters (words XOR-popcounted, words updated, rows updated, words voted, samples) x per-op
  cycle costs of the exact kernel machine code measured in the armv6m emulator
  (kernel_costs.json, `benchmarks/kernel_costs.py --write`), plus the interpreter: the
  statements and calls each path executes (traced on the unix port, bitflip.armv6m.trace) x
  cycles per statement and per call fitted to the genuine Pico firmware (pico_calibration.json,
  bitflip.calibrate, `benchmarks/pico_calibration.py --write`), / the clock of the board
  imitated (the host estimates for the Pico) x its supply power. Pico figures are "estimated,
  calibrated on genuine v1.28.0 firmware in a cycle-counting emulator (zero-wait memory: a
  lower bound)". ESP32 (Xtensa) cannot be emulated: its estimate prices the armv6m viper
  *instruction* counts as Xtensa cycles and the Pico's interpreter cycles as they are, an
  uncalibrated proxy.

Dual core: on RP2040/RP2350 the firmware (dual.py) splits the forward pass of every layer
with >= 256 neurons over both cores; the model prices the two halves in parallel plus the
hand-over, everything else single-core. ESP32 MicroPython has a GIL: one core.
"""

from __future__ import annotations

import json
import math
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any

from .boards import Board, load
from .training.rundir import read_epoch_records

COSTS_PATH = Path(__file__).resolve().parent / "kernel_costs.json"
SPLIT_MIN_ROWS = 256  # firmware dual.MIN_ROWS

# Everything neither the emulator nor the trace gives, with its source. "estimate:" = our assumption.
# The interpreter terms (cycles per bytecode statement and per call) are no longer guesses:
# they are fitted to the genuine firmware (pico_calibration.json, bitflip.calibrate).
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
    from .data.encoding import parse_encoding
    from .data.named import MNIST_ENCODING
    from .training.hparams import DEFAULT_MODEL

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

    def __init__(self, chip: str, kernel: str, clock_hz: float, cores: int, costs: dict[str, Any] | None = None):
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
        self.counts = cal["interp_counts"]

    def interp(self, c: dict[str, float], scale: float = 1.0) -> float:
        """Cycles of {"statements": n, "calls": m} in the interpreter."""
        return scale * (self.stmt * float(c["statements"]) + self.call * float(c["calls"]))

    def term(self, kernel: str, term: str, variant: str | None = None) -> float:
        k = self.costs[kernel]
        v = k.get(variant or self.kernel) or k["viper"]
        return float(v[term][self.unit]) * self.scale if term in v else 0.0

    def _dense(self, kind: str, nw: int, rows: int) -> float:
        name = "dense_ternary" if kind == "ternary" else "dense_binary"
        return self.term(name, "call") + rows * (self.term(name, "row") + nw * self.term(name, "word"))

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
            cyc += self.interp({"statements": ASSUMPTIONS["statements_per_hidden_layer"],
                                "calls": ASSUMPTIONS["calls_per_hidden_layer"]})
        return cyc

    def vote_word(self) -> float:
        return 32 * self.term("vote", "bit")

    def vote_row(self) -> float:
        return self.term("vote", "row")

    def seconds(self, cycles: float) -> float:
        return cycles / self.clock_hz


def model_for(board: Board, sizes: list[int], cfg: dict[str, Any] | None = None) -> tuple[Board, Model]:
    """The real board a run is priced on (a virtual board's original; the Pico for the host)
    and its cost model; two cores where the firmware would split a layer."""
    real = load("pico") if board.is_host else (load(board.real) if board.is_virtual else board)
    chip = str(real.data.get("chip", "rp2040"))
    split = any(n >= SPLIT_MIN_ROWS for n in sizes[1:]) and int((cfg or {}).get("cores", 0)) != 1
    cores = int(real.data.get("cores", 1)) if split and CHIP_MODEL.get(chip) in NO_GIL else 1
    return real, Model(chip, str(real.data.get("kernel", "viper")), real.clock_hz, cores)


def power_w(real: Board, cores: int) -> float:
    p = real.power
    ma = float(p["active_ma"]) + (float(ASSUMPTIONS["second_core_ma"]) if cores > 1 else 0.0)
    return float(p["supply_v"]) * ma / 1000.0


def sample_estimate(model: Model, sizes: list[int], weights: str, k: list[int], ks: int,
                    updates_per_sample: float | None = None) -> dict[str, float]:
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
    return {"cycles": total, "seconds": model.seconds(total), "forward_dense_cycles": f["dense"],
            "update_cycles": upd, "other_cycles": f["other"] + fixed, "handover_cycles": f["handover"]}


def per_sample_table(boards: tuple[str, ...] = ("pico", "esp32")) -> dict[str, Any]:
    """Estimated seconds and joules per MNIST training sample of the default model, per
    board, single- and dual-core (dual = the firmware's split of layers >= 256 neurons)."""
    from .training.hparams import DEFAULT_WEIGHTS, DEFAULTS

    sizes, weights = default_sizes(), DEFAULT_WEIGHTS["mnist"]
    hp = DEFAULTS["mnist"]
    k = [hp["k_hidden"]] * (len(sizes) - 2) + [hp["k_out"]]
    out: dict[str, Any] = {"model": sizes, "weights": weights, "dataset": "mnist", "boards": {}}
    for name in boards:
        real = load(name)
        chip = str(real.data["chip"])
        row: dict[str, Any] = {"chip": chip, "clock_hz": real.clock_hz, "kernel": real.data.get("kernel"),
                               "power_source": real.power["source"]}
        for label, cores in (("single_core", 1), ("dual_core", int(real.data.get("cores", 1)))):
            m = Model(chip, str(real.data.get("kernel", "viper")), real.clock_hz, cores)
            est = sample_estimate(m, sizes, weights, k, hp["ks"])
            pw = power_w(real, m.cores)
            row[label] = {"seconds": est["seconds"], "joules": est["seconds"] * pw, "cycles": round(est["cycles"]),
                          "cores_used": m.cores, "power_w": round(pw, 4),
                          "forward_dense_cycles": round(est["forward_dense_cycles"]),
                          "update_cycles": round(est["update_cycles"]), "other_cycles": round(est["other_cycles"]),
                          "handover_cycles": round(est["handover_cycles"])}
        row["dual_core_gain"] = row["single_core"]["seconds"] / row["dual_core"]["seconds"]
        row["source"] = ("estimated (rp2040 model): emulated armv6m kernel cycles + interpreter terms calibrated on "
                         "genuine v1.28.0 firmware in a cycle-counting emulator (zero-wait memory: a lower bound)"
                         if CHIP_MODEL.get(chip) == "rp2040" else
                         "estimated (esp32 model): armv6m viper instruction counts as Xtensa cycles, uncalibrated; "
                         "GIL: one core")
        out["boards"][name] = row
    return out


METER_CHIPS = ("ina219", "ina226")


def meter_config(board: Board) -> dict[str, Any] | None:
    """A real board's `power_meter` (board file), checked, as the device config wants it:
    {"chip": "ina219"|"ina226", "i2c": bus id, "sda": pin, "scl": pin, "addr": 64,
    "shunt_ohms": 0.1}. None for virtual boards, the host and boards without one."""
    from .errors import UsageError

    m = board.data.get("power_meter")
    if m is None or board.kind != "board":
        return None
    where = f"board {board.name}: power_meter"
    if not isinstance(m, dict) or m.get("chip") not in METER_CHIPS:
        raise UsageError(f"{where}.chip must be one of {', '.join(METER_CHIPS)}")
    for key in ("sda", "scl"):
        if not isinstance(m.get(key), int) or m[key] < 0:
            raise UsageError(f"{where}.{key} must be a GPIO number")
    if not isinstance(m.get("i2c", 0), int) or not isinstance(m.get("addr", 0x40), int):
        raise UsageError(f"{where}.i2c and .addr must be integers")
    ohms = m.get("shunt_ohms", 0.1)
    if not isinstance(ohms, (int, float)) or ohms <= 0:
        raise UsageError(f"{where}.shunt_ohms must be a positive number")
    return {"chip": m["chip"], "i2c": int(m.get("i2c", 0)), "sda": m["sda"], "scl": m["scl"],
            "addr": int(m.get("addr", 0x40)), "shunt_ohms": float(ohms)}


# --- runs -----------------------------------------------------------------------------------
def _sig(x: float, digits: int = 6) -> float:
    """x rounded to `digits` significant digits (micro-joule runs stay readable)."""
    return float(f"{x:.{digits - 1}e}") if x else 0.0


def _diffs(epochs: dict[int, dict[str, Any]], key: str) -> dict[int, float]:
    # epoch records carry run totals: per-epoch work is the difference
    out, prev = {}, 0.0
    for e in sorted(epochs):
        v = float(epochs[e].get(key, 0) or 0)
        out[e] = max(0.0, v - prev)
        prev = v
    return out


def for_run(board: Board, sizes: list[int], weights: str, cfg: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """for_records from a run directory's event log."""
    epochs, evals = read_epoch_records(run_dir)
    return for_records(board, sizes, weights, cfg, epochs, evals)


def for_records(board: Board, sizes: list[int], weights: str, cfg: dict[str, Any], epochs: dict[int, dict[str, Any]],
                evals: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Summary fields: energy_source, device_s, joules, per-sample figures and the per-epoch
    breakdown (`energy`), from a run's epoch and eval records (epoch -> record)."""
    if not epochs:
        return {"energy_source": "none"}
    seen = {e: int(r.get("seen", 0)) for e, r in epochs.items()}
    n_train = sum(seen.values())
    notes: list[str] = []
    per_epoch: list[dict[str, Any]] = []
    meter = board.data.get("power_meter") if board.kind == "board" else None
    if board.kind == "board":
        real, cores = board, 1
        pw = power_w(board, 1)
        measured = meter is not None and all("energy_uj" in r for r in epochs.values())
        source = "measured" if measured else "time x power model"
        e_uj = _diffs(epochs, "energy_uj") if measured else {}
        for e in sorted(epochs):
            s = float(epochs[e].get("busy_us", 0)) / 1e6  # busy_us is per epoch on the device
            j = e_uj[e] / 1e6 if measured else s * pw
            per_epoch.append({"epoch": e, "samples": seen[e], "device_s": s, "joules": j})
        eval_s = sum(float(r.get("busy_us", 0)) / 1e6 for r in evals.values())
        if meter is not None and not measured:
            notes.append("board file has a power_meter but the records carry no energy_uj: time x power model")
    else:
        real, model = model_for(board, sizes, cfg)
        cores = model.cores
        pw = power_w(real, cores)
        chip = CHIP_MODEL.get(str(real.data.get("chip")), "rp2040")
        source = f"estimated ({chip} model)"
        k = [int(v) for v in cfg.get("k", [0] * (len(sizes) - 1))]
        ks = int(cfg.get("ks", 0))
        fwd = model.forward(sizes, weights, cores > 1)
        fwd_c = fwd["dense"] + fwd["other"] + fwd["handover"]
        fixed = model.learn_fixed(sizes)
        # one update word/call price per run: layers' k differ, weight by their row widths
        top = len(sizes) - 2
        word_c, call_c = model.update_word(weights, k[top], ks)
        upd_w, upds, votes = _diffs(epochs, "upd_words"), _diffs(epochs, "updates"), _diffs(epochs, "vote_words")
        if len(sizes) > 2 and not any("vote_words" in r for r in epochs.values()):
            votes = upd_w  # host reference runs do not count votes: every updated word of a voted row
            notes.append("vote work approximated by the updated words (the host reference does not count votes)")
        for e in sorted(epochs):
            cyc = seen[e] * (fwd_c + fixed) + upd_w[e] * word_c + upds[e] * call_c + votes[e] * model.vote_word()
            s = model.seconds(cyc)
            per_epoch.append({"epoch": e, "samples": seen[e], "device_s": s, "joules": s * pw})
        eval_n = sum(int(r.get("seen", 0)) for r in evals.values())
        eval_s = model.seconds(eval_n * fwd_c)
        if len(set(k)) > 1:
            notes.append("row updates priced at the output layer's k")
        if cfg.get("pool"):
            notes.append("pool rule: its evidence work (the evidence_bytes counter) is not priced, so the estimate is low")
    device_s = sum(p["device_s"] for p in per_epoch)
    joules = sum(p["joules"] for p in per_epoch)
    detail: dict[str, Any] = {
        "board": real.name,
        "power_w": round(pw, 4),
        "power_source": real.power["source"],
        "clock_hz": real.clock_hz,
        "cores": cores,
        "per_epoch": [{**p, "device_s": _sig(p["device_s"]), "joules": _sig(p["joules"])} for p in per_epoch],
        "eval_device_s": _sig(eval_s),
        "eval_joules": _sig(eval_s * pw),
        "notes": notes,
    }
    if source.startswith("estimated"):
        detail["assumptions"] = ("kernel_costs.json (emulated armv6m) + interpreter terms and traced statement/call "
                                 "counts (pico_calibration.json) + energy.ASSUMPTIONS")
    out: dict[str, Any] = {
        "energy_source": source,
        "device_s": _sig(device_s),
        "joules": _sig(joules),
        "device_s_per_sample": device_s / n_train if n_train else None,
        "joules_per_sample": joules / n_train if n_train else None,
        "energy": detail,
    }
    if any(math.isnan(p["joules"]) for p in per_epoch):
        out["energy_source"] = "none"
    return out
