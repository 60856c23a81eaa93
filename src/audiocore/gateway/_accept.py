"""A listening socket's accept loop that survives fd exhaustion quietly (both gateways use it).

asyncio's own loop (CPython 3.11), on EMFILE, logs a traceback and keeps trying the rest of
its batch of 100 accepts, each failing, logging and scheduling another retry: a gateway at
its fd limit writes megabytes of log per second. :class:`Acceptor` stops reading the
listening socket for ``backoff_s`` instead and reports through a callback (counted and
rate-limited by the caller); pending connections wait in the kernel's backlog meanwhile.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable

__all__ = ["Acceptor", "listening_socket"]

#: errno values meaning "out of a resource": back off rather than retry at once.
_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: Connections accepted per readiness event before other work gets the loop.
_BATCH = 64


def listening_socket(host: str, port: int, backlog: int = 511) -> socket.socket:
    """A non-blocking TCP socket listening on ``host`` (an IP address) and ``port``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=backlog)
    sock.setblocking(False)
    return sock


class Acceptor:
    """Accepts on ``sock`` (non-blocking, listening) and hands each new socket to
    ``on_socket``. On fd or memory exhaustion it calls ``on_exhausted(exc)`` once and stops
    accepting for ``backoff_s`` seconds; other accept errors go to ``on_error(exc)``. The
    acceptor owns ``sock``; everything runs on the loop that called :meth:`start`."""

    def __init__(
        self,
        sock: socket.socket,
        on_socket: Callable[[socket.socket], None],
        on_exhausted: Callable[[OSError], None],
        on_error: Callable[[OSError], None],
        backoff_s: float = 1.0,
    ) -> None:
        self.sock = sock
        self.on_socket = on_socket
        self.on_exhausted = on_exhausted
        self.on_error = on_error
        self.backoff_s = backoff_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reading = False
        self._resume: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._read()

    def _read(self) -> None:
        self._resume = None
        if self._loop is not None and not self._reading and self.sock.fileno() >= 0:
            self._loop.add_reader(self.sock.fileno(), self._ready)
            self._reading = True

    def _pause(self) -> None:
        if self._reading and self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
            self._reading = False

    def _ready(self) -> None:
        for _ in range(_BATCH):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _EXHAUSTED:
                    self._pause()
                    assert self._loop is not None
                    self._resume = self._loop.call_later(self.backoff_s, self._read)
                    self.on_exhausted(exc)
                    return
                self.on_error(exc)  # ECONNABORTED and the like: that connection only
                continue
            conn.setblocking(False)
            self.on_socket(conn)

    def close(self) -> None:
        """Stop accepting and close the listening socket."""
        self._pause()
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        self.sock.close()
