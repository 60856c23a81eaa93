"""Every ```python block of the README and docs/ runs.

The blocks are fragments of a user's program: they use names a program would already have
(``pcm``, ``packet``, ``ws``...). :func:`context` gives each such name a real value made here
from the bundled speech (no stand-ins for audiocore itself); a block with ``await`` runs
inside a coroutine; files a block reads or writes live in a temporary folder. A block that
is an interface outline rather than a program says so in an HTML comment just above it,
``<!-- docs-test: compile -->``, and is only compiled. A new name in a block fails here
until the context provides it, so an example cannot drift from the API.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
import shutil
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import audiocore
from conftest import DATA

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
_MARK = re.compile(r"<!--\s*docs-test:\s*(\w+)\s*-->\s*$")


def blocks() -> Iterator[Any]:
    for path in DOCS:
        text = path.read_text()
        for m in _FENCE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
            mark = _MARK.search(before)
            yield pytest.param(m.group(1), mark.group(1) if mark else "run",
                               id=f"{path.relative_to(ROOT)}:{line}")


class Sent(list[Any]):
    """A socket's sending side as a program holds it: what was sent, in order."""

    def send(self, message: Any) -> None:
        self.append(message)


def _speech(rate: int = 16000) -> bytes:
    with wave.open(str(DATA / f"speech-{rate // 1000}k.wav"), "rb") as w:
        return w.readframes(w.getnframes())


def context() -> dict[str, Any]:
    """The names the examples take as given, with real values."""
    from audiocore.protocols import acs, realtime, sora

    speech = _speech()
    frame = speech[16000:16640]  # 20 ms of speech at 16 kHz
    ogg = (DATA / "speech-20ms.opus").read_bytes()
    reader = audiocore.OggOpusReader()
    opus_packets = [p.data for p in reader.feed(ogg)]
    first_page = bytearray(ogg[: 27 + ogg[26] + sum(ogg[27 : 27 + ogg[26]])])
    first_page[22:26] = b"\0\0\0\0"
    session = realtime.RealtimeSession()
    session.receive('{"type":"response.created","response":{"id":"resp_1"}}')
    queue = audiocore.JitterQueue(24000)
    queue.mark("item_1")
    queue.push(_speech(24000)[:9600])
    for _ in range(3):
        queue.pop()
    acs_audio = '{"kind":"AudioData","audioData":{"data":"%s","silent":false}}' % audiocore.b64encode(frame).decode()
    delta = realtime.append(_speech(24000)[:960]).replace("input_audio_buffer.append", "response.audio.delta")
    delta = delta.replace('"audio"', '"delta"')
    delta = delta[:-1] + ',"response_id":"resp_1","item_id":"item_1","output_index":0,"content_index":0}'
    h2_headers = [(b":method", b"POST"), (b":path", b"/speech"), (b"sora-channel-id", b"ch"),
                  (b"sora-session-id", b"s1"), (b"sora-connection-id", b"c1"),
                  (b"sora-audio-streaming-language-code", b"ja-JP")]
    body = b"".join(sora.packet_bytes(1_700_000_000_000_000 + i * 20_000, i, p)
                    for i, p in enumerate(opus_packets[:5]))
    ns: dict[str, Any] = {
        "audiocore": audiocore, "acs": acs, "realtime": realtime, "sora": sora,
        "pcm": frame, "pcm16": frame, "frame": frame, "frame_20ms": frame, "pcm_20ms": frame,
        "payload": frame, "delta_pcm": _speech(24000)[:4800], "buf": bytearray(1 << 16),
        "n": 7, "seq": 7, "rtp_seq": 7, "item_id": "item_1", "played_ms": 40,
        "packet": opus_packets[10], "next_packet": opus_packets[11], "opus_packet": opus_packets[10],
        "packets": opus_packets[:20], "chunk": ogg[:4000], "network": [ogg[i : i + 1500] for i in range(0, len(ogg), 1500)],
        "page_with_zeroed_crc": bytes(first_page),
        "dec": audiocore.OpusDecoder(16000), "enc": audiocore.OpusEncoder(16000, 1),
        "text": audiocore.b64encode(frame).decode(), "data": frame,
        "acs_text": '{"kind":"AudioMetadata","audioMetadata":{"subscriptionId":"s","encoding":"PCM",'
                    '"sampleRate":16000,"channels":1,"length":640}}',
        "text_from_acs": acs_audio, "delta_text": delta, "text_from_ai": delta,
        "source": "speech.opus", "dest": "out.opus", "rate": 16000, "play": Sent().append,
        "stereo_f32": np.zeros((480, 2), np.float32),
        "ai_text": delta,
        "ws": Sent(), "acs_ws": Sent(), "ai_ws": Sent(), "stream": Sent(), "send": Sent().append,
        "session": session, "queue": queue, "h2_request_headers": h2_headers, "body": body,
    }
    return ns


def _short_opus(path: Path, packets: int = 50) -> None:
    """The bundled sentence's first second as an Ogg Opus file (streaming blocks pace it in
    real time)."""
    reader = audiocore.OggOpusReader()
    taken = [p.data for p in reader.feed((DATA / "speech-20ms.opus").read_bytes())][:packets]
    w = audiocore.OggOpusWriter(pre_skip=reader.head.pre_skip)
    path.write_bytes(w.headers() + b"".join(w.write(p) for p in taken[:-1]) + w.close(taken[-1]))


async def _with_servers(code: Any, ns: dict[str, Any]) -> None:
    """Run a block with the servers it talks to: ``sora_url``, a Sora gateway (test service,
    header mode, the basic-auth credentials the docs use); ``url``, a local realtime service,
    with ``jwks`` a key set of a local ACS token issuer (``acs_resource_id`` its audience)."""
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:
        if "sora_url" in code.co_names:
            from audiocore.gateway.config import SoraConfig
            from audiocore.gateway.sora import SoraServer

            config = SoraConfig(listen_port=0, service="test", audio_streaming_header=True,
                                basic_auth_username="sora", basic_auth_password="secret")
            ns["sora_url"] = (await stack.enter_async_context(SoraServer(config))).url
        if "url" in code.co_names:
            from audiocore.gateway.peers.acs_tokens import TokenIssuer
            from audiocore.gateway.peers.realtime_server import RealtimeServer

            ns["url"] = (await stack.enter_async_context(RealtimeServer(mode="echo"))).url
            ns["key"] = "sk-local-test-key"
            ns["acs_resource_id"] = "local-acs-resource"
            ns["jwks"] = str(TokenIssuer().write_jwks(Path("jwks.json")))
        await eval(code, ns)


@pytest.mark.parametrize(("source", "mode"), list(blocks()))
def test_docs_block_runs(source: str, mode: str, tmp_path: Path) -> None:
    if mode == "compile":
        ast.parse(source)
        return
    assert mode == "run", f"unknown docs-test mark {mode!r}"
    _short_opus(tmp_path / "speech.opus")
    shutil.copy(DATA / "speech-20ms.opus", tmp_path / "call.opus")
    (tmp_path / "tests").symlink_to(ROOT / "tests")
    (tmp_path / "out").mkdir()
    ns = context()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        # top-level await allowed: such a block compiles to a coroutine, run on a new loop
        code = compile(source, "<docs>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        if code.co_flags & inspect.CO_COROUTINE:
            asyncio.run(asyncio.wait_for(_with_servers(code, ns), 60))
        else:
            exec(code, ns)
    finally:
        os.chdir(cwd)
