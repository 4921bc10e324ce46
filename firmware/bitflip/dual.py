# Second core for large layers: a layer with >= spec.SPLIT_MIN_ROWS neurons splits its forward pass,
# rows [0, h) on the calling core and rows [h, n_out) on a worker thread (RP2040: _thread
# runs it on core 1, and the rp2 port has no GIL, so both cores run at once).
#
# Rules that keep it safe and bit-exact:
# - the worker thread is started once per model (before the model is allocated) and stopped
#   when the run ends (Trainer.close); jobs are described by preallocated buffers
#   (memoryview slices made once, when the Trainer is built) so a forward pass allocates
#   nothing on either core;
# - every row is computed by the same kernel as on one core and rows do not interact, so
#   the results (and the weights digest) are identical;
# - the update, votes and everything else stay on the calling core;
# - the asm_thumb wrappers share a parameter block, so the worker calls the raw asm entry
#   with a block of its own.
# Used where the port runs threads without a GIL (sys.implementation._thread == "unsafe":
# rp2; also the unix port, where tests prove the results identical). On by default on rp2
# only; cfg "cores": 1 turns it off, "cores": 2 asks for it on any such port.
import sys
import time
from array import array

import micropython
from micropython import const

from . import accel
from . import kernels as K
from .spec import SPLIT_MIN_ROWS

_TYPE_CHECKING = const(0)  # the block below is for mypy only: the board's compiler drops it
if _TYPE_CHECKING:
    from typing import Literal

_GO = 0  # ctl[0]: job sequence number, written by the caller last
_JOB = 1  # ctl[1]: index of the job
_DONE = 2  # ctl[2]: sequence number of the last job the worker finished (-1: alive)
_QUIT = 3  # ctl[3]: 1 = worker should return
_GONE = -2  # ctl[_DONE] once the worker has returned
_MASK = 0xFFFFFF  # sequence numbers wrap here: they stay small ints on every port

try:
    import _thread
except ImportError:
    _thread = None  # type: ignore[assignment]


def available():
    return _thread is not None and getattr(sys.implementation, "_thread", "") == "unsafe"


def wanted(cfg):
    cores = int(cfg.get("cores", 0))
    if cores == 1 or not available():
        return False
    return cores >= 2 or sys.platform == "rp2"


@micropython.viper
def _spin(ctl: ptr32, i: int, v: int, n: int) -> int:
    # poll ctl[i] until it equals v (returns 1) or n polls went by (returns 0)
    while n > 0:
        if ctl[i] == v:
            return 1
        n -= 1
    return 0


@micropython.viper
def _spin_ne(ctl: ptr32, i: int, v: int, n: int) -> int:
    # poll ctl[i] until it differs from v (returns 1) or n polls went by (returns 0)
    while n > 0:
        if ctl[i] != v:
            return 1
        if ctl[3] != 0:
            return 1
        n -= 1
    return 0


class Worker:
    def __init__(self):
        self.ctl = array("i", [0, 0, 0, 0])
        self.jobs = []
        self.pb = array("i", bytes(32))  # the worker's own asm parameter block
        self.asm = None
        self.sv = None  # fast.py's split: (kernel, x, s half, pre half, block) run in serve mode
        if accel.KIND == "asm_thumb":
            from . import kernels_thumb

            self.asm = kernels_thumb.dense_binary_asm
        self.rp2 = sys.platform == "rp2"
        self.ok = False
        self.ctl[_DONE] = 0
        _thread.start_new_thread(self._loop, ())
        # the worker says it is alive by writing -1; give up after ~2 s (a loaded host starts threads slowly)
        t0 = time.ticks_ms()
        while self.ctl[_DONE] != -1:
            if time.ticks_diff(time.ticks_ms(), t0) > 2000:
                self.ctl[_QUIT] = 1
                return
            time.sleep_ms(1)
        self.ok = True

    def _loop(self):
        ctl = self.ctl
        seen = ctl[_GO]
        ctl[_DONE] = -1
        while True:
            sv = self.sv
            n = 20000
            if sv is not None:
                # the serve mode of accel.dense_argmax: runs the leader's jobs until it has
                # polled its GO word SERVE_POLLS times in vain (then a look at ctl below)
                sv[0](sv[1], sv[2], sv[3], sv[4])
                n = 1
            if not _spin_ne(ctl, _GO, seen, n):
                if not self.rp2:
                    time.sleep_us(200)  # idle on a shared host: do not hold a CPU
                continue
            if ctl[_QUIT]:
                break
            seen = ctl[_GO]
            self._run(self.jobs[ctl[_JOB]])
            ctl[_DONE] = seen
        ctl[_DONE] = _GONE

    def _run(self, job):
        # job: (kind, x, s, aux, pre, nw, rows, nbits) for rows [h, n_out)
        if job[0] == 3:
            K.dense_ternary(job[1], job[2], job[3], job[4], job[5], job[6])
        elif self.asm is not None:
            pb = self.pb
            pb[0] = job[5]
            pb[1] = job[6]
            pb[2] = job[7]
            self.asm(job[1], job[2], job[4], pb)
        else:
            K.dense_binary(job[1], job[2], job[4], job[5], job[6], job[7])

    def serve(self, kernel, x, s, pre, block):
        # from now on core 1 waits for fast.py's leader inside kernel (accel.dense_argmax) in
        # serve mode: no Python on core 1 per sample (the block's protocol: kernels_thumb.py)
        self.sv = (kernel, x, s, pre, block)

    def start(self, j):
        # the worker runs job j; returns the sequence number to wait for
        ctl = self.ctl
        seq = (ctl[_GO] + 1) & _MASK
        ctl[_JOB] = j
        ctl[_GO] = seq
        return seq

    def wait(self, seq):
        ctl = self.ctl
        while not _spin(ctl, _DONE, seq, 100000):
            pass

    def stop(self):
        # ask the worker to return and wait until it has (~2 s at most): a thread that is
        # gone leaves nothing for the GC to scan (its stack may hold stale pointers to the
        # model it worked on, which would keep that model's buffers alive)
        self.ctl[_QUIT] = 1
        t0 = time.ticks_ms()
        while self.ctl[_DONE] != _GONE and time.ticks_diff(time.ticks_ms(), t0) < 2000:
            time.sleep_ms(1)


_worker: "Worker | Literal[False] | None" = None  # False: it could not start


def worker():
    # the process-wide worker, started on first use (outside the heap lock); None when it
    # could not start
    global _worker
    if _worker is None:
        try:
            _worker = Worker()
        except (OSError, RuntimeError, MemoryError):
            _worker = False
        if _worker is not False and not _worker.ok:
            _worker = False
    return _worker or None


def plan(layers, x0, w):
    # give every layer with >= SPLIT_MIN_ROWS neurons a half for worker w; returns w (or None
    # when no layer is large enough)
    big = [i for i, layer in enumerate(layers) if layer.n_out >= SPLIT_MIN_ROWS]
    w.jobs = []
    if not big:
        return None
    jobs: list[tuple] = []
    for i in big:
        layer = layers[i]
        x = x0 if i == 0 else layers[i - 1].out
        h = layer.n_out >> 1
        off = 4 * layer.nw * h
        aux = memoryview(layer.aux)[off:]
        job = (
            layer.kind,
            x,
            memoryview(layer.s)[off:],
            aux,
            memoryview(layer.pre)[h:],
            layer.nw,
            layer.n_out - h,
            layer.n_in,
        )
        layer.split = (w, len(jobs), h)
        jobs.append(job)
    w.jobs = jobs
    return w


def release(layers):
    # the model is done: the worker returns (the next run starts a new one, before its model,
    # so its stack lands where this one's was) and nothing holds the model's buffers
    global _worker
    for layer in layers:
        layer.split = None
    if _worker:
        _worker.jobs = []
        _worker.sv = None
        _worker.stop()
    _worker = None
