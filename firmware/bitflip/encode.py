# Feature encoding on the board: raw feature values -> the packed input bits a model was
# trained on, with the same integer steps as the host (bitflip.data.scaling, images.py and
# encoding.py; tests run both on the same samples and compare every bit):
#   1. scaling (modelfile.SC_*): raw values -> whole numbers 0..255;
#   2. image steps in order: deskew (integer moments, fixed-point shear and bilinear
#      resampling), crop:C (the centre CxC), pool:F (rounded means of FxF blocks);
#   3. bit levels: bit (level l, feature i) = value_i >= t_l, level-major, packed into
#      little-endian u32 words (spec.py's row layout).
# Every buffer is allocated by Encoder(); encode() allocates nothing for integer input
# (floats, where the scaling needs them, are boxed objects on most ports).
from array import array

import micropython
from micropython import const

from . import modelfile as MF
from .spec import words

# deskew fixed point (host twin: bitflip.data.images.deskew): positions and interpolation
# weights in 1/1024 px, the shear in 1/4096 px per row
_AMAX = const(16384)  # |shear| <= 4 pixels per row (the float deskew has no clamp; MNIST never needs one)
_BIG = const(131072)  # 2**17: moments are shifted below this before the shear division
MAX_DESKEW_SIDE = const(32)  # every intermediate stays below 2**30 up to this side


@micropython.viper
def deskew(src: ptr8, dst: ptr8, side: int, rs: ptr32):
    # src, dst: side*side pixels (0..255); rs: 2*side words of scratch (row sums)
    m = 0
    sy = 0
    sx = 0
    for y in range(side):
        r = 0
        rx = 0
        o = y * side
        for x in range(side):
            v = int(src[o + x])
            r += v
            rx += v * x
        rs[y] = r
        rs[side + y] = rx
        m += r
        sy += r * y
        sx += rx
    n = side * side
    if m == 0:
        for i in range(n):
            dst[i] = 0
        return
    ci = sy // m  # integer part of the centre of mass; the rest in 1/1024 px
    cj = sx // m
    sy1 = sy - ci * m
    sx1 = sx - cj * m
    syy = 0
    sxy = 0
    for y in range(side):
        dy = y - ci
        r = int(rs[y])
        syy += dy * dy * r
        sxy += dy * (int(rs[side + y]) - cj * r)
    fy = (sy1 * 2048 + m) // (m * 2)
    fx = (sx1 * 2048 + m) // (m * 2)
    vyy = syy - ((sy1 * fy + 512) >> 10)  # m * variance of y
    vxy = sxy - ((sx1 * fy + 512) >> 10)  # m * covariance of x and y
    a = 0  # shear, 1/4096 px of x per row
    if vyy > 0:
        num = vxy
        if vxy < 0:
            num = 0 - vxy
        den = vyy
        while num >= _BIG or den >= _BIG:
            num = num >> 1
            den = den >> 1
        if den == 0:
            a = _AMAX
        else:
            a = (num << 12) // den
            if a > _AMAX:
                a = _AMAX
        if vxy < 0:
            a = 0 - a
    half = side * 512
    cyq = ci * 1024 + fy - half
    cxq = cj * 1024 + fx - half
    for y in range(side):
        syq = y * 1024 + cyq
        shear = (a * (y * 1024 - half) + 2048) >> 12
        y0 = syq >> 10
        wy = syq & 1023
        o0 = y0 * side
        for x in range(side):
            sxq = x * 1024 + shear + cxq
            x0 = sxq >> 10
            wx = sxq & 1023
            acc = 0
            if y0 >= 0 and y0 < side:
                w = 1024 - wy
                if x0 >= 0 and x0 < side:
                    acc += int(src[o0 + x0]) * w * (1024 - wx)
                if x0 >= -1 and x0 < side - 1:
                    acc += int(src[o0 + x0 + 1]) * w * wx
            if y0 >= -1 and y0 < side - 1:
                o1 = o0 + side
                if x0 >= 0 and x0 < side:
                    acc += int(src[o1 + x0]) * wy * (1024 - wx)
                if x0 >= -1 and x0 < side - 1:
                    acc += int(src[o1 + x0 + 1]) * wy * wx
            dst[y * side + x] = (acc + 524288) >> 20


@micropython.viper
def crop(src: ptr8, dst: ptr8, side: int, keep: int):
    o = (side - keep) >> 1
    for y in range(keep):
        s = (y + o) * side + o
        d = y * keep
        for x in range(keep):
            dst[d + x] = src[s + x]


@micropython.viper
def pool(src: ptr8, dst: ptr8, side: int, f: int):
    s = side // f
    ff = f * f
    for by in range(s):
        for bx in range(s):
            acc = 0
            for dy in range(f):
                o = (by * f + dy) * side + bx * f
                for dx in range(f):
                    acc += int(src[o + dx])
            dst[by * s + bx] = (acc + (ff >> 1)) // ff


@micropython.viper
def levels(src: ptr8, n: int, ts: ptr16, nl: int, x: ptr32, nw: int):
    # bit (l, i) = src[i] >= ts[l], at bit l*n + i of the packed row x (nw words)
    for w in range(nw):
        x[w] = 0
    b = 0
    for li in range(nl):
        t = int(ts[li])
        for i in range(n):
            if int(src[i]) >= t:
                x[b >> 5] = uint(x[b >> 5]) | (uint(1) << uint(b & 31))
            b += 1


@micropython.viper
def gather(full: ptr32, keep: ptr16, nk: int, x: ptr32, nw: int):
    # bit j of x = bit keep[j] of full (the bits an mi:PCT encoding kept, ascending)
    for w in range(nw):
        x[w] = 0
    for j in range(nk):
        b = int(keep[j])
        if (uint(full[b >> 5]) >> uint(b & 31)) & 1:
            x[j >> 5] = uint(x[j >> 5]) | (uint(1) << uint(j & 31))


@micropython.viper
def scale_none(values, n: int, out: ptr8):
    # whole numbers 0..255 from any indexable sequence of ints (clipped)
    for i in range(n):
        v = int(values[i])
        if v < 0:
            v = 0
        elif v > 255:
            v = 255
        out[i] = v


@micropython.viper
def copy8(src: ptr8, n: int, out: ptr8):
    for i in range(n):
        out[i] = src[i]


@micropython.viper
def scale_minmax(values, n: int, lo: ptr32, span: ptr32, out: ptr8):
    # floor(255 * (x - lo) / span + 0.5) clipped to 0..255, exactly, for integers
    # (spans below 2**21, which the host checks when it writes SC_MINMAX_INT)
    sb = uint(1) << 31
    for i in range(n):
        s = int(span[i])
        d = int(values[i]) - int((uint(lo[i]) ^ sb) - sb)
        q = 0
        if s > 0 and d > 0:
            if d >= s:
                q = 255
            else:
                q = (d * 510 + s) // (s * 2)
        out[i] = q


@micropython.viper
def class_max(pre: ptr32, P: int, C: int, out: ptr32):
    # out[c] = max of pre over class c's prototypes [c*P, c*P + P)
    sb = uint(1) << 31
    for c in range(C):
        o = c * P
        best = int((uint(pre[o]) ^ sb) - sb)
        for j in range(1, P):
            v = int((uint(pre[o + j]) ^ sb) - sb)
            if v > best:
                best = v
        out[c] = best


class Encoder:
    # raw values -> packed bits, with the encoding and scaling of a model file (dicts as
    # modelfile.read returns them)
    def __init__(self, enc, sc):
        self.n = int(enc["features"])
        self.kind = int(sc["kind"])
        self.feat = bytearray(self.n)
        self.steps = []  # (code, arg, side in) per image step
        side = 0
        if enc["steps"]:
            side = 2
            while side * side < self.n:
                side += 1
            if side * side != self.n:
                raise ValueError("image steps need square images (%d features)" % self.n)
        big = self.n
        for name, arg in enc["steps"]:
            code = MF.STEP_CODES[name]
            if code == MF.ST_DESKEW and side > MAX_DESKEW_SIDE:
                raise ValueError("deskew on the board handles images up to %dx%d" % (MAX_DESKEW_SIDE, MAX_DESKEW_SIDE))
            if code == MF.ST_CROP and not 1 <= arg <= side:
                raise ValueError("crop:%d does not fit a %dx%d image" % (arg, side, side))
            if code == MF.ST_POOL and (arg < 1 or side % arg):
                raise ValueError("pool:%d does not divide the image side %d" % (arg, side))
            self.steps.append((code, arg, side))
            if code == MF.ST_CROP:
                side = arg
            elif code == MF.ST_POOL:
                side //= arg
        self.m = side * side if enc["steps"] else self.n  # values the bit step sees
        self.img = (bytearray(big), bytearray(big)) if self.steps else None
        self.rs = bytearray(8 * MAX_DESKEW_SIDE)
        self.ts = array("H", [int(t) for t in enc["levels"]])
        self.nl = len(self.ts)
        self.n_bits = self.m * self.nl
        self.nw = words(self.n_bits)
        keep = enc.get("keep") or ()
        self.keep = None
        if keep:  # mi:PCT: levels fill self.full, gather picks the kept bits into the row
            if keep[-1] >= self.n_bits:
                raise ValueError("kept bit %d beyond the encoding's %d bits" % (keep[-1], self.n_bits))
            self.keep = array("H", keep)
            self.full = array("I", bytes(4 * self.nw))
            self.n_bits = len(keep)
            self.kw = words(self.n_bits)
        self.lo = None
        self.span = None
        self.flo = None
        if self.kind == MF.SC_MINMAX_INT:
            self.lo = array("i", [int(v) for v in sc["low"]])
            self.span = array("i", [int(v) for v in sc["span"]])
        elif self.kind == MF.SC_MINMAX_FLOAT:
            self.flo = [float(v) for v in sc["low"]]
            self.fspan = [float(v) for v in sc["span"]]
        if self.kind in (MF.SC_MINMAX_INT, MF.SC_MINMAX_FLOAT) and len(sc["low"]) != self.n:
            raise ValueError("scaling for %d features, the encoding has %d" % (len(sc["low"]), self.n))

    def scale(self, values):
        # values -> self.feat (0..255 each)
        n = self.n
        if len(values) != n:
            raise ValueError("expected %d feature values, got %d" % (n, len(values)))
        kind = self.kind
        if kind == MF.SC_NONE:
            t = type(values)
            if t is bytes or t is bytearray:  # (no tuple: isinstance(v, (a, b)) would allocate)
                copy8(values, n, self.feat)
            else:
                scale_none(values, n, self.feat)
        elif kind == MF.SC_MINMAX_INT:
            scale_minmax(values, n, self.lo, self.span, self.feat)
        else:
            self._scale_float(values)
        return self.feat

    def _scale_float(self, values):
        # floats: the host's formula in the board's float type (allocates where floats are
        # boxed; single precision on rp2 and esp32 can round a value at a .5 boundary apart)
        feat = self.feat
        unit = self.kind == MF.SC_UNIT
        for i in range(self.n):
            if unit:
                r = float(values[i])
            else:
                s = self.fspan[i]
                r = (values[i] - self.flo[i]) / s if s > 0 else 0.0
            q = int(r * 255 + 0.5) if r > 0 else 0
            feat[i] = 255 if q > 255 else q

    def encode(self, values, x):
        # raw values -> packed bits in x (a Trainer's input row)
        src = self.scale(values)
        k = 0
        for code, arg, side in self.steps:
            dst = self.img[k]
            k ^= 1
            if code == MF.ST_DESKEW:
                deskew(src, dst, side, self.rs)
            elif code == MF.ST_CROP:
                crop(src, dst, side, arg)
            else:
                pool(src, dst, side, arg)
            src = dst
        if self.keep is None:
            levels(src, self.m, self.ts, self.nl, x, self.nw)
        else:
            levels(src, self.m, self.ts, self.nl, self.full, self.nw)
            gather(self.full, self.keep, self.n_bits, x, self.kw)
