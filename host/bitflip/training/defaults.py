"""Defaults derived from the data and the board, chosen on the validation split.

A user passes `--dataset` and `--board` only. For the three tuned sets (digits, MNIST,
Fashion-MNIST) the defaults are the ones in hparams.py. For anything else:

- the model has one prototype group per class of the data ("C x P"), and P is the largest
  the board's memory plan holds (training/memory.py; the host reference plans for a Pico, so
  a host run is a run a Pico can make), capped by the data: at most one prototype per
  PER_PROTOTYPE training samples of the smallest class (prototypes are initialised from
  samples, and one that no sample moves is wasted memory);
- the encoding is chosen among CANDIDATES (thermometers of 1, 2, 4 and 8 levels) by a short
  run of the rule itself (QUICK_EPOCHS epochs on at most QUICK_ROWS training rows) scored on
  the validation split — never on the test split. More levels cost input bits, so under the
  same memory plan they buy resolution with prototypes; the validation run settles it;
- on the chosen encoding, a model with a hidden layer of HIDDEN_WIDTHS binary units trained by
  the pool rule (learned features; the prototypes shrink to what the plan still holds) is
  scored the same way and kept only if it validates better.

The choice is deterministic (fixed seed, fixed rows) and cached in the data cache, keyed by
the data's digest, the board and the weights, so a resume or a second seed decides the same.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..boards import Board
from ..boards import load as load_board
from ..data import Dataset, fetch
from ..data.encoding import Encoding, parse_encoding
from ..errors import UsageError
from .hparams import DEFAULT_MODEL, HIDDEN_FALLBACK, rule_config
from .memory import check_fits, largest_prototypes
from .reference import Reference

CANDIDATES = ("thermo:1", "thermo:2", "thermo:4", "thermo:8")
PER_PROTOTYPE = 8  # training samples of the smallest class per prototype, at most
MAX_PROTOTYPES = 64  # per class: beyond this the plan, not the data, is what grows
MAX_BITS = 4096  # input bits a candidate may have (a 64-byte row per prototype plane)
HIDDEN_WIDTHS = (128,)  # also tried: one hidden layer this wide, trained by the pool rule
QUICK_EPOCHS = 2
QUICK_ROWS = 2000
QUICK_SEED = 0
PLAN_BOARD = "pico"  # the board the host reference sizes its default model for
Log = Callable[[str], None]


@dataclass(frozen=True)
class Choice:
    encoding: str
    model: str
    how: str  # one line for the user and for summary.json: what was chosen and why
    scores: dict[str, float]  # candidate encoding -> validation accuracy of its quick run


def plan_board(board: Board) -> Board:
    return load_board(PLAN_BOARD) if board.is_host else board


def prototypes(data: Dataset, n_in: int, weights: str, board: Board, y_train: np.ndarray) -> int:
    """P per class: the board's plan, capped by the data (see the module docstring)."""
    c = data.n_classes
    fit = largest_prototypes([n_in, c], weights, plan_board(board), c)
    smallest = int(np.bincount(y_train, minlength=c).min())
    return max(0, min(fit, MAX_PROTOTYPES, max(1, smallest // PER_PROTOTYPE)))


def model_for(data: Dataset, n_in: int, weights: str, board: Board, y_train: np.ndarray) -> str:
    """The tuned model of digits/MNIST/Fashion, shrunk to the board's plan where it does not fit
    (an ESP32 holds fewer prototypes than a Pico); otherwise C x P as in the module docstring."""
    if data.name in DEFAULT_MODEL:
        tuned = DEFAULT_MODEL[data.name]
        c, _, per = tuned.partition("x")
        if board.is_host or "-" in tuned:
            return tuned
        fit = largest_prototypes([n_in, int(c)], weights, board, int(c))
        return tuned if fit >= int(per) else f"{c}x{max(1, fit)}"
    p = prototypes(data, n_in, weights, board, y_train)
    return f"{data.n_classes}x{max(1, p)}"


def _hidden_model(data: Dataset, n_in: int, width: int, weights: str, board: Board,
                  y_train: np.ndarray) -> str | None:
    """'W-CxP' with the pool rule's window, P as large as the plan holds (capped as above)."""
    c = data.n_classes
    cap = max(1, min(MAX_PROTOTYPES, int(np.bincount(y_train, minlength=c).min()) // PER_PROTOTYPE))
    pool = int(HIDDEN_FALLBACK["pool"])
    for p in range(cap, 0, -1):
        try:
            check_fits([n_in, width, c * p], weights, plan_board(board), classes=c, pool_rows=pool)
        except UsageError:
            continue
        return f"{width}-{c}x{p}"
    return None


def _quick(data: Dataset, enc: Encoding, model: str, weights: str, tr: np.ndarray, va: np.ndarray) -> float:
    """Validation accuracy of the rule after a short run (the host reference, bit-exact with the board)."""
    from .plan import parse_model  # plan imports this module

    n_in = enc.n_bits(data.n_features)
    sizes = parse_model(model, n_in, data.n_classes)
    rows = tr[:QUICK_ROWS]  # tr is already a stratified, shuffled selection
    x, y = enc.pack(data.x_train[rows]), data.y_train[rows]
    cfg = rule_config(data.name, sizes, weights, QUICK_SEED, data.n_classes, {}, len(rows))
    ref = Reference(cfg)
    for e in range(QUICK_EPOCHS):
        for j in np.random.default_rng([QUICK_SEED, e]).permutation(len(rows)):
            ref.train_sample(x[j], int(y[j]))
    pred = ref.predict(enc.pack(data.x_train[va]))
    return float((pred == data.y_train[va]).mean())


def cache_dir() -> Path:
    return fetch.cache_dir() / "defaults"


def _cache_key(data_digest: str, board: Board, weights: str, n_val: int) -> str:
    return f"{data_digest}-{plan_board(board).name}-{weights}-{n_val}-v2"


def choose(data: Dataset, data_digest: str, weights: str, board: Board, tr: np.ndarray, va: np.ndarray,
           log: Log | None = None) -> Choice:
    """The encoding and model for data nobody tuned for (see the module docstring)."""
    path = cache_dir() / f"{_cache_key(data_digest, board, weights, len(va))}.json"
    try:
        got = json.loads(path.read_text())
        return Choice(got["encoding"], got["model"], got["how"], got["scores"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if log:
        log(f"choosing the encoding and model on the validation split "
            f"({len(CANDIDATES) + len(HIDDEN_WIDTHS)} quick runs of the rule)")
    y_train = data.y_train[tr]
    scores: dict[str, float] = {}
    models: dict[str, str] = {}
    for spec in CANDIDATES:
        enc = parse_encoding(spec, data.max_value, data.n_features)
        n_in = enc.n_bits(data.n_features)
        if n_in > MAX_BITS or prototypes(data, n_in, weights, board, y_train) < 1:
            continue
        models[spec] = model_for(data, n_in, weights, board, y_train)
        if len(va) == 0:  # nothing to choose on: the fewest bits
            scores[spec] = 0.0
            break
        scores[spec] = _quick(data, enc, models[spec], weights, tr, va)
        if log:
            log(f"defaults: {spec} -> {models[spec]}: validation {scores[spec]:.4f} "
                f"({QUICK_EPOCHS} quick epochs on {min(len(tr), QUICK_ROWS)} rows)")
    if not scores:  # even one level does not fit: the smallest candidate; the planner then names the problem
        return Choice(CANDIDATES[0], f"{data.n_classes}x1", "no candidate encoding fits the board's plan", {})
    best = max(scores, key=lambda s: (scores[s], -CANDIDATES.index(s)))  # ties: fewer bits
    if len(va):  # a hidden layer of learned binary features (the pool rule) on the best encoding
        enc = parse_encoding(best, data.max_value, data.n_features)
        n_in = enc.n_bits(data.n_features)
        for width in HIDDEN_WIDTHS:
            model = _hidden_model(data, n_in, width, weights, board, y_train)
            if model is None:
                continue
            key = f"{best} {model}"
            scores[key] = _quick(data, enc, model, weights, tr, va)
            models[key] = model
            if log:
                log(f"defaults: {key}: validation {scores[key]:.4f}")
        best = max(scores, key=lambda s: (scores[s], -len(s)))  # ties: no hidden layer
    how = (f"encoding {best.split(' ')[0]} and model {models[best]} chosen on the validation split "
           f"({', '.join(f'{s} {v:.3f}' for s, v in scores.items())}); prototypes sized to the "
           f"{plan_board(board).name} memory plan")
    choice = Choice(best.split(" ")[0], models[best], how, scores)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(choice.__dict__, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs time
    return choice


def describe(choice: Choice) -> dict[str, Any]:
    return {"encoding": choice.encoding, "model": choice.model, "how": choice.how, "val_scores": choice.scores}
