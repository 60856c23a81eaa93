"""The STT-bot-TTS "Voice API", v1 and v2: the client side, and the server side for a local
test peer.

v1 (``/api/voice/v1/user-stt-bot-tts/stream``): one JSON open frame, then binary frames of
PCM16LE both ways (user speech up at the STT rate, bot speech down at the TTS rate).

v2 (``/api/voice/v2/user-stt-bot-tts/stream``): every message is JSON text; a request message
is one frame object or an array of them, the server always sends an array. Many user sessions
share one connection, told apart by ``user_id``. Audio is base64 PCM16LE inside frames.

Only ``open``, ``opened``, ``error``, ``closed``, ``api_key`` and ``user_id`` are quoted by the
vendor's documentation; every other spelling is in :data:`KIND` / :data:`FIELD` and listed in
:data:`UNVERIFIED`, so a correction is one edit. Sans-I/O: no sockets here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from audiocore._ext.envelope import Template
from audiocore._ext.errors import ProtocolError
from audiocore.protocols._json import (
    JSONObject,
    TemplateCache,
    check_size,
    decode_b64,
    dumps,
    json_type,
    loads,
    loads_any,
    want,
)

__all__ = [
    "Attachment",
    "BotAudio",
    "Close",
    "Closed",
    "ContextUpdate",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "End",
    "Ended",
    "Error",
    "FIELD",
    "KIND",
    "Open",
    "Opened",
    "PING_PATH",
    "Start",
    "Started",
    "UNVERIFIED",
    "Unknown",
    "UserAudio",
    "UserText",
    "V1Client",
    "V1Server",
    "V1_PATH",
    "V2Client",
    "V2Server",
    "V2_PATH",
    "batch",
]

DEFAULT_MAX_MESSAGE_SIZE = 4 << 20
PING_PATH = "/api/voice/v1/user-stt-bot-tts/ping"
V1_PATH = "/api/voice/v1/user-stt-bot-tts/stream"
V2_PATH = "/api/voice/v2/user-stt-bot-tts/stream"

#: Every frame kind, by its role -> the string on the wire.
KIND = {
    "open": "open",  # client -> server; quoted
    "close": "close",
    "start": "start",  # a user session starts
    "end": "end",
    "user_audio": "audio",  # base64 PCM16LE at the STT rate
    "user_text": "text",  # bypasses STT
    "context": "context",  # context update of a user session
    "opened": "opened",  # server -> client; quoted
    "closed": "closed",  # quoted
    "error": "error",  # quoted
    "started": "started",
    "ended": "ended",
    "bot_audio": "audio",  # base64 PCM16LE at the TTS rate
    "attachment": "attachment",  # text / reference URL / full attachment, not spoken
}
#: Field names inside frames.
FIELD = {
    "api_key": "api_key",  # quoted
    "user_id": "user_id",  # quoted
    "audio": "audio",
    "text": "text",
    "context": "context",
    "message": "message",  # of an error frame; quoted
    "url": "url",
    "attachment": "attachment",
    "stt": "stt",  # STT overrides (incl. sample_rate)
    "tts": "tts",  # TTS overrides (incl. sample_rate)
    "bot": "bot",  # bot config overrides
    "bot_speaks_first": "bot_speaks_first",
}
#: The names above whose wire spelling the documentation does not quote.
UNVERIFIED = frozenset(
    {f"KIND[{k!r}]" for k in KIND if k not in ("open", "opened", "closed", "error")}
    | {f"FIELD[{k!r}]" for k in FIELD if k not in ("api_key", "user_id", "message")}
)
_OVERRIDES = ("stt", "tts", "bot", "context", "bot_speaks_first")
#: Server kinds that must name the user session they belong to.
_USER_KINDS = (KIND["bot_audio"], KIND["started"], KIND["ended"], KIND["attachment"])

# ---------------------------------------------------------------- events, client side


@dataclass(slots=True, frozen=True)
class Opened:
    payload: JSONObject


@dataclass(slots=True, frozen=True)
class Closed:
    payload: JSONObject


@dataclass(slots=True, frozen=True)
class Error:
    """The server reports an error (it may close the connection after it)."""

    message: str | None
    user_id: str | None
    payload: JSONObject


@dataclass(slots=True, frozen=True)
class Started:
    user_id: str
    payload: JSONObject


@dataclass(slots=True, frozen=True)
class Ended:
    user_id: str
    payload: JSONObject


@dataclass(slots=True, frozen=True)
class BotAudio:
    """Bot speech (TTS output), PCM16LE at the TTS rate; ``user_id`` None in v1."""

    user_id: str | None
    pcm: bytes


@dataclass(slots=True, frozen=True)
class Attachment:
    """Bot output that is not spoken: text, a reference URL or a full attachment."""

    user_id: str
    text: str | None
    url: str | None
    attachment: Any
    payload: JSONObject


# ---------------------------------------------------------------- events, server side


@dataclass(slots=True, frozen=True)
class Open:
    """The client's open frame: ``api_key`` and the overrides it carries (``stt``, ``tts``,
    ``bot``, ``context``, ``bot_speaks_first``; absent ones omitted)."""

    api_key: str
    user_id: str | None
    overrides: JSONObject
    payload: JSONObject


@dataclass(slots=True, frozen=True)
class Close:
    payload: JSONObject


@dataclass(slots=True, frozen=True)
class Start:
    user_id: str
    overrides: JSONObject
    payload: JSONObject


@dataclass(slots=True, frozen=True)
class End:
    user_id: str
    payload: JSONObject


@dataclass(slots=True, frozen=True)
class UserAudio:
    """User speech, PCM16LE at the STT rate; ``user_id`` None in v1."""

    user_id: str | None
    pcm: bytes


@dataclass(slots=True, frozen=True)
class UserText:
    user_id: str
    text: str


@dataclass(slots=True, frozen=True)
class ContextUpdate:
    user_id: str
    context: Any


@dataclass(slots=True, frozen=True)
class Unknown:
    """A well-formed frame of a kind this module does not know."""

    kind: str | None
    payload: Any


# ---------------------------------------------------------------- helpers


def _overrides(frame: JSONObject) -> JSONObject:
    return {FIELD[k]: frame[FIELD[k]] for k in _OVERRIDES if frame.get(FIELD[k]) is not None}


def _object_overrides(frame: JSONObject, path: str) -> JSONObject:
    out = _overrides(frame)  # keyed by wire name
    for k in ("stt", "tts", "bot"):
        want(frame, FIELD[k], "object", f"{path}.{FIELD[k]}", False)
    first = FIELD["bot_speaks_first"]
    if first in out and not isinstance(out[first], bool):
        raise ProtocolError(f"{path}.{first}: expected a boolean", f"{path}.{first}")
    return out


def _pcm(data: bytes | bytearray | memoryview, field: str | None = None) -> bytes:
    pcm = bytes(data)
    if len(pcm) & 1:
        where = f"{field}: " if field else ""
        raise ProtocolError(f"{where}audio of {len(pcm)} bytes is not whole PCM16 samples", field)
    return pcm


def _pcm_out(data: bytes | bytearray | memoryview) -> bytes:
    pcm = bytes(data)
    if len(pcm) & 1:
        raise ValueError(f"PCM16 audio has an even number of bytes, not {len(pcm)}")
    return pcm


def _put_overrides(frame: JSONObject, overrides: dict[str, Any]) -> JSONObject:
    """``frame`` with the given overrides (None ones left out) under their wire names."""
    for key, value in overrides.items():
        if key not in _OVERRIDES:
            raise TypeError(f"unknown override {key!r} (expected one of {', '.join(_OVERRIDES)})")
        if value is not None:
            frame[FIELD[key]] = value
    return frame


def _open_frame(api_key: str, user_id: str | None, kind: str | None, **overrides: Any) -> JSONObject:
    if not isinstance(api_key, str) or not api_key:
        raise ValueError("api_key must be a non-empty string")
    frame: JSONObject = {} if kind is None else {"kind": kind}
    frame[FIELD["api_key"]] = api_key
    if user_id is not None:
        frame[FIELD["user_id"]] = user_id
    return _put_overrides(frame, overrides)


def batch(messages: Iterable[str]) -> str:
    """Several v2 messages built by this module (frame objects or arrays) as one array."""
    parts = []
    for m in messages:
        m = m.strip()
        inner = m[1:-1] if m.startswith("[") else m
        if inner.strip():
            parts.append(inner)
    return "[" + ",".join(parts) + "]"


def _frames(message: str | bytes, path: str = "") -> list[tuple[str, JSONObject]]:
    """The frames of a v2 message (one object or an array of objects) with their paths."""
    obj = loads_any(message)
    if isinstance(obj, dict):
        return [("", obj)]
    if not isinstance(obj, list):
        raise ProtocolError(f"message is {json_type(obj)}, not a frame object or an array", None)
    frames = []
    for i, frame in enumerate(obj):
        if not isinstance(frame, dict):
            raise ProtocolError(f"[{i}]: expected a frame object, got {json_type(frame)}", f"[{i}]")
        frames.append((f"[{i}].", frame))
    return frames


# ---------------------------------------------------------------- v1


class V1Client:
    """v1, client side: :meth:`open` once, then :meth:`audio` frames; :meth:`receive` turns
    what the server sends into :class:`BotAudio` (binary) or events (text)."""

    def __init__(self, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self.max_message_size = max_message_size
        self.is_open = False

    def open(self, api_key: str, *, user_id: str | None = None, **overrides: Any) -> str:
        """The open frame: ``api_key``, optional ``user_id`` and overrides (``stt``, ``tts``,
        ``bot`` objects, e.g. ``stt={"sample_rate": 16000}``; ``context``;
        ``bot_speaks_first``)."""
        if self.is_open:
            raise ValueError("the open frame was already built")
        text = dumps(_open_frame(api_key, user_id, None, **overrides))
        self.is_open = True
        return text

    def audio(self, pcm: bytes | bytearray | memoryview) -> bytes:
        """A binary frame of user speech (PCM16LE at the STT rate)."""
        if not self.is_open:
            raise ValueError("open() first: the server expects the open frame before audio")
        return _pcm_out(pcm)

    def receive(self, message: str | bytes | bytearray | memoryview) -> Any:
        check_size(message, self.max_message_size)
        if not isinstance(message, str):
            return BotAudio(None, _pcm(message))
        obj = loads(message)
        kind = want(obj, "kind", "str", "kind", False)
        if kind == KIND["error"]:
            return Error(want(obj, FIELD["message"], "str", "message", False), None, obj)
        return Unknown(kind, obj)


class V1Server:
    """v1, server side (a local peer): the first message must be the text open frame."""

    def __init__(self, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self.max_message_size = max_message_size
        self.open_event: Open | None = None

    def receive(self, message: str | bytes | bytearray | memoryview) -> Open | UserAudio:
        check_size(message, self.max_message_size)
        if self.open_event is None:
            if not isinstance(message, str):
                raise ProtocolError("the first message must be the JSON open frame, not binary", None)
            obj = loads(message)
            ev = Open(
                want(obj, FIELD["api_key"], "str", FIELD["api_key"]),
                want(obj, FIELD["user_id"], "str", FIELD["user_id"], False),
                _object_overrides(obj, "open"),
                obj,
            )
            if not ev.api_key:
                raise ProtocolError("api_key: empty", FIELD["api_key"])
            self.open_event = ev
            return ev
        if isinstance(message, str):
            raise ProtocolError("after the open frame only binary audio frames are defined", None)
        return UserAudio(None, _pcm(message))

    def audio(self, pcm: bytes | bytearray | memoryview) -> bytes:
        """A binary frame of bot speech (PCM16LE at the TTS rate)."""
        return _pcm_out(pcm)

    def error(self, message: str) -> str:
        return dumps({"kind": KIND["error"], FIELD["message"]: message})


# ---------------------------------------------------------------- v2


def _make_audio_template(kind: str, user_id: str) -> Template:
    prefix = (
        '{"kind":' + dumps(kind) + "," + dumps(FIELD["user_id"]) + ":" + dumps(user_id)
        + "," + dumps(FIELD["audio"]) + ':"'
    )
    return Template(prefix.encode("ascii"), b'"}', pcm16=True)


_audio_template = TemplateCache(_make_audio_template)


class V2Client:
    """v2, client side. Builders return one frame object; :func:`batch` joins several into
    one message. :meth:`receive` returns the events of one server message, in order.
    ``users`` holds the user sessions the server has confirmed (``started``, not ``ended``);
    ``is_open``/``is_closed`` whether ``opened``/``closed`` arrived."""

    def __init__(self, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self.max_message_size = max_message_size
        self.is_open = False
        self.is_closed = False
        self.users: set[str] = set()

    # builders
    def open(self, api_key: str, **overrides: Any) -> str:
        """The open frame: ``api_key`` and the connection's overrides (``stt``, ``tts``,
        ``bot``, ``context``, ``bot_speaks_first``). Users are not named here: v2 carries
        many per connection, each begun with :meth:`start`."""
        if "user_id" in overrides:
            raise TypeError("V2Client.open() takes no user_id: v2 users begin with start(user_id)")
        return dumps(_open_frame(api_key, None, KIND["open"], **overrides))

    def close(self) -> str:
        return dumps({"kind": KIND["close"]})

    def start(self, user_id: str, **overrides: Any) -> str:
        """Start a user session; overrides merge onto the connection's for this user."""
        return dumps(_put_overrides({"kind": KIND["start"], FIELD["user_id"]: _uid(user_id)}, overrides))

    def end(self, user_id: str) -> str:
        return dumps({"kind": KIND["end"], FIELD["user_id"]: _uid(user_id)})

    def audio(self, user_id: str, pcm: bytes | bytearray | memoryview) -> str:
        """User speech (PCM16LE at the STT rate), base64 in one frame."""
        return _audio_template(KIND["user_audio"], _uid(user_id)).build(pcm)

    def text(self, user_id: str, text: str) -> str:
        """User text that bypasses STT."""
        return dumps({"kind": KIND["user_text"], FIELD["user_id"]: _uid(user_id), FIELD["text"]: text})

    def context(self, user_id: str, context: Any) -> str:
        return dumps({"kind": KIND["context"], FIELD["user_id"]: _uid(user_id), FIELD["context"]: context})

    def receive(self, message: str | bytes) -> list[Any]:
        """The events of one server message; :class:`ProtocolError` if any frame is
        malformed (then none is applied)."""
        check_size(message, self.max_message_size)
        events: list[Any] = []
        users = set(self.users)
        opened, closed = self.is_open, self.is_closed
        for path, frame in _frames(message):
            kind = want(frame, "kind", "str", f"{path}kind", False)
            uid = want(frame, FIELD["user_id"], "str", f"{path}{FIELD['user_id']}",
                       kind in _USER_KINDS)
            if kind == KIND["bot_audio"]:
                where = f"{path}{FIELD['audio']}"
                data = want(frame, FIELD["audio"], "str", where)
                events.append(BotAudio(uid, _pcm(decode_b64(data, where), where)))
            elif kind == KIND["opened"]:
                opened = True
                events.append(Opened(frame))
            elif kind == KIND["error"]:
                events.append(Error(want(frame, FIELD["message"], "str", f"{path}message", False), uid, frame))
            elif kind == KIND["closed"]:
                closed = True
                events.append(Closed(frame))
            elif kind in (KIND["started"], KIND["ended"], KIND["attachment"]):
                if kind == KIND["started"]:
                    users.add(uid)
                    events.append(Started(uid, frame))
                elif kind == KIND["ended"]:
                    users.discard(uid)
                    events.append(Ended(uid, frame))
                else:
                    events.append(
                        Attachment(
                            uid,
                            want(frame, FIELD["text"], "str", f"{path}text", False),
                            want(frame, FIELD["url"], "str", f"{path}url", False),
                            frame.get(FIELD["attachment"]),
                            frame,
                        )
                    )
            else:
                events.append(Unknown(kind, frame))
        self.users, self.is_open, self.is_closed = users, opened, closed
        return events


def _uid(user_id: str) -> str:
    if not isinstance(user_id, str) or not user_id:
        raise ValueError("user_id must be a non-empty string")
    return user_id


class V2Server:
    """v2, server side (a local peer). :meth:`receive` returns the events of one client
    message; the first frame must be ``open``. Builders return a one-frame array (the server
    always sends arrays); :func:`batch` joins several. ``open_event`` is the client's open
    frame, ``users`` the open user sessions, ``is_closed`` whether ``close`` arrived."""

    def __init__(self, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self.max_message_size = max_message_size
        self.open_event: Open | None = None
        self.is_closed = False
        self.users: dict[str, JSONObject] = {}  #: user_id -> the overrides of its start

    def receive(self, message: str | bytes) -> list[Any]:
        """The events of one client message; :class:`ProtocolError` if any frame is malformed
        or out of order (then none is applied)."""
        check_size(message, self.max_message_size)
        events: list[Any] = []
        opened = self.open_event
        closed = self.is_closed
        users = dict(self.users)
        for path, frame in _frames(message):
            kind = want(frame, "kind", "str", f"{path}kind")
            if opened is None and kind != KIND["open"]:
                raise ProtocolError(f"{path}kind: the first frame must be 'open', not {kind!r}", f"{path}kind")
            if kind == KIND["open"]:
                if opened is not None:
                    raise ProtocolError(f"{path}kind: 'open' sent twice", f"{path}kind")
                key = want(frame, FIELD["api_key"], "str", f"{path}api_key")
                if not key:
                    raise ProtocolError(f"{path}api_key: empty", f"{path}api_key")
                opened = Open(key, None, _object_overrides(frame, path.rstrip(".") or "open"), frame)
                events.append(opened)
                continue
            if kind == KIND["close"]:
                closed = True
                events.append(Close(frame))
                continue
            if kind not in (KIND["start"], KIND["end"], KIND["user_audio"], KIND["user_text"], KIND["context"]):
                events.append(Unknown(kind, frame))
                continue
            uid = want(frame, FIELD["user_id"], "str", f"{path}{FIELD['user_id']}")
            if kind == KIND["start"]:
                if uid in users:
                    raise ProtocolError(f"{path}user_id: session {uid!r} already started", f"{path}user_id")
                overrides = _object_overrides(frame, path.rstrip(".") or "start")
                users[uid] = overrides
                events.append(Start(uid, overrides, frame))
                continue
            if uid not in users:
                raise ProtocolError(f"{path}user_id: no session {uid!r} was started", f"{path}user_id")
            if kind == KIND["end"]:
                del users[uid]
                events.append(End(uid, frame))
            elif kind == KIND["user_audio"]:
                where = f"{path}{FIELD['audio']}"
                data = want(frame, FIELD["audio"], "str", where)
                events.append(UserAudio(uid, _pcm(decode_b64(data, where), where)))
            elif kind == KIND["user_text"]:
                events.append(UserText(uid, want(frame, FIELD["text"], "str", f"{path}text")))
            else:
                events.append(ContextUpdate(uid, frame.get(FIELD["context"])))
        self.open_event, self.is_closed, self.users = opened, closed, users
        return events

    # builders: each a one-frame array
    def opened(self) -> str:
        return "[" + dumps({"kind": KIND["opened"]}) + "]"

    def closed(self) -> str:
        return "[" + dumps({"kind": KIND["closed"]}) + "]"

    def error(self, message: str, *, user_id: str | None = None) -> str:
        frame: JSONObject = {"kind": KIND["error"], FIELD["message"]: message}
        if user_id is not None:
            frame[FIELD["user_id"]] = user_id
        return "[" + dumps(frame) + "]"

    def started(self, user_id: str) -> str:
        return "[" + dumps({"kind": KIND["started"], FIELD["user_id"]: _uid(user_id)}) + "]"

    def ended(self, user_id: str) -> str:
        return "[" + dumps({"kind": KIND["ended"], FIELD["user_id"]: _uid(user_id)}) + "]"

    def audio(self, user_id: str, pcm: bytes | bytearray | memoryview) -> str:
        """Bot speech (PCM16LE at the TTS rate), base64 in one frame."""
        return "[" + _audio_template(KIND["bot_audio"], _uid(user_id)).build(pcm) + "]"

    def attachment(self, user_id: str, *, text: str | None = None, url: str | None = None, attachment: Any = None) -> str:
        frame: JSONObject = {"kind": KIND["attachment"], FIELD["user_id"]: _uid(user_id)}
        for key, value in (("text", text), ("url", url), ("attachment", attachment)):
            if value is not None:
                frame[FIELD[key]] = value
        return "[" + dumps(frame) + "]"
