"""The Sora audio streaming gateway: an HTTP/2 server (h2c with prior knowledge, or h2 over
TLS with ALPN and optional client certificates) compatible with the reference gateway (Suzu).

```python
async with SoraServer(SoraConfig(listen_port=0, service="ogg", ogg_dir=tmp)) as server:
    print(server.url)              # http://127.0.0.1:<port>; POST {url}/speech
    await server.serve_forever()   # or do other work; leaving the block shuts down cleanly
```

Paths: ``POST /speech`` (the configured service), ``POST /test``, ``POST /dump``, ``GET /.ok``
(``{"version": ...}``); a trailing slash is ignored. Per stream: the request is checked (a
malformed one, RFC 9113 section 8.1.1, resets that stream only), the ``sora-*`` headers are
read (no ``sora-audio-streaming-language-code``: 500, as the reference), the recognizer is
opened, and only then ``200`` is sent. Error statuses carry the reference's
``{"message": ...}`` body; a recognizer's refusal is a bare status (500 outside 200-999). The
body's Opus packets (header mode or raw mode; zero-length payloads dropped) go, with silence
fillers for pauses, through an Ogg Opus writer (one page per packet) to the recognizer; its
results go back one DATA frame per line as they come. A bad body (a length over the limits,
an invalid Opus packet) or a recognizer error ends the response with a
``{"type":"error","reason":...}`` line; a body ending inside a packet ends quietly.
Non-HTTP/2 requests get 400 (``GET /.ok`` is answered over HTTP/1.1 too, for load
balancers). ``close()`` (SIGTERM for ``serve``) finishes open streams: EOS pages, a
``SHUTDOWN_REASON`` error line, END_STREAM.

Flow control: received DATA is acknowledged at once while a stream's queue of complete
packets waiting for its recognizer is under ``stream_max_queued_packets`` and
``stream_max_queued_bytes``; past either, DATA is kept unparsed and unacknowledged, so the
client's window closes and memory per stream stays bounded (queue + window + one packet, the
partial one, which may be larger than the window).

Defences (docs/gateway-sora.md, Security): basic auth, a connection cap, handshake, connection
and stream idle timeouts, per-connection frame budgets (GOAWAY ENHANCE_YOUR_CALM past one), a
bound on bytes queued for a peer that does not read, and an accept loop that backs off at fd
exhaustion. Every refusal is counted in ``SoraServer.refusals.counts`` and logged at most
once per reason per interval.
Everything runs on one event loop; a server object is used from that loop only.
"""

from __future__ import annotations

import asyncio
import http
import logging
import os
import socket
import ssl
import tempfile
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hyperframe.frame

from audiocore._ext.errors import DecodeError, ProtocolError
from audiocore._ext.ogg import OggOpusWriter
from audiocore._ext.opus import opus_packet_samples
from audiocore.gateway._accept import Acceptor, listening_socket
from audiocore.gateway._h2 import (
    PREFACE,
    STREAM_WINDOW,
    FloodLimits,
    FloodMeter,
    H2Protocol,
    malformed_request,
    malformed_trailers,
    wake,
)
from audiocore.gateway._logsafe import clip
from audiocore.gateway._refusals import Refusals
from audiocore.gateway.auth import AuthError, BasicAuth
from audiocore.gateway.config import ConfigError, SoraConfig
from audiocore.gateway.recognizers import (
    RECOGNIZERS,
    AudioChunk,
    DumpRecognizer,
    OggFile,
    OggFileRecognizer,
    Recognizer,
    RecognizerRefused,
    RecognizerStream,
    StreamInfo,
    result_line,
)
from audiocore.protocols import sora

__all__ = ["QUEUE_HIGH", "SHUTDOWN_REASON", "SoraServer", "error_body", "final_status", "server_ssl_context"]

log = logging.getLogger("audiocore.gateway.sora")

#: Default bytes of packets waiting for a stream's recognizer past which DATA is not
#: acknowledged (``stream_max_queued_bytes``).
QUEUE_HIGH = 1 << 16
#: Largest HTTP/1.1 request head read before answering (bytes).
_H1_MAX_HEAD = 1 << 14
#: Seconds a stream whose client went away may take to finish its recognizer's work.
_ABORT_GRACE = 10.0
#: Seconds the accept loop rests when the process is out of file descriptors.
_ACCEPT_BACKOFF = 1.0
#: Bytes each queued packet is charged besides its payload (its header's size).
_PACKET_COST = sora.HEADER_BYTES
#: Bytes of a DATA frame parsed before the queue bound is checked again (at most 204 packets).
_PARSE_SLICE = 4096
_SPEECH_PATHS = ("/speech", "/test", "/dump")
#: HTTP/2 error code CANCEL (RFC 9113 section 7): a stream closed for idling, or cut at
#: shutdown and not finished in time.
_CANCEL = 0x8
#: HTTP/2 error code PROTOCOL_ERROR: a malformed request (a stream error, RFC 9113 section 8.1.1).
_PROTOCOL_ERROR = 0x1
#: Seconds the connections get to flush and close at the very end of a shutdown.
_CLOSE_GRACE = 1.0
#: The reason of the error line ending a response cut at shutdown.
SHUTDOWN_REASON = "SHUTDOWN: the gateway is stopping; the audio after this point was not processed"
_END = object()


def error_body(status: int) -> bytes:
    """The body of an error status, the reference's (its web framework's) shape:
    ``{"message":"<reason phrase>"}`` and a newline, sent as ``application/json``."""
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return sora._line({"message": phrase})


def final_status(status: object) -> int:
    """``status`` if it can end an HTTP/2 response (an int in 200-999), else 500. The
    reference answers a status outside 100-999 with 500 (INVALID-STATUS-CODE); an
    informational 1xx cannot be a final status in HTTP/2 either (RFC 9113 section 8.1), so it
    gets 500 too."""
    if isinstance(status, int) and not isinstance(status, bool) and 200 <= status <= 999:
        return status
    return 500


def _writable_dir(key: str, path: Path) -> bool:
    """Create ``path`` (and its parents) if missing and check a file can be created in it;
    True if it was created. Raises :class:`ConfigError` naming ``key`` and the path."""
    created = not path.is_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".audiocore-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"{key}: {path} cannot be created or written: {exc.strerror or exc}", key) from None
    return created


def server_ssl_context(config: SoraConfig) -> ssl.SSLContext:
    """The TLS context ``config`` asks for: its certificate chain and key, ALPN ``h2`` (and
    ``http/1.1``, answered with 400), TLS 1.2+ with the AEAD suites HTTP/2 requires, and, with
    ``tls_verify_cacert_path`` (a PEM file or a directory of them), client certificates
    required and verified."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20")
    context.load_cert_chain(config.tls_fullchain_file, config.tls_privkey_file)
    context.set_alpn_protocols(["h2", "http/1.1"])
    ca = config.tls_verify_cacert_path
    if ca:
        files = sorted(p for p in Path(ca).iterdir() if p.is_file()) if os.path.isdir(ca) else [Path(ca)]
        for path in files:
            context.load_verify_locations(cafile=str(path))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class SoraServer:
    """The gateway. ``recognizers`` adds or replaces services by name (instances of
    :class:`~audiocore.gateway.recognizers.Recognizer`); the built-in ones are made from
    ``config`` on first use. Use as ``async with``, or ``await start()`` / ``await close()``."""

    def __init__(
        self,
        config: SoraConfig | None = None,
        *,
        recognizers: Mapping[str, Recognizer] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.config = (config or SoraConfig()).checked().require_auth_decision()
        self._recognizers: dict[str, Recognizer] = dict(recognizers or {})
        self._ssl = ssl_context
        self._acceptor: Acceptor | None = None
        self._accepting: set[asyncio.Task[None]] = set()  # TLS handshakes under way
        # accepted sockets not yet gone (handshaking or connected): what max_connections caps;
        # counted by hand since a connection joins `connections` before its handshake task
        # leaves `_accepting` (a done callback runs a loop turn later)
        self._open = 0
        self._stopped: asyncio.Event | None = None
        self._port: int | None = None
        self.connections: set[_Connection] = set()
        self.closing = False
        self._idle = asyncio.Event()
        self.version = _version()
        #: Refusals by reason (``refusals.counts``), each logged at most once per 10 s.
        self.refusals = Refusals(log)
        c = self.config
        self.auth = BasicAuth(c.basic_auth_username, c.basic_auth_password) if c.basic_auth_username else None
        self.flood_limits = FloodLimits(c.http2_flood_window_ms / 1000, c.http2_max_new_streams,
                                        c.http2_max_resets, c.http2_max_control_frames, c.http2_max_empty_frames)
        if self.config.service not in self._recognizers and self.config.service not in RECOGNIZERS:
            raise ValueError(f"unknown service {self.config.service!r}; known: "
                             f"{', '.join(sorted({*RECOGNIZERS, *self._recognizers}))}")

    def recognizer(self, service: str) -> Recognizer:
        """The recognizer serving ``service`` (made on first use)."""
        found = self._recognizers.get(service)
        if found is None:
            found = self._recognizers[service] = RECOGNIZERS[service](self.config)
        return found

    async def start(self) -> None:
        """Bind and listen (``listen_port`` 0: any free port, see :attr:`port`). The
        configured service's recognizer is made first, so a bad setting fails here, and the
        directories files are written to are created (parents too) and checked: one that
        cannot be is a :class:`ConfigError` naming the key and path, before listening."""
        self._prepare_dirs(self.recognizer(self.config.service))
        self._context = None
        if self.config.https:
            self._context = self._ssl or server_ssl_context(self.config)
        sock = listening_socket(self.config.listen_addr, self.config.listen_port)
        self._acceptor = Acceptor(sock, self._accepted, self._exhausted, self._accept_failed, _ACCEPT_BACKOFF)
        self._acceptor.start()
        self._stopped = asyncio.Event()
        self._port = int(sock.getsockname()[1])
        log.info("listening on %s (service %s, %s mode%s)", self.url, self.config.service,
                 "header" if self.config.audio_streaming_header else "raw",
                 ", basic auth" if self.auth else ", NO caller authentication (skip_basic_auth)")

    def _prepare_dirs(self, service: Recognizer) -> None:
        c = self.config
        dirs: dict[Path, str] = {}
        if isinstance(service, OggFileRecognizer):
            dirs[service.directory] = "ogg_dir"
        if c.enable_ogg_file_output:
            dirs[Path(c.ogg_dir)] = "ogg_dir"
        if isinstance(service, DumpRecognizer):
            dirs[service.path.parent] = "dump_file"
        if c.enable_debug_paths or c.service == "dump":
            dump = self._recognizers.get("dump")
            if dump is None or isinstance(dump, DumpRecognizer):
                dirs[Path(c.dump_file).parent] = "dump_file"
        for path, key in dirs.items():
            if _writable_dir(key, path):
                log.info("created %s %s", key, path)

    def _accepted(self, sock: socket.socket) -> None:
        if self._open >= self.config.max_connections:
            self.refusals.refuse("connection cap", f"{self.config.max_connections} connections open")
            sock.close()
            return
        self._open += 1
        task = asyncio.get_running_loop().create_task(self._handshake(sock))
        self._accepting.add(task)
        task.add_done_callback(self._accepting.discard)

    async def _handshake(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(
                lambda: _Connection(self), sock, ssl=self._context,
                ssl_handshake_timeout=self.config.handshake_timeout_ms / 1000 if self._context else None)
        except asyncio.CancelledError:
            self._open -= 1
            sock.close()
            raise
        except Exception as exc:  # noqa: BLE001 - any failed handshake: count it, drop the socket
            self._open -= 1
            self.refusals.refuse("handshake failed", f"{type(exc).__name__}: {exc}", logging.INFO)
            sock.close()

    def _exhausted(self, exc: OSError) -> None:
        self.refusals.refuse("out of file descriptors", f"{exc.strerror}; accepting again in "
                             f"{_ACCEPT_BACKOFF:g} s", logging.ERROR)

    def _accept_failed(self, exc: OSError) -> None:
        self.refusals.refuse("accept failed", str(exc.strerror), logging.INFO)

    @property
    def port(self) -> int:
        """The TCP port listened on."""
        assert self._port is not None, "start() first"
        return self._port

    @property
    def url(self) -> str:
        """``http://host:port`` (``https://`` with TLS): append ``/speech`` etc."""
        host = self.config.listen_addr
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.config.https else 'http'}://{host}:{self.port}"

    async def serve_forever(self) -> None:
        """Run until cancelled or closed."""
        assert self._stopped is not None, "start() first"
        await self._stopped.wait()

    async def close(self, timeout: float | None = None) -> None:
        """Stop listening, send GOAWAY, let open streams finish for ``timeout`` seconds
        (default ``shutdown_timeout_ms``), then cut what is left (:meth:`_cut`) and close the
        recognizers."""
        if self._acceptor is None:
            return
        self.closing = True
        self._acceptor.close()
        for task in list(self._accepting):
            task.cancel()
        for conn in list(self.connections):
            conn.goaway()
        wait = self.config.shutdown_timeout_ms / 1000 if timeout is None else timeout
        if self.connections:
            self._idle.clear()
            try:
                await asyncio.wait_for(self._idle.wait(), wait)
            except TimeoutError:
                pass
        await self._cut(wait)
        for rec in self._recognizers.values():
            await rec.aclose()
        self._acceptor = None
        assert self._stopped is not None
        self._stopped.set()

    async def _cut(self, waited: float) -> None:
        """End every stream still open as if its client had ended the body: its audio is
        finished (an Ogg file gets its EOS page, the recognizer its ``end()``), results still
        come for ``shutdown_finish_timeout_ms``, and the response ends with a
        ``SHUTDOWN_REASON`` error line (END_STREAM, then RST_STREAM NO_ERROR if the client was
        still sending). A stream not finished by then is reset with CANCEL. One log line says
        how many were cut. Then the connections close (aborted after ``_CLOSE_GRACE``)."""
        streams = [s for conn in self.connections for s in conn.streams.values()]
        if streams:
            for stream in streams:
                stream.cut()
            finish = self.config.shutdown_finish_timeout_ms / 1000
            await asyncio.wait([s.task for s in streams], timeout=finish)
            late_streams = [s for s in streams if not s.task.done()]
            for stream in late_streams:
                await stream.cancel(_CANCEL)
            log.warning("shutdown: %d open stream%s cut after %.0f ms (audio ended, Ogg files finished)%s",
                        len(streams), "" if len(streams) == 1 else "s", waited * 1000,
                        f"; {len(late_streams)} not finished in {finish * 1000:.0f} ms, reset (CANCEL)"
                        if late_streams else "")
        for conn in list(self.connections):
            conn.close_transport()
        if self.connections:
            self._idle.clear()
            try:
                await asyncio.wait_for(self._idle.wait(), _CLOSE_GRACE)
            except TimeoutError:
                pass
        for conn in list(self.connections):
            await conn.abort()

    def _gone(self, conn: _Connection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            self._open -= 1
        if not self.connections:
            self._idle.set()

    async def __aenter__(self) -> SoraServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _version() -> str:
    from audiocore import __version__

    return __version__


class _Connection(H2Protocol):
    """One client connection: h2 after the preface (or ALPN h2), else HTTP/1.1 answered 400."""

    def __init__(self, server: SoraServer) -> None:
        super().__init__(client_side=False, validate_inbound_headers=False)  # checked per stream
        self.server = server
        self.config = server.config
        self.mode: str | None = None  # None: sniffing, "h2", "h1"
        self.head = b""
        self.answered = False  # HTTP/1.1: the answer is out, the rest is discarded
        self.streams: dict[int, _Stream] = {}
        self.goaway_sent: int | None = None
        self.peer: Any = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self.max_write_buffer = self.config.max_write_buffer_bytes

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.server.connections.add(self)
        self.peer = transport.get_extra_info("peername")
        if self.server.closing:
            self.transport.abort()  # type: ignore[union-attr]
            return
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            if ssl_object.selected_alpn_protocol() == "h2":
                self._start_h2()
            else:
                self.mode = "h1"
        asyncio.get_running_loop().call_later(self.config.handshake_timeout_ms / 1000, self._check_started)
        self._arm_idle()

    def _check_started(self) -> None:
        if (self.mode is None or (self.mode == "h1" and not self.answered)) and self.transport is not None:
            self.server.refusals.refuse("handshake timeout", str(self.peer), logging.INFO)
            self.transport.close()  # no HTTP/2 preface, nor a whole HTTP/1.1 request head, in time

    def _start_h2(self) -> None:
        self.mode = "h2"
        codes = h2.settings.SettingCodes
        self.start_h2({
            codes.MAX_CONCURRENT_STREAMS: self.config.http2_max_concurrent_streams,
            codes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            codes.MAX_FRAME_SIZE: self.config.http2_max_read_frame_size,
            codes.MAX_HEADER_LIST_SIZE: 1 << 16,
            codes.ENABLE_PUSH: 0,
        })
        self.flood = FloodMeter(self.server.flood_limits, asyncio.get_running_loop().time())
        if self.server.closing:
            self.goaway()

    def data_received(self, data: bytes) -> None:
        if self.mode == "h2":
            self.feed_h2(data)
            return
        if self.mode is None:
            self.head += data
            if self.head[: len(PREFACE)] == PREFACE[: len(self.head)]:
                if len(self.head) < len(PREFACE):
                    return
                self._start_h2()
                data, self.head = self.head, b""
                self.feed_h2(data)
                return
            self.mode = "h1"
            data, self.head = self.head, b""
        self._h1_data(data)

    # ------------------------------------------------------------------ HTTP/1.1: 400

    def _h1_data(self, data: bytes) -> None:
        if self.answered:
            return
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0 and len(self.head) <= _H1_MAX_HEAD:
            return
        request_line = self.head.split(b"\r\n", 1)[0].split(b" ")
        method = request_line[0] if request_line else b""
        target = request_line[1].split(b"?", 1)[0].rstrip(b"/") if len(request_line) == 3 else b""
        if end < 0:
            status = 431
        elif target == b"/.ok" and method in (b"GET", b"HEAD"):
            status = 200
        elif target.decode("latin-1") in _SPEECH_PATHS:
            status = 400  # Sora's audio streaming is HTTP/2 only
            self.server.refusals.refuse("HTTP/1.1 request for a Sora path",
                                        f"{clip(target)} from {self.peer}", logging.INFO)
        elif len(request_line) != 3 or not request_line[2].startswith(b"HTTP/1."):
            status = 400
        else:
            status = 404
        body = self._version_body() if status == 200 else error_body(status)
        self.answered, self.head = True, b""
        head = (f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\ncontent-length: {len(body)}\r\n"
                + ("content-type: application/json\r\n" if body else "")
                + "connection: close\r\n\r\n").encode("ascii")
        assert self.transport is not None
        self.transport.write(head + (body if method != b"HEAD" else b""))
        # Half-close and let the client read the answer before the socket goes: closing with
        # unread input would reset the connection under it.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        asyncio.get_running_loop().call_later(2.0, self.transport.close)

    def _version_body(self) -> bytes:
        return b'{"version":"%s"}\n' % self.server.version.encode("ascii")

    # ------------------------------------------------------------------ h2

    def handle_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            sid, headers = event.stream_id or 0, list(event.headers or [])
            why = malformed_request(headers)
            if why is not None:
                self._malformed(sid, why)
                return
            self._request(sid, headers, event.stream_ended is not None)
        elif isinstance(event, h2.events.TrailersReceived):
            why = malformed_trailers(list(event.headers or []))
            if why is not None:
                self._malformed(event.stream_id or 0, why)
        elif isinstance(event, h2.events.DataReceived):
            sid, flow = event.stream_id or 0, event.flow_controlled_length or 0
            stream = self.streams.get(sid)
            if stream is None:
                self.acknowledge(sid, flow)
            else:
                stream.on_data(event.data or b"", flow)
        elif isinstance(event, h2.events.StreamEnded):
            stream = self.streams.get(event.stream_id or 0)
            if stream is not None:
                stream.on_end()
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.get(event.stream_id or 0)
            if stream is not None:
                stream.on_gone()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.close_transport()

    def _malformed(self, sid: int, why: str) -> None:
        """A malformed request or trailers: RST_STREAM PROTOCOL_ERROR on that stream only
        (RFC 9113 section 8.1.1); the connection's other streams go on."""
        self.server.refusals.refuse("malformed request", f"stream {sid} of {self.peer}: {why}", logging.INFO)
        self.reset_stream(sid, _PROTOCOL_ERROR)
        stream = self.streams.get(sid)
        if stream is not None:
            stream.on_gone()

    def _request(self, sid: int, headers: list[tuple[bytes, bytes]], ended: bool) -> None:
        if sid in self.reset_in_batch:
            return  # opened and reset in one read: nothing to answer, nothing to set up
        if self.goaway_sent is not None and sid > self.goaway_sent:
            self.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        pseudo = {name: value for name, value in headers if name.startswith(b":")}
        method = pseudo.get(b":method", b"")
        path = pseudo.get(b":path", b"").split(b"?", 1)[0].decode("latin-1")
        if path != "/":
            path = path.rstrip("/")
        if path == "/.ok":
            if method in (b"GET", b"HEAD"):
                body = self._version_body()
                self.respond(sid, 200, b"" if method == b"HEAD" else body, ended, length=len(body))
            else:
                self.refuse(sid, 405, method, ended, extra=[("allow", "GET, HEAD")])
            return
        refusals = self.server.refusals
        auth = self.server.auth
        if auth is not None:
            given = next((value for name, value in headers if name.lower() == b"authorization"), None)
            try:
                auth.check(given.decode("latin-1") if given is not None else None)
            except AuthError as exc:
                refusals.refuse("unauthenticated", f"{exc.reason} from {self.peer}", logging.INFO)
                self.refuse(sid, 401, method, ended, extra=[("www-authenticate", exc.challenge)])
                return
        if path not in _SPEECH_PATHS or not self._path_enabled(path):
            if path in _SPEECH_PATHS:
                refusals.refuse("debug path not enabled", path, logging.INFO)
            self.refuse(sid, 404, method, ended)
            return
        if method != b"POST":
            self.refuse(sid, 405, method, ended, extra=[("allow", "POST")])
            return
        names = [name.lower() for name, value in headers if value.strip()]
        if b"sora-audio-streaming-language-code" not in names:
            refusals.refuse("MISSING-SORA-AUDIO-STREAMING-LANGUAGE-CODE", f"stream {sid} of {self.peer}",
                            logging.INFO)
            self.refuse(sid, 500, method, ended)  # the client's fault, answered as the reference does
            return
        try:
            info_headers = sora.parse_headers(headers)
        except ProtocolError as exc:
            refusals.refuse("bad sora header", clip(str(exc)), logging.INFO)
            self.refuse(sid, 400, method, ended)
            return
        service = self.config.service if path == "/speech" else path[1:]
        stream = _Stream(self, sid, path, service, info_headers)
        self.streams[sid] = stream
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if ended:
            stream.on_end()

    def _path_enabled(self, path: str) -> bool:
        """``/speech`` always; ``/test`` and ``/dump`` when they are the service, or with
        ``enable_debug_paths``."""
        return path == "/speech" or self.config.enable_debug_paths or path[1:] == self.config.service

    def refuse(self, sid: int, status: int, method: bytes, request_ended: bool,
               extra: list[tuple[str, str]] | None = None) -> None:
        """An error status with the reference's JSON body (:func:`error_body`; none for HEAD)."""
        body = error_body(status)
        self.respond(sid, status, b"" if method == b"HEAD" else body, request_ended, len(body), extra)

    def respond(self, sid: int, status: int, body: bytes, request_ended: bool, length: int | None = None,
                extra: list[tuple[str, str]] | None = None) -> None:
        """A complete response (a bare status when ``body`` is empty); then RST_STREAM
        NO_ERROR if the request is still being sent, so the client stops. A status h2 will
        not send (never one of ours: see :func:`final_status`) resets the stream with
        INTERNAL_ERROR rather than leave it unanswered."""
        headers = [(":status", str(status)), ("content-length", str(len(body) if length is None else length))]
        headers += extra or []
        if body:
            headers.append(("content-type", "application/json"))
        try:
            self.conn.send_headers(sid, headers, end_stream=not body)
            if body:
                self.conn.send_data(sid, body, end_stream=True)
        except h2.exceptions.StreamClosedError:
            return
        except h2.exceptions.ProtocolError as exc:  # the stream's state forbids it
            log.debug("stream %d: cannot answer %r: %s", sid, status, exc)
            self.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
            return
        if not request_ended:
            self.reset_stream(sid, 0)
        self.flush()

    def goaway_received(self, last_stream_id: int) -> None:
        if not self.streams:
            self.close_transport()

    def calm_down(self, budget: str) -> None:
        self.server.refusals.refuse(f"http2 flood ({budget})", f"GOAWAY ENHANCE_YOUR_CALM to {self.peer}")
        super().calm_down(budget)

    def write_overflow(self) -> None:
        self.server.refusals.refuse("peer not reading", f"over {self.max_write_buffer} bytes queued for {self.peer}")
        super().write_overflow()

    def stream_done(self, stream: _Stream) -> None:
        self.streams.pop(stream.sid, None)
        if not self.streams:
            if self.goaway_sent is not None or self.peer_goaway is not None:
                self.close_transport()
            else:
                self._arm_idle()

    def goaway(self) -> None:
        """Announce shutdown: streams opened so far finish, newer ones are refused; the
        connection closes when the last stream is done. (Written as a raw frame: h2 would
        refuse all input after its own GOAWAY.)"""
        if self.goaway_sent is not None or self.transport is None or self.write_closed:
            return
        if self.mode != "h2":
            self.transport.close()
            return
        self.goaway_sent = self.conn.highest_inbound_stream_id
        self.flush_now()
        frame = hyperframe.frame.GoAwayFrame(0)
        frame.last_stream_id = self.goaway_sent
        frame.error_code = 0
        self.transport.write(frame.serialize())
        if not self.streams:
            self.transport.close()

    async def abort(self) -> None:
        """Cut every stream and the connection."""
        for stream in list(self.streams.values()):
            await stream.cancel()
        if self.transport is not None:
            self.transport.abort()

    def _arm_idle(self) -> None:
        idle = self.config.http2_idle_timeout
        if idle and self._idle_timer is None:
            self._idle_timer = asyncio.get_running_loop().call_later(idle, self._on_idle)

    def _on_idle(self) -> None:
        self._idle_timer = None
        if not self.streams:
            self.server.refusals.refuse("idle connection", str(self.peer), logging.INFO)
            self.goaway()
            self.close_transport()

    def closed(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        for stream in list(self.streams.values()):
            stream.on_gone()
        self.server._gone(self)


class _Stream:
    """One ``POST /speech|/test|/dump`` exchange: packets in, result lines out."""

    def __init__(self, conn: _Connection, sid: int, path: str, service: str, headers: sora.StreamHeaders) -> None:
        config = conn.config
        self.conn = conn
        self.sid = sid
        self.loop = asyncio.get_running_loop()
        self.recognizer = conn.server.recognizer(service)
        self.info = StreamInfo(path, headers, config.audio_sample_rate, config.audio_channel_count,
                               conn.peer, config)
        self.parser = sora.BodyParser(config.audio_streaming_header, config.max_payload_length)
        self.inbox: deque[object] = deque()
        self.max_packets = config.stream_max_queued_packets
        self.max_bytes = config.stream_max_queued_bytes
        self.queued_packets = 0  # client packets in the inbox
        self.queued = 0  # bytes charged for them: payload + _PACKET_COST each
        # DATA (and its flow length) held unparsed while the queue is full
        self.backlog: deque[tuple[bytes | memoryview, int]] = deque()
        self.deferred = 0  # flow-controlled bytes parsed and not yet acknowledged
        self._input_ending = False  # END_STREAM came while DATA waited in the backlog
        self.client_ended = False  # END_STREAM received
        self.request_done = False  # END_STREAM, reset, or a body error: no more packets
        self.gone = False  # the client cannot receive any more
        self.error: str | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._abort_timer: asyncio.TimerHandle | None = None
        self._wait = config.wait_ms / 1000
        self._last = self.loop.time()
        self._timer = None if config.disable_silent_packet else self.loop.call_at(self._last + self._wait, self._tick)
        self._idle_after = config.stream_idle_timeout_ms / 1000
        self._active = self._last  # last DATA from the client, packet taken or result sent
        self._idle_timer = self.loop.call_later(self._idle_after, self._check_idle) if self._idle_after else None
        self.task = self.loop.create_task(self.run(), name=f"sora stream {sid}")

    # ------------------------------------------------------------------ input side

    def _push(self, item: object) -> None:
        self.inbox.append(item)
        waiter, self._waiter = self._waiter, None
        wake(waiter)

    def _full(self) -> bool:
        return self.queued_packets >= self.max_packets or self.queued >= self.max_bytes

    def on_data(self, data: bytes, flow: int) -> None:
        if self.request_done:
            self.conn.acknowledge(self.sid, flow)
            return
        if data:
            self._active = self.loop.time()
        if self.backlog or self._full():  # parsed (and acknowledged) when the queue drains
            self.backlog.append((data, flow))
            return
        self._take(data, flow)
        if not self._full() and self.deferred:
            self.conn.acknowledge(self.sid, self.deferred)
            self.deferred = 0

    def _take(self, data: bytes | memoryview, flow: int) -> None:
        """Parse ``data`` into the inbox, in header mode ``_PARSE_SLICE`` bytes at a time: once
        the queue is full the rest goes back to the front of the backlog (so one large DATA
        frame of tiny packets cannot overfill it). Its flow length joins ``deferred``."""
        self.deferred += flow
        view = memoryview(data)
        step = _PARSE_SLICE if self.parser.header_mode else max(1, len(view))  # raw mode: a frame is a packet
        pos, error = 0, None
        while pos < len(view) and error is None:
            piece = view[pos : pos + step]
            pos += len(piece)
            try:
                packets = self.parser.feed(piece)
            except sora.BodyError as exc:
                packets, error = exc.packets, exc  # the good packets before the fault still count
            if packets:
                now = int(time.time() * 1000)
                for p in packets:
                    self.queued += len(p.payload) + _PACKET_COST
                    self.queued_packets += 1
                    self._push(AudioChunk(p.payload, b"", False, p.timestamp_us, p.sequence, now))
                self._last = self.loop.time()
            if error is None and pos < len(view) and self._full():
                self.backlog.appendleft((view[pos:], 0))
                return
        if error is not None:
            for _, held in self.backlog:  # nothing more is parsed: give the window back
                self.deferred += held
            self.backlog.clear()
            self.conn.acknowledge(self.sid, self.deferred)
            self.deferred = 0
            self._fail(f"PAYLOAD-TOO-LARGE: {error}" if error.field == "length" else str(error))

    def _release(self) -> None:
        """The queue drained: parse held DATA while there is room, then acknowledge."""
        while self.backlog and not self._full() and not self.request_done:
            self._take(*self.backlog.popleft())
        if self._input_ending and not self.backlog:
            self._input_ending = False
            self._end_input()
        if self.deferred and not self._full():
            self.conn.acknowledge(self.sid, self.deferred)
            self.deferred = 0

    def on_end(self) -> None:
        self.client_ended = True
        if self.backlog:
            self._input_ending = True  # after the held DATA
            return
        self._end_input()

    def _end_input(self) -> None:
        if not self.request_done:
            self.request_done = True
            if self.parser.pending:  # the reference ends quietly: so do we, counting it
                self.conn.server.refusals.refuse(
                    "body ended inside a packet", f"stream {self.sid} of {self.conn.peer}: "
                    f"{self.parser.pending} bytes left over, dropped", logging.INFO)
            self._push(_END)

    def on_gone(self) -> None:
        """The client reset the stream or the connection went away: the audio so far is
        finished normally (an Ogg file gets its EOS page), results are dropped."""
        if self.gone:
            return
        self.gone = True
        held = sum(flow for _, flow in self.backlog)  # dropped unparsed: the connection window comes back
        self.backlog.clear()
        self.conn.acknowledge(self.sid, held)
        if not self.request_done:
            self.request_done = True
            self._push(_END)
        self._abort_timer = self.loop.call_later(_ABORT_GRACE, self.task.cancel)

    def cut(self) -> None:
        """Shutdown: the audio ends here as if the client had ended its body (an Ogg file gets
        its EOS page, the recognizer its ``end()``); DATA held unparsed is dropped and a packet
        being reassembled is abandoned. If the client was still sending, the response ends
        with a ``SHUTDOWN_REASON`` error line."""
        if self.request_done:
            return
        held = sum(flow for _, flow in self.backlog)
        self.backlog.clear()
        self._input_ending = False
        self.conn.acknowledge(self.sid, held)
        self.error = self.error or SHUTDOWN_REASON
        self.request_done = True
        self._push(_END)

    def _fail(self, reason: str) -> None:
        self.error = reason
        self.request_done = True
        self._push(_END)

    def _tick(self) -> None:
        """The silence filler: a packet when none arrived for ``time_to_wait_for_opus_packet_ms``
        (one timer per wait period, not per packet). Not while the gateway itself holds the
        client back (packets queued, acknowledgements deferred)."""
        if self.request_done:
            self._timer = None
            return
        now = self.loop.time()
        due = self._last + self._wait
        if now >= due - 0.0005:
            if not self.inbox and not self.deferred and not self.backlog:
                self._push(AudioChunk(sora.SILENCE_PACKET, b"", True, None, None, int(time.time() * 1000)))
            self._last = now
            due = now + self._wait
        self._timer = self.loop.call_at(due, self._tick)

    async def _next(self) -> object:
        while not self.inbox:
            self._waiter = self.loop.create_future()
            await self._waiter
        item = self.inbox.popleft()
        if isinstance(item, AudioChunk) and not item.filler:
            self.queued -= len(item.packet) + _PACKET_COST
            self.queued_packets -= 1
            self._active = self.loop.time()
            if ((self.deferred or self.backlog) and self.queued_packets <= self.max_packets // 4
                    and self.queued <= self.max_bytes // 4):
                self._release()
        return item

    def _check_idle(self) -> None:
        """``stream_idle_timeout_ms`` with no DATA from the client and no progress (a packet
        taken by the recognizer, a result sent): the stream is reset (CANCEL) and finished as
        if the client had gone."""
        self._idle_timer = None
        if self.gone:
            return
        left = self._active + self._idle_after - self.loop.time()
        if left > 0:
            self._idle_timer = self.loop.call_later(left, self._check_idle)
            return
        self.conn.server.refusals.refuse("idle stream", f"stream {self.sid} of {self.conn.peer}", logging.INFO)
        self.conn.reset_stream(self.sid, _CANCEL)
        self.on_gone()

    # ------------------------------------------------------------------ the exchange

    async def run(self) -> None:
        rs: RecognizerStream | None = None
        try:
            refusals = self.conn.server.refusals
            name = self.recognizer.name or type(self.recognizer).__name__
            try:
                rs = await self.recognizer.open(self.info)
            except RecognizerRefused as exc:
                status = final_status(exc.status)
                if status != exc.status:
                    refusals.refuse("INVALID-STATUS-CODE", f"{name} refused with status {exc.status!r}: "
                                    "answered 500", logging.ERROR)
                refusals.refuse(f"{name} refused ({status})", clip(str(exc), 200),
                                logging.WARNING if status >= 500 else logging.INFO)
                self._bare(status)  # bare, as the reference answers its services' refusals
                return
            except Exception as exc:  # noqa: BLE001 - any failure of a recognizer: 500, the gateway goes on
                refusals.refuse(f"{name} failed to open", f"{type(exc).__name__}: {clip(str(exc), 200)}",
                                logging.ERROR)
                log.debug("stream %d: opening %s failed", self.sid, name, exc_info=True)
                if not self.gone:
                    self.conn.refuse(self.sid, 500, b"POST", self.client_ended)
                self.request_done = True
                return
            if self.gone:
                return
            try:
                self.conn.conn.send_headers(self.sid, [(":status", "200"), ("content-type", "application/json")])
            except (h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError):
                return  # the stream went away meanwhile
            self.conn.flush()
            await self._exchange(rs)
        except asyncio.CancelledError:
            pass
        except ConnectionResetError:
            pass
        finally:
            for timer in (self._timer, self._abort_timer, self._idle_timer):
                if timer is not None:
                    timer.cancel()
            if rs is not None:
                try:
                    await rs.aclose()
                except Exception:
                    log.exception("stream %d: closing the recognizer failed", self.sid)
            for _, held in self.backlog:
                self.deferred += held
            self.backlog.clear()
            if self.deferred:
                self.conn.acknowledge(self.sid, self.deferred)
                self.deferred = 0
            self.conn.stream_done(self)

    def _bare(self, status: int) -> None:
        if not self.gone:
            self.conn.respond(self.sid, status, b"", self.client_ended)
        self.request_done = True

    async def _exchange(self, rs: RecognizerStream) -> None:
        feeder = self.loop.create_task(self._feed(rs))
        pump = self.loop.create_task(self._pump(rs))
        pending = {feeder, pump}
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task.cancelled():  # one we cancelled below
                        continue
                    exc = task.exception()
                    if exc is not None and not isinstance(exc, ConnectionResetError):
                        log.warning("stream %d: %s: %s", self.sid, self.recognizer.name, clip(str(exc), 200))
                        self.error = self.error or f"{type(exc).__name__}: {exc}"
                        for other in pending:
                            other.cancel()
                if pump in done and feeder in pending:
                    feeder.cancel()  # nobody reads results any more
        finally:
            for task in (feeder, pump):
                task.cancel()
            await asyncio.gather(feeder, pump, return_exceptions=True)
        if self.gone:
            return
        if self.error:
            await self.conn.send_data(self.sid, sora.error_result(self.error))
        self.conn.end_stream(self.sid)
        if not self.client_ended:
            self.conn.reset_stream(self.sid, 0)  # a complete response: the client may stop sending
            self.request_done = True

    async def _feed(self, rs: RecognizerStream) -> None:
        config = self.conn.config
        tee = None
        if config.enable_ogg_file_output and self.recognizer.name != "ogg":
            tee = OggFile(config.ogg_dir, self.info.headers.session_id, self.info.headers.connection_id)
        paging = self.recognizer.wants_ogg or tee is not None
        writer = OggOpusWriter(self.info.channels, input_rate=self.info.sample_rate, pre_skip=3840)
        started = finished = False
        try:
            while (item := await self._next()) is not _END:
                assert isinstance(item, AudioChunk)
                ogg = b""
                if paging:
                    try:
                        ogg = writer.write(item.packet) if started else _first_pages(writer, item.packet)
                    except DecodeError as exc:
                        self._fail(f"INVALID-OPUS-PACKET: {exc}")
                        break
                    started = True
                    if tee is not None:
                        tee.write(ogg)
                    if not self.recognizer.wants_ogg:
                        ogg = b""
                await rs.send(AudioChunk(item.packet, ogg, item.filler, item.timestamp_us, item.sequence,
                                         item.received_ms) if ogg else item)
            tail = writer.close() if started else b""
            finished = True
            if tee is not None:
                tee.write(tail)
            await rs.end(tail if self.recognizer.wants_ogg else b"")
        finally:
            if tee is not None:
                if started and not finished:  # cancelled while the recognizer was busy: EOS all the same
                    tee.write(writer.close())
                tee.close()

    async def _pump(self, rs: RecognizerStream) -> None:
        async for result in rs.results():
            line = result_line(result)
            if not self.gone:
                try:
                    await self.conn.send_data(self.sid, line)
                except ConnectionResetError:
                    self.gone = True
                self._active = self.loop.time()

    async def cancel(self, code: int | None = None) -> None:
        """Stop the stream now (RST_STREAM ``code`` first, if given)."""
        if code is not None and not self.gone:
            self.conn.reset_stream(self.sid, code)
        self.gone = True
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def _first_pages(writer: OggOpusWriter, packet: bytes) -> bytes:
    """OpusHead and OpusTags pages, then the first packet's page. The packet is checked first
    so a bad one leaves the writer untouched."""
    opus_packet_samples(packet)
    return writer.headers() + writer.write(packet)
