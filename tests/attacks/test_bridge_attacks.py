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
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from conftest import DATA
from cryptography.hazmat.primitives import serialization
from gateway_util import KeyServer, hand_token, run, settle
from util import MIB, BridgeProc, LagProbe, frame, handshake, read_close

from audiocore.gateway.bridge import BridgeConfig
from audiocore.gateway.peers.acs_caller import CallResult, acs_frames, call, metadata_message, read_wav
from audiocore.gateway.peers.acs_tokens import TokenIssuer
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


async def alongside(bridge: BridgeProc, rt: RealtimeServer, attack: Callable[[], Awaitable[T]],
                    authorization: str = AUTH) -> tuple[CallResult, T, int, float]:
    """Start a legitimate 2 s call (then 4 s listening to the echo), let its upstream
    session open, then run ``attack`` while it goes on. Returns the call's result, the
    attack's, the bridge's peak RSS growth over its RSS before the attack (bytes) and the
    largest scheduling delay of this process meanwhile (s)."""
    probe = LagProbe().start()
    legit = asyncio.create_task(call(bridge.url, SPEECH[: 2 * RATE * 2], rate=RATE, tail_s=4.0,
                                     realtime=rt, group_delay_ms=DELAYS,
                                     authorization=authorization, call_id="legit"))
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


# ---------------------------------------------------------------- timeouts


def test_a_connection_without_audiometadata_is_closed_after_metadata_timeout() -> None:
    """20 authenticated connections that never send AudioMetadata (a few PINGs and other
    messages instead): each closed with 1008 no sooner than metadata_timeout, nothing
    opened upstream. RSS bound: SLACK."""
    timeout = 1.0

    async def main() -> Any:
        async with RealtimeServer(mode="echo") as rt:
            with BridgeProc(spec(rt, metadata_timeout=timeout)) as bridge:
                def one(i: int) -> tuple[int | None, float]:
                    t0 = time.monotonic()  # before the bridge's clock for it starts (at the upgrade)
                    status, _, sock = handshake(bridge.port, headers={"Authorization": AUTH})
                    assert status == 101
                    sock.sendall(frame(9, b"hi") + frame(1, b'{"kind":"DtmfData","dtmfData":{"data":"5"}}'))
                    code = read_close(sock, timeout=20)
                    sock.close()
                    return code, time.monotonic() - t0

                res, closed, grown, lag = await alongside(bridge, rt, lambda: in_threads(20, one))
                stats = await bridge.astats()
                return res, closed, grown, lag, stats, rt.connections

    res, closed, grown, lag, stats, upstream = run(main())
    assert [c for c, _ in closed] == [1008] * 20
    assert min(t for _, t in closed) >= timeout
    assert upstream == 1 and stats["refusals"]["metadata_timeout"] == 20
    assert grown <= SLACK, grown
    figures("metadata_timeout", refused=stats["refusals"], rss_growth_mib=round(grown / MIB, 1),
            closed_after_s=[round(min(t for _, t in closed), 2), round(max(t for _, t in closed), 2)],
            **assert_unharmed(res, lag))


def test_an_idle_call_is_closed_and_its_upstream_with_it() -> None:
    """5 calls that send AudioMetadata and half a second of audio, then nothing: each closed
    with 1008 no sooner than idle_timeout after its last message; its upstream session is
    closed too. RSS bound: SLACK."""
    idle = 1.5
    frames, _ = acs_frames(SPEECH[: RATE], RATE)

    async def main() -> Any:
        async with RealtimeServer(mode="echo") as rt:
            with BridgeProc(spec(rt, idle_timeout=idle)) as bridge:
                def one(i: int) -> tuple[int | None, float]:
                    sock = _hold(bridge.port)
                    for f in frames[:25]:
                        time.sleep(0.02)
                        t0 = time.monotonic()  # before the bridge reads the last frame
                        sock.sendall(frame(1, f))
                    code = read_close(sock, timeout=20)
                    sock.close()
                    return code, time.monotonic() - t0

                async def attack() -> list[tuple[int | None, float]]:
                    out = await in_threads(5, one)
                    await settle(lambda: len(rt.sessions) == 1, timeout=10)  # the legit one
                    return out

                res, closed, grown, lag = await alongside(bridge, rt, attack)
                stats = await bridge.astats()
                return res, closed, grown, lag, stats, rt.connections

    res, closed, grown, lag, stats, upstream = run(main())
    assert [c for c, _ in closed] == [1008] * 5
    assert min(t for _, t in closed) >= idle
    assert upstream == 6 and stats["refusals"]["idle"] == 5
    assert grown <= SLACK, grown
    figures("idle", refused=stats["refusals"], rss_growth_mib=round(grown / MIB, 1),
            **assert_unharmed(res, lag))


def test_a_closed_call_that_does_not_read_is_dropped_after_close_timeout() -> None:
    """A caller speaks, then neither sends nor reads while the answer is played to it: the
    idle timeout ends its call, and the connection, whose unsent audio a graceful close
    would wait for for good, is dropped close_timeout later. RSS bound: SLACK."""
    frames, _ = acs_frames(SPEECH[: RATE] + bytes(RATE * 2), RATE)  # 1 s of speech, 1 s of silence

    async def main() -> Any:
        async with RealtimeServer(mode="prompt", silence_ms=300) as rt:
            with BridgeProc(spec(rt, idle_timeout=1.5, close_timeout=1.0, send_buffer_bytes=4096,
                                 max_write_buffer=64 * MIB)) as bridge:
                def one(i: int) -> tuple[int, float]:
                    status, _, sock = handshake(bridge.port, headers={"Authorization": AUTH}, rcvbuf=4096)
                    sock.sendall(frame(1, metadata_message(RATE).encode()))
                    for f in frames:
                        sock.sendall(frame(1, f))
                        time.sleep(0.02)
                    t0 = time.monotonic()
                    end = t0 + 15
                    # hold the socket, unread, until the bridge has let go of the connection
                    # (an ended call's connection is one more connection than there are calls)
                    while time.monotonic() < end:
                        st = bridge.stats()
                        if st["refusals"].get("idle") and st["connections"] == st["calls"]:
                            break
                        time.sleep(0.05)
                    gone = time.monotonic() - t0
                    sock.close()
                    return status, gone

                res, (status, gone), grown, lag = await alongside(bridge, rt, lambda: asyncio.to_thread(one, 0))
                return res, status, gone, grown, lag, await bridge.astats()

    res, status, gone, grown, lag, stats = run(main())
    assert status == 101 and stats["refusals"]["idle"] == 1
    assert 1.5 + 1.0 <= gone < 15, gone  # idle_timeout, then close_timeout: dropped, not held
    assert grown <= SLACK, grown
    figures("close_timeout", refused=stats["refusals"], dropped_after_s=round(gone, 2),
            rss_growth_mib=round(grown / MIB, 1), **assert_unharmed(res, lag))


# ---------------------------------------------------------------- floods


def test_audio_at_50x_real_time_is_paced_and_a_persistent_flood_closed() -> None:
    """One caller pushes audio at 50x real time (a second of audio every 20 ms) for 2 s, with
    max_excess_ms out of reach: the service receives at most real time plus burst_ms of it;
    every frame the bridge read is accounted for as forwarded or dropped (counted). Another,
    with the default max_excess_ms, is closed with 1008. RSS bound: SLACK (dropped frames
    are not kept)."""
    burst_ms = 500
    frames, _ = acs_frames(SPEECH[: RATE * 2], RATE)  # 50 frames: 1 s of audio per batch

    async def main() -> Any:
        async with RealtimeServer(mode="echo") as rt, RealtimeServer(mode="echo") as rt2:
            with BridgeProc(spec(rt, burst_ms=burst_ms, max_excess_ms=10**9)) as paced, \
                    BridgeProc(spec(rt2)) as closing:
                def flood(port: int) -> tuple[float, int, int | None]:
                    sock = _hold(port)
                    t0 = time.monotonic()
                    batch = b"".join(frame(1, f) for f in frames)
                    sent = 0
                    try:
                        while time.monotonic() - t0 < 2.0:
                            sock.sendall(batch)
                            sent += len(frames)
                            time.sleep(0.02)
                    except OSError:
                        pass
                    code = read_close(sock, timeout=1.0)
                    sock.close()
                    return t0, sent, code

                async def attack() -> Any:
                    (t0, sent, _), (_, _, closed_code) = await asyncio.gather(
                        asyncio.to_thread(flood, paced.port), asyncio.to_thread(flood, closing.port))
                    # the paced caller's session: rt's second (the first is the legitimate call)
                    await settle(lambda: len(rt.history) == 2 and rt.history[1] not in rt.sessions)
                    return t0, time.monotonic(), rt.history[1].samples, sent, closed_code

                res, (t0, t_read, samples, sent, closed_code), grown, lag = await alongside(paced, rt, attack)
                await settle(lambda: len(paced.stats()["finished"]) == 2)  # the flood's call, the legit one
                return res, t0, t_read, samples, sent, closed_code, grown, lag, \
                    await paced.astats(), await closing.astats()

    res, t0, t_read, samples, sent, closed_code, grown, lag, stats, closing_stats = run(main())
    got_s = samples / 24000
    allowed_s = (t_read - t0) + burst_ms / 1000 + 0.02
    assert 0 < got_s <= allowed_s, (got_s, allowed_s)
    [flood] = [c for c in stats["finished"] if c["call_id"] != "legit"]
    assert flood["frames_in"] + flood["paced_dropped"] + flood["gap_dropped"] == sent, (flood, sent)
    assert stats["refusals"]["audio_too_fast"] == flood["paced_dropped"] >= sent - allowed_s * 50
    assert closed_code == 1008 and closing_stats["refusals"]["audio_flood"] == 1
    assert grown <= SLACK, grown
    figures("pacing", offered_s=round(sent * 0.02, 1), forwarded_s=round(got_s, 2), allowed_s=round(allowed_s, 2),
            dropped_frames=flood["paced_dropped"], closing_refusals=closing_stats["refusals"],
            rss_growth_mib=round(grown / MIB, 1), **assert_unharmed(res, lag))


def _ping_flood(port: int, seconds: float, rate: float | None = None) -> tuple[str, int]:
    """PINGs (125-byte payloads), ``rate`` a second (None: as fast as the socket takes
    them), never reading, for at most ``seconds``: how it ended (the server's close code if
    one came, "dropped" when the server cut the connection, "timeout") and the PINGs sent."""
    status, _, sock = handshake(port, headers={"Authorization": AUTH}, rcvbuf=4096)
    assert status == 101
    sock.sendall(frame(1, metadata_message(RATE).encode()))
    batch = frame(9, bytes(125)) * 64
    sent = 0
    end = time.monotonic() + seconds
    sock.settimeout(1.0)
    how = "timeout"
    start = time.monotonic()
    try:
        while time.monotonic() < end:
            sock.sendall(batch)
            sent += 64
            if rate is not None:
                time.sleep(max(0.0, start + sent / rate - time.monotonic()))
    except socket.timeout:
        how = "blocked"  # the server stopped reading our PINGs: it must have cut us off
    except OSError:
        how = "dropped"
    if how != "dropped":
        code = read_close(sock, timeout=5.0)
        how = "dropped" if code is None else str(code)
    sock.close()
    return how, sent


def test_ping_flood_is_refused_past_the_rate_cap() -> None:
    """4 connections PING as fast as they can: closed 1008 once past max_pings_per_s."""
    async def main() -> Any:
        async with RealtimeServer(mode="echo") as rt:
            with BridgeProc(spec(rt)) as bridge:
                res, ends, grown, lag = await alongside(
                    bridge, rt, lambda: in_threads(4, lambda i: _ping_flood(bridge.port, 5.0)))
                return res, ends, grown, lag, await bridge.astats()

    res, ends, grown, lag, stats = run(main())
    assert all(how in ("1008", "dropped") for how, _ in ends), ends
    assert stats["refusals"]["ping_flood"] == 4
    assert grown <= SLACK, grown
    figures("ping_rate", ends=ends, refused=stats["refusals"], rss_growth_mib=round(grown / MIB, 1),
            **assert_unharmed(res, lag))


def test_ping_flood_without_reading_is_disconnected_with_memory_bounded() -> None:
    """4 connections PING (at 2000 a second each: an operator raised max_pings_per_s) and
    never read: the PONGs back up (the kernel's share bounded by send_buffer_bytes), and
    each connection is dropped once max_write_buffer (256 KiB here) is unsent. RSS bound:
    4 x (max_write_buffer + max_message_bytes + picows' 64 KiB read buffer) + SLACK
    (before: picows answered every PING by itself, ~200 MB/s of queued PONGs)."""
    limit = 256 * 1024

    async def main() -> Any:
        async with RealtimeServer(mode="echo") as rt:
            with BridgeProc(spec(rt, max_pings_per_s=2000, max_write_buffer=limit)) as bridge:
                res, ends, grown, lag = await alongside(
                    bridge, rt, lambda: in_threads(4, lambda i: _ping_flood(bridge.port, 20.0, 1500)))
                return res, ends, grown, lag, await bridge.astats()

    res, ends, grown, lag, stats = run(main())
    assert all(how == "dropped" for how, _ in ends), ends
    assert stats["refusals"].get("not_reading") == 4 and "ping_flood" not in stats["refusals"], stats
    bound = 4 * (limit + 64 * 1024 + 64 * 1024) + SLACK
    assert grown <= bound, (grown, bound)
    figures("ping_no_read", pings_sent=[n for _, n in ends], refused=stats["refusals"],
            rss_growth_mib=round(grown / MIB, 1), bound_mib=round(bound / MIB, 1),
            **assert_unharmed(res, lag))


def test_a_1_mib_message_is_refused_unparsed() -> None:
    """A 1 MiB text frame, and 1 MiB of JSON in 32 KiB fragments: closed 1009 (ACS's
    messages are 1-2 KB; max_message_bytes 64 KiB). RSS bound: 2 x 64 KiB + SLACK."""
    big = b'{"kind":"AudioData","audioData":{' + b",".join(
        b'"k%d":%d' % (i, i) for i in range(100_000))[: MIB - 40] + b"}}"

    async def main() -> Any:
        async with RealtimeServer(mode="echo") as rt:
            with BridgeProc(spec(rt)) as bridge:
                def one(i: int) -> int | None:
                    sock = _hold(bridge.port)
                    try:
                        if i == 0:
                            sock.sendall(frame(1, big))
                        else:
                            parts = [big[n:n + 32768] for n in range(0, len(big), 32768)]
                            for k, part in enumerate(parts):
                                sock.sendall(frame(1 if k == 0 else 0, part, fin=k == len(parts) - 1))
                    except OSError:
                        pass
                    code = read_close(sock)
                    sock.close()
                    return code

                res, codes, grown, lag = await alongside(bridge, rt, lambda: in_threads(2, one))
                return res, codes, grown, lag, await bridge.astats()

    res, codes, grown, lag, stats = run(main())
    assert codes == [1009, 1009]
    assert stats["refusals"]["message_too_big"] == 2
    assert grown <= 2 * 64 * 1024 + SLACK, grown
    figures("1MiB", refused=stats["refusals"], rss_growth_mib=round(grown / MIB, 1),
            **assert_unharmed(res, lag))


@pytest.mark.parametrize("rates", [(8000, 48000, 192000, 44100)])
def test_sample_rates_acs_does_not_document_are_refused(rates: tuple[int, ...]) -> None:
    """AudioMetadata at 8, 48, 192 and 44.1 kHz: closed 1003, nothing upstream, no filter
    designed (RSS bound: SLACK; before: ~36 ms of loop and tens of MB of filters each)."""
    async def main() -> Any:
        async with RealtimeServer(mode="echo") as rt:
            with BridgeProc(spec(rt)) as bridge:
                def one(i: int) -> int | None:
                    status, _, sock = handshake(bridge.port, headers={"Authorization": AUTH})
                    assert status == 101
                    sock.sendall(frame(1, metadata_message(rates[i]).encode()))
                    code = read_close(sock)
                    sock.close()
                    return code

                res, codes, grown, lag = await alongside(bridge, rt, lambda: in_threads(len(rates), one))
                return res, codes, grown, lag, await bridge.astats(), rt.connections

    res, codes, grown, lag, stats, upstream = run(main())
    assert codes == [1003] * len(rates) and upstream == 1
    assert stats["refusals"]["sample_rate"] == len(rates)
    assert grown <= SLACK, grown
    figures("sample_rates", refused=stats["refusals"], rss_growth_mib=round(grown / MIB, 1),
            **assert_unharmed(res, lag))


def test_the_filter_cache_is_bounded() -> None:
    """Designing filters for 60 different ratios keeps at most a few dozen (least recently
    used go first), and the ratio in use stays."""
    from audiocore import Resampler
    from audiocore import resampling

    Resampler(16000, 24000)
    for rate in range(8050, 8050 + 60 * 50, 50):
        Resampler(rate, 16000, quality="fast")
        Resampler(16000, 24000)  # in use all along
    assert len(resampling._CACHE) <= 32
    assert (3, 2, "hq") in resampling._CACHE


# ---------------------------------------------------------------- ACS's JWT, through the handshake


def test_acs_jwt_cases_through_the_handshake_only_the_valid_one_passes() -> None:
    """The bridge verifies ACS's JWT against a JWKS served on loopback: valid passes (the
    legitimate call); expired, wrong audience, wrong issuer, unknown key id, ``alg: none``
    and HS256 signed with the public key as the HMAC secret get 401 with WWW-Authenticate
    and open nothing upstream; no token appears in the log."""
    audience = "acs-resource-for-tests"
    issuer = TokenIssuer(kid="acs-key-1")
    now = int(time.time())
    std = {"iss": issuer.issuer, "aud": audience, "iat": now, "nbf": now, "exp": now + 600}
    pem = issuer.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    bad = {
        "expired": issuer.token(audience, iat=now - 7200, nbf=now - 7200, exp=now - 3600),
        "wrong audience": issuer.token("another-resource"),
        "wrong issuer": issuer.token(audience, iss="https://login.example.com/attacker"),
        "unknown key id": TokenIssuer(kid="acs-key-unknown").token(audience),
        "alg none": hand_token({"alg": "none", "typ": "JWT", "kid": issuer.kid}, std, None),
        "HS256 with the public key": hand_token({"alg": "HS256", "typ": "JWT", "kid": issuer.kid}, std, pem),
    }
    valid = issuer.authorization(audience)
    # in a thread: the bridge fetches the keys while this test waits for it to start
    keys = KeyServer()
    keys.docs["/jwks.json"] = issuer.jwks()
    served = keys.paths
    url = keys.url + "/jwks.json"

    async def main() -> Any:
        async with RealtimeServer(mode="echo") as rt:
            with BridgeProc({"upstream_url": rt.url, "jwks": url, "audience": audience}) as bridge:
                names = list(bad)

                def one(i: int) -> tuple[str, int, str | None]:
                    status, hdrs, sock = handshake(
                        bridge.port, headers={"Authorization": "Bearer " + bad[names[i]]})
                    sock.close()
                    return names[i], status, hdrs.get("www-authenticate")

                res, answers, grown, lag = await alongside(
                    bridge, rt, lambda: in_threads(len(names), one), authorization=valid)
                stats = await bridge.astats()
                log = bridge.close()
        return res, answers, grown, lag, stats, rt.connections, log

    try:
        res, answers, grown, lag, stats, upstream, log = run(main())
    finally:
        keys.close()
    assert [(n, s) for n, s, _ in answers] == [(n, 401) for n in bad], answers
    assert all(c is not None and c.startswith("Bearer") for _, _, c in answers)
    assert upstream == 1 and stats["refusals"]["auth"] == len(bad)
    assert 1 <= len(served) <= 2  # at start, and once for the unknown key id at most
    for token in [*bad.values(), valid.split()[1]]:
        signature = token.split(".")[2]
        assert token not in log and (not signature or signature[:20] not in log)
    assert grown <= SLACK, grown
    figures("jwt", answers=answers, refused=stats["refusals"], jwks_fetches=len(served),
            rss_growth_mib=round(grown / MIB, 1), **assert_unharmed(res, lag))


# ---------------------------------------------------------------- logs


def test_a_15_kb_call_id_is_replaced_and_clipped_in_the_log() -> None:
    """3 calls whose x-ms-call-connection-id is 15 KB (and correlation id 500 bytes): each
    gets a generated id; the log holds no such value, at most one clipped echo of each, and
    no line over 400 chars. (Before: a 15 KB id was echoed into the log 93 times.)"""
    ids = [f"{i}" + "".join(chr(65 + (k * 7 + i) % 26) for k in range(15_000)) for i in range(3)]
    frames, _ = acs_frames(SPEECH[: RATE], RATE)

    async def main() -> Any:
        async with RealtimeServer(mode="echo") as rt:
            with BridgeProc(spec(rt)) as bridge:
                def one(i: int) -> int:
                    status, _, sock = handshake(bridge.port, headers={
                        "Authorization": AUTH, "x-ms-call-connection-id": ids[i],
                        "x-ms-call-correlation-id": ids[i][:500]})
                    sock.sendall(frame(1, metadata_message(RATE).encode()))
                    for f in frames[:10]:
                        sock.sendall(frame(1, f))
                        time.sleep(0.02)
                    sock.sendall(frame(8, b"\x03\xe8"))
                    read_close(sock)
                    sock.close()
                    return status

                res, statuses, grown, lag = await alongside(bridge, rt, lambda: in_threads(3, one))
                await settle(lambda: bridge.stats()["calls"] == 0, timeout=10)
                stats = await bridge.astats()
                return res, statuses, stats, lag, bridge.close()

    res, statuses, stats, lag, log = run(main())
    assert statuses == [101] * 3
    finished = [s["call_id"] for s in stats["finished"] if s["call_id"] != "legit"]
    assert len(finished) == 3 and all(len(c) <= 128 for c in finished)
    assert stats["refusals"]["call_id_replaced"] == 3
    for cid in ids:
        assert cid not in log and log.count(cid[:40]) <= 1
    assert max(len(line) for line in log.splitlines()) <= 400
    figures("call_id", refused=stats["refusals"], longest_log_line=max(map(len, log.splitlines())),
            **assert_unharmed(res, lag))


def test_log_level_notset_shows_no_upstream_key_no_query_secret_no_caller_token(tmp_path: Any) -> None:
    """``audiocore serve bridge --log-level NOTSET``, the upstream key in a header and a
    secret in the upstream URL's query, one call through it: neither secret, nor the
    caller's token, is in the log (the URL is, redacted)."""
    header_secret = "sk-HEADER-secret-1f2e3d4c5b6a"
    query_secret = "QUERY-secret-9a8b7c6d5e4f"
    code = "import sys; from audiocore.gateway.bridge import serve_main; sys.exit(serve_main(sys.argv[1:]))"
    err = tmp_path / "stderr.log"

    async def main() -> CallResult:
        async with RealtimeServer(mode="echo") as rt:
            env = dict(os.environ, AUDIOCORE_BRIDGE_AUTH_TOKEN=TOKEN,
                       AUDIOCORE_REALTIME_API_KEY=header_secret)
            with open(err, "wb") as stderr:
                proc = subprocess.Popen(
                    [sys.executable, "-c", code, "--port", "0", "--log-level", "NOTSET",
                     "--upstream-url", rt.url + f"?model=x&api-key={query_secret}", "--auth", "bearer"],
                    stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
            try:
                assert proc.stdout is not None
                line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
                assert line.startswith("listening on "), err.read_text()
                res = await call(line.split()[-1], SPEECH[: RATE], rate=RATE, tail_s=1.0,
                                 authorization=AUTH)
            finally:
                proc.send_signal(signal.SIGTERM)
                await asyncio.to_thread(proc.wait, 30)
            return res

    res = run(main())
    log = err.read_text()
    assert res.frames_sent > 0 and res.close_code in (None, 1000)
    assert "api-key=***" in log  # the upstream URL was logged, redacted
    assert "DEBUG" in log or "picows" in log or "INFO" in log
    for secret in (header_secret, query_secret, TOKEN):
        assert secret not in log
    figures("notset", log_bytes=len(log), log_lines=log.count("\n"))


# ---------------------------------------------------------------- file descriptors


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_out_of_file_descriptors_the_bridge_pauses_quietly_and_serves_again(loop: str) -> None:
    """The bridge limited to 48 descriptors; 80 connections that never handshake take them
    all for 3 s. The bridge neither spins nor floods the log (one line per interval, no
    traceback; before: picows/aiofastnet logged ~0.9 MB/s of tracebacks); a call dialled
    during the exhaustion is served once the descriptors are free again."""
    async def main() -> Any:
        async with RealtimeServer(mode="echo") as rt:
            with BridgeProc(spec(rt, nofile=48, loop=loop)) as bridge:
                socks = [socket.create_connection(("127.0.0.1", bridge.port)) for _ in range(80)]
                log0, cpu0, t0 = bridge.log_size(), _cpu_s(bridge.pid), time.monotonic()
                legit = asyncio.create_task(call(bridge.url, SPEECH[: 2 * RATE * 2], rate=RATE,
                                                 tail_s=3.0, realtime=rt, group_delay_ms=DELAYS,
                                                 authorization=AUTH, connect_timeout=30))
                await asyncio.sleep(3.0)
                logged, cpu, wall = bridge.log_size() - log0, _cpu_s(bridge.pid) - cpu0, time.monotonic() - t0
                for s in socks:
                    s.close()
                res = await asyncio.wait_for(legit, 60)
                stats = await bridge.astats()
                return res, logged, cpu, wall, stats, bridge.close()

    res, logged, cpu, wall, stats, log = run(main())
    assert stats["refusals"]["out_of_fds"] >= 1
    assert log.count("out_of_fds") <= 2 and "Traceback" not in log
    assert logged <= 1024, logged
    assert cpu <= 0.5 * wall, (cpu, wall)  # paused, not spinning
    fig = res.figures
    assert fig is not None and res.frames_received >= 50 and fig.lost_frames == 0
    figures(f"fd_exhaustion_{loop}", log_bytes_during=logged, cpu_s=round(cpu, 2), wall_s=round(wall, 2),
            refused=stats["refusals"], legit_frames_heard=res.frames_received)
