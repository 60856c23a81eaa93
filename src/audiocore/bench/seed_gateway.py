"""The "seed style" gateway code the protocol handlers are measured against.

What voice gateways write by hand today: the standard library's ``json`` and ``base64``,
NumPy for samples and G.711 tables, python-soxr (HQ) for resampling, kept stateful (one
``soxr.ResampleStream`` per direction) so the audio is right across frames. A benchmark peer,
not part of audiocore.
"""

from __future__ import annotations

import audioop
import base64
import json

import numpy as np
import soxr

# G.711 mu-law tables, built once (as a gateway would, from audioop or a formula).
ULAW_DECODE = np.frombuffer(audioop.ulaw2lin(bytes(range(256)), 2), dtype="<i2").copy()
ULAW_ENCODE = np.frombuffer(
    audioop.lin2ulaw(np.arange(-32768, 32768, dtype="<i2").tobytes(), 2), dtype=np.uint8
).copy()


def acs_to_pcm(text: str) -> bytes:
    return base64.b64decode(json.loads(text)["audioData"]["data"])


def pcm_to_acs(pcm: bytes) -> str:
    return json.dumps(
        {"Kind": "AudioData", "AudioData": {"Data": base64.b64encode(pcm).decode()}, "StopAudio": None}
    )


def delta_to_pcm(text: str) -> bytes:
    return base64.b64decode(json.loads(text)["delta"])


def pcm_to_append(pcm: bytes) -> str:
    return json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()})


def twilio_to_pcm(text: str) -> bytes:
    codes = np.frombuffer(base64.b64decode(json.loads(text)["media"]["payload"]), dtype=np.uint8)
    return ULAW_DECODE[codes].tobytes()


def pcm_to_twilio(stream_sid: str, pcm: bytes) -> str:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.int32) + 32768
    payload = base64.b64encode(ULAW_ENCODE[samples].tobytes()).decode()
    return json.dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})


class Transcoder:
    """ACS <-> Realtime, seed style: per frame json.loads, b64decode, np.frombuffer,
    soxr.ResampleStream HQ, b64encode, json.dumps; 20 ms ACS frames cut from a bytearray."""

    def __init__(self, acs_rate: int = 16000, realtime_rate: int = 24000) -> None:
        self.up = soxr.ResampleStream(acs_rate, realtime_rate, 1, dtype="int16", quality="HQ")
        self.down = soxr.ResampleStream(realtime_rate, acs_rate, 1, dtype="int16", quality="HQ")
        self.frame = acs_rate // 50 * 2
        self.pending = bytearray()

    def to_realtime(self, text: str) -> str | None:
        msg = json.loads(text)
        if msg.get("kind") != "AudioData":
            return None
        pcm = np.frombuffer(base64.b64decode(msg["audioData"]["data"]), dtype=np.int16)
        out = self.up.resample_chunk(pcm)
        return json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(out.tobytes()).decode()})

    def to_acs(self, text: str) -> list[str]:
        msg = json.loads(text)
        if msg.get("type") not in ("response.audio.delta", "response.output_audio.delta"):
            return []
        pcm = np.frombuffer(base64.b64decode(msg["delta"]), dtype=np.int16)
        self.pending += self.down.resample_chunk(pcm).tobytes()
        out = []
        while len(self.pending) >= self.frame:
            frame = bytes(self.pending[: self.frame])
            del self.pending[: self.frame]
            out.append(pcm_to_acs(frame))
        return out
