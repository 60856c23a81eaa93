"""Stopping a gateway on SIGINT/SIGTERM: the handlers are in place as soon as
stop_on_signal() returns, so a signal sent right after a server announces itself is
handled, not fatal. Runs in a subprocess so a missing handler kills that, not pytest."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import asyncio, os, signal, sys
from audiocore.gateway._signals import stop_on_signal, until_signal

async def main(sig):
    stop = stop_on_signal()
    os.kill(os.getpid(), sig)      # before any await: the default action would kill us
    await asyncio.wait_for(stop.wait(), 10)
    waiter = asyncio.ensure_future(until_signal())
    await asyncio.sleep(0)         # until_signal installs its handlers on entry
    os.kill(os.getpid(), sig)
    await asyncio.wait_for(waiter, 10)
    print("stopped")

asyncio.run(main(getattr(signal, sys.argv[1])))
"""


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_signal_right_after_stop_on_signal_is_handled(sig: str) -> None:
    p = subprocess.run([sys.executable, "-c", SCRIPT, sig], capture_output=True, text=True,
                       timeout=60)
    assert (p.returncode, p.stdout.strip()) == (0, "stopped"), p.stderr
