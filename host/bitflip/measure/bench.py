"""`bitflip bench` as a library: kernel costs on emulated armv6m, samples/s of a virtual board
and of the host reference, and the estimated time and energy of one MNIST training sample
of the default model on RP2040 and ESP32 boards, single- and dual-core.

`measure_costs` also regenerates host/bitflip/measure/kernel_costs.json, the per-op cycle costs the
energy model (costmodel.py) prices device counters with (`benchmarks/kernel_costs.py --write`).
Each kernel's cost is fitted as a linear function of its work (per call, per row, per word,
per hash draw, ...) from a few emulated calls on random inputs; every call that has a numpy
twin is checked against it and a mismatch raises.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BitflipError
from ..training.rundir import read_epoch_records
from . import energy

ARCH = "armv6m"
VARIANTS = {"viper": "viper", "asm": "asm_thumb"}  # armv6m.measure's name -> published name


# --- emulated kernel costs ------------------------------------------------------------------
def _cost(run: Any) -> np.ndarray:
    return np.array([run.cycles, run.instructions], dtype=np.float64)


def _kernels_mpy() -> Any:
    from ..armv6m.measure import _module

    return _module("viper")


def _run_viper(name: str, args: list[Any]) -> Any:
    from ..armv6m import find_function, run_function

    mpy = _kernels_mpy()
    return run_function(mpy, find_function(mpy, name), args, max_instructions=20_000_000)


def _case(kernel: str, variant: str, nw: int, rows: int, **opts: int) -> np.ndarray:
    from ..armv6m import run_case

    r = run_case(kernel, variant, nw, rows, **opts)
    if r.error:
        raise BitflipError(f"{kernel} ({variant}) does not match numpy: {r.error}")
    return _cost(r.run)


def _fit_dense(kernel: str, variant: str) -> dict[str, np.ndarray]:
    # cost = call + rows * row + rows * nw * word, at aligned sizes (multiples of 8 and 3); the
    # asm kernels run whole triples of words, then (nw % 3) single words at `tail` more each
    a, b, c = _case(kernel, variant, 48, 2), _case(kernel, variant, 96, 2), _case(kernel, variant, 48, 4)
    word = (b - a) / 96
    row = (c - a) / 2 - 48 * word
    out = {"call": a - 2 * row - 96 * word, "row": row, "word": word}
    if variant == "asm":
        out["tail"] = (_case(kernel, variant, 49, 2) - a) / 2 - word
    return out


def _fit_flip(variant: str) -> dict[str, np.ndarray]:
    # one row: call + nw * word + nw * k * draw
    a, b = _case("flip_row", variant, 48, 3, k=0), _case("flip_row", variant, 96, 3, k=0)
    d = _case("flip_row", variant, 48, 3, k=2)
    word = (b - a) / 48
    return {"call": a - 48 * word, "word": word, "draw": (d - a) / 96}


def _update_row_case(kind: int, nw: int, k: int, ks: int, seed: int = 0, variant: str = "viper") -> np.ndarray:
    """One emulated kernels.update_row call (variant "asm": kernels_thumb.update_row_b2_asm,
    binary2 only) on a random 4-row plane, checked against the numpy reference's update of
    the same row."""
    from ..training import reference as R

    rng = np.random.default_rng(seed)
    n_in = 32 * nw - 5
    valid = R.valid_mask(n_in)
    s = rng.integers(0, 1 << 32, (4, nw), dtype=np.uint32) & valid
    aux = rng.integers(0, 1 << 32, (4, nw), dtype=np.uint32) & valid
    x = rng.integers(0, 1 << 32, nw, dtype=np.uint32) & valid
    st = np.array([rng.integers(0, 1 << 32)], np.uint32)
    row, up = 2, 1
    cfg = {
        "sizes": [n_in, 4],
        "classes": 4,
        "seed": 0,
        "window": 0,
        "margin": -1,
        "k": [k],
        "ks": ks,
        "weights": "binary2" if kind == 2 else "ternary",
    }
    ref = R.Reference(cfg)
    ref_aux = ref.layers[0].aux
    assert ref_aux is not None  # 2-bit weights
    ref.layers[0].s[:] = s
    ref_aux[:] = aux
    ref.update(0, np.array([row]), np.array([bool(up)]), x, np.uint32(st[0]), k)
    # the reference keys rows by its own layer index: run the device kernel with layer 0 too
    s_dev, aux_dev = s.copy(), aux.copy()
    if variant == "asm":
        from ..armv6m import find_function, run_function
        from ..armv6m.measure import _module, thumb_params

        mpy = _module("asm")
        p = thumb_params(24, 0, row, nw, n_in, up, k, ks, 0)
        p[0] = st.view(np.int32)[0]
        run = run_function(mpy, find_function(mpy, "update_row_b2_asm"), [s_dev, aux_dev, x, p])
    else:
        run = _run_viper("update_row", [kind, s_dev, aux_dev, row, x, nw, n_in, up, k, ks, st, 0])
    if not (np.array_equal(s_dev, ref.layers[0].s) and np.array_equal(aux_dev, ref_aux)):
        raise BitflipError(f"update_row (kind {kind}) does not match the numpy reference")
    if run.ret != ref.totals["writes"]:
        raise BitflipError(f"update_row (kind {kind}) returned {run.ret} writes, numpy says {ref.totals['writes']}")
    return _cost(run)


def _fit_update(kind: int, variant: str = "viper") -> dict[str, np.ndarray]:
    a, b = _update_row_case(kind, 16, 0, 0, variant=variant), _update_row_case(kind, 32, 0, 0, variant=variant)
    d = _update_row_case(kind, 16, 2, 0, variant=variant)
    word = (b - a) / 16
    return {"call": a - 16 * word, "word": word, "draw": (d - a) / 32}


def _simple(
    name: str, make: Callable[[int], list[Any]], check: Callable[[list[Any], Any], bool], n1: int, n2: int, unit: str
) -> dict[str, np.ndarray]:
    out = []
    for n in (n1, n2):
        args = make(n)
        run = _run_viper(name, args)
        if not check(args, run):
            raise BitflipError(f"{name} does not match numpy")
        out.append(_cost(run))
    per = (out[1] - out[0]) / (n2 - n1)
    return {"call": out[0] - n1 * per, unit: per}


def _fit_small() -> dict[str, dict[str, np.ndarray]]:
    from ..training import reference as R

    rng = np.random.default_rng(5)
    res: dict[str, dict[str, np.ndarray]] = {}

    def sp_make(n: int) -> list[Any]:
        return [rng.integers(-50, 50, n).astype(np.int32), np.zeros(R.words(n), np.uint32), n, R.words(n)]

    res["sign_pack"] = _simple(
        "sign_pack", sp_make, lambda a, r: np.array_equal(a[1], R.pack_bits(a[0] >= 0)), 64, 128, "neuron"
    )

    def am_make(n: int) -> list[Any]:
        return [rng.integers(-1000, 1000, n).astype(np.int32), 0, n]

    res["argmax"] = _simple("argmax", am_make, lambda a, r: r.ret == int(np.argmax(a[0])), 64, 128, "neuron")

    def lr_make(n: int) -> list[Any]:
        return [np.zeros(n, np.uint32), rng.integers(0, 1 << 32, n + 8, dtype=np.uint32), 4, n]

    res["load_row"] = _simple(
        "load_row", lr_make, lambda a, r: np.array_equal(a[0], a[1][4 : 4 + a[3]]), 32, 64, "word"
    )

    def hd_make(n: int) -> list[Any]:
        return [
            rng.integers(-3, 4, n).astype(np.int32),
            rng.integers(-20, 20, n).astype(np.int32),
            np.zeros(n, np.uint8),
            n,
            8,
            np.zeros(n, np.uint16),
        ]

    def hd_check(a: list[Any], r: Any) -> bool:
        v, pre = a[0].astype(np.int64), a[1].astype(np.int64)
        err = (v != 0) & ((v > 0) != (pre >= 0)) & (pre <= 8) & (pre >= -9)
        return r.ret == int(err.sum()) and np.array_equal(np.flatnonzero(err), a[5][: r.ret])

    res["hidden_dirs"] = _simple("hidden_dirs", hd_make, hd_check, 64, 128, "neuron")
    st = np.zeros(1, np.uint32)
    run = _run_viper("step_key", [st, 7, 123])
    if int(st[0]) != int(R.step_key(7, 123)):
        raise BitflipError("step_key does not match numpy")
    res["step_key"] = {"call": _cost(run)}
    res["vote"] = _fit_vote()
    return res


def _vote_cost(n_in: int, n_out: int, n_dirs: int) -> np.ndarray:
    from ..training import reference as R

    rng = np.random.default_rng(n_in * 31 + n_dirs)
    nw = R.words(n_in)
    w = rng.integers(0, 1 << 32, (n_out, nw), dtype=np.uint32) & R.valid_mask(n_in)
    dirs = np.zeros(n_out, np.uint8)
    dirs[:n_dirs] = [1, 2] * (n_dirs // 2) + [1] * (n_dirs % 2)
    v = np.zeros(n_in, np.int32)
    run = _run_viper("vote", [w, w, 0, dirs, nw, n_out, n_in, v])
    pm = R.unpack_pm(w, n_in).astype(np.int64)  # +-1
    d = np.where(dirs == 1, 1, np.where(dirs == 2, -1, 0))
    if not np.array_equal(v.astype(np.int64), d @ pm):
        raise BitflipError("vote does not match numpy")
    return _cost(run)


def _fit_vote() -> dict[str, np.ndarray]:
    # call + n_in * clear + n_out * scan + dirs * (row + n_in * bit)
    a, b, c = _vote_cost(64, 8, 1), _vote_cost(128, 8, 1), _vote_cost(64, 8, 2)
    d, e = _vote_cost(64, 16, 1), _vote_cost(128, 8, 2)
    bit = ((e - b) - (c - a)) / 64
    row = (c - a) - 64 * bit
    clear = ((b - a) - 64 * bit) / 64
    scan = (d - a) / 8
    return {"call": a - 64 * clear - 8 * scan - row - 64 * bit, "input": clear, "neuron": scan, "row": row, "bit": bit}


def measure_costs() -> dict[str, Any]:
    """Every kernel's armv6m cost model, emulated: {kernel: {variant: {term: {cycles, instructions}}}}."""
    fits: dict[str, dict[str, dict[str, np.ndarray]]] = {
        "dense_binary": {"viper": _fit_dense("dense_binary", "viper"), "asm_thumb": _fit_dense("dense_binary", "asm")},
        "dense_ternary": {"viper": _fit_dense("dense_ternary", "viper")},
        "flip_row": {"viper": _fit_flip("viper"), "asm_thumb": _fit_flip("asm")},
        "update_row_binary2": {"viper": _fit_update(2), "asm_thumb": _fit_update(2, "asm")},
        "dense_argmax": {"viper": _fit_dense("dense_argmax", "viper"), "asm_thumb": _fit_dense("dense_argmax", "asm")},
        "update_row_ternary": {"viper": _fit_update(3)},
    }
    for name, terms in _fit_small().items():
        fits[name] = {"viper": terms}
    kernels = {
        name: {
            variant: {
                term: {"cycles": round(float(v[0]), 2), "instructions": round(float(v[1]), 2)}
                for term, v in terms.items()
            }
            for variant, terms in variants.items()
        }
        for name, variants in fits.items()
    }
    return {
        "arch": ARCH,
        "generated_by": "benchmarks/kernel_costs.py --write (bitflip.measure.bench.measure_costs)",
        "model": "cost of one call = sum of term x count; terms fitted from emulated calls on random inputs "
        "(mpy-cross -march=armv6m machine code in unicorn, cycles by bitflip/armv6m/isa.py); "
        "runtime calls for argument conversion are not included (the calibrated per-call term of "
        "pico_calibration.json prices them)",
        "kernels": kernels,
    }


def write_costs(path: Path | None = None) -> Path:
    path = path or energy.COSTS_PATH
    path.write_text(json.dumps(measure_costs(), indent=1, sort_keys=True) + "\n")
    return path


def kernel_table(quick: bool = False) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """kernel -> arch -> variant -> {instructions_per_word, cycles_per_word}: inner-loop cost
    per 32-bit word, emulated now (quick: 24 -> 48 words/row instead of 48 -> 96)."""
    from ..armv6m import FUNCTIONS, measure_kernel

    words = 24 if quick else 48
    table: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for kernel, variants in FUNCTIONS.items():
        row: dict[str, dict[str, float]] = {}
        for variant in variants:
            m = measure_kernel(kernel, words, variant)
            if not m["ok"]:
                raise BitflipError(f"{kernel} ({variant}) does not match numpy: {m.get('error')}")
            row[VARIANTS[variant]] = {
                "instructions_per_word": round(float(m["instructions_per_word"]), 2),
                "cycles_per_word": round(float(m["cycles_per_word"]), 2),
            }
        table[kernel] = {ARCH: row}
    return table


# --- throughput -----------------------------------------------------------------------------
def host_samples_per_s(samples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """The numpy reference training the default MNIST model on random MNIST-like inputs."""
    from ..training.hparams import rule_config
    from ..training.reference import Reference, pack_bits

    sizes = energy.default_sizes()
    cfg = rule_config("mnist", sizes, "binary2", seed, 10, {})
    ref = Reference(cfg)
    rng = np.random.default_rng(seed)
    X = pack_bits(rng.random((samples, sizes[0])) < 0.2)
    y = rng.integers(0, 10, samples)
    t0 = time.perf_counter()
    for i in range(samples):
        ref.train_sample(X[i], int(y[i]))
    dt = time.perf_counter() - t0
    return {
        "samples": samples,
        "seconds": round(dt, 3),
        "samples_per_s": round(samples / dt, 1),
        "model": sizes,
        "weights": "binary2",
        "data": "random inputs (density 0.2)",
    }


def virtual_samples_per_s(board: str = "sim-pico", samples: int = 300, epochs: int = 1) -> dict[str, Any]:
    """A short `bitflip train` on a virtual board (digits): device busy time and wall time."""
    import tempfile

    from ..training.runner import TrainRequest, train

    with tempfile.TemporaryDirectory(prefix="bitflip-bench-") as tmp:
        s = train(
            TrainRequest(
                board=board, dataset="digits", epochs=epochs, limit=samples, out=Path(tmp) / "run", eval_every=epochs
            )
        )
        epochs_rec, _ = read_epoch_records(Path(tmp) / "run")
    busy = sum(float(r.get("busy_us", 0)) for r in epochs_rec.values()) / 1e6
    seen = int(s["samples_seen"])
    return {
        "board": board,
        "dataset": "digits",
        "model": s["sizes"],
        "weights": s["weights"],
        "samples": seen,
        "device_busy_s": round(busy, 6),
        "wall_s": s["wall_s"],
        "samples_per_s": round(seen / busy, 1) if busy > 0 else None,
        "samples_per_s_wall": round(seen / s["wall_s"], 1) if s["wall_s"] else None,
        "note": "the unix port on this host (x64 viper code), not a Pico: busy = device ticks_us in train blocks",
    }


# --- the calibrated Pico model ------------------------------------------------------------------
def pico_breakdown() -> dict[str, Any]:
    """Per training sample on the Pico, by part (forward, update, vote, interpreter statements
    and calls, dual hand-over), for the bench workloads of pico_calibration.json: the run
    average (prototype filling included) and the steady state (learning samples only). The
    kernels are priced per call on their emulated machine code; the interpreter at the
    calibrated terms."""
    from . import calibrate as C

    cal = C.load_calibration()
    terms = cal["terms"]
    rows: dict[str, Any] = {}
    before = {f"{k} (before)": v for k, v in cal.get("before", {}).items()}
    for label, name in [*cal["bench"].items(), *before.items()]:
        prof = cal["profiles"][name]
        row: dict[str, Any] = {
            "workload": name,
            "cores_used": prof["cores"],
            "mix": prof["mix"],
            "samples": prof["samples"],
            "before": label in before,
        }
        for which in ("steady", "run"):
            e = C.estimate(prof[which], terms)
            row[which] = {k: round(v / C.CLOCK_HZ * 1e3, 4) for k, v in e.items() if k not in ("seconds", "cycles")}
            row[which]["ms"] = round(e["seconds"] * 1e3, 4)
        rows[label] = row
    return {"label": cal["label"], "terms": terms, "fit": cal["fit"], "rows": rows}


# --- everything -------------------------------------------------------------------------------
def run_bench(quick: bool = False, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    say = log or (lambda s: None)
    say("measuring kernel costs on emulated armv6m ...")
    kernels = kernel_table(quick)
    say("host reference ...")
    host = host_samples_per_s(300 if quick else 3000)
    say("virtual board (sim-pico) ...")
    virtual = virtual_samples_per_s("sim-pico", 100 if quick else 600)
    per_sample = energy.per_sample_table()
    return {
        "kernels": kernels,
        "host": host,
        "virtual": virtual,
        "per_sample": per_sample,
        "pico": pico_breakdown(),
        "costs_file": str(energy.COSTS_PATH.name),
        "quick": quick,
        "assumptions": energy.ASSUMPTIONS,
    }
