"""Helpers for the Sora gateway attack tests: the gateway in a subprocess (its RSS read from
/proc, its log in a file), attack frames written by hand from RFC 9113's layouts (the server's
h2 library never builds them), a reader of the server's frames, and a legitimate realtime
stream whose per-packet latency is measured beside the test process's own scheduling lag."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.settings

from audiocore.commands.serve import PASSWORD_ENV
from audiocore.gateway.h2client import H2Client
from audiocore.gateway.peers.sora_client import basic_authorization, open_stream, sora_headers
from audiocore.protocols.sora import packet_bytes

USER, PASSWORD = "sora", "attack-suite password"
AUTH = basic_authorization(USER, PASSWORD)
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
ENHANCE_YOUR_CALM = 0xB
GOAWAY, RST_STREAM = 7, 3


# ---------------------------------------------------------------------------- the gateway


@dataclass
class Gateway:
    proc: subprocess.Popen[str]
    url: str
    port: int
    log_path: Path

    def rss_kib(self) -> int:
        """The gateway's resident set (KiB), from /proc."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def gateway(tmp_path: Path, *flags: str, nofile: int | None = None, timeout: float = 60) -> Iterator[Gateway]:
    """``audiocore serve sora`` on 127.0.0.1, any port, service test, header mode, basic auth
    (``AUTH``; the password from the environment), plus ``flags``; ``nofile``: its RLIMIT_NOFILE. Stopped (SIGINT, then killed)
    and reaped at exit."""
    log_path = tmp_path / f"gateway-{time.monotonic_ns()}.log"
    args = [sys.executable, "-m", "audiocore", "serve", "sora", "--listen-port", "0", "--service", "test",
            "--audio-streaming-header", "--basic-auth-username", USER,
            "--ogg-dir", str(tmp_path), "--dump-file", str(tmp_path / "dump.jsonl"), *flags]

    def limit() -> None:
        if nofile is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log_file, text=True,
                                env={**os.environ, PASSWORD_ENV: PASSWORD},  # the password stays out of ps
                                preexec_fn=limit if nofile is not None else None)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        assert ready, f"no line from the gateway within {timeout} s: {log_path.read_text()}"
        line = proc.stdout.readline()
        assert "listening on http://" in line, line + log_path.read_text()
        url = line.split("listening on ", 1)[1].split(" ", 1)[0]
        yield Gateway(proc, url, int(url.rsplit(":", 1)[1]), log_path)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.communicate(timeout=30)


# ---------------------------------------------------------------------------- frames by hand


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One HTTP/2 frame (RFC 9113 section 4.1)."""
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream_id) + payload


SETTINGS_EMPTY = frame(4, 0, 0)
PING = frame(6, 0, 0, b"attack!!")


def request_headers(path: str = "/speech") -> list[tuple[str, str]]:
    return [(":method", "POST"), (":scheme", "http"), (":authority", "127.0.0.1"), (":path", path),
            *sora_headers(session_id="atk", connection_id="atk"), AUTH]


def opening(streams: int = 0, reset: bool = False, path: str = "/speech", window: int | None = None) -> bytes:
    """Preface, SETTINGS and ``streams`` requests (HEADERS, HPACK by the ``h2`` library; each
    followed by RST_STREAM CANCEL when ``reset``). ``window``: our INITIAL_WINDOW_SIZE."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    if window is not None:
        conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
    for _ in range(streams):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, request_headers(path))
        if reset:
            conn.reset_stream(sid, 8)
    return conn.data_to_send()


def frames_of(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """(type, flags, stream id, payload) of each whole frame in ``data`` (a server's bytes)."""
    out, pos = [], 0
    while len(data) - pos >= 9:
        length = int.from_bytes(data[pos : pos + 3], "big")
        if len(data) - pos - 9 < length:
            break
        kind, flags = data[pos + 3], data[pos + 4]
        sid = int.from_bytes(data[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
        out.append((kind, flags, sid, data[pos + 9 : pos + 9 + length]))
        pos += 9 + length
    return out


def goaway_code(data: bytes) -> int | None:
    """The error code of the server's GOAWAY in ``data`` (None: none)."""
    for kind, _, _, payload in frames_of(data):
        if kind == GOAWAY:
            return int.from_bytes(payload[4:8], "big")
    return None


async def flood(port: int, head: bytes, unit: bytes, count: int, timeout: float = 30) -> bytes:
    """Connect, send ``head`` then ``unit`` ``count`` times (in big writes, never reading
    until all is sent or the server has closed), then read until the server closes; what the
    server sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    got = bytearray()
    try:
        writer.write(head)
        per = max(1, 65536 // max(1, len(unit)))
        batch = unit * per
        sent = 0
        try:
            while unit and sent < count:
                n = min(per, count - sent)
                writer.write(batch if n == per else unit * n)
                sent += n
                await asyncio.wait_for(writer.drain(), timeout)
        except (ConnectionError, TimeoutError):
            pass
        with contextlib.suppress(ConnectionError):
            while chunk := await asyncio.wait_for(reader.read(1 << 16), timeout):
                got += chunk
    finally:
        writer.close()
    return bytes(got)


# ---------------------------------------------------------------------------- the legitimate stream


@dataclass
class Legit:
    """A realtime stream (one small packet per 20 ms) to /speech of the test service: the
    latency of each packet's result line (s)."""

    latencies: list[float] = field(default_factory=list)
    sent: int = 0
    lines: int = 0


async def legit_stream(url: str, packets: int, legit: Legit | None = None) -> Legit:
    legit = legit or Legit()
    client = await H2Client.connect(url)
    try:
        stream = await open_stream(client, "/speech", [*sora_headers(session_id="legit", connection_id="l"), AUTH])
        assert await stream.response() == 200
        sent_at: list[float] = []

        async def read() -> None:
            async for line in stream.lines():
                assert b'"type":"test"' in line, line
                legit.latencies.append(time.monotonic() - sent_at[legit.lines])
                legit.lines += 1

        reader = asyncio.create_task(read())
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(packets):
            await asyncio.sleep(max(0.0, start + 0.02 * i - loop.time()))
            sent_at.append(time.monotonic())
            await stream.send(packet_bytes(time.time_ns() // 1000, i, b"\xfc\xff\xfe"))
            legit.sent += 1
        await stream.end()
        await asyncio.wait_for(reader, 60)
    finally:
        await client.aclose()
    return legit


class Lag:
    """The test process's own scheduling delay: how late 10 ms sleeps wake (s)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + 0.01
            await asyncio.sleep(0.01)
            self.worst = max(self.worst, loop.time() - due)

    def __enter__(self) -> Lag:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


class RssWatch:
    """Samples the gateway's RSS every 20 ms while in the block; ``peak`` (KiB)."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.start = gw.rss_kib()
        self.peak = self.start
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, self.gw.rss_kib())
            await asyncio.sleep(0.02)

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.start) / 1024

    def __enter__(self) -> RssWatch:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self.peak = max(self.peak, self.gw.rss_kib())


def refusal_lines(gw: Gateway, reason: str) -> list[str]:
    return [line for line in gw.log().splitlines() if f"refused: {reason}" in line]


def report(name: str, **figures: Any) -> None:
    """Print an attack's figures (shown with ``pytest -s``; collected for the docs)."""
    print(f"\n[{name}] " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                    for k, v in figures.items()), file=sys.stderr)


def wait_until(cond: Callable[[], object], timeout: float) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)

