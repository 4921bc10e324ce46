# Device side of the link: reads frames from the serial stdin into one preallocated buffer,
# checks sync, header check, length, CRC and sequence, and answers with ack/nak records
# written from preallocated templates. Nothing here allocates once Link() is built.
#
# Selective repeat: a frame that arrives after a damaged one (its sequence number is ahead
# of the expected one) is kept, if it fits a slot, in a slot of the same buffer: the buffer
# is cut in P.slot_bytes() pieces, piece 0 is where frames are read and processed, pieces
# 1 .. slots hold early frames. Once the gap is filled the held frames are handed out in
# order without reading. Acks are cumulative (seq = last frame processed) and say which
# frames are held ("sk": bit i = frame expect + i); they are deferred until ack_bytes of
# frames were taken or the input goes idle (then said three times: a noisy line may eat one).
import gc
import sys
import select
from array import array

from micropython import const

from . import protocol as P
from .kernels import crc32_check, crc32_hex, crc32_table

_CHUNK = const(32)  # payload is read in chunks of this size, each after a poll
_FRAME = const(12)  # P.HEADER_SIZE + P.CRC_SIZE
_FEC = const(0x80)  # P.FEC_FLAG
_SEG = const(64)  # P.FEC_SEG
_CHECK = const(4)  # P.FEC_CHECK
_MAX_SLOTS = const(15)  # P.MAX_SLOTS
_ACK_BYTES = const(480)  # default: acknowledge after this many bytes of frames taken
_WAITING = const(0)  # next_frame() results < 0 mean "nothing usable": see codes below
NONE = const(-1)  # idle timeout, no frame started
BAD = const(-2)  # a frame was rejected (nak already sent)
DUP = const(-3)  # a duplicate of an accepted or held frame (re-acked, not processed)
_HELD = const(-4)  # internal: a frame was put in a slot; next_frame reads on

# ack/nak lines are written from protocol's templates; the offsets are copied here as
# const() so the hot path reads no module attributes (tests/test_protocol.py checks them)
_ACK_SEQ_AT = const(2)  # P.ACK_SEQ_AT
_ACK_SK_AT = const(6)  # P.ACK_SK_AT
_ACK_CR_AT = const(10)  # P.ACK_CR_AT
_ACK_BODY = const(12)  # P.ACK_BODY


def _put_hex(buf, at, width, v):
    # write v (>= 0, < 16**width) as width lowercase hex digits at buf[at:at+width]
    i = at + width - 1
    while i >= at:
        d = v & 15
        buf[i] = d + 48 if d < 10 else d + 87
        v >>= 4
        i -= 1


def _rotr(x, r):
    # rotate the byte x right by r (0..7)
    return ((x >> r) | (x << (8 - r))) & 0xFF


def _move(buf, dst, src, n):
    # copy buf[src:src+n] to buf[dst:] (apart); a loop: slices would allocate
    for i in range(n):
        buf[dst + i] = buf[src + i]


class Link:
    def __init__(self, max_payload=P.MAX_PAYLOAD, credit=1, timeout_ms=250, ack_bytes=_ACK_BYTES):
        self.max_payload = max_payload
        self.credit = min(credit, 255)  # (2 hex digits in an ack)
        # once a frame has started its bytes come back to back (the host writes whole
        # frames): a pause this long inside a frame means it was damaged, so give up on it
        self.timeout_ms = timeout_ms
        n = P.HEADER_SIZE + max_payload + P.CRC_SIZE
        self.buf = bytearray((n + 3) & ~3)
        mv = memoryview(self.buf)
        # readinto(buf, n) always writes at buf[0]: keep a view of the header tail and one
        # view per payload chunk, made once here
        self.hview = mv[2:]
        self.views = [mv[P.HEADER_SIZE + i :] for i in range(0, n - P.HEADER_SIZE, _CHUNK)]
        self.table = array("I", bytes(1024))
        crc32_table(self.table)
        self.gf = None  # GF(2^8) tables of fec.py once enable_fec() loaded it
        self._fix = None  # fec.fec_fix
        self.ack = bytearray(P.ACK_TEMPLATE)
        self.nak = bytearray(P.NAK_TEMPLATE)
        self.inp = sys.stdin.buffer
        # the binary stream; a port without one takes bytes on its text stream (typed str-only:
        # hence the two type: ignore below)
        self.out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else sys.stdout
        self.poll = select.poll()
        self.poll.register(sys.stdin, select.POLLIN)
        self._wait(0)  # ipoll allocates its result tuple on first use: do it now, unlocked
        self.expect = 0  # sequence number of the next new frame
        self.kind = 0
        self.seq = 0
        self.length = 0
        self.rx_frames = 0
        self.rx_bad = 0
        self.rx_dup = 0
        self.slot = P.slot_bytes(max_payload)  # bytes of a slot
        self.slots = max(0, min(_MAX_SLOTS, len(self.buf) // self.slot - 1))  # frames held out of order (P.sr_slots)
        self.head = 0  # slot of the expected frame: frame expect + d sits in slot 1 + (head + d) % slots
        self.held = 0  # bit d set: frame expect + d is held
        self.owed = 0  # bytes of frames taken since the last ack or nak
        self.last_len = -1  # payload length of the last frame whose CRC held (header repair)
        self.ack_bytes = ack_bytes  # 1: acknowledge every frame at once

    def enable_fec(self, reserve):
        # load the FEC decoder and its tables if `reserve` bytes stay free besides them: called
        # after the model is built (the model comes first; without FEC a noisy line is slower,
        # not broken). Allocates: never under the heap lock. True if FEC frames are corrected.
        if self.gf is None and gc.mem_free() >= reserve:
            try:
                from .fec import GF_BYTES, fec_fix, gf_tables

                gf = bytearray(GF_BYTES)
            except MemoryError:
                return False
            gf_tables(gf)
            self.gf, self._fix = gf, fec_fix
        return self.gf is not None

    def _wait(self, ms):
        for _ in self.poll.ipoll(ms):
            return True
        return False

    def _read(self, n):
        # read n bytes of payload+crc to buf[8:]; False on timeout
        views = self.views
        off = 0
        while n > 0:
            if not self._wait(self.timeout_ms):
                return False
            k = n if n < _CHUNK else _CHUNK
            self.inp.readinto(views[off // _CHUNK], k)
            off += k
            n -= k
        return True

    def send_ack(self):
        # cumulative: every frame before expect processed; plus the held ones
        a = self.ack
        _put_hex(a, _ACK_SEQ_AT, 4, (self.expect - 1) & 0xFFFF)
        _put_hex(a, _ACK_SK_AT, 4, self.held)
        _put_hex(a, _ACK_CR_AT, 2, self.credit)
        crc32_hex(a, 0, _ACK_BODY, self.table, _ACK_BODY + 1)
        self.out.write(a)  # type: ignore[call-overload]
        self.owed = 0

    def send_nak(self, code):
        a = self.nak
        _put_hex(a, _ACK_SEQ_AT, 4, self.expect)
        _put_hex(a, _ACK_SK_AT, 4, self.held)
        _put_hex(a, _ACK_CR_AT, 2, code)
        crc32_hex(a, 0, _ACK_BODY, self.table, _ACK_BODY + 1)
        self.out.write(a)  # type: ignore[call-overload]
        self.owed = 0

    def next_frame(self, idle_ms):
        """Wait up to idle_ms for a frame. Returns its kind (>0) with self.seq/self.length
        set and the payload at self.buf[8:], or NONE / BAD / DUP."""
        while True:
            if self.held & 1:  # the expected frame came early: hand it out
                return self._deliver()
            if self.owed and not self._wait(0):
                self.send_ack()  # the host has sent nothing more: tell it where we are
                self.out.write(self.ack)  # type: ignore[call-overload]  # three times: small, needed now
                self.out.write(self.ack)  # type: ignore[call-overload]
            k = self._frame(idle_ms)
            if k != _HELD:
                return k

    def _deliver(self):
        buf = self.buf
        r = (1 + self.head % self.slots) * self.slot
        n = buf[r + 6] | (buf[r + 7] << 8)
        _move(buf, 0, r, _FRAME + n)
        self.held ^= 1
        self.kind = buf[2] & 0x7F  # (without FEC_FLAG)
        self.seq = buf[4] | (buf[5] << 8)
        self.length = n
        self.rx_frames += 1
        return self.kind

    def _frame(self, idle_ms):
        buf = self.buf
        v0 = self.views[0]  # buf[8:]: sync bytes are hunted here, then rewritten
        # hunt for the two sync bytes, one byte at a time
        # (readinto gives 0 bytes only at end of input: the unix port's line closed)
        if not self._wait(idle_ms) or not self.inp.readinto(v0, 1):
            return NONE
        while True:
            if buf[8] == P.SYNC0:
                if not self._wait(self.timeout_ms):
                    self.rx_bad += 1
                    return BAD  # a stray sync byte, then silence
                if not self.inp.readinto(v0, 1):
                    return NONE
                if buf[8] == P.SYNC1:
                    break
                continue  # this byte may be SYNC0 again
            if not self._wait(idle_ms) or not self.inp.readinto(v0, 1):
                return NONE  # garbage, then nothing: the host is gone
        buf[0] = P.SYNC0
        buf[1] = P.SYNC1
        if not self._wait(self.timeout_ms):
            self.rx_bad += 1
            self.send_nak(P.E_TIMEOUT)
            return BAD
        self.inp.readinto(self.hview, 6)  # header is tiny: read it in one go
        kind = buf[2]
        seq = buf[4] | (buf[5] << 8)
        n = buf[6] | (buf[7] << 8)
        c = kind  # frames.header_check (host): rotate left, xor the next byte
        for i in range(4, 8):
            c = (((c << 1) | (c >> 7)) & 0xFF) ^ buf[i]
        fix = 0  # frames.header_repair: one damaged byte among kind, check, seq, length
        rep = 0
        if buf[3] and buf[3] != c:
            e = buf[3] ^ c  # the check's error: the damaged byte's error, rotated
            rep = 1
            if n == self.last_len:
                fix = e  # kind or seq (or the check byte itself): the CRC-32 tells which
            elif ((n & 0xFF) ^ _rotr(e, 1)) | (n & 0xFF00) == self.last_len:
                n = self.last_len  # the length's low byte
                buf[6] = n & 0xFF
            elif (n & 0xFF) | (((n >> 8) ^ e) << 8) == self.last_len:
                n = self.last_len  # its high byte
                buf[7] = n >> 8
            else:  # hunt for the next frame in what follows
                self.rx_bad += 1
                self.send_nak(P.E_HEADER)
                return BAD
        t = 0  # check bytes after the crc32
        if kind & _FEC:
            kind ^= _FEC
            t = _CHECK * ((n + 3 + _SEG) // _SEG)  # P.fec_size
        if n > self.max_payload or _FRAME + n + t > len(buf):
            self.rx_bad += 1
            self.send_nak(P.E_LEN)
            return BAD
        if self.held and n + _FRAME + t > self.slot:
            self.held = 0  # a long frame overwrites the slots: the host resends what they held
        if not self._read(n + P.CRC_SIZE + t):
            self.rx_bad += 1
            self.send_nak(P.E_TIMEOUT)
            return BAD
        if not self._crc_ok(n, fix):
            k = self._fix(buf, 8, n + 4, 12 + n, self.gf) if t and self.gf is not None else -1  # type: ignore[misc]
            if k <= 0 or not self._crc_ok(n, fix):
                self.rx_bad += 1
                self.send_nak(P.E_HEADER if rep else P.E_CRC)
                return BAD
        self.last_len = n
        if rep:  # the header as repaired
            kind = buf[2] & 0x7F
            seq = buf[4] | (buf[5] << 8)
        if kind < P.K_CONFIG or kind > P.K_EXIT:
            self.rx_bad += 1
            self.send_nak(P.E_KIND)
            return BAD
        if kind == P.K_PING or kind == P.K_EXIT:  # unsequenced: never acked, never resent
            if kind == P.K_PING:
                self.held = 0  # a resync point: the host may number frames anew after the pong
                if n:  # payload byte 0: how many times to write each record (a noisy line)
                    P.REPEAT = buf[8] if 1 <= buf[8] <= 3 else 1
            self.kind = kind
            self.seq = seq
            self.length = n
            return kind
        d = (seq - self.expect) & 0xFFFF
        if d == 0:
            self.kind = kind
            self.seq = seq
            self.length = n
            self.rx_frames += 1
            return kind
        if d >= 0x8000:  # an old frame: ack again, skip it
            self.rx_dup += 1
            self.seq = seq
            self.send_ack()
            return DUP
        if d <= self.slots and n + _FRAME <= self.slot:
            bit = 1 << d
            if self.held & bit:  # held already
                self.rx_dup += 1
                self.seq = seq
                self.send_ack()
                return DUP
            first = not self.held
            _move(buf, (1 + (self.head + d) % self.slots) * self.slot, 0, _FRAME + n)
            self.held |= bit
            self.owed += _FRAME + n
            if first or self.owed >= self.ack_bytes:
                self.send_ack()  # a new gap: the host learns at once what to resend
            return _HELD
        self.rx_bad += 1
        self.send_nak(P.E_SEQ)  # a gap too far ahead (or a long frame): resend from self.expect
        return BAD

    def _crc_ok(self, n, fix):
        # the frame's CRC-32 holds, or holds once one header byte is corrected for the
        # check's error `fix` (the check, kind, seq low, seq high: frames.header_repair)
        buf = self.buf
        if crc32_check(buf, 2, P.HEADER_SIZE - 2 + n, self.table):
            return True
        if fix:
            for i in range(4):  # the check byte itself, kind, seq low, seq high
                at = 3 if i == 0 else (2 if i == 1 else i + 2)
                d = fix if i == 0 else _rotr(fix, 5 - i)  # kind rotated 4 times, seq low 3, high 2
                if i == 1 and d & _FEC:
                    continue  # (the FEC flag decided how many bytes were read: not this byte)
                buf[at] ^= d
                if crc32_check(buf, 2, P.HEADER_SIZE - 2 + n, self.table):
                    return True
                buf[at] ^= d
        return False

    def accept(self):
        # the current frame was processed: advance; acknowledge once enough was taken
        self.expect = (self.seq + 1) & 0xFFFF
        self.held >>= 1
        if self.slots:
            self.head = (self.head + 1) % self.slots
        self.owed += _FRAME + self.length
        if self.owed >= self.ack_bytes:
            self.send_ack()
