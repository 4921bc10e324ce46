/* bitflip inference in C (bitflip.h). Twin of firmware/bitflip/encode.py and layers.py. */
#include "bitflip.h"

static int popc(uint32_t x) {
    x -= (x >> 1) & 0x55555555u;
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    x = (x + (x >> 4)) & 0x0F0F0F0Fu;
    return (int)((x * 0x01010101u) >> 24);
}

static int32_t fl(int32_t v, int s) { return v >= 0 ? v >> s : -((-v + (1 << s) - 1) >> s); } /* floor(v / 2^s) */

static int32_t px(const uint8_t *img, int side, int32_t y, int32_t x) {
    return (y < 0 || y >= side || x < 0 || x >= side) ? 0 : img[y * side + x];
}

/* integer deskew: moments, centre in 1/1024 px, shear in 1/4096 px per row, bilinear 10-bit weights */
static void deskew(const uint8_t *src, uint8_t *dst, int side, int32_t *rs) {
    int32_t m = 0, sy = 0, sx = 0, syy = 0, sxy = 0, a = 0;
    for (int y = 0; y < side; y++) {
        int32_t r = 0, rx = 0;
        for (int x = 0; x < side; x++) { r += src[y * side + x]; rx += src[y * side + x] * x; }
        rs[y] = r; rs[side + y] = rx; m += r; sy += r * y; sx += rx;
    }
    if (m == 0) { for (int i = 0; i < side * side; i++) dst[i] = 0; return; }
    int32_t ci = sy / m, cj = sx / m, sy1 = sy - ci * m, sx1 = sx - cj * m;
    for (int y = 0; y < side; y++) {
        int32_t dy = y - ci;
        syy += dy * dy * rs[y];
        sxy += dy * (rs[side + y] - cj * rs[y]);
    }
    int32_t fy = (sy1 * 2048 + m) / (m * 2), fx = (sx1 * 2048 + m) / (m * 2);
    int32_t vyy = syy - ((sy1 * fy + 512) >> 10), vxy = sxy - ((sx1 * fy + 512) >> 10);
    if (vyy > 0) {
        int32_t num = vxy < 0 ? -vxy : vxy, den = vyy;
        while (num >= 131072 || den >= 131072) { num >>= 1; den >>= 1; }
        a = den == 0 ? 16384 : (num << 12) / den;
        if (a > 16384) a = 16384;
        if (vxy < 0) a = -a;
    }
    int32_t half = side * 512, cyq = ci * 1024 + fy - half, cxq = cj * 1024 + fx - half;
    for (int y = 0; y < side; y++) {
        int32_t syq = y * 1024 + cyq, shear = fl(a * (y * 1024 - half) + 2048, 12);
        int32_t y0 = fl(syq, 10), wy = syq - y0 * 1024;
        for (int x = 0; x < side; x++) {
            int32_t sxq = x * 1024 + shear + cxq, x0 = fl(sxq, 10), wx = sxq - x0 * 1024;
            int32_t acc = px(src, side, y0, x0) * (1024 - wy) * (1024 - wx) + px(src, side, y0, x0 + 1) * (1024 - wy) * wx
                        + px(src, side, y0 + 1, x0) * wy * (1024 - wx) + px(src, side, y0 + 1, x0 + 1) * wy * wx;
            dst[y * side + x] = (uint8_t)((acc + 524288) >> 20);
        }
    }
}

int bitflip_predict(const bitflip_model_t *m, const int32_t *values, int32_t *scores, uint32_t *work) {
    int nf = m->n_features, nfw = (nf + 3) / 4, side = m->side, n = nf;
    uint8_t *a = (uint8_t *)work, *b = (uint8_t *)(work + nfw), *src = a;
    int32_t *rs = (int32_t *)(work + 2 * nfw);
    uint32_t *h0 = work + 2 * nfw + 64, *h1 = h0 + m->max_nw;
    int32_t *pre = (int32_t *)(h1 + m->max_nw);
    for (int i = 0; i < nf; i++) { /* 1. scaling */
        int32_t v = values[i], q;
        if (m->scale == BITFLIP_SCALE_MINMAX) {
            int32_t s = m->span[i], d = v - m->lo[i];
            q = (s > 0 && d > 0) ? (d >= s ? 255 : (d * 510 + s) / (2 * s)) : 0;
        } else {
            q = v < 0 ? 0 : v > 255 ? 255 : v;
        }
        a[i] = (uint8_t)q;
    }
    for (int k = 0; k < m->n_steps; k++) { /* 2. image steps */
        uint8_t *dst = src == a ? b : a;
        int f = m->arg[k];
        if (m->step[k] == BITFLIP_DESKEW) {
            deskew(src, dst, side, rs);
        } else if (m->step[k] == BITFLIP_CROP) {
            int o = (side - f) / 2;
            for (int y = 0; y < f; y++) for (int x = 0; x < f; x++) dst[y * f + x] = src[(y + o) * side + x + o];
            side = f;
        } else {
            int s = side / f;
            for (int by = 0; by < s; by++) for (int bx = 0; bx < s; bx++) {
                int32_t acc = 0;
                for (int dy = 0; dy < f; dy++) for (int dx = 0; dx < f; dx++) acc += src[(by * f + dy) * side + bx * f + dx];
                dst[by * s + bx] = (uint8_t)((acc + f * f / 2) / (f * f));
            }
            side = s;
        }
        src = dst;
        n = side * side;
    }
    const bitflip_layer_t *l0 = &m->layers[0]; /* 3. bit levels, packed */
    for (int w = 0; w < l0->nw; w++) h0[w] = 0;
    if (m->n_keep) { /* only the kept bits: bit j is bit keep[j] of the full row */
        for (int j = 0; j < m->n_keep; j++)
            if (src[m->keep[j] % n] >= m->levels[m->keep[j] / n]) h0[j >> 5] |= 1u << (j & 31);
    } else {
        for (int l = 0, bit = 0; l < m->n_levels; l++)
            for (int i = 0; i < n; i++, bit++)
                if (src[i] >= m->levels[l]) h0[bit >> 5] |= 1u << (bit & 31);
    }
    uint32_t *x = h0, *y = h1;
    for (int li = 0; li < m->n_layers; li++) { /* 4. layers: XOR-popcount, thresholds, signs */
        const bitflip_layer_t *L = &m->layers[li];
        for (int j = 0; j < L->n_out; j++) {
            const uint32_t *s = L->s + (uint32_t)j * L->nw;
            int32_t acc = 0;
            if (L->kind == BITFLIP_TERNARY) {
                const uint32_t *z = L->z + (uint32_t)j * L->nw;
                for (int w = 0; w < L->nw; w++) acc += popc(z[w]) - 2 * popc((x[w] ^ s[w]) & z[w]);
            } else {
                acc = L->n_in;
                for (int w = 0; w < L->nw; w++) acc -= 2 * popc(x[w] ^ s[w]);
            }
            pre[j] = L->t ? acc - L->t[j] : acc;
        }
        if (li == m->n_layers - 1) break;
        for (int w = 0; w < (L->n_out + 31) / 32; w++) y[w] = 0;
        for (int j = 0; j < L->n_out; j++) if (pre[j] >= 0) y[j >> 5] |= 1u << (j & 31);
        uint32_t *t = x; x = y; y = t;
    }
    int best = 0, n_top = m->layers[m->n_layers - 1].n_out; /* 5. the winning prototype's class */
    for (int j = 1; j < n_top; j++) if (pre[j] > pre[best]) best = j;
    if (scores)
        for (int c = 0; c < m->classes; c++) {
            int32_t v = pre[c * m->protos];
            for (int j = 1; j < m->protos; j++) if (pre[c * m->protos + j] > v) v = pre[c * m->protos + j];
            scores[c] = v;
        }
    return best / m->protos;
}
