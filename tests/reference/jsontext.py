"""A plain JSON serializer that writes the same value in many legal spellings.

Used to prove that the protocol handlers' fast paths and general paths agree: any spelling of
a message must read the same, whatever the key order, key casing (where the service ignores
it), string escapes (``\\/``, ``\\u0041``), whitespace, and with duplicate keys it must fail the
same way. Independent of the code under test: only the standard library's ``json`` for
numbers.
"""

from __future__ import annotations

import json
import random
from typing import Any

WHITESPACE = ["", "", "", " ", "\n", "\t", "\r\n  "]


class Dup:
    """A key written twice: ``Dup(first, second)`` is emitted as two members of one object."""

    def __init__(self, first: Any, second: Any) -> None:
        self.first = first
        self.second = second


def _ws(rng: random.Random, vary: bool) -> str:
    return rng.choice(WHITESPACE) if vary else ""


def _string(s: str, rng: random.Random, vary: bool) -> str:
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif code < 0x20:
            out.append(f"\\u{code:04x}")
        elif vary and ch == "/" and rng.random() < 0.5:
            out.append("\\/")
        elif vary and rng.random() < 0.02:
            if code > 0xFFFF:
                code -= 0x10000
                out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04X}")
            else:
                out.append(f"\\u{code:04X}" if rng.random() < 0.5 else f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _key(k: str, rng: random.Random, vary: bool, casing: bool) -> str:
    if casing and rng.random() < 0.5:
        k = "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in k)
    return _string(k, rng, vary)


def dumps(value: Any, rng: random.Random, *, vary: bool = True, casing: bool = False, shuffle: bool = True) -> str:
    """``value`` as JSON text; with ``vary`` in a random legal spelling (whitespace, escapes,
    member order with ``shuffle``), with ``casing`` keys in random ASCII case."""
    if isinstance(value, dict):
        items = list(value.items())
        if shuffle and vary:
            rng.shuffle(items)
        members = []
        for k, v in items:
            if isinstance(v, Dup):
                pairs = [(k, v.first), (k, v.second)]
            else:
                pairs = [(k, v)]
            for kk, vv in pairs:
                members.append(
                    _ws(rng, vary) + _key(kk, rng, vary, casing) + _ws(rng, vary) + ":"
                    + _ws(rng, vary) + dumps(vv, rng, vary=vary, casing=casing, shuffle=shuffle)
                    + _ws(rng, vary)
                )
        return "{" + ",".join(members) + (_ws(rng, vary) if not members else "") + "}"
    if isinstance(value, list):
        return "[" + ",".join(
            _ws(rng, vary) + dumps(v, rng, vary=vary, casing=casing, shuffle=shuffle) + _ws(rng, vary)
            for v in value
        ) + "]"
    if isinstance(value, str):
        return _string(value, rng, vary)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    return json.dumps(value)
