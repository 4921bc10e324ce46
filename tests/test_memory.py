"""The memory planner against hand counts, the unix-port measurement, and the virtual board:
the largest model it accepts for sim-pico must really train; one wider is refused (exit 2)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from bitflip import boards
from bitflip.cli import main
from bitflip.errors import UsageError
from bitflip.training.memory import (
    FALLBACK,
    buffers,
    check_fits,
    gc_tables,
    largest_hidden,
    measure_overhead,
    plan_memory,
)
from bitflip.training.runner import TrainRequest, train
from click.testing import CliRunner

DIGITS_IN = 192  # digits: 64 features x 3 thermometer levels


def test_buffers_by_hand_32_bit() -> None:
    # 784-512-10 binary on a 32-bit board: 16-byte blocks, one block per array object
    b = buffers([784, 512, 10], "binary", 2048, 4)
    assert b["weights"] == (25 * 4 * 512 + 16) + (16 * 4 * 10 + 16)  # 25 words per 784-bit row
    assert b["pre_activations"] == (2048 + 16) + (48 + 16)
    assert b["outputs"] == (64 + 16) + (16 + 16)
    assert b["vote"] == 784 * 4 + 16
    assert b["link_frame"] == 2064 + 16  # 8 + 2048 + 4 bytes
    assert b["crc_table"] == 1024 + 16
    assert b["link_views"] == (65 + 1) * 16 + 16 + 128 * 4  # 65 chunk views, list grown to 128 slots
    t = buffers([784, 512, 10], "ternary", 2048, 4)
    assert t["weights"] == 2 * b["weights"] and {k: v for k, v in t.items() if k != "weights"} == {
        k: v for k, v in b.items() if k != "weights"}


def test_gc_tables() -> None:
    assert gc_tables(184320, 8) == 184320 - 184320 * 256 // 259
    assert 0.02 < gc_tables(184320, 4) / 184320 < 0.03  # 3 bits per 16-byte block


def test_measured_overhead_is_sane_and_the_fallback_covers_it() -> None:
    m = measure_overhead()
    assert 10_000 < m["imports"] < 60_000
    assert 0 < m["per_layer"] < 1024 and 0 < m["base"] < 8192
    # the fallback (used when the unix port cannot run) must not under-estimate
    for key in ("boot", "imports", "base", "per_layer", "holes"):
        assert FALLBACK[key] >= m[key], f"raise FALLBACK[{key!r}] to at least {m[key]}"


def test_plan_parts_per_board_kind() -> None:
    pico, sim = boards.load("pico"), boards.load("sim-pico")
    p, s = plan_memory([784, 512, 10], "binary", pico), plan_memory([784, 512, 10], "binary", sim)
    assert p["native_code"] > 4000 and s["native_code"] == 0  # unix maps machine code outside the heap
    assert p["word_bytes"] == 4 and s["word_bytes"] == 8
    assert p["weights"] < s["weights"]  # 16- vs 32-byte GC blocks
    assert p["total"] == sum(v for k, v in p.items() if isinstance(v, int) and k not in ("total", "heap", "word_bytes"))
    assert check_fits([784, 512, 10], "binary", boards.load("host")) is None


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
    r = CliRunner().invoke(main, ["memory", "--board", "pico", "--model", "784-512-10"])
    assert r.exit_code == 0, r.output
    assert "weights" in r.output and "784-512-10 binary on pico:" in r.output and "fits" in r.output
    r = CliRunner().invoke(main, ["memory", "--board", "pico", "--model", "784-x-10"])
    assert r.exit_code == 2


@pytest.mark.parametrize("pool", [0, 32], ids=["rule-v1", "pool-rule"])
def test_the_largest_accepted_model_trains_on_sim_pico_and_one_wider_is_refused(tmp_path: Path, pool: int) -> None:
    board = boards.load("sim-pico")
    w = largest_hidden([DIGITS_IN, 1, 10], "binary", board, pool_rows=pool)
    assert w > 1000
    rule = {"pool": str(pool)}
    s = train(TrainRequest(board="sim-pico", dataset="digits", model=f"{w}-10", epochs=1, out=tmp_path / "ok",
                          weights="binary", rule=rule))
    assert s["samples_seen"] > 0 and s["test_accuracy"] is not None
    # the plan must not under-estimate what the board really holds after allocating
    plan = plan_memory([DIGITS_IN, w, 10], "binary", board, pool_rows=pool)
    used = board.heap_bytes - plan["gc_tables"] - int(s["heap_free_after_alloc"])
    steady = plan["total"] - plan["transient"] - plan["gc_tables"]
    assert used <= steady <= used + plan["import_holes"] + 8192, (used, steady)

    r = CliRunner().invoke(main, ["train", "--board", "sim-pico", "--dataset", "digits", "--model", f"{w + 1}-10",
                                  "--weights", "binary", "--epochs", "1", "--out", str(tmp_path / "refused"),
                                  "--rule", f"pool={pool}"])
    assert r.exit_code == 2, r.output
    line = r.output.strip()
    assert "\n" not in line
    name = f"{DIGITS_IN}-{w + 1}-10" + (f", pool rule with {pool}-unit windows" if pool else "")
    assert f"model {name} (binary) needs" in line and f"board sim-pico has {board.heap_bytes}" in line
    tail = f"the largest that fits is {DIGITS_IN}-{w}-10"
    assert line.endswith(tail) or (pool and f"{tail} (or this model with --rule pool=" in line), line
    assert not (tmp_path / "refused").exists()  # nothing started, nothing written


def test_memory_command_takes_the_train_model_forms() -> None:
    r = CliRunner().invoke(main, ["memory", "--board", "pico", "--model", "784-10x50", "--weights", "binary2"])
    assert r.exit_code == 0, r.output
    assert "784-10x50 binary2 on pico:" in r.output and "largest that fits: 784-10x" in r.output
    r = CliRunner().invoke(main, ["memory", "--board", "pico", "--model", "784-512-10x1", "--weights", "ternary"])
    assert r.exit_code == 0 and "784-512-10x1 ternary on pico:" in r.output
    assert "largest that fits: 784-" in r.output and r.output.rstrip().endswith("-10")


@pytest.mark.parametrize("dataset, features, encoding, budget", [
    ("digits", 64, "thermo:3,7,11", 16_000),
    ("mnist", 784, "deskew+crop:20+threshold:32", 100_000),
    ("fashion", 784, "threshold:32", 100_000),
])
def test_default_models_meet_the_issue_budget_and_fit_the_pico(dataset: str, features: int, encoding: str,
                                                               budget: int) -> None:
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
