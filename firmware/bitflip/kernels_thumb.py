# asm_thumb twins of the hottest viper kernels, for RP2040 / RP2350-Arm (Cortex-M0+/M33).
#
# Bit-identical to kernels.dense_binary and kernels.flip_row (same arguments, same results,
# same writes); checked against numpy and against the viper code in the unicorn emulator
# (tests/test_armv6m.py), which also checks every instruction is one a Cortex-M0+ has.
# Import it through bitflip.accel, which falls back to the viper kernels elsewhere: the unix
# port and the ESP32 ports have no asm_thumb (the unix port raises SyntaxError on import),
# and mpy-cross only compiles this file for Arm targets (-march=armv6m/armv7m...; not
# xtensawin or rv32imc).
#
# Thumb-1 only (armv6m): 8 low registers for almost everything, no movw/movt, no ldm in
# MicroPython's assembler, no sp-relative loads. Constants are built with shifts; state
# that does not fit r0-r7 lives in r8-r12 (restored before return: the asm_thumb prologue
# saves only r4-r7) or in the scratch tail of the parameter block.
#
# asm_thumb functions take at most 4 arguments, so the scalar arguments travel in a small
# array('i') parameter block. The Python wrappers below fill a preallocated block and call
# the asm entry: no allocation per call. They share module-level blocks, so they are not
# re-entrant: a second core (_thread) running kernels at the same time must call the *_asm
# entries with a block of its own.
import micropython
from array import array

from micropython import const

from . import kernels as _K

# Read by mypy only (firmware/typecheck): the inline assembler's mnemonics and registers, and
# this file's labels. The board's compiler drops the block and the name (a private const 0).
_TYPE_CHECKING = const(0)
if _TYPE_CHECKING:
    from asm_thumb import *

    row = tri = tail = one = rowend = done = down = tailset = word = draw = drawn = next = Label()
    conf = draw2 = last = norange = nowin = Label()
    serve = poll = got = job = rowsdone = alo = ahi = nobest = scan = snext = scanned = Label()
    served = wait = mwin = take = ret = out = Label()

# dense_binary_asm(x, w, out, p): p = [nw, nout, nbits] + scratch, nw < 65536.
_PB = array("i", [0] * 8)
# flip_row_asm(w, x, st, p): p = [row, nw, n_in, up, k, layer] + scratch.
_PF = array("i", [0] * 16)


@micropython.asm_thumb
def dense_binary_asm(r0, r1, r2, r3):
    # out[j] = nbits - 2 * popcount(x ^ w_j) over nw words, for j < nout.
    # Inner loop: 3 words per iteration; per word XOR + SWAR to nibble counts (<= 4), the
    # three words' nibbles added (<= 12, no overflow), then one byte fold + multiply per 3.
    # Registers in the loop: r0 x, r1 w, r2/r4/r5 temps, r3 row count, r6 0x55555555,
    # r7 0x33333333, r8 0x0F0F0F0F, r9 0x01010101, r10 out, r11 p, r12 end of the triples.
    mov(r4, r8)
    mov(r5, r9)
    mov(r6, r10)
    mov(r7, r11)
    push({r4, r5, r6, r7})
    mov(r10, r2)
    mov(r11, r3)
    str(r0, [r3, 12])  # p[3] = x start
    ldr(r4, [r3, 0])  # nw
    lsl(r5, r4, 2)
    add(r5, r5, r0)
    str(r5, [r3, 20])  # p[5] = x end
    mov(r5, 0xAA)  # nw // 3 = (nw * 0xAAAB) >> 17, exact for nw < 65536
    lsl(r5, r5, 8)
    add(r5, 0xAB)
    mul(r4, r5)
    lsr(r4, r4, 17)
    mov(r5, 12)
    mul(r4, r5)
    add(r4, r4, r0)
    mov(r12, r4)  # end of the whole triples
    ldr(r5, [r3, 4])
    str(r5, [r3, 24])  # p[6] = rows left
    # constants
    mov(r6, 0x55)
    lsl(r4, r6, 8)
    orr(r6, r4)
    lsl(r4, r6, 16)
    orr(r6, r4)
    mov(r7, 0x33)
    lsl(r4, r7, 8)
    orr(r7, r4)
    lsl(r4, r7, 16)
    orr(r7, r4)
    mov(r5, 0x0F)
    lsl(r4, r5, 8)
    orr(r5, r4)
    lsl(r4, r5, 16)
    orr(r5, r4)
    mov(r8, r5)
    mov(r5, 0x01)
    lsl(r4, r5, 8)
    orr(r5, r4)
    lsl(r4, r5, 16)
    orr(r5, r4)
    mov(r9, r5)
    ldr(r5, [r3, 24])
    cmp(r5, 0)
    beq(done)
    label(row)
    mov(r4, r11)
    ldr(r0, [r4, 12])  # x start
    mov(r3, 0)  # popcount of the row
    mov(r5, r12)
    cmp(r0, r5)
    beq(tail)
    label(tri)
    ldr(r4, [r0, 0])
    ldr(r5, [r1, 0])
    eor(r4, r5)
    lsr(r5, r4, 1)
    and_(r5, r6)
    sub(r4, r4, r5)
    lsr(r5, r4, 2)
    and_(r4, r7)
    and_(r5, r7)
    add(r4, r4, r5)
    ldr(r2, [r0, 4])
    ldr(r5, [r1, 4])
    eor(r2, r5)
    lsr(r5, r2, 1)
    and_(r5, r6)
    sub(r2, r2, r5)
    lsr(r5, r2, 2)
    and_(r2, r7)
    and_(r5, r7)
    add(r4, r4, r2)
    add(r4, r4, r5)
    ldr(r2, [r0, 8])
    ldr(r5, [r1, 8])
    eor(r2, r5)
    lsr(r5, r2, 1)
    and_(r5, r6)
    sub(r2, r2, r5)
    lsr(r5, r2, 2)
    and_(r2, r7)
    and_(r5, r7)
    add(r4, r4, r2)
    add(r4, r4, r5)
    lsr(r5, r4, 4)  # nibbles <= 12 -> bytes <= 24
    mov(r2, r8)
    and_(r4, r2)
    and_(r5, r2)
    add(r4, r4, r5)
    mov(r5, r9)  # top byte = sum of the 4 bytes
    mul(r4, r5)
    lsr(r4, r4, 24)
    add(r3, r3, r4)
    add(r0, 12)
    add(r1, 12)
    mov(r5, r12)
    cmp(r0, r5)
    bne(tri)
    label(tail)
    mov(r4, r11)
    ldr(r2, [r4, 20])  # x end
    cmp(r0, r2)
    beq(rowend)
    label(one)
    ldr(r4, [r0, 0])
    ldr(r5, [r1, 0])
    eor(r4, r5)
    lsr(r5, r4, 1)
    and_(r5, r6)
    sub(r4, r4, r5)
    lsr(r5, r4, 2)
    and_(r4, r7)
    and_(r5, r7)
    add(r4, r4, r5)
    lsr(r5, r4, 4)
    add(r4, r4, r5)
    mov(r5, r8)
    and_(r4, r5)
    mov(r5, r9)
    mul(r4, r5)
    lsr(r4, r4, 24)
    add(r3, r3, r4)
    add(r0, 4)
    add(r1, 4)
    cmp(r0, r2)
    bne(one)
    label(rowend)
    mov(r4, r11)
    ldr(r5, [r4, 8])  # nbits
    add(r3, r3, r3)
    sub(r5, r5, r3)
    mov(r4, r10)
    str(r5, [r4, 0])
    add(r4, 4)
    mov(r10, r4)
    mov(r4, r11)
    ldr(r5, [r4, 24])
    sub(r5, 1)
    str(r5, [r4, 24])
    bne(row)
    label(done)
    pop({r4, r5, r6, r7})
    mov(r8, r4)
    mov(r9, r5)
    mov(r10, r6)
    mov(r11, r7)
    mov(r0, 0)


@micropython.asm_thumb
def flip_row_asm(r0, r1, r2, r3):
    # kernels.flip_row(w, row, x, nw, n_in, up, k, st, layer) with r0 = w, r1 = x, r2 = st,
    # r3 = p = [row, nw, n_in, up, k, layer, scratch...]; returns the number of bits flipped.
    # Per word: wrong = (x ^ w ^ inv) & mask; AND k hash draws; if any bit is left, flip it
    # in w and add its popcount. Draw t of word i hashes key + (t*nw + i)*GOLD: v = key +
    # i*GOLD steps by GOLD per word and the draws step by nw*GOLD.
    # Loop registers: r0 wrong, r1 hash, r2 temp, r3 draw argument, r4 draw count,
    # r5 w pointer, r6 0x7FEB352D, r7 0x846CA68B, r8 x pointer, r9 v, r10 nw*GOLD, r11 p,
    # r12 address of the row's last word. Scratch in p (byte offsets):
    # 24 inv, 28 mask, 32 GOLD, 36 flips, 40 0x55555555, 44 0x33333333, 48 0x0F0F0F0F,
    # 52 0x01010101, 56 tail mask.
    mov(r4, r8)
    mov(r5, r9)
    mov(r6, r10)
    mov(r7, r11)
    push({r4, r5, r6, r7})
    mov(r8, r1)
    mov(r11, r3)
    # hash multipliers c1 = 0x7FEB352D, c2 = 0x846CA68B (built a byte at a time)
    mov(r6, 0x7F)
    lsl(r6, r6, 8)
    add(r6, 0xEB)
    lsl(r6, r6, 8)
    add(r6, 0x35)
    lsl(r6, r6, 8)
    add(r6, 0x2D)
    mov(r7, 0x84)
    lsl(r7, r7, 8)
    add(r7, 0x6C)
    lsl(r7, r7, 8)
    add(r7, 0xA6)
    lsl(r7, r7, 8)
    add(r7, 0x8B)
    # GOLD = 0x9E3779B9 -> p[8]; nw * GOLD -> r10
    mov(r4, 0x9E)
    lsl(r4, r4, 8)
    add(r4, 0x37)
    lsl(r4, r4, 8)
    add(r4, 0x79)
    lsl(r4, r4, 8)
    add(r4, 0xB9)
    str(r4, [r3, 32])
    ldr(r5, [r3, 4])  # nw
    mul(r4, r5)
    mov(r10, r4)
    # row pointer r5 = w + row * nw * 4, last word r12 = r5 + (nw - 1) * 4
    ldr(r4, [r3, 0])
    mul(r4, r5)
    lsl(r4, r4, 2)
    add(r4, r4, r0)
    lsl(r5, r5, 2)
    add(r5, r5, r4)
    sub(r5, 4)
    mov(r12, r5)
    mov(r5, r4)
    # key = hash(st[0] + (layer << 20) + row) -> r9
    ldr(r1, [r2, 0])
    ldr(r4, [r3, 20])
    lsl(r4, r4, 20)
    add(r1, r1, r4)
    ldr(r4, [r3, 0])
    add(r1, r1, r4)
    lsr(r2, r1, 16)
    eor(r1, r2)
    mul(r1, r6)
    lsr(r2, r1, 15)
    eor(r1, r2)
    mul(r1, r7)
    lsr(r2, r1, 16)
    eor(r1, r2)
    mov(r9, r1)
    # inv = 0 when up else all ones; mask = all ones until the last word
    mov(r0, 0)
    mvn(r1, r0)
    str(r1, [r3, 28])
    ldr(r2, [r3, 12])
    cmp(r2, 0)
    beq(down)
    mov(r1, 0)
    label(down)
    str(r1, [r3, 24])
    str(r0, [r3, 36])  # flips = 0
    # tail mask = (1 << (n_in & 31)) - 1, or all ones when n_in is a multiple of 32
    ldr(r2, [r3, 8])
    mov(r1, 31)
    and_(r2, r1)
    mov(r1, 1)
    lsl(r1, r2)
    sub(r1, 1)
    cmp(r2, 0)
    bne(tailset)
    mvn(r1, r0)
    label(tailset)
    str(r1, [r3, 56])
    # popcount constants
    mov(r1, 0x55)
    lsl(r2, r1, 8)
    orr(r1, r2)
    lsl(r2, r1, 16)
    orr(r1, r2)
    str(r1, [r3, 40])
    mov(r1, 0x33)
    lsl(r2, r1, 8)
    orr(r1, r2)
    lsl(r2, r1, 16)
    orr(r1, r2)
    str(r1, [r3, 44])
    mov(r1, 0x0F)
    lsl(r2, r1, 8)
    orr(r1, r2)
    lsl(r2, r1, 16)
    orr(r1, r2)
    str(r1, [r3, 48])
    mov(r1, 0x01)
    lsl(r2, r1, 8)
    orr(r1, r2)
    lsl(r2, r1, 16)
    orr(r1, r2)
    str(r1, [r3, 52])
    ldr(r1, [r3, 4])
    cmp(r1, 0)
    beq(done)
    mov(r2, r12)
    cmp(r5, r2)
    bne(word)
    ldr(r1, [r3, 56])  # a one-word row: its only word is the last
    str(r1, [r3, 28])
    label(word)
    mov(r2, r8)
    ldr(r0, [r2, 0])
    add(r2, 4)
    mov(r8, r2)
    ldr(r1, [r5, 0])
    eor(r0, r1)
    mov(r2, r11)
    ldr(r1, [r2, 24])
    eor(r0, r1)
    ldr(r1, [r2, 28])
    and_(r0, r1)
    ldr(r4, [r2, 16])  # k draws
    mov(r3, r9)
    cmp(r4, 0)
    beq(drawn)
    label(draw)
    mov(r1, r3)
    lsr(r2, r1, 16)
    eor(r1, r2)
    mul(r1, r6)
    lsr(r2, r1, 15)
    eor(r1, r2)
    mul(r1, r7)
    lsr(r2, r1, 16)
    eor(r1, r2)
    and_(r0, r1)
    mov(r2, r10)
    add(r3, r3, r2)
    sub(r4, 1)
    bne(draw)
    label(drawn)
    mov(r2, r11)
    ldr(r1, [r2, 32])
    mov(r3, r9)
    add(r3, r3, r1)
    mov(r9, r3)
    cmp(r0, 0)
    beq(next)
    ldr(r1, [r5, 0])
    eor(r1, r0)
    str(r1, [r5, 0])
    lsr(r1, r0, 1)
    ldr(r3, [r2, 40])
    and_(r1, r3)
    sub(r0, r0, r1)
    ldr(r3, [r2, 44])
    lsr(r1, r0, 2)
    and_(r0, r3)
    and_(r1, r3)
    add(r0, r0, r1)
    lsr(r1, r0, 4)
    add(r0, r0, r1)
    ldr(r3, [r2, 48])
    and_(r0, r3)
    ldr(r3, [r2, 52])
    mul(r0, r3)
    lsr(r0, r0, 24)
    ldr(r1, [r2, 36])
    add(r1, r1, r0)
    str(r1, [r2, 36])
    label(next)
    add(r5, 4)
    mov(r1, r12)
    cmp(r5, r1)
    bcc(word)  # not yet at the last word (unsigned lower)
    bne(done)  # past it
    ldr(r1, [r2, 56])  # at the last word: mask its padding bits
    str(r1, [r2, 28])
    b(word)
    label(done)
    mov(r2, r11)
    ldr(r0, [r2, 36])
    pop({r4, r5, r6, r7})
    mov(r8, r4)
    mov(r9, r5)
    mov(r10, r6)
    mov(r11, r7)


def dense_binary(x, w, out, nw, nout, nbits):
    # same call as kernels.dense_binary
    p = _PB
    p[0] = nw
    p[1] = nout
    p[2] = nbits
    dense_binary_asm(x, w, out, p)


def flip_row(w, row, x, nw, n_in, up, k, st, layer):
    # same call and result as kernels.flip_row
    p = _PF
    p[0] = row
    p[1] = nw
    p[2] = n_in
    p[3] = 1 if up else 0
    p[4] = k
    p[5] = layer
    return flip_row_asm(w, x, st, p)


# dense_argmax_asm(x, w, out, p): p = [nw, nout, nbits, lo, hi, base] + results + scratch
# (16 words, the caller's own array('i')); results: p[6] winner, p[7] its value, p[8] best
# row of [lo, hi), p[9] its value. Same call as the viper twin kernels_fast.dense_argmax: no
# wrapper, so the caller keeps one block per layer and pays one call per forward.
# p[14] is the mode: 0 one core; 1 leader and 2 server of the two-core split (fast.py): a
# 36-word block holds the leader's 16 words, the server's 16 (its own block, p + 64) and 4
# sync words (p + 128: GO, DONE, idle polls, SEEN). The leader copies lo/hi into the server's
# block, bumps GO, runs its rows, spins until DONE == GO and merges the two halves' results
# (ties: the leader holds the lower indices). The server (core 1, called once and looping)
# polls GO; for each new value it runs its rows and writes DONE; after that many idle polls
# it returns -2 (so its Python loop can see a stop request).
# Hand-encoded Thumb-1 (MicroPython's assembler lacks them): 0xC814 ldm r0!, {r2, r4};
# 0xC810 ldm r0!, {r4}; 0xC920 ldm r1!, {r5}; 0xC220 stm r2!, {r5}; 0x4560 cmp r0, r12.


@micropython.asm_thumb
def dense_argmax_asm(r0, r1, r2, r3):
    # dense_binary (out[j] = nbits - 2 * popcount(x ^ w_j), j < nout) that also keeps the row
    # with the largest value (lowest index on ties: tracked by its out pointer) and, in a
    # second pass over out, the largest of the global rows base + j in [lo, hi) (-1 when none):
    # the forward pass of a prototype layer, its winner and the label's best prototype in one
    # call. Byte offsets in p: 0 nw, 4 nout, 8 nbits, 12 lo, 16 hi, 20 base, 24 winner, 28 its
    # value, 32 best in range, 36 its value, 40 x start, 44 x end, 48 w end, 52 out start,
    # 56 mode, 60 w start. Returns the winner (-1: no rows; -2: a server that went idle).
    mov(r4, r8)
    mov(r5, r9)
    mov(r6, r10)
    mov(r7, r11)
    push({r4, r5, r6, r7})
    mov(r10, r2)
    mov(r11, r3)
    str(r0, [r3, 40])  # x start
    str(r2, [r3, 52])  # out start
    str(r1, [r3, 60])  # w start
    ldr(r4, [r3, 0])  # nw
    lsl(r5, r4, 2)
    add(r5, r5, r0)
    str(r5, [r3, 44])  # x end
    ldr(r5, [r3, 4])  # nout
    mul(r5, r4)
    lsl(r5, r5, 2)
    add(r5, r5, r1)
    str(r5, [r3, 48])  # w end
    mov(r5, 0xAA)  # nw // 3 = (nw * 0xAAAB) >> 17, exact for nw < 65536
    lsl(r5, r5, 8)
    add(r5, 0xAB)
    mul(r4, r5)
    lsr(r4, r4, 17)
    mov(r5, 12)
    mul(r4, r5)
    add(r4, r4, r0)
    mov(r12, r4)  # end of the whole triples
    # constants
    mov(r6, 0x55)
    lsl(r4, r6, 8)
    orr(r6, r4)
    lsl(r4, r6, 16)
    orr(r6, r4)
    mov(r7, 0x33)
    lsl(r4, r7, 8)
    orr(r7, r4)
    lsl(r4, r7, 16)
    orr(r7, r4)
    mov(r5, 0x0F)
    lsl(r4, r5, 8)
    orr(r5, r4)
    lsl(r4, r5, 16)
    orr(r5, r4)
    mov(r8, r5)
    mov(r5, 0x01)
    lsl(r4, r5, 8)
    orr(r5, r4)
    lsl(r4, r5, 16)
    orr(r5, r4)
    mov(r9, r5)
    ldr(r5, [r3, 56])  # mode
    cmp(r5, 2)
    beq(serve)
    cmp(r5, 1)
    bne(job)
    # leader: hand core 1 its job (the label's range), then GO = (GO + 1) & 0xFFFFFF
    ldr(r4, [r3, 12])
    str(r4, [r3, 76])
    ldr(r4, [r3, 16])
    str(r4, [r3, 80])
    mov(r2, r3)
    add(r2, 128)
    ldr(r4, [r2, 0])
    add(r4, 1)
    lsl(r4, r4, 8)
    lsr(r4, r4, 8)
    str(r4, [r2, 0])
    b(job)
    label(serve)  # r3 = p (the server's block): wait for GO != SEEN, at most p[18] polls
    ldr(r5, [r3, 72])
    ldr(r4, [r3, 76])
    label(poll)
    ldr(r2, [r3, 64])
    cmp(r2, r4)
    bne(got)
    sub(r5, 1)
    bne(poll)
    mov(r0, 1)
    mvn(r0, r0)  # -2: idle
    b(out)
    label(got)
    str(r2, [r3, 76])  # SEEN
    ldr(r1, [r3, 60])
    ldr(r2, [r3, 52])
    mov(r10, r2)
    label(job)
    mov(r3, r11)
    mov(r5, 1)
    lsl(r5, r5, 31)
    str(r5, [r3, 28])  # values = INT_MIN: every row beats them
    str(r5, [r3, 36])
    mov(r5, 0)
    mvn(r5, r5)
    str(r5, [r3, 24])  # winner = -1 (then the out pointer past it)
    str(r5, [r3, 32])  # best in range = -1
    ldr(r5, [r3, 4])
    cmp(r5, 0)
    beq(rowsdone)
    label(row)
    mov(r4, r11)
    ldr(r0, [r4, 40])  # x start
    mov(r3, 0)  # popcount of the row
    data(2, 0x4560)  # cmp r0, r12
    beq(tail)
    label(tri)  # three words: nibble counts, bytes, their sum
    data(2, 0xC814)  # ldm r0!, {r2, r4}: x[0], x[1]
    data(2, 0xC920)  # ldm r1!, {r5}: w[0]
    eor(r2, r5)
    lsr(r5, r2, 1)
    and_(r5, r6)
    sub(r2, r2, r5)
    lsr(r5, r2, 2)
    and_(r2, r7)
    and_(r5, r7)
    add(r2, r2, r5)
    data(2, 0xC920)  # w[1]
    eor(r4, r5)
    lsr(r5, r4, 1)
    and_(r5, r6)
    sub(r4, r4, r5)
    lsr(r5, r4, 2)
    and_(r4, r7)
    and_(r5, r7)
    add(r2, r2, r4)
    add(r2, r2, r5)
    data(2, 0xC810)  # ldm r0!, {r4}: x[2]
    data(2, 0xC920)  # w[2]
    eor(r4, r5)
    lsr(r5, r4, 1)
    and_(r5, r6)
    sub(r4, r4, r5)
    lsr(r5, r4, 2)
    and_(r4, r7)
    and_(r5, r7)
    add(r2, r2, r4)
    add(r2, r2, r5)
    lsr(r5, r2, 4)  # nibbles <= 12 -> bytes <= 24
    mov(r4, r8)
    and_(r2, r4)
    and_(r5, r4)
    add(r2, r2, r5)
    mov(r4, r9)  # top byte = sum of the 4 bytes
    mul(r2, r4)
    lsr(r2, r2, 24)
    add(r3, r3, r2)
    data(2, 0x4560)  # cmp r0, r12
    bne(tri)
    label(tail)
    mov(r4, r11)
    ldr(r2, [r4, 44])  # x end
    cmp(r0, r2)
    beq(rowend)
    label(one)
    data(2, 0xC810)  # ldm r0!, {r4}
    data(2, 0xC920)  # ldm r1!, {r5}
    eor(r4, r5)
    lsr(r5, r4, 1)
    and_(r5, r6)
    sub(r4, r4, r5)
    lsr(r5, r4, 2)
    and_(r4, r7)
    and_(r5, r7)
    add(r4, r4, r5)
    lsr(r5, r4, 4)
    add(r4, r4, r5)
    mov(r5, r8)
    and_(r4, r5)
    mov(r5, r9)
    mul(r4, r5)
    lsr(r4, r4, 24)
    add(r3, r3, r4)
    cmp(r0, r2)
    bne(one)
    label(rowend)
    mov(r4, r11)
    ldr(r5, [r4, 8])  # nbits
    add(r3, r3, r3)
    sub(r5, r5, r3)  # the row's value
    mov(r2, r10)
    data(2, 0xC220)  # stm r2!, {r5}: out[j] = value
    mov(r10, r2)
    ldr(r3, [r4, 28])
    cmp(r5, r3)
    ble(nowin)  # signed: not larger than the winner so far
    str(r5, [r4, 28])
    str(r2, [r4, 24])
    label(nowin)
    ldr(r3, [r4, 48])  # w end
    cmp(r1, r3)
    bne(row)
    # the winner's index from its out pointer
    ldr(r2, [r4, 24])
    ldr(r3, [r4, 52])
    sub(r2, r2, r3)
    asr(r2, r2, 2)
    sub(r2, 1)
    ldr(r3, [r4, 20])
    add(r2, r2, r3)
    str(r2, [r4, 24])
    label(rowsdone)
    mov(r4, r11)
    # best of [lo, hi): rows [max(lo, base), min(hi, base + nout)) of out
    ldr(r0, [r4, 12])
    ldr(r2, [r4, 20])  # base
    cmp(r0, r2)
    bge(alo)
    mov(r0, r2)
    label(alo)
    ldr(r1, [r4, 16])
    ldr(r3, [r4, 4])
    add(r3, r3, r2)
    cmp(r1, r3)
    ble(ahi)
    mov(r1, r3)
    label(ahi)
    cmp(r0, r1)
    bge(nobest)
    sub(r0, r0, r2)
    sub(r1, r1, r2)
    lsl(r0, r0, 2)
    lsl(r1, r1, 2)
    ldr(r3, [r4, 52])
    add(r0, r0, r3)
    add(r1, r1, r3)
    mov(r2, r0)  # the best's pointer
    ldr(r3, [r0, 0])  # and value
    add(r0, 4)
    cmp(r0, r1)
    beq(scanned)
    label(scan)
    ldr(r5, [r0, 0])
    cmp(r5, r3)
    ble(snext)
    mov(r3, r5)
    mov(r2, r0)
    label(snext)
    add(r0, 4)
    cmp(r0, r1)
    bne(scan)
    label(scanned)
    str(r3, [r4, 36])
    ldr(r5, [r4, 52])
    sub(r2, r2, r5)
    asr(r2, r2, 2)
    ldr(r5, [r4, 20])
    add(r2, r2, r5)
    str(r2, [r4, 32])
    label(nobest)
    ldr(r5, [r4, 56])
    cmp(r5, 2)
    beq(served)
    cmp(r5, 1)
    bne(ret)
    # leader: wait for core 1's half (DONE == GO), then merge its results
    mov(r2, r4)
    add(r2, 128)
    ldr(r3, [r2, 0])
    label(wait)
    ldr(r5, [r2, 4])
    cmp(r5, r3)
    bne(wait)
    mov(r2, r4)
    add(r2, 64)
    ldr(r5, [r2, 28])
    ldr(r3, [r4, 28])
    cmp(r5, r3)
    ble(mwin)  # ties: core 0 holds the lower indices
    str(r5, [r4, 28])
    ldr(r5, [r2, 24])
    str(r5, [r4, 24])
    label(mwin)
    ldr(r5, [r2, 32])
    cmp(r5, 0)
    blt(ret)  # core 1 has no row in range
    ldr(r3, [r4, 32])
    cmp(r3, 0)
    blt(take)
    ldr(r5, [r2, 36])
    ldr(r3, [r4, 36])
    cmp(r5, r3)
    ble(ret)
    label(take)
    ldr(r5, [r2, 32])
    str(r5, [r4, 32])
    ldr(r5, [r2, 36])
    str(r5, [r4, 36])
    b(ret)
    label(served)
    ldr(r5, [r4, 76])
    str(r5, [r4, 68])  # DONE = SEEN
    mov(r3, r4)
    b(serve)
    label(ret)
    mov(r2, r11)
    ldr(r0, [r2, 24])
    label(out)
    pop({r4, r5, r6, r7})
    mov(r8, r4)
    mov(r9, r5)
    mov(r10, r6)
    mov(r11, r7)


# update_row_b2_asm(s, aux, x, p): p = [st0, row, nw, n_in, up, k, ks, layer] + scratch (24 words).
# p[0] is the step-key word: K.step_key(p, seed, step) writes it in place.
_PU = array("i", [0] * 24)


@micropython.asm_thumb
def update_row_b2_asm(r0, r1, r2, r3):
    # kernels.update_row(2, s, aux, row, x, nw, n_in, up, k, ks, st, layer) for binary2 weights
    # (sign s, confidence aux), bit-identical; returns the state bits written. Per word i:
    #   t = (x ^ inv) & valid, d = s ^ t (wrong bits), r = valid & k draws,
    #   r2 = valid & ~d & ~aux, then (if r2 != 0) & ks draws more (draws k .. k+ks-1),
    #   flip = d & r & ~aux: s ^= flip; aux = (aux & ~(d & r)) | r2,
    #   writes += pop(flip) + pop((d & r & aux) | r2).
    # Draw t of word i hashes key + (t*nw + i)*GOLD: v = key + i*GOLD steps by GOLD per word
    # and the draws step by nw*GOLD. Loop registers: r0 mask, r1 hash, r2 temp, r3 draw
    # argument, r4 draw count, r5 s pointer, r6 0x7FEB352D, r7 0x846CA68B, r8 x pointer, r9 v,
    # r10 nw*GOLD, r11 p, r12 address of the row's last s word. Scratch in p (byte offsets):
    # 32 inv, 36 valid, 40 GOLD, 44 writes, 48 tail mask, 52 aux - s, 56 d, 60 aux word,
    # 64 0x55555555, 68 0x33333333, 72 0x0F0F0F0F, 76 0x01010101, 80 r.
    mov(r4, r8)
    mov(r5, r9)
    mov(r6, r10)
    mov(r7, r11)
    push({r4, r5, r6, r7})
    mov(r8, r2)
    mov(r11, r3)
    sub(r1, r1, r0)
    str(r1, [r3, 52])  # aux - s: the aux word of an s word is at s pointer + this
    mov(r6, 0x7F)
    lsl(r6, r6, 8)
    add(r6, 0xEB)
    lsl(r6, r6, 8)
    add(r6, 0x35)
    lsl(r6, r6, 8)
    add(r6, 0x2D)
    mov(r7, 0x84)
    lsl(r7, r7, 8)
    add(r7, 0x6C)
    lsl(r7, r7, 8)
    add(r7, 0xA6)
    lsl(r7, r7, 8)
    add(r7, 0x8B)
    mov(r4, 0x9E)
    lsl(r4, r4, 8)
    add(r4, 0x37)
    lsl(r4, r4, 8)
    add(r4, 0x79)
    lsl(r4, r4, 8)
    add(r4, 0xB9)
    str(r4, [r3, 40])  # GOLD
    ldr(r5, [r3, 8])  # nw
    mul(r4, r5)
    mov(r10, r4)  # nw * GOLD
    ldr(r4, [r3, 4])  # row
    mul(r4, r5)
    lsl(r4, r4, 2)
    add(r4, r4, r0)  # s row pointer
    lsl(r5, r5, 2)
    add(r5, r5, r4)
    sub(r5, 4)
    mov(r12, r5)  # its last word
    mov(r5, r4)
    # key = hash(st0 + (layer << 20) + row) -> r9
    ldr(r1, [r3, 0])
    ldr(r4, [r3, 28])
    lsl(r4, r4, 20)
    add(r1, r1, r4)
    ldr(r4, [r3, 4])
    add(r1, r1, r4)
    lsr(r2, r1, 16)
    eor(r1, r2)
    mul(r1, r6)
    lsr(r2, r1, 15)
    eor(r1, r2)
    mul(r1, r7)
    lsr(r2, r1, 16)
    eor(r1, r2)
    mov(r9, r1)
    # inv = 0 when up else all ones; valid = all ones until the last word; writes = 0
    mov(r0, 0)
    mvn(r1, r0)
    str(r1, [r3, 36])
    ldr(r2, [r3, 16])
    cmp(r2, 0)
    beq(down)
    mov(r1, 0)
    label(down)
    str(r1, [r3, 32])
    str(r0, [r3, 44])
    # tail mask = (1 << (n_in & 31)) - 1, or all ones when n_in is a multiple of 32
    ldr(r2, [r3, 12])
    mov(r1, 31)
    and_(r2, r1)
    mov(r1, 1)
    lsl(r1, r2)
    sub(r1, 1)
    cmp(r2, 0)
    bne(tailset)
    mvn(r1, r0)
    label(tailset)
    str(r1, [r3, 48])
    # popcount constants
    mov(r1, 0x55)
    lsl(r2, r1, 8)
    orr(r1, r2)
    lsl(r2, r1, 16)
    orr(r1, r2)
    str(r1, [r3, 64])
    mov(r1, 0x33)
    lsl(r2, r1, 8)
    orr(r1, r2)
    lsl(r2, r1, 16)
    orr(r1, r2)
    str(r1, [r3, 68])
    mov(r1, 0x0F)
    lsl(r2, r1, 8)
    orr(r1, r2)
    lsl(r2, r1, 16)
    orr(r1, r2)
    str(r1, [r3, 72])
    mov(r1, 0x01)
    lsl(r2, r1, 8)
    orr(r1, r2)
    lsl(r2, r1, 16)
    orr(r1, r2)
    str(r1, [r3, 76])
    ldr(r1, [r3, 8])
    cmp(r1, 0)
    beq(done)
    mov(r2, r12)
    cmp(r5, r2)
    bne(word)
    ldr(r1, [r3, 48])  # a one-word row: its only word is the last
    str(r1, [r3, 36])
    label(word)
    mov(r2, r8)
    ldr(r0, [r2, 0])  # x[i]
    add(r2, 4)
    mov(r8, r2)
    mov(r2, r11)
    ldr(r1, [r2, 32])
    eor(r0, r1)
    ldr(r1, [r2, 36])
    and_(r0, r1)  # t
    ldr(r1, [r5, 0])
    eor(r0, r1)  # d = s ^ t
    str(r0, [r2, 56])
    ldr(r3, [r2, 52])
    add(r3, r3, r5)
    ldr(r3, [r3, 0])
    str(r3, [r2, 60])  # aux word
    ldr(r0, [r2, 36])  # r = valid & k draws
    ldr(r4, [r2, 20])
    mov(r3, r9)
    cmp(r4, 0)
    beq(drawn)
    label(draw)
    mov(r1, r3)
    lsr(r2, r1, 16)
    eor(r1, r2)
    mul(r1, r6)
    lsr(r2, r1, 15)
    eor(r1, r2)
    mul(r1, r7)
    lsr(r2, r1, 16)
    eor(r1, r2)
    and_(r0, r1)
    mov(r2, r10)
    add(r3, r3, r2)
    sub(r4, 1)
    bne(draw)
    label(drawn)
    mov(r2, r11)
    str(r0, [r2, 80])
    ldr(r0, [r2, 36])  # r2 = valid & ~d & ~aux
    ldr(r1, [r2, 56])
    bic(r0, r1)
    ldr(r1, [r2, 60])
    bic(r0, r1)
    cmp(r0, 0)
    beq(conf)
    ldr(r4, [r2, 24])  # ks more draws, continuing from draw k
    cmp(r4, 0)
    beq(conf)
    label(draw2)
    mov(r1, r3)
    lsr(r2, r1, 16)
    eor(r1, r2)
    mul(r1, r6)
    lsr(r2, r1, 15)
    eor(r1, r2)
    mul(r1, r7)
    lsr(r2, r1, 16)
    eor(r1, r2)
    and_(r0, r1)
    mov(r2, r10)
    add(r3, r3, r2)
    sub(r4, 1)
    bne(draw2)
    label(conf)
    mov(r2, r11)
    ldr(r1, [r2, 56])
    ldr(r3, [r2, 80])
    and_(r1, r3)  # wrong = d & r
    ldr(r3, [r2, 60])  # aux word
    mov(r4, r1)
    bic(r4, r3)  # flip = wrong & ~aux
    ldr(r2, [r5, 0])
    eor(r2, r4)
    str(r2, [r5, 0])  # s ^= flip
    mov(r2, r3)
    bic(r2, r1)
    orr(r2, r0)  # new aux = (aux & ~wrong) | r2
    and_(r1, r3)
    orr(r1, r0)  # changed confidence bits = (wrong & aux) | r2
    mov(r0, r11)
    ldr(r3, [r0, 52])
    add(r3, r3, r5)
    str(r2, [r3, 0])
    # writes += pop(flip) + pop(changed confidence bits)
    ldr(r3, [r0, 64])
    lsr(r2, r4, 1)
    and_(r2, r3)
    sub(r4, r4, r2)
    lsr(r2, r1, 1)
    and_(r2, r3)
    sub(r1, r1, r2)
    ldr(r3, [r0, 68])
    lsr(r2, r4, 2)
    and_(r4, r3)
    and_(r2, r3)
    add(r4, r4, r2)
    lsr(r2, r1, 2)
    and_(r1, r3)
    and_(r2, r3)
    add(r1, r1, r2)
    add(r4, r4, r1)  # nibbles <= 8
    lsr(r2, r4, 4)
    add(r4, r4, r2)
    ldr(r3, [r0, 72])
    and_(r4, r3)
    ldr(r3, [r0, 76])
    mul(r4, r3)
    lsr(r4, r4, 24)
    ldr(r1, [r0, 44])
    add(r1, r1, r4)
    str(r1, [r0, 44])
    # next word: v += GOLD
    ldr(r1, [r0, 40])
    mov(r3, r9)
    add(r3, r3, r1)
    mov(r9, r3)
    add(r5, 4)
    mov(r1, r12)
    cmp(r5, r1)
    bcs(last)  # at or past the last word
    b(word)
    label(last)
    bne(done)  # past it
    ldr(r1, [r0, 48])  # at the last word: mask its padding bits
    str(r1, [r0, 36])
    b(word)
    label(done)
    mov(r2, r11)
    ldr(r0, [r2, 44])
    pop({r4, r5, r6, r7})
    mov(r8, r4)
    mov(r9, r5)
    mov(r10, r6)
    mov(r11, r7)


def update_row_b2(s, aux, row, x, nw, n_in, up, k, ks, st, layer):
    # same call and result as kernels.update_row(2, ...): the step-key word goes into the
    # block through a viper copy (a Python int of it could be a long int: it would allocate)
    p = _PU
    _K.load_row(p, st, 0, 1)
    p[1] = row
    p[2] = nw
    p[3] = n_in
    p[4] = 1 if up else 0
    p[5] = k
    p[6] = ks
    p[7] = layer
    return update_row_b2_asm(s, aux, x, p)
