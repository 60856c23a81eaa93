"""The base64 kernel against the plain reference and the standard library, on both code paths."""

from __future__ import annotations

import base64
import binascii
import random

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import audiocore
from audiocore._ext import b64 as kernel
from reference import b64 as ref

ALPHABET = ref.ALPHABET


@pytest.fixture(params=["simd", "scalar"], autouse=True)
def code_path(request: pytest.FixtureRequest):
    if request.param == "simd" and not kernel._simd(True):
        pytest.skip("this CPU has no SSSE3")  # only on non-x86 machines
    kernel._simd(request.param == "simd")
    yield request.param
    kernel._simd(True)


def test_every_length_up_to_200_round_trips() -> None:
    rng = random.Random(1)
    for n in range(200):
        data = rng.randbytes(n)
        text = audiocore.b64encode(data)
        assert text == ref.encode(data) == base64.b64encode(data)
        assert audiocore.b64decode(text) == data
        assert audiocore.b64decode(text.decode()) == data


@given(st.binary(max_size=3000))
def test_encode_matches_reference_and_stdlib(data: bytes) -> None:
    assert audiocore.b64encode(data) == ref.encode(data) == base64.b64encode(data)


@given(st.binary(max_size=3000))
def test_decode_matches_stdlib_on_valid_input(data: bytes) -> None:
    text = base64.b64encode(data)
    assert audiocore.b64decode(text) == base64.b64decode(text, validate=True) == data
    assert audiocore.b64decode(text.decode("ascii")) == data
    assert audiocore.b64decoded_length(text) == len(data)


def _outcome(fn, arg):
    try:
        return ("ok", fn(arg))
    except (audiocore.DecodeError, ref.RefDecodeError) as exc:
        return ("error", exc.offset)


@given(st.text(alphabet=ALPHABET + "=\n \t-_.*é\x00", max_size=120))
@example("QQ=")
@example("QQ==QQ==")
@example("====")
@example("QUJD\nQUJD")
@example("QUJDRA=")
def test_decode_of_arbitrary_text_agrees_with_reference(text: str) -> None:
    ours = _outcome(audiocore.b64decode, text)
    theirs = _outcome(ref.decode_text, text)
    assert ours == theirs
    if ours[0] == "ok":
        assert ours[1] == base64.b64decode(text, validate=True)


@given(st.binary(min_size=1, max_size=600), st.data())
def test_one_corrupted_character_is_found_at_its_offset(data: bytes, draw: st.DataObject) -> None:
    text = bytearray(base64.b64encode(data))
    # Corrupting a padding '=' would make an earlier '=' the first fault: stay before them.
    pos = draw.draw(st.integers(0, len(text.rstrip(b"=")) - 1))
    text[pos] = draw.draw(st.sampled_from(b" \n\r\t-_.,:;!#$%&()*<>?@[]^{|}~\x00\x7f\x80\xff"))
    with pytest.raises(audiocore.DecodeError) as info:
        audiocore.b64decode(bytes(text))
    assert info.value.offset == pos
    assert isinstance(info.value, ValueError)
    assert f"offset {pos}" in str(info.value)


@given(st.binary(min_size=1, max_size=300), st.data())
def test_truncation_and_misplaced_padding_agree_with_reference(
    data: bytes, draw: st.DataObject
) -> None:
    text = base64.b64encode(data).decode()
    cut = draw.draw(st.integers(0, len(text)))
    mutated = text[:cut] + draw.draw(st.sampled_from(["", "=", "==", "A", "AB="]))
    assert _outcome(audiocore.b64decode, mutated) == _outcome(ref.decode_text, mutated)


def test_error_messages_say_what_and_where() -> None:
    cases = {
        "QUJD\nQUJD": ("whitespace '\\n'", 4),
        "QUJ\x00": ("byte 0x00", 3),
        "QQ==QQ==": ("misplaced padding", 2),
        "QUJDR": ("not a multiple of 4", 4),
        "QQ=": ("not a multiple of 4", 0),
        "QUJé": ("non-ASCII character 'é'", 3),
    }
    for text, (words, offset) in cases.items():
        with pytest.raises(audiocore.DecodeError) as info:
            audiocore.b64decode(text)
        assert words in str(info.value)
        assert info.value.offset == offset


def test_accepts_every_bytes_like_and_ascii_str() -> None:
    data = bytes(range(256)) * 3
    text = base64.b64encode(data)
    for form in (text, bytearray(text), memoryview(text), np.frombuffer(text, np.uint8),
                 text.decode()):
        assert audiocore.b64decode(form) == data
    pcm = np.arange(-300, 300, dtype=np.int16)
    assert audiocore.b64encode(pcm) == base64.b64encode(pcm.tobytes())
    assert audiocore.b64encode(memoryview(data)[10:20]) == base64.b64encode(data[10:20])


def test_rejects_wrong_types() -> None:
    with pytest.raises(TypeError):
        audiocore.b64encode("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        audiocore.b64decode(12)  # type: ignore[arg-type]
    strided = memoryview(bytes(64))[::2]
    with pytest.raises((BufferError, ValueError, TypeError)):
        audiocore.b64encode(strided)


def test_large_inputs_take_the_gil_free_path() -> None:
    data = random.Random(7).randbytes(300_001)
    text = audiocore.b64encode(data)
    assert text == base64.b64encode(data)
    assert audiocore.b64decode(text) == data
    bad = bytearray(text)
    bad[250_000] = ord("!")
    with pytest.raises(audiocore.DecodeError) as info:
        audiocore.b64decode(bytes(bad))
    assert info.value.offset == 250_000


def test_decode_into() -> None:
    data = bytes(range(200))
    text = base64.b64encode(data)
    out = bytearray(300)
    assert audiocore.b64decode_into(text, out) == 200
    assert out[:200] == data and out[200:] == bytes(100)
    arr = np.zeros(100, np.int16)
    assert audiocore.b64decode_into(text.decode(), arr) == 200
    assert arr.tobytes() == data


def test_decode_into_too_small_writes_nothing() -> None:
    out = bytearray(b"\xaa" * 10)
    with pytest.raises(ValueError, match="too small: 12 bytes needed, 10 available"):
        audiocore.b64decode_into(base64.b64encode(bytes(12)), out)
    assert out == b"\xaa" * 10
    with pytest.raises((TypeError, BufferError)):
        audiocore.b64decode_into(b"QUJD", b"read-only")  # type: ignore[arg-type]


# ---------------------------------------------------------------- the standard library's spellings

# URL-safe text as the standard alphabet would spell it: '-' and '_' become '+' and '/', and
# '+' and '/' (outside the URL-safe alphabet) a character outside both.
_URL_AS_STD = str.maketrans({"-": "+", "_": "/", "+": "*", "/": "*"})


@given(st.binary(max_size=3000))
@example(bytes([0xfb, 0xff, 0xbf] * 8))  # every group '-' / '_' heavy, on the SIMD path
def test_urlsafe_matches_stdlib(data: bytes) -> None:
    text = base64.urlsafe_b64encode(data)
    assert audiocore.urlsafe_b64encode(data) == text
    assert audiocore.b64encode(data, altchars=b"-_") == base64.b64encode(data, altchars=b"-_")
    assert audiocore.b64encode(data, b"-_") == text
    assert audiocore.urlsafe_b64decode(text) == base64.urlsafe_b64decode(text) == data
    assert audiocore.urlsafe_b64decode(text.decode("ascii")) == data
    assert audiocore.b64decode(text, altchars=b"-_", validate=True) == data
    assert audiocore.b64decode(text.decode(), "-_") == data


@given(st.text(alphabet=ALPHABET + "-_=\n +/.é", max_size=120))
@example("-_-_")
@example("ab+/")
@example("QQ=-")
def test_urlsafe_decode_of_arbitrary_text_agrees_with_reference(text: str) -> None:
    """Strict like the standard decoder, with '-' and '_' in the alphabet and '+' and '/'
    outside it: the same outcome and offset as the reference on the translated text."""
    ours = _outcome(audiocore.urlsafe_b64decode, text)
    assert ours == _outcome(ref.decode_text, text.translate(_URL_AS_STD))
    if ours[0] == "ok":
        assert ours[1] == base64.urlsafe_b64decode(text)


def test_urlsafe_refusals_name_the_alphabet() -> None:
    with pytest.raises(audiocore.DecodeError, match=r"URL-safe base64: character '\+' at "
                       r"offset 2 \(the URL-safe alphabet has '-' and '_'") as info:
        audiocore.urlsafe_b64decode("ab+c")
    assert info.value.offset == 2
    with pytest.raises(audiocore.DecodeError, match="character '_' at offset 1 "
                       r"\(URL-safe base64\? use urlsafe_b64decode"):
        audiocore.b64decode("a_cd")
    with pytest.raises(audiocore.DecodeError, match="not a multiple of 4"):
        audiocore.urlsafe_b64decode("YQ")  # unpadded: refused, as the standard library does
    with pytest.raises(binascii.Error, match="padding"):
        base64.urlsafe_b64decode("YQ")


def test_standard_library_arguments() -> None:
    text = base64.b64encode(bytes(range(256)))
    # validate=True is what audiocore always does; the standard library agrees on valid text.
    assert audiocore.b64decode(text, validate=True) == base64.b64decode(text, validate=True)
    assert audiocore.b64decode(text, b"+/") == base64.b64decode(text, b"+/")
    assert audiocore.b64encode(bytes(range(256)), altchars=b"+/") == text
    assert audiocore.b64decode(text, altchars=bytearray(b"+/")) == bytes(range(256))
    with pytest.raises(audiocore.DecodeError):
        audiocore.b64decode(text[:8] + b"\n" + text[8:], validate=True)
    # validate=False would discard characters silently: refused before reading the input.
    with pytest.raises(ValueError, match="validate=False is not supported: audiocore always "
                       "decodes strictly") as info:
        audiocore.b64decode(text, validate=False)
    assert not isinstance(info.value, audiocore.DecodeError)
    for alt in (b"*.", b"-", "-_+", b"+_"):
        with pytest.raises(ValueError, match="altchars must be b'-_'"):
            audiocore.b64decode(text, altchars=alt)
        with pytest.raises(ValueError, match="altchars must be b'-_'"):
            audiocore.b64encode(b"abc", altchars=alt)
    for alt in (45, memoryview(b"-_"), np.frombuffer(b"-_", np.uint8)):
        with pytest.raises(TypeError, match="altchars must be bytes or str"):
            audiocore.b64encode(b"abc", altchars=alt)  # type: ignore[arg-type]


def test_large_urlsafe_inputs_take_the_gil_free_path() -> None:
    data = random.Random(8).randbytes(200_003)
    text = audiocore.urlsafe_b64encode(data)
    assert text == base64.urlsafe_b64encode(data)
    assert audiocore.urlsafe_b64decode(text) == data
    bad = bytearray(text)
    bad[150_000] = ord("/")
    with pytest.raises(audiocore.DecodeError) as info:
        audiocore.urlsafe_b64decode(bytes(bad))
    assert info.value.offset == 150_000
