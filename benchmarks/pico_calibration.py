"""Calibrate the Pico per-sample model on the genuine firmware's figures and print it.

    .venv/bin/python benchmarks/pico_calibration.py            # table (traces + emulation, ~2 min)
    .venv/bin/python benchmarks/pico_calibration.py --write    # regenerate host/bitflip/measure/pico_calibration.json

Traces the firmware's training path on the MicroPython unix port with the Pico's module set
(bitflip.armv6m.trace: statements, calls and every native call per sample), prices every
native call on its exact armv6m machine code in unicorn (bitflip.armv6m.price), fits the
interpreter terms (bitflip.measure.calibrate.fit) to the board times measured on the genuine
MicroPython v1.28.0 RPI_PICO firmware in a cycle-counting RP2040 emulator
(notes/micropython.md 6.1) — fitted on traces of the firmware those figures were measured on
(commit CALIBRATION_COMMIT, taken from git) —, and profiles the bench workloads (digits 10x20
and MNIST 10x96 binary2, one and two cores) on the firmware as it is now (fast.py). Every
traced run must end with the host reference's digest.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "host"))

from bitflip.armv6m.trace import dataset_rows, run_trace
from bitflip.measure import calibrate as C

CALIBRATION_COMMIT = "0b273a8"  # the firmware the genuine figures were measured on (1f16ec0 + the array fix)
# the configurations the genuine figures were measured with (the defaults at 1f16ec0), pinned:
# the defaults have moved since (digits k_out 3 -> 4, then 10x50 binary on thermo:4; MNIST 10x96 -> 10x84)
DIGITS = {"model": "10x20", "encoding": "thermo:3,7,11", "weights": "binary2", "cfg": {"k": [3], "ks": 3}}
MNIST96 = {"model": "10x96", "cfg": {"k": [5], "ks": 4}}
DEFAULT: dict[str, Any] = {"model": None, "cfg": {}}  # this checkout's defaults (the bench headline)
# bench workloads: name -> (dataset, limit, cores, eval samples, firmware, configuration); "then"
# = the calibration commit's firmware (what the genuine figures measured), "now" = this checkout's
WORKLOADS: dict[str, tuple[str, int, int, int, str, dict[str, Any]]] = {
    "digits": ("digits", 0, 1, 200, "then", DIGITS),
    "mnist2000": ("mnist", 2000, 2, 200, "then", MNIST96),
    "mnist1000": ("mnist", 1000, 2, 0, "then", MNIST96),
    "mnist2000-1core": ("mnist", 2000, 1, 200, "then", MNIST96),
    "now-digits": ("digits", 0, 1, 0, "now", DIGITS),
    "now-mnist2000": ("mnist", 2000, 2, 0, "now", MNIST96),
    "now-mnist2000-1core": ("mnist", 2000, 1, 200, "now", MNIST96),
    "now-mnist-default": ("mnist", 2000, 2, 0, "now", DEFAULT),
    "now-mnist-default-1core": ("mnist", 2000, 1, 0, "now", DEFAULT),
}
BENCH = {  # what `bitflip bench` shows: label -> workload (this firmware)
    "digits 10x20 binary2, 1 core": "now-digits",
    "digits 10x20 binary2, 2 cores": "now-digits",  # 200 rows < 256: dual.py does not split, same path
    "mnist 10x96 binary2, 1 core": "now-mnist2000-1core",
    "mnist 10x96 binary2, 2 cores": "now-mnist2000",
}
# the headline of `bitflip bench` (costmodel.per_sample_table): the default MNIST model, per cores
HEADLINE = {"1": "now-mnist-default-1core", "2": "now-mnist-default"}
BEFORE = {  # the same workloads on the calibration firmware (the genuine figures' code)
    "digits 10x20 binary2, 1 core": "digits",
    "digits 10x20 binary2, 2 cores": "digits",
    "mnist 10x96 binary2, 1 core": "mnist2000-1core",
    "mnist 10x96 binary2, 2 cores": "mnist2000",
}


def firmware_at(commit: str, dst: Path) -> Path:
    """The firmware package as it was at a commit (from git), in dst/bitflip."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    pkg = dst / "bitflip"
    pkg.mkdir(parents=True)
    names = subprocess.run(
        ["git", "ls-tree", "--name-only", f"{commit}:firmware/bitflip"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for name in names:
        (pkg / name).write_text(
            subprocess.run(
                ["git", "show", f"{commit}:firmware/bitflip/{name}"],
                cwd=root,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
    return pkg


def reference_digest(cfg: dict[str, Any], X: Any, y: Any) -> str:
    from bitflip.training.reference import Reference

    ref = Reference(cfg)
    for i in range(len(y)):
        ref.train_sample(X[i], int(y[i]))
    return ref.digest()


def _default_labels(profiles: dict[str, Any]) -> dict[str, str]:
    out = {}
    for cores, name in HEADLINE.items():
        n_out = profiles[name]["cfg"]["sizes"][-1]
        out[f"mnist 10x{n_out // 10} binary2 (default), {cores} core{'s' * (cores != '1')}"] = name
    return out


def build(log: Any = print) -> dict[str, Any]:
    import tempfile

    profiles: dict[str, Any] = {}
    tmp = tempfile.TemporaryDirectory(prefix="bitflip-calibration-")
    then = firmware_at(CALIBRATION_COMMIT, Path(tmp.name))
    for name, (ds, limit, cores, n_eval, path, conf) in WORKLOADS.items():
        cfg, X, y = dataset_rows(
            ds, limit=limit, model=conf["model"], encoding=conf.get("encoding"), weights=conf.get("weights")
        )
        cfg.update(conf["cfg"])
        ev: dict[str, Any] = {}
        if n_eval:
            from bitflip.training.runner import TrainRequest, prepare

            plan = prepare(
                TrainRequest(
                    board="host",
                    dataset=ds,
                    epochs=1,
                    limit=limit or None,
                    val=0,
                    encoding=conf.get("encoding"),
                    out=Path(tmp.name) / "unused",
                )
            )
            ev = {"X_eval": plan.x_test[:n_eval], "y_eval": plan.data.y_test[:n_eval].astype("uint8")}
        log(f"tracing {name} ({ds}, {len(y)} samples, {cores} core{'s' * (cores > 1)}) ...")
        kw: dict[str, Any] = {"src": then} if path == "then" else {}
        t = run_trace(cfg, X, y, cores=cores, **ev, **kw)
        ref = reference_digest(cfg, X, y)
        if t.digest != ref:
            raise SystemExit(f"{name}: the traced firmware's digest {t.digest} differs from the reference's {ref}")
        log(f"  pricing {len(t.segments)} segments on emulated armv6m ...")
        profiles[name] = {
            "dataset": ds,
            "limit": limit,
            "samples": len(y),
            "cfg": cfg,
            "path": path,
            **C.trace_profiles(t),
        }
    tmp.cleanup()
    fitted = C.fit(profiles, tuple(C.GENUINE))
    fit_report = {}
    for name, g in C.GENUINE.items():
        e = C.estimate(profiles[name]["run"], fitted)
        fit_report[name] = {
            "genuine_ms": g["ms"],
            "estimate_ms": round(e["seconds"] * 1e3, 4),
            "error": round(e["seconds"] * 1e3 / g["ms"] - 1, 4),
            "what": g["what"],
        }
    loo = {}
    for pair in itertools.combinations(C.GENUINE, 2):
        t2 = C.fit(profiles, pair)
        left = next(n for n in C.GENUINE if n not in pair)
        e = C.estimate(profiles[left]["run"], t2)
        loo["+".join(pair)] = {
            "terms": {k: round(v, 1) for k, v in t2.items()},
            "predicts": left,
            "error": round(e["seconds"] * 1e3 / C.GENUINE[left]["ms"] - 1, 4),
        }
    return {
        "interp_counts": C.interp_counts(profiles["mnist2000-1core"], profiles["mnist2000"]),
        "interp_counts_fast": C.interp_counts(profiles["now-mnist2000-1core"], profiles["now-mnist2000"]),
        "generated_by": "benchmarks/pico_calibration.py --write (bitflip.measure.calibrate)",
        "label": C.LABEL,
        "clock_hz": C.CLOCK_HZ,
        "terms": {k: round(v, 2) for k, v in fitted.items()},
        "dual_bus_penalty": C.DUAL_BUS_PENALTY,
        "fit": fit_report,
        "fit_on": list(C.GENUINE),
        "fit_note": (
            "least squares on relative error over the three genuine figures: digits and MNIST-2000 alone "
            "have nearly the same statements-to-calls ratio, so a fit on those two is degenerate (it returns "
            "a negative call price); MNIST-1000 (94 % prototype-initialisation samples) separates the terms"
        ),
        "leave_one_out": loo,
        "module_loop_cycles": round(C.MODULE_LOOP_CYCLES, 1),
        "calibration_commit": CALIBRATION_COMMIT,
        "bench": {**BENCH, **_default_labels(profiles)},
        "headline": HEADLINE,
        "before": BEFORE,
        "profiles": profiles,
    }


def print_report(cal: dict[str, Any]) -> None:
    t = cal["terms"]
    print(f"Pico per-sample model: {t['statement_cycles']:.0f} cycles per statement, {t['call_cycles']:.0f} per call")
    print(
        f"(module-level `for i in range(10000): pass` on the genuine firmware: {cal['module_loop_cycles']:.0f} "
        f"cycles per iteration)"
    )
    for name, f in cal["fit"].items():
        print(
            f"  {name:<10} genuine {f['genuine_ms']:.3f} ms  estimate {f['estimate_ms']:.3f} ms  "
            f"({100 * f['error']:+.1f} %)  {f['what']}"
        )
    for pair, r in cal["leave_one_out"].items():
        print(f"  fit on {pair}: {r['terms']} -> {r['predicts']} {100 * r['error']:+.1f} %")
    print()
    head = f"{'workload':<32} {'ms':>6} {'fwd':>6} {'upd':>6} {'vote':>5} {'stmt':>6} {'calls':>6} {'hand':>6}"
    for which in ("steady", "run"):
        print(f"per training sample ({'learning samples only' if which == 'steady' else 'run average'}), ms:")
        print(head)
        for label, name in [*cal["bench"].items(), *((f"{k} (before)", v) for k, v in cal["before"].items())]:
            e = C.estimate(cal["profiles"][name][which], t)
            ms = {k: v / C.CLOCK_HZ * 1e3 for k, v in e.items() if k not in ("seconds",)}
            print(
                f"{label:<32} {ms['cycles']:>6.3f} {ms['forward']:>6.3f} {ms['update']:>6.3f} {ms['vote']:>5.2f} "
                f"{ms['statements']:>6.3f} {ms['calls']:>6.3f} {ms['handover']:>6.3f}"
            )
    print(cal["label"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help="regenerate host/bitflip/measure/pico_calibration.json")
    args = ap.parse_args(argv)
    cal = build(log=lambda s: print(s, file=sys.stderr))
    if args.write:
        C.CALIBRATION_PATH.write_text(json.dumps(cal, indent=1, sort_keys=True) + "\n")
        print(f"wrote {C.CALIBRATION_PATH}", file=sys.stderr)
    print_report(cal)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
