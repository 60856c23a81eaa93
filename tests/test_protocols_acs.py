"""ACS media streaming: the documented payloads, edge cases, fast path == general path, fuzz."""

from __future__ import annotations

import base64
import copy
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audiocore import ProtocolError
from audiocore.protocols import acs
from audiocore.protocols.bridge import AcsRealtimeTranscoder
from reference import jsontext

PARTICIPANT = "8:acs:3d20e1de-0f28-41c5-84c0-59ed8f2d2e7a_00000018-b3b8-0d11-9e46-0f3a0d00b4d8"

# The examples of the ACS audio streaming documentation (data shortened to one real frame).
METADATA = """{
  "kind": "AudioMetadata",
  "audioMetadata": {
    "subscriptionId": "89e8cb59-b991-48b0-b154-1db84f16a077",
    "encoding": "PCM",
    "sampleRate": 16000,
    "channels": 1,
    "length": 640
  }
}"""
PCM = bytes(random.Random(1).randbytes(640))
AUDIO = {
    "kind": "AudioData",
    "audioData": {
        "timestamp": "2022-08-23T11:48:05Z",
        "participantRawID": PARTICIPANT,
        "data": base64.b64encode(PCM).decode(),
        "silent": False,
    },
}
DTMF = '{"kind": "DtmfData", "dtmfData": {"data": "5", "timestamp": "2024-01-01T00:00:00Z", "participantRawID": "8:acs:x"}}'
TRANSCRIPTION_METADATA = """{
  "kind": "TranscriptionMetadata",
  "transcriptionMetadata": {
    "subscriptionId": "835be116-f750-48a4-a5a4-ab85e070e5b0",
    "locale": "en-us",
    "callConnectionId": "65c57654-f12c-4975-92a4-21668e61dd98",
    "correlationId": "65c57654-f12c-4975-92a4-21668e61dd98"
  }
}"""
TRANSCRIPTION_DATA = """{
  "kind": "TranscriptionData",
  "transcriptionData": {
    "text": "Testing transcription.",
    "format": "display",
    "confidence": 0.695223331451416,
    "offset": 2516998782481234400,
    "words": [
      {"text": "testing", "offset": 2516998782481234400},
      {"text": "transcription", "offset": 2516998782481234400}
    ],
    "participantRawID": "8:acs:91fe3a5e-2bd1-4c3e-9b1e-2a4c9b3d3a1f",
    "resultStatus": "Final"
  }
}"""


def session() -> acs.AcsSession:
    s = acs.AcsSession()
    s.receive(METADATA)
    return s


def test_documented_audio_metadata() -> None:
    s = acs.AcsSession()
    ev = s.receive(METADATA)
    assert ev == acs.AudioMetadata("89e8cb59-b991-48b0-b154-1db84f16a077", "PCM", 16000, 1, 640)
    assert s.metadata == ev and s.sample_rate == 16000 and s.frame_bytes == 640


@pytest.mark.parametrize("fast", [True, False])
def test_documented_audio_data(fast: bool) -> None:
    s = session()
    s._fast = fast
    for text in (json.dumps(AUDIO, indent=2), json.dumps(AUDIO, separators=(",", ":"))):
        ev = s.receive(text)
        assert ev == acs.AudioData(PCM, "2022-08-23T11:48:05Z", PARTICIPANT, False, None)
        assert ev.pcm == base64.b64decode(AUDIO["audioData"]["data"])  # type: ignore[index]
    assert s.participants[PARTICIPANT] == acs.ParticipantState(2, 0, "2022-08-23T11:48:05Z")


def test_the_fast_path_takes_the_compact_form() -> None:
    assert acs._AUDIO.scan(json.dumps(AUDIO)) is not None
    assert acs._AUDIO.scan(json.dumps(AUDIO).replace("participantRawID", "participantRawId")) is not None


def test_other_documented_kinds() -> None:
    s = acs.AcsSession()
    assert s.receive(DTMF) == acs.DtmfData("5", "2024-01-01T00:00:00Z", "8:acs:x")
    meta = s.receive(TRANSCRIPTION_METADATA)
    assert isinstance(meta, acs.TranscriptionMetadata)
    assert meta.locale == "en-us" and meta.call_connection_id == "65c57654-f12c-4975-92a4-21668e61dd98"
    data = s.receive(TRANSCRIPTION_DATA)
    assert isinstance(data, acs.TranscriptionData)
    assert data.text == "Testing transcription." and data.confidence == 0.695223331451416
    assert data.offset == 2516998782481234400 and data.is_final
    assert [w.text for w in data.words] == ["testing", "transcription"] and data.words[0].duration is None
    assert s.receive('{"kind":"MarkData","markData":{"id":"m1","status":"cancelled"}}') == acs.MarkData("m1", "cancelled")
    assert s.receive('{"kind":"MarkData","markData":{"id":"m2"}}') == acs.MarkData("m2", None)


def test_unknown_kinds_are_events_with_the_payload_as_sent() -> None:
    s = acs.AcsSession()
    assert s.receive('{"kind":"FutureThing","futureThing":{"A":1}}') == acs.Unknown("FutureThing", {"A": 1})
    assert s.receive('{"Kind":"Other"}') == acs.Unknown("Other", None)
    assert s.receive('{"kind":"audiodata","audioData":{}}') == acs.Unknown("audiodata", {})  # values are exact


def test_key_casing_is_tolerated() -> None:
    s = session()
    spelled = json.dumps(AUDIO).replace('"kind"', '"Kind"').replace("audioData", "AudioData")
    spelled = spelled.replace("participantRawID", "ParticipantRawId").replace('"data"', '"DATA"')
    assert s.receive(spelled).participant == PARTICIPANT
    meta = METADATA.replace("sampleRate", "SampleRate").replace("audioMetadata", "AUDIOMETADATA")
    assert acs.AcsSession().receive(meta).sample_rate == 16000


def test_optional_fields_may_be_absent_or_null() -> None:
    s = session()
    ev = s.receive(json.dumps({"kind": "AudioData", "audioData": {"data": AUDIO["audioData"]["data"]}}))  # type: ignore[index]
    assert ev == acs.AudioData(PCM, None, None, False, None)
    ev = s.receive(json.dumps({"kind": "AudioData", "audioData": {"data": AUDIO["audioData"]["data"], "timestamp": None, "silent": None, "mark": None}}))  # type: ignore[index]
    assert ev == acs.AudioData(PCM, None, None, False, None)
    assert s.participants[None].frames == 2
    ev = s.receive(json.dumps({"kind": "AudioData", "audioData": {"data": "", "silent": True, "mark": {"Id": "k"}}}))
    assert ev.mark == "k"
    meta = acs.AcsSession().receive('{"kind":"AudioMetadata","audioMetadata":{}}')
    assert meta == acs.AudioMetadata(None, "PCM", 16000, 1, 640)


# The mark shapes of PROTOCOLS.md sections 1 and 7: {"Id": str} (preview), {"sequence": ...} (an
# older .NET preview); then shapes nobody documents, which must cost nothing but the mark.
MARKS = [
    ({"Id": "m1"}, "m1", None),
    ({"id": "m1"}, "m1", None),
    ({"sequence": 7}, None, 7),
    ({"Sequence": "12"}, None, 12),
    ({"Id": "m2", "sequence": 3}, "m2", 3),
    ({}, None, None),
    ({"Id": 5}, None, None),
    ({"sequence": "seven"}, None, None),
    ({"sequence": 1.5, "label": "x"}, None, None),
    ({"name": "m", "extra": {"a": [1]}}, None, None),
    ("m1", None, None),
    (5, None, None),
    ([], None, None),
    (True, None, None),
]


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("mark, mark_id, sequence", MARKS)
def test_a_frame_is_never_refused_for_its_mark(mark: object, mark_id: str | None, sequence: int | None, fast: bool) -> None:
    """Issue 11: a frame whose mark was not {"Id": ...} was refused with its 20 ms of audio. The
    audio now always arrives; the mark's known parts are surfaced, the rest ignored."""
    s = session()
    s._fast = fast
    msg = copy.deepcopy(AUDIO)
    msg["audioData"]["mark"] = mark  # type: ignore[index]
    ev = s.receive(json.dumps(msg))
    assert ev == acs.AudioData(PCM, "2022-08-23T11:48:05Z", PARTICIPANT, False, mark_id, sequence)
    assert s.participants[PARTICIPANT].frames == 1
    # the bridge's transcoder carries the same frame's audio upstream, fast or not
    t = AcsRealtimeTranscoder(16000, 24000)
    t._fast = fast
    t.to_realtime(METADATA)
    out = t.to_realtime(json.dumps(msg))
    assert out is not None and json.loads(out)["type"] == "input_audio_buffer.append"
    assert len(base64.b64decode(json.loads(out)["audio"])) > 0 and t.events[-1:] == [t.acs.metadata]


def test_silent_frames_are_returned_never_dropped() -> None:
    s = session()
    zeros = s.receive(json.dumps({"kind": "AudioData", "audioData": {"data": base64.b64encode(bytes(640)).decode(), "silent": True}}))
    empty = s.receive('{"kind":"AudioData","audioData":{"data":"","silent":true}}')
    assert zeros == acs.AudioData(bytes(640), None, None, True, None)
    assert empty == acs.AudioData(b"", None, None, True, None)
    assert s.participants[None] == acs.ParticipantState(2, 2, None)
    with pytest.raises(ProtocolError) as info:  # empty but not silent: a wrong frame length
        s.receive('{"kind":"AudioData","audioData":{"data":"","silent":false}}')
    assert info.value.field == "audioData.data"


def test_frames_are_checked_against_the_metadata() -> None:
    s = acs.AcsSession()
    s.receive(METADATA.replace("16000", "24000").replace("640", "960"))
    assert s.frame_bytes == 960
    frame24 = json.dumps({"kind": "AudioData", "audioData": {"data": base64.b64encode(bytes(960)).decode()}})
    assert s.receive(frame24).pcm == bytes(960)
    before = copy.deepcopy(s.participants)
    with pytest.raises(ProtocolError) as info:
        s.receive(json.dumps(AUDIO))  # a 640-byte frame in a 24 kHz stream
    assert info.value.field == "audioData.data" and "960" in str(info.value)
    assert s.participants == before
    # metadata without length: 20 ms at the rate
    assert acs.AcsSession().receive('{"kind":"AudioMetadata","audioMetadata":{"sampleRate":24000}}').frame_bytes == 960


def test_audio_before_metadata() -> None:
    with pytest.raises(ProtocolError) as info:
        acs.AcsSession().receive(json.dumps(AUDIO))
    assert info.value.field == "audioData"
    s = acs.AcsSession(sample_rate=16000)
    assert s.receive(json.dumps(AUDIO)).pcm == PCM
    s.receive(METADATA.replace("16000", "24000").replace("640", "960"))  # the stream's word wins
    with pytest.raises(ProtocolError):
        s.receive(json.dumps(AUDIO))


@pytest.mark.parametrize(
    "body, field",
    [
        ('{"encoding":"OPUS"}', "audioMetadata.encoding"),
        ('{"sampleRate":16001}', "audioMetadata.sampleRate"),
        ('{"sampleRate":0}', "audioMetadata.sampleRate"),
        ('{"sampleRate":"16000"}', "audioMetadata.sampleRate"),
        ('{"sampleRate":16000.0}', "audioMetadata.sampleRate"),
        ('{"channels":0}', "audioMetadata.channels"),
        ('{"length":641}', "audioMetadata.length"),
        ('{"length":-640}', "audioMetadata.length"),
        ('{"subscriptionId":5}', "audioMetadata.subscriptionId"),
        ("[]", "audioMetadata"),
    ],
)
def test_bad_metadata(body: str, field: str) -> None:
    s = acs.AcsSession()
    with pytest.raises(ProtocolError) as info:
        s.receive('{"kind":"AudioMetadata","audioMetadata":' + body + "}")
    assert info.value.field == field
    assert s.metadata is None


@pytest.mark.parametrize(
    "text, field",
    [
        ("not json", None),
        ("[1, 2]", None),
        ('"AudioData"', None),
        ('{"kind": NaN}', None),
        ("{}", "kind"),
        ('{"kind": 5}', "kind"),
        ('{"kind": "AudioData"}', "audioData"),
        ('{"kind": "AudioData", "audioData": 5}', "audioData"),
        ('{"kind": "AudioData", "audioData": {}}', "audioData.data"),
        ('{"kind": "AudioData", "audioData": {"data": 5}}', "audioData.data"),
        ('{"kind": "AudioData", "audioData": {"data": "!!!!"}}', "audioData.data"),
        ('{"kind": "AudioData", "audioData": {"data": "AAA"}}', "audioData.data"),
        ('{"kind": "AudioData", "audioData": {"data": "", "silent": "yes"}}', "audioData.silent"),
        ('{"kind": "AudioData", "audioData": {"data": "", "participantRawID": 1}}', "audioData.participantRawID"),
        ('{"kind": "AudioData", "Kind": "AudioData", "audioData": {"data": ""}}', "kind"),
        ('{"kind": "DtmfData", "dtmfData": {}}', "dtmfData.data"),
        ('{"kind": "TranscriptionData", "transcriptionData": {"text": "a", "words": [1]}}', "transcriptionData.words[0]"),
        ('{"kind": "TranscriptionData", "transcriptionData": {"text": "a", "confidence": "high"}}', "transcriptionData.confidence"),
        ('{"kind": "MarkData", "markData": {"status": "x"}}', "markData.id"),
    ],
)
def test_malformed_messages_name_the_field(text: str, field: str | None) -> None:
    s = session()
    before = copy.deepcopy((s.metadata, s.participants))
    for fast in (True, False):
        s._fast = fast
        with pytest.raises(ProtocolError) as info:
            s.receive(text)
        assert info.value.field == field, str(info.value)
    assert (s.metadata, s.participants) == before


def test_message_size_limit() -> None:
    s = acs.AcsSession(sample_rate=16000, max_message_size=500)
    with pytest.raises(ProtocolError):
        s.receive(json.dumps(AUDIO))
    with pytest.raises(ProtocolError):
        s.receive(json.dumps(AUDIO).encode())
    assert not s.participants


def test_unmixed_participants_keep_their_own_state() -> None:
    s = acs.AcsSession(sample_rate=16000, max_participants=3)
    frame = base64.b64encode(bytes(640)).decode()
    for i, who in enumerate(["a", "b", "a", "c", "a", "d"]):
        s.receive(json.dumps({"kind": "AudioData", "audioData": {"data": frame, "participantRawID": who, "timestamp": f"t{i}", "silent": who == "b"}}))
    assert list(s.participants) == ["b", "c", "d"]  # 'a' was first seen longest ago
    assert s.participants["b"] == acs.ParticipantState(1, 1, "t1")
    assert s.participants["d"] == acs.ParticipantState(1, 0, "t5")
    quiet = acs.AcsSession(sample_rate=16000, max_participants=0)
    quiet.receive(json.dumps({"kind": "AudioData", "audioData": {"data": frame, "participantRawID": "a"}}))
    assert quiet.participants == {}


def test_outbound_messages_match_the_documented_shapes() -> None:
    pcm = bytes(range(10))
    text = acs.audio_message(pcm)
    assert text == '{"Kind":"AudioData","AudioData":{"Data":"' + base64.b64encode(pcm).decode() + '"},"StopAudio":null}'
    assert json.loads(text) == {"Kind": "AudioData", "AudioData": {"Data": base64.b64encode(pcm).decode()}, "StopAudio": None}
    assert json.loads(acs.stop_audio_message()) == {"Kind": "StopAudio", "AudioData": None, "StopAudio": {}}
    with pytest.raises(ValueError):
        acs.audio_message(b"\x01")


@given(st.binary(min_size=0, max_size=2000).map(lambda b: b[: len(b) // 2 * 2]))
def test_round_trip_build_then_parse(pcm: bytes) -> None:
    # ACS matches keys ignoring case, so our PascalCase outbound message reads back as AudioData.
    s = acs.AcsSession(sample_rate=16000)
    s.metadata = acs.AudioMetadata(None, "PCM", 16000, 1, len(pcm) or 2)
    if pcm:
        assert s.receive(acs.audio_message(pcm)).pcm == pcm


# ---------------------------------------------------------------- fast == general


def _outcome(s: acs.AcsSession, text: str):
    try:
        ev = s.receive(text)
        return ("ok", ev, copy.deepcopy(s.participants), s.metadata)
    except ProtocolError as exc:
        return ("error", str(exc), exc.field)


@st.composite
def audio_messages(draw: st.DrawFn) -> dict:
    n = draw(st.sampled_from([640, 640, 0, 320]))
    body: dict = {"data": base64.b64encode(draw(st.binary(min_size=n, max_size=n))).decode()}
    for key, strat in [
        ("timestamp", st.sampled_from(["2024-05-02T15:59:23.178Z", "t/1", "é"])),
        ("participantRawID", st.sampled_from([PARTICIPANT, "8:acs:a/b", "x"])),
        ("silent", st.booleans()),
        ("mark", st.sampled_from([{"Id": "m"}, {"id": "m"}, {}, None, 5, {"sequence": 3}, {"Sequence": "4"},
                                  {"sequence": -1}, {"sequence": "x"}, {"Id": 1, "x": []}, "m"])),
    ]:
        if draw(st.booleans()):
            body[key] = draw(strat)
    msg: dict = {"kind": draw(st.sampled_from(["AudioData", "AudioData", "Other"])), "audioData": body}
    mutation = draw(st.integers(0, 12))
    if mutation == 1:
        del body["data"]
    elif mutation == 2:
        body["data"] = draw(st.sampled_from(["AAA", "A===", "AA==AA==", 5, None, "AA\\u0041A"]))
    elif mutation == 3:
        body["extra"] = 1
    elif mutation == 4:
        msg["kind"] = jsontext.Dup("AudioData", "AudioData")
    elif mutation == 5:
        msg["audioData"] = draw(st.sampled_from([None, [], "x"]))
    elif mutation == 6:
        body["silent"] = draw(st.sampled_from(["true", 1, None]))
    return msg


@settings(max_examples=300)
@given(audio_messages(), st.randoms(use_true_random=False), st.booleans())
def test_fast_and_general_paths_agree(msg: dict, rng: random.Random, vary: bool) -> None:
    text = jsontext.dumps(msg, rng, vary=vary, casing=vary)
    fast, general = session(), session()
    general._fast = False
    assert _outcome(fast, text) == _outcome(general, text)
    assert _outcome(fast, text.encode()) == _outcome(general, text.encode())


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_fuzz_never_crashes(data: str | bytes) -> None:
    s = session()
    try:
        ev = s.receive(data)
    except ProtocolError:
        return
    assert isinstance(ev, (acs.AudioMetadata, acs.AudioData, acs.DtmfData, acs.TranscriptionMetadata,
                           acs.TranscriptionData, acs.MarkData, acs.Unknown))


@given(st.randoms(use_true_random=False), st.integers(0, 2000))
def test_fuzz_mutated_messages(rng: random.Random, pos: int) -> None:
    base = bytearray(json.dumps(AUDIO).encode())
    for _ in range(rng.randint(1, 4)):
        base[pos % len(base)] = rng.randrange(256)
        pos = rng.randrange(len(base))
    fast, general = session(), session()
    general._fast = False
    assert _outcome(fast, bytes(base)) == _outcome(general, bytes(base))  # type: ignore[arg-type]


def test_deep_nesting_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        session().receive('{"kind":' + "[" * 100000 + "]" * 100000 + "}")


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=8)


def _folded_twice(value: object) -> bool:
    if isinstance(value, dict):
        folded = {k.lower() if k.isascii() else k for k in value}  # ACS ignores ASCII case only
        return len(folded) < len(value) or any(_folded_twice(v) for v in value.values())
    return isinstance(value, list) and any(_folded_twice(v) for v in value)


@settings(max_examples=300)
@given(st.fixed_dictionaries({}, optional={
    "timestamp": st.sampled_from(["2022-08-23T11:48:05Z", None]),
    "participantRawID": st.sampled_from([PARTICIPANT, None]),
    "silent": st.sampled_from([False, None]),
    "mark": JSON | st.dictionaries(st.sampled_from(["Id", "id", "sequence", "Sequence", "status"]), JSON, max_size=3),
}), st.booleans())
def test_optional_fields_missing_or_any_mark_never_refuse_the_frame(optional: dict, fast: bool) -> None:
    """Item 5 of issue 11: a well-formed AudioData frame with any of its optional fields
    missing and any JSON value as its mark is read, its audio intact; the paths agree."""
    msg = {"kind": "AudioData", "audioData": {"data": AUDIO["audioData"]["data"], **optional}}  # type: ignore[index]
    s = session()
    s._fast = fast
    if _folded_twice(msg):  # a key twice in one object, ignoring case: refused as ambiguous JSON
        with pytest.raises(ProtocolError, match="appears twice"):
            s.receive(json.dumps(msg))
        return
    ev = s.receive(json.dumps(msg))
    assert isinstance(ev, acs.AudioData) and ev.pcm == PCM
    other = session()
    other._fast = not fast
    assert other.receive(json.dumps(msg)) == ev
