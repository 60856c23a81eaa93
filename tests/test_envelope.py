"""The fused JSON-envelope kernel (Shape, Template) against a plain reading of json.loads."""

from __future__ import annotations

import audioop
import dataclasses
import gc
import sys
import base64
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audiocore._ext import envelope
from audiocore._ext.envelope import Shape, Template
from reference import envelope as ref
from reference import jsontext


@pytest.fixture(params=["simd", "scalar"], autouse=True)
def code_path(request: pytest.FixtureRequest):
    if request.param == "simd" and not envelope._simd(True):
        pytest.skip("this CPU has no SSSE3")  # only on non-x86 machines
    envelope._simd(request.param == "simd")
    yield request.param
    envelope._simd(True)


FIELDS = [
    ("kind", "str", True, ("AudioData", "Other")),
    ("n", "int", False, ()),
    ("seq", "count", False, ()),
    ("body", "object", True, ()),
    ("body.data", "str", True, ()),
    ("body.ts", "str", False, ()),
    ("body.flag", "bool", False, ()),
    ("body.either", "str|int", False, ()),
    ("body.mark", "object", False, ()),
    ("body.mark.Id", "str", True, ()),
]


def _outcome(fn, *args, **kw):
    try:
        return ("ok", fn(*args, **kw))
    except ref.RefError:
        return ("error", None)


def _read(text: str, ci: bool, codec: str | None = None):
    return _outcome(ref.read, text, FIELDS, ci=ci, b64="body.data", codec=codec)


ascii_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)
any_text = st.text(max_size=8)
ints = st.one_of(st.integers(-(10**18) + 1, 10**18 - 1), st.integers(), st.sampled_from([0, -1, 10**18, -(10**18)]))


@st.composite
def messages(draw: st.DrawFn) -> dict:
    """Message objects of FIELDS' shape, sometimes broken: absent/null/mistyped fields,
    unknown fields, duplicate keys, bad base64."""
    pcm = draw(st.binary(max_size=64))
    data = base64.b64encode(pcm).decode()
    if draw(st.booleans()) and draw(st.integers(0, 9)) == 0:
        data = draw(st.sampled_from([data + "=", data[:-1], "A\nAAA", "====", "é", data + "\\"]))
    value = st.one_of(ascii_text, any_text, ints, st.booleans(), st.none(), st.just([1]), st.just({}))
    body: dict = {"data": data}
    opt = {
        "ts": st.one_of(ascii_text, any_text),
        "flag": st.booleans(),
        "either": st.one_of(ascii_text, ints),
        "mark": st.builds(lambda i: {"Id": i}, ascii_text),
    }
    for key, strat in opt.items():
        choice = draw(st.integers(0, 5))
        if choice == 1:
            body[key] = draw(strat)
        elif choice == 2:
            body[key] = None
        elif choice == 3:
            body[key] = draw(value)
    msg: dict = {"kind": draw(st.sampled_from(["AudioData", "Other", "audiodata", "X"])), "body": body}
    for key, strat in (("n", ints), ("seq", st.one_of(ints, st.from_regex(r"[0-9]{1,20}", fullmatch=True), ascii_text))):
        choice = draw(st.integers(0, 4))
        if choice == 1:
            msg[key] = draw(strat)
        elif choice == 2:
            msg[key] = None
    if draw(st.integers(0, 9)) == 0:
        msg[draw(st.sampled_from(["extra", "Body", "KIND"]))] = draw(value)
    if draw(st.integers(0, 14)) == 0:
        msg["kind"] = jsontext.Dup(msg["kind"], draw(st.sampled_from(["AudioData", "X"])))
    if draw(st.integers(0, 9)) == 0:
        del body["data"]
    return msg


@settings(max_examples=300)
@given(messages(), st.randoms(use_true_random=False), st.booleans(), st.booleans(), st.sampled_from([None, "ulaw", "alaw"]))
def test_scan_equals_the_plain_reading_or_declines(msg, rng, vary, ci, codec) -> None:
    text = jsontext.dumps(msg, rng, vary=vary, casing=ci)
    shape = Shape(FIELDS, case_insensitive=ci, b64="body.data", codec=codec)
    fast = shape.scan(text)
    expected = _read(text, ci, codec)
    if fast is not None:
        assert expected == ("ok", fast), text
    for form in (text.encode("utf-8"),):
        assert shape.scan(form) == fast


def _plain(msg: dict) -> bool:
    """A message the fast path must answer: compact, known keys, ASCII strings without
    escapes, in-range integers, no duplicates."""
    def ok(v):
        if isinstance(v, jsontext.Dup):
            return False
        if isinstance(v, str):
            return v.isascii() and v.isprintable() and '"' not in v and "\\" not in v
        if isinstance(v, bool) or v is None:
            return True
        if isinstance(v, int):
            return abs(v) < 10**18
        if isinstance(v, dict):
            return all(ok(x) for x in v.values())
        return False

    return ok(msg) and set(msg) <= {"kind", "n", "seq", "body"} and set(msg["body"]) <= {"data", "ts", "flag", "either", "mark"}


@given(messages(), st.randoms(use_true_random=False))
def test_scan_answers_every_plain_valid_message(msg, rng) -> None:
    text = jsontext.dumps(msg, rng, vary=False)
    expected = _read(text, False)
    if expected[0] == "ok" and _plain(msg):
        assert Shape(FIELDS, b64="body.data").scan(text) == expected[1], text


def test_documented_spelling_variants_are_read_alike() -> None:
    shape = Shape(FIELDS, case_insensitive=True, b64="body.data")
    base = {"kind": "AudioData", "body": {"data": "AAE=", "ts": "t/1", "flag": True}}
    want = (("AudioData", None, None, b"\x00\x01", "t/1", True, None, None))
    compact = json.dumps(base, separators=(",", ":"))
    assert shape.scan(compact) == want
    assert shape.scan(json.dumps(base, indent=2)) == want  # whitespace
    assert shape.scan(compact.replace('"kind"', '"KIND"')) == want  # casing
    assert shape.scan(compact.replace("t/1", "t\\/1")) is None  # an escape: general path
    assert shape.scan(compact[:-1] + ',"x":1}') is None  # unknown field
    assert shape.scan(compact.replace('"flag":true', '"flag":null')) == want[:5] + (None,) + want[6:]
    assert shape.scan(compact.replace('"AudioData"', '"Nope"')) is None  # not an alternative
    assert shape.scan(compact + " \n") == want
    assert shape.scan(compact + "x") is None
    assert shape.scan("é" + compact) is None
    assert shape.scan(bytearray(compact.encode())) is None  # only str and bytes are scanned
    assert Shape(FIELDS, b64="body.data").scan(compact.replace('"kind"', '"KIND"')) is None


@pytest.mark.parametrize(
    "spelling, value",
    [("0", 0), ("-0", 0), ("7", 7), ("-12", -12), ("999999999999999999", 10**18 - 1),
     ("-999999999999999999", -(10**18) + 1), ("1000000000000000000", None), ("01", None),
     ("1.0", None), ("1e3", None), ("1E3", None), ("-", None), ("+1", None), ("--1", None),
     ('"5"', None), ("true", None), ("[1]", None), ("0x1", None)],
)
def test_integers(spelling: str, value: int | None) -> None:
    shape = Shape([("n", "int", True, ())])
    text = '{"n":' + spelling + "}"
    assert shape.scan(text) == (None if value is None else (value,))
    if value is not None:
        assert json.loads(text)["n"] == value


@pytest.mark.parametrize(
    "spelling, value",
    [('"0"', 0), ('"007"', 7), ('"123456789012345678"', 123456789012345678), ("42", 42),
     ('"1234567890123456789"', None), ('""', None), ('"-1"', None), ('" 1"', None), ('"1a"', None),
     ('"\\u0031"', None)],
)
def test_counts(spelling: str, value: int | None) -> None:
    assert Shape([("n", "count", True, ())]).scan('{"n":' + spelling + "}") == (
        None if value is None else (value,)
    )


def test_shape_definitions_are_checked() -> None:
    with pytest.raises(ValueError):
        Shape([])
    with pytest.raises(ValueError):
        Shape([("a.b", "str", True, ())])  # parent missing
    with pytest.raises(ValueError):
        Shape([("a", "str", True, ()), ("a.b", "str", True, ())])  # parent not an object
    with pytest.raises(ValueError):
        Shape([("a", "str", True, ()), ("a", "int", True, ())])
    with pytest.raises(ValueError):
        Shape([("a", "int", True, ())], b64="a")
    with pytest.raises(ValueError):
        Shape([("a", "str", True, ())], codec="ulaw")
    with pytest.raises(ValueError):
        Shape([("a", "str", True, ("1", "2", "3", "4", "5"))])
    with pytest.raises(KeyError):
        Shape([("a", "float", True, ())])
    with pytest.raises(ValueError):
        Shape([(f"f{i}", "str", False, ()) for i in range(17)])


@given(st.binary(max_size=9000), st.sampled_from([None, "ulaw", "alaw"]))
def test_template_builds_valid_json_with_standard_base64(audio: bytes, codec: str | None) -> None:
    t = Template(b'{"a":{"b":"', b'"},"c":null}', codec=codec)
    if codec and len(audio) % 2:
        with pytest.raises(ValueError):
            t.build(audio)
        return
    out = t.build(audio)
    assert isinstance(out, str) and out.isascii()
    coded = audio
    if codec == "ulaw":
        coded = audioop.lin2ulaw(audio, 2)
    elif codec == "alaw":
        coded = audioop.lin2alaw(audio, 2)
    assert json.loads(out) == {"a": {"b": base64.b64encode(coded).decode()}, "c": None}


def test_template_takes_any_buffer_and_checks_pcm16() -> None:
    t = Template(b'"', b'"', pcm16=True)
    assert t.build(memoryview(b"\x01\x02")) == t.build(bytearray(b"\x01\x02")) == '"AQI="'
    with pytest.raises(ValueError):
        t.build(b"\x01")
    with pytest.raises(TypeError):
        t.build("text")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Template("é".encode(), b"")
    assert Template(b"", b"").build(b"\x01") == "AQ=="
    assert t.prefix == b'"' and t.suffix == b'"'
    # "pcm16" is a codec of Shape (reading), not of Template: it once wrote A-law here
    for codec in ("pcm16", "ULAW", ""):
        with pytest.raises(ValueError, match="codec must be"):
            Template(b"", b"", codec=codec)


def test_scan_of_large_payloads_and_every_length() -> None:
    shape = Shape([("d", "str", True, ())], b64="d", codec="ulaw")
    rng = random.Random(5)
    for n in list(range(70)) + [4095, 4096, 100000]:
        codes = rng.randbytes(n)
        text = json.dumps({"d": base64.b64encode(codes).decode()})
        assert shape.scan(text) == (codes, audioop.ulaw2lin(codes, 2))


@dataclasses.dataclass(slots=True, frozen=True)
class Rec:
    kind: str
    data: bytes
    flag: bool
    n: int | None
    pcm: bytes


REC_FIELDS = [("kind", "str", True, ("a", "b")), ("n", "int", False, ()), ("body", "object", True, ()),
              ("body.data", "str", True, ()), ("body.flag", "bool", False, (), False)]
REC_SLOTS = ("kind", "n", "data", "flag", "pcm")


@given(st.binary(max_size=100), st.sampled_from(["a", "b"]), st.one_of(st.none(), st.integers(-5, 5)),
       st.one_of(st.none(), st.booleans()), st.sampled_from(["ulaw", "alaw", "pcm16"]))
def test_records_are_the_class_built_from_the_reference_values(data, kind, n, flag, codec) -> None:
    if codec == "pcm16":
        data = data[: len(data) // 2 * 2]
    msg = {"kind": kind, "n": n, "body": {"data": base64.b64encode(data).decode(), "flag": flag}}
    text = json.dumps(msg)
    shape = Shape(REC_FIELDS, b64="body.data")
    rec = Shape(REC_FIELDS, b64="body.data", codec=codec, record=Rec, slots=REC_SLOTS).scan(text)
    pcm = {"ulaw": lambda b: audioop.ulaw2lin(b, 2), "alaw": lambda b: audioop.alaw2lin(b, 2), "pcm16": lambda b: b}[codec](data)
    assert rec == Rec(kind, data, bool(flag), n, pcm)
    assert shape.scan(text)[:4] == (kind, n, data, bool(flag))
    assert gc.is_tracked(rec)
    assert sys.getrefcount(rec) == 2  # the local name and the call's argument: nothing leaked
    if codec == "pcm16":
        assert rec.pcm is rec.data


def test_record_classes_are_checked() -> None:
    class Plain:
        pass

    @dataclasses.dataclass(slots=True)
    class Short:
        kind: str

    class WithNew:
        __slots__ = ("kind", "n", "data", "flag", "pcm")

        def __new__(cls):  # type: ignore[no-untyped-def]
            return object.__new__(cls)

    for bad, slots in [(Plain, REC_SLOTS), (Short, ("kind",)), (Short, ("kind", "n", None, None, None)),
                       (Rec, ("kind", "n", "data", "flag", "flag")), (WithNew, REC_SLOTS), (int, REC_SLOTS)]:
        with pytest.raises((TypeError, ValueError)):
            Shape(REC_FIELDS, b64="body.data", codec="ulaw", record=bad, slots=slots)


@pytest.mark.parametrize("codec", [None, "ulaw", "alaw"])
def test_long_audio_is_coded_alike(codec: str | None) -> None:
    """Above 64 KiB the kernel releases the GIL; the result is the same."""
    audio = random.Random(11).randbytes(200_002)
    coded = {None: audio, "ulaw": audioop.lin2ulaw(audio, 2), "alaw": audioop.lin2alaw(audio, 2)}[codec]
    text = Template(b'{"d":"', b'"}', codec=codec).build(audio)
    assert json.loads(text) == {"d": base64.b64encode(coded).decode()}
    back = Shape([("d", "str", True, ())], b64="d", codec=codec).scan(text)
    assert back[0] == coded
    if codec:
        assert back[1] == audioop.ulaw2lin(coded, 2) if codec == "ulaw" else audioop.alaw2lin(coded, 2)
