"""Frames and Opus packets of real speech for the benchmarks: the sentence bundled with the
package (audiocore/data/speech-16k.wav) and its copies at the other rates and as Opus
(audiocore/bench/data; the same files as the source checkout's tests/data)."""

from __future__ import annotations

import io
import wave
from importlib import resources


def _data(name: str) -> bytes:
    package = "audiocore" if name == "speech-16k.wav" else "audiocore.bench"
    return resources.files(package).joinpath("data", name).read_bytes()


_SPEECH: dict[int, bytes] = {}  # rate -> PCM, read once


def speech(rate: int = 16000) -> bytes:
    """The bundled sentence as PCM16LE mono at ``rate`` (8000, 16000, 24000 or 48000)."""
    if rate not in _SPEECH:
        with wave.open(io.BytesIO(_data(f"speech-{rate // 1000}k.wav")), "rb") as w:
            _SPEECH[rate] = w.readframes(w.getnframes())
    return _SPEECH[rate]


def frame(rate: int = 16000, ms: int = 20, index: int = 10) -> bytes:
    """One ``ms`` frame of speech at ``rate``; ``index`` picks which."""
    n = rate * ms // 1000 * 2
    return speech(rate)[index * n : (index + 1) * n]


def speech_packets() -> list[bytes]:
    """The 20 ms, 24 kbit/s packets of data/speech-20ms.opus (made by opusenc)."""
    from audiocore import OggOpusReader

    return [p.data for p in OggOpusReader().feed(_data("speech-20ms.opus"))]
