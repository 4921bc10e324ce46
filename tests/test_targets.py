"""Every firmware module's top-level code runs, for each target's module set, under the real
unix port: a module whose top level fails on MicroPython fails here. The modules are the
board's view of the sources (build.device_source: host-only code left out).

The unix port is x64 and has no inline Thumb assembler, so the rp2 set is imported with
two stand-ins: a `sys` whose platform, native arch and thread model are the board's (the
firmware reads only those), and `kernels_thumb.py` with the body of every
`@micropython.asm_thumb` function replaced by a call to its viper twin (the machine code
itself is checked in the armv6m emulator, tests/test_armv6m.py). Everything else in
kernels_thumb.py — its top level, the wrappers and their parameter blocks — runs as written,
and a digits model trained through the rp2 module set must end with the host reference's
digest.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
from bitflip.armv6m.targets import TARGETS, as_target, asm_standins, modules, target_package
from conftest import FIRMWARE, reference_block, run_micropython

SRC = FIRMWARE / "bitflip"


def run_as(target: str, script: str, tmp: Path, heap: str = "2M") -> str:
    root = target_package(tmp, target)
    return run_micropython(as_target(target) + f"sys.path.insert(0, {str(root)!r})\n" + script, heap=heap, cwd=tmp)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_module_top_level_runs_for_the_target(target: str, tmp_path: Path) -> None:
    names = modules(target)
    out = run_as(
        target,
        f"""
import json
for name in {names!r}:
    __import__('bitflip.' + name)
from bitflip import accel, dual
print(json.dumps({{'kind': accel.KIND, 'dual': dual.available(), 'platform': sys.platform}}))
""",
        tmp_path,
    )
    got = json.loads(out.strip().splitlines()[-1])
    assert got["platform"] == TARGETS[target][0]
    assert got["kind"] == ("asm_thumb" if target == "rp2" else "viper")
    assert got["dual"] == (target == "rp2")


def test_asm_standins_replace_only_the_asm_bodies() -> None:
    src = (SRC / "kernels_thumb.py").read_text()
    out = asm_standins(src)
    assert "@micropython.asm_thumb" not in out
    assert "def dense_binary(x, w, out, nw, nout, nbits):" in out  # the wrappers are kept as written
    tree = ast.parse(src)
    top = [ast.unparse(n) for n in tree.body if isinstance(n, (ast.Assign, ast.Import, ast.ImportFrom))]
    for stmt in top:
        assert stmt in ast.unparse(ast.parse(out)), stmt


@pytest.mark.parametrize("cores", [1, 2])
def test_digits_through_the_rp2_module_set_match_the_reference(cores: int, tmp_path: Path) -> None:
    # binary (flip_row) and binary2 tops, a layer wide enough for the dual-core split; margin
    # -1 with binary2 is the fast path (fast.py: dense_argmax_asm, update_row_b2_asm)
    for weights, sizes, margin in (
        ("binary", [64, 40], 2),
        ("binary2", [64, 300], 2),
        ("binary2", [64, 300], -1),
        ("binary2", [64, 40], -1),
    ):
        cfg = {
            "sizes": sizes,
            "classes": 4,
            "weights": weights,
            "seed": 3,
            "window": 8,
            "margin": margin,
            "k": [2],
            "ks": 2,
            "cores": cores,
        }
        work = tmp_path / f"{weights}{cores}{margin}{sizes[-1]}"
        work.mkdir()
        ref, lab_pad, X, _ = reference_block(work, cfg, seed=7, count=160)
        out = run_as(
            "rp2",
            f"""
import hashlib, binascii
from bitflip import accel
from bitflip.rule import Trainer
t = Trainer({cfg!r})
buf = bytearray(open('block.bin', 'rb').read())
t.train_block(buf, 160, 0, {lab_pad}, {X.shape[1]})
h = hashlib.sha256()
for _, _, p in t.planes():
    h.update(p)
print(accel.KIND, t.worker is not None, t.fast is not None, binascii.hexlify(h.digest()).decode())
t.close()
""",
            work,
        )
        kind, split, fast, digest = out.split()[-4:]
        assert kind == "asm_thumb" and fast == str(margin < 0)
        assert split == str(cores == 2 and sizes[-1] >= 256)
        assert digest == ref.digest(), (weights, cores)
        assert np.any(ref.layers[0].s)  # it trained something
