/* Opus packet framing (RFC 6716 section 3): the duration a packet codes, read from its TOC byte
 * and frame-count byte, with every rule of section 3.4 (R1-R7) checked. Bounds-checked: it
 * never reads past p[n-1]. Needs no libopus, so the Ogg kernel can use it too.
 */
#ifndef AC_OPUS_PACKET_H
#define AC_OPUS_PACKET_H

#include <stddef.h>
#include <stdint.h>

enum {
    AC_OPUS_E_EMPTY = -1,      /* no TOC byte (R1) */
    AC_OPUS_E_FRAME_SIZE = -2, /* a frame longer than 1275 bytes (R2) */
    AC_OPUS_E_ODD = -3,        /* code 1 with an odd number of payload bytes (R3) */
    AC_OPUS_E_LENGTH = -4,     /* a frame length (or length field) runs past the end (R4, R7) */
    AC_OPUS_E_COUNT = -5,      /* code 3 without its frame-count byte, or a count of 0 (R5) */
    AC_OPUS_E_DURATION = -6,   /* code 3 coding more than 120 ms (R5) */
    AC_OPUS_E_PADDING = -7,    /* padding runs past the end (R6, R7) */
    AC_OPUS_E_CBR = -8,        /* code 3 CBR payload not a multiple of the frame count (R6) */
};

#define AC_OPUS_MAX_FRAME_BYTES 1275
#define AC_OPUS_MAX_SAMPLES48 5760 /* 120 ms */

/* Duration of one frame, in 48 kHz samples, from the TOC's configuration number. */
static inline int ac_opus_frame_samples48(uint8_t toc)
{
    unsigned config = toc >> 3;
    if (config < 12) { /* SILK-only: 10, 20, 40, 60 ms */
        static const int silk[4] = {480, 960, 1920, 2880};
        return silk[config & 3];
    }
    if (config < 16) /* hybrid: 10, 20 ms */
        return (config & 1) ? 960 : 480;
    return 120 << (config & 3); /* CELT-only: 2.5, 5, 10, 20 ms */
}

/* A frame-length field of one or two bytes; -1 when it does not fit in avail bytes. */
static inline int ac_opus_frame_length(const uint8_t *p, size_t avail, size_t *used)
{
    if (avail < 1)
        return -1;
    if (p[0] < 252) {
        *used = 1;
        return p[0];
    }
    if (avail < 2)
        return -1;
    *used = 2;
    return p[0] + 4 * p[1];
}

/* The packet's duration in 48 kHz samples (120..5760), or a negative AC_OPUS_E_* code with
 * *err_at set to the offset of the byte found wrong (n when the packet ends too soon). */
static int ac_opus_packet_samples48(const uint8_t *p, size_t n, size_t *err_at)
{
    size_t rest, pos, used;
    int frame, count, len;
    if (n < 1) {
        *err_at = 0;
        return AC_OPUS_E_EMPTY;
    }
    frame = ac_opus_frame_samples48(p[0]);
    rest = n - 1;
    switch (p[0] & 3) {
    case 0:
        if (rest > AC_OPUS_MAX_FRAME_BYTES) {
            *err_at = 1 + AC_OPUS_MAX_FRAME_BYTES;
            return AC_OPUS_E_FRAME_SIZE;
        }
        return frame;
    case 1:
        if (rest & 1) {
            *err_at = n - 1;
            return AC_OPUS_E_ODD;
        }
        if (rest / 2 > AC_OPUS_MAX_FRAME_BYTES) {
            *err_at = 1 + AC_OPUS_MAX_FRAME_BYTES;
            return AC_OPUS_E_FRAME_SIZE;
        }
        return 2 * frame;
    case 2:
        len = ac_opus_frame_length(p + 1, rest, &used);
        if (len < 0) {
            *err_at = n;
            return AC_OPUS_E_LENGTH;
        }
        rest -= used;
        if ((size_t)len > rest) {
            *err_at = 1;
            return AC_OPUS_E_LENGTH;
        }
        if (rest - (size_t)len > AC_OPUS_MAX_FRAME_BYTES) {
            *err_at = 1 + used + (size_t)len + AC_OPUS_MAX_FRAME_BYTES;
            return AC_OPUS_E_FRAME_SIZE;
        }
        return 2 * frame;
    default:
        break;
    }
    /* code 3: a frame-count byte (VBR flag, padding flag, count), then padding lengths */
    if (rest < 1) {
        *err_at = 1;
        return AC_OPUS_E_COUNT;
    }
    count = p[1] & 0x3f;
    if (count == 0) {
        *err_at = 1;
        return AC_OPUS_E_COUNT;
    }
    if (count * frame > AC_OPUS_MAX_SAMPLES48) {
        *err_at = 1;
        return AC_OPUS_E_DURATION;
    }
    pos = 2;
    rest -= 1;
    if (p[1] & 0x40) {
        size_t pad = 0;
        uint8_t b;
        do {
            if (rest < 1) {
                *err_at = n;
                return AC_OPUS_E_PADDING;
            }
            b = p[pos++];
            rest--;
            pad += (b == 255) ? 254 : b;
        } while (b == 255);
        if (pad > rest) {
            *err_at = pos - 1;
            return AC_OPUS_E_PADDING;
        }
        rest -= pad;
    }
    if (p[1] & 0x80) { /* VBR: count - 1 length fields, the last frame takes what remains */
        for (int i = 0; i < count - 1; i++) {
            len = ac_opus_frame_length(p + pos, rest, &used);
            if (len < 0) {
                *err_at = n;
                return AC_OPUS_E_LENGTH;
            }
            rest -= used;
            if ((size_t)len > rest) {
                *err_at = pos;
                return AC_OPUS_E_LENGTH;
            }
            rest -= (size_t)len;
            pos += used;
        }
        if (rest > AC_OPUS_MAX_FRAME_BYTES) {
            *err_at = pos;
            return AC_OPUS_E_FRAME_SIZE;
        }
    } else {
        if (rest % (size_t)count) {
            *err_at = 1;
            return AC_OPUS_E_CBR;
        }
        if (rest / (size_t)count > AC_OPUS_MAX_FRAME_BYTES) {
            *err_at = pos;
            return AC_OPUS_E_FRAME_SIZE;
        }
    }
    return count * frame;
}

/* What an AC_OPUS_E_* code means, for error messages. */
static const char *ac_opus_packet_error_text(int code)
{
    switch (code) {
    case AC_OPUS_E_EMPTY:
        return "empty packet (no TOC byte)";
    case AC_OPUS_E_FRAME_SIZE:
        return "a frame is longer than 1275 bytes";
    case AC_OPUS_E_ODD:
        return "code 1 packet with an odd number of payload bytes";
    case AC_OPUS_E_LENGTH:
        return "a frame length runs past the end of the packet";
    case AC_OPUS_E_COUNT:
        return "code 3 packet without frames (missing or zero frame count)";
    case AC_OPUS_E_DURATION:
        return "code 3 packet longer than 120 ms";
    case AC_OPUS_E_PADDING:
        return "padding runs past the end of the packet";
    case AC_OPUS_E_CBR:
        return "code 3 CBR payload is not a multiple of the frame count";
    default:
        return "malformed packet";
    }
}

#endif /* AC_OPUS_PACKET_H */
