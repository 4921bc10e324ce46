"""How raw feature values become whole numbers 0..255 (the rule in dataset.py's docstring),
as an object a model keeps: the training data fixes it, the model file stores it, and new
data (on the host, or on a board: firmware/bitflip/encode.py) goes through the same steps.

  none    whole numbers within 0..255, used unchanged (clipped to 0..255 for new data);
  unit    floats in [0, 1] (normalised images): floor(255*x + 0.5);
  minmax  per feature: floor(255*(x - low)/span + 0.5) clipped to 0..255, low/span the
          training split's min and max - min; a constant feature (span 0) becomes 0.
For integers (and integer low/span) the minmax formula equals the exact integer
floor((510*(x - low) + span) / (2*span)) the board computes: the float quotient is exact at
every tie, so both round the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UsageError

INT_SPAN_MAX = 1 << 21  # the board's integer minmax keeps 510*span below 2**30


@dataclass(frozen=True)
class Scaling:
    kind: str  # "none", "unit" or "minmax"
    low: np.ndarray | None = None  # minmax: float64 per feature
    span: np.ndarray | None = None
    integer_data: bool = False  # minmax: the training values were whole numbers (the board takes ints)

    @property
    def note(self) -> str:
        """What Dataset.source says about it."""
        if self.kind == "unit":
            return "; float features in [0,1] scaled to 0..255 as floor(255*x+0.5)"
        if self.kind == "minmax":
            return "; features min-max scaled per feature to 0..255 with the training split's range"
        return ""

    def apply(self, x: np.ndarray) -> np.ndarray:
        """(N, F) raw values -> (N, F) uint8."""
        x = np.asarray(x)
        if self.kind == "none":
            if x.dtype == np.uint8:
                return x
            return np.clip(x, 0, 255).astype(np.uint8)
        if self.kind == "unit":
            return np.clip(np.floor(x.astype(np.float64) * 255 + 0.5), 0, 255).astype(np.uint8)
        assert self.low is not None and self.span is not None
        lo, span = self.low, self.span
        with np.errstate(over="ignore", invalid="ignore"):
            # divide, not multiply by 255/span: a subnormal span would make that factor infinite
            r = np.divide(x.astype(np.float64) - lo, span, out=np.zeros(x.shape), where=span > 0)
            return np.clip(np.floor(r * 255 + 0.5), 0, 255).astype(np.uint8)

    def integer(self) -> bool:
        """True when the board can apply it with exact integer arithmetic."""
        if self.kind != "minmax":
            return self.kind == "none"
        assert self.low is not None and self.span is not None
        lo, span = self.low, self.span
        return bool(
            self.integer_data
            and np.all(lo == np.floor(lo))
            and np.all(span == np.floor(span))
            and np.all(np.abs(lo) < 2**31)
            and np.all(span < INT_SPAN_MAX)
        )


NONE = Scaling("none")


def _whole_bytes(x: np.ndarray) -> bool:
    if x.dtype == np.uint8 or x.dtype == np.bool_:
        return True
    if x.size and (x.min() < 0 or x.max() > 255):
        return False
    return x.dtype.kind != "f" or bool((x == np.floor(x)).all())


def fit(xtr: np.ndarray, xte: np.ndarray | None, where: str) -> Scaling:
    """The scaling the registry's rule picks for a training split (and its test split)."""
    xs = [xtr] if xte is None else [xtr, xte]
    if all(_whole_bytes(x) for x in xs):
        return NONE
    if all(x.dtype.kind == "f" for x in xs) and 0 <= min(x.min() for x in xs) and max(x.max() for x in xs) <= 1:
        return Scaling("unit")
    lo = xtr.min(axis=0).astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is detected below, not warned about
        span = xtr.max(axis=0).astype(np.float64) - lo
        ok = np.isfinite(span).all() and all(np.isfinite(x.astype(np.float64) - lo).all() for x in xs)
    if not ok:
        raise UsageError(f"{where}: feature values too large to scale to 0..255 (differences beyond 1e308)")
    whole = all(x.dtype.kind in "biu" or bool((x == np.floor(x)).all()) for x in xs)
    return Scaling("minmax", lo, span, whole)
