"""Using a trained model: model-file sizes, Model.predict latency on the virtual board
(measured: the unix port, x64 code) and on a Pico (estimated: bitflip.use.cost), and the
accuracy on the board equal to the training run's, for the digits and MNIST defaults.

    .venv/bin/python benchmarks/predict.py [--mnist-run DIR] [--digits-run DIR] [--samples N] [--json]

Without --*-run the script trains the default model on the host (digits 10 epochs, MNIST
2 epochs; MNIST needs `bitflip data fetch mnist` or BITFLIP_DATA)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "host"))

import numpy as np
from bitflip import boards
from bitflip.api import train
from bitflip.data import load_dataset
from bitflip.link.build import build_firmware
from bitflip.link.virtual import micropython_exe
from bitflip.training.memory import sim_heap_bytes
from bitflip.use.cexport import export_c
from bitflip.use.cost import pico_estimate
from bitflip.use.export import export_run
from bitflip.use.modelfile import ModelFile

TIMER = """
import time, micropython, gc
from bitflip.model import Model
m = Model.load('m.bfm')
F = {features}
row = bytearray(F)
out = bytearray({n})
def go(f):
    acc = 0
    for i in range({n}):
        f.readinto(row)
        t0 = time.ticks_us()
        out[i] = m.predict(row)
        acc += time.ticks_diff(time.ticks_us(), t0)
    return acc
gc.collect()
best = None
for rep in range(3):
    with open('x.bin', 'rb') as f:
        micropython.heap_lock()
        t = go(f)
        micropython.heap_unlock()
    best = t if best is None or t < best else best
print(best / {n}, gc.mem_free(), bytes(out).hex())
"""


def board_latency(mf: ModelFile, x: np.ndarray, board: str = "sim-pico") -> dict[str, Any]:
    """Model.predict on the unix port with the virtual board's heap and the deployed build
    (.mpy files, as `bitflip sim` installs them): best of 3 passes, heap locked."""
    with tempfile.TemporaryDirectory() as tmp:
        mf.write(Path(tmp) / "m.bfm")
        (Path(tmp) / "x.bin").write_bytes(np.ascontiguousarray(x, dtype=np.uint8).tobytes())
        build = build_firmware("x64", Path(tmp) / "build")
        env = dict(os.environ, MICROPYPATH=f"{build.folder}:.frozen")
        heap = sim_heap_bytes(boards.load(board))
        p = subprocess.run(
            [micropython_exe(), "-X", f"heapsize={heap}", "-c", TIMER.format(features=mf.n_features, n=len(x))],
            capture_output=True,
            text=True,
            cwd=tmp,
            env=env,
            check=True,
            timeout=1200,
        )
    us, free, hx = p.stdout.split()
    pred = np.frombuffer(bytes.fromhex(hx), dtype=np.uint8)
    return {"us_per_predict": round(float(us), 2), "heap_free_after_load": int(free), "pred": pred, "heap": heap}


def row(name: str, run: Path, dataset: str, samples: int) -> dict[str, Any]:
    mf = export_run(run, dataset)
    d = load_dataset(dataset)
    with tempfile.TemporaryDirectory() as tmp:
        bfm = mf.write(Path(tmp) / "m.bfm")
        export_c(mf, Path(tmp) / "model.h")
        c_header = (Path(tmp) / "model.h").stat().st_size
    x = d.x_test[:samples]
    lat = board_latency(mf, x)
    host = mf.predict(d.x_test)
    return {
        "model": name,
        "sizes": mf.sizes,
        "weights": mf.cfg["weights"],
        "encoding": mf.encoding.spec,
        "bfm_bytes": bfm,
        "c_header_bytes": c_header,
        "planes_bytes": sum(len(p) for _, _, p in mf.planes),
        "run_test_accuracy": mf.meta.get("test_accuracy"),
        "host_accuracy": float((host == d.y_test).mean()),
        "board_equals_host": bool(np.array_equal(lat["pred"], host[:samples])),
        "samples_timed": len(x),
        "sim_pico_us_per_predict": lat["us_per_predict"],
        "sim_pico_heap_free_after_load": lat["heap_free_after_load"],
        "pico_estimate_1core": pico_estimate(mf, d.x_test[0], 1),
        "pico_estimate_2cores": pico_estimate(mf, d.x_test[0], 2),
    }


def label(name: str, run: Path) -> str:
    """'MNIST 400-10x84 binary2' from the run's own summary (the defaults change over time)."""
    s = json.loads((run / "summary.json").read_text())
    return f"{name} {s['sizes'][0]}-{s['model']} {s['weights']}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--digits-run", type=Path)
    ap.add_argument("--mnist-run", type=Path)
    ap.add_argument("--samples", type=int, default=2000, help="test samples timed on the virtual board")
    ap.add_argument("--skip-mnist", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    runs = [("digits", a.digits_run or Path(train("digits", "host")["run_dir"]), "digits")]
    if not a.skip_mnist:
        runs.append(("MNIST", a.mnist_run or Path(train("mnist", "host", epochs=2)["run_dir"]), "mnist"))
    rows = [row(label(n, r), r, d, a.samples) for n, r, d in runs]
    if a.json:
        print(json.dumps(rows, indent=1, default=str))
        return
    print(
        "| model | .bfm bytes | C header bytes | test accuracy (run / host / board = host) | "
        "sim-pico us per predict (measured, x64) | Pico us per predict, 1 core / 2 cores (estimated) |"
    )
    print("|---|---:|---:|---|---:|---:|")
    for r in rows:
        e1, e2 = r["pico_estimate_1core"], r["pico_estimate_2cores"]
        print(
            f"| {r['model']} | {r['bfm_bytes']:,} | {r['c_header_bytes']:,} | {r['run_test_accuracy']:.4f} / "
            f"{r['host_accuracy']:.4f} / {'yes' if r['board_equals_host'] else 'NO'} ({r['samples_timed']}) | "
            f"{r['sim_pico_us_per_predict']} | {e1['us']:,} / {e2['us']:,} |"
        )
    print()
    for r in rows:
        e = r["pico_estimate_1core"]
        print(
            f"{r['model']}: Pico cycles per predict (1 core) {e['cycles']:,} = forward {e['forward_dense_cycles']:,} "
            f"dense + {e['forward_other_cycles']:,} other, encode {e['encode_cycles']}, interpreter "
            f"{e['interpreter_cycles']:,}; work per sample {e['work']}"
        )


if __name__ == "__main__":
    main()
