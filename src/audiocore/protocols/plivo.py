"""Plivo audio streams: Twilio-like, server side.

Inbound ``start``/``media``/``dtmf`` read like Twilio's (camelCase, ``streamId``); outbound
audio is ``playAudio`` with its content type and rate, a flush is ``clearAudio``.
"""

from __future__ import annotations

from audiocore._ext.envelope import Template
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

__all__ = [
    "PLIVO",
    "UNVERIFIED",
    "Connected",
    "Dtmf",
    "Error",
    "Mark",
    "Media",
    "PlivoSession",
    "Start",
    "Stop",
    "Unknown",
    "checkpoint_message",
    "clear_audio_message",
    "play_audio_message",
]

PLIVO = Dialect(
    name="plivo",
    stream="streamId",
    sequence="sequenceNumber",
    call="callId",
    account="accountId",
    media_format="mediaFormat",
    sample_rate="sampleRate",
    custom=None,
    default_encoding="audio/x-mulaw",
    default_rate=8000,
    encodings={"audio/x-mulaw": "ulaw", "audio/x-l16": "pcm16"},
)

#: Plivo facts taken from examples rather than the reference.
UNVERIFIED = {
    "streamId/callId/accountId": "field names of start and media",
    "audio/x-l16": "taken as little-endian PCM16 at the stated rate",
    "checkpoint": "{'event':'checkpoint','streamId':...,'name':...}; echoed as 'playedStream'",
    "clearAudio": "carries streamId",
}


class PlivoSession(StreamSession):
    """One Plivo audio stream, server side (see
    :class:`~audiocore.protocols.twilio.StreamSession`)."""

    dialect = PLIVO

    def media_message(self, pcm16: bytes | bytearray | memoryview) -> str:
        rate = self.start.sample_rate if self.start else 8000
        return play_audio_message(pcm16, linear=self.codec == "pcm16", sample_rate=rate)

    def clear_message(self) -> str:
        return clear_audio_message(self._require_stream())

    def mark_message(self, name: str) -> str:
        return checkpoint_message(self._require_stream(), name)


def _play_template(content_type: str, sample_rate: int, codec: str | None) -> Template:
    prefix = (
        '{"event":"playAudio","media":{"contentType":' + dumps(content_type)
        + ',"sampleRate":' + str(int(sample_rate)) + ',"payload":"'
    )
    return Template(prefix.encode("ascii"), b'"}}', codec=codec, pcm16=True)


_PLAY_ULAW = _play_template("audio/x-mulaw", 8000, "ulaw")
_PLAY_L16 = {rate: _play_template("audio/x-l16", rate, None) for rate in (8000, 16000)}


def play_audio_message(
    pcm16: bytes | bytearray | memoryview, *, linear: bool = False, sample_rate: int = 8000
) -> str:
    """Outbound ``playAudio``: ``pcm16`` (PCM16LE) as mu-law at 8 kHz, or with
    ``linear=True`` as ``audio/x-l16`` at ``sample_rate`` (8000 or 16000)."""
    if not linear:
        if sample_rate != 8000:
            raise ValueError("mu-law audio is 8000 Hz")
        return _PLAY_ULAW.build(pcm16)
    template = _PLAY_L16.get(sample_rate)
    if template is None:
        raise ValueError(f"audio/x-l16 is 8000 or 16000 Hz, not {sample_rate}")
    return template.build(pcm16)


def clear_audio_message(stream_id: str) -> str:
    return dumps({"event": "clearAudio", "streamId": stream_id})


def checkpoint_message(stream_id: str, name: str) -> str:
    return dumps({"event": "checkpoint", "streamId": stream_id, "name": name})
