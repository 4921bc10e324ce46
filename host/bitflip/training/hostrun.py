"""The host reference as a training run: the same job as on a board, emitting the same
records (config, epoch, eval, done) into the Collector, checkpointing to the run directory
(host.ckpt.npz) so --resume continues exactly where it stopped, with the same final digest as
an uninterrupted run."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..device import protocol as P
from ..device import spec
from ..errors import BitflipError
from .plan import Plan
from .records import Collector
from .reference import Reference

Progress = Callable[[int], None]
CKPT = "host.ckpt.npz"
BEST = "host.best.npz"  # the best model on validation (the whole state: simpler, and small)
BLOCK = 256  # samples between progress updates


def _save(path: Path, ref: Reference, meta: dict[str, Any]) -> None:
    buf = io.BytesIO()
    arrays: dict[str, Any] = {"meta": json.dumps(meta), **ref.state()}
    np.savez(buf, **arrays)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)


def _load(path: Path, ref: Reference, job_id: str) -> dict[str, Any] | None:
    try:
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("id") != job_id:
                return None
            ref.load_state({k: z[k] for k in z.files if k != "meta"})
            return meta
    except (OSError, ValueError, KeyError):
        return None


class HostRun:
    def __init__(
        self, plan: Plan, collector: Collector, progress: Progress, resume: bool = False, ckpt_every: int = 1000
    ):
        self.plan, self.got, self.progress = plan, collector, progress
        self.resume, self.ckpt_every = resume, ckpt_every
        self.ckpt = plan.out / CKPT
        self.best = plan.out / BEST

    def execute(self) -> None:
        plan, got = self.plan, self.got
        ref = Reference(plan.cfg)
        start, index, correct = 0, 0, 0
        resumed = None
        if self.resume:
            meta = _load(self.ckpt, ref, plan.cfg["id"])
            if meta is not None:
                start, index, correct = int(meta["epoch"]), int(meta["index"]), int(meta["correct"])
                resumed = {P.F_EPOCH: start, P.F_INDEX: index, P.F_STEP: ref.step}
                got.extra["resumed_from"] = [resumed]
                got.host("resumed", epoch=start, index=index)
        best = got.best(before=start)  # (val accuracy, epoch) of the best model before the epochs run now
        got.record(
            {
                P.F_EV: P.R_CONFIG,
                P.F_WEIGHT_BYTES: ref.weight_bytes(),
                P.F_WORKING_BYTES: None,
                P.F_HEAP_BEFORE: None,
                P.F_HEAP_FREE: None,
                P.F_RESUMED: resumed,
            }
        )
        n = len(plan.x_train)
        for epoch in range(start, plan.epochs):
            order = plan.order(epoch)
            i = index if epoch == start else 0
            if epoch != start:
                correct = 0
            while i < n:
                stop = min(n, i + BLOCK)
                for j in order[i:stop]:
                    correct += ref.train_sample(plan.x_train[j], int(plan.y_train[j]))
                self.progress(stop - i)
                if stop // self.ckpt_every != i // self.ckpt_every and stop < n:
                    _save(self.ckpt, ref, {"id": plan.cfg["id"], "epoch": epoch, "index": stop, "correct": correct})
                i = stop
            got.record(
                {
                    P.F_EV: P.R_EPOCH,
                    P.F_EPOCH: epoch,
                    P.F_SEEN: n,
                    P.F_CORRECT: correct,
                    P.F_STEP: ref.step,
                    **ref.totals,
                }
            )
            if plan.eval_after(epoch):
                acc = self._evaluate(ref, epoch, "val", plan.x_val, plan.y_val)
                if best is None or acc > best[0]:  # the best on validation is the model
                    best = (acc, epoch)
                    _save(self.best, ref, {"id": plan.cfg["id"], "epoch": epoch, "index": 0, "correct": 0})
            _save(self.ckpt, ref, {"id": plan.cfg["id"], "epoch": epoch + 1, "index": 0, "correct": 0})
        if best is not None:  # the model is the best on validation: its planes (the device restores the same)
            kept = Reference(plan.cfg)
            if _load(self.best, kept, plan.cfg["id"]) is None:
                raise BitflipError(f"the best model's file {self.best} is missing: the run cannot finish")
            for (_, _, mine), (_, _, theirs) in zip(ref.planes(), kept.planes()):
                mine[...] = theirs
        self._evaluate(ref, plan.epochs - 1, "test", plan.x_test, plan.data.y_test)  # the test split, once
        got.planes = ref.planes()
        got.record({P.F_EV: P.R_DONE, P.F_DIGEST: ref.digest(), P.F_STEP: ref.step})

    def _evaluate(self, ref: Reference, epoch: int, split: str, X: np.ndarray, y: np.ndarray) -> float:
        pred = ref.predict(X)
        self.progress(len(y))
        right = int((pred == y).sum())
        self.got.record(
            {
                P.F_EV: P.R_EVAL,
                P.F_EPOCH: epoch,
                P.F_SPLIT: split,
                P.F_SEEN: len(y),
                P.F_CORRECT: right,
                **{P.EVAL_PREFIX + k: ref.eval_totals[k] for k in spec.COUNTERS},
            }
        )
        ref.eval_totals = {k: 0 for k in spec.COUNTERS}
        return right / max(1, len(y))
