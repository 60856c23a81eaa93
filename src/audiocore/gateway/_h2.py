"""HTTP/2 plumbing shared by the Sora gateway and its client: an asyncio protocol around an
``h2`` connection that sends with flow control and transport back-pressure.

Reading is pushed to the subclass as h2 events (:meth:`H2Protocol.handle_event`); writing goes
through :meth:`H2Protocol.send_data`, which waits for the peer's window and for the transport
to drain, so a peer that stops reading makes the sender wait rather than buffer without
bound. Not thread-safe: everything runs on the event loop that owns the transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

#: The client connection preface (RFC 9113 section 3.4).
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: Flow-control window we grant each stream (bytes); the connection gets ``CONNECTION_WINDOW``.
STREAM_WINDOW = 1 << 18
CONNECTION_WINDOW = 1 << 24
#: Seconds a connection closed for a flood keeps reading (and discarding) before it is cut.
LINGER_S = 1.0


@dataclass(frozen=True, slots=True)
class FloodLimits:
    """Per-connection budgets of frames that are cheap to send and costly to handle, each per
    ``window_s`` (a fixed window, restarted when it has passed): ``streams`` new streams
    (HEADERS of a stream id above every earlier one), ``resets`` RST_STREAM, ``control`` PING,
    SETTINGS, PRIORITY and frames of unknown type, ``empty`` DATA frames with no payload and
    no END_STREAM."""

    window_s: float
    streams: int
    resets: int
    control: int
    empty: int


class FloodMeter:
    """Counts one connection's frames against :class:`FloodLimits`. :meth:`frame` sees each
    frame header before ``h2`` parses the frame and names the budget the frame exceeds."""

    __slots__ = ("limits", "counts", "started", "highest_stream")

    def __init__(self, limits: FloodLimits, now: float) -> None:
        self.limits = limits
        self.counts = {"streams": 0, "resets": 0, "control": 0, "empty": 0}
        self.started = now
        self.highest_stream = 0

    def tick(self, now: float) -> None:
        """Start a new window if the current one has passed."""
        if now - self.started >= self.limits.window_s:
            self.started = now
            for name in self.counts:
                self.counts[name] = 0

    def frame(self, kind: int, flags: int, length: int, stream_id: int) -> str | None:
        """Count a frame; the name of the budget it exceeds, or None."""
        if kind == 0:  # DATA
            if length or flags & 0x1:
                return None
            name = "empty"
        elif kind == 1:  # HEADERS: a new stream, or trailers
            if stream_id <= self.highest_stream:
                return None
            self.highest_stream = stream_id
            name = "streams"
        elif kind == 3:
            name = "resets"
        elif kind in (2, 4, 6) or kind > 9:  # PRIORITY, SETTINGS, PING, unknown
            name = "control"
        else:  # PUSH_PROMISE, GOAWAY, WINDOW_UPDATE, CONTINUATION: h2 bounds or rejects them
            return None
        count = self.counts[name] + 1
        self.counts[name] = count
        return name if count > getattr(self.limits, name) else None


#: Connection-specific header fields (RFC 9113 section 8.2.2): a request carrying one is malformed.
_CONNECTION_FIELDS = frozenset((b"connection", b"proxy-connection", b"keep-alive", b"transfer-encoding", b"upgrade"))
_REQUEST_PSEUDO = frozenset((b":method", b":scheme", b":authority", b":path", b":protocol"))
#: Bytes a field name may not contain (RFC 9113 section 8.2.1): controls, space, upper case, 0x7f-0xff.
_BAD_NAME = bytes(range(0x21)) + bytes(range(0x41, 0x5B)) + bytes(range(0x7F, 0x100))


def _malformed_value(value: bytes) -> str | None:
    if b"\0" in value or b"\r" in value or b"\n" in value:
        return "NUL, CR or LF in a field value"
    if value[:1] in (b" ", b"\t") or value[-1:] in (b" ", b"\t"):
        return "whitespace around a field value"
    return None


def _malformed_field(name: bytes, value: bytes) -> str | None:
    """Why one field line breaks RFC 9113 section 8.2.1/8.2.2 (None: it does not)."""
    if not name:
        return "empty field name"
    if len(name.translate(None, _BAD_NAME)) != len(name) or name.find(b":", 1) >= 0:
        return "invalid character in a field name (upper case, space, control or colon)"
    why = _malformed_value(value)
    if why is not None:
        return why
    if name in _CONNECTION_FIELDS:
        return "connection-specific field " + name.decode("ascii")
    if name == b"te" and value.lower() != b"trailers":
        return "te other than trailers"
    return None


def malformed_request(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """Why a request header block is malformed (RFC 9113 sections 8.2.1, 8.2.2 and 8.3.1: field
    characters, connection-specific fields, pseudo-header fields first, known, once each,
    ``:method``, ``:scheme`` and a non-empty ``:path`` present except for CONNECT, ``:authority``
    or ``host`` present and equal): a stream error (section 8.1.1). None when well formed. The
    checks h2's own ``validate_inbound_headers`` makes, without ending the connection."""
    pseudo: dict[bytes, bytes] = {}
    regular_seen = False
    hosts = []
    for name, value in headers:
        if name[:1] == b":":
            if regular_seen:
                return "pseudo-header field after a regular field"
            if name not in _REQUEST_PSEUDO:
                return "unknown or response pseudo-header field"
            if name in pseudo:
                return "pseudo-header field given twice"
            pseudo[name] = value
            why = _malformed_value(value)
            if why is not None:
                return why
            continue
        regular_seen = True
        why = _malformed_field(name, value)
        if why is not None:
            return why
        if name == b"host":
            hosts.append(value)
    method = pseudo.get(b":method")
    if method is None:
        return "no :method"
    connect = method == b"CONNECT"
    if connect and b":protocol" not in pseudo:
        if b":scheme" in pseudo or b":path" in pseudo:
            return "CONNECT with :scheme or :path"
    else:
        if b":scheme" not in pseudo or b":path" not in pseudo:
            return "no :scheme or :path"
        if not pseudo[b":path"]:
            return "empty :path"
        if not connect and b":protocol" in pseudo:
            return ":protocol outside CONNECT"
    if len(hosts) > 1:
        return "host given twice"
    authority = pseudo.get(b":authority")
    if authority is None and not hosts:
        return "neither :authority nor host"
    if authority is not None and hosts and hosts[0] != authority:
        return ":authority and host differ"
    return None


def malformed_trailers(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """Why a trailer block is malformed (no pseudo-header fields, RFC 9113 section 8.1; the
    field rules of section 8.2); None when well formed."""
    for name, value in headers:
        if name[:1] == b":":
            return "pseudo-header field in trailers"
        why = _malformed_field(name, value)
        if why is not None:
            return why
    return None


def wake(waiter: asyncio.Future[Any] | None, exc: BaseException | None = None) -> None:
    """Complete a one-shot waiter if it is still pending: with None, or with ``exc`` (marked
    retrieved, since nobody may be waiting on it any more)."""
    if waiter is None or waiter.done():
        return
    if exc is None:
        waiter.set_result(None)
    else:
        waiter.set_exception(exc)
        waiter.exception()


class H2Protocol(asyncio.Protocol):
    """Owns one ``h2`` connection on one transport. Subclasses implement
    :meth:`handle_event` and may override :meth:`closed`."""

    def __init__(self, client_side: bool, validate_inbound_headers: bool = True) -> None:
        """``validate_inbound_headers=False``: h2 passes received header blocks unchecked (it
        would end the whole connection over one malformed request); the subclass checks them
        with :func:`malformed_request` / :func:`malformed_trailers` and resets just that stream."""
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=client_side, header_encoding=None,
                                      validate_inbound_headers=validate_inbound_headers)
        )
        self.transport: asyncio.Transport | None = None
        self.is_lost = False
        self._writable: asyncio.Future[None] | None = None
        self._windows: dict[int, asyncio.Future[None]] = {}
        self._flush_pending = False
        # GOAWAY filter state (see _filter_goaway)
        self._skip = 0 if client_side else len(PREFACE)
        self._hdr = b""
        self._remaining = 0
        self._goaway: bytearray | None = None
        self._goaway_need = 0
        #: The peer's graceful GOAWAY: the last stream id it will process (None: none yet).
        self.peer_goaway: int | None = None
        #: Frame budgets (server side; None: not counted) and the one exceeded, if any.
        self.flood: FloodMeter | None = None
        self.flooded: str | None = None
        #: Bytes queued on the transport past which the peer is cut off (0: no bound).
        self.max_write_buffer = 0
        #: Our side is half-closed (lingering after a flood): nothing more is written.
        self.write_closed = False
        #: Stream ids reset by the peer in the read being dispatched.
        self.reset_in_batch: set[int | None] = set()

    # ------------------------------------------------------------------ set-up

    def start_h2(self, settings: dict[h2.settings.SettingCodes, int], connection_window: int = CONNECTION_WINDOW) -> None:
        """Send our preface/SETTINGS with ``settings`` and open the connection window."""
        self.conn.local_settings = h2.settings.Settings(
            client=self.conn.config.client_side, initial_values=settings
        )
        self.conn.max_inbound_frame_size = self.conn.local_settings.max_frame_size
        self.conn.initiate_connection()
        extra = connection_window - 65535
        if extra > 0:
            self.conn.increment_flow_control_window(extra)
        self.flush()

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, though not always an asyncio.Transport subclass (uvloop's are not)
        self.transport = cast(asyncio.Transport, transport)

    def feed_h2(self, data: bytes) -> None:
        """Hand received bytes to h2 and dispatch the events; a protocol violation ends the
        connection with GOAWAY; a frame over a flood budget ends it with GOAWAY
        ENHANCE_YOUR_CALM, the frames before it handled as usual, none after it parsed."""
        if self.flooded is not None:
            return
        if self.flood is not None:
            self.flood.tick(asyncio.get_running_loop().time())
        data = self._filter_goaway(data)
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.protocol_error(exc)
            return
        if self.flooded is not None:
            self._dispatch(events)
            self.calm_down(self.flooded)
            return
        self._dispatch(events)

    def _dispatch(self, events: list[h2.events.Event]) -> None:
        # Streams the peer opened and reset within this read (rapid reset): subclasses may
        # skip setting them up at all.
        self.reset_in_batch = {e.stream_id for e in events if isinstance(e, h2.events.StreamReset)}
        for event in events:
            if isinstance(event, h2.events.WindowUpdated):
                self._wake_window(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                self._wake_window(event.stream_id, ConnectionResetError("stream reset by peer"))
            elif isinstance(event, h2.events.RemoteSettingsChanged):
                self._wake_window(0)
            self.handle_event(event)
        self.flush()

    def _filter_goaway(self, data: bytes) -> bytes:
        """``data`` less any GOAWAY frame with NO_ERROR, which goes to :meth:`goaway_received`.

        h2 closes its state machine on any GOAWAY and then refuses every later frame, where
        RFC 9113 section 6.8 has streams up to the last stream id finish normally: a graceful
        GOAWAY is therefore handled here and never shown to h2 (other GOAWAYs pass through).
        Tracks frame boundaries only; payloads pass through untouched, and a read from which
        nothing is dropped or held (the usual case) is returned as is, uncopied."""
        out: list[bytes | memoryview] = []
        view = memoryview(data)
        i, n = 0, len(data)
        intact = not self._hdr and self._goaway is None  # nothing held from the last read
        if self._skip:
            take = min(self._skip, n)
            out.append(view[:take])
            self._skip -= take
            i = take
        while i < n:
            if self._remaining:
                take = min(self._remaining, n - i)
                out.append(view[i : i + take])
                self._remaining -= take
                i += take
            elif self._goaway is not None:
                take = min(self._goaway_need, n - i)
                self._goaway += view[i : i + take]
                self._goaway_need -= take
                i += take
                if not self._goaway_need:
                    frame, self._goaway = bytes(self._goaway), None
                    if int.from_bytes(frame[13:17], "big") == 0:
                        self.peer_goaway = int.from_bytes(frame[9:13], "big") & 0x7FFFFFFF
                        self.goaway_received(self.peer_goaway)
                    else:
                        out.append(frame)
            else:
                take = min(9 - len(self._hdr), n - i)
                self._hdr += view[i : i + take]
                i += take
                if len(self._hdr) < 9:
                    intact = False  # held for the next read
                    break
                length, kind = int.from_bytes(self._hdr[:3], "big"), self._hdr[3]
                if self.flood is not None:
                    sid = int.from_bytes(self._hdr[5:9], "big") & 0x7FFFFFFF
                    over = self.flood.frame(kind, self._hdr[4], length, sid)
                    if over is not None:  # stop before this frame: h2 never sees it
                        self.flooded = over
                        self._hdr = b""
                        intact = False
                        break
                if kind == 7 and length >= 8:
                    intact = False
                    self._goaway, self._goaway_need = bytearray(self._hdr), length
                else:
                    out.append(self._hdr)
                    self._remaining = length
                self._hdr = b""
        return data if intact else b"".join(out)

    def goaway_received(self, last_stream_id: int) -> None:
        """The peer sent a graceful GOAWAY (override)."""

    def calm_down(self, budget: str) -> None:
        """A flood budget was exceeded: GOAWAY ENHANCE_YOUR_CALM and close (override to count
        it; call this)."""
        try:
            self.conn.close_connection(error_code=h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
        except h2.exceptions.ProtocolError:
            pass
        self.flush_now()
        transport = self.transport
        if transport is None:
            return
        # Lingering close: closing with the flood still arriving would reset the connection
        # and could destroy the GOAWAY before the peer reads it. Half-close, discard what
        # comes (feed_h2 ignores it from now on) for LINGER_S, then cut.
        self.write_closed = True
        if transport.can_write_eof():
            transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER_S, transport.abort)

    def protocol_error(self, exc: Exception) -> None:
        code = getattr(exc, "error_code", None) or h2.errors.ErrorCodes.PROTOCOL_ERROR
        try:
            self.conn.close_connection(error_code=code)
            self.flush_now()
        except h2.exceptions.ProtocolError:
            pass
        self.close_transport()

    def handle_event(self, event: h2.events.Event) -> None:
        """One h2 event (override)."""

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        waiter, self._writable = self._writable, None
        wake(waiter)

    def connection_lost(self, exc: Exception | None) -> None:
        self.is_lost = True
        lost = exc or ConnectionResetError("connection closed")
        for stream_id in list(self._windows):
            self._wake_window(stream_id, lost)
        waiter, self._writable = self._writable, None
        wake(waiter, ConnectionResetError("connection closed"))
        self.closed()

    def closed(self) -> None:
        """The transport is gone (override)."""

    # ------------------------------------------------------------------ sending

    def flush(self) -> None:
        """Write what h2 has queued, once per event-loop iteration: every frame produced in
        one iteration (result lines of many streams, window updates) goes out in one write,
        at the end of that iteration."""
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self.flush_now)

    def close_transport(self) -> None:
        """Write what is queued, then close the transport."""
        if self.transport is not None:
            self.flush_now()
            self.transport.close()

    def flush_now(self) -> None:
        """Write what h2 has queued, now."""
        self._flush_pending = False
        data = self.conn.data_to_send()
        transport = self.transport
        if data and transport is not None and not transport.is_closing() and not self.write_closed:
            transport.write(data)
            if self.max_write_buffer and transport.get_write_buffer_size() > self.max_write_buffer:
                self.write_overflow()

    def write_overflow(self) -> None:
        """More than ``max_write_buffer`` bytes wait for a peer that does not read (control
        frame replies, window updates): drop the connection (override to count it; call this)."""
        if self.transport is not None:
            self.transport.abort()

    def _wake_window(self, stream_id: int, exc: BaseException | None = None) -> None:
        targets: Sequence[int] = list(self._windows) if stream_id == 0 else [stream_id]
        for sid in targets:
            wake(self._windows.pop(sid, None), exc)

    async def drain(self) -> None:
        """Wait while the transport's write buffer is over its high-water mark."""
        if self.is_lost:
            raise ConnectionResetError("connection closed")
        if self._writable is not None:
            await asyncio.shield(self._writable)

    async def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Send ``data`` on a stream: one DATA frame when it fits the peer's frame size and
        window, more otherwise, waiting for window updates as needed. Raises
        ``ConnectionResetError`` when the stream or connection goes away first."""
        pos, n = 0, len(data)
        while True:
            if self.is_lost:
                raise ConnectionResetError("connection closed")
            try:
                window = self.conn.local_flow_control_window(stream_id)
            except h2.exceptions.ProtocolError:  # the stream, or the whole connection, is closed
                raise ConnectionResetError("stream closed") from None
            await self.drain()  # before writing: a paused transport takes no more
            if n - pos and window <= 0:
                waiter = self._windows.get(stream_id)
                if waiter is None:
                    waiter = self._windows[stream_id] = asyncio.get_running_loop().create_future()
                await waiter
                continue
            size = min(window, n - pos, self.conn.max_outbound_frame_size)
            last = pos + size == n
            try:
                self.conn.send_data(stream_id, data[pos : pos + size], end_stream=end_stream and last)
            except h2.exceptions.ProtocolError:
                raise ConnectionResetError("stream closed") from None
            self.flush()
            pos += size
            await self.drain()
            if last:
                return

    def end_stream(self, stream_id: int) -> None:
        """END_STREAM on our side of a stream (no-op if the stream is gone)."""
        try:
            self.conn.end_stream(stream_id)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            return
        self.flush()

    def reset_stream(self, stream_id: int, code: int = 0) -> None:
        """RST_STREAM (default NO_ERROR); no-op if the stream is already closed."""
        try:
            self.conn.reset_stream(stream_id, code)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            return
        self._wake_window(stream_id, ConnectionResetError("stream reset"))
        self.flush()

    def acknowledge(self, stream_id: int, nbytes: int) -> None:
        """Give ``nbytes`` of flow-control window back to the peer (stream and connection)."""
        if nbytes:
            try:
                self.conn.acknowledge_received_data(nbytes, stream_id)
            except h2.exceptions.ProtocolError:
                return
            self.flush()
