"""Untrusted bytes at the gateway: the GOAWAY filter in front of h2 (against a plain frame
splitter), and whatever a client sends first on a real socket."""

from __future__ import annotations

import asyncio
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from audiocore.gateway._h2 import PREFACE, H2Protocol
from audiocore.gateway.config import SoraConfig
from audiocore.gateway.peers.sora_client import packets_from_ogg, stream_opus
from audiocore.gateway.sora import SoraServer
from conftest import DATA
from gateway_util import run


class _Recorder(H2Protocol):
    def __init__(self, client_side: bool) -> None:
        super().__init__(client_side)
        self.goaways: list[int] = []

    def goaway_received(self, last_stream_id: int) -> None:
        self.goaways.append(last_stream_id)


def _frame(kind: int, payload: bytes, flags: int = 0, sid: int = 0) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + struct.pack(">I", sid) + payload


_frames = st.lists(st.one_of(
    st.builds(lambda k, p, s: _frame(k, p, sid=s), st.sampled_from([0, 1, 3, 4, 6, 8, 9]),
              st.binary(max_size=40), st.integers(0, 2**31 - 1)),
    st.builds(lambda last, code, debug: _frame(7, struct.pack(">II", last, code) + debug),
              st.integers(0, 2**32 - 1), st.sampled_from([0, 0, 1, 2]), st.binary(max_size=10)),
    st.builds(lambda p: _frame(7, p), st.binary(max_size=7)),  # too short to be a GOAWAY
), max_size=12)


def _expected(frames: list[bytes]) -> tuple[bytes, list[int]]:
    kept, goaways = [], []
    for f in frames:
        if f[3] == 7 and len(f) >= 17 and struct.unpack(">I", f[13:17])[0] == 0:
            goaways.append(struct.unpack(">I", f[9:13])[0] & 0x7FFFFFFF)
        else:
            kept.append(f)
    return b"".join(kept), goaways


@settings(max_examples=300)
@given(_frames, st.booleans(), st.lists(st.integers(0, 400), max_size=8), st.binary(max_size=20))
def test_goaway_filter_equals_a_plain_frame_splitter(frames: list[bytes], client_side: bool,
                                                     cuts: list[int], tail: bytes) -> None:
    stream = (b"" if client_side else PREFACE) + b"".join(frames)
    proto = _Recorder(client_side)
    out = b""
    last = 0
    for cut in sorted(c for c in cuts if c <= len(stream)) + [len(stream)]:
        out += proto._filter_goaway(stream[last:cut])
        last = cut
    kept, goaways = _expected(frames)
    assert out == (b"" if client_side else PREFACE) + kept
    assert proto.goaways == goaways
    # then any trailing bytes (a partial frame) pass through or wait, never raise
    proto._filter_goaway(tail)


def test_a_read_without_goaway_passes_the_filter_uncopied() -> None:
    frames = _frame(0, b"x" * 100, sid=1) + _frame(1, b"headers", flags=4, sid=3) + _frame(7, b"short")
    for client_side, data in ((True, frames), (False, PREFACE + frames)):
        proto = _Recorder(client_side)
        assert proto._filter_goaway(data) is data
        head, rest = frames[:50], frames[50:]  # cut inside a payload
        assert proto._filter_goaway(head) is head and proto._filter_goaway(rest) is rest
    proto = _Recorder(True)
    held = proto._filter_goaway(frames[:4])  # a header cut in two is held, then joined
    assert held == b"" and proto._filter_goaway(frames[4:]) == frames[:4] + frames[4:]


_PACKETS = packets_from_ogg(DATA / "speech-20ms.opus")[:3]


@settings(max_examples=25)
@given(st.one_of(
    st.binary(min_size=1, max_size=300),
    st.builds(lambda m, p, rest: m + b" " + p + b" HTTP/1.1\r\n" + rest, st.sampled_from([b"GET", b"POST", b"PRI"]),
              st.sampled_from([b"/.ok", b"/speech", b"/x", b"*"]), st.binary(max_size=100)),
    st.builds(lambda n, junk: PREFACE[:n] + junk, st.integers(0, 24), st.binary(max_size=100)),
))
def test_whatever_a_client_sends_first_the_server_survives(data: bytes) -> None:
    async def scenario() -> None:
        async with SoraServer(SoraConfig(listen_port=0, audio_streaming_header=True, shutdown_timeout_ms=200,
                                          skip_basic_auth=True)) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(data)
            writer.write_eof()
            answer = await asyncio.wait_for(reader.read(), 15)
            writer.close()
            # an HTTP/1.1 answer, HTTP/2 frames (SETTINGS first), or a closed connection
            assert answer == b"" or answer.startswith(b"HTTP/1.1 ") or answer[3:4] == b"\x04", answer[:40]
            result = await stream_opus(server.url + "/test", _PACKETS, realtime=False)
            assert result.status == 200 and len(result.lines) == 3

    run(scenario(), timeout=30)

