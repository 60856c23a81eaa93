"""Bridges between services: the audio of one call carried across, transcoded both ways.

:class:`AcsRealtimeTranscoder` joins an ACS media stream (PCM16 at ``acs_rate``, 20 ms
frames) and a Voice Live / OpenAI Realtime session (PCM16 at ``realtime_rate``). Each audio
message is carried across by one C call (JSON scan, base64 decode, resampling, base64 encode,
JSON emit: :class:`~audiocore._ext.transcode.Transcoder`); anything that is not the plain form
of an audio message goes through the general handlers of :mod:`~audiocore.protocols.acs` and
:mod:`~audiocore.protocols.realtime`, which give the same results and raise the errors.
Sans-I/O: the sockets are the caller's.
"""

from __future__ import annotations

from typing import Any

from audiocore._ext.errors import ProtocolError
from audiocore._ext.rechunk import Rechunker
from audiocore._ext.resample import Resampler
from audiocore._ext.transcode import Transcoder
from audiocore.protocols import acs, realtime

__all__ = ["AcsRealtimeTranscoder"]


class AcsRealtimeTranscoder:
    """Carries the audio of one ACS call to a Realtime session and back. Use from one thread
    at a time.

    :meth:`to_realtime` turns one ACS ``AudioData`` frame into one ``input_audio_buffer.append``
    message, resampled to ``realtime_rate`` (a silent frame sent empty becomes a frame of
    zeros: the server's VAD keeps its time). :meth:`to_acs` turns one
    ``response.audio.delta`` (beta or GA name) into ACS outbound audio messages of exactly 20 ms
    at ``acs_rate`` each, holding back a partial frame until the next delta or
    :meth:`flush_acs`. Every other message, in either direction, returns None / ``[]`` and its
    event is appended to :attr:`events` for the caller (ACS ``AudioMetadata``/``DtmfData``...,
    Realtime ``session.updated``/``input_audio_buffer.speech_started``/``response.done``...).

    :attr:`acs` and :attr:`realtime` are the sessions behind it (their state: the ACS format,
    the Realtime formats, responses and items). Call :meth:`barge_in` rather than
    ``realtime.barge_in`` so the audio counted by the fast path is included and the audio held
    for ACS is dropped.

    ``quality``: the resamplers' (``"hq"`` or ``"fast"``). ``max_message_size``: applies to
    both sessions; ``auto_interrupt`` and ``auto_truncate`` go to the
    :class:`~audiocore.protocols.realtime.RealtimeSession`.
    """

    def __init__(
        self,
        acs_rate: int = 16000,
        realtime_rate: int = 24000,
        *,
        quality: str = "hq",
        max_message_size: int = realtime.DEFAULT_MAX_MESSAGE_SIZE,
        auto_interrupt: bool | None = None,
        auto_truncate: bool | None = None,
    ) -> None:
        self.acs_rate = acs_rate
        self.realtime_rate = realtime_rate
        self.acs = acs.AcsSession(sample_rate=acs_rate, max_participants=0, max_message_size=max_message_size)
        self.realtime = realtime.RealtimeSession(max_message_size=max_message_size,
                                                 auto_interrupt=auto_interrupt,
                                                 auto_truncate=auto_truncate)
        #: Events of the messages that were not audio, in arrival order (both directions).
        self.events: list[Any] = []
        self._up = Resampler(acs_rate, realtime_rate, quality=quality)  # type: ignore[arg-type]
        self._down = Resampler(realtime_rate, acs_rate, quality=quality)  # type: ignore[arg-type]
        self._frames = Rechunker(acs_rate // 50 * 2)  # ACS plays 20 ms frames
        self._to_realtime = Transcoder(
            acs._AUDIO.shape, realtime._APPEND, self._up,
            frame_bytes=self.acs.frame_bytes or 0, silence="audioData.silent",
        )
        self._to_acs = Transcoder(
            realtime._DELTA[None].shape, acs._AUDIO_OUT, self._down,
            rechunker=self._frames, key="item_id", deny="response_id",
        )
        self._limit = max_message_size
        self._output_ok = self._formats_ok(self.realtime.output_format)
        self._fast = True

    def _formats_ok(self, fmt: realtime.AudioFormat) -> bool:
        """Whether the session's output is the PCM16 at ``realtime_rate`` this carries."""
        names = ("pcm16", "audio/pcm", f"pcm16_{self.realtime_rate}hz")
        return fmt.codec is None and fmt.rate == self.realtime_rate and fmt.name in names

    # ------------------------------------------------------------ ACS -> Realtime

    def to_realtime(self, text: str | bytes) -> str | None:
        """The ``input_audio_buffer.append`` message for one ACS ``AudioData`` frame; None for
        any other message (its event goes to :attr:`events`). :class:`ProtocolError` if
        malformed, or if ``AudioMetadata`` announces another rate than ``acs_rate``."""
        if self._fast and len(text) <= self._limit:
            out = self._to_realtime.run(text)
            if out is not None:
                return out  # type: ignore[return-value]
        before = self.acs.metadata
        ev = self.acs.receive(text)
        if isinstance(ev, acs.AudioData):
            pcm = ev.pcm or bytes(self.acs.frame_bytes or 0)  # an empty silent frame: its time
            return realtime.append(self._up.process(pcm))
        if isinstance(ev, acs.AudioMetadata):
            if ev.sample_rate != self.acs_rate or ev.channels != 1:
                self.acs.metadata = before
                raise ProtocolError(
                    f"audioMetadata.sampleRate: this transcoder carries mono {self.acs_rate} Hz, "
                    f"the stream is {ev.channels} x {ev.sample_rate} Hz",
                    "audioMetadata.sampleRate",
                )
            self._to_realtime.frame_bytes = ev.frame_bytes
        self.events.append(ev)
        return None

    # ------------------------------------------------------------ Realtime -> ACS

    def to_acs(self, text: str | bytes) -> list[str]:
        """ACS outbound audio messages (20 ms each) for one Realtime audio delta; ``[]`` for
        a late delta of a cancelled response, and for any other message (its event goes to
        :attr:`events`). :class:`ProtocolError` if malformed, or if the session's output is
        not PCM16 at ``realtime_rate``."""
        if self._fast and self._output_ok and len(text) <= self._limit:
            out = self._to_acs.run(text)
            if out is not None:
                return out  # type: ignore[return-value]
        ev = self.realtime.receive(text)
        if isinstance(ev, realtime.AudioDelta):
            if not self._output_ok:
                fmt = self.realtime.output_format
                raise ProtocolError(
                    f"delta: this transcoder carries pcm16 at {self.realtime_rate} Hz, the session "
                    f"sends {fmt.name} at {fmt.rate} Hz",
                    "delta",
                )
            self._follow(ev.item_id)
            return [acs.audio_message(f) for f in self._frames.push(self._down.process(ev.pcm))]
        if isinstance(ev, realtime.DroppedAudioDelta):
            return []
        if isinstance(ev, (realtime.SessionCreated, realtime.SessionUpdated)):
            self._output_ok = self._formats_ok(self.realtime.output_format)
        self.events.append(ev)
        return []

    def flush_acs(self) -> list[str]:
        """The audio still held for ACS (the resampler's tail and a partial frame), padded
        with silence to whole 20 ms frames: call it when a response's audio is done."""
        frames = self._frames.push(self._down.flush()) + self._frames.flush(pad=True)
        return [acs.audio_message(f) for f in frames]

    def barge_in(self, item_id: str | None, played_ms: int, *, content_index: int = 0) -> list[str]:
        """:meth:`RealtimeSession.barge_in <audiocore.protocols.realtime.RealtimeSession.barge_in>`
        with the audio counted by the fast path, then the audio held for ACS dropped. Send
        :func:`acs.stop_audio_message() <audiocore.protocols.acs.stop_audio_message>` to ACS
        first, then the returned messages to the Realtime session."""
        self._settle()
        messages = self.realtime.barge_in(item_id, played_ms, content_index=content_index)
        self._to_acs.denied = self.realtime.cancelled
        self._frames.reset()
        self._down.reset()
        return messages

    def received_ms(self, item_id: str) -> int:
        """Milliseconds of audio received for ``item_id`` (see ``RealtimeSession``)."""
        self._settle()
        return self.realtime.received_ms(item_id)

    def _follow(self, item_id: str) -> None:
        """Let the fast path take the deltas of ``item_id`` from now on, counting them."""
        key = item_id if item_id.isascii() else None
        if key != self._to_acs.key:
            self._settle()
            self._to_acs.key = key

    def _settle(self) -> None:
        """Move the audio the fast path counted into the Realtime session's item."""
        key = self._to_acs.key
        if key is not None and self._to_acs.key_bytes:
            self.realtime.add_item_audio(key, self._to_acs.key_bytes)
        self._to_acs.key_bytes = 0
