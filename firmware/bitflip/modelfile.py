# The bitflip model file (.bfm): a trained model with everything needed to use it — the
# layers, every plane, the encoding (image steps and bit levels), the scaling of raw feature
# values, the class labels, the rule configuration and state (so the board can keep
# learning) and where it came from (job id, weights digest). ONE module reads and writes it
# on the board (bitflip.modelfile) and on the host (bitflip.device.modelfile): it is written
# in the common subset of CPython and MicroPython, like protocol.py. This module frames the
# file; the codes and each section's encoder and parser are in mfcodec.py. Layout (all numbers
# little-endian; docs/model-file.md has the full table):
#
#   header (16 bytes)  magic b"BFMF", version u16, header size u16 (16), file size u32,
#                      section count u16, reserved u16 (0)
#   sections           tag (4 ASCII bytes), payload length u32, payload, zero padding to a
#                      multiple of 4 (so every plane starts 4-byte aligned in the file)
#   trailer            CRC-32 (zlib polynomial) of every byte before it, u32
#
# Sections, in the order written (a reader needs CONF and LAYR before PLNS; it skips tags it
# does not know, so later versions may add sections):
#   META  JSON object: job id, weights digest, dataset, encoding text, writer, accuracy ...
#   CONF  JSON object: the training configuration (payload.CONFIG_KEYS)
#   LAYR  u16 layer count, u16 0; per layer: u8 layer type (LT_*), u8 weight kind
#         (spec.BINARY/BINARY2/TERNARY), u16 record size (>= 12), u32 inputs, u32 outputs,
#         then record size - 12 bytes of type-specific parameters (none for LT_DENSE)
#   ENCD  u32 raw features, u16 largest feature value, u8 image steps, u8 bit levels;
#         per step u8 code (ST_*), u8 0, u16 argument; per level a u16 threshold; then,
#         for an encoding that selects bits (mi:PCT), u32 count and a u16 per kept bit (its
#         index in the full bit row, ascending; absent: every bit is kept)
#   SCAL  u8 kind (SC_*), 3 zero bytes, u32 features; SC_MINMAX_INT: per feature i32 low,
#         i32 span; SC_MINMAX_FLOAT: per feature f64 low, f64 span
#   LABL  u16 count; per class u8 length, that many UTF-8 bytes
#   STAT  u32 step, u16 classes, u16 hidden pools; the prototypes still to fill per class
#         (u8 each, padded to 4); per pool rule layer u16 window position, u16 0
#   PLNS  u16 plane count, u16 0; per plane u8 layer, u8 name (ASCII: s c z t), u16 0,
#         u32 size, size bytes (spec.planes order; the layout of spec.py)
# Anything wrong (magic, version, sizes, CRC, a short file) raises ValueError with one line.
import binascii
import struct

from .mfcodec import (
    LAYER_TYPES,
    LT_DENSE,
    REQUIRED,
    SC_MINMAX_FLOAT,
    SC_MINMAX_INT,
    SC_NONE,
    SC_UNIT,
    SCALE_NAMES,
    ST_CROP,
    ST_DESKEW,
    ST_POOL,
    STEP_CODES,
    STEP_NAMES,
    _PARSE,
    _bad,
    _pad,
    _u,
    sections,
)

__all__ = (  # the file's API and its codes (from mfcodec), as readers use them: MF.write, MF.SC_NONE ...
    "LAYER_TYPES",
    "LT_DENSE",
    "SCALE_NAMES",
    "SC_MINMAX_FLOAT",
    "SC_MINMAX_INT",
    "SC_NONE",
    "SC_UNIT",
    "STEP_CODES",
    "STEP_NAMES",
    "ST_CROP",
    "ST_DESKEW",
    "ST_POOL",
    "SUFFIX",
    "crc_of",
    "load",
    "read",
    "save",
    "sections",
    "size_of",
    "write",
)

MAGIC = b"BFMF"
VERSION = 1
HEADER = 16
SUFFIX = ".bfm"

_CHUNK = 512


# --- writing --------------------------------------------------------------------------------
class _Out:
    # a file that keeps the running CRC and size of what went through it
    def __init__(self, f):
        self.f = f
        self.crc = 0
        self.n = 0

    def write(self, b):
        self.f.write(b)
        self.crc = binascii.crc32(b, self.crc)
        self.n += len(b)


def size_of(info, planes):
    n = HEADER + 4
    for _, p in sections(info):
        n += 8 + len(p) + _pad(len(p))
    n += 8 + 4
    for _, _, buf in planes:
        n += 8 + len(buf)
    return n


def write(f, info, planes):
    """Write the model: info (dict: meta, cfg, layers, encoding, scaling, labels, state) and
    planes [(layer, name, buffer)] in spec.planes order. Returns the bytes written."""
    secs = sections(info)
    total = size_of(info, planes)
    o = _Out(f)
    o.write(MAGIC + struct.pack("<HHIHH", VERSION, HEADER, total, len(secs) + 1, 0))
    for tag, p in secs:
        o.write(tag + struct.pack("<I", len(p)))
        o.write(p)
        o.write(bytes(_pad(len(p))))
    n = 4
    for _, _, buf in planes:
        if len(buf) & 3:
            raise ValueError("plane size %d is not a multiple of 4" % len(buf))
        n += 8 + len(buf)
    o.write(b"PLNS" + struct.pack("<IHH", n, len(planes), 0))
    for layer, name, buf in planes:
        o.write(struct.pack("<BBHI", layer, ord(name), 0, len(buf)))
        o.write(buf)
    f.write(struct.pack("<I", o.crc & 0xFFFFFFFF))
    return o.n + 4


def save(path, info, planes):
    """Write to path atomically: the whole file to path.tmp, then renamed over path."""
    import os

    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        write(f, info, planes)
    try:
        os.rename(tmp, path)
    except OSError:  # FAT: rename does not replace
        os.remove(path)
        os.rename(tmp, path)


# --- reading --------------------------------------------------------------------------------
class _In:
    def __init__(self, f, total):
        self.f = f
        self.crc = 0
        self.n = 0
        self.total = total

    def read(self, n):
        if self.n + n > self.total - 4:
            raise _bad("a section runs past the end of the file")
        b = self.f.read(n)
        if b is None or len(b) != n:
            raise _bad("truncated (%d of %d bytes)" % (self.n + (len(b) if b else 0), self.total))
        self.crc = binascii.crc32(b, self.crc)
        self.n += n
        return b

    def readinto(self, buf):
        n = len(buf)
        if self.n + n > self.total - 4:
            raise _bad("a plane runs past the end of the file")
        got = self.f.readinto(buf)
        if got != n:
            raise _bad("truncated (%d of %d bytes)" % (self.n + (got or 0), self.total))
        self.crc = binascii.crc32(buf, self.crc)
        self.n += n

    def skip(self, n):
        while n > 0:
            k = n if n < _CHUNK else _CHUNK
            self.read(k)
            n -= k


def read(f, alloc=None, size=None):
    """Read a model file from f. alloc(info) returns the buffers to fill, [(layer, name,
    buffer)] in file order (e.g. a Trainer's planes()); without alloc the planes are read
    into new bytearrays. Returns info with "planes" = that list. size: the file's length
    when known (a longer header claim is reported as truncation before any plane is read)."""
    head = f.read(HEADER)
    if head is None or len(head) < HEADER:
        raise _bad("too short for a header (%d bytes)" % (len(head) if head else 0))
    if head[:4] != MAGIC:
        raise _bad("not a bitflip model (magic %r)" % bytes(head[:4]))
    version, hsize, total, n_sec, _r = struct.unpack_from("<HHIHH", head, 4)
    if version != VERSION:
        raise _bad("format version %d (this reader knows %d)" % (version, VERSION))
    if hsize != HEADER or total < HEADER + 4:
        raise _bad("header size %d / file size %d" % (hsize, total))
    if size is not None and size != total:
        if size < total:
            raise _bad("truncated (%d of %d bytes)" % (size, total))
        raise _bad("%d bytes after the end of the model" % (size - total))
    r = _In(f, total)
    r.crc = binascii.crc32(head)
    r.n = HEADER
    info: dict = {"meta": {}}
    planes = None
    for _ in range(n_sec):
        tag = r.read(4)
        length = _u("<I", r.read(4))[0]
        if tag == b"PLNS":
            planes = _read_planes(r, info, alloc, length)
            continue
        if tag in _PARSE:
            key, parse = _PARSE[tag]
            info[key] = parse(r.read(length))
        else:
            r.skip(length)  # a section of a later version: skipped, still under the CRC
        r.skip(_pad(length))
    if r.n != total - 4:
        raise _bad("%d bytes of the file are not in any section" % (total - 4 - r.n))
    b = f.read(4)
    if b is None or len(b) != 4:
        raise _bad("truncated (no CRC)")
    if struct.unpack("<I", b)[0] != r.crc & 0xFFFFFFFF:
        raise _bad("CRC mismatch (the file is damaged)")
    if planes is None:
        raise _bad("no planes")
    info["planes"] = planes
    return info


def _read_planes(r, info, alloc, length):
    for key in REQUIRED:
        if key not in info:
            raise _bad("section for %s missing before the planes" % key)
    start = r.n
    n = _u("<HH", r.read(4))[0]
    dest = alloc(info) if alloc is not None else None
    if dest is not None and len(dest) != n:
        raise _bad("%d planes, the model needs %d" % (n, len(dest)))
    out = []
    for i in range(n):
        layer, name, _z, size = _u("<BBHI", r.read(8))
        name = chr(name)
        if dest is not None:
            dl, dn, buf = dest[i]
            if (dl, dn, len(buf)) != (layer, name, size):
                raise _bad(
                    "plane %d is layer%d.%s of %d bytes, the model needs layer%d.%s of %d bytes"
                    % (i, layer, name, size, dl, dn, len(buf))
                )
        else:
            buf = bytearray(size)
        r.readinto(buf)
        out.append((layer, name, buf))
    if r.n - start != length:
        raise _bad("the plane section is %d bytes, its header says %d" % (r.n - start, length))
    return out


def load(path, alloc=None):
    import os

    try:
        size = os.stat(path)[6]
    except OSError:
        raise ValueError("model file %s: no such file" % path)
    with open(path, "rb") as f:
        return read(f, alloc, size)


def crc_of(path):
    # CRC-32 of the whole file (what push/pull compare when the board has no hashlib)
    crc = 0
    buf = bytearray(_CHUNK)
    mv = memoryview(buf)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            crc = binascii.crc32(mv[:n], crc)
    return crc & 0xFFFFFFFF
