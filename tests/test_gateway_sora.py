"""The Sora gateway over real sockets on loopback: our HTTP/2 client, curl (nghttp2) as an
independent client, opusinfo/PyAV/OggOpusReader reading what the gateway wrote."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import h2.exceptions
import pytest

import audiocore
from audiocore.gateway._h2 import PREFACE
from audiocore.gateway.config import ConfigError, SoraConfig
from audiocore.gateway.h2client import ClientStream, H2Client, client_ssl_context
from audiocore.gateway.peers.sora_client import (
    open_stream,
    packets_from_ogg,
    packets_from_wav,
    sora_headers,
    stream_opus,
)
from audiocore.gateway.recognizers import (
    AudioChunk,
    Recognizer,
    RecognizerRefused,
    RecognizerStream,
    StreamInfo,
    dump_line,
    result_line,
)
from audiocore.gateway._h2 import FloodLimits, FloodMeter
from audiocore.gateway.sora import QUEUE_HIGH, SHUTDOWN_REASON, SoraServer
from audiocore.protocols.sora import SILENCE_PACKET, StreamHeaders, error_result, packet_bytes
from conftest import DATA
from gateway_util import make_pki, opusinfo, pyav_packets, run, server_process, settle

PACKETS = packets_from_ogg(DATA / "speech-20ms.opus")


def config(tmp_path: Path, **changes: object) -> SoraConfig:
    base = SoraConfig(listen_port=0, ogg_dir=str(tmp_path), dump_file=str(tmp_path / "dump.jsonl"),
                      audio_streaming_header=True, skip_basic_auth=True, enable_debug_paths=True)
    return base.replace(**changes)


def body_of(packets: list[bytes], seq0: int = 0) -> bytes:
    ts = 1_700_000_000_000_000
    return b"".join(packet_bytes(ts + 20_000 * i, seq0 + i, p) for i, p in enumerate(packets))


async def read_line(stream: ClientStream, timeout: float = 20) -> bytes:
    """The next DATA chunk, which must be exactly one result line."""
    chunk = await asyncio.wait_for(stream.read(), timeout)
    assert chunk.endswith(b"\n") and chunk.count(b"\n") == 1, chunk
    return chunk


# ---------------------------------------------------------------------------- header mode


def test_header_mode_awkward_splits_make_a_valid_ogg_with_fillers(tmp_path: Path) -> None:
    packets = PACKETS[:120]
    before, after = packets[:60], packets[60:]

    async def scenario() -> None:
        async with SoraServer(config(tmp_path, service="ogg", time_to_wait_for_opus_packet_ms=500)) as server:
            client = await H2Client.connect(server.url)
            stream = await open_stream(client, "/speech", sora_headers(session_id="sess", connection_id="conn"))
            assert await stream.response() == 200
            body = body_of(before)
            cuts = [7, 18, 20, 23]  # mid timestamp, mid length field, end of header, in a payload
            pos = 0
            for cut in cuts:
                await stream.send(body[pos:cut])
                pos = cut
            one_byte_end = pos + 400
            while pos < one_byte_end:  # one byte per DATA frame for a stretch
                await stream.send(body[pos : pos + 1])
                pos += 1
            rng = random.Random(7)
            while pos < len(body):  # several packets per frame, and cuts anywhere
                n = rng.randint(1, 700)
                await stream.send(body[pos : pos + n])
                pos += n
            await asyncio.sleep(1.3)  # a pause past the 500 ms timeout: fillers
            await stream.send(body_of(after, seq0=60))
            await stream.end()
            assert await stream.body() == b""  # the ogg service sends no results
            assert stream.reset_code is None
            await client.aclose()

    run(scenario())
    path = tmp_path / "sess-conn.ogg"
    report = opusinfo(path)
    assert "Channels: 1" in report and "Pre-skip: 3840" in report
    got = packets_from_ogg(path)
    assert pyav_packets(path) == got
    fillers = [i for i, p in enumerate(got) if p == SILENCE_PACKET]
    assert fillers and fillers == list(range(60, 60 + len(fillers))), fillers
    assert 1 <= len(fillers) <= 3
    assert got[:60] == before and got[60 + len(fillers):] == after
    head = audiocore.OggOpusReader()
    head.feed(path.read_bytes())
    assert head.head is not None and head.head.input_rate == 48000 and head.head.channels == 1


def test_test_path_sends_each_line_as_its_own_frame_while_the_stream_is_open(tmp_path: Path) -> None:
    packets = PACKETS[:40]

    async def scenario() -> None:
        async with SoraServer(config(tmp_path)) as server:
            client = await H2Client.connect(server.url)
            stream = await open_stream(client, "/test")
            assert await stream.response() == 200
            assert (b"content-type", b"application/json") in stream.headers
            body = body_of(packets)
            # each packet's line arrives before the next packet is sent, even when the packet
            # itself was cut in two frames
            pos = 0
            for p in packets:
                size = 20 + len(p)
                half = random.Random(size).randint(1, size - 1)
                await stream.send(body[pos : pos + half])
                await stream.send(body[pos + half : pos + size])
                pos += size
                line = await read_line(stream)
                assert json.loads(line) == {"channel_id": "ch_0", "message": f"n: {len(p)}", "type": "test"}
                assert line == b'{"channel_id":"ch_0","message":"n: %d","type":"test"}\n' % len(p)
            await stream.end()
            assert await stream.read() == b""
            await client.aclose()

    run(scenario())


def test_dump_path_lines_and_file(tmp_path: Path) -> None:
    packets = PACKETS[:25]

    async def scenario() -> list[bytes]:
        async with SoraServer(config(tmp_path)) as server:
            client = await H2Client.connect(server.url)
            stream = await open_stream(client, "/dump", sora_headers("en-US", "chan", "s1", "c1"))
            assert await stream.response() == 200
            lines = []
            body = body_of(packets)
            await stream.send(body[:3])
            await stream.send(body[3:])  # all packets but the first completed by one frame
            for _ in packets:
                lines.append(await read_line(stream))
            await stream.end()
            assert await stream.read() == b""
            await client.aclose()
            return lines

    before = int(time.time() * 1000)
    lines = run(scenario())
    after = int(time.time() * 1000)
    for line, packet in zip(lines, packets, strict=True):
        obj = json.loads(line)
        assert list(obj) == ["timestamp", "channel_id", "connection_id", "language_code",
                             "sample_rate", "channel_count", "payload"]
        assert before <= obj["timestamp"] <= after
        assert (obj["channel_id"], obj["connection_id"], obj["language_code"]) == ("chan", "c1", "en-US")
        assert (obj["sample_rate"], obj["channel_count"]) == (48000, 1)
        assert base64.b64decode(obj["payload"], validate=True) == packet
    assert (tmp_path / "dump.jsonl").read_bytes() == b"".join(lines)


def test_raw_mode_takes_each_frame_as_a_packet(tmp_path: Path) -> None:
    packets = PACKETS[:30]

    async def scenario() -> None:
        async with SoraServer(config(tmp_path, audio_streaming_header=False, service="ogg")) as server:
            result = await stream_opus(server.url + "/speech", packets, header_mode=False, realtime=False,
                                       session_id="raw", connection_id="one")
            assert result.status == 200 and result.lines == [] and result.reset_code is None
            result = await stream_opus(server.url + "/test", packets, header_mode=False, realtime=False)
            assert [json.loads(x)["message"] for x in result.lines] == [f"n: {len(p)}" for p in packets]

    run(scenario())
    path = tmp_path / "raw-one.ogg"
    opusinfo(path)
    assert packets_from_ogg(path) == packets == pyav_packets(path)


def test_server_and_client_on_uvloop(tmp_path: Path) -> None:
    """The bridge runs on uvloop, whose transports are not asyncio.Transport subclasses: the
    Sora server and client must work there too (a header-mode stream to /speech and /test)."""
    import uvloop

    packets = PACKETS[:30]

    async def scenario() -> None:
        assert "uvloop" in type(asyncio.get_running_loop()).__module__
        async with SoraServer(config(tmp_path, service="ogg")) as server:
            result = await stream_opus(server.url + "/speech", packets, realtime=False,
                                       session_id="uv", connection_id="one")
            assert result.status == 200 and result.reset_code is None
            result = await stream_opus(server.url + "/test", packets, realtime=False)
            assert len(result.lines) == len(packets)

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()
    path = tmp_path / "uv-one.ogg"
    opusinfo(path)
    assert packets_from_ogg(path) == packets


def test_realtime_pacing_from_a_wav_sends_results_as_it_goes(tmp_path: Path) -> None:
    packets = packets_from_wav(DATA / "speech-16k.wav")[:25]  # 0.5 s encoded on the fly

    async def scenario() -> None:
        async with SoraServer(config(tmp_path)) as server:
            start = time.monotonic()
            result = await stream_opus(server.url + "/test", packets, realtime=True)
            elapsed = time.monotonic() - start
            assert result.status == 200 and len(result.lines) == len(packets)
            assert elapsed >= 0.45  # paced: 25 packets of 20 ms cannot go out sooner
            # results came while the stream was open, not in one burst at the end
            assert result.line_times[0] < result.line_times[-1] - 0.2

    run(scenario())


def test_fillers_from_the_start_and_the_ogg_tee(tmp_path: Path) -> None:
    async def scenario() -> None:
        cfg = config(tmp_path, time_to_wait_for_opus_packet_ms=300, enable_ogg_file_output=True)
        async with SoraServer(cfg) as server:
            client = await H2Client.connect(server.url)
            stream = await open_stream(client, "/test", sora_headers(session_id="tee", connection_id="t"))
            assert await stream.response() == 200
            # silent from the start: a filler per 300 ms, each answered at once
            first = await read_line(stream)
            assert first == b'{"channel_id":"ch_0","message":"n: 3","type":"test"}\n'
            assert await read_line(stream) == first
            await stream.send(body_of(PACKETS[:10]), end_stream=True)
            lines = [x async for x in stream.lines()]
            assert [json.loads(x)["message"] for x in lines[-10:]] == [f"n: {len(p)}" for p in PACKETS[:10]]
            await client.aclose()

    run(scenario())
    path = tmp_path / "tee-t.ogg"  # the /test service, and the Ogg file beside it
    got = packets_from_ogg(path)
    assert got[-10:] == PACKETS[:10] and set(got[:-10]) == {SILENCE_PACKET} and len(got) >= 12
    opusinfo(path)


# ---------------------------------------------------------------------------- status codes


def test_ok_path_and_refusals(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with SoraServer(config(tmp_path)) as server:
            client = await H2Client.connect(server.url)
            ok = await client.request("GET", "/.ok", end_stream=True)
            assert await ok.response() == 200
            assert json.loads(await ok.body()) == {"version": audiocore.__version__}
            missing = await open_stream(client, "/speech", sora_headers(language_code=None))
            await missing.send(body_of(PACKETS[:3]))
            assert await missing.response() == 500
            # the reference's web framework (echo's DefaultHTTPErrorHandler, json.Encoder):
            # {"message": http.StatusText(code)} and a newline, application/json
            assert await missing.body() == b'{"message":"Internal Server Error"}\n'
            assert (b"content-type", b"application/json") in missing.headers
            empty = await open_stream(client, "/test", sora_headers(language_code=""))
            assert await empty.response() == 500
            for method, path, status, body, allow in (
                ("GET", "/speech", 405, b'{"message":"Method Not Allowed"}\n', b"POST"),
                ("POST", "/nope", 404, b'{"message":"Not Found"}\n', None),
                ("POST", "/.ok", 405, b'{"message":"Method Not Allowed"}\n', b"GET, HEAD"),
                ("HEAD", "/nope", 404, b"", None),  # HEAD: the status alone, as the reference
            ):
                s = await client.request(method, path, sora_headers(), end_stream=True)
                assert await s.response() == status, (method, path)
                assert await s.body() == body, (method, path)
                assert dict(s.headers).get(b"allow") == allow  # RFC 9110 section 15.5.6
            # the connection is still fine afterwards
            result = await stream_opus(server.url + "/test/", PACKETS[:3], realtime=False, client=client)
            assert result.status == 200 and len(result.lines) == 3
            await client.aclose()

    run(scenario())


def _curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "--max-time", "30", *args], capture_output=True, text=True, timeout=60)


def test_independent_client_curl(tmp_path: Path) -> None:
    body = tmp_path / "body.bin"
    packets = PACKETS[:10]
    body.write_bytes(body_of(packets))

    async def scenario() -> None:
        async with SoraServer(config(tmp_path)) as server:
            def curl_all() -> list[subprocess.CompletedProcess[str]]:
                h = ["-H", "sora-audio-streaming-language-code: ja-JP"]
                return [
                    _curl("--http2-prior-knowledge", "-w", "\n%{http_code} %{http_version}", server.url + "/.ok"),
                    _curl("--http2-prior-knowledge", *h, "--data-binary", f"@{body}", "-w", "%{http_code}",
                          server.url + "/test"),
                    _curl("--http2-prior-knowledge", "-X", "POST", "-w", "%{http_code}", server.url + "/test"),
                    _curl("--http1.1", *h, "--data-binary", f"@{body}", "-w", "%{http_code}", server.url + "/speech"),
                    _curl("--http1.1", "-w", "\n%{http_code}", server.url + "/.ok"),
                ]

            ok, test, missing, http1, ok1 = await asyncio.to_thread(curl_all)
            assert ok.stdout == '{"version":"%s"}\n\n200 2' % audiocore.__version__, ok
            lines = test.stdout.splitlines()
            assert lines[-1] == "200" and [json.loads(x)["message"] for x in lines[:-1]] == [
                f"n: {len(p)}" for p in packets], test
            assert missing.stdout == '{"message":"Internal Server Error"}\n500', missing
            assert http1.stdout == '{"message":"Bad Request"}\n400', http1
            assert ok1.stdout == '{"version":"%s"}\n\n200' % audiocore.__version__, ok1

    run(scenario())


def test_http1_request_on_a_raw_socket_gets_400(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with SoraServer(config(tmp_path)) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"POST /speech HTTP/1.1\r\nHost: x\r\nsora-audio-streaming-language-code: ja-JP\r\n"
                         b"Content-Length: 100000\r\n\r\n" + bytes(50000))
            answer = await reader.read()
            assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer
            assert answer.endswith(b'\r\n\r\n{"message":"Bad Request"}\n'), answer
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"\x16\x03\x01 not http at all\r\n\r\n")
            assert (await reader.read()).startswith(b"HTTP/1.1 400 ")
            writer.close()

    run(scenario())


# ---------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls_config(tmp_path: Path, pki: dict[str, Path], verify: bool) -> SoraConfig:
    return config(tmp_path, https=True, tls_fullchain_file=str(pki["server"]), tls_privkey_file=str(pki["server_key"]),
                  tls_verify_cacert_path=str(pki["ca"]) if verify else "")


def test_tls_alpn_h2(tmp_path: Path, pki: dict[str, Path]) -> None:
    async def scenario() -> None:
        async with SoraServer(tls_config(tmp_path, pki, verify=False)) as server:
            assert server.url.startswith("https://127.0.0.1:")
            context = client_ssl_context(cafile=str(pki["ca"]))
            result = await stream_opus(server.url + "/test", PACKETS[:5], realtime=False, ssl_context=context)
            assert result.status == 200 and len(result.lines) == 5
            out = await asyncio.to_thread(
                _curl, "--http2", "--cacert", str(pki["ca"]), "-H", "sora-audio-streaming-language-code: ja",
                "--data-binary", "@" + str(_write(tmp_path / "b", body_of(PACKETS[:4]))),
                "-w", "%{http_version} %{http_code}", server.url + "/test")
            assert out.stdout.endswith("2 200") and out.stdout.count("\n") == 4, out
            # ALPN http/1.1 only: the gateway answers 400
            http1 = await asyncio.to_thread(
                _curl, "--http1.1", "--cacert", str(pki["ca"]), "-H", "sora-audio-streaming-language-code: ja",
                "--data-binary", "x", "-w", "%{http_code}", server.url + "/speech")
            assert http1.stdout == '{"message":"Bad Request"}\n400', http1

    run(scenario())


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_tls_client_certificate_required(tmp_path: Path, pki: dict[str, Path]) -> None:
    async def attempt(url: str, cert: str | None) -> int | None:
        context = client_ssl_context(cafile=str(pki["ca"]), certfile=str(pki[cert]) if cert else None,
                                     keyfile=str(pki[cert + "_key"]) if cert else None)
        try:
            result = await stream_opus(url + "/test", PACKETS[:3], realtime=False, ssl_context=context)
        except (ssl.SSLError, ConnectionError, OSError):
            return None
        return result.status if len(result.lines) == 3 else -1

    async def scenario() -> None:
        async with SoraServer(tls_config(tmp_path, pki, verify=True)) as server:
            assert await attempt(server.url, "client") == 200
            assert await attempt(server.url, None) is None
            assert await attempt(server.url, "stranger") is None
            assert await attempt(server.url, "client") == 200

    run(scenario())


# ---------------------------------------------------------------------------- load and failures


def test_many_concurrent_streams_on_shared_and_separate_connections(tmp_path: Path) -> None:
    rng = random.Random(3)

    async def one(client: H2Client | None, url: str, n: int) -> None:
        packets = [rng.randbytes(rng.randint(1, 300)) for _ in range(n)]  # /test does not decode
        result = await stream_opus(url + "/test", packets, realtime=False, client=client)
        assert result.status == 200
        assert [json.loads(x)["message"] for x in result.lines] == [f"n: {len(p)}" for p in packets]

    async def scenario() -> None:
        async with SoraServer(config(tmp_path)) as server:
            shared = await H2Client.connect(server.url)
            jobs = [one(shared, server.url, 60) for _ in range(40)]
            jobs += [one(None, server.url, 60) for _ in range(10)]
            await asyncio.gather(*jobs)
            await shared.aclose()

    run(scenario())


def test_client_disconnect_mid_stream_leaves_a_complete_file(tmp_path: Path) -> None:
    sent = PACKETS[:50]

    async def scenario() -> None:
        async with SoraServer(config(tmp_path, service="ogg")) as server:
            client = await H2Client.connect(server.url)
            stream = await open_stream(client, "/speech", sora_headers(session_id="cut", connection_id="tcp"))
            assert await stream.response() == 200
            await stream.send(body_of(sent) + b"\x00\x00\x00")  # and a partial header
            await asyncio.sleep(0.2)
            assert client.proto.transport is not None
            client.proto.transport.close()  # gone without END_STREAM
            reset_client = await H2Client.connect(server.url)
            reset = await open_stream(reset_client, "/speech", sora_headers(session_id="cut", connection_id="rst"))
            await reset.send(body_of(sent[:20]))
            await asyncio.sleep(0.2)
            reset.reset()  # RST_STREAM CANCEL
            await settle(lambda: all(not c.streams for c in server.connections), 20)
            # the server still serves
            result = await stream_opus(server.url + "/test", PACKETS[:3], realtime=False, client=reset_client)
            assert result.status == 200 and len(result.lines) == 3
            # a stream with no packet at all leaves no file
            empty = await stream_opus(server.url + "/speech", [], realtime=False, session_id="no",
                                      connection_id="audio", client=reset_client)
            assert empty.status == 200 and empty.lines == []
            await reset_client.aclose()

    run(scenario())
    assert not (tmp_path / "no-audio.ogg").exists()
    for name, expected in (("cut-tcp.ogg", sent), ("cut-rst.ogg", sent[:20])):
        opusinfo(tmp_path / name)
        assert packets_from_ogg(tmp_path / name) == expected


def test_body_far_larger_than_the_window_and_back_pressure(tmp_path: Path) -> None:
    rng = random.Random(11)
    # 1.4 MB of body (5 stream windows) whose 660 kB of results exceed the client's window
    packets = [rng.randbytes(100) for _ in range(12000)]

    async def scenario() -> None:
        async with SoraServer(config(tmp_path)) as server:
            client = await H2Client.connect(server.url)
            stream = await open_stream(client, "/test")
            assert await stream.response() == 200
            sender = asyncio.create_task(_send_all(stream, packets))
            # nobody reads the results: the chain stalls and the gateway's memory stays bounded
            await settle(lambda: any(s.deferred for c in server.connections for s in c.streams.values()), 20)
            assert not sender.done()
            (conn,) = server.connections
            (st,) = conn.streams.values()
            assert 0 < st.queued <= QUEUE_HIGH + (1 << 18) + 120
            assert len(st.inbox) * 100 <= QUEUE_HIGH + (1 << 18) + 120
            assert st.deferred > 0
            # reading resumes everything
            got = []
            async for line in stream.lines():
                got.append(json.loads(line)["message"])
            await sender
            assert got == ["n: 100"] * len(packets)
            await client.aclose()

    run(scenario())


def test_queue_bound_counts_packets_not_payload_bytes(tmp_path: Path) -> None:
    """1-byte packets carry next to no payload: the queue is bounded by their number (and 20
    bytes each), so with nobody reading the results the gateway holds at most 256 of them plus
    one 4 KiB slice's worth, and the rest of the window unparsed."""
    packets = [b"\xfc"] * 30000  # 630 kB: more than two stream windows

    async def scenario() -> None:
        cfg = config(tmp_path)
        async with SoraServer(cfg) as server:
            client = await H2Client.connect(server.url)
            stream = await open_stream(client, "/test")
            assert await stream.response() == 200
            sender = asyncio.create_task(_send_all(stream, packets))
            await settle(lambda: any(s.backlog for c in server.connections for s in c.streams.values()), 20)
            (conn,) = server.connections
            (st,) = conn.streams.values()
            assert st.queued_packets <= cfg.stream_max_queued_packets + 4096 // 20
            assert len(st.inbox) <= cfg.stream_max_queued_packets + 4096 // 20 + 1
            assert sum(len(d) for d, _ in st.backlog) <= (1 << 18)  # at most the stream window
            assert not sender.done()
            got = [json.loads(line)["message"] async for line in stream.lines()]
            await sender
            assert got == ["n: 1"] * len(packets)
            await client.aclose()

    run(scenario())


async def _send_all(stream: ClientStream, packets: list[bytes]) -> None:
    body = body_of(packets)
    for i in range(0, len(body), 16000):
        await stream.send(body[i : i + 16000])
    await stream.end()


def test_bad_bodies_end_with_an_error_line(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with SoraServer(config(tmp_path, service="ogg", max_payload_length=4000)) as server:
            client = await H2Client.connect(server.url)
            big = await open_stream(client, "/test")
            assert await big.response() == 200
            await big.send(body_of(PACKETS[:2]) + packet_bytes(0, 2, bytes(4001)))
            lines = [line async for line in big.lines()]
            assert [json.loads(x)["type"] for x in lines] == ["test", "test", "error"]
            assert "PAYLOAD-TOO-LARGE" in json.loads(lines[-1])["reason"]
            await asyncio.sleep(0.1)  # complete response, then RST_STREAM NO_ERROR: stop sending
            with pytest.raises(ConnectionResetError):
                await big.send(b"more")
            huge = await open_stream(client, "/test")
            await huge.send(b"\x00" * 16 + b"\x01\x00\x00\x00")  # 0x1000000 > 0xFFFFFF
            assert [json.loads(x)["type"] async for x in huge.lines()] == ["error"]
            bad = await open_stream(client, "/speech", sora_headers(session_id="bad", connection_id="opus"))
            await bad.send(body_of([*PACKETS[:10], b"\x03"]))  # code 3 without a frame count: not Opus
            (line,) = [x async for x in bad.lines()]
            assert json.loads(line)["type"] == "error" and "OPUS" in json.loads(line)["reason"]
            await client.aclose()

    run(scenario())
    path = tmp_path / "bad-opus.ogg"
    opusinfo(path)
    assert packets_from_ogg(path) == PACKETS[:10]


def test_shutdown_lets_open_streams_finish_and_refuses_new_ones(tmp_path: Path) -> None:
    async def scenario() -> None:
        server = SoraServer(config(tmp_path, shutdown_timeout_ms=5000))
        await server.start()
        client = await H2Client.connect(server.url)
        stream = await open_stream(client, "/test")
        assert await stream.response() == 200
        await stream.send(body_of(PACKETS[:2]))
        closing = asyncio.create_task(server.close())
        await settle(lambda: client.proto.peer_goaway is not None, 20)
        assert not closing.done()
        assert client.proto.peer_goaway == 1  # GOAWAY with the last stream id, NO_ERROR
        with pytest.raises(ConnectionResetError):
            await open_stream(client, "/test")
        with pytest.raises(OSError):  # no longer listening
            await asyncio.open_connection("127.0.0.1", server.port)
        await stream.send(body_of(PACKETS[2:4], seq0=2))
        await stream.end()
        lines = [x async for x in stream.lines()]
        assert len(lines) == 4
        await asyncio.wait_for(closing, 10)
        assert client.proto.is_lost and not server.connections
        # a stream that never ends is cut after the timeout
        server = SoraServer(config(tmp_path, shutdown_timeout_ms=300))
        await server.start()
        client = await H2Client.connect(server.url)
        stream = await open_stream(client, "/test")
        assert await stream.response() == 200
        await asyncio.wait_for(server.close(), 10)
        await settle(lambda: client.proto.is_lost, 20)

    run(scenario())


def test_listen_port_zero_gives_distinct_ports(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with SoraServer(config(tmp_path)) as a, SoraServer(config(tmp_path)) as b:
            assert a.port != b.port and a.port > 0
            with socket.create_connection(("127.0.0.1", a.port)):
                pass

    run(scenario())


class _ScriptedStream(RecognizerStream):
    """One result at once, then an exception (``fail``) or the end, while the audio flows."""

    def __init__(self, fail: bool) -> None:
        super().__init__()
        self.fail = fail

    async def send(self, chunk: AudioChunk) -> None:
        pass

    async def end(self, ogg_tail: bytes) -> None:
        pass

    async def results(self) -> AsyncIterator[bytes | Mapping[str, Any]]:
        yield {"type": "aws", "message": "first"}
        if self.fail:
            raise RuntimeError("recognizer broke")


class _Scripted(Recognizer):
    name = "scripted"
    wants_ogg = False

    def __init__(self, fail: bool) -> None:
        self.fail = fail

    async def open(self, info: StreamInfo) -> RecognizerStream:
        return _ScriptedStream(self.fail)


@pytest.mark.parametrize("fail", [True, False])
def test_results_failing_or_ending_before_the_audio_end_the_response(tmp_path: Path, fail: bool) -> None:
    async def scenario() -> None:
        recognizers = {"scripted": _Scripted(fail)}
        async with SoraServer(config(tmp_path, service="scripted"), recognizers=recognizers) as server:
            client = await H2Client.connect(server.url)
            stream = await open_stream(client, "/speech")
            assert await stream.response() == 200
            await stream.send(body_of(PACKETS[:5]))  # and the body stays open
            lines = await asyncio.wait_for(_lines(stream), 20)
            first = b'{"type":"aws","message":"first"}\n'
            assert lines == ([first, error_result("RuntimeError: recognizer broke")] if fail else [first])
            await settle(lambda: all(not c.streams for c in server.connections), 20)
            result = await stream_opus(server.url + "/test", PACKETS[:3], realtime=False, client=client)
            assert result.status == 200 and len(result.lines) == 3
            await client.aclose()

    run(scenario())


async def _lines(stream: ClientStream) -> list[bytes]:
    return [line async for line in stream.lines()]


def test_a_packet_larger_than_the_stream_window_goes_through(tmp_path: Path) -> None:
    big = random.Random(5).randbytes(300_000)  # over the 256 KiB stream window

    async def scenario() -> None:
        async with SoraServer(config(tmp_path, service="ogg", max_payload_length=400_000)) as server:
            # /test takes any payload; the ogg service refuses it as not Opus, once it is all there
            result = await asyncio.wait_for(stream_opus(server.url + "/test", [big, PACKETS[0]], realtime=False), 30)
            assert result.status == 200
            assert [json.loads(x)["message"] for x in result.lines] == ["n: 300000", f"n: {len(PACKETS[0])}"]
            result = await asyncio.wait_for(stream_opus(server.url + "/speech", [PACKETS[0], big], realtime=False), 30)
            assert [json.loads(x)["type"] for x in result.lines] == ["error"]
            assert json.loads(result.lines[0])["reason"].startswith("INVALID-OPUS-PACKET")

    run(scenario())


class _FloodStream(RecognizerStream):
    """Per packet more result bytes than a stream window holds."""

    async def send(self, chunk: AudioChunk) -> None:
        for _ in range(5):
            await self.emit(b'{"pad":"%s"}\n' % (b"x" * 65536))

    async def end(self, ogg_tail: bytes) -> None:
        await self.finish()


class _Flood(Recognizer):
    name = "flood"
    wants_ogg = False

    async def open(self, info: StreamInfo) -> RecognizerStream:
        return _FloodStream()


def test_client_reset_gives_back_the_unread_window_and_forgets_the_stream(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with SoraServer(config(tmp_path, service="flood"), recognizers={"flood": _Flood()}) as server:
            client = await H2Client.connect(server.url)
            proto = client.proto
            # 70 streams whose 256 KiB of unread results each add up to more than the 16 MiB
            # connection window: resetting them must give it back
            for _ in range(70):
                stream = await open_stream(client, "/speech")
                await stream.send(body_of(PACKETS[:1]))
                await settle(lambda: proto.conn.remote_flow_control_window(stream.stream_id) == 0, 20)
                stream.reset()
                assert stream.stream_id not in proto.streams and await stream.read() == b""
            result = await asyncio.wait_for(
                stream_opus(server.url + "/test", PACKETS[:3], realtime=False, client=client), 30)
            assert result.status == 200 and len(result.lines) == 3
            assert not proto.streams
            await client.aclose()

    run(scenario())


def test_a_request_h2_refuses_leaves_no_stream_behind(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with SoraServer(config(tmp_path, http2_max_concurrent_streams=1)) as server:
            client = await H2Client.connect(server.url)
            first = await open_stream(client, "/test")
            assert await first.response() == 200
            with pytest.raises(h2.exceptions.TooManyStreamsError):
                await open_stream(client, "/test")
            assert list(client.proto.streams) == [first.stream_id]
            await first.end()
            assert await first.body() == b""
            assert not client.proto.streams
            await client.aclose()

    run(scenario())


@pytest.mark.parametrize("how", ["raise", "cancel"])
def test_stream_opus_stopped_midway_resets_its_stream_on_a_shared_client(tmp_path: Path, how: str) -> None:
    def packets() -> Iterator[bytes]:
        yield from PACKETS[:3]
        if how == "raise":
            raise ValueError("no more audio")
        yield from PACKETS[3:]

    def readers() -> list[asyncio.Task[object]]:
        return [t for t in asyncio.all_tasks() if getattr(t.get_coro(), "__name__", "") == "_read"]

    async def scenario() -> None:
        async with SoraServer(config(tmp_path)) as server:
            client = await H2Client.connect(server.url)
            call = asyncio.create_task(stream_opus(server.url + "/test", packets(), realtime=True, client=client))
            if how == "cancel":
                await settle(lambda: any(c.streams for c in server.connections), 20)
                call.cancel()
            with pytest.raises(ValueError if how == "raise" else asyncio.CancelledError):
                await call
            assert not readers() and not client.proto.streams
            await settle(lambda: all(not c.streams for c in server.connections), 20)
            result = await stream_opus(server.url + "/test", PACKETS[:3], realtime=False, client=client)
            assert result.status == 200 and len(result.lines) == 3
            await client.aclose()

    run(scenario())


def test_dump_and_result_lines_exact_bytes(tmp_path: Path) -> None:
    headers = StreamHeaders("chän \"1\"", None, "c/1", "ja-JP")
    info = StreamInfo("/dump", headers, 48000, 2, None, config(tmp_path))
    chunk = AudioChunk(b"\xfc\xff\xfe\x00", b"", False, None, None, 1_700_000_000_123)
    assert dump_line(chunk, info) == (
        b'{"timestamp":1700000000123,"channel_id":"ch\\u00e4n \\"1\\"","connection_id":"c/1",'
        b'"language_code":"ja-JP","sample_rate":48000,"channel_count":2,"payload":"/P/+AA=="}\n')
    assert result_line({"type": "gcp", "message": "é", "is_final": True, "stability": 0.5}) == (
        b'{"type":"gcp","message":"\\u00e9","is_final":true,"stability":0.5}\n')


def test_flood_meter_counts_each_budget_per_window() -> None:
    """Frame types and flags as RFC 9113 defines them: DATA 0 (END_STREAM 0x1), HEADERS 1,
    PRIORITY 2, RST_STREAM 3, SETTINGS 4, PING 6, WINDOW_UPDATE 8, CONTINUATION 9."""
    meter = FloodMeter(FloodLimits(10.0, streams=2, resets=1, control=2, empty=1), now=0.0)
    assert meter.frame(1, 0x4, 30, 1) is None and meter.frame(1, 0x5, 5, 1) is None  # a stream, its trailers
    assert meter.frame(1, 0x4, 30, 3) is None
    assert meter.frame(1, 0x4, 30, 5) == "streams"
    assert meter.frame(0, 0x0, 100, 1) is None and meter.frame(0, 0x1, 0, 1) is None  # data, empty END_STREAM
    assert meter.frame(0, 0x0, 0, 1) is None and meter.frame(0, 0x0, 0, 1) == "empty"
    assert meter.frame(8, 0, 4, 0) is None and meter.frame(9, 0, 10, 1) is None  # not counted here
    assert meter.frame(6, 0, 8, 0) is None and meter.frame(4, 0, 0, 0) is None
    assert meter.frame(2, 0, 5, 1) == "control"
    assert meter.frame(0x20, 0, 3, 0) == "control"  # an unknown type
    assert meter.frame(3, 0, 4, 1) is None and meter.frame(3, 0, 4, 3) == "resets"
    meter.tick(9.9)  # the same window
    assert meter.frame(3, 0, 4, 5) == "resets"
    meter.tick(10.0)  # a new one: every budget is whole again
    assert meter.frame(3, 0, 4, 7) is None and meter.frame(6, 0, 8, 0) is None
    assert meter.frame(1, 0x4, 30, 7) is None  # ids still only grow: 7 is above 5


# ---------------------------------------------------------------------------- issue 11: nothing lost, answers as the reference


def test_empty_payloads_and_a_body_ending_inside_a_packet_end_quietly(tmp_path: Path) -> None:
    """The reference sends nothing for a zero-length payload (its handlers act on reads of
    n > 0 bytes) and ends quietly when the body ends inside a packet (the header reader
    forwards io.EOF, which ends the response without an error line): PROTOCOLS.md section 7."""
    packets = PACKETS[:3]

    async def scenario() -> tuple[list[bytes], list[bytes], dict[str, int]]:
        async with SoraServer(config(tmp_path)) as server:
            client = await H2Client.connect(server.url)
            test = await open_stream(client, "/test")
            await test.send(body_of([packets[0], b"", packets[1], b"", b"", packets[2]]) + b"\x00" * 5,
                            end_stream=True)
            test_lines = [x async for x in test.lines()]
            assert test.reset_code is None
            dump = await open_stream(client, "/dump", sora_headers("en-US", "chan", "s1", "c1"))
            await dump.send(body_of([b"", packets[0], b""]) + packet_bytes(0, 9, packets[1])[:30], end_stream=True)
            dump_lines = [x async for x in dump.lines()]
            await client.aclose()
            return test_lines, dump_lines, dict(server.refusals.counts)

    test_lines, dump_lines, counts = run(scenario())
    assert [json.loads(x) for x in test_lines] == [
        {"channel_id": "ch_0", "message": f"n: {len(p)}", "type": "test"} for p in packets]
    assert [base64.b64decode(json.loads(x)["payload"]) for x in dump_lines] == [packets[0]]
    assert (tmp_path / "dump.jsonl").read_bytes() == b"".join(dump_lines)
    assert counts.get("body ended inside a packet") == 2


class _Refusing(Recognizer):
    name = "refusing"

    def __init__(self, status: object) -> None:
        self.status = status

    async def open(self, info: StreamInfo) -> RecognizerStream:
        if self.status == "crash":
            raise RuntimeError("the recognizer's own bug: secret detail")
        raise RecognizerRefused(self.status, "no")  # type: ignore[arg-type]


@pytest.mark.parametrize(("status", "expected"), [
    (0, 500), (99, 500), (100, 500), (103, 500), (199, 500), (1000, 500), (9999, 500), (-1, 500),
    (True, 500), ("404", 500), (200, 200), (404, 404), (503, 503), (999, 999),
])
def test_recognizer_refusals_are_answered_like_the_reference(tmp_path: Path, status: object, expected: int) -> None:
    """Suzu answers its services' refusals (SuzuError) with the bare status, and a status
    outside 100-999 with 500 (INVALID-STATUS-CODE, handler.go). An informational 1xx cannot be
    a final status in HTTP/2 (RFC 9113 section 8.1): 500 too. Every stream gets an answer."""

    async def scenario() -> tuple[int, bytes, dict[str, int]]:
        recognizers = {"refusing": _Refusing(status)}
        async with SoraServer(config(tmp_path, service="refusing"), recognizers=recognizers) as server:
            client = await H2Client.connect(server.url)
            stream = await open_stream(client, "/speech")
            got = await asyncio.wait_for(stream.response(), 20)
            body = await stream.body()
            # the connection is unharmed
            ok = await client.request("GET", "/.ok", end_stream=True)
            assert await ok.response() == 200
            await client.aclose()
            return got, body, dict(server.refusals.counts)

    got, body, counts = run(scenario())
    assert got == expected and body == b""
    assert ("INVALID-STATUS-CODE" in counts) == (status != expected)


def test_a_recognizer_crash_is_a_500_with_the_reference_body_and_an_error_log(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> tuple[int, bytes]:
        async with SoraServer(config(tmp_path, service="refusing"), recognizers={"refusing": _Refusing("crash")}) as s:
            client = await H2Client.connect(s.url)
            stream = await open_stream(client, "/speech")
            got = await stream.response()
            body = await stream.body()
            await client.aclose()
            return got, body

    with caplog.at_level("INFO", logger="audiocore.gateway.sora"):
        got, body = run(scenario())
    assert (got, body) == (500, b'{"message":"Internal Server Error"}\n')  # no internal detail to the client
    assert [r for r in caplog.records if r.levelname == "ERROR" and "RuntimeError" in r.getMessage()]


def test_ogg_dir_is_created_at_start_and_a_gateway_500_is_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The README's example points ogg_dir at a folder that need not exist: it is created
    (parents too) at start; one that cannot be is a ConfigError naming it, before listening.
    A 500 the gateway causes itself (here: the folder removed under it) is logged as a warning."""
    nested = tmp_path / "a" / "b"
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")

    async def scenario() -> tuple[int, int]:
        with pytest.raises(ConfigError) as info:
            await SoraServer(config(tmp_path, service="ogg", ogg_dir=str(blocker / "sub"))).start()
        assert info.value.key == "ogg_dir" and str(blocker / "sub") in str(info.value)
        with pytest.raises(ConfigError):  # the tee of another service too
            await SoraServer(config(tmp_path, enable_ogg_file_output=True, ogg_dir=str(blocker))).start()
        async with SoraServer(config(tmp_path, service="ogg", ogg_dir=str(nested))) as server:
            ok = await stream_opus(server.url + "/speech", PACKETS[:5], realtime=False, session_id="s",
                                   connection_id="c")
            nested.joinpath("s-c.ogg").rename(tmp_path / "s-c.ogg")
            nested.rmdir()
            gone = await stream_opus(server.url + "/speech", PACKETS[:5], realtime=False)
            return ok.status, gone.status

    with caplog.at_level("INFO", logger="audiocore.gateway.sora"):
        ok, gone = run(scenario())
    assert ok == 200 and packets_from_ogg(tmp_path / "s-c.ogg") == PACKETS[:5]
    assert gone == 500
    assert [r for r in caplog.records if r.levelno >= 30 and "ogg refused (500)" in r.getMessage()]


def test_serve_sora_cannot_create_its_ogg_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    p = subprocess.run([sys.executable, "-m", "audiocore", "serve", "sora", "--listen-port", "0", "--service", "ogg",
                        "--ogg-dir", str(blocker / "x"), "--skip-basic-auth"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "listening" not in p.stdout, p
    (line,) = p.stderr.strip().splitlines()
    assert "ogg_dir" in line and str(blocker / "x") in line, p.stderr


def _request_block(path: str, *extra: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"127.0.0.1"), (b":path", path.encode()),
            (b"sora-audio-streaming-language-code", b"ja-JP"), *extra]


@pytest.mark.parametrize("bad", [
    (b"Sora-Channel-Id", b"x"),       # upper case in a field name (RFC 9113 section 8.2.1)
    (b"connection", b"keep-alive"),   # connection-specific field (section 8.2.2)
    (b"sora-channel-id", b"x "),      # whitespace after a value (section 8.2.1)
    (b":status", b"200"),             # a response pseudo-header in a request (section 8.3)
])
@pytest.mark.parametrize("in_trailers", [False, True])
def test_a_malformed_request_resets_only_its_stream(tmp_path: Path, bad: tuple[bytes, bytes],
                                                    in_trailers: bool) -> None:
    """RFC 9113 section 8.1.1: a malformed request (its header block, or its trailers) is a
    stream error (RST_STREAM PROTOCOL_ERROR); the live stream beside it on the same
    connection completes. Raw frames (hyperframe, hpack) so the client does not refuse to
    send them."""
    from hpack import Encoder
    from hyperframe.frame import DataFrame, Frame, GoAwayFrame, HeadersFrame, RstStreamFrame, SettingsFrame

    async def scenario() -> tuple[list[bytes], dict[int, int], bool, bool]:
        async with SoraServer(config(tmp_path)) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            encoder = Encoder()
            buf = bytearray()
            lines: list[bytes] = []
            resets: dict[int, int] = {}
            state = {"goaway": False, "ended": False}

            def headers(sid: int, block: list[tuple[bytes, bytes]], end: bool = False) -> bytes:
                f = HeadersFrame(sid)
                f.data = encoder.encode(block)
                f.flags.add("END_HEADERS")
                if end:
                    f.flags.add("END_STREAM")
                return f.serialize()

            def data(sid: int, payload: bytes, end: bool = False) -> bytes:
                f = DataFrame(sid)
                f.data = payload
                if end:
                    f.flags.add("END_STREAM")
                return f.serialize()

            async def until(cond: Callable[[], bool]) -> None:
                while not cond():
                    chunk = await asyncio.wait_for(reader.read(1 << 16), 20)
                    assert chunk, "connection closed"
                    buf.extend(chunk)
                    while len(buf) >= 9:
                        frame, length = Frame.parse_frame_header(memoryview(buf[:9]))
                        if len(buf) < 9 + length:
                            break
                        frame.parse_body(memoryview(buf[9 : 9 + length]))
                        del buf[: 9 + length]
                        if isinstance(frame, DataFrame) and frame.stream_id == 1:
                            lines.append(bytes(frame.data))
                            state["ended"] = state["ended"] or "END_STREAM" in frame.flags
                        elif isinstance(frame, HeadersFrame) and frame.stream_id == 1:
                            state["ended"] = state["ended"] or "END_STREAM" in frame.flags
                        elif isinstance(frame, RstStreamFrame):
                            resets[frame.stream_id] = frame.error_code
                        elif isinstance(frame, GoAwayFrame):
                            state["goaway"] = True

            writer.write(PREFACE + SettingsFrame(0).serialize() + headers(1, _request_block("/test"))
                         + data(1, body_of(PACKETS[:1])))
            await until(lambda: len(lines) == 1)
            if in_trailers:
                writer.write(headers(3, _request_block("/test")) + data(3, body_of(PACKETS[:1]))
                             + headers(3, [bad], end=True))
            else:
                writer.write(headers(3, _request_block("/test", bad)) + data(3, body_of(PACKETS[:1])))
            await until(lambda: 3 in resets)
            writer.write(data(1, body_of(PACKETS[1:3], seq0=1), end=True))
            await until(lambda: state["ended"] or state["goaway"])
            writer.close()
            return lines, resets, state["goaway"], state["ended"]

    lines, resets, goaway, ended = run(scenario())
    assert resets == {3: 1}  # PROTOCOL_ERROR on the malformed stream only
    assert not goaway and ended
    assert [json.loads(x)["message"] for x in lines if x] == [f"n: {len(p)}" for p in PACKETS[:3]]


def _shutdown_lines(lines: list[bytes]) -> list[dict[str, Any]]:
    return [json.loads(x) for x in lines]


def test_close_mid_stream_finishes_the_ogg_file_and_the_response(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """SoraServer.close() while a client is still streaming: after shutdown_timeout_ms the
    stream is cut cleanly: its Ogg file ends with an EOS page (opusinfo, PyAV), the client
    gets a finished response (a SHUTDOWN error line, END_STREAM: no reset code), and one log
    line says how many streams were cut. The Ogg tee of another service too."""
    sent = PACKETS[:40]

    async def scenario() -> tuple[list[bytes], int | None, list[bytes], int | None]:
        server = SoraServer(config(tmp_path, service="ogg", shutdown_timeout_ms=200, enable_ogg_file_output=True))
        await server.start()
        client = await H2Client.connect(server.url)
        ogg = await open_stream(client, "/speech", sora_headers(session_id="stop", connection_id="ogg"))
        tee = await open_stream(client, "/test", sora_headers(session_id="stop", connection_id="tee"))
        assert await ogg.response() == 200 and await tee.response() == 200
        await ogg.send(body_of(sent) + b"\x00" * 7)  # and part of a header
        await tee.send(body_of(sent))
        tee_lines = [await read_line(tee) for _ in sent]
        await settle(lambda: all(s.queued_packets == 0 for c in server.connections for s in c.streams.values()), 20)
        await asyncio.wait_for(server.close(), 20)
        ogg_lines = [x async for x in ogg.lines()]
        tee_lines += [x async for x in tee.lines()]
        return ogg_lines, ogg.reset_code, tee_lines, tee.reset_code

    with caplog.at_level("INFO", logger="audiocore.gateway.sora"):
        ogg_lines, ogg_reset, tee_lines, tee_reset = run(scenario())
    assert _shutdown_lines(ogg_lines) == [{"type": "error", "reason": SHUTDOWN_REASON}] and ogg_reset is None
    assert _shutdown_lines(tee_lines)[-1] == {"type": "error", "reason": SHUTDOWN_REASON} and tee_reset is None
    assert len(tee_lines) == len(sent) + 1
    for name in ("stop-ogg.ogg", "stop-tee.ogg"):
        opusinfo(tmp_path / name)  # fails on "EOS not set" and any other warning
        assert packets_from_ogg(tmp_path / name) == sent == pyav_packets(tmp_path / name)
    cut = [r.getMessage() for r in caplog.records if "cut" in r.getMessage()]
    assert len(cut) == 1 and "2 open streams cut" in cut[0], cut


def test_sigterm_to_serve_sora_mid_stream_leaves_a_finished_ogg_file(tmp_path: Path) -> None:
    """A real SIGTERM to ``audiocore serve sora`` while a client streams: the process exits
    0, the file (in an ogg_dir that did not exist: created at start) passes opusinfo with its
    EOS page and holds every packet sent, the client's response is finished, and stderr says
    how many streams were cut."""
    out = tmp_path / "new" / "dir"
    sent = PACKETS[:30]
    args = [sys.executable, "-m", "audiocore", "serve", "sora", "--listen-port", "0", "--service", "ogg",
            "--ogg-dir", str(out), "--audio-streaming-header", "--skip-basic-auth", "--shutdown-timeout-ms", "300"]
    with server_process(args) as (proc, line):
        url = line.split("listening on ", 1)[1].split(" ", 1)[0]

        async def scenario() -> tuple[list[bytes], int | None]:
            client = await H2Client.connect(url)
            stream = await open_stream(client, "/speech", sora_headers(session_id="sig", connection_id="term"))
            assert await stream.response() == 200
            await stream.send(body_of(sent))
            await settle(lambda: (out / "sig-term.ogg").exists(), 20)
            proc.send_signal(signal.SIGTERM)
            lines = [x async for x in stream.lines()]
            return lines, stream.reset_code

        lines, reset = run(scenario())
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert _shutdown_lines(lines) == [{"type": "error", "reason": SHUTDOWN_REASON}] and reset is None
    assert "1 open stream cut" in err, err
    report = opusinfo(out / "sig-term.ogg")
    assert "Pre-skip: 3840" in report
    assert packets_from_ogg(out / "sig-term.ogg") == sent == pyav_packets(out / "sig-term.ogg")


class _StuckStream(RecognizerStream):
    """Takes ``take`` packets, then never returns from ``send``."""

    def __init__(self, take: int) -> None:
        super().__init__()
        self.take = take

    async def send(self, chunk: AudioChunk) -> None:
        self.take -= 1
        if self.take < 0:
            await asyncio.Event().wait()

    async def end(self, ogg_tail: bytes) -> None:
        await self.finish()


class _Stuck(Recognizer):
    name = "stuck"
    wants_ogg = False

    async def open(self, info: StreamInfo) -> RecognizerStream:
        return _StuckStream(10)


def test_a_stream_not_finished_at_shutdown_is_reset_with_cancel_and_its_ogg_copy_finished(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A recognizer stuck in send() at shutdown: after shutdown_finish_timeout_ms the stream
    is reset with CANCEL (the documented code), and the Ogg copy the gateway writes
    (enable_ogg_file_output) still ends with its EOS page."""
    sent = PACKETS[:30]

    async def scenario() -> int | None:
        cfg = config(tmp_path, service="stuck", enable_ogg_file_output=True, shutdown_timeout_ms=100,
                     shutdown_finish_timeout_ms=300)
        server = SoraServer(cfg, recognizers={"stuck": _Stuck()})
        await server.start()
        client = await H2Client.connect(server.url)
        stream = await open_stream(client, "/speech", sora_headers(session_id="st", connection_id="uck"))
        assert await stream.response() == 200
        await stream.send(body_of(sent))
        # the recognizer took 10 packets and holds the 11th: 19 wait in the queue
        await settle(lambda: [s.queued_packets for c in server.connections for s in c.streams.values()]
                     == [len(sent) - 11], 20)
        await asyncio.wait_for(server.close(), 20)
        assert await stream.body() == b""
        return stream.reset_code

    with caplog.at_level("INFO", logger="audiocore.gateway.sora"):
        reset = run(scenario())
    assert reset == 8  # CANCEL
    opusinfo(tmp_path / "st-uck.ogg")
    got = packets_from_ogg(tmp_path / "st-uck.ogg")
    assert got == sent[: len(got)] and len(got) == 11  # 10 taken, the 11th in the stuck send()
    cut = [r.getMessage() for r in caplog.records if "cut" in r.getMessage()]
    assert len(cut) == 1 and "1 open stream cut" in cut[0] and "1 not finished" in cut[0], cut
