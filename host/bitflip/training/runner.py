"""`bitflip train` as a library function: validate everything, then run the same job on
the host reference or on a board (real or virtual) through the serial link."""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import boards as boards_mod
from ..boards import Board
from ..data import Dataset, load_dataset
from ..data.encoding import Encoding, parse_encoding
from ..device import spec
from ..energy import meter_config
from ..errors import UsageError
from .device import DeviceRun, SerialTarget, Target, VirtualTarget
from .hparams import DEFAULT_MODEL, DEFAULT_WEIGHTS, rule_config
from .memory import check_fits
from .reference import Reference
from .rundir import RunDir

Progress = Callable[[int], None]


@dataclass
class TrainRequest:
    board: str = "sim-pico"
    dataset: str = "digits"
    model: str | None = None  # default per dataset (rules.DEFAULT_MODEL)
    epochs: int = 10
    seed: int = 0
    out: Path | None = None
    weights: str | None = None  # default per dataset (rules.DEFAULT_WEIGHTS)
    encoding: str | None = None
    port: str | None = None
    rule: dict[str, Any] = field(default_factory=dict)
    eval_every: int = 1
    resume: bool = False
    limit: int = 0  # train on the first N training samples only (quick runs, tests)
    ckpt_every: int = 1000
    fault_in: Any = None  # test hooks: byte-level faults on the virtual board's link
    fault_out: Any = None


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
        n_eval = sum(1 for e in range(self.req.epochs) if self.eval_after(e))
        return self.req.epochs * len(self.x_train) + n_eval * len(self.x_test)

    def plane_sizes(self) -> dict[tuple[int, str], int]:
        """Bytes of every model plane the device reports: (layer, plane) -> size."""
        return {(li, name): n for li, name, n in spec.planes(self.cfg)}

    def eval_after(self, epoch: int) -> bool:
        return (epoch + 1) % self.req.eval_every == 0 or epoch == self.req.epochs - 1


def parse_model(spec: str, n_in: int, n_classes: int) -> list[int]:
    """'256-10x16' -> [n_in, 256, 160]: hidden widths, then the classes and P prototypes
    per class of the competitive output layer ('10' means one per class)."""
    *hidden, last = spec.split("-")
    cls, _, per = last.partition("x")
    try:
        widths = [int(p) for p in hidden]
        c, p = int(cls), int(per or 1)
    except ValueError:
        raise UsageError(f"bad model '{spec}': use hidden widths and CLASSESxPROTOTYPES, e.g. 256-10x16") from None
    if any(w <= 0 for w in widths) or p <= 0:
        raise UsageError(f"bad model '{spec}': every width must be a positive integer")
    if c != n_classes:
        raise UsageError(f"bad model '{spec}': the last layer must have {n_classes} outputs (one per class)")
    return [n_in] + widths + [c * p]


def model_sizes(model: str | None, dataset: str | None, encoding: str | None, inputs: int | None,
                weights: str | None, pool: int | None) -> tuple[list[int], int, str, int]:
    """(layer sizes, classes, weights, pool rule window) of a model given as `train --model`
    takes it, with the input width from a dataset's encoding or given directly."""
    if inputs is not None:
        if not model:
            raise UsageError("--inputs needs --model (hidden widths, then CLASSESxPROTOTYPES)")
        cls = model.split("-")[-1].partition("x")[0]
        if not cls.isdigit() or int(cls) < 2:
            raise UsageError(f"bad model '{model}': the last part must be CLASSES or CLASSESxPROTOTYPES")
        n_in, n_classes, name = inputs, int(cls), ""
    else:
        data = load_dataset(dataset or "digits")
        enc = parse_encoding(encoding or data.default_encoding, data.max_value)
        n_in, n_classes, name = enc.n_bits(data.n_features), data.n_classes, data.name
        model = model or DEFAULT_MODEL.get(name, "10x20")
    sizes = parse_model(model, n_in, n_classes)
    weights = weights or DEFAULT_WEIGHTS.get(name, "binary2")
    cfg = rule_config(name, sizes, weights, 0, n_classes, {} if pool is None else {"pool": pool})
    return sizes, n_classes, weights, int(cfg.get("pool", {}).get("rows", 0))


def prepare(req: TrainRequest) -> Plan:
    """Every check that can fail on bad input, before anything is started or written."""
    if req.epochs <= 0:
        raise UsageError(f"--epochs must be positive (got {req.epochs})")
    board = boards_mod.load(req.board)
    if board.kind == "board":
        if not req.port:
            raise UsageError(f"board '{board.name}' is a real board: give --port (or use sim-{board.real})")
        from ..link.ports import resolve_port

        req.port = resolve_port(req.port, board)  # 'auto': the single port that looks like it
    data = load_dataset(req.dataset)
    if req.limit:
        if req.limit < 0:
            raise UsageError(f"--limit must be positive (got {req.limit})")
        data.x_train, data.y_train = data.x_train[: req.limit], data.y_train[: req.limit]
    req.model = req.model or DEFAULT_MODEL.get(data.name, "10x20")
    req.weights = req.weights or DEFAULT_WEIGHTS.get(data.name, "binary2")
    if req.weights not in ("binary", "binary2", "ternary"):
        raise UsageError(f"--weights must be binary, binary2 or ternary (got {req.weights})")
    enc = parse_encoding(req.encoding or data.default_encoding, data.max_value)
    n_in = enc.n_bits(data.n_features)
    sizes = parse_model(req.model, n_in, data.n_classes)
    cfg = rule_config(data.name, sizes, req.weights, req.seed, data.n_classes, req.rule, len(data.x_train))
    check_fits(sizes, req.weights, board, classes=data.n_classes, pool_rows=cfg.get("pool", {}).get("rows", 0))  # too big for the board's heap: exit 2 now
    meter = meter_config(board)  # INA219/INA226 on the board: the device integrates its readings
    if meter:
        cfg["meter"] = meter
    # a checkpoint is only resumed by the very same job: same config, data, encoding, order
    ident = json.dumps({"cfg": cfg, "data": data.name, "enc": enc.spec, "n": len(data.x_train)}, sort_keys=True)
    cfg["id"] = hashlib.sha256(ident.encode()).hexdigest()[:16]
    if req.ckpt_every <= 0:
        raise UsageError(f"--ckpt-every must be positive (got {req.ckpt_every})")
    if req.out is not None:
        out = Path(req.out)
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out} exists and is not a directory")
    else:
        out = Path(tempfile.mkdtemp(prefix=f"bitflip-{data.name}-"))
    return Plan(req, board, data, enc, sizes, cfg, enc.pack(data.x_train), enc.pack(data.x_test), out)


def _summary(plan: Plan, **kw: Any) -> dict[str, Any]:
    base = {
        "board": plan.board.name,
        "dataset": plan.data.name,
        "dataset_arg": plan.req.dataset,  # what --dataset said (a file path for user data): `bitflip export` reloads it
        "limit": plan.req.limit,
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
        run.event({"ev": "epoch", "epoch": epoch, "seen": len(plan.x_train), "correct": correct, "step": ref.step,
                   **ref.totals})
        if plan.eval_after(epoch):
            pred = ref.predict(plan.x_test)
            test_acc = float((pred == y_test).mean())
            progress(len(plan.x_test))
            run.event({"ev": "eval", "epoch": epoch, "seen": len(y_test), "correct": int((pred == y_test).sum())})
        run.metric({"epoch": epoch, "samples_seen": seen, "train_accuracy": round(train_acc, 5),
                    "test_accuracy": round(test_acc, 5), "flips": ref.totals["writes"],
                    "updates": ref.totals["updates"], "wall_s": round(time.monotonic() - t0, 3)})
    run.write_model(ref.planes(), plan.cfg)
    return _summary(plan, samples_seen=seen, train_accuracy=train_acc, test_accuracy=test_acc,
                    flips=ref.totals["writes"], counters=dict(ref.totals), weights_sha256=ref.digest(),
                    weight_bytes=ref.weight_bytes(), wall_s=round(time.monotonic() - t_start, 3))


def _energy(plan: Plan, run: RunDir) -> dict[str, Any]:
    """Device seconds and joules with their source (energy.py); "none" if they cannot be had."""
    from .. import energy

    try:
        return energy.for_run(plan.board, plan.sizes, str(plan.req.weights), plan.cfg, run.path)
    except (OSError, KeyError, ValueError) as e:
        return {"energy_source": "none", "energy_error": f"{type(e).__name__}: {e}"}


def _plots(run: RunDir, summary: dict[str, Any]) -> None:
    """PNG plots in the run directory; a plotting problem is recorded, never fatal."""
    from ..measure import plots

    try:
        written = plots.write_run_plots(run.path, summary)
        run.event({"ev": "host", "what": "plots", "files": [p.name for p in written]})
    except Exception as e:  # noqa: BLE001 - matplotlib can fail in many ways; the run is done
        run.event({"ev": "host", "what": "plots", "error": f"{type(e).__name__}: {e}"})


def train(req: TrainRequest, progress_factory: Callable[[int], Any] | None = None) -> dict[str, Any]:
    plan = prepare(req)
    run = RunDir(plan.out, resume=req.resume)
    run.event({"ev": "host", "what": "start", "board": plan.board.name, "config": plan.cfg})
    bar = progress_factory(plan.total_samples) if progress_factory else None
    progress: Progress = bar.update if bar is not None else (lambda n: None)
    t0 = time.monotonic()
    try:
        if plan.board.is_host:
            summary = run_host(plan, run, progress)
        else:
            with ExitStack() as stack:
                target: Target
                if plan.board.is_virtual and not req.port:
                    target = VirtualTarget(plan.board, plan.out / "flash", req.fault_in, req.fault_out)
                else:  # a real board, or a virtual one already running (`bitflip sim` printed its port)
                    assert req.port is not None
                    target = SerialTarget(req.port, plan.board.link["pace_bytes_per_s"])
                stack.callback(target.close)
                summary = _summary(plan, **DeviceRun(plan, target, run, progress, resume=req.resume,
                                                     ckpt_every=req.ckpt_every).execute())
        summary["wall_s"] = round(time.monotonic() - t0, 3)
        summary.update(_energy(plan, run))
        run.write_json("summary.json", summary)
        _plots(run, summary)
        run.event({"ev": "host", "what": "done"})
        return summary
    finally:
        if bar is not None:
            bar.close()
        run.close()
