"""The exception hierarchy shared by every kernel and layer of audiocore.

Kept at the kernel layer so the Cython modules can raise these without importing the
public package. Re-exported from :mod:`audiocore`.
"""

from __future__ import annotations


class AudioCoreError(Exception):
    """Base class of every error audiocore raises on purpose."""


class DecodeError(AudioCoreError, ValueError):
    """Bad encoded input (base64, Ogg, Opus).

    ``offset`` is the byte (or character) offset in the input where the problem was
    found, or ``None`` when no single position is to blame.
    """

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message, offset)
        self.message = message
        self.offset = offset

    def __str__(self) -> str:
        return self.message


class ProtocolError(AudioCoreError, ValueError):
    """A malformed protocol message. ``field`` is the path of the offending field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message, field)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return self.message


class OpusError(AudioCoreError):
    """libopus returned an error: ``code`` is its (negative) code, ``text`` its description."""

    def __init__(self, code: int, text: str, context: str = "") -> None:
        super().__init__(code, text, context)
        self.code = code
        self.text = text
        self.context = context

    def __str__(self) -> str:
        where = f"{self.context}: " if self.context else ""
        return f"{where}libopus error {self.code}: {self.text}"


class BufferFullError(AudioCoreError):
    """A write would overflow a fixed-capacity buffer; nothing was written."""
