"""A thin adapter over mpremote's SerialTransport (mpremote is used as a library).

mpremote's module says its API "is going to change significantly", so the project pins
mpremote==1.29.0 and touches it only here: open, raw REPL without soft reset (a soft reset
ends the unix port behind a virtual board), exec/eval with a timeout, and file transfer.
Files go over as base64 chunks (mpremote's own fs_writefile sends 256-byte Python
literals, ~6x more round trips).
"""

from __future__ import annotations

import ast
import base64
import contextlib
import io
import struct
from typing import Any, Self

from ..errors import LinkError, UsageError

PINNED = "1.29.0"
CHUNK = 1536  # raw bytes per write exec: 2 KiB of base64, compiles in a few KiB of heap

# One exec answering "what is this board": version, .mpy ABI, port, machine, sys.path.
_INFO = (
    "import sys\n"
    "print(repr((tuple(sys.implementation.version[:3]), getattr(sys.implementation, '_mpy', 0),"
    " sys.platform, getattr(sys.implementation, '_machine', ''), list(sys.path))))"
)

# sha256 of every file in a folder, one exec; {} when the folder does not exist.
_HASHES = """import os
try:
    import hashlib, binascii
except ImportError:
    hashlib = None
def _bf_h(p):
    h = hashlib.sha256()
    b = bytearray(256)
    m = memoryview(b)
    with open(p, 'rb') as f:
        while True:
            n = f.readinto(b)
            if not n:
                break
            h.update(m[:n])
    return binascii.hexlify(h.digest()).decode()
r = {}
try:
    for e in os.ilistdir(%r):
        if e[1] & 0x4000 == 0:
            r[e[0]] = _bf_h(%r + '/' + e[0]) if hashlib else ''
except OSError:
    r = None
print(repr(r))
del _bf_h, r
"""


def _mpremote_version() -> str:
    try:
        from importlib.metadata import version

        return version("mpremote")
    except (ImportError, ValueError, LookupError):  # not installed as a distribution
        return "unknown"


class Remote:
    """One MicroPython board over mpremote's serial transport, in raw REPL."""

    def __init__(self, port: str, baudrate: int = 115200, timeout: float = 2.0):
        try:
            from mpremote.transport import TransportError, TransportExecError
            from mpremote.transport_serial import SerialTransport
        except ImportError as e:
            raise UsageError(f"mpremote is not installed (pip install mpremote=={PINNED}): {e}") from None
        self._TransportError = TransportError
        self._TransportExecError = TransportExecError
        self.port = port
        self.version = _mpremote_version()
        try:
            # timeout: pyserial read timeout, so every read in mpremote returns within it
            # (with None a silent device would block forever)
            self.t = SerialTransport(port, baudrate=baudrate, wait=0, exclusive=True, timeout=timeout)
        except (TransportError, OSError) as e:
            raise UsageError(f"cannot open port {port}: {e}") from None
        self.in_raw = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def enter_raw(self, timeout: float = 10.0) -> None:
        """Interrupt whatever runs and enter the raw REPL, without a soft reset."""
        captured = io.StringIO()
        try:
            with contextlib.redirect_stdout(captured):  # mpremote prints what it got
                self.t.enter_raw_repl(soft_reset=False, timeout_overall=timeout)
        except (self._TransportError, OSError) as e:
            got = captured.getvalue().strip()[-120:]
            raise UsageError(
                f"{self.port} does not answer like a MicroPython board (no raw REPL within {timeout:g} s: {e}"
                + (f"; it sent {got}" if got else "")
                + "; a bitflip run still streaming ignores Ctrl-C until its 60 s idle timeout: wait or reset the board)"
            ) from None
        self.in_raw = True

    def exec(self, code: str, timeout: float = 10.0) -> bytes:
        """Run code; returns its stdout. A device exception raises LinkError with the
        last traceback line; silence for `timeout` seconds raises LinkError."""
        try:
            self.t.exec_raw_no_follow(code)
            out, err = self.t.follow(timeout)
        except self._TransportError as e:
            raise LinkError(f"{self.port}: {e}") from None
        except (OSError, struct.error, ValueError, TypeError) as e:  # a short read inside raw-paste
            raise LinkError(f"{self.port}: link failed during exec ({type(e).__name__}: {e})") from None
        if err:
            last = err.decode("utf-8", "replace").strip().splitlines()[-1:]
            raise LinkError(f"{self.port}: device raised {last[0] if last else 'an error'}")
        return bytes(out)

    def eval(self, code: str, timeout: float = 10.0) -> Any:
        """exec code that prints one repr(); returns the parsed value."""
        out = self.exec(code, timeout).decode("utf-8", "replace").strip()
        try:
            return ast.literal_eval(out.splitlines()[-1] if out else "")
        except (ValueError, SyntaxError):
            raise LinkError(f"{self.port}: unexpected answer {out[-120:]!r}") from None

    def info(self) -> dict[str, Any]:
        version, mpy, platform, machine, path = self.eval(_INFO)
        return {"version": tuple(version), "mpy": int(mpy), "platform": platform, "machine": machine, "path": path}

    def hashes(self, folder: str) -> dict[str, str] | None:
        """sha256 hex of each file in folder ('' when the board has no hashlib);
        None when the folder does not exist."""
        return self.eval(_HASHES % (folder, folder), timeout=30)

    def makedirs(self, folder: str) -> None:
        self.exec(
            "import os\n"
            f"p = ''\nfor part in {folder!r}.split('/'):\n"
            "    if not part:\n        p = '/'\n        continue\n"
            "    p = p + part if p in ('', '/') else p + '/' + part\n"
            "    try:\n        os.mkdir(p)\n    except OSError:\n        pass\n"
        )

    def put(self, path: str, data: bytes) -> None:
        """Write data to path: into path.tmp first, then renamed over path, so an
        interrupted copy never leaves a truncated module behind."""
        tmp = path + ".tmp"
        self.exec(f"import binascii, os\n_bf_f = open({tmp!r}, 'wb')")
        try:
            for i in range(0, len(data), CHUNK):
                b64 = base64.b64encode(data[i : i + CHUNK]).decode()
                self.exec(f"_bf_f.write(binascii.a2b_base64({b64!r}))")
        finally:
            self.exec("_bf_f.close()\ndel _bf_f")
        # littlefs replaces on rename; FAT refuses, so remove the old file first there
        self.exec(
            f"try:\n    os.rename({tmp!r}, {path!r})\nexcept OSError:\n"
            f"    os.remove({path!r})\n    os.rename({tmp!r}, {path!r})"
        )

    def remove(self, path: str) -> None:
        self.exec(f"import os\nos.remove({path!r})")

    def close(self) -> None:
        # closing must never mask the real error
        with contextlib.suppress(OSError, self._TransportError):
            if self.in_raw:
                self.t.exit_raw_repl()
        try:
            self.t.close()
        except OSError:  # a pty refuses the DTR/RTS ioctls mpremote sends on close
            with contextlib.suppress(OSError):
                self.t.serial.close()
        self.in_raw = False
