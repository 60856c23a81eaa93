"""A tiny progress bar on stderr: drawn only when stderr is a terminal (or when forced), at
most ten times a second, never on stdout."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``Progress(total, label)``; ``update(n)`` adds ``n`` units; ``close()`` ends the line.
    ``enabled``: None draws only on a TTY; True/False force it."""

    def __init__(self, total: int, label: str = "", enabled: bool | None = None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.total = max(total, 0)
        self.label = label
        self.done = 0
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._last = 0.0

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last >= 0.1 or (self.total and self.done >= self.total):
            self._last = now
            self._draw()

    def _draw(self) -> None:
        width = 30
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * width)
            text = f"\r{self.label} [{bar:<{width}}] {frac * 100:5.1f}%"
        else:
            text = f"\r{self.label} {self.done}"
        self.stream.write(text)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
