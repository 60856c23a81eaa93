"""The best off-the-shelf composition the protocol handlers are measured against.

orjson for JSON, pybase64 (SIMD) for base64, NumPy for samples and G.711 tables, python-soxr
(HQ) stateful per direction. A benchmark peer, not part of audiocore.
"""

from __future__ import annotations

import numpy as np
import orjson
import pybase64
import soxr

from audiocore.bench.seed_gateway import ULAW_DECODE, ULAW_ENCODE


def acs_to_pcm(text: str) -> bytes:
    return pybase64.b64decode(orjson.loads(text)["audioData"]["data"], validate=True)


def pcm_to_acs(pcm: bytes) -> str:
    return orjson.dumps(
        {"Kind": "AudioData", "AudioData": {"Data": pybase64.b64encode_as_string(pcm)}, "StopAudio": None}
    ).decode()


def delta_to_pcm(text: str) -> bytes:
    return pybase64.b64decode(orjson.loads(text)["delta"], validate=True)


def pcm_to_append(pcm: bytes) -> str:
    return orjson.dumps({"type": "input_audio_buffer.append", "audio": pybase64.b64encode_as_string(pcm)}).decode()


def twilio_to_pcm(text: str) -> bytes:
    codes = np.frombuffer(pybase64.b64decode(orjson.loads(text)["media"]["payload"], validate=True), dtype=np.uint8)
    return ULAW_DECODE[codes].tobytes()


def pcm_to_twilio(stream_sid: str, pcm: bytes) -> str:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.int32) + 32768
    payload = pybase64.b64encode_as_string(ULAW_ENCODE[samples].tobytes())
    return orjson.dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}}).decode()


class Transcoder:
    """ACS <-> Realtime with orjson + pybase64 + soxr HQ (stateful)."""

    def __init__(self, acs_rate: int = 16000, realtime_rate: int = 24000) -> None:
        self.up = soxr.ResampleStream(acs_rate, realtime_rate, 1, dtype="int16", quality="HQ")
        self.down = soxr.ResampleStream(realtime_rate, acs_rate, 1, dtype="int16", quality="HQ")
        self.frame = acs_rate // 50 * 2
        self.pending = bytearray()

    def to_realtime(self, text: str) -> str | None:
        msg = orjson.loads(text)
        if msg.get("kind") != "AudioData":
            return None
        pcm = np.frombuffer(pybase64.b64decode(msg["audioData"]["data"], validate=True), dtype=np.int16)
        out = self.up.resample_chunk(pcm)
        return orjson.dumps({"type": "input_audio_buffer.append", "audio": pybase64.b64encode_as_string(out.tobytes())}).decode()

    def to_acs(self, text: str) -> list[str]:
        msg = orjson.loads(text)
        if msg.get("type") not in ("response.audio.delta", "response.output_audio.delta"):
            return []
        pcm = np.frombuffer(pybase64.b64decode(msg["delta"], validate=True), dtype=np.int16)
        self.pending += self.down.resample_chunk(pcm).tobytes()
        out = []
        while len(self.pending) >= self.frame:
            frame = bytes(self.pending[: self.frame])
            del self.pending[: self.frame]
            out.append(pcm_to_acs(frame))
        return out
