# The payloads of bitflip's frames: an encode/decode pair for each (the host encodes,
# the device decodes allocation-free) and the CONFIG schema both sides validate against.
# With protocol.py (framing, kinds, records, acks) this is the whole wire contract; both
# are in the common subset of CPython and MicroPython, imported by the device as
# bitflip.payload and by the host as bitflip.device.payload.
try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[misc]  # an identity here, typed in micropython's stub
        return x


from .protocol import host_only

# MARK payload values: which pass just ended
MARK_EPOCH = const(1)
MARK_EVAL = const(2)  # the end of an evaluation on the test split (read once, at the end)
MARK_VAL = const(3)  # the end of an evaluation on the validation split

BLOCK_HEADER = const(4)  # u16 count, u16 row_bytes


def u16(buf, off):
    return buf[off] | (buf[off + 1] << 8)


def u32(buf, off):
    # values the protocol carries stay below 2**30 (small ints on every port)
    return buf[off] | (buf[off + 1] << 8) | (buf[off + 2] << 16) | (buf[off + 3] << 24)


@host_only
def _le(v, n):
    return bytes((v >> (8 * i)) & 0xFF for i in range(n))


# --- TRAIN / EVAL: a sample block -------------------------------------------------------------
# u16 count, u16 row_bytes, count label bytes padded to a multiple of 4, then count rows of
# row_bytes (a multiple of 4: packed little-endian u32 words).
@host_only
def block_layout(count, row_bytes):
    """(labels offset, rows offset, total payload bytes) of a sample block."""
    lab_pad = (count + 3) & ~3
    return BLOCK_HEADER, BLOCK_HEADER + lab_pad, BLOCK_HEADER + lab_pad + count * row_bytes


@host_only
def max_block_samples(max_payload, row_bytes):
    """Largest sample count whose block fits max_payload."""
    n = (max_payload - BLOCK_HEADER) // (row_bytes + 1)
    while n > 0 and block_layout(n, row_bytes)[2] > max_payload:
        n -= 1
    return n


@host_only
def encode_block(labels, rows, row_bytes):
    """Block payload from labels (bytes or ints) and rows (the rows' bytes back to back)."""
    count = len(labels)
    lab_off, row_off, _total = block_layout(count, row_bytes)
    if len(rows) != count * row_bytes:
        raise ValueError("rows must be count * row_bytes bytes")
    return _le(count, 2) + _le(row_bytes, 2) + bytes(labels) + bytes(row_off - lab_off - count) + bytes(rows)


def block_count(buf, p):
    """Samples in the block at buf[p:] (allocation-free: the device reads blocks heap-locked)."""
    return u16(buf, p)


def block_row_bytes(buf, p):
    return u16(buf, p + 2)


# --- MARK: end of an epoch or of an evaluation pass -------------------------------------------
@host_only
def encode_mark(mark, value):
    return bytes((mark,)) + _le(value, 2)


def decode_mark(buf, p):
    """(mark, value)"""
    return buf[p], u16(buf, p + 1)


# --- CKPT: save a checkpoint at this stream position ------------------------------------------
# u16 epoch, u32 index, optional u8 op: CKPT_SAVE (the default) saves the training state at
# this stream position; CKPT_KEEP keeps the model as the best seen (its planes, on flash);
# CKPT_RESTORE puts the kept model back (before the final evaluation and the weights dump)
CKPT_SAVE = const(0)
CKPT_KEEP = const(1)
CKPT_RESTORE = const(2)


@host_only
def encode_ckpt(epoch, index, op=0):
    return _le(epoch, 2) + _le(index, 4) + (bytes((op,)) if op else b"")


def decode_ckpt(buf, p, n):
    """(epoch, index, op)"""
    return u16(buf, p), u32(buf, p + 2), buf[p + 6] if n > 6 else CKPT_SAVE


# --- DUMP: the weights as "weights" records ----------------------------------------------------
# no payload: every plane in DUMP_CHUNK-byte chunks; else u8 layer, u8 plane (0 "s", 1 the
# second plane: "c"/"z" of 2-bit weights, 2 "t" thresholds), u32 offset, u32 length,
# u16 chunk: that byte range only (the host asks again, in smaller chunks, for what arrived
# damaged on a noisy line).
DUMP_CHUNK = const(384)
DUMP_REQUEST = const(12)
PLANE_SLOTS = {"s": 0, "c": 1, "z": 1, "t": 2}


@host_only
def encode_dump(layer, plane, off, size, chunk):
    return bytes((layer, PLANE_SLOTS[plane])) + _le(off, 4) + _le(size, 4) + _le(chunk, 2)


def decode_dump(buf, p, n):
    """None (everything) or (layer, plane slot, offset, length, chunk)."""
    if n < DUMP_REQUEST:
        return None
    return buf[p], buf[p + 1], u32(buf, p + 2), u32(buf, p + 6), max(4, u16(buf, p + 10))


# --- CONFIG -------------------------------------------------------------------------------------
# CONFIG: a JSON object; key -> (type, required). Both sides check it with check_config
# (the host before sending, the device on receipt: E_CONFIG).
CONFIG_KEYS = {
    "sizes": (list, True),  # layer widths: input bits, hidden widths, classes x prototypes per class
    "classes": (int, True),  # number of classes
    "weights": (str, True),  # top-layer weight kind: binary, binary2 or ternary (spec.KINDS)
    "seed": (int, True),  # seed of every random bit (weights init, flip masks)
    "window": (int, True),  # hidden units this close to their threshold may be moved by votes
    "margin": (int, True),  # >= 0: a correct winner also pushes a rival within margin down
    "k": (list, True),  # flip density exponent per layer: each flip candidate kept with 1/2**k
    "ks": (int, False),  # binary2: confidence gain density exponent
    "anneal": (int, False),  # from this epoch (1-based) on: top k + 1 and pool tau + tau_step per epoch
    "epoch": (int, False),  # training samples per epoch (anneal, pool flips halving)
    "pool": (dict, False),  # pool rule for hidden layers: rows, every, tau, flips, near, tau_step
    "cores": (int, False),  # 1: one core; 2: split wide layers over a second core (default: rp2 only)
    "meter": (dict, False),  # INA219/INA226 power meter: chip, i2c, sda, scl, addr, shunt_ohms
    "id": (str, False),  # job id: a checkpoint is resumed only by the same id
    "resume": (bool, False),  # continue from the checkpoint of this job id if the board has one
}
POOL_KEYS = ("rows", "every", "tau", "flips", "near")


def check_config(cfg):
    """Raise ValueError naming the first problem of a CONFIG object."""
    if not isinstance(cfg, dict):
        raise ValueError("config is not an object")
    for key in cfg:
        if key not in CONFIG_KEYS:
            raise ValueError("unknown config key '%s'" % key)
    for key, (typ, required) in CONFIG_KEYS.items():
        if key not in cfg:
            if required:
                raise ValueError("config key '%s' missing" % key)
            continue
        v = cfg[key]
        if typ is int and isinstance(v, bool) or not isinstance(v, typ):
            raise ValueError("config key '%s' must be %s" % (key, typ.__name__))
    sizes = cfg["sizes"]
    if len(sizes) < 2 or len(cfg["k"]) != len(sizes) - 1:
        raise ValueError("config needs >= 2 sizes and one k per layer")
    for v in sizes + cfg["k"]:
        if not isinstance(v, int) or v < 0:
            raise ValueError("sizes and k must be non-negative integers")
    if sizes[-1] % cfg["classes"]:
        raise ValueError("the last layer must hold P prototypes per class")
    if "pool" in cfg:
        for key in POOL_KEYS:
            if not isinstance(cfg["pool"].get(key), int):
                raise ValueError("config pool.%s must be an integer" % key)
