"""One run path: the host reference and a board emit the same records (protocol.R_*: config,
epoch, eval, done) into a Collector, which keeps them in memory, appends them to the run's
event log, rewrites metrics.csv after every epoch, prints one line per epoch, and in the end
builds the summary — the same keys for every board — from the records, without reading its
own files back."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..device import protocol as P
from ..device import spec
from .plan import Plan
from .rundir import RunDir, read_records

Say = Callable[[str], None]
# summary fields only a board fills (None on the host reference), besides the common ones
LINK_FIELDS = (
    "retransmitted_frames",
    "damaged_records",
    "reconnects",
    "frame_shrinks",
    "bytes_sent",
    "heap_free_after_alloc",
    "heap_free_before_model",
    "device_busy_s",
)


class Collector:
    def __init__(self, plan: Plan, run: RunDir, say: Say | None = None):
        self.plan, self.run, self.say = plan, run, say
        self.config: dict[str, Any] = {}
        self.epochs: dict[int, dict[str, Any]] = {}
        self.evals: dict[int, dict[str, Any]] = {}  # validation, per epoch
        self.test: dict[str, Any] = {}  # the test split, read once at the end
        self.done: dict[str, Any] = {}
        self.planes: list[tuple[int, str, np.ndarray]] = []
        self.extra: dict[str, Any] = {}  # what the run adds to the summary (link statistics, resumes)
        self.t0 = time.monotonic()
        self._epoch_t0 = self.t0
        self._answers: dict[str, dict[str, Any]] = {}  # the last answer record of each kind

    def earlier(self) -> None:
        """--resume: the epochs an interrupted session finished count (from the event log;
        epochs redone now replace them)."""
        for rec in read_records(self.run.path):
            ev = rec.get(P.F_EV)
            if ev == P.R_EPOCH:
                self.epochs[int(rec[P.F_EPOCH])] = rec
            elif ev == P.R_EVAL and rec.get(P.F_SPLIT) == "val":
                self.evals[int(rec[P.F_EPOCH])] = rec

    def host(self, what: str, **fields: Any) -> None:
        """A host-side event (start, resumed, link lost, plots ...) in the log."""
        self.run.event({P.F_EV: "host", "what": what, **fields})

    def record(self, rec: dict[str, Any]) -> None:
        ev = rec.get(P.F_EV)
        if ev == P.R_WEIGHTS:
            return  # plane chunks: the source assembles them
        if P.F_SEQ in rec:
            # the answer to a frame the host resent before the first answer arrived (a
            # tail-loss probe, a timeout) comes twice, identical: it is one event
            if self._answers.get(str(ev)) == rec:
                return
            self._answers[str(ev)] = dict(rec)
        self.run.event(rec)
        if ev == P.R_CONFIG:
            self.config = rec
        elif ev == P.R_EPOCH:
            e = int(rec[P.F_EPOCH])
            self.epochs[e] = rec
            if not self.plan.eval_after(e):
                self._epoch_done(e)
        elif ev == P.R_EVAL and rec.get(P.F_SPLIT) == "test":
            self.test = rec
        elif ev == P.R_EVAL:
            e = int(rec[P.F_EPOCH])
            self.evals[e] = rec
            self._epoch_done(e)
        elif ev == P.R_DONE:
            self.done = rec

    def best(self, before: int | None = None) -> tuple[float, int] | None:
        """(validation accuracy, epoch) of the best model so far (the earliest of equals);
        before: of the epochs before this one only (a resumed run evaluates that epoch and
        the later ones again, and must keep their model again: the board may have died
        before it was kept)."""
        out = None
        for e in sorted(self.evals):
            if before is not None and e >= before:
                break
            acc = self.evals[e][P.F_CORRECT] / max(1, self.evals[e][P.F_SEEN])
            if out is None or acc > out[0]:
                out = (acc, e)
        return out

    # per epoch --------------------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        out, seen = [], 0
        for e in sorted(self.epochs):
            r, v = self.epochs[e], self.evals.get(e)
            seen += int(r[P.F_SEEN])
            out.append(
                {
                    "epoch": e,
                    "samples_seen": seen,
                    "train_accuracy": round(r[P.F_CORRECT] / max(1, r[P.F_SEEN]), 5),
                    "val_accuracy": round(v[P.F_CORRECT] / max(1, v[P.F_SEEN]), 5) if v else "",
                    "flips": r.get("writes", ""),
                    "updates": r.get("updates", ""),
                    "device_busy_s": round(r[P.F_BUSY_US] / 1e6, 4) if P.F_BUSY_US in r else "",
                    "wall_s": round(r[P.F_WALL_US] / 1e6, 4) if P.F_WALL_US in r else "",
                }
            )
        return out

    def _epoch_done(self, e: int) -> None:
        self.run.write_metrics(self.rows())
        if self.say is None:
            return
        r, v = self.epochs.get(e, {}), self.evals.get(e)
        now = time.monotonic()
        head = f"epoch {e + 1}/{self.plan.epochs}:"
        parts = []
        if r:
            parts.append(f"train {r[P.F_CORRECT] / max(1, r[P.F_SEEN]):.4f}")
        if v:
            parts.append(f"val {v[P.F_CORRECT] / max(1, v[P.F_SEEN]):.4f}")
        if r:
            prev = self.epochs.get(e - 1, {}).get("writes", 0)
            parts.append(f"{int(r.get('writes', 0)) - int(prev):,} flips")  # records carry run totals
            if P.F_BUSY_US in r:
                parts.append(f"device {r[P.F_BUSY_US] / 1e6:.2f} s")
        energy = self.energy()
        per = (energy.get("energy") or {}).get("per_epoch") or []
        joules = next((p["joules"] for p in per if p["epoch"] == e), None)
        if joules is not None:
            parts.append(f"{joules:.4g} J {energy['energy_source']}")
        parts.append(f"{now - self._epoch_t0:.1f} s")
        self._epoch_t0 = now
        self.say(head + " " + ", ".join(parts))

    def energy(self) -> dict[str, Any]:
        """Device seconds and joules with their source (energy.py); "none" if they cannot be had."""
        from ..measure import energy

        p = self.plan
        try:
            evals = dict(self.evals)
            if self.test:
                evals[-1] = self.test  # evaluation work of every split counts (keys only tell them apart)
            return energy.for_records(p.board, p.sizes, p.weights, p.cfg, self.epochs, evals)
        except (KeyError, ValueError, ZeroDivisionError) as e:
            return {"energy_source": "none", "energy_error": f"{type(e).__name__}: {e}"}

    # the end ----------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        p, e = self.plan, self.epochs
        last = e[max(e)] if e else {}
        best = self.best()
        t = self.test
        busy = [r[P.F_BUSY_US] for r in e.values() if P.F_BUSY_US in r]
        totals = {name: last[name] for name in spec.COUNTERS if name in last}
        out: dict[str, Any] = {
            "board": p.board.name,
            "dataset": p.data.name,
            "dataset_arg": p.req.dataset,  # as given (a file path for user data: export reloads it)
            "labels": list(p.data.labels) if p.data.labels else None,  # class names, class i is labels[i]
            "limit": p.req.limit,
            "model": p.model,
            "sizes": p.sizes,
            "weights": p.weights,
            "encoding": p.enc.spec,
            "encoding_keep": list(p.enc.keep) or None,  # mi:PCT: the bits kept (data/selection.py)
            "defaults": p.chosen or None,  # how model and encoding were derived from the data (defaults.py)
            "epochs": p.epochs,
            "seed": p.req.seed,
            "job_id": p.cfg["id"],
            "run_dir": str(p.out),
            "samples_seen": sum(int(r[P.F_SEEN]) for r in e.values()),
            "train_accuracy": last[P.F_CORRECT] / max(1, last[P.F_SEEN]) if last else None,
            "test_accuracy": t[P.F_CORRECT] / max(1, t[P.F_SEEN]) if t else None,  # of the model: the best on val
            "val_accuracy": best[0] if best else None,
            "best_epoch": best[1] if best else None,
            "val_samples": len(p.y_val),
            "flips": last.get("writes"),
            "counters": totals,
            "weights_sha256": self.done.get(P.F_DIGEST),
            "weight_bytes": spec.weight_bytes(p.cfg),
            "model_bytes": spec.model_bytes(p.cfg),
            "train_state_bytes": spec.train_state_bytes(p.cfg),
            "resumed_from": None,
            "wall_s": round(time.monotonic() - self.t0, 3),
            **{k: None for k in LINK_FIELDS},
        }
        if busy:
            out["device_busy_s"] = round(sum(busy) / 1e6, 3)
        if self.config.get(P.F_HEAP_FREE) is not None:
            out["heap_free_after_alloc"] = self.config[P.F_HEAP_FREE]
            out["heap_free_before_model"] = self.config.get(P.F_HEAP_BEFORE)
        out.update(self.extra)
        out.update(self.energy())
        return out
