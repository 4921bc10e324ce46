"""Viper kernels under the real MicroPython unix port, against the numpy reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bitflip.training import reference as R
from conftest import reference_block, run_micropython


def _save(tmp: Path, **arrays: np.ndarray) -> None:
    for name, a in arrays.items():
        (tmp / f"{name}.bin").write_bytes(np.ascontiguousarray(a, dtype="<u4").tobytes())


PRELUDE = """
import json
from array import array
from bitflip import kernels as K
def load(name):
    return array('I', open(name + '.bin', 'rb').read())
"""


def test_hash_and_step_key_match_numpy(tmp_path: Path) -> None:
    xs = [0, 1, 2, 12345, (1 << 30) - 1]
    out = run_micropython(
        PRELUDE
        + f"""
st = array('I', [0])
res = []
for s, t in [(0, 0), (7, 1), (123, 99999), (1 << 29, 5)]:
    K.step_key(st, s, t)
    res.append(st[0])
print(json.dumps({{'hash': [K.hash32(x) for x in {xs}], 'keys': res}}))
""",
        cwd=tmp_path,
    )
    got = json.loads(out)
    assert got["hash"] == [int(R.hash32(np.uint32(x))) for x in xs]
    assert got["keys"] == [int(R.step_key(s, t)) for s, t in [(0, 0), (7, 1), (123, 99999), (1 << 29, 5)]]


def test_dense_kernels_match_numpy(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    for n_in, n_out in [(1, 3), (31, 5), (32, 7), (70, 40), (784, 16)]:
        nw = R.words(n_in)
        valid = R.valid_mask(n_in)
        x = rng.integers(0, 2**32, nw, dtype=np.uint32) & valid
        s = rng.integers(0, 2**32, (n_out, nw), dtype=np.uint32) & valid
        z = rng.integers(0, 2**32, (n_out, nw), dtype=np.uint32) & valid
        s &= z | (rng.integers(0, 2, (n_out, nw), dtype=np.uint32) * 0xFFFFFFFF)
        _save(tmp_path, x=x, s=s, z=z)
        out = run_micropython(
            PRELUDE
            + f"""
x, s, z = load('x'), load('s'), load('z')
o = array('i', [0] * {n_out})
K.dense_binary(x, s, o, {nw}, {n_out}, {n_in})
b = list(o)
K.dense_ternary(x, s, z, o, {nw}, {n_out})
t = list(o)
bits = array('I', [0] * {R.words(n_out)})
K.sign_pack(o, bits, {n_out}, {R.words(n_out)})
print(json.dumps({{'b': b, 't': t, 'bits': list(bits), 'am': K.argmax(o, 0, {n_out})}}))
""",
            cwd=tmp_path,
        )
        got = json.loads(out)
        exp_b = n_in - 2 * np.bitwise_count(x[None, :] ^ s).sum(1, dtype=np.int64)
        exp_t = np.bitwise_count(z).sum(1, dtype=np.int64) - 2 * np.bitwise_count((x[None, :] ^ s) & z).sum(
            1, dtype=np.int64
        )
        assert got["b"] == exp_b.tolist(), (n_in, n_out)
        assert got["t"] == exp_t.tolist(), (n_in, n_out)
        assert got["bits"] == R.pack_bits(exp_t >= 0).tolist()
        assert got["am"] == int(np.argmax(exp_t))


def test_flip_row_vote_and_dirs_match_reference(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    n_in, n_out, seed, step, layer = 70, 12, 42, 1234, 1
    nw = R.words(n_in)
    valid = R.valid_mask(n_in)
    x = rng.integers(0, 2**32, nw, dtype=np.uint32) & valid
    w = rng.integers(0, 2**32, (n_out, nw), dtype=np.uint32) & valid
    dirs = rng.integers(0, 3, n_out)
    pre = rng.integers(-20, 20, n_in)
    _save(tmp_path, x=x, w=w, pre=pre.astype(np.int64) & 0xFFFFFFFF)
    out = run_micropython(
        PRELUDE
        + f"""
x, w = load('x'), load('w')
pre = array('i', load('pre'))
dirs = bytearray({dirs.tolist()})
v = array('i', [0] * {n_in})
K.vote(w, w, 0, dirs, {nw}, {n_out}, {n_in}, v)
hd = bytearray({n_in})
idx = array('H', [0] * {n_in})
cnt = K.hidden_dirs(v, pre, hd, {n_in}, 6, idx)
st = array('I', [0])
K.step_key(st, {seed}, {step})
flips = [K.flip_row(w, j, x, {nw}, {n_in}, dirs[j] == 1, 2, st, {layer}) for j in range({n_out}) if dirs[j]]
print(json.dumps({{'v': list(v), 'hd': list(hd), 'cnt': cnt, 'idx': list(idx)[:cnt], 'flips': flips, 'w': list(w)}}))
""",
        cwd=tmp_path,
    )
    got = json.loads(out)
    d = np.where(dirs == 1, 1, np.where(dirs == 2, -1, 0))
    v = (d[:, None] * R.unpack_pm(w, n_in)).sum(0)
    assert got["v"] == v.tolist()
    err = (v != 0) & ((v > 0) != (pre >= 0)) & (pre <= 6) & (pre >= -7)
    assert got["hd"] == np.where(err, np.where(v > 0, 1, 2), 0).tolist()
    assert got["cnt"] == int(err.sum()) and got["idx"] == np.nonzero(err)[0].tolist()
    rows = np.nonzero(d)[0]
    wrong = x[None, :] ^ w[rows]
    wrong = np.where((d[rows] > 0)[:, None], wrong, ~wrong) & valid[None, :]
    f = wrong & R.draws(R.row_keys(R.step_key(seed, step), layer, rows), nw, 2)
    w2 = w.copy()
    w2[rows] ^= f
    assert got["flips"] == np.bitwise_count(f).sum(1).tolist()
    assert got["w"] == w2.ravel().tolist()


def test_crc32_check_matches_zlib(tmp_path: Path) -> None:
    out = run_micropython(
        PRELUDE
        + """
import binascii
t = array('I', [0] * 256)
K.crc32_table(t)
ok = []
for n in (0, 1, 5, 300):
    data = bytes((i * 7 + 3) % 256 for i in range(n))
    c = binascii.crc32(data)
    buf = bytearray(b'zz') + data + bytes([c & 255, (c >> 8) & 255, (c >> 16) & 255, (c >> 24) & 255])
    good = K.crc32_check(buf, 2, n, t)
    buf[2 + n] ^= 1
    ok.append((good, K.crc32_check(buf, 2, n, t)))
print(json.dumps(ok))
""",
        cwd=tmp_path,
    )
    assert json.loads(out) == [[1, 0]] * 4


@pytest.mark.parametrize(
    "weights,margin",
    [("binary", 2), ("binary2", 2), ("ternary", 2), ("binary2", -1)],
    ids=["binary", "binary2", "ternary", "binary2-fast"],
)
@pytest.mark.parametrize("sizes", [[70, 4 * 3], [70, 40, 4 * 3], [70, 40, 24, 4 * 2]], ids=["0h", "1h", "2h"])
def test_training_allocates_nothing_and_matches_reference(
    tmp_path: Path, weights: str, margin: int, sizes: list[int]
) -> None:
    """heap_lock() around a block of training: any allocation in the hot path raises; the
    weights after the block equal the numpy reference's, bit for bit (binary2 without margin
    on a prototype-only model takes fast.py)."""
    n_in, count = sizes[0], 60
    cfg = {
        "sizes": sizes,
        "classes": 4,
        "seed": 9,
        "margin": margin,
        "window": 6,
        "k": [2] * (len(sizes) - 1),
        "ks": 2,
        "weights": weights,
    }
    ref, lab_pad, _, _ = reference_block(tmp_path, cfg, 11, count)
    out = run_micropython(
        f"""
import json, hashlib, binascii, micropython
from bitflip.rule import Trainer
t = Trainer(json.loads({json.dumps(json.dumps(cfg))}))
buf = bytearray(open('block.bin', 'rb').read())
micropython.heap_lock()
c = t.train_block(buf, {count}, 0, {lab_pad}, {R.words(n_in)})
micropython.heap_unlock()
h = hashlib.sha256()
for _, _, b in t.planes():
    h.update(b)
tot = {{}}
t.take_counters(tot)
print(json.dumps({{'digest': binascii.hexlify(h.digest()).decode(), 'writes': tot['writes'], 'step': t.step}}))
""",
        cwd=tmp_path,
    )
    got = json.loads(out)
    assert got == {"digest": ref.digest(), "writes": ref.totals["writes"], "step": count}
    assert ref.totals["writes"] > 0
