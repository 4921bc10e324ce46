"""The interpreter-work trace (bitflip.armv6m.trace), the exact native-call prices
(bitflip.armv6m.price), the calibrated Pico model (bitflip.measure.calibrate, pico_calibration.json)
and the fast path (fast.py) meeting the speed targets with the host reference's digest."""

from __future__ import annotations

import numpy as np
import pytest
from bitflip.armv6m import run_case
from bitflip.armv6m.instrument import instrument
from bitflip.armv6m.price import price
from bitflip.armv6m.trace import run_trace
from bitflip.measure import calibrate as C
from bitflip.training import reference as R


def _random(cfg: dict, n: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray, str]:
    rng = np.random.default_rng(seed)
    X = R.pack_bits(rng.random((n, cfg["sizes"][0])) < 0.4)
    y = rng.integers(0, cfg["classes"], n).astype(np.uint8)
    ref = R.Reference(cfg)
    for i in range(n):
        ref.train_sample(X[i], int(y[i]))
    return X, y, ref.digest()


CFG = {
    "sizes": [64, 300],
    "classes": 4,
    "weights": "binary2",
    "seed": 3,
    "window": 8,
    "margin": -1,
    "k": [2],
    "ks": 2,
}  # the fast path (fast.py)
GENERAL = dict(CFG, anneal=100, epoch=100000)  # rule.Trainer general path (an anneal far away: the same rule)


def test_instrumented_firmware_trains_the_same_weights() -> None:
    X, y, digest = _random(GENERAL, 600)
    for cores in (1, 2):
        t = run_trace(GENERAL, X, y, cores=cores)
        assert t.digest == digest, cores
        assert t.cores == cores
        assert len(t.samples) == 600
        mix = t.mix()
        assert mix["init"] == 300 and mix["learn, correct winner"] + mix["learn, wrong winner"] == 300
        for s in t.samples:  # every sample loads its row and runs the dense kernel(s)
            names = [n[1] for n in s.natives]
            assert names.count("load_row") == 1 and names.count("dense_binary_asm") == cores
            assert s.statements[0] > 20 and s.calls[0] >= s.fcalls[0] + s.native_calls(0)
            if cores == 2:
                assert s.statements[1] > 0 and [m[0] for m in s.marks] == ["start", "go", "wait", "done"]


def test_counts_are_deterministic_per_path() -> None:
    # the same path executes the same calls and (within a few: correct or not, a block's last
    # sample carries the block's epilogue) the same statements
    X, y, _ = _random(GENERAL, 450)
    t = run_trace(GENERAL, X, y, cores=1)
    by: dict[str, list[tuple[int, int, int]]] = {}
    for s in t.samples:
        by.setdefault(s.kind, []).append((s.statements[0], s.fcalls[0], s.calls[0]))
    assert "init" in by and "learn, correct winner" in by
    for kind, counts in by.items():
        st = [c[0] for c in counts]
        assert max(st) - min(st) <= 4 and len({c[1:] for c in counts}) == 1, (kind, set(counts))


def test_instrument_leaves_native_code_alone() -> None:
    src = "import micropython\n@micropython.viper\ndef f(a: int) -> int:\n    return a\ndef g(x):\n    y = f(x)\n    return y\n"
    out = instrument("m", src)
    assert "f = _T.native('f', f)" in out
    assert "def f(a: int) -> int:\n    return a" in out
    assert "_T.call(f)(x)" in out and "_T.fn()" in out


def test_price_is_the_emulated_call() -> None:
    r = run_case("dense_binary", "asm", 13, 40, seed=1)
    assert r.error is None
    assert price("dense_binary_asm", [-53, -2081, -161, [13, 40, 400, 0, 0, 0, 0, 0]]) == r.run.cycles


def test_calibration_reproduces_the_genuine_figures() -> None:
    cal = C.load_calibration()
    t = cal["terms"]
    assert t["statement_cycles"] > 0 and t["call_cycles"] > 0
    for name, g in C.GENUINE.items():
        e = C.estimate(cal["profiles"][name]["run"], t)
        assert e["seconds"] * 1e3 == pytest.approx(g["ms"], rel=0.10), name
        assert cal["fit"][name]["estimate_ms"] == pytest.approx(e["seconds"] * 1e3, abs=1e-3)
    # a statement costs less than the module-level loop iteration (which stores into a dict)
    # and more than a tenth of it
    assert C.MODULE_LOOP_CYCLES / 10 < t["statement_cycles"] < C.MODULE_LOOP_CYCLES
    # two cores: the MNIST layer's forward halves; the hand-over is priced
    dual = C.estimate(cal["profiles"]["mnist2000"]["steady"], t)
    one = C.estimate(cal["profiles"]["mnist2000-1core"]["steady"], t)
    assert dual["handover"] > 0 and one["handover"] == 0
    assert one["forward"] / dual["forward"] > 1.6


def test_the_firmware_meets_the_speed_targets() -> None:
    """Issue 11 point 7: estimated (calibrated) MNIST 10x96 binary2 <= 1.15 ms per training
    sample on two cores and digits 10x20 <= 0.4 ms, with the same digest as the firmware the
    genuine figures were measured on."""
    cal = C.load_calibration()
    t = cal["terms"]
    digits = C.estimate(cal["profiles"]["now-digits"]["steady"], t)["seconds"] * 1e3
    assert digits <= 0.4
    mnist = C.estimate(cal["profiles"]["now-mnist2000"]["steady"], t)["seconds"] * 1e3
    assert mnist <= 1.15
    assert cal["profiles"]["now-mnist2000"]["cfg"]["sizes"] == [400, 960]  # the 10x96
    assert cal["profiles"]["now-mnist2000"]["cores"] == 2
    for name in ("now-digits", "now-mnist2000", "now-mnist2000-1core"):
        assert cal["profiles"][name]["digest"] == cal["profiles"][name.removeprefix("now-")]["digest"]


def test_the_fast_path_is_what_runs_and_keeps_the_digest() -> None:
    X, y, digest = _random(CFG, 600, seed=11)
    for cores in (1, 2):
        t = run_trace(CFG, X, y, cores=cores)
        assert t.digest == digest, cores
        assert t.mix()["learn, wrong winner"] > 0
        names = {n[1] for s in t.samples for n in s.natives}
        assert "dense_argmax_asm" in names and "argmax" not in names and "update_row" not in names
