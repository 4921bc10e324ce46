"""Gradient baselines for `bitflip compare`, in plain numpy (no framework needed by `make test`).

Every baseline sees the same encoded input bits as the learning rule, as +-1 values (the rule's
kernels read a set bit as +1 and a clear bit as -1), and the same hidden widths. Methods:

- ``mlp-sgd`` / ``mlp-adam``: float MLP, ReLU hidden units, softmax cross-entropy, mini-batch
  SGD with momentum 0.9, or Adam.
- ``ste``: binary MLP with a straight-through estimator: latent float weights in [-1, 1], the
  forward pass uses sign(W) and sign activations, gradients pass through sign() unchanged for the
  weights and inside |a| <= 1 for the activations (hardtanh STE); Adam on the latent weights.
  Pre-activations are scaled by 1/sqrt(fan_in) (4/sqrt(fan_in) for the output) so that the STE
  window and the softmax see values of order one; each neuron has a float bias (the analogue of
  an integer threshold on the device).
- ``logreg``: logistic regression on the bits (no hidden layer), Adam.

The rule's output layer holds P prototypes per class; the baselines use a plain C-way output
(their softmax already gives one score per class).

Honesty rules, enforced here and reported in every result: the learning rate is picked from a
small sweep (three rates a factor ~3 apart, extended by up to two more steps while the best one
sits at an end of the grid) by accuracy on a validation slice carved from the TRAINING split
(never the test split); the chosen rate is then retrained on the whole training split for the same number of
epochs as the rule, with a cosine decay over those epochs; everything is seeded.

Counting (training only, the final run; the sweep costs 3-5 more runs on 90 % of the samples):
- param_updates: weight values written. An optimizer step writes every parameter (weights and
  biases; for ``ste`` the latent floats), so param_updates == steps * n_params exactly.
- ops: per training sample, ``mac`` counts float multiply-accumulates: the forward pass (one per
  weight), the weight gradient (one per weight) and the input gradient of every layer but the
  first. For ``ste`` the forward pass is binary: ``xnor_words`` counts 32-bit XNOR-popcount words
  (n_out * ceil(n_in / 32) per layer), and only the backward pass counts MACs. Optimizer
  arithmetic is not counted as MACs; it is proportional to param_updates.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Progress = Callable[[int], None]
FloatArray = np.ndarray


@dataclass(frozen=True)
class Method:
    name: str
    hidden: tuple[int, ...]
    binary: bool  # sign() weights and activations, trained with a straight-through estimator
    optimizer: str  # "sgd" (momentum 0.9) or "adam"
    lrs: tuple[float, ...]  # the sweep
    title: str = ""
    pool: int = 1  # units per class in the top layer; the class score is their max (the rule's shape)


# Sweeps: three rates a factor ~3 apart around the usual defaults of each optimizer.
SGD_LRS = (0.01, 0.03, 0.1)
ADAM_LRS = (1e-3, 3e-3, 1e-2)
STE_LRS = (3e-3, 1e-2, 3e-2)  # latent weights live in [-1, 1]: larger steps are needed to flip signs


def methods(hidden: tuple[int, ...], matched: int = 0, pool: int = 1) -> list[Method]:
    """The baselines for a rule model with these hidden widths. Without hidden layers a float
    MLP trained with Adam *is* the logistic regression, so it is listed once, as ``logreg``.
    matched > 0 adds an SGD float MLP and an STE binary MLP with one hidden layer of that width
    (chosen by the caller so that their weight count matches the rule's). pool > 1 (the rule's
    prototypes per class, with matched) adds both nets of the rule's own shape: `pool` top units
    per class whose max is the class score, as many weights as the rule, layer for layer."""
    out = [Method("mlp-sgd", hidden, False, "sgd", SGD_LRS, "float MLP, SGD+momentum")]
    if hidden:
        out.append(Method("mlp-adam", hidden, False, "adam", ADAM_LRS, "float MLP, Adam"))
    out.append(Method("ste", hidden, True, "adam", STE_LRS, "binary MLP, straight-through estimator, Adam"))
    out.append(Method("logreg", (), False, "adam", ADAM_LRS, "logistic regression on the bits, Adam"))
    if matched:
        out.append(
            Method(
                "mlp-sgd-matched",
                (matched,),
                False,
                "sgd",
                SGD_LRS,
                "float MLP, SGD+momentum, as many weights as the rule",
            )
        )
        out.append(
            Method("ste-matched", (matched,), True, "adam", STE_LRS, "STE binary MLP, as many weights as the rule")
        )
    if matched and pool > 1:
        out.append(
            Method("mlp-sgd-shape", hidden, False, "sgd", SGD_LRS, "float net of the rule's shape, SGD+momentum", pool)
        )
        out.append(Method("ste-shape", hidden, True, "adam", STE_LRS, "STE binary net of the rule's shape, Adam", pool))
    return out


def matched_width(n_weights: int, n_in: int, n_classes: int) -> int:
    """Hidden width H of an n_in-H-n_classes MLP with about n_weights weights."""
    return max(1, round(n_weights / (n_in + n_classes)))


@dataclass
class Config:
    epochs: int
    seed: int = 0
    batch: int = 32
    val_fraction: float = 0.1  # of the training split, for the learning-rate choice only
    max_extend: int = 2  # extra sweep points when the best rate sits at an end of the grid


@dataclass
class Result:
    method: str
    title: str
    sizes: list[int]
    lr: float
    val_accuracy: dict[float, float]  # the sweep: lr -> accuracy on the validation slice
    lr_at_edge: bool  # still the smallest or largest rate tried after extending: a wider sweep might help
    test_accuracy: float
    train_accuracy: float
    steps: int
    n_params: int
    param_updates: int
    ops: dict[str, int]
    weight_bits: int  # bits per weight of the trained (deployed) model
    model_bytes: int  # deployed weights (+ 4-byte biases)
    train_state_bytes: int  # what training keeps per parameter (weights, latent copies, optimizer moments)
    epochs: int
    batch: int
    wall_s: float = 0.0


def sign(a: FloatArray) -> FloatArray:
    """+-1 with sign(0) = +1, the device's convention (a bit is set when the sum is >= 0)."""
    return np.where(a >= 0, 1.0, -1.0).astype(np.float32)


class MLP:
    """A small MLP with explicit forward/backward, float or binary (STE). With pool > 1 the top
    layer has `pool` units per class (sizes[-1] = classes * pool) and a class's logit is the
    max of its units: the shape of the rule's prototype layer."""

    def __init__(self, sizes: list[int], binary: bool, rng: np.random.Generator, pool: int = 1):
        if sizes[-1] % pool:
            raise ValueError(f"top width {sizes[-1]} is not a multiple of pool {pool}")
        self.sizes = sizes
        self.binary = binary
        self.pool = pool
        self.W: list[FloatArray] = []
        self.b: list[FloatArray] = []
        for n_in, n_out in itertools.pairwise(sizes):
            if binary:
                w = rng.uniform(-1, 1, size=(n_out, n_in))
            else:
                w = rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_out, n_in))  # He init for ReLU
            self.W.append(w.astype(np.float32))
            self.b.append(np.zeros(n_out, dtype=np.float32))

    @property
    def params(self) -> list[FloatArray]:
        return self.W + self.b

    @property
    def n_params(self) -> int:
        return sum(p.size for p in self.params)

    def _scale(self, li: int) -> float:
        if not self.binary:
            return 1.0
        s = 1.0 / np.sqrt(self.sizes[li])
        return 4.0 * s if li == len(self.W) - 1 else s

    def _weight(self, li: int) -> FloatArray:
        return sign(self.W[li]) if self.binary else self.W[li]

    def forward(self, x: FloatArray) -> tuple[FloatArray, list[FloatArray], list[FloatArray]]:
        """Logits, the input of every layer, and every hidden pre-activation."""
        inputs, pres = [x], []
        top = len(self.W) - 1
        for li in range(top):
            a = (inputs[-1] @ self._weight(li).T) * self._scale(li) + self.b[li]
            pres.append(a)
            inputs.append(sign(a) if self.binary else np.maximum(a, 0.0))
        logits = (inputs[-1] @ self._weight(top).T) * self._scale(top) + self.b[top]
        if self.pool > 1:
            pres.append(logits)  # the top units, for the max's gradient
            logits = logits.reshape(len(x), -1, self.pool).max(axis=2)
        return logits, inputs, pres

    def loss_grads(self, x: FloatArray, y: np.ndarray) -> tuple[float, list[FloatArray]]:
        """Mean softmax cross-entropy and its gradient for every parameter (W..., b...)."""
        logits, inputs, pres = self.forward(x)
        z = logits - logits.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        n = len(y)
        loss = float(-logp[np.arange(n), y].mean())
        d = np.exp(logp)
        d[np.arange(n), y] -= 1.0
        d /= n  # dL/dlogits
        if self.pool > 1:  # the max passes the gradient to its arg-max unit only
            top = pres.pop().reshape(n, -1, self.pool)
            arg = top.argmax(axis=2)
            dt = np.zeros_like(top)
            np.put_along_axis(dt, arg[:, :, None], d[:, :, None], axis=2)
            d = dt.reshape(n, -1)
        gW: list[FloatArray] = [np.empty(0)] * len(self.W)
        gb: list[FloatArray] = [np.empty(0)] * len(self.W)
        for li in range(len(self.W) - 1, -1, -1):
            gb[li] = d.sum(axis=0)
            da = d * self._scale(li)
            gW[li] = da.T @ inputs[li]  # STE: d sign(W)/dW taken as 1
            if li:
                dh = da @ self._weight(li)
                a = pres[li - 1]
                d = dh * (np.abs(a) <= 1.0) if self.binary else dh * (a > 0)
        return loss, gW + gb

    def predict(self, x: FloatArray, chunk: int = 4096) -> np.ndarray:
        return np.concatenate([self.forward(x[i : i + chunk])[0].argmax(axis=1) for i in range(0, len(x), chunk)])

    def ops_per_sample(self) -> dict[str, int]:
        fan = [n_in * n_out for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:])]
        backward = sum(fan) + sum(fan[1:])  # weight gradients + input gradients above layer 0
        if self.binary:
            words = sum(n_out * ((n_in + 31) // 32) for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:]))
            return {"xnor_words": words, "mac": backward}
        return {"mac": sum(fan) + backward}


OPTIMIZER_STATE_FLOATS = {"sgd": 1, "adam": 2}  # per parameter: momentum, or both moments


class Optimizer:
    """SGD with momentum 0.9, or Adam (0.9, 0.999, 1e-8); updates the parameters in place."""

    def __init__(self, kind: str, params: list[FloatArray]):
        if kind not in ("sgd", "adam"):
            raise ValueError(f"unknown optimizer {kind}")
        self.kind = kind
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params] if kind == "adam" else []
        self.t = 0

    def step(self, params: list[FloatArray], grads: list[FloatArray], lr: float) -> None:
        self.t += 1
        if self.kind == "sgd":
            for p, g, m in zip(params, grads, self.m):
                m *= 0.9
                m += g
                p -= lr * m
            return
        b1, b2 = 0.9, 0.999
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        for p, g, m, v in zip(params, grads, self.m, self.v):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= (lr / c1) * m / (np.sqrt(v / c2) + 1e-8)


def to_pm1(bits: np.ndarray) -> FloatArray:
    """Encoded bits (bool/0-1) -> the +-1 float values the rule's kernels see."""
    return np.asarray(bits, dtype=np.float32) * 2.0 - 1.0


def fit(
    method: Method,
    sizes: list[int],
    x: FloatArray,
    y: np.ndarray,
    lr: float,
    cfg: Config,
    progress: Progress | None = None,
) -> tuple[MLP, int]:
    """Train one model for cfg.epochs; returns it and the number of optimizer steps."""
    rng = np.random.default_rng([cfg.seed, 1])
    model = MLP(sizes, method.binary, rng, method.pool)
    opt = Optimizer(method.optimizer, model.params)
    steps_per_epoch = -(-len(x) // cfg.batch)
    total = cfg.epochs * steps_per_epoch
    steps = 0
    for _ in range(cfg.epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), cfg.batch):
            idx = order[i : i + cfg.batch]
            _, grads = model.loss_grads(x[idx], y[idx])
            # cosine decay over the whole budget: the same schedule for every method and rate
            opt.step(model.params, grads, lr * 0.5 * (1 + np.cos(np.pi * steps / total)))
            steps += 1
            if method.binary:
                for w in model.W:  # latent weights beyond +-1 could never flip back in time
                    np.clip(w, -1.0, 1.0, out=w)
        if progress:
            progress(len(x))
    return model, steps


def split_validation(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (fit, validation) of a seeded random slice of the training split."""
    order = np.random.default_rng([seed, 2]).permutation(n)
    n_val = max(1, round(n * fraction))
    return order[n_val:], order[:n_val]


def run(
    method: Method,
    n_in: int,
    n_classes: int,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    cfg: Config,
    progress: Progress | None = None,
) -> Result:
    """Sweep the learning rate on a validation slice of the training split, then retrain with
    the best rate on the whole training split and measure on the test split."""
    t0 = time.monotonic()
    sizes = [n_in, *method.hidden, n_classes * method.pool]
    xtr, xte = to_pm1(x_train), to_pm1(x_test)
    y_train, y_test = np.asarray(y_train, dtype=np.int64), np.asarray(y_test, dtype=np.int64)
    fit_idx, val_idx = split_validation(len(xtr), cfg.val_fraction, cfg.seed)
    val: dict[float, float] = {}

    def best_rate() -> float:
        return max(val, key=lambda lr: (val[lr], -lr))  # ties: the smaller rate

    todo = list(method.lrs)
    ratio = method.lrs[1] / method.lrs[0] if len(method.lrs) > 1 else 3.0
    extended = 0
    while todo:
        lr = todo.pop(0)
        m, _ = fit(method, sizes, xtr[fit_idx], y_train[fit_idx], lr, cfg, progress)
        val[lr] = float((m.predict(xtr[val_idx]) == y_train[val_idx]).mean())
        if not todo and extended < cfg.max_extend:
            # the best rate is at an end of the grid: one more step in that direction
            lo, hi, b = min(val), max(val), best_rate()
            # only a strict winner at an end says "go further"; a tie carries no signal
            strict = all(val[b] > acc for lr, acc in val.items() if lr != b)
            if b in (lo, hi) and len(val) > 1 and strict:
                todo.append(float(f"{(b / ratio if b == lo else b * ratio):.3g}"))
                extended += 1
    best = best_rate()
    model, steps = fit(method, sizes, xtr, y_train, best, cfg, progress)
    per_sample = model.ops_per_sample()
    samples = cfg.epochs * len(xtr)
    n_w = sum(w.size for w in model.W)
    n_b = sum(b.size for b in model.b)
    bits = 1 if method.binary else 32
    return Result(
        method=method.name,
        title=method.title,
        sizes=sizes,
        lr=best,
        val_accuracy=val,
        lr_at_edge=best in (min(val), max(val)),
        test_accuracy=float((model.predict(xte) == y_test).mean()),
        train_accuracy=float((model.predict(xtr) == y_train).mean()),
        steps=steps,
        n_params=model.n_params,
        param_updates=steps * model.n_params,
        ops={k: v * samples for k, v in per_sample.items()},
        weight_bits=bits,
        model_bytes=(n_w * bits + 7) // 8 + 4 * n_b,
        # the (latent) float value of every parameter plus the optimizer's per-parameter state
        train_state_bytes=4 * (1 + OPTIMIZER_STATE_FLOATS[method.optimizer]) * model.n_params,
        epochs=cfg.epochs,
        batch=cfg.batch,
        wall_s=round(time.monotonic() - t0, 3),
    )


def work(method: Method, n_train: int, cfg: Config) -> int:
    """Training samples `run` will process at most (for a progress bar)."""
    n_fit = n_train - len(split_validation(n_train, cfg.val_fraction, cfg.seed)[1])
    return cfg.epochs * ((len(method.lrs) + cfg.max_extend) * n_fit + n_train)
