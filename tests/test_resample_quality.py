"""Resampler quality by measurement, beside soxr measured in the same test.

Tones at -6 dBFS, int16, pushed in 20 ms frames; the first 100 ms of output are skipped. The
tone (and any image or alias product) is fitted by least squares, so amplitude and phase
are the signal's own:

- SNR: tone power over the power of everything else (images, aliases, rounding);
- image / alias products: each product frequency's amplitude relative to the tone;
- passband: the fitted amplitude relative to the input's.

The filter specification (audiocore.resampling) puts the passband edge at 0.85 and the
stopband edge at 1.1 times the lower Nyquist frequency, so tones up to 0.85 x Nyquist are
measured for SNR and flatness, tones up to 0.9 x Nyquist for images (upsampling: the images
fall at 1.1 x Nyquist and above), and tones from 1.1 x Nyquist up for aliases
(downsampling).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import soxr

import audiocore
from audiocore.resampling import design_filter

RATES = (8000, 16000, 24000, 48000)
HOT = [(a, b) for a in RATES for b in RATES if a != b]
AMPLITUDE = 32768 * 10 ** (-6 / 20)  # -6 dBFS
SECONDS = 0.6


def tone(rate: int, freq: float, seconds: float = SECONDS) -> np.ndarray:
    n = int(rate * seconds)
    x = AMPLITUDE * np.sin(2 * np.pi * freq * np.arange(n) / rate + 0.3)
    return np.round(x).astype("<i2")


def ours(x: np.ndarray, in_rate: int, out_rate: int, quality: str = "hq") -> np.ndarray:
    r = audiocore.Resampler(in_rate, out_rate, quality=quality)  # type: ignore[arg-type]
    step = in_rate // 50
    out = b"".join(r.process(x[i : i + step]) for i in range(0, len(x), step))
    return np.frombuffer(out, "<i2").astype(np.float64)[out_rate // 10 :]


def soxr_hq(x: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    s = soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality="HQ")
    step = in_rate // 50
    out = np.concatenate([s.resample_chunk(x[i : i + step]) for i in range(0, len(x), step)])
    return out.astype(np.float64)[out_rate // 10 :]


@dataclass
class Fit:
    amplitudes: list[float]  # of each frequency asked for
    residual_power: float


def fit(y: np.ndarray, rate: int, freqs: list[float]) -> Fit:
    t = np.arange(len(y)) / rate
    cols = []
    for f in freqs:
        cols += [np.cos(2 * np.pi * f * t), np.sin(2 * np.pi * f * t)]
    basis = np.stack(cols, axis=1)
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    amps = [float(np.hypot(coef[2 * i], coef[2 * i + 1])) for i in range(len(freqs))]
    return Fit(amps, float(np.mean((y - basis @ coef) ** 2)))


def snr_db(y: np.ndarray, rate: int, freq: float) -> float:
    f = fit(y, rate, [freq])
    return 10 * np.log10(f.amplitudes[0] ** 2 / 2 / f.residual_power)


def fold(freq: float, rate: int) -> float:
    """Where a frequency lands after sampling at ``rate``."""
    return abs((freq + rate / 2) % rate - rate / 2)


def products(freq: float, in_rate: int, out_rate: int) -> list[float]:
    """Image (k * in_rate +- freq) and alias frequencies a tone can make, in the output band."""
    found = set()
    for k in range(0, out_rate // in_rate + 3):
        for f in (k * in_rate - freq, k * in_rate + freq):
            p = fold(abs(f), out_rate)
            if abs(p - freq) > 20 and 20 < p < out_rate / 2 - 20:
                found.add(round(p, 6))
    return sorted(found)


def low_nyquist(in_rate: int, out_rate: int) -> float:
    return min(in_rate, out_rate) / 2


def passband_tones(in_rate: int, out_rate: int) -> list[float]:
    ny = low_nyquist(in_rate, out_rate)
    return [100.0, 997.0, 0.25 * ny, 0.5 * ny, 0.7 * ny, 0.85 * ny]


def image_tones(in_rate: int, out_rate: int) -> list[float]:
    """Tones whose images or aliases land below 0.9 x the output Nyquist frequency."""
    ny = low_nyquist(in_rate, out_rate)
    if out_rate > in_rate:
        tones = [300.0, 0.47 * ny, 0.85 * ny, 0.9 * ny]
        if (in_rate, out_rate) == (16000, 24000):
            tones.append(7000.0)  # image at 9 kHz
        return tones
    top = in_rate / 2
    tones = [1.1 * ny, 1.3 * ny, 0.5 * (1.1 * ny + top), 0.95 * top]
    if (in_rate, out_rate) == (24000, 16000):
        tones.append(8800.0)  # alias at 7.2 kHz
    return tones


@pytest.mark.parametrize("in_rate, out_rate", HOT)
def test_hq_tone_snr_beside_soxr_hq(in_rate: int, out_rate: int) -> None:
    for freq in passband_tones(in_rate, out_rate):
        x = tone(in_rate, freq)
        mine = snr_db(ours(x, in_rate, out_rate), out_rate, freq)
        theirs = snr_db(soxr_hq(x, in_rate, out_rate), out_rate, freq)
        assert mine >= 85, (freq, mine, theirs)
        assert mine >= theirs - 1, (freq, mine, theirs)


@pytest.mark.parametrize("quality, floor_db", [("hq", 80), ("fast", 60)])
@pytest.mark.parametrize("in_rate, out_rate", HOT)
def test_images_and_aliases_are_suppressed(in_rate: int, out_rate: int, quality: str,
                                           floor_db: float) -> None:
    for freq in image_tones(in_rate, out_rate):
        x = tone(in_rate, freq)
        y = ours(x, in_rate, out_rate, quality)
        if out_rate > in_rate:  # the tone passes; its images must not
            found = products(freq, in_rate, out_rate)
            assert found, freq
            f = fit(y, out_rate, [freq, *found])
            worst = max(f.amplitudes[1:]) / f.amplitudes[0]
        else:  # the tone is above the output band; its alias must not come through
            alias = fold(freq, out_rate)
            worst = fit(y, out_rate, [alias]).amplitudes[0] / AMPLITUDE
        level_db = 20 * np.log10(max(worst, 1e-12))
        assert level_db <= -floor_db, (freq, level_db)


@pytest.mark.parametrize("quality", ["hq", "fast"])
@pytest.mark.parametrize("in_rate, out_rate", HOT)
def test_passband_is_flat_within_a_tenth_of_a_db(in_rate: int, out_rate: int,
                                                 quality: str) -> None:
    for freq in passband_tones(in_rate, out_rate):
        y = ours(tone(in_rate, freq), in_rate, out_rate, quality)
        gain_db = 20 * np.log10(fit(y, out_rate, [freq]).amplitudes[0] / AMPLITUDE)
        assert abs(gain_db) <= 0.1, (freq, gain_db)


@pytest.mark.parametrize("in_rate, out_rate", HOT)
def test_fast_tone_snr(in_rate: int, out_rate: int) -> None:
    for freq in passband_tones(in_rate, out_rate):
        y = ours(tone(in_rate, freq), in_rate, out_rate, "fast")
        assert snr_db(y, out_rate, freq) >= 60, freq


def test_the_measure_sees_a_bad_resampler() -> None:
    # The same measures on a resampler known to image (linear interpolation) must fail, so
    # the assertions above cannot pass by construction.
    x = tone(16000, 7000.0).astype(np.float64)
    t = np.arange(int(len(x) * 1.5)) / 1.5
    y = np.interp(t, np.arange(len(x)), x)[2400:]
    f = fit(y, 24000, [7000.0, *products(7000.0, 16000, 24000)])
    assert 20 * np.log10(max(f.amplitudes[1:]) / f.amplitudes[0]) > -40
    assert snr_db(y, 24000, 7000.0) < 40


SPEC = {"hq": (100.0, 0.01), "fast": (70.0, 0.05)}  # stopband dB, passband +- dB


@pytest.mark.parametrize("quality", ["hq", "fast"])
# The hot pairs, the edges of the Parks-McClellan range (up or down 32, and 31/32), and
# Kaiser designs.
@pytest.mark.parametrize("in_rate, out_rate", HOT + [
    (9000, 16000), (8000, 192000), (192000, 8000), (32000, 31000), (31000, 32000),
    (17000, 15000), (44100, 48000), (48000, 44100), (44100, 16000), (8000, 11025)])
def test_designed_response_meets_the_specification(in_rate: int, out_rate: int,
                                                   quality: str) -> None:
    from scipy import signal

    f = design_filter(in_rate, out_rate, quality)  # type: ignore[arg-type]
    low = min(in_rate, out_rate)
    w, h = signal.freqz(f.taps.astype(np.float64), worN=1 << 17, fs=f.up * in_rate)
    db = 20 * np.log10(np.maximum(np.abs(h) / f.up, 1e-12))
    stop_db, ripple_db = SPEC[quality]
    assert db[w >= 0.55 * low].max() <= -stop_db
    assert np.abs(db[w <= 0.425 * low]).max() <= ripple_db


@pytest.mark.parametrize("in_rate, out_rate", [(44100, 48000), (48000, 44100), (9000, 16000)])
def test_other_ratios_tone_snr_beside_soxr_hq(in_rate: int, out_rate: int) -> None:
    for freq in passband_tones(in_rate, out_rate)[1::2]:
        x = tone(in_rate, freq)
        mine = snr_db(ours(x, in_rate, out_rate), out_rate, freq)
        theirs = snr_db(soxr_hq(x, in_rate, out_rate), out_rate, freq)
        assert mine >= 85 and mine >= theirs - 1, (freq, mine, theirs)
