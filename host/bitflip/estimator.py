"""`BitflipClassifier`: the learning rule as a scikit-learn estimator, on the host reference
(bit-identical to a board). Raw features go through the same steps as `bitflip train` and a
board: the scaling rule of user data (bitflip.data.scaling), an encoding to bits, then the
rule's network; `to_model_file()` hands the fitted model to a board (`bitflip push`).

    from bitflip import BitflipClassifier
    clf = BitflipClassifier(prototypes=8, epochs=10).fit(X, y)
    clf.predict(X_new); clf.decision_function(X_new); clf.score(X_test, y_test)
    clf.partial_fit(X_more, y_more)        # streaming: one pass over the batch, in order
    clf.to_model_file("model.bfm")         # then: bitflip push model.bfm --board pico

Deterministic: the same data, parameters and seed give the same bits (fit shuffles each
epoch with numpy's default_rng([seed, epoch]), as `bitflip train` does).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from . import __version__
from .data import scaling as scaling_mod
from .data.encoding import parse_encoding
from .training.hparams import rule_config
from .training.reference import Reference
from .use.modelfile import ModelFile


def default_encoding(n_features: int, max_value: int) -> str:
    """thermo:K with K levels so that a sample has at least ~64 bits (2..15 levels)."""
    k = min(max_value, max(2, math.ceil(64 / max(1, n_features))), 15)
    return f"threshold:{max_value}" if k <= 1 else f"thermo:{k}"


class BitflipClassifier(ClassifierMixin, BaseEstimator):
    """Binary/ternary network trained by the gradient-free bit-flip rule.

    Parameters
    ----------
    prototypes : int, prototypes per class in the competitive top layer (P).
    hidden : tuple of int, widths of hidden sign layers (pool rule), () for none.
    weights : "binary", "binary2" or "ternary" (the top layer's weights).
    encoding : bits from features, as `bitflip train --encoding` (None: thermo levels).
    epochs : passes over the training data in fit.
    seed : seed of every random bit and of the epoch shuffles.
    rule : dict of rule hyper-parameter overrides (`bitflip train --rule KEY=VALUE`).
    """

    def __init__(
        self,
        prototypes: int = 8,
        hidden: tuple[int, ...] = (),
        weights: str = "binary2",
        encoding: str | None = None,
        epochs: int = 10,
        seed: int = 0,
        rule: dict[str, Any] | None = None,
    ):
        self.prototypes = prototypes
        self.hidden = hidden
        self.weights = weights
        self.encoding = encoding
        self.epochs = epochs
        self.seed = seed
        self.rule = rule

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags

    # --- fitting ------------------------------------------------------------------------------
    def _setup(self, X: np.ndarray, classes: np.ndarray, y: np.ndarray) -> None:
        if len(classes) < 2:
            raise ValueError(f"BitflipClassifier needs at least 2 classes in the data (got {len(classes)} class)")
        if len(classes) > 255:
            raise ValueError("BitflipClassifier handles at most 255 classes")
        if self.weights not in ("binary", "binary2", "ternary"):
            raise ValueError(f"weights must be binary, binary2 or ternary (got {self.weights!r})")
        if int(self.prototypes) < 1 or int(self.epochs) < 1:
            raise ValueError("prototypes and epochs must be positive")
        self.classes_ = classes
        self.scaling_ = scaling_mod.fit(X, None, "X")
        x8 = self.scaling_.apply(X)
        self.max_value_ = max(1, int(x8.max()) if x8.size else 1)
        spec = self.encoding or default_encoding(X.shape[1], self.max_value_)
        self.encoding_ = parse_encoding(spec, self.max_value_)
        # mi:PCT keeps the bits most informative about y: chosen on these (the first) rows
        if self.encoding_.select:
            self.encoding_ = self.encoding_.fit(x8, self._labels(y), len(classes))
        n_bits = self.encoding_.n_bits(X.shape[1])
        sizes = [n_bits, *[int(h) for h in self.hidden], len(classes) * int(self.prototypes)]
        self.config_ = rule_config("", sizes, self.weights, int(self.seed), len(classes), dict(self.rule or {}), len(X))
        self.reference_ = Reference(self.config_)

    def _rows(self, X: np.ndarray) -> np.ndarray:
        return self.encoding_.pack(self.scaling_.apply(X))

    def _labels(self, y: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(self.classes_, y)
        idx = np.clip(idx, 0, len(self.classes_) - 1)
        if not np.all(self.classes_[idx] == y):
            bad = y[self.classes_[idx] != y][0]
            raise ValueError(f"y contains label {bad!r} that is not in classes {list(self.classes_)}")
        return idx

    def fit(self, X: Any, y: Any) -> BitflipClassifier:
        X, y = validate_data(self, X, y, dtype="numeric")
        check_classification_targets(y)
        self._setup(X, np.unique(y), y)
        rows, labels = self._rows(X), self._labels(y)
        ref = self.reference_
        for epoch in range(int(self.epochs)):
            for i in np.random.default_rng([int(self.seed), epoch]).permutation(len(rows)):
                ref.train_sample(rows[i], int(labels[i]))
        return self

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> BitflipClassifier:
        """One pass over (X, y) in order. The first call needs `classes` (all of them) and
        fixes the feature scaling from its X."""
        first = not hasattr(self, "reference_")
        X, y = validate_data(self, X, y, dtype="numeric", reset=first)
        check_classification_targets(y)
        if first:
            if classes is None:
                raise ValueError("the first partial_fit call needs classes=[every class]")
            self._setup(X, np.unique(np.asarray(classes)), y)
        elif classes is not None and not np.array_equal(np.unique(np.asarray(classes)), self.classes_):
            raise ValueError(f"classes {list(classes)} differ from the first call's {list(self.classes_)}")
        rows, labels = self._rows(X), self._labels(y)
        for i in range(len(rows)):
            self.reference_.train_sample(rows[i], int(labels[i]))
        return self

    # --- using it -------------------------------------------------------------------------------
    def _scores(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "reference_")
        X = validate_data(self, X, dtype="numeric", reset=False)
        pre = self.reference_.scores(self._rows(X))
        P = self.config_["sizes"][-1] // len(self.classes_)
        return pre.reshape(len(pre), len(self.classes_), P).max(axis=2)

    def decision_function(self, X: Any) -> np.ndarray:
        """Per-class margins (N, classes): the largest pre-activation (agreements minus
        disagreements) of each class's prototypes; for two classes, class 1's minus class 0's."""
        s = self._scores(X)
        return (s[:, 1] - s[:, 0]).astype(np.float64) if len(self.classes_) == 2 else s.astype(np.float64)

    def predict(self, X: Any) -> np.ndarray:
        best = self._scores(X).argmax(axis=1)  # first class on ties, like the board
        return self.classes_[best]

    def to_model_file(self, path: str | Path | None = None) -> ModelFile:
        """The fitted model as a ModelFile (written to path if given) for a board."""
        check_is_fitted(self, "reference_")
        mf = ModelFile(
            cfg=self.config_,
            planes=[],
            encoding=self.encoding_,
            n_features=int(self.n_features_in_),
            max_value=self.max_value_,
            scaling=self.scaling_,
            labels=[str(c) for c in self.classes_],
            meta={
                "job": f"sklearn-{self.seed}",
                "encoding": self.encoding_.spec,
                "writer": f"bitflip {__version__} BitflipClassifier",
            },
        )
        mf.take(self.reference_)
        if path is not None:
            mf.write(path)
        return mf
