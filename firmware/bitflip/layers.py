# Bit-plane dense layers. A layer of n_out neurons over n_in inputs keeps its weights as
# bit-planes: one row of nw = ceil(n_in/32) little-endian u32 words per neuron, bit i of
# word w = input 32*w+i. Binary: plane s (1 = +1, 0 = -1). Ternary: plane s (sign) and
# plane z (1 = nonzero); a zero weight has s = 0. Padding bits are 0 in every plane.
from array import array

from micropython import const

from . import kernels as K

BINARY = const(1)
TERNARY = const(2)


def words(n):
    return (n + 31) >> 5


class Dense:
    def __init__(self, n_in, n_out, kind):
        self.n_in = n_in
        self.n_out = n_out
        self.nw = words(n_in)
        self.kind = kind
        self.s = bytearray(4 * self.nw * n_out)
        self.z = bytearray(4 * self.nw * n_out) if kind == TERNARY else None
        self.pre = array("i", bytes(4 * n_out))  # pre-activations of the last forward
        self.out = bytearray(4 * words(n_out))  # packed sign bits (pre >= 0)

    def nbytes(self):
        n = len(self.s) + len(self.pre) * 4 + len(self.out)
        if self.z is not None:
            n += len(self.z)
        return n

    def init(self, seed, layer):
        # sign bits from the hash (density 1/2); ternary starts with every weight nonzero
        K.fill_random(self.s, self.nw, self.n_out, self.n_in, seed, layer)
        if self.z is not None:
            K.fill_valid(self.z, self.nw, self.n_out, self.n_in)

    def forward(self, x):
        if self.kind == TERNARY:
            K.dense_ternary(x, self.s, self.z, self.pre, self.nw, self.n_out)
        else:
            K.dense_binary(x, self.s, self.pre, self.nw, self.n_out, self.n_in)
        K.sign_pack(self.pre, self.out, self.n_out, words(self.n_out))
