"""Record ``loopback.csv``: arrival times of 20 ms frames sent in real time over a real TCP
connection on 127.0.0.1 between two processes (run once; the recording is data).

The sender (a child process) paces 1000 frames of 640 bytes (20 ms of 16 kHz PCM16) to
absolute deadlines 20 ms apart, each preceded by an 8-byte header (frame index, payload
length). The receiver (this process) reads the stream with asyncio and notes when each frame
is complete, on the system-wide monotonic clock both processes share; arrival_ms counts from
the sender's first deadline, so arrival_ms - 20 * frame is the delay the frame saw.

Run: ``python tests/data/arrivals/record_loopback.py [--frames N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FRAME_MS = 20
PAYLOAD = 640
HEADER = struct.Struct("<II")


def send(port: int, frames: int, t0: float) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    payload = bytes(PAYLOAD)
    for i in range(frames):
        delay = t0 + i * FRAME_MS / 1000 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sock.sendall(HEADER.pack(i, PAYLOAD) + payload)
    sock.close()


async def receive(frames: int) -> list[tuple[float, int]]:
    done: asyncio.Future[list[tuple[float, int]]] = asyncio.get_running_loop().create_future()
    arrivals: list[tuple[float, int]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(frames):
            index, length = HEADER.unpack(await reader.readexactly(HEADER.size))
            await reader.readexactly(length)
            arrivals.append((time.monotonic(), index))
        writer.close()
        done.set_result(arrivals)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    t0 = time.monotonic() + 0.5
    child = subprocess.Popen([sys.executable, __file__, "--send", str(port), "--frames",
                              str(frames), "--t0", repr(t0)])
    try:
        result = await asyncio.wait_for(done, frames * FRAME_MS / 1000 + 30)
    finally:
        server.close()
        child.wait()
    return [((t - t0) * 1000, i) for t, i in result]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--send", type=int)
    parser.add_argument("--t0", type=float)
    args = parser.parse_args()
    if args.send is not None:
        send(args.send, args.frames, args.t0)
        return
    rows = asyncio.run(receive(args.frames))
    lines = ["arrival_ms,frame"] + [f"{a:.3f},{i}" for a, i in rows]
    (HERE / "loopback.csv").write_text("\n".join(lines) + "\n")
    delays = [a - 20 * i for a, i in rows]
    print(f"{len(rows)} frames; delay min {min(delays):.3f} ms, max {max(delays):.3f} ms")


if __name__ == "__main__":
    main()
