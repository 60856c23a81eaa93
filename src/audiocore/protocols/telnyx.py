"""Telnyx media streaming: Twilio-like with snake_case fields, server side.

Media frames may arrive out of order: :class:`~audiocore.protocols.twilio.Media` exposes
``sequence``, ``chunk`` and ``timestamp`` to reorder them. Error frames become
:class:`~audiocore.protocols.twilio.Error`. Events and the session engine are those of
:mod:`audiocore.protocols.twilio`.

The codec of the audio sent back is not the inbound stream's: Telnyx's bidirectional RTP codec
is a setting of its own (``stream_bidirectional_codec``, default PCMU), so a PCMA call still
takes PCMU back unless that setting says PCMA. Give the same value to
:class:`TelnyxSession` (``bidirectional_codec=``).
"""

from __future__ import annotations

from audiocore.protocols._json import dumps
from audiocore.protocols.twilio import (
    DEFAULT_MAX_MESSAGE_SIZE,
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
    "BIDIRECTIONAL_CODECS",
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


#: Telnyx ``stream_bidirectional_codec`` values :meth:`TelnyxSession.media_message` codes.
BIDIRECTIONAL_CODECS = {"PCMU": "ulaw", "PCMA": "alaw"}


class TelnyxSession(StreamSession):
    """One Telnyx media stream, server side (see
    :class:`~audiocore.protocols.twilio.StreamSession`).

    ``bidirectional_codec``: the call's ``stream_bidirectional_codec`` ("PCMU", Telnyx's
    default, or "PCMA"), the codec of the audio :meth:`media_message` sends back, whatever the
    inbound stream's ``media_format`` is.
    """

    dialect = TELNYX

    def __init__(
        self,
        *,
        bidirectional_codec: str = "PCMU",
        encoding: str | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        if bidirectional_codec not in BIDIRECTIONAL_CODECS:
            raise ValueError(
                f"bidirectional_codec must be one of {', '.join(BIDIRECTIONAL_CODECS)}, "
                f"not {bidirectional_codec!r}"
            )
        super().__init__(encoding=encoding, max_message_size=max_message_size)
        self.bidirectional_codec = bidirectional_codec

    def media_message(self, pcm16: bytes | bytearray | memoryview) -> str:
        """:func:`media_message` in the stream's bidirectional codec (not the inbound one)."""
        return media_message(pcm16, codec=BIDIRECTIONAL_CODECS[self.bidirectional_codec])

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
