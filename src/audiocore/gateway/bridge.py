"""ACS media streaming <-> Voice Live / OpenAI Realtime bridge (a reference gateway).

ACS connects to this WebSocket server once per call; the bridge opens one WebSocket to the
realtime service per call and carries the audio across:

- in: each ACS ``AudioData`` frame (20 ms, 16 or 24 kHz, silent frames included: time is
  never dropped) becomes one ``input_audio_buffer.append`` at the service's input rate;
- out: ``response.audio.delta`` audio is resampled to the ACS rate into a
  :class:`~audiocore.JitterQueue` (stream mode) and played as exact 20 ms ACS ``AudioData``
  frames, one per tick of a drift-free clock (one shared ticker for all calls);
- barge-in on ``input_audio_buffer.speech_started``: ACS ``StopAudio`` at once, the queue
  cleared, ``response.cancel`` (unless the service interrupts by itself),
  ``conversation.item.truncate`` with the milliseconds actually played, late deltas of the
  cancelled response dropped;
- the upstream is reconnected with backoff when it fails, without ending the call;
- callers are authenticated in the WebSocket handshake (ACS's JWT or a static token) before
  anything exists upstream, and every limit (calls, calls per address, timeouts, pacing,
  message size, sample rates, PINGs, unsent bytes) is a :class:`BridgeConfig` field and a
  flag; each refusal is counted (``Bridge.refusals.counts``) and logged once per interval.

Everything is configured by :class:`BridgeConfig` (flags and environment:
:func:`serve_main`). The audio path, the barge-in sequence, reconnects, errors and figures
are described in ``docs/gateway-bridge.md``. All of a bridge runs on one event loop thread.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import importlib
import json
import logging
import math
import os
import random
import socket
import ssl
from ssl import SSLContext
import sys
import time
import uuid
from dataclasses import dataclass, field, fields
from http import HTTPStatus
from typing import Any, Callable, Literal, NoReturn
from urllib.parse import urlsplit

from picows import (
    WSAutoPingStrategy,
    WSCloseCode,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
)

from audiocore._ext.errors import ProtocolError
from audiocore._ext.jitter import JitterQueue
from audiocore._ext.resample import Resampler
from audiocore.gateway._accept import Acceptor, listening_socket
from audiocore.gateway._logsafe import RedactingFilter, clip, redact_url
from audiocore.gateway._refusals import Refusals
from audiocore.gateway._signals import stop_on_signal
from audiocore.gateway._ticker import PerCallTimers, SharedTicker
from audiocore.gateway._ws import Endpoint, close, connect, picows_logger, send_text, write_buffer
from audiocore.gateway.auth import AcsJwt, AuthError, Authenticator, StaticToken
from audiocore.protocols import acs, realtime
from audiocore.protocols.bridge import AcsRealtimeTranscoder

__all__ = [
    "ENV_API_KEY",
    "ENV_AUTH",
    "ENV_AUTH_TOKEN",
    "ENV_URL",
    "Bridge",
    "BridgeConfig",
    "CallStats",
    "default_turn_detection",
    "serve_main",
    "session_update_message",
]

log = logging.getLogger("audiocore.gateway.bridge")

#: Environment variables read by :meth:`BridgeConfig.from_env` and ``audiocore serve bridge``.
ENV_URL = "AUDIOCORE_REALTIME_URL"
ENV_API_KEY = "AUDIOCORE_REALTIME_API_KEY"
ENV_AUTH = "AUDIOCORE_REALTIME_AUTH"
#: The static bearer token ACS (or a proxy) must present (``--auth-token``).
ENV_AUTH_TOKEN = "AUDIOCORE_BRIDGE_AUTH_TOKEN"


_TEXT = WSMsgType.TEXT
_STOP = acs.stop_audio_message()
_FRAME_S = 0.02
#: s an upstream connection must live to count as lasting: its loss resets the backoff and
#: starts a new reconnect_timeout; a shorter one is redialled after the backoff
_LASTING_S = 10.0
#: ACS's documented media-streaming rates; 8000 and 48000 only when acs_rates says so
_ACS_RATES = (16000, 24000)
_ALLOWED_RATES = (8000, 16000, 24000, 48000)
#: call ids longer than this (or not printable ASCII) are replaced by a generated one
_MAX_CALL_ID = 128


def default_turn_detection() -> dict[str, Any]:
    """Server VAD as the services document it (``interrupt_response``/``auto_truncate`` are
    set from :class:`BridgeConfig`, never left to the service's defaults)."""
    return {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
            "silence_duration_ms": 500, "create_response": True}


@dataclass
class BridgeConfig:
    """What a :class:`Bridge` listens on and connects to. Durations in seconds unless named
    ``_ms``; rates in Hz.

    ``dialect`` / ``auth`` None: chosen from the URL (a host with "azure" in it is Voice Live
    with an ``api-key`` header; anything else OpenAI with ``Authorization: Bearer``).
    ``turn_detection`` None sends ``turn_detection: null`` (no server VAD: no barge-in).
    ``auth``/``api_key`` are the bridge's credentials upstream; ``caller_auth`` checks ACS's.
    A :class:`Bridge` refuses to start without ``caller_auth`` unless ``insecure_no_auth``.
    """

    upstream_url: str
    api_key: str | None = None
    auth: Literal["bearer", "api-key", "none"] | None = None
    dialect: Literal["openai", "openai-ga", "voicelive"] | None = None
    host: str = "127.0.0.1"
    port: int = 0
    path: str | None = "/acs"  #: accept ACS only on this path (other paths: 404; None: any)
    ssl: SSLContext | None = None  #: TLS for the ACS side (wss://); None: plain ws://
    upstream_ssl: SSLContext | None = None  #: None: the default context for wss:// URLs
    extra_headers: dict[str, str] = field(default_factory=dict)  #: sent upstream
    realtime_rate: int = 24000  #: the service's input and output rate
    quality: Literal["hq", "fast"] = "hq"
    turn_detection: dict[str, Any] | None = field(default_factory=default_turn_detection)
    interrupt_response: bool = False  #: True: the service cancels responses itself on speech
    auto_truncate: bool = False  #: Voice Live only: True: the service truncates itself
    session: dict[str, Any] = field(default_factory=dict)  #: more session.update fields
    playout_target_ms: int = 20  #: audio gathered before a response starts playing
    max_playout_ms: int = 60_000  #: response audio held per call (older audio is dropped)
    gap_buffer_ms: int = 1000  #: caller audio kept while the upstream is down, replayed after
    reconnect_initial: float = 0.1
    reconnect_max: float = 5.0
    reconnect_timeout: float = 30.0  #: the call ends after this long without a lasting upstream
    connect_timeout: float = 10.0
    max_errors: int = 100  #: malformed messages tolerated per call and side within error_window
    #: s: more than max_errors malformed messages from one side within this long end the call
    #: (ACS) or reconnect (upstream); sparser ones are dropped, however many a long call gets
    error_window: float = 60.0
    ticker: Literal["shared", "per-call"] = "shared"
    max_write_buffer: int = 1 << 20  #: bytes unsent to a peer before it counts as gone
    # callers and limits (docs/gateway-bridge.md, "Security")
    caller_auth: Authenticator | None = None  #: checks each ACS handshake (AcsJwt, StaticToken)
    insecure_no_auth: bool = False  #: True: accept callers without authentication
    max_calls: int = 200  #: calls at once; the next handshake gets HTTP 503
    max_calls_per_ip: int = 100  #: connections at once from one address; the next gets 429
    handshake_timeout: float = 5.0  #: TCP accept -> WebSocket upgrade request
    metadata_timeout: float = 5.0  #: upgrade -> AudioMetadata, then close 1008
    idle_timeout: float = 15.0  #: a caller silent this long is closed (ACS sends every 20 ms)
    burst_ms: int = 500  #: how far caller audio may run ahead of real time (more is dropped)
    max_excess_ms: int = 2000  #: audio dropped by pacing before the call is closed (1008)
    max_message_bytes: int = 64 << 10  #: an inbound ACS message (ACS's are 1-2 KB)
    max_pings_per_s: int = 10  #: PINGs per connection per second (more: close 1008)
    acs_rates: tuple[int, ...] = _ACS_RATES  #: AudioMetadata rates accepted (8000, 48000 too)
    accept_pause: float = 1.0  #: s without accepting when the process is out of descriptors
    #: SO_SNDBUF of each ACS connection (0: the system's, often 4 MB): the kernel's share of
    #: what a caller that does not read makes the bridge hold (ACS takes ~45 KB/s of audio)
    send_buffer_bytes: int = 256 << 10
    #: s a closed call's connections may take to flush what is unsent before they are dropped
    #: (a graceful close waits for a peer that does not read, its buffers with it, for good)
    close_timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.dialect is None:
            self.dialect = "voicelive" if _is_azure(self.upstream_url) else "openai"
        if self.auth is None:
            self.auth = "api-key" if _is_azure(self.upstream_url) else "bearer"
        if self.dialect not in ("openai", "openai-ga", "voicelive"):
            raise ValueError(f"dialect must be openai, openai-ga or voicelive, not {self.dialect!r}")
        if self.auth not in ("bearer", "api-key", "none"):
            raise ValueError(f"auth must be bearer, api-key or none, not {self.auth!r}")
        if self.dialect == "voicelive":
            if self.realtime_rate not in (8000, 16000, 24000):
                raise ValueError("Voice Live takes 8000, 16000 or 24000 Hz")
        elif self.realtime_rate != 24000:
            raise ValueError("OpenAI Realtime pcm16 is 24000 Hz only")
        if urlsplit(self.upstream_url).scheme not in ("ws", "wss"):
            raise ValueError(f"upstream_url must be a ws:// or wss:// URL, not {self.upstream_url!r}")
        if self.playout_target_ms < 20 or self.max_playout_ms < 100:
            raise ValueError("playout_target_ms >= 20 and max_playout_ms >= 100")
        self.acs_rates = tuple(self.acs_rates)
        if not self.acs_rates or not set(self.acs_rates) <= set(_ALLOWED_RATES):
            raise ValueError(f"acs_rates must be among {_ALLOWED_RATES}, not {self.acs_rates}")
        for name in ("max_calls", "max_calls_per_ip", "max_message_bytes", "max_pings_per_s",
                     "max_write_buffer"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("max_errors", "gap_buffer_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("handshake_timeout", "metadata_timeout", "idle_timeout", "accept_pause",
                     "close_timeout", "error_window", "reconnect_initial", "reconnect_max",
                     "reconnect_timeout", "connect_timeout"):
            if not 0 < getattr(self, name) < math.inf:
                raise ValueError(f"{name} must be a positive number of seconds")
        if self.reconnect_max < self.reconnect_initial:
            raise ValueError("reconnect_max must be >= reconnect_initial")
        if not 0 <= self.send_buffer_bytes < 1 << 31:
            raise ValueError("send_buffer_bytes must be 0 (the system's) .. 2147483647")
        if self.path is not None and not self.path.startswith("/"):
            raise ValueError(f"path must start with '/', not {self.path!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, not {self.port}")
        if self.burst_ms < 20 or self.max_excess_ms < 0:
            raise ValueError("burst_ms >= 20 and max_excess_ms >= 0")

    def resampler_delays_ms(self, acs_rate: int) -> tuple[float, float]:
        """The group delays, in ms, that the bridge's resamplers add to a call at
        ``acs_rate``: caller -> service, then service -> caller."""
        up = Resampler(acs_rate, self.realtime_rate, quality=self.quality)
        down = Resampler(self.realtime_rate, acs_rate, quality=self.quality)
        return up.delay_samples * 1000 / self.realtime_rate, down.delay_samples * 1000 / acs_rate

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> BridgeConfig:
        """A config from ``AUDIOCORE_REALTIME_URL``, ``AUDIOCORE_REALTIME_API_KEY`` and
        ``AUDIOCORE_REALTIME_AUTH`` (``bearer``/``api-key``/``none``); keyword arguments win."""
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        if env.get(ENV_URL):
            values["upstream_url"] = env[ENV_URL]
        if env.get(ENV_API_KEY):
            values["api_key"] = env[ENV_API_KEY]
        if env.get(ENV_AUTH):
            values["auth"] = env[ENV_AUTH]
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "upstream_url" not in values:
            raise ValueError(f"no upstream URL: pass one or set {ENV_URL}")
        return cls(**values)

    def upstream_headers(self) -> dict[str, str]:
        headers = {}
        if self.api_key and self.auth == "bearer":
            headers["Authorization"] = f"Bearer {self.api_key}"
        elif self.api_key and self.auth == "api-key":
            headers["api-key"] = self.api_key
        if self.dialect == "openai":
            headers["OpenAI-Beta"] = "realtime=v1"
        headers.update(self.extra_headers)
        return headers


def _is_azure(url: str) -> bool:
    return "azure" in (urlsplit(url).hostname or "")


def session_update_message(config: BridgeConfig) -> str:
    """The ``session.update`` the bridge sends on every (re)connect: formats, input rate and
    turn detection with explicit ``interrupt_response`` (and, for Voice Live,
    ``auto_truncate``), then ``config.session`` merged over it."""
    td = None
    if config.turn_detection is not None:
        td = dict(config.turn_detection, interrupt_response=config.interrupt_response)
        if config.dialect == "voicelive":
            td["auto_truncate"] = config.auto_truncate
    rate = config.realtime_rate
    session: dict[str, Any]
    if config.dialect == "openai-ga":
        fmt = {"type": "audio/pcm", "rate": rate}
        session = {"type": "realtime",
                   "audio": {"input": {"format": fmt, "turn_detection": td},
                             "output": {"format": fmt}}}
    else:
        session = {"input_audio_format": "pcm16", "turn_detection": td,
                   "output_audio_format": "pcm16" if rate == 24000 else f"pcm16_{rate}hz"}
        if config.dialect == "voicelive":
            session["input_audio_sampling_rate"] = rate
    session.update(config.session)
    return realtime.session_update(**session)


@dataclass(slots=True)
class CallStats:
    """Figures of one call (counts of messages and frames; times are ``time.monotonic()``)."""

    call_id: str
    correlation_id: str | None = None
    acs_rate: int | None = None
    started: float = 0.0
    ended: float | None = None
    end_reason: str | None = None
    frames_in: int = 0  #: ACS audio frames forwarded upstream (silent ones included)
    frames_out: int = 0  #: 20 ms frames played to ACS
    deltas: int = 0  #: audio deltas received
    dropped_deltas: int = 0  #: late deltas of cancelled responses, not played
    barge_ins: int = 0
    stop_audio: int = 0  #: StopAudio messages sent
    connects: int = 0  #: upstream connections made (the first one included)
    reconnects: int = 0  #: upstream failures recovered
    gap_replayed: int = 0  #: caller frames sent late after an upstream gap
    gap_dropped: int = 0  #: caller frames dropped in an upstream gap (older than gap_buffer_ms)
    acs_errors: int = 0  #: malformed ACS messages (dropped)
    upstream_errors: int = 0  #: malformed realtime messages (dropped), all connections
    service_errors: int = 0  #: realtime ``error`` events received
    playout_dropped_ms: int = 0  #: response audio dropped over max_playout_ms
    underruns: int = 0  #: frames concealed because a response's audio came late
    paced_dropped: int = 0  #: caller frames dropped for running ahead of real time + burst
    peer: str | None = None  #: the caller's address

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class _ErrorWindow:
    """When one side's last ``limit + 1`` malformed messages arrived (``time.monotonic``):
    more than ``limit`` within ``window`` s is too many. O(1) per message, ``limit + 1``
    floats per side."""

    __slots__ = ("times", "window")

    def __init__(self, limit: int, window: float) -> None:
        self.times: collections.deque[float] = collections.deque(maxlen=limit + 1)
        self.window = window

    def too_many(self, now: float) -> bool:
        """Count a malformed message arrived at ``now``; True when it is one too many."""
        times = self.times
        times.append(now)
        return len(times) == times.maxlen and now - times[0] <= self.window


# ---------------------------------------------------------------- connections


_WSProtocol: Any = importlib.import_module("picows.picows").WSProtocol


class _Protocol(_WSProtocol):  # type: ignore[misc]
    """picows' server protocol (``ws_create_server`` builds the same), told which accepted
    connection it serves: the handshake callback then knows the caller's address, and the
    bridge knows when the connection ends (handshake refused or timed out included)."""

    conn: _Conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.conn.transport = transport
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        try:
            super().connection_lost(exc)
        finally:
            self.conn.bridge._conn_lost(self.conn)


class _Conn:
    """One accepted TCP connection: its address, whether it sent an upgrade request
    (``asked``) and became a call (``admitted``)."""

    __slots__ = ("bridge", "ip", "transport", "asked", "admitted", "gone")

    def __init__(self, bridge: Bridge, ip: str) -> None:
        self.bridge = bridge
        self.ip = ip
        self.transport: asyncio.BaseTransport | None = None
        self.asked = False
        self.admitted = False
        self.gone = False

    def accept(self, request: WSUpgradeRequest) -> _AcsEndpoint | WSUpgradeResponseWithListener:
        self.asked = True
        return self.bridge._accept(request, self)


class _AcsEndpoint(Endpoint):
    answer_pings = True

    def __init__(self, bridge: Bridge, request: WSUpgradeRequest, peer: str) -> None:
        super().__init__()
        cfg = bridge.config
        self.max_message = cfg.max_message_bytes
        self.max_pings_per_s = cfg.max_pings_per_s
        self.max_write_buffer = cfg.max_write_buffer
        self.call = _Call(bridge, self, request, peer)

    def on_open(self) -> None:
        self.call.acs_open(self.transport)

    def on_text(self, data: bytes) -> None:
        self.call.on_acs(data)

    def on_binary(self, data: bytes) -> None:
        self.call.acs_error(ProtocolError("ACS sends text frames; a binary frame arrived", None))

    def on_refused(self, reason: str, code: WSCloseCode, detail: str) -> None:
        self.call.refuse(reason, detail, code)

    def on_closed(self) -> None:
        hs = self.transport.close_handshake if self.transport is not None else None
        if not self.call.ended and hs is not None and hs.sent is not None \
                and hs.sent.code == WSCloseCode.MESSAGE_TOO_BIG:
            # picows refused a frame over max_frame_size (and closed with 1009)
            self.call.refuse("message_too_big", f"a frame over {self.max_message} bytes",
                             WSCloseCode.MESSAGE_TOO_BIG)
            return
        self.call.end("ACS closed")


class _UpstreamEndpoint(Endpoint):
    max_message = realtime.DEFAULT_MAX_MESSAGE_SIZE
    answer_pings = True

    def __init__(self, call: _Call, generation: int) -> None:
        super().__init__()
        self.call = call
        self.generation = generation
        self.max_pings_per_s = call.config.max_pings_per_s
        self.max_write_buffer = call.config.max_write_buffer

    def on_refused(self, reason: str, code: WSCloseCode, detail: str) -> None:
        if self.generation == self.call.generation:
            self.call.bridge.refusals.refuse("upstream_" + reason, detail)
            self.call.upstream_lost(f"the service: {detail}", abort=True)
        else:
            close(self.transport, code, abort=True)

    def on_text(self, data: bytes) -> None:
        if self.generation == self.call.generation:
            self.call.on_upstream(data)

    def on_binary(self, data: bytes) -> None:
        if self.generation == self.call.generation:
            self.call.upstream_error(ProtocolError("the service sends text frames; a binary frame arrived", None))

    def on_closed(self) -> None:
        if self.generation == self.call.generation:
            self.call.upstream_lost("the service closed the connection")


class _Call:
    """One ACS call and its upstream. Runs on the bridge's loop thread only."""

    def __init__(self, bridge: Bridge, endpoint: _AcsEndpoint, request: WSUpgradeRequest,
                 peer: str) -> None:
        self.bridge = bridge
        self.config = config = bridge.config
        headers = request.headers
        given = headers.get("x-ms-call-connection-id")
        call_id = given or uuid.uuid4().hex
        if given and (len(given) > _MAX_CALL_ID or not given.isascii() or not given.isprintable()):
            call_id = uuid.uuid4().hex  # never echo an attacker's 15 KB header into every line
            bridge.refusals.refuse("call_id_replaced", f"call {call_id}: x-ms-call-connection-id "
                                   f"{clip(given)} replaced", logging.INFO)
        corr = headers.get("x-ms-call-correlation-id")
        started = time.monotonic()
        self.stats = CallStats(call_id, clip(corr, _MAX_CALL_ID) if corr else None,
                               started=started, peer=peer)
        self.last_rx = started  # when the caller last sent a message
        self.tat = 0.0  # pacing: when the audio forwarded so far is due (time.monotonic)
        self.burst_s = config.burst_ms / 1000
        self.acs_t: WSTransport | None = None
        self.acs_raw: Any = None  # the ACS socket's transport (its write buffer is checked)
        self.up: WSTransport | None = None
        self.up_raw: Any = None
        self.generation = 0  # of the upstream connection; audio items are tagged with it
        self.live = False  # upstream connected and session.update sent
        self.ended = False
        self.meta: acs.AcsSession | None = acs.AcsSession()  # until AudioMetadata
        self.tc: AcsRealtimeTranscoder | None = None
        self.queue: JitterQueue | None = None
        self.down: Resampler | None = None
        self.down_rate = config.realtime_rate
        self.item: tuple[int, str] | None = None  # the item whose audio is being pushed
        # caller frames kept while the upstream is down (the oldest dropped beyond the bound)
        self.gap: collections.deque[bytes] = collections.deque(maxlen=max(config.gap_buffer_ms // 20, 0))
        self.connector: asyncio.Task[None] | None = None
        self.last_out = 0.0
        self.connected_at = 0.0
        self.backoff = config.reconnect_initial
        self.down_since: float | None = None  # first upstream loss since a lasting connection
        self.acs_bad = _ErrorWindow(config.max_errors, config.error_window)
        self.upstream_bad = _ErrorWindow(config.max_errors, config.error_window)

    # ------------------------------------------------------------ ACS side

    def acs_open(self, transport: WSTransport | None) -> None:
        self.acs_t = transport
        self.acs_raw = transport.underlying_transport if transport is not None else None
        self.bridge._calls[self] = None
        log.info("call %s: ACS connected", self.stats.call_id)

    def on_acs(self, data: bytes) -> None:
        """A message from ACS. After AudioMetadata each one is 20 ms of the call: paced to
        real time plus ``burst_ms`` (a virtual clock: the sender may run ``burst_ms`` ahead
        and catch up ``burst_ms`` it fell behind, so network jitter costs nothing)."""
        if self.ended:
            return  # messages read with the one that ended the call
        now = time.monotonic()
        self.last_rx = now
        if self.meta is None:
            tat = self.tat
            if tat < now - self.burst_s:
                tat = now - self.burst_s
            tat += _FRAME_S
            if tat - now > self.burst_s:
                self._paced()
                return
            self.tat = tat
        self._message(data)

    def _paced(self) -> None:
        s = self.stats
        s.paced_dropped += 1
        cfg = self.config
        if s.paced_dropped * 20 > cfg.max_excess_ms:
            self.refuse("audio_flood", f"more than {cfg.max_excess_ms} ms of audio ahead of "
                        "real time dropped", WSCloseCode.POLICY_VIOLATION)
        else:
            self.bridge.refusals.refuse("audio_too_fast", f"call {s.call_id}: a frame "
                                        f"{cfg.burst_ms} ms ahead of real time dropped")

    def _message(self, data: bytes) -> None:
        if self.live:
            tc = self.tc
            assert tc is not None
            try:
                out = tc.to_realtime(data)
            except ProtocolError as exc:
                self.acs_error(exc)
                return
            if out is not None:
                self.up.send(_TEXT, out)  # type: ignore[union-attr]
                self.stats.frames_in += 1
                if self.up_raw.get_write_buffer_size() > self.config.max_write_buffer:
                    self.upstream_lost("the service is not reading", abort=True)
                return
            self._acs_events(tc)
            return
        if self.meta is not None:
            self._metadata(data)
            return
        if len(self.gap) == self.gap.maxlen:
            self.stats.gap_dropped += 1  # the oldest frame (or this one, with no room at all)
        self.gap.append(data)

    def _metadata(self, data: bytes) -> None:
        """Before AudioMetadata: read it, then set the call's audio up and connect."""
        assert self.meta is not None
        try:
            ev = self.meta.receive(data)
        except ProtocolError as exc:
            if (exc.field or "").startswith("audioMetadata"):
                self.refuse("bad_metadata", str(exc), WSCloseCode.UNSUPPORTED_DATA)
            else:
                self.acs_error(exc)
            return
        if not isinstance(ev, acs.AudioMetadata):
            log.debug("call %s: %s before AudioMetadata ignored", self.stats.call_id, type(ev).__name__)
            return
        cfg = self.config
        if ev.channels != 1:
            self.refuse("channels", f"{ev.channels} channels (ACS streams mono)",
                        WSCloseCode.UNSUPPORTED_DATA)
            return
        if ev.sample_rate not in cfg.acs_rates:
            self.refuse("sample_rate", f"AudioMetadata at {ev.sample_rate} Hz (accepted: "
                        f"{', '.join(map(str, cfg.acs_rates))})", WSCloseCode.UNSUPPORTED_DATA)
            return
        self.meta = None
        self.tat = time.monotonic()
        self.stats.acs_rate = rate = ev.sample_rate
        self.queue = JitterQueue(rate, target_ms=cfg.playout_target_ms, min_ms=20,
                                 max_ms=cfg.max_playout_ms)
        self.down = Resampler(self.down_rate, rate, quality=cfg.quality)
        self.connector = asyncio.get_running_loop().create_task(self._connect())

    def _acs_events(self, tc: AcsRealtimeTranscoder) -> None:
        for ev in tc.events:
            if isinstance(ev, acs.Unknown):
                log.debug("call %s: ACS kind %r ignored", self.stats.call_id, ev.kind)
        tc.events.clear()

    def acs_error(self, exc: ProtocolError) -> None:
        s = self.stats
        s.acs_errors += 1
        log.warning("call %s: malformed ACS message dropped (%s)", s.call_id, exc)
        if self.acs_bad.too_many(time.monotonic()):
            self.end("too many malformed ACS messages", WSCloseCode.POLICY_VIOLATION)

    # ------------------------------------------------------------ upstream side

    async def _connect(self, wait: bool = False) -> None:
        """Connect (or reconnect) with exponential backoff until connected, or until
        ``reconnect_timeout`` s have passed since the first upstream loss after a lasting
        connection (the first connect: since now); then the call ends. ``wait``: back off
        before the first dial too (the previous connection did not last)."""
        cfg = self.config
        start = time.monotonic() if self.down_since is None else self.down_since
        give_up = start + cfg.reconnect_timeout
        headers = cfg.upstream_headers()
        why = "connection did not last"
        while not self.ended:
            if wait:
                if time.monotonic() + self.backoff > give_up:
                    log.error("call %s: no upstream for %.0f s (%s): ending the call",
                              self.stats.call_id, cfg.reconnect_timeout, why)
                    self.end("upstream unavailable", WSCloseCode.INTERNAL_ERROR)
                    return
                log.warning("call %s: upstream %s; retrying in %.2f s",
                            self.stats.call_id, why, self.backoff)
                await asyncio.sleep(self.backoff * random.uniform(0.8, 1.2))
                self.backoff = min(self.backoff * 2, cfg.reconnect_max)
            wait = True
            self.generation += 1
            gen = self.generation
            try:
                transport = await connect(
                    _UpstreamEndpoint(self, gen), cfg.upstream_url, cfg.connect_timeout,
                    extra_headers=headers, ssl_context=cfg.upstream_ssl,
                    max_frame_size=realtime.DEFAULT_MAX_MESSAGE_SIZE, enable_auto_pong=False,
                    logger_name=picows_logger("client"), use_aiofastnet=False)
            except Exception as exc:
                status = getattr(getattr(exc, "response", None), "status", None)
                if status is not None and 400 <= int(status) < 500 and int(status) not in (408, 429):
                    log.error("call %s: the service refused the connection (%s): not retrying",
                              self.stats.call_id, exc)
                    self.end("upstream refused", WSCloseCode.INTERNAL_ERROR)
                    return
                why = f"connect failed ({exc})"
                continue
            if self.ended or gen != self.generation:
                close(transport)
                return
            if transport.is_disconnected:
                why = "connection closed at once"
                continue
            self._upstream_up(transport)
            return

    def _upstream_up(self, transport: WSTransport) -> None:
        cfg = self.config
        s = self.stats
        if s.connects:
            s.reconnects += 1
        s.connects += 1
        self.up = transport
        self.up_raw = transport.underlying_transport
        self.connected_at = time.monotonic()
        assert s.acs_rate is not None
        # auto_truncate is sent to Voice Live only: the others' items are truncated by us
        self.tc = tc = AcsRealtimeTranscoder(
            s.acs_rate, cfg.realtime_rate, quality=cfg.quality,
            auto_truncate=cfg.auto_truncate and cfg.dialect == "voicelive")
        transport.send(_TEXT, session_update_message(cfg))
        log.info("call %s: upstream connected (%s)", s.call_id, "reconnect" if s.reconnects else "first")
        self.live = True
        gap, self.gap = self.gap, collections.deque(maxlen=self.gap.maxlen)
        for data in gap:
            self._message(data)
            s.gap_replayed += 1

    def upstream_lost(self, why: str, abort: bool = False) -> None:
        """The upstream failed (``abort``: drop it now, its unsent data included): reconnect."""
        if self.ended or not self.live and self.connector is not None and not self.connector.done():
            return
        self.live = False
        close(self.up, abort=abort)
        self.up = self.up_raw = None
        self.tc = None  # the old session's state must not read the new connection's messages
        self.generation += 1  # whatever the old connection still delivers is ignored
        now = time.monotonic()
        lasted = now - self.connected_at >= _LASTING_S
        if lasted:
            self.backoff = self.config.reconnect_initial
        if lasted or self.down_since is None:
            self.down_since = now
        log.warning("call %s: upstream lost (%s); reconnecting", self.stats.call_id, why)
        self.connector = asyncio.get_running_loop().create_task(self._connect(wait=not lasted))

    def upstream_error(self, exc: ProtocolError) -> None:
        s = self.stats
        s.upstream_errors += 1
        log.warning("call %s: malformed message from the service dropped (%s)", s.call_id, exc)
        if self.upstream_bad.too_many(time.monotonic()):
            self.upstream_bad.times.clear()  # the next connection starts afresh
            self.upstream_lost("too many malformed messages")

    def on_upstream(self, data: bytes) -> None:
        tc = self.tc
        if tc is None:
            return
        try:
            ev = tc.realtime.receive(data)
        except ProtocolError as exc:
            self.upstream_error(exc)
            return
        kind = type(ev)
        if type(ev) is realtime.AudioDelta:
            self._audio(ev)
        elif kind is realtime.DroppedAudioDelta:
            self.stats.dropped_deltas += 1
        elif kind is realtime.SpeechStarted:
            self._barge_in()
        elif kind is realtime.AudioDone or kind is realtime.ResponseDone:
            self._flush_item()
        elif type(ev) is realtime.Error:
            self.stats.service_errors += 1
            log.warning("call %s: service error %s: %s", self.stats.call_id, ev.code, ev.message)
        elif kind is realtime.SessionCreated or kind is realtime.SessionUpdated:
            self._follow_output_format(tc)

    def _follow_output_format(self, tc: AcsRealtimeTranscoder) -> None:
        fmt = tc.realtime.output_format
        if fmt.rate and fmt.rate != self.down_rate and self.stats.acs_rate:
            log.info("call %s: the service's output is %s at %d Hz", self.stats.call_id, fmt.name, fmt.rate)
            self.down_rate = fmt.rate
            self.down = Resampler(fmt.rate, self.stats.acs_rate, quality=self.config.quality)
        inp = tc.realtime.input_format
        if inp.rate and inp.rate != self.config.realtime_rate:
            log.error("call %s: the service takes input at %d Hz, the bridge sends %d Hz",
                      self.stats.call_id, inp.rate, self.config.realtime_rate)

    # ------------------------------------------------------------ playout

    def _audio(self, ev: realtime.AudioDelta) -> None:
        q = self.queue
        down = self.down
        assert q is not None and down is not None
        self.stats.deltas += 1
        key = (self.generation, ev.item_id)
        if key != self.item:
            self._flush_item()
            q.mark(key)
            self.item = key
        pcm = down.process(ev.pcm)
        if pcm:
            q.push(pcm)
        if not q.playing and q.buffered_ms >= q.target_ms:
            # a response starts: its first frame goes out now, not at the next tick
            if self.tick():
                self.bridge._ticker.add(self)

    def _flush_item(self) -> None:
        """The resampler's tail of the item pushed so far (its last 1-2.5 ms)."""
        if self.item is None or self.down is None or self.queue is None:
            return
        tail = self.down.flush()
        if tail:
            self.queue.push(tail)
        self.item = None

    def tick(self) -> bool:
        """One 20 ms tick: play a frame if there is one. False when idle."""
        q = self.queue
        if q is None or self.ended:
            return False
        was = q.playing
        if not was and not q.buffered_ms:
            return False
        frame = q.pop()
        if was or q.playing:
            if not send_text(self.acs_t, acs.audio_message(frame)):
                return False
            s = self.stats
            s.frames_out += 1
            if was and not q.playing and q.buffered_ms == 0 and self.item is not None:
                s.underruns += 1  # ran dry inside an item whose audio is still coming
            self.last_out = time.monotonic()
            if self.acs_raw.get_write_buffer_size() > self.config.max_write_buffer:
                self._acs_not_reading()
                return False
        return bool(q.playing or q.buffered_ms)

    def _barge_in(self) -> None:
        q = self.queue
        tc = self.tc
        if q is None or tc is None:
            return
        s = self.stats
        playing = q.playing or q.buffered_ms > 0
        responding = tc.realtime.response_id is not None
        if not (playing or responding or time.monotonic() - self.last_out < 0.2):
            return  # nothing is being said: an ordinary turn, nothing to interrupt
        send_text(self.acs_t, _STOP)
        s.stop_audio += 1
        if self.acs_raw.get_write_buffer_size() > self.config.max_write_buffer:
            self._acs_not_reading()
            return
        s.barge_ins += 1
        item = q.item
        # ACS flushed its playback at StopAudio: nothing of the cancelled response may follow
        # (no fade-out), and the next response fades in from silence.
        played = q.clear(fade=False)
        if self.down is not None:
            self.down.reset()
        self.item = None
        self.bridge._ticker.discard(self)
        item_id = None
        if isinstance(item, tuple) and item[0] == self.generation and (playing or responding):
            item_id = item[1]  # an item played to its end needs no truncation
        for m in tc.barge_in(item_id, played):
            send_text(self.up, m)
        if self.up_raw is not None and self.up_raw.get_write_buffer_size() > self.config.max_write_buffer:
            self.upstream_lost("the service is not reading", abort=True)

    def _acs_not_reading(self) -> None:
        """A peer that stops reading must not grow our memory: past max_write_buffer unsent
        bytes (checked after every write), ACS counts as gone: the call ends, the connection
        is dropped at once. (The service's connection is redialled the same way.)"""
        self.refuse("not_reading", f"more than {self.config.max_write_buffer} bytes unsent to ACS",
                    WSCloseCode.POLICY_VIOLATION)

    def refuse(self, reason: str, detail: str, code: WSCloseCode) -> None:
        """End the call for breaking a limit: counted under ``reason`` and logged (once per
        interval), ACS closed with ``code`` (dropped at once if it is not reading)."""
        self.bridge.refusals.refuse(reason, f"call {self.stats.call_id} from {self.stats.peer}: {detail}")
        self.end(detail, code)

    # ------------------------------------------------------------ end

    def end(self, reason: str, code: Any = WSCloseCode.OK) -> None:
        """End the call: close both sockets (ACS with ``code``), stop reconnecting."""
        if self.ended:
            return
        self.ended = True
        self.live = False
        s = self.stats
        s.ended = time.monotonic()
        s.end_reason = reason
        self.generation += 1
        self.bridge._ticker.discard(self)
        if self.connector is not None and not self.connector.done():
            self.connector.cancel()
        cfg = self.config
        up = self.up
        close(up)
        # a caller that does not read would hold a graceful close (and its buffer) for good
        acs_raw = self.acs_raw
        abort = acs_raw is not None and acs_raw.get_write_buffer_size() > cfg.max_write_buffer
        close(self.acs_t, code, abort=abort)
        for t in (self.acs_t, up):
            if t is not None and not t.is_disconnected:
                asyncio.get_running_loop().call_later(cfg.close_timeout, _drop, t)
        self.gap.clear()
        if self.queue is not None:
            s.playout_dropped_ms = self.queue.stats["dropped"] * 20
        self.bridge._finish(self)
        log.info("call %s ended (%s): %d frames in, %d out, %d barge-ins, %d reconnects",
                 s.call_id, reason, s.frames_in, s.frames_out, s.barge_ins, s.reconnects)


def _drop(transport: WSTransport) -> None:
    """Abort a connection whose graceful close has not finished in time."""
    if not transport.is_disconnected:
        transport.disconnect(False)


# ---------------------------------------------------------------- the server


class Bridge:
    """The bridge server: ``async with Bridge(config) as bridge:`` listens on
    ``bridge.url`` until the block ends (then every call is closed with 1001).

    ``calls`` maps call ids (``x-ms-call-connection-id``, else a generated one) to the calls
    in progress (a call's id may be reused while it runs: both calls go on, and close() ends
    both); ``finished`` holds the :class:`CallStats` of the last 1000 ended calls;
    ``refusals.counts`` how many times each limit refused something (reason -> count).

    Raises ``ValueError`` without ``config.caller_auth`` unless ``config.insecure_no_auth``.
    """

    def __init__(self, config: BridgeConfig) -> None:
        if config.caller_auth is None and not config.insecure_no_auth:
            raise ValueError("the bridge needs caller authentication: set caller_auth "
                             "(AcsJwt or StaticToken), or insecure_no_auth=True")
        self.config = config
        self._calls: dict[_Call, None] = {}  # the live calls, in arrival order
        self.finished: collections.deque[CallStats] = collections.deque(maxlen=1000)
        self.refusals = Refusals(log)
        self._ticker: SharedTicker | PerCallTimers = (
            SharedTicker(_FRAME_S) if config.ticker == "shared" else PerCallTimers(_FRAME_S))
        self._sock: socket.socket | None = None
        self._acceptor: Acceptor | None = None
        self._conns: dict[_Conn, None] = {}  # accepted TCP connections not yet closed
        self._ip_conns: dict[str, int] = {}  # address -> its accepted TCP connections
        self._ip_calls: dict[str, int] = {}  # address -> its connections past the handshake
        self._tasks: list[asyncio.Task[None]] = []
        self._connecting: set[asyncio.Task[Any]] = set()
        self._closing = False

    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError("the bridge is not started")
        port: int = self._sock.getsockname()[1]
        return port

    @property
    def url(self) -> str:
        """The ACS-facing URL (``ws://`` or ``wss://``, host, port, path)."""
        scheme = "wss" if self.config.ssl else "ws"
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.port}{self.config.path or '/'}"

    @property
    def calls(self) -> dict[str, CallStats]:
        """The calls in progress: id -> their :class:`CallStats` (live objects; of two live
        calls with one id, the later)."""
        return {c.stats.call_id: c.stats for c in self._calls}

    async def start(self) -> None:
        """Load the caller keys (``caller_auth.start()``: a JWKS that cannot be loaded raises
        ``AuthError`` here, before listening), design the filters, listen."""
        cfg = self.config
        for name in ("audiocore.gateway.bridge", "audiocore.gateway"):
            logger = logging.getLogger(name)
            if not any(isinstance(f, RedactingFilter) for f in logger.filters):
                logger.addFilter(RedactingFilter())
        if cfg.caller_auth is not None:
            await cfg.caller_auth.start()
        for rate in cfg.acs_rates:  # design the filters now, not during the first call
            Resampler(rate, cfg.realtime_rate, quality=cfg.quality)
            Resampler(cfg.realtime_rate, rate, quality=cfg.quality)
        sock = listening_socket(cfg.host, cfg.port)
        self._sock = sock
        # our own accept loop: picows' (aiofastnet's) and asyncio's spin and log a traceback
        # per attempt at EMFILE; the Acceptor pauses for accept_pause instead
        self._acceptor = Acceptor(sock, self._accepted, self._out_of_fds, self._accept_error,
                                  cfg.accept_pause)
        self._acceptor.start()
        self._tasks = [asyncio.get_running_loop().create_task(self._watch())]
        log.info("bridge listening on %s -> %s (callers: %s)", self.url, redact_url(cfg.upstream_url),
                 type(cfg.caller_auth).__name__ if cfg.caller_auth else "NOT AUTHENTICATED")

    # ------------------------------------------------------------ accepting

    def _accepted(self, sock: socket.socket) -> None:
        try:
            addr = sock.getpeername()
        except OSError:  # the client left before we looked
            sock.close()
            return
        self._serve(sock, addr)

    def _out_of_fds(self, exc: OSError) -> None:
        self.refusals.refuse("out_of_fds", f"accept: {exc.strerror}; not accepting for "
                             f"{self.config.accept_pause:g} s", logging.ERROR)

    def _accept_error(self, exc: OSError) -> None:
        self.refusals.refuse("accept_error", f"accept: {exc}", logging.ERROR)

    def _serve(self, sock: socket.socket, addr: Any) -> None:
        cfg = self.config
        ip = str(addr[0]) if isinstance(addr, tuple) else str(addr)
        n = self._ip_conns.get(ip, 0)
        if n >= 2 * cfg.max_calls_per_ip + 16:
            # connections from one address that have not finished their handshake (each
            # bounded by handshake_timeout): beyond this, dropped at once
            self.refusals.refuse("ip_connections", f"{ip}: {n} connections open")
            sock.close()
            return
        if cfg.send_buffer_bytes:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, cfg.send_buffer_bytes)
        conn = _Conn(self, ip)
        self._ip_conns[ip] = n + 1
        self._conns[conn] = None
        loop = asyncio.get_running_loop()
        task = loop.create_task(loop.connect_accepted_socket(
            lambda: self._protocol(conn), sock, ssl=cfg.ssl,
            ssl_handshake_timeout=cfg.handshake_timeout if cfg.ssl else None))
        self._connecting.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._connecting.discard(t)
            if t.cancelled() or t.exception() is not None:
                if conn.transport is None:  # no protocol ever ran: count the connection gone
                    sock.close()
                    conn.asked = True  # counted below, not as no_handshake
                    self._conn_lost(conn)
                if not t.cancelled():
                    self.refusals.refuse("tls_handshake" if cfg.ssl else "connect",
                                         f"{ip}: {t.exception()}", logging.INFO)

        task.add_done_callback(done)

    def _protocol(self, conn: _Conn) -> Any:
        cfg = self.config
        proto = _Protocol(
            host_port=None, ws_path=None, is_client_side=False, ws_listener_factory=conn.accept,
            logger=picows_logger("server"), disconnect_on_exception=True,
            websocket_handshake_timeout=cfg.handshake_timeout, enable_auto_ping=False,
            auto_ping_idle_timeout=20, auto_ping_reply_timeout=20,
            auto_ping_strategy=WSAutoPingStrategy.PING_WHEN_IDLE, enable_auto_pong=False,
            max_frame_size=cfg.max_message_bytes, extra_headers=None,
            read_buffer_init_size=16 * 1024)
        proto.conn = conn
        return proto

    def _conn_lost(self, conn: _Conn) -> None:
        if conn.gone:
            return
        conn.gone = True
        self._conns.pop(conn, None)
        if not conn.asked and not self._closing:
            # closed by the client, or by picows at handshake_timeout, before an upgrade request
            self.refusals.refuse("no_handshake", f"{conn.ip}: no WebSocket upgrade request", logging.INFO)
        for counts, counted in ((self._ip_conns, True), (self._ip_calls, conn.admitted)):
            if counted:
                n = counts.get(conn.ip, 0) - 1
                if n > 0:
                    counts[conn.ip] = n
                else:
                    counts.pop(conn.ip, None)

    def _accept(self, request: WSUpgradeRequest, conn: _Conn) -> _AcsEndpoint | WSUpgradeResponseWithListener:
        """picows' handshake callback (synchronous): path, calls per address, caller
        authentication, calls at once; only then a call exists (and later its upstream)."""
        cfg = self.config
        path = request.path.decode("latin-1").split("?", 1)[0]
        if cfg.path is not None and path != cfg.path:
            return self._refuse("path", HTTPStatus.NOT_FOUND, f"{conn.ip}: path {clip(path)}")
        if self._ip_calls.get(conn.ip, 0) >= cfg.max_calls_per_ip:
            return self._refuse("calls_per_ip", HTTPStatus.TOO_MANY_REQUESTS,
                                f"{conn.ip}: {cfg.max_calls_per_ip} calls from this address")
        auth = cfg.caller_auth
        if auth is not None:
            try:
                auth.check(request.headers.get("authorization"))
            except AuthError as exc:
                return self._refuse("auth", HTTPStatus.UNAUTHORIZED, f"{conn.ip}: {exc.reason}",
                                    {"WWW-Authenticate": exc.challenge})
        if len(self._calls) >= cfg.max_calls:
            return self._refuse("max_calls", HTTPStatus.SERVICE_UNAVAILABLE,
                                f"{conn.ip}: {cfg.max_calls} calls in progress", {"Retry-After": "5"})
        conn.admitted = True
        self._ip_calls[conn.ip] = self._ip_calls.get(conn.ip, 0) + 1
        return _AcsEndpoint(self, request, conn.ip)

    def _refuse(self, reason: str, status: HTTPStatus, detail: str,
                headers: dict[str, str] | None = None) -> WSUpgradeResponseWithListener:
        self.refusals.refuse(reason, detail)
        response = WSUpgradeResponse.create_error_response(
            status, f"{status.value} {status.phrase}\n".encode(), headers)
        return WSUpgradeResponseWithListener(response, None)

    async def _watch(self) -> None:
        """Every fraction of the shorter timeout: calls without AudioMetadata past
        metadata_timeout, and callers silent past idle_timeout, are closed with 1008."""
        cfg = self.config
        period = min(max(min(cfg.metadata_timeout, cfg.idle_timeout) / 4, 0.02), 1.0)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for call in list(self._calls):
                if call.meta is not None:
                    if now - call.stats.started > cfg.metadata_timeout:
                        call.refuse("metadata_timeout", f"no AudioMetadata within "
                                    f"{cfg.metadata_timeout:g} s", WSCloseCode.POLICY_VIOLATION)
                elif now - call.last_rx > cfg.idle_timeout:
                    call.refuse("idle", f"nothing from the caller for {cfg.idle_timeout:g} s",
                                WSCloseCode.POLICY_VIOLATION)

    # ------------------------------------------------------------ the end

    def _finish(self, call: _Call) -> None:
        self._calls.pop(call, None)
        self.finished.append(call.stats)

    async def close(self, timeout: float = 2.0) -> None:
        """Stop listening, end every call (ACS sees 1001 going away), close upstreams, drop
        connections still in their handshake; wait (at most ``timeout`` s) for them all to
        close, then drop the rest."""
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks = []
        if self._acceptor is not None:
            self._acceptor.close()  # and the listening socket
            self._acceptor = None
        for call in list(self._calls):
            call.end("bridge shutting down", WSCloseCode.GOING_AWAY)
        self._ticker.close()
        for task in list(self._connecting):
            task.cancel()
        for conn in list(self._conns):
            if not conn.admitted and conn.transport is not None:
                conn.transport.close()
        end = time.monotonic() + timeout
        while self._conns and time.monotonic() < end:
            await asyncio.sleep(0.01)
        for conn in list(self._conns):
            if conn.transport is not None:
                conn.transport.abort()  # type: ignore[attr-defined]
        if self._sock is not None:
            self._sock = None
            if self.config.caller_auth is not None:
                await self.config.caller_auth.aclose()

    async def __aenter__(self) -> Bridge:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# ---------------------------------------------------------------- command line


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "NOTSET")


class _Parser(argparse.ArgumentParser):
    """A usage mistake is one line and exit status 2 (the usage of 60 flags would bury it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def _whole(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in low..high."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or high is not None and value > high:
            span = f"{low}..{high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{value} is out of range ({span})")
        return value
    return parse


def _number(low: float, high: float = math.inf, *, above: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number from ``low`` (excluded when ``above``) to ``high``."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if not (low < value if above else low <= value) or not value <= high:
            span = (f"more than {low}" if above else f"at least {low}") + (
                f" and at most {high}" if high < math.inf else "")
            raise argparse.ArgumentTypeError(f"{text} is out of range ({span})")
        return value
    return parse


def _log_level(text: str) -> str:
    if text.upper() not in _LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(_LOG_LEVELS).lower()}")
    return text.upper()


def _rates(text: str) -> tuple[int, ...]:
    try:
        rates = tuple(int(r) for r in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not rates in Hz separated by commas "
                                         "(e.g. 16000,24000)") from None
    if not set(rates) <= set(_ALLOWED_RATES):
        raise argparse.ArgumentTypeError(
            f"{text!r}: each rate must be one of {', '.join(map(str, _ALLOWED_RATES))}")
    return rates


def _url_path(text: str) -> str:
    if text and not text.startswith("/"):
        raise argparse.ArgumentTypeError(f"{text!r} must start with '/' (or be '' for any path)")
    return text


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="audiocore serve bridge",
        description="ACS media streaming <-> Voice Live / OpenAI Realtime bridge. ACS connects "
        "here (configure its transport URL to this server); each call gets its own upstream.",
        epilog=f"Environment: {ENV_URL} (upstream URL), {ENV_API_KEY} (its key), "
        f"{ENV_AUTH} (bearer | api-key | none), {ENV_AUTH_TOKEN} (the callers' token). "
        "Flags win over the environment. Callers must authenticate: --acs-jwks and "
        "--acs-audience (ACS's JWT), or --auth-token; --insecure-no-auth turns that off.",
    )
    c = BridgeConfig
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=_whole(0, 65535), default=8765, help="listen port (0: any free one)")
    p.add_argument("--path", type=_url_path, default=c.path, help="accept ACS only on this path (default "
                   f"{c.path}; other paths get 404); '' for any path")
    p.add_argument("--acs-jwks", metavar="URL_OR_FILE", help="verify ACS's JWT against these "
                   "keys: a JWKS URL, an OpenID configuration URL or a JWKS file")
    p.add_argument("--acs-audience", metavar="AUD", help="the JWT audience to require (with "
                   "--acs-jwks)")
    p.add_argument("--acs-issuer", metavar="ISS", help="the JWT issuer to require (default: "
                   "ACS's)")
    p.add_argument("--auth-token", metavar="TOKEN", help="callers must send 'Authorization: "
                   f"Bearer TOKEN' (prefer {ENV_AUTH_TOKEN}: flags show in ps)")
    p.add_argument("--insecure-no-auth", action="store_true",
                   help="accept callers without authentication (tests, demos)")
    p.add_argument("--max-calls", type=_whole(1), help=f"calls at once (default {c.max_calls}; "
                   "then HTTP 503)")
    p.add_argument("--max-calls-per-ip", type=_whole(1), help="calls at once from one address "
                   f"(default {c.max_calls_per_ip}; then HTTP 429)")
    p.add_argument("--handshake-timeout", type=_number(0, above=True), help=f"s (default {c.handshake_timeout})")
    p.add_argument("--metadata-timeout", type=_number(0, above=True), help="s from the handshake to "
                   f"AudioMetadata (default {c.metadata_timeout}; then close 1008)")
    p.add_argument("--idle-timeout", type=_number(0, above=True), help="s a caller may send nothing (default "
                   f"{c.idle_timeout}; then close 1008)")
    p.add_argument("--burst-ms", type=_whole(20), help="how far caller audio may run ahead of real "
                   f"time (default {c.burst_ms}; frames beyond are dropped)")
    p.add_argument("--max-excess-ms", type=_whole(0), help="audio dropped by pacing before the call "
                   f"is closed with 1008 (default {c.max_excess_ms})")
    p.add_argument("--max-message-bytes", type=_whole(1), help="largest ACS message (default "
                   f"{c.max_message_bytes}; then close 1009)")
    p.add_argument("--max-pings-per-s", type=_whole(1), help=f"default {c.max_pings_per_s}")
    p.add_argument("--max-write-buffer", type=_whole(1), help="bytes unsent to a peer before it "
                   f"counts as gone (default {c.max_write_buffer})")
    p.add_argument("--acs-rates", type=_rates, metavar="HZ,HZ", help="AudioMetadata rates accepted "
                   f"(default {','.join(map(str, c.acs_rates))}; 8000 and 48000 may be added)")
    p.add_argument("--accept-pause", type=_number(0, above=True), help="s without accepting when out of file "
                   f"descriptors (default {c.accept_pause})")
    p.add_argument("--send-buffer-bytes", type=_whole(0, (1 << 31) - 1), help="SO_SNDBUF of each ACS connection "
                   f"(default {c.send_buffer_bytes}; 0: the system's)")
    p.add_argument("--close-timeout", type=_number(0, above=True), help="s a closed call's connections may take "
                   f"to flush before they are dropped (default {c.close_timeout})")
    p.add_argument("--certfile", help="TLS certificate (PEM) for wss://; with --keyfile")
    p.add_argument("--keyfile")
    p.add_argument("--upstream-url", help=f"wss://... of the service (or {ENV_URL})")
    p.add_argument("--api-key", help=f"the service's key (prefer {ENV_API_KEY})")
    p.add_argument("--auth", choices=["bearer", "api-key", "none"],
                   help="how the key is sent (default: api-key for Azure hosts, else bearer)")
    p.add_argument("--dialect", choices=["openai", "openai-ga", "voicelive"],
                   help="session.update shape (default: voicelive for Azure hosts, else openai)")
    # Flags left out keep BridgeConfig's and default_turn_detection()'s values (shown here).
    vad = default_turn_detection()
    p.add_argument("--realtime-rate", type=_whole(1), help="service input/output rate: "
                   f"{c.realtime_rate}, or 16000/8000 with Voice Live")
    p.add_argument("--quality", choices=["hq", "fast"], help=f"resampler quality (default {c.quality})")
    p.add_argument("--no-turn-detection", action="store_true", help="send turn_detection: null")
    p.add_argument("--vad-threshold", type=_number(0, 1), help=f"default {vad['threshold']}")
    p.add_argument("--prefix-padding-ms", type=_whole(0), help=f"default {vad['prefix_padding_ms']}")
    p.add_argument("--silence-duration-ms", type=_whole(0), help=f"default {vad['silence_duration_ms']}")
    p.add_argument("--interrupt-response", action="store_true",
                   help="let the service cancel responses itself (default: the bridge does)")
    p.add_argument("--auto-truncate", action="store_true",
                   help="Voice Live: let the service truncate (default: the bridge does)")
    p.add_argument("--session", metavar="JSON", help="more session.update fields, e.g. "
                   "'{\"voice\": \"alloy\", \"instructions\": \"...\"}'")
    p.add_argument("--playout-target-ms", type=_whole(20), help=f"default {c.playout_target_ms}")
    p.add_argument("--max-playout-ms", type=_whole(100), help=f"default {c.max_playout_ms}")
    p.add_argument("--gap-buffer-ms", type=_whole(0), help=f"default {c.gap_buffer_ms}")
    p.add_argument("--reconnect-timeout", type=_number(0, above=True), help=f"seconds (default {c.reconnect_timeout})")
    p.add_argument("--ticker", choices=["shared", "per-call"], help=f"default {c.ticker}")
    p.add_argument("--loop", choices=["auto", "uvloop", "asyncio"], default="auto",
                   help="event loop (auto: uvloop when installed)")
    p.add_argument("--max-errors", type=_whole(0), help="malformed messages from one side "
                   f"tolerated within --error-window (default {c.max_errors}; then ACS: close "
                   "1008, the service: reconnect)")
    p.add_argument("--error-window", type=_number(0, above=True), metavar="S",
                   help=f"seconds over which --max-errors counts (default {c.error_window})")
    p.add_argument("--log-level", type=_log_level, default="INFO", metavar="LEVEL",
                   help=f"{', '.join(_LOG_LEVELS).lower()} (default info)")
    return p


def _server_tls(certfile: str | None, keyfile: str | None) -> SSLContext | None:
    """The ACS side's TLS context of ``--certfile``/``--keyfile``; ValueError naming the
    flag and the file when one is missing, unreadable or not PEM (or the key is encrypted:
    there is no one to type a passphrase)."""
    if certfile is None:
        if keyfile is not None:
            raise ValueError("--keyfile needs --certfile")
        return None
    for flag, path in (("--certfile", certfile), ("--keyfile", keyfile)):
        if path is not None and not os.path.isfile(path):
            raise ValueError(f"{flag} {path}: no such file")

    def no_passphrase() -> str:
        raise ValueError(f"--keyfile {keyfile or certfile}: the key is encrypted (give one "
                         "without a passphrase)")

    files = f"--certfile {certfile}" + (f" --keyfile {keyfile}" if keyfile else "")
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        tls.load_cert_chain(certfile, keyfile, password=no_passphrase)
    except ssl.SSLError as exc:
        raise ValueError(f"{files}: not a PEM certificate and its private key "
                         f"({exc.reason or exc})") from None
    except OSError as exc:
        raise ValueError(f"{files}: {exc.strerror or exc}") from None
    return tls


def _session(text: str | None) -> dict[str, Any]:
    """``--session``'s JSON object; ValueError saying what is wrong with it."""
    if not text:
        return {}
    try:
        session = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--session is not valid JSON: {exc.msg} at character {exc.pos}") from None
    if not isinstance(session, dict):
        kind = {list: "an array", str: "a string", bool: "true or false", type(None): "null"}
        raise ValueError("--session must be a JSON object ({\"name\": value, ...}), not "
                         + kind.get(type(session), "a number"))
    return session


def config_from_args(args: argparse.Namespace, env: dict[str, str] | None = None) -> BridgeConfig:
    """The :class:`BridgeConfig` of parsed ``audiocore serve bridge`` flags (and the
    environment)."""
    td: dict[str, Any] | None = None
    if not args.no_turn_detection:
        given = {"threshold": args.vad_threshold, "prefix_padding_ms": args.prefix_padding_ms,
                 "silence_duration_ms": args.silence_duration_ms}
        td = dict(default_turn_detection(), **{k: v for k, v in given.items() if v is not None})
    tls = _server_tls(args.certfile, args.keyfile)
    session = _session(args.session)
    environ = dict(os.environ if env is None else env)
    token = args.auth_token or environ.get(ENV_AUTH_TOKEN)
    caller_auth: Authenticator | None = None
    if args.acs_jwks:
        if token:
            raise ValueError(f"give --acs-jwks or --auth-token/{ENV_AUTH_TOKEN}, not both")
        if not args.acs_audience:
            raise ValueError("--acs-jwks needs --acs-audience")
        issuer = {} if args.acs_issuer is None else {"issuer": args.acs_issuer}
        caller_auth = AcsJwt(args.acs_jwks, args.acs_audience, **issuer)
    elif args.acs_audience or args.acs_issuer:
        raise ValueError("--acs-audience and --acs-issuer go with --acs-jwks")
    elif token:
        caller_auth = StaticToken(token)
    config = BridgeConfig.from_env(
        environ, upstream_url=args.upstream_url, api_key=args.api_key, auth=args.auth,
        dialect=args.dialect, host=args.host, port=args.port, ssl=tls,
        realtime_rate=args.realtime_rate, quality=args.quality,
        interrupt_response=args.interrupt_response, auto_truncate=args.auto_truncate,
        session=session, playout_target_ms=args.playout_target_ms,
        max_playout_ms=args.max_playout_ms, gap_buffer_ms=args.gap_buffer_ms,
        reconnect_timeout=args.reconnect_timeout, ticker=args.ticker,
        caller_auth=caller_auth, insecure_no_auth=args.insecure_no_auth or None,
        max_calls=args.max_calls, max_calls_per_ip=args.max_calls_per_ip,
        handshake_timeout=args.handshake_timeout, metadata_timeout=args.metadata_timeout,
        idle_timeout=args.idle_timeout, burst_ms=args.burst_ms, max_excess_ms=args.max_excess_ms,
        max_message_bytes=args.max_message_bytes, max_pings_per_s=args.max_pings_per_s,
        max_write_buffer=args.max_write_buffer, acs_rates=args.acs_rates, accept_pause=args.accept_pause,
        send_buffer_bytes=args.send_buffer_bytes, close_timeout=args.close_timeout,
        max_errors=args.max_errors, error_window=args.error_window,
    )
    # set here: from_env takes None for "not given", and None is what --no-turn-detection
    # and --path '' mean
    config.turn_detection = td
    config.path = args.path or None
    return config


def new_event_loop(kind: str = "auto") -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop's when asked (or, for "auto", when installed)."""
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def serve_main(argv: list[str]) -> int:
    """``audiocore serve bridge``: run a bridge until SIGINT/SIGTERM. Prints
    ``listening on URL`` once ready; returns 0 after a clean shutdown, 2 on bad options."""
    p = _parser()
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())
    # picows logs two lines per connection at INFO: its warnings only, unless debugging
    debug = logging.getLogger().getEffectiveLevel() <= logging.DEBUG
    logging.getLogger("picows").setLevel(logging.DEBUG if debug else logging.WARNING)
    try:
        config = config_from_args(args)
    except (ValueError, OSError) as exc:
        print(f"audiocore serve bridge: {exc}", file=sys.stderr)
        return 2
    if config.caller_auth is None and not config.insecure_no_auth:
        print("audiocore serve bridge: callers must authenticate: pass --acs-jwks URL_OR_FILE "
              f"--acs-audience AUD (ACS's JWT), or --auth-token TOKEN (or {ENV_AUTH_TOKEN}), "
              "or --insecure-no-auth", file=sys.stderr)
        return 2

    async def run() -> None:
        bridge = Bridge(config)
        try:
            await bridge.start()
        except OSError as exc:  # the address: not this host's, in use, not allowed
            raise _CannotListen(f"cannot listen on {config.host} port {config.port}: "
                                f"{exc.strerror or exc}") from None
        try:
            stop = stop_on_signal()
            print(f"listening on {bridge.url}", flush=True)
            await stop.wait()
        finally:
            await bridge.close()

    try:
        loop = new_event_loop(args.loop)
    except ImportError:
        print("audiocore serve bridge: --loop uvloop: uvloop is not installed "
              "(pip install uvloop, or --loop auto)", file=sys.stderr)
        return 2
    try:
        loop.run_until_complete(run())
    except AuthError as exc:
        print(f"audiocore serve bridge: caller authentication: {exc.reason}", file=sys.stderr)
        return 1
    except _CannotListen as exc:
        print(f"audiocore serve bridge: {exc}", file=sys.stderr)
        return 1
    finally:
        loop.close()
    return 0


class _CannotListen(Exception):
    """The bridge could not bind its listening socket (the message says why)."""
