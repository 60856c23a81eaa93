"""Attacks on the Sora gateway (issue 10), each bounded in count and time, over real sockets
on loopback against ``audiocore serve sora`` in a subprocess. Each asserts that the gateway's
RSS stays under a stated bound, that a legitimate realtime stream alongside keeps getting its
results (latency compared with delays measured in the same run, never a fixed time) and that
the attacker is refused or disconnected (GOAWAY ENHANCE_YOUR_CALM, 401, 404, a closed socket).
Run with ``-s`` to see each attack's figures."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import h2.config
import h2.connection
import h2.settings

from audiocore.gateway._h2 import STREAM_WINDOW
from audiocore.gateway.config import SoraConfig
from audiocore.protocols.sora import packet_bytes
from gateway_util import run
from sora_util import (
    PASSWORD,
    USER,
    ENHANCE_YOUR_CALM,
    PING,
    SETTINGS_EMPTY,
    Gateway,
    Lag,
    Legit,
    RssWatch,
    flood,
    frame,
    gateway,
    goaway_code,
    legit_stream,
    opening,
    refusal_lines,
    report,
    request_headers,
)

#: Packets of the legitimate stream: before the attack (its calm latency), then during it.
CALM, DURING = 50, 150
#: Attacking connections at once, and how many times each attacker reconnects.
PARALLEL, ROUNDS = 5, 4
#: RSS growth allowed to the gateway under each flood (MiB): a few streams' bounded queues
#: and one read buffer per attacking connection; the unmitigated floods grew without bound.
RSS_BOUND_MIB = 20


async def under_attack(gw: Gateway, attack_once: Callable[[], Awaitable[bytes]]) -> dict[str, object]:
    """The legitimate stream alone, one attacking connection alone (``burst``: connect to
    close, the most work a budget lets one connection cause), then PARALLEL x ROUNDS
    attacking connections while the legitimate stream runs."""
    calm = await legit_stream(gw.url, CALM)
    answers, bursts = [], []
    for _ in range(3):
        start = time.monotonic()
        answers.append(await attack_once())
        bursts.append(time.monotonic() - start)
    burst = max(bursts)
    with Lag() as lag, RssWatch(gw) as rss:
        during = asyncio.create_task(legit_stream(gw.url, DURING))
        for _ in range(ROUNDS):
            answers += await asyncio.gather(*(attack_once() for _ in range(PARALLEL)))
        legit = await during
    # A packet may wait for the bursts of the connections attacking at that moment, besides
    # its calm latency and this process's own scheduling delay.
    bound = 4 * max(calm.latencies) + 4 * lag.worst + PARALLEL * burst
    return {"calm": calm, "legit": legit, "lag": lag.worst, "rss": rss, "answers": answers, "burst": burst,
            "bound": bound}


def check(name: str, gw: Gateway, result: dict[str, object], reason: str, **extra: object) -> None:
    legit, rss, answers = result["legit"], result["rss"], result["answers"]
    assert isinstance(legit, Legit) and isinstance(rss, RssWatch) and isinstance(answers, list)
    codes = [goaway_code(a) for a in answers]
    calm = result["calm"]
    assert isinstance(calm, Legit)
    report(name, attackers=len(answers), rss_growth_mib=rss.growth_mib, calm_max_s=max(calm.latencies),
           legit_max_s=max(legit.latencies), bound_s=result["bound"], lag_s=result["lag"], burst_s=result["burst"],
           goaway_calm=codes.count(ENHANCE_YOUR_CALM), refusal_log_lines=len(refusal_lines(gw, reason)), **extra)
    assert codes == [ENHANCE_YOUR_CALM] * len(answers), codes
    assert legit.lines == DURING
    assert max(legit.latencies) <= result["bound"]  # type: ignore[operator]
    assert rss.growth_mib < RSS_BOUND_MIB
    assert refusal_lines(gw, reason)


def test_rapid_reset(tmp_path: Path) -> None:
    burst = opening(2000, reset=True)  # 2,000 streams opened and reset, 80 kB on the wire
    with gateway(tmp_path) as gw:
        result = run(under_attack(gw, lambda: flood(gw.port, burst, b"", 0)))
        check("rapid reset", gw, result, "http2 flood (resets)", streams_per_connection=2000)


def test_ping_flood(tmp_path: Path) -> None:
    with gateway(tmp_path) as gw:
        result = run(under_attack(gw, lambda: flood(gw.port, opening(), PING, 100_000)))
        check("PING flood", gw, result, "http2 flood (control)", pings_per_connection=100_000)


def test_settings_flood(tmp_path: Path) -> None:
    with gateway(tmp_path) as gw:
        result = run(under_attack(gw, lambda: flood(gw.port, opening(), SETTINGS_EMPTY, 100_000)))
        check("SETTINGS flood", gw, result, "http2 flood (control)", settings_per_connection=100_000)


def test_empty_data_flood(tmp_path: Path) -> None:
    with gateway(tmp_path) as gw:
        result = run(under_attack(gw, lambda: flood(gw.port, opening(1), frame(0, 0, 1), 100_000)))
        check("empty DATA flood", gw, result, "http2 flood (empty)", frames_per_connection=100_000)


# ---------------------------------------------------------------------------- memory per stream


async def tiny_packets_with_results_blocked(port: int, rounds_quiet: float = 1.0, limit_s: float = 10.0) -> int:
    """A client that grants the server no window for results (SETTINGS_INITIAL_WINDOW_SIZE 0)
    and sends empty and 1-byte header-mode packets to /speech (the test service: a result line
    per packet) as fast as the server's window allows, until the window stays shut for
    ``rounds_quiet`` seconds (or ``limit_s`` passes). Returns the body bytes the server took."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    conn.send_headers(1, request_headers("/speech"))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(conn.data_to_send())
    unit = packet_bytes(0, 0, b"") + packet_bytes(0, 1, b"\x00")  # two packets, 41 bytes
    opened = asyncio.Event()

    async def read() -> None:
        while data := await reader.read(1 << 16):
            conn.receive_data(data)  # window updates; results cannot come (window 0)
            writer.write(conn.data_to_send())
            opened.set()

    reading = asyncio.create_task(read())
    sent = 0
    loop = asyncio.get_running_loop()
    end = loop.time() + limit_s
    try:
        while loop.time() < end:
            room = min(conn.local_flow_control_window(1), conn.max_outbound_frame_size) // len(unit)
            if room:
                conn.send_data(1, unit * room)
                writer.write(conn.data_to_send())
                sent += len(unit) * room
                await writer.drain()
                continue
            opened.clear()
            try:
                await asyncio.wait_for(opened.wait(), rounds_quiet)
            except TimeoutError:
                break  # the server stopped granting window
    finally:
        reading.cancel()
        writer.close()
    return sent


def test_tiny_packets_with_the_result_window_at_zero(tmp_path: Path) -> None:
    """Memory per stream is bounded by packets, not payload bytes: 0- and 1-byte packets
    stop being acknowledged once 256 wait (stream_max_queued_packets), so the server takes at
    most its stream window (256 KiB) plus the queue bound (64 KiB) and a frame."""
    limit = STREAM_WINDOW + SoraConfig().stream_max_queued_bytes + 16384

    async def scenario() -> tuple[Legit, list[int], RssWatch]:
        with RssWatch(gw) as rss:
            legit = asyncio.create_task(legit_stream(gw.url, DURING))
            taken = await asyncio.gather(*(tiny_packets_with_results_blocked(gw.port) for _ in range(3)))
            return await legit, taken, rss

    with gateway(tmp_path) as gw:
        legit, taken, rss = run(scenario())
        report("tiny packets, result window 0", streams=len(taken), bytes_taken_max=max(taken),
               packets_taken_max=max(taken) * 2 // 41, bound_bytes=limit, rss_growth_mib=rss.growth_mib,
               legit_max_s=max(legit.latencies))
        assert legit.lines == DURING
        assert all(0 < t <= limit for t in taken), taken
        assert rss.growth_mib < RSS_BOUND_MIB


# ---------------------------------------------------------------------------- authentication, paths


def curl(*args: str) -> tuple[int, str]:
    """curl (nghttp2) with HTTP/2 prior knowledge: the status and the response head."""
    out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-D", "-",
                          "-w", "%{http_code}", "--max-time", "20", *args],
                         capture_output=True, text=True, timeout=60)
    head, _, code = out.stdout.rpartition("\n")
    return int(code), head.lower()


def test_basic_auth_with_curl(tmp_path: Path) -> None:
    speech = ["-X", "POST", "--data-binary", "", "-H", "sora-audio-streaming-language-code: ja-JP"]
    with gateway(tmp_path) as gw:
        nobody = curl(*speech, gw.url + "/speech")
        wrong = curl(*speech, "-u", f"{USER}:not the password", gw.url + "/speech")
        other = curl(*speech, "-u", f"intruder:{PASSWORD}", gw.url + "/speech")
        right = curl(*speech, "-u", f"{USER}:{PASSWORD}", gw.url + "/speech")
        health = curl(gw.url + "/.ok")
        report("basic auth", none=nobody[0], wrong_password=wrong[0], wrong_user=other[0], right=right[0],
               health=health[0])
        for code, head in (nobody, wrong, other):
            assert code == 401 and 'www-authenticate: basic realm="audiocore"' in head, head
        assert right[0] == 200 and health[0] == 200
        assert len(refusal_lines(gw, "unauthenticated")) >= 1
        assert PASSWORD not in gw.log()


def test_debug_paths_only_for_their_service(tmp_path: Path) -> None:
    post = ["-X", "POST", "--data-binary", "", "-H", "sora-audio-streaming-language-code: ja-JP",
            "-u", f"{USER}:{PASSWORD}"]
    with gateway(tmp_path, "--service", "ogg") as gw:
        codes = {p: curl(*post, gw.url + p)[0] for p in ("/dump", "/test", "/speech")}
        report("debug paths, service ogg", **codes)
        assert codes == {"/dump": 404, "/test": 404, "/speech": 200}
        assert refusal_lines(gw, "debug path not enabled")
        assert not (tmp_path / "dump.jsonl").exists()
    with gateway(tmp_path, "--service", "dump") as gw:
        assert curl(*post, gw.url + "/dump")[0] == 200 and curl(*post, gw.url + "/test")[0] == 404
    with gateway(tmp_path, "--service", "ogg", "--enable-debug-paths") as gw:
        assert curl(*post, gw.url + "/dump")[0] == 200 and curl(*post, gw.url + "/test")[0] == 200
