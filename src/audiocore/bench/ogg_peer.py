"""A straightforward pure-Python Ogg Opus writer and push reader: the baseline the Ogg kernel is
timed against (what a gateway would write without audiocore). Table-driven CRC, struct for the
header fields, one page per packet; the reader buffers what it is fed and yields packets."""

from __future__ import annotations

import struct

_HEADER = struct.Struct("<4sBBqIIIB")


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if r & 0x80000000 else (r << 1) & 0xFFFFFFFF
        table.append(r)
    return table


_TABLE = _crc_table()


def crc32(data: bytes | bytearray | memoryview) -> int:
    crc = 0
    table = _TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[(crc >> 24) ^ byte]
    return crc


def packet_samples48(packet: bytes) -> int:
    """Duration at 48 kHz from the TOC byte (no validation)."""
    config = packet[0] >> 3
    if config < 12:
        frame = (480, 960, 1920, 2880)[config & 3]
    elif config < 16:
        frame = 960 if config & 1 else 480
    else:
        frame = 120 << (config & 3)
    code = packet[0] & 3
    count = 1 if code == 0 else 2 if code < 3 else packet[1] & 0x3F
    return frame * count


def page(flags: int, granule: int, serial: int, seq: int, lacing: list[int], body: bytes) -> bytes:
    header = _HEADER.pack(b"OggS", 0, flags, granule, serial, seq, 0, len(lacing))
    raw = header + bytes(lacing) + body
    return raw[:22] + struct.pack("<I", crc32(raw)) + raw[26:]


class PyOggOpusWriter:
    def __init__(self, serial: int, channels: int = 1, pre_skip: int = 3840) -> None:
        self.serial = serial
        self.seq = 0
        self.granule = 0
        self.head = struct.pack("<8sBBHIhB", b"OpusHead", 1, channels, pre_skip, 48000, 0, 0)
        vendor = b"audiocore"
        self.tags = b"OpusTags" + struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", 0)

    def _pages(self, packet: bytes, granule: int, flags: int = 0) -> bytes:
        lacing = [255] * (len(packet) // 255) + [len(packet) % 255]
        out = []
        pos = 0
        while lacing:
            chunk, lacing = lacing[:255], lacing[255:]
            size = sum(chunk)
            done = chunk[-1] < 255
            out.append(page(flags, granule if done else -1, self.serial, self.seq, chunk,
                            packet[pos : pos + size]))
            self.seq += 1
            pos += size
            flags = 0x01 if not done else 0
        return b"".join(out)

    def headers(self) -> bytes:
        return self._pages(self.head, 0, 0x02) + self._pages(self.tags, 0)

    def write(self, packet: bytes) -> bytes:
        self.granule += packet_samples48(packet)
        return self._pages(packet, self.granule)

    def close(self) -> bytes:
        out = page(0x04, -1, self.serial, self.seq, [], b"")
        self.seq += 1
        return out


class PyPacket:
    __slots__ = ("data", "granule", "serial")

    def __init__(self, data: bytes, granule: int, serial: int) -> None:
        self.data = data
        self.granule = granule
        self.serial = serial


class PyOggOpusReader:
    def __init__(self) -> None:
        self.buf = bytearray()
        self.partial = bytearray()
        self.packets_seen = 0
        self.head: bytes | None = None
        self.tags: bytes | None = None

    def feed(self, data: bytes) -> list[PyPacket]:
        self.buf += data
        out: list[PyPacket] = []
        while len(self.buf) >= 27:
            if self.buf[:4] != b"OggS":
                raise ValueError("lost sync")
            _, version, flags, granule, serial, seq, crc, nseg = _HEADER.unpack_from(self.buf)
            if len(self.buf) < 27 + nseg:
                break
            lacing = self.buf[27 : 27 + nseg]
            size = 27 + nseg + sum(lacing)
            if len(self.buf) < size:
                break
            raw = bytes(self.buf[:size])
            del self.buf[:size]
            if crc32(raw[:22] + b"\0\0\0\0" + raw[26:]) != crc:
                raise ValueError("bad CRC")
            pos = 27 + nseg
            last = None
            for value in lacing:
                self.partial += raw[pos : pos + value]
                pos += value
                if value < 255:
                    packet = bytes(self.partial)
                    self.partial.clear()
                    self.packets_seen += 1
                    if self.packets_seen == 1:
                        self.head = packet
                    elif self.packets_seen == 2:
                        self.tags = packet
                    else:
                        last = PyPacket(packet, -1, serial)
                        out.append(last)
            if last is not None:
                last.granule = granule
        return out
