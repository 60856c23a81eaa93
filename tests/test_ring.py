"""RingBuffer against a bytearray model, driven by hypothesis state machines."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import audiocore
from reference.ring import Full, ModelRing

chunks = st.binary(max_size=80)
counts = st.integers(-2, 90)


class RingMachine(RuleBasedStateMachine):
    @initialize(capacity=st.integers(1, 64), overflow=st.sampled_from(["error", "drop_oldest"]))
    def create(self, capacity: int, overflow: str) -> None:
        self.ring = audiocore.RingBuffer(capacity, overflow)  # type: ignore[arg-type]
        self.model = ModelRing(capacity, overflow)

    @rule(data=chunks)
    def write(self, data: bytes) -> None:
        try:
            expected = self.model.write(data)
        except Full:
            before = self.ring.peek()
            with pytest.raises(audiocore.BufferFullError):
                self.ring.write(data)
            assert self.ring.peek() == before
        else:
            assert self.ring.write(bytearray(data)) == expected

    @rule(n=counts)
    def read(self, n: int) -> None:
        assert self.ring.read(n) == self.model.read(n)

    @rule(n=counts)
    def peek(self, n: int) -> None:
        assert self.ring.peek(n) == self.model.peek(n)

    @rule(size=st.integers(0, 70))
    def readinto(self, size: int) -> None:
        buf = bytearray(b"\xee" * size)
        got = self.ring.readinto(buf)
        expected = self.model.read(size)
        assert got == len(expected)
        assert buf[:got] == expected and buf[got:] == b"\xee" * (size - got)

    @rule(n=st.integers(0, 70))
    def skip(self, n: int) -> None:
        assert self.ring.skip(n) == self.model.skip(n)

    @rule()
    def clear(self) -> None:
        assert self.ring.clear() == self.model.clear()

    @invariant()
    def sizes_agree(self) -> None:
        if hasattr(self, "ring"):
            assert len(self.ring) == len(self.model.data)
            assert self.ring.free == self.model.free
            assert self.ring.dropped == self.model.dropped
            assert bool(self.ring) == bool(self.model.data)


TestRingMachine = RingMachine.TestCase


def test_wraps_inside_one_call() -> None:
    ring = audiocore.RingBuffer(10)
    ring.write(b"abcdefg")
    assert ring.read(5) == b"abcde"
    ring.write(b"hijklmn")  # wraps: 3 bytes at the end, 4 at the start
    assert ring.peek() == b"fghijklmn"
    assert ring.read() == b"fghijklmn"
    assert len(ring) == 0 and ring.free == 10


def test_error_overflow_writes_nothing() -> None:
    ring = audiocore.RingBuffer(8)
    ring.write(b"12345")
    with pytest.raises(audiocore.BufferFullError, match="3 of 8 bytes free") as info:
        ring.write(b"abcd")
    assert isinstance(info.value, audiocore.AudioCoreError)
    assert ring.read() == b"12345"


def test_drop_oldest_keeps_newest_bytes() -> None:
    ring = audiocore.RingBuffer(6, overflow="drop_oldest")
    ring.write(b"abcd")
    assert ring.write(b"efgh") == 4
    assert ring.peek() == b"cdefgh" and ring.dropped == 2
    assert ring.write(b"0123456789") == 6
    assert ring.read() == b"456789" and ring.dropped == 2 + 6 + 4


def test_accepts_numpy_and_memoryview() -> None:
    ring = audiocore.RingBuffer(64)
    ring.write(np.arange(8, dtype=np.int16))
    ring.write(memoryview(b"xyz"))
    out = np.zeros(8, np.int16)
    assert ring.readinto(out) == 16
    assert out.tolist() == list(range(8))
    assert ring.read() == b"xyz"


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="positive"):
        audiocore.RingBuffer(0)
    with pytest.raises(ValueError, match="overflow must be"):
        audiocore.RingBuffer(10, overflow="wrap")  # type: ignore[arg-type]
    ring = audiocore.RingBuffer(10)
    with pytest.raises(ValueError, match="negative"):
        ring.skip(-1)
    with pytest.raises(TypeError):
        ring.write("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ring.readinto(b"read-only")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(ring)


def test_no_allocation_besides_the_result() -> None:
    ring = audiocore.RingBuffer(4096)
    frame = bytes(640)
    for _ in range(100):
        ring.write(frame)
        ring.read(640)
    before = sys.getallocatedblocks()
    for _ in range(10000):
        ring.write(frame)
        ring.read(640)
    assert sys.getallocatedblocks() - before < 50
    assert "capacity=4096" in repr(ring)
