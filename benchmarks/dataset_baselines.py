"""How hard a dataset is for standard models: scikit-learn baselines on its uint8 features.

    .venv/bin/python benchmarks/dataset_baselines.py --dataset motion shift1d tones table

Trains on the training split, scores on the test split, and prints one markdown row per dataset:
logistic regression and an MLP (one hidden layer of 128, max_iter 300) on x/255, 1-NN
(Euclidean) on the bytes, and "bit template": one majority-bit prototype per class over the
default encoding's bits, nearest by Hamming distance (what a prototype layer holding a single
raw-bit template per class would score).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from bitflip.data.encoding import parse_encoding
from bitflip.data.registry import load_dataset

HEADER = (
    "| dataset | train / test | features | classes | LR | MLP 128 | 1-NN | bit template |\n"
    "|---|---|---|---|---|---|---|---|"
)


def bit_template(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray) -> float:
    protos = np.stack([xtr[ytr == c].mean(axis=0) >= 0.5 for c in range(int(ytr.max()) + 1)]).astype(np.float32)
    d = xte.astype(np.float32) @ (1 - 2 * protos).T + protos.sum(axis=1)  # Hamming distance
    return float((d.argmin(axis=1) == yte).mean())


def baselines(name: str) -> dict[str, float]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier

    ds = load_dataset(name)
    xtr, xte = ds.x_train / 255.0, ds.x_test / 255.0
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        out["lr"] = LogisticRegression(max_iter=2000).fit(xtr, ds.y_train).score(xte, ds.y_test)
        mlp = MLPClassifier(hidden_layer_sizes=(128,), max_iter=300, random_state=0)
        out["mlp"] = mlp.fit(xtr, ds.y_train).score(xte, ds.y_test)
    knn = KNeighborsClassifier(n_neighbors=1).fit(ds.x_train.astype(np.float32), ds.y_train)
    out["knn"] = knn.score(ds.x_test.astype(np.float32), ds.y_test)
    enc = parse_encoding(ds.default_encoding, ds.max_value).fit(ds.x_train, ds.y_train, ds.n_classes)
    out["template"] = bit_template(enc.bits(ds.x_train), ds.y_train, enc.bits(ds.x_test), ds.y_test)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", nargs="+", default=["motion", "shift1d", "tones", "table"])
    args = ap.parse_args(argv)
    print(HEADER)
    for name in args.dataset:
        t0 = time.perf_counter()
        ds = load_dataset(name)
        r = baselines(name)
        print(
            f"| {name} | {len(ds.y_train)} / {len(ds.y_test)} | {ds.n_features} | {ds.n_classes} | "
            f"{r['lr']:.1%} | {r['mlp']:.1%} | {r['knn']:.1%} | {r['template']:.1%} |"
            f"  <!-- {time.perf_counter() - t0:.0f} s -->",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
