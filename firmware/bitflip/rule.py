# The learning rule (device side): the top layer's competitive step, and the seam where a
# hidden-layer rule (hidden.py: rule v1 "flip", pool.py: the pool rule) plugs in.
# bitflip.training.reference (host, numpy) mirrors every step; the digest tests prove it.
#
# Network (spec.py): hidden layers of sign units, then a competitive layer of P prototypes
# per class (prototype j belongs to class j // P); the prediction is the class of the
# prototype with the largest pre-activation (lowest index on ties). One training step:
#  1. forward: XOR-popcount pre-activations, sign bits, winner j*;
#  2. the hidden rule's start() (pool: thresholds step toward the pre-activations);
#  3. while a class still has prototypes to fill, the sample (as the top layer sees it)
#     becomes the next prototype of its class (data initialisation), and that is all;
#  4. competitive error: if j* is of the label's class it should grow (direction up);
#     otherwise j* should shrink (down) and the best prototype of the label's class grow.
#     With margin >= 0, a correct winner whose best rival is within margin also pushes the
#     rival down. These are the top's update directions;
#  5. votes on the hidden layers: the update directions (rule v1), or, for a rule that
#     wants them (pool), the error pair and near-misses (a rival within `near` of a
#     correct winner: winner up, rival down);
#  6. going down, the directions of layer l vote on the units of layer l-1 through the
#     current weights (before layer l learns); a unit whose sign disagrees with its vote
#     and whose pre-activation is within `window` of its threshold gets the vote's
#     direction; the hidden rule's learn() takes layer l-1's units in error;
#  7. the top layer moves the weight states of a random 1/2**k subset of each chosen row's
#     erroneous contributions one step (kernels.flip_row / update_row);
#  8. the hidden rule's end() (pool: every `every` samples, evidence flips weights).
# All arithmetic is integer; every random bit comes from the counter hash of
# (seed, step, layer, row, word).
from array import array

from . import dual
from . import kernels as K
from . import spec
from .layers import Dense
from .spec import TERNARY, fast_path, words


def hidden_rule(cfg):
    # the hidden rule's class, imported only when used (models without it keep its heap)
    name = spec.hidden_rule(cfg)
    if name == "pool":
        from .pool import PoolRule

        return PoolRule
    if name == "flip":
        from .hidden import FlipRule

        return FlipRule
    return None


def imports(cfg):
    # import every module a Trainer of this configuration loads lazily, so that the heap a run
    # measures before it builds its model already holds them (the same in every run)
    hidden_rule(cfg)
    if fast_path(cfg):
        from . import fast  # noqa: F401


class Trainer:
    def __init__(self, cfg):
        sizes = cfg["sizes"]
        self.kind = spec.KINDS[cfg.get("weights", "binary")]
        self.seed = int(cfg["seed"])
        self.n_classes = int(cfg["classes"])
        self.window = int(cfg["window"])
        self.margin = int(cfg["margin"])
        self.k = [int(k) for k in cfg["k"]]  # flip density exponent per layer
        self.ks = int(cfg.get("ks", 0))  # binary2: confidence gain density exponent
        # annealing: from epoch `anneal` (1-based; 0 = never) on, every epoch adds 1 to the top
        # layer's k (and, under the pool rule, tau_step to its tau); epochs are `epoch` samples
        self.anneal = int(cfg.get("anneal", 0))
        self.epoch = int(cfg.get("epoch", 0))
        self.extra = 0  # the current epoch's addition
        if sizes[-1] % self.n_classes:
            raise ValueError("the last layer must hold P prototypes per class")
        self.P = sizes[-1] // self.n_classes
        # the second core's worker (its stack, on rp2, comes from this heap) starts before
        # the model is allocated, so it sits at the same place in every run
        self.worker = dual.worker() if dual.wanted(cfg) else None
        self.layers = [Dense(n_in, n_out, kind) for n_in, n_out, kind in spec.layers(cfg)]
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
        # the hidden rule after the vote buffer: that buffer's construction briefly needs
        # twice its size, which the memory plan reserves on a heap not yet split by the rule
        rule = hidden_rule(cfg)
        self.hidden = rule(self, cfg) if rule is not None else None
        self.near = self.hidden is not None and not self.hidden.votes_from_updates
        self.vdir = bytearray(sizes[-1]) if self.near else None  # the top's votes
        # a second core takes half of every layer with >= spec.SPLIT_MIN_ROWS neurons
        if self.worker is not None:
            self.worker = dual.plan(self.layers, self.x, self.worker)
        self.fast = None  # the prototype-only fast path (fast.py), for the models it fits
        if fast_path(cfg):
            from .fast import Fast

            self.fast = Fast(self)
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
        n = sum(layer.nbytes() for layer in self.layers)
        if self.hidden is not None:
            n += self.hidden.nbytes()
        if self.vdir is not None:
            n += len(self.vdir)
        return n + len(self.x) + 4 * len(self.vote) + len(self.fill) + 4

    def weight_bytes(self):
        return sum(len(p) for layer in self.layers for _, p in layer.planes())

    def close(self):
        # the run is over: let go of everything a later run could trip over (the second
        # core's jobs hold views of this model's buffers)
        if self.worker is not None:
            dual.release(self.layers)
            self.worker = None

    # forward ----------------------------------------------------------------------------
    def forward(self, x):
        top = self.layers[-1]
        for layer in self.layers:
            layer.forward(x, layer is not top)
            self.fwd_words += layer.nw * layer.n_out
            x = layer.out
        return K.argmax(top.pre, 0, top.n_out)

    # learning ---------------------------------------------------------------------------
    def learn(self, label, winner):
        layers = self.layers
        ti = len(layers) - 1
        out = layers[ti]
        P = self.P
        K.step_key(self.st, self.seed, self.step)
        self.step += 1
        e = (self.step - 1) // self.epoch if self.epoch else 0  # this sample's epoch, 0-based
        if self.anneal and e + 2 > self.anneal:
            self.extra = e + 2 - self.anneal
        hidden = self.hidden
        if hidden is not None:
            hidden.start()
        if self.fill[label]:  # data initialisation of a prototype
            row = label * P + P - self.fill[label]
            src = self.x if ti == 0 else layers[ti - 1].out
            K.init_row(self.kind, out.s, out.aux, row, src, out.nw, out.n_in)
            self.fill[label] -= 1
            self.writes += out.n_in
        else:
            self._learn(label, winner)
        if hidden is not None:
            hidden.end(e)

    def _rival(self, out, lo):
        # the best prototype outside [lo, lo + P) (lowest index on ties), -1 if none
        rival = -1
        if lo > 0:
            rival = K.argmax(out.pre, 0, lo)
        if lo + self.P < out.n_out:
            r2 = K.argmax(out.pre, lo + self.P, out.n_out)
            if rival < 0 or out.pre[r2] > out.pre[rival]:
                rival = r2
        return rival

    def _vote(self, li, vd, nv):
        # rows of layer li with directions vd (nv of them) vote on layer li-1's units;
        # returns how many of those are in error (their directions: layer li-1's dirs/idx)
        layer = self.layers[li]
        below = self.layers[li - 1]
        K.vote(layer.s, layer.aux, layer.kind == TERNARY, vd, layer.nw, layer.n_out, layer.n_in, self.vote)
        self.vote_words += nv * layer.nw
        return K.hidden_dirs(self.vote, below.pre, below.dirs, below.n_out, self.window, below.idx)

    def _learn(self, label, winner):
        layers = self.layers
        ti = len(layers) - 1
        out = layers[ti]
        P = self.P
        d = out.dirs
        idx = out.idx
        vd = self.vdir
        lo = label * P
        nv = 0  # near: top rows voting on the hidden layers (winner and vb)
        vb = 0
        if winner // P == label:
            d[winner] = 1
            idx[0] = winner
            n = 1
            if self.margin >= 0 or self.near:
                rival = self._rival(out, lo)
                if self.margin >= 0 and rival >= 0 and out.pre[rival] - out.pre[winner] > -self.margin:
                    d[rival] = 2
                    idx[1] = rival
                    n = 2
                if self.near and rival >= 0 and out.pre[rival] - out.pre[winner] > -self.hidden.near:
                    vd[winner] = 1
                    vd[rival] = 2
                    vb = rival
                    nv = 2
        else:
            best = K.argmax(out.pre, lo, lo + P)
            d[winner] = 2
            d[best] = 1
            idx[0] = winner
            idx[1] = best
            n = 2
            if self.near:
                vd[winner] = 2
                vd[best] = 1
                vb = best
                nv = 2
        n_below = 0
        if ti > 0:  # the top votes before it learns
            if self.near:
                if nv:
                    n_below = self._vote(ti, vd, nv)
            elif n:
                n_below = self._vote(ti, d, n)
        x = layers[ti - 1].out if ti > 0 else self.x
        k = self.k[ti] + self.extra
        for i in range(n):
            j = idx[i]
            self.writes += out.update(j, x, d[j] == 1, k, self.ks, self.st, ti)
        self.updates += n
        self.upd_words += n * out.nw
        for i in range(n):
            d[idx[i]] = 0
        if nv:
            vd[winner] = 0
            vd[vb] = 0
        # hidden layers, top-down: each votes on the one below, then its rule learns
        li = ti - 1
        while li >= 0 and n_below:
            layer = layers[li]
            n = n_below
            n_below = self._vote(li, layer.dirs, n) if li > 0 else 0
            self.hidden.learn(li, layer, layers[li - 1].out if li > 0 else self.x, n)
            li -= 1

    # blocks -----------------------------------------------------------------------------
    def train_block(self, buf, count, lab_off, row_off, row_words):
        # buf: the frame buffer; samples are label bytes at lab_off, rows at row_off
        if self.fast is not None:
            return self.fast.train_block(buf, count, lab_off, row_off, row_words)
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
        if self.fast is not None:
            return self.fast.eval_block(buf, count, lab_off, row_off, row_words)
        correct = 0
        nw = words(self.n_in)
        P = self.P
        for i in range(count):
            K.load_row(self.x, buf, (row_off >> 2) + i * row_words, nw)
            if self.forward(self.x) // P == buf[lab_off + i]:
                correct += 1
        self.samples += count
        return correct

    # model and state --------------------------------------------------------------------
    def planes(self):
        # (layer, plane name, buffer) in spec.planes order: weight planes and the hidden
        # rule's model planes (pool: thresholds "t")
        out = []
        ti = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            for name, p in layer.planes():
                out.append((i, name, p))
            if self.hidden is not None and i < ti:
                for name, p in self.hidden.planes(i):
                    out.append((i, name, p))
        return out

    def state(self):
        # every buffer a checkpoint must hold to continue bit-exactly (spec.state order)
        st = [p for _, _, p in self.planes()] + [self.fill]
        if self.hidden is not None:
            st += self.hidden.state()
        return st

    def take_counters(self, totals):
        # add the work counters to totals (a dict, may hold long ints) and reset them
        for name in spec.COUNTERS:
            totals[name] = totals.get(name, 0) + getattr(self, name)
            setattr(self, name, 0)
