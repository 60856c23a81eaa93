"""The decoder interface JitterQueue calls (decode / conceal / decode_fec / reset, rate,
channels), implemented over opuslib (a ctypes binding of the real libopus): an object that is
not audiocore's OpusDecoder, so the queue goes through its Python methods; and a variant that
breaks the contract now and then. Plus the encoder the tests use."""

from __future__ import annotations

import ctypes

import opuslib
import opuslib.api.decoder as api
import opuslib.api.info
from opuslib.exceptions import OpusError as OpuslibError

import audiocore


class OpuslibDecoder:
    def __init__(self, rate: int, channels: int = 1) -> None:
        self.rate = rate
        self.channels = channels
        self._dec = opuslib.Decoder(rate, channels)
        self._max = rate * 120 // 1000

    def _run(self, data: bytes | None, frames: int, fec: bool) -> bytes:
        try:
            if data is None:
                # PLC: libopus decodes a NULL packet as "lost"; opuslib wants bytes, so call
                # the C function through its ctypes prototype directly.
                pcm = (ctypes.c_int16 * (frames * self.channels))()
                n = api.libopus_decode(self._dec.decoder_state, None, 0, pcm, frames, 0)
                if n < 0:
                    raise OpuslibError(n)
                return bytes(pcm)[: n * 2 * self.channels]
            return self._dec.decode(data, frames, decode_fec=fec)
        except OpuslibError as exc:
            text = opuslib.api.info.strerror(exc.code).decode()
            raise audiocore.OpusError(exc.code, text, "opuslib") from None

    def decode(self, packet: bytes) -> bytes:
        return self._run(packet, self._max, False)

    def conceal(self, samples: int) -> bytes:
        return self._run(None, samples, False)

    def decode_fec(self, packet: bytes, samples: int) -> bytes:
        return self._run(packet, samples, True)

    def reset(self) -> None:
        self._dec.reset_state()


def encode(pcm: bytes, rate: int, channels: int = 1, frame_ms: int = 20, fec: bool = True,
           loss_percent: int = 10, bitrate: int = 24000) -> list[bytes]:
    """PCM16 -> Opus packets of frame_ms (audiocore's OpusEncoder: libopus, VOIP, in-band FEC
    when asked)."""
    enc = audiocore.OpusEncoder(rate, channels, "voip", bitrate)
    if fec:
        enc.fec = True
        enc.packet_loss_perc = loss_percent
    n = rate * frame_ms // 1000 * 2 * channels
    return [enc.encode(pcm[i : i + n]) for i in range(0, len(pcm) - n + 1, n)]


class FlakyDecoder(OpuslibDecoder):
    """OpuslibDecoder that, every ``every``-th call, raises OpusError or returns a short
    result: a decoder breaking its contract, to test that the queue conceals and counts it."""

    def __init__(self, rate: int, channels: int = 1, every: int = 23) -> None:
        super().__init__(rate, channels)
        self.every = every
        self.count = 0

    def _flake(self, pcm: bytes) -> bytes:
        self.count += 1
        if self.count % self.every == 0:
            raise audiocore.OpusError(-4, "corrupted stream", "injected")
        if self.count % self.every == self.every // 2:
            return pcm[:-2]
        return pcm

    def decode(self, packet: bytes) -> bytes:
        return self._flake(super().decode(packet))

    def conceal(self, samples: int) -> bytes:
        return self._flake(super().conceal(samples))

    def decode_fec(self, packet: bytes, samples: int) -> bytes:
        return self._flake(super().decode_fec(packet, samples))
