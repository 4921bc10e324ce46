"""`bitflip compare` and the numpy baselines: they learn, their counts add up, the float
backprop matches finite differences, the CLI's JSON has a stable shape, bad input exits 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bitflip.cli import main
from bitflip.data import load_dataset
from bitflip.data.encoding import parse_encoding
from bitflip.measure import baselines as B
from bitflip.measure.compare import CompareRequest, run
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def digits_bits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ds = load_dataset("digits")
    enc = parse_encoding(ds.default_encoding, ds.max_value).fit(ds.x_train, ds.y_train, ds.n_classes)
    return enc.bits(ds.x_train), ds.y_train, enc.bits(ds.x_test), ds.y_test


def _method(name: str, hidden: tuple[int, ...] = ()) -> B.Method:
    return next(m for m in B.methods(hidden) if m.name == name)


@pytest.mark.parametrize("name, hidden, floor", [("logreg", (), 0.90), ("mlp-sgd", (32,), 0.90), ("ste", (32,), 0.75)])
def test_baselines_learn_digits(digits_bits, name: str, hidden: tuple[int, ...], floor: float) -> None:
    xtr, ytr, xte, yte = digits_bits
    r = B.run(_method(name, hidden), xtr.shape[1], 10, xtr, ytr, xte, yte, B.Config(epochs=3))
    assert r.test_accuracy >= floor, (r.method, r.test_accuracy, r.val_accuracy)  # chance is 0.10
    assert r.lr in r.val_accuracy and r.val_accuracy[r.lr] == max(r.val_accuracy.values())


def test_counts_are_exact(digits_bits) -> None:
    xtr, ytr, xte, yte = digits_bits
    cfg = B.Config(epochs=2, batch=50)
    r = B.run(_method("mlp-sgd", (16,)), xtr.shape[1], 10, xtr, ytr, xte, yte, cfg)
    n_params = xtr.shape[1] * 16 + 16 + 16 * 10 + 10  # digits' default bits (thermo:4+mi:50)
    steps = cfg.epochs * -(-len(xtr) // cfg.batch)  # the last, short batch is a step too
    assert (r.n_params, r.steps) == (n_params, steps)
    assert r.param_updates == steps * n_params
    # forward + weight gradients on both layers, input gradient of the second layer only
    n_in = xtr.shape[1]  # 128
    assert r.ops == {"mac": cfg.epochs * len(xtr) * (2 * (n_in * 16 + 16 * 10) + 16 * 10)}
    assert r.model_bytes == 4 * n_params and r.weight_bits == 32
    s = B.run(_method("ste", (16,)), xtr.shape[1], 10, xtr, ytr, xte, yte, cfg)
    assert s.param_updates == steps * n_params  # latent floats, all rewritten each step
    assert s.ops["xnor_words"] == cfg.epochs * len(xtr) * (16 * (n_in // 32) + 10 * 1)
    assert s.model_bytes == (n_in * 16 + 16 * 10) // 8 + 4 * (16 + 10)


def test_deterministic(digits_bits) -> None:
    xtr, ytr, xte, yte = digits_bits
    m = _method("ste", (8,))
    a, b = (B.run(m, xtr.shape[1], 10, xtr[:300], ytr[:300], xte, yte, B.Config(epochs=1, seed=3)) for _ in range(2))
    assert (a.test_accuracy, a.lr, a.val_accuracy) == (b.test_accuracy, b.lr, b.val_accuracy)


def test_validation_slice_is_from_train_only() -> None:
    fit, val = B.split_validation(1000, 0.1, seed=0)
    assert len(val) == 100 and len(fit) == 900
    assert sorted(np.concatenate([fit, val]).tolist()) == list(range(1000))


@pytest.mark.parametrize("sizes, pool", [([7, 5, 4, 3], 1), ([7, 5, 12], 4)])
def test_float_backprop_matches_finite_differences(sizes: list[int], pool: int) -> None:
    """The trusted oracle: every analytic gradient against central differences, in float64;
    pool 4 is the rule's shape (4 top units per class, the class logit their max)."""
    rng = np.random.default_rng(0)
    model = B.MLP(sizes, binary=False, rng=rng, pool=pool)
    model.W = [w.astype(np.float64) for w in model.W]
    model.b = [rng.normal(0, 0.1, b.shape) for b in model.b]  # nonzero: the bias path is checked too
    x = rng.normal(size=(6, 7))
    y = rng.integers(0, 3, size=6)
    _, grads = model.loss_grads(x, y)
    eps = 1e-6
    for p, g in zip(model.params, grads):
        num = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + eps
            up = model.loss_grads(x, y)[0]
            p[i] = old - eps
            down = model.loss_grads(x, y)[0]
            p[i] = old
            num[i] = (up - down) / (2 * eps)
        np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-8)


def test_ste_forward_is_binary() -> None:
    """The STE net's class scores depend on sign(W) only, as on a device."""
    rng = np.random.default_rng(1)
    model = B.MLP([9, 6, 3], binary=True, rng=rng)
    x = B.to_pm1(rng.integers(0, 2, size=(5, 9)))
    before = model.forward(x)[0]
    model.W = [w * rng.uniform(0.1, 1.0, size=w.shape) for w in model.W]  # same signs, other magnitudes
    np.testing.assert_array_equal(model.forward(x)[0], before)


def test_rule_shape_nets_have_the_rules_weights_and_learn() -> None:
    res = run(CompareRequest(dataset="digits", epochs=2, matched=True, only=("rule", "mlp-sgd-shape", "ste-shape")))
    rule, sgd, ste = res["rows"]
    assert (sgd["method"], ste["method"]) == ("mlp-sgd-shape", "ste-shape")
    assert sgd["sizes"] == ste["sizes"] == rule["sizes"]  # 128-1000: 100 prototypes per class
    n_w = rule["sizes"][0] * rule["sizes"][1]
    assert ste["model_bytes"] == n_w // 8 + 4 * rule["sizes"][1]  # sign bits + a float bias per unit
    assert sgd["test_accuracy"] > 0.85 and ste["test_accuracy"] > 0.75  # chance is 0.10
    assert sgd["param_updates"] >= 50 * rule["param_updates"], (sgd["param_updates"], rule["param_updates"])


def test_rule_writes_20x_fewer_than_sgd_of_the_same_size() -> None:
    # "the same size" = as many weights as the rule (its 10x20 prototypes hold 20x the weights
    # of a 10-way linear model); the same-hidden-width ratio is reported by the benchmark
    res = run(CompareRequest(dataset="digits", epochs=2, matched=True, only=("rule", "mlp-sgd-matched")))
    rule, sgd = res["rows"]
    assert (rule["method"], sgd["method"]) == ("rule", "mlp-sgd-matched")
    n_rule = sum(a * b for a, b in zip(rule["sizes"][:-1], rule["sizes"][1:]))
    n_sgd = sum(a * b for a, b in zip(sgd["sizes"][:-1], sgd["sizes"][1:]))
    assert abs(n_sgd - n_rule) <= n_rule * 0.02
    assert sgd["param_updates"] >= 20 * rule["param_updates"], (sgd["param_updates"], rule["param_updates"])


def test_compare_json_schema() -> None:
    r = CliRunner().invoke(main, ["compare", "--dataset", "digits", "--epochs", "1", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert {"dataset", "model", "weights", "encoding", "epochs", "seed", "batch", "n_train", "n_test", "rows"} <= set(d)
    assert (d["dataset"], d["epochs"], d["n_train"], d["n_test"]) == ("digits", 1, 1437, 360)
    assert [row["method"] for row in d["rows"]] == ["rule", "mlp-sgd", "ste", "logreg"]
    for row in d["rows"]:
        assert {
            "method",
            "sizes",
            "test_accuracy",
            "weight_bits",
            "param_updates",
            "ops",
            "model_bytes",
            "train_state_bytes",
            "lr",
            "epochs",
        } <= set(row)
        assert 0.0 <= row["test_accuracy"] <= 1.0
        assert row["param_updates"] > 0 and row["model_bytes"] > 0 and row["epochs"] == 1
        assert row["ops"] and all(isinstance(v, int) and v > 0 for v in row["ops"].values())
    rule = d["rows"][0]
    assert rule["lr"] is None and rule["weight_bits"] == 1 and rule["sizes"] == [128, 1000]
    assert set(rule["ops"]) == {"xor_words", "upd_words"}
    for row in d["rows"][1:]:
        assert row["lr"] is not None and f"{row['lr']:g}" in row["val_accuracy"]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--epochs", "0"], "--epochs must be positive"),
        (["--dataset", "nosuchdata"], "unknown dataset 'nosuchdata'"),
        (["--model", "abc"], "bad model"),
        (["--only", "rule,nosuch"], "'nosuch' cannot run here (no such method)"),
        (["--batch", "0"], "--batch must be positive"),
        (["--limit", "-5"], "--limit must be positive"),
    ],
)
def test_bad_input_is_one_line_exit_2(args: list[str], needle: str) -> None:
    r = CliRunner().invoke(main, ["compare", *args])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], r.stderr


def test_accuracy_benchmark_quick(tmp_path: Path) -> None:
    out = tmp_path / "acc.md"
    p = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "accuracy.py"), "--dataset", "digits", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    text = out.read_text()
    assert text == p.stdout
    assert "(measured)" in text and "python benchmarks/accuracy.py --dataset digits --quick" in text
    assert "| rule |" in text and "| logreg |" in text and "QUICK" in text


def test_accuracy_benchmark_models_carry_their_encoding_and_rule(tmp_path: Path) -> None:
    spec = "48-10x3:binary2|enc=thermo:4|pool=16|pool_every=50"
    p = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "accuracy.py"), "--dataset", "digits", "--quick", "--models", spec],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    row = next(ln for ln in p.stdout.splitlines() if ln.startswith("| 48-10x3 |"))
    assert "| thermo:4 | pool=16 pool_every=50 |" in row
    assert "hidden widths (48), encoding thermo:4" in p.stdout  # its own baselines, on its own bits
    # model bytes: 1-bit hidden (48 rows of 256 bits = 8 words), binary2 top (30 rows of 2 words, 2
    # planes) and the pool rule's int32 thresholds
    assert f"| {48 * 8 * 4 + 30 * 2 * 2 * 4 + 48 * 4:,} |" in row


def test_nn_ceiling_is_brute_force_nearest_neighbour() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from nn_ceiling import nearest_neighbour
    finally:
        sys.path.pop(0)
    rng = np.random.default_rng(3)
    xtr, xte = rng.random((300, 70)) < 0.3, rng.random((40, 70)) < 0.3
    xtr[7] = xtr[5]  # a duplicate row: ties go to the lower index
    ytr = rng.integers(0, 10, 300)
    want = [ytr[int(np.argmin((xtr != x).sum(axis=1)))] for x in xte]
    assert nearest_neighbour(xtr, ytr, xte).tolist() == want
    assert nearest_neighbour(xtr, ytr, xtr).tolist() == [ytr[i if i != 7 else 5] for i in range(300)]


def test_nn_ceiling_script_on_digits() -> None:
    p = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "nn_ceiling.py"), "--dataset", "digits"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("| digits | thermo:4+mi:50 (128 bits) | 1,437 prototypes") and " % |" in p.stdout


def test_torch_crosscheck_runs_or_says_how_to_get_torch() -> None:
    import importlib.util

    p = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "torch_crosscheck.py"),
            "--dataset",
            "digits",
            "--hidden",
            "64",
            "--epochs",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if importlib.util.find_spec("torch") is None:  # an optional extra: `make test` never installs it
        assert p.returncode == 2 and "pip install torch==2.13.0" in p.stderr
        return
    assert p.returncode == 0, p.stderr
    rows = [ln for ln in p.stdout.splitlines() if ln.startswith(("| mlp-sgd", "| ste"))]
    assert len(rows) == 2
    for row in rows:  # the two implementations of one definition agree on digits
        numpy_acc, torch_acc = (float(c.strip(" %")) for c in row.split("|")[4:6])
        assert numpy_acc > 85 and abs(numpy_acc - torch_acc) < 4, row
