"""The kernels' exact armv6m machine code (mpy-cross -march=armv6m), run in unicorn:
right answers (numpy), Cortex-M0+ instructions only, and per-word cost within budget.

Instruction counts from the emulator are deterministic, so the budgets are asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bitflip.armv6m import (
    EmuError,
    IsaError,
    check_thumb1,
    compile_mpy,
    find_function,
    load_module,
    measure_kernel,
    parse_mpy,
    run_case,
    run_function,
)
from bitflip.armv6m.mpy import KIND_ASM, KIND_BYTECODE, KIND_VIPER

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware" / "bitflip"
# per 32-bit word, inner loop, emulated armv6m (the targets)
VIPER_BUDGET = 60
ASM_BUDGET = 28


@pytest.fixture(scope="module")
def kernels_mpy(tmp_path_factory: pytest.TempPathFactory):
    return load_module(FIRMWARE / "kernels.py", "armv6m", tmp_path_factory.mktemp("mpy"))


@pytest.fixture(scope="module")
def thumb_mpy(tmp_path_factory: pytest.TempPathFactory):
    return load_module(FIRMWARE / "kernels_thumb.py", "armv6m", tmp_path_factory.mktemp("mpy"))


def test_mpy_reader_finds_every_function(kernels_mpy, thumb_mpy) -> None:
    assert kernels_mpy.arch == "armv6m" and kernels_mpy.small_int_bits == 31
    fns = kernels_mpy.functions()
    assert fns["dense_binary"].kind == KIND_VIPER and fns["flip_row"].kind == KIND_VIPER
    t = thumb_mpy.functions()
    assert t["dense_binary_asm"].kind == KIND_ASM and t["dense_binary_asm"].n_pos_args == 4
    assert t["dense_binary"].kind == KIND_BYTECODE  # the Python wrapper


@pytest.mark.parametrize("src", ["kernels.py", "kernels_thumb.py"])
def test_every_native_function_is_cortex_m0plus_code(src: str, tmp_path: Path) -> None:
    mpy = load_module(FIRMWARE / src, "armv6m", tmp_path)
    native = {n: rc for n, rc in mpy.functions().items() if rc.kind != KIND_BYTECODE}
    assert native
    for name, rc in native.items():
        assert check_thumb1(rc.code) > 10, name


def test_thumb2_code_is_rejected(tmp_path: Path) -> None:
    # unicorn would run this armv7m build; the static check must not accept it
    mpy = load_module(FIRMWARE / "kernels.py", "armv7m", tmp_path)
    with pytest.raises(IsaError, match="not an ARMv6-M"):
        check_thumb1(find_function(mpy, "dense_binary").code)


@pytest.mark.parametrize("variant", ["viper", "asm"])
def test_dense_binary_matches_numpy(variant: str) -> None:
    # sizes around every unrolling boundary (8-word blocks, 2-word and 3-word steps)
    for nw in [0, 1, 2, 3, 4, 5, 7, 8, 9, 11, 16, 17, 25]:
        for nout in (0, 1, 3):
            err = run_case("dense_binary", variant, nw, nout, seed=nw * 10 + nout).error
            assert err is None, f"{variant} nw={nw} nout={nout}: {err}"


@pytest.mark.parametrize("variant", ["viper", "asm"])
def test_dense_binary_extremes(kernels_mpy, thumb_mpy, variant: str) -> None:
    # every bit disagrees: the byte lanes of the SWAR folds at their maximum
    for nw in (1, 3, 8, 9, 24, 33):
        x = np.full(nw, 0xFFFFFFFF, np.uint32)
        w = np.zeros((2, nw), np.uint32)
        out = np.zeros(2, np.int32)
        if variant == "viper":
            run_function(kernels_mpy, find_function(kernels_mpy, "dense_binary"), [x, w, out, nw, 2, 32 * nw])
        else:
            p = np.zeros(8, np.int32)
            p[:3] = (nw, 2, 32 * nw)
            run_function(thumb_mpy, find_function(thumb_mpy, "dense_binary_asm"), [x, w, out, p])
        assert list(out) == [-32 * nw] * 2, (variant, nw)


def test_dense_ternary_matches_numpy() -> None:
    for nw in [0, 1, 2, 3, 4, 5, 8, 9, 13, 25]:
        for nout in (0, 1, 3):
            err = run_case("dense_ternary", "viper", nw, nout, seed=nw * 10 + nout).error
            assert err is None, f"nw={nw} nout={nout}: {err}"


@pytest.mark.parametrize("variant", ["viper", "asm"])
def test_flip_row_matches_numpy(variant: str) -> None:
    cases = [(1, 0, 2, 0), (1, 2, 1, 5), (2, 2, 1, 0), (3, 1, 0, 31), (5, 0, 1, 17), (8, 3, 1, 3), (9, 2, 0, 1)]
    for nw, k, up, pad in cases:
        err = run_case("flip_row", variant, nw, 3, seed=nw + 7 * k, k=k, up=up, pad=pad).error
        assert err is None, f"{variant} nw={nw} k={k} up={up} pad={pad}: {err}"


def test_asm_and_viper_write_identical_results() -> None:
    # same seed -> same inputs; compare what each variant computed, not only numpy
    for kernel, nw in (("dense_binary", 13), ("flip_row", 6)):
        v, a = run_case(kernel, "viper", nw, 3, seed=99), run_case(kernel, "asm", nw, 3, seed=99)
        assert v.error is None and a.error is None
        assert v.run.ret == a.run.ret or kernel == "dense_binary"  # viper returns None, asm 0
        # the buffers both variants wrote (out for dense_binary, the weight plane for flip_row)
        written = [2] if kernel == "dense_binary" else [0]
        for i in written:
            assert np.array_equal(v.args[i], a.args[i]), kernel


def test_cost_per_word_within_budget() -> None:
    viper = measure_kernel("dense_binary", 48, "viper")
    asm = measure_kernel("dense_binary", 48, "asm")
    assert viper["ok"] and asm["ok"]
    assert viper["instructions_per_word"] <= VIPER_BUDGET, viper
    assert asm["instructions_per_word"] <= ASM_BUDGET, asm
    # the cycle model prices every instruction at >= 1 cycle
    assert viper["cycles_per_word"] >= viper["instructions_per_word"]
    flip = measure_kernel("flip_row", 16, "asm")
    assert (
        flip["ok"] and flip["instructions_per_word"] < measure_kernel("flip_row", 16, "viper")["instructions_per_word"]
    )


def test_emulator_catches_an_overrun(kernels_mpy) -> None:
    # nw larger than the buffers: a board would read past them; the harness must fail
    x, w, out = np.zeros(4, np.uint32), np.zeros(4, np.uint32), np.zeros(1, np.int32)
    with pytest.raises(EmuError, match="outside every argument buffer"):
        run_function(kernels_mpy, find_function(kernels_mpy, "dense_binary"), [x, w, out, 16, 1, 512])


def test_unstubbed_runtime_call_is_a_clear_error(tmp_path: Path) -> None:
    src = tmp_path / "k.py"
    src.write_text("import micropython\n\n\n@micropython.viper\ndef f(a: int) -> int:\n    print(a)\n    return a\n")
    mpy = parse_mpy(compile_mpy(src, "armv6m", tmp_path).read_bytes())
    with pytest.raises(EmuError, match=r"mp_fun_table\[\d+\]"):
        run_function(mpy, mpy.root.children[0], [3])
    src.write_text("import micropython\n\n\n@micropython.viper\ndef g(a: int, b: int) -> int:\n    return a - b\n")
    mpy = parse_mpy(compile_mpy(src, "armv6m", tmp_path).read_bytes())
    assert run_function(mpy, mpy.root.children[0], [3, 10]).ret == -7


def test_viper_dense_kernels_match_numpy_on_the_unix_port(tmp_path: Path, upy) -> None:
    # 64-bit words there: the masks in the kernels must make it agree with 32-bit boards
    rng = np.random.default_rng(5)
    sizes = [0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 16, 17, 33]
    data = {}
    for nw in sizes:
        data[nw] = [rng.integers(0, 1 << 32, n, dtype=np.uint32).tolist() for n in (nw, 3 * nw, 3 * nw)]
    (tmp_path / "d.json").write_text(json.dumps({str(k): v for k, v in data.items()}))
    out = upy(f"""
import json
from array import array
from bitflip import kernels as K
d = json.load(open({str(tmp_path / "d.json")!r}))
res = {{}}
for key, (x, s, z) in d.items():
    nw = int(key)
    o = array('i', [0] * 3)
    K.dense_binary(array('I', x), array('I', s), o, nw, 3, 32 * nw - 1)
    b = list(o)
    K.dense_ternary(array('I', x), array('I', s), array('I', z), o, nw, 3)
    res[key] = [b, list(o)]
print(json.dumps(res))
""")
    got = json.loads(out.strip().splitlines()[-1])
    for nw, (x, s, z) in data.items():
        x, s, z = (np.array(a, np.uint32) for a in (x, s, z))
        s, z = s.reshape(3, nw), z.reshape(3, nw)
        ref_b = 32 * nw - 1 - 2 * np.bitwise_count(x ^ s).sum(axis=1, dtype=np.int64)
        ref_t = np.bitwise_count(z).sum(axis=1, dtype=np.int64) - 2 * np.bitwise_count((x ^ s) & z).sum(
            axis=1, dtype=np.int64
        )
        assert got[str(nw)] == [ref_b.tolist(), ref_t.tolist()], nw


def test_benchmark_json_mode() -> None:
    p = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "kernel_costs.py"),
            "--json",
            "--no-layer",
            "--kernels",
            "dense_binary",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    table = json.loads(p.stdout)
    row = table["dense_binary"]["armv6m"]
    assert set(row) == {"viper", "asm_thumb"}
    assert row["asm_thumb"]["instructions_per_word"] <= ASM_BUDGET
