"""Running a gateway until the process is told to stop."""

from __future__ import annotations

import asyncio
import signal


async def until_signal() -> None:
    """Return when the process receives SIGINT or SIGTERM (handlers on the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
