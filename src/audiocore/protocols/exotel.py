"""Exotel voice streaming (Voicebot applet): Twilio-like with snake_case fields, server side.

Audio both ways is raw PCM16LE at 8 kHz, base64'd: :attr:`Media.pcm` is the payload itself.
"""

from __future__ import annotations


from audiocore._ext.envelope import Template
from audiocore.protocols._json import TemplateCache, dumps
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

__all__ = [
    "EXOTEL",
    "UNVERIFIED",
    "Connected",
    "Dtmf",
    "Error",
    "ExotelSession",
    "Mark",
    "Media",
    "Start",
    "Stop",
    "Unknown",
    "clear_message",
    "mark_message",
    "media_message",
]

EXOTEL = Dialect(
    name="exotel",
    stream="stream_sid",
    sequence="sequence_number",
    call="call_sid",
    account="account_sid",
    media_format="media_format",
    sample_rate="sample_rate",
    custom="custom_parameters",
    default_encoding="raw",
    default_rate=8000,
    encodings={"raw": "pcm16", "base64": "pcm16", "audio/x-l16": "pcm16"},
)

#: Exotel facts taken from examples rather than the reference.
UNVERIFIED = {
    "media_format.encoding": "'base64' in examples (meaning raw PCM16LE, base64'd)",
    "sample_rate": "sent as a string ('8000'); 16000 and 24000 on request",
    "outbound": "media/mark/clear carry stream_sid like Twilio's streamSid",
}


class ExotelSession(StreamSession):
    """One Exotel stream, server side (see :class:`~audiocore.protocols.twilio.StreamSession`)."""

    dialect = EXOTEL

    def media_message(self, pcm16: bytes | bytearray | memoryview) -> str:
        return media_message(self._require_stream(), pcm16)

    def mark_message(self, name: str) -> str:
        return mark_message(self._require_stream(), name)

    def clear_message(self) -> str:
        return clear_message(self._require_stream())


def _make_media_template(stream_sid: str) -> Template:
    prefix = '{"event":"media","stream_sid":' + dumps(stream_sid) + ',"media":{"payload":"'
    return Template(prefix.encode("ascii"), b'"}}', pcm16=True)


_media_template = TemplateCache(_make_media_template)


def media_message(stream_sid: str, pcm16: bytes | bytearray | memoryview) -> str:
    """Outbound media: raw PCM16LE (the stream's rate, 8 kHz by default), base64'd."""
    return _media_template(stream_sid).build(pcm16)


def mark_message(stream_sid: str, name: str) -> str:
    return dumps({"event": "mark", "stream_sid": stream_sid, "mark": {"name": name}})


def clear_message(stream_sid: str) -> str:
    return dumps({"event": "clear", "stream_sid": stream_sid})
