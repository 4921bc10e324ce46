"""`bitflip deploy`: compile the device package for the board's arch (build.py) and copy it
to the board's lib/bitflip through mpremote, skipping unchanged files, then verify it. Native
(viper) code is arch-specific, so the board's MicroPython is checked before anything is
copied: its .mpy version, its native arch and its release. After the copy the board imports
every module and trains one step, which must give the host reference's weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import boards as boards_mod
from ..boards import Board
from ..errors import BitflipError, LinkError, UsageError
from .build import LIB_NAME, Build, Log, build_firmware
from .identity import ARCH_NUM, MPY_ARCHS, THUMB


# --- the board side ---------------------------------------------------------------------
def check_device(info: dict, build: Build, board: Board) -> None:
    """Refuse a board whose MicroPython cannot load this build (UsageError, one line)."""
    ver = tuple(info["version"][:3])
    mpy = int(info["mpy"])
    dev_arch = (mpy >> 10) & 0xF
    dev_ver, dev_sub = mpy & 0xFF, (mpy >> 8) & 3
    vtext = ".".join(str(x) for x in ver)
    where = f"the board ({info.get('machine') or info.get('platform')}, MicroPython {vtext})"
    if dev_arch == 0:
        raise UsageError(f"{where} has no native code emitter: bitflip's viper kernels cannot run on this firmware")
    if dev_ver != build.mpy[0] or (build.mpy[1] and dev_sub != build.mpy[1]):
        raise UsageError(
            f"{where} loads .mpy v{dev_ver}.{dev_sub} but this build is v{build.mpy[0]}.{build.mpy[1]}: "
            f"update MicroPython to {'.'.join(map(str, board.min_micropython[:2]))} or later"
        )
    want = ARCH_NUM[build.arch]
    ok = (want in THUMB and dev_arch in THUMB and want <= dev_arch) or want == dev_arch
    if not ok:
        raise UsageError(
            f"{where} runs {MPY_ARCHS.get(dev_arch, dev_arch)} native code but --board {board.name} "
            f"is built for {build.arch}: is this the right --board?"
        )
    if ver < board.min_micropython:
        need = ".".join(str(x) for x in board.min_micropython[:2])
        why = board.data.get("arch_note", "")
        raise UsageError(
            f"{where} is too old: {board.name} needs MicroPython {need} or later"
            + (f" ({why})" if why else "")
            + f"; get it from {board.flash.get('download') or 'https://micropython.org/download/'}"
        )
    suffix = board.data.get("machine_suffix")
    if suffix and not board.is_virtual and not str(info.get("machine", "")).endswith(suffix):
        raise UsageError(f"{where} is not a {board.title} (expected a machine '... {suffix}'): check --board")


def lib_dir(path: list[str]) -> str:
    """Where packages go on the board: the first sys.path entry that is a lib folder (the
    rule mip uses; the virtual board's is the relative 'lib')."""
    for p in path:
        if (p == "lib" or p.endswith("/lib")) and not p.startswith("/rom"):
            return p
    raise UsageError(f"the board has no lib folder on sys.path ({path}): cannot install a package")


_VERIFY = """import sys, gc
for _m in [m for m in sys.modules if m == 'bitflip' or m.startswith('bitflip.')]:
    del sys.modules[_m]
import bitflip, bitflip._build, bitflip.protocol, bitflip.app
print(repr((bitflip.VERSION, bitflip._build.PROTO, bitflip.protocol.VERSION, bitflip._build.ARCH,
            getattr(bitflip.app, '__file__', ''))))
for _m in [m for m in sys.modules if m == 'bitflip' or m.startswith('bitflip.')]:
    del sys.modules[_m]
gc.collect()
"""


@dataclass
class DeployResult:
    board: str
    port: str
    target: str  # lib/bitflip folder on the board
    build: Build
    copied: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    device_version: str = ""
    device_proto: int = -1


def deploy(
    board_name: str,
    port: str | None,
    dry_run: bool = False,
    build_root: Path | None = None,
    log: Log = lambda s: None,
    force: bool = False,
    connect_timeout: float = 10.0,
) -> DeployResult | Build:
    """Build for the board; unless dry_run, copy to the board on port and verify."""
    board = boards_mod.load(board_name)
    if board.is_host:
        raise UsageError("the host reference runs in this process: there is nothing to deploy")
    port_path = None
    if not dry_run:
        from .ports import resolve_port

        port_path = resolve_port(port, board)  # before the build: a bad port fails fast
    build = build_firmware(board.deploy_arch, build_root, log=log)
    if dry_run:
        return build
    assert port_path is not None
    return copy_build(build, board, port_path, log, force, connect_timeout)


def copy_build(
    build: Build, board: Board, port: str, log: Log = lambda s: None, force: bool = False, connect_timeout: float = 10.0
) -> DeployResult:
    from .remote import Remote

    with Remote(port) as r:
        r.enter_raw(connect_timeout)  # an ESP32 behind a UART bridge may be rebooting: allow seconds
        info = r.info()
        log(f"{port}: {info['machine'] or info['platform']}, MicroPython {'.'.join(map(str, info['version']))}")
        check_device(info, build, board)
        target = lib_dir(info["path"]) + "/" + LIB_NAME
        res = DeployResult(board.name, port, target, build)
        r.makedirs(target)
        have = r.hashes(target) or {}
        for name, digest in build.files.items():
            if not force and have.get(name) == digest:
                res.unchanged.append(name)
                continue
            data = (build.package / name).read_bytes()
            log(f"copy {name} ({len(data)} bytes)")
            r.put(f"{target}/{name}", data)
            res.copied.append(name)
        # a stale .py next to a .mpy would win the import; leftovers of older builds go too
        for name in sorted(have):
            if name not in build.files and name.endswith((".py", ".mpy", ".tmp")):
                log(f"remove stale {name}")
                r.remove(f"{target}/{name}")
                res.removed.append(name)
        try:
            version, proto, dev_proto, arch, app_file = r.eval(_VERIFY, timeout=30)
        except LinkError as e:
            raise LinkError(f"deployed, but importing bitflip on the board failed: {e}") from None
        if version != build.version or proto != build.proto or dev_proto != build.proto or arch != build.arch:
            raise BitflipError(
                f"the board imports bitflip {version} protocol {dev_proto} ({arch}), not the deployed "
                f"{build.version} protocol {build.proto} ({build.arch}): another bitflip shadows {target}"
            )
        if app_file and not str(app_file).endswith(".mpy"):
            raise BitflipError(f"the board imports {app_file}, not the deployed .mpy: remove it")
        res.device_version, res.device_proto = version, dev_proto
        kind = verify_training(r, build, board)
        log(
            f"verified: bitflip {version}, protocol {dev_proto}, {arch} in {target} "
            f"({len(res.copied)} copied, {len(res.unchanged)} unchanged, {len(res.removed)} removed); every module "
            f"imports and a training step with the {kind} kernels gives the host reference's weights"
        )
        return res


# one training step of two tiny models on the board: the fast path (binary2, no margin) and
# the general one (binary weights with a margin: flip_row, argmax), each with the kernels the
# board picks (asm_thumb on rp2 Arm boards), against the host reference
VERIFY_CONFIGS = (
    {"sizes": [64, 8], "classes": 4, "weights": "binary2", "seed": 5, "window": 4, "margin": -1, "k": [1], "ks": 1},
    {"sizes": [64, 8], "classes": 4, "weights": "binary", "seed": 5, "window": 4, "margin": 3, "k": [1], "ks": 0},
)
_TRAIN_STEP = """import sys, gc, binascii
for _m in [m for m in sys.modules if m == 'bitflip' or m.startswith('bitflip.')]:
    del sys.modules[_m]
for _n in %r:
    __import__('bitflip.' + _n)
from bitflip import accel, spec
from bitflip.rule import Trainer
_out = [accel.KIND]
_buf = bytearray(binascii.a2b_base64(%r))
for _cfg in %r:
    _t = Trainer(_cfg)
    _t.train_block(_buf, %d, 0, %d, 2)
    _out.append(spec.digest([p for _, _, p in _t.planes()]))
    _t.close()
print(repr(_out))
_t = _buf = None
for _m in [m for m in sys.modules if m == 'bitflip' or m.startswith('bitflip.')]:
    del sys.modules[_m]
gc.collect()
"""


def verify_training(r: Any, build: Build, board: Board) -> str:
    """Import every module the board will run and train two tiny models one block each on
    it; the digests must equal the host reference's. Returns the kernel kind the board ran."""
    import base64

    import numpy as np

    from ..bitplanes import pack_bits
    from ..training.reference import Reference

    count = 12
    rng = np.random.default_rng(17)
    X = pack_bits(rng.random((count, 64)) < 0.4)
    y = np.array([i % 4 for i in range(count)], dtype=np.uint8)
    block = bytes(y) + X.astype("<u4").tobytes()  # labels (12: a multiple of 4), then the rows
    want = []
    for cfg in VERIFY_CONFIGS:
        ref = Reference(cfg)
        for i in range(count):
            ref.train_sample(X[i], int(y[i]))
        want.append(ref.digest())
    mods = sorted(n[:-4] for n in build.files if n.endswith(".mpy") and n not in ("_build.mpy", "__init__.mpy"))
    script = _TRAIN_STEP % (mods, base64.b64encode(block).decode(), list(VERIFY_CONFIGS), count, count)
    try:
        kind, *got = r.eval(script, timeout=60)
    except LinkError as e:
        raise LinkError(f"deployed, but the firmware does not run on the board: {e}") from None
    expected = board.data.get("kernel", "viper")
    if kind != expected:
        raise BitflipError(
            f"the board runs the {kind} kernels, not the {expected} ones {board.name} should: "
            "a firmware without asm_thumb?"
        )
    if got != want:
        raise BitflipError(
            f"deployed, but a training step on the board does not give the host reference's weights "
            f"({got[0][:12]}... vs {want[0][:12]}...): this firmware is not usable on {board.name}"
        )
    return str(kind)
