# The learning rule (device side). bitflip.reference (host, numpy) mirrors every step of
# this file; a change here needs the same change there, and the digest tests prove it.
#
# Network: hidden layers of sign units, then a competitive layer of P prototypes per class
# (prototype j belongs to class j // P); the prediction is the class of the prototype with
# the largest pre-activation (lowest index on ties). One training step on (x, label):
#  1. forward: XOR-popcount pre-activations, sign bits, winner j*;
#  2. while a class still has prototypes to fill, the sample (as the top layer sees it)
#     becomes the next prototype of its class (data initialisation) and that is all;
#  3. competitive error: if j* is of the label's class it should grow (direction up);
#     otherwise j* should shrink (down) and the best prototype of the label's class grow.
#     With margin >= 0, a correct winner whose best rival is within margin also pushes the
#     rival down;
#  4. going down, the directions of layer l vote on the units of layer l-1 through the
#     current weights; a unit whose sign disagrees with its vote and whose pre-activation is
#     within `window` of 0 gets the vote's direction;
#  5. every neuron with a direction moves the weight states of a random 1/2**k subset of
#     its erroneous contributions one step (kernels.flip_row / update_row).
# Votes for layer l-1 are taken before layer l is updated. All arithmetic is integer;
# every random bit comes from the counter hash of (seed, step, layer, row, word).
#
# With cfg["pool"] the hidden layers follow pool.py instead of step 5: they are 1-bit with a
# threshold per unit, only errors and near-misses (a rival within `near` of a correct
# winner: winner up, rival down) vote on them, and their units in error add evidence to
# the layer's counter window; every `every` samples the evidence flips weights. The top
# layer keeps steps 1-5 and the run's weight kind.
from array import array

from . import dual
from . import kernels as K
from .layers import BINARY, KINDS, TERNARY, Dense, words


class Trainer:
    def __init__(self, cfg):
        sizes = cfg["sizes"]
        self.kind = KINDS[cfg.get("weights", "binary")]
        self.seed = int(cfg["seed"])
        self.n_classes = int(cfg["classes"])
        self.window = int(cfg["window"])
        self.margin = int(cfg["margin"])
        self.k = [int(k) for k in cfg["k"]]  # flip density exponent per layer
        self.ks = int(cfg.get("ks", 0))  # binary2: confidence gain density exponent
        # annealing: from epoch `anneal` (1-based; 0 = never) on, every epoch adds 1 to the top
        # layer's k and `tau_step` to the pool rule's tau; epochs are `epoch` samples long
        self.anneal = int(cfg.get("anneal", 0))
        self.epoch = int(cfg.get("epoch", 0))
        self.extra = 0  # the current epoch's addition
        if sizes[-1] % self.n_classes:
            raise ValueError("the last layer must hold P prototypes per class")
        self.P = sizes[-1] // self.n_classes
        pc = cfg.get("pool")
        self.layers = []
        for i in range(len(sizes) - 1):
            hidden = i < len(sizes) - 2
            self.layers.append(Dense(sizes[i], sizes[i + 1], BINARY if pc and hidden else self.kind))
        for i, layer in enumerate(self.layers):
            layer.init(self.seed, i)
        self.n_in = sizes[0]
        self.x = bytearray(4 * words(self.n_in))
        self.vote = array("i", bytes(4 * max(sizes)))
        # prototypes still to take from data, per class: the first P samples of a class
        # become its prototypes (as seen by the top layer: input bits or hidden sign bits)
        self.fill = bytearray([self.P] * self.n_classes)
        self.st = array("I", bytes(4))
        self.step = 0
        # after the vote buffer: its construction briefly needs twice its size, which the
        # memory plan reserves as "transient" on a heap not yet split by the pool buffers
        self.pools = []  # one per hidden layer under the pool rule
        if pc:
            # imported only here: models without it keep the module's ~7 KB of heap
            from .pool import Pool, step_thresholds

            self.step_thresholds = step_thresholds
            self.pools = [Pool(layer, int(pc["rows"])) for layer in self.layers[:-1]]
            self.every = int(pc["every"])
            self.tau = int(pc["tau"])
            self.flips = int(pc["flips"])
            self.tau_step = int(pc.get("tau_step", 0))
            self.near = int(pc["near"])
            self.vdir = bytearray(sizes[-1])  # the top's votes on the hidden layers
        # a second core takes half of every layer with >= 256 neurons where that pays (dual.py)
        self.worker = None
        if dual.wanted(cfg):
            self.worker = dual.plan(self.layers, self.x)
        # work counters since the last take_counters(); they stay small ints (a long int
        # would allocate inside the heap-locked hot path on a 32-bit board)
        self.writes = 0  # weight state bits written
        self.updates = 0  # neuron (row) updates
        self.fwd_words = 0  # 32-bit words XOR-popcounted in forward passes
        self.upd_words = 0  # 32-bit words visited by updates
        self.vote_words = 0  # 32-bit words of weight rows walked by votes (hidden layers)
        self.samples = 0  # samples through forward (train or eval)
        self.evidence_bytes = 0  # pool rule: counter bytes written by evidence and read by flushes

    def nbytes(self):
        n = sum(layer.nbytes() for layer in self.layers) + sum(p.nbytes() for p in self.pools)
        if self.pools:
            n += len(self.vdir)
        return n + len(self.x) + 4 * len(self.vote) + len(self.fill) + 4

    def weight_bytes(self):
        return sum(len(p) for layer in self.layers for _, p in layer.planes())

    def forward(self, x):
        top = self.layers[-1]
        for layer in self.layers:
            layer.forward(x, layer is not top)
            self.fwd_words += layer.nw * layer.n_out
            x = layer.out
        return K.argmax(top.pre, 0, top.n_out)

    def learn(self, label, winner):
        layers = self.layers
        top = len(layers) - 1
        out = layers[top]
        P = self.P
        K.step_key(self.st, self.seed, self.step)
        self.step += 1
        e = (self.step - 1) // self.epoch if self.epoch else 0  # this sample's epoch, 0-based
        if self.anneal and e + 2 > self.anneal:
            self.extra = e + 2 - self.anneal
        pools = self.pools
        for li in range(len(pools)):
            self.step_thresholds(layers[li].pre, pools[li].t, layers[li].n_out)
        if self.fill[label]:  # data initialisation of a prototype
            row = label * P + P - self.fill[label]
            src = self.x if top == 0 else layers[top - 1].out
            K.init_row(self.kind, out.s, out.aux, row, src, out.nw, out.n_in)
            self.fill[label] -= 1
            self.writes += out.n_in
        else:
            self._learn(label, winner)
        if pools and self.step % self.every == 0:
            flips = self.flips >> e  # halved every epoch
            for pool in pools:
                self.writes += pool.flush(flips if flips > 0 else 1, self.tau + self.tau_step * self.extra)
                self.evidence_bytes += 2 * pool.rows * pool.layer.n_in

    def _learn(self, label, winner):
        layers = self.layers
        top = len(layers) - 1
        out = layers[top]
        P = self.P
        pools = self.pools
        vdir = self.vdir if pools else None
        nv = 0  # top rows voting on the hidden layers (pool rule): winner and vb
        vb = 0
        d = out.dirs
        idx = out.idx
        lo = label * P
        if winner // P == label:
            d[winner] = 1
            idx[0] = winner
            n = 1
            if self.margin >= 0 or pools:
                rival = -1
                if lo > 0:
                    rival = K.argmax(out.pre, 0, lo)
                if lo + P < out.n_out:
                    r2 = K.argmax(out.pre, lo + P, out.n_out)
                    if rival < 0 or out.pre[r2] > out.pre[rival]:
                        rival = r2
                if self.margin >= 0 and rival >= 0 and out.pre[rival] - out.pre[winner] > -self.margin:
                    d[rival] = 2
                    idx[1] = rival
                    n = 2
                if pools and rival >= 0 and out.pre[rival] - out.pre[winner] > -self.near:
                    vdir[winner] = 1
                    vdir[rival] = 2
                    vb = rival
                    nv = 2
        else:
            best = K.argmax(out.pre, lo, lo + P)
            d[winner] = 2
            d[best] = 1
            idx[0] = winner
            idx[1] = best
            n = 2
            if pools:
                vdir[winner] = 2
                vdir[best] = 1
                vb = best
                nv = 2
        for li in range(top, -1, -1):
            layer = layers[li]
            d = layer.dirs
            idx = layer.idx
            vd = vdir if li == top and pools else d
            nd = nv if li == top and pools else n
            if li > 0 and nd:
                below = layers[li - 1]
                K.vote(layer.s, layer.aux, layer.kind == TERNARY, vd, layer.nw, layer.n_out, layer.n_in, self.vote)
                self.vote_words += nd * layer.nw
                n_below = K.hidden_dirs(self.vote, below.pre, below.dirs, below.n_out, self.window, below.idx)
            else:
                n_below = 0
            x = layers[li - 1].out if li > 0 else self.x
            if li < top and pools:  # evidence only: the window's flips come in learn()
                self.evidence_bytes += pools[li].add(x, n)
            else:
                k = self.k[li] + self.extra if li == top else self.k[li]
                for i in range(n):
                    j = idx[i]
                    self.writes += layer.update(j, x, d[j] == 1, k, self.ks, self.st, li)
                self.updates += n
                self.upd_words += n * layer.nw
            if li == top:
                for i in range(n):
                    d[idx[i]] = 0
                if nv:
                    vdir[winner] = 0
                    vdir[vb] = 0
            n = n_below
            if n == 0 and pools:
                break

    def train_block(self, buf, count, lab_off, row_off, row_words):
        # buf: the frame buffer; samples are label bytes at lab_off, rows at row_off
        correct = 0
        nw = words(self.n_in)
        P = self.P
        for i in range(count):
            K.load_row(self.x, buf, (row_off >> 2) + i * row_words, nw)
            label = buf[lab_off + i]
            winner = self.forward(self.x)
            if winner // P == label:
                correct += 1
            self.learn(label, winner)
        self.samples += count
        return correct

    def eval_block(self, buf, count, lab_off, row_off, row_words):
        correct = 0
        nw = words(self.n_in)
        P = self.P
        for i in range(count):
            K.load_row(self.x, buf, (row_off >> 2) + i * row_words, nw)
            if self.forward(self.x) // P == buf[lab_off + i]:
                correct += 1
        self.samples += count
        return correct

    def planes(self):
        # (layer, plane name, buffer) for digests, dumps and checkpoints: weight planes and,
        # under the pool rule, the hidden layers' thresholds ("t", int32)
        out = []
        for i, layer in enumerate(self.layers):
            for name, p in layer.planes():
                out.append((i, name, p))
            if i < len(self.pools):  # the pool rule's thresholds are part of the model
                out.append((i, "t", self.pools[i].t))
        return out

    def state(self):
        # every buffer a checkpoint must hold to continue bit-exactly
        st = [p for _, _, p in self.planes()] + [self.fill]
        for pool in self.pools:
            st += pool.state()
        return st

    def take_counters(self, totals):
        # add the work counters to totals (a dict, may hold long ints) and reset them
        for name in COUNTERS:
            totals[name] = totals.get(name, 0) + getattr(self, name)
            setattr(self, name, 0)


COUNTERS = ("writes", "updates", "fwd_words", "upd_words", "vote_words", "samples", "evidence_bytes")
