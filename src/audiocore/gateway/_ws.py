"""WebSocket plumbing shared by the bridge and the peers, on picows.

picows calls a listener once per frame, from the event loop, with no coroutine per message:
the cheapest of the libraries measured (``docs/gateway-bridge.md``). :class:`Endpoint` turns
frames into whole messages (fragments reassembled up to a size limit, CLOSE answered, PING
answered by picows itself or, with ``answer_pings``, by the endpoint: rate-limited and
refused to a peer that does not read) and calls ``on_text``/``on_binary`` with ``bytes``.
:func:`picows_logger` is the logger to give picows: redacted, rate-limited, never its
raw-bytes level.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from audiocore.gateway._logsafe import RedactingFilter

__all__ = ["Endpoint", "PicowsLogger", "close", "connect", "picows_logger", "send_text",
           "wait_closed", "write_buffer"]

log = logging.getLogger("audiocore.gateway")

_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_CONT = WSMsgType.CONTINUATION
_CLOSE = WSMsgType.CLOSE
_PING = WSMsgType.PING


class Endpoint(WSListener):
    """One WebSocket connection's listener: whole messages to :meth:`on_text` /
    :meth:`on_binary`, :meth:`on_open` once connected, :meth:`on_closed` once disconnected.

    ``max_message``: bytes; a longer (fragmented) message closes the connection with 1009.
    ``abandoned``: set by :func:`connect` when the handshake was given up; a handshake that
    completes afterwards is closed at once (no :meth:`on_open`, no messages). Also set once
    the endpoint has closed the connection for breaking a limit: the frames read with the
    offending one (or still arriving) are not looked at.
    ``answer_pings``: True for a connection made with picows' ``enable_auto_pong=False``: the
    endpoint answers PINGs itself, at most ``max_pings_per_s`` a second, and never to a peer
    with more than ``max_write_buffer`` bytes unsent (a peer that PINGs and never reads
    grew picows' automatic PONGs without bound); past either it calls :meth:`on_refused`.
    """

    max_message = 1 << 20
    answer_pings = False
    max_pings_per_s = 10
    max_write_buffer = 1 << 20

    def __init__(self) -> None:
        self.transport: WSTransport | None = None
        self.abandoned = False
        self._parts: list[bytes] | None = None
        self._part_type = _TEXT
        self._part_size = 0
        self._pings = 0
        self._ping_window = 0.0

    # picows callbacks
    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        if self.abandoned:
            close(transport)
            return
        self.on_open()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if self.abandoned or transport.is_close_frame_sent:
            # frames of a handshake given up, after a refusal, or after CLOSE went out; the
            # last includes a frame over max_frame_size: picows sends 1009 but, until it
            # disconnects 10 ms later, still reads the frame and delivers it whole
            return
        kind = frame.msg_type
        if frame.fin and self._parts is None:
            if kind == _TEXT:
                self.on_text(frame.get_payload_as_bytes())
                return
            if kind == _BINARY:
                self.on_binary(frame.get_payload_as_bytes())
                return
        if kind == _CLOSE:
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()
            return
        if kind == _TEXT or kind == _BINARY:
            if self._parts is not None:
                self._violation(transport, "a new message began inside a fragmented one")
                return
            self._parts = []
            self._part_type = kind
            self._part_size = 0
        elif kind == _CONT:
            if self._parts is None:
                self._violation(transport, "a continuation frame outside a message")
                return
        else:
            if kind == _PING and self.answer_pings:
                self._ping(transport, frame)
            return  # PONG, or PING answered by picows
        payload = frame.get_payload_as_bytes()
        self._part_size += len(payload)
        if self._part_size > self.max_message:
            self._refused("message_too_big", WSCloseCode.MESSAGE_TOO_BIG,
                          f"a message longer than {self.max_message} bytes")
            return
        self._parts.append(payload)
        if frame.fin:
            data = b"".join(self._parts)
            self._parts = None
            if self._part_type == _TEXT:
                self.on_text(data)
            else:
                self.on_binary(data)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._parts = None
        self.on_closed()

    def pause_writing(self) -> None:
        """The transport's buffer crossed its high-water mark: nothing to do here (writers
        check the buffer's size themselves); defined so that picows does not log it."""

    def resume_writing(self) -> None:
        pass

    def _refused(self, reason: str, code: WSCloseCode, detail: str) -> None:
        self.abandoned = True
        self._parts = None
        self.on_refused(reason, code, detail)

    def _ping(self, transport: WSTransport, frame: WSFrame) -> None:
        now = time.monotonic()
        if now - self._ping_window >= 1.0:
            self._ping_window = now
            self._pings = 0
        self._pings += 1
        if self._pings > self.max_pings_per_s:
            self._refused("ping_flood", WSCloseCode.POLICY_VIOLATION,
                          f"more than {self.max_pings_per_s} PINGs a second")
        elif write_buffer(transport) > self.max_write_buffer:
            self._refused("not_reading", WSCloseCode.POLICY_VIOLATION,
                          f"more than {self.max_write_buffer} bytes unsent")
        else:
            transport.send_pong(frame.get_payload_as_bytes())

    def _violation(self, transport: WSTransport, why: str) -> None:
        self._refused("protocol_error", WSCloseCode.PROTOCOL_ERROR, why)

    # for subclasses
    def on_open(self) -> None:
        pass

    def on_text(self, data: bytes) -> None:
        pass

    def on_binary(self, data: bytes) -> None:
        pass

    def on_closed(self) -> None:
        pass

    def on_refused(self, reason: str, code: WSCloseCode, detail: str) -> None:
        """A limit was passed or the protocol broken (``reason``: message_too_big, ping_flood,
        not_reading, protocol_error): the connection is closed with ``code`` (dropped at once
        when the peer is not reading)."""
        log.warning("closing: %s", detail)
        close(self.transport, code, abort=reason == "not_reading")


async def connect(endpoint: Endpoint, url: str, timeout: float, **kw: Any) -> WSTransport:
    """Connect ``endpoint`` to ``url`` (picows ``ws_connect`` keywords in ``kw``) within
    ``timeout`` seconds. If that fails, times out or is cancelled, the endpoint is abandoned:
    its connection is closed now or, picows keeping the socket of a handshake given up, as
    soon as the handshake completes."""
    try:
        transport, _ = await asyncio.wait_for(ws_connect(lambda: endpoint, url, **kw), timeout)
    except BaseException:
        endpoint.abandoned = True
        close(endpoint.transport)
        raise
    return transport


async def wait_closed(server: asyncio.Server, timeout: float = 2.0) -> None:
    """Wait (at most ``timeout`` s) for a closed server's connections to finish."""
    try:
        await asyncio.wait_for(server.wait_closed(), timeout)
    except asyncio.TimeoutError:
        pass


def write_buffer(transport: WSTransport) -> int:
    """Bytes queued for ``transport``'s peer and not yet handed to the kernel."""
    size: int = transport.underlying_transport.get_write_buffer_size()
    return size


def send_text(transport: WSTransport | None, message: str | bytes) -> bool:
    """Send one text message unless the connection is gone; whether it was sent."""
    if transport is None or transport.is_close_frame_sent or transport.is_disconnected:
        return False
    transport.send(_TEXT, message)
    return True


def close(transport: WSTransport | None, code: Any = WSCloseCode.OK, reason: str = "",
          abort: bool = False) -> None:
    """Send CLOSE (once) and disconnect once the buffered data is written; ``abort``: drop
    the connection now, unsent data included (a peer that does not read would otherwise
    hold the connection and its buffer for good)."""
    if transport is None or transport.is_disconnected:
        return
    if not transport.is_close_frame_sent:
        transport.send_close(code, reason.encode() if reason else None)
    transport.disconnect(not abort)


class PicowsLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The logger handed to picows. A LoggerAdapter, so that picows logs through it instead
    of making a child logger per connection (records of a child logger skip the parent's
    filters); it never enables picows' level 9, which dumps raw bytes (handshakes with
    their Authorization header, audio), and passes each message template at most once per
    ``interval_s`` (picows logs a line per connection and per protocol error: an attacker's
    connections would flood the log), with how many were suppressed."""

    def __init__(self, logger: logging.Logger, interval_s: float = 10.0) -> None:
        super().__init__(logger, {})
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def isEnabledFor(self, level: int) -> bool:
        return level >= logging.DEBUG and self.logger.isEnabledFor(level)

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        key = str(msg)
        now = time.monotonic()
        if now - self._last.get(key, -1e18) < self.interval_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        n = self._suppressed.pop(key, 0)
        if n:
            msg = f"{msg} ({n} more like it suppressed)"
        self.logger.log(level, msg, *args, **kwargs)


_picows_loggers: dict[str, PicowsLogger] = {}


def picows_logger(side: str) -> PicowsLogger:
    """The :class:`PicowsLogger` of ``picows.<side>`` ("server" or "client"), with a
    :class:`~audiocore.gateway._logsafe.RedactingFilter` on that logger."""
    adapter = _picows_loggers.get(side)
    if adapter is None:
        logger = logging.getLogger(f"picows.{side}")
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())
        adapter = _picows_loggers[side] = PicowsLogger(logger)
    return adapter
