# The fast path of a prototype-only model (no hidden layer) with binary2 weights, no margin
# and no anneal: the MNIST and digits defaults (rule.Trainer picks it). Bit for bit what rule.Trainer.train_block
# does for such a model (the digest tests run both), with far fewer interpreter steps per
# sample: one forward call that also returns the winner and the label's best prototype
# (accel.dense_argmax), the step key written straight into the update's parameter block,
# row updates through accel.update_b2 (asm_thumb on the Pico), everything bound once per
# block. On two cores the same call is the leader of a split: core 1 waits inside the same
# kernel (its serve mode, started once by dual.Worker) for the leader's GO, runs the upper
# half of the rows, and the leader merges both halves' winners: no Python on either core per
# sample for the split. Where the time goes, and why this shape: docs/results/pico-speed.md.
from array import array

from . import accel
from . import kernels as K
from .spec import BINARY2

SERVE_POLLS = 20000  # core 1's idle polls before its serve call returns to dual.Worker._loop


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
        if t.worker is not None and top.split is not None:
            # two cores: one 36-word block, the leader's 16 words (this core: rows [0, h)), the
            # server's 16 (core 1: rows [h, n), its own block) and 4 sync words (GO, DONE, idle
            # polls, SEEN); core 1 runs the same kernel in its serve mode (dual.Worker.serve)
            w, _, h = top.split
            self.h = h
            lead = [top.nw, h, top.n_in, 0, 0, 0] + [0] * 8 + [1, 0]
            serve = [top.nw, n - h, top.n_in, 0, 0, h] + [0] * 8 + [2, 0]
            self.fa0 = array("i", lead + serve + [0, 0, SERVE_POLLS, 0])
            s1 = memoryview(top.s)[4 * top.nw * h :]
            w.serve(accel.dense_argmax, t.x, s1, memoryview(top.pre)[h:], memoryview(self.fa0)[16:])

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
        pu = self.pu
        da = accel.dense_argmax
        upd = accel.update_b2
        fill = t.fill
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
            winner = da(x, s, pre, fa0)  # both cores' halves on two
            best = fa0[8]
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

    def eval_block(self, buf, count, lab_off, row_off, row_words):
        # rule.Trainer.eval_block through the same kernel: its winner is K.argmax's (the
        # lowest index on ties); on two cores the split runs as in training
        t = self.t
        top = t.layers[0]
        nw = top.nw
        P = t.P
        x = t.x
        s = top.s
        pre = top.pre
        fa0 = self.fa0
        da = accel.dense_argmax
        fa0[3] = 0
        fa0[4] = 0
        correct = 0
        woff = row_off >> 2
        for i in range(count):
            K.load_row(x, buf, woff, nw)
            woff += row_words
            if da(x, s, pre, fa0) // P == buf[lab_off + i]:
                correct += 1
        t.samples += count
        t.fwd_words += count * nw * top.n_out
        return correct
