"""Protocol envelopes per 20 ms frame: audiocore's fused paths beside the seed-style gateway
code (json + base64 + numpy) and the best off-the-shelf composition (orjson + pybase64).

Ours do more than the peers on the way in: validation of every field, the frame-length
check, an event object; the peers only pull the audio out.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import numpy as np

import audiocore.bench.offshelf_gateway as offshelf
import audiocore.bench.seed_gateway as seed
from audiocore.bench._frames import frame, speech
from audiocore.bench.harness import Case, Impl
from audiocore.protocols import acs, realtime, twilio
from audiocore.protocols.bridge import AcsRealtimeTranscoder

PARTICIPANT = "8:acs:3d20e1de-0f28-41c5-84c0-59ed8f2d2e7a_00000018-b3b8-0d11-9e46-0f3a0d00b4d8"
STREAM_SID = "MZ18ad3ab5a668481ce02b83e7395059f0"


def acs_audio_text(pcm: bytes) -> str:
    """An ACS AudioData message as the service sends it."""
    return json.dumps({"kind": "AudioData", "audioData": {
        "timestamp": "2024-05-02T15:59:23.178Z", "participantRawID": PARTICIPANT,
        "data": base64.b64encode(pcm).decode(), "silent": False}}, separators=(",", ":"))


def realtime_delta_text(pcm: bytes, response_id: str = "resp_001") -> str:
    return json.dumps({"type": "response.audio.delta", "event_id": "event_4950", "response_id": response_id,
                       "item_id": "msg_008", "output_index": 0, "content_index": 0,
                       "delta": base64.b64encode(pcm).decode()}, separators=(",", ":"))


def twilio_media_text(codes: bytes) -> str:
    return json.dumps({"event": "media", "sequenceNumber": "3", "media": {"track": "inbound", "chunk": "1",
                       "timestamp": "5", "payload": base64.b64encode(codes).decode()}, "streamSid": STREAM_SID},
                      separators=(",", ":"))


def _audio_of(messages: list[str]) -> np.ndarray:
    """The PCM16 carried by append or ACS outbound messages, concatenated."""
    out = []
    for m in messages:
        obj = json.loads(m)
        out.append(base64.b64decode(obj["audio"] if "audio" in obj else obj["AudioData"]["Data"]))
    return np.frombuffer(b"".join(out), dtype="<i2").astype(np.float64)


def _same_audio(a: np.ndarray, b: np.ndarray, min_snr_db: float = 35.0) -> None:
    """The two resamplers' outputs agree once aligned (their delays differ)."""
    n = min(len(a), len(b)) - 400
    best = max(range(-200, 201), key=lambda lag: float(np.dot(a[200 : 200 + n - 400], b[200 + lag : 200 + lag + n - 400])))
    x, y = a[200 : 200 + n - 400], b[200 + best : 200 + best + n - 400]
    snr = 10 * np.log10(np.sum(y * y) / max(np.sum((x - y) ** 2), 1e-9))
    assert snr >= min_snr_db, f"outputs differ: SNR {snr:.1f} dB at lag {best}"


def _transcoder_cases() -> list[Case]:
    up_text = acs_audio_text(frame(16000))
    down_text = realtime_delta_text(frame(24000))
    ours, seed_t, off_t = AcsRealtimeTranscoder(), seed.Transcoder(), offshelf.Transcoder()
    ours.to_acs(down_text)  # the first delta of an item takes the general path once

    speech16, speech24 = speech(16000)[: 640 * 100], speech(24000)[: 960 * 100]
    ups = [acs_audio_text(speech16[i : i + 640]) for i in range(0, len(speech16), 640)]
    downs = [realtime_delta_text(speech24[i : i + 960]) for i in range(0, len(speech24), 960)]

    def check_up() -> None:
        outs = {}
        for name, t in (("ours", AcsRealtimeTranscoder()), ("seed", seed.Transcoder()), ("offshelf", offshelf.Transcoder())):
            msgs = [t.to_realtime(u) for u in ups]
            assert all(m is not None and json.loads(m)["type"] == "input_audio_buffer.append" for m in msgs)
            outs[name] = _audio_of(msgs)  # type: ignore[arg-type]
        _same_audio(outs["ours"], outs["seed"])
        _same_audio(outs["ours"], outs["offshelf"])

    def check_down() -> None:
        outs = {}
        for name, t in (("ours", AcsRealtimeTranscoder()), ("seed", seed.Transcoder()), ("offshelf", offshelf.Transcoder())):
            msgs = [m for d in downs for m in t.to_acs(d)]
            assert all(set(json.loads(m)) == {"Kind", "AudioData", "StopAudio"} for m in msgs)
            assert all(len(base64.b64decode(json.loads(m)["AudioData"]["Data"])) == 640 for m in msgs)
            outs[name] = _audio_of(msgs)
        _same_audio(outs["ours"], outs["seed"])
        _same_audio(outs["ours"], outs["offshelf"])

    return [
        Case("protocols", "Transcoder.to_realtime (20 ms 16->24k)",
             Impl("audiocore", ours.to_realtime, (up_text,)),
             [Impl("offshelf orjson+pybase64+soxr", off_t.to_realtime, (up_text,)),
              Impl("seed json+base64+numpy+soxr", seed_t.to_realtime, (up_text,))],
             targets={"offshelf orjson+pybase64+soxr": 4.0, "seed json+base64+numpy+soxr": 8.0},
             check=check_up,
             note="ACS AudioData text in, input_audio_buffer.append text out; soxr HQ and ours both stateful"),
        Case("protocols", "Transcoder.to_acs (20 ms 24->16k)",
             Impl("audiocore", ours.to_acs, (down_text,)),
             [Impl("offshelf orjson+pybase64+soxr", off_t.to_acs, (down_text,)),
              Impl("seed json+base64+numpy+soxr", seed_t.to_acs, (down_text,))],
             targets={"offshelf orjson+pybase64+soxr": 4.0, "seed json+base64+numpy+soxr": 8.0},
             check=check_down,
             note="response.audio.delta text in, 20 ms ACS AudioData messages out"),
    ]


def cases() -> list[Case]:
    pcm16k, pcm24k, pcm8k = frame(16000), frame(24000), frame(8000)
    acs_text = acs_audio_text(pcm16k)
    delta_text = realtime_delta_text(pcm24k)
    codes = base64.b64decode(json.loads(seed.pcm_to_twilio(STREAM_SID, pcm8k))["media"]["payload"])
    twilio_text = twilio_media_text(codes)

    acs_session = acs.AcsSession(sample_rate=16000)
    rt_session = realtime.RealtimeSession()
    tw_session = twilio.TwilioSession()

    def acs_in() -> bytes:
        return acs_session.receive(acs_text).pcm  # type: ignore[union-attr]

    def rt_in() -> bytes:
        return rt_session.receive(delta_text).pcm  # type: ignore[union-attr]

    def tw_in() -> bytes:
        pcm = tw_session.receive(twilio_text).pcm  # type: ignore[union-attr]
        assert pcm is not None
        return pcm

    def check_in(ours: Callable[[], bytes], *peers: Callable[[], bytes]) -> Callable[[], None]:
        def check() -> None:
            want = ours()
            for peer in peers:
                assert peer() == want
        return check

    def check_out(ours: Callable[[], str | bytes], *peers: Callable[[], str | bytes]) -> Callable[[], None]:
        def check() -> None:
            want = json.loads(ours())
            for peer in peers:
                assert json.loads(peer()) == want
        return check

    return _transcoder_cases() + [
        Case("protocols", "ACS AudioData text -> PCM (20 ms @16 kHz)",
             Impl("audiocore AcsSession.receive", acs_in),
             [Impl("seed json+base64", seed.acs_to_pcm, (acs_text,)),
              Impl("orjson+pybase64", offshelf.acs_to_pcm, (acs_text,))],
             check=check_in(acs_in, lambda: seed.acs_to_pcm(acs_text), lambda: offshelf.acs_to_pcm(acs_text)),
             note="ours validates every field and returns an AudioData event"),
        Case("protocols", "PCM -> ACS AudioData text (20 ms @16 kHz)",
             Impl("audiocore acs.audio_message", acs.audio_message, (pcm16k,)),
             [Impl("seed json+base64", seed.pcm_to_acs, (pcm16k,)),
              Impl("orjson+pybase64", offshelf.pcm_to_acs, (pcm16k,))],
             check=check_out(lambda: acs.audio_message(pcm16k), lambda: seed.pcm_to_acs(pcm16k), lambda: offshelf.pcm_to_acs(pcm16k))),
        Case("protocols", "Realtime audio delta -> PCM (20 ms @24 kHz)",
             Impl("audiocore RealtimeSession.receive", rt_in),
             [Impl("seed json+base64", seed.delta_to_pcm, (delta_text,)),
              Impl("orjson+pybase64", offshelf.delta_to_pcm, (delta_text,))],
             check=check_in(rt_in, lambda: seed.delta_to_pcm(delta_text), lambda: offshelf.delta_to_pcm(delta_text)),
             note="ours validates every field and returns an AudioDelta event"),
        Case("protocols", "PCM -> Realtime append (20 ms @24 kHz)",
             Impl("audiocore realtime.append", realtime.append, (pcm24k,)),
             [Impl("seed json+base64", seed.pcm_to_append, (pcm24k,)),
              Impl("orjson+pybase64", offshelf.pcm_to_append, (pcm24k,))],
             check=check_out(lambda: realtime.append(pcm24k), lambda: seed.pcm_to_append(pcm24k), lambda: offshelf.pcm_to_append(pcm24k))),
        Case("protocols", "Twilio media -> PCM16 (20 ms mu-law)",
             Impl("audiocore TwilioSession.receive", tw_in),
             [Impl("seed json+base64+numpy", seed.twilio_to_pcm, (twilio_text,)),
              Impl("orjson+pybase64+numpy", offshelf.twilio_to_pcm, (twilio_text,))],
             check=check_in(tw_in, lambda: seed.twilio_to_pcm(twilio_text), lambda: offshelf.twilio_to_pcm(twilio_text)),
             note="ours validates every field and returns a Media event (PCM16 and the mu-law bytes)"),
        Case("protocols", "PCM16 -> Twilio media (20 ms @8 kHz)",
             Impl("audiocore twilio.media_message", twilio.media_message, (STREAM_SID, pcm8k)),
             [Impl("seed json+base64+numpy", seed.pcm_to_twilio, (STREAM_SID, pcm8k)),
              Impl("orjson+pybase64+numpy", offshelf.pcm_to_twilio, (STREAM_SID, pcm8k))],
             check=check_out(lambda: twilio.media_message(STREAM_SID, pcm8k), lambda: seed.pcm_to_twilio(STREAM_SID, pcm8k),
                             lambda: offshelf.pcm_to_twilio(STREAM_SID, pcm8k))),
    ]
