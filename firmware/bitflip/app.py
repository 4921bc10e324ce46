# The device app loop: the host launches main() through the raw REPL; it speaks frames in
# and records out (see protocol.py) until a DONE frame, an idle timeout or a fatal error.
# Runs unchanged on a board and under the unix port.
#
# Steady state (TRAIN/EVAL frames) runs under micropython.heap_lock(): receiving, checking
# and acknowledging a frame and learning from its samples allocate nothing, on every run.
import gc
import sys
import time

import micropython
from micropython import const

from . import VERSION
from . import ckpt, jobckpt
from . import payload as PL
from . import protocol as P
from . import spec
from .stream import BAD, DUP, NONE, Link

# free heap the FEC decoder needs after the model is built: its import (~2.2 KB on a Pico)
# and tables (788 B), and training's records and checkpoints (memory.RUNTIME_MARGIN, 4 KiB)
_FEC_RESERVE = const(8192)

try:
    import ujson as json
except ImportError:
    import json  # type: ignore[no-redef]  # the same module under another name


def _platform():
    m = getattr(sys.implementation, "_machine", "")
    return sys.platform + (" " + m if m else "")


def identity():
    # what the board is, for the host to check against --board before it sends anything
    return {P.F_PLATFORM: _platform(), P.F_MPY: getattr(sys.implementation, "_mpy", 0)}


class App:
    def __init__(self, link, out):
        self.link = link
        self.out = out
        self.trainer = None
        self.totals = {}  # work counters of training over the whole run (long ints are fine here)
        self.eval_totals = {}  # the same for evaluation passes
        self.eval_us = 0  # ticks_us spent in eval blocks since the last eval record
        self.block_us = 0  # ticks_us of the last block
        self.meter = None  # power.Meter when the config names a power meter
        self.cfg_id = ""
        self.last_seq = -1  # seq of the last frame that produced a record...
        self.last_rec = b""  # ...and that record, replayed if the frame comes again
        self.reset_epoch()
        self.eval_correct = 0
        self.eval_seen = 0

    def reset_epoch(self):
        self.epoch_correct = 0
        self.epoch_seen = 0
        self.busy_us = 0
        self.epoch_t0 = time.ticks_us()

    # records -----------------------------------------------------------------------------
    def record(self, ev, fields, answer=False):
        fields[P.F_EV] = ev
        if answer:
            fields[P.F_SEQ] = self.link.seq
        line = P.record_line(json.dumps(fields).encode())
        self.out.write(line)
        if answer:
            self.last_seq = self.link.seq
            self.last_rec = line

    def error(self, code, msg):
        self.record(P.R_ERROR, {P.F_CODE: code, P.F_MSG: msg})

    # frames ------------------------------------------------------------------------------
    def on_config(self, n):
        buf = self.link.buf
        cfg = json.loads(bytes(buf[P.HEADER_SIZE : P.HEADER_SIZE + n]))
        PL.check_config(cfg)  # ValueError: "bad configuration: ..."
        self.release()
        from . import dual
        from .rule import Trainer, imports

        imports(cfg)  # the modules this model needs, and the second core's worker, first:
        if dual.wanted(cfg):  # they are part of every run alike
            dual.worker()
        gc.collect()
        before = gc.mem_free()
        trainer = Trainer(cfg)
        resumed = None
        if cfg.get("resume"):
            trainer, resumed = jobckpt.resume(self, cfg, trainer)
        if resumed is None:  # a job from its start (also after a reconnect before its first checkpoint)
            self.totals = {}
            self.reset_epoch()
            self.eval_correct = 0
            self.eval_seen = 0
        self.eval_totals = {}
        self.eval_us = 0
        self.meter = None
        if cfg.get("meter"):
            from .power import Meter

            self.meter = Meter(cfg["meter"])  # OSError (no chip answers) ends up as an error record
            self.meter.uj = self.totals.get(P.F_ENERGY_UJ, 0)
        self.trainer = trainer
        self.cfg_id = cfg.get("id", "")
        gc.collect()
        free = gc.mem_free()  # what the model left (the FEC decoder comes out of it, if it fits)
        fec = self.link.enable_fec(_FEC_RESERVE)  # after the model: it may not fit
        gc.collect()
        w = trainer.weight_bytes()
        self.record(
            P.R_CONFIG,
            {
                P.F_WEIGHT_BYTES: w,
                P.F_WORKING_BYTES: trainer.nbytes() - w,
                P.F_HEAP_BEFORE: before,
                P.F_HEAP_FREE: free,
                P.F_RESUMED: resumed,
                P.F_FEC: 1 if fec else 0,
            },
            True,
        )

    def release(self):
        # everything a run allocated goes back to the heap: a second run on the same board
        # starts from the same free heap as the first
        if self.trainer is not None:
            self.trainer.close()
            self.trainer = None
        self.meter = None
        gc.collect()

    def on_block(self, kind, n):
        # called with the heap locked
        buf = self.link.buf
        p = P.HEADER_SIZE
        count = PL.block_count(buf, p)
        row_bytes = PL.block_row_bytes(buf, p)
        lab = p + PL.BLOCK_HEADER
        rows = lab + ((count + 3) & ~3)
        t = self.trainer
        if row_bytes & 3 or row_bytes < 4 * ((t.n_in + 31) >> 5) or rows + count * row_bytes > p + n:
            return False
        for i in range(count):
            if buf[lab + i] >= t.n_classes:
                return False
        t0 = time.ticks_us()
        if kind == P.K_TRAIN:
            self.epoch_correct += t.train_block(buf, count, lab, rows, row_bytes >> 2)
            self.epoch_seen += count
            self.block_us = time.ticks_diff(time.ticks_us(), t0)
            self.busy_us += self.block_us
        else:
            self.eval_correct += t.eval_block(buf, count, lab, rows, row_bytes >> 2)
            self.eval_seen += count
            self.eval_us += time.ticks_diff(time.ticks_us(), t0)
        return True

    def on_mark(self):
        mark, value = PL.decode_mark(self.link.buf, P.HEADER_SIZE)
        t = self.trainer
        if mark == PL.MARK_EPOCH:
            rec = {
                P.F_EPOCH: value,
                P.F_SEEN: self.epoch_seen,
                P.F_CORRECT: self.epoch_correct,
                P.F_STEP: t.step,
                P.F_BUSY_US: self.busy_us,
                P.F_WALL_US: time.ticks_diff(time.ticks_us(), self.epoch_t0),
            }
            rec.update(self.totals)
            self.record(P.R_EPOCH, rec, True)
            self.reset_epoch()
        else:
            rec = {
                P.F_EPOCH: value,
                P.F_SPLIT: "val" if mark == PL.MARK_VAL else "test",
                P.F_SEEN: self.eval_seen,
                P.F_CORRECT: self.eval_correct,
                P.F_BUSY_US: self.eval_us,
            }
            for name, v in self.eval_totals.items():
                rec[P.EVAL_PREFIX + name] = v
            self.record(P.R_EVAL, rec, True)
            self.eval_correct = 0
            self.eval_seen = 0
            self.eval_us = 0

    def on_dump(self, n):
        # payload.decode_dump: everything, or one byte range of one plane
        import binascii

        want = PL.decode_dump(self.link.buf, P.HEADER_SIZE, n)
        for layer, name, plane in self.trainer.planes():
            if want is None:
                off0, size, step = 0, len(plane), PL.DUMP_CHUNK
            elif want[0] != layer or want[1] != PL.PLANE_SLOTS[name]:
                continue
            else:
                off0, size, step = want[2], want[3], want[4]
            mv = memoryview(plane)
            end = min(len(plane), off0 + size)
            for off in range(off0, end, step):
                # any buffer will do (the stub says bytes): a slice of the view allocates no copy
                chunk = binascii.b2a_base64(mv[off : min(end, off + step)]).strip().decode()  # type: ignore[arg-type]
                self.record(
                    P.R_WEIGHTS, {P.F_LAYER: layer, P.F_PLANE: name, P.F_OFF: off, P.F_SIZE: len(plane), P.F_B64: chunk}
                )

    def digest(self):
        return spec.digest([p for _, _, p in self.trainer.planes()])

    # loop --------------------------------------------------------------------------------
    def run(self, idle_ms):
        link = self.link
        while True:
            micropython.heap_lock()
            try:
                kind = link.next_frame(idle_ms)
                block = (kind == P.K_TRAIN or kind == P.K_EVAL) and self.trainer is not None
                if block:
                    if self.on_block(kind, link.length):
                        link.accept()
                    else:
                        link.send_nak(P.E_PAYLOAD)
            finally:
                micropython.heap_unlock()
            if block:
                # may allocate: outside the lock. Training and evaluation work apart.
                self.trainer.take_counters(self.totals if kind == P.K_TRAIN else self.eval_totals)
                if self.meter is not None and kind == P.K_TRAIN:
                    self.totals[P.F_ENERGY_UJ] = self.meter.add(self.block_us)
                continue
            if kind == NONE:
                self.error(P.E_TIMEOUT, "no frame from the host for %d ms" % idle_ms)
                return
            if kind == DUP:
                if link.seq == self.last_seq:
                    self.out.write(self.last_rec)  # the answer was lost: say it again
                continue
            if kind == BAD:
                continue
            if kind == P.K_CONFIG:
                try:
                    self.on_config(link.length)
                except MemoryError:
                    self.release()
                    self.error(P.E_MEMORY, "model does not fit: %d bytes free" % gc.mem_free())
                    return
                except (KeyError, ValueError, TypeError, OSError, ImportError) as e:
                    self.error(P.E_CONFIG, "bad configuration: %s" % e)
                    return
            elif kind == P.K_PING:
                rec = {
                    P.F_EXPECT: link.expect,
                    P.F_PROTO: P.VERSION,
                    P.F_MAX_PAYLOAD: link.max_payload,
                    P.F_CREDIT: link.credit,
                }
                rec.update(identity())
                self.record(P.R_PONG, rec)
                continue
            elif kind == P.K_EXIT:
                return
            elif self.trainer is None:
                link.send_nak(P.E_STATE)
                continue
            elif kind == P.K_TRAIN or kind == P.K_EVAL:
                pass  # handled above
            elif kind == P.K_MARK:
                self.on_mark()
            elif kind == P.K_CKPT:
                jobckpt.on_ckpt(self, link.length)
            elif kind == P.K_DUMP:
                self.on_dump(link.length)
            elif kind == P.K_DONE:
                t = self.trainer
                self.record(
                    P.R_DONE,
                    {
                        P.F_DIGEST: self.digest(),
                        P.F_STEP: t.step,
                        P.F_RX_FRAMES: link.rx_frames,
                        P.F_RX_BAD: link.rx_bad,
                        P.F_RX_DUP: link.rx_dup,
                    },
                    True,
                )
            link.accept()


def main(max_payload=P.MAX_PAYLOAD, credit=1, idle_ms=60000):
    gc.collect()
    out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else sys.stdout
    boot = {
        P.F_VERSION: VERSION,
        P.F_PROTO: P.VERSION,
        P.F_HEAP_FREE: gc.mem_free(),
        P.F_MICROPYTHON: list(sys.implementation.version[:3]),
    }
    boot.update(identity())
    meta = ckpt.peek()
    if meta is not None:
        boot[P.F_CKPT] = {
            P.F_ID: meta.get("id"),
            P.F_EPOCH: meta.get("epoch"),
            P.F_INDEX: meta.get("index"),
            P.F_STEP: meta.get("step"),
        }
    boot[P.F_EV] = P.R_BOOT
    out.write(P.record_line(json.dumps(boot).encode()))
    meta = boot = None
    try:
        link = Link(max_payload, credit)
    except MemoryError:
        out.write(
            P.record_line(
                json.dumps({P.F_EV: P.R_ERROR, P.F_CODE: P.E_MEMORY, P.F_MSG: "no memory for the link"}).encode()
            )
        )
        return
    app = App(link, out)
    micropython.kbd_intr(-1)  # from here on 0x03 is data, not Ctrl-C
    try:
        app.record(P.R_READY, {"max_payload": link.max_payload, "credit": link.credit})
        app.run(idle_ms)
    except Exception as e:  # noqa: BLE001  report, never die silently
        app.error(0, "%s: %s" % (type(e).__name__, e))
    finally:
        micropython.kbd_intr(3)
        app.release()  # the board gives back everything this run took
