# The device app loop: the host launches main() through the raw REPL; it speaks frames in
# and records out (see protocol.py) until a DONE frame, an idle timeout or a fatal error.
# Runs unchanged on a board and under the unix port.
import gc
import sys
import time

import micropython

from . import VERSION
from . import protocol as P
from .stream import BAD, DUP, NONE, Link

try:
    import ujson as json
except ImportError:
    import json


def record(out, ev, fields):
    fields["ev"] = ev
    out.write(P.RECORD_PREFIX)
    out.write(json.dumps(fields).encode())
    out.write(b"\n")


def _platform():
    return sys.platform + (" " + sys.implementation._machine if hasattr(sys.implementation, "_machine") else "")


def _digest(trainer):
    import hashlib
    import binascii

    h = hashlib.sha256()
    for _, _, buf in trainer.planes():
        h.update(buf)
    return binascii.hexlify(h.digest()).decode()


def _dump(out, trainer):
    import binascii

    for layer, name, buf in trainer.planes():
        mv = memoryview(buf)
        step = 384
        for off in range(0, len(buf), step):
            chunk = binascii.b2a_base64(mv[off : off + step]).strip().decode()
            record(out, P.R_WEIGHTS, {"layer": layer, "plane": name, "off": off, "size": len(buf), "b64": chunk})


def main(max_payload=P.MAX_PAYLOAD, credit=1, idle_ms=60000):
    gc.collect()
    out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else sys.stdout
    record(out, P.R_BOOT, {"version": VERSION, "proto": P.VERSION, "platform": _platform(), "heap_free": gc.mem_free()})
    try:
        link = Link(max_payload, credit)
    except MemoryError:
        record(out, P.R_ERROR, {"code": P.E_MEMORY, "msg": "no memory for the link buffer"})
        return
    micropython.kbd_intr(-1)  # from here on 0x03 is data, not Ctrl-C
    try:
        _loop(link, out, idle_ms)
    except Exception as e:  # report, never die silently
        record(out, P.R_ERROR, {"code": 0, "msg": "%s: %s" % (type(e).__name__, e)})
    finally:
        micropython.kbd_intr(3)


def _loop(link, out, idle_ms):
    trainer = None
    buf = link.buf
    epoch_t0 = time.ticks_us()
    epoch_correct = 0
    epoch_seen = 0
    eval_correct = 0
    eval_seen = 0
    busy_us = 0
    record(out, P.R_READY, {"max_payload": link.max_payload, "credit": link.credit})
    while True:
        kind = link.next_frame(idle_ms)
        if kind == NONE:
            record(out, P.R_ERROR, {"code": P.E_TIMEOUT, "msg": "no frame from the host for %d ms" % idle_ms})
            return
        if kind == BAD or kind == DUP:
            continue
        n = link.length
        if kind == P.K_PING:
            link.accept()
        elif kind == P.K_CONFIG:
            cfg = json.loads(bytes(buf[P.HEADER_SIZE : P.HEADER_SIZE + n]))
            trainer = None
            gc.collect()
            try:
                from .rule import Trainer

                trainer = Trainer(cfg)
            except MemoryError:
                gc.collect()
                record(out, P.R_ERROR, {"code": P.E_MEMORY, "msg": "model does not fit: %d bytes free" % gc.mem_free()})
                return
            except (KeyError, ValueError, TypeError) as e:
                record(out, P.R_ERROR, {"code": P.E_CONFIG, "msg": "bad configuration: %s" % e})
                return
            gc.collect()
            record(
                out,
                P.R_CONFIG,
                {
                    "weight_bytes": trainer.weight_bytes(),
                    "working_bytes": trainer.nbytes() - trainer.weight_bytes(),
                    "heap_free": gc.mem_free(),
                },
            )
            link.accept()
        elif kind == P.K_TRAIN or kind == P.K_EVAL:
            if trainer is None:
                link.send_nak(P.E_STATE)
                continue
            p = P.HEADER_SIZE
            count = buf[p] | (buf[p + 1] << 8)
            row_bytes = buf[p + 2] | (buf[p + 3] << 8)
            lab = p + P.BLOCK_HEADER
            rows = lab + ((count + 3) & ~3)
            if row_bytes & 3 or row_bytes < 4 * ((trainer.n_in + 31) >> 5) or rows + count * row_bytes > p + n:
                link.send_nak(P.E_PAYLOAD)
                continue
            t0 = time.ticks_us()
            micropython.heap_lock()  # the hot path must not allocate: prove it every frame
            try:
                if kind == P.K_TRAIN:
                    c = trainer.train_block(buf, count, lab, rows, row_bytes >> 2)
                    epoch_correct += c
                    epoch_seen += count
                else:
                    c = trainer.eval_block(buf, count, lab, rows, row_bytes >> 2)
                    eval_correct += c
                    eval_seen += count
            finally:
                micropython.heap_unlock()
            busy_us += time.ticks_diff(time.ticks_us(), t0)
            link.accept()
        elif kind == P.K_MARK:
            mark = buf[P.HEADER_SIZE]
            value = buf[P.HEADER_SIZE + 1] | (buf[P.HEADER_SIZE + 2] << 8)
            if mark == P.MARK_EPOCH and trainer is not None:
                now = time.ticks_us()
                record(
                    out,
                    P.R_EPOCH,
                    {
                        "epoch": value,
                        "seen": epoch_seen,
                        "correct": epoch_correct,
                        "step": trainer.step,
                        "flips": trainer.flips,
                        "updates": trainer.updates,
                        "busy_us": busy_us,
                        "wall_us": time.ticks_diff(now, epoch_t0),
                    },
                )
                epoch_t0 = now
                epoch_correct = epoch_seen = busy_us = 0
            elif mark == P.MARK_EVAL:
                record(out, P.R_EVAL, {"epoch": value, "seen": eval_seen, "correct": eval_correct})
                eval_correct = eval_seen = 0
            link.accept()
        elif kind == P.K_DUMP:
            if trainer is not None:
                _dump(out, trainer)
            link.accept()
        elif kind == P.K_DONE:
            digest = _digest(trainer) if trainer is not None else ""
            record(
                out,
                P.R_DONE,
                {
                    "weights_sha256": digest,
                    "step": trainer.step if trainer else 0,
                    "rx_frames": link.rx_frames,
                    "rx_bad": link.rx_bad,
                    "rx_dup": link.rx_dup,
                },
            )
            link.accept()
            return
        else:
            link.send_nak(P.E_KIND)
