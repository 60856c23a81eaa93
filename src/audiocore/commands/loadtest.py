"""``audiocore loadtest``: N simulated ACS calls over loopback through the bridge, beside the
same load through a bridge written the usual way (:mod:`audiocore.bench.usual_bridge`).

The bridge runs in its own process pinned to one core; the simulators (ACS callers and the
realtime server, cheap: pre-encoded messages, picows, one shared clock) run in this process
on the other core. Reported: the bridge process's CPU time per call-second (its threads' run
time from /proc), calls per core (10^6 / that), p50/p99 added latency and lost frames, both
directions, as defined in :mod:`audiocore.gateway.peers.timeline`.

With ``--controls on`` (the default) our bridge runs as deployed: callers authenticate with a
static bearer token, every limit at its default (the call caps raised to fit ``--calls``);
``--controls off`` runs it with ``--insecure-no-auth`` and every limit out of reach, to
measure what the controls cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import time
from importlib.util import find_spec
from typing import Any

HELP = "N simulated calls through the ACS <-> realtime bridge vs a usual bridge: CPU, calls per core, latency, loss"

_OURS = os.environ.get("AUDIOCORE_LOADTEST_BRIDGE") or (
    "import sys; from audiocore.gateway.bridge import serve_main; sys.exit(serve_main(sys.argv[1:]))")


def _cpu_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid`` so far (ns resolution where /proc has schedstat)."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        return total / 1e9
    except OSError:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _importable(name: str) -> bool:
    try:
        return find_spec(name) is not None
    except ImportError:  # an import hook that refuses it
        return False


def _pin(pid: int, core: int) -> bool:
    n = os.cpu_count() or 1
    if n < 2 or not hasattr(os, "sched_setaffinity"):
        return False
    os.sched_setaffinity(pid, {core % n})
    return True


def _script(seconds: float, speech: bytes, rate: int) -> bytes:
    """The caller's audio: turns of 1.2 s of speech, alternately followed by 3.3 s of
    silence (the answer plays to its end) and 1.8 s (the next turn barges in)."""
    bps = rate * 2
    turn = speech[: int(1.2 * rate) * 2]
    out = bytearray()
    gaps = [1.8, 3.3]
    i = 0
    while len(out) < seconds * bps:
        out += turn + bytes(int(gaps[i % 2] * rate) * 2)
        i += 1
    return bytes(out[: int(seconds * rate) * 2])


def _controls(args: argparse.Namespace, token: str) -> tuple[list[str], dict[str, str]]:
    """Our bridge's flags and environment for ``--controls``."""
    if args.controls == "on":
        caps = str(max(args.calls + 10, 200))
        return ["--max-calls", caps, "--max-calls-per-ip", caps], {"AUDIOCORE_BRIDGE_AUTH_TOKEN": token}
    huge = str(10**9)
    return ["--insecure-no-auth", "--max-calls", huge, "--max-calls-per-ip", huge, "--burst-ms", huge,
            "--max-excess-ms", huge, "--metadata-timeout", huge, "--idle-timeout", huge,
            "--max-pings-per-s", huge, "--max-message-bytes", str(1 << 20)], {}


async def _start_bridge(cmd: list[str], core: int, extra_env: dict[str, str] | None = None
                        ) -> tuple[subprocess.Popen[str], str]:
    # One BLAS thread: OpenBLAS's pool spins for seconds after the filter design at start-up,
    # which is not the bridge's work (the same for both bridges).
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", **(extra_env or {}))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _pin(proc.pid, core)
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(
            asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline), 60)
    except TimeoutError:
        line = "(nothing within 60 s)"
    if not line.startswith("listening on "):
        proc.kill()  # also ends a readline still waiting
        err = proc.stderr.read() if proc.stderr else ""
        raise RuntimeError(f"the bridge did not start: {line!r} {err[-2000:]}")
    return proc, line.split()[-1]


async def _run(kind: str, args: argparse.Namespace, frames: Any, voiced: list[bool],
               prompt: bytes) -> dict[str, Any]:
    from audiocore.gateway.bridge import BridgeConfig
    from audiocore.gateway._ticker import SharedTicker
    from audiocore.gateway.peers.acs_caller import AcsCaller
    from audiocore.gateway.peers.realtime_server import RealtimeServer
    from audiocore.gateway.peers.timeline import Figures, Timeline
    from picows import ws_connect

    rate = 16000
    token = secrets.token_urlsafe(32)
    headers = {"Authorization": f"Bearer {token}"}
    async with RealtimeServer(mode="prompt", prompt=prompt, speed=args.speed, delta_ms=100) as rt:
        env: dict[str, str] = {}
        if kind == "ours":
            flags, env = _controls(args, token)
            cmd = [sys.executable, "-c", _OURS, "--port", "0", "--upstream-url", rt.url,
                   "--log-level", "WARNING", "--ticker", args.ticker, "--loop", args.loop, *flags]
            delays = BridgeConfig(upstream_url=rt.url).resampler_delays_ms(rate)
        else:
            cmd = [sys.executable, "-m", "audiocore.bench.usual_bridge", "--port", "0", "--upstream-url", rt.url]
            delays = (0.0, 0.0)  # soxr's streams are time-aligned: what they hold back shows in the counts
        proc, url = await _start_bridge(cmd, args.bridge_core, env)
        try:
            tickers = [SharedTicker() for _ in range(10)]  # ten phases 2 ms apart
            # one short call first, not measured: the first call in a process pays one-off
            # costs (lazy imports, first allocations) that are not a call's
            warm = AcsCaller(frames[:50], voiced[:50], rate, ticker=tickers[0], record=False)
            await ws_connect(lambda: warm, url, extra_headers=headers)
            await warm.done
            await asyncio.sleep(0.2)
            callers, timelines = [], []
            cpu0 = _cpu_seconds(proc.pid)
            t_start = time.monotonic()
            for i in range(args.calls):
                tl = Timeline(rate, group_delay_in_ms=delays[0], group_delay_out_ms=delays[1])
                rt.expect(tl)
                caller = AcsCaller(frames, voiced, rate, ticker=tickers[i % 10], timeline=tl, record=False)
                seen = rt.connections
                await ws_connect(lambda c=caller: c, url, extra_headers={
                    **headers, "x-ms-call-correlation-id": f"load-{i}",
                    "x-ms-call-connection-id": f"call-{i}"})
                while rt.connections == seen:  # its upstream, so the timeline goes to the right one
                    await asyncio.sleep(0.001)
                callers.append(caller)
                timelines.append(tl)
                await asyncio.sleep(random.uniform(0, 0.004))
            await asyncio.gather(*(c.done for c in callers))
            await asyncio.sleep(0.2)
            cpu = _cpu_seconds(proc.pid) - cpu0
            wall = time.monotonic() - t_start
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    call_seconds = sum(len(c.frames) for c in callers) * 0.02
    figures = Figures()
    for tl in timelines:
        figures.add(tl.figures())
    us = cpu * 1e6 / call_seconds
    out = {"bridge": f"audiocore (controls {args.controls})" if kind == "ours"
           else "usual (websockets+json+base64+soxr HQ)",
           "cpu_us_per_call_second": round(us, 1), "calls_per_core": round(1e6 / us, 1),
           "bridge_cpu_s": round(cpu, 3), "call_seconds": round(call_seconds, 1),
           "bridge_core_load": round(cpu / wall, 3)}
    out.update(figures.summary())
    return out


def _controls_cost(args: argparse.Namespace, argv: list[str], loop: asyncio.AbstractEventLoop,
                   frames: Any, voiced: list[bool], prompt: bytes) -> int:
    """``--controls both``: our bridge with its controls on and off, ``--rounds`` runs each,
    interleaved (on/off, then off/on, ...) so drifts of a shared machine fall on both; the
    medians of the bridge's CPU per call-second and their ratio."""
    runs: dict[str, list[float]] = {"on": [], "off": []}
    lost = 0
    for r in range(args.rounds):
        for mode in ("on", "off") if r % 2 == 0 else ("off", "on"):
            one = argparse.Namespace(**{**vars(args), "controls": mode})
            out = loop.run_until_complete(_run("ours", one, frames, voiced, prompt))
            runs[mode].append(out["cpu_us_per_call_second"])
            lost += out["lost_frames"]
    on, off = statistics.median(runs["on"]), statistics.median(runs["off"])
    result = {"calls": args.calls, "seconds": args.seconds, "rounds": args.rounds,
              "cpu_us_per_call_second": runs, "median_on": on, "median_off": off,
              "ratio": round(on / off, 3), "cost_percent": round((on / off - 1) * 100, 1),
              "lost_frames": lost, "command": "audiocore loadtest " + " ".join(argv)}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{args.calls} calls x {args.seconds:g} s over loopback, {args.rounds} runs each, interleaved")
    for mode in ("on", "off"):
        print(f"  controls {mode:3}: median {statistics.median(runs[mode]):7.1f} us per call-second "
              f"(runs: {', '.join(f'{x:.0f}' for x in runs[mode])})")
    print(f"  the controls cost {result['cost_percent']:+.1f} % (on / off = {result['ratio']}; "
          f"target < 5 %); lost frames {lost}")
    return 0


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="audiocore loadtest", description="N simulated ACS calls over "
                                "loopback through the bridge, beside the same load through a bridge "
                                "written the usual way (audiocore.bench.usual_bridge).")
    p.add_argument("--calls", type=int, default=20, help="simultaneous calls (default 20)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each call (default 10)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--ticker", choices=["shared", "per-call"], default="shared",
                   help="our bridge's playout clock")
    p.add_argument("--loop", choices=["auto", "uvloop", "asyncio"], default="auto",
                   help="our bridge's event loop")
    p.add_argument("--speed", type=float, default=4.0, help="the realtime server's send speed")
    p.add_argument("--controls", choices=["on", "off", "both"], default="on",
                   help="our bridge with caller authentication (a static token) and its limits "
                   "(on, the default), or with --insecure-no-auth and every limit out of reach; "
                   "both: --rounds runs of each, interleaved, and what the controls cost")
    p.add_argument("--rounds", type=int, default=3,
                   help="with --controls both: runs of each setting (default 3)")
    p.add_argument("--no-baseline", action="store_true", help="skip the usual bridge")
    p.add_argument("--bridge-core", type=int, default=0)
    p.add_argument("--sim-core", type=int, default=1)
    args = p.parse_args(argv)
    if args.calls < 1 or args.seconds < 1 or args.rounds < 1:
        p.error("--calls >= 1, --seconds >= 1 and --rounds >= 1")
    from audiocore.commands._extras import missing_gateway

    if (status := missing_gateway("loadtest")) is not None:
        return status
    from audiocore.gateway.bridge import new_event_loop
    from audiocore.gateway.peers.acs_caller import acs_frames
    from audiocore.gateway.peers.realtime_server import prompt_pcm

    baseline = not args.no_baseline and args.controls != "both"
    missing = [n for n in ("websockets", "soxr") if not _importable(n)] if baseline else []
    if missing:  # the usual bridge's libraries
        print(f"audiocore loadtest: needs the bench extra (missing: {', '.join(missing)}); install it "
              "with: pip install 'audiocore[bench]' (or pass --no-baseline)", file=sys.stderr)
        return 2
    _pin(0, args.sim_core)
    speech = prompt_pcm(16000)
    frames, voiced = acs_frames(_script(args.seconds, speech, 16000), 16000)
    prompt = prompt_pcm(24000)[: int(2.5 * 24000) * 2]
    loop = new_event_loop("auto")
    if args.controls == "both":
        try:
            return _controls_cost(args, argv, loop, frames, voiced, prompt)
        finally:
            loop.close()
    try:
        ours = loop.run_until_complete(_run("ours", args, frames, voiced, prompt))
        base = None if args.no_baseline else loop.run_until_complete(
            _run("usual", args, frames, voiced, prompt))
    finally:
        loop.close()
    result: dict[str, Any] = {
        "calls": args.calls, "seconds": args.seconds, "ticker": args.ticker,
        "controls": args.controls,
        "calls_per_core": ours["calls_per_core"],
        "baseline_calls_per_core": base["calls_per_core"] if base else None,
        "speedup": round(ours["calls_per_core"] / base["calls_per_core"], 2) if base else None,
        "p50_added_latency_ms": ours["p50_added_latency_ms"],
        "p99_added_latency_ms": ours["p99_added_latency_ms"],
        "lost_frames": ours["lost_frames"],
        "ours": ours, "baseline": base,
        "command": "audiocore loadtest " + " ".join(argv),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    rows = [("", "audiocore", "usual bridge")]
    for key in ("cpu_us_per_call_second", "calls_per_core", "p50_added_latency_ms", "p99_added_latency_ms",
                "in_p99_ms", "out_p99_ms", "lost_frames", "barge_ins", "stop_audio_max_ms",
                "truncate_mismatches", "after_stop_frames", "bridge_core_load"):
        rows.append((key, str(ours.get(key)), str(base.get(key)) if base else "-"))
    width = max(len(r[0]) for r in rows)
    print(f"{args.calls} calls x {args.seconds:g} s over loopback (bridge pinned to core "
          f"{args.bridge_core}, simulators on core {args.sim_core})")
    for r in rows:
        print(f"  {r[0]:{width}}  {r[1]:>12}  {r[2]:>14}")
    if base:
        print(f"  calls per core: {result['speedup']}x the usual bridge (target >= 3x)")
    return 0
