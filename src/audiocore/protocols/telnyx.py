"""Telnyx media streaming: Twilio-like with snake_case fields, server side.

Media frames may arrive out of order: :class:`~audiocore.protocols.twilio.Media` exposes
``sequence``, ``chunk`` and ``timestamp`` to reorder them. Error frames become
:class:`~audiocore.protocols.twilio.Error`. Events and the session engine are those of
:mod:`audiocore.protocols.twilio`.
"""

from __future__ import annotations

from audiocore.protocols._json import dumps
from audiocore.protocols.twilio import (
    Connected,
    Dialect,
    Dtmf,
    Error,
    Mark,
    Media,
    Start,
    Stop,
    StreamSession,
    Unknown,
)
from audiocore._ext.envelope import Template

__all__ = [
    "TELNYX",
    "UNVERIFIED",
    "Connected",
    "Dtmf",
    "Error",
    "Mark",
    "Media",
    "Start",
    "Stop",
    "TelnyxSession",
    "Unknown",
    "clear_message",
    "mark_message",
    "media_message",
]

TELNYX = Dialect(
    name="telnyx",
    stream="stream_id",
    sequence="sequence_number",
    call="call_control_id",
    account="user_id",
    media_format="media_format",
    sample_rate="sample_rate",
    custom="custom_parameters",
    default_encoding="PCMU",
    default_rate=8000,
    encodings={"PCMU": "ulaw", "PCMA": "alaw", "L16": "l16"},
)

#: Telnyx facts taken from examples or inferred rather than from the reference.
UNVERIFIED = {
    "L16": "taken as big-endian (network order, RFC 3551)",
    "outbound media": "{'event':'media','media':{'payload':...}} without a stream id",
    "G722/OPUS/AMR-WB": "not decoded: Media.pcm is None, Media.payload as sent",
}


class TelnyxSession(StreamSession):
    """One Telnyx media stream, server side (see
    :class:`~audiocore.protocols.twilio.StreamSession`)."""

    dialect = TELNYX

    def media_message(self, pcm16: bytes | bytearray | memoryview) -> str:
        codec = self.codec if self.codec in ("ulaw", "alaw") else "ulaw"
        return media_message(pcm16, codec=codec)

    def mark_message(self, name: str) -> str:
        return mark_message(name)

    def clear_message(self) -> str:
        return clear_message()


_MEDIA = {
    codec: Template(b'{"event":"media","media":{"payload":"', b'"}}', codec=codec)
    for codec in ("ulaw", "alaw")
}


def media_message(pcm16: bytes | bytearray | memoryview, *, codec: str = "ulaw") -> str:
    """Outbound RTP-mode media: ``pcm16`` (PCM16LE, 8 kHz) coded as PCMU (``codec="ulaw"``)
    or PCMA (``"alaw"``), base64'd. Chunks may hold 20 ms to 30 s."""
    return _MEDIA[codec].build(pcm16)


def mark_message(name: str) -> str:
    return dumps({"event": "mark", "mark": {"name": name}})


def clear_message() -> str:
    return dumps({"event": "clear"})
