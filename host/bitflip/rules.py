"""Hyper-parameters of the learning rule per dataset, merged with user overrides into the
configuration that the device and the reference both receive (see firmware rule.py)."""

from __future__ import annotations

from typing import Any

from .errors import UsageError

# k_out / k_hidden: flip density 1/2**k of the output (prototype) and hidden layers;
# ks: binary2 confidence gain density; window: hidden units this close to 0 may move;
# margin: >= 0 also pushes a rival prototype within margin of a correct winner.
FALLBACK: dict[str, Any] = {"k_out": 3, "k_hidden": 4, "ks": 3, "window": 16, "margin": -1}
DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {"k_out": 3, "k_hidden": 4, "ks": 3, "window": 16, "margin": -1},
    "mnist": {"k_out": 5, "k_hidden": 6, "ks": 4, "window": 32, "margin": -1},
    "fashion": {"k_out": 6, "k_hidden": 6, "ks": 4, "window": 32, "margin": -1},
}
# MNIST: 400 bits after deskew+crop:20 (registry.MNIST_ENCODING), 960 prototypes = 99,840 B
DEFAULT_MODEL = {"digits": "10x20", "mnist": "10x96", "fashion": "10x50"}
DEFAULT_WEIGHTS = {"digits": "binary2", "mnist": "binary2", "fashion": "binary2"}


def rule_config(dataset: str, sizes: list[int], weights: str, seed: int, classes: int,
                overrides: dict[str, Any]) -> dict[str, Any]:
    hp = dict(DEFAULTS.get(dataset, FALLBACK))
    for key, value in overrides.items():
        if key not in hp:
            raise UsageError(f"unknown rule parameter '{key}' (known: {', '.join(sorted(hp))})")
        try:
            hp[key] = int(value)
        except (TypeError, ValueError):
            raise UsageError(f"rule parameter {key} must be an integer (got {value!r})") from None
    for key in ("k_out", "k_hidden", "ks"):
        if not 0 <= hp[key] <= 16:
            raise UsageError(f"rule parameter {key} must be within 0..16 (got {hp[key]})")
    n_layers = len(sizes) - 1
    return {
        "sizes": sizes,
        "classes": classes,
        "weights": weights,
        "seed": seed,
        "window": hp["window"],
        "margin": hp["margin"],
        "k": [hp["k_hidden"]] * (n_layers - 1) + [hp["k_out"]],
        "ks": hp["ks"],
    }
