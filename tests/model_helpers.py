"""Small trained models for the model-file, board-API and C-export tests: a configuration,
raw feature values of the right kind, the numpy reference trained on a few of them, and the
ModelFile holding the result."""

from __future__ import annotations

from typing import Any

import numpy as np
from bitflip.data import scaling
from bitflip.data.encoding import parse_encoding
from bitflip.training.reference import Reference
from bitflip.use.modelfile import ModelFile


def slanted(n: int, side: int = 28, seed: int = 1) -> np.ndarray:
    """Images of slanted strokes (what deskew straightens), (n, side*side) uint8."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, side, side), dtype=np.uint8)
    for k in range(n):
        slope, x0, top = rng.uniform(-0.6, 0.6), rng.integers(8, side - 8), rng.integers(2, 8)
        for y in range(top, side - top):
            xc = round(float(x0 + slope * (y - side / 2)))
            out[k, y, max(0, xc - 1) : xc + 2] = rng.integers(100, 256)
    return out.reshape(n, -1)


def raw_values(n: int, n_feat: int, spec: str, kind: str | None, seed: int) -> tuple[np.ndarray, int]:
    rng = np.random.default_rng(seed)
    if n_feat == 784:
        return np.concatenate([slanted(n - n // 4, seed=seed), rng.integers(0, 256, (n // 4, 784))]).astype(
            np.uint8
        ), 255
    if kind == "minmax":  # integers outside 0..255: per feature offsets and ranges
        lo = rng.integers(-3000, 3000, n_feat)
        return lo + rng.integers(0, 1 + rng.integers(1, 20000, n_feat), (n, n_feat)), 255
    top = 16 if spec == "thermo:3,7,11" else 255
    return rng.integers(0, top + 1, (n, n_feat)).astype(np.uint8), top


def make_model(
    over: dict[str, Any],
    spec: str,
    n_feat: int,
    classes: int = 4,
    scaling_kind: str | None = None,
    n_train: int = 60,
    seed: int = 0,
    **kw: Any,
) -> tuple[ModelFile, Reference, np.ndarray]:
    """(model file, the reference it came from, 50 raw test samples)."""
    scaling_kind = kw.pop("scaling", scaling_kind)
    x, top = raw_values(n_train + 50, n_feat, spec, scaling_kind, seed)
    sc = scaling.fit(x[: max(n_train, 1)], None, "test data")
    y = np.random.default_rng(seed + 1).integers(0, classes, max(n_train, 1))
    enc = parse_encoding(spec, top).fit(sc.apply(x[: max(n_train, 1)]), y, classes)  # mi:PCT picks its bits here
    n_bits = enc.n_bits(n_feat)
    sizes = [n_bits] + list(over["sizes"][1:])
    cfg: dict[str, Any] = {
        "sizes": sizes,
        "classes": classes,
        "weights": over.get("weights", "binary2"),
        "seed": 1,
        "window": 8,
        "margin": 2,
        "k": [2] * (len(sizes) - 1),
        "ks": 2,
    }
    if over.get("pool"):
        cfg["pool"] = {"rows": 8, "every": 16, "tau": 2, "flips": 4, "near": 20, "tau_step": 0}
        cfg["epoch"] = max(n_train, 1)
        cfg["margin"] = -1
    ref = Reference(cfg)
    rows = enc.pack(sc.apply(x))
    for i in range(n_train):
        ref.train_sample(rows[i], int(y[i]))
    mf = ModelFile(
        cfg=cfg,
        planes=[],
        encoding=enc,
        n_features=n_feat,
        max_value=top,
        scaling=sc,
        labels=[str(i) for i in range(classes)],
        meta={"job": "test", "encoding": spec},
    )
    mf.take(ref)
    return mf, ref, x[n_train:]
