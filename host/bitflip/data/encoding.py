"""Feature -> bit encodings. 'thermo:t1,t2,...' sets bit (level l, feature i) when
x_i >= t_l (level-major layout); 'thermo:K' spaces K thresholds evenly over the value
range; 'threshold:T' is thermo with one level."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UsageError
from ..reference import pack_bits


@dataclass(frozen=True)
class Encoding:
    spec: str
    thresholds: tuple[int, ...]

    def bits(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate([x >= t for t in self.thresholds], axis=1)

    def n_bits(self, n_features: int) -> int:
        return n_features * len(self.thresholds)

    def pack(self, x: np.ndarray) -> np.ndarray:
        """(N, F) uint8 -> (N, words) uint32 rows for the wire and the kernels."""
        return pack_bits(self.bits(x))


def parse_encoding(spec: str, max_value: int) -> Encoding:
    kind, _, arg = spec.partition(":")
    try:
        if kind == "threshold":
            ts: tuple[int, ...] = (int(arg),)
        elif kind == "thermo" and "," in arg:
            ts = tuple(int(a) for a in arg.split(","))
        elif kind == "thermo":
            k = int(arg)
            if k < 1:
                raise ValueError
            ts = tuple(round((i + 1) * (max_value + 1) / (k + 1)) for i in range(k))
        else:
            raise ValueError
    except ValueError:
        raise UsageError(f"bad encoding '{spec}' (use thermo:K, thermo:t1,t2,... or threshold:T)") from None
    if not all(0 < t <= max_value for t in ts) or list(ts) != sorted(set(ts)):
        raise UsageError(f"bad encoding '{spec}': thresholds must rise within 1..{max_value}")
    return Encoding(spec, ts)
