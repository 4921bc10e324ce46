"""Research harness (not product code, not bit-exact with host/bitflip/reference.py): the
pooled-evidence hidden-layer rule of docs/research/hidden-layers.md section 4, re-implemented
densely in numpy (float +-1 weights, numpy RNG) to screen settings fast; what it found was
then built bit-exact into the product (firmware/bitflip/pool.py, section 7).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python docs/research/pool_harness.py fashion threshold:16 576 29 8 \
        kout=9 F=8 tau=8 M=576 kd=3 tg=4

Arguments: dataset, encoding ('default' = the dataset's), hidden width H, prototypes per class
P, epochs, then key=value settings: hm (near-miss margin for hidden votes, 60), win (hidden
window, 8), M (pool rows, 128), B (samples per evidence window, 2048), tau (evidence needed to
flip, 16), F (flips per pool row per window, halved every ap epochs, 16), ap (1), kout (top
flip density exponent, 8), ks (4), seed (0), sat (counter saturation, 127), kd (anneal: from
0-based epoch kd on, kout +1 and tau +tg per epoch; 99 = off), tg (0), fz (1: F may reach 0,
freezing the hidden layer), qa (threshold step up when firing, 1 = median), skip (1: the top
also sees the input bits), aug (1: random horizontal flips, 2: not for shoe classes), patch
(hidden units see a random PATCH x PATCH square only). Set OPENBLAS_NUM_THREADS=1 when running
two at once.
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
AP, SAT, SKIP, VB = int(E.get("ap", 1)), int(E.get("sat", 127)), int(E.get("skip", 0)), int(E.get("vb", 0))
kout, ks, seed = int(E.get("kout", 8)), int(E.get("ks", 4)), int(E.get("seed", 0))
ds = load_dataset(name)
enc = parse_encoding(ds.default_encoding if encs == "default" else encs, ds.max_value)
ytr, yte = ds.y_train, ds.y_test
Xtr = np.where(enc.bits(ds.x_train), 1.0, -1.0).astype(np.float32)
Xte = np.where(enc.bits(ds.x_test), 1.0, -1.0).astype(np.float32)
print(name, enc.spec, "H", H, "P", P, "weight bytes (1-bit hidden + binary2 top)",
      H * 4 * ((Xtr.shape[1] + 31) // 32) + 10 * P * 8 * ((H + int(E.get("skip", 0)) * Xtr.shape[1] + 31) // 32), flush=True)
n_in = Xtr.shape[1]; C = 10; R = C * P
rng = np.random.default_rng(seed)
W = np.where(rng.random((H, n_in)) < 0.5, 1.0, -1.0).astype(np.float32)
PATCH = int(E.get('patch', 0))
if PATCH:
    side = int(round(n_in ** 0.5)); mask = np.zeros((H, side, side), np.float32)
    for j in range(H):
        r0, c0 = rng.integers(0, side - PATCH + 1, 2); mask[j, r0:r0 + PATCH, c0:c0 + PATCH] = 1
    W *= mask.reshape(H, n_in)
T = np.zeros(H, np.float32)
HT = H + (n_in if SKIP else 0)
S = np.ones((R, HT), np.float32); Cf = np.zeros((R, HT), bool); fill = np.zeros(C, int)
cnt = np.zeros((M, n_in), np.float32); pool0 = 0; seen = 0
def hid(X): return np.where(X @ W.T - T >= 0, 1.0, -1.0).astype(np.float32)
def upd_top(r, up, h):
    t = h if up else -h
    wrong = S[r] != t
    rr = rng.random(HT) < 2.0 ** -KO
    w = wrong & rr
    S[r] = np.where(w & ~Cf[r], -S[r], S[r])
    gain = ~wrong & ~Cf[r] & (rng.random(HT) < 2.0 ** -ks)
    Cf[r] = (Cf[r] & ~(w & Cf[r])) | gain
QA = float(E.get('qa', 1)); t0 = time.time(); AUG = int(E.get('aug', 0)); arng = np.random.default_rng(77)
for ep in range(EP):
    F = (F0 >> (ep // AP)) if int(E.get('fz', 0)) else max(1, F0 >> (ep // AP)); KD = int(E.get('kd', 99)); KO = kout + max(0, ep - KD + 1); TAU = tau + int(E.get('tg', 0)) * max(0, ep - KD + 1)
    for i in np.random.default_rng(1000 * seed + ep).permutation(len(Xtr)):
        x = Xtr[i]; lab = int(ytr[i])
        if AUG and arng.random() < 0.5 and (AUG == 1 or lab not in (5, 7, 9)): x = x.reshape(28, 28)[:, ::-1].ravel()
        pre = W @ x; a = pre - T; h = np.where(a >= 0, 1.0, -1.0).astype(np.float32)
        if SKIP: h = np.concatenate([x, h])
        T += np.where(pre - T > 0, QA, np.where(pre - T < 0, -1.0, 0.0)) if QA != 1 else np.sign(pre - T)
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
            v = sum(s * S[r] for r, s in d.items())[-H:]
            move = (v != 0) & ((v > 0) != (a >= 0)) & (np.abs(a) <= win)
            pr = np.arange(pool0, pool0 + M) % H
            dirs = np.where(move[pr], np.sign(v[pr]), 0.0).astype(np.float32)
            if dirs.any():
                cnt += dirs[:, None] * x[None, :]; np.clip(cnt, -SAT, SAT, out=cnt)
        if seen % B == 0 and F > 0:
            pr = np.arange(pool0, pool0 + M) % H
            cw = cnt * W[pr]
            idx = np.argpartition(cw, F, axis=1)[:, :F]
            vals = np.take_along_axis(cw, idx, axis=1)
            for j in range(M):
                sel = idx[j][vals[j] <= -TAU]
                W[pr[j], sel] *= -1
            cnt[:] = 0; pool0 = (pool0 + M) % H
    Ht = hid(Xte)
    if SKIP: Ht = np.concatenate([Xte, Ht], 1)
    acc = ((Ht @ S.T).argmax(1) // P == yte).mean()
    print(f"  ep{ep+1} {acc*100:.2f}% {time.time()-t0:.0f}s", flush=True)
