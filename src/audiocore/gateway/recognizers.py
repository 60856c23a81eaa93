"""Recognizers behind the Sora gateway: the interface, the offline ones (``ogg``, ``test``,
``dump``) and ``http``, an example adapter for a cloud recognizer.

The interface, per HTTP/2 stream (one Sora client connection):

1. :meth:`Recognizer.open` is awaited when the request arrives; it connects to whatever does
   the recognition. The gateway answers ``200`` only once it returns; if it raises
   :class:`RecognizerRefused` the client gets that bare status (500 for one outside 200-999),
   any other exception: 500 with the reference's ``{"message": ...}`` body.
2. :meth:`RecognizerStream.send` is awaited once per Opus packet, in order, with an
   :class:`AudioChunk`: the packet and, when the recognizer's ``wants_ogg`` is true, the Ogg
   pages it produced (the first chunk's ``ogg`` starts with the OpusHead and OpusTags
   pages; one page per packet). Silence fillers come the same way with ``filler=True``.
3. :meth:`RecognizerStream.end` is awaited once when the audio is over (the client ended its
   body, or went away), with the Ogg stream's last page (EOS).
4. :meth:`RecognizerStream.results` is iterated concurrently from the start: every item is
   sent to the client as it comes, each its own DATA frame — a result line (``bytes``
   ending in ``\\n``, see the builders of :mod:`audiocore.protocols.sora`) or a mapping
   (sent as one compact JSON line). The response ends when the iterator does.
5. :meth:`RecognizerStream.aclose` is awaited last, always (also on errors and aborts).

Back-pressure runs end to end: a slow ``send`` keeps packets waiting in the gateway, which
then stops granting the client HTTP/2 window; a client that does not read its results makes
``emit`` wait. An exception from ``send``/``end``/``results`` becomes a
``{"type":"error","reason":...}`` line and ends the response. :class:`RecognizerStream`
provides ``results`` over a small bounded queue: subclasses call :meth:`~RecognizerStream.emit`
and :meth:`~RecognizerStream.finish`.
"""

from __future__ import annotations

import abc
import asyncio
import datetime
import itertools
import json
import os
import re
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from audiocore._ext.b64 import b64encode
from audiocore.gateway.config import SoraConfig
from audiocore.gateway.h2client import ClientStream, H2Client, client_ssl_context
from audiocore.protocols import sora

__all__ = [
    "RECOGNIZERS",
    "AudioChunk",
    "DumpRecognizer",
    "HttpRecognizer",
    "OggFile",
    "OggFileRecognizer",
    "Recognizer",
    "RecognizerRefused",
    "RecognizerStream",
    "StreamInfo",
    "TestRecognizer",
    "dump_line",
    "safe_name",
    "result_line",
]


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What a recognizer learns of a stream when it opens: the request ``path`` (``/speech``,
    ``/test``, ``/dump``), the ``sora-*`` headers, the Ogg stream's ``sample_rate`` (OpusHead
    input rate, Hz) and ``channels``, the client's address and the server's config."""

    path: str
    headers: sora.StreamHeaders
    sample_rate: int
    channels: int
    peer: Any
    config: SoraConfig


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """One Opus packet of a stream. ``packet``: the Opus packet (owned, immutable);
    ``ogg``: the Ogg pages it produced (``b""`` for recognizers that do not want Ogg);
    ``filler``: the gateway's silence (``sora.SILENCE_PACKET``) for a pause;
    ``timestamp_us``/``sequence``: from the packet header (header mode; None for fillers and
    raw-mode timestamps); ``received_ms``: Unix time in ms when it arrived (or was inserted)."""

    packet: bytes
    ogg: bytes
    filler: bool
    timestamp_us: int | None
    sequence: int | None
    received_ms: int


class RecognizerRefused(Exception):
    """Raised by :meth:`Recognizer.open` to refuse a stream with HTTP ``status`` (bare; an
    int in 200-999, anything else is answered 500 and logged as INVALID-STATUS-CODE)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def result_line(result: bytes | Mapping[str, Any]) -> bytes:
    """A result as one line: ``bytes`` are checked (one line, ending in ``\\n``), a mapping
    is written as compact JSON plus ``\\n``."""
    if isinstance(result, Mapping):
        return sora._line(dict(result))
    line = result if type(result) is bytes else bytes(result)
    if line.find(b"\n") != len(line) - 1:
        raise ValueError("a result must be exactly one line ending in a newline")
    return line


_DONE = object()


class RecognizerStream(abc.ABC):
    """A recognizer's side of one stream. Subclasses implement :meth:`send` and :meth:`end`,
    report results with :meth:`emit` and call :meth:`finish` when no more will come (or
    override :meth:`results` outright)."""

    def __init__(self, max_pending_results: int = 64) -> None:
        self._queue: asyncio.Queue[object] = asyncio.Queue(max_pending_results)

    @abc.abstractmethod
    async def send(self, chunk: AudioChunk) -> None:
        """One packet (in order)."""

    @abc.abstractmethod
    async def end(self, ogg_tail: bytes) -> None:
        """The audio is over; ``ogg_tail``: the Ogg stream's last (EOS) page."""

    async def emit(self, result: bytes | Mapping[str, Any]) -> None:
        """Queue a result for the client (waits while the client is behind)."""
        await self._queue.put(result)

    async def finish(self) -> None:
        """No more results: the response ends after those queued."""
        await self._queue.put(_DONE)

    async def results(self) -> AsyncIterator[bytes | Mapping[str, Any]]:
        """The results, as they come."""
        while True:
            item = await self._queue.get()
            if item is _DONE:
                return
            yield item  # type: ignore[misc]

    async def aclose(self) -> None:
        """Release everything (called last, always)."""


class Recognizer(abc.ABC):
    """A recognition service: opens one :class:`RecognizerStream` per HTTP/2 stream.
    ``wants_ogg``: whether chunks carry Ogg pages (when false the gateway does not page,
    nor check, the packets)."""

    name: ClassVar[str] = ""
    wants_ogg: ClassVar[bool] = True

    @abc.abstractmethod
    async def open(self, info: StreamInfo) -> RecognizerStream:
        """Connect for a new stream (raise :class:`RecognizerRefused` to refuse it)."""

    async def aclose(self) -> None:
        """The server is shutting down."""


# ---------------------------------------------------------------------------- ogg


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def safe_name(name: str | None, limit: int = 128) -> str:
    """``name`` usable as (part of) a file name: characters outside ``A-Za-z0-9_.-`` and a
    leading dot become ``_``; at most ``limit`` characters."""
    cleaned = _UNSAFE.sub("_", name or "")[:limit]
    return "_" + cleaned[1:] if cleaned.startswith(".") else cleaned


#: Distinguishes the names this process gives to files of one session and connection id.
_NAME_SEQUENCE = itertools.count(1)
#: Names tried before giving up: only another process creating the same names could use them up.
_NAME_ATTEMPTS = 8


class OggFile:
    """An Ogg file named ``{session}-{connection}.ogg`` in ``directory``, created anew (O_EXCL,
    never overwriting). If that name is taken (a reconnect with the same ids), the name gets
    the creation time and a per-process sequence number: ``{session}-{connection}.
    {YYYYmmddTHHMMSSffffff}Z-{n}.ogg`` (UTC): found in O(1), no directory scan, no limit on
    how often ids repeat. Characters other than letters, digits, ``_ . -`` in the ids become
    ``_`` (they come from request headers). Writes are buffered; :meth:`close` flushes, and
    removes the file if nothing was written (a stream that carried no packet leaves no file)."""

    def __init__(self, directory: str | Path, session_id: str | None, connection_id: str | None) -> None:
        stem = f"{safe_name(session_id)}-{safe_name(connection_id)}"
        base = Path(directory)
        path = base / f"{stem}.ogg"
        for _ in range(_NAME_ATTEMPTS):
            try:
                self._file = open(path, "xb", buffering=1 << 16)  # noqa: SIM115 - closed by close()
            except FileExistsError:
                stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
                path = base / f"{stem}.{stamp}-{next(_NAME_SEQUENCE)}.ogg"
                continue
            self.path = path
            self.written = 0
            return
        raise FileExistsError(f"{base / stem}.*.ogg: {_NAME_ATTEMPTS} names taken")

    def write(self, data: bytes) -> None:
        if data:
            self._file.write(data)
            self.written += len(data)

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
            if not self.written:
                self.path.unlink(missing_ok=True)


class _OggFileStream(RecognizerStream):
    def __init__(self, file: OggFile) -> None:
        super().__init__()
        self.file = file

    async def send(self, chunk: AudioChunk) -> None:
        self.file.write(chunk.ogg)

    async def end(self, ogg_tail: bytes) -> None:
        self.file.write(ogg_tail)
        self.file.close()
        await self.finish()

    async def aclose(self) -> None:
        self.file.close()


class OggFileRecognizer(Recognizer):
    """``ogg``: writes each stream to ``{session}-{connection}.ogg`` in ``ogg_dir`` (one page
    per packet, EOS at the end, also when the client goes away). Sends no results."""

    name = "ogg"

    def __init__(self, directory: str | Path = ".") -> None:
        self.directory = Path(directory)

    async def open(self, info: StreamInfo) -> RecognizerStream:
        try:
            file = OggFile(self.directory, info.headers.session_id, info.headers.connection_id)
        except OSError as exc:
            raise RecognizerRefused(500, f"cannot create the Ogg file: {exc}") from exc
        return _OggFileStream(file)


# ---------------------------------------------------------------------------- test


_TEST_LINES: dict[int, bytes] = {}


class _TestStream(RecognizerStream):
    async def send(self, chunk: AudioChunk) -> None:
        n = len(chunk.packet)
        line = _TEST_LINES.get(n)
        if line is None:
            line = sora.test_result(n)
            if len(_TEST_LINES) < 4096:  # packet sizes repeat: keep the lines, boundedly
                _TEST_LINES[n] = line
        await self.emit(line)

    async def end(self, ogg_tail: bytes) -> None:
        await self.finish()


class TestRecognizer(Recognizer):
    """``test`` (the reference's ``/test``): one line per packet,
    ``{"channel_id":"ch_0","message":"n: <bytes>","type":"test"}``."""

    __test__ = False  # not a pytest test class
    name = "test"
    wants_ogg = False

    async def open(self, info: StreamInfo) -> RecognizerStream:
        return _TestStream()


# ---------------------------------------------------------------------------- dump


def dump_line(chunk: AudioChunk, info: StreamInfo) -> bytes:
    """The ``/dump`` JSON line of a packet, keys in the reference's order: ``timestamp``
    (Unix ms of arrival), ``channel_id``, ``connection_id``, ``language_code``,
    ``sample_rate``, ``channel_count``, ``payload`` (base64); absent ids are ``""``."""
    h = info.headers
    return sora._line({
        "timestamp": chunk.received_ms, "channel_id": h.channel_id or "", "connection_id": h.connection_id or "",
        "language_code": h.language_code, "sample_rate": info.sample_rate, "channel_count": info.channels,
        "payload": b64encode(chunk.packet).decode("ascii"),
    })


class _DumpStream(RecognizerStream):
    def __init__(self, info: StreamInfo, fd: int) -> None:
        super().__init__()
        self.info = info
        self.fd = fd

    async def send(self, chunk: AudioChunk) -> None:
        line = dump_line(chunk, self.info)
        os.write(self.fd, line)  # one write on an O_APPEND file: lines never interleave
        await self.emit(line)

    async def end(self, ogg_tail: bytes) -> None:
        await self.finish()

    async def aclose(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class DumpRecognizer(Recognizer):
    """``dump`` (the reference's ``/dump``): appends one JSON line per packet to
    ``dump_file`` and sends the same line to the client."""

    name = "dump"
    wants_ogg = False

    def __init__(self, path: str | Path = "./dump.jsonl") -> None:
        self.path = Path(path)

    async def open(self, info: StreamInfo) -> RecognizerStream:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            raise RecognizerRefused(500, f"cannot open the dump file: {exc}") from exc
        return _DumpStream(info, fd)


# ---------------------------------------------------------------------------- http (example)


class _HttpStream(RecognizerStream):
    def __init__(self, client: H2Client, upstream: ClientStream) -> None:
        super().__init__()
        self.client = client
        self.upstream = upstream

    async def send(self, chunk: AudioChunk) -> None:
        await self.upstream.send(chunk.ogg)

    async def end(self, ogg_tail: bytes) -> None:
        await self.upstream.send(ogg_tail, end_stream=True)

    async def results(self) -> AsyncIterator[bytes | Mapping[str, Any]]:
        async for raw in self.upstream.lines():
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
                text = obj["transcript"]
                if not isinstance(text, str):
                    raise TypeError("transcript is not a string")
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"upstream sent a malformed result: {exc}") from None
            stability = obj.get("stability")
            yield sora.gcp_result(
                text,
                is_final=bool(obj["is_final"]) if "is_final" in obj else None,
                stability=float(stability) if isinstance(stability, (int, float)) else None,
            )
        if self.upstream.reset_code not in (None, 0):
            raise ConnectionError(f"upstream reset the stream (code {self.upstream.reset_code})")

    async def aclose(self) -> None:
        if not self.upstream.ended:
            self.upstream.reset()
        await self.client.aclose()


class HttpRecognizer(Recognizer):
    """``http``: an example adapter for a cloud recognizer. Per stream it opens an HTTP/2
    connection to ``url`` (``http://`` h2c or ``https://``), POSTs the Ogg Opus stream as the
    request body (``content-type: audio/ogg; codecs=opus``, the language in
    ``x-language-code``) while reading newline-delimited JSON results
    ``{"transcript": str, "is_final": bool?, "stability": float?}`` from the response, and
    passes each on as a ``{"type":"gcp",...}`` line. An upstream status other than 200
    refuses the stream with 502. A real service's adapter differs only in its wire format.
    """

    name = "http"

    def __init__(self, url: str, ssl_context: ssl.SSLContext | None = None) -> None:
        if not url:
            raise ValueError("the http recognizer needs recognizer_url")
        self.url = url
        self.ssl_context = ssl_context or (client_ssl_context() if url.startswith("https:") else None)

    async def open(self, info: StreamInfo) -> RecognizerStream:
        try:
            client = await H2Client.connect(self.url, ssl_context=self.ssl_context)
        except OSError as exc:
            raise RecognizerRefused(502, f"cannot reach the recognizer: {exc}") from exc
        try:
            parts = urlsplit(self.url)
            upstream = await client.request("POST", parts.path or "/", [
                ("content-type", "audio/ogg; codecs=opus"),
                ("x-language-code", info.headers.language_code),
            ])
            status = await upstream.response()
        except BaseException as exc:  # also cancellation and h2 errors: the connection goes too
            await client.aclose()
            if isinstance(exc, OSError):
                raise RecognizerRefused(502, f"recognizer connection failed: {exc}") from exc
            raise
        if status != 200:
            await client.aclose()
            raise RecognizerRefused(502, f"recognizer answered {status}")
        return _HttpStream(client, upstream)


#: Recognizers by service name, each built from the server's config.
RECOGNIZERS: dict[str, Callable[[SoraConfig], Recognizer]] = {
    "ogg": lambda c: OggFileRecognizer(c.ogg_dir),
    "test": lambda c: TestRecognizer(),
    "dump": lambda c: DumpRecognizer(c.dump_file),
    "http": lambda c: HttpRecognizer(c.recognizer_url),
}
