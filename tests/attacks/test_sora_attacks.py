"""Attacks on the Sora gateway (issue 10), each bounded in count and time, over real sockets
on loopback against ``audiocore serve sora`` in a subprocess. Each asserts that the gateway's
RSS stays under a stated bound, that a legitimate realtime stream alongside keeps getting its
results (latency compared with delays measured in the same run, never a fixed time) and that
the attacker is refused or disconnected (GOAWAY ENHANCE_YOUR_CALM, 401, 404, a closed socket).
Run with ``-s`` to see each attack's figures."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings

from audiocore.gateway._h2 import STREAM_WINDOW
from audiocore.gateway.config import SoraConfig
from audiocore.gateway.h2client import H2Client
from audiocore.gateway.peers.sora_client import open_stream, sora_headers, stream_opus
from audiocore.gateway.recognizers import OggFile
from audiocore.protocols.sora import packet_bytes
from gateway_util import run, settle
from sora_util import (
    AUTH,
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
    """The legitimate stream alone (its calm latency), then PARALLEL x ROUNDS attacking
    connections while it runs. Each attacking connection's life (connect to the server's
    close) is timed: the most a legitimate packet should wait is the longest such life (the
    work the budgets let the connections in flight cause, one after the other on the
    gateway's loop) plus its calm latency and this process's own scheduling delay, doubled."""
    calm = await legit_stream(gw.url, CALM)
    lives: list[float] = []

    async def timed() -> bytes:
        start = time.monotonic()
        answer = await attack_once()
        lives.append(time.monotonic() - start)
        return answer

    answers = [await timed()]  # one alone first
    with Lag() as lag, RssWatch(gw) as rss:
        during = asyncio.create_task(legit_stream(gw.url, DURING))
        for _ in range(ROUNDS):
            answers += await asyncio.gather(*(timed() for _ in range(PARALLEL)))
        legit = await during
    bound = 2 * (max(lives) + max(calm.latencies) + lag.worst)
    return {"calm": calm, "legit": legit, "lag": lag.worst, "rss": rss, "answers": answers, "burst": max(lives),
            "bound": bound}


def check(name: str, gw: Gateway, result: dict[str, object], reason: str, **extra: object) -> None:
    legit, rss, answers = result["legit"], result["rss"], result["answers"]
    assert isinstance(legit, Legit) and isinstance(rss, RssWatch) and isinstance(answers, list)
    codes = [goaway_code(a) for a in answers]
    calm = result["calm"]
    assert isinstance(calm, Legit)
    report(name, attackers=len(answers), rss_growth_mib=rss.growth_mib, calm_max_s=max(calm.latencies),
           legit_max_s=max(legit.latencies), bound_s=result["bound"], lag_s=result["lag"], longest_attacker_life_s=result["burst"],
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
    per non-empty packet; empty ones are dropped) as fast as the server's window allows, until the window stays shut for
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
               packets_taken_max=max(taken) // 41, bound_bytes=limit, rss_growth_mib=rss.growth_mib,
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


# ---------------------------------------------------------------------------- connections


async def _connect_h2(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(opening())
    return reader, writer


async def _answered(reader: asyncio.StreamReader, timeout: float = 20) -> bool:
    """Whether the server speaks HTTP/2 on this connection (its SETTINGS arrive) rather than
    closing it."""
    try:
        data = await asyncio.wait_for(reader.read(9), timeout)
    except ConnectionError:
        return False
    return len(data) == 9 and data[3] == 4


def test_connection_cap(tmp_path: Path) -> None:
    cap, attackers = 8, 30

    async def scenario() -> tuple[Legit, list[bool], bool, RssWatch]:
        with RssWatch(gw) as rss:
            first = Legit()
            legit = asyncio.create_task(legit_stream(gw.url, DURING, first))
            await settle(lambda: first.sent, 20)  # its connection first
            conns = [await _connect_h2(gw.port) for _ in range(attackers)]
            answered = [await _answered(r) for r, _ in conns]
            result = await legit
            for _, w in conns:
                w.close()
            # the slots come back (once the gateway has seen the closes): a new connection is served
            end = asyncio.get_running_loop().time() + 20
            while True:
                try:
                    again = await legit_stream(gw.url, 5)
                    break
                except ConnectionError:
                    assert asyncio.get_running_loop().time() < end, "no slot came back"
                    await asyncio.sleep(0.05)
            return result, answered, again.lines == 5, rss

    with gateway(tmp_path, "--max-connections", str(cap)) as gw:
        legit, answered, again, rss = run(scenario())
        report("connection cap", cap=cap, attackers=attackers, served=answered.count(True),
               refused=answered.count(False), legit_max_s=max(legit.latencies), rss_growth_mib=rss.growth_mib,
               refusal_log_lines=len(refusal_lines(gw, "connection cap")))
        assert legit.lines == DURING and again
        assert answered.count(True) == cap - 1 and answered[: cap - 1] == [True] * (cap - 1)
        assert refusal_lines(gw, "connection cap")
        assert rss.growth_mib < RSS_BOUND_MIB


def test_idle_connections_and_streams_are_closed(tmp_path: Path) -> None:
    """A connection that sends nothing (no preface), one with no stream, and a stream that
    sends nothing are each closed after their timeout; a realtime stream beside them is not
    (its packets are activity), though it lasts longer than every timeout."""

    async def scenario() -> tuple[Legit, float, float, int | None]:
        loop = asyncio.get_running_loop()
        legit = asyncio.create_task(legit_stream(gw.url, DURING))  # 3 s
        start = loop.time()
        silent_r, silent_w = await asyncio.open_connection("127.0.0.1", gw.port)
        idle_r, idle_w = await _connect_h2(gw.port)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.send_headers(1, request_headers("/speech"))
        mute_r, mute_w = await asyncio.open_connection("127.0.0.1", gw.port)
        mute_w.write(conn.data_to_send())

        async def closed_after(reader: asyncio.StreamReader) -> float:
            while await asyncio.wait_for(reader.read(1 << 16), 30):
                pass
            return loop.time() - start

        async def reset_code() -> int | None:
            while data := await asyncio.wait_for(mute_r.read(1 << 16), 30):
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.StreamReset):
                        return int(event.error_code)
            return None

        silent, idle, code = await asyncio.gather(closed_after(silent_r), closed_after(idle_r), reset_code())
        for w in (silent_w, idle_w, mute_w):
            w.close()
        return await legit, silent, idle, code

    with gateway(tmp_path, "--handshake-timeout-ms", "1000", "--http2-idle-timeout", "1",
                 "--stream-idle-timeout-ms", "1000") as gw:
        legit, silent, idle, code = run(scenario())
        report("idle", no_preface_closed_s=silent, no_stream_closed_s=idle, mute_stream_reset_code=code,
               legit_lines=legit.lines)
        assert code == 8  # RST_STREAM CANCEL
        assert legit.lines == DURING
        assert refusal_lines(gw, "handshake timeout") and refusal_lines(gw, "idle connection")
        assert refusal_lines(gw, "idle stream")


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_fd_exhaustion(tmp_path: Path) -> None:
    """With RLIMIT_NOFILE at 64 and 100 connections held open, accept() fails with EMFILE:
    the gateway stops accepting for a second at a time and logs one line per 10 s (asyncio's
    own loop logged a traceback per attempt: 24.5 MB in 23 s); a stream already open carries
    on, and once the connections go, new ones are served again."""
    hold = 3.0  # seconds spent at the limit: three back-off periods

    async def scenario() -> tuple[Legit, int, float, RssWatch, bool]:
        loop = asyncio.get_running_loop()
        with RssWatch(gw) as rss:
            first = Legit()
            legit = asyncio.create_task(legit_stream(gw.url, DURING, first))
            await settle(lambda: first.sent, 20)
            conns = [await _connect_h2(gw.port) for _ in range(100)]  # the kernel's backlog takes them
            await settle(lambda: refusal_lines(gw, "out of file descriptors"), 30)
            cpu = _cpu_s(gw.proc.pid)
            end = loop.time() + hold
            while loop.time() < end:
                await asyncio.sleep(0.05)
            cpu = _cpu_s(gw.proc.pid) - cpu
            result = await legit
            log_bytes = len(gw.log())
            for _, w in conns:
                w.close()
            end = loop.time() + 30
            while True:  # served again once fds are free (the back-off is 1 s)
                try:
                    served = (await legit_stream(gw.url, 5)).lines == 5
                    break
                except ConnectionError:
                    assert loop.time() < end, "never served again"
                    await asyncio.sleep(0.05)
            return result, log_bytes, cpu, rss, served

    with gateway(tmp_path, "--max-connections", "1000", "--handshake-timeout-ms", "60000",
                 "--http2-idle-timeout", "0", nofile=64) as gw:
        legit, log_bytes, cpu, rss, served = run(scenario())
        lines = refusal_lines(gw, "out of file descriptors")
        report("fd exhaustion", nofile=64, held_connections=100, hold_s=hold, log_bytes=log_bytes,
               refusal_log_lines=len(lines), gateway_cpu_s_while_held=cpu, rss_growth_mib=rss.growth_mib,
               legit_max_s=max(legit.latencies))
        assert legit.lines == DURING and served
        assert 1 <= len(lines) <= 2  # one per 10 s interval
        assert log_bytes < 4096, gw.log()[:2000]
        assert rss.growth_mib < RSS_BOUND_MIB


def test_peer_that_never_reads_is_cut_off(tmp_path: Path) -> None:
    """With the frame budgets set out of the way, a PING flood from a peer that never reads
    its PING ACKs makes them pile up on the gateway's side: past max_write_buffer_bytes the
    connection is dropped instead of buffered without limit."""

    async def ping_without_reading() -> bool:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        writer.write(opening())
        try:
            for _ in range(400):  # 400 x 64 KiB of PINGs at most: 26 MB
                writer.write(PING * 3855)
                await asyncio.wait_for(writer.drain(), 30)
        except (ConnectionError, TimeoutError):
            return True
        finally:
            writer.close()
        return False

    async def scenario() -> tuple[bool, Legit, RssWatch]:
        with RssWatch(gw) as rss:
            legit = asyncio.create_task(legit_stream(gw.url, DURING))
            cut = await ping_without_reading()
            return cut, await legit, rss

    with gateway(tmp_path, "--http2-max-control-frames", str(10**9), "--max-write-buffer-bytes", "65536") as gw:
        cut, legit, rss = run(scenario())
        report("PINGs never read", cut_off=cut, rss_growth_mib=rss.growth_mib, legit_max_s=max(legit.latencies),
               refusal_log_lines=len(refusal_lines(gw, "peer not reading")))
        assert cut and refusal_lines(gw, "peer not reading")
        assert legit.lines == DURING
        assert rss.growth_mib < RSS_BOUND_MIB


# ---------------------------------------------------------------------------- big packets, Ogg names


def test_largest_packet_passes_beside_a_live_stream(tmp_path: Path) -> None:
    """One 16 MiB packet (max_payload_length 0xFFFFFF) in 16 KiB frames: reassembled in linear
    time (it cost 20 CPU-s, quadratic), its line comes, the live stream keeps its results. The
    RSS bound here is the packet twice over (the reassembly buffer and its copy) plus 20 MiB."""
    payload = bytes(0xFFFFFF)

    async def big() -> bytes:
        client = await H2Client.connect(gw.url)
        try:
            stream = await open_stream(client, "/speech", [*sora_headers(session_id="big", connection_id="b"), AUTH])
            assert await stream.response() == 200
            sender = asyncio.create_task(stream.send(packet_bytes(0, 0, payload), end_stream=True))
            body = await asyncio.wait_for(stream.body(), 120)
            await sender
            return body
        finally:
            await client.aclose()

    async def scenario() -> tuple[bytes, Legit, RssWatch, float]:
        cpu = _cpu_s(gw.proc.pid)
        with RssWatch(gw) as rss:
            legit = asyncio.create_task(legit_stream(gw.url, DURING))
            body = await big()
            return body, await legit, rss, _cpu_s(gw.proc.pid) - cpu

    with gateway(tmp_path, "--max-payload-length", str(0xFFFFFF)) as gw:
        body, legit, rss, cpu = run(scenario())
        report("16 MiB packet", rss_growth_mib=rss.growth_mib, gateway_cpu_s=cpu, legit_max_s=max(legit.latencies))
        assert body == b'{"channel_id":"ch_0","message":"n: 16777215","type":"test"}\n'
        assert legit.lines == DURING
        assert rss.growth_mib < 2 * 16 + RSS_BOUND_MIB


def test_ogg_names_for_a_reused_id_stay_o1(tmp_path: Path) -> None:
    """3,000 streams' files with one session and connection id: each is created with at most
    two opens and no directory listing (counted with an audit hook, independent of the code),
    the names are distinct, and a directory already holding .2 to .9999 still takes more."""
    events: list[str] = []
    counting = [False]

    def hook(event: str, args: tuple[object, ...]) -> None:
        if counting[0] and event in ("open", "os.listdir", "os.scandir"):
            events.append(event)

    sys.addaudithook(hook)
    (tmp_path / "s-c.ogg").write_bytes(b"x")
    for n in range(2, 10000):
        (tmp_path / f"s-c.{n}.ogg").write_bytes(b"x")
    names, worst = set(), 0
    for _ in range(3000):
        events.clear()
        counting[0] = True
        f = OggFile(tmp_path, "s", "c")
        counting[0] = False
        worst = max(worst, len(events))
        assert "os.listdir" not in events and "os.scandir" not in events
        f.write(b"OggS")
        f.close()
        names.add(f.path.name)
    report("Ogg names", files_before=9999, created=len(names), worst_opens_per_file=worst)
    assert len(names) == 3000 and worst <= 2

    async def stream_after() -> int:
        result = await stream_opus(f"http://127.0.0.1:{gw.port}/speech", [b"\xfc\xff\xfe"] * 3, realtime=False,
                                   session_id="s", connection_id="c", headers=[AUTH])
        return result.status

    with gateway(tmp_path, "--service", "ogg") as gw:
        assert run(stream_after()) == 200
