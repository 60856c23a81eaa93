"""Opus decode (and encode) per 20 ms packet of speech, beside opuslib and PyAV's decoder.

How each contender is called, one call per packet:
- audiocore: ``OpusDecoder.decode(packet)`` (size from the packet) -> PCM16 bytes.
- opuslib: ``opuslib.Decoder.decode(packet, frame_size)`` through a lambda that passes the
  frame size it needs (ctypes into the same system libopus) -> bytes.
- PyAV: ``ctx.decode(av.Packet(packet))`` on ``av.CodecContext.create("libopus", "r")`` ->
  a list of AudioFrame (s16); PyAV's wheel bundles its own libopus build. PyAV decodes at
  48 kHz only, so it is in the 48 kHz case.
"""

from __future__ import annotations

import av
import numpy as np
import opuslib
from av.audio.codeccontext import AudioCodecContext

import audiocore
from audiocore.bench._frames import frame, speech_packets
from audiocore.bench.harness import Case, Impl


def _pyav_decoder() -> AudioCodecContext:
    ctx = av.CodecContext.create("libopus", "r")
    ctx.sample_rate = 48000
    ctx.layout = "mono"
    return ctx


def cases() -> list[Case]:
    packets = speech_packets()
    packet = packets[100]  # voiced speech, 20 ms

    def check() -> None:
        ours, theirs, pyav = audiocore.OpusDecoder(48000), opuslib.Decoder(48000, 1), _pyav_decoder()
        for p in packets[:200]:
            pcm = ours.decode(p)
            assert pcm == theirs.decode(p, 960)
            frames = pyav.decode(av.Packet(p))
            other = np.concatenate([f.to_ndarray()[0] for f in frames])
            # PyAV's bundled libopus may round differently by 1 LSB (another version)
            assert np.abs(other.astype(int) - np.frombuffer(pcm, np.int16)).max() <= 1
        ours16, theirs16 = audiocore.OpusDecoder(16000), opuslib.Decoder(16000, 1)
        for p in packets[:100]:
            assert ours16.decode(p) == theirs16.decode(p, 320)

    dec48, lib48, pyav48 = audiocore.OpusDecoder(48000), opuslib.Decoder(48000, 1), _pyav_decoder()
    dec16, lib16 = audiocore.OpusDecoder(16000), opuslib.Decoder(16000, 1)
    pcm = frame(16000)
    enc = audiocore.OpusEncoder(16000, 1, "voip", bitrate=24000)
    lib_enc = opuslib.Encoder(16000, 1, opuslib.APPLICATION_VOIP)
    lib_enc.bitrate = 24000

    def check_encode() -> None:
        a = audiocore.OpusEncoder(16000, 1, "voip", bitrate=24000)
        b = opuslib.Encoder(16000, 1, opuslib.APPLICATION_VOIP)
        b.bitrate = 24000
        for i in range(20):
            assert a.encode(frame(16000, index=i)) == b.encode(frame(16000, index=i), 320)

    return [
        Case(
            "opus", "Opus decode 20 ms packet -> 48 kHz",
            Impl("audiocore", dec48.decode, (packet,)),
            [Impl("opuslib", lambda p: lib48.decode(p, 960), (packet,)),
             Impl("PyAV libopus", lambda p: pyav48.decode(av.Packet(p)), (packet,))],
            targets={"opuslib": 1.8, "PyAV libopus": 1.0},
            check=check,
            note="opuslib through a lambda for its frame_size; PyAV wraps bytes in av.Packet",
        ),
        Case(
            "opus", "Opus decode 20 ms packet -> 16 kHz",
            Impl("audiocore", dec16.decode, (packet,)),
            [Impl("opuslib", lambda p: lib16.decode(p, 320), (packet,))],
            targets={"opuslib": 1.8},
            check=check,
            note="PyAV's libopus decoder only outputs 48 kHz",
        ),
        Case(
            "opus", "Opus encode 20 ms @16 kHz, 24 kbit/s",
            Impl("audiocore", enc.encode, (pcm,)),
            [Impl("opuslib", lambda x: lib_enc.encode(x, 320), (pcm,))],
            check=check_encode,
            note="no target: both are libopus's encoder; the difference is call overhead",
        ),
    ]
