"""Defaults derived from the data (training/defaults.py): the class count, the board's memory
plan and an encoding chosen on the validation split; never on the test split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bitflip.boards import load as load_board
from bitflip.cli import main
from bitflip.data.dataset import stratified_folds
from bitflip.data.encoding import parse_encoding
from bitflip.data.registry import build
from bitflip.training import defaults
from bitflip.training.memory import check_fits
from bitflip.training.plan import TrainRequest, data_digest, prepare
from click.testing import CliRunner


def _blobs(seed: int, classes: int = 6, n: int = 900, f: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Class clusters in a few features, the rest noise: data nobody tuned the rule for."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 100, (classes, f))
    y = np.arange(n) % classes
    x = centres[y] + rng.normal(0, 12, (n, f))
    return x, y


def _csv(tmp_path: Path, classes: int = 6) -> Path:
    x, y = _blobs(1, classes)
    p = tmp_path / "blobs.csv"
    np.savetxt(p, np.c_[y, x], delimiter=",", fmt="%.3f")
    return p


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(defaults, "cache_dir", lambda: tmp_path / "cache" / "defaults")


def test_untuned_data_trains_with_no_flags(tmp_path: Path) -> None:
    out = tmp_path / "run"
    r = CliRunner().invoke(
        main, ["train", "--board", "host", "--dataset", str(_csv(tmp_path)), "--epochs", "3", "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    s = json.loads((out / "summary.json").read_text())
    assert s["model"].startswith("6x")  # one prototype group per class of the data, not the digits model
    assert "chosen on the validation split" in s["defaults"]
    enc = s["encoding"].split("+mi:")[0]
    assert enc in defaults.CANDIDATES or enc.count(",") == 1  # a candidate, or a coarse one with one more level
    assert s["test_accuracy"] > 0.6  # chance is 1/6; clusters in 12 features are easy for prototypes
    check_fits(s["sizes"], s["weights"], load_board("pico"), classes=6)


def test_choice_ignores_the_test_split(tmp_path: Path) -> None:
    x, y = _blobs(2)
    xt, yt = _blobs(3, n=300)
    a = build("a", x, y, xt, yt, "a", "test")
    b = build("b", x, y, xt[::-1].copy(), np.roll(yt, 7), "b", "test")  # other test labels and order
    tr, va = np.arange(0, 800), np.arange(800, 900)
    ca = defaults.choose(a, "a", "binary2", load_board("host"), tr, va)
    cb = defaults.choose(b, "b", "binary2", load_board("host"), tr, va)
    assert (ca.encoding, ca.model, ca.scores) == (cb.encoding, cb.model, cb.scores)


def test_choice_is_cached_and_deterministic(tmp_path: Path) -> None:
    req = TrainRequest(board="host", dataset=str(_csv(tmp_path)), epochs=1, out=tmp_path / "r")
    p1 = prepare(req)
    files = list((tmp_path / "cache" / "defaults").glob("*.json"))
    assert len(files) == 1
    p2 = prepare(req)
    assert (p1.enc.spec, p1.model, p1.cfg["id"]) == (p2.enc.spec, p2.model, p2.cfg["id"])
    assert p1.chosen == p2.chosen and "validation" in p1.chosen
    assert data_digest(p1.data) in files[0].name


def test_prototypes_follow_the_board_and_the_data(tmp_path: Path) -> None:
    x, y = _blobs(4, classes=3, n=60)
    small = build("s", x, y, x, y, "s", "test")
    # 20 samples per class: at most 20 // PER_PROTOTYPE prototypes, whatever the board holds
    assert defaults.prototypes(small, 24, "binary2", load_board("host"), y) == max(1, 20 // defaults.PER_PROTOTYPE)
    x, y = _blobs(5, classes=3, n=30000)
    big = build("b", x, y, x, y, "b", "test")
    p = defaults.prototypes(big, 4096, "binary2", load_board("pico"), y)
    assert 1 <= p < defaults.MAX_PROTOTYPES  # 4096 input bits: the Pico plan, not the data, limits P
    check_fits([4096, 3 * p], "binary2", load_board("pico"), classes=3)
    with pytest.raises(Exception, match="does not fit|needs"):
        check_fits([4096, 3 * (p + 1)], "binary2", load_board("pico"), classes=3)


def test_given_encoding_or_model_is_kept(tmp_path: Path) -> None:
    csv = _csv(tmp_path)
    p = prepare(TrainRequest(board="host", dataset=str(csv), encoding="thermo:3", epochs=1, out=tmp_path / "r"))
    assert p.enc.spec == "thermo:3" and p.model.startswith("6x") and p.chosen == ""
    p = prepare(TrainRequest(board="host", dataset=str(csv), model="6x2", epochs=1, out=tmp_path / "r"))
    assert p.model == "6x2" and p.chosen == ""


def test_irrelevant_columns_are_left_out_by_the_chosen_bit_selection(tmp_path: Path) -> None:
    """Four informative columns among twelve of noise: the defaults keep the informative bits
    (mi:PCT, chosen on validation), the run says which, and export + predict give the run's
    test accuracy."""
    rng = np.random.default_rng(7)
    n = 1500
    y = np.arange(n) % 4
    centres = rng.uniform(20, 80, (4, 4))
    x = np.c_[rng.uniform(0, 100, (n, 12)), centres[y] + rng.normal(0, 9, (n, 4))]
    csv = tmp_path / "noisy.csv"
    np.savetxt(csv, np.c_[y, x], delimiter=",", fmt="%.3f")
    out = tmp_path / "run"
    r = CliRunner().invoke(
        main, ["train", "--board", "host", "--dataset", str(csv), "--epochs", "3", "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    s = json.loads((out / "summary.json").read_text())
    assert "+mi:" in s["encoding"], s["defaults"]
    keep = s["encoding_keep"]
    assert len(keep) == s["sizes"][0] and all(k % 16 >= 12 for k in keep)  # level-major: column = bit % 16
    r = CliRunner().invoke(main, ["export", str(out), "-o", str(tmp_path / "m.bfm")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["predict", "--model-file", str(tmp_path / "m.bfm"), "--dataset", str(csv), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["accuracy"] == s["test_accuracy"]


def test_small_data_is_scored_by_stratified_folds() -> None:
    y = np.r_[np.zeros(23, int), np.ones(11, int), np.full(7, 2)]
    folds = stratified_folds(y, 3, 5)
    assert len(folds) == 5
    seen = np.concatenate([va for _, va in folds])
    assert sorted(seen.tolist()) == list(range(len(y)))  # every sample validates exactly once
    for tr, va in folds:
        assert not set(tr) & set(va) and len(tr) + len(va) == len(y)
        for c in range(3):  # stratified: each fold holds its share of every class, give or take one
            assert abs((y[va] == c).sum() - (y == c).sum() / 5) < 1
    assert max(len(va) for _, va in folds) - min(len(va) for _, va in folds) <= 1
    again = stratified_folds(y, 3, 5)
    assert all((a == c).all() and (b == d).all() for (a, b), (c, d) in zip(folds, again))
    other = stratified_folds(y, 4, 5)
    assert any(not np.array_equal(b, d) for (_, b), (_, d) in zip(folds, other))


def test_denser_prototypes_are_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = _blobs(4, classes=3, n=600)
    small = build("s", x, y, x, y, "s", "test")
    host = load_board("host")
    p1 = defaults.prototypes(small, 24, "binary2", host, y)
    assert p1 == 200 // defaults.PER_PROTOTYPE
    assert [defaults.prototypes(small, 24, "binary2", host, y, t) for t in defaults.DENSER] == [
        t * 200 // defaults.PER_PROTOTYPE for t in defaults.DENSER
    ]
    for name, short in [
        ("CANDIDATES", ("thermo:8",)),
        ("K_OUTS", (5,)),
        ("MI_PCTS", ()),
        ("HIDDEN_WIDTHS", ()),
        ("SMALL_REPEATS", 1),
    ]:
        monkeypatch.setattr(defaults, name, short)  # the prototype step only, once over 5 folds
    tr, va = np.arange(0, 500), np.arange(500, 600)
    c = defaults.choose(small, "s", "binary2", host, tr, va)
    n_in = parse_encoding(c.encoding, small.max_value, small.n_features).n_bits(small.n_features)
    tried = {k.split()[1] for k in c.scores if k.split()[0] == c.encoding}
    for t in defaults.DENSER:  # each tried on the chosen encoding, scored on validation like the rest
        assert f"3x{defaults.prototypes(small, n_in, 'binary2', host, y[tr], t)}" in tried


def test_a_coarse_thermometer_gets_a_level_where_the_information_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each class marks its own features with values above 210; the rest, noise up to 200,
    crosses the midpoint as often as not. One level at the midpoint cannot tell the two
    apart, a level above 200 can: step 1b adds it, chosen on validation."""
    monkeypatch.setattr(defaults, "CANDIDATES", ("thermo:1",))
    monkeypatch.setattr(defaults, "MI_PCTS", ())
    monkeypatch.setattr(defaults, "HIDDEN_WIDTHS", ())
    monkeypatch.setattr(defaults, "DENSER", ())
    monkeypatch.setattr(defaults, "K_OUTS", (5,))
    monkeypatch.setattr(defaults, "QUICK_ROWS", 600)
    rng = np.random.default_rng(11)
    n, f, classes = 2400, 24, 4
    y = np.arange(n) % classes
    x = rng.uniform(0, 200, (n, f))
    marks = rng.random((classes, f)) < 0.3
    x[marks[y]] = rng.uniform(211, 255, int(marks[y].sum()))
    data = build("marks", x, y, x[:100], y[:100], "marks", "test")
    tr, va = np.arange(0, 2100), np.arange(2100, n)
    c = defaults.choose(data, "marks", "binary2", load_board("host"), tr, va)
    assert any("," in k for k in c.scores)  # the one-more-level candidates were scored
    ts = [int(t) for t in c.encoding.removeprefix("thermo:").split(",")]
    assert len(ts) == 2 and max(ts) > 160, c.how  # above the midpoint, where the marks are
    one = next(v for k, v in c.scores.items() if k.startswith("thermo:1 "))
    assert max(c.scores.values()) > one + 0.03, c.how


def test_fashion_takes_its_hidden_layer_only_with_enough_rows_and_room() -> None:
    # hparams.LARGE_DEFAULT: without loading Fashion (CI does not fetch it), a stand-in with its
    # name and shape; the full set (54,000 rows after the validation split) gets the hidden
    # layer where the plan holds it, a subset or a small board keeps the no-hidden default
    from bitflip.data import Dataset
    from bitflip.training.hparams import LARGE_DEFAULT

    rows, model, encoding = LARGE_DEFAULT["fashion"]
    x = np.zeros((20, 784), np.uint8)
    y = np.arange(20, dtype=np.uint8) % 10
    data = Dataset("fashion", x, y, x, y, 255, "threshold:32", "stand-in")
    for board in ("host", "pico", "sim-pico", "pico2"):
        assert defaults.large_default(data, 54_000, "binary2", load_board(board)) == (encoding, model)
    assert defaults.large_default(data, rows - 1, "binary2", load_board("pico")) is None
    assert defaults.large_default(data, 54_000, "binary2", load_board("esp32")) is None  # 100 KiB heap
    mnist = Dataset("mnist", x, y, x, y, 255, "deskew+crop:20+threshold:32", "stand-in")
    assert defaults.large_default(mnist, 54_000, "binary2", load_board("pico")) is None
    n_in = parse_encoding(encoding, 255).n_bits(784)
    sizes = [n_in, int(model.split("-")[0]), 290]
    check_fits(sizes, "binary2", load_board("pico"), classes=10, pool_rows=32)
    assert n_in * sizes[1] // 8 + sizes[2] * 2 * 4 * ((sizes[1] + 31) // 32) <= 100_000  # the weight budget
