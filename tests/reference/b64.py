"""Plain-Python base64 (RFC 4648, standard alphabet, padded) with audiocore's strict rules.

Decoding rules, stated once: the input is ASCII; a length that is a multiple of 4 may end in
"=" or "=="; every other character must be in the alphabet. The first offending character (in
order) is reported: "=" anywhere else is misplaced padding, anything else a bad character. An
input whose length is not a multiple of 4 is first checked for bad characters in its whole
groups (where "=" is misplaced padding) and in its dangling tail (where "=" is tolerated), and
then reported as truncated at the start of the tail.
"""

from __future__ import annotations

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
VALUE = {c: i for i, c in enumerate(ALPHABET)}


class RefDecodeError(ValueError):
    def __init__(self, kind: str, offset: int) -> None:
        super().__init__(f"{kind} at {offset}")
        self.kind = kind  # "char", "pad", "length", "non-ascii"
        self.offset = offset


def encode(data: bytes) -> bytes:
    bits = "".join(f"{b:08b}" for b in data)
    bits += "0" * (-len(bits) % 6)
    chars = [ALPHABET[int(bits[i : i + 6], 2)] for i in range(0, len(bits), 6)]
    chars += ["="] * (-len(chars) % 4)
    return "".join(chars).encode("ascii")


def decode(text: str | bytes) -> bytes:
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    n = len(text)
    if n % 4 == 0:
        pad = 2 if text.endswith("==") else 1 if text.endswith("=") else 0
        body = text[: n - pad]
        _check(body, 0)
        return _bits_to_bytes(body)
    whole = n - n % 4
    _check(text[:whole], 0)
    for i in range(whole, n):
        if text[i] not in VALUE and text[i] != "=":
            raise RefDecodeError("char", i)
    raise RefDecodeError("length", whole)


def decode_text(text: str) -> bytes:
    """Decode a ``str``: a non-ASCII character is reported first, at its index."""
    for i, c in enumerate(text):
        if ord(c) > 127:
            raise RefDecodeError("non-ascii", i)
    return decode(text)


def _check(chars: str, start: int) -> None:
    for i, c in enumerate(chars):
        if c not in VALUE:
            raise RefDecodeError("pad" if c == "=" else "char", start + i)


def _bits_to_bytes(chars: str) -> bytes:
    bits = "".join(f"{VALUE[c]:06b}" for c in chars)
    return bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits) - len(bits) % 8, 8))
