# Device side of the link: reads frames from the serial stdin into one preallocated buffer,
# checks sync, length, CRC and sequence, and answers with ack/nak records written from
# preallocated templates. Nothing here allocates once Link() is built.
import sys
import select
from array import array

from micropython import const

from . import protocol as P
from .kernels import crc32_check, crc32_hex, crc32_table

_CHUNK = const(32)  # payload is read in chunks of this size, each after a poll
_WAITING = const(0)  # next_frame() results < 0 mean "nothing usable": see codes below
NONE = const(-1)  # idle timeout, no frame started
BAD = const(-2)  # a frame was rejected (nak already sent)
DUP = const(-3)  # a duplicate of an accepted frame (re-acked, not processed)

# ack/nak records are written from protocol's templates; the offsets are copied here as
# const() so the hot path reads no module attributes (tests/test_protocol.py checks them)
_ACK_SEQ_END = const(26)  # P.ACK_SEQ_END
_ACK_CR_END = const(34)  # P.ACK_CR_END
_ACK_END = const(35)  # P.ACK_JSON_END
_NAK_SEQ_END = const(26)  # P.NAK_SEQ_END
_NAK_CODE_END = const(36)  # P.NAK_CODE_END
_NAK_END = const(37)  # P.NAK_JSON_END


def _put_num(buf, end, width, v):
    # write v right-aligned in buf[end-width:end], spaces before; allocation-free
    i = end - 1
    stop = end - width
    while True:
        buf[i] = 48 + v % 10
        v //= 10
        i -= 1
        if v == 0 or i < stop:
            break
    while i >= stop:
        buf[i] = 32
        i -= 1


class Link:
    def __init__(self, max_payload=P.MAX_PAYLOAD, credit=1, timeout_ms=250):
        self.max_payload = max_payload
        self.credit = credit
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

    def send_ack(self, seq):
        a = self.ack
        _put_num(a, _ACK_SEQ_END, 5, seq)
        _put_num(a, _ACK_CR_END, 2, self.credit)
        crc32_hex(a, 3, _ACK_END - 3, self.table, _ACK_END + 2)
        self.out.write(a)  # type: ignore[call-overload]

    def send_nak(self, code):
        a = self.nak
        _put_num(a, _NAK_SEQ_END, 5, self.expect)
        _put_num(a, _NAK_CODE_END, 2, code)
        crc32_hex(a, 3, _NAK_END - 3, self.table, _NAK_END + 2)
        self.out.write(a)  # type: ignore[call-overload]

    def next_frame(self, idle_ms):
        """Wait up to idle_ms for a frame. Returns its kind (>0) with self.seq/self.length
        set and the payload at self.buf[8:], or NONE / BAD / DUP."""
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
        if n > self.max_payload:
            self.rx_bad += 1
            self.send_nak(P.E_LEN)
            return BAD
        if not self._read(n + P.CRC_SIZE):
            self.rx_bad += 1
            self.send_nak(P.E_TIMEOUT)
            return BAD
        if not crc32_check(buf, 2, P.HEADER_SIZE - 2 + n, self.table):
            self.rx_bad += 1
            self.send_nak(P.E_CRC)
            return BAD
        if kind < P.K_CONFIG or kind > P.K_EXIT:
            self.rx_bad += 1
            self.send_nak(P.E_KIND)
            return BAD
        if kind == P.K_PING or kind == P.K_EXIT:  # unsequenced: never acked, never resent
            self.kind = kind
            self.seq = seq
            self.length = n
            return kind
        if seq != self.expect:
            if (self.expect - seq) & 0xFFFF <= 0x8000:  # an old frame: ack again, skip it
                self.rx_dup += 1
                self.send_ack(seq)
                return DUP
            self.rx_bad += 1
            self.send_nak(P.E_SEQ)  # a gap: the host resends from self.expect
            return BAD
        self.kind = kind
        self.seq = seq
        self.length = n
        self.rx_frames += 1
        return kind

    def accept(self):
        # the current frame was processed: advance and acknowledge it
        self.expect = (self.seq + 1) & 0xFFFF
        self.send_ack(self.seq)
