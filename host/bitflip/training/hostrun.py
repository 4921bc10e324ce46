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
from .plan import Plan
from .records import Collector
from .reference import Reference

Progress = Callable[[int], None]
CKPT = "host.ckpt.npz"
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
    def __init__(self, plan: Plan, collector: Collector, progress: Progress, resume: bool = False,
                 ckpt_every: int = 1000):
        self.plan, self.got, self.progress = plan, collector, progress
        self.resume, self.ckpt_every = resume, ckpt_every
        self.ckpt = plan.out / CKPT

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
        got.record({P.F_EV: P.R_CONFIG, P.F_WEIGHT_BYTES: ref.weight_bytes(), P.F_WORKING_BYTES: None,
                    P.F_HEAP_BEFORE: None, P.F_HEAP_FREE: None, P.F_RESUMED: resumed})
        y_train, y_test = plan.data.y_train, plan.data.y_test
        n = len(plan.x_train)
        for epoch in range(start, plan.epochs):
            order = plan.order(epoch)
            i = index if epoch == start else 0
            if epoch != start:
                correct = 0
            while i < n:
                stop = min(n, i + BLOCK)
                for j in order[i:stop]:
                    correct += ref.train_sample(plan.x_train[j], int(y_train[j]))
                self.progress(stop - i)
                if stop // self.ckpt_every != i // self.ckpt_every and stop < n:
                    _save(self.ckpt, ref, {"id": plan.cfg["id"], "epoch": epoch, "index": stop, "correct": correct})
                i = stop
            got.record({P.F_EV: P.R_EPOCH, P.F_EPOCH: epoch, P.F_SEEN: n, P.F_CORRECT: correct, P.F_STEP: ref.step,
                        **ref.totals})
            if plan.eval_after(epoch):
                pred = ref.predict(plan.x_test)
                self.progress(len(y_test))
                got.record({P.F_EV: P.R_EVAL, P.F_EPOCH: epoch, P.F_SEEN: len(y_test),
                            P.F_CORRECT: int((pred == y_test).sum()),
                            **{P.EVAL_PREFIX + k: ref.eval_totals[k] for k in spec.COUNTERS}})
                ref.eval_totals = {k: 0 for k in spec.COUNTERS}
            _save(self.ckpt, ref, {"id": plan.cfg["id"], "epoch": epoch + 1, "index": 0, "correct": 0})
        got.planes = ref.planes()
        got.record({P.F_EV: P.R_DONE, P.F_DIGEST: ref.digest(), P.F_STEP: ref.step})
