"""ITU-T G.711 companding written from the standard's segment tables, one sample at a time.

mu-law works on 14-bit samples (the top 14 bits of PCM16), A-law on 13-bit samples (the top
13). Codes are as transmitted: mu-law with all bits inverted, A-law with the even bits
inverted (xor 0x55). Decoded values are the interval midpoints of the standard, scaled back
to 16 bits.
"""

from __future__ import annotations

import struct


def ulaw_encode_sample(pcm16: int) -> int:
    x = pcm16 >> 2
    magnitude = min(-x if x < 0 else x, 8159)
    biased = magnitude + 33                 # 33 .. 8192
    segment = biased.bit_length() - 6       # 0 .. 8
    if segment > 7:
        segment, step = 7, 15
    else:
        step = (biased >> (segment + 1)) & 0x0F
    raw = (segment << 4) | step
    sign = 0x80 if x >= 0 else 0x00
    return sign | (~raw & 0x7F)


def ulaw_decode_code(code: int) -> int:
    u = ~code & 0xFF
    segment = (u >> 4) & 0x07
    step = u & 0x0F
    magnitude14 = ((2 * step + 33) << segment) - 33
    value = 4 * magnitude14
    return -value if u & 0x80 else value


def alaw_encode_sample(pcm16: int) -> int:
    x = pcm16 >> 3
    if x >= 0:
        sign, magnitude = 0x80, x
    else:
        sign, magnitude = 0x00, -x - 1
    if magnitude >= 4096:
        segment, step = 7, 15
    else:
        segment = max(0, magnitude.bit_length() - 5)
        step = ((magnitude >> 1) if segment < 2 else (magnitude >> segment)) & 0x0F
    return (sign | (segment << 4) | step) ^ 0x55


def alaw_decode_code(code: int) -> int:
    a = code ^ 0x55
    segment = (a >> 4) & 0x07
    step = a & 0x0F
    magnitude13 = 2 * step + 1 if segment == 0 else (2 * step + 33) << (segment - 1)
    value = 8 * magnitude13
    return value if a & 0x80 else -value


def _samples(pcm: bytes) -> tuple[int, ...]:
    return struct.unpack(f"<{len(pcm) // 2}h", pcm)


def ulaw_encode(pcm: bytes) -> bytes:
    return bytes(ulaw_encode_sample(s) for s in _samples(pcm))


def alaw_encode(pcm: bytes) -> bytes:
    return bytes(alaw_encode_sample(s) for s in _samples(pcm))


def ulaw_decode(codes: bytes) -> bytes:
    return struct.pack(f"<{len(codes)}h", *(ulaw_decode_code(c) for c in codes))


def alaw_decode(codes: bytes) -> bytes:
    return struct.pack(f"<{len(codes)}h", *(alaw_decode_code(c) for c in codes))
