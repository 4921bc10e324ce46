"""Where the wall time of benchmarks/faults.py's host->board scenario goes (1 % of the
host->board bytes corrupted, one board reset per epoch, digits, 16 epochs, --ckpt-every 500).

    .venv/bin/python benchmarks/faults_profile.py [--rounds 2]

The scenario is taken apart by switching its parts on one at a time, in one process (the
host reference runs first so imports and caches are warm, as in faults.py):

- clean: no fault (faults.py's clean row);
- clean, frames sized for 1 %: no fault, but the sender's error estimate pinned at 1 %, so
  frames are as short as on the noisy line and carry FEC check bytes: the cost of the
  frame count alone;
- 1 % noise, no resets: adds the losses (resends, the device idling for them);
- resets only: the KillSwitch of faults.py on a clean line;
- 1 % noise + resets: the benchmark's scenario.

Per run: wall time, time in DeviceRun._connect (reconnect: probe, launch, config; the
board's restart is in VirtualTarget.reopen, not counted here), the samples streamed
(more than the clean run's: samples after the last confirmed checkpoint are streamed again
after a reset), frames sent and retransmitted, resets. After the table, the reconnect path
of the last scenario by phase. All numbers are measured; each run is one sample of a noisy
quantity (2 shared cores): compare rows within one invocation.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

T: collections.defaultdict[str, float] = collections.defaultdict(float)
N: collections.Counter[str] = collections.Counter()


def timed(obj: Any, name: str, key: str) -> None:
    """Add the time spent in obj.name (and the calls) to T[key] (N[key])."""
    f: Callable[..., Any] = getattr(obj, name)

    def g(*a: Any, **k: Any) -> Any:
        t0 = time.monotonic()
        try:
            return f(*a, **k)
        finally:
            T[key] += time.monotonic() - t0
            N[key] += 1

    setattr(obj, name, g)


def instrument() -> dict[str, float | None]:
    from bitflip.device import protocol as P
    from bitflip.link import arq, connect, sizing, targets
    from bitflip.training import device

    timed(device.DeviceRun, "_connect", "connect")
    timed(connect.Connector, "launch", "launch (raw REPL, boot, first pong)")
    timed(targets.VirtualTarget, "reopen", "board restart (VirtualTarget.reopen)")
    orig_req = arq.FrameSender.request

    def request(self: Any, kind: int, payload: bytes, ev: str, tries: int = 200) -> Any:
        t0 = time.monotonic()
        try:
            return orig_req(self, kind, payload, ev, tries)
        finally:
            T[f"request {P.KIND_NAMES[kind]}"] += time.monotonic() - t0
            N[f"request {P.KIND_NAMES[kind]}"] += 1

    arq.FrameSender.request = request  # type: ignore[method-assign]
    orig_init = device.DeviceRun.__init__

    def init(self: Any, *a: Any, **k: Any) -> None:
        orig_init(self, *a, **k)
        progress = self.progress

        def counted(n: int) -> None:
            N["samples"] += n
            N["frames"] += 1
            progress(n)

        self.progress = counted

    device.DeviceRun.__init__ = init  # type: ignore[method-assign]
    pin: dict[str, float | None] = {"p": None}  # the sender's error estimate, pinned
    orig_update, orig_er = sizing.ErrorRate.update, sizing.ErrorRate.__init__

    def update(self: Any) -> None:
        orig_update(self)
        if pin["p"] is not None:
            self.p = pin["p"]

    def er_init(self: Any) -> None:
        orig_er(self)
        if pin["p"] is not None:
            self.p = pin["p"]

    sizing.ErrorRate.update = update  # type: ignore[method-assign]
    sizing.ErrorRate.__init__ = er_init  # type: ignore[method-assign]
    return pin


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    import faults as B
    from bitflip.device import protocol as P
    from bitflip.link import faults as F

    pin = instrument()

    def run(name: str, noise: float, kills: bool, p: float | None = None) -> None:
        T.clear()
        N.clear()
        pin["p"] = p
        hooks: list[Any] = []
        ks = None
        if kills:  # faults.py's KillSwitch
            ks = F.KillSwitch(1, P.K_CKPT, every=3, max_kills=args.epochs, max_delay_s=1.0, distinct=True)
            ks.count = 2
            hooks.append(ks)
        if noise:
            hooks.append(F.ByteFaults(2, corrupt=noise, after=2000))
        s = B.scenario(name, args.epochs, fault_in=F.Chain(*hooks) if hooks else None)
        print(
            f"| {name} | {s['bench_wall_s']:.2f} | {T['connect']:.3f} ({N['connect']}) | {N['samples']:,} | "
            f"{N['frames']:,} | {s['retransmitted_frames']} | {ks.kills if ks else 0} |",
            flush=True,
        )

    B.scenario("host reference", args.epochs, board="host")  # (warm-up)
    print("| run | wall s | connect s (calls) | samples streamed | frames | retransmitted | resets |")
    print("|---|---|---|---|---|---|---|")
    for _ in range(args.rounds):
        run("clean", 0.0, False)
        run("clean, frames sized for 1 %", 0.0, False, p=0.01)
        run("1 % noise, no resets", 0.01, False)
        run("resets only", 0.0, True)
        run("1 % noise + resets (faults.py)", 0.01, True)
    print("\nthe last run by phase:")
    for k in sorted(T):
        if k != "connect":
            print(f"  {k}: {T[k]:.3f} s in {N[k]} calls ({1000 * T[k] / max(1, N[k]):.1f} ms each)")


if __name__ == "__main__":
    main()
