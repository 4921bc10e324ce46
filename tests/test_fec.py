"""The FEC of noisy-line frames: the host's Reed-Solomon spec (link/frames.py) corrects
every pattern of up to two damaged bytes per segment, and the device's allocation-free
twin (firmware/bitflip/fec.py, under the real unix port with the heap locked) gives the
same answer as the spec on every case, also those beyond two errors (refused, or a
miscorrection the frame's CRC-32 then rejects)."""

from __future__ import annotations

import binascii
import random
from pathlib import Path

from bitflip.device import protocol as P
from bitflip.link import frames
from conftest import run_micropython


def _damage(rng: random.Random, seg: bytearray, par: bytearray, k: int) -> None:
    for q in rng.sample(range(len(seg) + len(par)), min(k, len(seg) + len(par))):
        v = rng.randrange(1, 256)
        if q < len(seg):
            seg[q] ^= v
        else:
            par[q - len(seg)] ^= v


def test_up_to_two_damaged_bytes_anywhere_in_a_segment_are_corrected() -> None:
    rng = random.Random(1)
    for _ in range(3000):
        seg = bytearray(rng.randbytes(rng.randrange(1, P.FEC_SEG + 1)))
        par = bytearray(frames.rs_parity(seg))
        assert len(par) == P.FEC_CHECK
        k = rng.randrange(3)
        s2, p2 = bytearray(seg), bytearray(par)
        _damage(rng, s2, p2, k)
        assert frames.rs_fix(s2, p2) == k and s2 == seg and p2 == par


def test_frames_with_two_damaged_bytes_per_segment_are_restored() -> None:
    rng = random.Random(5)
    for _ in range(300):
        payload = rng.randbytes(rng.randrange(0, 300))
        f = frames.encode_frame(P.K_TRAIN, 3, payload, fec=True)
        n = len(payload)
        assert len(f) == 12 + n + P.fec_size(n) and f[2] == P.K_TRAIN | P.FEC_FLAG
        data = bytearray(f[8 : 12 + n])
        segs = range(0, len(data), P.FEC_SEG)
        for i in segs:  # two bit flips in every segment's payload+crc32 bytes
            for q in rng.sample(range(i, min(i + P.FEC_SEG, len(data))), min(2, len(data) - i)):
                data[q] ^= 1 << rng.randrange(8)
        assert frames.fec_fix(data, f[12 + n :]) >= len(segs) and bytes(data) == f[8 : 12 + n]


def test_three_damaged_bytes_are_refused_or_caught_by_the_crc() -> None:
    rng = random.Random(7)
    refused = 0
    for _ in range(500):
        payload = rng.randbytes(rng.randrange(8, 60))
        f = frames.encode_frame(P.K_TRAIN, 3, payload, fec=True)
        n = len(payload)
        data = bytearray(f[8 : 12 + n])
        for q in rng.sample(range(len(data)), 3):
            data[q] ^= rng.randrange(1, 256)
        k = frames.fec_fix(data, f[12 + n :])
        refused += k < 0
        assert k < 0 or binascii.crc32(bytes(f[2:8]) + bytes(data[:n])) != int.from_bytes(data[n:], "little")
    assert refused > 400  # most such patterns are detected as beyond the code (here ~90 %)


DEVICE = """
import micropython
from bitflip.fec import GF_BYTES, rs_fix, fec_fix, gf_tables
gf = bytearray(GF_BYTES)
gf_tables(gf)
print(gf[:768].hex())
cases = open('cases.bin', 'rb').read()
buf = bytearray(80)
at = 0
r = k = 0  # (globals made before the lock: a new one may grow the module's dict)
while at < len(cases):
    n = cases[at]
    m = n + 4
    for i in range(m):
        buf[i] = cases[at + 1 + i]
    at += 1 + m
    micropython.heap_lock()
    r = rs_fix(buf, 0, n, n, gf)
    micropython.heap_unlock()
    print(r, bytes(buf[:m]).hex())
frame = bytearray(open('frame.bin', 'rb').read())
n = frame[6] | (frame[7] << 8)
micropython.heap_lock()
k = fec_fix(frame, 8, n + 4, 12 + n, gf)
micropython.heap_unlock()
print(k, bytes(frame).hex())
"""


def test_the_device_decoder_gives_the_host_spec_answer_on_every_case(tmp_path: Path) -> None:
    rng = random.Random(3)
    cases = bytearray()
    want = []
    for _ in range(2000):
        seg = bytearray(rng.randbytes(rng.randrange(1, P.FEC_SEG + 1)))
        par = bytearray(frames.rs_parity(seg))
        _damage(rng, seg, par, rng.choice((0, 1, 2, 2, 3, 4, 6)))  # beyond 2 too: same refusals, same miscorrections
        cases += bytes((len(seg),)) + seg + par
        r = frames.rs_fix(seg, par)
        want.append(f"{r} {(seg + par).hex() if r >= 0 else ''}")
    (tmp_path / "cases.bin").write_bytes(cases)
    payload = rng.randbytes(100)  # 104 bytes of payload+crc: two segments, 8 check bytes
    f = bytearray(frames.encode_frame(P.K_TRAIN, 9, payload, fec=True))
    assert len(f) == 12 + 100 + 8
    for q in (8, 113, 80, 111):  # the first segment: a byte and a check byte; the second: two bytes
        f[q] ^= 0x5A
    (tmp_path / "frame.bin").write_bytes(f)
    lines = run_micropython(DEVICE, cwd=tmp_path).splitlines()
    assert bytes.fromhex(lines[0]) == bytes(frames.EXP[:510]) + bytes(2) + bytes(frames.LOG)
    got = [ln if not ln.startswith("-1") else "-1 " for ln in lines[1:-1]]
    assert got == want
    k, fixed = lines[-1].split()
    good = frames.encode_frame(P.K_TRAIN, 9, payload, fec=True)
    assert int(k) == 4 and bytes.fromhex(fixed)[: 12 + 100] == good[: 12 + 100]


LINK = """
import sys
from bitflip.stream import Link
lk = Link(2048, 4, 1000, 1)
if sys.argv[-1] == "fec":
    assert lk.enable_fec(0)
assert not lk.enable_fec(1 << 29) or sys.argv[-1] == "fec"  # no room: not loaded (or loaded already)
print("KIND", lk.next_frame(1000), lk.rx_bad)
"""


def test_a_board_without_the_decoder_rejects_what_one_with_it_corrects(tmp_path: Path) -> None:
    import os
    import subprocess

    from conftest import FIRMWARE, micropython_exe

    f = bytearray(frames.encode_frame(P.K_TRAIN, 0, bytes(range(100)), fec=True))
    f[20] ^= 0x10  # one damaged payload byte: the CRC fails, the FEC corrects it
    (tmp_path / "link.py").write_text(LINK)
    got = {}
    for mode in ("fec", "crc-only"):
        p = subprocess.run(
            [micropython_exe(), str(tmp_path / "link.py"), mode],
            input=bytes(f),
            capture_output=True,
            timeout=60,
            env=dict(os.environ, MICROPYPATH=str(FIRMWARE)),
            check=False,
        )
        got[mode] = [ln for ln in p.stdout.decode(errors="replace").splitlines() if ln.startswith("KIND")]
    assert got["fec"] == [f"KIND {P.K_TRAIN} 0"]
    assert got["crc-only"] == ["KIND -2 1"]  # BAD: naked, the host resends it
