"""Scratch probes of what limits the prototype layer (issue 13), validation only.

    .venv/bin/python benchmarks/research/capacity_probes.py augment --dataset digits [--model M --encoding E --weights W]
    .venv/bin/python benchmarks/research/capacity_probes.py edges --dataset mnist --train 54000 --val 6000 --epochs 6 \
        --variants raw,edges:32:2,edges:48:2
    .venv/bin/python benchmarks/research/capacity_probes.py topk --dataset mnist --limit 20000 --epochs 3
    .venv/bin/python benchmarks/research/capacity_probes.py fill --dataset digits
    .venv/bin/python benchmarks/research/capacity_probes.py nn --dataset digits

Host reference only (bitflip.training.reference, bit-exact with the board for the unmodified
rule; the probes that change the rule subclass it here and have no device twin). The test
split is never loaded into a computation: every figure is on validation rows carved from the
training data (the plan's split, K-fold CV of the training rows, or a seeded hold-out).
Results and their reading: docs/research/capacity.md.

- augment: train on shifted copies of the training images (+-1 pixel, 4 or 8 directions).
- edges:   fixed gradient-sign bits (4 directions, OR-pooled) instead of / next to the pixel
           bits, at the default model's weight bytes; with a 1-NN probe of the representation.
- topk:    class score = sum of the k best prototypes of a class (k = 1 is the rule) or a
           soft-max sum, on the trained model; and the training accuracy (capacity check).
- fill:    fill the data-initialised prototypes only with samples the model gets wrong
           (condensed nearest neighbour) instead of the first P of each class.
- nn:      1-NN over every training row by 5-fold CV, next to the rule's per-epoch CV.
- bias:    a learned integer bias per prototype (+-step on the error pair, clipped to +-bmax)
           added to the top layer's scores; --variants step,bmax;... (0,0 is the rule).
- ensemble: independent prototype layers on other encodings (--variants model@encoding;...),
           class scores (best prototype / input bits) summed with weights 0.5, 1 and 2.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from bitflip.bitplanes import pack_bits
from bitflip.data import images, load_dataset
from bitflip.data.dataset import stratified_folds
from bitflip.data.encoding import parse_encoding
from bitflip.training.hparams import rule_config
from bitflip.training.plan import Plan, TrainRequest, prepare
from bitflip.training.reference import Reference, step_key

MODEL: dict[str, str | None] = {}  # --model / --encoding / --weights (default: the dataset's defaults)


def _plan(ds: str, folds: int, limit: int | None = None) -> Plan:
    return prepare(TrainRequest(board="host", dataset=ds, val=0.0 if folds else None, limit=limit, **MODEL))


def _splits(p: Plan, folds: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(train rows, train labels, validation rows, validation labels) of every fold, packed."""
    if not folds:
        return [(p.x_train, p.y_train, p.x_val, p.y_val)]
    return [
        (p.x_train[tr], p.y_train[tr], p.x_train[va], p.y_train[va]) for tr, va in stratified_folds(p.y_train, 1, folds)
    ]


def _curve(
    ref: Reference, xs: list[np.ndarray], y: np.ndarray, xv: np.ndarray, yv: np.ndarray, epochs: int
) -> list[float]:
    """Validation accuracy after every epoch; xs: copies of the training rows (one is drawn
    per sample and epoch; a single copy is plain training)."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(epochs):
        pick = rng.integers(0, len(xs), len(y))
        for j in rng.permutation(len(y)):
            ref.train_sample(xs[pick[j]][j], int(y[j]))
        out.append(100 * float((ref.predict(xv) == yv).mean()))
    return out


def _report(name: str, curves: list[list[float]]) -> None:
    c = np.array(curves)
    print(f"{name}: per epoch {np.round(c.mean(0), 2).tolist()}, best-epoch mean {c.max(1).mean():.2f}", flush=True)


def _shift(x: np.ndarray, side: int, dy: int, dx: int) -> np.ndarray:
    img = x.reshape(-1, side, side)
    s = np.zeros_like(img)
    s[:, max(dy, 0) : side + min(dy, 0), max(dx, 0) : side + min(dx, 0)] = img[
        :, max(-dy, 0) : side + min(-dy, 0), max(-dx, 0) : side + min(-dx, 0)
    ]
    return s.reshape(len(x), -1)


def augment(a: argparse.Namespace) -> None:
    p = _plan(a.dataset, a.folds)
    side = images.side_of(p.data.n_features)
    assert side is not None, "augment needs square images"
    four = [(0, 1), (0, -1), (1, 0), (-1, 0)]
    raw = p.data.x_train[p.train_index]
    for name, offs in [
        ("no copies", []),
        ("+4 shifted copies", four),
        ("+8 shifted copies", four + [(1, 1), (1, -1), (-1, 1), (-1, -1)]),
    ]:
        copies = [p.enc.pack(raw)] + [p.enc.pack(_shift(raw, side, dy, dx)) for dy, dx in offs]
        curves = []
        for tr, va in stratified_folds(p.y_train, 1, a.folds) if a.folds else [(np.arange(len(p.y_train)), None)]:
            xv, yv = (copies[0][va], p.y_train[va]) if va is not None else (p.x_val, p.y_val)
            curves.append(_curve(Reference(p.cfg), [c[tr] for c in copies], p.y_train[tr], xv, yv, a.epochs))
        _report(f"{a.dataset} {p.model} {p.enc.spec} {name}", curves)


def _edge_bits(im: np.ndarray, t: int, pool: int) -> np.ndarray:
    """Signs of horizontal and vertical central differences beyond +-t, OR over pool x pool."""
    gx, gy = np.zeros_like(im), np.zeros_like(im)
    gx[:, :, 1:-1] = im[:, :, 2:] - im[:, :, :-2]
    gy[:, 1:-1, :] = im[:, 2:, :] - im[:, :-2, :]
    n, s, _ = im.shape
    k = s // pool
    maps = [gx > t, gx < -t, gy > t, gy < -t]
    return np.concatenate(
        [m[:, : k * pool, : k * pool].reshape(n, k, pool, k, pool).any(axis=(2, 4)).reshape(n, -1) for m in maps], 1
    )


def edges(a: argparse.Namespace) -> None:
    data = load_dataset(a.dataset)
    idx = np.random.default_rng(0).permutation(len(data.y_train))  # a seeded hold-out of the training rows
    tr, va = idx[: a.train], idx[a.train : a.train + a.val]
    enc = parse_encoding(data.default_encoding, data.max_value, data.n_features)
    level = enc.thresholds[0]
    default = rule_config(a.dataset, [enc.n_bits(data.n_features), 10 * a.prototypes], "binary2", 0, 10, {}, a.train)
    budget = Reference(default).weight_bytes()

    def feats(x: np.ndarray, v: str) -> np.ndarray:
        im = enc.image(x)
        s = images.side_of(im.shape[1]) or 0
        im = im.reshape(len(x), s, s).astype(np.int32)
        raw = (im >= level).reshape(len(x), -1)
        if v == "raw":
            return raw
        kind, t, pool = v.split(":")
        e = _edge_bits(im, int(t), int(pool))
        return e if kind == "edges" else np.concatenate([raw, e], 1)

    for v in a.variants.split(","):
        t0 = time.time()
        ftr, fva = feats(data.x_train[tr], v), feats(data.x_train[va], v)
        n_in = ftr.shape[1]
        P = budget // (10 * ((n_in + 31) // 32) * 4 * 2)  # binary2: two planes of u32 words
        a32, b32 = ftr[:10000].astype(np.float32), fva[:2000].astype(np.float32)
        d = a32.sum(1)[None, :] + b32.sum(1)[:, None] - 2 * b32 @ a32.T  # Hamming distances
        probe = 100 * float((data.y_train[tr][:10000][d.argmin(1)] == data.y_train[va][:2000]).mean())
        ref = Reference(rule_config(a.dataset, [n_in, 10 * P], "binary2", 0, 10, {}, a.train))
        c = _curve(ref, [pack_bits(ftr)], data.y_train[tr], pack_bits(fva), data.y_train[va], a.epochs)
        print(
            f"{a.dataset} {v}: {n_in} bits, 10x{P}, {ref.weight_bytes():,} B, 1-NN probe (10k rows) {probe:.2f}, "
            f"val per epoch {np.round(c, 2).tolist()}, best {max(c):.2f} ({time.time() - t0:.0f} s)",
            flush=True,
        )


def topk(a: argparse.Namespace) -> None:
    p = _plan(a.dataset, 0, a.limit)
    ref = Reference(p.cfg)
    for e in range(a.epochs):
        for j in p.order(e):
            ref.train_sample(p.x_train[j], int(p.y_train[j]))
        sc = ref.scores(p.x_val).reshape(len(p.x_val), p.data.n_classes, ref.P)
        s = np.sort(sc, axis=2)[:, :, ::-1].astype(float)
        got = [f"top{k} {100 * float((s[:, :, :k].sum(2).argmax(1) == p.y_val).mean()):.2f}" for k in (1, 2, 3, 5)]
        for tau in (4, 8):
            soft = np.exp((s - s.max(axis=(1, 2), keepdims=True)) / tau).sum(2)
            got.append(f"soft{tau} {100 * float((soft.argmax(1) == p.y_val).mean()):.2f}")
        train = 100 * float((ref.predict(p.x_train[:5000]) == p.y_train[:5000]).mean())
        print(f"{a.dataset} {p.model} epoch {e + 1}: val {', '.join(got)}; train (5,000 rows) {train:.2f}", flush=True)


class FillOnError(Reference):
    """The rule, except that a class's unfilled prototypes take only samples the model gets
    wrong until epoch `grace`, after which any sample fills them; `learn`: a correct
    sample of a class still filling also trains (otherwise it is skipped)."""

    grace, learn, per_epoch = 1, False, 1

    def _forward(self, x: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        self._last = super()._forward(x)  # what train_sample saw: the fill decision needs it
        return self._last

    def _fill(self, label: int, bits: np.ndarray) -> None:
        pres, outs = self._last
        winner = int(np.argmax(pres[-1]))
        if winner // self.P != label or (self.step - 1) // self.per_epoch >= self.grace:
            super()._fill(label, bits)
        elif self.learn:  # the step counter has moved on: this sample's key is the one before
            self._learn(label, winner, pres, outs, step_key(self.seed, self.step - 1))


def fill(a: argparse.Namespace) -> None:
    p = _plan(a.dataset, a.folds)
    for name, grace, learn in [
        ("rule", 0, False),
        ("on error, 1 epoch", 1, False),
        ("on error + learn, 1 epoch", 1, True),
        ("on error, 2 epochs", 2, False),
        ("on error + learn, 3 epochs", 3, True),
    ]:
        curves = []
        for xt, yt, xv, yv in _splits(p, a.folds):
            ref = Reference(p.cfg) if not grace else FillOnError(p.cfg)
            if isinstance(ref, FillOnError):
                ref.grace, ref.learn, ref.per_epoch = grace, learn, len(yt)
            curves.append(_curve(ref, [xt], yt, xv, yv, a.epochs))
        _report(f"{a.dataset} {p.model} {p.enc.spec} fill {name}", curves)


def nn(a: argparse.Namespace) -> None:
    p = _plan(a.dataset, a.folds or 5)
    accs, curves = [], []
    for xt, yt, xv, yv in _splits(p, a.folds or 5):
        bt = np.unpackbits(xt.view(np.uint8), axis=1, bitorder="little").astype(np.float32)
        bv = np.unpackbits(xv.view(np.uint8), axis=1, bitorder="little").astype(np.float32)
        d = bt.sum(1)[None] + bv.sum(1)[:, None] - 2 * bv @ bt.T
        accs.append(100 * float((yt[d.argmin(1)] == yv).mean()))
        curves.append(_curve(Reference(p.cfg), [xt], yt, xv, yv, a.epochs))
    print(
        f"{a.dataset} {p.enc.spec}: 1-NN over every training row, CV mean {np.mean(accs):.2f} (folds {np.round(accs, 2).tolist()})"
    )
    _report(f"{a.dataset} {p.model} {p.enc.spec} rule", curves)


class _Biased(Reference):
    """The rule plus an integer bias per top-layer prototype, moved by the error pair's updates."""

    def __init__(self, cfg: dict, step: int, bmax: int):
        super().__init__(cfg)
        self.b = np.zeros(self.layers[-1].n_out, dtype=np.int64)
        self.bstep, self.bmax = step, bmax

    def _pre(self, li: int, x: np.ndarray) -> np.ndarray:
        pre = super()._pre(li, x)
        return pre + self.b if li == len(self.layers) - 1 else pre

    def update(self, li: int, rows: np.ndarray, up: np.ndarray, x: np.ndarray, base: np.uint32, k: int) -> None:
        super().update(li, rows, up, x, base, k)
        if li == len(self.layers) - 1 and self.bstep and len(rows) == 2 and not up[0]:  # an error
            for r, u in zip(rows, up):
                self.b[r] = np.clip(self.b[r] + (self.bstep if u else -self.bstep), -self.bmax, self.bmax)


def _epochs(ref: Reference, p: Plan, epochs: int, score: bool = False) -> tuple[list[float], np.ndarray | None]:
    """Train on the plan's order; validation accuracy per epoch (and the best epoch's class
    scores: each class's best prototype over the input bits)."""
    curve: list[float] = []
    best = None
    for e in range(epochs):
        for j in p.order(e):
            ref.train_sample(p.x_train[j], int(p.y_train[j]))
        s = ref.scores(p.x_val)
        cls = s.reshape(len(s), p.data.n_classes, -1).max(axis=2) / p.sizes[0]
        curve.append(round(100 * float((cls.argmax(1) == p.y_val).mean()), 2))
        if score and curve[-1] == max(curve):
            best = cls
    return curve, best


def bias(a: argparse.Namespace) -> None:
    p = _plan(a.dataset, 0, a.limit)
    for v in a.variants.split(";"):
        step, bmax = (int(t) for t in v.split(","))
        curve, _ = _epochs(_Biased(p.cfg, step, bmax), p, a.epochs)
        print(f"bias step {step} bmax {bmax}: best {max(curve)}, per epoch {curve}", flush=True)


def ensemble(a: argparse.Namespace) -> None:
    views, scores, yv = a.variants.split(";"), [], None
    for v in views:
        model, enc = v.split("@")
        p = prepare(TrainRequest(board="host", dataset=a.dataset, limit=a.limit, model=model, encoding=enc))
        ref = Reference(p.cfg)
        curve, cls = _epochs(ref, p, a.epochs, score=True)
        scores.append(cls)
        yv = p.y_val
        print(f"{v}: best {max(curve)}, {ref.weight_bytes():,} weight bytes", flush=True)
    for i in range(len(views)):
        for j in range(i + 1, len(views)):
            accs = [round(100 * float(((scores[i] + w * scores[j]).argmax(1) == yv).mean()), 2) for w in (0.5, 1, 2)]
            print(f"{views[i]} + w x {views[j]}, w = 0.5 / 1 / 2: {accs}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("probe", choices=["augment", "edges", "topk", "fill", "nn", "bias", "ensemble"])
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--folds", type=int, default=5, help="K-fold CV of the training rows (0: the plan's split)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--train", type=int, default=10000, help="edges: training rows of the hold-out")
    ap.add_argument("--val", type=int, default=3000, help="edges: validation rows of the hold-out")
    ap.add_argument("--prototypes", type=int, default=84, help="edges: P of the default whose bytes set the budget")
    ap.add_argument("--variants", default="raw,edges:32:2,edges:48:2,both:48:2")
    ap.add_argument("--model", default=None, help="augment/topk/fill/nn: as for train (default: the dataset's)")
    ap.add_argument("--encoding", default=None)
    ap.add_argument("--weights", default=None)
    a = ap.parse_args(argv)
    MODEL.update(model=a.model, encoding=a.encoding, weights=a.weights)
    probes = {
        "augment": augment,
        "edges": edges,
        "topk": topk,
        "fill": fill,
        "nn": nn,
        "bias": bias,
        "ensemble": ensemble,
    }
    probes[a.probe](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
