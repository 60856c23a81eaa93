/* Streaming polyphase resampler: rational ratio up/down, float32 arithmetic, int16 or float32
 * interleaved PCM in and out.
 *
 * Model. The prototype low-pass h[0..N-1] (N odd, linear phase, gain `up`) runs at up * in_rate.
 * Output j is  y[j] = sum_k h[k] * x_up[j*down + shift - k],  where x_up is the input with
 * up-1 zeros after each sample. With t = j*down + shift, phase p = t % up and newest input
 * n = t / up, that is a dot product of the `taps` coefficients of phase p with the inputs
 * x[n-taps+1 .. n]. The table stores each phase reversed, so output j reads its window
 * forwards from a start `pos`: y = sum_u c_p[u] * x[pos + u].
 *
 * Vectorization. Outputs j and j + up have the same phase and windows `down` inputs apart.
 * So the outputs of a push form `up` rows (one per residue of j mod up); within a row, eight
 * consecutive outputs read inputs that are consecutive once the history is kept as `down`
 * interleaved planes (plane m holds the inputs whose index is m mod down). The AVX2 path
 * computes up to three rows together, 24 to 64 outputs at a time: per tap, one broadcast
 * coefficient per row times one vector of inputs shared by the rows; no horizontal sums.
 *
 * Bit-identical results whatever the push sizes: every output, on every path, is the same
 * arithmetic on the same floats ("the canonical sum"):
 *   y = 0;  for u = 0 .. taps-1:  y = y + c[u] * x[pos + u]
 * with every product and sum rounded to float (no fused multiply-add). A vector lane does
 * exactly that for its output; lanes past the outputs wanted compute on whatever follows in
 * the history and are dropped, so short rows take no other route, and the portable path does
 * the same sums. Both paths give the same bytes.
 *
 * Exact counts. After N input frames the outputs emitted total floor(N * up / down): the
 * caller asks for exactly that many (ac_rs_output_frames), and shift < down guarantees their
 * inputs have arrived. An output whose inputs are all there may still wait for the next push.
 */
#ifndef AC_RESAMPLE_H
#define AC_RESAMPLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "ac_common.h"

#if AC_X86
#include <immintrin.h>
#endif

/* The canonical sum forbids contracting a*b+c into an FMA, which a compiler may otherwise do
 * when the target has one (e.g. -march=native, or aarch64). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif

enum { AC_RS_INT16 = 0, AC_RS_FLOAT32 = 1 };

/* Input frames converted per block; the history holds one block beyond the filter span. */
enum { AC_RS_BLOCK = 1024 };
/* Outputs of a row computed together at most (8 vectors). */
enum { AC_RS_LANES = 64 };
/* Inputs kept as `down` interleaved planes up to this `down`; beyond it (rates with a large
 * odd ratio, like 44.1 -> 16 kHz) in one plane, and each output is summed on its own. */
enum { AC_RS_MAX_PLANES = 64 };

typedef struct {
    /* The filter (borrowed from its owner) and the format. */
    const float *coef;    /* up * taps floats, phase p at coef + p * taps, taps reversed */
    int64_t up, down;     /* L and M, reduced by their gcd */
    int64_t taps;         /* coefficients per phase */
    int64_t shift;        /* t of output 0 (0 <= shift < down) */
    int64_t delay;        /* group delay in output frames */
    int channels;         /* 1 or 2 */
    int dtype;            /* AC_RS_INT16 or AC_RS_FLOAT32 */
    /* Buffers (ac_rs_open / ac_rs_close). */
    float *planes;        /* channels * nplanes planes of `plane` floats: the input history */
    int64_t nplanes;      /* down, or 1 when down > AC_RS_MAX_PLANES */
    int32_t *voff;        /* nvoff entries: plane offset of window position v */
    int64_t nvoff;
    float *obuf;          /* channels * (ocap + AC_RS_LANES) floats: a chunk of outputs */
    int64_t plane;        /* floats per plane */
    int64_t cap;          /* history frames held at most */
    int64_t ocap;         /* outputs per chunk */
    /* Stream state. History index h is input frame h - (taps - 1) since the last compaction
     * point (the first taps-1 are the zeros before the stream). */
    int64_t len;          /* history frames held */
    int64_t pos;          /* window start of the next output */
    int64_t phase;        /* phase of the next output */
    int64_t in_mod;       /* input frames since reset, modulo down */
    int fed;              /* any input since reset */
} ac_rs;

static int ac_rs_use_simd = 0;

static void ac_rs_init(void)
{
    ac_rs_use_simd = ac_cpu_has_avx2();
}

static inline size_t ac_rs_itemsize(const ac_rs *st) { return st->dtype == AC_RS_INT16 ? 2 : 4; }

static inline float *ac_rs_plane(const ac_rs *st, int c, int64_t m)
{
    return st->planes + ((size_t)c * (size_t)st->nplanes + (size_t)m) * (size_t)st->plane;
}

/* Forget all input: taps-1 zeros of history before the first input frame. */
static void ac_rs_reset(ac_rs *st)
{
    const size_t head = (size_t)((st->taps - 1) / st->nplanes + 1) * sizeof(float);
    for (int c = 0; c < st->channels; c++)
        for (int64_t m = 0; m < st->nplanes; m++) memset(ac_rs_plane(st, c, m), 0, head);
    st->len = st->taps - 1;
    st->pos = st->shift / st->up;
    st->phase = st->shift % st->up;
    st->in_mod = 0;
    st->fed = 0;
}

/* Allocates the buffers of a state whose filter and format fields are set; returns 0, or -1
 * when out of memory. Every buffer starts zeroed: lanes past the end of a row read them. */
static int ac_rs_open(ac_rs *st)
{
    st->cap = st->taps + 2 * (st->down / st->up) + 16 + AC_RS_BLOCK;
    st->nplanes = st->down <= AC_RS_MAX_PLANES ? st->down : 1;
    st->plane = st->cap / st->nplanes + AC_RS_LANES + 16;
    /* a chunk holds about 64 outputs of each row */
    st->ocap = st->up * AC_RS_LANES;
    if (st->ocap < 512) st->ocap = 512;
    if (st->ocap > 16384) st->ocap = 16384;
    st->planes = (float *)calloc((size_t)st->channels * (size_t)st->nplanes * (size_t)st->plane,
                                 sizeof(float));
    /* window offsets v reach taps - 1 plus the row spread of a group (< 3 * down / up + 1)
     * plus pos % down */
    st->nvoff = st->taps + 4 * st->nplanes + 4;
    st->voff = (int32_t *)malloc((size_t)st->nvoff * sizeof(int32_t));
    st->obuf = (float *)calloc((size_t)st->channels * (size_t)(st->ocap + AC_RS_LANES),
                               sizeof(float));
    if (st->planes == NULL || st->voff == NULL || st->obuf == NULL) return -1;
    for (int64_t v = 0; v < st->nvoff; v++)
        st->voff[v] = (int32_t)((v % st->nplanes) * st->plane + v / st->nplanes);
    ac_rs_reset(st);
    return 0;
}

static void ac_rs_close(ac_rs *st)
{
    free(st->planes);
    free(st->voff);
    free(st->obuf);
    st->planes = NULL;
    st->voff = NULL;
    st->obuf = NULL;
}

/* Output frames the next push of in_frames input frames yields:
 * floor((a + n) * L / M) - floor(a * L / M) with a = input frames so far, modulo M. */
static inline int64_t ac_rs_output_frames(const ac_rs *st, int64_t in_frames)
{
    int64_t a = st->in_mod, t;
    if (in_frames <= 0) return 0;
    t = a + in_frames;
    return (t / st->down) * st->up + ((t % st->down) * st->up) / st->down
           - (a * st->up) / st->down;
}

/* Outputs whose whole window is in the history. Output k (k = 0, 1, ..) has
 * t = pos*L + phase + k*M and needs t / L + taps - 1 < len. */
static inline int64_t ac_rs_available(const ac_rs *st)
{
    int64_t lim = (st->len - st->taps + 1) * st->up;
    int64_t t0 = st->pos * st->up + st->phase;
    if (lim <= t0) return 0;
    return (lim - t0 + st->down - 1) / st->down;
}

/* Zero frames to append, after `frames` more input frames, so that the next n_out outputs
 * are available. */
static inline int64_t ac_rs_zeros_needed(const ac_rs *st, int64_t frames, int64_t n_out)
{
    int64_t end, z;
    if (n_out <= 0) return 0;
    end = (st->pos * st->up + st->phase + (n_out - 1) * st->down) / st->up + st->taps - 1;
    z = end - st->len - frames + 1;
    return z > 0 ? z : 0;
}

/* Moves the next output k outputs on. */
static inline void ac_rs_advance(ac_rs *st, int64_t k)
{
    int64_t t = st->pos * st->up + st->phase + k * st->down;
    st->pos = t / st->up;
    st->phase = t % st->up;
}

/* ---------------------------------------------------------------- input */

static inline float ac_rs_load_f32le(const uint8_t *p)
{
    uint32_t u;
    float f;
    memcpy(&u, p, 4);
#if AC_BIG_ENDIAN
    u = __builtin_bswap32(u);
#endif
    memcpy(&f, &u, 4);
    return f;
}

static inline int16_t ac_rs_load_s16(const uint8_t *p)
{
#if AC_BIG_ENDIAN
    return ac_load_s16le(p);
#else
    int16_t v;
    memcpy(&v, p, 2);
    return v;
#endif
}

/* Appends n frames of interleaved PCM (or zeros when src is NULL) to the history planes:
 * plane m takes the frames whose history index is m mod nplanes, one strided pass per plane.
 * Every conversion here is exact, so how it is vectorized does not matter. */
#define AC_RS_APPEND_BODY                                                                  \
    const int ch = st->channels;                                                           \
    const int64_t M = st->nplanes;                                                         \
    for (int c = 0; c < ch; c++)                                                           \
        for (int64_t m = 0; m < M; m++) {                                                  \
            /* first history index >= len that belongs to plane m, as an input offset */   \
            const int64_t i0 = ((m - st->len % M) % M + M) % M;                            \
            if (i0 >= n) continue;                                                         \
            const int64_t count = (n - 1 - i0) / M + 1;                                    \
            float *d = ac_rs_plane(st, c, m) + (st->len + i0) / M;                         \
            const size_t step = (size_t)(M * ch);                                          \
            if (src == NULL) {                                                             \
                memset(d, 0, (size_t)count * sizeof(float));                               \
            } else if (st->dtype == AC_RS_INT16) {                                         \
                const uint8_t *s = src + 2 * ((size_t)i0 * (size_t)ch + (size_t)c);        \
                /* constant strides for the common layouts, so they vectorize */           \
                if (step == 1)                                                             \
                    for (int64_t k = 0; k < count; k++)                                    \
                        d[k] = (float)ac_rs_load_s16(s + 2 * (size_t)k);                   \
                else if (step == 2)                                                        \
                    for (int64_t k = 0; k < count; k++)                                    \
                        d[k] = (float)ac_rs_load_s16(s + 4 * (size_t)k);                   \
                else if (step == 3)                                                        \
                    for (int64_t k = 0; k < count; k++)                                    \
                        d[k] = (float)ac_rs_load_s16(s + 6 * (size_t)k);                   \
                else                                                                       \
                    for (int64_t k = 0; k < count; k++)                                    \
                        d[k] = (float)ac_rs_load_s16(s + 2 * step * (size_t)k);            \
            } else {                                                                       \
                const uint8_t *s = src + 4 * ((size_t)i0 * (size_t)ch + (size_t)c);        \
                for (int64_t k = 0; k < count; k++)                                        \
                    d[k] = ac_rs_load_f32le(s + 4 * step * (size_t)k);                     \
            }                                                                              \
        }                                                                                  \
    st->len += n;

static void ac_rs_append_portable(ac_rs *st, const uint8_t *src, int64_t n)
{
    AC_RS_APPEND_BODY
}

#if AC_X86
/* The same code, vectorized by the compiler for AVX2. */
AC_TARGET_AVX2 static void ac_rs_append_avx2(ac_rs *st, const uint8_t *src, int64_t n)
{
    AC_RS_APPEND_BODY
}
#endif
#undef AC_RS_APPEND_BODY

static void ac_rs_append(ac_rs *st, const uint8_t *src, int64_t n)
{
#if AC_X86
    if (ac_rs_use_simd) {
        ac_rs_append_avx2(st, src, n);
        return;
    }
#endif
    ac_rs_append_portable(st, src, n);
}

/* Drops the history before the next window (a whole number of plane entries). */
static void ac_rs_compact(ac_rs *st)
{
    const int64_t M = st->nplanes;
    int64_t drop = st->pos / M, keep = (st->len + M - 1) / M - drop;
    if (drop == 0) return;
    for (int c = 0; c < st->channels; c++)
        for (int64_t m = 0; m < M; m++) {
            float *p = ac_rs_plane(st, c, m);
            memmove(p, p + drop, (size_t)keep * sizeof(float));
        }
    st->len -= drop * M;
    st->pos -= drop * M;
}

/* ---------------------------------------------------------------- output */

/* Round to nearest, ties to even, saturating: the same as cvtps2dq + packssdw. Adding and
 * subtracting 1.5 * 2^23 rounds any |y| <= 2^22 to an integer in float arithmetic. */
static inline int16_t ac_rs_to_s16(float y)
{
    if (y >= 32767.0f) return 32767;
    if (y <= -32768.0f) return -32768;
    if (y != y) return 0; /* NaN: unreachable from int16 input */
    y = (y + 12582912.0f) - 12582912.0f;
    return (int16_t)y;
}

static inline void ac_rs_store(const ac_rs *st, uint8_t *dst, float y)
{
    if (st->dtype == AC_RS_INT16) {
        ac_store_s16le(dst, ac_rs_to_s16(y));
    } else {
        uint32_t u;
        memcpy(&u, &y, 4);
#if AC_BIG_ENDIAN
        u = __builtin_bswap32(u);
#endif
        memcpy(dst, &u, 4);
    }
}

/* Writes outputs [from, n) of the chunk buffer to dst, interleaving the channels. */
static void ac_rs_convert_portable(const ac_rs *st, int64_t from, int64_t n, uint8_t *dst)
{
    const int ch = st->channels;
    const size_t item = ac_rs_itemsize(st);
    const int64_t stride = st->ocap + AC_RS_LANES;
    for (int64_t j = from; j < n; j++)
        for (int c = 0; c < ch; c++) {
            ac_rs_store(st, dst, st->obuf[c * stride + j]);
            dst += item;
        }
}

/* ---------------------------------------------------------------- rows */

/* One row: out[i * stride] = canonical sum of c[0..taps) with base[vo[u] + i], for
 * i < cycles. */
#if defined(__GNUC__)
/* GNU vector extensions: SSE on x86-64, NEON on arm64, lane by lane IEEE arithmetic. */
typedef float ac_rs_v4 __attribute__((vector_size(16)));

static inline ac_rs_v4 ac_rs_v4_load(const float *p)
{
    ac_rs_v4 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static void ac_rs_row_portable(const float *c, const float *base, const int32_t *vo,
                               int64_t taps, int64_t cycles, float *out, int64_t stride)
{
    for (int64_t i0 = 0; i0 < cycles; i0 += 32) {
        const ac_rs_v4 z = {0.0f, 0.0f, 0.0f, 0.0f};
        ac_rs_v4 a0 = z, a1 = z, a2 = z, a3 = z, a4 = z, a5 = z, a6 = z, a7 = z;
        float a[32];
        int64_t n = cycles - i0 < 32 ? cycles - i0 : 32;
        for (int64_t u = 0; u < taps; u++) {
            const ac_rs_v4 k = {c[u], c[u], c[u], c[u]};
            const float *x = base + vo[u] + i0;
            a0 = a0 + k * ac_rs_v4_load(x);
            a1 = a1 + k * ac_rs_v4_load(x + 4);
            a2 = a2 + k * ac_rs_v4_load(x + 8);
            a3 = a3 + k * ac_rs_v4_load(x + 12);
            a4 = a4 + k * ac_rs_v4_load(x + 16);
            a5 = a5 + k * ac_rs_v4_load(x + 20);
            a6 = a6 + k * ac_rs_v4_load(x + 24);
            a7 = a7 + k * ac_rs_v4_load(x + 28);
        }
        memcpy(a, &a0, 16);
        memcpy(a + 4, &a1, 16);
        memcpy(a + 8, &a2, 16);
        memcpy(a + 12, &a3, 16);
        memcpy(a + 16, &a4, 16);
        memcpy(a + 20, &a5, 16);
        memcpy(a + 24, &a6, 16);
        memcpy(a + 28, &a7, 16);
        for (int64_t k = 0; k < n; k++) out[(i0 + k) * stride] = a[k];
    }
}
#else
static void ac_rs_row_portable(const float *c, const float *base, const int32_t *vo,
                               int64_t taps, int64_t cycles, float *out, int64_t stride)
{
    for (int64_t i = 0; i < cycles; i++) {
        float y = 0.0f;
        for (int64_t u = 0; u < taps; u++) y = y + c[u] * base[vo[u] + i];
        out[i * stride] = y;
    }
}
#endif

#if AC_X86

/* Up to three rows at once. Row r's window starts d[r] inputs after row 0's
 * (d ascending), so at window offset v from row 0's start all rows read the same input
 * vectors, row r with its coefficient v - d[r]: one load feeds every row. The rows meet in
 * the offsets [d[last], taps); before and after, each row does its own first and last taps
 * alone, so each still sums its taps in ascending order. A block is 8*G consecutive outputs
 * of every row; accumulator a<r>_<g> holds outputs 8g..8g+7 of row r. The variants are
 * spelled out by macros so that every accumulator lives in a register. */
#define AC_RS_R1(X, P) X(0, P)
#define AC_RS_R2(X, P) X(0, P) X(1, P)
#define AC_RS_R3(X, P) X(0, P) X(1, P) X(2, P)
#define AC_RS_G1(X, P) X(P, 0)
#define AC_RS_G3(X, P) X(P, 0) X(P, 1) X(P, 2)
#define AC_RS_G4(X, P) X(P, 0) X(P, 1) X(P, 2) X(P, 3)
#define AC_RS_G5(X, P) X(P, 0) X(P, 1) X(P, 2) X(P, 3) X(P, 4)
#define AC_RS_G8(X, P) X(P, 0) X(P, 1) X(P, 2) X(P, 3) X(P, 4) X(P, 5) X(P, 6) X(P, 7)

#define AC_RS_DECL(r, g) __m256 a##r##_##g = _mm256_setzero_ps();
#define AC_RS_DECL_ROW(r, FG) FG(AC_RS_DECL, r)
#define AC_RS_MAC1(r, g) \
    a##r##_##g = _mm256_add_ps(a##r##_##g, _mm256_mul_ps(k, _mm256_loadu_ps(x + 8 * (g))));
#define AC_RS_ALONE(r, FG, from, to)                                                       \
    for (int64_t u = (from); u < (to); u++) {                                              \
        const __m256 k = _mm256_broadcast_ss(cr[r] + u);                                   \
        const float *x = b + vo[u + d[r]];                                                 \
        FG(AC_RS_MAC1, r)                                                                  \
    }
#define AC_RS_HEAD_ROW(r, FG) AC_RS_ALONE(r, FG, 0, dmax - d[r])
#define AC_RS_TAIL_ROW(r, FG) AC_RS_ALONE(r, FG, taps - d[r], taps)
#define AC_RS_K(r, P) const __m256 k##r = _mm256_broadcast_ss(cv##r + v);
#define AC_RS_CV(r, P) const float *const cv##r = cr[r] - d[r]; /* row r's coefficient at v */
#define AC_RS_MAC(r, g) a##r##_##g = _mm256_add_ps(a##r##_##g, _mm256_mul_ps(k##r, xv));
#define AC_RS_MID_G(FR, g)                                                                 \
    {                                                                                      \
        const __m256 xv = _mm256_loadu_ps(x + 8 * (g));                                    \
        FR(AC_RS_MAC, g)                                                                   \
    }
#define AC_RS_OUT(r, g) res[(r) * ngroups + (g)] = a##r##_##g;
#define AC_RS_OUT_ROW(r, FG) FG(AC_RS_OUT, r)

#define AC_RS_DEFINE_BLOCK(NAME, FR, FG, NR, NG)                                            \
    AC_TARGET_AVX2 static void NAME(const float *const *cr, const int64_t *d, const float *b, \
                                    const int32_t *vo, int64_t taps, __m256 *res)          \
    {                                                                                      \
        const int64_t dmax = d[(NR) - 1];                                                  \
        const int ngroups = (NG);                                                          \
        FR(AC_RS_DECL_ROW, FG)                                                             \
        FR(AC_RS_HEAD_ROW, FG)                                                             \
        FR(AC_RS_CV, 0)                                                                    \
        for (int64_t v = dmax; v < taps; v++) {                                            \
            const float *x = b + vo[v];                                                    \
            FR(AC_RS_K, 0)                                                                 \
            FG(AC_RS_MID_G, FR)                                                            \
        }                                                                                  \
        FR(AC_RS_TAIL_ROW, FG)                                                             \
        FR(AC_RS_OUT_ROW, FG)                                                              \
    }

AC_RS_DEFINE_BLOCK(ac_rs_block_1x8, AC_RS_R1, AC_RS_G8, 1, 8)
AC_RS_DEFINE_BLOCK(ac_rs_block_1x4, AC_RS_R1, AC_RS_G4, 1, 4)
AC_RS_DEFINE_BLOCK(ac_rs_block_1x1, AC_RS_R1, AC_RS_G1, 1, 1)
AC_RS_DEFINE_BLOCK(ac_rs_block_2x5, AC_RS_R2, AC_RS_G5, 2, 5)
AC_RS_DEFINE_BLOCK(ac_rs_block_2x1, AC_RS_R2, AC_RS_G1, 2, 1)
AC_RS_DEFINE_BLOCK(ac_rs_block_3x3, AC_RS_R3, AC_RS_G3, 3, 3)
AC_RS_DEFINE_BLOCK(ac_rs_block_3x1, AC_RS_R3, AC_RS_G1, 3, 1)

/* Stores 8 outputs of each of the L rows (res[r * groups]) as 8 * L consecutive outputs. */
AC_TARGET_AVX2 static inline void ac_rs_interleave_avx2(int64_t L, const __m256 *res,
                                                        int64_t groups, float *out)
{
    if (L == 1) {
        _mm256_storeu_ps(out, res[0]);
    } else if (L == 2) {
        const __m256 r0 = res[0], r1 = res[groups];
        const __m256 lo = _mm256_unpacklo_ps(r0, r1), hi = _mm256_unpackhi_ps(r0, r1);
        _mm256_storeu_ps(out, _mm256_permute2f128_ps(lo, hi, 0x20));
        _mm256_storeu_ps(out + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
    } else {
        /* Output q (0..23) is row q % 3, cycle q / 3: each of the three output vectors
         * takes the same cycles from all rows and blends them by row. */
        const __m256 r0 = res[0], r1 = res[groups], r2 = res[2 * groups];
        const __m256i i0 = _mm256_setr_epi32(0, 0, 0, 1, 1, 1, 2, 2);
        const __m256i i1 = _mm256_setr_epi32(2, 3, 3, 3, 4, 4, 4, 5);
        const __m256i i2 = _mm256_setr_epi32(5, 5, 6, 6, 6, 7, 7, 7);
#define AC_RS_PICK(idx, m1, m2)                                                             \
    _mm256_blend_ps(_mm256_blend_ps(_mm256_permutevar8x32_ps(r0, idx),                     \
                                    _mm256_permutevar8x32_ps(r1, idx), m1),                \
                    _mm256_permutevar8x32_ps(r2, idx), m2)
        _mm256_storeu_ps(out, AC_RS_PICK(i0, 0x92, 0x24));
        _mm256_storeu_ps(out + 8, AC_RS_PICK(i1, 0x24, 0x49));
        _mm256_storeu_ps(out + 16, AC_RS_PICK(i2, 0x49, 0x92));
#undef AC_RS_PICK
    }
}

/* `nr` (1..3) consecutive rows of a chunk, the first `span` outputs before the chunk's end
 * (row r has (span - r + L - 1) / L outputs), into out[i * L + r]. When the rows are all L
 * rows of the cycle, blocks are interleaved in registers and written whole (out has room
 * for a block past the chunk); otherwise each output is placed on its own. */
AC_TARGET_AVX2 static void ac_rs_rows_avx2(int64_t nr, int64_t L, const float *const *cr,
                                           const int64_t *d, const float *base,
                                           const int32_t *vo, int64_t taps, int64_t span,
                                           float *out)
{
    const int64_t cycles = (span + L - 1) / L;
    __m256 res[24];
    float tmp[64];
    for (int64_t i0 = 0; i0 < cycles;) {
        const float *b = base + i0;
        const int64_t left = cycles - i0;
        int64_t lanes;
        if (nr == 1) {
            lanes = left >= 64 ? 64 : left >= 32 ? 32 : 8;
            (lanes == 64 ? ac_rs_block_1x8 : lanes == 32 ? ac_rs_block_1x4
                                                         : ac_rs_block_1x1)(cr, d, b, vo, taps, res);
        } else if (nr == 2) {
            lanes = left >= 40 ? 40 : 8;
            (lanes == 40 ? ac_rs_block_2x5 : ac_rs_block_2x1)(cr, d, b, vo, taps, res);
        } else {
            lanes = left >= 24 ? 24 : 8;
            (lanes == 24 ? ac_rs_block_3x3 : ac_rs_block_3x1)(cr, d, b, vo, taps, res);
        }
        const int64_t groups = lanes / 8;
        if (nr == L) {
            for (int64_t g = 0; g < groups; g++)
                ac_rs_interleave_avx2(L, res + g, groups, out + (i0 + 8 * g) * L);
        } else {
            for (int64_t r = 0; r < nr; r++) {
                int64_t n = (span - r + L - 1) / L - i0;
                if (n > lanes) n = lanes;
                for (int64_t g = 0; g < groups; g++)
                    _mm256_storeu_ps(tmp + 8 * g, res[r * groups + g]);
                for (int64_t k = 0; k < n; k++) out[(i0 + k) * L + r] = tmp[k];
            }
        }
        i0 += lanes;
    }
}

/* Rounding and saturation as ac_rs_to_s16 does: cvtps2dq rounds to nearest even and packssdw
 * saturates. (cvtps2dq turns |y| >= 2^31 into INT_MIN, but int16 input keeps |y| below
 * 2^17.) */
AC_TARGET_AVX2 static void ac_rs_convert_avx2(const ac_rs *st, int64_t n, uint8_t *dst)
{
    const float *y0 = st->obuf, *y1 = st->obuf + st->ocap + AC_RS_LANES;
    int64_t j = 0;
    if (st->channels == 1) {
        if (st->dtype == AC_RS_INT16) {
            for (; j + 16 <= n; j += 16) {
                __m256i a = _mm256_cvtps_epi32(_mm256_loadu_ps(y0 + j));
                __m256i b = _mm256_cvtps_epi32(_mm256_loadu_ps(y0 + j + 8));
                /* packs works within 128-bit halves: restore the order. */
                __m256i v = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xd8);
                _mm256_storeu_si256((__m256i *)(dst + 2 * j), v);
            }
        } else {
            memcpy(dst, y0, (size_t)n * 4);
            j = n;
        }
    } else {
        if (st->dtype == AC_RS_INT16) {
            for (; j + 8 <= n; j += 8) {
                __m256 l = _mm256_loadu_ps(y0 + j), r = _mm256_loadu_ps(y1 + j);
                /* lo = L0 R0 L1 R1 | L4 R4 L5 R5, hi = L2 R2 L3 R3 | L6 R6 L7 R7 */
                __m256 lo = _mm256_unpacklo_ps(l, r), hi = _mm256_unpackhi_ps(l, r);
                __m256i v = _mm256_packs_epi32(_mm256_cvtps_epi32(lo), _mm256_cvtps_epi32(hi));
                _mm256_storeu_si256((__m256i *)(dst + 4 * j), v);
            }
        } else {
            for (; j + 8 <= n; j += 8) {
                __m256 l = _mm256_loadu_ps(y0 + j), r = _mm256_loadu_ps(y1 + j);
                __m256 lo = _mm256_unpacklo_ps(l, r), hi = _mm256_unpackhi_ps(l, r);
                _mm256_storeu_ps((float *)(dst + 8 * j), _mm256_permute2f128_ps(lo, hi, 0x20));
                _mm256_storeu_ps((float *)(dst + 8 * j + 32), _mm256_permute2f128_ps(lo, hi, 0x31));
            }
        }
    }
    ac_rs_convert_portable(st, j, n, dst + (size_t)j * ac_rs_itemsize(st) * (size_t)st->channels);
}
#endif

/* Computes the next n outputs into dst, a chunk of at most ocap at a time. */
static void ac_rs_emit(ac_rs *st, int64_t n, uint8_t *dst)
{
    const int64_t L = st->up, M = st->down, K = st->taps;
    const int64_t stride = st->ocap + AC_RS_LANES;
    const size_t frame = ac_rs_itemsize(st) * (size_t)st->channels;
    while (n > 0) {
        const int64_t e = n < st->ocap ? n : st->ocap;
        int64_t pos = st->pos, phase = st->phase;
        if (st->nplanes != M) {
            /* one plane: each output summed on its own, the same canonical sum */
            for (int64_t j = 0; j < e; j++) {
                const float *cr = st->coef + phase * K;
                for (int c = 0; c < st->channels; c++) {
                    const float *x = ac_rs_plane(st, c, 0) + pos;
                    float y = 0.0f;
                    for (int64_t u = 0; u < K; u++) y = y + cr[u] * x[u];
                    st->obuf[c * stride + j] = y;
                }
                phase += M;
                pos += phase / L;
                phase %= L;
            }
#if AC_X86
            if (ac_rs_use_simd)
                ac_rs_convert_avx2(st, e, dst);
            else
#endif
                ac_rs_convert_portable(st, 0, e, dst);
        } else
#if AC_X86
        if (ac_rs_use_simd) {
            /* rows in groups of three that share their input vectors */
            for (int64_t r0 = 0; r0 < L && r0 < e; r0 += 3) {
                const float *cr[3];
                int64_t d[3], pos0 = pos, nr = 0;
                for (; nr < 3 && r0 + nr < L && r0 + nr < e; nr++) {
                    cr[nr] = st->coef + phase * K;
                    d[nr] = pos - pos0;
                    phase += M;
                    pos += phase / L;
                    phase %= L;
                }
                for (int c = 0; c < st->channels; c++)
                    ac_rs_rows_avx2(nr, L, cr, d, ac_rs_plane(st, c, 0) + pos0 / M,
                                    st->voff + pos0 % M, K, e - r0,
                                    st->obuf + c * stride + r0);
            }
            ac_rs_convert_avx2(st, e, dst);
        } else
#endif
        {
            for (int64_t r = 0; r < L && r < e; r++) {
                const int64_t cycles = (e - r + L - 1) / L;
                const float *cr = st->coef + phase * K;
                for (int c = 0; c < st->channels; c++)
                    ac_rs_row_portable(cr, ac_rs_plane(st, c, 0) + pos / M, st->voff + pos % M,
                                       K, cycles, st->obuf + c * stride + r, L);
                phase += M;
                pos += phase / L;
                phase %= L;
            }
            ac_rs_convert_portable(st, 0, e, dst);
        }
        ac_rs_advance(st, e);
        dst += (size_t)e * frame;
        n -= e;
    }
}

/* ---------------------------------------------------------------- driver */

/* Appends `frames` frames of src and then `zeros` zero frames, and emits the next n_out
 * outputs, of which the first `skip` are stepped over and the rest written to dst. The
 * caller supplies enough input for n_out (see ac_rs_output_frames, ac_rs_zeros_needed).
 * Returns the outputs emitted (n_out unless that promise was broken). */
static int64_t ac_rs_run(ac_rs *st, const uint8_t *src, int64_t frames, int64_t zeros,
                         int64_t n_out, int64_t skip, uint8_t *dst)
{
    const size_t in_frame = ac_rs_itemsize(st) * (size_t)st->channels;
    const size_t out_frame = in_frame;
    int64_t done = 0;
    if (frames > 0) st->fed = 1;
    for (;;) {
        int64_t room = st->cap - st->len, b = 0, n, got;
        if (frames > 0) {
            b = frames < room ? frames : room;
            ac_rs_append(st, src, b);
            src += (size_t)b * in_frame;
            frames -= b;
        } else if (zeros > 0) {
            b = zeros < room ? zeros : room;
            ac_rs_append(st, NULL, b);
            zeros -= b;
        }
        n = ac_rs_available(st);
        if (n > n_out - done) n = n_out - done;
        got = n;
        done += n;
        if (skip > 0) {
            int64_t k = n < skip ? n : skip;
            ac_rs_advance(st, k);
            n -= k;
            skip -= k;
        }
        if (n > 0) {
            ac_rs_emit(st, n, dst);
            dst += (size_t)n * out_frame;
        }
        ac_rs_compact(st);
        if (frames == 0 && zeros == 0 && (done == n_out || got == 0)) return done;
        if (b == 0 && got == 0) return done; /* unreachable: history full, nothing due */
    }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

#endif /* AC_RESAMPLE_H */
