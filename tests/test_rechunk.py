"""Rechunker against the plain reference: any pushes, the same frames."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import audiocore
from reference.rechunk import RefRechunker


@given(st.integers(1, 700), st.lists(st.binary(max_size=2000), max_size=30), st.booleans())
def test_pushes_give_the_reference_frames(frame: int, pushes: list[bytes], pad: bool) -> None:
    ours, ref = audiocore.Rechunker(frame), RefRechunker(frame)
    for data in pushes:
        assert ours.push(data) == ref.push(data)
        assert ours.pending == len(ours) == len(ref.held)
    assert ours.flush(pad) == ref.flush(pad)
    assert ours.pending == 0 and ours.flush() == []


def test_buffers_of_any_kind_and_state() -> None:
    r = audiocore.Rechunker(4)
    assert r.frame_bytes == 4
    assert r.push(np.arange(3, dtype=np.int16)) == [b"\x00\x00\x01\x00"]
    assert r.push(bytearray(b"ab")) == [b"\x02\x00ab"]
    assert r.push(memoryview(b"xyz")) == []
    assert "holding 3 bytes" in repr(r)
    r.reset()
    assert r.pending == 0 and r.flush() == []
    assert r.push(b"") == []
    assert r.push(b"q") == [] and r.flush(pad=False) == [b"q"]
    with pytest.raises(ValueError):
        audiocore.Rechunker(0)
    with pytest.raises(TypeError):
        r.push("text")  # type: ignore[arg-type]
