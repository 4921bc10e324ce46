/* bitflip inference in C: the forward pass of a model exported by `bitflip export --format c`,
 * bit-exact with the host reference and the MicroPython board (same encoding, same integer
 * arithmetic). No allocation, no floats, no libc; the caller gives a work buffer of
 * <MODEL>_WORK_WORDS 32-bit words. See docs/use-the-model.md. */
#ifndef BITFLIP_H
#define BITFLIP_H
#include <stdint.h>

#define BITFLIP_BINARY 1  /* 1-bit weights: s (1 = +1, 0 = -1) */
#define BITFLIP_BINARY2 2 /* sign + confidence: the forward pass reads s only */
#define BITFLIP_TERNARY 3 /* s and z (0 = the weight is 0) */
#define BITFLIP_DESKEW 1  /* image steps, in order */
#define BITFLIP_CROP 2
#define BITFLIP_POOL 3
#define BITFLIP_SCALE_NONE 0   /* values are whole numbers 0..255 (clipped) */
#define BITFLIP_SCALE_MINMAX 2 /* per feature: floor(255 * (x - lo) / span + 0.5), clipped */

typedef struct {
    uint8_t kind;
    uint16_t n_in, n_out, nw; /* nw = (n_in + 31) / 32 words per row */
    const uint32_t *s;        /* n_out rows of nw little-endian words; bit i of word w = input 32w+i */
    const uint32_t *z;        /* ternary only, else 0 */
    const int32_t *t;         /* per-unit thresholds (pool-rule hidden layers), else 0 */
} bitflip_layer_t;

typedef struct {
    uint16_t n_features, n_layers, classes, protos; /* protos: prototypes per class (top layer) */
    uint8_t scale;
    const int32_t *lo, *span; /* BITFLIP_SCALE_MINMAX: per feature */
    uint8_t n_steps;
    const uint8_t *step; /* BITFLIP_DESKEW / CROP / POOL */
    const uint16_t *arg; /* crop side, pool factor */
    uint8_t n_levels;
    const uint16_t *levels; /* bit (l, i) = value_i >= levels[l], level-major */
    const bitflip_layer_t *layers;
    uint16_t side;        /* image side (0: not an image) */
    uint16_t max_nw;      /* the widest layer input, in words */
    uint16_t max_out;     /* the widest layer */
    uint16_t n_keep;      /* mi:PCT encodings: the input bits kept, else 0 (every bit) */
    const uint16_t *keep; /* ascending indices into the level-major bit row */
} bitflip_model_t;

/* Class index of one sample of raw values (m->n_features of them). scores: 0, or room for
 * m->classes margins (per class, the largest pre-activation of its prototypes). */
int bitflip_predict(const bitflip_model_t *m, const int32_t *values, int32_t *scores, uint32_t *work);

#endif
