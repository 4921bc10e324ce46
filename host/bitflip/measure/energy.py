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
  bitflip.measure.calibrate, `benchmarks/pico_calibration.py --write`), / the clock of the board
  imitated (the host estimates for the Pico) x its supply power. Pico figures are "estimated,
  calibrated on genuine v1.28.0 firmware in a cycle-counting emulator (zero-wait memory: a
  lower bound)". ESP32 (Xtensa) cannot be emulated: its estimate prices the armv6m viper
  *instruction* counts as Xtensa cycles and the Pico's interpreter cycles as they are, an
  uncalibrated proxy.

The estimate's per-op cycle costs and the per-sample table of the bench: costmodel.py (its
names are importable from here as well, as energy.Model, energy.ASSUMPTIONS, ...).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..boards import Board
from ..training.rundir import read_epoch_records
from .costmodel import (
    ASSUMPTIONS,
    CHIP_MODEL,
    COSTS_PATH,
    NO_GIL,
    SPLIT_MIN_ROWS,
    Model,
    default_sizes,
    load_costs,
    model_for,
    per_sample_table,
    power_w,
    sample_estimate,
)

__all__ = [
    "ASSUMPTIONS",
    "CHIP_MODEL",
    "COSTS_PATH",
    "METER_CHIPS",
    "NO_GIL",
    "SPLIT_MIN_ROWS",
    "Model",
    "default_sizes",
    "for_records",
    "for_run",
    "load_costs",
    "meter_config",
    "model_for",
    "per_sample_table",
    "power_w",
    "sample_estimate",
]

METER_CHIPS = ("ina219", "ina226")


def meter_config(board: Board) -> dict[str, Any] | None:
    """A real board's `power_meter` (board file), checked, as the device config wants it:
    {"chip": "ina219"|"ina226", "i2c": bus id, "sda": pin, "scl": pin, "addr": 64,
    "shunt_ohms": 0.1}. None for virtual boards, the host and boards without one."""
    from ..errors import UsageError

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
    return {
        "chip": m["chip"],
        "i2c": int(m.get("i2c", 0)),
        "sda": m["sda"],
        "scl": m["scl"],
        "addr": int(m.get("addr", 0x40)),
        "shunt_ohms": float(ohms),
    }


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


def for_records(
    board: Board,
    sizes: list[int],
    weights: str,
    cfg: dict[str, Any],
    epochs: dict[int, dict[str, Any]],
    evals: dict[int, dict[str, Any]],
) -> dict[str, Any]:
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
        real, model = model_for(board, sizes, cfg, weights)
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
            notes.append(
                "pool rule: its evidence work (the evidence_bytes counter) is not priced, so the estimate is low"
            )
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
        detail["assumptions"] = (
            "kernel_costs.json (emulated armv6m) + interpreter terms and traced statement/call "
            "counts (pico_calibration.json) + energy.ASSUMPTIONS"
        )
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
