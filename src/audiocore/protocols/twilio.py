"""Twilio Media Streams, and the engine behind the Twilio-like streams (Telnyx, Plivo, Exotel).

We are the WebSocket server the telephony service connects to. Feed each text frame to
:meth:`TwilioSession.receive`; it returns one typed event. A :class:`Media` event carries
``pcm`` as PCM16LE (mu-law and A-law expanded by the G.711 kernel) and ``payload`` as sent
(the G.711 codes, handy to pass straight to a service that takes ``g711_ulaw``). Build what to
send with :func:`media_message`, :func:`mark_message`, :func:`clear_message`.

The variants differ in field names and codecs only; each is a :class:`Dialect` (a table) and
its module (:mod:`~audiocore.protocols.telnyx`, :mod:`~audiocore.protocols.plivo`,
:mod:`~audiocore.protocols.exotel`) a few lines around it. Numbers the services send as
strings (``"sequenceNumber": "3"``) or as numbers are both read as ``int``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from audiocore._ext.envelope import Template
from audiocore._ext.errors import ProtocolError
from audiocore.protocols._json import (
    Field,
    JSONObject,
    Schema,
    TemplateCache,
    check_size,
    dumps,
    loads,
    strings,
    want,
)

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "TWILIO",
    "UNVERIFIED",
    "Connected",
    "Dialect",
    "Dtmf",
    "Error",
    "Mark",
    "Media",
    "Start",
    "Stop",
    "StreamSession",
    "TwilioSession",
    "Unknown",
    "clear_message",
    "mark_message",
    "media_message",
]

DEFAULT_MAX_MESSAGE_SIZE = 1 << 20

#: Twilio facts taken from examples rather than the reference (the others' are in their modules).
UNVERIFIED = {
    "dtmf.track": "'inbound_track' in examples",
    "start.mediaFormat.encoding": "only 'audio/x-mulaw' documented; 'audio/x-alaw' read too",
}

# ---------------------------------------------------------------- events


@dataclass(slots=True, frozen=True)
class Connected:
    protocol: str | None
    version: str | None


@dataclass(slots=True, frozen=True)
class Start:
    """The stream's metadata; ``encoding``/``sample_rate``/``channels`` are the inbound
    media format as sent, ``payload`` the whole ``start`` object."""

    stream_id: str | None
    sequence: int | None
    call_id: str | None
    account_id: str | None
    tracks: tuple[str, ...]
    encoding: str
    sample_rate: int
    channels: int
    custom_parameters: JSONObject
    payload: JSONObject


@dataclass(slots=True, frozen=True)
class Media:
    """One chunk of call audio. ``pcm``: PCM16LE (None for an encoding audiocore does not
    decode); ``payload``: the bytes as sent. ``sequence``/``chunk``/``timestamp`` (ms) order
    chunks where the service does not (Telnyx)."""

    stream_id: str | None
    sequence: int | None
    track: str | None
    chunk: int | None
    timestamp: int | None
    pcm: bytes | None
    payload: bytes


@dataclass(slots=True, frozen=True)
class Dtmf:
    stream_id: str | None
    sequence: int | None
    track: str | None
    digit: str


@dataclass(slots=True, frozen=True)
class Mark:
    """A mark we sent came back: the audio before it has played (or was cleared)."""

    stream_id: str | None
    sequence: int | None
    name: str


@dataclass(slots=True, frozen=True)
class Stop:
    stream_id: str | None
    sequence: int | None
    payload: JSONObject  #: the ``stop`` object (call id, reason...), empty if absent


@dataclass(slots=True, frozen=True)
class Error:
    """An error frame (Telnyx)."""

    stream_id: str | None
    sequence: int | None
    code: int | str | None
    title: str | None
    detail: str | None
    payload: JSONObject


@dataclass(slots=True, frozen=True)
class Unknown:
    """A well-formed message of an ``event`` this module does not know."""

    event: str
    payload: JSONObject  #: the whole message


Event = Connected | Start | Media | Dtmf | Mark | Stop | Error | Unknown

# ---------------------------------------------------------------- dialects


@dataclass(frozen=True)
class Dialect:
    """The field names and codecs of one Twilio-like service."""

    name: str
    stream: str  #: key of the stream id (top level, or in ``start``)
    sequence: str  #: key of the sequence number
    call: str  #: key of the call id in ``start``
    account: str  #: key of the account id in ``start``
    media_format: str  #: key of the media format object in ``start``
    sample_rate: str  #: key of the rate in the media format
    custom: str | None  #: key of the custom parameters in ``start``
    default_encoding: str  #: assumed before ``start`` and when ``start`` names none
    default_rate: int
    #: encoding name -> "ulaw" | "alaw" | "pcm16" (little-endian) | "l16" (big-endian)
    encodings: dict[str, str] = field(default_factory=dict)


TWILIO = Dialect(
    name="twilio",
    stream="streamSid",
    sequence="sequenceNumber",
    call="callSid",
    account="accountSid",
    media_format="mediaFormat",
    sample_rate="sampleRate",
    custom="customParameters",
    default_encoding="audio/x-mulaw",
    default_rate=8000,
    encodings={"audio/x-mulaw": "ulaw", "audio/x-alaw": "alaw"},
)

_FAST = ("ulaw", "alaw", "pcm16")  # codecs whose media the fast path reads into a Media


def _media_schema(d: Dialect, codec: str | None) -> Schema:
    """The media message of a dialect; with a codec that gives PCM16 it reads into a Media."""
    record = {} if codec is None else {
        "record": Media,
        "slots": (None, "sequence", "stream_id", "track", "chunk", "timestamp", "payload", "pcm"),
    }
    return Schema(
        [
            Field("event", "str", True, ("media",)),
            Field(d.sequence, "count"),
            Field(d.stream, "str"),
            Field("media", "object", True),
            Field("media.track", "str"),
            Field("media.chunk", "count"),
            Field("media.timestamp", "count"),
            Field("media.payload", "str", True),
        ],
        b64="media.payload",
        codec=codec,
        **record,  # type: ignore[arg-type]
    )


_SCHEMAS: dict[str, dict[str | None, Schema]] = {}


def _schemas(d: Dialect) -> dict[str | None, Schema]:
    """The media schemas of a dialect (by codec), made once per dialect name."""
    if d.name not in _SCHEMAS:
        _SCHEMAS[d.name] = {c: _media_schema(d, c) for c in (None, "ulaw", "alaw", "pcm16")}
    return _SCHEMAS[d.name]


class StreamSession:
    """One Twilio-like media stream, server side, in the given :class:`Dialect`. Use from
    one thread at a time.

    ``encoding``: the media encoding assumed until ``start`` says (default: the dialect's).
    ``max_message_size``: longer messages are refused.
    """

    dialect: Dialect = TWILIO

    def __init__(self, *, encoding: str | None = None, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self.max_message_size = max_message_size
        self.stream_id: str | None = None
        self.start: Start | None = None
        self.encoding = encoding or self.dialect.default_encoding
        self._schemas = _schemas(self.dialect)
        self._codec = self.dialect.encodings.get(self.encoding)
        self._fast = True

    @property
    def codec(self) -> str | None:
        """How media payloads become PCM16: "ulaw", "alaw", "pcm16", "l16" or None (not)."""
        return self._codec

    def receive(self, message: str | bytes) -> Event:
        """Parse one text frame; :class:`ProtocolError` if malformed (the session is then
        unchanged)."""
        schema = self._schemas[self._codec if self._codec in _FAST else None]
        # The scan reads only str and bytes, whose len() is what check_size measures.
        if self._fast and len(message) <= self.max_message_size:
            media = schema.scan(message)
            if media is not None:
                return self._checked(media) if schema.record else self._media(media)
        check_size(message, self.max_message_size)
        obj = loads(message)
        kind = want(obj, "event", "str", "event")
        if kind == "media":
            values = schema.extract(obj)
            return self._checked(schema.make(values)) if schema.record else self._media(values)
        d = self.dialect
        stream_id = want(obj, d.stream, "str", d.stream, False)
        seq = want(obj, d.sequence, "count", d.sequence, False)
        if kind == "start":
            start = self._start(obj, stream_id, seq)
            self.start = start
            self.stream_id = start.stream_id
            self.encoding = start.encoding
            self._codec = d.encodings.get(start.encoding)
            return start
        if kind == "connected":
            return Connected(
                want(obj, "protocol", "str", "protocol", False), want(obj, "version", "str", "version", False)
            )
        if kind == "dtmf":
            body = want(obj, "dtmf", "object", "dtmf")
            return Dtmf(
                stream_id,
                seq,
                want(body, "track", "str", "dtmf.track", False),
                want(body, "digit", "str", "dtmf.digit"),
            )
        if kind == "mark":
            body = want(obj, "mark", "object", "mark")
            return Mark(stream_id, seq, want(body, "name", "str", "mark.name"))
        if kind == "stop":
            return Stop(stream_id, seq, want(obj, "stop", "object", "stop", False) or {})
        if kind == "error":
            body = want(obj, "payload", "object", "payload", False) or want(obj, "error", "object", "error", False) or {}
            code = body.get("code")
            if isinstance(code, bool) or not isinstance(code, (int, str, type(None))):
                raise ProtocolError("payload.code: expected an integer or a string", "payload.code")
            return Error(
                stream_id,
                seq,
                code,
                want(body, "title", "str", "payload.title", False),
                want(body, "detail", "str", "payload.detail", False),
                body,
            )
        return Unknown(kind, obj)

    def _start(self, obj: JSONObject, stream_id: str | None, seq: int | None) -> Start:
        d = self.dialect
        body = want(obj, "start", "object", "start")
        if stream_id is None:
            stream_id = want(body, d.stream, "str", f"start.{d.stream}", False)
        tracks = want(body, "tracks", "array", "start.tracks", False)
        fmt_path = f"start.{d.media_format}"
        fmt = want(body, d.media_format, "object", fmt_path, False) or {}
        encoding = want(fmt, "encoding", "str", f"{fmt_path}.encoding", False) or d.default_encoding
        rate = want(fmt, d.sample_rate, "count", f"{fmt_path}.{d.sample_rate}", False)
        channels = want(fmt, "channels", "count", f"{fmt_path}.channels", False)
        if rate is not None and not 8000 <= rate <= 192000:
            raise ProtocolError(f"{fmt_path}.{d.sample_rate}: {rate} Hz is out of range", f"{fmt_path}.{d.sample_rate}")
        if channels is not None and not 1 <= channels <= 8:
            raise ProtocolError(f"{fmt_path}.channels: {channels} is out of range", f"{fmt_path}.channels")
        custom = want(body, d.custom, "object", f"start.{d.custom}", False) if d.custom else None
        return Start(
            stream_id=stream_id,
            sequence=seq,
            call_id=want(body, d.call, "str", f"start.{d.call}", False),
            account_id=want(body, d.account, "str", f"start.{d.account}", False),
            tracks=strings(tracks, "start.tracks") if tracks is not None else (),
            encoding=encoding,
            sample_rate=rate or d.default_rate,
            channels=channels or 1,
            custom_parameters=custom or {},
            payload=body,
        )

    def _checked(self, media: Media) -> Media:
        if self._codec == "pcm16" and len(media.payload) & 1:
            raise ProtocolError("media.payload: PCM16 audio has an odd number of bytes", "media.payload")
        return media

    def _media(self, values: tuple[Any, ...]) -> Media:
        """Media of a stream whose codec the fast path does not decode (L16 or unknown)."""
        _, seq, stream_id, track, chunk, ts, payload = values
        pcm = None
        if self._codec == "l16":
            if len(payload) & 1:
                raise ProtocolError("media.payload: PCM16 audio has an odd number of bytes", "media.payload")
            pcm = _swap16(payload)
        return Media(stream_id, seq, track, chunk, ts, pcm, payload)

    # ------------------------------------------------------------ builders for this stream

    def media_message(self, pcm16: bytes | bytearray | memoryview) -> str:
        """:func:`media_message` for this stream (after ``start``)."""
        return media_message(self._require_stream(), pcm16)

    def mark_message(self, name: str) -> str:
        return mark_message(self._require_stream(), name)

    def clear_message(self) -> str:
        return clear_message(self._require_stream())

    def _require_stream(self) -> str:
        if self.stream_id is None:
            raise ValueError("no stream id yet: 'start' has not been received")
        return self.stream_id


class TwilioSession(StreamSession):
    """One Twilio Media Stream, server side (see :class:`StreamSession`)."""

    dialect = TWILIO


def _swap16(data: bytes) -> bytes:
    """Big-endian 16-bit samples -> little-endian (an odd tail byte is left for the caller
    to report)."""
    out = bytearray(data)
    out[0 : len(data) & ~1 : 2] = data[1::2][: len(data) // 2]
    out[1 : len(data) & ~1 : 2] = data[0::2][: len(data) // 2]
    return bytes(out)


# ---------------------------------------------------------------- builders


def _make_media_template(stream_sid: str) -> Template:
    prefix = '{"event":"media","streamSid":' + dumps(stream_sid) + ',"media":{"payload":"'
    return Template(prefix.encode("ascii"), b'"}}', codec="ulaw")


_media_template = TemplateCache(_make_media_template)


def media_message(stream_sid: str, pcm16: bytes | bytearray | memoryview) -> str:
    """Outbound media: ``pcm16`` (PCM16LE, 8 kHz) mu-law coded and base64'd into
    ``{"event":"media","streamSid":...,"media":{"payload":...}}``."""
    return _media_template(stream_sid).build(pcm16)


def mark_message(stream_sid: str, name: str) -> str:
    """A mark after the media sent so far; Twilio echoes it when that media has played."""
    return dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear_message(stream_sid: str) -> str:
    """Drop the media queued at Twilio (barge-in); pending marks come back."""
    return dumps({"event": "clear", "streamSid": stream_sid})
