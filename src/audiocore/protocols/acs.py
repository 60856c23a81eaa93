"""Azure Communication Services media streaming, server side (ACS connects to us).

Feed each text frame to :meth:`AcsSession.receive`; it returns one typed event. Build what to
send with :func:`audio_message` and :func:`stop_audio_message`. Sans-I/O: no sockets here.

Rules this module keeps (see ``docs/protocols.md``):

- Keys are matched ignoring ASCII case (``kind``/``Kind``, ``participantRawID``/
  ``participantRawId``); ``kind`` *values* are matched exactly. A key twice (in any casing)
  is an error. A well-formed message of a kind not listed here is an :class:`Unknown` event.
- ``AudioData`` needs a format: the last ``AudioMetadata`` received, or the one the session
  was built with (``sample_rate=``). Without either it is a :class:`ProtocolError`. Each frame
  must hold exactly ``frame_bytes`` of PCM; a *silent* frame may also be empty. Silent frames
  are returned like any other (``silent=True``, ``pcm`` as it arrived): a bridge must still
  forward their time.
- Per-participant counters live in :attr:`AcsSession.participants` (keyed by
  ``participantRawID``, ``None`` for a mixed stream), at most ``max_participants`` of them
  (the one first seen longest ago is dropped to make room; 0 keeps none).

Facts not confirmed by the service's documentation are in :data:`UNVERIFIED`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from audiocore._ext.envelope import Template
from audiocore._ext.errors import ProtocolError
from audiocore.protocols._json import (
    Field,
    JSONObject,
    Schema,
    check_size,
    fold,
    json_type,
    loads,
    want,
)

if TYPE_CHECKING:
    from audiocore._ext._typing import PCM16Like

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "UNVERIFIED",
    "AcsSession",
    "AudioData",
    "AudioMetadata",
    "DtmfData",
    "Event",
    "MarkData",
    "ParticipantState",
    "TranscriptionData",
    "TranscriptionMetadata",
    "Unknown",
    "Word",
    "audio_message",
    "stop_audio_message",
]

#: Messages longer than this (characters) are refused unless the session says otherwise.
DEFAULT_MAX_MESSAGE_SIZE = 1 << 20

#: Wire facts taken from SDK behaviour or previews rather than the reference documentation.
UNVERIFIED = {
    "audioData.mark": "preview: {'Id': str} on a frame that carries a mark; an older .NET preview "
    "sent {'sequence': n}; any other mark is ignored, the frame kept",
    "markData": "preview kind MarkData with markData {id, status}",
    "resultStatus": "'final'/'intermediate'; 'Final' also seen: compared ignoring case",
    "outbound keys": "the service matches keys ignoring case; we emit the documented PascalCase",
}


# ---------------------------------------------------------------- events


@dataclass(slots=True, frozen=True)
class AudioMetadata:
    """The stream's format; the first message of a stream."""

    subscription_id: str | None
    encoding: str
    sample_rate: int  #: Hz
    channels: int
    frame_bytes: int  #: bytes of PCM16 per 20 ms frame (``length`` on the wire)


@dataclass(slots=True, frozen=True)
class AudioData:
    """One 20 ms frame of PCM16LE (``pcm``, owned by the event)."""

    pcm: bytes
    timestamp: str | None  #: ISO-8601, as sent
    participant: str | None  #: ``participantRawID``; None in a mixed stream
    silent: bool
    mark: str | None  #: the ``Id`` of a preview mark carried by the frame
    #: the ``sequence`` of a mark in an older preview's shape, ``{"sequence": n}``
    mark_sequence: int | None = None


@dataclass(slots=True, frozen=True)
class DtmfData:
    digit: str
    timestamp: str | None
    participant: str | None


@dataclass(slots=True, frozen=True)
class TranscriptionMetadata:
    subscription_id: str | None
    locale: str | None
    call_connection_id: str | None
    correlation_id: str | None
    payload: JSONObject  #: every field as parsed (keys in lower case)


@dataclass(slots=True, frozen=True)
class Word:
    text: str
    offset: int | None  #: 100 ns ticks
    duration: int | None  #: 100 ns ticks


@dataclass(slots=True, frozen=True)
class TranscriptionData:
    text: str
    format: str | None
    confidence: float | None
    offset: int | None  #: 100 ns ticks
    duration: int | None  #: 100 ns ticks
    words: tuple[Word, ...]
    participant: str | None
    result_status: str | None

    @property
    def is_final(self) -> bool:
        return (self.result_status or "").lower() == "final"


@dataclass(slots=True, frozen=True)
class MarkData:
    id: str
    status: str | None


@dataclass(slots=True, frozen=True)
class Unknown:
    """A well-formed message of a kind this module does not know."""

    kind: str
    payload: Any  #: the value under the kind's key, as sent (None if absent)


Event = AudioMetadata | AudioData | DtmfData | TranscriptionMetadata | TranscriptionData | MarkData | Unknown


@dataclass(slots=True)
class ParticipantState:
    """What one participant's stream has sent so far."""

    frames: int = 0
    silent_frames: int = 0
    last_timestamp: str | None = None


# ---------------------------------------------------------------- schemas

_AUDIO_FIELDS = (
    Field("kind", "str", True, ("AudioData",)),
    Field("audioData", "object", True),
    Field("audioData.data", "str", True),
    Field("audioData.timestamp", "str"),
    Field("audioData.participantRawID", "str"),
    Field("audioData.silent", "bool", default=False),
)
# A preview mark is read where its shape is known and ignored otherwise: the frame's audio is
# never refused for it. The fast path takes the known shapes; the general path reads the rest.
_MARK_FIELDS = (
    Field("audioData.mark", "object"),
    Field("audioData.mark.Id", "str"),
    Field("audioData.mark.sequence", "count"),
)
_AUDIO = Schema(
    _AUDIO_FIELDS + _MARK_FIELDS,
    case_insensitive=True,
    b64="audioData.data",
    record=AudioData,
    slots=(None, "pcm", "timestamp", "participant", "silent", "mark", "mark_sequence"),
)
_AUDIO_BODY = Schema(_AUDIO_FIELDS, case_insensitive=True, b64="audioData.data")
_METADATA = Schema(
    [
        Field("audioMetadata", "object", True),
        Field("audioMetadata.subscriptionId", "str"),
        Field("audioMetadata.encoding", "str"),
        Field("audioMetadata.sampleRate", "int"),
        Field("audioMetadata.channels", "int"),
        Field("audioMetadata.length", "int"),
    ],
    case_insensitive=True,
)
_DTMF = Schema(
    [
        Field("dtmfData", "object", True),
        Field("dtmfData.data", "str", True),
        Field("dtmfData.timestamp", "str"),
        Field("dtmfData.participantRawID", "str"),
    ],
    case_insensitive=True,
)
_MARK = Schema(
    [
        Field("markData", "object", True),
        Field("markData.id", "str", True),
        Field("markData.status", "str"),
    ],
    case_insensitive=True,
)
_TRANSCRIPTION_META = ("subscriptionId", "locale", "callConnectionId", "correlationId")


# ---------------------------------------------------------------- session


class AcsSession:
    """One ACS media stream, server side. Use from one thread at a time.

    ``sample_rate``/``channels``: the format assumed for audio that arrives before any
    ``AudioMetadata`` (by default such audio is an error). ``max_message_size``: longer
    messages are refused. ``max_participants``: how many participants' counters to keep (0:
    none).
    """

    def __init__(
        self,
        *,
        sample_rate: int | None = None,
        channels: int = 1,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_participants: int = 64,
    ) -> None:
        self.max_message_size = max_message_size
        self.max_participants = max_participants
        self.metadata: AudioMetadata | None = None
        if sample_rate is not None:
            self.metadata = _checked_format(None, "PCM", sample_rate, channels, None)
        #: Per-participant counters (``None``: the mixed stream).
        self.participants: dict[str | None, ParticipantState] = {}
        self._fast = True

    @property
    def sample_rate(self) -> int | None:
        return None if self.metadata is None else self.metadata.sample_rate

    @property
    def frame_bytes(self) -> int | None:
        return None if self.metadata is None else self.metadata.frame_bytes

    def receive(self, message: str | bytes) -> Event:
        """Parse one text frame into its event; :class:`ProtocolError` if malformed (the
        session is then unchanged)."""
        # The scan reads only str and bytes, whose len() is what check_size measures.
        if self._fast and len(message) <= self.max_message_size:
            ev = _AUDIO.scan(message)
            if ev is not None:
                return self._audio(ev)
        check_size(message, self.max_message_size)
        return self._receive_general(message)

    def _receive_general(self, message: str | bytes) -> Event:
        obj = loads(message, fold_keys=True)
        kind = want(obj, "kind", "str", "kind")
        if kind == "AudioData":
            _, pcm, timestamp, participant, silent = _AUDIO_BODY.extract(obj)
            mark, sequence = _mark(obj["audiodata"].get("mark"))
            return self._audio(AudioData(pcm, timestamp, participant, silent, mark, sequence))
        if kind == "AudioMetadata":
            sub, encoding, rate, channels, length = _METADATA.extract(obj)
            meta = _checked_format(sub, encoding, rate, channels, length)
            self.metadata = meta
            return meta
        if kind == "DtmfData":
            digit, ts, participant = _DTMF.extract(obj)
            return DtmfData(digit, ts, participant)
        if kind == "MarkData":
            return MarkData(*_MARK.extract(obj))
        if kind == "TranscriptionMetadata":
            return _transcription_metadata(obj)
        if kind == "TranscriptionData":
            return _transcription_data(obj)
        payload = None
        raw = loads(message)  # as sent, for the caller: keys not folded
        for key, value in raw.items():
            if fold(key) == kind.lower():
                payload = value
        return Unknown(kind, payload)

    def _audio(self, ev: AudioData) -> AudioData:
        meta = self.metadata
        if meta is None:
            raise ProtocolError(
                "audioData: audio arrived before AudioMetadata (pass sample_rate= to the "
                "session to assume a format)",
                "audioData",
            )
        n = len(ev.pcm)
        if n != meta.frame_bytes and (n or not ev.silent):
            raise ProtocolError(
                f"audioData.data: a frame holds {meta.frame_bytes} bytes at "
                f"{meta.sample_rate} Hz, this one {n}",
                "audioData.data",
            )
        if not self.max_participants:
            return ev
        state = self.participants.get(ev.participant)
        if state is None:
            if len(self.participants) >= self.max_participants:
                del self.participants[next(iter(self.participants))]
            state = self.participants[ev.participant] = ParticipantState()
        state.frames += 1
        state.silent_frames += ev.silent
        state.last_timestamp = ev.timestamp
        return ev


def _mark(value: Any) -> tuple[str | None, int | None]:
    """(``Id``, ``sequence``) of a frame's mark (keys folded), None for what is absent or of a
    shape not known."""
    if not isinstance(value, dict):
        return None, None
    out: list[Any] = []
    for key, types in (("id", "str"), ("sequence", "count")):
        try:
            out.append(want(value, key, types, f"audioData.mark.{key}", False))
        except ProtocolError:
            out.append(None)
    return out[0], out[1]


def _checked_format(
    sub: str | None, encoding: str | None, rate: int | None, channels: int | None, length: int | None
) -> AudioMetadata:
    encoding = "PCM" if encoding is None else encoding
    if encoding != "PCM":
        raise ProtocolError(
            f"audioMetadata.encoding: only 'PCM' is defined, got {encoding!r}",
            "audioMetadata.encoding",
        )
    rate = 16000 if rate is None else rate
    if not 8000 <= rate <= 192000 or rate % 50:
        raise ProtocolError(
            f"audioMetadata.sampleRate: {rate} Hz is not a rate with whole 20 ms frames "
            "between 8000 and 192000",
            "audioMetadata.sampleRate",
        )
    channels = 1 if channels is None else channels
    if not 1 <= channels <= 8:
        raise ProtocolError(
            f"audioMetadata.channels: {channels} is not between 1 and 8", "audioMetadata.channels"
        )
    if length is None:
        length = rate // 50 * 2 * channels
    if length <= 0 or length % (2 * channels) or length > rate * 2 * channels:
        raise ProtocolError(
            f"audioMetadata.length: {length} bytes is not a whole number of PCM16 frames "
            f"of at most 1 s",
            "audioMetadata.length",
        )
    return AudioMetadata(sub, encoding, rate, channels, length)


def _transcription_metadata(obj: JSONObject) -> TranscriptionMetadata:
    body = want(obj, "transcriptionmetadata", "object", "transcriptionMetadata")
    values = [
        want(body, fold(key), "str", f"transcriptionMetadata.{key}", False)
        for key in _TRANSCRIPTION_META
    ]
    return TranscriptionMetadata(values[0], values[1], values[2], values[3], body)


def _float(value: int | float | None) -> float | None:
    return None if value is None else float(value)


def _transcription_data(obj: JSONObject) -> TranscriptionData:
    path = "transcriptionData"
    body = want(obj, "transcriptiondata", "object", path)
    words = []
    for i, w in enumerate(want(body, "words", "array", f"{path}.words", False) or ()):
        wpath = f"{path}.words[{i}]"
        if not isinstance(w, dict):
            raise ProtocolError(f"{wpath}: expected an object, got {json_type(w)}", wpath)
        words.append(
            Word(
                want(w, "text", "str", f"{wpath}.text"),
                want(w, "offset", "int", f"{wpath}.offset", False),
                want(w, "duration", "int", f"{wpath}.duration", False),
            )
        )
    return TranscriptionData(
        text=want(body, "text", "str", f"{path}.text"),
        format=want(body, "format", "str", f"{path}.format", False),
        confidence=_float(want(body, "confidence", "number", f"{path}.confidence", False)),
        offset=want(body, "offset", "int", f"{path}.offset", False),
        duration=want(body, "duration", "int", f"{path}.duration", False),
        words=tuple(words),
        participant=want(body, "participantrawid", "str", f"{path}.participantRawID", False),
        result_status=want(body, "resultstatus", "str", f"{path}.resultStatus", False),
    )


# ---------------------------------------------------------------- builders

_AUDIO_OUT = Template(
    b'{"Kind":"AudioData","AudioData":{"Data":"', b'"},"StopAudio":null}', pcm16=True
)
_STOP = '{"Kind":"StopAudio","AudioData":null,"StopAudio":{}}'


def audio_message(pcm: PCM16Like) -> str:
    """The outbound message that plays ``pcm`` (PCM16LE bytes or an int16 array, at the
    stream's rate; another dtype is a TypeError), in the
    documented PascalCase: ``{"Kind":"AudioData","AudioData":{"Data":"..."},"StopAudio":null}``."""
    return _AUDIO_OUT.build(pcm)


def stop_audio_message() -> str:
    """The outbound message that flushes playback queued at ACS (barge-in)."""
    return _STOP
