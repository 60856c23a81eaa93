"""WebSocket plumbing shared by the bridge and the peers, on picows.

picows calls a listener once per frame, from the event loop, with no coroutine per message:
the cheapest of the libraries measured (``docs/gateway-bridge.md``). :class:`Endpoint` turns
frames into whole messages (fragments reassembled up to a size limit, CLOSE answered, PING
answered by picows itself) and calls ``on_text``/``on_binary`` with ``bytes``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

__all__ = ["Endpoint", "close", "connect", "send_text", "wait_closed"]

log = logging.getLogger("audiocore.gateway")

_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_CONT = WSMsgType.CONTINUATION
_CLOSE = WSMsgType.CLOSE


class Endpoint(WSListener):
    """One WebSocket connection's listener: whole messages to :meth:`on_text` /
    :meth:`on_binary`, :meth:`on_open` once connected, :meth:`on_closed` once disconnected.

    ``max_message``: bytes; a longer (fragmented) message closes the connection with 1009.
    ``abandoned``: set by :func:`connect` when the handshake was given up; a handshake that
    completes afterwards is closed at once (no :meth:`on_open`, no messages).
    """

    max_message = 1 << 20

    def __init__(self) -> None:
        self.transport: WSTransport | None = None
        self.abandoned = False
        self._parts: list[bytes] | None = None
        self._part_type = _TEXT
        self._part_size = 0

    # picows callbacks
    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        if self.abandoned:
            close(transport)
            return
        self.on_open()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if self.abandoned:
            return  # frames that came with the late handshake's answer
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
            return  # PING (answered by picows) or PONG
        payload = frame.get_payload_as_bytes()
        self._part_size += len(payload)
        if self._part_size > self.max_message:
            log.warning("closing: a message longer than %d bytes", self.max_message)
            self._parts = None
            transport.send_close(WSCloseCode.MESSAGE_TOO_BIG)
            transport.disconnect()
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

    def _violation(self, transport: WSTransport, why: str) -> None:
        log.warning("closing: %s", why)
        self._parts = None
        transport.send_close(WSCloseCode.PROTOCOL_ERROR)
        transport.disconnect()

    # for subclasses
    def on_open(self) -> None:
        pass

    def on_text(self, data: bytes) -> None:
        pass

    def on_binary(self, data: bytes) -> None:
        pass

    def on_closed(self) -> None:
        pass


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


def send_text(transport: WSTransport | None, message: str | bytes) -> bool:
    """Send one text message unless the connection is gone; whether it was sent."""
    if transport is None or transport.is_close_frame_sent or transport.is_disconnected:
        return False
    transport.send(_TEXT, message)
    return True


def close(transport: WSTransport | None, code: Any = WSCloseCode.OK, reason: str = "") -> None:
    """Send CLOSE (once) and disconnect once the buffered data is written."""
    if transport is None or transport.is_disconnected:
        return
    if not transport.is_close_frame_sent:
        transport.send_close(code, reason.encode() if reason else None)
    transport.disconnect()
