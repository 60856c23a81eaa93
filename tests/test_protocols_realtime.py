"""Voice Live / OpenAI Realtime client: every server event (beta and GA names), the barge-in
sequence, builders, fast path == general path, fuzz."""

from __future__ import annotations

import audioop
import base64
import copy
import dataclasses
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audiocore import ProtocolError
from audiocore.protocols import realtime as rt
from audiocore.protocols.bridge import AcsRealtimeTranscoder
from reference import jsontext

# Server events as the Realtime API reference shows them (beta names).
EXAMPLES = {
    "session.created": {"event_id": "event_1234", "type": "session.created", "session": {"id": "sess_001", "object": "realtime.session", "model": "gpt-4o-realtime-preview", "modalities": ["text", "audio"], "voice": "sage", "input_audio_format": "pcm16", "output_audio_format": "pcm16", "input_audio_transcription": None, "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 200}, "tools": [], "tool_choice": "auto", "temperature": 0.8, "max_response_output_tokens": "inf"}},
    "session.updated": {"event_id": "event_5678", "type": "session.updated", "session": {"id": "sess_001", "output_audio_format": "pcm16", "turn_detection": None}},
    "error": {"event_id": "event_890", "type": "error", "error": {"type": "invalid_request_error", "code": "invalid_event", "message": "The 'type' field is missing.", "param": None, "event_id": "event_567"}},
    "input_audio_buffer.committed": {"event_id": "event_1121", "type": "input_audio_buffer.committed", "previous_item_id": "msg_001", "item_id": "msg_002"},
    "input_audio_buffer.cleared": {"event_id": "event_1314", "type": "input_audio_buffer.cleared"},
    "input_audio_buffer.speech_started": {"event_id": "event_1516", "type": "input_audio_buffer.speech_started", "audio_start_ms": 1000, "item_id": "msg_003"},
    "input_audio_buffer.speech_stopped": {"event_id": "event_1718", "type": "input_audio_buffer.speech_stopped", "audio_end_ms": 2000, "item_id": "msg_003"},
    "conversation.item.created": {"event_id": "event_1920", "type": "conversation.item.created", "previous_item_id": "msg_002", "item": {"id": "msg_003", "object": "realtime.item", "type": "message", "status": "completed", "role": "user", "content": [{"type": "input_audio", "transcript": "hello how are you"}]}},
    "conversation.item.retrieved": {"event_id": "event_1923", "type": "conversation.item.retrieved", "item": {"id": "msg_003"}},
    "conversation.item.input_audio_transcription.delta": {"type": "conversation.item.input_audio_transcription.delta", "event_id": "event_001", "item_id": "item_001", "content_index": 0, "delta": "Hello"},
    "conversation.item.input_audio_transcription.completed": {"event_id": "event_2122", "type": "conversation.item.input_audio_transcription.completed", "item_id": "msg_003", "content_index": 0, "transcript": "Hello, how are you?"},
    "conversation.item.input_audio_transcription.failed": {"event_id": "event_2324", "type": "conversation.item.input_audio_transcription.failed", "item_id": "msg_003", "content_index": 0, "error": {"type": "transcription_error", "code": "audio_unintelligible", "message": "The audio could not be transcribed.", "param": None}},
    "conversation.item.truncated": {"event_id": "event_2526", "type": "conversation.item.truncated", "item_id": "msg_004", "content_index": 0, "audio_end_ms": 1500},
    "conversation.item.deleted": {"event_id": "event_2728", "type": "conversation.item.deleted", "item_id": "msg_005"},
    "response.created": {"event_id": "event_2930", "type": "response.created", "response": {"id": "resp_001", "object": "realtime.response", "status": "in_progress", "status_details": None, "output": [], "usage": None}},
    "response.done": {"event_id": "event_3132", "type": "response.done", "response": {"id": "resp_001", "object": "realtime.response", "status": "completed", "status_details": None, "output": [], "usage": {"total_tokens": 275}}},
    "response.output_item.added": {"event_id": "event_3334", "type": "response.output_item.added", "response_id": "resp_001", "output_index": 0, "item": {"id": "msg_007", "type": "message", "status": "in_progress", "role": "assistant", "content": []}},
    "response.output_item.done": {"event_id": "event_3536", "type": "response.output_item.done", "response_id": "resp_001", "output_index": 0, "item": {"id": "msg_007", "status": "completed"}},
    "response.content_part.added": {"event_id": "event_3738", "type": "response.content_part.added", "response_id": "resp_001", "item_id": "msg_007", "output_index": 0, "content_index": 0, "part": {"type": "text", "text": ""}},
    "response.content_part.done": {"event_id": "event_3940", "type": "response.content_part.done", "response_id": "resp_001", "item_id": "msg_007", "output_index": 0, "content_index": 0, "part": {"type": "text", "text": "Sure, I can help with that."}},
    "response.text.delta": {"event_id": "event_4142", "type": "response.text.delta", "response_id": "resp_001", "item_id": "msg_007", "output_index": 0, "content_index": 0, "delta": "Sure, I can h"},
    "response.text.done": {"event_id": "event_4344", "type": "response.text.done", "response_id": "resp_001", "item_id": "msg_007", "output_index": 0, "content_index": 0, "text": "Sure, I can help with that."},
    "response.audio_transcript.delta": {"event_id": "event_4546", "type": "response.audio_transcript.delta", "response_id": "resp_001", "item_id": "msg_008", "output_index": 0, "content_index": 0, "delta": "Hello, how can I a"},
    "response.audio_transcript.done": {"event_id": "event_4748", "type": "response.audio_transcript.done", "response_id": "resp_001", "item_id": "msg_008", "output_index": 0, "content_index": 0, "transcript": "Hello, how can I assist you today?"},
    "response.audio.delta": {"event_id": "event_4950", "type": "response.audio.delta", "response_id": "resp_001", "item_id": "msg_008", "output_index": 0, "content_index": 0, "delta": "AAECAwQF"},
    "response.audio.done": {"event_id": "event_5152", "type": "response.audio.done", "response_id": "resp_001", "item_id": "msg_008", "output_index": 0, "content_index": 0},
    "response.function_call_arguments.delta": {"event_id": "event_5354", "type": "response.function_call_arguments.delta", "response_id": "resp_002", "item_id": "fc_001", "output_index": 0, "call_id": "call_001", "delta": "{\"location\": \"San\""},
    "response.function_call_arguments.done": {"event_id": "event_5556", "type": "response.function_call_arguments.done", "response_id": "resp_002", "item_id": "fc_001", "output_index": 0, "call_id": "call_001", "arguments": "{\"location\": \"San Francisco\"}"},
    "rate_limits.updated": {"event_id": "event_5758", "type": "rate_limits.updated", "rate_limits": [{"name": "requests", "limit": 1000, "remaining": 999, "reset_seconds": 60}]},
    "warning": {"type": "warning", "event_id": "e", "warning": {"message": "slow down"}},
    "response.audio_timestamp.delta": {"type": "response.audio_timestamp.delta", "response_id": "r", "item_id": "i", "output_index": 0, "content_index": 0, "audio_offset_ms": 490, "audio_duration_ms": 387, "text": "Hello", "timestamp_type": "word"},
    "response.animation_viseme.delta": {"type": "response.animation_viseme.delta", "response_id": "r", "item_id": "i", "audio_offset_ms": 455, "viseme_id": 1},
}
EXPECTED_CLASS = {
    "session.created": rt.SessionCreated, "session.updated": rt.SessionUpdated, "error": rt.Error,
    "input_audio_buffer.committed": rt.InputAudioBufferCommitted,
    "input_audio_buffer.cleared": rt.InputAudioBufferCleared,
    "input_audio_buffer.speech_started": rt.SpeechStarted,
    "input_audio_buffer.speech_stopped": rt.SpeechStopped,
    "conversation.item.created": rt.ConversationItemCreated,
    "conversation.item.retrieved": rt.ConversationItemRetrieved,
    "conversation.item.input_audio_transcription.delta": rt.InputTranscriptionDelta,
    "conversation.item.input_audio_transcription.completed": rt.InputTranscriptionCompleted,
    "conversation.item.input_audio_transcription.failed": rt.InputTranscriptionFailed,
    "conversation.item.truncated": rt.ConversationItemTruncated,
    "conversation.item.deleted": rt.ConversationItemDeleted,
    "response.created": rt.ResponseCreated, "response.done": rt.ResponseDone,
    "response.output_item.added": rt.OutputItemAdded, "response.output_item.done": rt.OutputItemDone,
    "response.content_part.added": rt.ContentPartAdded, "response.content_part.done": rt.ContentPartDone,
    "response.text.delta": rt.TextDelta, "response.text.done": rt.TextDone,
    "response.audio_transcript.delta": rt.AudioTranscriptDelta,
    "response.audio_transcript.done": rt.AudioTranscriptDone,
    "response.audio.delta": rt.AudioDelta, "response.audio.done": rt.AudioDone,
    "response.function_call_arguments.delta": rt.FunctionCallArgumentsDelta,
    "response.function_call_arguments.done": rt.FunctionCallArgumentsDone,
    "rate_limits.updated": rt.RateLimitsUpdated, "warning": rt.Warning,
    "response.audio_timestamp.delta": rt.AudioTimestamp, "response.animation_viseme.delta": rt.Animation,
}
GA = {
    "response.output_audio.delta": "response.audio.delta",
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
    "response.output_text.delta": "response.text.delta",
    "response.output_text.done": "response.text.done",
    "conversation.item.added": "conversation.item.created",
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_documented_server_event(name: str) -> None:
    msg = EXAMPLES[name]
    ev = rt.RealtimeSession().receive(json.dumps(msg))
    assert type(ev) is EXPECTED_CLASS[name]
    assert ev.type == name and ev.event_id == msg.get("event_id")
    for key, value in msg.items():
        if key in ("type", "event_id"):
            continue
        if key == "delta" and name == "response.audio.delta":
            assert ev.pcm == ev.payload == base64.b64decode(value)
        elif hasattr(ev, key):
            assert getattr(ev, key) == value, key
    if name == "error":
        assert (ev.error_type, ev.code, ev.message, ev.param, ev.error_event_id) == (
            "invalid_request_error", "invalid_event", "The 'type' field is missing.", None, "event_567")
    if name in ("warning", "response.audio_timestamp.delta", "response.animation_viseme.delta"):
        assert ev.payload == msg
    if name == "response.done":
        assert ev.response_id == "resp_001" and ev.status == "completed"


@pytest.mark.parametrize("ga, beta", sorted(GA.items()))
def test_ga_names_read_like_beta_names(ga: str, beta: str) -> None:
    msg = dict(EXAMPLES[beta], type=ga)
    ev = rt.RealtimeSession().receive(json.dumps(msg))
    assert type(ev) is EXPECTED_CLASS[beta] and ev.type == ga


def test_unknown_types_are_events() -> None:
    msg = {"type": "response.future_thing", "x": [1, 2]}
    assert rt.RealtimeSession().receive(json.dumps(msg)) == rt.Unknown("response.future_thing", msg)
    assert rt.KNOWN_TYPES >= set(EXAMPLES) | set(GA)


def test_every_parser_is_exercised() -> None:
    """No server event type this module claims to know is left out of the tests above."""
    tested = set(EXAMPLES) | set(GA) | {"conversation.item.done", "response.audio_timestamp.done",
                                        "response.animation_blendshapes.delta", "response.animation_blendshapes.done",
                                        "response.animation_viseme.done"}
    assert rt.KNOWN_TYPES <= tested
    s = rt.RealtimeSession()
    assert type(s.receive(json.dumps({"type": "conversation.item.done", "item": {}}))) is rt.ConversationItemDone
    for t in ("response.audio_timestamp.done", "response.animation_blendshapes.delta"):
        assert s.receive(json.dumps({"type": t})).response_id is None


def _delta(response_id: str, item_id: str, audio: bytes, *, ga: bool = False, **extra: object) -> str:
    msg = {"type": "response.output_audio.delta" if ga else "response.audio.delta", "event_id": "ev",
           "response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0,
           "delta": base64.b64encode(audio).decode()}
    msg.update(extra)
    return json.dumps(msg)


def test_output_formats_follow_the_server() -> None:
    s = rt.RealtimeSession()
    assert s.output_format == rt.PCM16_24K
    codes = bytes(range(256))
    s.receive(json.dumps({"type": "session.updated", "session": {"output_audio_format": "g711_ulaw"}}))
    ev = s.receive(_delta("r", "i", codes))
    assert ev.payload == codes and ev.pcm == audioop.ulaw2lin(codes, 2)
    s.receive(json.dumps({"type": "session.updated", "session": {"output_audio_format": "g711_alaw"}}))
    assert s.receive(_delta("r", "i", codes)).pcm == audioop.alaw2lin(codes, 2)
    # GA nests formats
    s.receive(json.dumps({"type": "session.updated", "session": {"audio": {"output": {"format": {"type": "audio/pcmu"}}, "input": {"format": {"type": "audio/pcm", "rate": 24000}}}}}))
    assert s.output_format.codec == "ulaw" and s.input_format == rt.AudioFormat("audio/pcm", 24000, None)
    assert s.receive(_delta("r", "i", codes, ga=True)).pcm == audioop.ulaw2lin(codes, 2)
    # Voice Live rates
    s.receive(json.dumps({"type": "session.updated", "session": {"output_audio_format": "pcm16_16000hz", "input_audio_format": "pcm16", "input_audio_sampling_rate": 16000}}))
    assert s.output_format.rate == 16000 and s.input_format.rate == 16000
    ev = s.receive(_delta("r", "j", bytes(640)))
    assert ev.pcm is ev.payload and s.received_ms("j") == 20
    with pytest.raises(ProtocolError) as info:
        s.receive(_delta("r", "j", bytes(3)))  # half a sample
    assert info.value.field == "delta" and s.received_ms("j") == 20
    # odd names: no rate, no crash
    for odd in ("pcm16_\u00b2hz", "pcm16_0hz", "pcm16_99999999999999999999hz", "pcm16_hz"):
        s.receive(json.dumps({"type": "session.updated", "session": {"output_audio_format": odd}}))
        assert s.output_format.rate is None and s.received_ms("j") == 0
    # an unknown format passes audio through
    s.receive(json.dumps({"type": "session.updated", "session": {"output_audio_format": "opus"}}))
    assert s.receive(_delta("r", "i", b"\x01\x02\x03")).pcm == b"\x01\x02\x03"
    with pytest.raises(ProtocolError) as info:
        s.receive(json.dumps({"type": "session.updated", "session": {"output_audio_format": 5}}))
    assert info.value.field == "session.output_audio_format" and s.output_format.name == "opus"


def _started(s: rt.RealtimeSession, response_id: str) -> None:
    s.receive(json.dumps({"type": "response.created", "response": {"id": response_id, "status": "in_progress"}}))


def test_barge_in_sequence() -> None:
    s = rt.RealtimeSession()
    s.receive(json.dumps(EXAMPLES["session.created"]))  # server_vad without interrupt_response
    assert not s.auto_interrupt
    _started(s, "resp_1")
    for _ in range(3):
        assert isinstance(s.receive(_delta("resp_1", "item_1", bytes(4800))), rt.AudioDelta)  # 100 ms each
    assert s.received_ms("item_1") == 300
    speech = s.receive(json.dumps(EXAMPLES["input_audio_buffer.speech_started"]))
    assert isinstance(speech, rt.SpeechStarted)
    messages = [json.loads(m) for m in s.barge_in("item_1", 180)]
    assert messages == [
        {"type": "response.cancel", "response_id": "resp_1"},
        {"type": "conversation.item.truncate", "item_id": "item_1", "content_index": 0, "audio_end_ms": 180},
    ]
    late = s.receive(_delta("resp_1", "item_1", bytes(4800)))
    assert late == rt.DroppedAudioDelta("response.audio.delta", "ev", "resp_1", "item_1", 4800)
    assert s.received_ms("item_1") == 300  # dropped audio is not counted
    late_ga = s.receive(_delta("resp_1", "item_1", bytes(10), ga=True))
    assert isinstance(late_ga, rt.DroppedAudioDelta) and late_ga.type == "response.output_audio.delta"
    done = s.receive(json.dumps({"type": "response.done", "response": {"id": "resp_1", "status": "cancelled"}}))
    assert done.status == "cancelled" and s.response_id is None
    _started(s, "resp_2")
    assert isinstance(s.receive(_delta("resp_2", "item_2", bytes(4800))), rt.AudioDelta)
    # played more than received: clamped to what the item holds
    assert json.loads(s.barge_in("item_2", 5000)[-1])["audio_end_ms"] == 100


def test_barge_in_with_server_auto_interrupt_or_no_active_response() -> None:
    s = rt.RealtimeSession()
    s.receive(json.dumps({"type": "session.updated", "session": {"turn_detection": {"type": "server_vad", "interrupt_response": True}}}))
    assert s.auto_interrupt
    _started(s, "r1")
    s.receive(_delta("r1", "i1", bytes(480)))
    assert [json.loads(m)["type"] for m in s.barge_in("i1", 5)] == ["conversation.item.truncate"]
    assert isinstance(s.receive(_delta("r1", "i1", bytes(480))), rt.DroppedAudioDelta)
    # the response finished arriving but is still playing: nothing to cancel
    s2 = rt.RealtimeSession(auto_interrupt=False)
    _started(s2, "r2")
    s2.receive(_delta("r2", "i2", bytes(4800)))
    s2.receive(json.dumps({"type": "response.done", "response": {"id": "r2", "status": "completed"}}))
    assert [json.loads(m) for m in s2.barge_in("i2", 40)] == [
        {"type": "conversation.item.truncate", "item_id": "i2", "content_index": 0, "audio_end_ms": 40}]
    # nothing played: cancel only
    s3 = rt.RealtimeSession()
    _started(s3, "r3")
    assert [json.loads(m) for m in s3.barge_in(None, 0)] == [{"type": "response.cancel", "response_id": "r3"}]
    assert s3.is_cancelled("r3") and s3.cancelled == ("r3",)
    s2.add_item_audio("i2", 4800)
    s2.add_item_audio("unknown", 4800)
    assert s2.received_ms("i2") == 200
    # an item we never received audio for truncates at 0
    assert json.loads(rt.RealtimeSession().barge_in("other", 100)[0])["audio_end_ms"] == 0
    with pytest.raises(ValueError):
        s3.barge_in("i", -1)
    # explicit setting beats the server's
    s4 = rt.RealtimeSession(auto_interrupt=True)
    _started(s4, "r4")
    assert s4.barge_in(None, 0) == []


def test_barge_in_with_server_auto_truncate() -> None:
    """Voice Live's turn_detection.auto_truncate: the server truncates the item itself, so
    barge_in cancels (unless the server interrupts too) but sends no truncate."""
    s = rt.RealtimeSession()
    s.receive(json.dumps({"type": "session.updated", "session": {"turn_detection": {"type": "server_vad", "auto_truncate": True}}}))
    assert s.auto_truncate and not s.auto_interrupt
    _started(s, "r1")
    s.receive(_delta("r1", "i1", bytes(4800)))
    assert [json.loads(m) for m in s.barge_in("i1", 50)] == [{"type": "response.cancel", "response_id": "r1"}]
    assert isinstance(s.receive(_delta("r1", "i1", bytes(480))), rt.DroppedAudioDelta)
    # a session.updated without turn detection keeps it; turn_detection null ends it
    s.receive(json.dumps({"type": "session.updated", "session": {"voice": "alloy"}}))
    assert s.auto_truncate
    s.receive(json.dumps({"type": "session.updated", "session": {"turn_detection": None}}))
    assert not s.auto_truncate
    # explicit settings beat the server's, both ways
    on = rt.RealtimeSession(auto_truncate=True)
    on.receive(_delta("r2", "i2", bytes(4800)))
    assert on.barge_in("i2", 10) == []
    off = rt.RealtimeSession(auto_truncate=False)
    off.receive(json.dumps({"type": "session.updated", "session": {"turn_detection": {"type": "server_vad", "auto_truncate": True}}}))
    assert [json.loads(m)["type"] for m in off.barge_in("i3", 10)] == ["conversation.item.truncate"]
    # the transcoder hands both settings to its session
    t = AcsRealtimeTranscoder(16000, 24000, auto_interrupt=True, auto_truncate=True)
    assert t.realtime.auto_interrupt and t.realtime.auto_truncate


def test_g711_item_durations() -> None:
    s = rt.RealtimeSession()
    s.receive(json.dumps({"type": "session.created", "session": {"output_audio_format": "g711_ulaw"}}))
    s.receive(_delta("r", "i", bytes(800)))
    assert s.received_ms("i") == 100


def test_builders_make_the_documented_client_events() -> None:
    pcm = bytes(range(20))
    b64 = base64.b64encode(pcm).decode()
    assert json.loads(rt.append(pcm)) == {"type": "input_audio_buffer.append", "audio": b64}
    assert json.loads(rt.append(pcm, event_id="e1")) == {"type": "input_audio_buffer.append", "event_id": "e1", "audio": b64}
    assert json.loads(rt.commit()) == {"type": "input_audio_buffer.commit"}
    assert json.loads(rt.clear(event_id="x")) == {"type": "input_audio_buffer.clear", "event_id": "x"}
    assert json.loads(rt.response_create()) == {"type": "response.create"}
    assert json.loads(rt.response_create(modalities=["audio"], instructions="hi")) == {
        "type": "response.create", "response": {"modalities": ["audio"], "instructions": "hi"}}
    assert json.loads(rt.response_cancel()) == {"type": "response.cancel"}
    assert json.loads(rt.response_cancel("r1")) == {"type": "response.cancel", "response_id": "r1"}
    assert json.loads(rt.truncate("i", 1500)) == {"type": "conversation.item.truncate", "item_id": "i", "content_index": 0, "audio_end_ms": 1500}
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError):
            rt.truncate("i", bad)  # type: ignore[arg-type]
    session = {
        "input_audio_format": "pcm16", "input_audio_sampling_rate": 16000, "output_audio_format": "pcm16_16000hz",
        "turn_detection": {"type": "azure_semantic_vad", "threshold": 0.3, "prefix_padding_ms": 200,
                           "silence_duration_ms": 200, "create_response": True, "interrupt_response": True, "auto_truncate": True},
        "input_audio_noise_reduction": {"type": "azure_deep_noise_suppression"},
        "input_audio_echo_cancellation": {"type": "server_echo_cancellation"},
    }
    assert json.loads(rt.session_update(**session)) == {"type": "session.update", "session": session}
    assert json.loads(rt.item_create({"type": "message"}, previous_item_id="p")) == {"type": "conversation.item.create", "previous_item_id": "p", "item": {"type": "message"}}
    assert json.loads(rt.item_delete("i")) == {"type": "conversation.item.delete", "item_id": "i"}
    assert json.loads(rt.item_retrieve("i")) == {"type": "conversation.item.retrieve", "item_id": "i"}
    assert json.loads(rt.event("input_audio.turn.start", turn_id="t")) == {"type": "input_audio.turn.start", "turn_id": "t"}


@given(st.binary(max_size=3000).map(lambda b: b[: len(b) // 2 * 2]))
def test_round_trip_audio(pcm: bytes) -> None:
    # append -> the service echoes audio back as a delta -> parse -> equal
    appended = json.loads(rt.append(pcm))["audio"]
    delta = json.dumps({"type": "response.audio.delta", "response_id": "r", "item_id": "i", "output_index": 0, "content_index": 0, "delta": appended})
    assert rt.RealtimeSession().receive(delta).pcm == pcm


@pytest.mark.parametrize(
    "msg, field",
    [
        ({"type": 5}, "type"),
        ({}, "type"),
        ({"type": "response.audio.delta", "item_id": "i", "delta": ""}, "response_id"),
        ({"type": "response.audio.delta", "response_id": "r", "item_id": "i", "delta": "***"}, "delta"),
        ({"type": "response.audio.delta", "response_id": "r", "item_id": "i", "delta": "", "content_index": "0"}, "content_index"),
        ({"type": "response.audio.delta", "response_id": "r", "item_id": "i", "delta": "", "content_index": 0.0}, "content_index"),
        ({"type": "error"}, "error"),
        ({"type": "error", "error": {"type": "x"}}, "error.message"),
        ({"type": "input_audio_buffer.speech_started", "item_id": "i"}, "audio_start_ms"),
        ({"type": "rate_limits.updated", "rate_limits": {}}, "rate_limits"),
        ({"type": "session.created", "session": {"turn_detection": 5}}, "session.turn_detection"),
        ({"type": "session.created", "session": {"audio": {"output": {"format": {"type": 5, "rate": 24000}}}}}, "session.audio.output.format.type"),
        ({"type": "session.created", "session": {"audio": {"output": {"format": {"rate": 1}}}}}, "session.audio.output.format.rate"),
        ({"type": "response.created", "response": []}, "response"),
        ({"type": "session.created", "session": {"input_audio_sampling_rate": 0}}, "session.input_audio_sampling_rate"),
        ({"type": "session.created", "session": {"audio": {"output": {"format": {"type": "audio/pcm", "rate": -1}}}}}, "session.audio.output.format.rate"),
        ({"type": "response.text.delta", "response_id": "r", "item_id": "i", "delta": None}, "delta"),
    ],
)
def test_malformed_events_name_the_field(msg: dict, field: str) -> None:
    s = rt.RealtimeSession()
    _started(s, "r")
    before = (s.response_id, s.output_format, s.auto_interrupt, dict(s._items))
    for fast in (True, False):
        s._fast = fast
        with pytest.raises(ProtocolError) as info:
            s.receive(json.dumps(msg))
        assert info.value.field == field, str(info.value)
    assert (s.response_id, s.output_format, s.auto_interrupt, dict(s._items)) == before


def test_size_limit_and_non_json() -> None:
    s = rt.RealtimeSession(max_message_size=100)
    with pytest.raises(ProtocolError):
        s.receive(_delta("r", "i", bytes(300)))
    for bad in ("", "{", "[]", "null", '{"type":"a","type":"b"}', b"\xff\xfe", '{"type": Infinity}'):
        with pytest.raises(ProtocolError):
            s.receive(bad)


# ---------------------------------------------------------------- fast == general


def _outcome(s: rt.RealtimeSession, text: str | bytes):
    try:
        ev = s.receive(text)
        return ("ok", ev, {k: v.audio_bytes for k, v in s._items.items()})
    except ProtocolError as exc:
        return ("error", str(exc), exc.field)


@st.composite
def deltas(draw: st.DrawFn) -> dict:
    msg: dict = {
        "type": draw(st.sampled_from(["response.audio.delta", "response.output_audio.delta", "response.audio.done"])),
        "response_id": draw(st.sampled_from(["resp_1", "resp_2", "r/3"])),
        "item_id": draw(st.sampled_from(["item_1", "i\u00e9"])),
        "delta": base64.b64encode(draw(st.binary(max_size=100))).decode(),
    }
    for key, strat in [("event_id", st.sampled_from(["e1", None, 5])), ("output_index", st.sampled_from([0, 1, -1, 10**20, "0", 1.0])),
                       ("content_index", st.sampled_from([0, None, True]))]:
        if draw(st.booleans()):
            msg[key] = draw(strat)
    mutation = draw(st.integers(0, 10))
    if mutation == 1:
        msg["delta"] = draw(st.sampled_from(["A", "A=A=", 7]))
    elif mutation == 2:
        del msg["response_id"]
    elif mutation == 3:
        msg["extra"] = {"a": 1}
    elif mutation == 4:
        msg["item_id"] = jsontext.Dup("a", "b")
    return msg


@settings(max_examples=300)
@given(deltas(), st.randoms(use_true_random=False), st.booleans(), st.sampled_from(["pcm16", "g711_ulaw", "g711_alaw"]))
def test_fast_and_general_paths_agree(msg: dict, rng: random.Random, vary: bool, fmt: str) -> None:
    text = jsontext.dumps(msg, rng, vary=vary)
    sessions = []
    for fast in (True, False):
        s = rt.RealtimeSession()
        s.receive(json.dumps({"type": "session.created", "session": {"output_audio_format": fmt}}))
        _started(s, "resp_1")
        s.barge_in(None, 0)  # resp_1 is now cancelled
        s._fast = fast
        sessions.append(s)
    assert _outcome(sessions[0], text) == _outcome(sessions[1], text)
    assert _outcome(sessions[0], text.encode()) == _outcome(sessions[1], text.encode())


@given(st.one_of(st.text(max_size=200), st.binary(max_size=200),
                 st.builds(lambda t, k: json.dumps({"type": t, **k}), st.sampled_from(sorted(rt.KNOWN_TYPES)),
                           st.dictionaries(st.sampled_from(["item_id", "response_id", "delta", "session", "response", "error", "item", "part",
                                                            "audio_start_ms", "output_index", "call_id", "arguments", "rate_limits"]),
                                           st.one_of(st.none(), st.integers(), st.text(max_size=5), st.just({}), st.just([])), max_size=8))))
def test_fuzz_never_crashes(data: str | bytes) -> None:
    s = rt.RealtimeSession()
    state = copy.deepcopy((s.response_id, s.output_format, s._items))
    try:
        s.receive(data)
    except ProtocolError:
        assert copy.deepcopy((s.response_id, s.output_format, s._items)) == state


@given(st.fixed_dictionaries({}, optional={
    "output_audio_format": st.one_of(st.text(max_size=12), st.from_regex(r"pcm16_[0-9\u00b2\u0663]{0,8}hz", fullmatch=True), st.integers()),
    "input_audio_format": st.one_of(st.text(max_size=12), st.none()),
    "input_audio_sampling_rate": st.one_of(st.integers(), st.floats(), st.text(max_size=3)),
    "turn_detection": st.one_of(st.none(), st.integers(), st.fixed_dictionaries({}, optional={"interrupt_response": st.one_of(st.booleans(), st.integers())})),
    "audio": st.one_of(st.integers(), st.fixed_dictionaries({}, optional={
        "input": st.fixed_dictionaries({}, optional={"format": st.one_of(st.text(max_size=8), st.fixed_dictionaries({"type": st.one_of(st.text(max_size=10), st.sampled_from(["audio/pcm", "audio/pcmu"]))}, optional={"rate": st.one_of(st.integers(), st.text(max_size=3))}))}),
        "output": st.one_of(st.integers(), st.fixed_dictionaries({}, optional={"format": st.fixed_dictionaries({"type": st.sampled_from(["audio/pcm", "audio/pcma", "x"])}, optional={"rate": st.integers()})}))})),
}))
def test_fuzz_session_objects(session: dict) -> None:
    s = rt.RealtimeSession()
    before = (s.input_format, s.output_format, s.auto_interrupt)
    try:
        s.receive(json.dumps({"type": "session.updated", "session": session}))
    except ProtocolError:
        assert (s.input_format, s.output_format, s.auto_interrupt) == before
        return
    for fmt in (s.input_format, s.output_format):
        assert fmt.rate is None or 8000 <= fmt.rate <= 192000
    s.receive(_delta("r", "i", bytes(2)))
    assert s.received_ms("i") >= 0


# ---------------------------------------------------------------- the vendors' SDK models as oracles
# What the OpenAI SDK (beta and GA models) and the Azure Voice Live SDK mark optional, the session
# must accept absent: each message below is built or validated by the vendor's own model.

import typing  # noqa: E402

from azure.ai.voicelive import models as vl  # noqa: E402
from openai.types.beta.realtime import realtime_server_event as openai_beta  # noqa: E402
from openai.types.realtime import realtime_server_event as openai_ga  # noqa: E402


def _union_members(union: object) -> list[type]:
    """The classes of a (possibly Annotated, possibly nested) union of pydantic models."""
    out: list[type] = []
    for arg in typing.get_args(union):
        if isinstance(arg, type):
            out.append(arg)
        else:
            out.extend(_union_members(arg))
    return out


def _openai_models(module: typing.Any) -> dict[str, type]:
    models = {}
    for cls in _union_members(module.RealtimeServerEvent):
        (name,) = typing.get_args(cls.model_fields["type"].annotation)
        models[name] = cls
    return models


def _vl_optional(annotation: object) -> bool:
    return type(None) in typing.get_args(annotation) or "Optional" in str(annotation)


def _vl_fields(cls: type) -> dict[str, bool]:
    """field -> required, from the Voice Live model's annotations."""
    ann: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        ann.update(getattr(klass, "__annotations__", {}))
    return {k: not _vl_optional(v) for k, v in ann.items() if not k.startswith("_") and k != "type"}


SDKS: dict[str, dict[str, tuple[type, dict[str, bool]]]] = {
    "openai-beta": {n: (c, {k: f.is_required() for k, f in c.model_fields.items() if k != "type"})
                    for n, c in _openai_models(openai_beta).items()},
    "openai-ga": {n: (c, {k: f.is_required() for k, f in c.model_fields.items() if k != "type"})
                  for n, c in _openai_models(openai_ga).items()},
    "voicelive": {str(n): (c, _vl_fields(c)) for n, c in vl.ServerEvent.__mapping__.items()},
}
# A value of the documented shape for each field name, valid for every SDK's model.
SAMPLE: dict[str, object] = {
    "event_id": "event_1", "item_id": "item_1", "response_id": "resp_1", "previous_item_id": "item_0",
    "output_index": 0, "content_index": 0, "audio_start_ms": 100, "audio_end_ms": 200, "call_id": "call_1",
    "delta": "AAECAwQF", "transcript": "Hi.", "text": "Hi.", "arguments": "{}", "name": "f",
    "item": {"id": "item_1", "type": "message", "role": "assistant", "content": []},
    "part": {"type": "text", "text": "Hi."}, "response": {"id": "resp_1", "status": "in_progress"},
    "session": {"type": "realtime", "id": "sess_1"}, "conversation": {"id": "conv_1"},
    "error": {"type": "invalid_request_error", "message": "bad"}, "warning": {"message": "slow"},
    "rate_limits": [{"name": "requests", "limit": 10, "remaining": 9, "reset_seconds": 1.0}],
    "usage": {"type": "duration", "seconds": 1.0},
    "logprobs": [{"token": "Hi", "bytes": [72, 105], "logprob": -0.25}],
    "languages": [{"code": "en"}], "phrases": [], "id": "seg_1", "speaker": "A", "start": 0.0, "end": 1.0,
    "event": "5", "received_at": 1, "frames": [[0.0]], "frame_index": 0, "audio_offset_ms": 0,
    "audio_duration_ms": 10, "timestamp_type": "word", "viseme_id": 1, "annotation_index": 0,
    "annotation": {}, "sequence_number": 0, "obfuscation": "x", "codec": "h264", "server_sdp": "v=0",
    "turn_id": "t1",
}


# Where a type's model wants more than the common sample.
OVERRIDE: dict[tuple[str, str], object] = {
    ("transcription_session.updated", "session"): {"client_secret": {"value": "test", "expires_at": 0}},
}


def _sample(type_: str, field: str) -> object:
    return copy.deepcopy(OVERRIDE.get((type_, field), SAMPLE[field]))


def _build(sdk: str, type_: str, fields: typing.Iterable[str]) -> str:
    """The server event ``type_`` holding ``fields`` (sample values), as the SDK writes it."""
    cls, _ = SDKS[sdk][type_]
    values = {f: _sample(type_, f) for f in fields}
    if sdk == "voicelive":
        return json.dumps(cls(values).as_dict())
    # The OpenAI models validate what they are given: a message they refuse is not the vendor's.
    return cls.model_validate({"type": type_, **values}).model_dump_json(exclude_none=True)


SDK_CASES = sorted((sdk, t) for sdk, models in SDKS.items() for t in models)


def test_the_sdks_are_loaded() -> None:
    """The oracle tables are not empty, and the SDKs mark optional what issue 11 says they do."""
    for sdk in SDKS:
        assert len(SDKS[sdk]) >= 25, sdk
    delta = "conversation.item.input_audio_transcription.delta"
    for sdk in SDKS:
        assert SDKS[sdk][delta][1]["delta"] is False and SDKS[sdk][delta][1]["item_id"] is True
    for t in ("conversation.item.created", "conversation.item.retrieved", "response.output_item.added",
              "response.output_item.done"):
        assert SDKS["voicelive"][t][1]["item"] is False


@pytest.mark.parametrize("sdk, type_", SDK_CASES)
def test_sdk_events_with_only_required_fields_are_read(sdk: str, type_: str) -> None:
    """Every server event of every SDK, with only the fields its model requires, is read
    without error (an event type this module does not know is an Unknown event)."""
    required = [f for f, req in SDKS[sdk][type_][1].items() if req]
    text = _build(sdk, type_, required)
    ev = rt.RealtimeSession().receive(text)
    msg = json.loads(text)
    if type_ in rt.KNOWN_TYPES:
        assert not isinstance(ev, rt.Unknown) and ev.type == type_
        names = {f.name for f in dataclasses.fields(ev)} - {"type", "event_id", "payload", "pcm"}
        for field in names & {"item_id", "response_id", "item", "previous_item_id", "content_index", "delta",
                              "session", "response", "transcript", "text", "arguments", "call_id"}:
            if not (field == "delta" and isinstance(ev, rt.AudioDelta)):
                assert getattr(ev, field) == msg.get(field), field
    else:
        assert ev == rt.Unknown(type_, msg)


@pytest.mark.parametrize("sdk", sorted(SDKS))
def test_transcription_delta_without_delta(sdk: str) -> None:
    """Issue 11: a transcription delta that carries only logprobs (``delta`` is optional in
    every SDK) was refused; it is an InputTranscriptionDelta with delta None."""
    text = _build(sdk, "conversation.item.input_audio_transcription.delta", ["event_id", "item_id", "logprobs"])
    assert "delta\"" not in text.replace("transcription.delta", "")
    ev = rt.RealtimeSession().receive(text)
    assert isinstance(ev, rt.InputTranscriptionDelta)
    assert (ev.item_id, ev.content_index, ev.delta) == ("item_1", None, None)
    assert ev.logprobs == SAMPLE["logprobs"]
    full = rt.RealtimeSession().receive(_build(sdk, "conversation.item.input_audio_transcription.delta",
                                                ["event_id", "item_id", "content_index", "delta"]))
    assert (full.delta, full.content_index, full.logprobs) == (SAMPLE["delta"], 0, None)


@pytest.mark.parametrize("type_, cls", [
    ("conversation.item.created", rt.ConversationItemCreated),
    ("conversation.item.retrieved", rt.ConversationItemRetrieved),
    ("response.output_item.added", rt.OutputItemAdded),
    ("response.output_item.done", rt.OutputItemDone),
])
def test_voice_live_item_events_without_item(type_: str, cls: type) -> None:
    """Issue 11: Voice Live's models make ``item`` optional on item events; such an event was
    refused, and is now read with item None."""
    required = [f for f, req in SDKS["voicelive"][type_][1].items() if req]
    text = _build("voicelive", type_, ["event_id", *required])
    assert '"item"' not in text
    ev = rt.RealtimeSession().receive(text)
    assert type(ev) is cls and ev.item is None and ev.event_id == "event_1"


def test_ga_session_format_without_type() -> None:
    """Issue 11: the GA models make the format's ``type`` optional (AudioPCM: audio/pcm, 24 kHz);
    a session.updated whose format had none was refused. It is now PCM16 at the stated or
    default rate, replacing the format in force."""
    updated = _openai_models(openai_ga)["session.updated"]
    s = rt.RealtimeSession()
    s.receive(json.dumps({"type": "session.updated", "session": {"audio": {"output": {"format": {"type": "audio/pcmu"}}}}}))
    assert s.output_format.codec == "ulaw"
    for fmt in ({"rate": 24000}, {}):
        event = updated.model_validate({"type": "session.updated", "event_id": "e", "session": {
            "type": "realtime", "audio": {"input": {"format": fmt}, "output": {"format": fmt}}}})
        text = event.model_dump_json(exclude_none=True)
        assert '"audio/pcm' not in text  # the SDK writes no type
        ev = s.receive(text)
        assert isinstance(ev, rt.SessionUpdated)
        assert s.input_format == s.output_format == rt.AudioFormat("audio/pcm", 24000, None)
        pcm = bytes(range(48))
        assert s.receive(_delta("r", "i", pcm, ga=True)).pcm == pcm  # PCM16 again, not mu-law
        s.receive(json.dumps({"type": "session.updated", "session": {"audio": {"output": {"format": {"type": "audio/pcmu"}}}}}))


@st.composite
def sdk_events(draw: st.DrawFn) -> tuple[str, str, dict, bool]:
    """An SDK event with a random subset of its optional fields (values of the documented
    shape); sometimes also a required field dropped or a field given a value of another JSON type.
    Returns (sdk, type, message, whether the SDK's model says it is complete and well-typed)."""
    sdk, type_ = draw(st.sampled_from(SDK_CASES))
    fields = SDKS[sdk][type_][1]
    chosen = [f for f, req in fields.items() if req or draw(st.booleans())]
    msg = json.loads(_build(sdk, type_, chosen))
    valid = True
    mutation = draw(st.integers(0, 3))
    keys = [k for k in msg if k != "type"]
    if mutation == 1 and keys:
        del msg[draw(st.sampled_from(keys))]
        valid = False
    elif mutation == 2 and keys:
        msg[draw(st.sampled_from(keys))] = draw(st.one_of(st.integers(), st.text(max_size=4), st.just([]), st.just({}),
                                                          st.booleans(), st.floats(allow_nan=False)))
        valid = False
    return sdk, type_, msg, valid


@settings(max_examples=400)
@given(sdk_events())
def test_sdk_events_with_optional_fields_missing(case: tuple[str, str, dict, bool]) -> None:
    """Item 5 of issue 11: any SDK event with any of its optional fields missing is read; with a
    required field missing or of another type, only a ProtocolError may come, and the session
    is then unchanged."""
    _, type_, msg, valid = case
    s = rt.RealtimeSession()
    before = copy.deepcopy((s.response_id, s.input_format, s.output_format, s._items, s.auto_interrupt))
    try:
        ev = s.receive(json.dumps(msg))
    except ProtocolError as exc:
        assert not valid, f"{type_}: {exc}"
        assert copy.deepcopy((s.response_id, s.input_format, s.output_format, s._items, s.auto_interrupt)) == before
        return
    assert (ev.type == type_) if type_ in rt.KNOWN_TYPES else ev == rt.Unknown(type_, msg)


# ---------------------------------------------------------------- receive's return type

EVENT_CLASSES = set(typing.get_args(rt.Event))


def test_event_names_every_class_receive_returns() -> None:
    """``Event`` (receive's return type) is exactly the public event classes: each
    ServerEvent subclass the module exports, and Unknown; no private base, no ServerEvent."""
    public = [getattr(rt, name) for name in rt.__all__]
    classes = {c for c in public if isinstance(c, type) and issubclass(c, rt.ServerEvent)
               and c is not rt.ServerEvent}
    assert EVENT_CLASSES == classes | {rt.Unknown}
    assert typing.get_type_hints(rt.RealtimeSession.receive)["return"] == rt.Event


@pytest.mark.parametrize("sdk, type_", SDK_CASES)
def test_every_sdk_event_comes_back_as_an_event_class(sdk: str, type_: str) -> None:
    """What receive returns for every server event of the vendors' SDKs, and for audio and
    dropped deltas, is an instance of a class of the union (checked, not assumed)."""
    fields = list(SDKS[sdk][type_][1])
    ev = rt.RealtimeSession().receive(_build(sdk, type_, fields))
    assert type(ev) in EVENT_CLASSES, (type_, type(ev))


def test_audio_and_dropped_deltas_are_event_classes() -> None:
    s = rt.RealtimeSession()
    s.receive('{"type":"response.created","response":{"id":"r"}}')
    ev = s.receive(_delta("r", "i", bytes(4)))
    assert type(ev) is rt.AudioDelta and type(ev) in EVENT_CLASSES
    s.barge_in("i", 0)
    ev = s.receive(_delta("r", "i", bytes(4)))
    assert type(ev) is rt.DroppedAudioDelta and type(ev) in EVENT_CLASSES
