"""Frames on the wire, host side: encode one, its header check byte, and the repairs the
device attempts (the spec firmware/bitflip/stream.py follows allocation-free; tests/test_faults.py
fuzzes both against each other). The constants are the shared contract's (protocol.py)."""

from __future__ import annotations

import binascii

from ..device.protocol import FEC_FLAG, FEC_SEG, HEADER_SIZE, SYNC0, SYNC1


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


def _fec_seg(seg: bytes | bytearray) -> tuple[int, int]:
    c0 = c1 = 0
    for b in seg:
        c0 ^= b
        c1 = ((c1 << 1) ^ (0x11D if c1 & 0x80 else 0)) ^ b
    return c0, c1


def fec_trailer(data: bytes | bytearray) -> bytes:
    """Check bytes of payload+crc32 `data` (FEC_FLAG frames)."""
    out = bytearray()
    for i in range(0, len(data), FEC_SEG):
        out += bytes(_fec_seg(data[i : i + FEC_SEG]))
    return bytes(out)


def fec_fix(data: bytearray, trailer: bytes | bytearray) -> int:
    """What the device does with a FEC frame whose CRC failed: correct one byte per
    segment of bytearray `data` (payload+crc32) from its check bytes. Returns the number
    of bytes corrected, -1 if a segment cannot be corrected (then data may be changed)."""
    fixed = 0
    for k, i in enumerate(range(0, len(data), FEC_SEG)):
        seg = data[i : i + FEC_SEG]
        c0, c1 = _fec_seg(seg)
        d0, d1 = c0 ^ trailer[2 * k], c1 ^ trailer[2 * k + 1]
        if not d0 and not d1:
            continue
        if not d0 or not d1:
            return -1
        t = d0
        for w in range(len(seg)):
            if t == d1:
                data[i + len(seg) - 1 - w] ^= d0
                fixed += 1
                break
            t = ((t << 1) ^ (0x11D if t & 0x80 else 0)) & 0xFF
        else:
            return -1
    return fixed
