# The viper twin of kernels_thumb.dense_argmax_asm, for ports without asm_thumb (ESP32,
# RISC-V, the unix port): the forward pass of a prototype layer, its winner and the label's
# best prototype in one call (fast.py). A module of its own so that the Pico, which runs the
# asm version, does not load this machine code into its heap. Same rules as kernels.py
# (no literal >= 2**30, masked 32-bit arithmetic, no allocation).
import micropython


@micropython.viper
def dense_argmax(x: ptr32, w: ptr32, out: ptr32, pb: ptr32) -> int:
    # dense_binary that also keeps the winner (largest value, lowest index on ties) and the
    # best row of the global indices base + j in [lo, hi) (-1: none): a prototype layer's
    # forward pass, its winner and the label's best prototype in one call. The twin of
    # kernels_thumb.dense_argmax_asm, same block pb: [nw, nout, nbits, lo, hi, base] in,
    # pb[6] winner, pb[7] its value, pb[8] best of [lo, hi), pb[9] its value out (16 words);
    # pb[14] the mode: 0 one core, 1 leader, 2 server of the two-core split (the 36-word block
    # and its protocol: kernels_thumb.py). Returns the winner (-1 when nout is 0; -2: a server
    # that went idle).
    mode = int(pb[14])
    seen = 0
    polls = 0
    go = 0
    x0 = uint(x)  # x, w and out move during a job: a server's next job starts over
    w0 = uint(w)
    o0 = uint(out)
    if mode == 2:
        polls = int(pb[18])
        seen = int(pb[19])
    while True:
        if mode == 2:  # wait for GO != SEEN
            while polls > 0 and int(pb[16]) == seen:
                polls -= 1
            if polls <= 0:
                return -2
            seen = int(pb[16])
            pb[19] = seen
            w = ptr32(w0)
            out = ptr32(o0)
        elif mode == 1:  # hand core 1 its job: the label's range, then GO
            o1 = ptr32(uint(pb) + 64)
            o1[3] = pb[3]
            o1[4] = pb[4]
            go = (int(pb[32]) + 1) & 0xFFFFFF
            pb[32] = go
        nw = int(pb[0])
        nout = int(pb[1])
        nbits = int(pb[2])
        lo = int(pb[3])
        hi = int(pb[4])
        base = int(pb[5])
        win = -1
        best = -1
        wv = 0
        bv = 0
        m1 = (uint(0x5555) << 16) | uint(0x5555)
        m2 = (uint(0x3333) << 16) | uint(0x3333)
        m4 = uint(0x0F0F0F0F)
        h01 = uint(0x01010101)
        nb = nw >> 3
        for j in range(nout):
            x = ptr32(x0)
            acc = 0
            for _ in range((nw & 7) >> 1):
                a = uint(x[0]) ^ uint(w[0])
                b = uint(x[1]) ^ uint(w[1])
                a = a - ((a >> 1) & m1)
                b = b - ((b >> 1) & m1)
                a = (a & m2) + ((a >> 2) & m2) + (b & m2) + ((b >> 2) & m2)
                acc += int(((((a & m4) + ((a >> 4) & m4)) * h01) >> 24) & uint(0xFF))
                x = ptr32(uint(x) + 8)
                w = ptr32(uint(w) + 8)
            if nw & 1:
                a = uint(x[0]) ^ uint(w[0])
                a = a - ((a >> 1) & m1)
                a = (a & m2) + ((a >> 2) & m2)
                acc += int((((a + (a >> 4)) & m4) * h01 >> 24) & uint(0xFF))
                x = ptr32(uint(x) + 4)
                w = ptr32(uint(w) + 4)
            if nb:
                ones = uint(0)
                twos = uint(0)
                fours = uint(0)
                eights = 0
                for _ in range(nb):
                    # words 0-3: two full adders into ones, their carries p, q (as twos ^ carry)
                    # added into twos; r = fours ^ (carry into fours). Same for words 4-7 -> s.
                    u = uint(x[0]) ^ uint(w[0]) ^ ones
                    p = (uint(x[1]) ^ uint(w[1]) ^ ones) & u ^ ones ^ twos
                    ones = u ^ uint(x[1]) ^ uint(w[1])
                    u = uint(x[2]) ^ uint(w[2]) ^ ones
                    q = (uint(x[3]) ^ uint(w[3]) ^ ones) & u ^ ones ^ twos
                    ones = u ^ uint(x[3]) ^ uint(w[3])
                    r = p & q ^ twos ^ fours
                    twos = p ^ q ^ twos
                    u = uint(x[4]) ^ uint(w[4]) ^ ones
                    p = (uint(x[5]) ^ uint(w[5]) ^ ones) & u ^ ones ^ twos
                    ones = u ^ uint(x[5]) ^ uint(w[5])
                    u = uint(x[6]) ^ uint(w[6]) ^ ones
                    q = (uint(x[7]) ^ uint(w[7]) ^ ones) & u ^ ones ^ twos
                    ones = u ^ uint(x[7]) ^ uint(w[7])
                    s = p & q ^ twos ^ fours
                    twos = p ^ q ^ twos
                    f = r & s ^ fours  # the carry into eights
                    fours = r ^ s ^ fours
                    f = f - ((f >> 1) & m1)
                    f = (f & m2) + ((f >> 2) & m2)
                    eights += int((((f + (f >> 4)) & m4) * h01 >> 24) & uint(0xFF))
                    x = ptr32(uint(x) + 32)
                    w = ptr32(uint(w) + 32)
                # flush: 8 * eights + 4 * pop(fours) + 2 * pop(twos) + pop(ones); byte lanes
                # hold at most 2 * (2 * 8 + 8) + 8 = 56, so the 4-lane sum (<= 224) fits a byte
                fours = fours - ((fours >> 1) & m1)
                twos = twos - ((twos >> 1) & m1)
                ones = ones - ((ones >> 1) & m1)
                f = (((fours & m2) + ((fours >> 2) & m2)) << 1) + (twos & m2) + ((twos >> 2) & m2)
                ones = (ones & m2) + ((ones >> 2) & m2)
                f = (((f & m4) + ((f >> 4) & m4)) << 1) + (ones & m4) + ((ones >> 4) & m4)
                acc += (eights << 3) + int(((f * h01) >> 24) & uint(0xFF))
            v = nbits - 2 * acc
            out[j] = v
            g = base + j
            if win < 0 or v > wv:
                win = g
                wv = v
            if lo <= g and g < hi and (best < 0 or v > bv):
                best = g
                bv = v
        pb[6] = win
        pb[7] = wv
        pb[8] = best
        pb[9] = bv
        if mode == 2:
            pb[17] = seen  # DONE
            polls = int(pb[18])
            continue
        if mode == 1:  # wait for core 1, merge its half (ties: core 0 holds the lower indices)
            while int(pb[33]) != go:
                pass
            o1 = ptr32(uint(pb) + 64)
            # its words as signed ints (a 64-bit port zero-extends 32-bit loads)
            top = uint(1) << 31
            ext = ~(top | (top - 1))  # 0 on a 32-bit port
            v1 = int(o1[7])
            if uint(v1) & top:
                v1 = int(uint(v1) | ext)
            b1 = int(o1[8])
            if uint(b1) & top:
                b1 = int(uint(b1) | ext)
            bv1 = int(o1[9])
            if uint(bv1) & top:
                bv1 = int(uint(bv1) | ext)
            if v1 > wv:
                pb[6] = o1[6]
                pb[7] = v1
            if b1 >= 0 and (best < 0 or bv1 > bv):
                pb[8] = b1
                pb[9] = bv1
        return int(pb[6])
