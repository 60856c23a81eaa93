"""AcsRealtimeTranscoder: the fused paths against the general handlers and a plain chain
(json + base64 + audiocore.Resampler), barge-in accounting, errors."""

from __future__ import annotations

import base64
import json
import random
import wave

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import audiocore
from audiocore import ProtocolError
from audiocore.protocols import acs, realtime
from audiocore.protocols.bridge import AcsRealtimeTranscoder
from conftest import DATA
from reference import jsontext


def speech(rate: int) -> bytes:
    with wave.open(str(DATA / f"speech-{rate // 1000}k.wav"), "rb") as w:
        return w.readframes(w.getnframes())


def acs_frame(pcm: bytes, **extra: object) -> str:
    body = {"timestamp": "2024-05-02T15:59:23.178Z", "participantRawID": "8:acs:x", "data": base64.b64encode(pcm).decode(), "silent": False}
    body.update(extra)
    return json.dumps({"kind": "AudioData", "audioData": body})


def delta(pcm: bytes, response_id: str = "resp_1", item_id: str = "item_1", ga: bool = False) -> str:
    return json.dumps({"type": "response.output_audio.delta" if ga else "response.audio.delta", "event_id": "e",
                       "response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0,
                       "delta": base64.b64encode(pcm).decode()})


def pair() -> tuple[AcsRealtimeTranscoder, AcsRealtimeTranscoder]:
    fast, general = AcsRealtimeTranscoder(), AcsRealtimeTranscoder()
    general._fast = False
    return fast, general


def test_to_realtime_is_the_plain_chain() -> None:
    pcm = speech(16000)[: 640 * 50]
    t = AcsRealtimeTranscoder()
    assert t.to_realtime('{"kind":"AudioMetadata","audioMetadata":{"sampleRate":16000,"length":640}}') is None
    sent = b""
    for i in range(0, len(pcm), 640):
        msg = t.to_realtime(acs_frame(pcm[i : i + 640]))
        obj = json.loads(msg)
        assert set(obj) == {"type", "audio"} and obj["type"] == "input_audio_buffer.append"
        out = base64.b64decode(obj["audio"])
        assert len(out) == 960  # 20 ms at 24 kHz, every frame
        sent += out
    ref = audiocore.Resampler(16000, 24000)  # the same split: the test does not lean on split-invariance
    assert sent == b"".join(ref.process(pcm[i : i + 640]) for i in range(0, len(pcm), 640))
    assert isinstance(t.events[0], acs.AudioMetadata)


def test_to_acs_is_the_plain_chain_in_exact_frames() -> None:
    pcm = speech(24000)[: 960 * 40]
    rng = random.Random(4)
    t = AcsRealtimeTranscoder()
    sizes, starts, pos, out = [], [], 0, []
    while pos < len(pcm):
        n = min(rng.randrange(2, 6000, 2), len(pcm) - pos)
        out += t.to_acs(delta(pcm[pos : pos + n], ga=bool(rng.getrandbits(1))))
        starts.append(pos)
        sizes.append(n)
        pos += n
    out += t.flush_acs()
    payloads = []
    for msg in out:
        obj = json.loads(msg)
        assert obj["Kind"] == "AudioData" and obj["StopAudio"] is None and set(obj) == {"Kind", "AudioData", "StopAudio"}
        payloads.append(base64.b64decode(obj["AudioData"]["Data"]))
    assert all(len(p) == 640 for p in payloads)
    ref = audiocore.Resampler(24000, 16000)
    expected = b"".join(ref.process(pcm[a : a + n]) for a, n in zip(starts, sizes)) + ref.flush()
    expected += bytes(-len(expected) % 640)
    assert b"".join(payloads) == expected
    assert t.flush_acs() == []


def test_a_partial_frame_waits_for_the_next_delta() -> None:
    t = AcsRealtimeTranscoder()
    assert t.to_acs(delta(bytes(480))) == []  # 10 ms: half a frame, held
    assert t._frames.pending == 320
    assert len(t.to_acs(delta(bytes(480)))) == 1  # the frame completes
    assert t._frames.pending == 0
    assert t.to_acs(delta(bytes(240))) == [] and len(t.flush_acs()) == 1


def test_silent_frames_forward_their_time() -> None:
    fast, general = pair()
    for t in (fast, general):
        zeros = t.to_realtime(acs_frame(bytes(640), silent=True))
        empty = t.to_realtime(acs_frame(b"", silent=True))
        assert base64.b64decode(json.loads(zeros)["audio"]) == base64.b64decode(json.loads(empty)["audio"]) == bytes(960)
    with pytest.raises(ProtocolError):
        fast.to_realtime(acs_frame(b""))  # empty but not silent


def test_other_messages_become_events() -> None:
    t = AcsRealtimeTranscoder()
    assert t.to_realtime('{"kind":"DtmfData","dtmfData":{"data":"5"}}') is None
    assert t.to_acs(json.dumps({"type": "input_audio_buffer.speech_started", "audio_start_ms": 5, "item_id": "i"})) == []
    assert t.to_acs(json.dumps({"type": "response.audio.done", "response_id": "r", "item_id": "i"})) == []
    assert [type(e) for e in t.events] == [acs.DtmfData, realtime.SpeechStarted, realtime.AudioDone]


def test_barge_in_counts_the_fast_path_and_drops_held_audio() -> None:
    t = AcsRealtimeTranscoder()
    t.to_acs(json.dumps({"type": "response.created", "response": {"id": "resp_1"}}))
    for _ in range(10):
        t.to_acs(delta(bytes(4800)))  # 100 ms each; all but the first through the fast path
    assert t._to_acs.key == "item_1" and t._to_acs.key_bytes == 9 * 4800
    assert t.received_ms("item_1") == 1000
    t.to_acs(delta(bytes(600)))  # leaves a partial frame held
    messages = [json.loads(m) for m in t.barge_in("item_1", 1500)]
    assert messages == [{"type": "response.cancel", "response_id": "resp_1"},
                        {"type": "conversation.item.truncate", "item_id": "item_1", "content_index": 0, "audio_end_ms": 1012}]
    assert t._frames.pending == 0
    assert t.to_acs(delta(bytes(4800))) == []  # late delta of the cancelled response
    assert t.received_ms("item_1") == 1012
    t.to_acs(json.dumps({"type": "response.created", "response": {"id": "resp_2"}}))
    assert len(t.to_acs(delta(bytes(960), "resp_2", "item_2"))) == 1


def test_format_mismatches_are_errors() -> None:
    t = AcsRealtimeTranscoder()
    with pytest.raises(ProtocolError) as info:
        t.to_realtime('{"kind":"AudioMetadata","audioMetadata":{"sampleRate":24000}}')
    assert info.value.field == "audioMetadata.sampleRate" and t.acs.sample_rate == 16000
    assert t.to_realtime(acs_frame(bytes(640))) is not None
    t.to_acs(json.dumps({"type": "session.updated", "session": {"output_audio_format": "g711_ulaw"}}))
    with pytest.raises(ProtocolError) as info:
        t.to_acs(delta(bytes(160)))
    assert info.value.field == "delta"
    t.to_acs(json.dumps({"type": "session.updated", "session": {"output_audio_format": "pcm16"}}))
    assert len(t.to_acs(delta(bytes(960)))) == 1
    # ACS at 24 kHz: 960-byte frames, carried at the same rate
    t24 = AcsRealtimeTranscoder(acs_rate=24000)
    assert t24.to_realtime('{"kind":"AudioMetadata","audioMetadata":{"sampleRate":24000}}') is None
    pcm = speech(24000)[9600:10560]
    out = base64.b64decode(json.loads(t24.to_realtime(acs_frame(pcm)))["audio"])
    assert out == audiocore.Resampler(24000, 24000).process(pcm)
    with pytest.raises(ProtocolError):
        t24.to_realtime(acs_frame(bytes(640)))  # a 16 kHz frame length


def test_size_limit() -> None:
    t = AcsRealtimeTranscoder(max_message_size=500)
    with pytest.raises(ProtocolError):
        t.to_realtime(acs_frame(bytes(640)))
    with pytest.raises(ProtocolError):
        t.to_acs(delta(bytes(960)))
    assert t.events == [] and t._frames.pending == 0


def _run(t: AcsRealtimeTranscoder, direction: str, text: str | bytes):
    try:
        out = t.to_realtime(text) if direction == "up" else t.to_acs(text)
        return ("ok", out)
    except ProtocolError as exc:
        return ("error", str(exc), exc.field)


@st.composite
def streams(draw: st.DrawFn) -> list[tuple[str, object]]:
    items: list[tuple[str, object]] = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["acs", "acs", "delta", "delta", "created", "barge", "meta", "other"]))
        if kind == "acs":
            n = draw(st.sampled_from([640, 640, 0, 320]))
            body = {"data": base64.b64encode(draw(st.binary(min_size=n, max_size=n))).decode()}
            if draw(st.booleans()):
                body["silent"] = draw(st.sampled_from([True, False, "x"]))
            if draw(st.integers(0, 5)) == 0:
                body["extra"] = 1
            items.append(("up", {"kind": "AudioData", "audioData": body}))
        elif kind == "delta":
            n = draw(st.sampled_from([960, 4800, 2, 3, 0]))
            msg = {"type": draw(st.sampled_from(["response.audio.delta", "response.output_audio.delta"])),
                   "response_id": draw(st.sampled_from(["r1", "r2"])), "item_id": draw(st.sampled_from(["i1", "i2", "i/3"])),
                   "output_index": 0, "content_index": 0, "delta": base64.b64encode(draw(st.binary(min_size=n, max_size=n))).decode()}
            if draw(st.integers(0, 6)) == 0:
                msg["delta"] = "A=A="
            items.append(("down", msg))
        elif kind == "created":
            items.append(("down", {"type": "response.created", "response": {"id": draw(st.sampled_from(["r1", "r2"]))}}))
        elif kind == "barge":
            items.append(("barge", (draw(st.sampled_from(["i1", "i2", None])), draw(st.integers(0, 500)))))
        elif kind == "meta":
            items.append(("up", {"kind": "AudioMetadata", "audioMetadata": {"sampleRate": draw(st.sampled_from([16000, 24000]))}}))
        else:
            items.append((draw(st.sampled_from(["up", "down"])), {"kind": "DtmfData", "dtmfData": {"data": "1"}, "type": "warning"}))
    return items


@settings(max_examples=150)
@given(streams(), st.randoms(use_true_random=False), st.booleans())
def test_fast_and_general_paths_agree(stream: list[tuple[str, object]], rng: random.Random, vary: bool) -> None:
    fast, general = pair()
    for direction, item in stream:
        if direction == "barge":
            item_id, played = item  # type: ignore[misc]
            assert fast.barge_in(item_id, played) == general.barge_in(item_id, played)
            continue
        text: str | bytes = jsontext.dumps(item, rng, vary=vary, casing=vary and direction == "up")
        if rng.random() < 0.3:
            text = text.encode()  # type: ignore[union-attr]
        assert _run(fast, direction, text) == _run(general, direction, text)
    assert fast.flush_acs() == general.flush_acs()
    assert fast.events == general.events
    for item_id in ("i1", "i2", "i/3"):
        assert fast.received_ms(item_id) == general.received_ms(item_id)
