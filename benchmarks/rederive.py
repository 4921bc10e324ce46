"""Re-derive a tuned dataset's defaults on its validation split (never the test split).

    .venv/bin/python benchmarks/rederive.py --dataset digits --epochs 10 \
        --encodings thermo:3,7,11/thermo:2/thermo:4 --models 10x10,10x20,10x40 --k-out 3,4,5

Trains the rule (host reference, bit-exact with the board) for every combination on the
training split that `bitflip train` uses (the default --val fraction carved out, stratified,
seed 0) and prints the best validation accuracy over the epochs and the epoch it came at —
what `bitflip train` keeps. The test split is not loaded into any computation here.
Candidates whose weights exceed --max-bytes are skipped (digits: the issue's 16 KB budget).

--folds K scores every candidate by K-fold stratified cross-validation of the training data
instead (`data.dataset.stratified_folds`, seed 1; the mean over folds of the best epoch): on a
small set one 10 % validation split is too few samples to tell candidates apart (digits: 142,
one sample = 0.7 points), while every training row validates once over K folds. The test split
is still not used.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from bitflip.data.dataset import stratified_folds
from bitflip.device import spec
from bitflip.errors import BitflipError
from bitflip.training.plan import TrainRequest, prepare
from bitflip.training.reference import Reference


def _best_epoch(
    cfg: dict,
    x: np.ndarray,
    y: np.ndarray,
    xv: np.ndarray,
    yv: np.ndarray,
    epochs: int,
    order: Callable[[int], Any] | np.random.Generator,
) -> tuple[float, int]:
    """The best validation accuracy over the epochs and the epoch it came at; order: the
    training rows' order in epoch e, or a generator that shuffles them every epoch."""
    ref = Reference(cfg)
    best, at = -1.0, -1
    for e in range(epochs):
        for j in order.permutation(len(x)) if isinstance(order, np.random.Generator) else order(e):
            ref.train_sample(x[j], int(y[j]))
        acc = float((ref.predict(xv) == yv).mean())
        if acc > best:
            best, at = acc, e
    return best, at


def best_val(
    dataset: str,
    encoding: str,
    model: str,
    k_out: int,
    epochs: int,
    seed: int,
    max_bytes: int,
    weights: str | None = None,
    folds: int = 0,
) -> tuple[float, int, int]:
    p = prepare(
        TrainRequest(
            board="host",
            dataset=dataset,
            encoding=encoding,
            model=model,
            epochs=epochs,
            seed=seed,
            weights=weights,
            rule={"k_out": k_out},
            val=0.0 if folds else None,
        )
    )
    if spec.weight_bytes(p.cfg) > max_bytes:
        return -1.0, -1, spec.weight_bytes(p.cfg)
    if folds:  # every training row validates once; the test split stays unread
        runs = [  # each fold shuffles with its own generator of the seed
            _best_epoch(
                p.cfg, p.x_train[tr], p.y_train[tr], p.x_train[va], p.y_train[va], epochs, np.random.default_rng(seed)
            )
            for tr, va in stratified_folds(p.y_train, 1, folds)
        ]
        return (
            float(np.mean([r[0] for r in runs])),
            round(float(np.mean([r[1] for r in runs]))),
            spec.weight_bytes(p.cfg),
        )
    best, at = _best_epoch(p.cfg, p.x_train, p.y_train, p.x_val, p.y_val, epochs, p.order)  # what train keeps
    return best, at, spec.weight_bytes(p.cfg)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--encodings", default="thermo:3,7,11/thermo:2/thermo:4")
    ap.add_argument("--models", default="10x10,10x20,10x40")
    ap.add_argument("--k-out", default="3,4,5")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--max-bytes", type=int, default=16_000)
    ap.add_argument("--weights", default="", help="comma-separated weight kinds (default: the dataset's)")
    ap.add_argument("--folds", type=int, default=0, help="score by K-fold CV of the training data (0: the split)")
    args = ap.parse_args(argv)
    cmd = " ".join(
        ["python benchmarks/rederive.py"] + [shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])]
    )
    print(f"Validation accuracy (best epoch), `{cmd}`\n")
    print(
        "| encoding | model | weights | k_out | weight bytes | val acc (mean of seeds) | best epochs |\n"
        "|---|---|---|---|---|---|---|"
    )
    results = []
    for enc in args.encodings.split("/"):
        for model in args.models.split(","):
            for w in args.weights.split(",") if args.weights else [None]:
                for k in (int(v) for v in args.k_out.split(",")):
                    try:
                        runs = [
                            best_val(args.dataset, enc, model, k, args.epochs, s, args.max_bytes, w, args.folds)
                            for s in range(args.seeds)
                        ]
                    except BitflipError as e:
                        print(f"| {enc} | {model} | {w or '-'} | {k} | - | {e} | - |")
                        continue
                    nbytes = runs[0][2]
                    if nbytes > args.max_bytes:
                        continue
                    acc = float(np.mean([r[0] for r in runs]))
                    results.append((acc, -nbytes, enc, model, w or "", k))
                    print(
                        f"| {enc} | {model} | {w or 'default'} | {k} | {nbytes:,} | {100 * acc:.2f} % | "
                        f"{', '.join(str(r[1]) for r in runs)} |",
                        flush=True,
                    )
    if results:
        acc, _, enc, model, w, k = max(results)  # ties: the fewer weight bytes
        flag = f" --weights {w}" if w else ""
        print(f"\nbest on validation: --encoding {enc} --model {model}{flag} --rule k_out={k} ({100 * acc:.2f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
