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

from . import VERSION
from . import ckpt
from . import protocol as P
from .stream import BAD, DUP, NONE, Link

try:
    import ujson as json
except ImportError:
    import json


def _platform():
    m = getattr(sys.implementation, "_machine", "")
    return sys.platform + (" " + m if m else "")


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
        fields["ev"] = ev
        if answer:
            fields["seq"] = self.link.seq
        line = P.record_line(json.dumps(fields).encode())
        self.out.write(line)
        if answer:
            self.last_seq = self.link.seq
            self.last_rec = line

    def error(self, code, msg):
        self.record(P.R_ERROR, {"code": code, "msg": msg})

    # frames ------------------------------------------------------------------------------
    def on_config(self, n):
        buf = self.link.buf
        cfg = json.loads(bytes(buf[P.HEADER_SIZE : P.HEADER_SIZE + n]))
        self.trainer = None
        gc.collect()
        from .rule import Trainer

        trainer = Trainer(cfg)
        resumed = None
        if cfg.get("resume"):
            meta = ckpt.peek()
            if meta is not None and meta.get("id") == cfg.get("id"):
                meta = ckpt.load(trainer.state())
                if meta is None:  # the file changed since peek: a failed load may have filled
                    trainer = None  # part of the buffers, so start from a clean model
                    gc.collect()
                    trainer = Trainer(cfg)
            else:
                meta = None
            if meta is not None:
                trainer.step = meta["step"]
                self.totals = meta["totals"]
                self.epoch_correct = meta["epoch_correct"]
                self.epoch_seen = meta["epoch_seen"]
                self.busy_us = meta["busy_us"]
                resumed = {"epoch": meta["epoch"], "index": meta["index"], "step": meta["step"]}
        if resumed is None:
            self.totals = {}
        self.eval_totals = {}
        self.eval_us = 0
        self.meter = None
        if cfg.get("meter"):
            from .power import Meter

            self.meter = Meter(cfg["meter"])  # OSError (no chip answers) ends up as an error record
            self.meter.uj = self.totals.get("energy_uj", 0)
        self.trainer = trainer
        self.cfg_id = cfg.get("id", "")
        gc.collect()
        w = trainer.weight_bytes()
        self.record(
            P.R_CONFIG,
            {"weight_bytes": w, "working_bytes": trainer.nbytes() - w, "heap_free": gc.mem_free(), "resumed": resumed},
            True,
        )

    def on_block(self, kind, n):
        # called with the heap locked
        buf = self.link.buf
        p = P.HEADER_SIZE
        count = buf[p] | (buf[p + 1] << 8)
        row_bytes = buf[p + 2] | (buf[p + 3] << 8)
        lab = p + P.BLOCK_HEADER
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
        buf = self.link.buf
        mark = buf[P.HEADER_SIZE]
        value = buf[P.HEADER_SIZE + 1] | (buf[P.HEADER_SIZE + 2] << 8)
        t = self.trainer
        if mark == P.MARK_EPOCH:
            rec = {
                "epoch": value,
                "seen": self.epoch_seen,
                "correct": self.epoch_correct,
                "step": t.step,
                "busy_us": self.busy_us,
                "wall_us": time.ticks_diff(time.ticks_us(), self.epoch_t0),
            }
            rec.update(self.totals)
            self.record(P.R_EPOCH, rec, True)
            self.reset_epoch()
        else:
            rec = {"epoch": value, "seen": self.eval_seen, "correct": self.eval_correct, "busy_us": self.eval_us}
            for name, v in self.eval_totals.items():
                rec["eval_" + name] = v
            self.record(P.R_EVAL, rec, True)
            self.eval_correct = 0
            self.eval_seen = 0
            self.eval_us = 0

    def on_ckpt(self):
        buf = self.link.buf
        p = P.HEADER_SIZE
        epoch = buf[p] | (buf[p + 1] << 8)
        index = buf[p + 2] | (buf[p + 3] << 8) | (buf[p + 4] << 16) | (buf[p + 5] << 24)
        t = self.trainer
        t0 = time.ticks_us()
        meta = {"step": t.step, "totals": self.totals}
        meta.update(
            {
                "id": self.cfg_id,
                "epoch": epoch,
                "index": index,
                "epoch_correct": self.epoch_correct,
                "epoch_seen": self.epoch_seen,
                "busy_us": self.busy_us,
            }
        )
        ckpt.save(meta, t.state())
        self.record(P.R_CKPT, {"epoch": epoch, "index": index, "step": t.step, "ms": time.ticks_diff(time.ticks_us(), t0) // 1000}, True)

    def on_dump(self, n):
        # no payload: every plane in 384-byte chunks; else u8 layer, u8 plane (0 "s", 1 the
        # second plane: "c" of binary2 or "z" of ternary),
        # u32 offset, u32 length, u16 chunk: that range only (the host asks again for
        # chunks that arrived damaged, in smaller pieces on a noisy line)
        import binascii

        p = P.HEADER_SIZE
        buf = self.link.buf
        want = None
        if n >= 12:
            want = (buf[p], 1 if buf[p + 1] else 0)
            off0 = buf[p + 2] | (buf[p + 3] << 8) | (buf[p + 4] << 16) | (buf[p + 5] << 24)
            size = buf[p + 6] | (buf[p + 7] << 8) | (buf[p + 8] << 16) | (buf[p + 9] << 24)
            step = max(4, buf[p + 10] | (buf[p + 11] << 8))
        for layer, name, plane in self.trainer.planes():
            if want is None:
                off0, size, step = 0, len(plane), 384
            elif want != (layer, 0 if name == "s" else 1):
                continue
            mv = memoryview(plane)
            end = min(len(plane), off0 + size)
            for off in range(off0, end, step):
                chunk = binascii.b2a_base64(mv[off : min(end, off + step)]).strip().decode()
                self.record(P.R_WEIGHTS, {"layer": layer, "plane": name, "off": off, "size": len(plane), "b64": chunk})

    def digest(self):
        import binascii
        import hashlib

        h = hashlib.sha256()
        for _, _, buf in self.trainer.planes():
            h.update(buf)
        return binascii.hexlify(h.digest()).decode()

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
                    self.totals["energy_uj"] = self.meter.add(self.block_us)
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
                    self.trainer = None
                    gc.collect()
                    self.error(P.E_MEMORY, "model does not fit: %d bytes free" % gc.mem_free())
                    return
                except (KeyError, ValueError, TypeError, OSError, ImportError) as e:
                    self.error(P.E_CONFIG, "bad configuration: %s" % e)
                    return
            elif kind == P.K_PING:
                self.record(P.R_PONG, {"expect": link.expect, "proto": P.VERSION, "mp": link.max_payload, "cr": link.credit})
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
                self.on_ckpt()
            elif kind == P.K_DUMP:
                self.on_dump(link.length)
            elif kind == P.K_DONE:
                t = self.trainer
                self.record(
                    P.R_DONE,
                    {"weights_sha256": self.digest(), "step": t.step, "rx_frames": link.rx_frames,
                     "rx_bad": link.rx_bad, "rx_dup": link.rx_dup},
                    True,
                )
            link.accept()


def main(max_payload=P.MAX_PAYLOAD, credit=1, idle_ms=60000):
    gc.collect()
    out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else sys.stdout
    boot = {"version": VERSION, "proto": P.VERSION, "platform": _platform(), "heap_free": gc.mem_free()}
    meta = ckpt.peek()
    if meta is not None:
        boot["ckpt"] = {"id": meta.get("id"), "epoch": meta.get("epoch"), "index": meta.get("index"), "step": meta.get("step")}
    out.write(P.record_line(json.dumps(dict(boot, ev=P.R_BOOT)).encode()))
    try:
        link = Link(max_payload, credit)
    except MemoryError:
        out.write(P.record_line(json.dumps({"ev": P.R_ERROR, "code": P.E_MEMORY, "msg": "no memory for the link"}).encode()))
        return
    app = App(link, out)
    micropython.kbd_intr(-1)  # from here on 0x03 is data, not Ctrl-C
    try:
        app.record(P.R_READY, {"max_payload": link.max_payload, "credit": link.credit})
        app.run(idle_ms)
    except Exception as e:  # report, never die silently
        app.error(0, "%s: %s" % (type(e).__name__, e))
    finally:
        micropython.kbd_intr(3)
