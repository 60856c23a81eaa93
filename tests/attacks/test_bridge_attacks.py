"""Attacks on the ACS <-> realtime bridge, over real sockets on loopback (issue 10).

The bridge runs in its own process (``bridge_proc.py``: its memory is its own, its refusal
counters are read over a pipe); the realtime service (the local peer, which counts the
sessions opened upstream) and a legitimate authenticated caller run in this process, and
each attacker is bounded in count and time. Every attack asserts:

- the attacker is refused or disconnected, and the refusal is counted under its reason;
- the bridge's peak RSS while the attack runs stays within a bound stated from its limits
  (bytes it may hold per attacking connection) plus ``SLACK`` for the interpreter's noise;
- the legitimate call running alongside hears the whole answer (no frame lost, every frame
  exactly 20 ms, judged by the service's own record of what it sent) and never stalls: its
  largest added latency stays under one frame plus the scheduling delay measured in this
  process during the attack (a probe timer), plus the resamplers' delay.

Figures for the record (``-s`` prints them): each test prints one ``figures`` line.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from conftest import DATA
from gateway_util import run, settle
from util import MIB, BridgeProc, LagProbe, frame, handshake, read_close

from audiocore.gateway.bridge import BridgeConfig
from audiocore.gateway.peers.acs_caller import CallResult, acs_frames, call, metadata_message, read_wav
from audiocore.gateway.peers.realtime_server import RealtimeServer

T = TypeVar("T")
SPEECH, RATE = read_wav(DATA / "speech-16k.wav")
TOKEN = "attack-suite-caller-token-0123456789"
AUTH = f"Bearer {TOKEN}"
#: allowance for the interpreter's own noise in a peak RSS (allocator arenas, a GC cycle)
SLACK = 24 * MIB
DELAYS = BridgeConfig(upstream_url="ws://x/").resampler_delays_ms(RATE)


def spec(rt: RealtimeServer, **kw: Any) -> dict[str, Any]:
    """A bridge to ``rt`` whose callers authenticate with TOKEN; ``kw`` overrides."""
    out: dict[str, Any] = {"upstream_url": rt.url, "token": TOKEN}
    out.update(kw)
    return out


def figures(name: str, **values: Any) -> None:
    print(f"figures {name}: " + json.dumps(values, default=str))


async def alongside(bridge: BridgeProc, rt: RealtimeServer,
                    attack: Callable[[], Awaitable[T]]) -> tuple[CallResult, T, int, float]:
    """Start a legitimate 2 s call (then 4 s listening to the echo), let its upstream
    session open, then run ``attack`` while it goes on. Returns the call's result, the
    attack's, the bridge's peak RSS growth over its RSS before the attack (bytes) and the
    largest scheduling delay of this process meanwhile (s)."""
    probe = LagProbe().start()
    legit = asyncio.create_task(call(bridge.url, SPEECH[: 2 * RATE * 2], rate=RATE, tail_s=4.0,
                                     realtime=rt, group_delay_ms=DELAYS, authorization=AUTH,
                                     call_id="legit"))
    await settle(lambda: rt.connections >= 1, timeout=20)
    bridge.reset_peak()
    before = bridge.rss()
    try:
        result = await attack()
        res = await asyncio.wait_for(legit, 60)
    finally:
        legit.cancel()
        probe.stop()
    return res, result, bridge.peak() - before, probe.take()


def assert_unharmed(res: CallResult, lag_s: float) -> dict[str, Any]:
    """The legitimate call heard its answer whole and on time (see the module docstring)."""
    fig = res.figures
    assert fig is not None
    assert res.close_code in (None, 1000), res.close_code
    assert res.bad_frames == 0 and fig.lost_frames == 0, fig.summary()
    assert res.frames_received >= 50, res.frames_received  # the echo of its 2 s of speech
    worst = max(fig.in_latency_ms + fig.out_latency_ms)
    bound = 20.0 + 2 * lag_s * 1000 + sum(DELAYS)
    assert worst <= bound, (worst, bound, fig.summary())
    return {"legit_frames_heard": res.frames_received, "legit_lost": fig.lost_frames,
            "legit_max_added_latency_ms": round(worst, 2), "stall_bound_ms": round(bound, 2)}


def in_threads(n: int, fn: Callable[[int], T]) -> Awaitable[list[T]]:
    """Run ``fn(0..n-1)`` in ``n`` threads (blocking raw sockets, off this event loop)."""
    async def go() -> list[T]:
        return list(await asyncio.gather(*(asyncio.to_thread(fn, i) for i in range(n))))
    return go()


# ---------------------------------------------------------------- authentication, caps


def test_anonymous_and_bad_token_handshakes_get_401_and_open_nothing_upstream() -> None:
    """100 handshakes without credentials, 100 with a wrong token, 50 on another path:
    401 (with WWW-Authenticate) / 404, no upstream session; the legitimate call goes on.
    RSS bound: SLACK (nothing is kept for a refused handshake)."""
    async def main() -> Any:
        async with RealtimeServer(mode="echo") as rt:
            with BridgeProc(spec(rt)) as bridge:
                def attacker(i: int) -> tuple[int, str | None]:
                    if i < 100:
                        headers = {}
                    elif i < 200:
                        headers = {"Authorization": f"Bearer wrong-{i}-{TOKEN}"}
                    else:
                        headers = {"Authorization": AUTH}
                    path = "/other" if i >= 200 else "/acs"
                    status, hdrs, sock = handshake(bridge.port, path, headers)
                    sock.close()
                    return status, hdrs.get("www-authenticate")

                async def attack() -> list[tuple[int, str | None]]:
                    out: list[tuple[int, str | None]] = []
                    for start in range(0, 250, 25):  # 25 at a time
                        out += await in_threads(25, lambda i, s=start: attacker(s + i))
                    return out

                res, answers, grown, lag = await alongside(bridge, rt, attack)
                stats = await bridge.astats()
                return res, answers, grown, lag, stats, rt.connections

    res, answers, grown, lag, stats, upstream = run(main())
    assert [s for s, _ in answers[:200]] == [401] * 200
    assert all(c is not None and c.startswith("Bearer") for _, c in answers[:200])
    assert [s for s, _ in answers[200:]] == [404] * 50
    assert upstream == 1  # the legitimate call's session only
    assert stats["refusals"]["auth"] == 200 and stats["refusals"]["path"] == 50
    assert grown <= SLACK, grown
    figures("401", refused=stats["refusals"], rss_growth_mib=round(grown / MIB, 1),
            **assert_unharmed(res, lag))


def _hold(port: int, source: str = "127.0.0.1") -> socket.socket:
    """An authenticated call that sends AudioMetadata and then silence now and then."""
    status, _, sock = handshake(port, headers={"Authorization": AUTH}, source=source)
    assert status == 101, status
    sock.sendall(frame(1, metadata_message(RATE).encode()))
    return sock


def test_calls_past_max_calls_get_503_and_nothing_upstream() -> None:
    """max_calls 4: the legitimate call and 3 held calls fill it; 200 more authenticated
    handshakes get 503 (Retry-After) and no upstream session. RSS bound: SLACK."""
    async def main() -> Any:
        async with RealtimeServer(mode="echo") as rt:
            with BridgeProc(spec(rt, max_calls=4, max_calls_per_ip=1000)) as bridge:
                held: list[socket.socket] = []

                async def attack() -> list[tuple[int, str | None]]:
                    for _ in range(3):
                        held.append(await asyncio.to_thread(_hold, bridge.port))
                    await settle(lambda: rt.connections == 4, timeout=20)

                    def one(i: int) -> tuple[int, str | None]:
                        status, hdrs, sock = handshake(bridge.port, headers={"Authorization": AUTH})
                        sock.close()
                        return status, hdrs.get("retry-after")

                    out: list[tuple[int, str | None]] = []
                    for _ in range(8):
                        out += await in_threads(25, one)
                    return out

                res, answers, grown, lag = await alongside(bridge, rt, attack)
                stats = await bridge.astats()
                for s in held:
                    s.close()
                return res, answers, grown, lag, stats, rt.connections

    res, answers, grown, lag, stats, upstream = run(main())
    assert [s for s, _ in answers] == [503] * 200 and all(r for _, r in answers)
    assert upstream == 4 and stats["refusals"]["max_calls"] == 200
    assert grown <= SLACK, grown
    figures("503", refused=stats["refusals"], rss_growth_mib=round(grown / MIB, 1),
            **assert_unharmed(res, lag))


def test_calls_per_address_are_capped_with_429() -> None:
    """max_calls_per_ip 3: from 127.0.0.2, 3 calls are admitted and 20 more get 429; the
    legitimate call from 127.0.0.1 is not affected; after the 3 hang up, 127.0.0.2 is
    admitted again. RSS bound: SLACK."""
    async def main() -> Any:
        async with RealtimeServer(mode="echo") as rt:
            with BridgeProc(spec(rt, max_calls_per_ip=3)) as bridge:
                held: list[socket.socket] = []

                async def attack() -> tuple[list[int], int]:
                    for _ in range(3):
                        held.append(await asyncio.to_thread(_hold, bridge.port, "127.0.0.2"))

                    def one(i: int) -> int:
                        status, _, sock = handshake(bridge.port, headers={"Authorization": AUTH},
                                                    source="127.0.0.2")
                        sock.close()
                        return status

                    refused = await in_threads(20, one)
                    for s in held:
                        s.close()
                    await settle(lambda: bridge.stats()["calls"] == 1, timeout=20)
                    again = await asyncio.to_thread(one, 0)
                    return refused, again

                res, (refused, again), grown, lag = await alongside(bridge, rt, attack)
                stats = await bridge.astats()
                return res, refused, again, grown, lag, stats

    res, refused, again, grown, lag, stats = run(main())
    assert refused == [429] * 20 and again == 101
    assert stats["refusals"]["calls_per_ip"] == 20
    assert grown <= SLACK, grown
    figures("429", refused=stats["refusals"], rss_growth_mib=round(grown / MIB, 1),
            **assert_unharmed(res, lag))
