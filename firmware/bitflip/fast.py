# The fast path of a prototype-only model (no hidden layer) with binary2 weights, no margin
# and no anneal: the MNIST and digits defaults (rule.Trainer picks it). Bit for bit what rule.Trainer.train_block
# does for such a model (the digest tests run both), with far fewer interpreter steps per
# sample: one forward call that also returns the winner and the label's best prototype
# (accel.dense_argmax), the step key written straight into the update's parameter block,
# row updates through accel.update_b2 (asm_thumb on the Pico), everything bound once per
# block. On two cores the worker runs the same kernel on the upper half of the rows (a
# job of kind dual.JOB_ARGMAX) and the two halves' winners are merged. Where the time goes,
# and why this shape: docs/results/pico-speed.md.
from array import array

from . import accel, dual
from . import kernels as K
from .spec import BINARY2


class Fast:
    def __init__(self, t):
        self.t = t
        top = t.layers[0]
        n = top.n_out
        self.h = n
        # dense_argmax blocks: [nw, nout, nbits, lo, hi, base] in, [6..9] winner/value/best/value out
        self.fa0 = array("i", [top.nw, n, top.n_in, 0, 0, 0] + [0] * 10)
        # update_b2 block: [key word, row, nw, n_in, up, k, ks, layer] + scratch
        self.pu = array("i", [0, 0, top.nw, top.n_in, 0, t.k[0], t.ks, 0] + [0] * 16)
        self.fa1 = None
        self.job = 0
        if t.worker is not None and top.split is not None:
            w, j, h = top.split
            self.h = h
            self.fa0[1] = h
            self.fa1 = array("i", [top.nw, n - h, top.n_in, 0, 0, h] + [0] * 10)
            w.jobs[j] = (dual.JOB_ARGMAX, t.x, memoryview(top.s)[4 * top.nw * h :], memoryview(top.pre)[h:], self.fa1)
            self.job = j

    def train_block(self, buf, count, lab_off, row_off, row_words):
        t = self.t
        top = t.layers[0]
        nw = top.nw
        P = t.P
        x = t.x
        s = top.s
        aux = top.aux
        pre = top.pre
        fa0 = self.fa0
        fa1 = self.fa1
        pu = self.pu
        da = accel.dense_argmax
        upd = accel.update_b2
        fill = t.fill
        w = t.worker if fa1 is not None else None
        job = self.job
        seed = t.seed
        step = t.step
        writes = 0
        updates = 0
        correct = 0
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
                fa1[3] = lo
                fa1[4] = lo + P
                seq = w.start(job)
                winner = da(x, s, pre, fa0)
                w.wait(seq)
                if fa1[7] > fa0[7]:  # ties: core 0 holds the lower indices
                    winner = fa1[6]
                best = fa0[8]
                if fa1[8] >= 0 and (best < 0 or fa1[9] > fa0[9]):
                    best = fa1[8]
            K.step_key(pu, seed, step)
            step += 1
            hit = lo <= winner < lo + P
            if hit:
                correct += 1
            if fill[label]:  # data initialisation of a prototype (rule.py step 3)
                K.init_row(BINARY2, s, aux, lo + P - fill[label], x, nw, top.n_in)
                fill[label] -= 1
                writes += top.n_in
            elif hit:
                pu[1] = winner
                pu[4] = 1
                writes += upd(s, aux, x, pu)
                updates += 1
            else:
                pu[1] = winner
                pu[4] = 0
                writes += upd(s, aux, x, pu)
                pu[1] = best
                pu[4] = 1
                writes += upd(s, aux, x, pu)
                updates += 2
        t.step = step
        t.writes += writes
        t.updates += updates
        t.upd_words += updates * nw
        t.samples += count
        t.fwd_words += count * nw * top.n_out
        return correct
