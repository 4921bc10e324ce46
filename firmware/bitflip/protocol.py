# The bitflip wire protocol: the ONE definition of frames and records, imported by the
# device (as bitflip.protocol) and by the host (as bitflip.device.protocol). It is written in
# the common subset of CPython and MicroPython so the two sides can never drift.
#
# host -> device: binary frames
#   offset 0  'B' 'F'          sync bytes (resynchronise after garbage)
#          2  kind   u8        K_* below
#          3  flags  u8        reserved, 0
#          4  seq    u16 LE    per-link sequence number (wraps at 65536)
#          6  length u16 LE    payload length, <= the device's announced max payload
#          8  payload
#   8+length  crc32  u32 LE    CRC-32 (zlib polynomial) of bytes 2 .. 8+length
#
# device -> host: text lines 'BF {json} *cccccccc\n', one record per event ("ev" names it),
# cccccccc = CRC-32 of the JSON text in hex, so a corrupted record is dropped, never
# misread. Acknowledgements are records too; they are written from a preallocated
# template with space-padded numbers (valid JSON) so the device never allocates per frame.
# A record answering a frame carries that frame's "seq"; the device replays the answer
# to its last frame when the host resends it (the answer was lost).
try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


VERSION = const(1)  # bump on any incompatible change; checked at connect

SYNC0 = const(0x42)  # 'B'
SYNC1 = const(0x46)  # 'F'
HEADER_SIZE = const(8)
CRC_SIZE = const(4)
MAX_PAYLOAD = const(2048)  # device buffer; boards may ask for less (UART links)

# frame kinds (host -> device)
K_CONFIG = const(1)  # JSON: model, rule, seed ... ; device allocates and answers "config"
K_TRAIN = const(2)  # sample block, learn from each sample in order
K_EVAL = const(3)  # sample block, predict and count only
K_MARK = const(4)  # u8 mark, u16 value: epoch end / eval end -> device emits a record
K_DONE = const(5)  # finish: device emits "done" with the weights digest and leaves the loop
K_DUMP = const(6)  # device emits its weights as "weights" records
K_PING = const(7)  # unsequenced probe: answered by a "pong" record with the expected seq
K_CKPT = const(8)  # u16 epoch, u32 index: save a checkpoint at this stream position
K_EXIT = const(9)  # unsequenced: leave the app loop (back to the REPL)

KIND_NAMES = {
    K_CONFIG: "config",
    K_TRAIN: "train",
    K_EVAL: "eval",
    K_MARK: "mark",
    K_DONE: "done",
    K_DUMP: "dump",
    K_PING: "ping",
    K_CKPT: "ckpt",
    K_EXIT: "exit",
}

MARK_EPOCH = const(1)
MARK_EVAL = const(2)

# sample block payload: u16 count, u16 row_bytes, count label bytes padded to a multiple
# of 4, then count rows of row_bytes (a multiple of 4: packed little-endian u32 words).
BLOCK_HEADER = const(4)

# error codes carried by "nak"/"error" records
E_CRC = const(1)  # checksum mismatch
E_SEQ = const(2)  # not the expected sequence number (gap)
E_LEN = const(3)  # length field larger than the buffer
E_KIND = const(4)  # unknown frame kind
E_TIMEOUT = const(5)  # a frame started but did not complete in time
E_PAYLOAD = const(6)  # payload inconsistent with the configuration
E_CONFIG = const(7)  # configuration rejected
E_MEMORY = const(8)  # allocation failed
E_STATE = const(9)  # frame not valid in this state (e.g. TRAIN before CONFIG)

ERROR_NAMES = {
    E_CRC: "bad crc",
    E_SEQ: "unexpected sequence number",
    E_LEN: "frame too long",
    E_KIND: "unknown frame kind",
    E_TIMEOUT: "frame timed out",
    E_PAYLOAD: "bad payload",
    E_CONFIG: "bad configuration",
    E_MEMORY: "out of memory",
    E_STATE: "frame not valid now",
}

RECORD_PREFIX = b"BF "
RECORD_CRC_SEP = b" *"

# Record names (the "ev" field). The host treats unknown names as log lines.
R_BOOT = "boot"  # firmware started: version, protocol, platform, heap
R_READY = "ready"  # buffers allocated, Ctrl-C off: host may stream; max payload
R_ACK = "ack"  # frame seq accepted; credit = frames the device can take now
R_NAK = "nak"  # frame rejected; seq = the sequence number the device expects
R_CONFIG = "config"  # model allocated: layers, weight bytes, working bytes, heap free
R_PROGRESS = "progress"
R_EPOCH = "epoch"
R_EVAL = "eval"
R_WEIGHTS = "weights"
R_DONE = "done"
R_ERROR = "error"
R_CKPT = "ckpt"
R_PONG = "pong"  # answer to a ping: "expect" = the sequence number of the next new frame


def record_line(text):
    """bytes of one record line for JSON text (bytes)."""
    import binascii

    return b"%s%s%s%08x\n" % (RECORD_PREFIX, text, RECORD_CRC_SEP, binascii.crc32(text) & 0xFFFFFFFF)


def parse_record(line):
    """A record line (without its newline) -> dict; None if it is not a record line;
    False if it looks like a record but its checksum or JSON is bad (corrupted)."""
    import binascii
    import json

    line = line.rstrip(b"\r")
    if not line.startswith(RECORD_PREFIX):
        return None
    i = line.rfind(RECORD_CRC_SEP)
    text = line[len(RECORD_PREFIX) : i]
    crc = line[i + len(RECORD_CRC_SEP) :]
    try:
        if i < 0 or len(crc) != 8 or int(crc, 16) != binascii.crc32(text) & 0xFFFFFFFF:
            return False
        rec = json.loads(text)
    except ValueError:
        return False
    return rec if isinstance(rec, dict) else False


def encode_frame(kind, seq, payload=b"", flags=0):
    """Build one frame (host side, allocates freely)."""
    import binascii

    n = len(payload)
    if n > 0xFFFF:
        raise ValueError("payload too long")
    head = bytes(
        (SYNC0, SYNC1, kind & 0xFF, flags & 0xFF, seq & 0xFF, (seq >> 8) & 0xFF, n & 0xFF, n >> 8)
    )
    body = head + bytes(payload)
    crc = binascii.crc32(body[2:]) & 0xFFFFFFFF
    return body + bytes((crc & 0xFF, (crc >> 8) & 0xFF, (crc >> 16) & 0xFF, crc >> 24))


def decode_frame(buf, max_payload=MAX_PAYLOAD):
    """Parse one complete frame at the start of buf -> (kind, flags, seq, payload, used).
    Raises ValueError(code) with an E_* code. Used by host tests and tools; the device
    parses incrementally in bitflip.stream with the same rules."""
    import binascii

    if len(buf) < HEADER_SIZE + CRC_SIZE:
        raise ValueError(E_LEN)
    if buf[0] != SYNC0 or buf[1] != SYNC1:
        raise ValueError(E_PAYLOAD)
    kind, flags = buf[2], buf[3]
    seq = buf[4] | (buf[5] << 8)
    n = buf[6] | (buf[7] << 8)
    if n > max_payload:
        raise ValueError(E_LEN)
    end = HEADER_SIZE + n
    if len(buf) < end + CRC_SIZE:
        raise ValueError(E_LEN)
    got = buf[end] | (buf[end + 1] << 8) | (buf[end + 2] << 16) | (buf[end + 3] << 24)
    if got != binascii.crc32(bytes(buf[2:end])) & 0xFFFFFFFF:
        raise ValueError(E_CRC)
    if kind not in KIND_NAMES:
        raise ValueError(E_KIND)
    return kind, flags, seq, bytes(buf[HEADER_SIZE:end]), end + CRC_SIZE


def block_layout(count, row_bytes):
    """(labels offset, rows offset, total payload bytes) of a sample block."""
    lab_pad = (count + 3) & ~3
    return BLOCK_HEADER, BLOCK_HEADER + lab_pad, BLOCK_HEADER + lab_pad + count * row_bytes


def max_block_samples(max_payload, row_bytes):
    """Largest sample count whose block fits max_payload."""
    n = (max_payload - BLOCK_HEADER) // (row_bytes + 1)
    while n > 0 and block_layout(n, row_bytes)[2] > max_payload:
        n -= 1
    return n


def encode_block(labels, rows, row_bytes):
    """Sample block payload from labels (ints) and rows (bytes-like, row_bytes each)."""
    count = len(labels)
    lab_off, row_off, total = block_layout(count, row_bytes)
    out = bytearray(total)
    out[0] = count & 0xFF
    out[1] = count >> 8
    out[2] = row_bytes & 0xFF
    out[3] = row_bytes >> 8
    for i in range(count):
        out[lab_off + i] = labels[i]
    for i in range(count):
        r = rows[i]
        if len(r) != row_bytes:
            raise ValueError("row length")
        out[row_off + i * row_bytes : row_off + (i + 1) * row_bytes] = r
    return bytes(out)
