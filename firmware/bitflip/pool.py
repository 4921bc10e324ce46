# The "pool" rule for hidden layers (docs/research/hidden-layers.md, sections 4 and 6):
# 1-bit hidden units with a learned threshold each, and weight flips decided by evidence
# pooled over many samples instead of one sample's random subset.
#  - threshold: a unit's sign is (pre - t >= 0); t moves one step toward pre on every
#    training sample, so each unit fires for about half the data;
#  - evidence: a window of `rows` consecutive units (rotating through the layer) keeps a
#    saturating int8 counter per input: a unit told to move up (down) adds +1 (-1) times
#    each input (+-1) to its row;
#  - flips: every `every` samples, each row flips the (at most) `flips` weights whose
#    counter most opposes them (counter * weight <= -tau; ties: lowest input first), then
#    the counters are cleared and the window moves on by `rows` units.
# bitflip.training.reference mirrors every step; the digest tests prove it. PoolRule is the
# hidden-rule seam (see hidden.py) for rule.Trainer.
from array import array

import micropython
from micropython import const

_SAT = const(127)  # spec.SAT: counters saturate at +-_SAT (int8)
_BINS = const(128)  # spec.BINS: evidence values 0..127 for the flip selection


@micropython.viper
def step_thresholds(a: ptr32, t: ptr32, n: int):
    # t[i] += sign(a[i]); a = pre - t of the last forward (array('i'), sign-extended here
    # because ptr32 loads are unsigned on the 64-bit unix port)
    sb = uint(1) << 31
    for i in range(n):
        v = int((uint(a[i]) ^ sb) - sb)
        if v > 0:
            t[i] = uint(t[i]) + uint(1)
        elif v < 0:
            t[i] = uint(t[i]) - uint(1)


@micropython.viper
def add_evidence(c: ptr8, x: ptr32, n_in: int, dirs: ptr8, idx: ptr16, n: int, pos: int, n_out: int, rows: int) -> int:
    # for the n units idx[0:n] with a direction (dirs 1 up, 2 down) that are inside the
    # window [pos, pos + rows) (mod n_out): counter row r = unit - pos gets +1 where the
    # input bit agrees with the direction (bit 1 and up, or bit 0 and down), else -1.
    # Returns the number of rows that took evidence.
    done = 0
    for m in range(n):
        j = int(idx[m])
        r = j - pos
        if r < 0:
            r += n_out
        if r >= rows:
            continue
        up = 1 if int(dirs[j]) == 1 else 0
        off = r * n_in
        done += 1
        for i in range(n_in):
            b = int((uint(x[i >> 5]) >> uint(i & 31)) & uint(1))
            v = int(c[off + i])
            if v > _SAT:
                v -= 256
            if b == up:
                if v < _SAT:
                    v += 1
            elif v > 0 - _SAT:
                v -= 1
            c[off + i] = v & 0xFF
    return done


@micropython.viper
def flush_row(c: ptr8, off: int, w: ptr32, row: int, nw: int, n_in: int, flips: int, tau: int, hist: ptr32) -> int:
    # In weight row `row`, flip the (at most) `flips` bits with the largest evidence against
    # them, e = -counter * weight >= tau, lowest input first among equal e; clear the
    # counters c[off:off+n_in]. Returns the number of bits flipped.
    r = ptr32(uint(w) + (uint(row * nw) << 2))
    for e in range(_BINS):
        hist[e] = 0
    for i in range(n_in):
        v = int(c[off + i])
        if v > _SAT:
            v -= 256
        if (uint(r[i >> 5]) >> uint(i & 31)) & uint(1):
            v = 0 - v
        if v >= tau:
            hist[v] = hist[v] + 1
    # cut: the evidence level where the budget runs out; all above it flip, and `need`
    # of those exactly at it. Fewer candidates than the budget: all of them flip.
    need = flips
    cut = tau - 1
    e = _BINS - 1
    while e >= tau:
        h = int(hist[e])
        if h >= need:
            cut = e
            break
        need -= h
        e -= 1
    if cut < tau:
        need = 0
    done = 0
    for i in range(n_in):
        v = int(c[off + i])
        c[off + i] = 0
        if v > _SAT:
            v -= 256
        bit = uint(1) << uint(i & 31)
        if uint(r[i >> 5]) & bit:
            v = 0 - v
        if v > cut or (v == cut and need > 0):
            if v == cut:
                need -= 1
            r[i >> 5] = uint(r[i >> 5]) ^ bit
            done += 1
    return done


class Pool:
    # the evidence state of one hidden layer
    def __init__(self, layer, rows):
        self.layer = layer
        self.rows = min(rows, layer.n_out)
        # state buffers are bytearrays: checkpoints and weight dumps count them in bytes
        self.t = bytearray(4 * layer.n_out)  # int32 thresholds; layer.forward subtracts them
        self.c = bytearray(self.rows * layer.n_in)  # int8 counters, one row per window unit
        self.pos = bytearray(4)  # first unit of the window (u16, little-endian)
        self.hist = array("i", bytes(4 * _BINS))
        layer.thr = self.t

    def nbytes(self):
        return len(self.t) + len(self.c) + len(self.pos) + 4 * _BINS

    def state(self):
        # what a checkpoint needs besides Trainer.planes() (which holds t)
        return [self.c, self.pos]

    def add(self, x, n):
        # evidence from the layer's n units in error (layer.idx / layer.dirs); x: its input.
        # Returns the counter bytes written.
        layer = self.layer
        return layer.n_in * add_evidence(
            self.c, x, layer.n_in, layer.dirs, layer.idx, n, self.window(), layer.n_out, self.rows
        )

    def window(self):
        return self.pos[0] | (self.pos[1] << 8)

    def flush(self, flips, tau):
        # apply the window's evidence, clear it, move the window on; returns bits flipped
        # (each counter is read twice: Trainer counts 2 * rows * n_in evidence bytes)
        layer = self.layer
        n_out = layer.n_out
        pos = self.window()
        done = 0
        for r in range(self.rows):
            j = pos + r
            if j >= n_out:
                j -= n_out
            done += flush_row(self.c, r * layer.n_in, layer.s, j, layer.nw, layer.n_in, flips, tau, self.hist)
        pos += self.rows
        if pos >= n_out:
            pos -= n_out
        self.pos[0] = pos & 0xFF
        self.pos[1] = pos >> 8
        return done


class PoolRule:
    votes_from_updates = False  # errors and near-misses vote (rule.py step 5)

    def __init__(self, trainer, cfg):
        pc = cfg["pool"]
        self.t = trainer
        self.pools = [Pool(layer, int(pc["rows"])) for layer in trainer.layers[:-1]]
        self.every = int(pc["every"])
        self.tau = int(pc["tau"])
        self.flips = int(pc["flips"])
        self.tau_step = int(pc.get("tau_step", 0))
        self.near = int(pc["near"])

    def nbytes(self):
        return sum(p.nbytes() for p in self.pools)

    def planes(self, li):
        return (("t", self.pools[li].t),)  # the thresholds are part of the model

    def state(self):
        st = []
        for pool in self.pools:
            st += pool.state()
        return st

    def start(self):
        for pool in self.pools:
            layer = pool.layer
            step_thresholds(layer.pre, pool.t, layer.n_out)

    def learn(self, li, layer, x, n):
        # evidence only: the window's flips come in end()
        self.t.evidence_bytes += self.pools[li].add(x, n)

    def end(self, e):
        t = self.t
        if t.step % self.every:
            return
        flips = self.flips >> e  # halved every epoch
        tau = self.tau + self.tau_step * t.extra
        for pool in self.pools:
            t.writes += pool.flush(flips if flips > 0 else 1, tau)
            t.evidence_bytes += 2 * pool.rows * pool.layer.n_in
