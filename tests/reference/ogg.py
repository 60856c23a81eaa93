"""Plain-Python Ogg (RFC 3533) and Ogg Opus (RFC 7845) for checking the kernels.

The CRC is computed bit by bit (polynomial 0x04c11db7, MSB first, initial 0, no final xor).
``pages`` parses a whole stream strictly; ``packets`` reassembles packets from pages the way
RFC 3533 describes; ``check_opus_stream`` asserts the rules an Ogg Opus stream written for
low latency must follow, and returns its audio packets.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from reference.opus_packet import samples48

CONTINUED, BOS, EOS = 0x01, 0x02, 0x04


class BadPage(ValueError):
    def __init__(self, why: str, offset: int) -> None:
        super().__init__(f"{why} at offset {offset}")
        self.offset = offset


def crc32(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else (crc << 1)
            crc &= 0xFFFFFFFF
    return crc


@dataclass
class Page:
    offset: int
    flags: int
    granule: int
    serial: int
    seq: int
    lacing: list[int]
    body: bytes
    raw: bytes = field(repr=False)


def pages(data: bytes) -> list[Page]:
    """Every page of ``data``, which must be whole valid pages back to back."""
    out = []
    pos = 0
    while pos < len(data):
        if data[pos : pos + 4] != b"OggS":
            raise BadPage("capture pattern expected", pos)
        if len(data) - pos < 27:
            raise BadPage("truncated header", pos)
        version, flags, granule, serial, seq, crc, nseg = struct.unpack_from(
            "<BBqIIIB", data, pos + 4
        )
        if version != 0 or flags & ~7:
            raise BadPage("bad version or flags", pos)
        lacing = list(data[pos + 27 : pos + 27 + nseg])
        size = 27 + nseg + sum(lacing)
        raw = data[pos : pos + size]
        if len(lacing) != nseg or len(raw) != size:
            raise BadPage("truncated page", pos)
        if crc32(raw[:22] + b"\0\0\0\0" + raw[26:]) != crc:
            raise BadPage("CRC mismatch", pos)
        out.append(Page(pos, flags, granule, serial, seq, lacing, raw[27 + nseg :], raw))
        pos += size
    return out


def page_bytes(flags: int, granule: int, serial: int, seq: int, segments: list[int],
               body: bytes) -> bytes:
    """One page built from its fields, with its CRC."""
    assert sum(segments) == len(body) and len(segments) <= 255
    head = b"OggS" + struct.pack("<BBqIIIB", 0, flags, granule, serial, seq, 0, len(segments))
    raw = head + bytes(segments) + body
    crc = crc32(raw)
    return raw[:22] + struct.pack("<I", crc) + raw[26:]


def lacing(size: int) -> list[int]:
    """The lacing values of one packet of ``size`` bytes."""
    return [255] * (size // 255) + [size % 255]


@dataclass
class Packet:
    data: bytes
    granule: int  # the page's granule if the packet is the last completed on it, else -1
    serial: int
    page_index: int  # the page on which it completes


def packets(page_list: list[Page]) -> list[Packet]:
    """Reassemble the packets of one logical stream's pages (no loss expected)."""
    out: list[Packet] = []
    partial: bytes | None = None
    for index, page in enumerate(page_list):
        if page.flags & CONTINUED:
            assert partial is not None, f"page {index} continues nothing"
        else:
            assert partial is None, f"page {index} drops an unfinished packet"
        current = partial or b""
        pos = 0
        completed = []
        for value in page.lacing:
            current += page.body[pos : pos + value]
            pos += value
            if value < 255:
                completed.append(Packet(current, -1, page.serial, index))
                current = b""
        if completed:
            completed[-1].granule = page.granule
        out += completed
        if page.lacing:
            partial = current if page.lacing[-1] == 255 else None
    return out


def parse_opus_head(packet: bytes) -> dict[str, int]:
    assert packet[:8] == b"OpusHead" and len(packet) >= 19
    version, channels, pre_skip, rate, gain, family = struct.unpack_from("<BBHIhB", packet, 8)
    return {"version": version, "channels": channels, "pre_skip": pre_skip,
            "input_rate": rate, "output_gain": gain, "mapping_family": family}


def parse_opus_tags(packet: bytes) -> tuple[str, list[str]]:
    assert packet[:8] == b"OpusTags"
    (n,) = struct.unpack_from("<I", packet, 8)
    vendor = packet[12 : 12 + n].decode()
    pos = 12 + n
    (count,) = struct.unpack_from("<I", packet, pos)
    pos += 4
    comments = []
    for _ in range(count):
        (n,) = struct.unpack_from("<I", packet, pos)
        comments.append(packet[pos + 4 : pos + 4 + n].decode())
        pos += 4 + n
    return vendor, comments


def check_opus_stream(data: bytes, closed: bool = True, end_trim: int = 0) -> list[Packet]:
    """Assert RFC 3533 / RFC 7845 rules on a single-stream Ogg Opus byte string; return its
    audio packets. Granules must count 48 kHz samples from 0 (page granule = end of the last
    packet completed on it, -1 when none completes), except that the EOS page's granule is
    ``end_trim`` lower (end trimming, RFC 7845 section 4.4); OpusHead alone on a BOS page with
    granule 0; OpusTags ending its page(s) with granule 0; page sequence numbers 0, 1, 2, ...;
    EOS only on the last page (and there when ``closed``)."""
    page_list = pages(data)
    assert page_list, "no pages"
    serials = {p.serial for p in page_list}
    assert len(serials) == 1, f"several serials: {serials}"
    assert [p.seq for p in page_list] == list(range(len(page_list))), "sequence numbers"
    first = page_list[0]
    assert first.flags == BOS and first.granule == 0 and len(first.lacing) >= 1
    assert all(not p.flags & BOS for p in page_list[1:])
    for p in page_list[:-1]:
        assert not p.flags & EOS, "EOS before the last page"
    if closed:
        assert page_list[-1].flags & EOS, "no EOS on the last page"
    all_packets = packets(page_list)
    head, tags = all_packets[0], all_packets[1]
    assert head.page_index == 0 and (len(all_packets) < 2 or all_packets[1].page_index > 0)
    assert parse_opus_head(head.data)["version"] == 1
    parse_opus_tags(tags.data)
    tags_last_page = tags.page_index
    assert page_list[tags_last_page].lacing[-1] < 255
    assert sum(1 for p in all_packets if p.page_index == tags_last_page) == 1 + (
        tags_last_page == 0
    ), "audio must start on a fresh page"
    for p in page_list[: tags_last_page + 1]:
        assert p.granule in (0, -1) and (p.granule == 0 or p.lacing[-1] == 255)
    audio = all_packets[2:]
    # lacing: every packet of n bytes takes n // 255 values of 255 and one of n % 255
    expected_lacing = [v for pkt in all_packets for v in lacing(len(pkt.data))]
    assert [v for p in page_list for v in p.lacing] == expected_lacing
    # granules
    end = 0
    ends: dict[int, int] = {}
    for pkt in audio:
        end += samples48(pkt.data)
        ends[pkt.page_index] = end
    if end_trim:
        last = len(page_list) - 1
        assert last in ends, "end trimming needs a packet completed on the EOS page"
        ends[last] -= end_trim
        previous = max((g for i, g in ends.items() if i < last), default=0)
        assert ends[last] >= previous, "the end trim reaches into an earlier page"
    for index, page in enumerate(page_list[tags_last_page + 1 :], tags_last_page + 1):
        assert page.granule == ends.get(index, -1), (
            f"page {index}: granule {page.granule}, expected {ends.get(index, -1)}"
        )
    return audio
