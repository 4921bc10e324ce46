"""Hyper-parameters of the learning rule per dataset, merged with user overrides into the
configuration that the device and the reference both receive (see firmware rule.py)."""

from __future__ import annotations

from typing import Any

from ..errors import UsageError

# k_out / k_hidden: flip density 1/2**k of the output (prototype) and hidden layers;
# ks: binary2 confidence gain density; window: hidden units this close to 0 may move;
# margin: >= 0 also pushes a rival prototype within margin of a correct winner.
# pool > 0 switches the hidden layers to the pool rule (firmware pool.py) with windows of
# that many units; pool_every: samples per window; pool_tau: evidence a flip needs;
# pool_flips: flips per unit and window (halved every epoch); near: a correct winner whose
# best rival is this close still votes on the hidden layers.
# anneal E (>= 1; 0 = off): from epoch E on, every epoch adds 1 to k_out and pool_tau_step to
# pool_tau, so late epochs move fewer weights.
# digits k_out 4 (was 3): re-derived on the validation split, 3 seeds, 10 epochs
# (benchmarks/rederive.py --dataset digits --seeds 3, docs/results/defaults.md): 99.06 % vs 98.59 %.
POOL = {"pool": 0, "pool_every": 2048, "pool_tau": 8, "pool_flips": 8, "near": 60, "pool_tau_step": 0, "anneal": 0}
# FALLBACK k_out 5 (was 3): on the validation splits of motion/shift1d/tones/table (bitflip train
# --board host --dataset D --epochs 10 --rule k_out=K, K in 3,5,7,8) 5 was best or within 0.01
# everywhere; 3 let the prototypes random-walk on shift1d and table (training accuracy fell
# every epoch: val 0.38 -> 0.62, 0.56 -> 0.67).
FALLBACK: dict[str, Any] = {"k_out": 5, "k_hidden": 4, "ks": 3, "window": 16, "margin": -1, **POOL}
DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {"k_out": 4, "k_hidden": 4, "ks": 3, "window": 16, "margin": -1, **POOL},
    "mnist": {"k_out": 5, "k_hidden": 6, "ks": 4, "window": 32, "margin": -1, **POOL},
    "fashion": {"k_out": 6, "k_hidden": 6, "ks": 4, "window": 32, "margin": -1, **POOL},
}
# Models with hidden layers train them with the pool rule (measured far better than rule v1:
# docs/research/hidden-layers.md sections 4-7); these settings replace the dataset's for them.
# A 32-unit window keeps the counters small enough for a Pico (784 inputs: 25 KB); `pool=0`
# selects rule v1 (then --weights also applies to the hidden layers).
HIDDEN: dict[str, dict[str, Any]] = {
    "digits": {"pool": 32, "pool_every": 128, "window": 4, "near": 20, "k_out": 5},
    "mnist": {"pool": 32, "pool_every": 512, "window": 8, "k_out": 9},
    # anneal 8 and pool_tau_step 4: the large-set Fashion default below, chosen on validation
    "fashion": {"pool": 32, "pool_every": 512, "window": 8, "k_out": 9, "anneal": 8, "pool_tau_step": 4},
}
HIDDEN_FALLBACK: dict[str, Any] = {"pool": 32, "pool_every": 512, "window": 8, "k_out": 9}
# The prototype counts are sized to the genuine-firmware memory plan of a Pico with this
# firmware (training/memory.py; `bitflip memory --board pico --dataset mnist` names the largest:
# 10x87 for MNIST's 400 bits, 10x47 for Fashion's 784), a few below it so that firmware growth
# does not break the default: MNIST 840 prototypes = 87,360 B, Fashion 450 = 90,000 B.
# digits 10x50 binary on thermo:4 (was 10x20 binary2 on thermo:3,7,11): 5-fold stratified CV of
# the training rows, 10 epochs, <= 16 KB of weights (benchmarks/rederive.py --folds 5,
# docs/results/defaults.md): 97.36 % vs 95.82 %; one 142-sample validation split could not tell
# them apart. On MNIST single-bit weights were worse at the same plan (3 epochs, validation).
# digits 10x100 on thermo:4+mi:50 (2026-12-04; was 10x50 on thermo:4): the 128 most informative
# of the 256 bits, so twice the prototypes in the same 16,000 B; same CV, 3 seeds: 97.84 % vs 97.40 %.
DEFAULT_MODEL = {"digits": "10x100", "mnist": "10x84", "fashion": "10x45"}
DEFAULT_WEIGHTS = {"digits": "binary", "mnist": "binary2", "fashion": "binary2"}
# With at least ROWS training rows (after the validation split) a tuned set trains this
# (model, encoding) instead, where the board's plan holds it (training/defaults.py
# large_default). Fashion-MNIST: a 320-unit pool-rule hidden layer that fits the Pico's plan
# with its 32-unit evidence window, 55,200 B of weights. On the full training set (54,000 rows)
# it validates +1.05 / +1.03 points over 10x45 (seeds 0, 1); on 20,000 rows it loses
# (docs/research/capacity.md section 6, which also has the figures behind ROWS).
LARGE_FASHION_ROWS = 32_000  # validated: loses at 18,000 training rows, wins at 32,400 and 54,000
LARGE_DEFAULT: dict[str, tuple[int, str, str]] = {"fashion": (LARGE_FASHION_ROWS, "320-10x29", "threshold:16")}


def rule_config(
    dataset: str, sizes: list[int], weights: str, seed: int, classes: int, overrides: dict[str, Any], n_train: int = 0
) -> dict[str, Any]:
    """n_train: training samples per epoch (the pool rule halves its flips every epoch)."""
    n_layers = len(sizes) - 1
    hp = dict(DEFAULTS.get(dataset, FALLBACK))
    given: dict[str, int] = {}
    for key, value in overrides.items():
        if key not in hp:
            raise UsageError(f"unknown rule parameter '{key}' (known: {', '.join(sorted(hp))})")
        try:
            given[key] = int(value)
        except (TypeError, ValueError):
            raise UsageError(f"rule parameter {key} must be an integer (got {value!r})") from None
    if n_layers > 1 and given.get("pool", 1):  # pool=0: rule v1 with the dataset's settings
        hp.update(HIDDEN.get(dataset, HIDDEN_FALLBACK))
    hp.update(given)
    for key in ("k_out", "k_hidden", "ks"):
        if not 0 <= hp[key] <= 16:
            raise UsageError(f"rule parameter {key} must be within 0..16 (got {hp[key]})")
    for key, lo, hi in (
        ("pool", 0, 4096),
        ("pool_every", 1, 1 << 20),
        ("pool_tau", 1, 127),
        ("pool_flips", 1, 4096),
        ("pool_tau_step", 0, 127),
        ("anneal", 0, 1000),
    ):
        if not lo <= hp[key] <= hi:
            raise UsageError(f"rule parameter {key} must be within {lo}..{hi} (got {hp[key]})")
    cfg: dict[str, Any] = {
        "sizes": sizes,
        "classes": classes,
        "weights": weights,
        "seed": seed,
        "window": hp["window"],
        "margin": hp["margin"],
        "k": [hp["k_hidden"]] * (n_layers - 1) + [hp["k_out"]],
        "ks": hp["ks"],
    }
    if hp["anneal"]:
        cfg["anneal"] = hp["anneal"]
        cfg["epoch"] = n_train
    if n_layers < 2 and given.get("pool"):
        raise UsageError("rule parameter pool needs a model with a hidden layer (e.g. --model 576-10x29)")
    if hp["pool"] and n_layers > 1:
        cfg["pool"] = {
            "rows": hp["pool"],
            "every": hp["pool_every"],
            "tau": hp["pool_tau"],
            "flips": hp["pool_flips"],
            "near": hp["near"],
            "tau_step": hp["pool_tau_step"],
        }
        cfg["epoch"] = n_train  # the pool rule halves its flips every epoch
    return cfg
