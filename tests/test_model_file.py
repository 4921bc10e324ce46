"""The model file (.bfm) and the board's Model API: one module (firmware/bitflip/modelfile.py)
writes and reads it on both sides; the board encodes raw values exactly as the host does,
predicts what the host predicts, and learns bit-exactly like the host reference, with the
heap locked after load()."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from bitflip.data import images
from bitflip.data.encoding import parse_encoding
from bitflip.data.scaling import Scaling
from bitflip.device import modelfile as MF
from bitflip.errors import UsageError
from bitflip.training.reference import Reference
from bitflip.use.modelfile import ModelFile
from conftest import run_micropython
from model_helpers import make_model, slanted


# --- the file ----------------------------------------------------------------------------------
def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    mf, _, _ = make_model({"sizes": [0, 40, 4 * 5], "pool": True}, "thermo:2", 12, scaling="minmax")
    n = mf.write(tmp_path / "m.bfm")
    back = ModelFile.read(tmp_path / "m.bfm")
    assert n == (tmp_path / "m.bfm").stat().st_size
    assert back.to_bytes() == mf.to_bytes()  # deterministic, and nothing lost
    assert back.planes == mf.planes and back.cfg == mf.cfg and back.labels == mf.labels
    assert (back.step, back.fill, back.pos) == (mf.step, mf.fill, mf.pos)
    assert back.meta["digest"] == mf.digest()
    assert np.array_equal(back.scaling.low, mf.scaling.low) and np.array_equal(back.scaling.span, mf.scaling.span)
    data = (tmp_path / "m.bfm").read_bytes()
    assert data[:4] == b"BFMF" and int.from_bytes(data[8:12], "little") == len(data)


def test_planes_start_4_byte_aligned_in_the_file() -> None:
    mf, _, _ = make_model({"sizes": [0, 4 * 3]}, "thermo:3", 13)
    data = mf.to_bytes()
    off = data.index(b"PLNS") + 12
    for _, _, p in mf.planes:
        assert off % 4 == 0 and data[off + 8 : off + 8 + len(p)] == p
        off += 8 + len(p)


def _damaged(data: bytes) -> list[tuple[str, bytes]]:
    out = [
        ("empty", b""),
        ("magic", b"XXXX" + data[4:]),
        ("version", data[:4] + b"\x09\x00" + data[6:]),
        ("crc", data[:-1] + bytes([data[-1] ^ 1])),
        ("flipped byte", data[:40] + bytes([data[40] ^ 0x10]) + data[41:]),
        ("extra bytes", data + b"\0\0\0\0"),
    ]
    for cut in (3, 16, 20, 60, len(data) // 2, len(data) - 5, len(data) - 1):
        out.append((f"cut at {cut}", data[:cut]))
    return out


def test_bad_files_are_one_clear_error_on_the_host(tmp_path: Path) -> None:
    mf, _, _ = make_model({"sizes": [0, 4 * 3]}, "thermo:3", 13)
    for what, bad in _damaged(mf.to_bytes()):
        p = tmp_path / "bad.bfm"
        p.write_bytes(bad)
        with pytest.raises(UsageError) as e:
            ModelFile.read(p)
        assert str(e.value).startswith(f"{p}: ") and "\n" not in str(e.value), what
    with pytest.raises(UsageError, match="no such file"):
        ModelFile.read(tmp_path / "missing.bfm")


def test_bad_files_exit_2_from_the_cli(tmp_path: Path) -> None:
    from bitflip.cli import main
    from click.testing import CliRunner

    p = tmp_path / "bad.bfm"
    p.write_bytes(b"BFMF\x01\x00\x10\x00" + bytes(20))
    r = CliRunner().invoke(main, ["predict", "--model-file", str(p), "--dataset", "digits"])
    assert r.exit_code == 2
    assert r.output.count("\n") == 1 and "bad model file" in r.output


def test_bad_files_are_one_value_error_on_the_board(tmp_path: Path) -> None:
    mf, _, _ = make_model({"sizes": [0, 4 * 3]}, "thermo:3", 13)
    cases = _damaged(mf.to_bytes())
    for i, (_, bad) in enumerate(cases):
        (tmp_path / f"bad{i}.bfm").write_bytes(bad)
    out = run_micropython(
        f"""
from bitflip.model import Model
for i in range({len(cases)}):
    try:
        Model.load('bad%d.bfm' % i)
        print('LOADED')
    except ValueError as e:
        print('ValueError', e)
try:
    Model.load('nothing.bfm')
except ValueError as e:
    print('ValueError', e)
""",
        cwd=tmp_path,
    )
    lines = out.strip().splitlines()
    assert len(lines) == len(cases) + 1
    assert all(ln.startswith("ValueError ") for ln in lines), lines
    assert all("model file" in ln for ln in lines)


def test_unknown_sections_are_skipped_and_unknown_layer_types_refused() -> None:
    mf, _, _ = make_model({"sizes": [0, 4 * 3]}, "thermo:3", 13)
    info = mf.info()
    buf = io.BytesIO()
    secs = MF.sections

    def more(i: dict) -> list:
        return secs(i) + [(b"XTRA", b"later versions may add this")]

    MF.sections = more
    try:
        MF.write(buf, info, mf.planes)
    finally:
        MF.sections = secs
    back = ModelFile.from_bytes(buf.getvalue())
    assert back.planes == mf.planes
    info["layers"][0]["type"] = 7
    buf = io.BytesIO()
    MF.write(buf, info, mf.planes)
    with pytest.raises(UsageError, match="layer type 7 is not known"):
        ModelFile.from_bytes(buf.getvalue())


# --- encoding on the board ---------------------------------------------------------------------
def _device_encode(tmp_path: Path, mf: ModelFile, x: np.ndarray, as_list: bool = False) -> np.ndarray:
    mf.write(tmp_path / "m.bfm")
    (tmp_path / "x.json").write_text(json.dumps(x.tolist()))
    nw = (mf.sizes[0] + 31) // 32
    out = run_micropython(
        f"""
import json, binascii
from bitflip.model import Model
m = Model.load('m.bfm')
rows = json.loads(open('x.json').read())
res = []
for r in rows:
    v = r if {as_list} else bytes(r)
    m.enc.encode(v, m.t.x)
    res.append(binascii.hexlify(m.t.x).decode())
print(json.dumps(res))
""",
        cwd=tmp_path,
    )
    return np.array([np.frombuffer(bytes.fromhex(h), "<u4")[:nw] for h in json.loads(out)])


@pytest.mark.parametrize(
    "spec",
    [
        "deskew+crop:20+threshold:32",
        "deskew+threshold:100",
        "crop:24+pool:2+thermo:3",
        "pool:4+thermo:64,128,192",
        "deskew+pool:2+crop:10+thermo:2",
        "deskew+crop:20+thermo:2+mi:35",
    ],
)
def test_board_encodes_images_bit_for_bit_like_the_host(tmp_path: Path, spec: str) -> None:
    rng = np.random.default_rng(5)
    x = np.concatenate([slanted(12), rng.integers(0, 256, (4, 784)), np.zeros((1, 784), int)]).astype(np.uint8)
    x[-1, 300] = 255  # one pixel of ink
    mf, _, _ = make_model({"sizes": [0, 10 * 2]}, spec, 784, classes=10)
    got = _device_encode(tmp_path, mf, x)
    assert np.array_equal(got, mf.encode(x))


def test_board_scales_integer_features_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    mf, _, x = make_model({"sizes": [0, 4 * 3]}, "thermo:3", 9, scaling="minmax")
    assert mf.scaling.integer()
    x = np.concatenate([x[:20], rng.integers(-40000, 40000, (10, 9))])  # outside the training range too
    got = _device_encode(tmp_path, mf, x, as_list=True)
    assert np.array_equal(got, mf.encode(x))


def test_integer_deskew_stays_within_31_bits() -> None:
    # the board's arithmetic: every intermediate of the worst images of the largest side
    side = images.MAX_SIDE
    worst = [np.full((1, side * side), 255), np.tril(np.full((side, side), 255)).reshape(1, -1)]
    for img in worst:
        m = int(img.sum())
        ys = np.arange(side)
        r = img.reshape(side, side).sum(axis=1)
        assert m * 2 * images.Q < 2**30 and int((r * ys * ys).sum()) < 2**30
        assert 255 * images.Q * images.Q < 2**30 and images.AMAX * side * images.Q // 2 < 2**30
        assert images.BIG << images.AB <= 2**30
        images.deskew(img, side)


def test_float_and_integer_deskew_agree_within_one_level() -> None:
    x = slanted(30)
    assert np.abs(images.deskew(x, 28) - images.deskew_float(x, 28)).max() <= 1


# --- predict and learn on the board ------------------------------------------------------------
CASES = {
    "digits-like binary2": ({"sizes": [0, 4 * 5], "weights": "binary2"}, "thermo:3,7,11", 64),
    "ternary": ({"sizes": [0, 4 * 4], "weights": "ternary"}, "thermo:2", 30),
    "pool hidden": ({"sizes": [0, 24, 4 * 3], "pool": True}, "thermo:2", 30),
    "flip hidden binary": ({"sizes": [0, 20, 4 * 3], "weights": "binary"}, "thermo:2", 30),
    "images": ({"sizes": [0, 4 * 3]}, "deskew+crop:20+threshold:32", 784),
    "selected bits": ({"sizes": [0, 4 * 4]}, "thermo:8+mi:30", 24),
    "selected image bits": ({"sizes": [0, 4 * 3]}, "crop:24+pool:2+thermo:3+mi:40", 784),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_board_predicts_and_learns_like_the_host(tmp_path: Path, case: str) -> None:
    """Model.load on the unix port; predict/scores on test rows equal the host's; then 40
    learn() calls (heap locked) end with the reference's digest, and save() writes a file
    the host reads back with that digest and rule state."""
    over, spec, n_feat = CASES[case]
    mf, _, x = make_model(over, spec, n_feat)
    y = np.random.default_rng(3).integers(0, mf.classes, len(x))
    mf.write(tmp_path / "m.bfm")
    (tmp_path / "x.bin").write_bytes(x.astype(np.uint8).tobytes())
    # the host: predictions, scores, then the same learn sequence on the reference
    pred = mf.predict(x)
    scores = mf.scores(x)
    learner = mf.reference()
    rows = mf.encode(x)
    right = [learner.train_sample(rows[i], int(y[i])) for i in range(40)]
    out = run_micropython(
        f"""
import json, micropython
from bitflip.model import Model
m = Model.load('m.bfm')
data = open('x.bin', 'rb').read()
F = {n_feat}
rows = [data[i * F:(i + 1) * F] for i in range(len(data) // F)]
labels = {[int(v) for v in y[:40]]}
pred = bytearray(len(rows))
right = bytearray(40)
sc = []
def predict_all():  # locals: a new global name would grow the globals dict under the lock
    for i in range(len(rows)):
        pred[i] = m.predict(rows[i])
def learn_all():
    for i in range(40):
        right[i] = m.learn(rows[i], labels[i])
micropython.heap_lock()
predict_all()
micropython.heap_unlock()
for r in rows:
    m.predict(r)
    sc.append(list(m.scores()))
micropython.heap_lock()
learn_all()
micropython.heap_unlock()
m.save('after.bfm')
print(json.dumps({{'pred': list(pred), 'scores': sc, 'right': list(right), 'digest': m.digest()}}))
""",
        cwd=tmp_path,
    )
    got = json.loads(out)
    assert got["pred"] == pred.tolist()
    assert got["scores"] == scores.tolist()
    assert got["right"] == [int(r) for r in right]
    assert got["digest"] == learner.digest()
    assert got["digest"] != mf.digest()  # it learned something
    after = ModelFile.read(tmp_path / "after.bfm")
    assert after.digest() == learner.digest() and after.meta["learned_on_board"] == 40
    assert after.step == learner.step and after.fill == learner.fill
    assert after.pos == [p.pos for p in getattr(learner.hidden, "pools", [])]


def test_learn_from_a_fresh_model_fills_prototypes_like_the_host(tmp_path: Path) -> None:
    # a model that has seen nothing: learn() takes the first samples as prototypes
    mf, _, x = make_model({"sizes": [0, 4 * 2]}, "thermo:2", 20, n_train=0)
    assert mf.fill == [2, 2, 2, 2]
    y = np.arange(30) % 4
    ref = mf.reference()
    rows = mf.encode(x[:30])
    for i in range(30):
        ref.train_sample(rows[i], int(y[i]))
    mf.write(tmp_path / "m.bfm")
    out = run_micropython(
        f"""
from bitflip.model import Model
m = Model.load('m.bfm')
for i, r in enumerate({x[:30].tolist()}):
    m.learn(r, i % 4)
print(m.digest(), list(m.t.fill))
""",
        cwd=tmp_path,
    )
    digest, fill = out.split(maxsplit=1)
    assert digest == ref.digest() and fill.strip() == "[0, 0, 0, 0]"


def test_predict_rejects_wrong_lengths_and_labels(tmp_path: Path) -> None:
    mf, _, _ = make_model({"sizes": [0, 4 * 2]}, "thermo:2", 20)
    mf.write(tmp_path / "m.bfm")
    out = run_micropython(
        """
from bitflip.model import Model
m = Model.load('m.bfm')
for f in (lambda: m.predict(bytes(19)), lambda: m.learn(bytes(20), 4), lambda: m.learn(bytes(20), -1)):
    try:
        f()
    except ValueError as e:
        print('ValueError', e)
print(m.labels, m.n_features, m.classes)
""",
        cwd=tmp_path,
    )
    lines = out.strip().splitlines()
    assert lines[0] == "ValueError expected 20 feature values, got 19"
    assert lines[1:3] == ["ValueError label out of range"] * 2
    assert lines[3] == "['0', '1', '2', '3'] 20 4"


def test_scaling_kinds_survive_the_file() -> None:
    for sc in (Scaling("none"), Scaling("unit"), Scaling("minmax", np.array([0.5, -2.0]), np.array([1.5, 0.0]))):
        mf, _, _ = make_model({"sizes": [0, 4 * 2]}, "thermo:2", 2)
        mf.scaling = sc
        back = ModelFile.from_bytes(mf.to_bytes())
        assert back.scaling.kind == sc.kind
        if sc.low is not None:
            assert np.array_equal(back.scaling.low, sc.low) and np.array_equal(back.scaling.span, sc.span)


def test_reference_from_a_model_file_predicts_like_the_trained_one() -> None:
    mf, ref, x = make_model({"sizes": [0, 24, 4 * 3], "pool": True}, "thermo:2", 30)
    rows = mf.encode(x)
    assert np.array_equal(mf.reference().predict(rows), ref.predict(rows))
    assert isinstance(mf.reference(), Reference)
    assert parse_encoding("thermo:2", 255).thresholds == mf.encoding.thresholds


@pytest.mark.parametrize("target", ["rp2", "esp32", "esp32c3"])
def test_model_api_allocates_nothing_in_each_targets_module_set(tmp_path: Path, target: str) -> None:
    """The board's view of the sources (host-only code left out; rp2 with its asm_thumb
    kernels' stand-ins and a layer wide enough for the dual-core split when cores=2):
    predict and learn under heap_lock, digest equal to the reference."""
    from test_targets import run_as

    mf, _, x = make_model({"sizes": [0, 4 * 70]}, "thermo:3,7,11", 64)
    mf.write(tmp_path / "m.bfm")
    (tmp_path / "x.bin").write_bytes(x.astype(np.uint8).tobytes())
    y = [int(v) for v in np.random.default_rng(8).integers(0, 4, 30)]
    ref = mf.reference()
    rows = mf.encode(x)
    for i in range(30):
        ref.train_sample(rows[i], y[i])
    cores = 2 if target == "rp2" else 1
    out = run_as(
        target,
        f"""
import micropython
from bitflip import accel
from bitflip.model import Model
m = Model.load('m.bfm', cores={cores})
data = open('x.bin', 'rb').read()
rows = [data[i * 64:(i + 1) * 64] for i in range(len(data) // 64)]
labels = {y}
pred = bytearray(len(rows))
def go():
    for i in range(len(rows)):
        pred[i] = m.predict(rows[i])
    for i in range(30):
        m.learn(rows[i], labels[i])
micropython.heap_lock()
go()
micropython.heap_unlock()
print(accel.KIND, m.t.worker is not None, bytes(pred).hex(), m.digest())
if m.t.worker is not None:
    m.t.worker.stop()
m.close()
""",
        tmp_path,
    )
    kind, split, pred, digest = out.split()[-4:]
    assert kind == ("asm_thumb" if target == "rp2" else "viper")
    assert split == str(target == "rp2")
    assert bytes.fromhex(pred) == bytes(mf.predict(x).astype(np.uint8).tolist())
    assert digest == ref.digest()
