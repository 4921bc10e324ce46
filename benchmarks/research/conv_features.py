"""Research scratch (issue 13 point 3): can a gradient-free rule LEARN binary conv features
that lift the prototype layer's VALIDATION accuracy? Host-side numpy only, no device twin.

    .venv/bin/python benchmarks/research/conv_features.py [--datasets shift1d,motion,...]
                                                          [--epochs 8] [--variants raw,frozen,...]

Every figure is validation accuracy (stratified 10 % of the training data, seed 0, the
plan's own split); the test split is never read. Per dataset and variant: the best epoch on
validation (the device keeps its best checkpoint) and the last epoch.

Feature layer (all integer in intent; the host simulates the popcounts with exact small-int
matmuls): F binary filters over patches of n bits (1-D: w positions x all channels x thermometer
levels; 2-D: k x k pixels x levels), response r = n - 2*popcount(patch ^ w_f) (a +-1 dot
product), fire = r >= t_f, OR-pooled (or count-thermometer pooled) over G position groups ->
F*G bits, optionally concatenated with the raw bits, into the existing Reference top layer
(C x P data-initialised binary2 prototypes, default rule settings of the dataset).

Filter learning ("routed votes"): when the top layer errs, its error pair votes per input
bit (kernels.vote). For each pooled feature bit whose vote disagrees with its state and whose
group's best response lies within `window` of the threshold, the group's max-response
position is responsible (OR pooling): the filter's int8 evidence counters add +-patch (toward
it when the bit should be on, away when it should be off) and its threshold evidence moves.
Every `every` samples: per filter, up to `flips` weights with evidence against them >= tau flip;
thresholds step by +-2 on threshold evidence, and homeostasis keeps each filter's pooled
firing rate between 1/4 and 3/4. Deterministic: numpy Generator seeded per run.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from bitflip.bitplanes import pack_bits, words
from bitflip.training.plan import Plan, TrainRequest, prepare
from bitflip.training.reference import Reference

SAT = 127


@dataclass(frozen=True)
class Var:
    name: str
    F: int = 40  # filters
    w: int = 5  # 1-D window (positions) or 2-D side (images: 3)
    G: int = 8  # 1-D groups (images: a 4 x 4 grid)
    stride: int = 1
    raw: bool = False  # concatenate the raw bits
    learn: bool = True
    count: int = 0  # 0: OR pooling; c>0: bits count>=1, >=2, >=4 .. (c levels)
    every: int = 64
    flips: int = 2
    tau: int = 8
    window: int = 8
    levels: int = 0  # input levels for the patches (0: the plan's encoding)
    q: int = 0  # significance: flip only if evidence*16 >= q * (credit events of the filter)
    lt: bool = True  # threshold evidence moves thresholds
    homeo: bool = True  # firing-rate homeostasis
    select: int = 0  # >0: no flips; keep the F most class-informative of select*F data-initialised filters
    kmeans: int = 0  # >0: binary k-majority iterations on sampled patches before training (unsupervised)
    pos: bool = False  # weight evidence only from "should fire" events (off-events move thresholds only)
    near: int = 0  # >0: also credit correct samples whose best rival is within this margin (pool rule's near)
    cls: bool = False  # credit from the filters' classes (Tsetlin-like) instead of the top's votes
    refit: int = 0  # after `refit` epochs of joint learning: freeze the filters, new top layer


# the gated flip settings (a small sweep on shift1d)
SIG: dict[str, Any] = {"q": 4, "tau": 16, "every": 256, "flips": 1, "lt": False}
VARIANTS = {
    "frozen": Var("frozen", learn=False),
    "raw+frozen": Var("raw+frozen", raw=True, learn=False),
    "kmeans": Var("kmeans", kmeans=8, learn=False),
    "select": Var("select", select=4, learn=False),
    "thr-only": Var("thr-only", q=1 << 20, tau=16, every=256, lt=True),
    "learned": Var("learned", **SIG),
    "raw+learned": Var("raw+learned", raw=True, **SIG),
    "learned-refit": Var("learned-refit", refit=3, **SIG),
    "cls": Var("cls", cls=True, q=4, tau=16, every=256, flips=1, lt=True),
    # explored on shift1d only (worse; kept so the write-up's numbers can be re-run)
    "learned-fast": Var("learned-fast"),
    "learned-pos": Var("learned-pos", pos=True, q=4, tau=16, every=256, flips=1, lt=True),
    "cls-refit": Var("cls-refit", cls=True, q=4, tau=16, every=256, flips=1, lt=True, refit=3),
    "learned-near": Var("learned-near", near=16, **SIG),
    "raw+kmeans": Var("raw+kmeans", kmeans=8, learn=False, raw=True),
}
DEFAULT_VARIANTS = "raw,frozen,raw+frozen,kmeans,select,thr-only,learned,raw+learned,learned-refit,cls"


# ------------------------------------------------------------------ data and geometry
def val_index(p: Plan) -> np.ndarray:
    return np.setdiff1d(np.arange(len(p.data.y_train)), p.train_index)


def grid(p: Plan, x: np.ndarray) -> np.ndarray:
    """Encoded bits of raw rows x as (N, D, positions...) with D bits per position."""
    b = p.enc.bits(x).astype(np.int8).reshape(len(x), -1)
    L = b.shape[1] // p.data.n_features
    b = b.reshape(len(x), L, p.data.n_features)  # level-major
    if p.data.name in ("fashion", "mnist"):
        return b.reshape(len(x), L, 28, 28)
    if p.data.name == "motion":
        return b.reshape(len(x), L, 3, 64).reshape(len(x), L * 3, 64)
    return b


def patches(g: np.ndarray, v: Var) -> tuple[np.ndarray, np.ndarray]:
    """(N, Npos, n) +-1 int8 patches and the group of each position."""
    if g.ndim == 3:
        N, _, T = g.shape
        pos = np.arange(0, T - v.w + 1, v.stride)
        pt = np.stack([g[:, :, p : p + v.w].reshape(N, -1) for p in pos], axis=1)
        grp = pos * v.G // (T - v.w + 1)
    else:
        N, _, H, W = g.shape
        ys = np.arange(0, H - v.w + 1, v.stride)
        xs = np.arange(0, W - v.w + 1, v.stride)
        pt = np.stack([g[:, :, y : y + v.w, x : x + v.w].reshape(N, -1) for y in ys for x in xs], axis=1)
        gy = ys * v.G // (H - v.w + 1)
        gx = xs * v.G // (W - v.w + 1)
        grp = (gy[:, None] * v.G + gx[None, :]).ravel()
    order = np.argsort(grp, kind="stable")  # positions of a group contiguous (device: a group table)
    return (2 * pt[:, order] - 1).astype(np.int8), grp[order]


# ------------------------------------------------------------------ the feature layer
class Conv:
    def __init__(self, v: Var, pt: np.ndarray, grp: np.ndarray, y: np.ndarray, seed: int):
        self.v = v
        self.grp = grp
        self.ng = int(grp.max()) + 1
        self.n = pt.shape[2]
        self.starts = np.searchsorted(grp, np.arange(self.ng))
        self.lv = max(1, v.count)
        self.W = np.zeros((v.F, self.n), dtype=np.int8)
        rng = np.random.default_rng([seed, 77])
        # data-initialised: patches of random training samples at random positions, class-balanced
        classes = np.unique(y)
        rows = [rng.choice(np.nonzero(y == classes[f % len(classes)])[0]) for f in range(v.F)]
        ps = rng.integers(0, pt.shape[1], v.F)
        self.W = pt[rows, ps].astype(np.int8).copy()  # (F, n) +-1
        if v.kmeans:
            self.kmajority(pt, rng)
        self.calibrate(pt)
        if v.select:
            self.choose(pt, y, rng)
        self.C = np.zeros((v.F, self.n), dtype=np.int32)  # int8 evidence (saturating)
        self.Tev = np.zeros(v.F, dtype=np.int32)
        self.m = np.zeros(v.F, dtype=np.int32)  # credit events since the last flush
        self.on = np.zeros(v.F, dtype=np.int64)
        self.seen = 0
        self.flipped = 0

    def kmajority(self, pt: np.ndarray, rng: np.random.Generator) -> None:
        """Binary k-means: 4096 sampled training patches, each to its best-matching filter
        (max response, lowest index on ties), each filter the majority bit of its patches
        (int16 counters per weight; ties and empty filters keep their bits)."""
        rows = rng.integers(0, len(pt), 4096)
        pos = rng.integers(0, pt.shape[1], 4096)
        X = pt[rows, pos].astype(np.float32)  # (S, n) +-1
        for _ in range(self.v.kmeans):
            a = np.argmax(X @ self.W.T.astype(np.float32), axis=1)
            for f in range(len(self.W)):
                c = X[a == f].sum(axis=0).astype(np.int32)
                self.W[f] = np.where(c > 0, 1, np.where(c < 0, -1, self.W[f]))

    def calibrate(self, pt: np.ndarray) -> None:
        """Data-initialised thresholds: the median over 256 training samples and the groups of
        each filter's group-max response (the device: one pass with a small histogram)."""
        mx = np.maximum.reduceat(self.response(pt[:256]), self.starts, axis=1)  # (N, G, F)
        self.t = np.median(mx.reshape(-1, len(self.W)), axis=0).astype(np.int32)

    def choose(self, pt: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> None:
        """Learning by selection: select*F data-initialised candidates, each scored by how its
        pooled bits split the classes on up to 1024 training samples (integer counts per
        class: sum over groups and classes of |C * on_gc - on_g|), the F best kept."""
        v, K = self.v, self.v.F * self.v.select
        classes = np.unique(y)
        rows = [rng.choice(np.nonzero(y == classes[f % len(classes)])[0]) for f in range(K)]
        self.W = pt[rows, rng.integers(0, pt.shape[1], K)].astype(np.int8).copy()
        self.calibrate(pt)
        sub = np.arange(min(1024, len(pt)))
        bits, _ = self.pool(self.response(pt[sub]))  # (N, K, G, 1)
        on = bits[..., 0].astype(np.int64)
        per = np.stack([on[y[sub] == c].sum(axis=0) for c in classes], axis=-1)  # (K, G, C)
        score = np.abs(len(classes) * per - per.sum(axis=-1, keepdims=True)).sum(axis=(1, 2))
        keep = np.sort(np.argsort(-score, kind="stable")[: v.F])
        self.W, self.t = self.W[keep], self.t[keep]

    def similarity(self) -> float:
        """Mean fraction of agreeing weights over pairs of filters (collapse diagnostic)."""
        W = self.W.astype(np.int64)
        S = (W @ W.T + self.n) / (2 * self.n)
        return float((S.sum() - np.trace(S)) / (len(W) * (len(W) - 1)))

    @property
    def n_out(self) -> int:
        return self.v.F * self.ng * self.lv

    def response(self, pt: np.ndarray) -> np.ndarray:
        """(N, Npos, n) -> (N, Npos, F) responses n - 2*popcount(xor) (exact in float32)."""
        return np.matmul(pt.astype(np.float32), self.W.T.astype(np.float32)).astype(np.int32)

    def pool(self, R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Responses -> bits (N, F, G, lv) and the per-group max response (N, F, G)."""
        fire = (R >= self.t[None, None, :]).astype(np.int32)  # (N, Npos, F)
        cnt = np.add.reduceat(fire, self.starts, axis=1).transpose(0, 2, 1)  # (N, F, G)
        thr = np.array([1 << i for i in range(self.lv)])
        bits = cnt[..., None] >= thr
        return bits, np.maximum.reduceat(R, self.starts, axis=1).transpose(0, 2, 1)

    def features(self, pt: np.ndarray, chunk: int = 256) -> np.ndarray:
        out = []
        for i in range(0, len(pt), chunk):
            bits, _ = self.pool(self.response(pt[i : i + chunk]))
            out.append(bits.reshape(len(bits), -1))
        return np.concatenate(out)

    def credit(self, pt1: np.ndarray, R: np.ndarray, bits: np.ndarray, mx: np.ndarray, vote: np.ndarray) -> None:
        """vote: (F, G, lv) directions of the pooled bits from the top layer."""
        v = self.v
        want = np.sign(vote[:, :, 0])  # the OR / first-level bit
        state = bits[:, :, 0]
        wrong = ((want > 0) & ~state) | ((want < 0) & state)
        near = np.abs(mx - self.t[:, None]) <= v.window
        for f, g in zip(*np.nonzero(wrong & near)):
            pos = np.nonzero(self.grp == g)[0]
            p = pos[int(np.argmax(R[pos, f]))]
            s = int(want[f, g])
            self.Tev[f] += s  # > 0: should fire more
            if v.pos and s < 0:
                continue
            self.C[f] = np.clip(self.C[f] + s * pt1[p], -SAT, SAT)
            self.m[f] += 1

    def observe(self, bits: np.ndarray) -> None:
        self.on += bits[:, :, 0].sum(axis=1)
        self.seen += 1
        if self.seen % self.v.every == 0:
            self.flush()

    def flush(self) -> None:
        v = self.v
        for f in range(v.F):
            e = -self.C[f] * self.W[f]  # evidence against each weight
            order = np.argsort(-e, kind="stable")[: v.flips]
            sel = order[(e[order] >= v.tau) & (16 * e[order] >= v.q * self.m[f])]
            self.W[f, sel] *= -1
            self.flipped += len(sel)
        if v.lt:
            self.t += np.where(self.Tev >= v.tau, -2, 0) + np.where(self.Tev <= -v.tau, 2, 0)
        rate4 = 4 * self.on  # homeostasis: pooled firing between 1/4 and 3/4 of the groups
        tot = v.every * self.ng
        if v.homeo:
            self.t += np.where(rate4 > 3 * tot, 1, 0) - np.where(rate4 < tot, 1, 0)
        self.m[:] = 0
        self.C[:] = 0
        self.Tev[:] = 0
        self.on[:] = 0


# ------------------------------------------------------------------ runs
def top_cfg(p: Plan, n_in: int) -> dict[str, Any]:
    cfg = {k: v for k, v in p.cfg.items() if k not in ("id", "pool", "epoch")}
    cfg["sizes"] = [n_in, p.sizes[-1]]
    cfg["k"] = [p.cfg["k"][-1]]
    return cfg


def run_raw(p: Plan, epochs: int) -> dict[str, Any]:
    ref = Reference(dict(p.cfg))
    accs = []
    for e in range(epochs):
        for j in p.order(e):
            ref.train_sample(p.x_train[j], int(p.y_train[j]))
        accs.append(float((ref.predict(p.x_val) == p.y_val).mean()))
    n_out = p.sizes[-1]
    va = val_index(p)
    xtr, xva = p.enc.bits(p.data.x_train[p.train_index]), p.enc.bits(p.data.x_train[va])
    return {
        "nn1": nn1(xtr, p.y_train, xva, p.y_val),
        "accs": accs,
        "weight_bytes": ref.weight_bytes(),
        "state_bytes": 4 * len(ref.fill) + 8,
        "ops": sum(words(a) * b for a, b in zip(p.sizes[:-1], p.sizes[1:])),
        "n_in": p.sizes[0],
        "n_out": n_out,
    }


def nn1(xtr: np.ndarray, ytr: np.ndarray, xva: np.ndarray, yva: np.ndarray) -> float:
    """Validation accuracy of 1-NN by Hamming distance over every training row (a probe of the
    representation alone, not a device method)."""
    a = 2 * xtr.astype(np.float32) - 1
    b = 2 * xva.astype(np.float32) - 1
    hits = 0
    for i in range(0, len(b), 512):
        hits += int((ytr[np.argmax(b[i : i + 512] @ a.T, axis=1)] == yva[i : i + 512]).sum())
    return hits / len(b)


def top_votes(ref: Reference, x: np.ndarray, label: int, near: int = 0) -> np.ndarray | None:
    """The error pair's votes on the top layer's inputs, before the top learns (kernels.vote)."""
    if ref.fill[label]:
        return None
    pre = ref.layers[-1].pre(x)
    P = ref.P
    winner = int(np.argmax(pre))
    if winner // P == label:
        if not near:
            return None
        rival = ref._rival(pre, label * P)
        if rival < 0 or pre[rival] - pre[winner] <= -near:
            return None
        winner, best = rival, winner  # the near-miss pair: the winner up, its rival down
    else:
        best = label * P + int(np.argmax(pre[label * P : label * P + P]))
    dv = np.zeros(len(pre), dtype=np.int64)
    dv[winner], dv[best] = -1, 1
    return ref.layers[-1].votes(dv)


def class_votes(ref: Reference, x: np.ndarray, label: int, conv: Conv, n_raw: int) -> np.ndarray | None:
    """On an error: +1 on every pooled bit of the true class's filters, -1 on the winning
    class's (filter f belongs to class f % C, the class its data-initialised patch came from)."""
    if ref.fill[label]:
        return None
    pre = ref.layers[-1].pre(x)
    wc = int(np.argmax(pre)) // ref.P
    if wc == label:
        return None
    cf = np.arange(conv.v.F) % ref.n_classes
    d = np.where(cf == label, 1, 0) - np.where(cf == wc, 1, 0)
    out = np.zeros(n_raw + conv.n_out, dtype=np.int64)
    out[n_raw:] = np.repeat(d, conv.ng * conv.lv)
    return out


def run_conv(p: Plan, v: Var, epochs: int) -> dict[str, Any]:
    va = val_index(p)
    gtr, gva = grid(p, p.data.x_train[p.train_index]), grid(p, p.data.x_train[va])
    ptr, grp = patches(gtr, v)
    pva, _ = patches(gva, v)
    conv = Conv(v, ptr, grp, p.y_train, p.req.seed)
    n_raw = p.sizes[0] if v.raw else 0
    n_in = n_raw + conv.n_out
    ref = Reference(top_cfg(p, n_in))

    def pack(feat: np.ndarray, raw: np.ndarray | None) -> np.ndarray:
        b = feat.astype(bool)
        if raw is not None:
            b = np.concatenate([raw, b], axis=-1)
        return pack_bits(b)

    raw_tr = p.enc.bits(p.data.x_train[p.train_index]).astype(bool) if v.raw else None
    raw_va = p.enc.bits(p.data.x_train[va]).astype(bool) if v.raw else None
    accs = []
    shp = (v.F, conv.ng, conv.lv)
    for e in range(epochs):
        if v.refit and e == v.refit:  # frozen filters from here; the prototypes start again from data
            v = replace(v, learn=False)
            ref = Reference(top_cfg(p, n_in))
        for j in p.order(e):
            R = conv.response(ptr[j : j + 1])
            bits, mx = conv.pool(R)
            x = pack(bits.reshape(1, -1)[0], raw_tr[j] if raw_tr is not None else None)
            if v.learn and v.cls:
                vote = class_votes(ref, x, int(p.y_train[j]), conv, n_raw)
            elif v.learn:
                vote = top_votes(ref, x, int(p.y_train[j]), v.near)
            ref.train_sample(x, int(p.y_train[j]))
            if v.learn:
                if vote is not None:
                    conv.credit(ptr[j], R[0], bits[0], mx[0], vote[n_raw:].reshape(shp))
                conv.observe(bits[0])
        fv = conv.features(pva)
        xv = pack(fv, raw_va)
        accs.append(float((ref.predict(xv) == p.y_val).mean()))
        print(
            f"  {p.data.name} {v.name} epoch {e}: val {accs[-1]:.4f} flips {conv.flipped} sim {conv.similarity():.2f} on {fv.mean():.2f} t {np.percentile(conv.t, [10, 50, 90])}",
            file=sys.stderr,
            flush=True,
        )
    ftr = conv.features(ptr)
    if raw_tr is not None:
        ftr = np.concatenate([raw_tr, ftr.astype(bool)], axis=1)
        fv = np.concatenate([raw_va, fv.astype(bool)], axis=1)
    probe = nn1(ftr, p.y_train, fv, p.y_val)
    npos, n = ptr.shape[1], ptr.shape[2]
    fw = v.F * words(n) * 4 + v.F * 2  # filter planes + int16 thresholds
    state = v.F * n + v.F * 2 + v.F * 2 if v.learn else 0  # int8 counters, threshold evidence, rate counts
    state += v.F * conv.ng * 4  # argmax position + max response per (filter, group), int16 each
    return {
        "nn1": probe,
        "accs": accs,
        "weight_bytes": fw + ref.weight_bytes(),
        "state_bytes": state + 4 * len(ref.fill) + 8,
        "ops": npos * v.F * words(n) + n_in // 32 + ref.layers[-1].n_out * words(n_in),
        "conv_ops": npos * v.F * words(n),
        "n_in": n_in,
        "n_out": ref.layers[-1].n_out,
        "flips": conv.flipped,
        "patch_bits": n,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="shift1d,motion,tones,table,fashion")
    ap.add_argument("--variants", default=DEFAULT_VARIANTS)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--image-epochs", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--image-seeds", type=int, default=1)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--fashion-limit", type=int, default=11112)  # 10,002 train + 1,110 validation
    ap.add_argument("--set", action="append", default=[], help="override a Var field: F=64, w=3, ...")
    args = ap.parse_args(argv)
    flags = ("raw", "learn", "lt", "homeo", "cls", "pos")
    over = {k: (v == "1" if k in flags else int(v)) for k, v in (s.split("=") for s in args.set)}
    rows = []
    for name in args.datasets.split(","):
        image = name in ("fashion", "mnist")
        epochs, seeds = (args.image_epochs, args.image_seeds) if image else (args.epochs, args.seeds)
        for vn in args.variants.split(","):
            runs = []
            for seed in range(args.first_seed, args.first_seed + seeds):
                p = prepare(
                    TrainRequest(board="host", dataset=name, limit=args.fashion_limit if image else None, seed=seed)
                )
                t0 = time.monotonic()
                if vn == "raw":
                    r = run_raw(p, epochs)
                else:
                    v = VARIANTS[vn]
                    if image:
                        v = replace(v, w=3, G=4)
                    r = run_conv(p, replace(v, **over), epochs)
                r["wall"] = time.monotonic() - t0
                runs.append(r)
                print(
                    f"{name} {vn} seed {seed}: best val {max(r['accs']):.4f} last {r['accs'][-1]:.4f} "
                    f"1nn {r['nn1']:.4f} ({r['wall']:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
            rows.append((name, vn, runs))
    print(
        "| dataset | variant | best-epoch val % (mean ± sd over seeds) | last-epoch val % | 1-NN probe val % "
        "| top in bits | model bytes | train state bytes | fwd words/sample (conv part) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, vn, runs in rows:
        best = [100 * max(r["accs"]) for r in runs]
        last = [100 * r["accs"][-1] for r in runs]
        r = runs[0]
        print(
            f"| {name} | {vn} | {np.mean(best):.2f} ± {np.std(best):.2f} | {np.mean(last):.2f} | "
            f"{100 * np.mean([x['nn1'] for x in runs]):.2f} | {r['n_in']} | {r['weight_bytes']:,} | "
            f"{r['state_bytes']:,} | {r['ops']:,} ({r.get('conv_ops', 0):,}) |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
