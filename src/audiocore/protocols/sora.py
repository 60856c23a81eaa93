"""Sora audio streaming, gateway side: the request body's Opus packets and the result lines.

Sora opens one HTTP/2 POST per client connection; its body streams Opus, our response body
streams one JSON result per line. :class:`BodyParser` turns body reads into
:class:`Packet`\\ s, :func:`parse_headers` checks the ``sora-*`` request headers, and the
``*_result`` functions build the lines to send. Sans-I/O: the HTTP/2 server lives in
``audiocore.gateway``.

Body framing (``header_mode``):

- header mode: each packet is a 20-byte big-endian header {timestamp u64 (Unix µs), sequence
  u64, payload length u32} then the Opus payload. Headers and payloads may be split across
  reads and several packets may share one: they are reassembled. A length over ``0xFFFFFF``
  or over ``max_payload`` is a :class:`ProtocolError`. A zero-length payload is dropped
  silently, as the reference does (counted in ``BodyParser.empty``). The parser holds at
  most one header and one payload, whatever it is fed.
- raw mode (legacy): no framing; each non-empty read is one packet, numbered from 0, without a
  timestamp. Fragile by nature: a read is not a packet boundary in HTTP/2.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from audiocore._ext.errors import ProtocolError
from audiocore.protocols._json import dumps

__all__ = [
    "HEADER_BYTES",
    "MAX_LENGTH",
    "SILENCE_PACKET",
    "BodyError",
    "BodyParser",
    "Packet",
    "StreamHeaders",
    "aws_result",
    "error_result",
    "gcp_result",
    "packet_bytes",
    "parse_headers",
    "test_result",
]

HEADER_BYTES = 20
#: The largest payload length header mode allows.
MAX_LENGTH = 0xFFFFFF
#: 20 ms of Opus silence (TOC 0xFC: CELT FB 20 ms, mono), inserted by the reference gateway
#: when no packet arrives in time so the recognizer keeps receiving time.
SILENCE_PACKET = b"\xfc\xff\xfe"
_HEADER = struct.Struct(">QQI")


@dataclass(slots=True)
class Packet:
    """One Opus packet of the body. ``timestamp_us``: Unix time in µs (None in raw mode);
    ``sequence``: as sent (raw mode: counted from 0); ``payload``: the packet, owned."""

    timestamp_us: int | None
    sequence: int
    payload: bytes


class BodyError(ProtocolError):
    """A bad packet in a Sora body. ``packets``: the packets the failing ``feed`` completed
    before the fault (they are consumed: hand them on as usual)."""

    def __init__(self, message: str, field: str, packets: list[Packet]) -> None:
        super().__init__(message, field)
        self.packets = packets

    def __reduce__(self) -> tuple[type, tuple[str, str | None, list[Packet]]]:
        return (type(self), (self.message, self.field, self.packets))


class BodyParser:
    """Reassembles Opus packets from the reads of a Sora request body. Use from one thread at
    a time.

    ``max_payload``: the largest packet accepted (bytes; at most ``MAX_LENGTH`` in header
    mode). A bad length raises :class:`BodyError` carrying the packets completed before it in
    that call; the parser keeps only the bad header, so the body is not usable past that
    point (every later ``feed`` raises the same error again, holding no more). In raw mode a read over
    ``max_payload`` raises and is dropped; the next read is a packet as usual.
    """

    def __init__(self, header_mode: bool = True, max_payload: int = 65536) -> None:
        if max_payload <= 0:
            raise ValueError(f"max_payload must be positive, not {max_payload}")
        self.header_mode = header_mode
        self.max_payload = max_payload
        self._head = bytearray()  # a header being read (fewer than HEADER_BYTES bytes)
        self._body: bytearray | None = None  # the payload being reassembled, as it came
        self._meta = (0, 0, 0)  # its header: timestamp, sequence, length
        self._bad: str | None = None  # the error every feed repeats after a bad length
        self._count = 0  # raw mode sequence
        #: Zero-length header-mode payloads dropped so far (the reference sends nothing for them).
        self.empty = 0

    @property
    def pending(self) -> int:
        """Bytes held towards the next packet."""
        return len(self._head) + (len(self._body) if self._body is not None else 0)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Packet]:
        """Every packet completed by ``data``. Linear in the bytes fed, whatever the packet
        size: a payload split across reads is appended to one buffer and copied out once."""
        view = memoryview(data).cast("B")
        if not self.header_mode:
            if not view:
                return []
            if len(view) > self.max_payload:
                raise BodyError(
                    f"packet of {len(view)} bytes exceeds max_payload {self.max_payload}",
                    "payload", [])
            self._count += 1
            return [Packet(None, self._count - 1, bytes(view))]
        if self._bad is not None:
            raise BodyError(self._bad, "length", [])
        packets: list[Packet] = []
        pos, n = 0, len(view)
        while pos < n:
            body = self._body
            if body is not None:  # continue a payload
                ts, seq, length = self._meta
                take = min(length - len(body), n - pos)
                body += view[pos : pos + take]
                pos += take
                if len(body) == length:
                    packets.append(Packet(ts, seq, bytes(body)))
                    self._body = None
                continue
            if self._head or n - pos < HEADER_BYTES:  # a header split across reads
                take = min(HEADER_BYTES - len(self._head), n - pos)
                self._head += view[pos : pos + take]
                pos += take
                if len(self._head) < HEADER_BYTES:
                    break
                ts, seq, length = _HEADER.unpack(self._head)
                head = bytes(self._head)
                self._head = bytearray()
            else:
                ts, seq, length = _HEADER.unpack_from(view, pos)
                head = b""
                pos += HEADER_BYTES
            if length > MAX_LENGTH or length > self.max_payload:
                limit = "0xFFFFFF" if length > MAX_LENGTH else f"max_payload {self.max_payload}"
                self._bad = f"payload length {length} exceeds {limit}"
                self._head = bytearray(head or view[pos - HEADER_BYTES : pos])  # the bad header stays
                raise BodyError(self._bad, "length", packets)
            if not length:
                self.empty += 1
            elif n - pos >= length:  # the whole payload is here: one copy
                packets.append(Packet(ts, seq, bytes(view[pos : pos + length])))
                pos += length
            else:
                self._meta = (ts, seq, length)
                self._body = bytearray(view[pos:])
                pos = n
        return packets

    def reset(self) -> None:
        """Forget any partial packet or bad header (and restart raw-mode numbering)."""
        self._head = bytearray()
        self._body = None
        self._bad = None
        self._count = 0


def packet_bytes(timestamp_us: int, sequence: int, payload: bytes) -> bytes:
    """One header-mode packet: the 20-byte header and ``payload`` (for peers and tests)."""
    if len(payload) > MAX_LENGTH:
        raise ValueError(f"payload of {len(payload)} bytes exceeds 0xFFFFFF")
    return _HEADER.pack(timestamp_us, sequence, len(payload)) + payload


# ---------------------------------------------------------------- request headers


@dataclass(slots=True, frozen=True)
class StreamHeaders:
    """The ``sora-*`` headers of an audio streaming request."""

    channel_id: str | None
    session_id: str | None
    connection_id: str | None
    language_code: str


_NAMES = {
    "sora-channel-id": "channel_id",
    "sora-session-id": "session_id",
    "sora-connection-id": "connection_id",
    "sora-audio-streaming-language-code": "language_code",
}


def parse_headers(headers: Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]]) -> StreamHeaders:
    """Read the ``sora-*`` request headers (a mapping, or name/value pairs as h2 gives them,
    ``str`` or ``bytes``; names compared ignoring case). The language code is required; a
    header given twice with different values is an error. Raises :class:`ProtocolError`
    naming the header."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    found: dict[str, str] = {}
    for raw_name, raw_value in pairs:
        name = raw_name.decode("latin-1") if isinstance(raw_name, bytes) else raw_name
        key = _NAMES.get(name.lower())
        if key is None:
            continue
        try:
            value = raw_value.decode("utf-8") if isinstance(raw_value, bytes) else raw_value
        except UnicodeDecodeError:
            raise ProtocolError(f"{name.lower()}: value is not UTF-8", name.lower()) from None
        value = value.strip()
        if key in found and found[key] != value:
            raise ProtocolError(f"{name.lower()}: given twice with different values", name.lower())
        found[key] = value
    language = found.get("language_code")
    if not language:
        raise ProtocolError(
            "sora-audio-streaming-language-code: required header is missing",
            "sora-audio-streaming-language-code",
        )
    return StreamHeaders(
        found.get("channel_id") or None,
        found.get("session_id") or None,
        found.get("connection_id") or None,
        language,
    )


# ---------------------------------------------------------------- result lines


def _line(obj: dict[str, object]) -> bytes:
    return dumps(obj).encode("ascii") + b"\n"


def aws_result(
    message: str,
    *,
    channel_id: str | None = None,
    is_partial: bool | None = None,
    result_id: str | None = None,
) -> bytes:
    """``{"type":"aws","message":...}`` plus the optional fields given, one line."""
    obj: dict[str, object] = {"type": "aws", "message": message}
    if channel_id is not None:
        obj["channel_id"] = channel_id
    if is_partial is not None:
        obj["is_partial"] = bool(is_partial)
    if result_id is not None:
        obj["result_id"] = result_id
    return _line(obj)


def gcp_result(message: str, *, is_final: bool | None = None, stability: float | None = None) -> bytes:
    """``{"type":"gcp","message":...}`` plus the optional fields given, one line."""
    obj: dict[str, object] = {"type": "gcp", "message": message}
    if is_final is not None:
        obj["is_final"] = bool(is_final)
    if stability is not None:
        obj["stability"] = float(stability)
    return _line(obj)


def error_result(reason: str) -> bytes:
    """``{"type":"error","reason":...}``, one line."""
    return _line({"type": "error", "reason": reason})


def test_result(nbytes: int, *, channel_id: str = "ch_0") -> bytes:
    """The ``/test`` path's line for a read of ``nbytes``: ``{"channel_id":...,
    "message":"n: <nbytes>","type":"test"}``."""
    return _line({"channel_id": channel_id, "message": f"n: {int(nbytes)}", "type": "test"})


test_result.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
