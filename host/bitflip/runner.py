"""`bitflip train` as a library function: validate everything, then run the same job on
the host reference or on a board (real or virtual) through the serial link."""

from __future__ import annotations

import base64
import json
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from . import boards as boards_mod
from .boards import Board
from .data import Dataset, load_dataset
from .data.encoding import Encoding, parse_encoding
from .device import protocol as P
from .errors import DeviceError, ProtocolMismatch, UsageError
from .link import FrameSender, SerialLink
from .reference import Reference, words
from .rundir import RunDir
from .rules import rule_config

Progress = Callable[[int], None]


@dataclass
class TrainRequest:
    board: str = "sim-pico"
    dataset: str = "digits"
    model: str = "256-10"
    epochs: int = 10
    seed: int = 0
    out: Path | None = None
    weights: str = "binary"
    encoding: str | None = None
    port: str | None = None
    rule: dict[str, Any] = field(default_factory=dict)
    eval_every: int = 1


@dataclass
class Plan:
    req: TrainRequest
    board: Board
    data: Dataset
    enc: Encoding
    sizes: list[int]
    cfg: dict[str, Any]
    x_train: np.ndarray  # packed (N, words) uint32
    x_test: np.ndarray
    out: Path

    def order(self, epoch: int) -> np.ndarray:
        """Sample order of an epoch: the same on every board for a given seed."""
        rng = np.random.default_rng([self.req.seed, epoch])
        return rng.permutation(len(self.x_train))

    @property
    def total_samples(self) -> int:
        n_eval = sum(1 for e in range(self.req.epochs) if self._eval_after(e))
        return self.req.epochs * len(self.x_train) + n_eval * len(self.x_test)

    def _eval_after(self, epoch: int) -> bool:
        return (epoch + 1) % self.req.eval_every == 0 or epoch == self.req.epochs - 1


def parse_model(spec: str, n_in: int, n_classes: int) -> list[int]:
    try:
        widths = [int(p) for p in spec.split("-")]
    except ValueError:
        raise UsageError(f"bad model '{spec}': use hidden widths and the class count, e.g. 256-10") from None
    if not widths or any(w <= 0 for w in widths):
        raise UsageError(f"bad model '{spec}': every width must be a positive integer")
    if widths[-1] != n_classes:
        raise UsageError(f"bad model '{spec}': the last layer must have {n_classes} outputs (one per class)")
    return [n_in] + widths


def prepare(req: TrainRequest) -> Plan:
    """Every check that can fail on bad input, before anything is started or written."""
    if req.epochs <= 0:
        raise UsageError(f"--epochs must be positive (got {req.epochs})")
    if req.weights not in ("binary", "ternary"):
        raise UsageError(f"--weights must be binary or ternary (got {req.weights})")
    board = boards_mod.load(req.board)
    if board.kind == "board" and not req.port:
        raise UsageError(f"board '{board.name}' is a real board: give --port (or use sim-{board.real})")
    data = load_dataset(req.dataset)
    enc = parse_encoding(req.encoding or data.default_encoding, data.max_value)
    n_in = enc.n_bits(data.n_features)
    sizes = parse_model(req.model, n_in, data.n_classes)
    cfg = rule_config(data.name, sizes, req.weights, req.seed, req.rule)
    if req.out is not None:
        out = Path(req.out)
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out} exists and is not a directory")
    else:
        out = Path(tempfile.mkdtemp(prefix=f"bitflip-{data.name}-"))
    return Plan(req, board, data, enc, sizes, cfg, enc.pack(data.x_train), enc.pack(data.x_test), out)


def blocks(x: np.ndarray, y: np.ndarray, order: np.ndarray, per_block: int) -> Iterator[bytes]:
    row_bytes = x.shape[1] * 4
    for i in range(0, len(order), per_block):
        idx = order[i : i + per_block]
        rows = np.ascontiguousarray(x[idx], dtype="<u4")
        labels = [int(v) for v in y[idx]]
        lab_off, row_off, total = P.block_layout(len(idx), row_bytes)
        out = bytearray(total)
        out[0:4] = bytes((len(idx) & 0xFF, len(idx) >> 8, row_bytes & 0xFF, row_bytes >> 8))
        out[lab_off : lab_off + len(idx)] = bytes(labels)
        out[row_off:] = rows.tobytes()
        yield bytes(out)


def _summary(plan: Plan, **kw: Any) -> dict[str, Any]:
    base = {
        "board": plan.board.name,
        "dataset": plan.data.name,
        "model": plan.req.model,
        "sizes": plan.sizes,
        "weights": plan.req.weights,
        "encoding": plan.enc.spec,
        "epochs": plan.req.epochs,
        "seed": plan.req.seed,
        "run_dir": str(plan.out),
        "energy_source": "none",
    }
    base.update(kw)
    return base


# --- host reference ----------------------------------------------------------------------
def run_host(plan: Plan, run: RunDir, progress: Progress) -> dict[str, Any]:
    ref = Reference(plan.cfg)
    y_train, y_test = plan.data.y_train, plan.data.y_test
    seen = 0
    train_acc = test_acc = float("nan")
    t_start = time.monotonic()
    for epoch in range(plan.req.epochs):
        t0 = time.monotonic()
        correct = 0
        for i in plan.order(epoch):
            correct += ref.train_sample(plan.x_train[i], int(y_train[i]))
        seen += len(plan.x_train)
        progress(len(plan.x_train))
        train_acc = correct / len(plan.x_train)
        rec: dict[str, Any] = {"ev": "epoch", "epoch": epoch, "seen": len(plan.x_train), "correct": correct,
                               "flips": ref.flips, "updates": ref.updates}
        run.event(rec)
        if plan._eval_after(epoch):
            pred = ref.predict(plan.x_test)
            test_acc = float((pred == y_test).mean())
            progress(len(plan.x_test))
            run.event({"ev": "eval", "epoch": epoch, "seen": len(y_test), "correct": int((pred == y_test).sum())})
        run.metric({"epoch": epoch, "samples_seen": seen, "train_accuracy": round(train_acc, 5),
                    "test_accuracy": round(test_acc, 5), "flips": ref.flips, "updates": ref.updates,
                    "wall_s": round(time.monotonic() - t0, 3)})
    run.write_model(ref.planes(), plan.cfg)
    return _summary(plan, samples_seen=seen, train_accuracy=train_acc, test_accuracy=test_acc, flips=ref.flips,
                    updates=ref.updates, weights_sha256=ref.digest(), weight_bytes=ref.weight_bytes(),
                    wall_s=round(time.monotonic() - t_start, 3))


# --- a board over the serial link -----------------------------------------------------------
class DeviceRun:
    """Drives one training job on a board; collects its records."""

    def __init__(self, plan: Plan, link: SerialLink, run: RunDir, progress: Progress):
        self.plan, self.link, self.run, self.progress = plan, link, run, progress
        self.config: dict[str, Any] = {}
        self.epochs: dict[int, dict[str, Any]] = {}
        self.evals: dict[int, dict[str, Any]] = {}
        self.done: dict[str, Any] = {}
        self.planes: dict[tuple[int, str], bytearray] = {}
        self.seen = 0

    def on_record(self, rec: dict[str, Any]) -> None:
        ev = rec.get("ev")
        if ev != P.R_WEIGHTS:
            self.run.event(rec)
        if ev == P.R_CONFIG:
            self.config = rec
        elif ev == P.R_EPOCH:
            self.epochs[int(rec["epoch"])] = rec
            self.seen += int(rec["seen"])
        elif ev == P.R_EVAL:
            self.evals[int(rec["epoch"])] = rec
            self._metric(int(rec["epoch"]))
        elif ev == P.R_WEIGHTS:
            key = (int(rec["layer"]), str(rec["plane"]))
            buf = self.planes.setdefault(key, bytearray(int(rec["size"])))
            chunk = base64.b64decode(rec["b64"])
            off = int(rec["off"])
            buf[off : off + len(chunk)] = chunk
        elif ev == P.R_DONE:
            self.done = rec

    def _metric(self, epoch: int) -> None:
        e = self.epochs.get(epoch, {})
        v = self.evals.get(epoch, {})
        self.run.metric({
            "epoch": epoch,
            "samples_seen": self.seen,
            "train_accuracy": round(e["correct"] / max(1, e["seen"]), 5) if e else "",
            "test_accuracy": round(v["correct"] / max(1, v["seen"]), 5) if v else "",
            "flips": e.get("flips", ""),
            "updates": e.get("updates", ""),
            "device_busy_s": round(e.get("busy_us", 0) / 1e6, 4) if e else "",
            "wall_s": round(e.get("wall_us", 0) / 1e6, 4) if e else "",
        })

    def execute(self) -> dict[str, Any]:
        plan, link = self.plan, self.link
        lk = plan.board.link
        link.launch(f"import bitflip.app as A\nA.main({lk['max_payload']}, {lk['credit']})")
        boot = link.expect(P.R_BOOT, 15, self.on_record)
        self.run.event(boot)
        if int(boot.get("proto", -1)) != P.VERSION:
            raise ProtocolMismatch(
                f"firmware speaks protocol {boot.get('proto')} but this host speaks {P.VERSION}: run `bitflip deploy`"
            )
        ready = link.expect(P.R_READY, 15, self.on_record)
        self.run.event(ready)
        max_payload = int(ready["max_payload"])
        sender = FrameSender(link, int(ready.get("credit", 1)), on_record=self.on_record)
        sender.send(P.K_CONFIG, json.dumps(plan.cfg).encode())
        sender.flush()
        if not self.config:
            raise DeviceError("the board accepted the configuration but sent no config record")
        row_bytes = plan.x_train.shape[1] * 4
        per_block = P.max_block_samples(max_payload, row_bytes)
        if per_block < 1:
            raise UsageError(f"one sample ({row_bytes} bytes) does not fit the board's {max_payload}-byte frames")
        y_train, y_test = plan.data.y_train, plan.data.y_test
        for epoch in range(plan.req.epochs):
            order = plan.order(epoch)
            for i, payload in enumerate(blocks(plan.x_train, y_train, order, per_block)):
                sender.send(P.K_TRAIN, payload)
                self.progress(min(per_block, len(order) - i * per_block))
            sender.send(P.K_MARK, bytes((P.MARK_EPOCH, epoch & 0xFF, epoch >> 8)))
            if plan._eval_after(epoch):
                test_order = np.arange(len(plan.x_test))
                for i, payload in enumerate(blocks(plan.x_test, y_test, test_order, per_block)):
                    sender.send(P.K_EVAL, payload)
                    self.progress(min(per_block, len(test_order) - i * per_block))
                sender.send(P.K_MARK, bytes((P.MARK_EVAL, epoch & 0xFF, epoch >> 8)))
        sender.send(P.K_DUMP)
        sender.send(P.K_DONE)
        sender.flush()
        if not self.done:
            raise DeviceError("the board did not report its final weights")
        planes = [(li, name, np.frombuffer(bytes(buf), dtype="<u4").reshape(plan.sizes[li + 1], -1))
                  for (li, name), buf in sorted(self.planes.items())]
        self.run.write_model(planes, plan.cfg)
        last = max(self.epochs) if self.epochs else None
        last_eval = max(self.evals) if self.evals else None
        e = self.epochs.get(last, {}) if last is not None else {}
        v = self.evals.get(last_eval, {}) if last_eval is not None else {}
        busy_us = sum(int(r.get("busy_us", 0)) for r in self.epochs.values())
        return _summary(
            plan,
            samples_seen=self.seen,
            train_accuracy=e["correct"] / max(1, e["seen"]) if e else None,
            test_accuracy=v["correct"] / max(1, v["seen"]) if v else None,
            flips=e.get("flips"),
            updates=e.get("updates"),
            weights_sha256=self.done.get("weights_sha256"),
            weight_bytes=self.config.get("weight_bytes"),
            working_bytes=self.config.get("working_bytes"),
            heap_free_after_alloc=self.config.get("heap_free"),
            device_busy_s=round(busy_us / 1e6, 3),
            retransmitted_frames=sender.retransmitted,
            frames_sent=sender.frames_sent,
            bytes_sent=link.bytes_out,
        )


def train(req: TrainRequest, progress_factory: Callable[[int], Any] | None = None) -> dict[str, Any]:
    plan = prepare(req)
    run = RunDir(plan.out)
    run.event({"ev": "host", "what": "start", "board": plan.board.name, "config": plan.cfg})
    bar = progress_factory(plan.total_samples) if progress_factory else None
    progress: Progress = bar.update if bar is not None else (lambda n: None)
    t0 = time.monotonic()
    try:
        if plan.board.is_host:
            summary = run_host(plan, run, progress)
        else:
            with ExitStack() as stack:
                port = req.port
                if plan.board.is_virtual:
                    from .virtual import VirtualBoard

                    vb = stack.enter_context(VirtualBoard(plan.board, plan.out / "flash"))
                    port = vb.port
                assert port is not None
                link = SerialLink(port, pace_bytes_per_s=plan.board.link["pace_bytes_per_s"])
                stack.callback(link.close)
                summary = DeviceRun(plan, link, run, progress).execute()
        summary["wall_s"] = round(time.monotonic() - t0, 3)
        run.write_json("summary.json", summary)
        run.event({"ev": "host", "what": "done"})
        return summary
    finally:
        if bar is not None:
            bar.close()
        run.close()
