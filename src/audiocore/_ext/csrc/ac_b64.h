/* Base64 (RFC 4648 standard alphabet, padded): scalar code plus an SSSE3 path picked at run time.
 * The URL-safe alphabet (section 5: '-' and '_' for '+' and '/') has its own tables, used by
 * the scalar code (encoding also uses the SSSE3 path with the two classes translated).
 *
 * Encoding reads 3 bytes, writes 4 characters. Decoding is strict: the only characters
 * accepted are the 64 of the alphabet and '=' as the last one or two characters of the input.
 * Trailing bits that do not make a whole byte are ignored, as the standard library does.
 */
#ifndef AC_B64_H
#define AC_B64_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "ac_common.h"

#if AC_X86
#include <immintrin.h>
#endif

static const char ac_b64_alphabet[65] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char ac_b64_url_alphabet[65] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Two output characters for each 12-bit input value. */
static uint8_t ac_b64_pairs[4096][2], ac_b64_url_pairs[4096][2];

/* Decode tables: the 6-bit value of a character pre-shifted into its place of a 24-bit
 * group, or AC_B64_BAD for a character outside the alphabet. */
#define AC_B64_BAD 0x01000000u
typedef struct {
    uint32_t d0[256], d1[256], d2[256], d3[256];
} ac_b64_dtab;
static ac_b64_dtab ac_b64_std, ac_b64_url;

static int ac_b64_use_simd = 0;

static void ac_b64_init_alphabet(const char *alphabet, uint8_t pairs[4096][2], ac_b64_dtab *t)
{
    for (int i = 0; i < 4096; i++) {
        pairs[i][0] = (uint8_t)alphabet[i >> 6];
        pairs[i][1] = (uint8_t)alphabet[i & 63];
    }
    for (int c = 0; c < 256; c++) {
        t->d0[c] = t->d1[c] = t->d2[c] = t->d3[c] = AC_B64_BAD;
    }
    for (uint32_t v = 0; v < 64; v++) {
        uint8_t c = (uint8_t)alphabet[v];
        t->d0[c] = v << 18;
        t->d1[c] = v << 12;
        t->d2[c] = v << 6;
        t->d3[c] = v;
    }
}

static void ac_b64_init(void)
{
    ac_b64_init_alphabet(ac_b64_alphabet, ac_b64_pairs, &ac_b64_std);
    ac_b64_init_alphabet(ac_b64_url_alphabet, ac_b64_url_pairs, &ac_b64_url);
    ac_b64_use_simd = ac_cpu_has_ssse3();
}

static inline size_t ac_b64_encoded_len(size_t n) { return (n + 2) / 3 * 4; }

/* ---------------------------------------------------------------- encoding */

#if AC_X86
/* 12 input bytes -> 16 characters per step. Each 32-bit lane gets bytes (b, a, c, b) of one
 * 3-byte group so that two multiplies move the four 6-bit fields into the four bytes. */
AC_TARGET_SSSE3 static inline size_t ac_b64_encode_ssse3_with(const uint8_t *src, size_t n,
                                                             uint8_t *dst, const __m128i offsets)
{
    const __m128i spread = _mm_setr_epi8(1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10);
    const __m128i mask_hi = _mm_set1_epi32(0x0fc0fc00);
    const __m128i mul_hi = _mm_set1_epi32(0x04000040);
    const __m128i mask_lo = _mm_set1_epi32(0x003f03f0);
    const __m128i mul_lo = _mm_set1_epi32(0x01000010);
    size_t done = 0;
    while (n - done >= 16) { /* loads 16 bytes, uses 12 */
        __m128i in = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(src + done)), spread);
        __m128i idx = _mm_or_si128(_mm_mulhi_epu16(_mm_and_si128(in, mask_hi), mul_hi),
                                   _mm_mullo_epi16(_mm_and_si128(in, mask_lo), mul_lo));
        __m128i cls = _mm_subs_epu8(idx, _mm_set1_epi8(51));
        __m128i low = _mm_cmpgt_epi8(_mm_set1_epi8(26), idx);
        cls = _mm_or_si128(cls, _mm_and_si128(low, _mm_set1_epi8(13)));
        __m128i out = _mm_add_epi8(_mm_shuffle_epi8(offsets, cls), idx);
        _mm_storeu_si128((__m128i *)dst, out);
        done += 12;
        dst += 16;
    }
    return done;
}

/* Offset added to a 6-bit value, by class: 0 = 26..51, 1..10 = 52..61, 11 = 62 ('+'),
 * 12 = 63 ('/'), 13 = 0..25. */
AC_TARGET_SSSE3 static size_t ac_b64_encode_ssse3(const uint8_t *src, size_t n, uint8_t *dst)
{
    return ac_b64_encode_ssse3_with(
        src, n, dst, _mm_setr_epi8(71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 65, 0, 0));
}

/* The same with 62 = '-' (45) and 63 = '_' (95). */
AC_TARGET_SSSE3 static size_t ac_b64_encode_ssse3_url(const uint8_t *src, size_t n,
                                                     uint8_t *dst)
{
    return ac_b64_encode_ssse3_with(
        src, n, dst, _mm_setr_epi8(71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -17, 32, 65, 0, 0));
}
#endif

/* Writes exactly ac_b64_encoded_len(n) characters of `alphabet` (`pairs` made from it;
 * `url` tells the SSSE3 path which of the two it is). */
static inline void ac_b64_encode_with(const uint8_t *src, size_t n, uint8_t *dst,
                                      const char *alphabet, const uint8_t (*pairs)[2], int url)
{
    size_t i = 0;
#if AC_X86
    if (ac_b64_use_simd && n >= 16) {
        i = url ? ac_b64_encode_ssse3_url(src, n, dst) : ac_b64_encode_ssse3(src, n, dst);
        dst += i / 3 * 4;
    }
#else
    (void)url;
#endif
    for (; n - i >= 8; i += 6, dst += 8) { /* loads 8 bytes, uses 6 */
        uint64_t x = ac_load_be64(src + i);
        memcpy(dst + 0, pairs[(x >> 52) & 0xfff], 2);
        memcpy(dst + 2, pairs[(x >> 40) & 0xfff], 2);
        memcpy(dst + 4, pairs[(x >> 28) & 0xfff], 2);
        memcpy(dst + 6, pairs[(x >> 16) & 0xfff], 2);
    }
    for (; n - i >= 3; i += 3, dst += 4) {
        uint32_t x = ((uint32_t)src[i] << 16) | ((uint32_t)src[i + 1] << 8) | src[i + 2];
        memcpy(dst + 0, pairs[x >> 12], 2);
        memcpy(dst + 2, pairs[x & 0xfff], 2);
    }
    if (n - i == 1) {
        uint32_t x = (uint32_t)src[i] << 16;
        dst[0] = (uint8_t)alphabet[x >> 18];
        dst[1] = (uint8_t)alphabet[(x >> 12) & 63];
        dst[2] = '=';
        dst[3] = '=';
    } else if (n - i == 2) {
        uint32_t x = ((uint32_t)src[i] << 16) | ((uint32_t)src[i + 1] << 8);
        dst[0] = (uint8_t)alphabet[x >> 18];
        dst[1] = (uint8_t)alphabet[(x >> 12) & 63];
        dst[2] = (uint8_t)alphabet[(x >> 6) & 63];
        dst[3] = '=';
    }
}

static void ac_b64_encode(const uint8_t *src, size_t n, uint8_t *dst)
{
    ac_b64_encode_with(src, n, dst, ac_b64_alphabet, (const uint8_t (*)[2])ac_b64_pairs, 0);
}

/* The URL-safe alphabet (RFC 4648 section 5), padded as the standard library pads it. */
static void ac_b64_encode_url(const uint8_t *src, size_t n, uint8_t *dst)
{
    ac_b64_encode_with(src, n, dst, ac_b64_url_alphabet, (const uint8_t (*)[2])ac_b64_url_pairs,
                       1);
}

/* ---------------------------------------------------------------- decoding */

enum {
    AC_B64_OK = 0,
    AC_B64_ERR_CHAR = 1,    /* a character outside the alphabet (whitespace included) */
    AC_B64_ERR_PAD = 2,     /* '=' anywhere but the last one or two characters */
    AC_B64_ERR_LENGTH = 3,  /* input length not a multiple of 4 */
};

/* Decoded size of a well-formed input of n characters ending in `last2` (the last two
 * characters); for a malformed length the size of its whole groups. */
static inline size_t ac_b64_decoded_len(const uint8_t *src, size_t n)
{
    size_t out = n / 4 * 3;
    if (n % 4 == 0 && n >= 4) {
        if (src[n - 1] == '=') out--;
        if (src[n - 2] == '=') out--;
    }
    return out;
}

#if AC_X86
/* 16 characters -> 12 bytes per step; stops before the first block holding a character
 * outside the alphabet, so the scalar code finds and reports it. A character is valid when
 * the class bits of its high and low nibbles do not meet. */
AC_TARGET_SSSE3 static size_t ac_b64_decode_ssse3(const uint8_t *src, size_t n, uint8_t *dst)
{
    const __m128i lut_lo = _mm_setr_epi8(0x0b, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03,
                                         0x03, 0x07, 0x15, 0x17, 0x17, 0x17, 0x15);
    const __m128i lut_hi = _mm_setr_epi8(0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x08, 0x10, 0x01,
                                         0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01);
    /* Added to a valid character, by high nibble; index 1 is '/' (high nibble 2, minus one). */
    const __m128i lut_roll = _mm_setr_epi8(0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0,
                                           0, 0);
    const __m128i nibble = _mm_set1_epi8(0x0f);
    const __m128i slash = _mm_set1_epi8('/');
    const __m128i merge1 = _mm_set1_epi32(0x01400140);
    const __m128i merge2 = _mm_set1_epi32(0x00011000);
    const __m128i order = _mm_setr_epi8(2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1);
    size_t done = 0;
    /* Each step stores 16 bytes of which 12 are output; 8 more characters left over keep
     * the 4 extra bytes inside the output. */
    while (n - done >= 24) {
        __m128i in = _mm_loadu_si128((const __m128i *)(src + done));
        __m128i hi = _mm_and_si128(_mm_srli_epi32(in, 4), nibble);
        __m128i lo = _mm_and_si128(in, nibble);
        __m128i bad = _mm_and_si128(_mm_shuffle_epi8(lut_lo, lo), _mm_shuffle_epi8(lut_hi, hi));
        if (_mm_movemask_epi8(_mm_cmpeq_epi8(bad, _mm_setzero_si128())) != 0xffff) break;
        __m128i roll = _mm_shuffle_epi8(lut_roll, _mm_add_epi8(_mm_cmpeq_epi8(in, slash), hi));
        __m128i v = _mm_add_epi8(in, roll);
        v = _mm_madd_epi16(_mm_maddubs_epi16(v, merge1), merge2);
        _mm_storeu_si128((__m128i *)dst, _mm_shuffle_epi8(v, order));
        done += 16;
        dst += 12;
    }
    return done;
}
#endif

/* Finds which of the 4 characters at src made a group invalid. */
static size_t ac_b64_bad_in_group(const uint8_t *src, const uint32_t *d3)
{
    for (size_t k = 0; k < 4; k++)
        if (d3[src[k]] == AC_B64_BAD) return k;
    return 0;
}

/* Decodes src[0:n] into dst, which holds ac_b64_decoded_len(src, n) bytes.
 * Returns AC_B64_OK, or an error code with *err_offset set to the offending position. */
static inline int ac_b64_decode_with(const uint8_t *src, size_t n, uint8_t *dst,
                                     size_t *err_offset, const ac_b64_dtab *t, int simd)
{
    size_t whole = n / 4 * 4;
    /* The final group may carry padding only when the length is right. */
    size_t body = (n % 4 == 0 && n >= 4) ? n - 4 : whole;
    size_t i = 0;
#if AC_X86
    if (simd && body >= 24) {
        i = ac_b64_decode_ssse3(src, body, dst);
        dst += i / 4 * 3;
    }
#else
    (void)simd;
#endif
    for (; i < body; i += 4, dst += 3) {
        uint32_t x = t->d0[src[i]] | t->d1[src[i + 1]] | t->d2[src[i + 2]] |
                     t->d3[src[i + 3]];
        if (x & AC_B64_BAD) {
            size_t k = ac_b64_bad_in_group(src + i, t->d3);
            *err_offset = i + k;
            return src[i + k] == '=' ? AC_B64_ERR_PAD : AC_B64_ERR_CHAR;
        }
        dst[0] = (uint8_t)(x >> 16);
        dst[1] = (uint8_t)(x >> 8);
        dst[2] = (uint8_t)x;
    }
    if (body != whole) { /* the final group: "xxxx", "xxx=" or "xx==" */
        const uint8_t *g = src + body;
        int pad = (g[3] == '=') + (g[3] == '=' && g[2] == '=');
        for (int k = 0; k < 4 - pad; k++) {
            if (t->d3[g[k]] == AC_B64_BAD) {
                *err_offset = body + (size_t)k;
                return g[k] == '=' ? AC_B64_ERR_PAD : AC_B64_ERR_CHAR;
            }
        }
        uint32_t x = t->d0[g[0]] | t->d1[g[1]];
        if (pad < 2) x |= t->d2[g[2]];
        if (pad < 1) x |= t->d3[g[3]];
        dst[0] = (uint8_t)(x >> 16);
        if (pad < 2) dst[1] = (uint8_t)(x >> 8);
        if (pad < 1) dst[2] = (uint8_t)x;
        return AC_B64_OK;
    }
    if (whole != n) { /* a dangling 1 to 3 characters: report a foreign one first */
        for (size_t k = whole; k < n; k++) {
            if (t->d3[src[k]] == AC_B64_BAD && src[k] != '=') {
                *err_offset = k;
                return AC_B64_ERR_CHAR;
            }
        }
        *err_offset = whole;
        return AC_B64_ERR_LENGTH;
    }
    return AC_B64_OK;
}

static int ac_b64_decode(const uint8_t *src, size_t n, uint8_t *dst, size_t *err_offset)
{
    return ac_b64_decode_with(src, n, dst, err_offset, &ac_b64_std, ac_b64_use_simd);
}

/* Strict decoding of the URL-safe alphabet (RFC 4648 section 5), padded; '+' and '/' are
 * characters outside it. Scalar code only. */
static int ac_b64_decode_url(const uint8_t *src, size_t n, uint8_t *dst, size_t *err_offset)
{
    return ac_b64_decode_with(src, n, dst, err_offset, &ac_b64_url, 0);
}

#endif /* AC_B64_H */
