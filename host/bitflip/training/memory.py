"""Device RAM a model needs on the genuine firmware, checked before anything is sent to a board.

A board's heap (board file `heap_bytes`: free GC heap at boot on the genuine MicroPython
firmware) must hold, when the app builds the model:

- the firmware's imports: the heap a run's modules take once imported — machine code and
  bytecode, function and module objects — estimated as `heap_per_mpy_byte` x the size of
  the modules' .mpy files compiled for the board's arch (the modules this configuration
  imports: spec.py decides, e.g. pool.py only for the pool rule);
- the link: the frame buffer, one memoryview per 32-byte chunk, the CRC table (the FEC
  decoder, fec.py and its tables, is loaded after the model only if app.FEC_RESERVE bytes
  are left: not part of the plan, the model comes first);
- a runtime residual: what MicroPython and the app keep besides those (the REPL, the App
  and Link objects, records, the import machinery's leftovers);
- the model's buffers, exactly as the Trainer allocates them (spec.buffers), each rounded
  to 16-byte GC blocks plus one block for its array object (32-bit boards);
- on rp2 boards whose model has a layer of >= spec.SPLIT_MIN_ROWS rows: the second core's
  worker (its 4 KiB stack comes from the GC heap: ports/rp2/mpthreadport.c);
- transient room: the largest temporary of construction (array('i', bytes(n)) holds both);
- fragmentation: free memory the big weight planes cannot use (holes between the app's
  objects, smaller than a plane).

Calibration (boards/pico.json "memory"): on the genuine v1.28.0 RPI_PICO firmware (a
cycle-counting RP2040 emulator, at commit 1f16ec0) 241,168 bytes were free at boot,
importing kernels + kernels_thumb took 17,760 bytes (-> heap_per_mpy_byte), 172,976 were
free when the app built an MNIST model (-> the residual), and 400-10x102 binary2 built
while 10x103 did not (-> the fragmentation reserve, set halfway between the two). The
residual and reserve are applied to every board; the import estimate follows the
firmware as it changes (its .mpy sizes now vs at the calibration commit). A virtual board
plans exactly as its real twin (same figures, same arch); its unix-port process gets the
extra room x64 objects need (measured), so everything the plan accepts builds there too.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ..boards import Board, load
from ..device import protocol as P
from ..device import spec
from ..errors import BitflipError, UsageError

CHUNK = 32  # stream.py _CHUNK: one memoryview per chunk of the frame buffer
CRC_TABLE = 1024
BLOCK = 16  # GC block of a 32-bit MicroPython
WORD = 4
WORKER = 4096 + 6 * BLOCK + 5 * 32  # core-1 stack + the worker's ctl/pb arrays, its job tuples and views
RUNTIME_MARGIN = 4096  # records, config JSON, checkpoint meta, dump chunks (each < 1 KiB, garbage)
# a run's modules (firmware/bitflip/<name>.py) besides what spec.hidden_rule and the board add
BASE_MODULES = (
    "__init__",
    "app",
    "protocol",
    "payload",
    "spec",
    "ckpt",
    "jobckpt",
    "stream",
    "kernels",
    "rule",
    "layers",
    "accel",
    "dual",
)
ARM_ONLY = ("kernels_thumb",)


def _round(n: int, b: int) -> int:
    return (n + b - 1) // b * b


def _arr(n: int) -> int:
    """A bytearray / array of n bytes on a 32-bit port: data rounded to blocks + its object."""
    return _round(max(n, 1), BLOCK) + BLOCK


def _list_alloc(n: int) -> int:
    # a list built by a comprehension grows by doubling from 4 slots
    a = 4
    while a < n:
        a *= 2
    return a


def model_config(sizes: list[int], weights: str, pool_rows: int = 0, classes: int = 10) -> dict[str, Any]:
    """The part of a training configuration that decides what the firmware allocates."""
    cfg: dict[str, Any] = {"sizes": list(sizes), "weights": weights, "classes": classes}
    if pool_rows and len(sizes) > 2:
        cfg["pool"] = {"rows": pool_rows}
    return cfg


def buffers(sizes: list[int], weights: str, max_payload: int, pool_rows: int = 0, classes: int = 10) -> dict[str, int]:
    """Bytes of every buffer the firmware allocates for this model (spec.buffers) by part,
    plus the link's, on a 32-bit board."""
    out: dict[str, int] = {}
    for part, _, n in spec.buffers(model_config(sizes, weights, pool_rows, classes)):
        out[part] = out.get(part, 0) + _arr(n)
    out.update(link_buffers(max_payload))
    return out


def link_buffers(max_payload: int) -> dict[str, int]:
    n_frame = P.HEADER_SIZE + max_payload + P.CRC_SIZE
    n_views = len(range(0, n_frame - P.HEADER_SIZE, CHUNK))
    return {
        "link_frame": _arr((n_frame + 3) & ~3),
        # one memoryview object (one block) per chunk, the header view, the list of views
        "link_views": (n_views + 1) * BLOCK + BLOCK + _round(_list_alloc(n_views) * WORD, BLOCK),
        "crc_table": _arr(CRC_TABLE),
    }


def modules(cfg: dict[str, Any], arch: str) -> list[str]:
    """The firmware modules a run of this configuration imports on a board of this arch."""
    from ..link.build import ARM_ARCHS

    names = list(BASE_MODULES)
    names += ARM_ONLY if arch in ARM_ARCHS else ("kernels_fast",)
    if spec.fast_path(cfg):
        names.append("fast")  # the prototype-only fast path (rule.py imports it for such models)
    rule = spec.hidden_rule(cfg)
    if rule == "flip":
        names.append("hidden")
    elif rule == "pool":
        names.append("pool")
    if cfg.get("meter"):
        names.append("power")
    return names


# --- .mpy sizes of the firmware (cached per source) ---------------------------------------------
def _firmware_dir() -> Path:
    from ..link.build import firmware_src

    return firmware_src()


def _source_key(extra: str, src: Path | None = None) -> str:
    h = hashlib.sha256(extra.encode())
    for f in sorted((src or _firmware_dir()).glob("*.py")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:24]


def _cache_path() -> Path:
    from ..link.build import default_build_root

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
    try:  # a read-only install just computes again next time
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
        tmp.replace(path)
    except OSError:
        pass
    return value


def mpy_sizes(arch: str, src: Path | None = None) -> dict[str, list[int]]:
    """module -> [bytes of its .mpy for arch, bytes of native (viper/asm) machine code in it],
    for every firmware module that compiles for arch."""
    src = src or _firmware_dir()

    def compute() -> dict[str, list[int]]:
        from ..armv6m.mpy import KIND_ASM, KIND_VIPER, RawCode, parse_mpy
        from ..link.build import _compile, mpy_cross_exe

        def native(rc: RawCode) -> int:
            return (len(rc.code) if rc.kind in (KIND_VIPER, KIND_ASM) else 0) + sum(native(c) for c in rc.children)

        exe = mpy_cross_exe()
        out = {}
        with tempfile.TemporaryDirectory() as tmp:
            for f in sorted(src.glob("*.py")):
                dst = Path(tmp) / (f.stem + ".mpy")
                if _compile(exe, f, dst, arch, f.name) is None:  # the board's view (build.device_source)
                    data = dst.read_bytes()
                    out[f.stem] = [len(data), native(parse_mpy(data).root)]
        return out

    try:
        return dict(_cached(f"mpy-{arch}-" + _source_key("mpy-v3", src), compute))
    except (OSError, UsageError, subprocess.SubprocessError) as e:
        raise BitflipError(f"cannot size the firmware for {arch} (mpy-cross): {e}") from None


def import_bytes(board: Board, cfg: dict[str, Any], per_mpy: float, firmware: Path | None = None) -> int:
    """Estimated GC heap the configuration's modules take once imported on this board: its
    .mpy bytes for the board's arch, without the machine code where the port keeps that
    outside the GC heap (ESP32: IRAM), x heap bytes per .mpy byte."""
    sizes = mpy_sizes(board.arch, firmware)
    in_heap = bool(board.data.get("native_code_in_gc_heap", True))
    total = sum(sizes[m][0] - (0 if in_heap else sizes[m][1]) for m in modules(cfg, board.arch) if m in sizes)
    return round(per_mpy * total)


# --- the plan ---------------------------------------------------------------------------------
def calibration() -> dict[str, Any]:
    """The genuine-firmware figures the plan is fitted to (boards/pico.json "memory")."""
    return dict(load("pico").data["memory"])


def _fitted(cal: dict[str, Any]) -> tuple[float, int, float]:
    """(heap bytes per .mpy byte, runtime residual, fragmentation per imported byte) from the
    calibration (see the module docstring): imports interleave with garbage while modules
    load, so the holes the big planes cannot use are counted in proportion to them."""
    per_mpy = cal["kernels_import_bytes"] / cal["kernels_mpy_bytes"]
    lk = link_buffers(int(cal["max_payload"]))
    imports = round(per_mpy * cal["mpy_bytes"])
    residual = cal["heap_free_boot"] - cal["free_at_build"] - imports - sum(lk.values())
    n_in, classes, weights = cal["model_inputs"], cal["classes"], cal["weights"]

    def need(p: int) -> int:
        sizes = [n_in, classes * p]
        b = buffers(sizes, weights, int(cal["max_payload"]))
        model = sum(v for k, v in b.items() if k not in lk)
        return model + (WORKER if classes * p >= spec.SPLIT_MIN_ROWS else 0) + _transient(sizes)

    built, refused = need(cal["largest_p"]), need(cal["largest_p"] + 1)
    return per_mpy, residual, (cal["free_at_build"] - (built + refused) // 2) / imports


def _transient(sizes: list[int]) -> int:
    # array('i', bytes(4n)) briefly holds both: the widest such temporary, plus records etc.
    return _arr(4 * max(sizes)) + RUNTIME_MARGIN


def _dual(board: Board, sizes: list[int], cores: int | None) -> bool:
    real = load(board.real) if board.is_virtual else board
    if cores == 1 or str(real.data.get("chip", "")) not in ("rp2040", "rp2350"):
        return False
    return any(n >= spec.SPLIT_MIN_ROWS for n in sizes[1:])


def plan_memory(
    sizes: list[int],
    weights_kind: str,
    board: Board,
    max_payload: int | None = None,
    pool_rows: int = 0,
    classes: int = 10,
    cores: int | None = None,
    meter: bool = False,
    firmware: Path | None = None,
) -> dict[str, Any]:
    """Bytes the model and its run need on this board's genuine firmware, by part, with
    'total' and the board's 'heap' (a virtual board plans as its real twin). firmware: the
    sources to plan (default: this checkout's firmware/bitflip)."""
    if board.is_host:
        raise UsageError("the host reference has no device heap to plan")
    real = load(board.real) if board.is_virtual else board
    cal = calibration()
    per_mpy, residual, frag = _fitted(cal)
    payload = int(max_payload if max_payload is not None else real.link["max_payload"])
    cfg = model_config(sizes, weights_kind, pool_rows, classes)
    if meter:
        cfg["meter"] = {"chip": "ina219"}
    plan: dict[str, Any] = dict(buffers(sizes, weights_kind, payload, pool_rows, classes))
    plan["firmware_imports"] = import_bytes(real, cfg, per_mpy, firmware)
    plan["runtime"] = residual
    if _dual(board, sizes, cores):
        plan["second_core"] = WORKER
    plan["transient"] = _transient(sizes)
    plan["fragmentation"] = round(frag * plan["firmware_imports"])
    plan["total"] = sum(v for v in plan.values() if isinstance(v, int))
    plan["heap"] = real.heap_bytes
    plan["source"] = (
        f"estimated: buffers exact (spec.buffers, 32-bit); imports {per_mpy:.3f} heap bytes per "
        f".mpy byte ({real.arch}); runtime residual and fragmentation fitted on genuine v1.28.0 "
        f"RPI_PICO figures (boards/pico.json memory)"
    )
    return plan


def sim_heap_bytes(board: Board) -> int:
    """-X heapsize for a virtual board's unix-port process: its real twin's heap plus what
    x64 objects need more (64-bit words and GC blocks), so that every model the plan accepts
    builds (the plan is the gate; tests train the largest accepted models)."""
    real = load(board.real)
    return real.heap_bytes + int(board.data.get("x64_extra_bytes", 0))


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


def _fits(plan: dict[str, Any]) -> bool:
    return int(plan["total"]) <= int(plan["heap"])


def largest_hidden(
    sizes: list[int],
    weights_kind: str,
    board: Board,
    max_payload: int | None = None,
    pool_rows: int = 0,
    classes: int = 10,
) -> int:
    """The largest width W such that the model with every hidden layer W wide fits
    (0 when even W = 1 does not fit, or there is no hidden layer)."""
    if len(sizes) < 3:
        return 0
    return _largest(
        lambda w: _fits(
            plan_memory(
                [sizes[0]] + [w] * (len(sizes) - 2) + [sizes[-1]], weights_kind, board, max_payload, pool_rows, classes
            )
        )
    )


def largest_prototypes(
    sizes: list[int], weights_kind: str, board: Board, classes: int, max_payload: int | None = None
) -> int:
    """The largest P such that the model with P prototypes per class fits (0: none)."""
    return _largest(
        lambda p: _fits(plan_memory(sizes[:-1] + [classes * p], weights_kind, board, max_payload, classes=classes))
    )


def check_fits(
    sizes: list[int],
    weights_kind: str,
    board: Board,
    max_payload: int | None = None,
    classes: int | None = None,
    pool_rows: int = 0,
) -> dict[str, Any] | None:
    """Raise UsageError when the model does not fit the board's heap; the plan otherwise
    (None for the host reference, which has no device heap)."""
    if board.is_host:
        return None
    c = classes or 10
    plan = plan_memory(sizes, weights_kind, board, max_payload, pool_rows, c)
    if _fits(plan):
        return plan
    name = model_name(sizes, classes) + (f", pool rule with {pool_rows}-unit windows" if pool_rows else "")
    head = f"model {name} ({weights_kind}) needs {plan['total']} bytes but board {board.name} has {plan['heap']}"
    w = largest_hidden(sizes, weights_kind, board, max_payload, pool_rows, c)
    if w:
        fit = [sizes[0]] + [w] * (len(sizes) - 2) + [sizes[-1]]
        also = ""
        if pool_rows:  # or keep the model and shrink the evidence window
            r = _largest(lambda m: _fits(plan_memory(sizes, weights_kind, board, max_payload, m, c)))
            also = f" (or this model with --rule pool={r})" if 0 < r < pool_rows else ""
        raise UsageError(f"{head}: the largest that fits is {model_name(fit, classes)}{also}")
    if len(sizes) < 3 and classes and sizes[-1] > classes:
        p = largest_prototypes(sizes, weights_kind, board, classes, max_payload)
        if p:
            raise UsageError(f"{head}: the largest that fits is {model_name(sizes[:-1] + [classes * p], classes)}")
    if len(sizes) < 3:
        raise UsageError(f"{head}: there is no hidden layer to shrink; use fewer input bits (--encoding)")
    raise UsageError(f"{head}: no {len(sizes) - 2}-hidden-layer model fits; use fewer input bits (--encoding)")
