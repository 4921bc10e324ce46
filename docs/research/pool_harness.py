"""Research harness (not product code, not bit-exact with host/bitflip/reference.py): the
pooled-evidence hidden-layer rule of docs/research/hidden-layers.md section 4, re-implemented
densely in numpy (float +-1 weights, numpy RNG) to measure whether a learned hidden layer beats
the no-hidden prototype model at the same weight budget.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python docs/research/pool_harness.py fashion default 640 24 6 kout=9 F=8

Arguments: dataset, encoding ('default' = the dataset's), hidden width H, prototypes per class
P, epochs, then key=value settings: hm (near-miss margin for hidden votes, 60), win (hidden
window, 8), M (pool rows, 128), B (samples per evidence window, 2048), tau (evidence needed to
flip, 16), F (flips per pool row per window, halved every epoch, 16), kout (top flip density
exponent, 8), ks (4), seed (0). Set OPENBLAS_NUM_THREADS=1 when running two at once.
"""
import sys
import time

import numpy as np

sys.path.insert(0, "host")
from bitflip.data.encoding import parse_encoding
from bitflip.data.registry import load_dataset

name, encs, H, P, EP = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
E = dict(a.split("=") for a in sys.argv[6:])
hm, win, M, B, tau, F0 = (int(E.get(k, d)) for k, d in (("hm", 60), ("win", 8), ("M", 128), ("B", 2048), ("tau", 16), ("F", 16)))
kout, ks, seed = int(E.get("kout", 8)), int(E.get("ks", 4)), int(E.get("seed", 0))
ds = load_dataset(name)
enc = parse_encoding(ds.default_encoding if encs == "default" else encs, ds.max_value)
ytr, yte = ds.y_train, ds.y_test
Xtr = np.where(enc.bits(ds.x_train), 1.0, -1.0).astype(np.float32)
Xte = np.where(enc.bits(ds.x_test), 1.0, -1.0).astype(np.float32)
print(name, enc.spec, "H", H, "P", P, "weight bytes (1-bit hidden + binary2 top)",
      H * 4 * ((Xtr.shape[1] + 31) // 32) + 10 * P * 8 * ((H + 31) // 32), flush=True)
n_in = Xtr.shape[1]; C = 10; R = C * P
rng = np.random.default_rng(seed)
W = np.where(rng.random((H, n_in)) < 0.5, 1.0, -1.0).astype(np.float32)
T = np.zeros(H, np.float32)
S = np.ones((R, H), np.float32); Cf = np.zeros((R, H), bool); fill = np.zeros(C, int)
cnt = np.zeros((M, n_in), np.float32); pool0 = 0; seen = 0
def hid(X): return np.where(X @ W.T - T >= 0, 1.0, -1.0).astype(np.float32)
def upd_top(r, up, h):
    t = h if up else -h
    wrong = S[r] != t
    rr = rng.random(H) < 2.0 ** -kout
    w = wrong & rr
    S[r] = np.where(w & ~Cf[r], -S[r], S[r])
    gain = ~wrong & ~Cf[r] & (rng.random(H) < 2.0 ** -ks)
    Cf[r] = (Cf[r] & ~(w & Cf[r])) | gain
t0 = time.time()
for ep in range(EP):
    F = max(1, F0 >> ep)
    for i in np.random.default_rng(1000 * seed + ep).permutation(len(Xtr)):
        x = Xtr[i]; lab = int(ytr[i])
        pre = W @ x; a = pre - T; h = np.where(a >= 0, 1.0, -1.0).astype(np.float32)
        T += np.sign(pre - T)
        seen += 1
        if fill[lab] < P:
            S[lab * P + fill[lab]] = h; Cf[lab * P + fill[lab]] = False; fill[lab] += 1; continue
        sc = S @ h; win_r = int(sc.argmax()); lo = lab * P
        best = lo + int(sc[lo:lo + P].argmax())
        d = {}
        if win_r // P == lab:
            upd_top(win_r, True, h)
            other = np.concatenate([sc[:lo], sc[lo + P:]]); ri = int(other.argmax()); rival = ri if ri < lo else ri + P
            if sc[rival] > sc[win_r] - hm:
                d = {win_r: 1.0, rival: -1.0}
        else:
            upd_top(win_r, False, h); upd_top(best, True, h)
            d = {win_r: -1.0, best: 1.0}
        if d:
            v = sum(s * S[r] for r, s in d.items())
            move = (v != 0) & ((v > 0) != (a >= 0)) & (np.abs(a) <= win)
            pr = np.arange(pool0, pool0 + M) % H
            dirs = np.where(move[pr], np.sign(v[pr]), 0.0).astype(np.float32)
            if dirs.any():
                cnt += dirs[:, None] * x[None, :]
        if seen % B == 0:
            pr = np.arange(pool0, pool0 + M) % H
            cw = cnt * W[pr]
            idx = np.argpartition(cw, F, axis=1)[:, :F]
            vals = np.take_along_axis(cw, idx, axis=1)
            for j in range(M):
                sel = idx[j][vals[j] <= -tau]
                W[pr[j], sel] *= -1
            cnt[:] = 0; pool0 = (pool0 + M) % H
    Ht = hid(Xte); acc = ((Ht @ S.T).argmax(1) // P == yte).mean()
    print(f"  ep{ep+1} {acc*100:.2f}% {time.time()-t0:.0f}s", flush=True)
