"""Using a trained model from the command line: export (a run directory -> .bfm, or C that
gcc compiles and that predicts what the host predicts), push/pull over a virtual board's
pty, predict on the host and on a board with the training run's test accuracy."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from bitflip import boards
from bitflip.cli import main
from bitflip.link.remote import Remote
from bitflip.link.virtual import VirtualBoard
from bitflip.use.cexport import export_c
from bitflip.use.modelfile import ModelFile
from click.testing import CliRunner
from model_helpers import make_model


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("run") / "digits"
    r = CliRunner().invoke(
        main, ["train", "--board", "host", "--dataset", "digits", "--epochs", "2", "--out", str(out), "--json"]
    )
    assert r.exit_code == 0, r.output
    return out, json.loads(r.output.strip().splitlines()[-1])


def _cli(*args: str) -> str:
    r = CliRunner().invoke(main, list(args))
    assert r.exit_code == 0, r.output
    return r.output


def _json(*args: str) -> dict:
    """--json output: the last line (log lines on stderr come first)."""
    return json.loads(_cli(*args, "--json").strip().splitlines()[-1])


def test_export_then_predict_on_the_host_gives_the_runs_test_accuracy(
    digits_run: tuple[Path, dict], tmp_path: Path
) -> None:
    run, summary = digits_run
    res = _json("export", str(run), "-o", str(tmp_path / "m.bfm"))
    assert res["digest"] == summary["weights_sha256"] and res["bytes"] == (tmp_path / "m.bfm").stat().st_size
    mf = ModelFile.read(tmp_path / "m.bfm")
    assert (
        mf.meta["job"] and mf.meta["job"] == res["job"] and mf.step == summary["samples_seen"] and mf.fill == [0] * 10
    )
    pred = _json(
        "predict", "--model-file", str(tmp_path / "m.bfm"), "--dataset", "digits", "-o", str(tmp_path / "p.csv")
    )
    assert pred["accuracy"] == summary["test_accuracy"] and pred["samples"] == 360
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0] == "index,label,predicted" and len(lines) == 361
    # nothing the user had is overwritten
    r = CliRunner().invoke(main, ["export", str(run), "-o", str(tmp_path / "m.bfm")])
    assert r.exit_code == 2 and "exists" in r.output


def test_export_refuses_what_is_not_a_run(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["export", str(tmp_path), "-o", str(tmp_path / "m.bfm")])
    assert r.exit_code == 2 and "summary.json" in r.output


def test_predict_refuses_a_dataset_of_another_shape(digits_run: tuple[Path, dict], tmp_path: Path) -> None:
    mf, _, _ = make_model({"sizes": [0, 4 * 2]}, "thermo:2", 20)
    mf.write(tmp_path / "m.bfm")
    r = CliRunner().invoke(main, ["predict", "--model-file", str(tmp_path / "m.bfm"), "--dataset", "digits"])
    assert r.exit_code == 2 and "64 features" in r.output and "takes 20" in r.output


# --- C ---------------------------------------------------------------------------------------
MAIN_C = """#include <stdio.h>
#include "NAME.h"
int main(int argc, char **argv) {
    FILE *f = fopen(argv[argc - 1], "rb");
    int32_t v[UPPER_FEATURES], sc[UPPER_CLASSES];
    static uint32_t work[UPPER_WORK_WORDS];
    while (fread(v, 4, UPPER_FEATURES, f) == UPPER_FEATURES) {
        printf("%d", bitflip_predict(&NAME, v, sc, work));
        for (int i = 0; i < UPPER_CLASSES; i++) printf(" %d", sc[i]);
        printf("\\n");
    }
    return 0;
}
"""

C_CASES = {
    "binary2": ({"sizes": [0, 4 * 5]}, "thermo:3,7,11", 64, None),
    "ternary": ({"sizes": [0, 4 * 4], "weights": "ternary"}, "thermo:2", 30, None),
    "pool hidden": ({"sizes": [0, 40, 4 * 3], "pool": True}, "thermo:2", 30, None),
    "two hidden binary": ({"sizes": [0, 33, 20, 4 * 2], "weights": "binary"}, "thermo:2", 30, None),
    "deskew images": ({"sizes": [0, 4 * 3]}, "deskew+crop:20+threshold:32", 784, None),
    "pool step": ({"sizes": [0, 4 * 3]}, "crop:24+pool:2+thermo:3", 784, None),
    "integer minmax": ({"sizes": [0, 4 * 3]}, "thermo:3", 9, "minmax"),
    "selected bits": ({"sizes": [0, 20, 4 * 3], "weights": "binary"}, "thermo:8+mi:30", 24, "minmax"),
}


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
@pytest.mark.parametrize("case", sorted(C_CASES))
def test_c_export_compiles_and_predicts_like_the_host(tmp_path: Path, case: str) -> None:
    over, spec, n_feat, sc = C_CASES[case]
    mf, _, x = make_model(over, spec, n_feat, scaling=sc)
    files = export_c(mf, tmp_path / "model.h")
    assert [f.name for f in files] == ["model.h", "bitflip.h", "bitflip.c"]
    (tmp_path / "main.c").write_text(MAIN_C.replace("UPPER", "MODEL").replace("NAME", "model"))
    exe = tmp_path / "pred"
    p = subprocess.run(
        [
            "gcc",
            "-O2",
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-Wno-unused-parameter",
            "-o",
            str(exe),
            str(tmp_path / "main.c"),
            str(tmp_path / "bitflip.c"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    (tmp_path / "x.bin").write_bytes(np.asarray(x, dtype="<i4").tobytes())
    out = subprocess.run([str(exe), str(tmp_path / "x.bin")], capture_output=True, text=True, check=True).stdout
    got = np.array([[int(v) for v in ln.split()] for ln in out.splitlines()])
    assert np.array_equal(got[:, 0], mf.predict(x))
    assert np.array_equal(got[:, 1:], mf.scores(x))


def test_c_export_refuses_float_scaling(tmp_path: Path) -> None:
    from bitflip.data.scaling import Scaling
    from bitflip.errors import UsageError

    mf, _, _ = make_model({"sizes": [0, 4 * 2]}, "thermo:2", 2)
    mf.scaling = Scaling("unit")
    with pytest.raises(UsageError, match="integer features"):
        export_c(mf, tmp_path / "m.h")


def test_export_format_c_from_the_cli(digits_run: tuple[Path, dict], tmp_path: Path) -> None:
    run, _ = digits_run
    out = _cli("export", str(run), "--format", "c", "-o", str(tmp_path / "digits.h"))
    assert "digits.h" in out and (tmp_path / "bitflip.c").is_file()
    assert "static const bitflip_model_t digits" in (tmp_path / "digits.h").read_text()


# --- a virtual board -----------------------------------------------------------------------------
@pytest.fixture
def sim(tmp_path: Path):
    with VirtualBoard(boards.load("sim-pico"), tmp_path / "flash") as vb:
        yield vb


def test_push_learn_on_the_board_pull(digits_run: tuple[Path, dict], sim: VirtualBoard, tmp_path: Path) -> None:
    """push a model, learn 20 samples on the board with its own code (no host in the loop),
    save, pull it back: the pulled model holds the reference's weights after the same steps."""
    run, _ = digits_run
    _cli("export", str(run), "-o", str(tmp_path / "m.bfm"))
    out = _cli("push", str(tmp_path / "m.bfm"), "--board", "sim-pico", "--port", sim.port)
    assert "CRC-32" in out and "checked" in out
    assert (sim.flash / "model.bfm").read_bytes() == (tmp_path / "m.bfm").read_bytes()
    from bitflip.data import load_dataset

    d = load_dataset("digits")
    mf = ModelFile.read(tmp_path / "m.bfm")
    ref = mf.reference()
    rows = mf.encode(d.x_test[:20])
    for i in range(20):
        ref.train_sample(rows[i], int(d.y_test[i]))
    with Remote(sim.port) as r:
        r.enter_raw()
        r.exec(
            "from bitflip.model import Model\nm = Model.load('model.bfm')\n"
            f"for v, y in zip({d.x_test[:20].tolist()}, {d.y_test[:20].tolist()}):\n    m.learn(v, y)\n"
            "m.save('model.bfm')\nm.close()\ndel m"
        )
    r2 = CliRunner().invoke(main, ["pull", "--board", "sim-pico", "--port", sim.port, "-o", str(tmp_path / "m.bfm")])
    assert r2.exit_code == 2 and "exists" in r2.output  # the file we had is kept
    _cli("pull", "--board", "sim-pico", "--port", sim.port, "-o", str(tmp_path / "back.bfm"))
    back = ModelFile.read(tmp_path / "back.bfm")
    assert back.digest() == ref.digest() != mf.digest()
    assert back.meta["learned_on_board"] == 20 and back.step == mf.step + 20


def test_predict_on_a_virtual_board_equals_the_host(
    digits_run: tuple[Path, dict], sim: VirtualBoard, tmp_path: Path
) -> None:
    run, summary = digits_run
    _cli("export", str(run), "-o", str(tmp_path / "m.bfm"))
    res = _json(
        "predict",
        "--model-file",
        str(tmp_path / "m.bfm"),
        "--dataset",
        "digits",
        "--board",
        "sim-pico",
        "--port",
        sim.port,
        "-o",
        str(tmp_path / "b.csv"),
    )
    assert res["accuracy"] == summary["test_accuracy"] and res["us_per_sample"] > 0
    host = _json(
        "predict", "--model-file", str(tmp_path / "m.bfm"), "--dataset", "digits", "-o", str(tmp_path / "h.csv")
    )
    assert (tmp_path / "b.csv").read_text() == (tmp_path / "h.csv").read_text()
    assert host["accuracy"] == res["accuracy"]
    assert not (sim.flash / ".bitflip-predict.bfm").exists()  # the temporary copy is removed


def test_predict_on_a_board_scales_raw_integer_features(sim: VirtualBoard, tmp_path: Path) -> None:
    # a CSV of integers outside 0..255: the board gets the raw values and scales them itself
    rng = np.random.default_rng(4)
    y = np.arange(200) % 3
    x = (y[:, None] * 400 + rng.integers(-900, 900, (200, 6))) * np.array([1, 3, 7, 11, 13, 17])
    lines = ["label," + ",".join(f"f{i}" for i in range(6))] + [",".join(map(str, [a, *b])) for a, b in zip(y, x)]
    (tmp_path / "sensor.csv").write_text("\n".join(lines) + "\n")
    run = tmp_path / "run"
    _cli(
        "train",
        "--board",
        "host",
        "--dataset",
        str(tmp_path / "sensor.csv"),
        "--model",
        "3x4",
        "--epochs",
        "3",
        "--out",
        str(run),
    )
    _cli("export", str(run), "-o", str(tmp_path / "s.bfm"))
    mf = ModelFile.read(tmp_path / "s.bfm")
    assert mf.scaling.kind == "minmax" and mf.scaling.integer()
    summary = json.loads((run / "summary.json").read_text())
    res = _json(
        "predict",
        "--model-file",
        str(tmp_path / "s.bfm"),
        "--dataset",
        str(tmp_path / "sensor.csv"),
        "--board",
        "sim-pico",
        "--port",
        sim.port,
    )
    assert res["accuracy"] == summary["test_accuracy"]


def test_push_refuses_a_damaged_model_before_connecting(tmp_path: Path) -> None:
    (tmp_path / "bad.bfm").write_bytes(b"nothing")
    r = CliRunner().invoke(main, ["push", str(tmp_path / "bad.bfm"), "--board", "sim-pico", "--port", "/dev/null"])
    assert r.exit_code == 2 and "bad model file" in r.output


def test_exported_rule_state_is_the_state_the_run_ended_with(tmp_path: Path) -> None:
    """A pool-rule model on 300 digits: the exported step, fill and window positions equal
    those of a reference trained exactly as run_host trains it."""
    from bitflip.training.reference import Reference
    from bitflip.training.runner import TrainRequest, prepare

    run = tmp_path / "run"
    _cli(
        "train",
        "--board",
        "host",
        "--dataset",
        "digits",
        "--model",
        "40-10x3",
        "--epochs",
        "2",
        "--limit",
        "300",
        "--val",
        "0",
        "--out",
        str(run),
    )  # no validation: the model is the last epoch's, not the best one's
    _cli("export", str(run), "-o", str(tmp_path / "m.bfm"))
    mf = ModelFile.read(tmp_path / "m.bfm")
    plan = prepare(
        TrainRequest(
            board="host", dataset="digits", model="40-10x3", epochs=2, limit=300, val=0, out=tmp_path / "again"
        )
    )
    ref = Reference(plan.cfg)
    for epoch in range(2):
        for i in plan.order(epoch):
            ref.train_sample(plan.x_train[i], int(plan.y_train[i]))
    assert mf.digest() == ref.digest()
    assert (mf.step, mf.fill) == (ref.step, ref.fill)
    assert mf.pos == [p.pos for p in ref.hidden.pools] and mf.cfg["pool"]
