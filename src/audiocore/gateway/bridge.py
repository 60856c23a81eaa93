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
- the upstream is reconnected with backoff when it fails, without ending the call.

Everything is configured by :class:`BridgeConfig` (flags and environment:
:func:`serve_main`). The audio path, the barge-in sequence, reconnects, errors and figures
are described in ``docs/gateway-bridge.md``. All of a bridge runs on one event loop thread.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import os
import random
import ssl
from ssl import SSLContext
import sys
import time
import uuid
from dataclasses import dataclass, field, fields
from typing import Any, Literal
from urllib.parse import urlsplit

from picows import WSCloseCode, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

from audiocore._ext.errors import ProtocolError
from audiocore._ext.jitter import JitterQueue
from audiocore._ext.resample import Resampler
from audiocore.gateway._signals import stop_on_signal
from audiocore.gateway._ticker import PerCallTimers, SharedTicker
from audiocore.gateway._ws import Endpoint, close, connect, send_text, wait_closed
from audiocore.protocols import acs, realtime
from audiocore.protocols.bridge import AcsRealtimeTranscoder

__all__ = [
    "ENV_API_KEY",
    "ENV_AUTH",
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


_TEXT = WSMsgType.TEXT
_STOP = acs.stop_audio_message()
_FRAME_S = 0.02
#: s an upstream connection must live to count as lasting: its loss resets the backoff and
#: starts a new reconnect_timeout; a shorter one is redialled after the backoff
_LASTING_S = 10.0


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
    """

    upstream_url: str
    api_key: str | None = None
    auth: Literal["bearer", "api-key", "none"] | None = None
    dialect: Literal["openai", "openai-ga", "voicelive"] | None = None
    host: str = "127.0.0.1"
    port: int = 0
    path: str | None = None  #: accept ACS only on this path (None: any path)
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
    max_errors: int = 100  #: malformed messages tolerated per call and side
    ticker: Literal["shared", "per-call"] = "shared"
    max_write_buffer: int = 1 << 20  #: bytes unsent to a peer before it counts as gone

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
    upstream_errors: int = 0  #: malformed realtime messages (dropped)
    service_errors: int = 0  #: realtime ``error`` events received
    playout_dropped_ms: int = 0  #: response audio dropped over max_playout_ms
    underruns: int = 0  #: frames concealed because a response's audio came late

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# ---------------------------------------------------------------- connections


class _AcsEndpoint(Endpoint):
    max_message = acs.DEFAULT_MAX_MESSAGE_SIZE

    def __init__(self, bridge: Bridge, request: WSUpgradeRequest) -> None:
        super().__init__()
        self.call = _Call(bridge, self, request)

    def on_open(self) -> None:
        self.call.acs_open(self.transport)

    def on_text(self, data: bytes) -> None:
        self.call.on_acs(data)

    def on_binary(self, data: bytes) -> None:
        self.call.acs_error(ProtocolError("ACS sends text frames; a binary frame arrived", None))

    def on_closed(self) -> None:
        self.call.end("ACS closed")


class _UpstreamEndpoint(Endpoint):
    max_message = realtime.DEFAULT_MAX_MESSAGE_SIZE

    def __init__(self, call: _Call, generation: int) -> None:
        super().__init__()
        self.call = call
        self.generation = generation

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

    def __init__(self, bridge: Bridge, endpoint: _AcsEndpoint, request: WSUpgradeRequest) -> None:
        self.bridge = bridge
        self.config = config = bridge.config
        headers = request.headers
        call_id = headers.get("x-ms-call-connection-id") or uuid.uuid4().hex
        self.stats = CallStats(call_id, headers.get("x-ms-call-correlation-id"), started=time.monotonic())
        self.acs_t: WSTransport | None = None
        self.up: WSTransport | None = None
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

    # ------------------------------------------------------------ ACS side

    def acs_open(self, transport: WSTransport | None) -> None:
        self.acs_t = transport
        self.bridge._calls[self] = None
        log.info("call %s: ACS connected", self.stats.call_id)

    def on_acs(self, data: bytes) -> None:
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
                s = self.stats
                s.frames_in += 1
                if not s.frames_in & 63:
                    self._check_buffers()
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
            self.acs_error(exc)
            return
        if not isinstance(ev, acs.AudioMetadata):
            log.debug("call %s: %s before AudioMetadata ignored", self.stats.call_id, type(ev).__name__)
            return
        if ev.channels != 1:
            self.end("ACS stream is not mono", WSCloseCode.UNSUPPORTED_DATA)
            return
        self.meta = None
        self.stats.acs_rate = rate = ev.sample_rate
        cfg = self.config
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
        if s.acs_errors > self.config.max_errors:
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
                    max_frame_size=realtime.DEFAULT_MAX_MESSAGE_SIZE)
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
            self.on_acs(data)
            s.gap_replayed += 1

    def upstream_lost(self, why: str) -> None:
        if self.ended or not self.live and self.connector is not None and not self.connector.done():
            return
        self.live = False
        close(self.up)
        self.up = None
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
        if s.upstream_errors > self.config.max_errors:
            s.upstream_errors = 0
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
            if not s.frames_out & 63:
                self._check_buffers()
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

    def _check_buffers(self) -> None:
        """A peer that stops reading must not grow our memory: past max_write_buffer unsent
        bytes, ACS counts as gone (the call ends) and the service as failed (reconnect)."""
        limit = self.config.max_write_buffer
        if self.acs_t is not None and self.acs_t.underlying_transport.get_write_buffer_size() > limit:
            self.end("ACS is not reading", WSCloseCode.POLICY_VIOLATION)
        elif self.up is not None and self.up.underlying_transport.get_write_buffer_size() > limit:
            self.upstream_lost("the service is not reading")

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
        close(self.up)
        close(self.acs_t, code)
        self.gap.clear()
        if self.queue is not None:
            s.playout_dropped_ms = self.queue.stats["dropped"] * 20
        self.bridge._finish(self)
        log.info("call %s ended (%s): %d frames in, %d out, %d barge-ins, %d reconnects",
                 s.call_id, reason, s.frames_in, s.frames_out, s.barge_ins, s.reconnects)


# ---------------------------------------------------------------- the server


class Bridge:
    """The bridge server: ``async with Bridge(config) as bridge:`` listens on
    ``bridge.url`` until the block ends (then every call is closed with 1001).

    ``calls`` maps call ids (``x-ms-call-connection-id``, else a generated one) to the calls
    in progress (a call's id may be reused while it runs: both calls go on, and close() ends
    both); ``finished`` holds the :class:`CallStats` of the last 1000 ended calls.
    """

    def __init__(self, config: BridgeConfig) -> None:
        self.config = config
        self._calls: dict[_Call, None] = {}  # the live calls, in arrival order
        self.finished: collections.deque[CallStats] = collections.deque(maxlen=1000)
        self._ticker: SharedTicker | PerCallTimers = (
            SharedTicker(_FRAME_S) if config.ticker == "shared" else PerCallTimers(_FRAME_S))
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the bridge is not started")
        port: int = self._server.sockets[0].getsockname()[1]
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
        cfg = self.config
        for rate in (16000, 24000):  # design the filters now, not during the first call
            Resampler(rate, cfg.realtime_rate, quality=cfg.quality)
            Resampler(cfg.realtime_rate, rate, quality=cfg.quality)

        def accept(request: WSUpgradeRequest) -> _AcsEndpoint | None:
            path = request.path.decode("latin-1").split("?", 1)[0]
            if cfg.path is not None and path != cfg.path:
                return None  # 404
            return _AcsEndpoint(self, request)

        self._server = await ws_create_server(accept, cfg.host, cfg.port, ssl=cfg.ssl,
                                              max_frame_size=acs.DEFAULT_MAX_MESSAGE_SIZE)
        log.info("bridge listening on %s -> %s", self.url, cfg.upstream_url)

    def _finish(self, call: _Call) -> None:
        self._calls.pop(call, None)
        self.finished.append(call.stats)

    async def close(self, timeout: float = 2.0) -> None:
        """Stop listening, end every call (ACS sees 1001 going away), close upstreams."""
        if self._server is not None:
            self._server.close()
        for call in list(self._calls):
            call.end("bridge shutting down", WSCloseCode.GOING_AWAY)
        self._ticker.close()
        if self._server is not None:
            await wait_closed(self._server, timeout)
            self._server = None

    async def __aenter__(self) -> Bridge:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# ---------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="audiocore serve bridge",
        description="ACS media streaming <-> Voice Live / OpenAI Realtime bridge. ACS connects "
        "here (configure its transport URL to this server); each call gets its own upstream.",
        epilog=f"Environment: {ENV_URL} (upstream URL), {ENV_API_KEY} (its key), "
        f"{ENV_AUTH} (bearer | api-key | none). Flags win over the environment.",
    )
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="listen port (0: any free one)")
    p.add_argument("--path", help="accept ACS only on this path")
    p.add_argument("--certfile", help="TLS certificate (PEM) for wss://; with --keyfile")
    p.add_argument("--keyfile")
    p.add_argument("--upstream-url", help=f"wss://... of the service (or {ENV_URL})")
    p.add_argument("--api-key", help=f"the service's key (prefer {ENV_API_KEY})")
    p.add_argument("--auth", choices=["bearer", "api-key", "none"],
                   help="how the key is sent (default: api-key for Azure hosts, else bearer)")
    p.add_argument("--dialect", choices=["openai", "openai-ga", "voicelive"],
                   help="session.update shape (default: voicelive for Azure hosts, else openai)")
    # Flags left out keep BridgeConfig's and default_turn_detection()'s values (shown here).
    c, vad = BridgeConfig, default_turn_detection()
    p.add_argument("--realtime-rate", type=int, help="service input/output rate: "
                   f"{c.realtime_rate}, or 16000/8000 with Voice Live")
    p.add_argument("--quality", choices=["hq", "fast"], help=f"resampler quality (default {c.quality})")
    p.add_argument("--no-turn-detection", action="store_true", help="send turn_detection: null")
    p.add_argument("--vad-threshold", type=float, help=f"default {vad['threshold']}")
    p.add_argument("--prefix-padding-ms", type=int, help=f"default {vad['prefix_padding_ms']}")
    p.add_argument("--silence-duration-ms", type=int, help=f"default {vad['silence_duration_ms']}")
    p.add_argument("--interrupt-response", action="store_true",
                   help="let the service cancel responses itself (default: the bridge does)")
    p.add_argument("--auto-truncate", action="store_true",
                   help="Voice Live: let the service truncate (default: the bridge does)")
    p.add_argument("--session", metavar="JSON", help="more session.update fields, e.g. "
                   "'{\"voice\": \"alloy\", \"instructions\": \"...\"}'")
    p.add_argument("--playout-target-ms", type=int, help=f"default {c.playout_target_ms}")
    p.add_argument("--max-playout-ms", type=int, help=f"default {c.max_playout_ms}")
    p.add_argument("--gap-buffer-ms", type=int, help=f"default {c.gap_buffer_ms}")
    p.add_argument("--reconnect-timeout", type=float, help=f"seconds (default {c.reconnect_timeout})")
    p.add_argument("--ticker", choices=["shared", "per-call"], help=f"default {c.ticker}")
    p.add_argument("--loop", choices=["auto", "uvloop", "asyncio"], default="auto",
                   help="event loop (auto: uvloop when installed)")
    p.add_argument("--log-level", default="INFO")
    return p


def config_from_args(args: argparse.Namespace, env: dict[str, str] | None = None) -> BridgeConfig:
    """The :class:`BridgeConfig` of parsed ``audiocore serve bridge`` flags (and the
    environment)."""
    td: dict[str, Any] | None = None
    if not args.no_turn_detection:
        given = {"threshold": args.vad_threshold, "prefix_padding_ms": args.prefix_padding_ms,
                 "silence_duration_ms": args.silence_duration_ms}
        td = dict(default_turn_detection(), **{k: v for k, v in given.items() if v is not None})
    tls = None
    if args.certfile:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.certfile, args.keyfile)
    session = json.loads(args.session) if args.session else {}
    if not isinstance(session, dict):
        raise ValueError("--session must be a JSON object")
    config = BridgeConfig.from_env(
        env, upstream_url=args.upstream_url, api_key=args.api_key, auth=args.auth,
        dialect=args.dialect, host=args.host, port=args.port, path=args.path, ssl=tls,
        realtime_rate=args.realtime_rate, quality=args.quality,
        interrupt_response=args.interrupt_response, auto_truncate=args.auto_truncate,
        session=session, playout_target_ms=args.playout_target_ms,
        max_playout_ms=args.max_playout_ms, gap_buffer_ms=args.gap_buffer_ms,
        reconnect_timeout=args.reconnect_timeout, ticker=args.ticker,
    )
    # set here: from_env takes None for "not given", and None is what --no-turn-detection means
    config.turn_detection = td
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
    try:
        config = config_from_args(args)
    except (ValueError, OSError) as exc:
        print(f"audiocore serve bridge: {exc}", file=sys.stderr)
        return 2

    async def run() -> None:
        async with Bridge(config) as bridge:
            stop = stop_on_signal()
            print(f"listening on {bridge.url}", flush=True)
            await stop.wait()

    loop = new_event_loop(args.loop)
    try:
        loop.run_until_complete(run())
    finally:
        loop.close()
    return 0
