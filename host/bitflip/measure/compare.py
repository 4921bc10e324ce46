"""`bitflip compare` as a library: the learning rule (host reference, exactly what
`bitflip train --board host` runs) and the gradient baselines of baselines.py on the same
training samples, the same encoded bits and the same epochs; one row per method.

Row fields (all methods): method, title, sizes, test_accuracy, weight_bits, param_updates,
ops (by kind), model_bytes, train_state_bytes, lr (None for the rule), epochs, wall_s.
For the rule, param_updates is the reference's `writes` counter (weight bits written) and its
ops are the XOR-popcount words of the forward passes and the words touched by updates.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..device import spec
from ..errors import UsageError
from ..training.plan import Plan, TrainRequest, prepare
from ..training.rundir import RunDir
from . import baselines

Progress = Callable[[int], None]
WEIGHT_BITS = {"binary": 1, "binary2": 2, "ternary": 2}


@dataclass
class CompareRequest:
    dataset: str = "digits"
    model: str | None = None  # default per dataset, as for `bitflip train`
    weights: str | None = None
    encoding: str | None = None
    rule: dict[str, Any] = field(default_factory=dict)  # rule hyper-parameter overrides (rules.py)
    epochs: int = 10
    seed: int = 0
    limit: int | None = None  # the first N training samples only
    batch: int = 32
    matched: bool = False  # add baselines with as many weights as the rule (one hidden layer; the rule's shape)
    only: tuple[str, ...] = ()  # method names to run (empty: all); "rule" is one of them


def plan(req: CompareRequest) -> Plan:
    """Validate everything (exit 2 on bad input) before any training starts."""
    if req.batch <= 0:
        raise UsageError(f"--batch must be positive (got {req.batch})")
    for m in req.only:  # what needs no data: before the defaults are chosen (quick runs, log lines)
        if m not in ALL_METHODS:
            raise UsageError(f"--only: '{m}' cannot run here (no such method); methods: {', '.join(ALL_METHODS)}")
        if m in NEEDS_MATCHED and not req.matched:
            raise UsageError(f"--only: '{m}' cannot run here: it needs --matched")
    tr = TrainRequest(
        board="host",
        dataset=req.dataset,
        model=req.model,
        weights=req.weights,
        encoding=req.encoding,
        epochs=req.epochs,
        seed=req.seed,
        limit=req.limit,
        rule=dict(req.rule),
    )
    return prepare(tr)  # also checks epochs, limit, model and encoding; creates nothing


# every method name --only may give (mlp-adam needs hidden layers, NEEDS_MATCHED --matched,
# SHAPE_METHODS several prototypes per class)
ALL_METHODS = (
    "rule",
    "mlp-sgd",
    "mlp-adam",
    "ste",
    "logreg",
    "mlp-sgd-matched",
    "ste-matched",
    "mlp-sgd-shape",
    "ste-shape",
)
SHAPE_METHODS = ("mlp-sgd-shape", "ste-shape")
NEEDS_MATCHED = ("mlp-sgd-matched", "ste-matched", *SHAPE_METHODS)


def method_list(p: Plan, req: CompareRequest) -> list[baselines.Method]:
    hidden = tuple(p.sizes[1:-1])
    n_classes = p.data.n_classes
    matched = 0
    if req.matched:
        n_weights = sum(a * b for a, b in zip(p.sizes[:-1], p.sizes[1:]))
        matched = baselines.matched_width(n_weights, p.sizes[0], n_classes)
    found = baselines.methods(hidden, matched, pool=p.sizes[-1] // n_classes)
    if req.only:
        known = {"rule", *(m.name for m in found)}
        unknown = sorted(set(req.only) - known)
        if unknown:
            m = unknown[0]
            why = ""
            if m == "mlp-adam" and not hidden:
                why = f": model {p.model} has no hidden layers (an MLP with Adam is then logreg)"
            elif m in NEEDS_MATCHED and not req.matched:
                why = ": it needs --matched"
            elif m in SHAPE_METHODS:
                why = f": model {p.model} has one prototype per class (its shape is that of mlp-sgd and ste)"
            elif m not in ALL_METHODS:
                why = " (no such method)"
            raise UsageError(f"--only: '{m}' cannot run here{why}; this comparison has {', '.join(sorted(known))}")
        found = [m for m in found if m.name in req.only]
    return found


def total_work(p: Plan, req: CompareRequest) -> int:
    """Samples processed by `run`, for one progress bar."""
    cfg = config(req)
    n = len(p.x_train)
    rule = p.total_samples if not req.only or "rule" in req.only else 0
    return rule + sum(baselines.work(m, n, cfg) for m in method_list(p, req))


def config(req: CompareRequest) -> baselines.Config:
    return baselines.Config(epochs=req.epochs, seed=req.seed, batch=req.batch)


def rule_row(p: Plan, progress: Progress) -> dict[str, Any]:
    from dataclasses import replace

    from ..training.hostrun import HostRun
    from ..training.records import Collector

    with tempfile.TemporaryDirectory(prefix="bitflip-compare-") as tmp:
        p = replace(p, out=Path(tmp) / "run")
        run = RunDir(p.out, p.job)
        try:
            got = Collector(p, run)
            HostRun(p, got, progress, ckpt_every=1 << 30).execute()
            s = got.summary()
        finally:
            run.close()
    c = s["counters"]
    bits = WEIGHT_BITS[s["weights"]]
    pc = p.cfg.get("pool")
    title = f"bitflip rule v1, {s['weights']} weights, host reference"
    if pc:
        title = f"bitflip pool rule (1-bit hidden, {s['weights']} top), host reference"
    return {
        "method": "rule",
        "title": title,
        "sizes": p.sizes,
        "test_accuracy": s["test_accuracy"],
        "train_accuracy": s["train_accuracy"],
        "val_accuracy": s["val_accuracy"],  # of the model kept: the best epoch on validation
        "best_epoch": s["best_epoch"],
        "weight_bits": bits,
        "param_updates": c["writes"],
        "ops": {
            "xor_words": c["fwd_words"],
            "upd_words": c["upd_words"],
            **({"evidence_bytes": c.get("evidence_bytes", 0)} if pc else {}),
        },
        # the model: weight planes and (pool rule) int32 thresholds; training also keeps
        # the prototypes left to fill and (pool rule) the int8 evidence window
        "model_bytes": spec.model_bytes(p.cfg),
        "train_state_bytes": spec.train_state_bytes(p.cfg),
        "lr": None,
        "epochs": p.req.epochs,
        "weights_sha256": s["weights_sha256"],
        "wall_s": s["wall_s"],
    }


def baseline_row(res: baselines.Result) -> dict[str, Any]:
    row = asdict(res)
    # JSON object keys must be strings; keep the rate readable
    row["val_accuracy"] = {f"{lr:g}": acc for lr, acc in res.val_accuracy.items()}
    return row


def run(req: CompareRequest, progress: Progress | None = None, p: Plan | None = None) -> dict[str, Any]:
    """Run every method; returns {settings..., "rows": [...]} (rule first)."""
    p = p or plan(req)
    prog: Progress = progress or (lambda n: None)
    cfg = config(req)
    rows = []
    if not req.only or "rule" in req.only:
        rows.append(rule_row(p, prog))
    # the rule's training split (its validation samples are not trained on; the baselines carve
    # their own validation slice from these for their learning-rate sweep)
    x_train, x_test = p.enc.bits(p.data.x_train[p.train_index]), p.enc.bits(p.data.x_test)
    for m in method_list(p, req):
        res = baselines.run(m, p.sizes[0], p.data.n_classes, x_train, p.y_train, x_test, p.data.y_test, cfg, prog)
        rows.append(baseline_row(res))
    return {
        "dataset": p.data.name,
        "model": p.req.model,
        "weights": p.req.weights,
        "encoding": p.enc.spec,
        "epochs": req.epochs,
        "seed": req.seed,
        "limit": req.limit,
        "batch": req.batch,
        "n_train": len(p.data.x_train),  # the training split; the rule validates on n_val of it
        "n_val": len(p.y_val),
        "n_test": len(p.x_test),
        "val_fraction": cfg.val_fraction,
        "rows": rows,
    }


def _ops(ops: dict[str, int]) -> str:
    return ", ".join(f"{v:.3g} {k}" for k, v in ops.items())


def _shape(sizes: list[int]) -> str:
    return "-".join(str(s) for s in sizes)


def markdown(result: dict[str, Any]) -> str:
    """The comparison as a markdown table (also what the CLI prints)."""
    head = (
        "| method | shape | test acc | weight bits | param updates | training ops | model bytes "
        "| train state bytes | lr (val acc) |"
    )
    lines = [head, "|" + "---|" * 9]
    for r in result["rows"]:
        lr = "-"
        if r["lr"] is not None:
            key = f"{r['lr']:g}"
            lr = f"{key} ({r['val_accuracy'][key]:.3f})" + (" edge" if r["lr_at_edge"] else "")
        lines.append(
            f"| {r['method']} | {_shape(r['sizes'])} | {100 * r['test_accuracy']:.2f} % | {r['weight_bits']} "
            f"| {r['param_updates']:,} | {_ops(r['ops'])} | {r['model_bytes']:,} "
            f"| {r['train_state_bytes']:,} | {lr} |"
        )
    return "\n".join(lines)
