"""Twilio Media Streams and the Twilio-like variants (Telnyx, Plivo, Exotel), and Vonage."""

from __future__ import annotations

import audioop
import base64
import copy
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audiocore import ProtocolError
from audiocore.protocols import exotel, plivo, telnyx, twilio, vonage
from reference import jsontext

CODES = bytes(random.Random(3).randbytes(160))
PAYLOAD = base64.b64encode(CODES).decode()

# Twilio's documented messages.
CONNECTED = {"event": "connected", "protocol": "Call", "version": "1.0.0"}
START = {
    "event": "start", "sequenceNumber": "1",
    "start": {"accountSid": "ACXXXX", "streamSid": "MZXXXX", "callSid": "CAXXXX", "tracks": ["inbound", "outbound"],
              "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
              "customParameters": {"FirstName": "Jane", "LastName": "Doe"}},
    "streamSid": "MZXXXX",
}
MEDIA = {"event": "media", "sequenceNumber": "3", "media": {"track": "outbound", "chunk": "1", "timestamp": "5", "payload": PAYLOAD}, "streamSid": "MZXXXX"}
DTMF = {"event": "dtmf", "streamSid": "MZXXXX", "sequenceNumber": "5", "dtmf": {"track": "inbound_track", "digit": "1"}}
MARK = {"event": "mark", "sequenceNumber": "4", "streamSid": "MZXXXX", "mark": {"name": "my label"}}
STOP = {"event": "stop", "sequenceNumber": "5", "streamSid": "MZXXXX", "stop": {"accountSid": "ACXXXX", "callSid": "CAXXXX"}}


def started() -> twilio.TwilioSession:
    s = twilio.TwilioSession()
    s.receive(json.dumps(CONNECTED))
    s.receive(json.dumps(START))
    return s


def test_documented_twilio_stream() -> None:
    s = twilio.TwilioSession()
    assert s.receive(json.dumps(CONNECTED)) == twilio.Connected("Call", "1.0.0")
    start = s.receive(json.dumps(START))
    assert start == twilio.Start("MZXXXX", 1, "CAXXXX", "ACXXXX", ("inbound", "outbound"), "audio/x-mulaw", 8000, 1,
                                 {"FirstName": "Jane", "LastName": "Doe"}, START["start"])
    assert s.stream_id == "MZXXXX" and s.codec == "ulaw"
    media = s.receive(json.dumps(MEDIA))
    assert media == twilio.Media("MZXXXX", 3, "outbound", 1, 5, audioop.ulaw2lin(CODES, 2), CODES)
    assert s.receive(json.dumps(DTMF)) == twilio.Dtmf("MZXXXX", 5, "inbound_track", "1")
    assert s.receive(json.dumps(MARK)) == twilio.Mark("MZXXXX", 4, "my label")
    assert s.receive(json.dumps(STOP)) == twilio.Stop("MZXXXX", 5, STOP["stop"])
    assert s.receive('{"event":"future","x":1}') == twilio.Unknown("future", {"event": "future", "x": 1})


def test_media_fast_path_takes_the_documented_form() -> None:
    assert twilio._schemas(twilio.TWILIO)["ulaw"].scan(json.dumps(MEDIA)) is not None


def test_twilio_builders() -> None:
    pcm = audioop.ulaw2lin(CODES, 2)
    msg = json.loads(twilio.media_message("MZ1", pcm))
    assert msg == {"event": "media", "streamSid": "MZ1", "media": {"payload": base64.b64encode(audioop.lin2ulaw(pcm, 2)).decode()}}
    # G.711 codes survive a decode/encode, but for mu-law's two zeros (0x7f reads back as 0xff)
    assert base64.b64decode(msg["media"]["payload"]) == CODES.replace(b"\x7f", b"\xff")
    assert json.loads(twilio.mark_message("MZ1", "a\"b")) == {"event": "mark", "streamSid": "MZ1", "mark": {"name": 'a"b'}}
    assert json.loads(twilio.clear_message("MZ1")) == {"event": "clear", "streamSid": "MZ1"}
    assert json.loads(twilio.media_message('we"ird\u00e9', b""))["streamSid"] == 'we"ird\u00e9'
    s = started()
    assert s.media_message(pcm) == twilio.media_message("MZXXXX", pcm)
    assert s.mark_message("m") == twilio.mark_message("MZXXXX", "m") and s.clear_message() == twilio.clear_message("MZXXXX")
    with pytest.raises(ValueError):
        twilio.TwilioSession().clear_message()
    with pytest.raises(ValueError):
        twilio.media_message("MZ1", b"\x01")


@given(st.binary(max_size=1000).map(lambda b: b[: len(b) // 2 * 2]))
def test_twilio_round_trip(pcm: bytes) -> None:
    # build -> parse -> equal (up to G.711's quantisation, which the reference codec defines)
    out = json.loads(twilio.media_message("MZ1", pcm))
    inbound = dict(MEDIA, media=dict(MEDIA["media"], payload=out["media"]["payload"]))
    ev = started().receive(json.dumps(inbound))
    assert ev.pcm == audioop.ulaw2lin(audioop.lin2ulaw(pcm, 2), 2)


def test_alaw_and_unknown_encodings() -> None:
    s = twilio.TwilioSession()
    s.receive(json.dumps({**START, "start": {**START["start"], "mediaFormat": {"encoding": "audio/x-alaw", "sampleRate": 8000}}}))
    assert s.receive(json.dumps(MEDIA)).pcm == audioop.alaw2lin(CODES, 2)
    s.receive(json.dumps({**START, "start": {**START["start"], "mediaFormat": {"encoding": "audio/opus", "sampleRate": 48000}}}))
    ev = s.receive(json.dumps(MEDIA))
    assert ev.pcm is None and ev.payload == CODES
    # before start: the dialect's default (mu-law)
    assert twilio.TwilioSession().receive(json.dumps(MEDIA)).pcm == audioop.ulaw2lin(CODES, 2)


@pytest.mark.parametrize(
    "msg, field",
    [
        ({"event": 5}, "event"),
        ({"x": 1}, "event"),
        ({"event": "media"}, "media"),
        ({"event": "media", "media": {}}, "media.payload"),
        ({"event": "media", "media": {"payload": "@@@@"}}, "media.payload"),
        ({"event": "media", "media": {"payload": "", "chunk": "1.5"}}, "media.chunk"),
        ({"event": "media", "media": {"payload": "", "chunk": -1}}, None),  # a negative chunk is read as given
        ({"event": "media", "media": {"payload": "", "timestamp": "x"}}, "media.timestamp"),
        ({"event": "media", "media": {"payload": ""}, "sequenceNumber": "1" * 19}, "sequenceNumber"),
        ({"event": "media", "media": {"payload": ""}, "sequenceNumber": True}, "sequenceNumber"),
        ({"event": "start"}, "start"),
        ({"event": "start", "start": {"mediaFormat": {"sampleRate": 1}}}, "start.mediaFormat.sampleRate"),
        ({"event": "start", "start": {"tracks": [1]}}, "start.tracks[0]"),
        ({"event": "dtmf", "dtmf": {}}, "dtmf.digit"),
        ({"event": "mark", "mark": {"name": 1}}, "mark.name"),
        ({"event": "stop", "sequenceNumber": "x"}, "sequenceNumber"),
    ],
)
def test_malformed_messages_name_the_field(msg: dict, field: str | None) -> None:
    s = started()
    before = (s.stream_id, s.start, s.codec)
    for fast in (True, False):
        s._fast = fast
        if field is None:
            assert s.receive(json.dumps(msg)).chunk == -1
            continue
        with pytest.raises(ProtocolError) as info:
            s.receive(json.dumps(msg))
        assert info.value.field == field, str(info.value)
    assert (s.stream_id, s.start, s.codec) == before


# ---------------------------------------------------------------- Telnyx

TELNYX_START = {
    "event": "start", "sequence_number": "1", "stream_id": "32DE0DEA-53CB-4B21-89A4-9E1819C043BC",
    "start": {"user_id": "3E6F995F-85F7-4705-9741-53B116D28237", "call_control_id": "v2:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ",
              "client_state": "aGF2ZSBhIG5pY2UgZGF5ID1d", "custom_parameters": {"customer_id": "customer_123"},
              "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1}},
}


def test_telnyx_stream_out_of_order_media_and_errors() -> None:
    s = telnyx.TelnyxSession()
    assert s.receive('{"event":"connected","version":"1.0.0"}') == telnyx.Connected(None, "1.0.0")
    start = s.receive(json.dumps(TELNYX_START))
    assert start.stream_id == "32DE0DEA-53CB-4B21-89A4-9E1819C043BC" and start.call_id.startswith("v2:")
    assert start.custom_parameters == {"customer_id": "customer_123"} and s.codec == "ulaw"
    chunks = []
    for seq, chunk in [(4, 2), (3, 1), (5, 3)]:  # out of order: the numbers let the caller reorder
        msg = {"event": "media", "sequence_number": str(seq), "media": {"track": "inbound", "chunk": str(chunk), "timestamp": str(20 * chunk), "payload": PAYLOAD}, "stream_id": "x"}
        chunks.append(s.receive(json.dumps(msg)))
    assert [m.chunk for m in sorted(chunks, key=lambda m: m.sequence)] == [1, 2, 3]
    assert all(m.pcm == audioop.ulaw2lin(CODES, 2) for m in chunks)
    err = s.receive('{"event":"error","payload":{"code":100002,"title":"Unknown error","detail":"An unknown error occurred"},"stream_id":"x"}')
    assert err == telnyx.Error("x", None, 100002, "Unknown error", "An unknown error occurred", {"code": 100002, "title": "Unknown error", "detail": "An unknown error occurred"})
    assert json.loads(telnyx.media_message(b"\x00\x00")) == {"event": "media", "media": {"payload": base64.b64encode(audioop.lin2ulaw(b"\x00\x00", 2)).decode()}}
    assert json.loads(s.media_message(b"\x00\x00")) == json.loads(telnyx.media_message(b"\x00\x00"))
    assert json.loads(s.clear_message()) == {"event": "clear"} and json.loads(s.mark_message("m")) == {"event": "mark", "mark": {"name": "m"}}


def _telnyx_start(encoding: str) -> str:
    return json.dumps({**TELNYX_START, "start": {**TELNYX_START["start"], "media_format": {"encoding": encoding, "sample_rate": 8000, "channels": 1}}})


def test_telnyx_answers_in_the_bidirectional_codec_not_the_inbound_one() -> None:
    """Issue 11 (PROTOCOLS.md section 7): the inbound codec (start.media_format.encoding) and the
    bidirectional RTP codec (its own setting, default PCMU) are separate. A PCMA call got A-law
    back; it now gets PCMU unless the session is told the call's bidirectional codec."""
    pcm = bytes(random.Random(3).randbytes(320))
    ulaw = {"event": "media", "media": {"payload": base64.b64encode(audioop.lin2ulaw(pcm, 2)).decode()}}
    alaw = {"event": "media", "media": {"payload": base64.b64encode(audioop.lin2alaw(pcm, 2)).decode()}}
    for inbound in ("PCMA", "PCMU", "L16", "OPUS"):
        s = telnyx.TelnyxSession()
        assert json.loads(s.media_message(pcm)) == ulaw  # before start too
        s.receive(_telnyx_start(inbound))
        assert json.loads(s.media_message(pcm)) == ulaw, inbound
        a = telnyx.TelnyxSession(bidirectional_codec="PCMA")
        a.receive(_telnyx_start(inbound))
        assert json.loads(a.media_message(pcm)) == alaw, inbound
    # the inbound side still follows the stream's own format
    s = telnyx.TelnyxSession()
    s.receive(_telnyx_start("PCMA"))
    codes = bytes(range(256))
    ev = s.receive(json.dumps({"event": "media", "media": {"payload": base64.b64encode(codes).decode()}}))
    assert s.codec == "alaw" and ev.pcm == audioop.alaw2lin(codes, 2)
    for bad in ("pcmu", "L16", "G722", "ulaw", ""):
        with pytest.raises(ValueError, match="bidirectional_codec"):
            telnyx.TelnyxSession(bidirectional_codec=bad)


@given(st.binary(max_size=2000).map(lambda b: b[: len(b) // 2 * 2]), st.sampled_from(["PCMU", "PCMA", "L16", "G722", "OPUS", "x"]),
       st.sampled_from(["PCMU", "PCMA"]))
def test_telnyx_outbound_codec_property(pcm: bytes, inbound: str, codec: str) -> None:
    s = telnyx.TelnyxSession(bidirectional_codec=codec)
    s.receive(_telnyx_start(inbound))
    coded = (audioop.lin2ulaw if codec == "PCMU" else audioop.lin2alaw)(pcm, 2)
    assert base64.b64decode(json.loads(s.media_message(pcm))["media"]["payload"]) == coded


def test_telnyx_l16_is_big_endian() -> None:
    s = telnyx.TelnyxSession()
    s.receive(json.dumps({**TELNYX_START, "start": {**TELNYX_START["start"], "media_format": {"encoding": "L16", "sample_rate": 16000, "channels": 1}}}))
    ev = s.receive(json.dumps({"event": "media", "media": {"payload": base64.b64encode(b"\x01\x02\x03\x04").decode()}}))
    assert ev.pcm == b"\x02\x01\x04\x03" and s.codec == "l16"
    with pytest.raises(ProtocolError):
        s.receive(json.dumps({"event": "media", "media": {"payload": base64.b64encode(b"\x01\x02\x03").decode()}}))
    s.receive(json.dumps({**TELNYX_START, "start": {**TELNYX_START["start"], "media_format": {"encoding": "OPUS", "sample_rate": 16000}}}))
    assert s.receive(json.dumps({"event": "media", "media": {"payload": "AAE="}})).pcm is None


# ---------------------------------------------------------------- Plivo and Exotel


def test_plivo_stream_and_builders() -> None:
    s = plivo.PlivoSession()
    start = s.receive(json.dumps({"event": "start", "sequenceNumber": 0, "start": {"callId": "c1", "streamId": "s1", "accountId": "a1", "tracks": ["inbound"], "mediaFormat": {"encoding": "audio/x-l16", "sampleRate": 16000}}}))
    assert (start.stream_id, start.call_id, start.account_id, start.sample_rate) == ("s1", "c1", "a1", 16000)
    pcm = bytes(range(64))
    ev = s.receive(json.dumps({"event": "media", "sequenceNumber": 2, "streamId": "s1", "media": {"track": "inbound", "timestamp": "1234", "chunk": 1, "payload": base64.b64encode(pcm).decode()}}))
    assert ev.pcm == ev.payload == pcm and ev.timestamp == 1234 and ev.sequence == 2
    out = json.loads(s.media_message(pcm))
    assert out == {"event": "playAudio", "media": {"contentType": "audio/x-l16", "sampleRate": 16000, "payload": base64.b64encode(pcm).decode()}}
    ulaw = json.loads(plivo.play_audio_message(pcm))
    assert ulaw["media"]["contentType"] == "audio/x-mulaw" and base64.b64decode(ulaw["media"]["payload"]) == audioop.lin2ulaw(pcm, 2)
    assert json.loads(s.clear_message()) == {"event": "clearAudio", "streamId": "s1"}
    assert json.loads(s.mark_message("c")) == {"event": "checkpoint", "streamId": "s1", "name": "c"}
    with pytest.raises(ValueError):
        plivo.play_audio_message(pcm, sample_rate=16000)
    with pytest.raises(ValueError):
        plivo.play_audio_message(pcm, linear=True, sample_rate=44100)


def test_exotel_stream_is_raw_pcm() -> None:
    s = exotel.ExotelSession()
    start = s.receive(json.dumps({"event": "start", "sequence_number": 1, "stream_sid": "st1", "start": {"stream_sid": "st1", "call_sid": "c", "account_sid": "a", "from": "x", "to": "y", "custom_parameters": {"k": "v"}, "media_format": {"encoding": "base64", "sample_rate": "8000", "bit_rate": "128kbps"}}}))
    assert start.sample_rate == 8000 and start.custom_parameters == {"k": "v"} and s.codec == "pcm16"
    pcm = bytes(range(100))
    ev = s.receive(json.dumps({"event": "media", "sequence_number": 3, "stream_sid": "st1", "media": {"chunk": 2, "timestamp": "108", "payload": base64.b64encode(pcm).decode()}}))
    assert ev == exotel.Media("st1", 3, None, 2, 108, pcm, pcm)
    assert json.loads(s.media_message(pcm)) == {"event": "media", "stream_sid": "st1", "media": {"payload": base64.b64encode(pcm).decode()}}
    assert json.loads(s.mark_message("m")) == {"event": "mark", "stream_sid": "st1", "mark": {"name": "m"}}
    assert json.loads(s.clear_message()) == {"event": "clear", "stream_sid": "st1"}
    back = s.receive(json.dumps({"event": "media", "stream_sid": "st1", "media": json.loads(s.media_message(pcm))["media"]}))
    assert back.pcm == pcm  # round trip


# ---------------------------------------------------------------- Vonage


def test_vonage_stream() -> None:
    s = vonage.VonageSession()
    ev = s.receive('{"event":"websocket:connected","content-type":"audio/l16;rate=16000","prop1":"value1"}')
    assert ev.sample_rate == 16000 and ev.payload["prop1"] == "value1"
    assert s.receive(bytes(640)) == vonage.Audio(bytes(640))
    assert s.receive(bytearray(4)) == vonage.Audio(bytes(4))
    assert s.receive('{"event":"websocket:dtmf","digit":"5","duration":260}') == vonage.Dtmf("5", 260)
    assert s.receive('{"event":"websocket:notify","payload":{}}').event == "websocket:notify"
    frames = s.audio_frames(bytes(1000))
    assert [len(f) for f in frames] == [640] and s.flush_audio() == [bytes(640)]
    s.audio_frames(bytes(10))
    assert s.clear() == ['{"action":"clear"}'] and s.flush_audio() == []
    s.receive('{"event":"websocket:connected","content-type":"audio/l16;rate=8000"}')
    assert s.frame_bytes == 320 and [len(f) for f in s.audio_frames(bytes(700))] == [320, 320]
    assert json.loads(vonage.notify_message({"a": 1})) == {"action": "notify", "payload": {"a": 1}}
    for bad in (b"\x00", '{"event":"websocket:connected","content-type":"audio/opus"}',
                '{"event":"websocket:connected","content-type":"audio/l16;rate=44100"}', '{"event":"websocket:dtmf"}', "x",
                '{"event":"websocket:connected","content-type":"audio/l16;rate=\u00b2"}'):
        with pytest.raises(ProtocolError):
            s.receive(bad)
    with pytest.raises(ValueError):
        vonage.VonageSession(sample_rate=44100)


# ---------------------------------------------------------------- fast == general, fuzz


def _outcome(s: twilio.StreamSession, text: str | bytes):
    try:
        return ("ok", s.receive(text), s.stream_id, s.codec)
    except ProtocolError as exc:
        return ("error", str(exc), exc.field)


DIALECTS = {
    "twilio": (twilio.TwilioSession, "sequenceNumber", "streamSid"),
    "telnyx": (telnyx.TelnyxSession, "sequence_number", "stream_id"),
    "plivo": (plivo.PlivoSession, "sequenceNumber", "streamId"),
    "exotel": (exotel.ExotelSession, "sequence_number", "stream_sid"),
}


@st.composite
def media_messages(draw: st.DrawFn) -> tuple[str, dict]:
    name = draw(st.sampled_from(sorted(DIALECTS)))
    _, seq_key, stream_key = DIALECTS[name]
    count = st.one_of(st.integers(0, 10**6), st.integers(), st.from_regex(r"[0-9]{1,20}", fullmatch=True), st.sampled_from(["", "x", "1.0", " 1", None, 1.5, True]))
    n = draw(st.sampled_from([160, 320, 3]))
    media: dict = {"payload": base64.b64encode(draw(st.binary(min_size=n, max_size=n))).decode()}
    msg: dict = {"event": draw(st.sampled_from(["media", "media", "mark"])), "media": media}
    for key, strat in [("track", st.sampled_from(["inbound", "outbound", 1])), ("chunk", count), ("timestamp", count)]:
        if draw(st.booleans()):
            media[key] = draw(strat)
    for key, strat in [(seq_key, count), (stream_key, st.sampled_from(["MZ1", "a/b", None]))]:
        if draw(st.booleans()):
            msg[key] = draw(strat)
    mutation = draw(st.integers(0, 9))
    if mutation == 1:
        media["payload"] = draw(st.sampled_from(["AA", "A=AA", None, 3]))
    elif mutation == 2:
        msg["extra"] = True
    elif mutation == 3:
        msg["event"] = jsontext.Dup("media", "media")
    return name, msg


@settings(max_examples=300)
@given(media_messages(), st.randoms(use_true_random=False), st.booleans(), st.sampled_from([None, "alaw"]))
def test_fast_and_general_paths_agree(case: tuple[str, dict], rng: random.Random, vary: bool, alaw: str | None) -> None:
    name, msg = case
    text = jsontext.dumps(msg, rng, vary=vary)
    cls = DIALECTS[name][0]
    encoding = {"twilio": "audio/x-alaw", "telnyx": "PCMA"}.get(name) if alaw else None
    fast, general = cls(encoding=encoding), cls(encoding=encoding)
    general._fast = False
    assert _outcome(fast, text) == _outcome(general, text)
    assert _outcome(fast, text.encode()) == _outcome(general, text.encode())


@given(st.sampled_from(sorted(DIALECTS)), st.one_of(st.text(max_size=200), st.binary(max_size=200),
       st.builds(lambda e, k: json.dumps({"event": e, **k}), st.sampled_from(["start", "media", "dtmf", "mark", "stop", "error", "connected"]),
                 st.dictionaries(st.sampled_from(["start", "media", "dtmf", "mark", "stop", "payload", "sequenceNumber", "sequence_number"]),
                                 st.one_of(st.none(), st.integers(), st.text(max_size=4), st.just({}), st.just([]), st.just({"payload": "AA==", "encoding": 1})), max_size=5))))
def test_fuzz_never_crashes(name: str, data: str | bytes) -> None:
    s = DIALECTS[name][0]()
    before = copy.deepcopy((s.stream_id, s.start, s.codec, s.encoding))
    try:
        s.receive(data)
    except ProtocolError:
        assert (s.stream_id, s.start, s.codec, s.encoding) == before


@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_vonage_fuzz(data: str | bytes) -> None:
    s = vonage.VonageSession()
    try:
        s.receive(data)
    except ProtocolError:
        assert s.sample_rate == 16000
