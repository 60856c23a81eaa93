"""Resampler and resample() against the upfirdn and float32 references, on both code paths:
exact counts, split invariance, flush/reset, the one-shot alignment, bad input, threads."""

from __future__ import annotations

import pickle
from decimal import Decimal
import sys
import threading
import wave

import numpy as np
import pytest
import soxr
from hypothesis import given, settings
from hypothesis import strategies as st

import audiocore
from audiocore._ext import resample as kernel
from audiocore.resampling import design_filter
from conftest import DATA
from reference import resample as ref

RATES = (8000, 16000, 24000, 48000)
HOT = [(a, b) for a in RATES for b in RATES if a != b]
# Ratios beyond the hot ones: long Kaiser prototypes and one history plane (44.1 <-> 48 kHz,
# 8 -> 11.025 kHz, 22.05 -> 16 kHz), up to 16 rows and planes (9 <-> 16 kHz), the ends of the
# rate range, equal rates.
OTHER = [(44100, 48000), (48000, 44100), (8000, 11025), (22050, 16000), (192000, 8000),
         (8000, 192000), (16000, 16000), (12000, 8000), (9000, 16000), (16000, 9000)]
PAIRS = HOT + OTHER


@pytest.fixture(params=["simd", "portable"], autouse=True)
def code_path(request: pytest.FixtureRequest):
    if request.param == "simd" and not kernel._simd(True):
        pytest.skip("this CPU has no AVX2")  # only on machines without it
    kernel._simd(request.param == "simd")
    yield request.param
    kernel._simd(True)


def noise(frames: int, channels: int = 1, dtype: str = "int16", seed: int = 0,
          scale: float = 0.3) -> bytes:
    """Gaussian noise, with rare full-scale peaks so that int16 output saturates now and then."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(frames * channels) * scale
    x[rng.random(x.size) < 0.002] = 1.0
    if dtype == "int16":
        return np.clip(np.round(x * 32767), -32768, 32767).astype("<i2").tobytes()
    return x.astype("<f4").tobytes()


def speech(rate: int) -> bytes:
    with wave.open(str(DATA / f"speech-{rate // 1000}k.wav"), "rb") as w:
        return w.readframes(w.getnframes())


def as_array(data: bytes, dtype: str) -> np.ndarray:
    return np.frombuffer(data, "<i2" if dtype == "int16" else "<f4")


def assert_close_to_upfirdn(got: bytes, want: bytes, dtype: str) -> None:
    """Float32 arithmetic against float64: int16 within one step, and rarely (a value within
    float32 error of a rounding boundary may round either way); float32 within a few float32
    steps of full scale."""
    a, b = as_array(got, dtype), as_array(want, dtype)
    assert a.shape == b.shape
    if not a.size:
        return
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    if dtype == "int16":
        assert diff.max() <= 1
        assert np.count_nonzero(diff) <= 2 + 0.03 * diff.size
    else:
        assert diff.max() <= 4e-6 * max(1.0, float(np.abs(b).max()))


# ---------------------------------------------------------------- construction


def test_properties_and_repr() -> None:
    r = audiocore.Resampler(16000, 24000)
    assert (r.in_rate, r.out_rate, r.channels, r.quality, r.dtype) == (
        16000, 24000, 1, "hq", "int16")
    assert repr(r) == "Resampler(16000, 24000, channels=1, quality='hq', dtype='int16')"
    r2 = audiocore.Resampler(8000, 48000, channels=2, quality="fast", dtype="float32")
    assert (r2.channels, r2.quality, r2.dtype) == (2, "fast", "float32")
    with pytest.raises(AttributeError):
        r.in_rate = 8000  # type: ignore[misc]
    with pytest.raises(TypeError):
        pickle.dumps(r)


@pytest.mark.parametrize("kwargs, match", [
    (dict(in_rate=7999, out_rate=16000), "unsupported in_rate 7999 Hz"),
    (dict(in_rate=16000, out_rate=192001), "unsupported out_rate 192001 Hz"),
    (dict(in_rate=0, out_rate=16000), "unsupported in_rate"),
    (dict(in_rate=16000, out_rate=24000, channels=3), "channels must be 1 or 2"),
    (dict(in_rate=16000, out_rate=24000, quality="best"), "quality must be 'hq' or 'fast'"),
    (dict(in_rate=16000, out_rate=24000, quality="h q"), "quality must be 'hq' or 'fast'"),
    (dict(in_rate=16000.5, out_rate=24000), "unsupported in_rate 16000.5 Hz: rates must be "
     "whole numbers"),
    (dict(in_rate=16000, out_rate=float("nan")), "unsupported out_rate nan"),
    (dict(in_rate=float("inf"), out_rate=16000), "unsupported in_rate inf"),
    (dict(in_rate=7999.0, out_rate=16000), "unsupported in_rate 7999 Hz"),
    (dict(in_rate=16000, out_rate=24000, dtype="int32"), "dtype must be 'int16' or 'float32'"),
])
def test_bad_arguments_raise_value_error(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        audiocore.Resampler(**kwargs)  # type: ignore[arg-type]
    data = bytes(64)
    with pytest.raises(ValueError, match=match):
        audiocore.resample(data, **kwargs)  # type: ignore[arg-type]


def test_rate_must_be_a_whole_number() -> None:
    with pytest.raises(TypeError, match="out_rate must be a whole number of Hz"):
        audiocore.Resampler(16000, "24000")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="in_rate must be a whole number of Hz"):
        audiocore.Resampler(Decimal(16000), 24000)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="in_rate must be a whole number of Hz, not bool"):
        audiocore.Resampler(True, 24000)
    # whole floats, NumPy's included, are the rates they spell
    r = audiocore.Resampler(16000.0, np.float32(24000))  # type: ignore[arg-type]
    assert (r.in_rate, r.out_rate) == (16000, 24000) and type(r.in_rate) is int
    assert repr(r) == "Resampler(16000, 24000, channels=1, quality='hq', dtype='int16')"
    with pytest.raises(TypeError):
        design_filter(True, 24000)
    # NumPy integers are integers
    r = audiocore.Resampler(np.int64(16000), np.int32(24000), channels=np.int8(2))  # type: ignore[arg-type]
    assert (r.in_rate, r.out_rate, r.channels) == (16000, 24000, 2)
    assert type(r.in_rate) is int
    assert design_filter(np.int64(8000), 16000).up == 2  # type: ignore[arg-type]


def test_filters_are_designed_once_per_ratio() -> None:
    f = design_filter(16000, 24000)
    assert design_filter(32000, 48000) is f  # same reduced ratio 3/2
    assert design_filter(16000, 24000, "fast") is not f
    assert (f.up, f.down) == (3, 2)
    assert f.taps.dtype == np.float32 and len(f.taps) % 2 == 1
    assert not f.taps.flags.writeable and not f.phase_table.flags.writeable
    assert f.phase_table.shape == (3, f.taps_per_phase)
    assert f.phase_table.ctypes.data % 32 == 0
    # Linear phase: a symmetric prototype centred on delay_samples * down + shift.
    np.testing.assert_array_equal(f.taps, f.taps[::-1])
    assert (len(f.taps) - 1) // 2 == f.delay_samples * f.down + f.shift
    assert 0 <= f.shift < f.down


# ---------------------------------------------------------------- counts, splits, references


@pytest.mark.parametrize("in_rate, out_rate", HOT)
@pytest.mark.parametrize("push", [1, 7, 160, 320, 480, 4800])
def test_exact_counts_for_every_push_size(in_rate: int, out_rate: int, push: int) -> None:
    r = audiocore.Resampler(in_rate, out_rate)
    data = noise(4800 * 3 + 5)
    whole = audiocore.Resampler(in_rate, out_rate).process(data)
    total_in = total_out = 0
    outs = []
    for start in range(0, len(data) // 2, push):
        chunk = data[2 * start : 2 * (start + push)]
        expected = r.output_samples(len(chunk) // 2)
        out = r.process(chunk)
        total_in += len(chunk) // 2
        total_out += len(out) // 2
        assert len(out) // 2 == expected
        assert total_out == total_in * out_rate // in_rate
        outs.append(out)
    assert b"".join(outs) == whole
    tail = r.flush()
    assert len(tail) // 2 == r.delay_samples


@pytest.mark.parametrize("in_rate, out_rate", HOT)
def test_twenty_ms_pushes_give_twenty_ms_every_time(in_rate: int, out_rate: int) -> None:
    r = audiocore.Resampler(in_rate, out_rate, channels=2)
    frame = noise(in_rate // 50, channels=2)
    for _ in range(60):
        assert len(r.process(frame)) == 4 * out_rate // 50


def stream_in_pieces(r: audiocore.Resampler, data: bytes, cuts: list[int], frame: int) -> bytes:
    bounds = [0, *sorted(c * frame for c in cuts), len(data)]
    return b"".join(r.process(data[a:b]) for a, b in zip(bounds, bounds[1:]))


# 22 ratios x 2 code paths: a tenth of the profile's examples each (the "fuzz" profile
# gives 2000).
@pytest.mark.parametrize("in_rate, out_rate", PAIRS)
@settings(max_examples=max(20, settings().max_examples // 10))
@given(data=st.data())
def test_any_split_gives_the_same_bytes_as_the_references(
        in_rate: int, out_rate: int, data: st.DataObject) -> None:
    channels = data.draw(st.sampled_from([1, 2]), label="channels")
    dtype = data.draw(st.sampled_from(["int16", "float32"]), label="dtype")
    quality = data.draw(st.sampled_from(["hq", "fast"]), label="quality")
    frames = data.draw(st.integers(0, 2500), label="frames")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    cuts = data.draw(st.lists(st.integers(0, frames), max_size=12), label="cuts")
    pcm = noise(frames, channels, dtype, seed)
    frame = channels * (2 if dtype == "int16" else 4)
    filt = design_filter(in_rate, out_rate, quality)  # type: ignore[arg-type]

    r = audiocore.Resampler(in_rate, out_rate, channels=channels, quality=quality,  # type: ignore[arg-type]
                            dtype=dtype)  # type: ignore[arg-type]
    whole = r.process(pcm) + r.flush()
    pieces = stream_in_pieces(r, pcm, cuts, frame) + r.flush()
    assert pieces == whole
    assert whole == ref.canonical(pcm, filt, channels=channels, dtype=dtype, flush=True)
    assert_close_to_upfirdn(whole, ref.stream(pcm, filt, channels=channels, dtype=dtype,
                                              flush=True), dtype)
    # The one-shot function is the same stream, aligned.
    one = audiocore.resample(pcm, in_rate, out_rate, channels=channels, quality=quality,  # type: ignore[arg-type]
                             dtype=dtype)  # type: ignore[arg-type]
    assert one == whole[filt.delay_samples * frame:] if frames else one == b""
    assert len(one) // frame == frames * out_rate // in_rate


def test_both_code_paths_give_the_same_bytes() -> None:
    pcm = speech(16000)
    outs = []
    for simd in (True, False):
        kernel._simd(simd)
        for in_rate, out_rate in [(16000, 24000), (16000, 8000), (16000, 44100)]:
            outs.append(audiocore.resample(pcm, in_rate, out_rate))
    half = len(outs) // 2
    if kernel._simd(True):
        assert outs[:half] == outs[half:]


def test_one_sample_pushes_match_one_call() -> None:
    pcm = noise(700, channels=2, seed=3)
    r = audiocore.Resampler(24000, 16000, channels=2)
    whole = r.process(pcm) + r.flush()
    ones = b"".join(r.process(pcm[i : i + 4]) for i in range(0, len(pcm), 4)) + r.flush()
    assert ones == whole


def test_deterministic_across_instances() -> None:
    pcm = speech(24000)
    a = audiocore.Resampler(24000, 16000).process(pcm)
    b = audiocore.Resampler(24000, 16000).process(pcm)
    assert a == b


# ---------------------------------------------------------------- flush, reset, delay


def test_flush_then_process_is_a_new_stream() -> None:
    pcm = noise(1000, seed=5)
    r = audiocore.Resampler(8000, 24000)
    first = r.process(pcm) + r.flush()
    second = r.process(pcm) + r.flush()
    assert first == second
    assert r.flush() == b""  # nothing pushed since the last flush


def test_reset_forgets_history() -> None:
    pcm = noise(1000, seed=6)
    r = audiocore.Resampler(48000, 16000)
    fresh = r.process(pcm)
    r.process(noise(333, seed=7))
    r.reset()
    assert r.process(pcm) == fresh


@pytest.mark.parametrize("in_rate, out_rate", HOT)
def test_delay_samples_is_the_true_delay_and_under_3_ms(in_rate: int, out_rate: int) -> None:
    r = audiocore.Resampler(in_rate, out_rate, dtype="float32")
    assert r.delay_samples / out_rate <= 0.003
    # A 1 kHz tone in; output frame j must be the tone at time (j - delay) / out_rate.
    f = 1000.0
    n = in_rate // 5
    x = 0.5 * np.sin(2 * np.pi * f * np.arange(n) / in_rate + 0.4)
    y = np.frombuffer(r.process(x.astype("<f4").tobytes()), "<f4").astype(np.float64)
    settled = slice(out_rate // 100, None)
    arg = 2 * np.pi * f * (np.arange(len(y)) - r.delay_samples) / out_rate + 0.4
    basis = np.stack([np.sin(arg), np.cos(arg)], axis=1)[settled]
    (a, b), *_ = np.linalg.lstsq(basis, y[settled], rcond=None)
    assert abs(np.arctan2(b, a)) < 1e-4  # radians: a thousandth of a sample or less
    assert abs(np.hypot(a, b) / 0.5 - 1) < 1e-3


def test_resample_is_time_aligned_like_soxr() -> None:
    pcm = speech(16000)
    ours = np.frombuffer(audiocore.resample(pcm, 16000, 24000), "<i2").astype(np.float64)
    theirs = soxr.resample(np.frombuffer(pcm, "<i2"), 16000, 24000, quality="VHQ").astype(
        np.float64)
    assert len(ours) == len(pcm) // 2 * 3 // 2
    n = min(len(ours), len(theirs))
    err = ours[:n] - theirs[:n]
    # Aligned the same way, the two differ only by their filters' edges and soxr's dither.
    snr = 10 * np.log10(np.sum(theirs[:n] ** 2) / np.sum(err**2))
    assert snr > 40


def test_float32_is_not_clipped_and_int16_saturates() -> None:
    # A full-scale square wave overshoots (Gibbs): int16 must clamp, never wrap.
    x = np.where((np.arange(4000) // 40) % 2 == 0, 32767, -32768).astype("<i2")
    y = np.frombuffer(audiocore.resample(x.tobytes(), 16000, 48000), "<i2")
    f = design_filter(16000, 48000)
    exact = np.frombuffer(ref.aligned(x.astype("<f4").tobytes(), f, dtype="float32"), "<f4")
    assert exact.max() > 32767.5 and exact.min() < -32768.5
    assert np.all(y[exact > 32767.5] == 32767)
    assert np.all(y[exact < -32768.5] == -32768)
    loud = np.frombuffer(audiocore.resample((x / 32768).astype("<f4").tobytes(), 16000, 48000,
                                            dtype="float32"), "<f4")
    assert loud.max() > 1.0


# ---------------------------------------------------------------- inputs and errors


def test_accepts_any_contiguous_buffer_and_checks_typed_ones() -> None:
    x16 = np.frombuffer(noise(480, seed=9), "<i2").copy()
    r = audiocore.Resampler(16000, 24000)
    want = r.process(x16.tobytes()) + r.flush()
    for data in (x16, memoryview(x16.tobytes()), bytearray(x16.tobytes()),
                 memoryview(x16.tobytes()).cast("h")):
        assert r.process(data) + r.flush() == want
    with pytest.raises(TypeError, match="wrong dtype.*int16.*got float32 .*'f'"):
        r.process(x16.astype(np.float32))
    with pytest.raises(TypeError, match="wrong dtype"):
        r.process(x16.astype(np.int32))
    with pytest.raises(TypeError, match="wrong dtype.*float32"):
        audiocore.Resampler(16000, 24000, dtype="float32").process(x16)
    with pytest.raises(TypeError, match="wrong dtype"):
        audiocore.resample(x16.astype(">i2"), 16000, 24000)
    with pytest.raises(ValueError, match="C-contiguous"):
        r.process(np.zeros(100, np.int16)[::2])
    with pytest.raises(TypeError):
        r.process(12345)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not 'str'"):
        r.process("pcm")  # type: ignore[arg-type]
    assert r.process(np.zeros(0, np.int16)) == b""


@pytest.mark.parametrize("channels, dtype, nbytes, frame", [
    (1, "int16", 3, 2), (2, "int16", 6, 4), (1, "float32", 6, 4), (2, "float32", 12, 8)])
def test_partial_frames_raise_and_change_nothing(channels: int, dtype: str, nbytes: int,
                                                 frame: int) -> None:
    r = audiocore.Resampler(24000, 16000, channels=channels, dtype=dtype)  # type: ignore[arg-type]
    fresh = audiocore.Resampler(24000, 16000, channels=channels, dtype=dtype)  # type: ignore[arg-type]
    pcm = noise(500, channels, dtype, seed=11)
    assert r.process(pcm[: 7 * frame]) == fresh.process(pcm[: 7 * frame])
    with pytest.raises(ValueError, match=f"whole number of {frame}-byte frames; got {nbytes}"):
        r.process(bytes(nbytes))
    with pytest.raises(ValueError, match="whole number"):
        r.process_into(bytes(nbytes), bytearray(100))
    with pytest.raises(ValueError, match="whole number"):
        audiocore.resample(bytes(nbytes), 24000, 16000, channels=channels, dtype=dtype)  # type: ignore[arg-type]
    assert r.process(pcm[7 * frame :]) + r.flush() == fresh.process(pcm[7 * frame :]) + fresh.flush()


@settings(max_examples=100)
@given(st.binary(max_size=600), st.sampled_from([1, 2]), st.sampled_from(["int16", "float32"]))
def test_any_bytes_give_a_valid_result_or_value_error(data: bytes, channels: int,
                                                      dtype: str) -> None:
    r = audiocore.Resampler(24000, 16000, channels=channels, dtype=dtype)  # type: ignore[arg-type]
    frame = channels * (2 if dtype == "int16" else 4)
    if len(data) % frame:
        with pytest.raises(ValueError):
            r.process(data)
    else:
        out = r.process(data) + r.flush()
        assert len(out) == (len(data) // frame * 2 // 3 + (r.delay_samples if data else 0)) * frame


def test_process_into_and_output_samples() -> None:
    pcm = noise(320, seed=12)
    r = audiocore.Resampler(16000, 24000)
    assert r.output_samples(320) == 480
    assert r.output_samples(0) == 0
    with pytest.raises(ValueError, match="negative"):
        r.output_samples(-1)
    small = bytearray(959)
    with pytest.raises(ValueError, match="960 bytes needed, 959 available"):
        r.process_into(pcm, small)
    buf = bytearray(1000)
    assert r.process_into(pcm, buf) == 960
    assert bytes(buf[:960]) == audiocore.Resampler(16000, 24000).process(pcm)
    with pytest.raises(TypeError):
        r.process_into(pcm, b"read-only" * 200)  # type: ignore[arg-type]


def test_no_allocation_besides_the_result() -> None:
    r = audiocore.Resampler(16000, 24000)
    frame = noise(320, seed=13)
    for _ in range(100):
        r.process(frame)
    before = sys.getallocatedblocks()
    for _ in range(10000):
        r.process(frame)
    assert sys.getallocatedblocks() - before < 50


# ---------------------------------------------------------------- threads and the GIL


def test_long_pushes_release_the_gil_and_overlapping_calls_are_refused() -> None:
    r = audiocore.Resampler(48000, 16000, channels=2)
    pcm = noise(48000 * 30, channels=2, seed=14)
    result: list[bytes] = []
    worker = threading.Thread(target=lambda: result.append(r.process(pcm)))
    refused = 0
    worker.start()
    while worker.is_alive() and not refused:
        try:
            r.process(b"")  # checks that no other call is running on r
        except RuntimeError as exc:
            assert "two threads at once" in str(exc)
            refused += 1
    worker.join()
    # We ran Python code while the worker was inside its C loop: the GIL was released.
    assert refused
    assert result and len(result[0]) == 4 * (48000 * 30 // 3)



# ---------------------------------------------------------------- python-soxr's spellings

SOXR_NAMES = {"VHQ": "hq", "HQ": "hq", "MQ": "fast", "LQ": "fast", "QQ": "fast"}


def _aligned_snr(ours: np.ndarray, theirs: np.ndarray) -> float:
    n = min(len(ours), len(theirs))
    a, b = ours[:n].astype(np.float64), theirs[:n].astype(np.float64)
    return float(10 * np.log10(np.sum(b**2) / np.sum((a - b) ** 2)))


def test_soxr_quality_names_map_by_intent() -> None:
    pcm = speech(16000)[:32000]
    for name, ours in SOXR_NAMES.items():
        for spelling in (name, name.lower(), name.capitalize(), f"soxr_{name.lower()}"):
            soxr._quality_to_enum(spelling)  # a spelling soxr itself takes
            r = audiocore.Resampler(16000, 24000, quality=spelling)  # type: ignore[arg-type]
            assert r.quality == ours
            assert r.process(pcm) == audiocore.Resampler(16000, 24000, quality=ours).process(pcm)
    with pytest.raises(ValueError, match="'VHQ', 'HQ': hq; 'MQ', 'LQ', 'QQ': fast"):
        audiocore.Resampler(16000, 24000, quality=4)  # type: ignore[arg-type]


@pytest.mark.parametrize("quality", ["HQ", "VHQ", "MQ", "LQ"])
def test_soxr_resample_call_gives_what_soxr_gives(quality: str) -> None:
    """``resample(x, in_rate, out_rate, quality)`` positionally, with float rates, as soxr
    is called: the same length and time alignment as soxr's output (they differ by their
    filters and soxr's dither only)."""
    x = np.frombuffer(speech(16000), "<i2")
    for in_rate, out_rate in ((16000.0, 24000.0), (16000.0, 8000.0), (16000, 44100.0)):
        ours = np.frombuffer(audiocore.resample(x, in_rate, out_rate, quality), "<i2")
        theirs = soxr.resample(x, in_rate, out_rate, quality)
        # ours floor(n * out / in) frames; soxr rounds to nearest (a difference that stays)
        assert len(ours) == len(x) * int(out_rate) // int(in_rate)
        assert len(theirs) == round(len(x) * out_rate / in_rate)
        # The same signal, aligned: they differ by their band edges (soxr's LQ rolls off
        # much earlier: 21 dB at 16 -> 8 kHz, HQ 35 dB) and soxr's dither; one frame of
        # misalignment either way costs at least 10 dB more.
        snr = _aligned_snr(ours, theirs)
        assert snr > 18, (in_rate, out_rate)
        assert snr > 10 + max(_aligned_snr(ours[1:], theirs), _aligned_snr(ours, theirs[1:]))
        assert ours.tobytes() == audiocore.resample(
            x, int(in_rate), int(out_rate), quality=SOXR_NAMES[quality])


@pytest.mark.parametrize("dtype", ["int16", "float32"])
def test_resampler_takes_resample_streams_positional_arguments(dtype: str) -> None:
    """``Resampler(in_rate, out_rate, channels, dtype, quality)`` is soxr ResampleStream's
    order: fed the same chunks, both streams carry the same signal (ours trails by
    delay_samples, soxr by what it holds back)."""
    pcm = np.frombuffer(speech(16000), "<i2")[:48000]
    x = np.repeat(pcm, 2).reshape(-1, 2)
    x = x.astype(np.int16) if dtype == "int16" else (x / 32768).astype(np.float32)
    ours = audiocore.Resampler(16000.0, 48000.0, 2, dtype, "VHQ")  # type: ignore[arg-type]
    theirs = soxr.ResampleStream(16000.0, 48000.0, 2, dtype, "VHQ")
    assert (ours.channels, ours.dtype, ours.quality) == (2, dtype, "hq")
    got, want = [], []
    for i in range(0, len(x), 320):
        got.append(ours.process(x[i:i + 320]))
        want.append(theirs.resample_chunk(x[i:i + 320], last=i + 320 >= len(x)))
    a = np.frombuffer(b"".join(got) + ours.flush(), dtype).reshape(-1, 2)[ours.delay_samples:]
    b = np.concatenate(want)
    assert b.shape[1] == 2 and len(a) == len(x) * 3
    assert abs(len(b) - len(a)) <= 1
    assert _aligned_snr(a[:, 0], b[:, 0]) > 35 and _aligned_snr(a[:, 1], b[:, 1]) > 35
