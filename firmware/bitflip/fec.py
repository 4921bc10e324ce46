# Forward error correction of FEC frames on the device: up to two damaged bytes per
# 64-byte segment of payload+crc32, from the segment's 4 Reed-Solomon check bytes
# (protocol.FEC_SEG / FEC_CHECK; the host's spec and encoder are host/bitflip/link/frames.py
# rs_fix and fec_fix, and tests/test_fec.py holds the two to the same answers). It runs only
# when a frame's CRC fails and allocates nothing: the GF(2^8) tables are one bytearray made
# with the link. The syndromes are viper (every byte of every segment); the rest is
# bytecode, smaller than viper's machine code on the board's heap (it runs only for
# damaged segments, on a few bytes).
import micropython

from micropython import const

_SEG = const(64)  # protocol.FEC_SEG
_CHECK = const(4)  # protocol.FEC_CHECK
_LOG = const(512)  # gf[0:510]: 2^i (doubled: a sum of two logs needs no modulo); gf[512:768]: log
_SYN = const(768)  # gf[768:772]: the syndromes of the last segment
GF_BYTES = const(772)


def gf_tables(gf):
    # fill gf (bytearray(GF_BYTES)) with the exp and log tables of GF(2^8), poly 0x11D
    x = 1
    for i in range(255):
        gf[i] = x
        gf[i + 255] = x
        gf[_LOG + x] = i
        x <<= 1
        if x & 0x100:
            x ^= 0x11D


@micropython.viper
def syndromes(buf: ptr8, at: int, n: int, par: int, gf: ptr8) -> int:
    # S1..S4 of buf[at:at+n] + its check bytes buf[par:par+4] (Horner: S_j = S_j 2^j + b)
    # to gf[_SYN:_SYN+4]; 0 if all are 0 (the segment is a code word: intact)
    s1 = 0
    s2 = 0
    s3 = 0
    s4 = 0
    i = 0
    m = n + _CHECK
    while i < m:
        if i < n:
            b = buf[at + i]
        else:
            b = buf[par + i - n]
        if s1:
            s1 = gf[gf[_LOG + s1] + 1]
        if s2:
            s2 = gf[gf[_LOG + s2] + 2]
        if s3:
            s3 = gf[gf[_LOG + s3] + 3]
        if s4:
            s4 = gf[gf[_LOG + s4] + 4]
        s1 ^= b
        s2 ^= b
        s3 ^= b
        s4 ^= b
        i += 1
    gf[_SYN] = s1
    gf[_SYN + 1] = s2
    gf[_SYN + 2] = s3
    gf[_SYN + 3] = s4
    return s1 | s2 | s3 | s4


def _mul(gf, a, b):
    if a and b:
        return gf[gf[_LOG + a] + gf[_LOG + b]]
    return 0


def _put(buf, at, n, par, i, y):
    # xor y into byte i of the segment + its check bytes
    if i < n:
        buf[at + i] ^= y
    else:
        buf[par + i - n] ^= y


def _value(gf, s1, s2, e, r, lsx):
    # the error value at place e (the other error at r; lsx = log(X1 + X2)): (S1 X_r + S2) / (X_e (X1 + X2))
    a = s2 ^ _mul(gf, s1, gf[r])
    if a:
        return gf[(gf[_LOG + a] - e - lsx) % 255]
    return 0


def rs_fix(buf, at, n, par, gf):
    # correct buf[at:at+n] + its check bytes buf[par:par+4] in place (frames.rs_fix, step for
    # step): the bytes corrected (0, 1, 2) or -1. One error if S2/S1 = S3/S2 = S4/S3 (its place
    # and value in closed form), else two (Peterson's locator 1 + l1 x + l2 x^2, its roots
    # tried at every place e, the values from S1, S2). A place e is byte m-1-e.
    if not syndromes(buf, at, n, par, gf):
        return 0
    s1 = gf[_SYN]
    s2 = gf[_SYN + 1]
    s3 = gf[_SYN + 2]
    s4 = gf[_SYN + 3]
    m = n + _CHECK
    if s1 and s2 and s3 and s4:
        g1 = gf[_LOG + s1]
        g2 = gf[_LOG + s2]
        g3 = gf[_LOG + s3]
        lx = (g2 - g1) % 255  # log of the place X = S2/S1
        if g3 == (g2 + lx) % 255 and gf[_LOG + s4] == (g3 + lx) % 255:
            if lx >= m:
                return -1
            _put(buf, at, n, par, m - 1 - lx, gf[(g1 - lx) % 255])
            return 1
    det = _mul(gf, s2, s2) ^ _mul(gf, s1, s3)
    if not det:
        return -1
    ld = 255 - gf[_LOG + det]
    a = _mul(gf, s3, s2) ^ _mul(gf, s1, s4)
    lg1 = -1  # log l1, or -1: l1 = 0
    if a:
        lg1 = (gf[_LOG + a] + ld) % 255
    a = _mul(gf, s2, s4) ^ _mul(gf, s3, s3)
    if not a:
        return -1
    lg2 = (gf[_LOG + a] + ld) % 255
    r1 = -1
    r2 = -1
    for e in range(m):
        v = gf[(lg2 - e - e) % 255] ^ 1
        if lg1 >= 0:
            v ^= gf[(lg1 - e) % 255]
        if not v:
            if r1 < 0:
                r1 = e
            elif r2 < 0:
                r2 = e
            else:
                return -1
    if r2 < 0:
        return -1
    lsx = gf[_LOG + (gf[r1] ^ gf[r2])]
    _put(buf, at, n, par, m - 1 - r1, _value(gf, s1, s2, r1, r2, lsx))
    _put(buf, at, n, par, m - 1 - r2, _value(gf, s1, s2, r2, r1, lsx))
    return 2


def fec_fix(buf, start, m, tr, gf):
    # frames.fec_fix on buf[start:start+m] (payload+crc32) with check bytes at buf[tr:]:
    # the bytes corrected, or -1 if a segment could not be
    fixed = 0
    off = 0
    while off < m:
        g = m - off
        if g > _SEG:
            g = _SEG
        r = rs_fix(buf, start + off, g, tr, gf)
        if r < 0:
            return -1
        fixed += r
        off += _SEG
        tr += _CHECK
    return fixed
