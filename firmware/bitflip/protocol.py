# The bitflip wire protocol: frames, their kinds, the records and their fields, the ack/nak
# templates — imported by the device (as bitflip.protocol) and by the host (as
# bitflip.device.protocol). What each frame carries (an encode/decode pair per payload) and
# the CONFIG keys are in payload.py; the two files are the whole contract between host and
# board. Both are written in the common subset of CPython and MicroPython so the two sides
# can never drift. The model those frames train is described in spec.py.

# host -> device: binary frames
#   offset 0  'B' 'F'          sync bytes (resynchronise after garbage)
#          2  kind   u8        K_* below
#          3  check  u8        header check of kind, seq, length (header_check); 0 = none
#          4  seq    u16 LE    per-link sequence number (wraps at 65536)
#          6  length u16 LE    payload length, <= the device's announced max payload
#          8  payload
#   8+length  crc32  u32 LE    CRC-32 (zlib polynomial) of bytes 2 .. 8+length
#
# A frame whose kind has FEC_FLAG set carries after its crc32 FEC_CHECK check bytes per
# FEC_SEG bytes of payload+crc32 (frames.fec_trailer): systematic Reed-Solomon over GF(2^8)
# (poly 0x11D, roots 2^1 .. 2^4). The device corrects up to two damaged bytes per segment
# with them when the CRC fails (fec.py), and takes the frame if the CRC then holds. The
# decoder and its tables are loaded after the model is built, if room is left (the config
# record's F_FEC says); without them a FEC frame is checked by its CRC alone.
#
# The header check lets the device reject a damaged header (a wrong length above all) at
# once instead of swallowing the next frames as payload. Frames that fit a slot
# (slot_bytes) may arrive out of order after a damaged one: the device keeps them (up to
# sr_slots(max_payload)) and processes them once the gap is filled (selective repeat); its
# acks and naks say which it holds ("sk": bit i = frame expect + i).
#
# device -> host: text lines 'BF {json} *cccccccc\n', one record per event ("ev" names it),
# cccccccc = CRC-32 of the JSON text in hex, so a corrupted record is dropped, never
# misread. Acknowledgements are compact 22-byte lines instead ('BA'/'BN', hex fields, the
# CRC-32: ACK_TEMPLATE below), written from a preallocated template so the device never
# allocates per frame; the host reads them as records too.
# A record answering a frame carries that frame's "seq"; the device replays the answer
# to its last frame when the host resends it (the answer was lost).
try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[misc]  # an identity here, typed in micropython's stub
        return x


def host_only(f):
    # marks what only the host uses, as a decorator or around a module-level value:
    # `bitflip deploy` leaves those definitions (and this function) out of the board's build
    # (deploy.device_source), so the board's heap does not carry them
    return f


VERSION = const(5)  # bump on any incompatible change; checked at connect
# 5: FEC check bytes are Reed-Solomon, 4 per 64 bytes (2 damaged bytes corrected), not 2 per 32;
#    512-byte slots on boards with max payload >= BIG_SLOT_AT (slot_bytes)
# 4: compact ack/nak lines (ACK_TEMPLATE)
# 2: header check byte, selective repeat (slots, "sk" in acks/naks), cumulative deferred acks

SYNC0 = const(0x42)  # 'B'
SYNC1 = const(0x46)  # 'F'
HEADER_SIZE = const(8)
CRC_SIZE = const(4)
MAX_PAYLOAD = const(2048)  # device buffer; boards may ask for less (UART links)
SLOT_BYTES = const(128)  # frames up to this size (header + payload + crc) may arrive out of order ...
BIG_SLOT_BYTES = const(512)  # ... or up to this size on a board whose max payload is >= BIG_SLOT_AT
BIG_SLOT_AT = const(2048)
MAX_SLOTS = const(15)  # at most this many held out-of-order frames ("sk" has 16 bits)
FEC_FLAG = const(0x80)  # kind | FEC_FLAG: check bytes follow the crc32
FEC_SEG = const(64)  # bytes of payload+crc32 per FEC_CHECK check bytes
FEC_CHECK = const(4)  # check bytes per segment: two damaged bytes in it are corrected


@host_only
def fec_size(n):
    """Bytes of check bytes after the crc32 of a FEC frame with n payload bytes."""
    return FEC_CHECK * ((n + CRC_SIZE + FEC_SEG - 1) // FEC_SEG)


def slot_bytes(max_payload):
    """The longest frame (header + payload + crc) a device with this max payload holds out
    of order: 512 on boards with a 2 KiB buffer (3 slots), 128 on smaller ones. On a noisy
    line frames are about as long as a slot (link/sizing.py); with the FEC's two corrected
    bytes per 64 a 444-byte frame is lost ~19 % of the time at 1 % of bytes damaged, and a
    quarter of the frames per sample cut the fixed work per frame of both sides, which is
    what a noisy line's time goes to (measured: docs/results/faults.md)."""
    return BIG_SLOT_BYTES if max_payload >= BIG_SLOT_AT else SLOT_BYTES


@host_only
def sr_slots(max_payload):
    """How many out-of-order frames a device with this max payload holds: its frame buffer
    cut into slot_bytes(max_payload) pieces, the first one being where frames are processed."""
    n = (HEADER_SIZE + max_payload + CRC_SIZE + 3) & ~3
    return max(0, min(MAX_SLOTS, n // slot_bytes(max_payload) - 1))


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

KIND_NAMES = host_only(
    {
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
)

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
E_HEADER = const(10)  # header check mismatch (kind, seq or length damaged)

ERROR_NAMES = host_only(
    {
        E_CRC: "bad crc",
        E_SEQ: "unexpected sequence number",
        E_LEN: "frame too long",
        E_KIND: "unknown frame kind",
        E_TIMEOUT: "frame timed out",
        E_PAYLOAD: "bad payload",
        E_CONFIG: "bad configuration",
        E_MEMORY: "out of memory",
        E_STATE: "frame not valid now",
        E_HEADER: "bad header",
    }
)

RECORD_PREFIX = b"BF "
RECORD_CRC_SEP = b" *"

# Record names (the "ev" field). The host treats unknown names as log lines.
R_BOOT = "boot"  # firmware started: version, protocol, platform, native arch, heap
R_READY = "ready"  # buffers allocated, Ctrl-C off: host may stream; max payload
R_ACK = "ack"  # every frame up to seq processed; credit = frames the device can take; "sk" held ones
R_NAK = "nak"  # frame rejected; seq = the sequence number the device expects; "sk" held ones
R_CONFIG = "config"  # model allocated: weight bytes, working bytes, heap free before/after
R_PROGRESS = "progress"
R_EPOCH = "epoch"
R_EVAL = "eval"
R_WEIGHTS = "weights"
R_DONE = "done"
R_ERROR = "error"
R_CKPT = "ckpt"
R_PONG = "pong"  # answer to a ping: "expect" = the sequence number of the next new frame

# Record fields. Every record carries F_EV; a record answering a frame carries F_SEQ.
F_EV = "ev"
F_SEQ = "seq"
F_CREDIT = "cr"
F_HELD = host_only("sk")  # acks/naks: bit i set = frame (the expected one + i) received and held
F_CODE = "code"
F_MSG = "msg"
F_EXPECT = "expect"
F_PROTO = "proto"
F_MAX_PAYLOAD = "mp"
F_VERSION = "version"
F_PLATFORM = "platform"
F_MPY = "mpy"  # sys.implementation._mpy: .mpy version and native arch (the host names it)
F_MICROPYTHON = "micropython"  # MicroPython release, e.g. [1, 28, 0]
F_HEAP_FREE = "heap_free"
F_HEAP_BEFORE = "heap_before"  # free heap right before the model was built
F_CKPT = "ckpt"
F_EPOCH = "epoch"
F_INDEX = "index"
F_STEP = "step"
F_ID = "id"
F_SEEN = "seen"
F_SPLIT = "split"  # eval records: "val" or "test"
F_OP = "op"  # ckpt records: CKPT_SAVE, CKPT_KEEP or CKPT_RESTORE
F_CORRECT = "correct"
F_BUSY_US = "busy_us"
F_WALL_US = "wall_us"
F_WEIGHT_BYTES = "weight_bytes"
F_WORKING_BYTES = "working_bytes"
F_RESUMED = "resumed"
F_FEC = "fec"  # 1: the device corrects FEC frames (Link.enable_fec: only if room is left after the model)
F_LAYER = "layer"
F_PLANE = "plane"
F_OFF = "off"
F_SIZE = "size"
F_B64 = "b64"
F_DIGEST = "weights_sha256"
F_RX_FRAMES = "rx_frames"
F_RX_BAD = "rx_bad"
F_RX_DUP = "rx_dup"
F_MS = "ms"
F_ENERGY_UJ = "energy_uj"
EVAL_PREFIX = "eval_"  # eval records carry the work counters of evaluation as eval_<counter>


@host_only
def record_fields():
    """The fields of each record (the epoch record adds the spec.COUNTERS totals and, with a
    power meter, F_ENERGY_UJ; the eval record adds EVAL_PREFIX + counter for the same)."""
    return {
        R_BOOT: (F_VERSION, F_PROTO, F_PLATFORM, F_MPY, F_MICROPYTHON, F_HEAP_FREE),  # + F_CKPT if one exists
        R_READY: ("max_payload", "credit"),
        R_ACK: (F_SEQ, F_HELD, F_CREDIT),
        R_NAK: (F_SEQ, F_HELD, F_CODE),
        R_CONFIG: (F_WEIGHT_BYTES, F_WORKING_BYTES, F_HEAP_BEFORE, F_HEAP_FREE, F_RESUMED, F_FEC, F_SEQ),
        R_EPOCH: (F_EPOCH, F_SEEN, F_CORRECT, F_STEP, F_BUSY_US, F_WALL_US, F_SEQ),
        R_EVAL: (F_EPOCH, F_SPLIT, F_SEEN, F_CORRECT, F_BUSY_US, F_SEQ),
        R_WEIGHTS: (F_LAYER, F_PLANE, F_OFF, F_SIZE, F_B64),
        R_DONE: (F_DIGEST, F_STEP, F_RX_FRAMES, F_RX_BAD, F_RX_DUP, F_SEQ),
        R_ERROR: (F_CODE, F_MSG),
        R_CKPT: (F_EPOCH, F_INDEX, F_STEP, F_MS, F_OP, F_SEQ),
        R_PONG: (F_EXPECT, F_PROTO, F_MAX_PAYLOAD, F_CREDIT, F_PLATFORM, F_MPY),
    }


# Acknowledgements are compact lines, written from these templates (stream.py keeps const
# copies of the offsets for speed; a test checks they agree): 'BA' (ack) or 'BN' (nak), then
# lowercase hex digits: seq (4), the held bitmap "sk" (4), credit (ack) or error code (nak)
# (2), then '*' and the CRC-32 of the 12 bytes before it as 8 hex digits. 22 bytes instead of
# a JSON record's ~57: at 1 % of bytes damaged on the board->host line 20 % of them are lost
# instead of 44 %. The host reads them as records {"ev": "ack"|"nak", "seq", "sk", "cr"|"code"}
# (parse_record). An ack's seq is the last frame processed (all before it too); a nak's seq is
# the frame expected; "sk" (both) holds bit i for frame (expected + i) held.
ACK_TEMPLATE = b"BA0000000000*00000000\n"
NAK_TEMPLATE = b"BN0000000000*00000000\n"
ACK_SEQ_AT = const(2)  # 4 hex digits from here
ACK_SK_AT = const(6)  # 4 hex digits
ACK_CR_AT = const(10)  # 2 hex digits: the credit (ack) or the error code (nak)
ACK_BODY = const(12)  # the CRC-32 covers bytes 0 .. ACK_BODY; '*' at ACK_BODY, its hex after
_SHORT = host_only({b"BA": (R_ACK, F_CREDIT), b"BN": (R_NAK, F_CODE)})


@host_only
def _parse_short(line):
    """An ack/nak line -> its record; False if damaged."""
    import binascii

    if len(line) != ACK_BODY + 9 or line[ACK_BODY:] != b"*%08x" % (binascii.crc32(line[:ACK_BODY]) & 0xFFFFFFFF):
        return False
    if any(c not in b"0123456789abcdef" for c in line[2:ACK_BODY]):
        return False
    try:
        ev, last = _SHORT[line[:2]]
        return {
            F_EV: ev,
            F_SEQ: int(line[ACK_SEQ_AT:ACK_SK_AT], 16),
            F_HELD: int(line[ACK_SK_AT:ACK_CR_AT], 16),
            last: int(line[ACK_CR_AT:ACK_BODY], 16),
        }
    except ValueError:
        return False


# Records are written REPEAT times in a row (1..3): on a noisy board->host line the host
# takes the first intact copy, or the bitwise majority of three damaged ones. The host asks
# for it with the first payload byte of a PING (stream.py sets it; ack/nak records are not
# repeated: they are cumulative, and said twice when the device goes idle).
REPEAT = 1


def record_line(text):
    """bytes of one record line for JSON text (bytes), REPEAT times."""
    import binascii

    line = b"%s%s%s%08x\n" % (RECORD_PREFIX, text, RECORD_CRC_SEP, binascii.crc32(text) & 0xFFFFFFFF)
    return line * REPEAT if REPEAT > 1 else line


@host_only
def parse_record(line):
    """A record line (without its newline) -> dict; None if it is not a record line;
    False if it looks like a record but its checksum or JSON is bad (corrupted)."""
    import binascii
    import json

    line = line.rstrip(b"\r")
    if line[:2] in _SHORT:
        return _parse_short(line)
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


# --- frames: the host encodes them (host/bitflip/link/frames.py: encode_frame, header_check,
# header_repair, fec_trailer, fec_fix, the spec the device follows); the device parses them
# incrementally, allocation-free, in stream.py
