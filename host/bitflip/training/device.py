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
from collections.abc import Callable
from typing import Any

import numpy as np

from ..device import payload as PL
from ..device import protocol as P
from ..device import spec
from ..errors import LinkError, ProtocolMismatch, UsageError
from ..link import frames
from ..link.arq import FrameSender, FramesTooLong
from ..link.connect import Connector
from ..link.serial import SerialLink
from ..link.targets import Target
from .plan import Plan
from .records import Collector

Progress = Callable[[int], None]


class DeviceRun:
    """Drives one training job on a board; its records go to the Collector."""

    # after a link failure, give up instead of reconnecting when the board has sent no
    # byte at all for this long: the line is dead (unplugged cable, wrong port)
    dead_after_s = 60.0

    def __init__(
        self,
        plan: Plan,
        target: Target,
        collector: Collector,
        progress: Progress,
        resume: bool = False,
        ckpt_every: int = 1000,
        max_reconnects: int = 10,
    ):
        self.plan, self.target, self.got, self.progress = plan, target, collector, progress
        self.conn = Connector(target, plan.board)
        self.resume = resume
        self.ckpt_every = ckpt_every
        self.max_reconnects = max_reconnects
        self.planes: dict[tuple[int, str], bytearray] = {}
        self.have: dict[tuple[int, str], bytearray] = {}  # 1 = byte received
        self.resumed_from: list[dict[str, Any]] = []
        self.reconnects = 0
        self.retransmitted = 0
        self.bad_records = 0
        self.bytes_out = 0
        self.sender: FrameSender | None = None
        self.link: SerialLink | None = None
        self.block = 0  # samples per frame now (adaptive), and the most that fit a frame
        self.max_block = 0
        self.ceiling = 0  # frames may grow while below this (it failed at this size)
        self.shrinks = 0
        self.ckpts = 0  # checkpoints the board confirmed (reconnects count against the limit only without one)

    # records -------------------------------------------------------------------------------
    def on_record(self, rec: dict[str, Any]) -> None:
        if rec.get(P.F_EV) == P.R_WEIGHTS:
            key = (int(rec[P.F_LAYER]), str(rec[P.F_PLANE]))
            if key in self.planes:
                chunk = base64.b64decode(rec[P.F_B64])
                off = int(rec[P.F_OFF])
                self.planes[key][off : off + len(chunk)] = chunk
                self.have[key][off : off + len(chunk)] = b"\x01" * len(chunk)
            return
        self.got.record(rec)

    def _connect(self, link: SerialLink, resume: bool) -> tuple[int, int]:
        """Get an app listening and configured; returns the stream position to go on from."""
        pong = None if self.target.fresh else self._probe(link, filler=True)
        if pong is not None:
            self.conn.check(pong, link.name)
            seq = int(pong[P.F_EXPECT])
        else:
            seq = self.conn.launch(link, self._damaged(link))
        lk = self.plan.board.link
        if self.sender is None:
            self.sender = FrameSender(link, lk["credit"], on_record=self.on_record, max_payload=lk["max_payload"])
        self.sender.rebind(link, lk["credit"], seq)
        self.sender.device_fec = False  # a (re)started board: until its config record says
        self.link = link
        cfg = dict(self.plan.cfg, resume=resume)
        rec = self.sender.request(P.K_CONFIG, json.dumps(cfg).encode(), P.R_CONFIG)
        resumed = rec.get(P.F_RESUMED)
        self.sender.device_fec = bool(rec.get(P.F_FEC, 0))  # without it FEC frames are CRC-checked only
        if resumed:
            pos = (int(resumed[P.F_EPOCH]), int(resumed[P.F_INDEX]))
            self.resumed_from.append({"epoch": pos[0], "index": pos[1], "step": resumed[P.F_STEP]})
            self.got.host("resumed", epoch=pos[0], index=pos[1])
            return pos
        return 0, 0

    # streaming -----------------------------------------------------------------------------
    def _send_samples(self, kind: int, x: np.ndarray, y: np.ndarray, order: np.ndarray, start: int, stop: int) -> None:
        """Stream samples order[start:stop] and wait for their acks. Frames carry the
        number of samples that costs least per sample at the line's measured error rate
        (FrameSender.best_samples: the board's largest frames on a clean line, ~100 bytes
        at 1 % of bytes damaged). Frames sent before the noise was noticed can be too long
        to ever get through: then the host resynchronises with the board and goes on from
        its position in frames of the right size."""
        sender = self.sender
        assert sender is not None
        row_bytes = x.shape[1] * 4
        i = start
        sender.acked_tag = None
        sender.tags.clear()
        while True:
            base = i  # everything before base is acknowledged
            try:
                while i < stop:
                    n = min(sender.best_samples(row_bytes, self.max_block), stop - i)
                    self.block = n
                    sender.send(kind, block(x, y, order[i : i + n]), tag=i + n, splittable=n > 1)
                    self.progress(n)
                    i += n
                sender.flush()
                return
            except FramesTooLong:
                # ask the device where it is (it answers after everything sent before the
                # ping), go on from there
                expect = self._resync()
                i = sender.tags.get((expect - 1) & 0xFFFF, base)
                self.shrinks += 1

    def _damaged(self, link: SerialLink) -> int:
        """Records seen damaged on this run (the board is then asked to repeat its records)."""
        return self.bad_records + link.bad_records + link.voted_records

    def _probe(
        self, link: SerialLink, tries: int = 3, filler: bool = False, budget: float = 1.5
    ) -> dict[str, Any] | None:
        srtt = self.sender.srtt if self.sender is not None and self.sender.srtt else 0.0
        return self.conn.probe(link, self._damaged(link), tries, filler, budget, srtt)

    def _resync(self) -> int:
        sender, link = self.sender, self.link
        assert sender is not None and link is not None
        pong = self._probe(link, tries=10, filler=True, budget=3.0)
        if pong is None:
            raise LinkError(f"{link.name}: the board stopped answering")
        expect = int(pong[P.F_EXPECT])
        sender.rebind(link, sender.credit, expect)
        return expect

    def _stream(self, epoch: int, index: int) -> None:
        plan, sender = self.plan, self.sender
        assert sender is not None
        row_bytes = plan.x_train.shape[1] * 4
        self.max_block = PL.max_block_samples(int(plan.board.link["max_payload"]), row_bytes)
        if self.max_block < 1:
            raise UsageError(f"one sample ({row_bytes} bytes) does not fit the board's frames")
        n = len(plan.x_train)
        best = self.got.best(before=epoch)  # (val accuracy, epoch); the board keeps that model on its flash
        for e in range(epoch, plan.req.epochs):
            order = plan.order(e)
            i = index if e == epoch else 0
            while i < n:
                stop = min(n, (i // self.ckpt_every + 1) * self.ckpt_every)
                self._send_samples(P.K_TRAIN, plan.x_train, plan.y_train, order, i, stop)
                i = stop
                if i < n:
                    sender.request(P.K_CKPT, PL.encode_ckpt(e, i), P.R_CKPT)
                    self.ckpts += 1
            sender.request(P.K_MARK, PL.encode_mark(PL.MARK_EPOCH, e), P.R_EPOCH)
            if plan.eval_after(e):
                rec = self._evaluate(PL.MARK_VAL, e, plan.x_val, plan.y_val)
                acc = rec[P.F_CORRECT] / max(1, rec[P.F_SEEN])
                if best is None or acc > best[0]:
                    best = (acc, e)
                    sender.request(P.K_CKPT, PL.encode_ckpt(e, 0, PL.CKPT_KEEP), P.R_CKPT)
            sender.request(P.K_CKPT, PL.encode_ckpt(e + 1, 0), P.R_CKPT)
            self.ckpts += 1
        if best is not None:  # the model is the best on validation
            sender.request(P.K_CKPT, PL.encode_ckpt(plan.req.epochs, 0, PL.CKPT_RESTORE), P.R_CKPT)
        self._evaluate(PL.MARK_EVAL, plan.req.epochs - 1, plan.x_test, plan.data.y_test)  # the test split, once

    def _evaluate(self, mark: int, epoch: int, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        assert self.sender is not None
        self._send_samples(P.K_EVAL, x, y, np.arange(len(x)), 0, len(x))
        return self.sender.request(P.K_MARK, PL.encode_mark(mark, epoch), P.R_EVAL)

    def _finish(self) -> None:
        sender = self.sender
        assert sender is not None and self.link is not None
        sizes = self.plan.plane_sizes()
        self.planes = {k: bytearray(n) for k, n in sizes.items()}
        self.have = {k: bytearray(n) for k, n in sizes.items()}
        sender.send(P.K_DUMP)  # everything, in big chunks
        sender.flush()
        chunk = PL.DUMP_CHUNK
        for _ in range(64):  # ask again for what arrived damaged, in smaller pieces
            missing = self._missing()
            if not missing:
                break
            chunk = max(8, chunk // 2)
            for (layer, name), off, n in missing:
                sender.send(P.K_DUMP, PL.encode_dump(layer, name, off, n, chunk))
            sender.flush()
        else:
            raise LinkError("the final weights kept arriving damaged")
        sender.request(P.K_DONE, b"", P.R_DONE)  # its record goes to the collector
        # unsequenced and unanswered: an app that misses it leaves after its idle timeout
        self.link.write(frames.encode_frame(P.K_EXIT, 0))

    def _missing(self) -> list[tuple[tuple[int, str], int, int]]:
        """Byte ranges of the weight planes not received yet."""
        out = []
        for key, have in self.have.items():
            i, n = 0, len(have)
            while i < n:
                if have[i]:
                    i += 1
                    continue
                j = i
                while j < n and not have[j]:
                    j += 1
                out.append((key, i, j - i))
                i = j
        return out

    def execute(self) -> None:
        resume = self.resume
        link = self.target.open()
        self.conn.opened()
        heard = time.monotonic()  # the last time the board said anything
        futile = 0  # reconnects in a row without a new checkpoint on the board
        ckpts = self.ckpts
        while True:
            try:
                epoch, index = self._connect(link, resume)
                self._stream(epoch, index)
                self._finish()
                break
            except ProtocolMismatch:
                raise  # permanent: reconnecting cannot fix the firmware
            except LinkError as e:
                self.conn.silent_port(link)  # (a write that timed out on a port nobody reads)
                self.reconnects += 1
                self.got.host("link lost", error=str(e), reconnect=self.reconnects)
                futile = 0 if self.ckpts > ckpts else futile + 1  # (a board reset every epoch is progress)
                ckpts = self.ckpts
                if futile > self.max_reconnects:
                    raise LinkError(f"{e} (gave up after {self.max_reconnects} reconnects)") from None
                heard = max(heard, link.last_rx)
                silent = time.monotonic() - heard
                if silent > self.dead_after_s:
                    raise LinkError(
                        f"{link.name}: no answer from the board for {silent:.0f} s: the line is dead "
                        "(check the cable, the port and the board's power)"
                    ) from None
                self._account(link)
                link = self.target.reopen()
                resume = True
        self._account(link)
        self._results()

    def _account(self, link: SerialLink) -> None:
        if self.sender is not None:
            self.retransmitted += self.sender.retransmitted
            self.sender.retransmitted = 0
        self.bad_records += link.bad_records
        self.bytes_out += link.bytes_out
        link.bad_records = link.bytes_out = 0

    def _results(self) -> None:
        plan = self.plan

        def plane(li: int, name: str) -> np.ndarray:
            a = np.frombuffer(bytes(self.planes[(li, name)]), dtype="<u4")
            return a if name == "t" else a.reshape(plan.sizes[li + 1], -1)  # thresholds: one int32 per unit

        self.got.planes = [(li, name, plane(li, name)) for li, name, _ in spec.planes(plan.cfg)]
        self.got.extra.update(
            {
                "retransmitted_frames": self.retransmitted,
                "damaged_records": self.bad_records,
                "reconnects": self.reconnects,
                "resumed_from": self.resumed_from or None,
                "frame_shrinks": self.shrinks,
                "bytes_sent": self.bytes_out,
            }
        )


def block(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> bytes:
    """TRAIN/EVAL payload for samples idx."""
    return PL.encode_block(
        y[idx].astype(np.uint8).tobytes(), np.ascontiguousarray(x[idx], dtype="<u4").tobytes(), x.shape[1] * 4
    )
