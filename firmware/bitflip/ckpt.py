# Checkpoints on the board's flash: weights, rule state and stream position, written so
# that a reset at any moment leaves a usable checkpoint (the previous or the new one).
#
# File: b'BFCK1\n' + JSON meta line + the raw state buffers in trainer.state() order.
# meta["crc"] is the CRC-32 of the buffers; a file that does not check out is ignored.
# Write path: the complete new file goes to NAME.tmp, then replaces NAME by rename (atomic
# on littlefs; FAT needs the old file removed first, so load() also accepts a complete
# NAME.tmp when NAME is missing).
import binascii
import os

try:
    import ujson as json
except ImportError:
    import json  # type: ignore[no-redef]  # the same module under another name

MAGIC = b"BFCK1\n"
NAME = "bitflip.ckpt"
BEST = "bitflip.best"  # the best model on validation (planes only), same format


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def save(meta, buffers, name=NAME):
    crc = 0
    size = 0
    for b in buffers:
        crc = binascii.crc32(b, crc)
        size += len(b)
    meta["crc"] = crc & 0xFFFFFFFF
    meta["size"] = size
    tmp = name + ".tmp"
    with open(tmp, "wb") as f:
        f.write(MAGIC)
        f.write(json.dumps(meta).encode())
        f.write(b"\n")
        for b in buffers:
            f.write(b)
    try:
        os.rename(tmp, name)
    except OSError:  # FAT: rename does not replace
        os.remove(name)
        os.rename(tmp, name)


def peek(name=NAME):
    # meta of the checkpoint load() would use (its data checked), or None
    chunk = bytearray(256)
    for path in (name, name + ".tmp"):
        if not _exists(path):
            continue
        try:
            with open(path, "rb") as f:
                if f.read(len(MAGIC)) != MAGIC:
                    continue
                meta = json.loads(f.readline())
                crc = 0
                size = 0
                while True:
                    n = f.readinto(chunk)
                    if not n:
                        break
                    crc = binascii.crc32(memoryview(chunk)[:n], crc)
                    size += n
                if crc & 0xFFFFFFFF == meta.get("crc") and size == meta.get("size"):
                    meta["path"] = path
                    return meta
        except (OSError, ValueError):
            continue
    return None


def load(buffers, name=NAME):
    # fill buffers from the checkpoint; returns its meta, or None if there is none valid
    for path in (name, name + ".tmp"):
        if not _exists(path):
            continue
        try:
            with open(path, "rb") as f:
                if f.read(len(MAGIC)) != MAGIC:
                    continue
                meta = json.loads(f.readline())
                crc = 0
                for b in buffers:
                    if f.readinto(b) != len(b):
                        raise ValueError("short")
                    crc = binascii.crc32(b, crc)
                if crc & 0xFFFFFFFF != meta.get("crc"):
                    raise ValueError("crc")
                meta["path"] = path
                return meta
        except (OSError, ValueError):
            continue
    return None
