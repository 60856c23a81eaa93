"""Azure Voice Live / OpenAI Realtime, client side (we connect to the service).

Feed each text frame to :meth:`RealtimeSession.receive`; it returns one typed event. Beta and
GA names are both accepted (``response.audio.delta`` and ``response.output_audio.delta`` are
both :class:`AudioDelta`; ``.type`` keeps the name that arrived). Build what to send with the
module functions (:func:`append`, :func:`session_update`, ...). Sans-I/O: no sockets here.

The session follows what the server says: the output audio format of ``session.created`` /
``session.updated`` (so :attr:`AudioDelta.pcm` is always PCM16: G.711 output is expanded),
which response is in progress, how much audio each item has received. On barge-in,
:meth:`RealtimeSession.barge_in` turns what was actually played into the messages to send and
from then on turns late deltas of the cancelled response into :class:`DroppedAudioDelta`.

Facts not confirmed by the services' reference documentation are in :data:`UNVERIFIED`.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from audiocore._ext.b64 import b64encode
from audiocore._ext.envelope import Template
from audiocore._ext.errors import ProtocolError
from audiocore.protocols._json import (
    Field,
    JSONObject,
    Schema,
    check_size,
    dumps,
    loads,
    want,
)

if TYPE_CHECKING:
    from audiocore._ext._typing import PCM16Like

__all__ = [
    "AUDIO_DELTA_TYPES",
    "Animation",
    "AudioDelta",
    "AudioDone",
    "AudioFormat",
    "AudioTimestamp",
    "AudioTranscriptDelta",
    "AudioTranscriptDone",
    "ContentPartAdded",
    "ContentPartDone",
    "ConversationItemCreated",
    "ConversationItemDeleted",
    "ConversationItemDone",
    "ConversationItemRetrieved",
    "ConversationItemTruncated",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DroppedAudioDelta",
    "Error",
    "Event",
    "FunctionCallArgumentsDelta",
    "FunctionCallArgumentsDone",
    "InputAudioBufferCleared",
    "InputAudioBufferCommitted",
    "InputTranscriptionCompleted",
    "InputTranscriptionDelta",
    "InputTranscriptionFailed",
    "KNOWN_TYPES",
    "OutputItemAdded",
    "OutputItemDone",
    "PCM16_24K",
    "RateLimitsUpdated",
    "RealtimeSession",
    "ResponseCreated",
    "ResponseDone",
    "ServerEvent",
    "SessionCreated",
    "SessionUpdated",
    "SpeechStarted",
    "SpeechStopped",
    "TextDelta",
    "TextDone",
    "UNVERIFIED",
    "Unknown",
    "Warning",
    "append",
    "clear",
    "commit",
    "event",
    "item_create",
    "item_delete",
    "item_retrieve",
    "response_cancel",
    "response_create",
    "session_update",
    "truncate",
]

#: Messages longer than this (characters) are refused unless the session says otherwise.
DEFAULT_MAX_MESSAGE_SIZE = 16 << 20

#: Wire facts taken from previews or SDK behaviour rather than reference documentation.
UNVERIFIED = {
    "warning": "Voice Live 'warning' event: kept whole in Warning.payload",
    "response.audio_timestamp.*": "Voice Live: kept whole in AudioTimestamp.payload",
    "response.animation_*": "Voice Live: kept whole in Animation.payload",
    "conversation.item.added/done": "GA names; read like conversation.item.created",
    "interrupt_response default": "taken as false when the server's session does not say",
    "pcm16_<rate>hz": "Voice Live output formats; 'pcm16' alone is 24 kHz",
}

# ---------------------------------------------------------------- events
# Every server event carries the ``type`` that arrived (beta or GA name) and its ``event_id``.
# Events that differ only in name share a private base holding their fields.


@dataclass(slots=True, frozen=True)
class ServerEvent:
    type: str
    event_id: str | None


@dataclass(slots=True, frozen=True)
class _Session(ServerEvent):
    session: JSONObject


@dataclass(slots=True, frozen=True)
class SessionCreated(_Session):
    pass


@dataclass(slots=True, frozen=True)
class SessionUpdated(_Session):
    pass


@dataclass(slots=True, frozen=True)
class Error(ServerEvent):
    """A server ``error`` event (most are recoverable); the fields of its ``error`` object."""

    error_type: str | None
    code: str | None
    message: str
    param: str | None
    error_event_id: str | None  #: the client event that caused it


@dataclass(slots=True, frozen=True)
class Warning(ServerEvent):
    payload: JSONObject  #: the whole message


@dataclass(slots=True, frozen=True)
class InputAudioBufferCommitted(ServerEvent):
    previous_item_id: str | None
    item_id: str


@dataclass(slots=True, frozen=True)
class InputAudioBufferCleared(ServerEvent):
    pass


@dataclass(slots=True, frozen=True)
class SpeechStarted(ServerEvent):
    """The server's VAD heard the user start: the moment to barge in."""

    audio_start_ms: int
    item_id: str


@dataclass(slots=True, frozen=True)
class SpeechStopped(ServerEvent):
    audio_end_ms: int
    item_id: str


@dataclass(slots=True, frozen=True)
class _ItemAdded(ServerEvent):
    previous_item_id: str | None
    item: JSONObject | None  #: optional in the Voice Live SDK's models


@dataclass(slots=True, frozen=True)
class ConversationItemCreated(_ItemAdded):
    """``conversation.item.created`` (beta) or ``conversation.item.added`` (GA)."""


@dataclass(slots=True, frozen=True)
class ConversationItemDone(_ItemAdded):
    pass


@dataclass(slots=True, frozen=True)
class ConversationItemRetrieved(ServerEvent):
    item: JSONObject | None  #: optional in the Voice Live SDK's models


@dataclass(slots=True, frozen=True)
class ConversationItemTruncated(ServerEvent):
    item_id: str
    content_index: int
    audio_end_ms: int


@dataclass(slots=True, frozen=True)
class ConversationItemDeleted(ServerEvent):
    item_id: str


@dataclass(slots=True, frozen=True)
class InputTranscriptionDelta(ServerEvent):
    """A piece of the transcript of the user's audio. ``delta`` is None when the server sent
    none (only ``logprobs``, say: both are optional in the OpenAI and Voice Live SDKs)."""

    item_id: str
    content_index: int | None
    delta: str | None
    logprobs: list[Any] | None


@dataclass(slots=True, frozen=True)
class InputTranscriptionCompleted(ServerEvent):
    item_id: str
    content_index: int | None
    transcript: str


@dataclass(slots=True, frozen=True)
class InputTranscriptionFailed(ServerEvent):
    item_id: str
    content_index: int | None
    error: JSONObject | None


@dataclass(slots=True, frozen=True)
class _Response(ServerEvent):
    response: JSONObject

    @property
    def response_id(self) -> str | None:
        rid = self.response.get("id")
        return rid if isinstance(rid, str) else None

    @property
    def status(self) -> str | None:
        status = self.response.get("status")
        return status if isinstance(status, str) else None


@dataclass(slots=True, frozen=True)
class ResponseCreated(_Response):
    pass


@dataclass(slots=True, frozen=True)
class ResponseDone(_Response):
    pass


@dataclass(slots=True, frozen=True)
class _OutputItem(ServerEvent):
    response_id: str
    output_index: int | None
    item: JSONObject | None  #: optional in the Voice Live SDK's models


@dataclass(slots=True, frozen=True)
class OutputItemAdded(_OutputItem):
    pass


@dataclass(slots=True, frozen=True)
class OutputItemDone(_OutputItem):
    pass


@dataclass(slots=True, frozen=True)
class _Content(ServerEvent):
    """Fields of every event about one content part of a response's item."""

    response_id: str
    item_id: str
    output_index: int | None
    content_index: int | None


@dataclass(slots=True, frozen=True)
class ContentPartAdded(_Content):
    part: JSONObject


@dataclass(slots=True, frozen=True)
class ContentPartDone(_Content):
    part: JSONObject


@dataclass(slots=True, frozen=True)
class AudioDelta(_Content):
    """Audio of a response: ``pcm`` is PCM16LE at the session's output rate (G.711 output is
    expanded); ``payload`` the bytes as sent (the same object when the format is PCM16)."""

    payload: bytes
    pcm: bytes


@dataclass(slots=True, frozen=True)
class DroppedAudioDelta(ServerEvent):
    """A late audio delta of a response cancelled by :meth:`RealtimeSession.barge_in`: not
    to be played. ``audio_bytes`` is the size of its decoded payload."""

    response_id: str
    item_id: str
    audio_bytes: int


@dataclass(slots=True, frozen=True)
class AudioDone(_Content):
    pass


@dataclass(slots=True, frozen=True)
class _ContentDelta(_Content):
    delta: str


@dataclass(slots=True, frozen=True)
class AudioTranscriptDelta(_ContentDelta):
    pass


@dataclass(slots=True, frozen=True)
class AudioTranscriptDone(_Content):
    transcript: str | None


@dataclass(slots=True, frozen=True)
class TextDelta(_ContentDelta):
    pass


@dataclass(slots=True, frozen=True)
class TextDone(_Content):
    text: str | None


@dataclass(slots=True, frozen=True)
class _FunctionCall(ServerEvent):
    response_id: str
    item_id: str
    output_index: int | None
    call_id: str


@dataclass(slots=True, frozen=True)
class FunctionCallArgumentsDelta(_FunctionCall):
    delta: str


@dataclass(slots=True, frozen=True)
class FunctionCallArgumentsDone(_FunctionCall):
    name: str | None
    arguments: str


@dataclass(slots=True, frozen=True)
class RateLimitsUpdated(ServerEvent):
    rate_limits: list[Any]


@dataclass(slots=True, frozen=True)
class _Whole(ServerEvent):
    """An event kept whole: its ids where present, and the message."""

    response_id: str | None
    item_id: str | None
    payload: JSONObject  #: the whole message


@dataclass(slots=True, frozen=True)
class AudioTimestamp(_Whole):
    """Voice Live ``response.audio_timestamp.*``."""


@dataclass(slots=True, frozen=True)
class Animation(_Whole):
    """Voice Live ``response.animation_*`` (blendshapes, visemes)."""


@dataclass(slots=True, frozen=True)
class Unknown:
    """A well-formed server event of a type this module does not know."""

    type: str
    payload: JSONObject  #: the whole message


#: What :meth:`RealtimeSession.receive` returns: one of these classes (narrow with
#: ``isinstance`` or ``match``; every one but :class:`Unknown` is a :class:`ServerEvent`).
Event = (
    SessionCreated | SessionUpdated | Error | Warning | InputAudioBufferCommitted
    | InputAudioBufferCleared | SpeechStarted | SpeechStopped | ConversationItemCreated
    | ConversationItemDone | ConversationItemRetrieved | ConversationItemTruncated
    | ConversationItemDeleted | InputTranscriptionDelta | InputTranscriptionCompleted
    | InputTranscriptionFailed | ResponseCreated | ResponseDone | OutputItemAdded
    | OutputItemDone | ContentPartAdded | ContentPartDone | AudioDelta | DroppedAudioDelta
    | AudioDone | AudioTranscriptDelta | AudioTranscriptDone | TextDelta | TextDone
    | FunctionCallArgumentsDelta | FunctionCallArgumentsDone | RateLimitsUpdated
    | AudioTimestamp | Animation | Unknown
)

# ---------------------------------------------------------------- general parsing

_TYPES: dict[str, str] = {
    "str": "str", "str | None": "str", "int": "int", "int | None": "int",
    "JSONObject": "object", "JSONObject | None": "object", "list[Any]": "array",
    "list[Any] | None": "array",
}
Parser = Callable[[JSONObject, str, "str | None"], Any]


def _reader(cls: type) -> Parser:
    """A parser filling ``cls`` from the message fields named like its attributes."""
    spec = []
    for f in dataclasses.fields(cls)[2:]:
        ann = str(f.type)
        spec.append((f.name, _TYPES[ann], not ann.endswith("None")))

    def read(obj: JSONObject, type_: str, event_id: str | None) -> Any:
        args: list[Any] = [type_, event_id]
        for name, types, required in spec:
            args.append(want(obj, name, types, name, required))
        return cls(*args)

    return read


def _whole(cls: type[_Whole]) -> Parser:
    def read(obj: JSONObject, type_: str, event_id: str | None) -> _Whole:
        return cls(
            type_,
            event_id,
            want(obj, "response_id", "str", "response_id", False),
            want(obj, "item_id", "str", "item_id", False),
            obj,
        )

    return read


def _warning(obj: JSONObject, type_: str, event_id: str | None) -> Warning:
    return Warning(type_, event_id, obj)


def _error(obj: JSONObject, type_: str, event_id: str | None) -> Error:
    body = want(obj, "error", "object", "error")
    return Error(
        type_,
        event_id,
        want(body, "type", "str", "error.type", False),
        want(body, "code", "str", "error.code", False),
        want(body, "message", "str", "error.message"),
        want(body, "param", "str", "error.param", False),
        want(body, "event_id", "str", "error.event_id", False),
    )


_PARSERS: dict[str, Parser] = {
    "session.created": _reader(SessionCreated),
    "session.updated": _reader(SessionUpdated),
    "error": _error,
    "warning": _warning,
    "input_audio_buffer.committed": _reader(InputAudioBufferCommitted),
    "input_audio_buffer.cleared": _reader(InputAudioBufferCleared),
    "input_audio_buffer.speech_started": _reader(SpeechStarted),
    "input_audio_buffer.speech_stopped": _reader(SpeechStopped),
    "conversation.item.created": _reader(ConversationItemCreated),
    "conversation.item.added": _reader(ConversationItemCreated),
    "conversation.item.done": _reader(ConversationItemDone),
    "conversation.item.retrieved": _reader(ConversationItemRetrieved),
    "conversation.item.truncated": _reader(ConversationItemTruncated),
    "conversation.item.deleted": _reader(ConversationItemDeleted),
    "conversation.item.input_audio_transcription.delta": _reader(InputTranscriptionDelta),
    "conversation.item.input_audio_transcription.completed": _reader(InputTranscriptionCompleted),
    "conversation.item.input_audio_transcription.failed": _reader(InputTranscriptionFailed),
    "response.created": _reader(ResponseCreated),
    "response.done": _reader(ResponseDone),
    "response.output_item.added": _reader(OutputItemAdded),
    "response.output_item.done": _reader(OutputItemDone),
    "response.content_part.added": _reader(ContentPartAdded),
    "response.content_part.done": _reader(ContentPartDone),
    "response.audio.done": _reader(AudioDone),
    "response.audio_transcript.delta": _reader(AudioTranscriptDelta),
    "response.audio_transcript.done": _reader(AudioTranscriptDone),
    "response.text.delta": _reader(TextDelta),
    "response.text.done": _reader(TextDone),
    "response.function_call_arguments.delta": _reader(FunctionCallArgumentsDelta),
    "response.function_call_arguments.done": _reader(FunctionCallArgumentsDone),
    "rate_limits.updated": _reader(RateLimitsUpdated),
    "response.audio_timestamp.delta": _whole(AudioTimestamp),
    "response.audio_timestamp.done": _whole(AudioTimestamp),
    "response.animation_blendshapes.delta": _whole(Animation),
    "response.animation_blendshapes.done": _whole(Animation),
    "response.animation_viseme.delta": _whole(Animation),
    "response.animation_viseme.done": _whole(Animation),
}
# GA renames (OpenAI): same events under new names.
_GA = {
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
    "response.output_text.delta": "response.text.delta",
    "response.output_text.done": "response.text.done",
}
for _ga, _beta in _GA.items():
    _PARSERS[_ga] = _PARSERS[_beta]

AUDIO_DELTA_TYPES = ("response.audio.delta", "response.output_audio.delta")
#: Every server event type this module reads into its own class.
KNOWN_TYPES = frozenset(_PARSERS) | frozenset(AUDIO_DELTA_TYPES)


def _delta_schema(codec: str) -> Schema:
    return Schema(
        [
            Field("type", "str", True, AUDIO_DELTA_TYPES),
            Field("event_id", "str"),
            Field("response_id", "str", True),
            Field("item_id", "str", True),
            Field("output_index", "int"),
            Field("content_index", "int"),
            Field("delta", "str", True),
        ],
        b64="delta",
        codec=codec,
        record=AudioDelta,
        slots=("type", "event_id", "response_id", "item_id", "output_index", "content_index", "payload", "pcm"),
    )


# By output codec; PCM16 (and formats audiocore does not know) pass through as they are.
_DELTA = {None: _delta_schema("pcm16"), "ulaw": _delta_schema("ulaw"), "alaw": _delta_schema("alaw")}

# ---------------------------------------------------------------- audio formats


@dataclass(slots=True, frozen=True)
class AudioFormat:
    """An audio format of the session: its wire ``name``, ``rate`` (Hz; None if unknown),
    ``codec`` (``"ulaw"``, ``"alaw"`` or None for PCM16) and bytes per sample."""

    name: str
    rate: int | None
    codec: str | None

    @property
    def sample_bytes(self) -> int:
        return 1 if self.codec else 2


PCM16_24K = AudioFormat("pcm16", 24000, None)


def _rate(rate: int | None, path: str) -> int | None:
    if rate is not None and not 8000 <= rate <= 192000:
        raise ProtocolError(f"{path}: {rate} Hz is not a sample rate between 8000 and 192000", path)
    return rate


def _beta_format(name: str, rate: int | None) -> AudioFormat:
    if name == "pcm16":
        return AudioFormat(name, rate or 24000, None)
    digits = name[6:-2]
    if name.startswith("pcm16_") and name.endswith("hz") and digits.isascii() and digits.isdigit():
        hz = int(digits) if len(digits) <= 6 else 0
        return AudioFormat(name, hz if 8000 <= hz <= 192000 else None, None)
    if name == "g711_ulaw":
        return AudioFormat(name, 8000, "ulaw")
    if name == "g711_alaw":
        return AudioFormat(name, 8000, "alaw")
    return AudioFormat(name, None, None)


def _ga_format(fmt: JSONObject, path: str) -> AudioFormat:
    # ``type`` is optional in the GA SDK's models; absent means the default, 24 kHz PCM16.
    name = want(fmt, "type", "str", f"{path}.type", False) or "audio/pcm"
    rate = _rate(want(fmt, "rate", "int", f"{path}.rate", False), f"{path}.rate")
    if name == "audio/pcm":
        return AudioFormat(name, rate or 24000, None)
    if name == "audio/pcmu":
        return AudioFormat(name, 8000, "ulaw")
    if name == "audio/pcma":
        return AudioFormat(name, 8000, "alaw")
    return AudioFormat(name, rate, None)


def _formats(session: JSONObject, old: tuple[AudioFormat, AudioFormat]) -> tuple[AudioFormat, AudioFormat]:
    """(input, output) formats stated by a server session object (unchanged where silent)."""
    inp, out = old
    audio = want(session, "audio", "object", "session.audio", False)
    if audio is not None:
        for direction in ("input", "output"):
            side = want(audio, direction, "object", f"session.audio.{direction}", False)
            fmt = None if side is None else want(side, "format", "object|str", f"session.audio.{direction}.format", False)
            if isinstance(fmt, dict):
                parsed = _ga_format(fmt, f"session.audio.{direction}.format")
            elif isinstance(fmt, str):
                parsed = _beta_format(fmt, None)
            else:
                continue
            if direction == "input":
                inp = parsed
            else:
                out = parsed
    name = want(session, "input_audio_format", "str", "session.input_audio_format", False)
    path = "session.input_audio_sampling_rate"
    rate = _rate(want(session, "input_audio_sampling_rate", "int", path, False), path)
    if name is not None:
        inp = _beta_format(name, rate)
    elif rate is not None and inp.codec is None:
        inp = AudioFormat(inp.name, rate, None)
    name = want(session, "output_audio_format", "str", "session.output_audio_format", False)
    if name is not None:
        out = _beta_format(name, None)
    return inp, out


def _turn_flag(session: JSONObject, key: str, old: bool) -> bool:
    """A boolean of the session's turn detection (``interrupt_response``: the server cancels
    a response itself on speech start; ``auto_truncate``: it truncates the item itself);
    ``old`` when the session does not mention turn detection."""
    td: Any = "absent"
    if "turn_detection" in session:
        td = session["turn_detection"]
    else:
        audio = session.get("audio")
        if isinstance(audio, dict) and isinstance(audio.get("input"), dict):
            if "turn_detection" in audio["input"]:
                td = audio["input"]["turn_detection"]
    if td == "absent":
        return old
    if td is None:
        return False
    if not isinstance(td, dict):
        raise ProtocolError("session.turn_detection: expected an object or null", "session.turn_detection")
    return td.get(key) is True


# ---------------------------------------------------------------- session


class _Item:
    __slots__ = ("response_id", "audio_bytes")

    def __init__(self, response_id: str) -> None:
        self.response_id = response_id
        self.audio_bytes = 0


class RealtimeSession:
    """The client side of one Voice Live / OpenAI Realtime connection. Use from one thread
    at a time.

    ``auto_interrupt``: whether the server cancels a response itself on speech start (True:
    :meth:`barge_in` sends no ``response.cancel``); None (default) follows the server's
    ``turn_detection.interrupt_response``. ``auto_truncate`` likewise for the item's truncation
    (Voice Live's ``turn_detection.auto_truncate``; True: :meth:`barge_in` sends no
    ``conversation.item.truncate``). ``max_message_size``: longer messages are refused.
    At most ``max_items`` items' audio counts and cancelled responses are remembered.
    """

    def __init__(
        self,
        *,
        auto_interrupt: bool | None = None,
        auto_truncate: bool | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_items: int = 256,
    ) -> None:
        self.max_message_size = max_message_size
        self.max_items = max_items
        self.input_format = PCM16_24K
        self.output_format = PCM16_24K
        self._auto_interrupt_setting = auto_interrupt
        self._server_auto_interrupt = False
        self._auto_truncate_setting = auto_truncate
        self._server_auto_truncate = False
        #: The response in progress (``response.created`` seen, ``response.done`` not yet).
        self.response_id: str | None = None
        self._items: OrderedDict[str, _Item] = OrderedDict()
        self._cancelled: OrderedDict[str, None] = OrderedDict()
        self._delta = _DELTA[None]
        self._fast = True

    @property
    def auto_interrupt(self) -> bool:
        if self._auto_interrupt_setting is not None:
            return self._auto_interrupt_setting
        return self._server_auto_interrupt

    @property
    def auto_truncate(self) -> bool:
        if self._auto_truncate_setting is not None:
            return self._auto_truncate_setting
        return self._server_auto_truncate

    def receive(self, message: str | bytes) -> Event:
        """Parse one server event into one of the :data:`Event` classes (:class:`Unknown` for
        a type this module does not know); :class:`ProtocolError` if malformed (the session
        is then unchanged)."""
        # The scan reads only str and bytes, whose len() is what check_size measures.
        if self._fast and len(message) <= self.max_message_size:
            delta = self._delta.scan(message)
            if delta is not None:
                return self._audio(delta)
        check_size(message, self.max_message_size)
        obj = loads(message)
        type_ = want(obj, "type", "str", "type")
        if type_ in AUDIO_DELTA_TYPES:
            return self._audio(self._delta.make(self._delta.extract(obj)))
        parser = _PARSERS.get(type_)
        if parser is None:
            return Unknown(type_, obj)
        ev: Event = parser(obj, type_, want(obj, "event_id", "str", "event_id", False))
        if isinstance(ev, (SessionCreated, SessionUpdated)):
            formats = _formats(ev.session, (self.input_format, self.output_format))
            interrupt = _turn_flag(ev.session, "interrupt_response", self._server_auto_interrupt)
            truncates = _turn_flag(ev.session, "auto_truncate", self._server_auto_truncate)
            self.input_format, self.output_format = formats
            self._server_auto_interrupt, self._server_auto_truncate = interrupt, truncates
            self._delta = _DELTA[self.output_format.codec]
        elif isinstance(ev, ResponseCreated):
            self.response_id = ev.response_id
        elif isinstance(ev, ResponseDone):
            if ev.response_id is None or ev.response_id == self.response_id:
                self.response_id = None
        return ev

    def _audio(self, ev: AudioDelta) -> AudioDelta | DroppedAudioDelta:
        if len(ev.payload) & 1 and self.output_format.codec is None and self.output_format.rate:
            raise ProtocolError("delta: PCM16 audio has an odd number of bytes", "delta")
        if ev.response_id in self._cancelled:
            return DroppedAudioDelta(ev.type, ev.event_id, ev.response_id, ev.item_id, len(ev.payload))
        item = self._items.get(ev.item_id)
        if item is None:
            if len(self._items) >= self.max_items:
                self._items.popitem(last=False)
            item = self._items[ev.item_id] = _Item(ev.response_id)
        item.audio_bytes += len(ev.payload)
        return ev

    def received_ms(self, item_id: str) -> int:
        """Milliseconds of audio received so far for ``item_id`` (0 if unknown)."""
        item = self._items.get(item_id)
        fmt = self.output_format
        if item is None or not fmt.rate:
            return 0
        return item.audio_bytes * 1000 // (fmt.rate * fmt.sample_bytes)

    def barge_in(self, item_id: str | None, played_ms: int, *, content_index: int = 0) -> list[str]:
        """The messages to send when the user barges in (after flushing local playout).

        ``item_id`` / ``played_ms``: the assistant item being played and how much of it was
        actually played out (ms), as the playout tracker reports them (``item_id`` None when
        nothing was played). Returns ``response.cancel`` for the response in progress (not
        when the server interrupts by itself) and ``conversation.item.truncate`` with
        ``audio_end_ms`` = ``played_ms`` clamped to the audio received for the item (not when
        the server truncates by itself). The
        response is remembered as cancelled: its late deltas come back as
        :class:`DroppedAudioDelta`.
        """
        if played_ms < 0:
            raise ValueError(f"played_ms must be >= 0, not {played_ms}")
        messages = []
        item = None if item_id is None else self._items.get(item_id)
        target = self.response_id or (item.response_id if item else None)
        if target is not None:
            if self.response_id is not None and not self.auto_interrupt:
                messages.append(response_cancel(target))
            if len(self._cancelled) >= self.max_items:
                self._cancelled.popitem(last=False)
            self._cancelled[target] = None
            if item is not None and item.response_id != target:
                self._cancelled[item.response_id] = None
            self.response_id = None
        if item_id is not None and not self.auto_truncate:
            end = min(played_ms, self.received_ms(item_id))
            messages.append(truncate(item_id, end, content_index))
        return messages

    def is_cancelled(self, response_id: str) -> bool:
        return response_id in self._cancelled

    @property
    def cancelled(self) -> tuple[str, ...]:
        """The responses whose late deltas are dropped (the most recent ``max_items``)."""
        return tuple(self._cancelled)

    def add_item_audio(self, item_id: str, nbytes: int) -> None:
        """Count ``nbytes`` of audio received for a known item outside :meth:`receive` (a
        fused path that read the delta itself)."""
        item = self._items.get(item_id)
        if item is not None:
            item.audio_bytes += nbytes


# ---------------------------------------------------------------- builders

_APPEND = Template(b'{"type":"input_audio_buffer.append","audio":"', b'"}')


def event(type: str, *, event_id: str | None = None, **fields: Any) -> str:
    """Any client event: ``{"type": type, "event_id"?: ..., **fields}`` as compact JSON."""
    msg: dict[str, Any] = {"type": type}
    if event_id is not None:
        msg["event_id"] = event_id
    msg.update(fields)
    return dumps(msg)


def session_update(*, event_id: str | None = None, **session: Any) -> str:
    """``session.update`` with ``session`` passed through as given: formats
    (``input_audio_format``, ``output_audio_format`` or GA ``audio``), Voice Live's
    ``input_audio_sampling_rate``, ``turn_detection``, ``input_audio_noise_reduction``,
    ``input_audio_echo_cancellation``, ``voice``, ``instructions``, ..."""
    return event("session.update", event_id=event_id, session=session)


def append(audio: PCM16Like, *, event_id: str | None = None) -> str:
    """``input_audio_buffer.append`` of ``audio`` (bytes in the session's input format:
    PCM16LE for ``pcm16``, or an int16 array; G.711 codes as bytes or a uint8 array). Keep
    chunks 20-100 ms; the service refuses more than 15 MiB."""
    if event_id is None:
        return _APPEND.build(audio)
    return event("input_audio_buffer.append", event_id=event_id, audio=b64encode(audio).decode("ascii"))


def commit(*, event_id: str | None = None) -> str:
    return event("input_audio_buffer.commit", event_id=event_id)


def clear(*, event_id: str | None = None) -> str:
    return event("input_audio_buffer.clear", event_id=event_id)


def response_create(*, event_id: str | None = None, **response: Any) -> str:
    """``response.create``; keyword arguments become its ``response`` object (omitted when
    there are none)."""
    if response:
        return event("response.create", event_id=event_id, response=response)
    return event("response.create", event_id=event_id)


def response_cancel(response_id: str | None = None, *, event_id: str | None = None) -> str:
    if response_id is None:
        return event("response.cancel", event_id=event_id)
    return event("response.cancel", event_id=event_id, response_id=response_id)


def _count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, not {value!r}")


def truncate(item_id: str, audio_end_ms: int, content_index: int = 0, *, event_id: str | None = None) -> str:
    """``conversation.item.truncate``: cut the item's audio at ``audio_end_ms`` (what was
    played; the server refuses more than the item holds)."""
    _count("audio_end_ms", audio_end_ms)
    _count("content_index", content_index)
    return event(
        "conversation.item.truncate",
        event_id=event_id,
        item_id=item_id,
        content_index=content_index,
        audio_end_ms=audio_end_ms,
    )


def item_create(item: JSONObject, *, previous_item_id: str | None = None, event_id: str | None = None) -> str:
    if previous_item_id is None:
        return event("conversation.item.create", event_id=event_id, item=item)
    return event("conversation.item.create", event_id=event_id, previous_item_id=previous_item_id, item=item)


def item_delete(item_id: str, *, event_id: str | None = None) -> str:
    return event("conversation.item.delete", event_id=event_id, item_id=item_id)


def item_retrieve(item_id: str, *, event_id: str | None = None) -> str:
    return event("conversation.item.retrieve", event_id=event_id, item_id=item_id)
