"""A small full-duplex HTTP/2 client on asyncio and ``h2``: stream a request body while the
response streams back (what the Sora client peer and the ``http`` recognizer need, and what
HTTP client libraries built on request/response do not offer).

```python
client = await H2Client.connect("http://127.0.0.1:5890")          # h2c, prior knowledge
stream = await client.request("POST", "/speech", [("sora-audio-streaming-language-code", "ja-JP")])
await stream.send(body_part)            # one DATA frame when it fits the window and frame size
status = await stream.response()        # waits for the response headers
async for line in stream.lines(): ...   # response body, line by line
await stream.end(); await client.aclose()
```

Received data is acknowledged to the server (flow control) only when it is read, so a
consumer that stops reading makes the server wait instead of filling memory. One event loop,
no threads.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator, Iterable
from urllib.parse import urlsplit

import h2.events
import h2.settings

from audiocore.gateway._h2 import STREAM_WINDOW, H2Protocol, wake

__all__ = ["ClientStream", "H2Client", "client_ssl_context"]

#: Longest response line :meth:`ClientStream.lines` accepts (bytes).
MAX_LINE = 1 << 20


def client_ssl_context(
    cafile: str | None = None, certfile: str | None = None, keyfile: str | None = None
) -> ssl.SSLContext:
    """A TLS client context offering ALPN ``h2``: verifies the server against ``cafile`` (the
    system store when None) and presents ``certfile``/``keyfile`` when given."""
    context = ssl.create_default_context(cafile=cafile)
    context.set_alpn_protocols(["h2"])
    if certfile:
        context.load_cert_chain(certfile, keyfile)
    return context


class ClientStream:
    """One request/response exchange of an :class:`H2Client`."""

    def __init__(self, client: H2Client, stream_id: int) -> None:
        self.client = client
        self.stream_id = stream_id
        #: Response status and headers (None until they arrive).
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        #: The server ended its side (all of the body has arrived) or reset the stream.
        self.ended = False
        self.reset_code: int | None = None
        self._chunks: deque[tuple[bytes, int]] = deque()
        self._headers_seen = asyncio.get_running_loop().create_future()
        self._wakeup: asyncio.Future[None] | None = None
        self._pending = b""

    # fed by the connection --------------------------------------------------

    def _on_headers(self, headers: list[tuple[bytes, bytes]]) -> None:
        for name, value in headers:
            if name == b":status":
                self.status = int(value)
            else:
                self.headers.append((name, value))
        if self.status is not None and self.status >= 200 and not self._headers_seen.done():
            self._headers_seen.set_result(None)

    def _on_data(self, data: bytes, flow: int) -> None:
        self._chunks.append((data, flow))
        self._wake()

    def _on_end(self, reset_code: int | None = None) -> None:
        self.ended = True
        self.reset_code = reset_code
        wake(self._headers_seen, ConnectionResetError(
            "stream closed before the response headers"
            + (f" (RST_STREAM {reset_code})" if reset_code is not None else "")))
        self._wake()

    def _wake(self) -> None:
        waiter, self._wakeup = self._wakeup, None
        wake(waiter)

    # for the user -------------------------------------------------------------

    async def send(self, data: bytes, end_stream: bool = False) -> None:
        """Send request body bytes: one DATA frame when they fit the server's frame size and
        window (more otherwise); waits for the window. ``ConnectionResetError`` if the stream
        or connection is gone."""
        await self.client.proto.send_data(self.stream_id, data, end_stream)

    async def end(self) -> None:
        """End the request body (END_STREAM). Quietly does nothing if the stream is gone."""
        self.client.proto.end_stream(self.stream_id)

    def reset(self, code: int = 8) -> None:
        """Abort the stream (RST_STREAM, default CANCEL); what arrived unread is dropped (and
        its flow-control window given back)."""
        proto = self.client.proto
        proto.reset_stream(self.stream_id, code)
        proto.streams.pop(self.stream_id, None)
        proto.acknowledge(self.stream_id, sum(flow for _, flow in self._chunks))
        self._chunks.clear()
        self._on_end(code)

    async def response(self) -> int:
        """Wait for the response headers; the status code."""
        await asyncio.shield(self._headers_seen)
        assert self.status is not None
        return self.status

    async def read(self) -> bytes:
        """The next chunk of the response body as it arrived (one DATA frame); ``b""`` at the
        end. Acknowledges the chunk to the server."""
        while not self._chunks:
            if self.ended:
                return b""
            if self.client.proto.is_lost:
                raise ConnectionResetError("connection closed")
            self._wakeup = asyncio.get_running_loop().create_future()
            await self._wakeup
        data, flow = self._chunks.popleft()
        self.client.proto.acknowledge(self.stream_id, flow)
        return data

    async def lines(self) -> AsyncIterator[bytes]:
        """Response body lines (each with its ``\\n``; a last unterminated line as is)."""
        while True:
            chunk = await self.read()
            if not chunk:
                if self._pending:
                    line, self._pending = self._pending, b""
                    yield line
                return
            buf = self._pending + chunk
            start = 0
            while (cut := buf.find(b"\n", start)) >= 0:
                yield buf[start : cut + 1]
                start = cut + 1
            self._pending = buf[start:]
            if len(self._pending) > MAX_LINE:
                raise ValueError(f"response line longer than {MAX_LINE} bytes")

    async def body(self) -> bytes:
        """The rest of the response body."""
        parts = []
        while chunk := await self.read():
            parts.append(chunk)
        return b"".join(parts)


class _ClientProtocol(H2Protocol):
    def __init__(self) -> None:
        super().__init__(client_side=True)
        self.streams: dict[int, ClientStream] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.start_h2({
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100,
        })

    def data_received(self, data: bytes) -> None:
        self.feed_h2(data)

    def handle_event(self, event: h2.events.Event) -> None:
        sid = getattr(event, "stream_id", None)
        stream = self.streams.get(sid) if sid is not None else None
        if isinstance(event, (h2.events.ResponseReceived, h2.events.InformationalResponseReceived,
                              h2.events.TrailersReceived)):
            if stream is not None:
                stream._on_headers(list(event.headers or []))
        elif isinstance(event, h2.events.DataReceived):
            if stream is not None:
                stream._on_data(event.data or b"", event.flow_controlled_length or 0)
            else:
                self.acknowledge(event.stream_id or 0, event.flow_controlled_length or 0)
        elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
            if stream is not None:
                del self.streams[event.stream_id or 0]
                stream._on_end(int(event.error_code or 0) if isinstance(event, h2.events.StreamReset) else None)
                if self.peer_goaway is not None and not self.streams:
                    self.close_transport()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.close_transport()

    def goaway_received(self, last_stream_id: int) -> None:
        for sid in [s for s in self.streams if s > last_stream_id]:
            self.streams.pop(sid)._on_end(7)  # REFUSED_STREAM: never processed
        if not self.streams:
            self.close_transport()

    def closed(self) -> None:
        for stream in self.streams.values():
            if not stream.ended:
                stream._on_end(-1)


class H2Client:
    """One HTTP/2 connection to a server; open any number of concurrent streams on it."""

    def __init__(self, proto: _ClientProtocol, authority: str, scheme: str) -> None:
        self.proto = proto
        self.authority = authority
        self.scheme = scheme

    @classmethod
    async def connect(
        cls, url: str, *, ssl_context: ssl.SSLContext | None = None, server_hostname: str | None = None
    ) -> H2Client:
        """Connect to ``url``'s host and port: ``http://`` is h2c with prior knowledge,
        ``https://`` TLS with ALPN ``h2`` (``ssl_context`` defaults to the system CAs)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http:// or https:// URL: {url!r}")
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        context = (ssl_context or client_ssl_context()) if tls else None
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(
            _ClientProtocol, parts.hostname, port, ssl=context,
            server_hostname=(server_hostname or parts.hostname) if tls else None,
        )
        if tls:
            assert proto.transport is not None
            ssl_object = proto.transport.get_extra_info("ssl_object")
            if ssl_object is None or ssl_object.selected_alpn_protocol() != "h2":
                proto.transport.close()
                raise ConnectionError("the server did not negotiate HTTP/2 (ALPN h2)")
        return cls(proto, parts.netloc, parts.scheme)

    async def request(
        self,
        method: str,
        path: str,
        headers: Iterable[tuple[str, str]] = (),
        *,
        end_stream: bool = False,
    ) -> ClientStream:
        """Open a stream with the request headers (the body follows with ``send``)."""
        proto = self.proto
        if proto.is_lost or proto.peer_goaway is not None:
            raise ConnectionResetError("connection closed" if proto.is_lost else "the server is shutting down (GOAWAY)")
        stream_id = proto.conn.get_next_available_stream_id()
        proto.conn.send_headers(stream_id, [
            (":method", method), (":scheme", self.scheme), (":authority", self.authority),
            (":path", path), *headers,
        ], end_stream=end_stream)  # may raise (TooManyStreamsError...): register only after
        stream = proto.streams[stream_id] = ClientStream(self, stream_id)
        proto.flush()
        await proto.drain()
        return stream

    async def aclose(self) -> None:
        """GOAWAY and close the connection."""
        proto = self.proto
        if not proto.is_lost and proto.transport is not None:
            try:
                proto.conn.close_connection()
                proto.flush_now()
            except Exception:  # noqa: BLE001 - closing a connection in any state
                pass
            proto.transport.close()
        await asyncio.sleep(0)
