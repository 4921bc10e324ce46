"""Hyper-parameters of the learning rule per dataset, merged with user overrides into the
configuration that the device and the reference both receive."""

from __future__ import annotations

from typing import Any

from .errors import UsageError

DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {"margin": 8, "window": 16, "k_hidden": 5, "k_out": 3},
}
FALLBACK: dict[str, Any] = {"margin": 8, "window": 16, "k_hidden": 5, "k_out": 3}


def rule_config(dataset: str, sizes: list[int], weights: str, seed: int, overrides: dict[str, Any]) -> dict[str, Any]:
    hp = dict(DEFAULTS.get(dataset, FALLBACK))
    for key, value in overrides.items():
        if key not in hp:
            raise UsageError(f"unknown rule parameter '{key}' (known: {', '.join(sorted(hp))})")
        try:
            hp[key] = int(value)
        except (TypeError, ValueError):
            raise UsageError(f"rule parameter {key} must be an integer (got {value!r})") from None
    n_layers = len(sizes) - 1
    k = [hp["k_hidden"]] * (n_layers - 1) + [hp["k_out"]]
    return {
        "sizes": sizes,
        "weights": weights,
        "seed": seed,
        "margin": hp["margin"],
        "window": hp["window"],
        "k": k,
    }
