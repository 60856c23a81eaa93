"""A Sora-like audio streaming client: what Sora does towards a gateway, over real HTTP/2.

```python
packets = packets_from_ogg("tests/data/speech-20ms.opus")    # or packets_from_pcm(pcm, 16000)
result = await stream_opus("http://127.0.0.1:5890/speech", packets, realtime=True)
result.status, result.lines                                  # 200, [b'{"type":...}\\n', ...]
```

One POST per call with the ``sora-*`` headers; the body is the packets in header mode (20-byte
header: Unix µs timestamp, sequence, length; the default) or raw mode (one packet per DATA
frame), paced in real time from each packet's duration (its TOC byte) or sent as fast as flow
control allows; result lines are read as they arrive, concurrently with sending.
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
import time
import wave
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from audiocore._ext.errors import DecodeError
from audiocore._ext.ogg import OggOpusReader
from audiocore._ext.opus import OPUS_RATES, OpusEncoder, opus_packet_samples
from audiocore.gateway.h2client import ClientStream, H2Client
from audiocore.protocols.sora import packet_bytes

__all__ = [
    "SoraStreamResult",
    "basic_authorization",
    "new_id",
    "open_stream",
    "packets_from_ogg",
    "packets_from_pcm",
    "packets_from_wav",
    "stream_opus",
]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id() -> str:
    """A random 26-character id shaped like Sora's (Crockford base32)."""
    n = int.from_bytes(os.urandom(17), "big")
    return "".join(_ALPHABET[(n >> (5 * i)) & 31] for i in range(26))


def packets_from_ogg(source: str | Path | bytes) -> list[bytes]:
    """The audio packets of an Ogg Opus file (a path, or the file's bytes)."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    reader = OggOpusReader()
    return [p.data for p in reader.feed(data)]


def packets_from_pcm(
    pcm: bytes, rate: int, channels: int = 1, *, frame_ms: int = 20, bitrate: int | None = 24000
) -> list[bytes]:
    """PCM16LE at ``rate`` (8/12/16/24/48 kHz) encoded with :class:`audiocore.OpusEncoder` in
    ``frame_ms`` packets (the last frame padded with silence)."""
    if rate not in OPUS_RATES:
        from audiocore.resampling import resample

        pcm, rate = resample(pcm, rate, 48000, channels=channels), 48000
    encoder = OpusEncoder(rate, channels, "voip", bitrate=bitrate)
    step = rate * frame_ms // 1000 * channels * 2
    if len(pcm) % step:
        pcm = pcm + bytes(step - len(pcm) % step)
    return [encoder.encode(pcm[i : i + step]) for i in range(0, len(pcm), step)]


def packets_from_wav(path: str | Path, *, frame_ms: int = 20, bitrate: int | None = 24000) -> list[bytes]:
    """A 16-bit PCM WAV file encoded to Opus packets (see :func:`packets_from_pcm`)."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV is read here")
        pcm, rate, channels = w.readframes(w.getnframes()), w.getframerate(), w.getnchannels()
    return packets_from_pcm(pcm, rate, channels, frame_ms=frame_ms, bitrate=bitrate)


def sora_headers(
    language_code: str | None = "ja-JP",
    channel_id: str | None = "sora",
    session_id: str | None = None,
    connection_id: str | None = None,
) -> list[tuple[str, str]]:
    """The ``sora-*`` request headers (None leaves a header out)."""
    pairs = [
        ("sora-channel-id", channel_id),
        ("sora-session-id", session_id),
        ("sora-connection-id", connection_id),
        ("sora-audio-streaming-language-code", language_code),
    ]
    return [(k, v) for k, v in pairs if v is not None]


def basic_authorization(username: str, password: str) -> tuple[str, str]:
    """The ``authorization`` header of HTTP basic authentication (RFC 7617, UTF-8)."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return ("authorization", f"Basic {token}")


async def open_stream(
    client: H2Client, path: str = "/speech", headers: Iterable[tuple[str, str]] | None = None
) -> ClientStream:
    """POST ``path`` with the ``sora-*`` headers (default: :func:`sora_headers` with fresh
    ids); send the body with ``stream.send`` and read results with ``stream.lines()``."""
    if headers is None:
        headers = sora_headers(session_id=new_id(), connection_id=new_id())
    return await client.request("POST", path, [("content-type", "application/octet-stream"), *headers])


@dataclass
class SoraStreamResult:
    """What a stream got back: the response ``status``, the result ``lines`` (each ending in
    ``\\n``) and when each arrived (seconds since the request, ``line_times``), how many
    packets were sent, and the stream's end (``reset_code`` None: ended normally)."""

    status: int | None
    lines: list[bytes] = field(default_factory=list)
    line_times: list[float] = field(default_factory=list)
    packets_sent: int = 0
    reset_code: int | None = None
    session_id: str | None = None
    connection_id: str | None = None


async def stream_opus(
    url: str,
    packets: Iterable[bytes] | AsyncIterable[bytes],
    *,
    header_mode: bool = True,
    realtime: bool = True,
    language_code: str | None = "ja-JP",
    channel_id: str | None = "sora",
    session_id: str | None = None,
    connection_id: str | None = None,
    client: H2Client | None = None,
    ssl_context: ssl.SSLContext | None = None,
    on_line: Callable[[bytes], Awaitable[None] | None] | None = None,
    headers: Iterable[tuple[str, str]] = (),
) -> SoraStreamResult:
    """Stream ``packets`` to ``url`` (``http://host:port/speech``; ``https://`` for TLS) as
    Sora does and collect the result lines. ``realtime``: send each packet when its time comes
    (by the durations of those before it), else as fast as flow control allows. ``client``:
    an open :class:`~audiocore.gateway.h2client.H2Client` to share (many streams on one
    connection); otherwise a connection is made and closed. ``on_line`` is called with each
    line as it arrives. ``headers``: more request headers (e.g. :func:`basic_authorization`).
    A refusal (non-200) returns its status with no lines; a connection
    lost before any response raises ``ConnectionResetError``."""
    parts = urlsplit(url)
    session_id = session_id or new_id()
    connection_id = connection_id or new_id()
    own = client is None
    if client is None:
        client = await H2Client.connect(f"{parts.scheme}://{parts.netloc}", ssl_context=ssl_context)
    result = SoraStreamResult(None, session_id=session_id, connection_id=connection_id)
    try:
        start = time.monotonic()
        stream = await open_stream(client, parts.path or "/speech",
                                   [*sora_headers(language_code, channel_id, session_id, connection_id), *headers])
        reader = asyncio.create_task(_read(stream, result, start, on_line))
        try:
            try:
                await _send(stream, packets, result, header_mode, realtime)
            except ConnectionResetError:
                pass  # the server answered early (refusal, error line) and reset the request side
            await reader
        finally:  # on a failure or cancellation too: no reader left behind, no stream left open
            reader.cancel()
            if not stream.ended:
                stream.reset()
            await asyncio.gather(reader, return_exceptions=True)
        if result.status is None:
            raise ConnectionResetError("the connection closed before the response headers")
        result.reset_code = stream.reset_code
        return result
    finally:
        if own:
            await client.aclose()


async def _send(
    stream: ClientStream,
    packets: Iterable[bytes] | AsyncIterable[bytes],
    result: SoraStreamResult,
    header_mode: bool,
    realtime: bool,
) -> None:
    start = time.monotonic()
    media_s = 0.0
    base_us = time.time_ns() // 1000
    seq = 0
    async for packet in _aiter(packets):
        if stream.ended:
            return
        if realtime:
            delay = start + media_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        data = packet_bytes(base_us + int(media_s * 1e6), seq, packet) if header_mode else packet
        await stream.send(data)
        result.packets_sent += 1
        seq += 1
        if realtime or header_mode:
            media_s += _duration_s(packet)
    await stream.end()


def _duration_s(packet: bytes) -> float:
    """A packet's duration from its TOC byte; 20 ms for what is not a valid Opus packet."""
    try:
        return opus_packet_samples(packet) / 48000
    except DecodeError:
        return 0.02


async def _aiter(packets: Iterable[bytes] | AsyncIterable[bytes]) -> AsyncIterable[bytes]:
    if isinstance(packets, AsyncIterable):
        async for p in packets:
            yield p
    else:
        for p in packets:
            yield p


async def _read(
    stream: ClientStream,
    result: SoraStreamResult,
    start: float,
    on_line: Callable[[bytes], Awaitable[None] | None] | None,
) -> None:
    try:
        result.status = await stream.response()
    except ConnectionResetError:
        return
    async for line in stream.lines():
        result.lines.append(line)
        result.line_times.append(time.monotonic() - start)
        if on_line is not None:
            done = on_line(line)
            if done is not None:
                await done
