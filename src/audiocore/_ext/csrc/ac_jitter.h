/* Sample arithmetic of the jitter queue: fades, transitions and measures on PCM16LE frames.
 *
 * Frames are interleaved PCM16 little-endian byte buffers of fs sample frames of ch channels.
 * Weights are Q15 integers (0..32768). Mixing rounds to nearest and shifts arithmetically, so
 * results are exactly reproducible (tests/reference/jitter.py computes the same numbers).
 */
#ifndef AC_JITTER_H
#define AC_JITTER_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ac_common.h"

/* (a fading out, b fading in) with Q15 weights (32768 - w, w). |a|,|b| <= 32768 keeps the sum
 * within int32; >> of a negative int is an arithmetic (floor) shift on gcc and clang. */
static inline int16_t ac_jit_mix(int32_t a, int32_t b, int32_t w)
{
    return (int16_t)((a * (32768 - w) + b * w + 16384) >> 15);
}

/* Sample s of channel c of the frame mirrored in time: the last sample frame first. */
static inline int16_t ac_jit_mirror_at(const uint8_t *last, int fs, int ch, int k, int c)
{
    return ac_load_s16le(last + 2 * ((size_t)(fs - 1 - k) * ch + c));
}

/* Sum of |sample| over n samples (blocks summed in 32 bits so the loop vectorizes). */
static inline uint64_t ac_jit_energy(const uint8_t *p, size_t n)
{
    uint64_t sum = 0;
    while (n) {
        size_t m = n < 65536 ? n : 65536;
        uint32_t block = 0;
        for (size_t i = 0; i < m; i++) {
#if AC_BIG_ENDIAN
            int32_t v = ac_load_s16le(p + 2 * i);
#else
            int16_t h;
            int32_t v;
            memcpy(&h, p + 2 * i, 2);
            v = h;
#endif
            block += (uint32_t)(v < 0 ? -v : v);
        }
        sum += block;
        p += 2 * m;
        n -= m;
    }
    return sum;
}

/* Whether the sum of |sample| over n samples is below limit: blocks of 64 samples, stopping
 * as soon as the running sum reaches it (a loud frame is judged from its first block). */
static inline int ac_jit_quiet(const uint8_t *p, size_t n, uint64_t limit)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i += 64) {
        sum += ac_jit_energy(p + 2 * i, n - i < 64 ? n - i : 64);
        if (sum >= limit)
            return 0;
    }
    return 1;
}

/* Whether all bytes are zero (no early exit: the OR of 8-byte words vectorizes). */
static inline int ac_jit_is_silent(const uint8_t *p, size_t bytes)
{
    uint64_t acc = 0;
    size_t i = 0;
    for (; i + 8 <= bytes; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        acc |= w;
    }
    for (; i < bytes; i++)
        acc |= p[i];
    return acc == 0;
}

/* out = the last frame mirrored, fading to silence over xf samples (w_up rising), then 0. */
static void ac_jit_fade(const uint8_t *last, int fs, int ch, const int32_t *w_up, int xf,
                        uint8_t *out)
{
    memset(out, 0, (size_t)fs * ch * 2);
    for (int k = 0; k < xf; k++)
        for (int c = 0; c < ch; c++)
            ac_store_s16le(out + 2 * ((size_t)k * ch + c),
                           ac_jit_mix(ac_jit_mirror_at(last, fs, ch, k, c), 0, w_up[k]));
}

/* out = the last frame mirrored (a frame of time inserted without a seam). */
static void ac_jit_mirror(const uint8_t *last, int fs, int ch, uint8_t *out)
{
    for (int k = 0; k < fs; k++)
        memcpy(out + 2 * (size_t)k * ch, last + 2 * (size_t)(fs - 1 - k) * ch, 2 * (size_t)ch);
}

/* x (p sample frames) entered from a discontinuity, into out: the mirror of the last frame
 * fades out over h samples, then x fades in over the next h; the rest of x is copied. */
static void ac_jit_transition(const uint8_t *last, const uint8_t *x, int fs, int ch, int p,
                              const int32_t *t_up, int h, uint8_t *out)
{
    int lim = 2 * h < p ? 2 * h : p;
    for (int k = 0; k < lim; k++)
        for (int c = 0; c < ch; c++) {
            size_t i = (size_t)k * ch + c;
            int16_t v = k < h ? ac_jit_mix(ac_jit_mirror_at(last, fs, ch, k, c), 0, t_up[k])
                              : ac_jit_mix(0, ac_load_s16le(x + 2 * i), t_up[k - h]);
            ac_store_s16le(out + 2 * i, v);
        }
    if (p > lim)
        memcpy(out + 2 * (size_t)lim * ch, x + 2 * (size_t)lim * ch, 2 * (size_t)(p - lim) * ch);
}

/* In place: the frame fades to silence over xf samples, then 0. */
static void ac_jit_fade_out(uint8_t *x, int fs, int ch, const int32_t *w_up, int xf)
{
    for (int k = 0; k < xf; k++)
        for (int c = 0; c < ch; c++) {
            uint8_t *s = x + 2 * ((size_t)k * ch + c);
            ac_store_s16le(s, ac_jit_mix(ac_load_s16le(s), 0, w_up[k]));
        }
    memset(x + 2 * (size_t)xf * ch, 0, 2 * (size_t)(fs - xf) * ch);
}

/* out[0:p] already holds the last p sample frames played; the rest of the frame continues
 * them mirrored (through the previous frame last when p is short), fading to silence. */
static void ac_jit_tail(const uint8_t *last, uint8_t *out, int fs, int ch, int p,
                        const int32_t *w_up, int xf)
{
    for (int k = 0; k < fs - p; k++)
        for (int c = 0; c < ch; c++) {
            int src = p - 1 - k; /* sample frame of the sequence last ++ out[0:p] */
            int16_t v = 0;
            if (k < xf) {
                int16_t s = src >= 0 ? ac_load_s16le(out + 2 * ((size_t)src * ch + c))
                                     : ac_load_s16le(last + 2 * ((size_t)(fs + src) * ch + c));
                v = ac_jit_mix(s, 0, w_up[k]);
            }
            ac_store_s16le(out + 2 * ((size_t)(p + k) * ch + c), v);
        }
}

/* Floor division (C's / truncates toward zero). */
static inline int64_t ac_jit_floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* libopus writes native-endian samples; PCM16 is little-endian on the wire. */
static inline void ac_jit_native_to_le(uint8_t *p, size_t n)
{
#if AC_BIG_ENDIAN
    for (size_t i = 0; i < n; i++) {
        uint8_t t = p[2 * i];
        p[2 * i] = p[2 * i + 1];
        p[2 * i + 1] = t;
    }
#else
    (void)p;
    (void)n;
#endif
}

#endif /* AC_JITTER_H */
