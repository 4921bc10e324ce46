"""The memory planner: buffers against hand counts and the Trainer (test_protocol checks
spec.buffers against the Trainer itself), the genuine-firmware calibration reproduced on the
firmware it was measured on, virtual boards planning as their real twins, and the virtual
board training the largest model the planner accepts (one wider is refused, exit 2)."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path
from typing import Any

import pytest
from bitflip import boards
from bitflip.cli import main
from bitflip.errors import UsageError
from bitflip.training.memory import (
    buffers,
    calibration,
    check_fits,
    largest_hidden,
    largest_prototypes,
    modules,
    mpy_sizes,
    plan_memory,
)
from bitflip.training.runner import TrainRequest, train
from click.testing import CliRunner
from conftest import CONFIGS

ROOT = Path(__file__).resolve().parents[1]
DIGITS_IN = 128  # digits: the 128 of 64 features x 4 thermometer levels that thermo:4+mi:50 keeps


def test_buffers_by_hand_32_bit() -> None:
    # 784-512-10 binary on a 32-bit board: 16-byte blocks, one block per array object
    b = buffers([784, 512, 10], "binary", 2048)
    assert b["weights"] == (25 * 4 * 512 + 16) + (16 * 4 * 10 + 16)  # 25 words per 784-bit row
    assert b["pre_activations"] == (2048 + 16) + (48 + 16)
    assert b["outputs"] == (64 + 16) + (16 + 16)
    assert b["vote"] == 784 * 4 + 16
    assert b["link_frame"] == 2064 + 16  # 8 + 2048 + 4 bytes
    assert b["crc_table"] == 1024 + 16
    assert b["link_views"] == (65 + 1) * 16 + 16 + 128 * 4  # 65 chunk views, list grown to 128 slots
    t = buffers([784, 512, 10], "ternary", 2048)
    assert t["weights"] == 2 * b["weights"] and {k: v for k, v in t.items() if k != "weights"} == {
        k: v for k, v in b.items() if k != "weights"
    }


def _firmware_at(commit: str, dst: Path) -> Path:
    files = subprocess.run(
        ["git", "ls-tree", "--name-only", f"{commit}:firmware/bitflip"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    dst.mkdir()
    for name in files:
        text = subprocess.run(
            ["git", "show", f"{commit}:firmware/bitflip/{name}"], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout
        (dst / name).write_text(text)
    return dst


def test_the_plan_reproduces_the_genuine_firmware_it_was_fitted_to(tmp_path: Path) -> None:
    """On the genuine v1.28.0 Pico firmware, at commit 1f16ec0, MNIST 400-10x102 binary2
    built and 10x103 did not: the planner, planning that firmware, says exactly that."""
    cal = calibration()
    old = _firmware_at(cal["source"].split("commit ")[1].split()[0], tmp_path / "fw")
    sizes = mpy_sizes("armv6m", old)
    run = [
        "__init__",
        "app",
        "protocol",
        "ckpt",
        "stream",
        "kernels",
        "rule",
        "layers",
        "accel",
        "dual",
        "kernels_thumb",
    ]
    assert sum(sizes[m][0] for m in run) == cal["mpy_bytes"]  # the stored figure is that firmware's
    assert sizes["kernels"][0] + sizes["kernels_thumb"][0] == cal["kernels_mpy_bytes"]
    pico = boards.load("pico")

    def fits(p: int) -> bool:
        plan = plan_memory([400, 10 * p], "binary2", pico, firmware=old)
        return plan["total"] <= plan["heap"]

    assert fits(cal["largest_p"]) and not fits(cal["largest_p"] + 1)
    plan = plan_memory([400, 10 * cal["largest_p"]], "binary2", pico, firmware=old)
    free_at_build = plan["heap"] - sum(
        plan[k] for k in ("firmware_imports", "runtime", "link_frame", "link_views", "crc_table")
    )
    assert free_at_build == cal["free_at_build"]


def test_virtual_boards_plan_exactly_as_their_real_twins() -> None:
    for sim in ("sim-pico", "sim-pico2", "sim-esp32", "sim-esp32s3", "sim-esp32c3"):
        b = boards.load(sim)
        real = boards.load(b.real)
        for sizes, weights in (([400, 960], "binary2"), ([784, 256, 160], "binary2"), ([192, 200], "ternary")):
            assert plan_memory(sizes, weights, b) == plan_memory(sizes, weights, real)
        assert largest_prototypes([400, 960], "binary2", b, 10) == largest_prototypes([400, 960], "binary2", real, 10)
    assert check_fits([784, 512, 10], "binary", boards.load("host")) is None


def test_plan_parts() -> None:
    pico, esp = boards.load("pico"), boards.load("esp32")
    p = plan_memory([400, 960], "binary2", pico)
    assert p["total"] == sum(v for k, v in p.items() if isinstance(v, int) and k not in ("total", "heap"))
    assert p["second_core"] > 4096 and "second_core" not in plan_memory([400, 200], "binary2", pico)
    assert "second_core" not in plan_memory([400, 960], "binary2", esp)  # a GIL: one core
    # ESP32 keeps machine code outside the GC heap: fewer import bytes for the same firmware
    assert plan_memory([400, 960], "binary2", esp)["firmware_imports"] < p["firmware_imports"]
    # the pool rule imports pool.py (machine code included on the Pico), rule v1 hidden.py, a
    # binary2 prototype-only model fast.py
    v1 = plan_memory([784, 256, 160], "binary2", pico)
    pool = plan_memory([784, 256, 160], "binary2", pico, pool_rows=32)
    ternary = plan_memory([400, 960], "ternary", pico)
    assert pool["firmware_imports"] > v1["firmware_imports"] > ternary["firmware_imports"]
    assert p["firmware_imports"] > ternary["firmware_imports"]


def test_the_mnist_default_fits_the_pico_and_the_plan_is_tight() -> None:
    from bitflip.training.hparams import DEFAULT_MODEL

    pico = boards.load("pico")
    p = largest_prototypes([400, 960], "binary2", pico, 10)
    default = int(DEFAULT_MODEL["mnist"].split("x")[1])
    assert default <= p <= calibration()["largest_p"]  # the default fits; never more than the genuine limit


def test_check_fits_names_the_largest_model_that_fits() -> None:
    esp = boards.load("esp32")
    with pytest.raises(UsageError) as e:
        check_fits([784, 512, 10], "binary", esp)
    w = largest_hidden([784, 512, 10], "binary", esp)
    assert 0 < w < 512
    msg = str(e.value)
    assert msg.startswith("model 784-512-10 (binary) needs ") and f"but board esp32 has {esp.heap_bytes}" in msg
    assert msg.endswith(f"the largest that fits is 784-{w}-10")
    check_fits([784, w, 10], "binary", esp)
    with pytest.raises(UsageError, match=f"784-{w + 1}-10 .* the largest that fits is 784-{w}-10"):
        check_fits([784, w + 1, 10], "binary", esp)
    with pytest.raises(UsageError, match=r"784-\d+-\d+-10"):  # same layer count
        check_fits([784, 4096, 4096, 10], "binary", esp)
    with pytest.raises(UsageError, match="no hidden layer to shrink"):
        check_fits([200_000, 10], "binary", esp)


def test_memory_command() -> None:
    r = CliRunner().invoke(
        main,
        ["memory", "--board", "pico", "--inputs", "784", "--model", "512-10", "--weights", "binary", "--pool", "0"],
    )
    assert r.exit_code == 0, r.output
    assert "weights" in r.output and "784-512-10 binary on pico:" in r.output and "fits" in r.output
    for bad in (["--model", "x-10"], ["--inputs", "784"], ["--inputs", "7", "--dataset", "digits", "--model", "10"]):
        r = CliRunner().invoke(main, ["memory", "--board", "pico", *bad])
        assert r.exit_code == 2, (bad, r.output)
    r = CliRunner().invoke(main, ["memory", "--board", "pico", "--dataset", "digits"])  # the digits default
    assert r.exit_code == 0 and "128-10x100 binary on pico:" in r.output, r.output


@pytest.mark.parametrize("pool", [0, 32], ids=["rule-v1", "pool-rule"])
def test_the_largest_accepted_model_trains_on_sim_pico_and_one_wider_is_refused(tmp_path: Path, pool: int) -> None:
    board = boards.load("sim-pico")
    w = largest_hidden([DIGITS_IN, 1, 10], "binary", board, pool_rows=pool)
    assert w > 1000
    rule = {"pool": str(pool)}
    s = train(
        TrainRequest(
            board="sim-pico",
            dataset="digits",
            model=f"{w}-10",
            epochs=1,
            out=tmp_path / "ok",
            weights="binary",
            rule=rule,
        )
    )
    assert s["samples_seen"] > 0 and s["test_accuracy"] is not None

    r = CliRunner().invoke(
        main,
        [
            "train",
            "--board",
            "sim-pico",
            "--dataset",
            "digits",
            "--model",
            f"{w + 1}-10",
            "--weights",
            "binary",
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "refused"),
            "--rule",
            f"pool={pool}",
        ],
    )
    assert r.exit_code == 2, r.output
    line = r.output.strip()
    assert "\n" not in line
    name = f"{DIGITS_IN}-{w + 1}-10" + (f", pool rule with {pool}-unit windows" if pool else "")
    assert f"model {name} (binary) needs" in line and f"board sim-pico has {board.heap_bytes}" in line
    tail = f"the largest that fits is {DIGITS_IN}-{w}-10"
    assert line.endswith(tail) or (pool and f"{tail} (or this model with --rule pool=" in line), line
    assert not (tmp_path / "refused").exists()  # nothing started, nothing written


def test_memory_command_takes_the_train_model_forms() -> None:
    r = CliRunner().invoke(
        main, ["memory", "--board", "pico", "--inputs", "784", "--model", "10x50", "--weights", "binary2"]
    )
    assert r.exit_code == 0, r.output
    assert "784-10x50 binary2 on pico:" in r.output and "largest that fits: 784-10x" in r.output
    r = CliRunner().invoke(
        main,
        ["memory", "--board", "pico", "--inputs", "784", "--model", "512-10x1", "--weights", "ternary", "--pool", "0"],
    )
    assert r.exit_code == 0 and "784-512-10 ternary on pico:" in r.output, r.output
    assert "largest that fits: 784-" in r.output


@pytest.mark.parametrize(
    "dataset, features, encoding, budget",
    [
        ("digits", 64, "thermo:4+mi:50", 16_000),
        ("mnist", 784, "deskew+crop:20+threshold:32", 100_000),
        ("fashion", 784, "threshold:32", 100_000),
    ],
)
def test_default_models_meet_the_issue_budget_and_fit_the_pico(
    dataset: str, features: int, encoding: str, budget: int
) -> None:
    # without loading the data (CI has no MNIST): the registry's default encodings, the rules'
    # default models and weights, the issue's weight budget (2 bits/weight at most)
    from bitflip.data import registry
    from bitflip.data.encoding import parse_encoding
    from bitflip.training.hparams import DEFAULT_MODEL, DEFAULT_WEIGHTS
    from bitflip.training.runner import parse_model

    if dataset != "digits":
        assert {"mnist": registry.MNIST_ENCODING, "fashion": registry.FASHION_ENCODING}[dataset] == encoding
    n_in = parse_encoding(encoding, 255 if dataset != "digits" else 16).n_bits(features)
    sizes = parse_model(DEFAULT_MODEL[dataset], n_in, 10)
    weights = DEFAULT_WEIGHTS[dataset]
    bits = {"binary": 1, "binary2": 2, "ternary": 2}[weights]
    weight_bytes = sum(n_out * bits * 4 * ((n + 31) // 32) for n, n_out in itertools.pairwise(sizes))
    assert weight_bytes <= budget
    check_fits(sizes, weights, boards.load("pico"))


def test_the_memory_table_script_prints_the_planners_numbers() -> None:
    """docs/results/memory.md is generated by benchmarks/memory_table.py: it must run and agree
    with the planner (it had rotted once against renamed plan keys)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from bitflip.boards import load
    from bitflip.training.memory import plan_memory

    root = Path(__file__).resolve().parents[1]
    p = subprocess.run([sys.executable, str(root / "benchmarks" / "memory_table.py"), "--json"], capture_output=True,
                       text=True, timeout=300, check=False)  # fmt: skip
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)["rows"]
    mnist = next(r for r in rows if r["model"] == "10x84")
    plan = plan_memory(mnist["sizes"], "binary2", load("pico"))
    assert mnist["boards"]["pico"]["needed"] == plan["total"] and mnist["boards"]["pico"]["heap"] == plan["heap"]


FAST = {"sizes": [64, 40], "classes": 4, "weights": "binary2", "seed": 1, "window": 4, "margin": -1, "k": [2], "ks": 2}


@pytest.mark.parametrize("cfg", [FAST, *CONFIGS], ids=["fast-path", "0h-binary", "1h-flip", "2h-pool"])
def test_the_plan_counts_exactly_the_modules_a_run_imports(cfg: dict, upy: Any) -> None:
    """The planner prices the .mpy of memory.modules(cfg): the firmware's own app, given this
    CONFIG frame, must import exactly those (the unix port stands for a non-ARM board)."""
    import json

    from bitflip.device import protocol as P

    script = f"""
import sys
from bitflip import app, stream
cfg = {json.dumps(json.dumps(cfg))}.encode()
class L:
    buf = bytearray({P.HEADER_SIZE}) + cfg
    seq = 1
    gf = _fix = None
    enable_fec = stream.Link.enable_fec
class Out:
    def write(self, b):
        pass
a = app.App(L(), Out())
a.on_config(len(cfg))
print(sorted(m[8:] if m != "bitflip" else "__init__" for m in sys.modules if m.startswith("bitflip")))
a.release()
"""
    got = eval(upy(script).strip().splitlines()[-1])
    # plus the FEC decoder, loaded after the model only when app._FEC_RESERVE bytes are left
    # (here they are): the model's plan does not count it, the model comes first
    assert got == sorted([*modules(cfg, "x64"), "fec"]), "add the module to memory.BASE_MODULES or memory.modules"


def test_the_plan_reads_the_link_views_at_the_chunk_size_stream_uses() -> None:
    import re

    from bitflip.training import memory

    src = (ROOT / "firmware" / "bitflip" / "stream.py").read_text()
    assert int(re.search(r"^_CHUNK = const\((\d+)\)", src, re.MULTILINE).group(1)) == memory.CHUNK  # type: ignore[union-attr]
