"""JitterQueue against the reference model (tests/reference/jitter.py), operation by operation,
and its API contract: arguments, errors that leave the queue untouched, stubs, allocation."""

from __future__ import annotations

import pickle
import random
import struct
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import audiocore
from reference.jitter import ModelJitterQueue, opus_samples48
from sim.opuslib_decoder import FlakyDecoder, OpuslibDecoder, encode
from sim import playout as sim


def _frames(seed: int, count: int, n: int, kind: int) -> bytes:
    """count frames of n samples: 0 silence, 1 quiet noise, 2 loud noise, 3 a tone."""
    rng = random.Random(seed)
    if kind == 0:
        return bytes(2 * n * count)
    if kind == 3:
        phase = rng.random() * 6.28
        x = np.round(9000 * np.sin(phase + 0.2 * np.arange(n * count))).astype("<i2")
        return x.tobytes()
    amp = 60 if kind == 1 else 12000
    return struct.pack(f"<{n * count}h", *(rng.randint(-amp, amp) for _ in range(n * count)))


def _same_outcome(ours: Any, model: Any, *args: Any, **kw: Any) -> Any:
    """Call both; they must return the same value or raise the same exception type."""
    try:
        expected = model(*args, **kw)
    except (ValueError, TypeError) as exc:
        with pytest.raises(type(exc)):
            ours(*args, **kw)
        return exc
    assert ours(*args, **kw) == expected
    return expected


class Twins(RuleBasedStateMachine):
    """A kernel queue ``q`` and a model ``m`` fed the same operations agree on every figure."""

    q: audiocore.JitterQueue
    m: ModelJitterQueue

    @rule(fade=st.booleans())
    def clear(self, fade: bool) -> None:
        assert self.q.clear(fade=fade) == self.m.clear(fade=fade)

    @invariant()
    def same_figures(self) -> None:
        if hasattr(self, "q"):
            assert self.q.stats == self.m.stats
            assert self.q.played_ms == self.m.played_ms
            assert self.q.buffered_ms == self.m.buffered_ms
            assert self.q.item == self.m.item
            assert self.q.playing == self.m.playing
            assert self.q.mode == self.m.mode
            assert self.q.buffered_ms <= self.q.max_ms


class QueueMachine(Twins):
    """Random pushes (ordered, reordered, duplicated, wrapped, bad), pops, marks and clears:
    every pop, return value and figure equals the model's."""

    decoder = False

    @initialize(
        config=st.sampled_from([
            dict(rate=8000, frame_ms=20, channels=1),
            dict(rate=16000, frame_ms=10, channels=1),
            dict(rate=8000, frame_ms=20, channels=2),
        ]),
        timing=st.sampled_from([
            dict(), dict(target_ms=20, min_ms=0, max_ms=200), dict(target_ms=100, max_ms=400),
            dict(target_ms=0, min_ms=0, max_ms=60),
        ]),
        adaptive=st.booleans(),
        seq_start=st.sampled_from([0, 65530, 2**32 - 4, 1000]),
    )
    def create(self, config: dict[str, int], timing: dict[str, int], adaptive: bool,
               seq_start: int) -> None:
        kw: dict[str, Any] = dict(config, **timing, adaptive=adaptive)
        if timing.get("target_ms", 60) > timing.get("max_ms", 1000) - config["frame_ms"]:
            kw["target_ms"] = kw["min_ms"] = 0
        self.q = audiocore.JitterQueue(kw.pop("rate"), **kw)
        self.m = ModelJitterQueue(self.q.rate, **kw)
        self.n = self.q.frame_bytes // 2
        self.seq = seq_start
        self.ts = 5000
        self.items = 0

    def _pcm(self, seed: int, count: int, kind: int) -> bytes:
        return _frames(seed, count, self.n, kind)

    @rule(ahead=st.integers(-6, 8), seed=st.integers(0, 2**16), kind=st.integers(0, 3),
          advance=st.booleans())
    def push_seq(self, ahead: int, seed: int, kind: int, advance: bool) -> None:
        seq = (self.seq + ahead) % 2**32 if self.seq > 0xFFFF else (self.seq + ahead) % 2**16
        if advance:
            self.seq += 1
        pcm = self._pcm(seed, 1, kind)
        _same_outcome(self.q.push, self.m.push, pcm, seq=seq)

    @rule(ahead=st.integers(-6, 8), count=st.integers(1, 3), seed=st.integers(0, 2**16),
          kind=st.integers(0, 3), jitter=st.integers(-4, 4))
    def push_timestamp(self, ahead: int, count: int, seed: int, kind: int, jitter: int) -> None:
        ts = self.ts + ahead * self.q.frame_ms + jitter
        self.ts += self.q.frame_ms
        _same_outcome(self.q.push, self.m.push, self._pcm(seed, count, kind), timestamp=ts)

    @rule(samples=st.integers(0, 900), seed=st.integers(0, 2**16), kind=st.integers(0, 3))
    def push_stream(self, samples: int, seed: int, kind: int) -> None:
        pcm = _frames(seed, 1, samples * self.q.channels, kind)
        _same_outcome(self.q.push, self.m.push, bytearray(pcm))

    @rule(far=st.sampled_from([200, 5000, 40000]), seed=st.integers(0, 99))
    def push_far(self, far: int, seed: int) -> None:
        """A sequence jump (a restarted sender) forwards or backwards."""
        self.seq = (self.seq + far) % 2**16
        _same_outcome(self.q.push, self.m.push, self._pcm(seed, 1, 2), seq=self.seq)

    @rule(data=st.sampled_from([b"", b"\x01", b"\x00" * 7]), seq=st.integers(-1, 2**32))
    def push_bad(self, data: bytes, seq: int) -> None:
        before = (self.q.stats, self.q.buffered_ms, self.q.mode)
        _same_outcome(self.q.push, self.m.push, data, seq=seq)
        if self.q.mode == before[2]:
            assert (self.q.stats, self.q.buffered_ms) == before[:2] or data == b""

    @rule(times=st.integers(1, 12))
    def pop(self, times: int) -> None:
        for _ in range(times):
            out = self.q.pop()
            assert len(out) == self.q.frame_bytes
            assert out == self.m.pop()

    @rule()
    def mark(self) -> None:
        self.items += 1
        self.q.mark(f"item{self.items}")
        self.m.mark(f"item{self.items}")


TestQueueMachine = QueueMachine.TestCase


class OpusMachine(Twins):
    """The same with Opus packets, each queue with its own audiocore OpusDecoder: the kernel
    calls it in C (c_decode / c_conceal), the model through its Python methods; or both an
    opuslib-based decoder, which the kernel calls through its Python methods too."""

    @initialize(fec=st.booleans(), frame_ms=st.sampled_from([20, 40, 60]),
                timestamps=st.booleans(), opuslib=st.booleans())
    def create(self, fec: bool, frame_ms: int, timestamps: bool, opuslib: bool) -> None:
        make = OpuslibDecoder if opuslib else audiocore.OpusDecoder
        self.q = audiocore.JitterQueue(16000, decoder=make(16000), max_ms=600)
        self.m = ModelJitterQueue(16000, decoder=make(16000), max_ms=600)
        speech = sim.speech(16000)[: 16000 * 3].tobytes()
        self.packets = encode(speech, 16000, frame_ms=frame_ms, fec=fec)
        self.frame_ms = frame_ms
        self.next = 0
        self.timestamps = timestamps

    @rule(ahead=st.integers(-3, 5), advance=st.booleans())
    def push(self, ahead: int, advance: bool) -> None:
        i = max(0, self.next + ahead) % len(self.packets)
        if advance:
            self.next += 1
        key = "timestamp" if self.timestamps else "seq"
        value = i * self.frame_ms if self.timestamps else i
        _same_outcome(self.q.push, self.m.push, self.packets[i], **{key: value})

    @rule(data=st.binary(max_size=12))
    def push_garbage(self, data: bytes) -> None:
        key = {"timestamp" if self.timestamps else "seq": self.next * self.frame_ms}
        try:
            opus_samples48(data)
        except audiocore.DecodeError:
            before = self.q.stats
            with pytest.raises(audiocore.DecodeError, match="invalid Opus packet"):
                self.q.push(data, **key)
            with pytest.raises(audiocore.DecodeError):
                self.m.push(data, **key)
            assert self.q.stats == before
            return
        _same_outcome(self.q.push, self.m.push, data, **key)

    @rule(times=st.integers(1, 8))
    def pop(self, times: int) -> None:
        for _ in range(times):
            assert self.q.pop() == self.m.pop()


TestOpusMachine = OpusMachine.TestCase
TestOpusMachine.settings = settings(max_examples=25, stateful_step_count=30)


# ---------------------------------------------------------------------------------- contract


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="rate"):
        audiocore.JitterQueue(0)
    with pytest.raises(ValueError, match="whole number of samples"):
        audiocore.JitterQueue(44100, frame_ms=1)
    with pytest.raises(ValueError, match="min_ms <= target_ms"):
        audiocore.JitterQueue(16000, target_ms=1000)
    with pytest.raises(ValueError, match="min_ms <= target_ms"):
        audiocore.JitterQueue(16000, min_ms=80, target_ms=60)
    with pytest.raises(TypeError):
        audiocore.JitterQueue(16000, 20)  # type: ignore[misc]
    with pytest.raises(TypeError, match="decode"):
        audiocore.JitterQueue(16000, decoder=object())
    with pytest.raises(ValueError, match="decodes at 48000 Hz"):
        audiocore.JitterQueue(16000, decoder=audiocore.OpusDecoder(48000))
    with pytest.raises(ValueError, match="channel"):
        audiocore.JitterQueue(48000, channels=1, decoder=audiocore.OpusDecoder(48000, 2))
    with pytest.raises(ValueError, match="rate must be one of"):
        audiocore.JitterQueue(44100, decoder=OpuslibDecoder(48000))
    with pytest.raises(ValueError, match="multiple of 2.5"):
        audiocore.JitterQueue(16000, frame_ms=1, target_ms=0, min_ms=0,
                              decoder=audiocore.OpusDecoder(16000))
    with pytest.raises(TypeError):
        pickle.dumps(audiocore.JitterQueue(16000))


def test_bad_pushes_raise_and_change_nothing() -> None:
    q = audiocore.JitterQueue(16000)
    frame = bytes(640)
    assert q.push(frame, seq=7)
    before = (q.stats, q.buffered_ms)
    with pytest.raises(ValueError, match="whole number of 20 ms frames"):
        q.push(bytes(100), seq=8)
    with pytest.raises(ValueError, match="seq must be in"):
        q.push(frame, seq=2**32)
    with pytest.raises(ValueError, match="seq must be in"):
        q.push(frame, seq=-1)
    with pytest.raises(TypeError):
        q.push(frame, seq=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        q.push("text", seq=8)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seq mode"):
        q.push(frame)
    with pytest.raises(ValueError, match="seq mode"):
        q.push(frame, timestamp=40)
    t = audiocore.JitterQueue(16000)
    assert t.push(frame, timestamp=2**60 - 1)
    assert not t.push(frame, timestamp=-(2**60))        # far in the past: late, no overflow
    assert t.stats["late"] == 1
    with pytest.raises(ValueError, match="timestamp must be in"):
        t.push(frame, timestamp=2**60)
    with pytest.raises(ValueError, match="packets 1"):
        q.push(frame * 2, seq=8)
    with pytest.raises(ValueError, match="does not fit"):
        audiocore.JitterQueue(16000, target_ms=0, min_ms=0, max_ms=40).push(frame * 3, seq=1)
    assert (q.stats, q.buffered_ms) == before
    s = audiocore.JitterQueue(16000, channels=2)
    with pytest.raises(ValueError, match="whole samples"):
        s.push(bytes(6))
    assert s.mode is None and s.stats["received"] == 0


def test_numpy_int_sequence_numbers_and_buffers() -> None:
    q = audiocore.JitterQueue(8000, target_ms=20)
    pcm = np.arange(160, dtype="<i2")
    assert q.push(pcm, seq=np.uint16(3))
    assert q.push(memoryview(pcm.tobytes()), seq=np.int64(4))
    assert q.stats["received"] == 2


def test_opus_packets_are_validated_at_push() -> None:
    q = audiocore.JitterQueue(16000, decoder=audiocore.OpusDecoder(16000))
    with pytest.raises(audiocore.DecodeError, match="empty") as info:
        q.push(b"", seq=1)
    assert info.value.offset == 0
    with pytest.raises(audiocore.DecodeError, match="odd"):
        q.push(bytes([0x79, 1, 2, 3]), seq=1)         # code 1, odd payload
    with pytest.raises(ValueError, match="10 ms is not a whole number of 20 ms"):
        q.push(bytes([0x00 | 0, 0xFF]), seq=1)        # SILK 10 ms, code 0
    assert q.mode is None


@settings(max_examples=1000)
@given(st.binary(min_size=1, max_size=40))
def test_queue_takes_exactly_the_packets_the_opus_parser_takes(data: bytes) -> None:
    """Random bytes as Opus: the queue refuses (DecodeError, state unchanged) exactly what
    the shared packet parser refuses, and queues the rest for their duration."""
    q = audiocore.JitterQueue(48000, frame_ms=5, decoder=audiocore.OpusDecoder(48000),
                              target_ms=0, min_ms=0, max_ms=200)
    try:
        samples = audiocore.opus_packet_samples(data)
    except audiocore.DecodeError:
        with pytest.raises(audiocore.DecodeError):
            q.push(data, seq=1)
        assert q.mode is None and q.stats["received"] == 0
        return
    assert samples == opus_samples48(data)
    if samples % 240:
        with pytest.raises(ValueError, match="not a whole number"):
            q.push(data, seq=1)
    else:
        assert q.push(data, seq=1)
        assert q.buffered_ms == samples // 48
        assert len(q.pop()) == q.frame_bytes


def test_pop_allocates_only_its_frame() -> None:
    q = audiocore.JitterQueue(16000, target_ms=40, adaptive=True)
    frame = _frames(1, 1, 320, 2)
    for i in range(200):
        q.push(frame, seq=i % 65536)
        q.pop()
    before = sys.getallocatedblocks()
    for i in range(200, 20200):
        q.push(frame, seq=i % 65536)
        q.pop()
    assert sys.getallocatedblocks() - before < 50
    assert q.stats["played"] > 19000


def test_repr_and_properties() -> None:
    q = audiocore.JitterQueue(24000, frame_ms=10, channels=2, target_ms=40)
    assert q.frame_bytes == 24000 // 100 * 2 * 2
    assert (q.rate, q.frame_ms, q.channels, q.target_ms) == (24000, 10, 2, 40)
    assert q.mode is None and q.item is None and q.played_ms == 0 and not q.playing
    assert "target 40 ms" in repr(q)
    assert q.pop() == bytes(q.frame_bytes)
    assert q.stats["idle"] == 1


# ------------------------------------------------------------- long random scenarios


@settings(max_examples=30)
@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(["seq", "stream", "opus"]))
def test_random_scenarios_equal_the_model(seed: int, kind: str) -> None:
    """Seconds of random arrivals (jitter, bursts, loss, duplicates, stalls, drift), with marks
    and clears at random ticks: kernel and model agree on every frame and every figure, which
    exercises the paths a short state machine never reaches (draining, insertion, flushes,
    Opus FEC and concealment, decoder failures)."""
    rng = np.random.default_rng(seed)
    rate = int(rng.choice([8000, 16000]))
    frame_ms = int(rng.choice([10, 20]))
    kw: dict[str, Any] = dict(frame_ms=frame_ms, target_ms=int(rng.choice([20, 60, 100])),
                              max_ms=int(rng.choice([400, 1000, 3000])),
                              adaptive=bool(rng.random() < 0.8))
    qkw, mkw = dict(kw), dict(kw)
    if kind == "opus":
        # audiocore's decoder (C calls from the kernel), an opuslib one (Python calls), or
        # one that breaks its contract now and then
        which = rng.integers(0, 3)
        every = int(rng.integers(7, 40))
        make: Any = [lambda: audiocore.OpusDecoder(rate), lambda: OpuslibDecoder(rate),
                     lambda: FlakyDecoder(rate, every=every)][which]
        qkw["decoder"], mkw["decoder"] = make(), make()
    q = audiocore.JitterQueue(rate, **qkw)
    m = ModelJitterQueue(rate, **mkw)
    fs = rate * frame_ms // 1000
    frames = int(rng.integers(150, 400)) * 20 // frame_ms
    content = sim.random_content(rng, frames * fs).tobytes()
    events = rng.random(10_000)
    offset = [0]
    if kind == "stream":
        chunks, t, off = [], 0.0, 0
        speed = rng.choice([0.7, 1.0, 4.0, 20.0])
        big = rng.random() < 0.2
        while off < len(content):
            nb = 2 * int(rng.integers(1, (60 if big else 3) * fs))
            chunks.append(sim.Arrival(t, nb))
            off += nb
            t += nb / 2 / rate * 1000 / speed * rng.uniform(0.3, 1.7)
        arrivals = chunks

        def push(queue: Any, a: sim.Arrival) -> Any:
            return queue.push(content[offset[0] : offset[0] + a.frame])
    elif kind == "opus":
        packets = encode(content, rate, frame_ms=frame_ms, fec=bool(rng.random() < 0.7))
        arrivals = sim.random_trace(rng, len(packets), frame_ms)
        key = str(rng.choice(["seq", "timestamp", "auto"]))
        if key == "auto":
            arrivals = sorted({a.frame: a for a in arrivals}.values(), key=lambda a: a.ms)

        def push(queue: Any, a: sim.Arrival) -> Any:
            if key == "auto":
                return queue.push(packets[a.frame])
            value = a.frame * (frame_ms if key == "timestamp" else 1)
            return queue.push(packets[a.frame], **{key: value})
    else:
        arrivals = sim.random_trace(rng, frames, frame_ms)
        fb = 2 * fs

        def push(queue: Any, a: sim.Arrival) -> Any:
            return queue.push(content[a.frame * fb : (a.frame + 1) * fb], seq=a.frame % 65536)

    def both_push(_: Any, a: sim.Arrival) -> bool:
        expected = push(m, a)
        assert push(q, a) == expected
        if kind == "stream":
            offset[0] += a.frame
        return bool(expected)

    def before_pop(_: Any, tick: int) -> None:
        r = events[tick % events.size]
        if r < 0.01:
            assert q.clear() == m.clear()
        elif r < 0.04:
            q.mark(tick)
            m.mark(tick)
        assert q.pop() == m.pop()
        assert q.stats == m.stats
        assert (q.played_ms, q.buffered_ms, q.item) == (m.played_ms, m.buffered_ms, m.item)

    class Both:
        stats = property(lambda self: q.stats)
        buffered_ms = property(lambda self: q.buffered_ms)

        def pop(self) -> bytes:
            return b""

    sim.run(Both(), arrivals, both_push, frame_ms=frame_ms, extra_ms=500,
            before_pop=before_pop)


def test_many_arrivals_in_one_tick_overflow_the_delay_window() -> None:
    """Hundreds of packets in one tick, newest first (each later than the last): the running
    minimum keeps its most recent 256 entries; kernel and model agree."""
    q = audiocore.JitterQueue(8000, frame_ms=10, max_ms=6000)
    m = ModelJitterQueue(8000, frame_ms=10, max_ms=6000)
    pcm = _frames(3, 1, 80, 2)
    for seq in range(400, 0, -1):
        assert q.push(pcm, seq=seq) == m.push(pcm, seq=seq)
    for _ in range(500):
        assert q.pop() == m.pop()
    assert q.stats == m.stats


@pytest.mark.slow
def test_an_hour_of_history_renormalises_the_histogram() -> None:
    """15 minutes of ticks with jitter: the forgetting weights grow past 1e150 and are
    rescaled; the target still equals the model's."""
    rng = np.random.default_rng(11)
    q = audiocore.JitterQueue(8000, frame_ms=10, max_ms=400, target_ms=40)
    m = ModelJitterQueue(8000, frame_ms=10, max_ms=400, target_ms=40)
    pcm = bytes(160)
    late: list[int] = []
    for tick in range(90_000):
        if rng.random() < 0.97:
            late.append(tick)
        while late and late[0] <= tick - rng.integers(0, 3):
            seq = late.pop(0) % 65536
            assert q.push(pcm, seq=seq) == m.push(pcm, seq=seq)
        assert q.pop() == m.pop()
        if tick % 10000 == 0:
            assert q.stats == m.stats
    assert m.rescales >= 1 and q.stats == m.stats


def test_periodic_spikes_over_quiet_audio_grow_the_delay_by_insertion() -> None:
    """Every 10th packet 160 ms late over a quiet line: the target rises, and the queue grows
    its delay by inserting frames while the audio is quiet. Kernel and model agree."""
    arrivals = sorted((sim.Arrival(i * 20.0 + 30 + (160 if i % 10 == 3 else 0), i)
                       for i in range(800)), key=lambda a: a.ms)
    content = np.random.default_rng(1).integers(-40, 40, 800 * 320).astype("<i2").tobytes()
    q, m = audiocore.JitterQueue(16000), ModelJitterQueue(16000)
    runs = [sim.run(queue, arrivals,
                    lambda qq, a: qq.push(content[a.frame * 640 : (a.frame + 1) * 640],
                                          seq=a.frame))
            for queue in (q, m)]
    assert runs[0].outputs == runs[1].outputs
    assert q.stats == m.stats
    assert q.stats["inserted"] > 0 and q.target_ms >= 160


@pytest.mark.parametrize("fade", [True, False])
def test_clear_without_fade_emits_nothing_of_the_old_audio(fade: bool) -> None:
    """A sink that flushed its own playback (ACS StopAudio) gets nothing of the cleared audio
    again with fade=False: silence, and new audio exactly as a fresh queue plays it, even when
    the new audio arrives at once; with fade=True the old audio fades out first."""
    old = sim.speech(16000)[:16000].tobytes()  # 1 s of speech
    new = (np.sin(np.arange(8000) * 2 * np.pi * 440 / 16000) * 12000).astype("<i2").tobytes()
    fresh = audiocore.JitterQueue(16000)
    fresh.push(new)
    theirs = [fresh.pop() for _ in range(20)]

    def barge_in() -> audiocore.JitterQueue:
        q = audiocore.JitterQueue(16000)
        q.push(old)
        assert any(any(q.pop()) for _ in range(10))
        q.clear(fade=fade)
        return q

    q = barge_in()
    q.push(new)  # the next response arrives before the next tick
    ours = [q.pop() for _ in range(20)]
    idle = barge_in()
    after = [idle.pop() for _ in range(3)]
    if fade:
        assert ours != theirs  # the old audio fades out first
        assert any(after[0])
    else:
        assert ours == theirs
        assert after == [bytes(640)] * 3
