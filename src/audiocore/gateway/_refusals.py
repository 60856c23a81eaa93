"""Counted, rate-limited refusal logging for the gateways.

A server under attack refuses the same thing thousands of times a second; one log line each
would make the log the attack's amplifier. :class:`Refusals` counts every refusal by reason
and writes at most one line per reason per interval, saying how many it held back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from audiocore.gateway._logsafe import clip

__all__ = ["Refusals"]


class Refusals:
    """Refusal counters and their log lines. ``counts`` maps a reason (a short fixed string
    chosen by the code, never client text) to the refusals so far; ``detail`` (client text
    allowed) is clipped before it is logged. One event loop thread; not thread-safe."""

    def __init__(self, logger: logging.Logger, interval_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log = logger
        self.interval_s = interval_s
        self.counts: dict[str, int] = {}
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    @property
    def total(self) -> int:
        """Refusals of every reason so far."""
        return sum(self.counts.values())

    def refuse(self, reason: str, detail: str = "", level: int = logging.WARNING) -> None:
        """Count one refusal; log it unless this reason was logged less than ``interval_s``
        ago (then it is only counted, and the next line says how many were held back)."""
        self.counts[reason] = self.counts.get(reason, 0) + 1
        now = self._clock()
        last = self._last.get(reason)
        if last is not None and now - last < self.interval_s:
            self._held[reason] = self._held.get(reason, 0) + 1
            return
        self._last[reason] = now
        held = self._held.pop(reason, 0)
        if not self.log.isEnabledFor(level):
            return
        text = f"refused: {reason}"
        if detail:
            text += f" ({clip(detail, 200)})"
        if held:
            text += f"; {held} more since the last such line"
        self.log.log(level, "%s", text)
