"""The fast-path kernels (issue 11, point 7): dense_argmax (forward + winner + the label's best
prototype in one call) and update_row_b2_asm (binary2 row update in asm_thumb). Their exact
armv6m machine code runs in unicorn and must match numpy and the viper twin bit for bit; the
asm is Thumb-1 only (tests/test_armv6m.py checks every native function of kernels_thumb.py);
the viper twin must also agree on the 64-bit unix port."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bitflip.armv6m import check_thumb1, find_function, load_module, run_case, run_function
from bitflip.armv6m.measure import thumb_params
from bitflip.training import reference as R

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware" / "bitflip"


@pytest.fixture(scope="module")
def mods(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("mpy")
    return (
        load_module(FIRMWARE / "kernels.py", "armv6m", d),
        load_module(FIRMWARE / "kernels_thumb.py", "armv6m", d),
        load_module(FIRMWARE / "kernels_fast.py", "armv6m", d),
    )


def test_new_asm_is_thumb1(mods) -> None:
    _, tm, _ = mods
    for name in ("dense_argmax_asm", "update_row_b2_asm"):
        assert check_thumb1(find_function(tm, name).code) > 100, name


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["viper", "asm"])
def test_dense_argmax_matches_numpy(variant: str) -> None:
    for nw in (0, 1, 2, 3, 4, 5, 6, 7, 13, 25):
        for nout in (0, 1, 3, 40):
            for base, lo, hi in ((0, -1, -1), (5, 5, 6), (7, 0, 3), (2, 30, 90), (0, 4, 4)):
                err = run_case("dense_argmax", variant, nw, nout, seed=nw * 100 + nout, lo=lo, hi=hi, base=base).error
                assert err is None, f"{variant} nw={nw} nout={nout} base={base} [{lo},{hi}): {err}"


def test_dense_argmax_ties_pick_the_lowest_index(mods) -> None:
    _, tm, fm = mods
    for nw in (1, 6, 13):
        x = np.zeros(nw, np.uint32)
        w = np.zeros((9, nw), np.uint32)
        w[[0, 1, 3]] = 1  # rows 2 and 4..8 tie at the top
        for mod, fn in ((fm, "dense_argmax"), (tm, "dense_argmax_asm")):
            out = np.zeros(9, np.int32)
            p = thumb_params(16, nw, 9, 32 * nw, 13, 17, 10)  # rows 10..18; range = rows 13..16
            r = run_function(mod, find_function(mod, fn), [x, w, out, p])
            assert (r.ret, int(p[6]), int(p[8])) == (12, 12, 14), fn


def test_dense_argmax_asm_and_viper_agree(mods) -> None:
    v, a = (run_case("dense_argmax", var, 13, 50, seed=9) for var in ("viper", "asm"))
    assert v.error is None and a.error is None
    assert v.run.ret == a.run.ret
    assert np.array_equal(v.args[2], a.args[2]) and np.array_equal(v.args[3][6:10], a.args[3][6:10])


def _update_case(rng: np.random.Generator, nw: int, pad: int, k: int, ks: int, up: int):
    n_in = 32 * nw - pad
    valid = R.valid_mask(n_in)
    s = rng.integers(0, 1 << 32, (4, nw), dtype=np.uint32) & valid
    aux = rng.integers(0, 1 << 32, (4, nw), dtype=np.uint32) & valid
    if nw > 2:
        aux[2, 1] = valid[1]  # a word with no weak bit to gain confidence
    x = rng.integers(0, 1 << 32, nw, dtype=np.uint32) & valid
    st = np.array([rng.integers(0, 1 << 32)], np.uint32)
    return n_in, s, aux, x, st


@pytest.mark.slow
def test_update_row_b2_asm_matches_numpy_and_viper(mods) -> None:
    km, tm, _ = mods
    rng = np.random.default_rng(3)
    for nw in (1, 2, 3, 6, 13):
        for pad in (0, 5, 31):
            for k, ks in ((0, 0), (2, 0), (3, 3), (5, 4), (1, 2)):
                for up in (0, 1):
                    n_in, s, aux, x, st = _update_case(rng, nw, pad, k, ks, up)
                    row = 2
                    cfg = {
                        "sizes": [n_in, 4],
                        "classes": 4,
                        "seed": 0,
                        "window": 0,
                        "margin": -1,
                        "k": [k],
                        "ks": ks,
                        "weights": "binary2",
                    }
                    ref = R.Reference(cfg)
                    ref.layers[0].s[:] = s
                    ref.layers[0].aux[:] = aux
                    ref.update(0, np.array([row]), np.array([bool(up)]), x, np.uint32(st[0]), k)
                    sv, av = s.copy(), aux.copy()
                    rv = run_function(
                        km, find_function(km, "update_row"), [2, sv, av, row, x, nw, n_in, up, k, ks, st, 0]
                    )
                    sa, aa = s.copy(), aux.copy()
                    p = thumb_params(24, 0, row, nw, n_in, up, k, ks, 0)
                    p[0] = st.view(np.int32)[0]
                    ra = run_function(tm, find_function(tm, "update_row_b2_asm"), [sa, aa, x, p])
                    where = f"nw={nw} pad={pad} k={k} ks={ks} up={up}"
                    assert np.array_equal(sv, ref.layers[0].s) and np.array_equal(av, ref.layers[0].aux), where
                    assert np.array_equal(sa, sv) and np.array_equal(aa, av), where
                    assert ra.ret == rv.ret == ref.totals["writes"], where


def test_fast_kernels_are_faster(mods) -> None:
    # the MNIST shapes: a 480-row half of the 10x96 layer over 400 bits; one row at k=5, ks=4
    km, tm, _ = mods
    rng = np.random.default_rng(1)
    x, w = rng.integers(0, 1 << 32, 13, dtype=np.uint32), rng.integers(0, 1 << 32, (480, 13), dtype=np.uint32)
    out = np.zeros(480, np.int32)
    fused = run_function(
        tm, find_function(tm, "dense_argmax_asm"), [x, w, out, thumb_params(16, 13, 480, 400, 0, 96, 0)]
    )
    dense = run_function(tm, find_function(tm, "dense_binary_asm"), [x, w, out, thumb_params(8, 13, 480, 400)])
    am = run_function(km, find_function(km, "argmax"), [out, 0, 480])
    assert fused.cycles < dense.cycles + am.cycles / 3  # the winner costs < 1/3 of an argmax pass
    n_in, s, aux, xx, st = _update_case(rng, 13, 0, 5, 4, 1)
    v = run_function(km, find_function(km, "update_row"), [2, s.copy(), aux.copy(), 1, xx, 13, n_in, 1, 5, 4, st, 0])
    p = thumb_params(24, 0, 1, 13, n_in, 1, 5, 4, 0)
    a = run_function(tm, find_function(tm, "update_row_b2_asm"), [s.copy(), aux.copy(), xx, p])
    assert a.cycles * 5 < v.cycles


def test_viper_dense_argmax_on_the_unix_port(tmp_path: Path, upy) -> None:
    rng = np.random.default_rng(4)
    cases = []
    for nw, nout in ((1, 5), (3, 7), (8, 9), (13, 30)):
        x = rng.integers(0, 1 << 32, nw, dtype=np.uint32)
        w = rng.integers(0, 1 << 32, (nout, nw), dtype=np.uint32)
        cases.append((nw, nout, x.tolist(), w.ravel().tolist()))
    (tmp_path / "d.json").write_text(json.dumps(cases))
    out = upy(f"""
import json
from array import array
from bitflip import kernels_fast as K
res = []
for nw, nout, x, w in json.load(open({str(tmp_path / "d.json")!r})):
    o = array('i', [0] * nout)
    p = array('i', [nw, nout, 32 * nw - 1, 2, 5, 0] + [0] * 10)
    r = K.dense_argmax(array('I', x), array('I', w), o, p)
    res.append([r, list(o), list(p[6:10])])
print(json.dumps(res))
""")
    got = json.loads(out.strip().splitlines()[-1])
    for (nw, nout, x, w), (r, o, p) in zip(cases, got):
        ref = (
            32 * nw
            - 1
            - 2
            * np.bitwise_count(np.array(x, np.uint32) ^ np.array(w, np.uint32).reshape(nout, nw)).sum(
                axis=1, dtype=np.int64
            )
        )
        assert o == ref.tolist()
        best = 2 + int(np.argmax(ref[2:5]))
        assert [r, p[0], p[2]] == [int(np.argmax(ref))] * 2 + [best]
        assert p[1] == ref[r] and p[3] == ref[best]


def _split_case(rng: np.random.Generator, nw: int, n: int, h: int, lo: int, hi: int):
    x = rng.integers(0, 1 << 32, nw, dtype=np.uint32)
    w = rng.integers(0, 1 << 32, (n, nw), dtype=np.uint32)
    w[h + 1] = x  # the best row of all in core 1's half (or a tie with core 0's best)
    return x, w


def test_two_core_modes_match_one_core_in_the_emulator(mods) -> None:
    """dense_argmax(_asm) leader (mode 1) and server (mode 2) in unicorn, asm and viper twin:
    the server runs its job (GO != SEEN), writes DONE = SEEN, polls once more and returns -2;
    the leader, given the server's results (DONE preset to the GO it writes), copies the range
    into the server's block, bumps GO, merges; winner, best and out equal one core's."""
    _, tm, fm = mods
    rng = np.random.default_rng(21)
    for nw, n, h, lo, hi in ((13, 40, 20, 16, 24), (6, 30, 15, 0, 10), (1, 12, 6, 8, 12), (4, 10, 5, 100, 110)):
        x, w = _split_case(rng, nw, n, h, lo, hi)
        one = np.zeros(n, np.int32)
        p1 = thumb_params(16, nw, n, 32 * nw - 3, lo, hi, 0)
        r1 = run_function(fm, find_function(fm, "dense_argmax"), [x, w, one, p1])
        for mod, fn in ((fm, "dense_argmax"), (tm, "dense_argmax_asm")):
            blk = np.zeros(36, np.int32)
            blk[:6] = [nw, h, 32 * nw - 3, lo, hi, 0]
            blk[14] = 1
            blk[16:22] = [nw, n - h, 32 * nw - 3, 0, 0, h]
            blk[30] = 2
            blk[32:36] = [7, 0, 1, 7]  # GO 7 = SEEN: no job yet
            out = np.zeros(n, np.int32)
            srv = blk[16:]  # a view: the server's block is the same memory
            idle = run_function(mod, find_function(mod, fn), [x, w[h:], out[h:], srv])
            assert idle.ret == -2 and blk[33] == 0, fn
            blk[32] = 8  # a job; the server copies nothing itself: the leader wrote lo/hi before GO
            blk[19:21] = [lo, hi]
            s = run_function(mod, find_function(mod, fn), [x, w[h:], out[h:], srv])
            assert s.ret == -2 and blk[33] == 8 and blk[35] == 8, fn
            blk[19:21] = [0, 0]
            blk[33] = 9  # the GO the leader is about to write
            lead = run_function(mod, find_function(mod, fn), [x, w, out, blk])
            where = f"{fn} nw={nw} n={n} h={h} [{lo},{hi})"
            assert blk[32] == 9 and list(blk[19:21]) == [lo, hi], where
            assert np.array_equal(out, one), where
            assert lead.ret == r1.ret == int(p1[6]) == int(blk[6]), where
            assert int(blk[8]) == int(p1[8]), where
            if int(p1[8]) >= 0:
                assert int(blk[9]) == int(p1[9]), where
