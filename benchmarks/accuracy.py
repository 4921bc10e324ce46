"""Regenerate the README results table for one dataset: the learning rule at its default
settings and at larger models (1 and 2 hidden layers), and the gradient baselines of
`bitflip compare` on the same bits, the same training samples and the same epochs.

    python benchmarks/accuracy.py --dataset mnist [--quick] [--epochs N] [--models M:W[|enc=E][|KEY=V...],...]

A model may carry its own encoding and rule overrides after '|', e.g. the pool rule on Fashion:
`576-10x29:binary2|enc=threshold:16|pool=128|k_out=9|window=8`.

Prints one markdown document on stdout (progress on stderr). Every figure in it is measured by
this run on the test split; the header holds the exact command line. Nothing is hard-coded
except the issue's targets and budgets, which are shown next to the measurements.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bitflip.errors import BitflipError
from bitflip.measure.compare import CompareRequest, markdown, plan, run, total_work
from bitflip.training.hparams import DEFAULT_MODEL, DEFAULT_WEIGHTS
from tqdm import tqdm

# issue 3: what the rule must reach, and the model budget it must reach it in
TARGET = {"digits": 0.95, "mnist": 0.95, "fashion": 0.85}
BUDGET_BYTES = {"digits": 16_000, "mnist": 100_000, "fashion": 100_000}  # decimal KB, the stricter reading
MAX_BITS = 2
# the pool rule for hidden layers (firmware pool.py) at its measured Fashion settings:
# 560 x 784 1-bit + 290 x 560 binary2 + 560 int32 thresholds = 100,000 bytes; an evidence
# window over every hidden unit (560 x 784 int8 counters = 439 KB while training), annealed
# from epoch 4 on
POOL_FASHION = "560-10x29:binary2|enc=threshold:16|pool=560|pool_every=2048|k_out=9|window=8|anneal=4|pool_tau_step=4"
# larger rule models to try besides the default: one and two hidden layers, 2-bit weights
MORE_MODELS = {
    "digits": ["10x20:ternary", "64-10x8:binary2", "64-10x8:ternary", "64-64-10x8:binary2"],
    "mnist": ["10x96:ternary", "256-10x16:binary2", "256-10x16:ternary", "256-128-10x8:binary2"],
    "fashion": ["10x50:ternary", "256-10x16:binary2", "256-10x16:ternary", "256-128-10x8:binary2", POOL_FASHION],
}
# the code whose changes would change the figures (the rule's reference, baselines, data)
RESULT_CODE = [
    "host/bitflip/reference.py",
    "host/bitflip/rules.py",
    "host/bitflip/runner.py",
    "host/bitflip/baselines.py",
    "host/bitflip/compare.py",
    "host/bitflip/data",
    "benchmarks/accuracy.py",
]
QUICK_LIMIT = {"digits": 400, "mnist": 1000, "fashion": 1000}


COLUMNS = (
    "Columns: *param updates* = weight values written during training (rule: weight bits written, the "
    "reference's `writes` counter; baselines: optimizer steps x parameters, every parameter is rewritten "
    "each step). *training ops*: rule = 32-bit XOR-popcount words of forward passes and words touched by "
    "updates; float = multiply-accumulates of forward and backward passes; STE = XNOR-popcount words "
    "forward + float MACs backward; the learning-rate sweep is not included. *model bytes* = deployed "
    "weights (+ 4-byte biases for baselines). *train state bytes* = what training keeps across steps "
    "(latent weights, optimizer moments). Baselines use a plain 10-way output where the rule has P "
    "prototypes per class; the *-matched* rows have one hidden layer sized to as many weights as the "
    "rule. `edge` marks a learning rate still at the end of its (extended) sweep."
)


def _progress(req: CompareRequest, label: str) -> tuple[Any, Any]:
    p = plan(req)
    bar = tqdm(
        total=total_work(p, req),
        unit="sample",
        file=sys.stderr,
        desc=label,
        dynamic_ncols=True,
        leave=False,
        disable=not sys.stderr.isatty(),
    )
    return p, bar


def _compare(req: CompareRequest, label: str) -> dict[str, Any]:
    print(f"[{time.strftime('%H:%M:%S')}] {label}", file=sys.stderr, flush=True)
    p, bar = _progress(req, label)
    try:
        return run(req, bar.update, p)
    finally:
        bar.close()


def _commit() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True, cwd=root
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", *RESULT_CODE], capture_output=True, text=True, check=True, cwd=root
        ).stdout.strip()
        return out.stdout.strip() + (" (with uncommitted changes to the code measured)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def measure(dataset: str, epochs: int, limit: int, models: list[str], matched: bool, seed: int) -> dict[str, Any]:
    """Run the rule at every model, and the baselines once per distinct hidden shape."""
    default = f"{DEFAULT_MODEL[dataset]}:{DEFAULT_WEIGHTS[dataset]}"
    configs = [default] + [m for m in models if m != default]
    compares, rule_rows = [], []
    shapes_done: set[tuple[int, ...]] = set()
    for i, spec in enumerate(configs):
        head, *opts = spec.split("|")
        model, _, weights = head.partition(":")
        kv = dict(o.partition("=")[::2] for o in opts)
        enc = kv.pop("enc", None)
        req = CompareRequest(
            dataset=dataset,
            model=model,
            weights=weights or None,
            encoding=enc,
            rule=kv,
            epochs=epochs,
            seed=seed,
            limit=limit,
            matched=matched and i == 0,
        )
        p = plan(req)
        hidden = (p.enc.spec, *p.sizes[1:-1])  # baselines once per encoding and hidden shape
        if i == 0:
            only: tuple[str, ...] = ()  # everything, logistic regression included
        elif hidden in shapes_done:
            only = ("rule",)
        else:
            only = ("rule", "mlp-sgd", "mlp-adam", "ste")
        req.only = only
        res = _compare(req, f"{dataset} {spec}" + ("" if only == ("rule",) else " + baselines"))
        shapes_done.add(hidden)
        rule = res["rows"][0]
        rule_rows.append(
            {"model": res["model"], "weights": res["weights"], "encoding": res["encoding"], "overrides": kv, **rule}
        )
        if len(res["rows"]) > 1:
            compares.append(res)
    return {"configs": rule_rows, "compares": compares, "settings": compares[0]}


def _kb(n: int) -> str:
    return f"{n / 1000:.1f} KB"


def report(dataset: str, m: dict[str, Any], argv: list[str], wall_s: float, quick: bool, commit: str) -> str:
    s = m["settings"]
    target, budget = TARGET[dataset], BUDGET_BYTES[dataset]
    out = [
        f"# Accuracy on {dataset}: the learning rule against gradient baselines (measured)",
        "",
        f"Command: `{' '.join(shlex.quote(a) for a in argv)}`  ",
        (
            f"Measured {datetime.date.today().isoformat()} on {platform.machine()} / Python {platform.python_version()}, "
            f"commit {commit}, {wall_s / 60:.1f} min{' (QUICK settings: not the results)' if quick else ''}.  "
        ),
        (
            f"Data: {s['n_train']} training / {s['n_test']} test samples (the official test split), "
            f"encoding {s['encoding']}, seed {s['seed']}, {s['epochs']} epochs for every method.  "
        ),
        (
            f"Baselines: mini-batch {s['batch']}, learning rate chosen on a {s['val_fraction']:.0%} validation slice of "
            "the training split, then retrained on the whole training split (see host/bitflip/baselines.py)."
        ),
        "",
        (
            f"## The rule, every model tried (budget: <= {MAX_BITS} bits/weight, <= {_kb(budget)} of weights; "
            f"target >= {100 * target:.1f} %)"
        ),
        "",
        (
            "| model | weights | encoding | rule overrides | bits/weight | model bytes | within budget | test accuracy "
            "| weight bits written |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    best = None
    for r in m["configs"]:
        ok = r["weight_bits"] <= MAX_BITS and r["model_bytes"] <= budget
        if ok and (best is None or r["test_accuracy"] > best["test_accuracy"]):
            best = r
        over = " ".join(f"{k}={v}" for k, v in r["overrides"].items()) or "-"
        out.append(
            f"| {r['model']} | {r['weights']} | {r['encoding']} | {over} | {r['weight_bits']} | "
            f"{r['model_bytes']:,} | {'yes' if ok else 'no'} | {100 * r['test_accuracy']:.2f} % | "
            f"{r['param_updates']:,} |"
        )
    out.append("")
    if best is not None:
        verdict = "reached" if best["test_accuracy"] >= target else "NOT reached"
        out.append(
            f"Best within budget: **{best['model']} {best['weights']}, {100 * best['test_accuracy']:.2f} %** "
            f"(target {100 * target:.1f} %: {verdict})."
        )
    else:
        out.append("No model tried fits the budget.")
    for res in m["compares"]:
        rule = res["rows"][0]
        hidden = "-".join(map(str, rule["sizes"][1:-1])) or "no hidden layer"
        out += [
            "",
            (
                f"## Rule {res['model']} {res['weights']} against baselines with its hidden widths ({hidden}), "
                f"encoding {res['encoding']}"
            ),
            "",
            markdown(res),
            "",
        ]
        sgd = next((r for r in res["rows"] if r["method"] == "mlp-sgd"), None)
        ste = next((r for r in res["rows"] if r["method"] == "ste"), None)
        if sgd is not None:
            out.append(
                f"- Parameter updates: SGD (same hidden widths) writes {sgd['param_updates'] / max(1, rule['param_updates']):.1f}x "
                f"as many weight values as the rule (target: >= 20x)."
            )
        for r in res["rows"]:
            if r["method"].endswith("-matched") and r["method"].startswith("mlp-sgd"):
                out.append(
                    f"- Against SGD with as many weights as the rule ({r['sizes'][1]} hidden units): "
                    f"{r['param_updates'] / max(1, rule['param_updates']):.0f}x."
                )
        if ste is not None:
            out.append(
                f"- Gap to the straight-through binary MLP of the same hidden widths: "
                f"{100 * (ste['test_accuracy'] - rule['test_accuracy']):+.2f} points (STE minus rule; "
                "target for MNIST: <= 2.0)."
            )
    out += ["", COLUMNS]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True, choices=sorted(TARGET))
    ap.add_argument(
        "--quick", action="store_true", help="a small slice and 2 epochs: checks the pipeline, not the rule"
    )
    ap.add_argument("--epochs", type=int, default=None, help="every method's epoch budget (default 10, quick 2)")
    ap.add_argument("--limit", type=int, default=None, help="first N training samples (default all)")
    ap.add_argument(
        "--models",
        default=None,
        help="rule models besides the default, MODEL:WEIGHTS,... "
        "(default: a per-dataset list with 1 and 2 hidden layers)",
    )
    ap.add_argument("--no-matched", action="store_true", help="skip the baselines with as many weights as the rule")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown to this file")
    a = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    epochs = a.epochs or (2 if a.quick else 10)
    limit = a.limit if a.limit is not None else (QUICK_LIMIT[a.dataset] if a.quick else 0)
    if a.models is not None:
        models = [m for m in a.models.split(",") if m]
    else:
        models = MORE_MODELS[a.dataset][:1] if a.quick else MORE_MODELS[a.dataset]
    t0 = time.monotonic()
    commit = _commit()  # at the start: the code is imported now, a commit during the run must not be named
    try:
        m = measure(a.dataset, epochs, limit, models, matched=not (a.no_matched or a.quick), seed=a.seed)
    except BitflipError as e:
        print(f"accuracy.py: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 1)
    text = report(a.dataset, m, ["python", "benchmarks/accuracy.py", *argv], time.monotonic() - t0, a.quick, commit)
    sys.stdout.write(text)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
