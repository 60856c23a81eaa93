"""Keeping secrets and client-sized values out of the gateways' logs.

- :func:`clip`: a client-supplied value made printable and short before it is logged.
- :func:`redact_url`: a URL with its userinfo and query values replaced by ``***``.
- :func:`redact_headers`: header values of :data:`SECRET_HEADERS` replaced, the rest clipped.
- :class:`RedactingFilter`: a logging filter that rewrites any record (ours or a library's,
  at any level) whose text shows a secret header or a URL query value.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

__all__ = ["SECRET_HEADERS", "RedactingFilter", "clip", "redact_headers", "redact_text", "redact_url"]

#: Header names (lower case) whose values are never logged.
SECRET_HEADERS = frozenset({
    "authorization", "proxy-authorization", "api-key", "x-api-key", "cookie", "set-cookie",
    "ocp-apim-subscription-key", "x-goog-api-key", "x-amz-security-token",
})

_MASK = "***"


def clip(value: str | bytes | None, limit: int = 64) -> str:
    """``value`` as printable text of at most ``limit`` characters (plus a note of the full
    length when cut). Bytes are decoded as Latin-1; control characters become ``?``."""
    if value is None:
        return "-"
    text = value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)
    size = len(text)
    if size > limit:
        text = text[:limit]
    text = "".join(c if c.isprintable() else "?" for c in text)
    return f"{text}...({size} chars)" if size > limit else text


def redact_url(url: str) -> str:
    """``url`` with the password/userinfo and every query value masked (keys stay, so the
    log still says which parameters were given)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return clip(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = _MASK + "@" + netloc.rsplit("@", 1)[1]
    query = "&".join(
        (p.split("=", 1)[0] + "=" + _MASK) if "=" in p else p for p in parts.query.split("&")
    ) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``headers`` fit to log: secret values masked, every other value clipped."""
    return {name: _MASK if name.lower() in SECRET_HEADERS else clip(value)
            for name, value in headers.items()}


# A secret header as it appears in formatted text, bytes reprs included: the value runs to
# the end of the line, a quote, a backslash (an escaped \r\n in a repr) or a comma; the name
# may follow an escaped \r\n of a repr.
_HEADER_RE = re.compile(
    r"(?i)((?:(?<=\\[rn])|(?<![\w-]))(?:" + "|".join(re.escape(h) for h in sorted(SECRET_HEADERS)) + r")\b['\"]?\s*[:=,]\s*b?['\"]?)"
    r"[^\r\n\\'\",}]+"
)
# A query value in a URL: ?key=value or &key=value, up to a separator.
_QUERY_RE = re.compile(r"([?&][A-Za-z0-9_.\-~%]+=)[^&\s'\"\\#<>]+")


def redact_text(text: str) -> str:
    """``text`` with secret header values and URL query values masked."""
    if "=" in text:
        text = _QUERY_RE.sub(r"\1" + _MASK, text)
    return _HEADER_RE.sub(r"\1" + _MASK, text)


class RedactingFilter(logging.Filter):
    """Rewrites a record whose formatted message would show a secret (see
    :func:`redact_text`). Install on a logger or a handler; costs one regex pass per record
    that reaches it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a record that cannot format is left to logging's own handling
            return True
        clean = redact_text(text)
        if clean != text:
            record.msg, record.args = clean, None
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True
