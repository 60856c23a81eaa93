"""Playout clocks: one shared ticker for every call, or one timer per call.

Both keep an absolute schedule (tick ``n`` is due at ``start + n * period``, never "period
after the last one ran"), so they do not drift. When the loop falls behind, the missed ticks
are run at once (up to ``max_catch_up``; beyond that the schedule restarts and the skipped
ticks are counted), so every active client still gets one ``tick()`` per period on average.

A client has ``tick() -> bool``: False when it has nothing more to play (it is then dropped
until :meth:`add` is called again). ``docs/gateway-bridge.md`` has the measurement of which
costs less (the shared one: one timer callback per period instead of one per call).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

__all__ = ["PerCallTimers", "SharedTicker", "Ticking"]


class Ticking(Protocol):
    def tick(self) -> bool: ...


class _Schedule:
    __slots__ = ("next", "handle")

    def __init__(self) -> None:
        self.next = 0.0
        self.handle: asyncio.TimerHandle | None = None


def _due(loop: asyncio.AbstractEventLoop, s: _Schedule, period: float, max_catch_up: int) -> tuple[int, int]:
    """(ticks to run now, ticks skipped) for a schedule whose tick s.next is due."""
    behind = int((loop.time() - s.next) / period)
    if behind > max_catch_up:
        s.next += behind * period
        return 1, behind
    return behind + 1, 0


class SharedTicker:
    """One timer for all clients: each period, ``tick()`` of every active client in turn."""

    def __init__(self, period: float = 0.02, *, max_catch_up: int = 5) -> None:
        self.period = period
        self.max_catch_up = max_catch_up
        self.active: dict[Ticking, None] = {}  # an ordered set
        self.skipped = 0  #: ticks given up after the loop fell behind more than max_catch_up
        self._s = _Schedule()
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, client: Ticking) -> None:
        self.active[client] = None
        if self._s.handle is None:
            loop = self._loop = asyncio.get_running_loop()
            self._s.next = loop.time() + self.period
            self._s.handle = loop.call_at(self._s.next, self._run)

    def discard(self, client: Ticking) -> None:
        self.active.pop(client, None)

    def close(self) -> None:
        if self._s.handle is not None:
            self._s.handle.cancel()
            self._s.handle = None
        self.active.clear()

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        s = self._s
        runs, skipped = _due(loop, s, self.period, self.max_catch_up)
        self.skipped += skipped
        active = self.active
        for _ in range(runs):
            for c in list(active):  # a tick may end a call (and drop it from active)
                if not c.tick():
                    active.pop(c, None)
            s.next += self.period
        s.handle = loop.call_at(s.next, self._run) if active else None


class PerCallTimers:
    """One timer per active client (the usual design; kept to measure against)."""

    def __init__(self, period: float = 0.02, *, max_catch_up: int = 5) -> None:
        self.period = period
        self.max_catch_up = max_catch_up
        self.active: dict[Ticking, _Schedule] = {}
        self.skipped = 0

    def add(self, client: Ticking) -> None:
        if client in self.active:
            return
        loop = asyncio.get_running_loop()
        s = self.active[client] = _Schedule()
        s.next = loop.time() + self.period
        s.handle = loop.call_at(s.next, self._run, loop, client, s)

    def discard(self, client: Ticking) -> None:
        s = self.active.pop(client, None)
        if s is not None and s.handle is not None:
            s.handle.cancel()

    def close(self) -> None:
        for client in list(self.active):
            self.discard(client)

    def _run(self, loop: asyncio.AbstractEventLoop, client: Ticking, s: _Schedule) -> None:
        runs, skipped = _due(loop, s, self.period, self.max_catch_up)
        self.skipped += skipped
        for _ in range(runs):
            s.next += self.period
            if not client.tick():
                s.handle = None
                self.active.pop(client, None)
                return
        s.handle = loop.call_at(s.next, self._run, loop, client, s)
