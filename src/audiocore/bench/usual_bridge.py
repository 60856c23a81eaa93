"""The ACS <-> realtime bridge written the usual way: the load test's baseline.

    python -m audiocore.bench.usual_bridge --upstream-url ws://... [--host 127.0.0.1] [--port 0]

websockets (server and client, one coroutine per connection direction), json, base64 and
soxr HQ streams, doing the same audio work as audiocore's bridge: every ACS frame resampled
and appended upstream; response audio resampled to the ACS rate and played as exact 20 ms
frames at real time by a per-call pacing task (an absolute schedule with asyncio.sleep);
barge-in on speech_started (StopAudio, playout cleared, response.cancel, truncate with the
milliseconds played, late deltas of the cancelled response dropped); the resampler's tail
flushed at the end of each response. No reconnects (not audio work). Prints
``listening on URL`` once ready, like ``audiocore serve bridge``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import signal
from typing import Any

import numpy as np
import soxr
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

UP_RATE = 24000


def _stream(a: int, b: int) -> Any:
    return soxr.ResampleStream(a, b, 1, dtype="int16", quality="HQ")


class UsualCall:
    def __init__(self, acs: Any, up: Any, rate: int) -> None:
        self.acs, self.up, self.rate = acs, up, rate
        self.fb = rate // 50 * 2
        self.rs_in = _stream(rate, UP_RATE)
        self.rs_out = _stream(UP_RATE, rate)
        self.playout = bytearray()
        self.pushed = 0  # bytes ever pushed to playout
        self.sent = 0  # bytes ever played
        self.bounds: collections.deque[tuple[int, str]] = collections.deque()  # (pushed at, item)
        self.item: str | None = None  # the item playing
        self.item_start = 0
        self.push_item: str | None = None
        self.received: dict[str, int] = {}  # item -> 24 kHz bytes received
        self.response_id: str | None = None
        self.cancelled: set[str] = set()
        self.wake = asyncio.Event()

    async def from_acs(self) -> None:
        async for msg in self.acs:
            m = json.loads(msg)
            if m.get("kind") != "AudioData":
                continue
            data = m["audioData"]
            pcm = base64.b64decode(data["data"]) or bytes(self.fb)
            out = self.rs_in.resample_chunk(np.frombuffer(pcm, np.int16))
            if out.size:
                await self.up.send(json.dumps({"type": "input_audio_buffer.append",
                                               "audio": base64.b64encode(out.tobytes()).decode()}))

    def _push(self, pcm: bytes) -> None:
        self.playout += pcm
        self.pushed += len(pcm)
        self.wake.set()

    def _flush_out(self) -> None:
        tail = self.rs_out.resample_chunk(np.zeros(0, np.int16), last=True).tobytes()
        self.rs_out = _stream(UP_RATE, self.rate)
        if tail:
            self._push(tail)
        if len(self.playout) % self.fb:
            self._push(bytes(self.fb - len(self.playout) % self.fb))

    async def from_up(self) -> None:
        async for msg in self.up:
            ev = json.loads(msg)
            t = ev.get("type")
            if t in ("response.audio.delta", "response.output_audio.delta"):
                if ev["response_id"] in self.cancelled:
                    continue
                pcm = base64.b64decode(ev["delta"])
                item = ev["item_id"]
                self.received[item] = self.received.get(item, 0) + len(pcm)
                if item != self.push_item:
                    self.push_item = item
                    self.bounds.append((self.pushed, item))
                out = self.rs_out.resample_chunk(np.frombuffer(pcm, np.int16))
                if out.size:
                    self._push(out.tobytes())
            elif t in ("response.audio.done", "response.output_audio.done"):
                self._flush_out()
            elif t == "response.created":
                self.response_id = ev["response"]["id"]
            elif t == "response.done":
                if ev["response"].get("id") == self.response_id:
                    self.response_id = None
            elif t == "input_audio_buffer.speech_started":
                await self.barge_in()

    async def barge_in(self) -> None:
        await self.acs.send(json.dumps({"Kind": "StopAudio", "AudioData": None, "StopAudio": {}}))
        played_ms = (self.sent - self.item_start) // 2 * 1000 // self.rate
        item = self.item
        self.playout.clear()
        self.bounds.clear()
        self.pushed = self.sent
        self.push_item = None
        self.item = None
        self.rs_out = _stream(UP_RATE, self.rate)
        if self.response_id is not None:
            await self.up.send(json.dumps({"type": "response.cancel", "response_id": self.response_id}))
            self.cancelled.add(self.response_id)
            self.response_id = None
        if item is not None:
            end = min(played_ms, self.received.get(item, 0) // 2 * 1000 // UP_RATE)
            await self.up.send(json.dumps({"type": "conversation.item.truncate", "item_id": item,
                                           "content_index": 0, "audio_end_ms": end}))

    async def pacer(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if len(self.playout) < self.fb:
                self.wake.clear()
                await self.wake.wait()
                due = loop.time()
            while len(self.playout) >= self.fb:
                while self.bounds and self.sent >= self.bounds[0][0]:
                    self.item_start, self.item = self.bounds.popleft()
                frame = bytes(self.playout[:self.fb])
                del self.playout[:self.fb]
                await self.acs.send(json.dumps({"Kind": "AudioData", "AudioData": {
                    "Data": base64.b64encode(frame).decode()}, "StopAudio": None}))
                self.sent += self.fb
                due += 0.02
                await asyncio.sleep(max(0.0, due - loop.time()))


async def main(args: argparse.Namespace) -> None:
    session = {"input_audio_format": "pcm16", "output_audio_format": "pcm16",
               "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                                  "silence_duration_ms": 500, "create_response": True,
                                  "interrupt_response": False}}

    async def handler(acs: Any) -> None:
        meta = json.loads(await acs.recv())
        rate = meta["audioMetadata"]["sampleRate"]
        async with connect(args.upstream_url, compression=None, max_size=16 << 20) as up:
            await up.send(json.dumps({"type": "session.update", "session": session}))
            call = UsualCall(acs, up, rate)
            tasks = [asyncio.create_task(c) for c in (call.from_acs(), call.from_up(), call.pacer())]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            except ConnectionClosed:
                pass
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serve(handler, args.host, args.port, compression=None, max_size=1 << 20) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"listening on ws://{args.host}:{port}/", flush=True)
        await stop.wait()


def cli(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m audiocore.bench.usual_bridge",
                                description="The ACS <-> realtime bridge written the usual way.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--upstream-url", required=True)
    asyncio.run(main(p.parse_args(argv)))


if __name__ == "__main__":
    cli()
