"""The STT-bot-TTS Voice API, v1 and v2, client and server side against each other."""

from __future__ import annotations

import base64
import copy
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audiocore import ProtocolError
from audiocore.protocols import voiceapi as va


def test_quoted_examples() -> None:
    c = va.V2Client()
    assert json.loads(c.open("KEY")) == {"kind": "open", "api_key": "KEY"}
    events = c.receive('[{"kind": "opened"}, {"kind": "error", "message": "bad things"}, {"kind": "closed"}]')
    assert [type(e) for e in events] == [va.Opened, va.Error, va.Closed]
    assert events[1].message == "bad things" and c.is_open and c.is_closed
    assert va.PING_PATH.endswith("/ping") and va.V2_PATH.startswith("/api/voice/v2/")


def test_one_table_of_kinds_with_the_unverified_marked() -> None:
    assert va.KIND["open"] == "open" and va.KIND["closed"] == "closed"
    assert "KIND['start']" in va.UNVERIFIED and "KIND['open']" not in va.UNVERIFIED
    assert "FIELD['user_id']" not in va.UNVERIFIED and "FIELD['audio']" in va.UNVERIFIED


def test_v2_many_users_over_one_connection() -> None:
    c, s = va.V2Client(), va.V2Server()
    a, b = bytes(range(64)), bytes(range(100, 164))
    msg = va.batch([c.open("K", stt={"sample_rate": 16000}, tts={"sample_rate": 24000}, bot_speaks_first=True),
                    c.start("alice"), c.start("bob", context={"lang": "ja"}), c.audio("alice", a), c.audio("bob", b)])
    assert json.loads(msg)[0] == {"kind": "open", "api_key": "K", "stt": {"sample_rate": 16000}, "tts": {"sample_rate": 24000}, "bot_speaks_first": True}
    events = s.receive(msg)
    assert events[0] == va.Open("K", None, {"stt": {"sample_rate": 16000}, "tts": {"sample_rate": 24000}, "bot_speaks_first": True}, json.loads(msg)[0])
    assert events[2].overrides == {"context": {"lang": "ja"}}
    assert events[3:] == [va.UserAudio("alice", a), va.UserAudio("bob", b)]
    assert set(s.users) == {"alice", "bob"}
    assert s.receive(c.text("bob", "hi")) == [va.UserText("bob", "hi")]  # one object, not an array
    assert s.receive(c.context("alice", {"x": 1})) == [va.ContextUpdate("alice", {"x": 1})]
    out = va.batch([s.opened(), s.started("alice"), s.started("bob"), s.audio("bob", b), s.attachment("alice", text="t", url="u", attachment={"k": 1}), s.error("oops", user_id="bob")])
    assert json.loads(out)[3] == {"kind": "audio", "user_id": "bob", "audio": base64.b64encode(b).decode()}
    got = c.receive(out)
    assert got[3] == va.BotAudio("bob", b)
    assert got[4].text == "t" and got[4].url == "u" and got[4].attachment == {"k": 1}
    assert got[5].user_id == "bob" and c.users == {"alice", "bob"}
    assert s.receive(c.end("bob")) == [va.End("bob", {"kind": "end", "user_id": "bob"})]
    assert c.receive(s.ended("bob"))[0] == va.Ended("bob", {"kind": "ended", "user_id": "bob"})
    assert c.users == {"alice"} and set(s.users) == {"alice"}
    assert s.receive(c.close())[0] == va.Close({"kind": "close"}) and s.is_closed
    assert c.receive(s.closed()) == [va.Closed({"kind": "closed"})]


def test_v2_server_rejects_out_of_order_frames_atomically() -> None:
    c, s = va.V2Client(), va.V2Server()
    with pytest.raises(ProtocolError) as info:
        s.receive(c.start("u"))
    assert info.value.field == "kind"
    s.receive(c.open("K"))
    before = copy.deepcopy((s.users, s.is_closed))
    for msg, field in [
        (va.batch([c.start("u"), c.audio("v", b"\x00\x00")]), "[1].user_id"),
        (va.batch([c.start("u"), c.start("u")]), "[1].user_id"),
        (va.batch([c.start("u"), '{"kind":"audio","user_id":"u","audio":"***"}']), "[1].audio"),
        (va.batch([c.start("u"), '{"kind":"audio","user_id":"u","audio":"AA=="}']), "[1].audio"),  # odd PCM16
        (va.batch([c.start("u"), c.open("K")]), "[1].kind"),
        ('[{"kind":"start"}]', "[0].user_id"),
        ('[{"kind":"start","user_id":"u","stt":5}]', "[0].stt"),
        ("[1]", "[0]"), ("5", None), ("[", None), ('[{"kind":1}]', "[0].kind"),
    ]:
        with pytest.raises(ProtocolError) as info:
            s.receive(msg)
        assert info.value.field == field, (msg, str(info.value))
        assert (s.users, s.is_closed) == before  # nothing of the message was applied
    assert s.receive('[{"kind":"future"}]') == [va.Unknown("future", {"kind": "future"})]


def test_v2_client_errors_are_atomic() -> None:
    c = va.V2Client()
    with pytest.raises(ProtocolError):
        c.receive('[{"kind":"opened"},{"kind":"started"}]')
    assert not c.is_open and c.users == set()
    with pytest.raises(ProtocolError):
        c.receive('[{"kind":"audio","user_id":"u","audio":"@"}]')
    with pytest.raises(ValueError):
        c.audio("", b"")
    with pytest.raises(ValueError):
        c.open("")
    with pytest.raises(TypeError):
        c.start("u", volume=3)
    # v2 names users in start(), not in open(): said as such, not as an internal TypeError
    with pytest.raises(TypeError, match=r"takes no user_id: v2 users begin with start\(user_id\)"):
        c.open("key", user_id="u")
    with pytest.raises(ValueError):
        c.audio("u", b"\x00")
    with pytest.raises(ValueError):
        va.V2Server().audio("u", b"\x00")


def test_v1_open_then_binary() -> None:
    c, s = va.V1Client(), va.V1Server()
    with pytest.raises(ValueError):
        c.audio(b"\x00\x00")
    opening = c.open("KEY", user_id="u1", stt={"sample_rate": 8000}, context={"a": 1})
    assert json.loads(opening) == {"api_key": "KEY", "user_id": "u1", "stt": {"sample_rate": 8000}, "context": {"a": 1}}
    with pytest.raises(ValueError):
        c.open("KEY")
    with pytest.raises(ProtocolError):
        va.V1Server().receive(b"\x00\x00")  # binary before the open frame
    ev = s.receive(opening)
    assert ev == va.Open("KEY", "u1", {"stt": {"sample_rate": 8000}, "context": {"a": 1}}, json.loads(opening))
    assert s.receive(c.audio(bytes(320))) == va.UserAudio(None, bytes(320))
    with pytest.raises(ProtocolError):
        s.receive(opening)  # text after the open frame
    assert c.receive(s.audio(bytes(480))) == va.BotAudio(None, bytes(480))
    assert c.receive(s.error("nope")) == va.Error("nope", None, {"kind": "error", "message": "nope"})
    with pytest.raises(ProtocolError):
        c.receive(b"\x00")
    with pytest.raises(ProtocolError):
        va.V1Server().receive('{"api_key": ""}')


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c/d", "é"]), st.binary(max_size=200).map(lambda b: b[: len(b) // 2 * 2])), max_size=6))
def test_v2_audio_round_trip(frames: list[tuple[str, bytes]]) -> None:
    c, s = va.V2Client(), va.V2Server()
    users = sorted({u for u, _ in frames})
    s.receive(va.batch([c.open("K"), *(c.start(u) for u in users)]))
    assert s.receive(va.batch(c.audio(u, p) for u, p in frames)) == [va.UserAudio(u, p) for u, p in frames]
    assert c.receive(va.batch(s.audio(u, p) for u, p in frames)) == [va.BotAudio(u, p) for u, p in frames]


@given(st.one_of(st.text(max_size=200), st.binary(max_size=200),
                 st.lists(st.fixed_dictionaries({"kind": st.sampled_from(["open", "start", "end", "audio", "text", "context", "close", "x", 1])},
                                                optional={"user_id": st.one_of(st.text(max_size=2), st.integers()), "api_key": st.text(max_size=2),
                                                          "audio": st.sampled_from(["", "AAAA", "@", 1]), "stt": st.one_of(st.none(), st.just({}), st.integers())}),
                          max_size=5).map(json.dumps)))
def test_fuzz_never_crashes(data: str | bytes) -> None:
    for peer in (va.V2Server(), va.V2Client()):
        try:
            peer.receive(data)
        except ProtocolError:
            pass
    for v1 in (va.V1Server(), va.V1Client()):
        try:
            v1.receive(data)
        except ProtocolError:
            pass
