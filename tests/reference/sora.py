"""Plain reading of a whole Sora header-mode body: 20-byte big-endian headers, then payloads.
A zero-length payload yields nothing (the reference gateway's handlers act only on reads of
n > 0 bytes: Suzu test_handler.go, packet_dump_handler.go)."""

from __future__ import annotations


class RefError(Exception):
    """A bad header at ``offset``; ``packets``: the whole packets before it."""

    def __init__(self, offset: int, packets: list[tuple[int, int, bytes]]) -> None:
        super().__init__(offset)
        self.offset = offset
        self.packets = packets


def packets(body: bytes, max_payload: int) -> tuple[list[tuple[int, int, bytes]], bytes]:
    """The whole packets of ``body`` and the bytes left over; RefError at the first header
    whose length exceeds 0xFFFFFF or ``max_payload``."""
    out = []
    pos = 0
    while len(body) - pos >= 20:
        ts = int.from_bytes(body[pos : pos + 8], "big")
        seq = int.from_bytes(body[pos + 8 : pos + 16], "big")
        length = int.from_bytes(body[pos + 16 : pos + 20], "big")
        if length > 0xFFFFFF or length > max_payload:
            raise RefError(pos, out)
        if len(body) - pos - 20 < length:
            break
        if length:
            out.append((ts, seq, body[pos + 20 : pos + 20 + length]))
        pos += 20 + length
    return out, body[pos:]
