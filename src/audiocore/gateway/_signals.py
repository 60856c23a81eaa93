"""Running a gateway until the process is told to stop."""

from __future__ import annotations

import asyncio
import signal


def stop_on_signal() -> asyncio.Event:
    """Install SIGINT and SIGTERM handlers on the running loop now and return the event they
    set. Call it before announcing readiness: a signal that arrives after the announcement
    must find the handlers in place, or the process dies with the default action."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def until_signal() -> None:
    """Return when the process receives SIGINT or SIGTERM (handlers installed on entry)."""
    await stop_on_signal().wait()
