"""A model file on a board: push it to the board's flash, pull it back, and run
predictions there (firmware/bitflip/model.py) over the raw REPL (link/remote.py, mpremote).

Paths on the board are relative to its working directory: "/" on a Pico or an ESP32, the
flash folder of a virtual board. Files are written as path.tmp and renamed (Remote.put), so
an interrupted push never leaves half a model where the old one was."""

from __future__ import annotations

import base64
import binascii
import contextlib
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .. import boards as boards_mod
from ..boards import Board
from ..errors import LinkError, UsageError
from ..link.remote import Remote
from .modelfile import ModelFile

DEFAULT_PATH = "model.bfm"
READ_CHUNK = 3072  # raw bytes per pull exec: 4 KiB of base64 in one answer
PREDICT_CHUNK = 6144  # raw sample bytes per predict exec (8 KiB of base64 for the board to compile)

Log = Callable[[str], None]

_CRC = """import binascii
def _bf_crc(p):
    c = 0
    n = 0
    b = bytearray(512)
    m = memoryview(b)
    with open(p, 'rb') as f:
        while True:
            k = f.readinto(b)
            if not k:
                break
            c = binascii.crc32(m[:k], c)
            n += k
    return (n, c & 0xFFFFFFFF)
try:
    print(repr(_bf_crc(%r)))
except OSError:
    print(repr(None))
del _bf_crc
"""

_READ = """import binascii
with open(%r, 'rb') as _bf_f:
    _bf_f.seek(%d)
    print(repr(binascii.b2a_base64(_bf_f.read(%d)).decode().strip()))
del _bf_f
"""

_LOAD = """import gc, sys, time, binascii, struct
for _m in [m for m in sys.modules if m == 'bitflip' or m.startswith('bitflip.')]:
    del sys.modules[_m]
gc.collect()
from bitflip.model import Model
_bf_m = Model.load(%r)
def _bf_run(b64, n, F, code):
    data = binascii.a2b_base64(b64)
    if code == 'B':
        rows = [data[i * F:(i + 1) * F] for i in range(n)]
    else:
        rows = [struct.unpack_from('<%%d%%s' %% (F, code), data, i * F * struct.calcsize(code)) for i in range(n)]
    out = bytearray(n)
    m = _bf_m
    t0 = time.ticks_us()
    for i in range(n):
        out[i] = m.predict(rows[i])
    t = time.ticks_diff(time.ticks_us(), t0)
    print(repr((binascii.hexlify(out).decode(), t)))
print(repr((_bf_m.n_features, _bf_m.classes, gc.mem_free())))
"""


def board_for(name: str) -> Board:
    board = boards_mod.load(name)
    if board.is_host:
        raise UsageError("--board host has no flash: use a real board or a virtual one (sim-...)")
    return board


@contextlib.contextmanager
def connect(board: Board, port: str | None, start_virtual: bool = False) -> Iterator[Remote]:
    """A Remote in raw REPL on the board; with start_virtual and no --port, a fresh virtual
    board (its flash a temporary folder) for the duration."""
    from ..link.ports import resolve_port

    with contextlib.ExitStack() as stack:
        if board.is_virtual and not port and start_virtual:
            from ..link.virtual import VirtualBoard

            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bitflip-sim-"))
            vb = stack.enter_context(VirtualBoard(board, Path(tmp) / "flash"))
            port = vb.port
        else:
            port = resolve_port(port, board)
        r = stack.enter_context(Remote(port))
        r.enter_raw()
        yield r


def remote_crc(r: Remote, path: str) -> tuple[int, int] | None:
    """(size, CRC-32) of a file on the board, None if it does not exist."""
    got = r.eval(_CRC % path, timeout=60)
    return None if got is None else (int(got[0]), int(got[1]))


def push(
    board_name: str, port: str | None, model: Path, dest: str = DEFAULT_PATH, log: Log = lambda s: None
) -> dict[str, Any]:
    """Copy a model file to the board's flash and check it arrived intact."""
    board = board_for(board_name)
    data = Path(model).read_bytes() if Path(model).is_file() else b""
    mf = ModelFile.read(model)  # a damaged file is refused before anything is sent
    with connect(board, port) as r:
        t0 = time.monotonic()
        r.put(dest, data)
        got = remote_crc(r, dest)
        want = (len(data), zlib.crc32(data) & 0xFFFFFFFF)
        if got != want:
            raise LinkError(f"{r.port}: {dest} on the board is {got}, not the pushed {want} (size, CRC-32)")
        secs = time.monotonic() - t0
    log(f"pushed {model} ({len(data)} bytes) to {board.name}:{dest} in {secs:.1f} s, CRC-32 {want[1]:08x} checked")
    return {
        "board": board.name,
        "path": dest,
        "bytes": len(data),
        "crc32": f"{want[1]:08x}",
        "seconds": round(secs, 3),
        "digest": mf.digest(),
        "job": mf.meta.get("job", ""),
    }


def read_remote(r: Remote, path: str) -> bytes:
    info = remote_crc(r, path)
    if info is None:
        raise UsageError(f"{r.port}: the board has no file {path}")
    size, crc = info
    parts = []
    for off in range(0, size, READ_CHUNK):
        parts.append(base64.b64decode(r.eval(_READ % (path, off, READ_CHUNK), timeout=30)))
    data = b"".join(parts)
    if len(data) != size or zlib.crc32(data) & 0xFFFFFFFF != crc:
        raise LinkError(f"{r.port}: {path} changed or was damaged on the way (size {len(data)} of {size})")
    return data


def pull(
    board_name: str,
    port: str | None,
    out: Path,
    src: str = DEFAULT_PATH,
    force: bool = False,
    log: Log = lambda s: None,
) -> dict[str, Any]:
    """Copy a model file from the board's flash to out (checked: it must read as a model)."""
    board = board_for(board_name)
    out = Path(out)
    from ..paths import check_file

    check_file(out, "--out", force)
    with connect(board, port) as r:
        data = read_remote(r, src)
    mf = ModelFile.from_bytes(data, f"{board.name}:{src}")
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    log(
        f"pulled {board.name}:{src} ({len(data)} bytes) to {out}: digest {mf.digest()[:16]}..., "
        f"{mf.meta.get('learned_on_board', 0)} samples learned on the board"
    )
    return {
        "board": board.name,
        "path": src,
        "out": str(out),
        "bytes": len(data),
        "digest": mf.digest(),
        "learned_on_board": mf.meta.get("learned_on_board", 0),
    }


def _payload(x: np.ndarray) -> tuple[str, np.ndarray]:
    """(struct code, array) in which raw values cross the link: bytes for 0..255, int32 for
    other whole numbers, float64 otherwise."""
    if x.dtype == np.uint8:
        return "B", x
    if x.dtype.kind in "biu" or bool((x == np.floor(x)).all()):
        if x.size and (x.min() < -(2**31) or x.max() >= 2**31):
            raise UsageError("feature values beyond 32 bits cannot be sent to a board")
        return "i", x.astype("<i4")
    return "d", x.astype("<f8")


def predict_on_board(
    board: Board,
    port: str | None,
    mf: ModelFile,
    model_bytes: bytes,
    x: np.ndarray,
    progress: Callable[[int], None] = lambda n: None,
    log: Log = lambda s: None,
) -> tuple[np.ndarray, float]:
    """Class indices of raw samples x predicted on the board, and its measured microseconds
    per predict() (the board's own clock, around the calls only)."""
    code, arr = _payload(np.asarray(x))
    per = arr.shape[1] * arr.dtype.itemsize
    n_chunk = max(1, PREDICT_CHUNK // per)
    path = ".bitflip-predict.bfm"
    out = np.zeros(len(arr), dtype=np.int64)
    busy_us = 0
    with connect(board, port, start_virtual=True) as r:
        r.put(path, model_bytes)
        try:
            n_feat, classes, free = r.eval(_LOAD % path, timeout=120)
        except LinkError as e:
            raise LinkError(f"{e} (is bitflip deployed on the board? `bitflip deploy --board {board.name}`)") from None
        if (n_feat, classes) != (mf.n_features, mf.classes):
            raise LinkError(f"{r.port}: the board read the model as {n_feat} features, {classes} classes")
        log(f"{board.name}: model loaded, {free} bytes of heap free")
        try:
            for i in range(0, len(arr), n_chunk):
                part = np.ascontiguousarray(arr[i : i + n_chunk])
                b64 = base64.b64encode(part.tobytes()).decode()
                hx, t = r.eval(f"_bf_run({b64!r}, {len(part)}, {arr.shape[1]}, {code!r})", timeout=120)
                out[i : i + len(part)] = np.frombuffer(binascii.unhexlify(hx), dtype=np.uint8)
                busy_us += int(t)
                progress(len(part))
        finally:
            with contextlib.suppress(LinkError):
                r.exec(f"import os\ndel _bf_run, _bf_m\nos.remove({path!r})")
    return out, busy_us / max(1, len(arr))
