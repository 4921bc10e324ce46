"""Research scratch, round 2 (issue 13 point 3): learned binary features NEXT TO the raw bits,
at the raw model's byte budget. Host-side numpy only, no device twin, VALIDATION ONLY.

    .venv/bin/python benchmarks/research/conv_features2.py [--datasets shift1d,...] [--variants raw,rb+frozen,...]

Protocol (round 1's recommendation): learn the filters (round 1's routed-vote rule, or the
thresholds-only variant) for `learn` epochs next to a features-only top layer, FREEZE them,
then refill and train a fresh top layer on raw bits + features for `epochs` epochs (the raw
baseline's epoch count). The fresh top gets as many prototypes per class as fit the raw
default model's bytes (filters + thresholds + top planes <= raw bytes): that is the honest
comparison on a ~170 KB Pico heap.

Pooling variants (less lossy than OR over G groups): `rl` levels of the group-max response
(bit l: max >= t_f,l, t_f,l the per-filter quantile (l+1)/(rl+1) of the group-max response
over 256 training samples: a device histogram pass), over fewer, larger groups so that the
bit count stays the same. The filter learning always runs under round 1's OR pooling; the
new pooling is calibrated after the filters freeze.

Reported per run: the best refit epoch on validation (the device keeps its best checkpoint),
the last epoch, the 1-NN probe on the final representation (diagnostic only), the model bytes,
the training state bytes (max over both phases) and the XOR-popcount words of one forward
pass. Deterministic: numpy Generators seeded per run.
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

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from conv_features import SIG, Conv, Var, grid, nn1, patches, top_cfg, top_votes, val_index


@dataclass(frozen=True)
class V2:
    name: str
    raw: bool = True  # raw bits in front of the features in the refit top
    learn: str = ""  # "": frozen data-initialised filters; "routed": SIG rule; "thr": thresholds only
    F: int = 40
    G: int = 8  # refit pooling groups (1-D)
    Gi: int = 4  # refit pooling grid side (images)
    rl: int = 0  # 0: OR pooling; >0: levels of the group-max response
    pb: int = 0  # >0: also the position of the group's max response, thermometer-coded in pb bits (1-D)
    budget: bool = True  # prototypes per class sized to the raw model's bytes
    P: int = 0  # >0: prototypes per class forced (raw only: the raw layer at a smaller P)


V2S = {
    "raw": V2("raw", budget=False),
    "rb+frozen": V2("rb+frozen"),
    "rb+refit": V2("rb+refit", learn="routed"),
    "rb+thr-refit": V2("rb+thr-refit", learn="thr"),
    "rb+lv2-refit": V2("rb+lv2-refit", learn="routed", G=4, Gi=3, rl=2),
    "rb+lv2-frozen": V2("rb+lv2-frozen", G=4, Gi=3, rl=2),
    "rb+s-refit": V2("rb+s-refit", learn="routed", F=16, G=4, Gi=2),
    "rb+s-frozen": V2("rb+s-frozen", F=16, G=4, Gi=2),
    "rb+pos-frozen": V2("rb+pos-frozen", G=2, pb=3),
    "rb+pos-refit": V2("rb+pos-refit", learn="routed", G=2, pb=3),
    "f80-refit": V2("f80-refit", raw=False, learn="routed", F=80),
    "f40-refit": V2("f40-refit", raw=False, learn="routed"),
}
DEFAULT = "raw,raw@budget,rb+frozen,rb+refit,rb+thr-refit,rb+lv2-frozen,rb+lv2-refit,rb+s-frozen,rb+s-refit"


class Conv2(Conv):
    """Conv with max-response level pooling (rl levels, quantile thresholds per filter)."""

    rl = 0
    pb = 0

    def calibrate_levels(self, pt: np.ndarray, rl: int) -> None:
        self.rl = rl
        mx = np.maximum.reduceat(self.response(pt[:256]), self.starts, axis=1).reshape(-1, len(self.W))
        qs = [(i + 1) / (rl + 1) for i in range(rl)]
        self.tq = np.stack([np.quantile(mx, q, axis=0, method="lower") for q in qs], axis=1).astype(np.int32)

    @property
    def n_out(self) -> int:
        return self.v.F * self.ng * (max(1, self.rl, self.v.count) + self.pb)

    def pool(self, R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.pb:
            return self.pool_pos(R)
        if not self.rl:
            return super().pool(R)
        mx = np.maximum.reduceat(R, self.starts, axis=1).transpose(0, 2, 1)  # (N, F, G)
        return mx[..., None] >= self.tq[None, :, None, :], mx

    def pool_pos(self, R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """OR bit (max >= t_f) plus the max's position in its group, thermometer-coded (bit i:
        position >= (i+1)/(pb+1) of the group; first position on ties)."""
        bits, mx = super().pool(R)  # (N, F, G, 1)
        ends = np.append(self.starts[1:], R.shape[1])
        pos = []
        for g, (a, b) in enumerate(zip(self.starts, ends)):
            am = np.argmax(R[:, a:b, :], axis=1)  # (N, F)
            cut = np.array([(i + 1) * (b - a) // (self.pb + 1) for i in range(self.pb)])
            pos.append(am[..., None] >= cut)
        pb = np.stack(pos, axis=2)  # (N, F, G, pb)
        return np.concatenate([bits, pb], axis=-1), mx


def learn_var(v: V2, image: bool) -> Var:
    base = Var("learn", F=v.F, w=3 if image else 5, G=4 if image else 8)
    if v.learn == "routed":
        return replace(base, **SIG)
    if v.learn == "thr":
        return replace(base, q=1 << 20, tau=16, every=256, lt=True)
    return replace(base, learn=False)


def budget_P(p: Plan, n_in: int, filter_bytes: int) -> int:
    """Prototypes per class of a top on n_in bits within the raw default model's bytes."""
    raw_bytes = Reference(dict(p.cfg)).weight_bytes()
    per_row = raw_bytes // (p.sizes[-1] * words(p.sizes[0])) * words(n_in)  # bytes per prototype word row
    return (raw_bytes - filter_bytes) // (per_row * p.data.n_classes)


def train_top(
    p: Plan, ref: Reference, xtr: np.ndarray, xva: np.ndarray, epochs: int, tag: str, first: int = 0
) -> list[float]:
    accs = []
    for e in range(epochs):
        for j in p.order(first + e):
            ref.train_sample(xtr[j], int(p.y_train[j]))
        accs.append(float((ref.predict(xva) == p.y_val).mean()))
        print(f"  {p.data.name} {tag} epoch {e}: val {accs[-1]:.4f}", file=sys.stderr, flush=True)
    return accs


def learn_filters(p: Plan, lv: Var, ptr: np.ndarray, grp: np.ndarray, epochs: int) -> tuple[Conv2, int]:
    """Round 1's joint phase: filters learn next to a features-only top (default P), which is
    then thrown away. Returns the filters and the phase's training-state bytes."""
    conv = Conv2(lv, ptr, grp, p.y_train, p.req.seed)
    if not lv.learn:
        return conv, 0
    ref = Reference(top_cfg(p, conv.n_out))
    shp = (lv.F, conv.ng, 1)
    for e in range(epochs):
        for j in p.order(e):
            R = conv.response(ptr[j : j + 1])
            bits, mx = conv.pool(R)
            x = pack_bits(bits.reshape(-1).astype(bool))
            vote = top_votes(ref, x, int(p.y_train[j]))
            ref.train_sample(x, int(p.y_train[j]))
            if vote is not None:
                conv.credit(ptr[j], R[0], bits[0], mx[0], vote.reshape(shp))
            conv.observe(bits[0])
        print(f"  {p.data.name} learn epoch {e}: flips {conv.flipped}", file=sys.stderr, flush=True)
    state = lv.F * conv.n + 4 * lv.F + 4 * lv.F * conv.ng + 4 * len(ref.fill) + 8
    return conv, state


def run(p: Plan, v: V2, epochs: int, learn_epochs: int, image: bool) -> dict[str, Any]:
    va = val_index(p)
    raw_tr = p.enc.bits(p.data.x_train[p.train_index]).astype(bool)
    raw_va = p.enc.bits(p.data.x_train[va]).astype(bool)
    if v.name.startswith("raw"):  # the raw layer alone, at the default P or a forced one
        cfg = dict(p.cfg)
        if v.P:
            cfg["sizes"] = [p.sizes[0], v.P * p.data.n_classes]
        ref = Reference(cfg)
        accs = train_top(p, ref, pack_bits(raw_tr), pack_bits(raw_va), epochs, v.name)
        return {
            "accs": accs,
            "nn1": nn1(raw_tr, p.y_train, raw_va, p.y_val),
            "weight_bytes": ref.weight_bytes(),
            "state_bytes": 4 * len(ref.fill) + 8,
            "ops": ref.layers[-1].n_out * words(p.sizes[0]),
            "conv_ops": 0,
            "n_in": p.sizes[0],
            "P": ref.P,
            "C": p.data.n_classes,
        }
    lv = learn_var(v, image)
    gtr, gva = grid(p, p.data.x_train[p.train_index]), grid(p, p.data.x_train[va])
    ptr, grp = patches(gtr, lv)
    conv, state = learn_filters(p, lv, ptr, grp, learn_epochs)
    # freeze; re-pool with the refit shape (positions regrouped, same filters and OR thresholds)
    fv = replace(lv, G=v.Gi if image else v.G, learn=False)
    ptr2, grp2 = patches(gtr, fv)
    pva2, _ = patches(gva, fv)
    c2 = Conv2(fv, ptr2[:8], grp2, p.y_train[:8], p.req.seed)  # shape only; filters copied below
    c2.W, c2.t = conv.W.copy(), conv.t.copy()
    if v.rl:
        c2.calibrate_levels(ptr2, v.rl)
    c2.pb = v.pb
    ftr, fva = c2.features(ptr2).astype(bool), c2.features(pva2).astype(bool)
    if v.raw:
        ftr, fva = np.concatenate([raw_tr, ftr], axis=1), np.concatenate([raw_va, fva], axis=1)
    n_in = ftr.shape[1]
    fbytes = v.F * words(ptr.shape[2]) * 4 + v.F * 2 * max(1, v.rl)
    P = budget_P(p, n_in, fbytes) if v.budget else p.sizes[-1] // p.data.n_classes
    cfg = top_cfg(p, n_in)
    cfg["sizes"] = [n_in, P * p.data.n_classes]
    ref = Reference(cfg)
    accs = train_top(p, ref, pack_bits(ftr), pack_bits(fva), epochs, v.name, first=learn_epochs)
    conv_ops = ptr2.shape[1] * v.F * words(ptr2.shape[2])
    return {
        "accs": accs,
        "nn1": nn1(ftr, p.y_train, fva, p.y_val),
        "weight_bytes": fbytes + ref.weight_bytes(),
        "state_bytes": max(state, 4 * v.F * c2.ng + 4 * len(ref.fill) + 8),
        "ops": conv_ops + ref.layers[-1].n_out * words(n_in),
        "conv_ops": conv_ops,
        "n_in": n_in,
        "P": P,
        "C": p.data.n_classes,
        "flips": conv.flipped,
    }


def variant(name: str, p: Plan) -> V2:
    if name == "raw@budget":  # raw bits at the P that rb+frozen (40 x 8 OR features) gets
        n_f = 40 * (16 if p.data.name in ("fashion", "mnist") else 8)
        return V2("raw@budget", budget=False, P=budget_P(p, p.sizes[0] + n_f, 0))
    return V2S[name]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="shift1d,motion,tones,table,fashion")
    ap.add_argument("--variants", default=DEFAULT)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--learn-epochs", type=int, default=3)
    ap.add_argument("--image-epochs", type=int, default=3)
    ap.add_argument("--image-learn-epochs", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--fashion-limit", type=int, default=11112)  # 10,002 train + 1,110 validation
    args = ap.parse_args(argv)
    rows = []
    for name in args.datasets.split(","):
        image = name in ("fashion", "mnist")
        epochs, le = (args.image_epochs, args.image_learn_epochs) if image else (args.epochs, args.learn_epochs)
        seeds = 1 if image else args.seeds
        for vn in args.variants.split(","):
            runs = []
            for seed in range(args.first_seed, args.first_seed + seeds):
                p = prepare(
                    TrainRequest(board="host", dataset=name, limit=args.fashion_limit if image else None, seed=seed)
                )
                t0 = time.monotonic()
                r = run(p, variant(vn, p), epochs, le, image)
                r["wall"] = time.monotonic() - t0
                runs.append(r)
                print(
                    f"{name} {vn} seed {seed}: best val {max(r['accs']):.4f} last {r['accs'][-1]:.4f} "
                    f"1nn {r['nn1']:.4f} P {r['P']} bytes {r['weight_bytes']} ({r['wall']:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
            rows.append((name, vn, runs))
    print(
        "| dataset | variant | best-epoch val % (mean ± sd) | per seed | last-epoch val % | 1-NN probe % "
        "| top in bits | C x P | model bytes | train state bytes | fwd words/sample (conv part) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, vn, runs in rows:
        best = [100 * max(r["accs"]) for r in runs]
        last = [100 * r["accs"][-1] for r in runs]
        r = runs[0]
        print(
            f"| {name} | {vn} | {np.mean(best):.2f} ± {np.std(best):.2f} | {' / '.join(f'{b:.2f}' for b in best)} | "
            f"{np.mean(last):.2f} | {100 * np.mean([x['nn1'] for x in runs]):.2f} | {r['n_in']} | {r['C']}x{r['P']} | "
            f"{r['weight_bytes']:,} | {r['state_bytes']:,} | {r['ops']:,} ({r['conv_ops']:,}) |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
