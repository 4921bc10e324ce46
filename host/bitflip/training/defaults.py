"""Defaults derived from the data and the board, chosen on the validation split.

A user passes `--dataset` and `--board` only. For the three tuned sets (digits, MNIST,
Fashion-MNIST) the defaults are the ones in hparams.py. For anything else:

- the model has one prototype group per class of the data ("C x P"), and P is the largest
  the board's memory plan holds (training/memory.py; the host reference plans for a Pico, so
  a host run is a run a Pico can make), capped by the data: at most one prototype per
  PER_PROTOTYPE training samples of the smallest class (prototypes are initialised from
  samples, and one that no sample moves is wasted memory);
- the encoding is chosen among CANDIDATES (thermometers of 1, 2, 4, 8 and 16 levels) by a
  short run of the rule itself (QUICK_EPOCHS epochs on at most QUICK_ROWS training rows) scored
  on the validation split — never on the test split (below SMALL training samples: the mean
  over SMALL_FOLDS-fold stratified cross-validation of the training data, SMALL_REPEATS times
  with other shuffles, since a few dozen validation samples cannot tell candidates apart and
  every sample then validates once per repeat). More levels cost input bits, so under the
  same memory plan they buy resolution with prototypes; the validation run settles it;
- if the chosen thermometer is coarser than LEVEL_GRID, it with one more threshold of that
  grid (each one in turn; where the information sits in one part of the value range, e.g.
  only values well above the midpoint mean something, a level there is worth more than
  evenly spaced ones), scored the same way;
- on the chosen encoding, the prototypes' flip density k_out (K_OUTS; data with many errors
  needs smaller steps, or the prototypes random-walk and training accuracy falls epoch after
  epoch), scored the same way;
- on the chosen encoding and flip density, a selection of the input bits (MI_PCTS: keep that
  percent of the bits with the most mutual information with the class on the training rows,
  data/selection.py), since a Hamming distance weighs an irrelevant bit like an informative
  one; fewer bits also let the plan hold more prototypes. The selection is also tried on the
  finest thermometer that fits (fine levels, only the informative ones);
- on the chosen encoding, DENSER times the prototypes per class (the data's cap relaxed to one
  per PER_PROTOTYPE / DENSER samples, still within the plan), scored the same way;
- on the chosen encoding, a model with a hidden layer of HIDDEN_WIDTHS binary units trained by
  the pool rule (learned features; the prototypes shrink to what the plan still holds) is
  scored the same way and kept only if it validates better.

Each step keeps the best candidate so far (ties: the earlier, simpler one). The choice costs
about 20-25 quick runs: seconds on a few thousand rows, under a minute or so on the suite's sets.

The choice is deterministic (fixed seed, fixed rows) and cached in the data cache, keyed by
the data's digest, the board and the weights, so a resume or a second seed decides the same.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..boards import Board
from ..boards import load as load_board
from ..data import Dataset, fetch
from ..data.dataset import stratified_folds
from ..data.encoding import Encoding, parse_encoding
from ..errors import UsageError
from .hparams import DEFAULT_MODEL, FALLBACK, HIDDEN, HIDDEN_FALLBACK, LARGE_DEFAULT, rule_config
from .memory import check_fits, largest_prototypes
from .reference import Reference

CANDIDATES = ("thermo:1", "thermo:2", "thermo:4", "thermo:8", "thermo:16")
LEVEL_GRID = "thermo:8"  # the thresholds step 1b may add to a coarser chosen thermometer
PER_PROTOTYPE = 8  # training samples of the smallest class per prototype, at most
MAX_PROTOTYPES = 64  # per class: beyond this the plan, not the data, is what grows
DENSER = (2, 4)  # also tried: this many times the prototypes per class (the plan still holds them)
MAX_BITS = 4096  # input bits a candidate may have (a 64-byte row per prototype plane)
HIDDEN_WIDTHS = (128,)  # also tried: one hidden layer this wide, trained by the pool rule
K_OUTS = (4, 5, 6, 7)  # flip densities 1/2**k tried for the prototypes (FALLBACK's first)
MI_PCTS = (25, 50)  # bit selections tried: keep this percent of the most informative bits
QUICK_EPOCHS = 3
QUICK_ROWS = 2000
QUICK_SEED = 0
SMALL = 2000  # training samples below which candidates are scored by cross-validation:
SMALL_FOLDS = 5  # stratified folds of the training data (never the test split), every sample validating once,
SMALL_REPEATS = 2  # with this many seeded shuffles
PLAN_BOARD = "pico"  # the board the host reference sizes its default model for
Log = Callable[[str], None]


@dataclass(frozen=True)
class Choice:
    encoding: str
    model: str
    rule: dict[str, int]  # rule settings that differ from hparams.FALLBACK (e.g. k_out)
    how: str  # one line for the user and for summary.json: what was chosen and why
    scores: dict[str, float]  # candidate -> validation accuracy (best epoch) of its quick run


def plan_board(board: Board) -> Board:
    return load_board(PLAN_BOARD) if board.is_host else board


def prototypes(data: Dataset, n_in: int, weights: str, board: Board, y_train: np.ndarray, denser: int = 1) -> int:
    """P per class: the board's plan, capped by the data (see the module docstring); `denser`
    times the data's cap (one prototype per PER_PROTOTYPE / denser samples of the smallest class)."""
    c = data.n_classes
    fit = largest_prototypes([n_in, c], weights, plan_board(board), c)
    smallest = int(np.bincount(y_train, minlength=c).min())
    return max(0, min(fit, denser * MAX_PROTOTYPES, max(1, denser * smallest // PER_PROTOTYPE)))


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


def large_default(data: Dataset, n_train: int, weights: str, board: Board) -> tuple[str, str] | None:
    """(encoding, model) of a tuned set's large-data default (hparams.LARGE_DEFAULT) when there
    are enough training rows and the board's plan holds it (the host: the Pico's); else None."""
    if data.name not in LARGE_DEFAULT or n_train < LARGE_DEFAULT[data.name][0]:
        return None
    from .plan import parse_model  # plan imports this module

    _, model, encoding = LARGE_DEFAULT[data.name]
    n_in = parse_encoding(encoding, data.max_value, data.n_features).n_bits(data.n_features)
    c = data.n_classes
    try:
        sizes = parse_model(model, n_in, c)
        check_fits(sizes, weights, plan_board(board), classes=c, pool_rows=int(HIDDEN[data.name]["pool"]))
    except UsageError:
        return None
    return encoding, model


def _hidden_model(data: Dataset, n_in: int, width: int, weights: str, board: Board, y_train: np.ndarray) -> str | None:
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


def _quick(
    data: Dataset, enc: Encoding, model: str, weights: str, tr: np.ndarray, va: np.ndarray, rule: dict[str, int]
) -> float:
    """Validation accuracy of the rule after a short run (the host reference, bit-exact with the board)."""
    from .plan import parse_model  # plan imports this module

    enc = enc.fit(data.x_train[tr], data.y_train[tr], data.n_classes)  # mi:PCT: on this split's training rows
    n_in = enc.n_bits(data.n_features)
    sizes = parse_model(model, n_in, data.n_classes)
    rows = np.sort(np.random.default_rng(QUICK_SEED).permutation(tr)[:QUICK_ROWS])  # files may be sorted by class
    x, y = enc.pack(data.x_train[rows]), data.y_train[rows]
    cfg = rule_config(data.name, sizes, weights, QUICK_SEED, data.n_classes, rule, len(rows))
    ref = Reference(cfg)
    best = 0.0
    xv, yv = enc.pack(data.x_train[va]), data.y_train[va]
    for e in range(QUICK_EPOCHS):
        for j in np.random.default_rng([QUICK_SEED, e]).permutation(len(rows)):
            ref.train_sample(x[j], int(y[j]))
        best = max(best, float((ref.predict(xv) == yv).mean()))  # a run keeps its best epoch
    return best


def _levels_of(spec: str) -> int:
    return int(spec.partition(":")[2])  # thermo:K


def cache_dir() -> Path:
    return fetch.cache_dir() / "defaults"


def _cache_key(data_digest: str, board: Board, weights: str, n_val: int) -> str:
    return f"{data_digest}-{plan_board(board).name}-{weights}-{n_val}-v7"


def choose(
    data: Dataset, data_digest: str, weights: str, board: Board, tr: np.ndarray, va: np.ndarray, log: Log | None = None
) -> Choice:
    """The encoding, model and flip density for data nobody tuned for (the module docstring)."""
    path = cache_dir() / f"{_cache_key(data_digest, board, weights, len(va))}.json"
    try:
        got = json.loads(path.read_text())
        return Choice(got["encoding"], got["model"], got["rule"], got["how"], got["scores"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    y_train = data.y_train[tr]
    fits = []
    for spec in CANDIDATES:
        if _levels_of(spec) > data.max_value:
            continue
        enc = parse_encoding(spec, data.max_value, data.n_features)
        n_in = enc.n_bits(data.n_features)
        if n_in <= MAX_BITS and prototypes(data, n_in, weights, board, y_train) >= 1:
            fits.append((spec, enc, model_for(data, n_in, weights, board, y_train)))
    if not fits:  # even one level does not fit: the smallest candidate; the planner then names the problem
        return Choice(CANDIDATES[0], f"{data.n_classes}x1", {}, "no candidate encoding fits the board's plan", {})
    if len(va) == 0:  # nothing to choose on: the fewest bits and the fallback settings
        spec, _, model = fits[0]
        return Choice(spec, model, {}, "no validation split: the fewest input bits that fit", {})
    if log:
        log(
            f"choosing the encoding, model and flip density on the validation split "
            f"(up to {len(fits) + _levels_of(LEVEL_GRID) + len(K_OUTS) - 1 + 2 * len(MI_PCTS) + len(DENSER) + len(HIDDEN_WIDTHS)}"
            " quick runs of the rule)"
        )
    scores: dict[str, float] = {}
    found: dict[str, tuple[str, str, dict[str, int]]] = {}
    splits = [(tr, va)]
    if len(tr) + len(va) < SMALL:  # a few dozen validation samples cannot tell candidates apart
        rows = np.concatenate([tr, va])
        splits = [
            (rows[a], rows[b])
            for seed in range(1, SMALL_REPEATS + 1)
            for a, b in stratified_folds(data.y_train[rows], seed, SMALL_FOLDS)
        ]

    def score(spec: str, enc: Encoding, model: str, rule: dict[str, int]) -> None:
        key = " ".join([spec, model, *(f"{k}={v}" for k, v in rule.items())])
        scores[key] = float(np.mean([_quick(data, enc, model, weights, t, v, rule) for t, v in splits]))
        found[key] = (spec, model, rule)
        if log:
            log(
                f"defaults: {key}: validation {scores[key]:.4f} ({QUICK_EPOCHS} quick epochs on "
                f"{min(len(splits[0][0]), QUICK_ROWS)} rows"
                + (f", mean of {len(splits)} splits)" if len(splits) > 1 else ")")
            )

    def best() -> str:  # ties: the earlier candidate (fewer bits, the fallback settings, no hidden layer)
        keys = list(scores)
        return max(keys, key=lambda k: (scores[k], -keys.index(k)))

    for spec, enc, model in fits:  # 1. the encoding, at the fallback settings
        score(spec, enc, model, {})
    spec, model, _ = found[best()]
    have = parse_encoding(spec, data.max_value, data.n_features).thresholds
    grid = parse_encoding(LEVEL_GRID, data.max_value).thresholds if _levels_of(LEVEL_GRID) <= data.max_value else ()
    for t in grid if len(have) < len(grid) else ():  # 1b. one more level of a coarse thermometer, on the grid
        if t not in have:
            more = parse_encoding("thermo:" + ",".join(map(str, sorted({*have, t}))), data.max_value, data.n_features)
            n_in = more.n_bits(data.n_features)
            if n_in <= MAX_BITS and prototypes(data, n_in, weights, board, y_train) >= 1:
                score(more.spec, more, model_for(data, n_in, weights, board, y_train), {})
    spec, model, _ = found[best()]
    enc = parse_encoding(spec, data.max_value, data.n_features)
    for k in K_OUTS:  # 2. the flip density of the prototypes
        if k != FALLBACK["k_out"]:
            score(spec, enc, model, {"k_out": k})
    spec, model, rule = found[best()]
    finest = [s for s, _, _ in fits][-1]
    for base in [spec] + ([finest] if finest != spec else []):  # 3. the most informative bits only,
        for pct in MI_PCTS:  # of the chosen encoding or of the finest thermometer that fits
            sel = parse_encoding(f"{base}+mi:{pct}", data.max_value, data.n_features)
            score(sel.spec, sel, model_for(data, sel.n_bits(data.n_features), weights, board, y_train), rule)
    spec, model, rule = found[best()]
    enc = parse_encoding(spec, data.max_value, data.n_features)
    tried = {model}
    for times in DENSER:  # 4. more prototypes per class, where the plan holds them
        denser = f"{data.n_classes}x{prototypes(data, enc.n_bits(data.n_features), weights, board, y_train, times)}"
        if denser not in tried:
            tried.add(denser)
            score(spec, enc, denser, rule)
    hidden_rule: dict[str, int] = {}  # 5. a hidden layer of learned binary features (the pool rule), its own settings
    for width in HIDDEN_WIDTHS:
        hidden = _hidden_model(data, enc.n_bits(data.n_features), width, weights, board, y_train)
        if hidden is not None:
            score(spec, enc, hidden, hidden_rule)
    spec, model, rule = found[best()]
    how = (
        f"encoding {spec}, model {model}"
        + "".join(f", {k} {v}" for k, v in rule.items())
        + f" chosen on the validation split ({', '.join(f'{k}: {v:.3f}' for k, v in scores.items())}); "
        f"prototypes sized to the {plan_board(board).name} memory plan"
    )
    choice = Choice(spec, model, rule, how, scores)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(choice.__dict__, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs time
    return choice
