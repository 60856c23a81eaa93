/* G.711 (ITU-T G.711, 1988): mu-law and A-law companding of 16-bit linear PCM.
 *
 * mu-law codes the top 14 bits of a sample, A-law the top 13 (the standard's input
 * widths); the low bits are dropped by an arithmetic shift, as the standard's encoders
 * that take 16-bit input do. Encoding is one table look-up per sample: 16 KiB for mu-law,
 * 8 KiB for A-law, built once from the segment rules below.
 */
#ifndef AC_G711_H
#define AC_G711_H

#include <stddef.h>
#include <stdint.h>
#include "ac_common.h"

static uint8_t ac_ulaw_enc[1 << 14]; /* index: (pcm >> 2) & 0x3fff */
static uint8_t ac_alaw_enc[1 << 13]; /* index: (pcm >> 3) & 0x1fff */
static int16_t ac_ulaw_dec[256];
static int16_t ac_alaw_dec[256];

/* Segment of a magnitude: the number of the segment whose end it does not exceed, 8 if none. */
static int ac_g711_segment(int value, int first_end)
{
    int seg = 0, end = first_end;
    while (seg < 8 && value > end) {
        seg++;
        end = end * 2 + 1;
    }
    return seg;
}

/* mu-law code of a 14-bit two's-complement sample. */
static uint8_t ac_ulaw_from_14(int x)
{
    int mask = 0xff;
    if (x < 0) {
        x = -x;
        mask = 0x7f;
    }
    if (x > 8159) x = 8159; /* the largest magnitude the 8 segments code */
    x += 33;                /* the bias, 0x84 at 16-bit scale */
    int seg = ac_g711_segment(x, 0x3f);
    if (seg >= 8) return (uint8_t)(0x7f ^ mask);
    int code = (seg << 4) | ((x >> (seg + 1)) & 0x0f);
    return (uint8_t)(code ^ mask);
}

/* A-law code of a 13-bit two's-complement sample (even bits inverted, per the standard). */
static uint8_t ac_alaw_from_13(int x)
{
    int mask = 0xd5;
    if (x < 0) {
        mask = 0x55;
        x = -x - 1; /* one's complement of the magnitude */
    }
    int seg = ac_g711_segment(x, 0x1f);
    if (seg >= 8) return (uint8_t)(0x7f ^ mask);
    int code = seg << 4;
    code |= (seg < 2 ? (x >> 1) : (x >> seg)) & 0x0f;
    return (uint8_t)(code ^ mask);
}

static int16_t ac_ulaw_to_16(uint8_t code)
{
    int u = ~code & 0xff;
    int t = (((u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4);
    return (int16_t)((u & 0x80) ? (0x84 - t) : (t - 0x84));
}

static int16_t ac_alaw_to_16(uint8_t code)
{
    int a = code ^ 0x55;
    int seg = (a & 0x70) >> 4;
    int t = (a & 0x0f) << 4;
    if (seg == 0) {
        t += 8;
    } else {
        t = (t + 0x108) << (seg - 1);
    }
    return (int16_t)((a & 0x80) ? t : -t);
}

static void ac_g711_init(void)
{
    for (int i = 0; i < (1 << 14); i++) ac_ulaw_enc[i] = ac_ulaw_from_14(i < 8192 ? i : i - 16384);
    for (int i = 0; i < (1 << 13); i++) ac_alaw_enc[i] = ac_alaw_from_13(i < 4096 ? i : i - 8192);
    for (int c = 0; c < 256; c++) {
        ac_ulaw_dec[c] = ac_ulaw_to_16((uint8_t)c);
        ac_alaw_dec[c] = ac_alaw_to_16((uint8_t)c);
    }
}

/* n samples of PCM16LE at src -> n codes at dst. */
static void ac_ulaw_encode(const uint8_t *src, size_t n, uint8_t *dst)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = ac_ulaw_enc[((uint16_t)ac_load_s16le(src + 2 * i) >> 2) & 0x3fff];
}

static void ac_alaw_encode(const uint8_t *src, size_t n, uint8_t *dst)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = ac_alaw_enc[((uint16_t)ac_load_s16le(src + 2 * i) >> 3) & 0x1fff];
}

/* n codes at src -> n samples of PCM16LE at dst through a 256-entry table; four samples
 * per 64-bit store on little-endian hosts. */
static inline void ac_g711_expand(const int16_t *table, const uint8_t *src, size_t n,
                                  uint8_t *dst)
{
    size_t i = 0;
#if !AC_BIG_ENDIAN
    for (; i + 4 <= n; i += 4) {
        uint64_t w = (uint64_t)(uint16_t)table[src[i]] |
                     ((uint64_t)(uint16_t)table[src[i + 1]] << 16) |
                     ((uint64_t)(uint16_t)table[src[i + 2]] << 32) |
                     ((uint64_t)(uint16_t)table[src[i + 3]] << 48);
        memcpy(dst + 2 * i, &w, 8);
    }
#endif
    for (; i < n; i++) ac_store_s16le(dst + 2 * i, table[src[i]]);
}

static void ac_ulaw_decode(const uint8_t *src, size_t n, uint8_t *dst)
{
    ac_g711_expand(ac_ulaw_dec, src, n, dst);
}

static void ac_alaw_decode(const uint8_t *src, size_t n, uint8_t *dst)
{
    ac_g711_expand(ac_alaw_dec, src, n, dst);
}

#endif /* AC_G711_H */
