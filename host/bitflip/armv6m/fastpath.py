"""The restructured per-sample path, on a patched COPY of the firmware, to trace and price it.

SPEED.md describes how rule.py / layers.py / dual.py should call the fast kernels
(kernels.dense_argmax / kernels_thumb.dense_argmax_asm, kernels_thumb.update_row_b2_asm).
Those files are not edited here: `patched_firmware` copies the firmware package and adds
`fastrule.py`, a Trainer subclass whose train_block is that restructured path for a
prototype-only binary2 model on an asm_thumb port (anything else falls back to the original
train_block), and which gives the dual-core worker a dense_argmax job. bitflip.armv6m.trace
counts it like the real path (run_trace(..., src=patched_firmware(...), trainer="fastrule")),
and the digest must stay the host reference's.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .targets import FIRMWARE

FASTRULE = r'''
# The restructured training path (see SPEED.md): one forward call that also returns the winner
# and the label's best prototype, the step key written straight into the update block, and
# asm_thumb row updates. Same results, bit for bit, as rule.Trainer.train_block.
from array import array

from . import accel, dual
from . import kernels as K
from .layers import BINARY2
from .rule import Trainer as _Trainer

_FAST_JOB = 4  # a worker job: dense_argmax_asm(x, s half, pre half, block) on rows [h, n_out)


def _run(self, job):
    if job[0] == 4:
        self.asm_da(job[1], job[2], job[3], job[4])
    else:
        _orig_run(self, job)


_orig_run = dual.Worker._run
dual.Worker._run = _run


class Trainer(_Trainer):
    def __init__(self, cfg):
        _Trainer.__init__(self, cfg)
        top = self.layers[-1]
        self.fast = (len(self.layers) == 1 and not self.pools and top.kind == BINARY2 and accel.KIND == "asm_thumb"
                     and not self.anneal)
        if not self.fast:
            return
        from . import kernels_thumb as T

        self.da = T.dense_argmax_asm
        self.upd = T.update_row_b2_asm
        n = top.n_out
        self.h = n
        self.fa0 = array("i", [top.nw, n, top.n_in, 0, 0, 0] + [0] * 10)
        self.pu = array("i", [0, 0, top.nw, top.n_in, 0, self.k[0], self.ks, 0] + [0] * 16)
        if self.worker is not None and top.split is not None:
            w, j, h = top.split
            self.h = h
            self.fa0[1] = h
            self.fa1 = array("i", [top.nw, n - h, top.n_in, 0, 0, h] + [0] * 10)
            w.asm_da = T.dense_argmax_asm
            w.jobs[j] = (_FAST_JOB, self.x, memoryview(top.s)[4 * top.nw * h:], memoryview(top.pre)[h:], self.fa1)
            self.job = j

    def train_block(self, buf, count, lab_off, row_off, row_words):
        if not self.fast:
            return _Trainer.train_block(self, buf, count, lab_off, row_off, row_words)
        correct = 0
        top = self.layers[0]
        nw = top.nw
        P = self.P
        x = self.x
        s = top.s
        aux = top.aux
        pre = top.pre
        fa0 = self.fa0
        pu = self.pu
        da = self.da
        upd = self.upd
        fill = self.fill
        w = self.worker if self.h < top.n_out else None
        woff = row_off >> 2
        for i in range(count):
            K.load_row(x, buf, woff, nw)
            woff += row_words
            label = buf[lab_off + i]
            lo = label * P
            fa0[3] = lo
            fa0[4] = lo + P
            if w is None:
                winner = da(x, s, pre, fa0)
                best = fa0[8]
            else:
                fa1 = self.fa1
                fa1[3] = lo
                fa1[4] = lo + P
                seq = w.start(self.job)
                winner = da(x, s, pre, fa0)
                w.wait(seq)
                if fa1[7] > fa0[7]:
                    winner = fa1[6]
                best = fa0[8]
                if fa1[8] >= 0 and (best < 0 or fa1[9] > fa0[9]):
                    best = fa1[8]
            K.step_key(pu, self.seed, self.step)
            self.step += 1
            if lo <= winner < lo + P:
                correct += 1
                if fill[label]:
                    self._init(label)
                    continue
                pu[1] = winner
                pu[4] = 1
                self.writes += upd(s, aux, x, pu)
                self.updates += 1
                self.upd_words += nw
            else:
                if fill[label]:
                    self._init(label)
                    continue
                pu[1] = winner
                pu[4] = 0
                n = upd(s, aux, x, pu)
                pu[1] = best
                pu[4] = 1
                self.writes += n + upd(s, aux, x, pu)
                self.updates += 2
                self.upd_words += 2 * nw
        self.samples += count
        self.fwd_words += count * nw * top.n_out
        return correct

    def _init(self, label):
        # data initialisation of a prototype (rule.Trainer.learn's first branch)
        top = self.layers[0]
        P = self.P
        K.init_row(self.kind, top.s, top.aux, label * P + P - self.fill[label], self.x, top.nw, top.n_in)
        self.fill[label] -= 1
        self.writes += top.n_in
'''


def patched_firmware(tmp: Path, src: Path = FIRMWARE) -> Path:
    """A copy of the firmware package (tmp/bitflip) with fastrule.py added; returns its path."""
    dst = tmp / "bitflip"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.mpy"))
    (dst / "fastrule.py").write_text(FASTRULE)
    return dst
