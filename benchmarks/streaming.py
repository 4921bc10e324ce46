"""How fast the host streams into a virtual board over its pty, and how fast that board trains.

    .venv/bin/python benchmarks/streaming.py                    # markdown tables
    .venv/bin/python benchmarks/streaming.py --json             # one JSON object
    .venv/bin/python benchmarks/streaming.py --digits-epochs 5 --mnist-limit 10000

Every figure is measured here, on this machine, through the same code path as
`bitflip train --board sim-...`: the host's SerialLink and FrameSender (CRC32, sequence
numbers, credit-based flow control), a pty, the relay thread, and the MicroPython unix port
running the firmware as x64 .mpy with the board's heap. The host-side clock is
time.perf_counter() around each phase of the job:

- train phase: from the record that opens the epoch (config, or the checkpoint of the
  previous epoch) to the device's "epoch" record, which it emits only after it has taken
  and acknowledged every frame of the epoch (checkpoints every 1000 samples included);
- eval phase: from the "epoch" record to the "eval" record (test split, forward only);
- bytes: everything the host wrote to the port in the phase (frame headers, payloads,
  CRCs, the mark and checkpoint frames); with no retransmissions (checked) these are the
  bytes of frames the device acknowledged.

"stream only" is the eval phase of MNIST into the smallest model (784-10, one prototype per
class): every frame is still received, CRC-checked and parsed, but the work per sample is
10 rows of 25 words; the device's own busy time (ticks_us inside the sample handler) is
shown next to it so the remaining compute is visible. The device busy times are the unix
port's (x64 machine code): they say nothing about a Pico's speed. The Pico row of the
estimate table does: kernel cycles only, from the op counters of the sim run times the
cycles per word of the asm_thumb kernels run in the armv6m emulator (benchmarks/
kernel_costs.py), at 125 MHz; interpreter overhead and the link are not in it, so it is an
upper bound on samples/s, not a measurement.

"esp32 link" rows drive the same pty with the real esp32 board file's link settings
(frames of 256 bytes, one in flight, writes paced at 10 kB/s for its UART bridge), as
`bitflip train --board esp32 --port <sim pty>` does: the host-side cost of pacing.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Self

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "host"))

from bitflip import boards as boards_mod
from bitflip import gitinfo
from bitflip.errors import UsageError
from bitflip.link import serial as link_mod
from bitflip.link.virtual import VirtualBoard
from bitflip.measure import energy
from bitflip.training import device as session_mod
from bitflip.training.hparams import DEFAULT_WEIGHTS
from bitflip.training.memory import largest_prototypes, model_name
from bitflip.training.reference import Reference
from bitflip.training.runner import TrainRequest, prepare, train


class Clock:
    """Timestamps of every write to the port and of every record, in the benchmark process."""

    def __init__(self) -> None:
        self.writes: list[tuple[float, int]] = []
        self.records: list[tuple[float, dict[str, Any]]] = []
        self._write = link_mod.SerialLink.write
        self._on_record = session_mod.DeviceRun.on_record

    def __enter__(self) -> Self:
        clock = self

        def write(link: Any, data: bytes) -> None:
            clock._write(link, data)
            clock.writes.append((time.perf_counter(), len(data)))

        def on_record(run: Any, rec: dict[str, Any]) -> None:
            clock.records.append((time.perf_counter(), dict(rec)))
            clock._on_record(run, rec)

        link_mod.SerialLink.write = write  # type: ignore[method-assign]
        session_mod.DeviceRun.on_record = on_record  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        link_mod.SerialLink.write = self._write  # type: ignore[method-assign]
        session_mod.DeviceRun.on_record = self._on_record  # type: ignore[method-assign]

    def bytes_between(self, t0: float, t1: float) -> int:
        return sum(n for t, n in self.writes if t0 < t <= t1)


def firmware_commit() -> str:
    return gitinfo.commit(("firmware",))


def phases(clock: Clock, n_train: int, n_test: int) -> dict[str, dict[str, float]]:
    """Seconds, bytes, samples and device busy time of the train and eval phases (summed
    over epochs)."""
    out = {k: {"s": 0.0, "bytes": 0, "samples": 0, "busy_s": 0.0} for k in ("train", "eval")}
    samples = {"epoch": ("train", n_train), "eval": ("eval", n_test)}

    def add(phase: str, n: int, t0: float, t1: float, rec: dict[str, Any]) -> None:
        ph = out[phase]
        ph["s"] += t1 - t0
        ph["bytes"] += clock.bytes_between(t0, t1)
        ph["samples"] += n
        # eval records of older firmware carry no busy time
        ph["busy_s"] += int(rec["busy_us"]) / 1e6 if "busy_us" in rec else (0.0 if phase == "train" else float("nan"))

    start = None
    for t, rec in clock.records:
        ev = rec.get("ev")
        if ev == "config" or (ev == "ckpt" and int(rec.get("index", -1)) == 0):
            start = t
        elif ev in samples and start is not None:
            phase, n = samples[ev]
            add(phase, n, start, t, rec)
            start = t if ev == "epoch" else None
    return out


def run_job(label: str, req: TrainRequest) -> dict[str, Any]:
    with Clock() as clock:
        summary = train(req)
    plan_n = summary["samples_seen"] // summary["epochs"]
    ph = phases(clock, plan_n, _n_test(req))
    # the first epoch's record: its counters cover training only (no eval pass before it)
    first_epoch = next(r for _, r in clock.records if r.get("ev") == "epoch")
    return {
        "label": label,
        "board": req.board,
        "dataset": req.dataset,
        "model": summary["model"],
        "sizes": summary["sizes"],
        "weights": summary["weights"],
        "encoding": summary["encoding"],
        "epochs": req.epochs,
        "limit": req.limit,
        "phases": ph,
        "retransmitted": summary["retransmitted_frames"],
        "reconnects": summary["reconnects"],
        "frame_shrinks": summary["frame_shrinks"],
        "counters": {k: first_epoch.get(k) for k in ("fwd_words", "upd_words", "vote_words", "step")},
        "test_accuracy": summary["test_accuracy"],
        "weights_sha256": summary["weights_sha256"],
    }


_TEST_N: dict[str, int] = {}


def _n_test(req: TrainRequest) -> int:
    if req.dataset not in _TEST_N:
        from bitflip.data import load_dataset

        _TEST_N[req.dataset] = len(load_dataset(req.dataset).y_test)
    return _TEST_N[req.dataset]


def host_reference(dataset: str, limit: int, epochs: int) -> dict[str, Any]:
    """Samples/s of the numpy reference (train_sample in a Python loop), same job."""
    plan = prepare(TrainRequest(board="host", dataset=dataset, epochs=epochs, limit=limit))
    ref = Reference(plan.cfg)
    t0 = time.perf_counter()
    n = 0
    for e in range(epochs):
        for i in plan.order(e):
            ref.train_sample(plan.x_train[i], int(plan.y_train[i]))
            n += 1
    dt = time.perf_counter() - t0
    t1 = time.perf_counter()
    ref.predict(plan.x_test)
    de = time.perf_counter() - t1
    return {
        "dataset": dataset,
        "model": plan.req.model,
        "weights": plan.req.weights,
        "samples": n,
        "s": dt,
        "eval_samples": len(plan.x_test),
        "eval_s": de,
        "digest": ref.digest(),
    }


def pico_estimate(job: dict[str, Any]) -> dict[str, Any] | None:
    """Kernel-only device time per training sample on a Pico, from the sim run's counters."""
    try:
        from bitflip.armv6m import row_cost
    except ImportError:  # unicorn missing
        return None
    sizes = job["sizes"]
    c = job["counters"]
    steps = int(c["step"])
    n_in, rows = sizes[-2], sizes[-1]
    dense = row_cost("dense_binary", n_in, rows, "asm")["cycles_per_word"]
    flip = row_cost("flip_row", n_in, 3, "asm")["cycles_per_word"]
    fwd = c["fwd_words"] / steps
    upd = c["upd_words"] / steps
    vote = (c.get("vote_words") or 0) / steps
    cycles = fwd * dense + upd * flip + vote * dense  # votes walk rows like a forward pass
    clock = boards_mod.load("pico").clock_hz
    return {
        "fwd_words": fwd,
        "upd_words": upd,
        "vote_words": vote,
        "dense_cpw": dense,
        "flip_cpw": flip,
        "cycles": cycles,
        "samples_per_s": clock / cycles,
    }


def fmt_rate(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:,.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boards", default="sim-pico,sim-esp32")
    ap.add_argument("--digits-epochs", type=int, default=5)
    ap.add_argument("--mnist-limit", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3, help="run each job N times, keep the fastest (noisy machine)")
    ap.add_argument("--no-paced", action="store_true", help="skip the esp32-link (paced) rows")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cmd = " ".join(["python benchmarks/streaming.py"] + [shlex.quote(a) for a in sys.argv[1:]])
    work = Path(tempfile.mkdtemp(prefix="bitflip-streaming-"))
    jobs: list[dict[str, Any]] = []
    for board in args.boards.split(","):
        spec = [
            ("digits default", {"dataset": "digits", "epochs": args.digits_epochs}),
            ("mnist default", {"dataset": "mnist", "epochs": 1, "limit": args.mnist_limit}),
            ("stream only", {"dataset": "mnist", "model": "10", "weights": "binary", "epochs": 1, "limit": 200}),
        ]
        for label, kw in spec:
            req = TrainRequest(board=board, seed=0, out=work / f"{board}-{label.replace(' ', '-')}", **kw)
            try:
                prepare(TrainRequest(**{**req.__dict__, "out": None}))
            except UsageError as e:  # the default model does not fit this board: its largest that does
                if "the largest that fits" not in str(e):
                    raise
                p = largest_prototypes(energy.default_sizes(), DEFAULT_WEIGHTS["mnist"], boards_mod.load(board), 10)
                req.model, label = f"10x{p}", f"{label} -> largest that fits"
            runs = []
            for r in range(max(1, args.repeat)):
                req.out = work / f"{board}-{label.replace(' ', '-')}-{r}"
                runs.append(run_job(label, req))
            jobs.append(min(runs, key=lambda j: sum(ph["s"] for ph in j["phases"].values())))
            print(f"# {board} {label}: done", file=sys.stderr)
    if not args.no_paced:
        # the real esp32 board file's link (256-byte frames, credit 1, 10 kB/s pacing) on a sim pty
        with VirtualBoard(boards_mod.load("sim-esp32"), work / "paced-flash") as vb:
            req = TrainRequest(board="esp32", port=vb.port, dataset="digits", epochs=1, seed=0, out=work / "paced")
            job = run_job("digits default", req)
            job["board"] = "esp32 link -> sim-esp32"
            jobs.append(job)
            print("# paced esp32 link: done", file=sys.stderr)
    host = [host_reference("digits", 0, args.digits_epochs), host_reference("mnist", args.mnist_limit, 1)]

    def sim_pico(label: str) -> dict[str, Any] | None:  # None when --boards left sim-pico out
        job = next((j for j in jobs if j["board"] == "sim-pico" and j["label"] == label), None)
        return pico_estimate(job) if job is not None else None

    est, est_mnist = sim_pico("digits default"), sim_pico("mnist default")
    if args.json:
        print(json.dumps({"command": cmd, "jobs": jobs, "host": host, "pico_estimate": [est, est_mnist]}, indent=1))
        return
    py = platform.python_version()
    print("### Streaming into the virtual boards (measured)\n")
    print(
        f"`{cmd}` — commit {firmware_commit()}, {platform.machine()} host, CPython {py}, "
        f"{time.strftime('%Y-%m-%d')}; "
        f"all figures measured on this shared 2-core machine, fastest of {args.repeat} runs per job "
        "(noisy: compare within one run)\n"
    )
    print(
        "| board | job | model (weights) | phase | samples | bytes sent | seconds | bytes/s | samples/s "
        "| device busy | retx |"
    )
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for j in jobs:
        model = f"{model_name(j['sizes'], 10)} ({j['weights']})"
        job = (
            j["label"]
            + (f", {j['epochs']} epochs" if j["epochs"] > 1 else "")
            + (f", --limit {j['limit']}" if j["limit"] else "")
        )
        show = ["eval"] if j["label"] == "stream only" else ["train", "eval"]
        for name in show:
            ph = j["phases"][name]
            if not ph["s"]:
                continue
            busy = ph["busy_s"] / ph["s"]
            busy_s = "n/a" if math.isnan(busy) else f"{100 * busy:.0f}%"
            print(
                f"| {j['board']} | {job} | {model} | {name} | {ph['samples']:,} | {ph['bytes']:,} | {ph['s']:.3f} "
                f"| {fmt_rate(ph['bytes'] / ph['s'])} | {fmt_rate(ph['samples'] / ph['s'])} | {busy_s} "
                f"| {j['retransmitted']} |"
            )
    print(
        '\n"device busy": share of the phase the firmware spent inside its sample handler (unix port, x64 '
        "machine code); the rest is the link: host writes, pty, relay, frame receive, CRC32, acks.\n"
    )
    print("### Host reference (numpy, same jobs, measured)\n")
    print("| dataset | model (weights) | training samples | samples/s (train_sample loop) | eval samples/s (batched) |")
    print("|---|---|---:|---:|---:|")
    for h in host:
        print(
            f"| {h['dataset']} | {h['model']} ({h['weights']}) | {h['samples']:,} | {fmt_rate(h['samples'] / h['s'])} "
            f"| {fmt_rate(h['eval_samples'] / h['eval_s'])} |"
        )
    ref = {(h["dataset"], h["model"]): h["digest"] for h in host}
    compared = [
        j
        for j in jobs
        if (j["dataset"], j["model"]) in ref
        and (j["epochs"], j["limit"])
        == ((args.digits_epochs, 0) if j["dataset"] == "digits" else (1, args.mnist_limit))
    ]
    same = bool(compared) and all(j["weights_sha256"] == ref[(j["dataset"], j["model"])] for j in compared)
    print(
        f"\nDevice weights equal to the host reference's (sha256) in the {len(compared)} jobs run on both: "
        f"{'yes' if same else 'NO'}\n"
    )
    if est is not None or est_mnist is not None:
        print("### Pico (RP2040) estimate: kernel cycles only (estimated, not measured)\n")
        print(
            "| job | forward words/sample | flipped-row words/sample | dense cycles/word | flip cycles/word "
            "| kernel cycles/sample | kernel-bound samples/s @125 MHz |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for label, e in (("digits default", est), ("mnist default", est_mnist)):
            if e is None:
                continue
            print(
                f"| {label} | {e['fwd_words']:,.0f} | {e['upd_words']:,.1f} | {e['dense_cpw']:.1f} "
                f"| {e['flip_cpw']:.1f} | {e['cycles']:,.0f} | {e['samples_per_s']:,.0f} |"
            )
        print(
            "\nOp counters from the sim-pico run above; cycles per word of the asm_thumb kernels on the layer's "
            "shape from the armv6m emulator. MicroPython's per-sample interpreter work and the USB link are not "
            "included: a real Pico trains slower than this bound."
        )


if __name__ == "__main__":
    main()
