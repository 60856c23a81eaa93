"""Which HTTP/2 stack for the Sora gateway: h2 driven directly on asyncio (audiocore's
SoraServer) against hypercorn (an ASGI server, itself on h2), serving the same ``/test``
behaviour (header-mode packets in, one JSON line per packet out, each line flushed).

    .venv/bin/python bench/http2_servers.py [--rounds 3] [--streams 40] [--packets 500]

Each round starts each server in its own process (h2c on loopback) and drives it from this
process with audiocore's HTTP/2 client: (a) throughput: ``--streams`` concurrent streams over
4 connections, ``--packets`` 60-byte packets each, sent as fast as flow control allows, every
result line read; (b) latency: one stream, a packet sent and its line awaited, 300 times;
(c) how many DATA frames carry the 500 lines of a stream whose packets all arrive at once
(one per line when each line is flushed on its own).
Reported: packets/s, the server's CPU time per packet during the throughput run (from
/proc, so the client's work is not counted), and the round-trip median/p95. Rounds alternate between the stacks.
aiohttp is not a contender: it has no HTTP/2 server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from audiocore.gateway._signals import stop_on_signal, until_signal  # noqa: E402
from audiocore.protocols import sora  # noqa: E402

STACKS = ("h2", "hypercorn")
PAYLOAD = bytes(range(60))


# ---------------------------------------------------------------------------- servers


async def _serve_h2() -> None:
    from audiocore.gateway.config import SoraConfig
    from audiocore.gateway.sora import SoraServer

    async with SoraServer(SoraConfig(listen_port=0, audio_streaming_header=True, service="test",
                                          skip_basic_auth=True)) as server:
        stop = stop_on_signal()
        print(server.port, flush=True)
        await stop.wait()


async def _asgi_test(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def,type-arg]
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[1]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    parser = sora.BodyParser(header_mode=True)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        for packet in parser.feed(message.get("body", b"")):
            await send({"type": "http.response.body", "body": sora.test_result(len(packet.payload)),
                        "more_body": True})
        if not message.get("more_body"):
            break
    await send({"type": "http.response.body", "body": b""})


async def _serve_hypercorn() -> None:
    import socket

    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # accepting before the port is announced
    print(sock.getsockname()[1], flush=True)
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.loglevel = "WARNING"
    await serve(_asgi_test, config, shutdown_trigger=until_signal)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- load


async def _throughput(port: int, streams: int, packets: int) -> float:
    from audiocore.gateway.h2client import H2Client
    from audiocore.gateway.peers.sora_client import sora_headers

    url = f"http://127.0.0.1:{port}"
    clients = [await H2Client.connect(url) for _ in range(4)]
    body = b"".join(sora.packet_bytes(i, i, PAYLOAD) for i in range(packets))

    async def one(i: int) -> None:
        stream = await clients[i % 4].request("POST", "/test", sora_headers(session_id=str(i), connection_id="c"))
        sender = asyncio.create_task(_send(stream, body))
        lines = 0
        async for _ in stream.lines():
            lines += 1
        await sender
        assert lines == packets, (lines, packets)

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(streams)))
    elapsed = time.perf_counter() - start
    for c in clients:
        await c.aclose()
    return elapsed


async def _send(stream, body: bytes) -> None:  # type: ignore[no-untyped-def]
    for i in range(0, len(body), 1600):  # 20 packets per DATA frame
        await stream.send(body[i : i + 1600])
    await stream.end()


async def _latency(port: int, trips: int = 300) -> list[float]:
    from audiocore.gateway.h2client import H2Client
    from audiocore.gateway.peers.sora_client import sora_headers

    client = await H2Client.connect(f"http://127.0.0.1:{port}")
    stream = await client.request("POST", "/test", sora_headers(session_id="lat", connection_id="c"))
    times = []
    lines = stream.lines()
    for i in range(trips):
        start = time.perf_counter()
        await stream.send(sora.packet_bytes(i, i, PAYLOAD))
        await lines.__anext__()
        times.append(time.perf_counter() - start)
    await stream.end()
    await client.aclose()
    return times


async def _frames(port: int, packets: int = 500) -> int:
    """DATA frames carrying the lines of one stream of ``packets`` packets sent at once."""
    from audiocore.gateway.h2client import H2Client
    from audiocore.gateway.peers.sora_client import sora_headers

    client = await H2Client.connect(f"http://127.0.0.1:{port}")
    stream = await client.request("POST", "/test", sora_headers(session_id="frames", connection_id="c"))
    sender = asyncio.create_task(_send(stream, b"".join(sora.packet_bytes(i, i, PAYLOAD) for i in range(packets))))
    frames = lines = 0
    while chunk := await stream.read():
        frames += 1
        lines += chunk.count(b"\n")
    await sender
    await client.aclose()
    assert lines == packets
    return frames


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _round(stack: str, streams: int, packets: int) -> dict[str, float]:
    proc = subprocess.Popen([sys.executable, __file__, "--serve", stack], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    try:
        cpu0 = _cpu_seconds(proc.pid)
        elapsed = asyncio.run(asyncio.wait_for(_throughput(port, streams, packets), 300))
        cpu = _cpu_seconds(proc.pid) - cpu0
        lat = asyncio.run(_latency(port))
        frames = asyncio.run(_frames(port))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait()
    return {
        "packets_per_s": streams * packets / elapsed,
        "server_cpu_us_per_packet": cpu / (streams * packets) * 1e6,
        "rtt_median_us": statistics.median(lat) * 1e6,
        "rtt_p95_us": sorted(lat)[int(len(lat) * 0.95)] * 1e6,
        "frames_per_500_lines": frames,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", choices=STACKS, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--streams", type=int, default=40)
    parser.add_argument("--packets", type=int, default=500)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve_h2() if args.serve == "h2" else _serve_hypercorn())
        return 0
    results: dict[str, list[dict[str, float]]] = {s: [] for s in STACKS}
    for r in range(args.rounds):
        for stack in STACKS if r % 2 == 0 else reversed(STACKS):
            results[stack].append(_round(stack, args.streams, args.packets))
    print(f"{args.streams} streams x {args.packets} packets over 4 connections; median of {args.rounds} rounds")
    print(f"{'stack':<12}{'packets/s':>12}{'server CPU/packet':>20}{'RTT median':>13}{'RTT p95':>10}"
          f"{'DATA frames/500 lines':>24}")
    for stack in STACKS:
        med = {k: statistics.median(x[k] for x in results[stack]) for k in results[stack][0]}
        print(f"{stack:<12}{med['packets_per_s']:>12.0f}{med['server_cpu_us_per_packet']:>17.1f} us"
              f"{med['rtt_median_us']:>10.0f} us{med['rtt_p95_us']:>7.0f} us{med['frames_per_500_lines']:>24.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
