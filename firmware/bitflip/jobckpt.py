# A job's checkpoints, as the app loop uses them: the training state saved at a stream
# position (CKPT frames), the best model on validation kept beside it and put back at the
# end, and a board that was reset resuming its job from the last save. ckpt.py owns the
# file format; this module decides what goes in the files and what a resume restores.
import gc
import time

from . import ckpt
from . import payload as PL
from . import protocol as P


def resume(app, cfg, trainer):
    """After a reconnect: the saved state of this job (cfg "id") into trainer and app.
    Returns (trainer, the "resumed" record field or None when the job starts afresh)."""
    meta = ckpt.peek()
    if meta is None or meta.get("id") != cfg.get("id"):
        return trainer, None
    meta = ckpt.load(trainer.state())
    if meta is None:  # the file changed since peek: a failed load may have filled part of
        make = type(trainer)  # the buffers, so start from a clean model
        trainer.close()
        trainer = None
        gc.collect()
        return make(cfg), None
    trainer.step = meta["step"]
    app.totals = meta["totals"]
    app.epoch_correct = meta["epoch_correct"]
    app.epoch_seen = meta["epoch_seen"]
    app.busy_us = meta["busy_us"]
    return trainer, {P.F_EPOCH: meta["epoch"], P.F_INDEX: meta["index"], P.F_STEP: meta["step"]}


def on_ckpt(app, n):
    """A CKPT frame (payload.decode_ckpt): save, keep the best, or restore the best."""
    epoch, index, op = PL.decode_ckpt(app.link.buf, P.HEADER_SIZE, n)
    t = app.trainer
    t0 = time.ticks_us()
    if op == PL.CKPT_KEEP:  # the best model on validation so far: its planes, on flash
        ckpt.save({"id": app.cfg_id, "epoch": epoch}, [p for _, _, p in t.planes()], ckpt.BEST)
    elif op == PL.CKPT_RESTORE:
        meta = ckpt.peek(ckpt.BEST)
        if meta is None or meta.get("id") != app.cfg_id or ckpt.load([p for _, _, p in t.planes()], ckpt.BEST) is None:
            app.error(P.E_STATE, "no best model of this job on the board to restore")
            return
    else:
        meta = {"step": t.step, "totals": app.totals}
        meta.update(
            {
                "id": app.cfg_id,
                "epoch": epoch,
                "index": index,
                "epoch_correct": app.epoch_correct,
                "epoch_seen": app.epoch_seen,
                "busy_us": app.busy_us,
            }
        )
        ckpt.save(meta, t.state())
    ms = time.ticks_diff(time.ticks_us(), t0) // 1000
    app.record(P.R_CKPT, {P.F_EPOCH: epoch, P.F_INDEX: index, P.F_STEP: t.step, P.F_MS: ms, P.F_OP: op}, True)
