"""The ACS <-> realtime bridge over real sockets on loopback (port 0), with the local peers.

Each test is a few seconds of real-time audio. The 2-minute barge-in acceptance call is in
test_gateway_acceptance.py. References: soxr (the resampling oracle), the caller's own audio,
the realtime peer's record of what it received; never the bridge's own earlier output.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import soxr
from conftest import DATA
from gateway_util import make_pki, run, server_process, settle
from picows import WSInvalidStatusError, WSMsgType, WSUpgradeRequest, ws_connect, ws_create_server

from audiocore import ProtocolError, Resampler
from audiocore.gateway._ws import Endpoint, close, send_text
from audiocore.gateway.auth import AcsJwt, StaticToken
from audiocore.gateway.bridge import (
    ENV_API_KEY,
    ENV_AUTH,
    ENV_AUTH_TOKEN,
    ENV_URL,
    Bridge,
    BridgeConfig,
    _parser,
    config_from_args,
    session_update_message,
)
from audiocore.gateway.peers.acs_caller import acs_frames, call, metadata_message, read_wav
from audiocore.gateway.peers.acs_tokens import TokenIssuer
from audiocore.gateway.peers.realtime_server import RealtimeServer, prompt_pcm

SPEECH, RATE = read_wav(DATA / "speech-16k.wav")


def config(url: str, **kw: Any) -> BridgeConfig:
    """A bridge config for tests that are not about caller authentication."""
    kw.setdefault("insecure_no_auth", True)
    return BridgeConfig(upstream_url=url, **kw)


# ---------------------------------------------------------------- configuration


def test_session_update_sets_formats_and_interrupt_settings_explicitly() -> None:
    beta = json.loads(session_update_message(config("wss://api.openai.com/v1/realtime?model=x")))
    s = beta["session"]
    assert beta["type"] == "session.update"
    assert s["input_audio_format"] == s["output_audio_format"] == "pcm16"
    assert s["turn_detection"]["interrupt_response"] is False
    assert "auto_truncate" not in s["turn_detection"]  # OpenAI refuses unknown fields
    vl = json.loads(session_update_message(config(
        "wss://x.services.ai.azure.com/voice-live/realtime", realtime_rate=16000, auto_truncate=True,
        session={"voice": {"name": "en-US-Ava:DragonHDLatestNeural"}})))["session"]
    assert vl["input_audio_sampling_rate"] == 16000 and vl["output_audio_format"] == "pcm16_16000hz"
    assert vl["turn_detection"]["auto_truncate"] is True
    assert vl["turn_detection"]["interrupt_response"] is False
    assert vl["voice"]["name"].startswith("en-US")
    ga = json.loads(session_update_message(config("wss://h/v1/realtime", dialect="openai-ga",
                                                  interrupt_response=True)))["session"]
    assert ga["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert ga["audio"]["input"]["turn_detection"]["interrupt_response"] is True
    off = json.loads(session_update_message(config("ws://h/", turn_detection=None)))["session"]
    assert off["turn_detection"] is None


def test_serve_flags_left_out_keep_the_config_defaults() -> None:
    env = {ENV_URL: "wss://api.openai.com/v1/realtime"}
    plain = config_from_args(_parser().parse_args([]), env)
    expected = BridgeConfig(upstream_url=env[ENV_URL], port=8765)
    assert plain == expected and plain.turn_detection == {
        "type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
        "silence_duration_ms": 500, "create_response": True}
    given = config_from_args(_parser().parse_args(
        ["--silence-duration-ms", "800", "--quality", "fast", "--gap-buffer-ms", "0",
         "--ticker", "per-call", "--reconnect-timeout", "5"]), env)
    assert given.turn_detection is not None and plain.turn_detection is not None
    assert given.turn_detection == dict(plain.turn_detection, silence_duration_ms=800)
    assert (given.quality, given.gap_buffer_ms, given.ticker, given.reconnect_timeout) == (
        "fast", 0, "per-call", 5.0)
    assert config_from_args(_parser().parse_args(["--no-turn-detection"]), env).turn_detection is None


def test_auth_headers_and_environment() -> None:
    c = BridgeConfig.from_env({ENV_URL: "wss://api.openai.com/v1/realtime", ENV_API_KEY: "sk-1"})
    assert c.upstream_headers() == {"Authorization": "Bearer sk-1", "OpenAI-Beta": "realtime=v1"}
    c = BridgeConfig.from_env({ENV_URL: "wss://r.services.ai.azure.com/voice-live/realtime",
                               ENV_API_KEY: "k"})
    assert c.dialect == "voicelive" and c.upstream_headers() == {"api-key": "k"}
    c = BridgeConfig.from_env({ENV_URL: "wss://a/", ENV_API_KEY: "k", ENV_AUTH: "api-key"},
                              upstream_url="wss://b/")
    assert c.upstream_url == "wss://b/" and c.upstream_headers()["api-key"] == "k"
    with pytest.raises(ValueError, match=ENV_URL):
        BridgeConfig.from_env({})
    with pytest.raises(ValueError, match="24000"):
        config("wss://api.openai.com/", realtime_rate=16000)
    with pytest.raises(ValueError, match="ws://"):
        config("https://api.openai.com/")


def test_every_limit_is_a_flag_and_a_config_field_with_a_safe_default(tmp_path: Any) -> None:
    env = {ENV_URL: "wss://api.openai.com/v1/realtime", ENV_AUTH_TOKEN: "t" * 20}
    plain = config_from_args(_parser().parse_args([]), env)
    assert isinstance(plain.caller_auth, StaticToken) and not plain.insecure_no_auth
    assert plain.path == "/acs" and plain.acs_rates == (16000, 24000)
    assert plain.max_message_bytes == 64 << 10
    given = config_from_args(_parser().parse_args([
        "--max-calls", "7", "--max-calls-per-ip", "3", "--handshake-timeout", "2",
        "--metadata-timeout", "1.5", "--idle-timeout", "4", "--burst-ms", "300",
        "--max-excess-ms", "900", "--max-message-bytes", "32768", "--max-pings-per-s", "5",
        "--max-write-buffer", "65536", "--acs-rates", "8000,16000", "--accept-pause", "0.5",
        "--send-buffer-bytes", "0", "--path", ""]), env)
    assert (given.max_calls, given.max_calls_per_ip, given.handshake_timeout, given.metadata_timeout,
            given.idle_timeout, given.burst_ms, given.max_excess_ms, given.max_message_bytes,
            given.max_pings_per_s, given.max_write_buffer, given.acs_rates, given.accept_pause,
            given.send_buffer_bytes, given.path) == (
        7, 3, 2.0, 1.5, 4.0, 300, 900, 32768, 5, 65536, (8000, 16000), 0.5, 0, None)
    jwks = tmp_path / "jwks.json"
    TokenIssuer().write_jwks(jwks)
    acs = config_from_args(_parser().parse_args(["--acs-jwks", str(jwks), "--acs-audience", "res"]),
                           {ENV_URL: env[ENV_URL]})
    assert isinstance(acs.caller_auth, AcsJwt) and acs.caller_auth.audience == "res"
    with pytest.raises(ValueError, match="--acs-audience"):
        config_from_args(_parser().parse_args(["--acs-jwks", str(jwks)]), {ENV_URL: env[ENV_URL]})
    with pytest.raises(ValueError, match="not both"):
        config_from_args(_parser().parse_args(["--acs-jwks", str(jwks), "--acs-audience", "r"]), env)
    none = config_from_args(_parser().parse_args([]), {ENV_URL: env[ENV_URL]})
    assert none.caller_auth is None
    with pytest.raises(ValueError, match="caller authentication"):
        Bridge(none)  # secure by default, from Python too
    Bridge(config(env[ENV_URL]))  # insecure_no_auth=True says so explicitly
    for bad in ({"acs_rates": (44100,)}, {"acs_rates": ()}, {"max_calls": 0},
                {"metadata_timeout": 0}, {"burst_ms": 10}, {"max_message_bytes": 0}):
        with pytest.raises(ValueError):
            config(env[ENV_URL], **bad)


# ---------------------------------------------------------------- audio path


def test_caller_audio_reaches_the_service_resampled_like_soxr_with_silence_kept() -> None:
    """What the service receives equals the caller's audio resampled independently by soxr
    (within the two filters' difference), every frame's time is there (silent frames sent
    empty or as zeros included), and nothing else."""
    pcm = SPEECH[: 3 * RATE * 2]

    async def main() -> tuple[bytes, int, Any]:
        async with RealtimeServer(keep_audio=True) as rt, \
                Bridge(config(rt.url, turn_detection=None)) as bridge:
            res = await call(bridge.url, pcm, rate=RATE, tail_s=0.4, silent_mode="empty",
                             realtime=rt)
            await settle(lambda: not bridge.calls)
            session = rt.history[-1]
            assert session.kept is not None
            return bytes(session.kept), res.frames_sent, bridge.finished[-1]

    kept, frames, stats = run(main())
    assert stats.frames_in == frames and stats.acs_errors == 0
    assert len(kept) == frames * 480 * 2  # exact counts: 20 ms in -> 20 ms out, silence too
    got = np.frombuffer(kept, np.int16).astype(np.float64)
    src = np.frombuffer(pcm + bytes(frames * 640 - len(pcm)), np.int16)
    flags = acs_frames(pcm + bytes(frames * 640 - len(pcm)), RATE, silent_mode="empty")[1]
    # what the bridge was given: silent frames are empty, i.e. zeros
    given = src.copy().reshape(-1, 320)
    given[[not v for v in flags]] = 0
    ref = soxr.resample(given.reshape(-1), RATE, 24000, "HQ").astype(np.float64)
    delay = Resampler(RATE, 24000).delay_samples
    n = len(ref) - 2 * delay
    a, b = got[delay:delay + n], ref[:n]
    snr = 10 * np.log10(np.sum(b ** 2) / np.sum((a - b) ** 2))
    assert snr > 40, snr
    assert not got[-240:].any() or np.abs(got[-240:]).max() < 50  # the tail is silence


def test_echo_call_plays_exact_20ms_frames_of_the_answer() -> None:
    async def main() -> Any:
        async with RealtimeServer(mode="echo", speed=4) as rt, Bridge(config(rt.url)) as bridge:
            res = await call(bridge.url, SPEECH[: 2 * RATE * 2], rate=RATE, tail_s=3.0, realtime=rt)
            return res, rt.responses

    res, responses = run(main())
    assert res.bad_frames == 0  # every AudioData frame was exactly 640 bytes
    assert res.frames_received > 50 and len(responses) == 1
    fig = res.figures
    assert fig is not None and fig.lost_frames == 0 and fig.after_stop_frames == 0
    # the answer is the utterance: find the caller's speech in what it heard
    heard = np.frombuffer(res.received, np.int16).astype(np.float64)
    spoken = np.frombuffer(SPEECH[: RATE * 2], np.int16).astype(np.float64)[4000:12000]
    corr = np.correlate(heard, spoken, "valid") / (np.linalg.norm(spoken) * np.sqrt(
        np.convolve(heard ** 2, np.ones(len(spoken)), "valid")) + 1e-9)
    assert corr.max() > 0.98


@pytest.mark.parametrize("ticker", ["shared", "per-call"])
def test_both_tickers_keep_real_time(ticker: str) -> None:
    async def main() -> Any:
        async with RealtimeServer(mode="prompt", prompt=prompt_pcm(24000)[: 24000 * 2], speed=0) as rt, \
                Bridge(config(rt.url, ticker=ticker)) as bridge:
            res = await call(bridge.url, SPEECH[: RATE * 2], rate=RATE, tail_s=2.0, realtime=rt)
            return res

    res = run(main())
    assert res.frames_received == 50 + 1  # 1 s of answer + the resampler's tail frame
    assert res.figures is not None and res.figures.lost_out == 0


# ---------------------------------------------------------------- failures


def test_upstream_reconnects_without_losing_the_call() -> None:
    async def main() -> Any:
        async with RealtimeServer(keep_audio=True) as rt, \
                Bridge(config(rt.url, turn_detection=None)) as bridge:
            task = asyncio.create_task(call(bridge.url, SPEECH[: 4 * RATE * 2], rate=RATE, tail_s=0))
            await settle(lambda: rt.sessions and rt.sessions[0].samples > 24000)
            assert rt.drop_connections() == 1
            res = await task
            await settle(lambda: not bridge.calls)
            return res, bridge.finished[-1], list(rt.history)

    res, stats, sessions = run(main())
    assert res.close_code is None or res.close_code == 1000  # the caller hung up itself
    assert stats.end_reason == "ACS closed" and stats.reconnects == 1 and stats.connects == 2
    assert len(sessions) == 2
    for s in sessions:  # each new session is configured before audio
        assert s.events[0]["type"] == "session.update"
    assert stats.gap_dropped == 0 and stats.frames_in + stats.gap_dropped == res.frames_sent
    received = sum(s.samples for s in sessions) // 480
    # frames in flight on the connection that died are gone; the rest arrived, in order
    assert stats.frames_in - 3 <= received <= stats.frames_in
    assert sessions[1].samples >= stats.gap_replayed * 480


def test_a_reconnect_reads_the_new_session_with_a_new_transcoder(caplog: pytest.LogCaptureFixture) -> None:
    """Voice Live at 16 kHz, a service whose sessions start at 24 kHz until session.update:
    the new connection's session.created must not reach the old session's state (it made the
    bridge log a false input-rate error and rebuild its output resampler twice)."""
    caplog.set_level(logging.INFO, logger="audiocore.gateway.bridge")

    async def main() -> Any:
        async with RealtimeServer(keep_audio=True) as rt, \
                Bridge(config(rt.url, dialect="voicelive", realtime_rate=16000,
                              turn_detection=None)) as bridge:
            task = asyncio.create_task(call(bridge.url, SPEECH[: 3 * RATE * 2], rate=RATE, tail_s=0))
            await settle(lambda: rt.sessions and rt.sessions[0].samples > 16000)
            assert rt.drop_connections() == 1
            await settle(lambda: len(rt.history) == 2 and rt.history[1].samples > 16000)
            await task
            await settle(lambda: not bridge.calls)
            return bridge.finished[-1]

    stats = run(main())
    assert stats.reconnects == 1 and stats.end_reason == "ACS closed"
    logged = [r.getMessage() for r in caplog.records if r.name == "audiocore.gateway.bridge"]
    assert not [m for m in logged if "takes input at" in m or "the service's output is" in m], logged


@pytest.mark.parametrize("gap_ms", [200, 0])
def test_outage_keeps_the_last_gap_buffer_ms_of_caller_audio(gap_ms: int) -> None:
    """The service is down for about 0.5 s (its port refuses): the bridge keeps the caller's
    last ``gap_buffer_ms`` of audio, replays it on reconnect and counts what it dropped."""
    async def main() -> Any:
        first = RealtimeServer(keep_audio=True)
        await first.start()
        port = int(first.url.split(":")[2].split("/")[0])
        async with Bridge(config(first.url, turn_detection=None, gap_buffer_ms=gap_ms,
                                 reconnect_initial=0.05, reconnect_max=0.1)) as bridge:
            task = asyncio.create_task(call(bridge.url, SPEECH[: 3 * RATE * 2], rate=RATE, tail_s=0))
            await settle(lambda: first.sessions and first.sessions[0].samples > 24000)
            await first.close()
            await asyncio.sleep(0.5)
            async with RealtimeServer(port=port, keep_audio=True) as second:
                res = await task
                await settle(lambda: not bridge.calls)
            return res, bridge.finished[-1], second

    res, stats, second = run(main())
    assert stats.reconnects == 1 and stats.frames_in + stats.gap_dropped == res.frames_sent
    assert stats.gap_dropped + stats.gap_replayed >= 25  # 0.5 s or more of 20 ms frames
    assert stats.gap_replayed == gap_ms // 20
    [session] = second.history
    assert session.samples >= stats.gap_replayed * 480


class _DroppingSession(Endpoint):
    """A service's connection that it closes at once: on accept, or on ``session.update``
    with an error event (as a service refusing the session does)."""

    def __init__(self, when: str) -> None:
        super().__init__()
        self.when = when

    def on_open(self) -> None:
        if self.when == "accept":
            close(self.transport)

    def on_text(self, data: bytes) -> None:
        if b'"session.update"' in data:
            send_text(self.transport, '{"type":"error","error":{"type":"invalid_request_error",'
                                      '"message":"session refused"}}')
            close(self.transport)


@pytest.mark.parametrize("when", ["accept", "session.update"])
def test_a_service_dropping_every_connection_at_once_gets_backoff_then_the_call_ends(when: str) -> None:
    """Connections that the service closes at once are retried with backoff like failed
    connects, and reconnect_timeout counts from the first loss: the call ends."""
    async def main() -> Any:
        connections = 0

        def accept(request: WSUpgradeRequest) -> _DroppingSession:
            nonlocal connections
            connections += 1
            return _DroppingSession(when)

        service = await ws_create_server(accept, "127.0.0.1", 0)
        url = f"ws://127.0.0.1:{service.sockets[0].getsockname()[1]}/"
        async with Bridge(config(url, reconnect_initial=0.05, reconnect_max=0.4,
                                 reconnect_timeout=1.5)) as bridge:
            res = await call(bridge.url, SPEECH[: 2 * RATE * 2], rate=RATE, tail_s=6)
            await settle(lambda: not bridge.calls)
        service.close()
        return res, bridge.finished[-1], connections

    res, stats, connections = run(main())
    assert stats.end_reason == "upstream unavailable" and res.close_code == 1011
    assert 2 <= connections < 20  # 0.05 s doubling to 0.4 s, over 1.5 s: about 7


def test_service_unreachable_ends_the_call_cleanly() -> None:
    async def main() -> Any:
        async with Bridge(config("ws://127.0.0.1:9/", reconnect_timeout=0.5,
                                 reconnect_initial=0.05)) as bridge:
            res = await call(bridge.url, SPEECH[: 3 * RATE * 2], rate=RATE, tail_s=0)
            return res, bridge.finished[-1]

    res, stats = run(main())
    assert stats.end_reason == "upstream unavailable"
    assert res.close_code == 1011 and res.frames_sent < 150


def test_acs_closing_closes_the_upstream() -> None:
    async def main() -> Any:
        async with RealtimeServer() as rt, Bridge(config(rt.url)) as bridge:
            await call(bridge.url, SPEECH[: RATE], rate=RATE, tail_s=0)
            await settle(lambda: not rt.sessions)
            return bridge.finished[-1], rt.connections

    stats, connections = run(main())
    assert stats.end_reason == "ACS closed" and connections == 1


class _RawCaller(Endpoint):
    """Sends given messages at 20 ms intervals, then hangs up."""

    def __init__(self, messages: list[tuple[WSMsgType, bytes]]) -> None:
        super().__init__()
        self.messages = messages
        self.done = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None

    def on_open(self) -> None:
        asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        assert self.transport is not None
        for kind, data in self.messages:
            if self.transport.is_disconnected:
                return
            self.transport.send(kind, data)
            await asyncio.sleep(0.02)
        self.transport.send_close()
        self.transport.disconnect()

    def on_closed(self) -> None:
        hs = self.transport.close_handshake if self.transport else None
        if hs is not None and hs.recv is not None:
            self.close_code = hs.recv.code.value
        if not self.done.done():
            self.done.set_result(None)


def test_malformed_messages_are_dropped_and_the_call_continues() -> None:
    good, _ = acs_frames(SPEECH[: RATE * 2], RATE)
    T_ = WSMsgType.TEXT
    bad = [(T_, b"{not json"), (WSMsgType.BINARY, b"\x00\x01"),
           (T_, good[0].replace(b'"data":"', b'"data":"!!')),
           (T_, json.dumps({"kind": "AudioData", "audioData": {"data": "AAAA"}}).encode()),
           (T_, b'{"kind":"DtmfData","dtmfData":{"data":"5"}}'),
           (T_, b'{"kind":"SomethingNew","somethingNew":{}}')]
    messages = [(T_, metadata_message(RATE).encode()), *[(T_, g) for g in good[:20]], *bad,
                *[(T_, g) for g in good[20:]]]

    async def main() -> Any:
        async with RealtimeServer(keep_audio=True) as rt, \
                Bridge(config(rt.url, turn_detection=None)) as bridge:
            caller = _RawCaller(messages)
            await ws_connect(lambda: caller, bridge.url)
            await settle(lambda: rt.sessions and rt.sessions[0].samples >= 10 * 480)
            # from the service: not JSON, bad base64 in a delta, a delta of odd length
            rt.broadcast("{not json")
            rt.broadcast('{"type":"response.audio.delta","response_id":"r","item_id":"i",'
                         '"output_index":0,"content_index":0,"delta":"@@@@"}')
            rt.broadcast('{"type":"response.audio.delta","response_id":"r","item_id":"i",'
                         '"output_index":0,"content_index":0,"delta":"AA=="}')
            rt.broadcast('{"type":"error","error":{"type":"server_error","message":"oops"}}')
            await caller.done
            await settle(lambda: not bridge.calls)
            return bridge.finished[-1], rt.history[-1].samples

    stats, samples = run(main())
    assert stats.acs_errors == 4  # not JSON, binary, bad base64, wrong frame size
    assert stats.upstream_errors == 3 and stats.service_errors == 1
    assert stats.frames_in == len(good) and samples == len(good) * 480
    assert stats.end_reason == "ACS closed" and stats.reconnects == 0


def test_too_many_malformed_messages_end_the_call_with_1008() -> None:
    T_ = WSMsgType.TEXT
    messages = [(T_, metadata_message(RATE).encode())] + [(T_, b"x")] * 12

    async def main() -> Any:
        async with RealtimeServer() as rt, Bridge(config(rt.url, max_errors=5)) as bridge:
            caller = _RawCaller(messages)
            await ws_connect(lambda: caller, bridge.url)
            await caller.done
            return caller.close_code, bridge.finished[-1]

    code, stats = run(main())
    assert code == 1008 and stats.end_reason == "too many malformed ACS messages"


def test_max_errors_counts_within_error_window_on_the_acs_side() -> None:
    """Malformed ACS messages spread out over a long call are dropped, however many there
    are; more than ``max_errors`` within ``error_window`` still end the call with 1008."""
    good, _ = acs_frames(SPEECH, RATE)
    T_ = WSMsgType.TEXT
    bad = (T_, b"{not json")
    # 3 lone errors 1.5 s apart (window 0.5 s, max_errors 1), then 2 back to back
    frames = iter((T_, g) for g in good * 2)
    messages = [(T_, metadata_message(RATE).encode())]
    for run_of_good, errors in ((25, 1), (75, 1), (75, 1), (75, 2), (25, 0)):
        messages += [next(frames) for _ in range(run_of_good)] + [bad] * errors

    async def main() -> Any:
        async with RealtimeServer() as rt, \
                Bridge(config(rt.url, turn_detection=None, max_errors=1, error_window=0.5)) as bridge:
            caller = _RawCaller(messages)
            await ws_connect(lambda: caller, bridge.url)
            await caller.done
            await settle(lambda: not bridge.calls)
            return caller.close_code, bridge.finished[-1]

    code, stats = run(main())
    assert stats.acs_errors == 5  # the lone ones did not end the call; the pair did
    assert code == 1008 and stats.end_reason == "too many malformed ACS messages"


def test_max_errors_counts_within_error_window_on_the_service_side() -> None:
    """Malformed service messages spread out over a call are dropped without reconnecting
    (the conversation is kept); more than ``max_errors`` within ``error_window`` reconnect."""
    second = 24000  # input samples the service receives per second of the call

    async def main() -> Any:
        async with RealtimeServer() as rt, \
                Bridge(config(rt.url, turn_detection=None, max_errors=1, error_window=0.5)) as bridge:
            task = asyncio.create_task(call(bridge.url, SPEECH, rate=RATE, tail_s=3))
            await settle(lambda: rt.sessions, 10)
            session = rt.sessions[0]
            for _ in range(3):  # one every 1.5 s of the call's audio
                mark = session.samples
                await settle(lambda: session.samples >= mark + 3 * second // 2, 10)
                rt.broadcast("{not json")
            await settle(lambda: bridge.calls and next(iter(bridge.calls.values())).upstream_errors == 3)
            lone = next(iter(bridge.calls.values())).reconnects
            rt.broadcast("{not json")
            rt.broadcast("{not json")
            await settle(lambda: bridge.calls and next(iter(bridge.calls.values())).reconnects == 1, 10)
            await task
            await settle(lambda: not bridge.calls)
            return lone, bridge.finished[-1]

    lone, stats = run(main())
    assert lone == 0  # three errors 1.5 s apart: no reconnect
    # the pair's first follows the third lone one closely: either may be the one too many
    # (what the old connection sends after it is ignored)
    assert stats.upstream_errors in (4, 5) and stats.reconnects == 1
    assert stats.end_reason == "ACS closed"


def test_bridge_rejects_other_paths_and_shuts_down_calls_with_1001() -> None:
    async def main() -> Any:
        async with RealtimeServer() as rt:
            bridge = Bridge(config(rt.url, path="/acs"))
            await bridge.start()
            with pytest.raises(WSInvalidStatusError, match="404"):
                await ws_connect(Endpoint, bridge.url.replace("/acs", "/other"))
            task = asyncio.create_task(call(bridge.url, SPEECH, rate=RATE, tail_s=0))
            await settle(lambda: bridge.calls and rt.sessions)
            await bridge.close()
            res = await task
            await settle(lambda: not rt.sessions)
            return res

    res = run(main())
    assert res.close_code == 1001


def test_a_tls_bridge_serves_a_call_and_counts_a_client_without_tls(tmp_path: Any) -> None:
    """wss://: the bridge's own accept loop hands the socket to picows through TLS; a client
    speaking plain HTTP to it gets nothing and is counted (tls_handshake), once."""
    pki = make_pki(tmp_path)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pki["server"], pki["server_key"])
    client = ssl.create_default_context(cafile=str(pki["ca"]))

    async def main() -> Any:
        async with RealtimeServer(mode="echo") as rt, Bridge(config(rt.url, ssl=server)) as bridge:
            assert bridge.url.startswith("wss://")
            res = await call(bridge.url, SPEECH[: 2 * RATE * 2], rate=RATE, tail_s=3.0,
                             realtime=rt, ssl_context=client)
            reader, writer = await asyncio.open_connection("127.0.0.1", bridge.port)
            writer.write(b"GET /acs HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            await settle(lambda: bridge.refusals.counts.get("tls_handshake") == 1)
            return res, answer, dict(bridge.refusals.counts)

    res, answer, counts = run(main())
    assert res.frames_received >= 50 and res.figures is not None and res.figures.lost_frames == 0
    assert answer == b"" and counts == {"tls_handshake": 1}


def test_two_calls_with_one_id_are_both_tracked_and_both_shut_down() -> None:
    """ACS connects twice with one call connection id: the first call to end must not take
    the other out of Bridge.calls, and closing the bridge ends the one still live."""
    async def main() -> Any:
        async with RealtimeServer() as rt:
            bridge = Bridge(config(rt.url))
            await bridge.start()
            short = asyncio.create_task(call(bridge.url, SPEECH[: RATE], rate=RATE, tail_s=0,
                                             call_id="same"))
            long = asyncio.create_task(call(bridge.url, SPEECH, rate=RATE, tail_s=0, call_id="same"))
            await settle(lambda: len(rt.sessions) == 2)
            await short
            await settle(lambda: len(bridge.finished) == 1)
            still = list(bridge.calls)
            await bridge.close()
            res = await long
            return still, res, [s.end_reason for s in bridge.finished]

    still, res, reasons = run(main())
    assert still == ["same"]
    assert res.close_code == 1001 and reasons == ["ACS closed", "bridge shutting down"]


def test_closing_during_an_upstream_handshake_leaves_no_connection_open() -> None:
    """The bridge closes while the service has not answered the WebSocket upgrade yet; when
    the answer comes, the bridge must close that connection (picows keeps the socket of a
    cancelled handshake open)."""
    async def main() -> None:
        asked, answer, closed = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def slow_service(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            request = await reader.readuntil(b"\r\n\r\n")
            found = re.search(rb"(?i)sec-websocket-key:\s*(\S+)", request)
            assert found is not None
            asked.set()
            await answer.wait()
            accept = base64.b64encode(hashlib.sha1(
                found.group(1) + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())  # RFC 6455
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            while await reader.read(4096):  # until the bridge closes the connection
                pass
            closed.set()
            writer.close()

        service = await asyncio.start_server(slow_service, "127.0.0.1", 0)
        port = service.sockets[0].getsockname()[1]
        bridge = Bridge(config(f"ws://127.0.0.1:{port}/", turn_detection=None, connect_timeout=30))
        await bridge.start()
        task = asyncio.create_task(call(bridge.url, SPEECH[: RATE * 2], rate=RATE, tail_s=0))
        await asyncio.wait_for(asked.wait(), 10)
        await bridge.close()
        answer.set()
        await asyncio.wait_for(closed.wait(), 10)
        await task
        service.close()

    run(main())


class _LateUpgrade:
    """A service that answers the WebSocket upgrade only once ``answer`` is set, then records
    what the client sends (``after``) until the client closes (``closed``)."""

    def __init__(self) -> None:
        self.asked, self.answer, self.closed = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self.after = bytearray()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        found = re.search(rb"(?i)sec-websocket-key:\s*(\S+)", request)
        assert found is not None
        self.asked.set()
        await self.answer.wait()
        accept = base64.b64encode(hashlib.sha1(
            found.group(1) + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())  # RFC 6455
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        while chunk := await reader.read(4096):
            self.after += chunk
        self.closed.set()
        writer.close()


def test_a_caller_whose_handshake_timed_out_closes_the_late_connection() -> None:
    """acs_caller.call gives up a handshake (connect_timeout); when the answer comes anyway,
    the caller closes that connection at once instead of starting the call on it."""
    async def main() -> bytes:
        service = _LateUpgrade()
        server = await asyncio.start_server(service.serve, "127.0.0.1", 0)
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        with pytest.raises(asyncio.TimeoutError):
            await call(url, SPEECH[: RATE], rate=RATE, tail_s=60, connect_timeout=0.2)
        service.answer.set()
        await asyncio.wait_for(service.closed.wait(), 10)
        server.close()
        return bytes(service.after)

    after = run(main())
    assert after[0] == 0x88  # the first frame is CLOSE: no AudioMetadata, no audio


def test_serve_main_runs_until_sigterm_and_reads_the_environment() -> None:
    code = ("import sys; from audiocore.gateway.bridge import serve_main; "
            "sys.exit(serve_main(sys.argv[1:]))")
    env = dict(os.environ, **{ENV_URL: "ws://127.0.0.1:9/realtime", ENV_API_KEY: "k",
                              ENV_AUTH_TOKEN: "caller-token-0123456789"})
    with server_process([sys.executable, "-c", code, "--port", "0", "--log-level", "WARNING"], env) as (p, line):
        assert line.startswith("listening on ws://127.0.0.1:") and line.rstrip().endswith("/acs")
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0
    bad = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if k != ENV_URL}, timeout=60)
    assert bad.returncode == 2 and ENV_URL in bad.stderr
    # secure by default: no caller authentication configured -> refuses to start, one line
    env.pop(ENV_AUTH_TOKEN)
    bare = subprocess.run([sys.executable, "-c", code, "--port", "0"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert bare.returncode == 2 and not bare.stdout
    [line] = bare.stderr.splitlines()
    for flag in ("--acs-jwks", "--acs-audience", "--auth-token", "--insecure-no-auth"):
        assert flag in line


def test_every_bad_serve_flag_value_is_one_line_naming_the_flag(tmp_path: Any) -> None:
    """``audiocore serve bridge`` given a wrong value for each flag of its --help: exit 2 and
    one line on stderr naming the flag (and the file, for files); no traceback. A listening
    address that cannot be used: exit 1, one line."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pki = make_pki(tmp_path)
    locked = tmp_path / "locked.key"
    locked.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase")))
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("not a certificate\n")
    missing = str(tmp_path / "missing.pem")
    busy = socket.create_server(("127.0.0.1", 0))
    busy_port = str(busy.getsockname()[1])
    # (arguments, exit status, what the line must name)
    cases: list[tuple[list[str], int, list[str]]] = [
        (["--log-level", "verbose"], 2, ["--log-level", "verbose", "debug"]),
        (["--port", "80000"], 2, ["--port", "80000", "65535"]),
        (["--port", "-1"], 2, ["--port"]),
        (["--port", "http"], 2, ["--port", "http"]),
        (["--certfile", missing, "--keyfile", str(pki["server_key"])], 2, ["--certfile", missing]),
        (["--certfile", str(pki["server"]), "--keyfile", missing], 2, ["--keyfile", missing]),
        (["--keyfile", str(pki["server_key"])], 2, ["--keyfile", "--certfile"]),
        (["--certfile", str(not_pem)], 2, ["--certfile", str(not_pem), "PEM"]),
        (["--certfile", str(pki["server"]), "--keyfile", str(locked)], 2, ["--keyfile", str(locked), "encrypted"]),
        (["--session", "{voice: alloy}"], 2, ["--session", "not valid JSON"]),
        (["--session", '["alloy"]'], 2, ["--session", "JSON object", "array"]),
        (["--acs-rates", "16000,x"], 2, ["--acs-rates", "16000,x"]),
        (["--acs-rates", "44100"], 2, ["--acs-rates", "44100"]),
        (["--path", "acs"], 2, ["--path", "'/'"]),
        (["--max-calls", "0"], 2, ["--max-calls"]),
        (["--max-calls-per-ip", "-3"], 2, ["--max-calls-per-ip"]),
        (["--handshake-timeout", "inf"], 2, ["--handshake-timeout", "finite"]),
        (["--metadata-timeout", "0"], 2, ["--metadata-timeout"]),
        (["--idle-timeout", "nan"], 2, ["--idle-timeout"]),
        (["--burst-ms", "10"], 2, ["--burst-ms", "20"]),
        (["--max-excess-ms", "-1"], 2, ["--max-excess-ms"]),
        (["--max-message-bytes", "0"], 2, ["--max-message-bytes"]),
        (["--max-pings-per-s", "many"], 2, ["--max-pings-per-s", "many"]),
        (["--max-write-buffer", "0"], 2, ["--max-write-buffer"]),
        (["--accept-pause", "-1"], 2, ["--accept-pause"]),
        (["--send-buffer-bytes", "99999999999"], 2, ["--send-buffer-bytes"]),
        (["--close-timeout", "0"], 2, ["--close-timeout"]),
        (["--realtime-rate", "16k"], 2, ["--realtime-rate"]),
        (["--realtime-rate", "16000"], 2, ["24000"]),
        (["--vad-threshold", "5"], 2, ["--vad-threshold", "1"]),
        (["--prefix-padding-ms", "-300"], 2, ["--prefix-padding-ms"]),
        (["--silence-duration-ms", "half"], 2, ["--silence-duration-ms"]),
        (["--playout-target-ms", "10"], 2, ["--playout-target-ms"]),
        (["--max-playout-ms", "50"], 2, ["--max-playout-ms"]),
        (["--gap-buffer-ms", "-20"], 2, ["--gap-buffer-ms"]),
        (["--reconnect-timeout", "0"], 2, ["--reconnect-timeout"]),
        (["--max-errors", "-1"], 2, ["--max-errors"]),
        (["--error-window", "0"], 2, ["--error-window"]),
        (["--auth", "basic"], 2, ["--auth", "basic"]),
        (["--dialect", "gemini"], 2, ["--dialect", "gemini"]),
        (["--quality", "best"], 2, ["--quality", "best"]),
        (["--ticker", "atomic"], 2, ["--ticker"]),
        (["--loop", "trio"], 2, ["--loop"]),
        (["--upstream-url", "https://api.openai.com/v1/realtime"], 2, ["ws://"]),
        (["--auth-token", "short"], 2, ["16"]),
        (["--acs-audience", "aud"], 2, ["--acs-audience", "--acs-jwks"]),
        (["--no-such-flag"], 2, ["--no-such-flag"]),
        (["--host", "256.0.0.1"], 1, ["256.0.0.1"]),
        (["--port", busy_port], 1, [busy_port]),
    ]
    env = dict(os.environ, **{ENV_URL: "ws://127.0.0.1:9/realtime", ENV_AUTH_TOKEN: "t" * 20})
    # --loop uvloop where uvloop is not installed (its import blocked)
    no_uvloop = ("import sys; sys.modules['uvloop'] = None; from audiocore.gateway.bridge import "
                 "serve_main; sys.exit(serve_main(sys.argv[1:]))")
    runs = [([sys.executable, "-m", "audiocore", "serve", "bridge", "--port", "0", *args], status, named)
            for args, status, named in cases]
    runs.append(([sys.executable, "-c", no_uvloop, "--port", "0", "--loop", "uvloop"], 2,
                 ["--loop uvloop", "not installed"]))
    def start(argv: list[str]) -> subprocess.Popen[str]:
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env, stdin=subprocess.DEVNULL)

    procs: list[tuple[subprocess.Popen[str], list[str], int, list[str]]] = []
    try:
        for n in range(0, len(runs), 6):  # 6 at a time: the machine is shared
            batch = [(start(argv), argv, status, named) for argv, status, named in runs[n:n + 6]]
            procs += batch
            for proc, argv, *_ in batch:  # a bad value accepted: it would serve until killed
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    raise AssertionError(f"{argv[-2:]} accepted: the bridge started") from None
        for proc, argv, status, named in procs:
            out, err = proc.communicate()
            lines = err.strip().splitlines()
            assert proc.returncode == status and len(lines) == 1 and not out, (argv[-2:], proc.returncode, err)
            assert lines[0].startswith("audiocore serve bridge: "), lines
            for word in named:
                assert word in lines[0], (argv[-2:], lines[0])
    finally:
        busy.close()
        for proc, *_ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def test_protocol_error_type_is_the_packages() -> None:
    assert issubclass(ProtocolError, ValueError)
