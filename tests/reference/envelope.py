"""What a message of a given shape says, read plainly from ``json.loads``'s result.

The reference for the fast JSON-envelope scanner: a list of fields ``(path, types, required,
alternatives)`` is read from a parsed object (keys compared ignoring ASCII case when asked);
null reads as absent; any missing required field, wrong type, value outside the alternatives,
bad base64 (by the strict rules of ``reference.b64``) or key given twice is a ``RefError``.
Written from the rules, not from the code.
"""

from __future__ import annotations

import audioop
import json
from typing import Any

from reference import b64 as ref_b64

CODECS = {"ulaw": lambda b: audioop.ulaw2lin(b, 2), "alaw": lambda b: audioop.alaw2lin(b, 2)}


class RefError(Exception):
    pass


def _hook(ci: bool):
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in items:
            if ci and k.isascii():
                k = k.lower()
            if k in out:
                raise RefError(f"duplicate {k}")
            out[k] = v
        return out

    return pairs


def _type_ok(value: Any, types: str) -> bool:
    for t in types.split("|"):
        if t == "str" and type(value) is str:
            return True
        if t == "int" and type(value) is int:
            return True
        if t == "bool" and type(value) is bool:
            return True
        if t == "object" and type(value) is dict:
            return True
        if t == "count" and (type(value) is int or (type(value) is str and value.isascii() and value.isdigit() and len(value) <= 18)):
            return True
    return False


def read(text: str, fields: list[tuple[str, str, bool, tuple[str, ...]]], *, ci: bool = False,
         b64: str | None = None, codec: str | None = None) -> tuple[Any, ...]:
    try:
        obj = json.loads(text, object_pairs_hook=_hook(ci))
    except ValueError as exc:
        raise RefError(str(exc)) from None
    if type(obj) is not dict:
        raise RefError("not an object")
    values: dict[str, Any] = {}
    present: dict[str, bool] = {"": True}
    for path, types, required, alts in fields:
        parent, _, name = path.rpartition(".")
        container = obj
        if parent:
            container = values.get(parent)
        if container is None:
            values[path] = None
            continue
        key = name.lower() if ci else name
        value = container.get(key)
        if value is None:
            if required:
                raise RefError(f"{path} missing")
            values[path] = None
            continue
        if not _type_ok(value, types):
            raise RefError(f"{path} type")
        if alts and value not in alts:
            raise RefError(f"{path} value")
        if types == "count" and type(value) is str:
            value = int(value)
        if path == b64:
            try:
                value = ref_b64.decode_text(value)
            except ref_b64.RefDecodeError:
                raise RefError(f"{path} base64") from None
        values[path] = value
    out = [values[p] for p, types, _, _ in fields if types != "object"]
    if codec:
        out.append(CODECS[codec](values[b64]))
    return tuple(out)
