"""CPU per WebSocket message for the candidate libraries, server side and client side.

    python bench/ws_libraries.py [--messages 20000] [--connections 16] [--rounds 3] [--json PATH]

What is measured: the CPU time (user + system, the process's own ``time.process_time()``) a
process spends per message on loopback, for ACS-sized text frames (an ``AudioData`` message of
20 ms at 16 kHz: 950 bytes). Each message is received, handed to the application as the
library delivers it, and answered with a frame of the same size (the echo), so one "message"
below is one frame in plus one frame out: what a bridge does per frame and per direction.

- server side: the library under test serves (an echo server); the peer is a fixed client
  (picows on uvloop, the cheapest) in another process;
- client side: the library under test connects and ping-pongs; the peer is a fixed server
  (picows on uvloop).

``--connections`` connections each keep ``--inflight`` frames in flight (send, and send the next
when an echo returns). With one in flight the process under test wakes up for most frames, as
a gateway with many calls at 50 frames/s does; with 8 several frames share a wake-up, which
shows the libraries' own per-frame cost with less of the event loop's.
The two processes are pinned to different cores when there are two. Each configuration runs
once per round, the rounds interleaved (a burst of load elsewhere hits every contender of a
round alike); the median of the rounds is reported. Compression is off everywhere (base64
audio hardly compresses; ACS and the realtime services are not asked for it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

LIBRARIES = ("picows", "aiohttp", "websockets")
LOOPS = ("asyncio", "uvloop")
PEER = ("picows", "uvloop")


def frame_text() -> str:
    """An ACS AudioData message of 20 ms at 16 kHz (640 bytes of PCM)."""
    import base64

    pcm = bytes((i * 37) & 0xFF for i in range(640))
    data = base64.b64encode(pcm).decode("ascii")
    return json.dumps(
        {"kind": "AudioData", "audioData": {"timestamp": "2024-05-01T12:00:00.000Z",
                                            "participantRawID": "8:acs:0000", "data": data,
                                            "silent": False}},
        separators=(",", ":"),
    )


def _pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > 1:  # type: ignore[operator]
        os.sched_setaffinity(0, {core % os.cpu_count()})  # type: ignore[operator]


def _set_loop(loop: str) -> None:
    if loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


# ---------------------------------------------------------------- servers (echo)


async def _serve_picows() -> tuple[int, Any]:
    from picows import WSCloseCode, WSListener, WSMsgType, ws_create_server

    class Echo(WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == WSMsgType.TEXT:
                transport.send(WSMsgType.TEXT, frame.get_payload_as_bytes())
            elif frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(WSCloseCode.OK)
                transport.disconnect()

    server = await ws_create_server(lambda request: Echo(), "127.0.0.1", 0)
    return server.sockets[0].getsockname()[1], server


async def _serve_aiohttp() -> tuple[int, Any]:
    from aiohttp import WSMsgType, web

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False, autoping=True)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return site._server.sockets[0].getsockname()[1], runner  # type: ignore[union-attr]


async def _serve_websockets() -> tuple[int, Any]:
    from websockets.asyncio.server import serve

    async def handler(ws: Any) -> None:
        async for msg in ws:
            await ws.send(msg)

    server = await serve(handler, "127.0.0.1", 0, compression=None)
    return server.sockets[0].getsockname()[1], server


# ---------------------------------------------------------------- clients (ping-pong)


async def _client_picows(url: str, text: str, conns: int, per_conn: int, inflight: int,
                         ready: Any) -> None:
    from picows import WSCloseCode, WSListener, WSMsgType, ws_connect

    payload = text.encode()
    state: dict[str, Any] = {}

    class Ping(WSListener):  # type: ignore[misc]
        to_send = 0
        to_receive = 0

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type != WSMsgType.TEXT:
                return
            frame.get_payload_as_bytes()
            self.to_receive -= 1
            if self.to_send > 0:
                self.to_send -= 1
                transport.send(WSMsgType.TEXT, payload)
            if self.to_receive == 0:
                state["left"] -= 1
                if state["left"] == 0:
                    state["done"].set_result(None)

    pairs = [await ws_connect(Ping, url) for _ in range(conns)]
    for n in (max(per_conn // 10, inflight), per_conn):
        if n == per_conn:
            await ready()
        state["left"] = conns
        state["done"] = asyncio.get_running_loop().create_future()
        for transport, listener in pairs:
            listener.to_receive = n
            listener.to_send = n - inflight
            for _ in range(inflight):
                transport.send(WSMsgType.TEXT, payload)
        await state["done"]
    for transport, _ in pairs:
        transport.send_close(WSCloseCode.OK)
        transport.disconnect()


async def _ping_pong(send: Any, recv: Any, n: int, inflight: int) -> None:
    for _ in range(inflight):
        await send()
    for i in range(n):
        await recv()
        if i + inflight < n:
            await send()


async def _client_aiohttp(url: str, text: str, conns: int, per_conn: int, inflight: int,
                          ready: Any) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        sockets = [await session.ws_connect(url, compress=0) for _ in range(conns)]

        async def run(ws: Any, n: int) -> None:
            async def recv() -> None:
                msg = await ws.receive()
                assert msg.type == aiohttp.WSMsgType.TEXT

            await _ping_pong(lambda: ws.send_str(text), recv, n, inflight)

        await asyncio.gather(*(run(ws, max(per_conn // 10, inflight)) for ws in sockets))
        await ready()
        await asyncio.gather(*(run(ws, per_conn) for ws in sockets))
        for ws in sockets:
            await ws.close()


async def _client_websockets(url: str, text: str, conns: int, per_conn: int, inflight: int,
                             ready: Any) -> None:
    from websockets.asyncio.client import connect

    sockets = [await connect(url, compression=None) for _ in range(conns)]

    async def run(ws: Any, n: int) -> None:
        await _ping_pong(lambda: ws.send(text), ws.recv, n, inflight)

    await asyncio.gather(*(run(ws, max(per_conn // 10, inflight)) for ws in sockets))
    await ready()
    await asyncio.gather(*(run(ws, per_conn) for ws in sockets))
    for ws in sockets:
        await ws.close()


SERVERS = {"picows": _serve_picows, "aiohttp": _serve_aiohttp, "websockets": _serve_websockets}
CLIENTS = {"picows": _client_picows, "aiohttp": _client_aiohttp, "websockets": _client_websockets}


# ---------------------------------------------------------------- child processes


def _child_server(lib: str, loop: str) -> None:
    """Serve; print the port; answer each line on stdin with this process's CPU seconds."""
    _pin(0)
    _set_loop(loop)

    async def main() -> None:
        port, handle = await SERVERS[lib]()
        print(port, flush=True)
        reader = asyncio.StreamReader()
        await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while await reader.readline():
            print(repr(time.process_time()), flush=True)

    asyncio.run(main())


def _child_client(lib: str, loop: str, port: int, conns: int, messages: int, inflight: int) -> None:
    """Connect, warm up, print "ready", wait for a line, run; print CPU seconds used."""
    _pin(1)
    _set_loop(loop)
    text = frame_text()
    box: list[float] = []

    async def ready() -> None:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        box.append(time.process_time())

    async def main() -> None:
        await CLIENTS[lib](f"ws://127.0.0.1:{port}/", text, conns, messages // conns, inflight, ready)
        print(repr(time.process_time() - box[0]), flush=True)

    asyncio.run(main())


def trial(side: str, lib: str, loop: str, messages: int, conns: int, inflight: int) -> float:
    """CPU µs per message of the process under test (``side`` = "server" or "client")."""
    server_cfg = (lib, loop) if side == "server" else PEER
    client_cfg = (lib, loop) if side == "client" else PEER
    me = [sys.executable, __file__]
    server = subprocess.Popen([*me, "--child-server", *server_cfg], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert server.stdin and server.stdout
    try:
        port = int(server.stdout.readline())
        client = subprocess.Popen([*me, "--child-client", *client_cfg, str(port), str(conns),
                                   str(messages), str(inflight)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True)
        assert client.stdin and client.stdout
        assert client.stdout.readline().strip() == "ready"
        server.stdin.write("mark\n")
        server.stdin.flush()
        s0 = float(server.stdout.readline())
        client.stdin.write("go\n")
        client.stdin.flush()
        client_cpu = float(client.stdout.readline())
        client.wait(timeout=60)
        server.stdin.write("mark\n")
        server.stdin.flush()
        s1 = float(server.stdout.readline())
    finally:
        server.kill()
        server.wait()
    n = messages // conns * conns
    cpu = (s1 - s0) if side == "server" else client_cpu
    return cpu / n * 1e6


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child-server":
        _child_server(argv[1], argv[2])
        return 0
    if argv and argv[0] == "--child-client":
        _child_client(argv[1], argv[2], int(argv[3]), int(argv[4]), int(argv[5]), int(argv[6]))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=20000)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--inflight", type=int, nargs="+", default=[1, 8],
                   help="frames each connection keeps in flight (1: a wake-up per frame)")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    configs = [(side, lib, loop, k) for k in args.inflight for side in ("server", "client")
               for lib in LIBRARIES for loop in LOOPS]
    results: dict[tuple[str, str, str, int], list[float]] = {c: [] for c in configs}
    for r in range(args.rounds):
        for cfg in configs:
            results[cfg].append(trial(*cfg[:3], args.messages, args.connections, cfg[3]))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    print(f"CPU µs per message (one {len(frame_text())}-byte text frame in, one out), "
          f"{args.connections} connections, median of {args.rounds} rounds [min-max]")
    print(f"{'in flight':9} {'side':7} {'library':11} {'loop':8} {'µs/msg':>7}  range")
    rows = []
    for side, lib, loop, k in configs:
        xs = results[(side, lib, loop, k)]
        med = statistics.median(xs)
        rows.append({"inflight": k, "side": side, "library": lib, "loop": loop,
                     "us_per_message": med, "rounds": xs})
        print(f"{k:9} {side:7} {lib:11} {loop:8} {med:7.2f}  [{min(xs):.2f}-{max(xs):.2f}]")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"connections": args.connections, "messages": args.messages,
                       "frame_bytes": len(frame_text()), "results": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
