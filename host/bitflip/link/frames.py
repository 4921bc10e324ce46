"""Frames on the wire, host side: encode one, its header check byte, and the repairs the
device attempts (the spec firmware/bitflip/stream.py follows allocation-free; tests/test_faults.py
fuzzes both against each other). The constants are the shared contract's (protocol.py)."""

from __future__ import annotations

import binascii

from ..device.protocol import FEC_CHECK, FEC_FLAG, FEC_SEG, HEADER_SIZE, SYNC0, SYNC1


def header_check(kind: int, seq: int, n: int) -> int:
    """The header check byte: kind, then seq (LE) and length (LE) each xored in after a
    rotate left of the check so far. Detects every damaged byte of those 5 (and most
    pairs). 0 = unchecked (a header whose check is 0; the frame's CRC-32 still guards it)."""
    c = kind & 0xFF
    for b in (seq & 0xFF, (seq >> 8) & 0xFF, n & 0xFF, (n >> 8) & 0xFF):
        c = (((c << 1) | (c >> 7)) & 0xFF) ^ b
    return c


def _rotr(x: int, r: int) -> int:
    return ((x >> r) | (x << (8 - r))) & 0xFF


def header_repair(
    kind: int, check: int, seq: int, n: int, last_len: int
) -> tuple[int, list[tuple[int, int, int]]] | None:
    """What the device does with a header whose check byte fails (stream.py does the same
    allocation-free). One damaged byte among kind, check, seq and length is assumed: the
    check's error is that byte's error rotated left by its place (kind 4, seq low 3, seq
    high 2, length low 1, length high 0). A length that differs from last_len (the
    payload length of the last frame whose CRC held: a stream's frames have one size) is
    corrected to it if one length byte can be; then only that header is tried. Otherwise
    the frame is read with its length and the headers tried, in order, are: as received,
    the check byte corrected (it was the damaged one), kind corrected (unless that flips FEC_FLAG,
    which decided how many bytes were read), seq low corrected, seq high corrected; the
    first whose CRC-32 holds (after FEC, if it carries check bytes) is the frame.
    Returns None (no repair: E_HEADER at once, hunt on) or (n, [(kind, check, seq), ...])."""
    e = check ^ header_check(kind, seq, n)
    if n == last_len:
        out = [(kind, check, seq), (kind, check ^ e, seq)]
        if not _rotr(e, 4) & FEC_FLAG:
            out.append((kind ^ _rotr(e, 4), check, seq))
        return n, out + [(kind, check, seq ^ _rotr(e, 3)), (kind, check, seq ^ (_rotr(e, 2) << 8))]
    lo = ((n & 0xFF) ^ _rotr(e, 1)) | (n & 0xFF00)
    hi = (n & 0xFF) | (((n >> 8) ^ e) << 8)
    if lo == last_len or hi == last_len:
        return last_len, [(kind, check, seq)]
    return None


def encode_frame(kind: int, seq: int, payload: bytes | bytearray = b"", fec: bool = False) -> bytes:
    """One frame (host side, allocates freely); fec: with check bytes (FEC_FLAG)."""
    n = len(payload)
    if n > 0xFFFF:
        raise ValueError("payload too long")
    if fec:
        kind |= FEC_FLAG
    check = header_check(kind, seq, n)
    head = bytes((SYNC0, SYNC1, kind & 0xFF, check, seq & 0xFF, (seq >> 8) & 0xFF, n & 0xFF, n >> 8))
    body = head + bytes(payload)
    crc = binascii.crc32(body[2:]) & 0xFFFFFFFF
    frame = body + bytes((crc & 0xFF, (crc >> 8) & 0xFF, (crc >> 16) & 0xFF, crc >> 24))
    return frame + fec_trailer(frame[HEADER_SIZE:]) if fec else frame


# GF(2^8) (poly 0x11D, generator 2) for the Reed-Solomon check bytes: EXP doubled so a
# sum of two logs needs no modulo; the device builds the same tables (fec.gf_tables)
EXP = bytearray(512)
LOG = bytearray(256)
_x = 1
for _i in range(255):
    EXP[_i], LOG[_x] = _x, _i
    _x = (_x << 1) ^ (0x11D if _x & 0x80 else 0)
EXP[255:510] = EXP[:255]


def _mul(a: int, b: int) -> int:
    return EXP[LOG[a] + LOG[b]] if a and b else 0


def _div(a: int, b: int) -> int:
    return EXP[LOG[a] + 255 - LOG[b]] if a else 0


def _generator() -> list[int]:
    # (x - a^1)(x - a^2) ... (x - a^FEC_CHECK), highest power first
    g = [1]
    for j in range(1, FEC_CHECK + 1):
        g = [a ^ _mul(b, EXP[j]) for a, b in zip([*g, 0], [0, *g], strict=True)]
    return g


_GEN = _generator()
# the check-byte register as one int (first check byte highest), advanced a byte at a time
# like a table CRC: _STEP[f] = f times the generator's low terms
_STEP = [sum(_mul(f, g) << (8 * (FEC_CHECK - 1 - i)) for i, g in enumerate(_GEN[1:])) for f in range(256)]
_MASK = (1 << (8 * FEC_CHECK)) - 1
_TOP = 8 * (FEC_CHECK - 1)


def rs_parity(seg: bytes | bytearray | memoryview) -> bytes:
    """The FEC_CHECK check bytes of one segment: the remainder of seg(x) x^FEC_CHECK by the
    generator (systematic Reed-Solomon over GF(2^8), roots a^1 .. a^4): two damaged bytes
    anywhere in segment + check bytes can be corrected."""
    r = 0
    for b in seg:
        r = ((r << 8) & _MASK) ^ _STEP[b ^ (r >> _TOP)]
    return r.to_bytes(FEC_CHECK, "big")


def fec_trailer(data: bytes | bytearray) -> bytes:
    """Check bytes of payload+crc32 `data` (FEC_FLAG frames): FEC_CHECK per FEC_SEG bytes."""
    mv = memoryview(data)
    return b"".join(rs_parity(mv[i : i + FEC_SEG]) for i in range(0, len(data), FEC_SEG))


def rs_fix(seg: bytearray | memoryview, par: bytearray) -> int:
    """Correct up to two damaged bytes of segment `seg` + its check bytes `par` in place
    (fec.rs_fix on the device: the same steps, allocation-free in viper). Syndromes
    S1..S4; one error if S2/S1 = S3/S2 = S4/S3 (its place and value in closed form),
    else two (Peterson: the error locator from S1..S4, its roots by trying every place,
    the values from S1, S2). Returns the bytes corrected, or -1."""
    n = len(seg)
    m = n + FEC_CHECK
    s = [0] * FEC_CHECK
    for i in range(m):
        b = seg[i] if i < n else par[i - n]
        s = [_mul(v, EXP[j + 1]) ^ b for j, v in enumerate(s)]
    s1, s2, s3, s4 = s
    if not s1 | s2 | s3 | s4:
        return 0

    def put(e: int, y: int) -> None:  # e: the place as a power of x (0 = the last check byte)
        i = m - 1 - e
        if i < n:
            seg[i] ^= y
        else:
            par[i - n] ^= y

    if s1 and s2 and s3 and s4:
        x = _div(s2, s1)
        if _mul(s2, x) == s3 and _mul(s3, x) == s4:
            if LOG[x] >= m:
                return -1
            put(LOG[x], _div(s1, x))
            return 1
    det = _mul(s2, s2) ^ _mul(s1, s3)
    if not det:
        return -1
    l1 = _div(_mul(s3, s2) ^ _mul(s1, s4), det)
    l2 = _div(_mul(s2, s4) ^ _mul(s3, s3), det)
    if not l2:
        return -1
    roots = [e for e in range(m) if 1 ^ _mul(l1, EXP[255 - e]) ^ _mul(l2, EXP[(510 - 2 * e) % 255]) == 0]
    if len(roots) != 2:
        return -1
    x1, x2 = EXP[roots[0]], EXP[roots[1]]
    put(roots[0], _div(_mul(s1, x2) ^ s2, _mul(x1, x1 ^ x2)))
    put(roots[1], _div(_mul(s1, x1) ^ s2, _mul(x2, x1 ^ x2)))
    return 2


def fec_fix(data: bytearray | memoryview, trailer: bytes | bytearray) -> int:
    """What the device does with a FEC frame whose CRC failed: correct up to two bytes per
    segment of `data` (payload+crc32) from its check bytes. Returns the number of bytes
    corrected, -1 if a segment cannot be corrected (then data may be changed)."""
    fixed = 0
    mv = memoryview(data)  # segments are corrected in place through views
    for k, i in enumerate(range(0, len(data), FEC_SEG)):
        r = rs_fix(mv[i : i + FEC_SEG], bytearray(trailer[FEC_CHECK * k : FEC_CHECK * (k + 1)]))
        if r < 0:
            return -1
        fixed += r
    return fixed
