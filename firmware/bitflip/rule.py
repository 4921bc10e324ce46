# The learning rule (device side). bitflip.reference (host, numpy) mirrors every step of
# this file; a change here needs the same change there, and the digest test proves it.
#
# One training step on sample (x, label), all integer:
#  1. forward: every layer computes pre-activations (XOR-popcount) and sign bits;
#  2. output neuron c wants y_c = +1 if c == label else -1; it is in error when
#     y_c * pre_c < margin, and its direction is y_c;
#  3. going down, the directions of layer l vote on the units of layer l-1 through the
#     current weights; a unit whose sign disagrees with its vote and whose pre-activation
#     is within `window` of 0 gets the vote's direction;
#  4. every neuron with a direction flips a random 1/2**k subset of its erroneous
#     contributions (kernels.flip_row).
# Votes for layer l-1 are taken before layer l's flips.
from array import array

from . import kernels as K
from .layers import BINARY, TERNARY, Dense, words


class Trainer:
    def __init__(self, cfg):
        sizes = cfg["sizes"]
        kind = TERNARY if cfg.get("weights", "binary") == "ternary" else BINARY
        if kind != BINARY:
            raise ValueError("ternary weights are not supported by this rule")
        self.seed = int(cfg["seed"])
        self.margin = int(cfg["margin"])
        self.window = int(cfg["window"])
        self.k = [int(k) for k in cfg["k"]]  # flip density exponent per layer
        self.layers = []
        for i in range(len(sizes) - 1):
            self.layers.append(Dense(sizes[i], sizes[i + 1], kind))
        for i, layer in enumerate(self.layers):
            layer.init(self.seed, i)
        self.n_in = sizes[0]
        self.n_classes = sizes[-1]
        self.x = bytearray(4 * words(self.n_in))
        widest = max(sizes)
        self.vote = array("i", bytes(4 * widest))
        self.dirs = [bytearray(layer.n_out) for layer in self.layers]
        self.st = array("I", bytes(4))
        self.step = 0
        self.flips = 0
        self.updates = 0  # neurons updated
        self.correct = 0
        self.seen = 0

    def nbytes(self):
        n = sum(layer.nbytes() for layer in self.layers)
        return n + len(self.x) + 4 * len(self.vote) + sum(len(d) for d in self.dirs) + 4

    def weight_bytes(self):
        n = 0
        for layer in self.layers:
            n += len(layer.s) + (len(layer.z) if layer.z is not None else 0)
        return n

    def forward(self, x):
        for layer in self.layers:
            layer.forward(x)
            x = layer.out
        last = self.layers[-1]
        return K.argmax(last.pre, last.n_out)

    def learn(self, label):
        layers = self.layers
        K.step_key(self.st, self.seed, self.step)
        top = len(layers) - 1
        out = layers[top]
        d = self.dirs[top]
        for c in range(out.n_out):
            y = 1 if c == label else -1
            d[c] = 0
            if y * out.pre[c] < self.margin:
                d[c] = 1 if y > 0 else 2
        for li in range(top, -1, -1):
            layer = layers[li]
            d = self.dirs[li]
            if li > 0:
                below = layers[li - 1]
                K.vote(layer.s, d, layer.nw, layer.n_out, layer.n_in, self.vote)
                K.hidden_dirs(self.vote, below.pre, self.dirs[li - 1], below.n_out, self.window)
                x = below.out
            else:
                x = self.x
            for j in range(layer.n_out):
                if d[j]:
                    self.flips += K.flip_row(layer.s, j, x, layer.nw, layer.n_in, d[j] == 1, self.k[li], self.st, li)
                    self.updates += 1
        self.step += 1

    def train_block(self, buf, count, lab_off, row_off, row_words):
        # buf: the frame buffer; samples are label bytes at lab_off, rows at row_off
        correct = 0
        nw = words(self.n_in)
        for i in range(count):
            K.load_row(self.x, buf, (row_off >> 2) + i * row_words, nw)
            label = buf[lab_off + i]
            if self.forward(self.x) == label:
                correct += 1
            self.learn(label)
        self.correct += correct
        self.seen += count
        return correct

    def eval_block(self, buf, count, lab_off, row_off, row_words):
        correct = 0
        nw = words(self.n_in)
        for i in range(count):
            K.load_row(self.x, buf, (row_off >> 2) + i * row_words, nw)
            if self.forward(self.x) == buf[lab_off + i]:
                correct += 1
        return correct

    def state(self):
        # every buffer a checkpoint must hold to continue bit-exactly
        return [buf for _, _, buf in self.planes()]

    def meta(self):
        return {"step": self.step, "flips": self.flips, "updates": self.updates}

    def set_meta(self, meta):
        self.step = meta["step"]
        self.flips = meta["flips"]
        self.updates = meta["updates"]

    def planes(self):
        # (layer, plane name, buffer) for digests and dumps
        out = []
        for i, layer in enumerate(self.layers):
            out.append((i, "s", layer.s))
            if layer.z is not None:
                out.append((i, "z", layer.z))
        return out
