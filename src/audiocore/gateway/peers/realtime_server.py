"""A local Voice Live / OpenAI Realtime server: answers speech with audio after a VAD pause.

Protocol-faithful for what a voice bridge uses (PROTOCOLS.md section 2): ``session.created``
on connect; ``session.update`` -> ``session.updated`` (formats, Voice Live's
``input_audio_sampling_rate``, ``turn_detection``; the GA ``audio`` shape too);
``input_audio_buffer.append`` feeds an energy VAD that sends ``speech_started``
(``audio_start_ms`` including the prefix padding, ``item_id``) and, after
``silence_duration_ms`` of silence, ``speech_stopped`` (``audio_end_ms``), ``committed`` and
``conversation.item.created``; then, with ``create_response``, a response:
``response.created``, ``response.output_item.added``, ``conversation.item.created``,
``response.content_part.added``, ``response.audio.delta`` chunks sent faster than real time,
``response.audio.done``, ``response.content_part.done``, ``response.output_item.done``,
``response.done``. It answers with an echo of the utterance (``mode="echo"``) or a bundled
prompt (``mode="prompt"``: a sentence of speech, decoded from the Ogg Opus file shipped with
audiocore). ``response.cancel`` stops a response (``status: cancelled``); with
``interrupt_response`` the server cancels by itself when speech starts.
``conversation.item.truncate`` is refused with an ``error`` when ``audio_end_ms`` exceeds the
audio the item holds, as the real service does. ``input_audio_buffer.commit``/``clear`` and
``response.create`` work for manual turns. GA event names (``response.output_audio.delta``...)
are used when asked (``ga=True``) or when the client's ``session.update`` has the GA shape.

Not a model: no transcription, no text; errors are sent for what it does not understand.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from importlib import resources
from itertools import count
from typing import Any, Literal

import numpy as np
from picows import WSUpgradeRequest, ws_create_server

from audiocore._ext.b64 import b64decode, b64encode
from audiocore._ext.errors import DecodeError
from audiocore.gateway._ws import Endpoint, close, send_text, wait_closed
from audiocore.gateway.peers.timeline import Timeline
from audiocore.resampling import resample

__all__ = ["RealtimeServer", "prompt_pcm"]

log = logging.getLogger("audiocore.gateway.peers.realtime_server")

_APPEND = b'{"type":"input_audio_buffer.append","audio":"'
_GA_NAMES = {
    "response.audio.delta": "response.output_audio.delta",
    "response.audio.done": "response.output_audio.done",
    "conversation.item.created": "conversation.item.added",
}
_BETA_RATES = {"pcm16": 24000, "pcm16_8000hz": 8000, "pcm16_16000hz": 16000, "pcm16_24000hz": 24000}


def prompt_pcm(rate: int = 24000) -> bytes:
    """The bundled prompt (about 10.5 s of speech) as PCM16LE mono at ``rate`` Hz."""
    from audiocore._ext.ogg import OggOpusReader
    from audiocore._ext.opus import OpusDecoder

    data = resources.files("audiocore.gateway.peers").joinpath("data/prompt.opus").read_bytes()
    reader = OggOpusReader()
    packets = reader.feed(data)
    assert reader.head is not None
    dec = OpusDecoder(48000)
    pcm = b"".join(dec.decode(p.data) for p in packets)[reader.head.pre_skip * 2:]
    return resample(pcm, 48000, rate) if rate != 48000 else pcm


class _Response:
    __slots__ = ("id", "item_id", "audio", "sent", "task", "cancelled")

    def __init__(self, rid: str, item_id: str, audio: bytes) -> None:
        self.id = rid
        self.item_id = item_id
        self.audio = audio
        self.sent = 0  # bytes of audio sent
        self.task: asyncio.Task[None] | None = None
        self.cancelled = False


class _Session(Endpoint):
    """One client connection."""

    max_message = 16 << 20

    def __init__(self, server: RealtimeServer, timeline: Timeline | None) -> None:
        super().__init__()
        self.server = server
        self.timeline = timeline
        self.ga = server.ga
        self.in_rate = server.rate
        self.out_rate = server.rate
        self.turn_detection: dict[str, Any] | None = {
            "type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
            "silence_duration_ms": server.silence_ms, "create_response": True,
            "interrupt_response": False}
        self.events: list[dict[str, Any]] = []  #: client events received (audio left out)
        self.audio = bytearray()  # input audio of the current turn (bounded)
        self.audio_ms = 0  # input buffer time, ms
        self.samples = 0  # input samples received
        self.kept: bytearray | None = bytearray() if server.keep_audio else None
        self._ids = count(1)
        self._speech_at: int | None = None  # ms where speech began
        self._last_voice = 0  # ms where the last voiced block ended
        self._item: str | None = None
        self._pending = bytearray()  # input samples not yet in a 20 ms VAD block
        self.response: _Response | None = None
        self.items: dict[str, int] = {}  # assistant item -> bytes of audio sent
        self.previous_item: str | None = None

    # ------------------------------------------------------------ connection

    def on_open(self) -> None:
        self.server.sessions.append(self)
        self.server.history.append(self)
        self._send({"type": "session.created", "session": self._session()})

    def on_closed(self) -> None:
        if self.response is not None and self.response.task is not None:
            self.response.task.cancel()
        if self in self.server.sessions:
            self.server.sessions.remove(self)

    def _session(self) -> dict[str, Any]:
        out = "pcm16" if self.out_rate == 24000 else f"pcm16_{self.out_rate}hz"
        return {"id": "sess_local", "object": "realtime.session", "input_audio_format": "pcm16",
                "input_audio_sampling_rate": self.in_rate, "output_audio_format": out,
                "turn_detection": self.turn_detection}

    def _send(self, event: dict[str, Any]) -> None:
        if self.ga and event["type"] in _GA_NAMES:
            event["type"] = _GA_NAMES[event["type"]]
        event.setdefault("event_id", f"event_{next(self._ids)}")
        send_text(self.transport, json.dumps(event, separators=(",", ":")))

    def _error(self, code: str, message: str, param: str | None = None, event_id: str | None = None) -> None:
        self._send({"type": "error", "error": {"type": "invalid_request_error", "code": code,
                                               "message": message, "param": param,
                                               "event_id": event_id}})

    # ------------------------------------------------------------ client events

    def on_text(self, data: bytes) -> None:
        if data.startswith(_APPEND) and data.endswith(b'"}') and b"\\" not in data:
            try:
                pcm = b64decode(data[len(_APPEND):-2])
            except DecodeError as exc:
                self._error("invalid_value", f"audio: invalid base64 ({exc})", "audio")
                return
            self._append(pcm)
            return
        try:
            ev = json.loads(data)
            kind = ev["type"]
            if not isinstance(kind, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            self._error("invalid_json", "the message is not a JSON object with a string type")
            return
        self.events.append(ev)
        handler = getattr(self, "_on_" + kind.replace(".", "_"), None)
        if handler is None:
            self._error("invalid_event", f"unknown event type {kind!r}", "type", ev.get("event_id"))
            return
        try:
            handler(ev)
        except (KeyError, TypeError, ValueError) as exc:
            self._error("invalid_value", f"{kind}: {exc}", None, ev.get("event_id"))

    def on_binary(self, data: bytes) -> None:
        self._error("invalid_event", "binary frames are not part of the protocol")

    def _on_session_update(self, ev: dict[str, Any]) -> None:
        s = ev["session"]
        if not isinstance(s, dict):
            raise TypeError("session must be an object")
        audio = s.get("audio")
        if isinstance(audio, dict) or s.get("type") == "realtime":
            self.ga = True
            audio = audio or {}
            fin = (audio.get("input") or {}).get("format")
            fout = (audio.get("output") or {}).get("format")
            if isinstance(fin, dict):
                self.in_rate = int(fin.get("rate", 24000))
            if isinstance(fout, dict):
                self.out_rate = int(fout.get("rate", 24000))
            if "turn_detection" in (audio.get("input") or {}):
                self.turn_detection = audio["input"]["turn_detection"]
        else:
            if "input_audio_sampling_rate" in s:
                self.in_rate = int(s["input_audio_sampling_rate"])
            if "output_audio_format" in s:
                if s["output_audio_format"] not in _BETA_RATES:
                    raise ValueError(f"unsupported output_audio_format {s['output_audio_format']!r}")
                self.out_rate = _BETA_RATES[s["output_audio_format"]]
            if "turn_detection" in s:
                self.turn_detection = s["turn_detection"]
        if self.in_rate not in (8000, 16000, 24000) or self.out_rate not in (8000, 16000, 24000):
            raise ValueError("rates must be 8000, 16000 or 24000")
        tl = self.timeline
        if tl is not None:
            tl.in_rate, tl.out_rate = self.in_rate, self.out_rate
            tl.session_ready(time.monotonic())
        session = self._session()
        if self.ga:
            session = {"type": "realtime", "audio": {
                "input": {"format": {"type": "audio/pcm", "rate": self.in_rate},
                          "turn_detection": self.turn_detection},
                "output": {"format": {"type": "audio/pcm", "rate": self.out_rate}}}}
        self._send({"type": "session.updated", "session": session})

    def _on_input_audio_buffer_append(self, ev: dict[str, Any]) -> None:
        try:
            pcm = b64decode(ev["audio"])
        except DecodeError as exc:
            raise ValueError(f"invalid base64 ({exc})") from None
        self._append(pcm)

    def _on_input_audio_buffer_commit(self, ev: dict[str, Any]) -> None:
        self._commit(self.audio_ms)

    def _on_input_audio_buffer_clear(self, ev: dict[str, Any]) -> None:
        self.audio.clear()
        self._speech_at = None
        self._send({"type": "input_audio_buffer.cleared"})

    def _on_response_create(self, ev: dict[str, Any]) -> None:
        self._respond(bytes(self.audio))

    def _on_response_cancel(self, ev: dict[str, Any]) -> None:
        r = self.response
        rid = ev.get("response_id")
        if r is None or (rid is not None and rid != r.id):
            self._error("response_cancel_not_active", "no active response to cancel", None, ev.get("event_id"))
            return
        if self.server.cancel_delay > 0:  # a real service keeps sending while the cancel lands
            asyncio.get_running_loop().call_later(self.server.cancel_delay, self._cancel, r)
        else:
            self._cancel(r)

    def _on_conversation_item_truncate(self, ev: dict[str, Any]) -> None:
        item_id = ev["item_id"]
        end = ev["audio_end_ms"]
        if not isinstance(end, int) or isinstance(end, bool) or end < 0:
            raise ValueError("audio_end_ms must be a non-negative integer")
        held = self.items.get(item_id)
        if held is None:
            self._error("item_not_found", f"no assistant item {item_id!r}", "item_id", ev.get("event_id"))
            return
        held_ms = held // 2 * 1000 // self.out_rate
        if end > held_ms:
            self._error("invalid_value", f"audio content of {held_ms}ms is already shorter than "
                        f"{end}ms", "audio_end_ms", ev.get("event_id"))
            return
        if self.timeline is not None:
            self.timeline.truncated(item_id, end)
        self.server.truncates.append((item_id, end, held_ms))
        self._send({"type": "conversation.item.truncated", "item_id": item_id,
                    "content_index": ev.get("content_index", 0), "audio_end_ms": end})

    # ------------------------------------------------------------ VAD

    def _append(self, pcm: bytes) -> None:
        if len(pcm) & 1:
            self._error("invalid_value", "audio: PCM16 needs an even number of bytes", "audio")
            return
        n = len(pcm) // 2
        self.samples += n
        if self.timeline is not None:
            self.timeline.audio_in(n, time.monotonic())
        if self.kept is not None:
            self.kept += pcm
        self.audio += pcm
        limit = self.server.max_turn_s * self.in_rate * 2
        if len(self.audio) > limit:
            del self.audio[:len(self.audio) - limit]
        if self.turn_detection is None:
            self.audio_ms = self.samples * 1000 // self.in_rate
            return
        self._pending += pcm
        block = self.in_rate // 50 * 2
        while len(self._pending) >= block:
            x = np.frombuffer(self._pending, "<i2", block // 2).astype(np.int64)
            del self._pending[:block]
            start_ms = self.audio_ms
            self.audio_ms += 20
            self._vad(start_ms, float(np.sqrt(np.dot(x, x) / len(x))))

    def _vad(self, start_ms: int, rms: float) -> None:
        td = self.turn_detection
        assert td is not None
        voiced = rms >= self.server.energy_threshold
        if voiced:
            self._last_voice = start_ms + 20
            if self._speech_at is None:
                self._speech_at = max(0, start_ms - int(td.get("prefix_padding_ms", 300)))
                self._item = f"item_in_{next(self._ids)}"
                if self.timeline is not None:
                    self.timeline.speech_started(time.monotonic())
                self._send({"type": "input_audio_buffer.speech_started",
                            "audio_start_ms": self._speech_at, "item_id": self._item})
                r = self.response
                if r is not None and td.get("interrupt_response"):
                    self._cancel(r)
        elif self._speech_at is not None and start_ms + 20 - self._last_voice >= int(
                td.get("silence_duration_ms", 500)):
            self._commit(self._last_voice)

    def _commit(self, end_ms: int) -> None:
        item = self._item or f"item_in_{next(self._ids)}"
        start = self._speech_at if self._speech_at is not None else 0
        self._speech_at = None
        self._item = None
        if self.turn_detection is not None:
            self._send({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": end_ms,
                        "item_id": item})
        self._send({"type": "input_audio_buffer.committed", "previous_item_id": self.previous_item,
                    "item_id": item})
        self._send({"type": "conversation.item.created", "previous_item_id": self.previous_item,
                    "item": {"id": item, "object": "realtime.item", "type": "message",
                             "role": "user", "status": "completed",
                             "content": [{"type": "input_audio", "transcript": None}]}})
        self.previous_item = item
        # the utterance: from start to end, in the buffer that ends at audio_ms
        bps = self.in_rate // 1000 * 2
        a = max(0, len(self.audio) - (self.audio_ms - start) * bps)
        b = max(a, len(self.audio) - (self.audio_ms - end_ms) * bps)
        utterance = bytes(self.audio[a:b])
        self.audio.clear()
        td = self.turn_detection
        if td is None or td.get("create_response", True):
            self._respond(utterance)

    # ------------------------------------------------------------ responses

    def _respond(self, utterance: bytes) -> None:
        if self.response is not None:
            self._cancel(self.response)
        srv = self.server
        if srv.mode == "echo":
            audio = utterance if self.in_rate == self.out_rate else resample(utterance, self.in_rate, self.out_rate)
        else:
            audio = srv.prompt(self.out_rate)
        n = next(self._ids)
        r = self.response = _Response(f"resp_{n}", f"item_out_{n}", audio)
        self.items[r.item_id] = 0
        if len(self.items) > 256:
            del self.items[next(iter(self.items))]
        r.task = asyncio.get_running_loop().create_task(self._stream(r))

    async def _stream(self, r: _Response) -> None:
        srv = self.server
        loop = asyncio.get_running_loop()
        if srv.response_delay > 0:
            await asyncio.sleep(srv.response_delay)
        if r.cancelled:
            return
        item = {"id": r.item_id, "object": "realtime.item", "type": "message", "role": "assistant",
                "status": "in_progress", "content": []}
        self._send({"type": "response.created", "response": {
            "id": r.id, "object": "realtime.response", "status": "in_progress", "output": []}})
        self._send({"type": "response.output_item.added", "response_id": r.id, "output_index": 0,
                    "item": item})
        self._send({"type": "conversation.item.created", "previous_item_id": self.previous_item,
                    "item": item})
        self.previous_item = r.item_id
        self._send({"type": "response.content_part.added", "response_id": r.id, "item_id": r.item_id,
                    "output_index": 0, "content_index": 0, "part": {"type": "audio", "transcript": ""}})
        chunk = self.out_rate * srv.delta_ms // 1000 * 2
        period = srv.delta_ms / 1000 / srv.speed if srv.speed > 0 else 0.0
        name = "response.output_audio.delta" if self.ga else "response.audio.delta"
        head = (f'{{"type":"{name}","response_id":"{r.id}","item_id":"{r.item_id}",'
                f'"output_index":0,"content_index":0,"delta":"')
        t0 = loop.time()
        for j, at in enumerate(range(0, len(r.audio), chunk)):
            if r.cancelled or self.transport is None or self.transport.is_disconnected:
                return
            piece = r.audio[at:at + chunk]
            if not send_text(self.transport, head + b64encode(piece).decode("ascii") + '"}'):
                return
            r.sent += len(piece)
            self.items[r.item_id] = r.sent
            if self.timeline is not None:
                self.timeline.delta_sent(r.id, r.item_id, len(piece) // 2, time.monotonic())
            due = t0 + (j + 1) * period
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        if r.cancelled:
            return
        self._finish(r, "completed")

    def _finish(self, r: _Response, status: str) -> None:
        if self.timeline is not None:
            self.timeline.response_done(r.id)
        if status == "completed":
            ids = {"response_id": r.id, "item_id": r.item_id, "output_index": 0, "content_index": 0}
            self._send({"type": "response.audio.done", **ids})
            self._send({"type": "response.content_part.done", **ids,
                        "part": {"type": "audio", "transcript": ""}})
        item = {"id": r.item_id, "object": "realtime.item", "type": "message", "role": "assistant",
                "status": "completed" if status == "completed" else "incomplete",
                "content": [{"type": "audio", "transcript": ""}]}
        self._send({"type": "response.output_item.done", "response_id": r.id, "output_index": 0,
                    "item": item})
        response: dict[str, Any] = {"id": r.id, "object": "realtime.response", "status": status,
                                    "output": [item]}
        if status == "cancelled":
            response["status_details"] = {"type": "cancelled", "reason": "turn_detected"}
        self._send({"type": "response.done", "response": response})
        if self.response is r:
            self.response = None
        self.server.responses.append((r.id, r.item_id, status, r.sent))

    def _cancel(self, r: _Response) -> None:
        if r.cancelled:
            return
        r.cancelled = True
        if r.task is not None and r.task is not asyncio.current_task():
            r.task.cancel()
        self._finish(r, "cancelled")


class RealtimeServer:
    """A local realtime server: ``async with RealtimeServer() as rt:`` listens on ``rt.url``.

    ``mode``: "echo" answers with the utterance, "prompt" with ``prompt`` (PCM16 at
    ``rate``; default the bundled sentence). Responses are sent as deltas of ``delta_ms``
    at ``speed`` times real time (0: all at once), ``response_delay`` s after the turn ends.
    ``energy_threshold``: the VAD's RMS level (PCM16 units) for a voiced 20 ms block;
    ``silence_ms`` the default ``silence_duration_ms``. ``rate``: the default input and output
    rate (24000, as OpenAI's pcm16). ``keep_audio``: keep every session's input audio in
    ``session.kept``. ``ga``: GA event names from the start.

    Figures for tests: ``sessions`` (open connections: ``.events`` received, ``.kept``;
    ``history``: the last 100, closed ones too),
    ``truncates`` ``(item_id, audio_end_ms, item audio ms)``, ``responses``
    ``(id, item_id, status, audio bytes sent)``. ``cancel_delay``: seconds a response goes on
    after ``response.cancel`` (late deltas, as a real service sends). A
    :class:`~audiocore.gateway.peers.timeline.Timeline` given to :meth:`expect` is attached to
    the next connection.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0,
                 mode: Literal["echo", "prompt"] = "echo", prompt: bytes | None = None,
                 rate: int = 24000, delta_ms: int = 100, speed: float = 4.0,
                 response_delay: float = 0.0, energy_threshold: float = 300.0,
                 silence_ms: int = 500, max_turn_s: int = 30, keep_audio: bool = False,
                 ga: bool = False, cancel_delay: float = 0.0) -> None:
        if mode not in ("echo", "prompt"):
            raise ValueError(f"mode must be 'echo' or 'prompt', not {mode!r}")
        self.host = host
        self.port_wanted = port
        self.mode = mode
        self.rate = rate
        self.delta_ms = delta_ms
        self.speed = speed
        self.response_delay = response_delay
        self.energy_threshold = energy_threshold
        self.silence_ms = silence_ms
        self.max_turn_s = max_turn_s
        self.keep_audio = keep_audio
        self.ga = ga
        self.cancel_delay = cancel_delay
        self._prompt = {rate: prompt} if prompt is not None else {}
        self.sessions: list[_Session] = []
        self.history: collections.deque[_Session] = collections.deque(maxlen=100)
        self.truncates: list[tuple[str, int, int]] = []
        self.responses: list[tuple[str, str, str, int]] = []
        self.connections = 0
        self._expected: collections.deque[Timeline] = collections.deque()
        self._server: asyncio.Server | None = None

    def prompt(self, rate: int) -> bytes:
        if rate not in self._prompt:
            base = next(iter(self._prompt.items()), None)
            self._prompt[rate] = resample(base[1], base[0], rate) if base else prompt_pcm(rate)
        return self._prompt[rate]

    def expect(self, timeline: Timeline) -> None:
        """Attach ``timeline`` to the next connection (in the order of the calls)."""
        self._expected.append(timeline)

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the server is not started")
        return f"ws://{self.host}:{self._server.sockets[0].getsockname()[1]}/v1/realtime"

    async def start(self) -> None:
        if self.mode == "prompt":
            self.prompt(self.rate)

        def accept(request: WSUpgradeRequest) -> _Session:
            self.connections += 1
            return _Session(self, self._expected.popleft() if self._expected else None)

        self._server = await ws_create_server(accept, self.host, self.port_wanted, max_frame_size=16 << 20)

    def drop_connections(self) -> int:
        """Abort every open connection (as a network failure would); how many."""
        n = 0
        for s in list(self.sessions):
            if s.transport is not None:
                s.transport.disconnect(graceful=False)
                n += 1
        return n

    def broadcast(self, message: str | bytes) -> None:
        """Send ``message`` as is to every open connection (tests of malformed input)."""
        for s in self.sessions:
            send_text(s.transport, message)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for s in list(self.sessions):
            close(s.transport)
        if self._server is not None:
            await wait_closed(self._server)
            self._server = None

    async def __aenter__(self) -> RealtimeServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

