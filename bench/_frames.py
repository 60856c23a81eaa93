"""Frames and Opus packets of real speech for the benchmarks (from tests/data)."""

from __future__ import annotations

import wave
from functools import cache
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


@cache
def speech(rate: int = 16000) -> bytes:
    """The bundled sentence as PCM16LE mono at ``rate`` (8000, 16000, 24000 or 48000)."""
    with wave.open(str(DATA / f"speech-{rate // 1000}k.wav"), "rb") as w:
        return w.readframes(w.getnframes())


def frame(rate: int = 16000, ms: int = 20, index: int = 10) -> bytes:
    """One ``ms`` frame of speech at ``rate``; ``index`` picks which."""
    n = rate * ms // 1000 * 2
    return speech(rate)[index * n : (index + 1) * n]


def speech_packets() -> list[bytes]:
    """The 20 ms, 24 kbit/s packets of tests/data/speech-20ms.opus (made by opusenc)."""
    from audiocore import OggOpusReader

    return [p.data for p in OggOpusReader().feed((DATA / "speech-20ms.opus").read_bytes())]
