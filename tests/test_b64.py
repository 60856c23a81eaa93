"""The base64 kernel against the plain reference and the standard library, on both code paths."""

from __future__ import annotations

import base64
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
