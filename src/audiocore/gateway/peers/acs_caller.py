"""An ACS caller: connects to a media-streaming server as Azure Communication Services does.

It sends the ``x-ms-call-correlation-id`` / ``x-ms-call-connection-id`` headers, then
``AudioMetadata``, then streams a WAV in real time as 20 ms ``AudioData`` frames (frames
below an energy threshold flagged ``silent``, optionally with zeros or no data, as ACS does),
keeps sending silence for ``tail_s`` after the WAV (time never stops on a call) and hangs up.
What it hears is recorded on a timeline by arrival time, as ACS plays it: each frame starts
when it arrives or when the previous one ends, whichever is later, and ``StopAudio`` discards
what was queued but not yet played. The recording is as long as the audio sent (20 ms per
frame sent): what arrives after the caller's last frame, while hanging up, is not in it. :func:`call` does all of that and returns a
:class:`CallResult` (with the :class:`~audiocore.gateway.peers.timeline.Figures` of the call
when the realtime server is local).
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
import uuid
import wave
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
from picows import WSCloseCode, WSMsgType

from audiocore._ext.b64 import b64decode
from audiocore._ext.errors import DecodeError
from audiocore.gateway._ticker import SharedTicker
from audiocore.gateway._ws import Endpoint, close, connect, send_text
from audiocore.gateway.peers.timeline import Figures, Timeline
from audiocore.resampling import resample

__all__ = ["AcsCaller", "CallResult", "acs_frames", "call", "metadata_message", "read_wav"]

_TEXT = WSMsgType.TEXT
_AUDIO_OUT = b'{"Kind":"AudioData","AudioData":{"Data":"'
_STOP_OUT = b'{"Kind":"StopAudio"'


def read_wav(path: str | Path) -> tuple[bytes, int]:
    """PCM16LE mono and its rate from a WAV file (16-bit mono only)."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{path}: a 16-bit mono WAV is needed")
        return w.readframes(w.getnframes()), w.getframerate()


def write_wav(path: str | Path, pcm: bytes, rate: int) -> None:
    """Write PCM16LE mono at ``rate`` as a WAV file."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)


def metadata_message(rate: int) -> str:
    """ACS ``AudioMetadata`` for PCM16 mono 20 ms frames at ``rate``."""
    return json.dumps({"kind": "AudioMetadata", "audioMetadata": {
        "subscriptionId": str(uuid.uuid4()), "encoding": "PCM", "sampleRate": rate, "channels": 1,
        "length": rate // 50 * 2}}, separators=(",", ":"))


def acs_frames(pcm: bytes, rate: int, *, silent_mode: Literal["none", "keep", "zeros", "empty"] = "zeros",
               threshold: float = 300.0, participant: str = "8:acs:caller",
               start: datetime | None = None) -> tuple[list[bytes], list[bool]]:
    """``pcm`` cut into ACS ``AudioData`` messages of 20 ms (the last frame padded), and
    whether each frame is voiced (RMS at least ``threshold``). Unvoiced frames are flagged
    ``silent`` unless ``silent_mode`` is "none"; their data is kept ("keep"), zeros
    ("zeros") or empty ("empty")."""
    fb = rate // 50 * 2
    if len(pcm) % fb:
        pcm = pcm + bytes(fb - len(pcm) % fb)
    start = start or datetime.now(timezone.utc)
    x = np.frombuffer(pcm, "<i2").astype(np.float64).reshape(-1, fb // 2)
    rms = np.sqrt((x * x).mean(axis=1))
    texts, voiced = [], []
    zeros = base64.b64encode(bytes(fb)).decode("ascii")
    for n, level in enumerate(rms):
        v = bool(level >= threshold)
        frame = pcm[n * fb:(n + 1) * fb]
        body: dict[str, Any] = {
            "timestamp": (start + timedelta(milliseconds=20 * n)).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "participantRawID": participant}
        if v or silent_mode in ("none", "keep"):
            body["data"] = base64.b64encode(frame).decode("ascii")
        else:
            body["data"] = zeros if silent_mode == "zeros" else ""
        body["silent"] = not v and silent_mode != "none"
        texts.append(json.dumps({"kind": "AudioData", "audioData": body}, separators=(",", ":")).encode())
        voiced.append(v)
    return texts, voiced


@dataclass
class CallResult:
    """What the caller did and heard. Times in seconds from the call's start unless ``_ms``."""

    call_id: str
    rate: int
    duration_s: float
    frames_sent: int
    frames_received: int
    bad_frames: int  #: received audio messages that were not exactly 20 ms or not valid
    stop_audio: list[float] = field(default_factory=list)
    response_latency_ms: list[float] = field(default_factory=list)
    heard: bytes = b""  #: the recorded timeline (PCM16LE at ``rate``), 20 ms per frame sent
    received: bytes = b""  #: every audio frame received, back to back
    recording: str | None = None
    close_code: int | None = None
    figures: Figures | None = None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "call_id": self.call_id, "duration_s": round(self.duration_s, 2),
            "frames_sent": self.frames_sent, "frames_received": self.frames_received,
            "bad_frames": self.bad_frames, "stop_audio": len(self.stop_audio),
            "response_latency_ms": [round(x, 1) for x in self.response_latency_ms],
            "recording": self.recording}
        if self.figures is not None:
            out.update(self.figures.summary())
        return out


class AcsCaller(Endpoint):
    """One simulated ACS call over a connected picows transport (see :func:`call`).

    ``frames``: pre-encoded ``AudioData`` messages, one per 20 ms tick; ``voiced``: per frame
    (for the response latency). ``record``: decode and record what is heard (else only count
    it). ``ticker``: the clock that drives the sending (shared by many callers in a load test).
    """

    max_message = 1 << 20

    def __init__(self, frames: list[bytes], voiced: list[bool], rate: int, *,
                 ticker: SharedTicker | None = None, timeline: Timeline | None = None,
                 record: bool = True) -> None:
        super().__init__()
        self.frames = frames
        self.voiced = voiced
        self.rate = rate
        self.ticker = ticker or SharedTicker()
        self.timeline = timeline
        self.record = record
        self.frame_bytes = rate // 50 * 2
        self.b64_bytes = -(-self.frame_bytes // 3) * 4
        self.sent = 0
        self.received = 0
        self.bad = 0
        self.t0 = 0.0
        self.heard = bytearray()
        self.play_at = 0  # byte offset in heard where queued playback ends
        self.frames_heard: list[bytes] = []
        self.stops: list[float] = []
        self.latency_ms: list[float] = []
        self.last_voiced_end: float | None = None
        self.last_rx = -1.0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None

    def on_open(self) -> None:
        assert self.transport is not None
        self.transport.send(_TEXT, metadata_message(self.rate))
        self.t0 = time.monotonic()
        self.ticker.add(self)

    def tick(self) -> bool:
        n = self.sent
        if n >= len(self.frames) or self.done.done():
            if not self.done.done():
                close(self.transport, WSCloseCode.OK)
            return False
        t = time.monotonic()
        if self.timeline is not None:
            self.timeline.frame_sent(t)
        if not send_text(self.transport, self.frames[n]):
            return False
        if self.voiced[n]:
            self.last_voiced_end = t + 0.02
        self.sent = n + 1
        return True

    def on_text(self, data: bytes) -> None:
        t = time.monotonic()
        if data.startswith(_AUDIO_OUT) and data.endswith(b'"},"StopAudio":null}'):
            self._audio(data[len(_AUDIO_OUT):-len(b'"},"StopAudio":null}')], t)
            return
        if data.startswith(_STOP_OUT):
            self._stop(t)
            return
        try:  # the general form: keys in any case (ACS matches them ignoring case)
            msg = {k.lower(): v for k, v in json.loads(data).items()}
            kind = msg.get("kind")
            if kind == "AudioData":
                body = {k.lower(): v for k, v in msg["audiodata"].items()}
                self._audio(body["data"].encode("ascii"), t)
            elif kind == "StopAudio":
                self._stop(t)
            else:
                self.bad += 1
        except (ValueError, KeyError, AttributeError, TypeError):
            self.bad += 1

    def _audio(self, b64: bytes, t: float) -> None:
        pcm = b""
        if self.record:
            try:
                pcm = b64decode(b64)
            except DecodeError:
                self.bad += 1
                return
            if len(pcm) != self.frame_bytes:
                self.bad += 1
                return
        elif len(b64) != self.b64_bytes:  # a load test: sizes checked, content not decoded
            self.bad += 1
            return
        self.received += 1
        if self.timeline is not None:
            self.timeline.frame_received(t)
        if t - self.last_rx > 0.2 and self.last_voiced_end is not None:
            self.latency_ms.append((t - self.last_voiced_end) * 1000)
        self.last_rx = t
        if self.record:
            self.frames_heard.append(pcm)
            at = max(int(round((t - self.t0) * self.rate)) * 2, self.play_at)
            end = at + len(pcm)
            if len(self.heard) < end:
                self.heard.extend(bytes(end - len(self.heard)))
            self.heard[at:end] = pcm
            self.play_at = end

    def _stop(self, t: float) -> None:
        self.stops.append(t - self.t0)
        if self.timeline is not None:
            self.timeline.stop_received(t)
        at = int(round((t - self.t0) * self.rate)) * 2
        if self.record and self.play_at > at:
            end = min(self.play_at, len(self.heard))
            self.heard[at:end] = bytes(max(0, end - at))
            self.play_at = at

    def on_closed(self) -> None:
        self.ticker.discard(self)
        if self.timeline is not None:
            self.timeline.ended(time.monotonic())
        if self.transport is not None and self.transport.close_handshake is not None:
            recv = self.transport.close_handshake.recv
            self.close_code = recv.code.value if recv is not None else None
        if not self.done.done():
            self.done.set_result(None)


async def call(url: str, audio: str | Path | bytes, *, rate: int | None = None,
               record_to: str | Path | None = None, realtime: Any = None,
               timeline: Timeline | None = None, group_delay_ms: tuple[float, float] = (0.0, 0.0),
               tail_s: float = 3.0, silent_mode: Literal["none", "keep", "zeros", "empty"] = "zeros", threshold: float = 300.0,
               call_id: str | None = None, correlation_id: str | None = None,
               connect_timeout: float = 10.0, authorization: str | None = None,
               headers: dict[str, str] | None = None,
               ssl_context: ssl.SSLContext | None = None) -> CallResult:
    """Make one ACS call to ``url`` and return what happened.

    ``audio``: a WAV path (16-bit mono; rates other than 16 and 24 kHz are resampled to
    16 kHz) or PCM16LE bytes at ``rate``. The call lasts the audio plus ``tail_s`` of
    silence, in real time. ``record_to``: write what was heard there (WAV). ``realtime``: a
    local :class:`~audiocore.gateway.peers.realtime_server.RealtimeServer` reached through the
    bridge: a :class:`Timeline` is attached to its next connection and the result carries
    the figures (``group_delay_ms``: the bridge's resampler delays in and out, added to the
    latencies; see the timeline module). ``authorization``: the ``Authorization`` header's
    value, as ACS sends it (``Bearer <JWT>``); ``headers``: more handshake headers;
    ``ssl_context``: for a ``wss://`` URL (None: the default context). Raises
    ``OSError``/picows errors if the connection fails (``WSInvalidStatusError`` when the
    server refuses the handshake, e.g. 401).
    """
    if isinstance(audio, (str, Path)):
        pcm, wav_rate = read_wav(audio)
        if wav_rate not in (16000, 24000):
            pcm, wav_rate = resample(pcm, wav_rate, 16000), 16000
        rate = wav_rate
    else:
        pcm = bytes(audio)
        rate = rate or 16000
    if rate not in (16000, 24000):
        raise ValueError(f"ACS streams 16000 or 24000 Hz, not {rate}")
    pcm += bytes(int(tail_s * 50) * (rate // 50) * 2)
    frames, voiced = acs_frames(pcm, rate, silent_mode=silent_mode, threshold=threshold)
    if realtime is not None and timeline is None:
        timeline = Timeline(rate, group_delay_in_ms=group_delay_ms[0],
                            group_delay_out_ms=group_delay_ms[1])
    if realtime is not None:
        assert timeline is not None
        realtime.expect(timeline)
    caller = AcsCaller(frames, voiced, rate, timeline=timeline, record=True)
    cid = call_id or str(uuid.uuid4())
    sent = {"x-ms-call-correlation-id": correlation_id or str(uuid.uuid4()),
            "x-ms-call-connection-id": cid}
    if authorization is not None:
        sent["Authorization"] = authorization
    sent.update(headers or {})
    await connect(caller, url, connect_timeout, extra_headers=sent, ssl_context=ssl_context)
    await caller.done
    duration = time.monotonic() - caller.t0
    # the recording spans the call as scripted: one 20 ms slot per frame sent, not the wall
    # clock (which adds the hang-up's close handshake and the loop's scheduling delay)
    heard = bytes(caller.heard)
    total = caller.sent * caller.frame_bytes
    heard = heard[:total] + bytes(max(0, total - len(heard)))
    recording = None
    if record_to is not None:
        write_wav(record_to, heard, rate)
        recording = str(record_to)
    return CallResult(cid, rate, duration, caller.sent, caller.received, caller.bad,
                      caller.stops, caller.latency_ms, heard, b"".join(caller.frames_heard),
                      recording, caller.close_code,
                      timeline.figures() if timeline is not None else None)
