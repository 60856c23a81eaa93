"""Vonage Voice API WebSockets, server side (Vonage connects to us).

Audio travels as binary frames of PCM16LE (16 kHz by default; 8 or 24 kHz as the
``content-type`` of ``websocket:connected`` says), events as JSON text. Pass text frames as
``str`` and binary frames as ``bytes`` to :meth:`VonageSession.receive`. Audio sent back must
come in frames of exactly 20 ms: :meth:`VonageSession.audio_frames` cuts any PCM into them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from audiocore._ext.errors import ProtocolError
from audiocore._ext.rechunk import Rechunker
from audiocore.protocols._json import JSONObject, check_size, dumps, loads, want

__all__ = [
    "UNVERIFIED",
    "Audio",
    "Connected",
    "Dtmf",
    "Unknown",
    "VonageSession",
    "clear_message",
    "notify_message",
]

DEFAULT_MAX_MESSAGE_SIZE = 1 << 20

#: Vonage facts taken from examples rather than the reference.
UNVERIFIED = {
    "clear": "{'action':'clear'} drops audio queued at Vonage",
    "notify": "{'action':'notify','payload':...} echoed as 'websocket:notify' when played",
    "dtmf.duration": "milliseconds",
}
_RATES = (8000, 16000, 24000)


@dataclass(slots=True, frozen=True)
class Connected:
    """``websocket:connected``: the audio format and the custom headers of the call."""

    content_type: str
    sample_rate: int
    payload: JSONObject  #: the whole message (custom headers included)


@dataclass(slots=True, frozen=True)
class Audio:
    """One binary frame of PCM16LE (nominally 20 ms)."""

    pcm: bytes


@dataclass(slots=True, frozen=True)
class Dtmf:
    digit: str
    duration_ms: int | None


@dataclass(slots=True, frozen=True)
class Unknown:
    event: str | None
    payload: JSONObject


Event = Connected | Audio | Dtmf | Unknown


def _rate_of(content_type: str) -> int:
    kind, *params = (p.strip() for p in content_type.split(";"))
    if kind.lower() != "audio/l16":
        raise ProtocolError(f"content-type: only audio/l16 is defined, got {content_type!r}", "content-type")
    for p in params:
        key, _, value = p.partition("=")
        if key.strip().lower() == "rate":
            value = value.strip()
            if value.isascii() and value.isdigit() and len(value) <= 6 and int(value) in _RATES:
                return int(value)
            raise ProtocolError(f"content-type: rate {value!r} is not 8000, 16000 or 24000", "content-type")
    return 16000


class VonageSession:
    """One Vonage WebSocket call leg, server side. Use from one thread at a time."""

    def __init__(self, *, sample_rate: int = 16000, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        if sample_rate not in _RATES:
            raise ValueError(f"sample_rate must be 8000, 16000 or 24000, not {sample_rate}")
        self.max_message_size = max_message_size
        self.sample_rate = sample_rate
        self._out = Rechunker(sample_rate // 50 * 2)

    @property
    def frame_bytes(self) -> int:
        """Bytes of one 20 ms frame at the stream's rate."""
        return self.sample_rate // 50 * 2

    def receive(self, message: str | bytes | bytearray | memoryview) -> Event:
        """A ``bytes``-like message is an audio frame, a ``str`` a JSON event."""
        check_size(message, self.max_message_size)
        if not isinstance(message, str):
            pcm = bytes(message)
            if len(pcm) & 1:
                raise ProtocolError(f"audio frame of {len(pcm)} bytes is not whole PCM16 samples", None)
            return Audio(pcm)
        obj = loads(message)
        event = want(obj, "event", "str", "event", False)
        if event == "websocket:connected":
            ct = want(obj, "content-type", "str", "content-type")
            rate = _rate_of(ct)
            if rate != self.sample_rate:
                self.sample_rate = rate
                self._out = Rechunker(self.frame_bytes)
            return Connected(ct, rate, obj)
        if event == "websocket:dtmf":
            body: Any = obj.get("dtmf") if isinstance(obj.get("dtmf"), dict) else obj
            path = "dtmf." if body is not obj else ""
            return Dtmf(
                want(body, "digit", "str", f"{path}digit"),
                want(body, "duration", "int", f"{path}duration", False),
            )
        return Unknown(event, obj)

    def audio_frames(self, pcm: bytes | bytearray | memoryview) -> list[bytes]:
        """PCM16LE at the stream's rate, cut into the exact 20 ms binary frames to send; a
        partial frame is held until more comes or :meth:`flush_audio`."""
        return self._out.push(pcm)

    def flush_audio(self) -> list[bytes]:
        """The held partial frame, padded with silence to 20 ms (or nothing)."""
        return self._out.flush(pad=True)

    def clear(self) -> list[str | bytes]:
        """Barge-in: drops the held partial frame; returns the message to send."""
        self._out.reset()
        return [clear_message()]


def clear_message() -> str:
    return '{"action":"clear"}'


def notify_message(payload: JSONObject) -> str:
    return dumps({"action": "notify", "payload": payload})
