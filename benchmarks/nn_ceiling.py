"""The ceiling of the rule's model family on a dataset: 1-nearest-neighbour by Hamming distance
over the encoded bits, with *every* training sample as a prototype (what the rule's
prototype layer would be with unlimited memory and no learning).

    .venv/bin/python benchmarks/nn_ceiling.py --dataset fashion [--encoding SPEC]

Prints one markdown line per dataset with the test accuracy and the bytes such a model needs.
Measured on the test split; ties go to the lowest training index (as kernels.argmax does).
"""

from __future__ import annotations

import argparse
import shlex
import sys

import numpy as np
from bitflip.data.encoding import parse_encoding
from bitflip.data.registry import load_dataset

CHUNK = 1000  # test samples per distance matrix: 1000 x 60000 float32 = 240 MB


def nearest_neighbour(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray) -> np.ndarray:
    """Labels of the Hamming-nearest training rows (bits as 0/1 arrays)."""
    a, b = xtr.astype(np.float32), xte.astype(np.float32)
    na, nb = a.sum(axis=1), b.sum(axis=1)
    out = []
    for i in range(0, len(b), CHUNK):
        # |a xor b| = |a| + |b| - 2 a.b, exact in float32 for < 2**24 bits
        d = nb[i : i + CHUNK, None] + na[None, :] - 2.0 * (b[i : i + CHUNK] @ a.T)
        out.append(ytr[np.argmin(d, axis=1)])
    return np.concatenate(out) if out else np.zeros(0, dtype=ytr.dtype)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--encoding", default=None, help="default: the dataset's default encoding")
    args = ap.parse_args(argv)
    ds = load_dataset(args.dataset)
    enc = parse_encoding(args.encoding or ds.default_encoding, ds.max_value).fit(ds.x_train, ds.y_train, ds.n_classes)
    xtr, xte = enc.bits(ds.x_train), enc.bits(ds.x_test)
    acc = float((nearest_neighbour(xtr, ds.y_train, xte) == ds.y_test).mean())
    nbytes = len(xtr) * ((xtr.shape[1] + 31) // 32) * 4
    cmd = " ".join(["python benchmarks/nn_ceiling.py"] + [shlex.quote(a) for a in (argv or sys.argv[1:])])
    print(
        f"| {ds.name} | {enc.spec} ({xtr.shape[1]} bits) | {len(xtr):,} prototypes = {nbytes:,} B of 1-bit rows | "
        f"{acc * 100:.2f} % | `{cmd}` |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
