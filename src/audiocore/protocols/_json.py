"""JSON reading shared by the handlers: the general parser and the schemas of the fast paths.

A :class:`Schema` describes one kind of message by its fields. It compiles to the C
:class:`~audiocore._ext.envelope.Shape` that reads the plain case of the message in one call,
and :meth:`Schema.extract` reads the same fields from the general parser's result, raising
:class:`ProtocolError` naming the field where the message is wrong. Both give the same tuple for
any text the fast path accepts; everything else (escapes, other whitespace, unknown fields,
errors) goes the general way, so errors always come from one place.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, NamedTuple

from audiocore._ext.b64 import b64decode
from audiocore._ext.envelope import Shape, Template
from audiocore._ext.errors import DecodeError, ProtocolError
from audiocore._ext.g711 import alaw_decode, ulaw_decode

JSONObject = dict[str, Any]

_DECODERS = {"ulaw": ulaw_decode, "alaw": alaw_decode}
_KINDS = {
    "array": "an array",
    "number": "a number",
    "str": "a string",
    "int": "an integer",
    "bool": "a boolean",
    "object": "an object",
    "count": "an integer or a decimal string",
}


def json_type(value: object) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def check_size(message: str | bytes | bytearray | memoryview, limit: int) -> None:
    """Refuse a message longer than ``limit`` (characters of a ``str``, bytes otherwise)."""
    n = len(message) if isinstance(message, (str, bytes)) else memoryview(message).nbytes
    if n > limit:
        raise ProtocolError(f"message of {n} characters or bytes exceeds the limit of {limit}", None)


def fold(key: str) -> str:
    """ASCII lower case (keys are compared so where the service tolerates any casing)."""
    return key.lower() if key.isascii() else key


def _pairs(pairs: list[tuple[str, Any]]) -> JSONObject:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        _duplicate(pairs)
    return obj


def _folded_pairs(pairs: list[tuple[str, Any]]) -> JSONObject:
    obj = {fold(k): v for k, v in pairs}
    if len(obj) != len(pairs):
        _duplicate([(fold(k), v) for k, v in pairs])
    return obj


def _duplicate(pairs: list[tuple[str, Any]]) -> None:
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise ProtocolError(f"field {key!r} appears twice in one object", key)
        seen.add(key)


def _no_constant(name: str) -> None:
    raise ProtocolError(f"{name} is not a JSON value", None)


def loads_any(message: str | bytes, *, fold_keys: bool = False) -> Any:
    """Parse a text message (``str``, or UTF-8 ``bytes``) with the standard library.

    Strict JSON: no NaN/Infinity, no key twice in one object (keys compared after ASCII
    case-folding with ``fold_keys``, which also folds the keys of the result). Every failure
    is a :class:`ProtocolError`.
    """
    if isinstance(message, str):
        text = message
    elif isinstance(message, (bytes, bytearray, memoryview)):
        try:
            text = bytes(message).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"message is not UTF-8 text: {exc}", None) from None
    else:
        raise TypeError(f"a message is str or bytes, not {type(message).__name__!r}")
    try:
        return json.loads(
            text,
            object_pairs_hook=_folded_pairs if fold_keys else _pairs,
            parse_constant=_no_constant,
        )
    except ProtocolError:
        raise
    except RecursionError:
        raise ProtocolError("message nests too deeply to parse", None) from None
    except ValueError as exc:
        raise ProtocolError(f"message is not valid JSON: {exc}", None) from None


def loads(message: str | bytes, *, fold_keys: bool = False) -> JSONObject:
    """:func:`loads_any`, requiring a JSON object."""
    obj = loads_any(message, fold_keys=fold_keys)
    if not isinstance(obj, dict):
        raise ProtocolError(f"message is {json_type(obj)}, not a JSON object", None)
    return obj


def dumps(obj: Any) -> str:
    """Compact JSON text, ASCII only (escapes are valid JSON for every peer)."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


class TemplateCache:
    """Message templates by key (a stream id, a user id...), made by ``make`` on first use.
    At most ``size`` are kept: past that the cache starts over."""

    def __init__(self, make: Callable[..., Template], size: int = 256) -> None:
        self._make = make
        self._size = size
        self._cache: dict[Hashable, Template] = {}

    def __call__(self, *key: Any) -> Template:
        t = self._cache.get(key)
        if t is None:
            if len(self._cache) >= self._size:
                self._cache.clear()
            t = self._cache[key] = self._make(*key)
        return t


class Field(NamedTuple):
    """One field of a :class:`Schema`: dotted ``path`` (a parent before its children),
    ``types`` (``"str"``, ``"int"``, ``"bool"``, ``"object"``, joined by ``"|"``), whether it
    is ``required`` when its parent is present, the strings it may equal (empty: any) and the
    value read when it is absent or null. ``"count"`` is an integer sent as a number or as a
    string of decimal digits."""

    path: str
    types: str
    required: bool = False
    alternatives: tuple[str, ...] = ()
    default: Any = None


class Schema:
    """One kind of message: its C fast path (:meth:`scan`) and its general reading
    (:meth:`extract`), which agree on every text the fast path accepts.

    The result is a tuple with one value per non-object field in order (its default where
    absent or null), the ``b64`` field decoded to ``bytes`` and, with a ``codec``, its PCM16
    form appended (``"pcm16"``: the same bytes). With ``record`` and ``slots`` (see
    :class:`~audiocore._ext.envelope.Shape`) :meth:`scan` returns the event itself, and
    :meth:`make` builds the same event from :meth:`extract`'s tuple.
    """

    def __init__(
        self,
        fields: Iterable[Field],
        *,
        case_insensitive: bool = False,
        b64: str | None = None,
        codec: str | None = None,
        record: type | None = None,
        slots: Sequence[str | None] | None = None,
    ) -> None:
        self.fields = tuple(fields)
        self.b64 = b64
        self.codec = codec
        self.record = record
        self.slots = tuple(slots or ())
        self.shape = Shape(
            self.fields, case_insensitive=case_insensitive, b64=b64, codec=codec, record=record, slots=slots
        )
        self.scan = self.shape.scan
        lookup = []
        index = {f.path: i for i, f in enumerate(self.fields)}
        for f in self.fields:
            parent, _, name = f.path.rpartition(".")
            lookup.append((index[parent] if parent else -1, fold(name) if case_insensitive else name))
        self._lookup = lookup
        self._leaves = [i for i, f in enumerate(self.fields) if f.types != "object"]
        self._decode = _DECODERS.get(codec) if codec else None
        self._b64_index = next((i for i, f in enumerate(self.fields) if f.path == b64), -1)

    def make(self, values: tuple[Any, ...]) -> Any:
        """The ``record`` holding ``values`` (as :meth:`scan` would build it)."""
        assert self.record is not None
        return self.record(**{name: v for name, v in zip(self.slots, values) if name is not None})

    def extract(self, obj: JSONObject) -> tuple[Any, ...]:
        """The fields of a parsed message (keys already folded if case-insensitive)."""
        values: list[Any] = [None] * len(self.fields)
        for i, (f, (parent, key)) in enumerate(zip(self.fields, self._lookup)):
            container = obj if parent < 0 else values[parent]
            value = None if container is None else want(container, key, f.types, f.path, f.required)
            if value is None:
                values[i] = f.default
                continue
            if f.alternatives and value not in f.alternatives:
                raise ProtocolError(
                    f"{f.path}: expected one of {', '.join(f.alternatives)}, got {value!r}", f.path
                )
            if f.path == self.b64:
                value = decode_b64(value, f.path)
            values[i] = value
        out = [values[i] for i in self._leaves]
        if self.codec == "pcm16":
            out.append(values[self._b64_index])
        elif self._decode is not None:
            out.append(self._decode(values[self._b64_index]))
        return tuple(out)


def _is(value: Any, types: str) -> bool:
    for t in types.split("|"):
        if t == "str" and isinstance(value, str):
            return True
        if t == "int" and isinstance(value, int) and not isinstance(value, bool):
            return True
        if t == "bool" and isinstance(value, bool):
            return True
        if t == "object" and isinstance(value, dict):
            return True
        if t == "count" and (isinstance(value, str) or type(value) is int):
            return True
        if t == "array" and isinstance(value, list):
            return True
        if t == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
    return False


def decode_b64(value: str, path: str) -> bytes:
    """Strict base64 of a message field; a :class:`ProtocolError` naming ``path`` if bad."""
    try:
        return b64decode(value)
    except DecodeError as exc:
        raise ProtocolError(f"{path}: {exc}", path) from exc


# ---------------------------------------------------------------- typed reads of parsed JSON


def want(obj: JSONObject, key: str, types: str, path: str, required: bool = True) -> Any:
    """``obj[key]`` checked against ``types`` (those of :class:`Field`, and ``"array"``,
    ``"number"``; a ``"count"`` is returned as an ``int``); ``None`` (absent or null) is an
    error when ``required``."""
    value = obj.get(key)
    if value is None:
        if required:
            raise ProtocolError(f"{path}: required field is missing", path)
        return None
    if not _is(value, types):
        kinds = " or ".join(_KINDS[t] for t in types.split("|"))
        raise ProtocolError(f"{path}: expected {kinds}, got {json_type(value)}", path)
    if types == "count" and isinstance(value, str):
        return digits(value, path)
    return value


def digits(value: str, path: str) -> int:
    """A decimal count sent as a string (Twilio's ``"sequenceNumber": "3"``)."""
    if not (value.isascii() and value.isdigit() and len(value) <= 18):
        raise ProtocolError(f"{path}: expected a decimal number in a string, got {value!r}", path)
    return int(value)


def strings(values: Sequence[Any], path: str) -> tuple[str, ...]:
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise ProtocolError(f"{path}[{i}]: expected a string, got {json_type(v)}", f"{path}[{i}]")
    return tuple(values)
