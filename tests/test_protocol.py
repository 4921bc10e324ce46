"""The shared wire contract (protocol.py) and model spec (spec.py): frames through the
device's real parser, every payload codec round-trips on both sides, the device's copies
of the ack/nak offsets and constants agree with the contract, and the Trainer allocates
exactly what the spec says."""

from __future__ import annotations

import binascii
import json
import os
import random
import re
import subprocess
from pathlib import Path

import pytest
from bitflip.device import payload as PL
from bitflip.device import protocol as P
from bitflip.device import spec
from bitflip.link import frames
from conftest import CONFIGS, FIRMWARE, micropython_exe, run_micropython

# the device's frame parser (stream.Link) on stdin: every frame it accepts is echoed as
# "kind seq length crc32(payload)"
ECHO = """
import sys, binascii
from bitflip import protocol as P
from bitflip.stream import Link, NONE
link = Link(%d, 1, 10000)
while True:
    k = link.next_frame(5000)
    if k == NONE:
        break
    if k < 0:  # rejected (nak sent) or a duplicate
        continue
    n = link.length
    print(k, link.seq, n, binascii.crc32(link.buf[P.HEADER_SIZE:P.HEADER_SIZE + n]) & 0xFFFFFFFF)
    if k == P.K_EXIT:
        break
    if k != P.K_PING:
        link.accept()
"""


def _through_device(stream: bytes, mp: int = P.MAX_PAYLOAD) -> list[list[int]]:
    env = dict(os.environ, MICROPYPATH=f"{FIRMWARE}:.frozen")
    p = subprocess.run(
        [micropython_exe(), "-X", "heapsize=256K", "-c", ECHO % mp],
        input=stream,
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert p.returncode == 0, p.stderr.decode()
    out = []
    for line in p.stdout.splitlines():
        if P.parse_record(line) is None:  # acks and naks are records
            out.append([int(v) for v in line.split()])
    return out


def test_one_damaged_header_byte_is_repaired_by_the_crc() -> None:
    """A stream of equal-length frames, each but the first with one damaged byte in kind,
    check, seq or length (frames.header_repair): the device takes every one, with FEC or
    not; a damaged sync byte or two damaged header bytes still lose the frame."""
    rng = random.Random(7)
    stream, want, seq = b"", [], 0
    for fec in (False, True):
        for at in (2, 3, 4, 5, 6, 7, 2, 4, 6, 3):
            payload = rng.randbytes(96)
            frame = bytearray(frames.encode_frame(P.K_TRAIN, seq, payload, fec=fec))
            if seq:  # (the first frame sets the length the others are repaired to)
                frame[at] ^= rng.choice([1 << b for b in range(7)] + [rng.randint(1, 127)])
            stream += bytes(frame)
            want.append([P.K_TRAIN, seq, 96, binascii.crc32(payload)])
            seq += 1
    lost = bytearray(frames.encode_frame(P.K_TRAIN, seq, rng.randbytes(96)))
    lost[4] ^= 1
    lost[6] ^= 1  # two damaged bytes: not repaired
    stream += bytes(lost) + frames.encode_frame(P.K_EXIT, 0)
    assert _through_device(stream) == want + [[P.K_EXIT, 0, 0, 0]]
    assert frames.header_repair(P.K_TRAIN, 0x5A, 3, 500, 96) is None  # a length no single byte explains


def test_frames_round_trip_through_the_device_parser() -> None:
    rng = random.Random(1)
    stream, want, seq = b"", [], 0
    for n in (0, 1, 7, 100, P.MAX_PAYLOAD):
        for kind in sorted(P.KIND_NAMES):
            if kind in (P.K_PING, P.K_EXIT):
                continue
            payload = rng.randbytes(n)
            frame = frames.encode_frame(kind, seq, payload)
            assert len(frame) == P.HEADER_SIZE + n + P.CRC_SIZE
            stream += frame
            want.append([kind, seq, n, binascii.crc32(payload)])
            seq += 1
    stream += frames.encode_frame(P.K_EXIT, 0)
    want.append([P.K_EXIT, 0, 0, 0])
    assert _through_device(stream) == want


def test_the_device_rejects_every_damaged_byte_and_long_frames() -> None:
    frame = frames.encode_frame(P.K_TRAIN, 0, b"hello world")
    stream = b""
    for i in range(2, len(frame)):  # every byte after the sync, crc bytes included
        bad = bytearray(frame)
        bad[i] ^= 0x10
        stream += bytes(bad) + bytes(32)  # filler: a damaged length field waits for bytes
    stream += frames.encode_frame(P.K_TRAIN, 0, b"x" * 10)  # longer than max_payload 9
    stream += frames.encode_frame(P.K_TRAIN, 0, b"ok") + frames.encode_frame(P.K_EXIT, 0)
    got = _through_device(stream, mp=9)
    assert got[:-1] == [[P.K_TRAIN, 0, 2, binascii.crc32(b"ok")]]  # only the clean frame passes


def test_crc_is_zlib_crc32() -> None:
    frame = frames.encode_frame(P.K_PING, 0x1234, b"abc")
    assert int.from_bytes(frame[-4:], "little") == binascii.crc32(frame[2:-4])


def test_block_layout_is_word_aligned_and_fits() -> None:
    for row_bytes in (4, 8, 100, 296):
        n = PL.max_block_samples(P.MAX_PAYLOAD, row_bytes)
        _lab, rows, total = PL.block_layout(n, row_bytes)
        assert rows % 4 == 0 and total <= P.MAX_PAYLOAD
        assert PL.block_layout(n + 1, row_bytes)[2] > P.MAX_PAYLOAD
        payload = PL.encode_block(
            bytes(i % 10 for i in range(n)), b"".join(bytes([i % 256]) * row_bytes for i in range(n)), row_bytes
        )
        assert len(payload) == total and PL.block_count(payload, 0) == n and PL.block_row_bytes(payload, 0) == row_bytes
        assert payload[rows : rows + row_bytes] == bytes(row_bytes)  # row 0 right after the padded labels
    with pytest.raises(ValueError):
        PL.encode_block(b"\x01\x02", b"\x00" * 7, 4)


def test_payload_codecs_round_trip_on_host_and_device(tmp_path: Path) -> None:
    cases = {
        "mark": (PL.encode_mark(PL.MARK_EVAL, 513), [PL.MARK_EVAL, 513]),
        "ckpt": (PL.encode_ckpt(700, 123456), [700, 123456, PL.CKPT_SAVE]),
        "keep": (PL.encode_ckpt(3, 0, PL.CKPT_KEEP), [3, 0, PL.CKPT_KEEP]),
        "dump": (PL.encode_dump(3, "z", 70000, 1 << 20, 48), [3, 1, 70000, 1 << 20, 48]),
        "dump_t": (PL.encode_dump(0, "t", 0, 4, 2), [0, 2, 0, 4, 4]),  # chunks are at least 4 bytes
    }
    assert list(PL.decode_mark(cases["mark"][0], 0)) == cases["mark"][1]
    for name in ("ckpt", "keep"):
        assert list(PL.decode_ckpt(cases[name][0], 0, len(cases[name][0]))) == cases[name][1]
    assert list(PL.decode_dump(cases["dump"][0], 0, PL.DUMP_REQUEST) or ()) == cases["dump"][1]
    assert PL.decode_dump(b"", 0, 0) is None
    script = (
        "import json\nfrom bitflip import payload as PL\n"
        + "\n".join(f"{name} = bytearray({list(payload)!r})" for name, (payload, _) in cases.items())
        + """
print(json.dumps([list(PL.decode_mark(mark, 0)), list(PL.decode_ckpt(ckpt, 0, len(ckpt))),
                  list(PL.decode_ckpt(keep, 0, len(keep))), list(PL.decode_dump(dump, 0, len(dump))),
                  list(PL.decode_dump(dump_t, 0, len(dump_t))), PL.decode_dump(dump, 0, 0)]))
"""
    )
    got = json.loads(run_micropython(script, cwd=tmp_path))
    assert got == [cases["mark"][1], cases["ckpt"][1], cases["keep"][1], cases["dump"][1], cases["dump_t"][1], None]


def _consts(name: str) -> dict[str, int]:
    """The const() values of a firmware module (private ones are folded away at compile
    time, so they are read from the source)."""
    src = (FIRMWARE / "bitflip" / name).read_text()
    return {m.group(1): int(m.group(2), 0) for m in re.finditer(r"^(\w+) = const\((\w+)\)", src, re.MULTILINE)}


def test_the_device_copies_agree_with_the_contract() -> None:
    st, pool = _consts("stream.py"), _consts("pool.py")
    assert [st[n] for n in ("_ACK_SEQ_AT", "_ACK_SK_AT", "_ACK_CR_AT", "_ACK_BODY")] == [
        P.ACK_SEQ_AT,
        P.ACK_SK_AT,
        P.ACK_CR_AT,
        P.ACK_BODY,
    ]
    assert [pool["_SAT"], pool["_BINS"]] == [spec.SAT, spec.BINS]
    # the templates put the fields where the offsets say
    for tmpl in (P.ACK_TEMPLATE, P.NAK_TEMPLATE):
        assert tmpl[P.ACK_SEQ_AT : P.ACK_BODY] == b"0" * 10 and tmpl[P.ACK_BODY :] == b"*00000000\n"


def test_ack_lines_parse_and_every_damaged_one_is_refused() -> None:
    import binascii

    body = b"BA%04x%04x%02x" % (65535, 0x7FFF, 16)
    line = body + b"*%08x" % (binascii.crc32(body) & 0xFFFFFFFF)
    assert P.parse_record(line) == {P.F_EV: P.R_ACK, P.F_SEQ: 65535, P.F_HELD: 0x7FFF, P.F_CREDIT: 16}
    nak = b"BN%04x%04x%02x" % (7, 3, P.E_CRC)
    assert P.parse_record(nak + b"*%08x" % (binascii.crc32(nak) & 0xFFFFFFFF)) == {
        P.F_EV: P.R_NAK,
        P.F_SEQ: 7,
        P.F_HELD: 3,
        P.F_CODE: P.E_CRC,
    }
    rng = random.Random(4)
    for _ in range(3000):  # one to three damaged bytes: never misread as another ack
        bad = bytearray(line)
        for _ in range(rng.randint(1, 3)):
            bad[rng.randrange(len(bad))] ^= rng.randint(1, 255)
        if bytes(bad) != line:
            assert P.parse_record(bytes(bad)) in (None, False)
    assert P.parse_record(line[:-1]) is False and P.parse_record(line + b"0") is False


@pytest.mark.parametrize("cfg", CONFIGS, ids=["0h-binary", "1h-flip", "2h-pool"])
def test_the_trainer_allocates_what_the_spec_says(cfg: dict, tmp_path: Path) -> None:
    PL.check_config(cfg)
    out = run_micropython(
        f"""
import json
from bitflip.rule import Trainer
t = Trainer({cfg!r})
bufs = []
for i, l in enumerate(t.layers):
    bufs += [('layer%d.s' % i, len(l.s))] + ([('layer%d.%s' % (i, n), len(p)) for n, p in l.planes()[1:]])
    bufs += [('layer%d.pre' % i, 4 * len(l.pre)), ('layer%d.out' % i, len(l.out)), ('layer%d.dirs' % i, len(l.dirs)),
             ('layer%d.idx' % i, 2 * len(l.idx))]
bufs += [('x', len(t.x)), ('vote', 4 * len(t.vote)), ('fill', len(t.fill)), ('st', 4 * len(t.st))]
if t.hidden is not None and hasattr(t.hidden, 'pools'):
    for i, p in enumerate(t.hidden.pools):
        bufs += [('pool%d.t' % i, len(p.t)), ('pool%d.c' % i, len(p.c)), ('pool%d.pos' % i, len(p.pos)),
                 ('pool%d.hist' % i, 4 * len(p.hist))]
    bufs.append(('vdir', len(t.vdir)))
print(json.dumps({{'bufs': sorted(bufs), 'planes': [[i, n, len(p)] for i, n, p in t.planes()],
                  'state': [len(b) for b in t.state()], 'nbytes': t.nbytes()}}))
""",
        cwd=tmp_path,
    )
    got = json.loads(out)
    want = sorted([name, n] for _, name, n in spec.buffers(cfg))
    assert got["bufs"] == want
    assert got["planes"] == [list(p) for p in spec.planes(cfg)]
    assert got["state"] == [n for _, _, n in spec.planes(cfg)] + [n for _, n in spec.state(cfg)]
    assert got["nbytes"] == sum(n for _, _, n in spec.buffers(cfg))


def test_config_is_checked_against_the_written_keys() -> None:
    good = dict(CONFIGS[1])
    PL.check_config(good)
    for bad, msg in [
        ({**good, "colour": 1}, "unknown config key 'colour'"),
        ({k: v for k, v in good.items() if k != "seed"}, "config key 'seed' missing"),
        ({**good, "seed": "1"}, "'seed' must be int"),
        ({**good, "seed": True}, "'seed' must be int"),
        ({**good, "k": [2]}, "one k per layer"),
        ({**good, "classes": 5}, "P prototypes per class"),
        ({**CONFIGS[2], "pool": {"rows": 1}}, "pool.every"),
    ]:
        with pytest.raises(ValueError, match=msg):
            PL.check_config(bad)
    assert set(PL.CONFIG_KEYS) >= {"sizes", "classes", "weights", "seed", "k", "pool", "id", "resume"}


def test_the_device_refuses_a_bad_config_in_one_line(tmp_path: Path) -> None:
    cfg = json.dumps({**CONFIGS[0], "colour": 1}).encode()
    stream = frames.encode_frame(P.K_CONFIG, 0, cfg)
    env = dict(os.environ, MICROPYPATH=f"{FIRMWARE}:.frozen")
    p = subprocess.run(
        [micropython_exe(), "-c", "import bitflip.app as A\nA.main(2048, 1, 3000)"],
        input=stream,
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    recs = [P.parse_record(line) for line in p.stdout.splitlines()]
    errors = [r for r in recs if r and r["ev"] == P.R_ERROR]
    assert errors and errors[0]["code"] == P.E_CONFIG and "unknown config key 'colour'" in errors[0]["msg"]
    boot = next(r for r in recs if r and r["ev"] == P.R_BOOT)
    assert set(P.record_fields()[P.R_BOOT]) <= set(boot)
