"""Plain-Python Opus packet framing (RFC 6716 section 3) and helpers that build packets.

``frames(packet)`` splits a packet into its frames by the letter of section 3.2 and raises
``Malformed`` when any of the rules R1-R7 of section 3.4 is broken; ``samples48(packet)`` is
the packet's duration in 48 kHz samples. ``padded(packet, size)`` rewrites a single-frame
packet as a code-3 packet with padding (section 3.2.5) of exactly ``size`` bytes, which
decodes to the same audio: the tests use it to make real packets of any size.
"""

from __future__ import annotations

MAX_FRAME = 1275


class Malformed(ValueError):
    pass


def frame_ms_x10(toc: int) -> int:
    """Frame duration of a TOC byte in tenths of a millisecond (RFC 6716 Table 2)."""
    config = toc >> 3
    if config <= 11:  # SILK-only NB/MB/WB
        return [100, 200, 400, 600][config % 4]
    if config <= 15:  # hybrid SWB/FB
        return [100, 200][config % 2]
    return [25, 50, 100, 200][config % 4]  # CELT-only


def _length(data: bytes, i: int) -> tuple[int, int]:
    """A frame length field at data[i]: (length, bytes it took)."""
    if i >= len(data):
        raise Malformed("length field missing")
    if data[i] < 252:
        return data[i], 1
    if i + 1 >= len(data):
        raise Malformed("second byte of a length field missing")
    return data[i] + 4 * data[i + 1], 2


def frames(packet: bytes) -> list[bytes]:
    if len(packet) < 1:
        raise Malformed("R1: no TOC byte")
    code = packet[0] & 3
    payload = packet[1:]
    if code == 0:
        result = [payload]
    elif code == 1:
        if len(payload) % 2:
            raise Malformed("R3: odd code 1 payload")
        half = len(payload) // 2
        result = [payload[:half], payload[half:]]
    elif code == 2:
        n1, used = _length(packet, 1)
        body = packet[1 + used :]
        if n1 > len(body):
            raise Malformed("R4: first frame longer than the packet")
        result = [body[:n1], body[n1:]]
    else:
        if len(packet) < 2:
            raise Malformed("R6: no frame count byte")
        vbr, has_padding, count = packet[1] >> 7, (packet[1] >> 6) & 1, packet[1] & 63
        if count == 0:
            raise Malformed("R5: zero frames")
        if count * frame_ms_x10(packet[0]) > 1200:
            raise Malformed("R5: more than 120 ms")
        i = 2
        padding = 0
        if has_padding:
            while True:
                if i >= len(packet):
                    raise Malformed("padding length missing")
                b = packet[i]
                i += 1
                padding += 254 if b == 255 else b
                if b != 255:
                    break
        end = len(packet) - padding
        if end < i:
            raise Malformed("R6/R7: padding longer than the packet")
        if vbr:
            sizes = []
            for _ in range(count - 1):
                if i >= end:
                    raise Malformed("R7: length field missing")
                size, used = _length(packet[:end], i)
                i += used
                sizes.append(size)
            if sum(sizes) > end - i:
                raise Malformed("R7: frames longer than the packet")
            sizes.append(end - i - sum(sizes))
        else:
            if (end - i) % count:
                raise Malformed("R6: CBR payload not a multiple of the count")
            sizes = [(end - i) // count] * count
        result = []
        for size in sizes:
            result.append(packet[i : i + size])
            i += size
    if any(len(f) > MAX_FRAME for f in result):
        raise Malformed("R2: frame longer than 1275 bytes")
    return result


def samples48(packet: bytes) -> int:
    """Duration in 48 kHz samples; Malformed if the packet breaks RFC 6716's rules."""
    return len(frames(packet)) * frame_ms_x10(packet[0]) * 48 // 10


def padded(packet: bytes, size: int) -> bytes:
    """A code-3 packet of exactly ``size`` bytes carrying the one frame of ``packet`` (a
    code-0 packet), the rest padding; needs size >= len(packet) + 2."""
    assert packet[0] & 3 == 0, "a single-frame (code 0) packet is expected"
    frame = packet[1:]
    extra = size - 2 - len(frame)  # padding-length bytes plus padding bytes
    if extra < 1:
        raise ValueError(f"cannot pad a {len(packet)}-byte packet to {size} bytes")
    # k bytes of 255 (254 padding bytes each) and one final byte r: k + 1 + 254 k + r = extra
    k, r = divmod(extra - 1, 255)
    header = bytes([packet[0] | 3, 0x40 | 1]) + b"\xff" * k + bytes([r])
    out = header + frame + bytes(254 * k + r)
    assert len(out) == size
    return out
