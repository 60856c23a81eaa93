/* Ogg pages (RFC 3533): the page CRC, a bounds-checked page validator and a page builder.
 *
 * CRC-32 here is Ogg's: polynomial 0x04c11db7, MSB-first (not reflected), initial value 0, no
 * final xor, computed over the whole page with its CRC field taken as zero. It is computed
 * eight bytes a step with eight tables ("slicing by 8").
 *
 * Page layout: "OggS", version (0), header type (0x01 continued, 0x02 BOS, 0x04 EOS), granule
 * (i64 LE), serial (u32 LE), page sequence (u32 LE), CRC (u32 LE), segment count, lacing
 * table, body. The largest page is 27 + 255 + 255 * 255 = 65,307 bytes.
 */
#ifndef AC_OGG_H
#define AC_OGG_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "ac_common.h"

#define AC_OGG_HEADER 27
#define AC_OGG_MAX_PAGE (27 + 255 + 255 * 255)
#define AC_OGG_CONTINUED 0x01
#define AC_OGG_BOS 0x02
#define AC_OGG_EOS 0x04

static uint32_t ac_ogg_crc_table[8][256];

static void ac_ogg_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t r = i << 24;
        for (int k = 0; k < 8; k++)
            r = (r & 0x80000000u) ? (r << 1) ^ 0x04c11db7u : (r << 1);
        ac_ogg_crc_table[0][i] = r;
    }
    for (int t = 1; t < 8; t++)
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t prev = ac_ogg_crc_table[t - 1][i];
            ac_ogg_crc_table[t][i] = (prev << 8) ^ ac_ogg_crc_table[0][prev >> 24];
        }
}

static inline uint32_t ac_load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint32_t ac_load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline uint64_t ac_load_le64(const uint8_t *p)
{
    return (uint64_t)ac_load_le32(p) | ((uint64_t)ac_load_le32(p + 4) << 32);
}

static inline void ac_store_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void ac_store_le64(uint8_t *p, uint64_t v)
{
    ac_store_le32(p, (uint32_t)v);
    ac_store_le32(p + 4, (uint32_t)(v >> 32));
}

/* Continue an Ogg CRC over n more bytes. */
static uint32_t ac_ogg_crc_update(uint32_t crc, const uint8_t *p, size_t n)
{
    const uint32_t(*t)[256] = (const uint32_t(*)[256])ac_ogg_crc_table;
    while (n >= 8) {
        uint32_t a = crc ^ ac_load_be32(p), b = ac_load_be32(p + 4);
        crc = t[7][a >> 24] ^ t[6][(a >> 16) & 0xff] ^ t[5][(a >> 8) & 0xff] ^ t[4][a & 0xff] ^
              t[3][b >> 24] ^ t[2][(b >> 16) & 0xff] ^ t[1][(b >> 8) & 0xff] ^ t[0][b & 0xff];
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = (crc << 8) ^ t[0][((crc >> 24) ^ *p++) & 0xff];
    return crc;
}

/* The CRC a page of len bytes must carry (its CRC field, bytes 22..25, counted as zero). */
static uint32_t ac_ogg_page_crc(const uint8_t *page, size_t len)
{
    static const uint8_t zero[4] = {0, 0, 0, 0};
    uint32_t crc = ac_ogg_crc_update(0, page, 22);
    crc = ac_ogg_crc_update(crc, zero, 4);
    return ac_ogg_crc_update(crc, page + 26, len - 26);
}

enum {
    AC_OGG_PAGE = 0,        /* a whole, valid page of *page_len bytes */
    AC_OGG_NEED = 1,        /* so far so good; *page_len is the page's length when known, else 0 */
    AC_OGG_E_CAPTURE = -1,  /* not "OggS" */
    AC_OGG_E_VERSION = -2,  /* stream structure version is not 0 */
    AC_OGG_E_FLAGS = -3,    /* reserved header-type bits set */
    AC_OGG_E_CRC = -4,      /* the CRC does not match */
};

/* Check the page starting at p, of which avail bytes are at hand. Reads nothing past p[avail-1]. */
static int ac_ogg_page_check(const uint8_t *p, size_t avail, size_t *page_len)
{
    static const uint8_t capture[4] = {'O', 'g', 'g', 'S'};
    size_t head, body = 0;
    *page_len = 0;
    if (memcmp(p, capture, avail < 4 ? avail : 4) != 0)
        return AC_OGG_E_CAPTURE;
    if (avail > 4 && p[4] != 0)
        return AC_OGG_E_VERSION;
    if (avail > 5 && (p[5] & ~7u))
        return AC_OGG_E_FLAGS;
    if (avail < AC_OGG_HEADER)
        return AC_OGG_NEED;
    head = AC_OGG_HEADER + p[26];
    if (avail < head)
        return AC_OGG_NEED;
    for (size_t i = AC_OGG_HEADER; i < head; i++)
        body += p[i];
    *page_len = head + body;
    if (avail < head + body)
        return AC_OGG_NEED;
    if (ac_ogg_page_crc(p, head + body) != ac_load_le32(p + 22))
        return AC_OGG_E_CRC;
    return AC_OGG_PAGE;
}

/* First offset >= from at which "OggS" starts in p[0..n), or n if none does; a partial
 * match at the very end (e.g. "Og") also returns its start, so the caller keeps those bytes. */
static size_t ac_ogg_find_capture(const uint8_t *p, size_t n, size_t from)
{
    size_t i = from;
    while (i < n) {
        const uint8_t *q = (const uint8_t *)memchr(p + i, 'O', n - i);
        size_t left;
        if (q == NULL)
            return n;
        i = (size_t)(q - p);
        left = n - i < 4 ? n - i : 4;
        if (memcmp(p + i, "OggS", left) == 0)
            return i;
        i++;
    }
    return n;
}

/* Write the 27 fixed header bytes of a page with nseg lacing values (CRC left zero). */
static void ac_ogg_put_header(uint8_t *out, uint8_t flags, int64_t granule, uint32_t serial,
                              uint32_t seq, uint8_t nseg)
{
    memcpy(out, "OggS", 4);
    out[4] = 0;
    out[5] = flags;
    ac_store_le64(out + 6, (uint64_t)granule);
    ac_store_le32(out + 14, serial);
    ac_store_le32(out + 18, seq);
    ac_store_le32(out + 22, 0);
    out[26] = nseg;
}

/* Fill in the CRC of a finished page of len bytes. */
static inline void ac_ogg_seal(uint8_t *page, size_t len)
{
    ac_store_le32(page + 22, ac_ogg_page_crc(page, len));
}

#endif /* AC_OGG_H */
