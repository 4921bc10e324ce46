"""Fault-injection benchmark: digits on the virtual Pico with 1 % of the bytes corrupted
in both directions, and with 1 % of the host->board bytes corrupted, each with one board
reset ("disconnect": the process is killed and restarted on its flash folder) per epoch;
the final weights must equal the clean run's.

    .venv/bin/python benchmarks/faults.py [--epochs 16]   # the table (16 x 1295 = 20,720 training samples)
    .venv/bin/python benchmarks/faults.py --fuzz          # fuzz cases / crashes

The disconnect: a KillSwitch on the checkpoint frames. With --ckpt-every 500 the host
sends 3 new checkpoint frames per digits epoch (at 500, 1000 and the epoch end); the first
one of every epoch (at 500) kills the board within a random 0-1 s afterwards (mid checkpoint
write or while the next samples stream). Frames resent to a restarted board are not counted
again, so it is one reset per epoch. Throughput is relative to a clean run on the virtual Pico measured in the same
invocation.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the workload every figure in docs/results/faults.md was measured on (the digits default until
# 2026-12-03), pinned so that the history stays comparable when the default moves
WORKLOAD = {"model": "10x20", "encoding": "thermo:3,7,11", "weights": "binary2"}


def scenario(name: str, epochs: int, fault_in=None, fault_out=None, board: str = "sim-pico") -> dict:
    from bitflip.training.runner import TrainRequest, train

    out = Path(tempfile.mkdtemp(prefix="bitflip-faults-"))
    t0 = time.monotonic()
    s = train(
        TrainRequest(
            board=board,
            dataset="digits",
            **WORKLOAD,
            epochs=epochs,
            out=out,
            ckpt_every=500,
            fault_in=fault_in,
            fault_out=fault_out,
        )
    )
    s["bench_wall_s"] = time.monotonic() - t0
    s["name"] = name
    return s


def table(args: argparse.Namespace) -> None:
    from bitflip.device import protocol as P
    from bitflip.link import faults as F

    ref = scenario("host reference", args.epochs, board="host")
    runs = [scenario("clean (virtual Pico)", args.epochs)]
    cases = [
        (f"{args.both:g}% corrupt both ways + 1 reset/epoch", args.both / 100, args.both / 100),
        (f"{args.both:g}% corrupt host->board + 1 reset/epoch", args.both / 100, 0.0),
    ]
    for name, cin, cout in cases:
        ks = F.KillSwitch(1, P.K_CKPT, every=3, max_kills=args.epochs, max_delay_s=1.0, distinct=True)
        ks.count = 2  # the first kill at the epoch's first checkpoint (500), then every 3rd
        bf = F.ByteFaults(2, corrupt=cin, after=2000)
        fo = F.ByteFaults(3, corrupt=cout, after=500) if cout else None
        s = scenario(name, args.epochs, fault_in=F.Chain(ks, bf), fault_out=fo)
        s["kills"] = ks.kills
        s["corrupted"] = bf.counts["corrupted"] + (fo.counts["corrupted"] if fo else 0)
        runs.append(s)
    clean_t = runs[0]["bench_wall_s"]
    print(
        f"digits, model {ref['model']} {ref['weights']}, {args.epochs} epochs ({ref['samples_seen']:,} training "
        f"samples), clean digest "
        f"{ref['weights_sha256'][:16]}..., host reference {ref['bench_wall_s']:.2f} s\n"
    )
    print(
        "| scenario | digest = clean | retransmitted frames | damaged records | reconnects (resets) "
        "| bytes corrupted | wall s | throughput vs clean |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for s in runs:
        same = "yes" if s["weights_sha256"] == ref["weights_sha256"] else "NO"
        print(
            f"| {s['name']} | {same} | {s['retransmitted_frames']} | {s['damaged_records']} | "
            f"{s['reconnects']} ({s.get('kills', 0)}) | {s.get('corrupted', 0)} | {s['bench_wall_s']:.1f} | "
            f"{clean_t / s['bench_wall_s']:.3f} |"
        )
    for s in runs[1:]:
        print(
            f"\n{s['name']}: resumed from {s['resumed_from']}, frame shrinks {s['frame_shrinks']}, "
            f"bytes sent {s['bytes_sent']}, test accuracy {s['test_accuracy']:.4f}"
        )


def fuzz() -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    import test_faults as T

    t0 = time.monotonic()
    T.test_fuzz_device_frame_parser()  # the hypothesis property test, all its examples
    st = T.FUZZ_STATS
    print("device frame parser (firmware/bitflip/stream.py) under the MicroPython unix port, heap locked")
    print(
        f"cases run: {st['cases']} ({st['batches']} hypothesis examples x {T.BATCH}; "
        f"mutations: {', '.join(T.MUTATIONS)})"
    )
    print(
        f"bytes fed: {st['bytes']}, frames accepted: {st['frames']}, naks (each checked against an exact "
        f"model of the parser): {st['naks']}"
    )
    print(f"crashes found: {st['crashes']}, hangs found: {st['hangs']}, time {time.monotonic() - t0:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # digits trains on 1,295 samples an epoch (1,437 less the 142 of the validation split):
    # 16 epochs are the first >= 20,000 training samples (issue 14)
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument(
        "--both",
        type=float,
        default=1.0,
        metavar="PCT",
        help="percent of the bytes corrupted (both ways in the first scenario, host->board in the second)",
    )
    ap.add_argument("--fuzz", action="store_true", help="run the parser fuzzing and print cases / crashes")
    args = ap.parse_args()
    if args.fuzz:
        fuzz()
    else:
        table(args)


if __name__ == "__main__":
    main()
