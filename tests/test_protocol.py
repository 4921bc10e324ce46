"""The shared wire protocol, host side: frames round-trip, corruption is rejected."""

from __future__ import annotations

import binascii
import random

import pytest
from bitflip.device import protocol as P


def test_frame_round_trip() -> None:
    rng = random.Random(1)
    for n in (0, 1, 7, 100, P.MAX_PAYLOAD):
        payload = bytes(rng.randrange(256) for _ in range(n))
        for kind in P.KIND_NAMES:
            seq = rng.randrange(65536)
            frame = P.encode_frame(kind, seq, payload)
            assert len(frame) == P.HEADER_SIZE + n + P.CRC_SIZE
            k, flags, s, got, used = P.decode_frame(frame)
            assert (k, flags, s, got, used) == (kind, 0, seq, payload, len(frame))


def test_crc_covers_header_and_payload() -> None:
    frame = P.encode_frame(P.K_TRAIN, 5, b"hello world")
    for i in range(2, len(frame)):  # every byte after the sync, crc bytes included
        bad = bytearray(frame)
        bad[i] ^= 0x10
        with pytest.raises(ValueError) as e:
            P.decode_frame(bytes(bad))
        assert e.value.args[0] in (P.E_CRC, P.E_LEN), i


def test_length_and_sync_rejected() -> None:
    frame = bytearray(P.encode_frame(P.K_TRAIN, 1, b"x" * 10))
    with pytest.raises(ValueError) as e:
        P.decode_frame(bytes(frame), max_payload=9)
    assert e.value.args[0] == P.E_LEN
    with pytest.raises(ValueError):
        P.decode_frame(bytes(frame[:-1]))
    frame[0] = 0
    with pytest.raises(ValueError):
        P.decode_frame(bytes(frame))


def test_crc_is_zlib_crc32() -> None:
    frame = P.encode_frame(P.K_PING, 0x1234, b"abc")
    crc = int.from_bytes(frame[-4:], "little")
    assert crc == binascii.crc32(frame[2:-4])


def test_block_layout_is_word_aligned_and_fits() -> None:
    for row_bytes in (4, 8, 100, 296):
        n = P.max_block_samples(P.MAX_PAYLOAD, row_bytes)
        _lab, rows, total = P.block_layout(n, row_bytes)
        assert rows % 4 == 0 and total <= P.MAX_PAYLOAD
        assert P.block_layout(n + 1, row_bytes)[2] > P.MAX_PAYLOAD
        payload = P.encode_block([i % 10 for i in range(n)], [bytes([i % 256]) * row_bytes for i in range(n)], row_bytes)
        assert len(payload) == total and payload[0] | payload[1] << 8 == n
