"""The pool rule for hidden layers (firmware pool.py): device and reference in lock-step,
nothing allocated in the hot path, the flip selection against a sorting oracle, and the
rule parameters checked before anything starts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bitflip.errors import UsageError
from bitflip.training import reference as R
from bitflip.training.hparams import rule_config
from conftest import reference_block, run_micropython


def _pool_cfg(sizes: list[int], weights: str, rows: int) -> dict:
    # small windows that wrap around the layer, a flush every 7 samples, flips halved
    # every 40 samples (an "epoch"), from the second epoch on k_out and tau grow by 1 per
    # epoch, a near-miss margin wide enough that correct samples vote too
    return {
        "sizes": sizes,
        "classes": 4,
        "seed": 5,
        "margin": -1,
        "window": 8,
        "k": [2] * (len(sizes) - 1),
        "ks": 2,
        "weights": weights,
        "epoch": 40,
        "anneal": 2,
        "pool": {"rows": rows, "every": 7, "tau": 1, "flips": 6, "near": 30, "tau_step": 1},
    }


@pytest.mark.parametrize("weights", ["binary2", "ternary"])
@pytest.mark.parametrize("sizes,rows", [([70, 40, 4 * 3], 16), ([70, 40, 24, 4 * 2], 24)], ids=["1h", "2h"])
def test_pool_training_allocates_nothing_and_matches_reference(
    tmp_path: Path, weights: str, sizes: list[int], rows: int
) -> None:
    n_in, count = sizes[0], 120
    cfg = _pool_cfg(sizes, weights, rows)
    ref, lab_pad, X, y = reference_block(tmp_path, cfg, 3, count)
    out = run_micropython(
        f"""
import json, hashlib, binascii, micropython
from array import array
from bitflip.rule import Trainer
t = Trainer(json.loads({json.dumps(json.dumps(cfg))}))
buf = bytearray(open('block.bin', 'rb').read())
c = 0  # a new global under the lock would grow the globals dict
micropython.heap_lock()
c = t.train_block(buf, {count}, 0, {lab_pad}, {R.words(n_in)})
micropython.heap_unlock()
h = hashlib.sha256()
for _, _, b in t.planes():
    h.update(b)
tot = {{}}
t.take_counters(tot)
pools = [[list(array("i", p.t)), [b - 256 if b > 127 else b for b in p.c], p.window()] for p in t.hidden.pools]
print(json.dumps({{'digest': binascii.hexlify(h.digest()).decode(), 'writes': tot['writes'], 'pools': pools,
                  'evidence': tot['evidence_bytes']}}))
""",
        cwd=tmp_path,
    )
    got = json.loads(out)
    want_pools = [[p.t.tolist(), p.c.ravel().tolist(), p.pos] for p in ref.hidden.pools]
    assert got == {
        "digest": ref.digest(),
        "writes": ref.totals["writes"],
        "pools": want_pools,
        "evidence": ref.totals["evidence_bytes"],
    }
    assert ref.totals["evidence_bytes"] > 2 * (count // 7) * sum(p.rows * p.layer.n_in for p in ref.hidden.pools)
    # the run exercised the rule: thresholds moved, windows moved on, hidden weights flipped
    assert all(np.any(p.t != 0) for p in ref.hidden.pools)
    assert all(p.pos == (count // 7 * p.rows) % p.layer.n_out for p in ref.hidden.pools)
    fresh = R.Reference(cfg)
    assert any(np.any(a.s != b.s) for a, b in zip(ref.layers[:-1], fresh.layers[:-1]))
    # the anneal took effect: without it the same run ends elsewhere
    plain = R.Reference(dict(cfg, anneal=0))
    for i in range(count):
        plain.train_sample(X[i], int(y[i]))
    assert plain.digest() != ref.digest() and ref.extra == 2
    # hidden layers are 1-bit under the pool rule, the top keeps the run's kind
    assert [len(layer.planes()) for layer in ref.layers] == [1] * (len(sizes) - 2) + [2]


@pytest.mark.parametrize("flips,tau", [(3, 1), (5, 4), (40, 2), (1, 9)])
def test_flush_row_flips_the_strongest_evidence_lowest_index_first(tmp_path: Path, flips: int, tau: int) -> None:
    """The device's histogram selection against a stable sort: many ties on purpose."""
    rng = np.random.default_rng(flips * 100 + tau)
    n_in, n_out, row = 75, 3, 1
    c = rng.integers(-6, 7, size=n_in)
    c[:4] = [127, -127, 127, -127]
    w = R.pack_bits(rng.random((n_out, n_in)) < 0.5)
    e = -c * R.unpack_pm(w[row], n_in)
    order = np.argsort(-e, kind="stable")[:flips]
    sel = order[e[order] >= tau]
    want = w.copy()
    bits = np.zeros(n_in, dtype=bool)
    bits[sel] = True
    want[row] ^= R.pack_bits(bits)
    (tmp_path / "w.bin").write_bytes(w.astype("<u4").tobytes())
    out = run_micropython(
        f"""
import json
from array import array
from bitflip.pool import flush_row
w = array('I', open('w.bin', 'rb').read())
c = bytearray([v & 0xFF for v in {c.tolist()}])
hist = array('i', bytes(512))
n = flush_row(c, 0, w, {row}, {R.words(n_in)}, {n_in}, {flips}, {tau}, hist)
print(json.dumps([n, list(w), list(c)]))
""",
        cwd=tmp_path,
    )
    n, got_w, got_c = json.loads(out)
    assert n == len(sel) and got_w == want.ravel().tolist() and got_c == [0] * n_in
    assert 0 < len(sel) <= flips or tau == 9  # tau 9: no counter reaches it, nothing flips


def test_pool_rule_parameters_are_checked() -> None:
    cfg = rule_config("fashion", [784, 64, 40], "binary2", 0, 10, {"pool": "48"}, n_train=600)
    # Fashion's hidden settings (hparams.HIDDEN) anneal from epoch 8
    assert cfg["pool"] == {"rows": 48, "every": 512, "tau": 8, "flips": 8, "near": 60, "tau_step": 4}
    assert cfg["epoch"] == 600 and cfg["anneal"] == 8 and cfg["window"] == 8 and cfg["k"] == [6, 9]
    cfg = rule_config("fashion", [784, 40], "binary2", 0, 10, {"anneal": "3"}, n_train=600)
    assert cfg["anneal"] == 3 and cfg["epoch"] == 600 and "pool" not in cfg
    # hidden layers train with the pool rule by default; pool=0 is rule v1 with the dataset's settings
    assert rule_config("fashion", [784, 64, 40], "binary2", 0, 10, {})["pool"]["rows"] == 32
    v1 = rule_config("fashion", [784, 64, 40], "binary2", 0, 10, {"pool": "0"})
    assert "pool" not in v1 and v1["window"] == 32 and v1["k"] == [6, 6]
    assert "pool" not in rule_config("fashion", [784, 40], "binary2", 0, 10, {})
    with pytest.raises(UsageError, match="needs a model with a hidden layer"):
        rule_config("fashion", [784, 40], "binary2", 0, 10, {"pool": "32"})
    with pytest.raises(UsageError, match="pool_tau must be within 1..127"):
        rule_config("fashion", [784, 64, 40], "binary2", 0, 10, {"pool": "32", "pool_tau": "0"})


def test_memory_plan_counts_the_pool_state_and_1_bit_hidden_layers() -> None:
    from bitflip import boards
    from bitflip.training.memory import buffers, check_fits

    b = buffers([784, 576, 290], "binary2", 2048, pool_rows=128)
    v1 = buffers([784, 576, 290], "binary2", 2048)
    assert b["weights"] == (25 * 4 * 576 + 16) + 2 * (18 * 4 * 290 + 16)  # hidden 1 plane, top 2
    assert v1["weights"] == 2 * (25 * 4 * 576 + 16) + 2 * (18 * 4 * 290 + 16)
    # thresholds + 128 counter rows of 784 int8 + window position + histogram + top votes
    assert b["pool_rule"] == (2304 + 16) + (128 * 784 + 16) + 32 + (512 + 16) + (304 + 16)
    assert "pool_rule" not in v1
    with pytest.raises(
        UsageError, match=r"784-576-10x29, pool rule with 128-unit windows .* largest that fits is 784-"
    ):
        check_fits([784, 576, 290], "binary2", boards.load("pico"), classes=10, pool_rows=128)
    # the refusal also names the largest window for the same model, and that one fits
    pico2 = boards.load("pico2")
    with pytest.raises(UsageError, match=r"\(or this model with --rule pool=\d+\)$") as e:
        check_fits([784, 560, 290], "binary2", pico2, classes=10, pool_rows=560)
    rows = int(str(e.value).rsplit("=", 1)[1].rstrip(")"))
    assert 0 < rows < 560 and check_fits([784, 560, 290], "binary2", pico2, classes=10, pool_rows=rows)
    with pytest.raises(UsageError):
        check_fits([784, 560, 290], "binary2", pico2, classes=10, pool_rows=rows + 1)
