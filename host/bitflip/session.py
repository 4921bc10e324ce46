"""A training job on a board over the serial link, surviving lost links and resets.

The device checkpoints (weights, rule state, stream position) on its flash when the host
asks; after any failure the host reconnects, the device reloads its last checkpoint and
the host streams again from that position. Training is deterministic in (weights, step,
data order), so the final weights equal an uninterrupted run's.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .device import protocol as P
from .errors import DeviceError, LinkError, ProtocolMismatch, UsageError
from .link import FrameSender, SerialLink
from .rundir import RunDir

Progress = Callable[[int], None]


class Target:
    """How to reach a board: open() gives a fresh SerialLink; reopen() after a failure."""

    fresh = True  # the board was just (re)started: no app can be running

    def open(self) -> SerialLink:
        raise NotImplementedError

    def reopen(self) -> SerialLink:
        raise NotImplementedError

    def close(self) -> None:
        pass


class SerialTarget(Target):
    def __init__(self, port: str, pace: int, wait_s: float = 20.0):
        self.port, self.pace, self.wait_s = port, pace, wait_s
        self.link: SerialLink | None = None
        self.fresh = False  # a real board may still run an app from an earlier session

    def open(self) -> SerialLink:
        self.link = SerialLink(self.port, pace_bytes_per_s=self.pace)
        return self.link

    def reopen(self) -> SerialLink:
        if self.link is not None:
            self.link.close()
        deadline = time.monotonic() + self.wait_s  # a USB board re-enumerates after a reset
        while True:
            try:
                return self.open()
            except LinkError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def close(self) -> None:
        if self.link is not None:
            self.link.close()


class VirtualTarget(Target):
    def __init__(self, board: Any, flash: Path, fault_in: Any = None, fault_out: Any = None):
        from .virtual import VirtualBoard

        self.vb = VirtualBoard(board, flash, fault=fault_in, fault_out=fault_out)
        self.link: SerialLink | None = None

    def open(self) -> SerialLink:
        self.vb.start()
        self.fresh = True
        self.link = SerialLink(self.vb.port, name=f"virtual {self.vb.board.name}")
        return self.link

    def reopen(self) -> SerialLink:
        if self.link is not None:
            self.link.close()
        if self.vb.alive:  # link trouble only: the app may still be running
            self.vb.reconnect()
            self.fresh = False
        else:  # the board "reset": start it again on the same flash
            self.vb.stop()
            self.vb.start()
            self.fresh = True
        self.link = SerialLink(self.vb.port, name=f"virtual {self.vb.board.name}")
        return self.link

    def close(self) -> None:
        if self.link is not None:
            self.link.close()
        self.vb.stop()


@dataclass
class Collected:
    config: dict[str, Any] = field(default_factory=dict)
    epochs: dict[int, dict[str, Any]] = field(default_factory=dict)
    evals: dict[int, dict[str, Any]] = field(default_factory=dict)
    done: dict[str, Any] = field(default_factory=dict)
    planes: dict[tuple[int, str], bytearray] = field(default_factory=dict)
    chunks: dict[tuple[int, str], set[int]] = field(default_factory=dict)


class DeviceRun:
    """Drives one training job on a board; collects its records into the run directory."""

    def __init__(self, plan: Any, target: Target, run: RunDir, progress: Progress, resume: bool = False,
                 ckpt_every: int = 1000, max_reconnects: int = 10):
        self.plan, self.target, self.run, self.progress = plan, target, run, progress
        self.resume = resume
        self.ckpt_every = ckpt_every
        self.max_reconnects = max_reconnects
        self.got = Collected()
        self.resumed_from: list[dict[str, Any]] = []
        self.reconnects = 0
        self.retransmitted = 0
        self.bad_records = 0
        self.bytes_out = 0
        self.sender: FrameSender | None = None
        self.link: SerialLink | None = None

    # records -------------------------------------------------------------------------------
    def on_record(self, rec: dict[str, Any]) -> None:
        ev = rec.get("ev")
        if ev != P.R_WEIGHTS:
            self.run.event(rec)
        g = self.got
        if ev == P.R_EPOCH:
            g.epochs[int(rec["epoch"])] = rec
        elif ev == P.R_EVAL:
            g.evals[int(rec["epoch"])] = rec
            self._metric(int(rec["epoch"]))
        elif ev == P.R_WEIGHTS:
            key = (int(rec["layer"]), str(rec["plane"]))
            buf = g.planes.setdefault(key, bytearray(int(rec["size"])))
            chunk = base64.b64decode(rec["b64"])
            off = int(rec["off"])
            buf[off : off + len(chunk)] = chunk
            g.chunks.setdefault(key, set()).add(off)

    def _metric(self, epoch: int) -> None:
        e = self.got.epochs.get(epoch, {})
        v = self.got.evals.get(epoch, {})
        seen = sum(int(r["seen"]) for k, r in self.got.epochs.items() if k <= epoch)
        self.run.metric({
            "epoch": epoch,
            "samples_seen": seen,
            "train_accuracy": round(e["correct"] / max(1, e["seen"]), 5) if e else "",
            "test_accuracy": round(v["correct"] / max(1, v["seen"]), 5) if v else "",
            "flips": e.get("flips", ""),
            "updates": e.get("updates", ""),
            "device_busy_s": round(e.get("busy_us", 0) / 1e6, 4) if e else "",
            "wall_s": round(e.get("wall_us", 0) / 1e6, 4) if e else "",
        })

    # connecting ------------------------------------------------------------------------------
    def _probe(self, link: SerialLink) -> int | None:
        """Is an app already listening? Returns the sequence number it expects, or None."""
        link.start_records()
        for _ in range(3):
            link.write(P.encode_frame(P.K_PING, 0))
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                rec = link.next_record(0.25)
                if rec is not None and rec.get("ev") == P.R_PONG:
                    return int(rec["expect"])
        return None

    def _launch(self, link: SerialLink) -> int:
        lk = self.plan.board.link
        for attempt in range(4):
            try:
                link.launch(f"import bitflip.app as A\nA.main({lk['max_payload']}, {lk['credit']})")
                boot = link.expect(P.R_BOOT, 15)
                self.run.event(boot)
                if int(boot.get("proto", -1)) != P.VERSION:
                    raise ProtocolMismatch(
                        f"firmware speaks protocol {boot.get('proto')} but this host speaks {P.VERSION}: "
                        "run `bitflip deploy` to update the board"
                    )
                ready = link.expect(P.R_READY, 15)
                self.run.event(ready)
                if (int(ready["max_payload"]), int(ready["credit"])) != (lk["max_payload"], lk["credit"]):
                    raise LinkError("the launch command arrived damaged")  # a noisy line: launch again
                return 0
            except LinkError:
                if attempt == 3:
                    raise
                link.write(P.encode_frame(P.K_EXIT, 0))  # an app that did start: leave
                time.sleep(0.5)
        raise AssertionError("unreachable")

    def _connect(self, link: SerialLink, resume: bool) -> tuple[int, int]:
        """Get an app listening and configured; returns the stream position to go on from."""
        seq = None if self.target.fresh else self._probe(link)
        if seq is None:
            seq = self._launch(link)
        lk = self.plan.board.link
        if self.sender is None:
            self.sender = FrameSender(link, lk["credit"], on_record=self.on_record)
        self.sender.rebind(link, lk["credit"], seq)
        self.link = link
        cfg = dict(self.plan.cfg, resume=resume)
        rec = self.sender.request(P.K_CONFIG, json.dumps(cfg).encode(), P.R_CONFIG)
        self.got.config = rec
        if rec.get("resumed"):
            pos = (int(rec["resumed"]["epoch"]), int(rec["resumed"]["index"]))
            self.resumed_from.append({"epoch": pos[0], "index": pos[1], "step": rec["resumed"]["step"]})
            self.run.event({"ev": "host", "what": "resumed", "epoch": pos[0], "index": pos[1]})
            return pos
        return 0, 0

    # streaming -----------------------------------------------------------------------------
    def _stream(self, epoch: int, index: int) -> None:
        plan, sender = self.plan, self.sender
        assert sender is not None
        row_bytes = plan.x_train.shape[1] * 4
        per_block = P.max_block_samples(int(plan.board.link["max_payload"]), row_bytes)
        if per_block < 1:
            raise UsageError(f"one sample ({row_bytes} bytes) does not fit the board's frames")
        n = len(plan.x_train)
        for e in range(epoch, plan.req.epochs):
            order = plan.order(e)
            i = index if e == epoch else 0
            next_ckpt = (i // self.ckpt_every + 1) * self.ckpt_every
            while i < n:
                stop = min(i + per_block, n, next_ckpt)
                sender.send(P.K_TRAIN, block(plan.x_train, plan.data.y_train, order[i:stop]))
                self.progress(stop - i)
                i = stop
                if i == next_ckpt and i < n:
                    sender.request(P.K_CKPT, ckpt_payload(e, i), P.R_CKPT)
                    next_ckpt += self.ckpt_every
            sender.request(P.K_MARK, bytes((P.MARK_EPOCH, e & 0xFF, e >> 8)), P.R_EPOCH)
            if plan.eval_after(e):
                for j in range(0, len(plan.x_test), per_block):
                    idx = np.arange(j, min(j + per_block, len(plan.x_test)))
                    sender.send(P.K_EVAL, block(plan.x_test, plan.data.y_test, idx))
                    self.progress(len(idx))
                sender.request(P.K_MARK, bytes((P.MARK_EVAL, e & 0xFF, e >> 8)), P.R_EVAL)
            sender.request(P.K_CKPT, ckpt_payload(e + 1, 0), P.R_CKPT)

    def _finish(self) -> None:
        sender = self.sender
        assert sender is not None
        for _ in range(4):  # every weights chunk must arrive; ask again for a lost one
            self.got.planes.clear()
            self.got.chunks.clear()
            sender.send(P.K_DUMP)
            sender.flush()
            if self._dump_complete():
                break
        else:
            raise LinkError("the final weights kept arriving damaged")
        self.got.done = sender.request(P.K_DONE, b"", P.R_DONE)
        # unsequenced and unanswered: an app that misses it leaves after its idle timeout
        assert self.link is not None
        self.link.write(P.encode_frame(P.K_EXIT, 0))

    def _dump_complete(self) -> bool:
        sizes = self.plan.plane_sizes()
        if set(self.got.planes) != set(sizes):
            return False
        return all(self.got.chunks[k] == set(range(0, sizes[k], 384)) for k in sizes)

    def execute(self) -> dict[str, Any]:
        resume = self.resume
        link = self.target.open()
        while True:
            try:
                epoch, index = self._connect(link, resume)
                if epoch < self.plan.req.epochs:
                    self._stream(epoch, index)
                self._finish()
                break
            except LinkError as e:
                self.reconnects += 1
                self.run.event({"ev": "host", "what": "link lost", "error": str(e), "reconnect": self.reconnects})
                if self.reconnects > self.max_reconnects:
                    raise LinkError(f"{e} (gave up after {self.max_reconnects} reconnects)") from None
                self._account(link)
                link = self.target.reopen()
                resume = True
        self._account(link)
        return self._summary()

    def _account(self, link: SerialLink) -> None:
        if self.sender is not None:
            self.retransmitted += self.sender.retransmitted
            self.sender.retransmitted = 0
        self.bad_records += link.bad_records
        self.bytes_out += link.bytes_out
        link.bad_records = link.bytes_out = 0

    def _summary(self) -> dict[str, Any]:
        plan, g = self.plan, self.got
        planes = [(li, name, np.frombuffer(bytes(buf), dtype="<u4").reshape(plan.sizes[li + 1], -1))
                  for (li, name), buf in sorted(g.planes.items())]
        self.run.write_model(planes, plan.cfg)
        e = g.epochs[max(g.epochs)] if g.epochs else {}
        v = g.evals[max(g.evals)] if g.evals else {}
        busy_us = sum(int(r.get("busy_us", 0)) for r in g.epochs.values())
        return {
            "samples_seen": sum(int(r["seen"]) for r in g.epochs.values()),
            "train_accuracy": e["correct"] / max(1, e["seen"]) if e else None,
            "test_accuracy": v["correct"] / max(1, v["seen"]) if v else None,
            "flips": e.get("flips"),
            "updates": e.get("updates"),
            "weights_sha256": g.done.get("weights_sha256"),
            "weight_bytes": g.config.get("weight_bytes"),
            "working_bytes": g.config.get("working_bytes"),
            "heap_free_after_alloc": g.config.get("heap_free"),
            "device_busy_s": round(busy_us / 1e6, 3),
            "retransmitted_frames": self.retransmitted,
            "damaged_records": self.bad_records,
            "reconnects": self.reconnects,
            "resumed_from": self.resumed_from or None,
            "bytes_sent": self.bytes_out,
        }


def block(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> bytes:
    """TRAIN/EVAL payload for samples idx."""
    row_bytes = x.shape[1] * 4
    n = len(idx)
    lab_off, row_off, total = P.block_layout(n, row_bytes)
    out = bytearray(total)
    out[0:4] = bytes((n & 0xFF, n >> 8, row_bytes & 0xFF, row_bytes >> 8))
    out[lab_off : lab_off + n] = bytes(int(v) for v in y[idx])
    out[row_off:] = np.ascontiguousarray(x[idx], dtype="<u4").tobytes()
    return bytes(out)


def ckpt_payload(epoch: int, index: int) -> bytes:
    return bytes((epoch & 0xFF, epoch >> 8)) + int(index).to_bytes(4, "little")
