"""Device RAM a model needs, checked before anything is sent to a board.

What the firmware allocates (firmware/bitflip/layers.py, rule.py, stream.py), each buffer
rounded to the MicroPython GC block (4 machine words: 16 bytes on a 32-bit board, 32 on
the 64-bit unix port) plus one block for its array object:

- per layer: the weight planes (binary: sign; ternary: sign + nonzero), one row of
  ceil(n_in/32) u32 words per neuron; pre-activations (int32 per neuron); packed outputs;
  a direction byte per neuron;
- the rule: the input row, the vote buffer (int32 per unit of the widest layer), its
  hash state;
- the link: the frame buffer (header + max_payload + crc), one memoryview per 32-byte
  chunk of it and the list holding them, the 1 KiB CRC table;
- a fixed part measured on the unix port: gc.mem_free() before and after importing the
  app and building a Link and Trainer, minus the buffers above (the firmware's bytecode,
  module and instance objects, what the port itself allocates at boot), plus the free
  memory stranded in holes between the imported code (importing .py sources leaves ~40 KiB
  of compile garbage holes that only small objects can use; .mpy imports leave ~8 KiB, but
  mip installs sources, so the plan assumes sources everywhere). Unix objects are
  64-bit, bigger than on a 32-bit board, so for real boards this part is an upper bound;
  real boards also keep the viper machine code in their heap (the unix port maps it
  outside), counted as the size of the compiled .mpy files that hold native code;
- transient room: the largest temporary of construction (array('i', bytes(n))) and a
  margin for records, config parsing, checkpoints and weight dumps;
- the GC's own tables (2 + 1 bits per block) inside the heap.

The measurement is cached per firmware source hash (build/memory-cache.json), so a changed
firmware is re-measured automatically.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ..boards import Board
from ..errors import BitflipError, UsageError

MEASURE_HEAP = 262144  # heap of the measuring unix-port run (the fixed part barely depends on it)
RUNTIME_MARGIN = 4096  # records, config JSON, checkpoint meta, dump chunks (each < 1 KiB, garbage)
CHUNK = 32  # stream.py _CHUNK: one memoryview per chunk of the frame buffer
HEADER, CRC = 8, 4  # protocol.py HEADER_SIZE, CRC_SIZE
CRC_TABLE = 1024
# Used only when the unix port cannot be run: measured on MicroPython 1.29 unix x64 with
# firmware 0.1.0 (boot 2.1 KiB, imports 23.2 KiB, base 2.2 KiB, 160 B per layer, holes 40.7
# KiB) plus ~20% for firmware growth; tests/test_memory.py fails when a measurement passes it.
FALLBACK = {"boot": 4096, "imports": 40960, "base": 3072, "per_layer": 768, "holes": 61440, "word": 8,
            "pool_module": 12288}

_MEASURE = """import gc
gc.collect()
f0 = gc.mem_free()
import bitflip.app
from bitflip.rule import Trainer
from bitflip.stream import Link
gc.collect()
f1 = gc.mem_free()
link = Link(%d, 1)
gc.collect()
f2 = gc.mem_free()
lo, hi = 0, f2  # the largest block one bytearray can get: what is left between the holes
while hi - lo > 16:
    mid = (lo + hi) // 2
    try:
        b = bytearray(mid)
        lo = mid
    except MemoryError:
        hi = mid
    b = None
    gc.collect()
res = [f0, f1, f2 - lo]
link = None
gc.collect()
for sizes in %r:
    cfg = {"sizes": sizes, "weights": "binary", "seed": 0, "classes": 10, "margin": -1, "window": 16, "k": [3] * (len(sizes) - 1), "ks": 0}
    link = Link(%d, 1)
    t = Trainer(cfg)
    gc.collect()
    res.append(f1 - gc.mem_free())
    link = t = cfg = None
    gc.collect()
f3 = gc.mem_free()
import bitflip.pool  # imported by rule.py only for the pool rule
gc.collect()
res.append(f3 - gc.mem_free())
print(repr(res))
"""
_PROBE_SIZES = ([32, 10], [32, 8, 10])
_PROBE_PAYLOAD = 256


def _round(n: int, b: int) -> int:
    return (n + b - 1) // b * b


def _words(n: int) -> int:
    return (n + 31) >> 5


def _list_alloc(n: int) -> int:
    # a list built by a comprehension grows by doubling from 4 slots
    a = 4
    while a < n:
        a *= 2
    return a


def gc_tables(heap: int, word: int) -> int:
    """Bytes of a heap of `heap` bytes taken by the GC's allocation (2 bits) and
    finaliser (1 bit) tables per block."""
    block = 4 * word
    return heap - heap * 8 * block // (8 * block + 3)


def buffers(sizes: list[int], weights: str, max_payload: int, word: int, pool_rows: int = 0) -> dict[str, int]:
    """Bytes of every buffer the firmware allocates for this model, by kind. pool_rows > 0:
    the pool rule (pool.py): 1-bit hidden layers, thresholds and an int8 counter window."""
    block = 4 * word

    def arr(n: int) -> int:  # bytearray / array: data rounded to blocks + its object
        return _round(max(n, 1), block) + block

    planes = 2 if weights in ("ternary", "binary2") else 1
    layers = list(itertools.pairwise(sizes))
    n_frame = HEADER + max_payload + CRC
    n_views = len(range(0, n_frame - HEADER, CHUNK))
    hidden = layers[:-1]
    pool = 0
    if pool_rows:  # thresholds, counter window, window position, histogram; the top's votes
        pool = sum(arr(4 * n_out) + arr(min(pool_rows, n_out) * n_in) + arr(4) + arr(512) for n_in, n_out in hidden)
        pool += arr(sizes[-1])

    def plane_count(i: int) -> int:
        return 1 if pool_rows and i < len(hidden) else planes

    out = {
        "weights": sum(plane_count(i) * arr(4 * _words(n_in) * n_out) for i, (n_in, n_out) in enumerate(layers)),
        "pre_activations": sum(arr(4 * n_out) for _, n_out in layers),
        "outputs": sum(arr(4 * _words(n_out)) for _, n_out in layers),
        "dirs": sum(arr(n_out) + arr(2 * n_out) for _, n_out in layers),  # directions + index list
        "input": arr(4 * _words(sizes[0])),
        "vote": arr(4 * max(sizes)),
        "rule_state": arr(4) + arr(10),  # hash state, prototypes still to fill per class
        "link_frame": arr((n_frame + 3) & ~3),
        # one memoryview object (one block) per chunk, the header view, the list of views
        "link_views": (n_views + 1) * block + block + _round(_list_alloc(n_views) * word, block),
        "crc_table": arr(CRC_TABLE),
    }
    if pool:
        out["pool_rule"] = pool
    return out


# --- the measured fixed part ---------------------------------------------------------------
def _firmware_dir() -> Path:
    from ..link.deploy import firmware_src

    return firmware_src()


def _source_key(extra: str) -> str:
    h = hashlib.sha256(extra.encode())
    for f in sorted(_firmware_dir().glob("*.py")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:24]


def _cache_path() -> Path:
    from ..link.deploy import default_build_root

    return default_build_root() / "memory-cache.json"


def _cached(key: str, compute: Any) -> Any:
    path = _cache_path()
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    if key in cache:
        return cache[key]
    value = compute()
    cache[key] = value
    try:  # a read-only install just measures again next time
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
        tmp.replace(path)
    except OSError:
        pass
    return value


def measure_overhead(heap: int = MEASURE_HEAP, timeout: float = 60) -> dict[str, int]:
    """Run the unix port: gc.mem_free() before/after importing the app, and after building a
    Link and a Trainer for two tiny models; returns the fixed part with the buffers taken out."""
    from ..link.virtual import micropython_exe

    script = _MEASURE % (_PROBE_PAYLOAD, [list(s) for s in _PROBE_SIZES], _PROBE_PAYLOAD)
    # import what boards run: compiled .mpy files (sources leave compile-garbage holes)
    try:
        from ..link.deploy import build_firmware

        path = str(build_firmware("x64").folder)
    except (BitflipError, OSError, subprocess.SubprocessError):  # no mpy-cross: measure the sources
        path = str(_firmware_dir().parent)
    env = dict(os.environ, MICROPYPATH=f"{path}:.frozen")
    with tempfile.TemporaryDirectory() as cwd:  # the firmware may touch files (checkpoints)
        p = subprocess.run([micropython_exe(), "-X", f"heapsize={heap}", "-c", script], check=False, capture_output=True,
                           text=True, timeout=timeout, env=env, cwd=cwd)
    if p.returncode != 0:
        raise RuntimeError(f"measuring on the unix port failed: {(p.stderr or p.stdout).strip()[-300:]}")
    f0, f1, holes, one, two, pool_module = json.loads(p.stdout.strip().splitlines()[-1])
    word = 8  # the unix port here is x64
    usable = heap - gc_tables(heap, word)

    def explicit(sizes: list[int]) -> int:
        return sum(buffers(sizes, "binary", _PROBE_PAYLOAD, word).values())

    obj_one = one - explicit(list(_PROBE_SIZES[0]))
    obj_two = two - explicit(list(_PROBE_SIZES[1]))
    per_layer = max(0, obj_two - obj_one)
    return {
        "boot": usable - f0,  # the port's own objects at boot + the measuring script
        "imports": f0 - f1,  # bytecode, modules, functions, classes of the app
        "base": max(0, obj_one - per_layer),  # Link/Trainer instances, lists, templates
        "per_layer": per_layer,  # a Dense instance and its attributes
        # free memory left in holes between the imported code (compile garbage): only
        # small objects fit there, so it is counted as used
        "holes": holes,
        "word": word,
        "pool_module": pool_module,  # the pool rule's module (bytecode, functions), when used
    }


def firmware_overhead() -> tuple[dict[str, int], str]:
    """The measured fixed part (cached per firmware source) and where it came from."""
    try:
        return _cached("overhead-" + _source_key("overhead-v5"), measure_overhead), "measured"
    except (OSError, RuntimeError, UsageError, subprocess.SubprocessError, ValueError):
        return dict(FALLBACK), "fallback"


_NATIVE_MARKERS = ("@micropython.viper", "@micropython.native", "@micropython.asm_")


def native_code_bytes(arch: str, pool: bool = False) -> int:
    """Size of the compiled .mpy files that hold native code for arch (an upper bound of the
    machine code a board keeps in its heap); pool.py only when the pool rule imports it."""

    def compute() -> int:
        from ..link.deploy import ARCH_ONLY, ARM_ARCHS, mpy_cross_exe

        exe = mpy_cross_exe()
        total = 0
        with tempfile.TemporaryDirectory() as tmp:
            for f in sorted(_firmware_dir().glob("*.py")):
                if not any(m in f.read_text() for m in _NATIVE_MARKERS):
                    continue
                if ARCH_ONLY.match(f.name) and arch not in ARM_ARCHS:
                    continue
                if f.name == "pool.py" and not pool:
                    continue
                out = Path(tmp) / (f.stem + ".mpy")
                p = subprocess.run([exe, f"-march={arch}", "-o", str(out), str(f)], check=False,
                                   capture_output=True, timeout=120)
                if p.returncode == 0:
                    total += out.stat().st_size
        return total

    try:
        return int(_cached(f"native-{arch}{'-pool' if pool else ''}-" + _source_key("native-v2"), compute))
    except (OSError, UsageError, subprocess.SubprocessError):
        return 16384  # no mpy-cross: a generous guess (kernels compile to 7-9 KB)


# --- the plan -------------------------------------------------------------------------------
def plan_memory(sizes: list[int], weights_kind: str, board: Board, max_payload: int | None = None,
                pool_rows: int = 0) -> dict[str, Any]:
    """Bytes of device heap the model and its buffers need on this board, by part, with
    'total' and the board's 'heap'."""
    if board.is_host:
        raise UsageError("the host reference has no device heap to plan")
    word = board.word_bytes
    payload = int(max_payload if max_payload is not None else board.link["max_payload"])
    plan: dict[str, Any] = dict(buffers(sizes, weights_kind, payload, word, pool_rows))
    over, source = firmware_overhead()
    n_layers = len(sizes) - 1
    plan["firmware"] = over["boot"] + over["imports"] + over["base"] + over["per_layer"] * n_layers
    plan["import_holes"] = over["holes"]
    if pool_rows:
        plan["pool_module"] = over.get("pool_module", FALLBACK["pool_module"])
    # machine code lives in the GC heap on a board, in mmap'ed memory on the unix port
    plan["native_code"] = 0 if board.is_virtual else native_code_bytes(board.deploy_arch, pool=bool(pool_rows))
    block = 4 * word
    # array('i', bytes(4n)) briefly holds both: the widest such temporary, plus records etc.
    plan["transient"] = _round(4 * max(sizes), block) + block + RUNTIME_MARGIN
    plan["gc_tables"] = gc_tables(board.heap_bytes, word)
    plan["total"] = sum(v for v in plan.values() if isinstance(v, int))
    plan["heap"] = board.heap_bytes
    plan["word_bytes"] = word
    plan["overhead_source"] = source
    return plan


def model_name(sizes: list[int], classes: int | None = None) -> str:
    """'784-512-10', or with P > 1 prototypes per class '784-512-10x16'."""
    parts = [str(s) for s in sizes]
    if classes and sizes[-1] != classes and sizes[-1] % classes == 0:
        parts[-1] = f"{classes}x{sizes[-1] // classes}"
    return "-".join(parts)


def _largest(fits: Any) -> int:
    if not fits(1):
        return 0
    lo, hi = 1, 2
    while fits(hi):
        lo, hi = hi, hi * 2
        if hi > 1 << 20:
            return lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def largest_hidden(sizes: list[int], weights_kind: str, board: Board, max_payload: int | None = None,
                   pool_rows: int = 0) -> int:
    """The largest width W such that the model with every hidden layer W wide fits
    (0 when even W = 1 does not fit, or there is no hidden layer)."""
    if len(sizes) < 3:
        return 0
    return _largest(lambda w: plan_memory([sizes[0]] + [w] * (len(sizes) - 2) + [sizes[-1]], weights_kind, board,
                                          max_payload, pool_rows)["total"] <= board.heap_bytes)


def largest_prototypes(sizes: list[int], weights_kind: str, board: Board, classes: int,
                       max_payload: int | None = None) -> int:
    """The largest P such that the model with P prototypes per class fits (0: none)."""
    return _largest(lambda p: plan_memory(sizes[:-1] + [classes * p], weights_kind, board,
                                          max_payload)["total"] <= board.heap_bytes)


def check_fits(sizes: list[int], weights_kind: str, board: Board, max_payload: int | None = None,
               classes: int | None = None, pool_rows: int = 0) -> dict[str, Any] | None:
    """Raise UsageError when the model does not fit the board's heap; the plan otherwise
    (None for the host reference, which has no device heap)."""
    if board.is_host:
        return None
    plan = plan_memory(sizes, weights_kind, board, max_payload, pool_rows)
    if plan["total"] <= board.heap_bytes:
        return plan
    name = model_name(sizes, classes) + (f", pool rule with {pool_rows}-unit windows" if pool_rows else "")
    head = f"model {name} ({weights_kind}) needs {plan['total']} bytes but board {board.name} has {board.heap_bytes}"
    w = largest_hidden(sizes, weights_kind, board, max_payload, pool_rows)
    if w:
        fit = [sizes[0]] + [w] * (len(sizes) - 2) + [sizes[-1]]
        also = ""
        if pool_rows:  # or keep the model and shrink the evidence window
            r = _largest(lambda m: plan_memory(sizes, weights_kind, board, max_payload, m)["total"] <= board.heap_bytes)
            also = f" (or this model with --rule pool={r})" if 0 < r < pool_rows else ""
        raise UsageError(f"{head}: the largest that fits is {model_name(fit, classes)}{also}")
    if len(sizes) < 3 and classes and sizes[-1] > classes:
        p = largest_prototypes(sizes, weights_kind, board, classes, max_payload)
        if p:
            raise UsageError(f"{head}: the largest that fits is {model_name(sizes[:-1] + [classes * p], classes)}")
    if len(sizes) < 3:
        raise UsageError(f"{head}: there is no hidden layer to shrink; use fewer input bits (--encoding)")
    raise UsageError(f"{head}: no {len(sizes) - 2}-hidden-layer model fits; use fewer input bits (--encoding)")
