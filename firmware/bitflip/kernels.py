# Viper kernels: the only hot code on the device. They own no buffers, do no I/O and
# allocate nothing; callers pass preallocated, 4-byte-aligned buffers (bytearray/array).
#
# Portability rules (see README "Device code"):
# - no integer literal >= 2**30 (mpy-cross rejects it for every board arch): big masks are
#   built with shifts at function entry;
# - viper ints are 64-bit on the unix port and 32-bit on boards: every product or shift
#   that may exceed 32 bits is masked, so both give the same numbers;
# - results are stored through ptr32 into array('i') buffers: Python reads them back as
#   signed 32-bit values on every port.
import micropython


@micropython.viper
def hash32(x: uint) -> uint:
    # lowbias32 (C. Wellons): the counter-based hash every random bit comes from.
    # Mirrored exactly by bitflip.reference.hash32 in numpy.
    m = (uint(0xFFFF) << 16) | uint(0xFFFF)
    c1 = (uint(0x7FEB) << 16) | uint(0x352D)
    c2 = (uint(0x846C) << 16) | uint(0xA68B)
    x &= m
    x ^= x >> 16
    x = (x * c1) & m
    x ^= x >> 15
    x = (x * c2) & m
    x ^= x >> 16
    return x


@micropython.viper
def dense_binary(x: ptr32, w: ptr32, out: ptr32, nw: int, nout: int, nbits: int):
    # out[j] = sum_i xhat_i * what_ji over nbits real inputs, +-1 coded as bits (1 = +1):
    # agreements - disagreements = nbits - 2 * popcount(x ^ w_j). Padding bits are 0 in
    # both planes, so they never count as disagreements.
    #
    # Speed (armv6m, see benchmarks/kernel_costs.py): mpy-cross keeps only x and w in
    # registers and spills every other local, so the code walks x and w as pointers (no
    # index arithmetic), writes few long statements, and counts bits Harley-Seal style:
    # a carry-save adder tree over 8 words keeps per-bit counts in three bit-planes (ones,
    # twos, fours) and only the 'eights' carry is popcounted, once per 8 words. The planes
    # are flushed at the end of the row. Rows shorter than 8 words and the nw % 8 words
    # before the blocks take a plain SWAR popcount (no flush needed).
    # maj(o, a, b) = o ^ ((o ^ a) & (o ^ b)); with u = o ^ a the carry is o ^ ((o ^ b) & u).
    m1 = (uint(0x5555) << 16) | uint(0x5555)
    m2 = (uint(0x3333) << 16) | uint(0x3333)
    m4 = uint(0x0F0F0F0F)
    h01 = uint(0x01010101)
    x0 = uint(x)
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
        out[j] = nbits - 2 * acc


@micropython.viper
def dense_ternary(x: ptr32, s: ptr32, z: ptr32, out: ptr32, nw: int, nout: int):
    # Ternary weights: sign plane s (1 = +1) and nonzero plane z (1 = weight is +-1, 0 = 0).
    # out[j] = sum over nonzero weights of agreement(+1)/disagreement(-1)
    #        = popcount(z_j) - 2 * popcount((x ^ s_j) & z_j).
    # With d = (x ^ s) & z (disagree) and a = z ^ d (agree, disjoint from d):
    #   pop(z) - 2 pop(d) = pop(a) + pop(~d) - 32 per word,
    # a plain popcount of the word stream (a, ~d), which runs through the same Harley-Seal
    # adder tree as dense_binary (4 input words = 8 stream words per block). For the pair
    # (a, ~d) the full adder simplifies: a implies ~d, so ones' = ~(ones ^ z) and
    # carry = a | (ones & ~d). `mm` is 0xFFFFFFFF: ~ would set 32 high bits on the unix port.
    m1 = (uint(0x5555) << 16) | uint(0x5555)
    m2 = (uint(0x3333) << 16) | uint(0x3333)
    m4 = uint(0x0F0F0F0F)
    h01 = uint(0x01010101)
    mm = (uint(0xFFFF) << 16) | uint(0xFFFF)
    x0 = uint(x)
    nb = nw >> 2
    for j in range(nout):
        x = ptr32(x0)
        acc = 0
        for _ in range(nw & 3):
            d = (uint(x[0]) ^ uint(s[0])) & uint(z[0])
            a = uint(z[0]) ^ d
            b = d ^ mm
            a = a - ((a >> 1) & m1)
            b = b - ((b >> 1) & m1)
            a = (a & m2) + ((a >> 2) & m2) + (b & m2) + ((b >> 2) & m2)
            acc += int(((((a & m4) + ((a >> 4) & m4)) * h01) >> 24) & uint(0xFF))
            x = ptr32(uint(x) + 4)
            s = ptr32(uint(s) + 4)
            z = ptr32(uint(z) + 4)
        if nb:
            ones = uint(0)
            twos = uint(0)
            fours = uint(0)
            eights = 0
            for _ in range(nb):
                d = (uint(x[0]) ^ uint(s[0])) & uint(z[0])
                p = ((d ^ mm) & ones | uint(z[0]) ^ d) ^ twos
                ones = ones ^ uint(z[0]) ^ mm
                d = (uint(x[1]) ^ uint(s[1])) & uint(z[1])
                q = ((d ^ mm) & ones | uint(z[1]) ^ d) ^ twos
                ones = ones ^ uint(z[1]) ^ mm
                r = p & q ^ twos ^ fours
                twos = p ^ q ^ twos
                d = (uint(x[2]) ^ uint(s[2])) & uint(z[2])
                p = ((d ^ mm) & ones | uint(z[2]) ^ d) ^ twos
                ones = ones ^ uint(z[2]) ^ mm
                d = (uint(x[3]) ^ uint(s[3])) & uint(z[3])
                q = ((d ^ mm) & ones | uint(z[3]) ^ d) ^ twos
                ones = ones ^ uint(z[3]) ^ mm
                t = p & q ^ twos ^ fours
                twos = p ^ q ^ twos
                f = r & t ^ fours
                fours = r ^ t ^ fours
                f = f - ((f >> 1) & m1)
                f = (f & m2) + ((f >> 2) & m2)
                eights += int((((f + (f >> 4)) & m4) * h01 >> 24) & uint(0xFF))
                x = ptr32(uint(x) + 16)
                s = ptr32(uint(s) + 16)
                z = ptr32(uint(z) + 16)
            fours = fours - ((fours >> 1) & m1)
            twos = twos - ((twos >> 1) & m1)
            ones = ones - ((ones >> 1) & m1)
            f = (((fours & m2) + ((fours >> 2) & m2)) << 1) + (twos & m2) + ((twos >> 2) & m2)
            ones = (ones & m2) + ((ones >> 2) & m2)
            f = (((f & m4) + ((f >> 4) & m4)) << 1) + (ones & m4) + ((ones >> 4) & m4)
            acc += (eights << 3) + int(((f * h01) >> 24) & uint(0xFF))
        out[j] = acc - (nw << 5)


@micropython.viper
def sign_pack(a: ptr32, bits: ptr32, n: int, nw: int):
    # bits = packed (a[i] >= 0) for i < n, little-endian words; padding bits 0.
    # a is array('i'): compare the sign bit so 64-bit and 32-bit ports agree.
    sbit = uint(1) << 31
    for i in range(nw):
        bits[i] = 0
    for i in range(n):
        if (uint(a[i]) & sbit) == uint(0):
            bits[i >> 5] = bits[i >> 5] | (uint(1) << (i & 31))


@micropython.viper
def sub_thresholds(a: ptr32, t: ptr32, n: int):
    # a[i] -= t[i]: pre-activations relative to the units' thresholds (pool.py); 32-bit
    # wrap-around arithmetic, the same on every port
    for i in range(n):
        a[i] = uint(a[i]) - uint(t[i])


@micropython.viper
def crc32_check(buf: ptr8, start: int, n: int, table: ptr32) -> int:
    # CRC-32 (zlib polynomial, reflected) of buf[start:start+n], compared with the
    # little-endian u32 stored right after it. Returns 1 if equal. No slicing (slices
    # allocate) and no uint return (a value >= 2**30 would allocate a long int on boards).
    m = (uint(0xFFFF) << 16) | uint(0xFFFF)
    c = m
    for i in range(start, start + n):
        c = uint(table[int((c ^ uint(buf[i])) & uint(0xFF))]) ^ (c >> 8)
    c = (c ^ m) & m
    e = start + n
    got = uint(buf[e]) | (uint(buf[e + 1]) << 8) | (uint(buf[e + 2]) << 16) | (uint(buf[e + 3]) << 24)
    if c == (got & m):
        return 1
    return 0


@micropython.viper
def crc32_hex(buf: ptr8, start: int, n: int, table: ptr32, dst: int):
    # CRC-32 of buf[start:start+n] written as 8 lowercase hex digits at buf[dst:dst+8]:
    # how ack/nak records get their checksum without allocating.
    m = (uint(0xFFFF) << 16) | uint(0xFFFF)
    c = m
    for i in range(start, start + n):
        c = uint(table[int((c ^ uint(buf[i])) & uint(0xFF))]) ^ (c >> 8)
    c = (c ^ m) & m
    for i in range(8):
        d = int((c >> uint(28 - 4 * i)) & uint(0xF))
        buf[dst + i] = d + 48 if d < 10 else d + 87


def crc32_table(table):
    # table: array('I', 256); filled once at start-up (allocation-free afterwards).
    poly = (0xEDB8 << 16) | 0x8320
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table[n] = c


# --- randomness ------------------------------------------------------------------------
# Every random bit comes from lowbias32 of a counter (see bitflip.reference for the numpy
# twin). Keys never leave viper as Python ints (a value >= 2**30 would allocate on a
# board); they live in a small array('I') state buffer `st`:
#   st[0] = h(h(seed) + step)                 per training step
#   key(layer, row) = h(st[0] + (layer << 20) + row)
#   word i of draw t = h(key + (t * nw + i) * GOLD),  GOLD = 0x9E3779B9
# A mask of density 1/2**k is the AND of draws t = 0 .. k-1.


@micropython.viper
def step_key(st: ptr32, seed: int, step: int):
    m = (uint(0xFFFF) << 16) | uint(0xFFFF)
    c1 = (uint(0x7FEB) << 16) | uint(0x352D)
    c2 = (uint(0x846C) << 16) | uint(0xA68B)
    x = uint(seed) & m
    for r in range(2):
        x ^= x >> 16
        x = (x * c1) & m
        x ^= x >> 15
        x = (x * c2) & m
        x ^= x >> 16
        if r == 0:
            x = (x + uint(step)) & m
    st[0] = x


@micropython.viper
def flip_row(w: ptr32, row: int, x: ptr32, nw: int, n_in: int, up: int, k: int, st: ptr32, layer: int) -> int:
    # Flip a random subset of the row's erroneous contributions: the weight bits whose
    # product with the input has the wrong sign for the desired direction (up: the
    # neuron's sum should grow -> bits where x != w; down -> bits where x == w), each
    # kept with probability 1/2**k. Returns the number of bits flipped.
    m = (uint(0xFFFF) << 16) | uint(0xFFFF)
    c1 = (uint(0x7FEB) << 16) | uint(0x352D)
    c2 = (uint(0x846C) << 16) | uint(0xA68B)
    gold = (uint(0x9E37) << 16) | uint(0x79B9)
    m1 = (uint(0x5555) << 16) | uint(0x5555)
    m2 = (uint(0x3333) << 16) | uint(0x3333)
    key = (uint(st[0]) + (uint(layer) << 20) + uint(row)) & m
    key ^= key >> 16
    key = (key * c1) & m
    key ^= key >> 15
    key = (key * c2) & m
    key ^= key >> 16
    r = ptr32(uint(w) + (uint(row * nw) << 2))
    inv = m if up == 0 else uint(0)
    tail = n_in & 31
    flips = 0
    for i in range(nw):
        wrong = (uint(x[i]) ^ uint(r[i]) ^ inv) & m
        if i == nw - 1 and tail != 0:
            wrong &= (uint(1) << tail) - uint(1)
        for t in range(k):
            h = (key + uint(t * nw + i) * gold) & m
            h ^= h >> 16
            h = (h * c1) & m
            h ^= h >> 15
            h = (h * c2) & m
            h ^= h >> 16
            wrong &= h
        if wrong != uint(0):
            r[i] = uint(r[i]) ^ wrong
            v = wrong - ((wrong >> 1) & m1)
            v = (v & m2) + ((v >> 2) & m2)
            v = (v + (v >> 4)) & uint(0x0F0F0F0F)
            flips += int(((v * uint(0x01010101)) >> 24) & uint(0xFF))
    return flips


@micropython.viper
def fill_random(w: ptr32, nw: int, n_out: int, n_in: int, seed: int, layer: int):
    # initial sign bits: density 1/2 draws with the init seed h(h(seed ^ 0x5BD1E995) + 0)
    m = (uint(0xFFFF) << 16) | uint(0xFFFF)
    c1 = (uint(0x7FEB) << 16) | uint(0x352D)
    c2 = (uint(0x846C) << 16) | uint(0xA68B)
    gold = (uint(0x9E37) << 16) | uint(0x79B9)
    a = (uint(seed) ^ ((uint(0x5BD1) << 16) | uint(0xE995))) & m
    for r in range(2):
        a ^= a >> 16
        a = (a * c1) & m
        a ^= a >> 15
        a = (a * c2) & m
        a ^= a >> 16
    tail = n_in & 31
    for j in range(n_out):
        key = (a + (uint(layer) << 20) + uint(j)) & m
        key ^= key >> 16
        key = (key * c1) & m
        key ^= key >> 15
        key = (key * c2) & m
        key ^= key >> 16
        for i in range(nw):
            h = (key + uint(i) * gold) & m
            h ^= h >> 16
            h = (h * c1) & m
            h ^= h >> 15
            h = (h * c2) & m
            h ^= h >> 16
            if i == nw - 1 and tail != 0:
                h &= (uint(1) << tail) - uint(1)
            w[j * nw + i] = h


@micropython.viper
def fill_valid(w: ptr32, nw: int, n_out: int, n_in: int):
    # every real input bit set, padding clear (ternary: all weights start nonzero)
    m = (uint(0xFFFF) << 16) | uint(0xFFFF)
    tail = n_in & 31
    for j in range(n_out):
        for i in range(nw):
            v = m
            if i == nw - 1 and tail != 0:
                v = (uint(1) << tail) - uint(1)
            w[j * nw + i] = v


@micropython.viper
def vote(w: ptr32, z: ptr32, tern: int, dirs: ptr8, nw: int, n_out: int, n_in: int, v: ptr32):
    # v[k] = sum over neurons c with a direction (dirs: 1 up, 2 down) of
    #        dir_c * weight_ck: how the erroneous neurons above want input k to move.
    # Weights are +-1 from the sign plane w; with tern != 0 a 0 bit in z is a 0 weight.
    for k in range(n_in):
        v[k] = 0
    for c in range(n_out):
        dc = int(dirs[c])
        if dc == 0:
            continue
        d = 1 if dc == 1 else -1
        r = ptr32(uint(w) + (uint(c * nw) << 2))
        zr = ptr32(uint(z) + (uint(c * nw) << 2))
        for k in range(n_in):
            sh = uint(k & 31)
            if tern and ((uint(zr[k >> 5]) >> sh) & uint(1)) == uint(0):
                continue
            if (uint(r[k >> 5]) >> sh) & uint(1):
                v[k] = v[k] + d
            else:
                v[k] = v[k] - d


@micropython.viper
def hidden_dirs(v: ptr32, pre: ptr32, dirs: ptr8, n: int, window: int, idx: ptr16) -> int:
    # A hidden unit is in error when the vote from above disagrees with its sign and its
    # pre-activation is within `window` of the threshold (close enough to be moved).
    # dirs[k] = 1 (should go up), 2 (down) or 0; the indices of the units in error go to
    # idx[0:count] in increasing order. Returns count.
    sb = uint(1) << 31
    count = 0
    for k in range(n):
        vk = int((uint(v[k]) ^ sb) - sb)  # sign-extend: ptr32 loads are unsigned on unix
        a = int((uint(pre[k]) ^ sb) - sb)
        dirs[k] = 0
        if vk == 0:
            continue
        if vk > 0 and a >= 0:
            continue
        if vk < 0 and a < 0:
            continue
        if a > window or a < 0 - window - 1:
            continue
        dirs[k] = 1 if vk > 0 else 2
        idx[count] = k
        count += 1
    return count


@micropython.viper
def load_row(dst: ptr32, src: ptr32, woff: int, nw: int):
    # dst[0:nw] = src[woff:woff+nw] (a sample row out of the frame buffer)
    for i in range(nw):
        dst[i] = src[woff + i]


@micropython.viper
def argmax(a: ptr32, lo: int, hi: int) -> int:
    # index in [lo, hi) of the largest signed value, lowest index on ties
    sb = uint(1) << 31
    best = int((uint(a[lo]) ^ sb) - sb)
    bi = lo
    for i in range(lo + 1, hi):
        v = int((uint(a[i]) ^ sb) - sb)
        if v > best:
            best = v
            bi = i
    return bi


@micropython.viper
def update_row(
    kind: int,
    s: ptr32,
    aux: ptr32,
    row: int,
    x: ptr32,
    nw: int,
    n_in: int,
    up: int,
    k: int,
    ks: int,
    st: ptr32,
    layer: int,
) -> int:
    # Move a row's 2-bit weight states toward the target bits t = x (up: the neuron's sum
    # should grow) or NOT x (down), for the bits chosen by a random mask of density 1/2**k.
    #   kind 2, binary2 (sign s, confidence aux): a wrong confident bit loses confidence, a
    #     wrong weak bit flips its sign; right weak bits gain confidence with density 1/2**ks
    #     (draws k .. k+ks-1 of the same counter, so independent of the first mask);
    #   kind 3, ternary (sign s, nonzero aux): a wrong nonzero weight becomes 0, a zero
    #     weight becomes nonzero with sign t (its sign bit is kept while it is 0).
    # (kind 1, binary, is flip_row.) Returns the number of state bits written.
    m = (uint(0xFFFF) << 16) | uint(0xFFFF)
    c1 = (uint(0x7FEB) << 16) | uint(0x352D)
    c2 = (uint(0x846C) << 16) | uint(0xA68B)
    gold = (uint(0x9E37) << 16) | uint(0x79B9)
    m1 = (uint(0x5555) << 16) | uint(0x5555)
    m2 = (uint(0x3333) << 16) | uint(0x3333)
    key = (uint(st[0]) + (uint(layer) << 20) + uint(row)) & m
    key ^= key >> 16
    key = (key * c1) & m
    key ^= key >> 15
    key = (key * c2) & m
    key ^= key >> 16
    sr = ptr32(uint(s) + (uint(row * nw) << 2))
    ar = ptr32(uint(aux) + (uint(row * nw) << 2))
    inv = m if up == 0 else uint(0)
    tail = n_in & 31
    writes = 0
    for i in range(nw):
        valid = m
        if i == nw - 1 and tail != 0:
            valid = (uint(1) << tail) - uint(1)
        t = (uint(x[i]) ^ inv) & valid
        sv = uint(sr[i])
        av = uint(ar[i])
        r = valid
        for d in range(k):
            h = (key + uint(d * nw + i) * gold) & m
            h ^= h >> 16
            h = (h * c1) & m
            h ^= h >> 15
            h = (h * c2) & m
            h ^= h >> 16
            r &= h
        if kind == 2:
            r2 = valid & ~(sv ^ t) & ~av
            if r2 != uint(0):
                for d in range(k, k + ks):
                    h = (key + uint(d * nw + i) * gold) & m
                    h ^= h >> 16
                    h = (h * c1) & m
                    h ^= h >> 15
                    h = (h * c2) & m
                    h ^= h >> 16
                    r2 &= h
            wrong = (sv ^ t) & r
            flip = wrong & ~av
            sr[i] = sv ^ flip
            ar[i] = (av & ~(wrong & av)) | r2
            v = flip  # sign bits that change
            u = (wrong & av) | r2  # confidence bits that change
        else:
            to_zero = av & (sv ^ t) & r
            grow = ~av & valid & r
            ar[i] = (av & ~to_zero) | grow
            sr[i] = (sv & ~grow) | (t & grow)
            v = grow & (sv ^ t)  # sign bits that change
            u = to_zero | grow  # nonzero bits that change
        v = v - ((v >> 1) & m1)
        v = (v & m2) + ((v >> 2) & m2)
        v = (v + (v >> 4)) & uint(0x0F0F0F0F)
        u = u - ((u >> 1) & m1)
        u = (u & m2) + ((u >> 2) & m2)
        u = (u + (u >> 4)) & uint(0x0F0F0F0F)
        writes += int(((v * uint(0x01010101)) >> 24) & uint(0xFF)) + int(((u * uint(0x01010101)) >> 24) & uint(0xFF))
    return writes


@micropython.viper
def init_row(kind: int, s: ptr32, aux: ptr32, row: int, x: ptr32, nw: int, n_in: int):
    # a prototype initialised from a sample: sign bits = x, binary2 weak, ternary nonzero
    m = (uint(0xFFFF) << 16) | uint(0xFFFF)
    tail = n_in & 31
    sr = ptr32(uint(s) + (uint(row * nw) << 2))
    ar = ptr32(uint(aux) + (uint(row * nw) << 2))
    for i in range(nw):
        valid = m
        if i == nw - 1 and tail != 0:
            valid = (uint(1) << tail) - uint(1)
        sr[i] = uint(x[i]) & valid
        if kind == 2:
            ar[i] = 0
        elif kind == 3:
            ar[i] = valid
