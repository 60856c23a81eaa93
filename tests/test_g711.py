"""G.711 kernels against the reference from the standard and against audioop, exhaustively."""

from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import audiocore
from reference import g711 as ref

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

ALL_PCM = struct.pack("<65536h", *range(-32768, 32768))
ALL_CODES = bytes(range(256))


@pytest.mark.parametrize(
    "ours, reference, oracle",
    [
        (audiocore.ulaw_encode, ref.ulaw_encode, lambda b: audioop.lin2ulaw(b, 2)),
        (audiocore.alaw_encode, ref.alaw_encode, lambda b: audioop.lin2alaw(b, 2)),
    ],
    ids=["ulaw", "alaw"],
)
def test_encode_all_65536_inputs(ours, reference, oracle) -> None:
    expected = reference(ALL_PCM)
    assert oracle(ALL_PCM) == expected
    assert ours(ALL_PCM) == expected


@pytest.mark.parametrize(
    "ours, reference, oracle",
    [
        (audiocore.ulaw_decode, ref.ulaw_decode, lambda b: audioop.ulaw2lin(b, 2)),
        (audiocore.alaw_decode, ref.alaw_decode, lambda b: audioop.alaw2lin(b, 2)),
    ],
    ids=["ulaw", "alaw"],
)
def test_decode_all_256_codes(ours, reference, oracle) -> None:
    expected = reference(ALL_CODES)
    assert oracle(ALL_CODES) == expected
    assert ours(ALL_CODES) == expected


def test_known_points_of_the_standard() -> None:
    # mu-law: 0 codes as 0xFF, full scale positive 0x80, negative 0x00; A-law 0 codes as 0xD5.
    assert audiocore.ulaw_encode(struct.pack("<3h", 0, 32767, -32768)) == b"\xff\x80\x00"
    assert audiocore.alaw_encode(struct.pack("<3h", 0, 32767, -32768)) == b"\xd5\xaa\x2a"
    assert struct.unpack("<2h", audiocore.ulaw_decode(b"\x80\x00")) == (32124, -32124)
    assert struct.unpack("<2h", audiocore.alaw_decode(b"\xaa\x2a")) == (32256, -32256)


def test_decode_then_encode_is_identity_on_codes() -> None:
    assert audiocore.ulaw_encode(audiocore.ulaw_decode(ALL_CODES)) == ALL_CODES.replace(
        b"\x7f", b"\xff"  # mu-law has two zeros (0x7F is -0); both decode to 0
    )
    assert audiocore.alaw_encode(audiocore.alaw_decode(ALL_CODES)) == ALL_CODES


@given(st.binary(max_size=2000).map(lambda b: b[: len(b) // 2 * 2]))
def test_random_buffers(pcm: bytes) -> None:
    assert audiocore.ulaw_encode(pcm) == ref.ulaw_encode(pcm)
    assert audiocore.alaw_encode(pcm) == ref.alaw_encode(pcm)
    assert audiocore.ulaw_decode(pcm) == ref.ulaw_decode(pcm)
    assert audiocore.alaw_decode(pcm) == ref.alaw_decode(pcm)


def test_buffer_types_and_sizes() -> None:
    samples = np.arange(-32768, 32768, 97, dtype=np.int16)
    assert audiocore.ulaw_encode(samples) == audiocore.ulaw_encode(samples.tobytes())
    assert audiocore.ulaw_encode(b"") == b"" and audiocore.alaw_decode(b"") == b""
    big = ALL_PCM * 3  # above the GIL-release threshold
    assert audiocore.alaw_encode(big) == ref.alaw_encode(ALL_PCM) * 3
    decoded = np.frombuffer(audiocore.ulaw_decode(bytearray(ALL_CODES)), "<i2")
    assert decoded.tolist() == [ref.ulaw_decode_code(c) for c in ALL_CODES]


def test_odd_pcm_length_is_a_value_error() -> None:
    for encode in (audiocore.ulaw_encode, audiocore.alaw_encode):
        with pytest.raises(ValueError, match="odd number of bytes"):
            encode(b"\x00\x01\x02")
    with pytest.raises(TypeError):
        audiocore.ulaw_decode("text")  # type: ignore[arg-type]
