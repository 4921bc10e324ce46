# Bit-plane dense layers (spec.py has the layout). A layer of n_out neurons over n_in inputs
# keeps its weights as bit-planes: one row of nw = ceil(n_in/32) little-endian u32 words per
# neuron, bit i of word w = input 32*w+i. Padding bits are 0 in every plane.
#   binary  (1 bit):  s (1 = +1, 0 = -1)
#   binary2 (2 bits): s, and aux = confidence (the forward pass uses s)
#   ternary (2 bits): s (sign), and aux = nonzero (0 = the weight is 0; s is kept)
from array import array

from . import accel
from . import kernels as K
from .spec import AUX_NAME, BINARY, TERNARY, words


class Dense:
    def __init__(self, n_in, n_out, kind):
        self.n_in = n_in
        self.n_out = n_out
        self.nw = words(n_in)
        self.kind = kind
        self.s = bytearray(4 * self.nw * n_out)
        self.aux = bytearray(4 * self.nw * n_out) if kind != BINARY else self.s
        self.pre = array("i", bytes(4 * n_out))  # pre-activations of the last forward
        self.out = bytearray(4 * words(n_out))  # packed sign bits (pre >= 0)
        self.dirs = bytearray(n_out)  # per-neuron direction of the current update
        self.idx = array("H", bytes(2 * n_out))  # neurons with a direction
        self.thr = None  # per-unit thresholds (pool.py), subtracted from pre
        self.split = None  # (worker, job, h): rows [h, n_out) of forward run on the other core (dual.py)

    def planes(self):
        if self.kind == BINARY:
            return [("s", self.s)]
        return [("s", self.s), (AUX_NAME[self.kind], self.aux)]

    def nbytes(self):
        n = sum(len(p) for _, p in self.planes())
        return n + 4 * self.n_out + len(self.out) + self.n_out + 2 * self.n_out

    def init(self, seed, layer):
        # sign bits from the hash (density 1/2); binary2 starts weak, ternary nonzero
        K.fill_random(self.s, self.nw, self.n_out, self.n_in, seed, layer)
        if self.kind == TERNARY:
            K.fill_valid(self.aux, self.nw, self.n_out, self.n_in)

    def forward(self, x, pack=True):
        # pack: the sign bits feed a layer above (the top layer's are never read)
        sp = self.split
        if sp is not None:
            w, job, h = sp
            seq = w.start(job)
            if self.kind == TERNARY:
                K.dense_ternary(x, self.s, self.aux, self.pre, self.nw, h)
            else:
                accel.dense_binary(x, self.s, self.pre, self.nw, h, self.n_in)
            w.wait(seq)
        elif self.kind == TERNARY:
            K.dense_ternary(x, self.s, self.aux, self.pre, self.nw, self.n_out)
        else:
            accel.dense_binary(x, self.s, self.pre, self.nw, self.n_out, self.n_in)
        if self.thr is not None:
            K.sub_thresholds(self.pre, self.thr, self.n_out)
        if pack:
            K.sign_pack(self.pre, self.out, self.n_out, words(self.n_out))

    def update(self, row, x, up, k, ks, st, layer):
        # move one neuron's weights toward (up) or away from (not up) its input x
        if self.kind == BINARY:
            return accel.flip_row(self.s, row, x, self.nw, self.n_in, up, k, st, layer)
        return K.update_row(self.kind, self.s, self.aux, row, x, self.nw, self.n_in, up, k, ks, st, layer)
