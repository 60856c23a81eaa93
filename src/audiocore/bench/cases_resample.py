"""Resampling, per 20 ms frame and one-shot over 60 s of speech, beside soxr and scipy.

Peers:
- ``soxr.ResampleStream`` at HQ and VHQ, int16 in and out, fed the same 20 ms frames (it
  returns bursts: nothing for some frames, several frames' worth for others);
- ``scipy.signal.resample_poly`` per frame: it is not a stream, so each 20 ms frame is
  filtered on its own (zero-padded at both ends, float64 out); the cost of a stateless
  polyphase filter per frame, not the same output;
- one-shot: ``soxr.resample`` (HQ, VHQ) and ``resample_poly`` over the whole signal.

``extras()`` gives each resampler's latency at 20 ms pushes: ours is ``delay_samples`` (the
output trails the input by that much, every frame is returned at once); soxr's is the input
it holds back (its output is time-aligned, so what it holds is its delay), largest and
steady-state. ``plot(path)`` writes the magnitude responses of ours and soxr HQ.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import soxr
from scipy import signal

import audiocore
from audiocore.bench._frames import speech
from audiocore.bench.harness import Case, Impl

RATES = (8000, 16000, 24000, 48000)
HOT = [(a, b) for a in RATES for b in RATES if a != b]


def _snr_db(ref: np.ndarray, other: np.ndarray) -> float:
    n = min(len(ref), len(other))
    ref, other = ref[:n].astype(np.float64), other[:n].astype(np.float64)
    return float(10 * np.log10(np.sum(ref**2) / max(np.sum((ref - other) ** 2), 1e-30)))


def _speech_seconds(rate: int, seconds: float) -> bytes:
    """The bundled sentence at ``rate``, repeated to ``seconds``."""
    one = speech(rate)
    need = int(rate * seconds) * 2
    return (one * (need // len(one) + 1))[:need]


def _stream_check(in_rate: int, out_rate: int) -> None:
    """Ours (less its delay) and soxr HQ stream the same speech to within 40 dB SNR."""
    pcm = _speech_seconds(in_rate, 2.0)
    step = in_rate // 50 * 2
    r = audiocore.Resampler(in_rate, out_rate)
    ours = b"".join(r.process(pcm[i : i + step]) for i in range(0, len(pcm), step)) + r.flush()
    y = np.frombuffer(ours, "<i2")[r.delay_samples :]
    s = soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality="HQ")
    x = np.frombuffer(pcm, "<i2")
    theirs = np.concatenate([s.resample_chunk(x[i : i + step // 2])
                             for i in range(0, len(x), step // 2)]
                            + [s.resample_chunk(x[:0], last=True)])
    assert len(y) == len(x) * out_rate // in_rate
    snr = _snr_db(theirs, y)
    assert snr > 40, f"ours vs soxr HQ, {in_rate} -> {out_rate}: SNR {snr:.1f} dB"


def _frame_case(in_rate: int, out_rate: int, targets: dict[str, float]) -> Case:
    frame = speech(in_rate)[in_rate // 50 * 2 * 20 : in_rate // 50 * 2 * 21]
    x16 = np.frombuffer(frame, "<i2").copy()
    r = audiocore.Resampler(in_rate, out_rate)
    hq = soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality="HQ")
    vhq = soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality="VHQ")
    g = np.gcd(in_rate, out_rate)
    up, down = out_rate // g, in_rate // g

    def check() -> None:
        assert len(r.process(frame)) == out_rate // 50 * 2
        _stream_check(in_rate, out_rate)
        # resample_poly's filter is scipy's own; on a whole signal it is aligned like ours.
        pcm = _speech_seconds(in_rate, 2.0)
        ours = np.frombuffer(audiocore.resample(pcm, in_rate, out_rate), "<i2")
        poly = signal.resample_poly(np.frombuffer(pcm, "<i2").astype(np.float64), up, down)
        assert _snr_db(poly, ours) > 30

    return Case(
        "resample", f"resample {in_rate // 1000}->{out_rate // 1000} kHz, 20 ms frame "
        f"({in_rate // 50} samples)",
        Impl("audiocore", r.process, (frame,)),
        [Impl("soxr HQ stream", hq.resample_chunk, (x16,)),
         Impl("soxr VHQ stream", vhq.resample_chunk, (x16,)),
         Impl("resample_poly per frame", lambda a: signal.resample_poly(a, up, down), (x16,))],
        targets=targets, check=check,
        note="soxr streams return bursts (0 or several frames per call); resample_poly "
             "filters each frame alone (not a stream), float64 out",
    )


def _oneshot_case(in_rate: int, out_rate: int, targets: dict[str, float]) -> Case:
    pcm = _speech_seconds(in_rate, 60.0)
    x16 = np.frombuffer(pcm, "<i2").copy()
    g = np.gcd(in_rate, out_rate)
    up, down = out_rate // g, in_rate // g

    def check() -> None:
        ours = np.frombuffer(audiocore.resample(pcm[: in_rate * 4], in_rate, out_rate), "<i2")
        theirs = soxr.resample(x16[: in_rate * 2], in_rate, out_rate, quality="HQ")
        assert len(ours) == len(theirs)
        assert _snr_db(theirs, ours) > 40

    return Case(
        "resample", f"resample {in_rate // 1000}->{out_rate // 1000} kHz one-shot, 60 s speech",
        Impl("audiocore", lambda d: audiocore.resample(d, in_rate, out_rate), (pcm,)),
        [Impl("soxr.resample HQ", lambda a: soxr.resample(a, in_rate, out_rate, "HQ"), (x16,)),
         Impl("soxr.resample VHQ", lambda a: soxr.resample(a, in_rate, out_rate, "VHQ"), (x16,)),
         Impl("resample_poly", lambda a: signal.resample_poly(a, up, down), (x16,))],
        targets=targets, check=check,
        note="all time-aligned; ours and soxr int16 out, resample_poly float64 out",
    )


def cases() -> list[Case]:
    def construct_check() -> None:
        assert audiocore.Resampler(16000, 24000).delay_samples > 0

    return [
        _frame_case(16000, 24000, {"soxr HQ stream": 3.0}),
        _frame_case(24000, 16000, {"soxr HQ stream": 3.0}),
        _frame_case(8000, 16000, {}),
        _frame_case(48000, 16000, {}),
        _oneshot_case(16000, 24000, {"soxr.resample HQ": 1.0}),
        _oneshot_case(24000, 16000, {"soxr.resample HQ": 1.0}),
        Case("resample", "construct a 16->24 kHz resampler (filter cached)",
             Impl("audiocore", lambda: audiocore.Resampler(16000, 24000)),
             [Impl("soxr.ResampleStream HQ",
                   lambda: soxr.ResampleStream(16000, 24000, 1, dtype="int16", quality="HQ"))],
             check=construct_check),
    ]


def _soxr_held(in_rate: int, out_rate: int, quality: str) -> dict[str, float]:
    """What soxr holds back while fed 20 ms frames of speech: the input it has taken but
    not yet returned as output, in input samples and in ms; the largest, and the mean once
    steady (after the first second)."""
    s = soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality=quality)
    pcm = np.frombuffer(_speech_seconds(in_rate, 3.0), "<i2")
    step = in_rate // 50
    held, total_in, total_out = [], 0, 0
    for i in range(0, len(pcm), step):
        total_out += len(s.resample_chunk(pcm[i : i + step]))
        total_in += step
        held.append(total_in - total_out * in_rate / out_rate)
    steady = float(np.mean(held[50:]))
    return {"max_samples": round(max(held)), "max_ms": round(max(held) / in_rate * 1000, 2),
            "steady_samples": round(steady), "steady_ms": round(steady / in_rate * 1000, 2)}


def extras() -> dict[str, object]:
    """Latency per pair at 20 ms pushes: ours (the filter's delay, output every frame) beside
    what soxr HQ and VHQ hold back (their output is time-aligned, so that is their delay)."""
    delays: dict[str, object] = {}
    for in_rate, out_rate in HOT:
        r = audiocore.Resampler(in_rate, out_rate)
        delays[f"resample latency {in_rate // 1000}->{out_rate // 1000} kHz, 20 ms pushes"] = {
            "audiocore_delay_samples": r.delay_samples,
            "audiocore_delay_ms": round(r.delay_samples / out_rate * 1000, 3),
            "soxr_hq_held_input": _soxr_held(in_rate, out_rate, "HQ"),
            "soxr_vhq_held_input": _soxr_held(in_rate, out_rate, "VHQ"),
        }
    return delays


def report(figures: dict[str, object]) -> list[str]:
    """The latency figures of :func:`extras` as a table, in ms."""
    lines = ["latency at 20 ms pushes, ms: audiocore's group delay (a full frame out per push) "
             "beside the input soxr holds back (steady / max)",
             f"{'pair':<12}{'audiocore':>10}{'soxr HQ':>18}{'soxr VHQ':>18}"]
    for key, value in figures.items():
        assert isinstance(value, dict)
        hq, vhq = value["soxr_hq_held_input"], value["soxr_vhq_held_input"]
        pair = key.removeprefix("resample latency ").split(",")[0]
        lines.append(f"{pair:<12}{value['audiocore_delay_ms']:>10.2f}"
                     f"{hq['steady_ms']:>10.1f} / {hq['max_ms']:<5.1f}"
                     f"{vhq['steady_ms']:>10.1f} / {vhq['max_ms']:<5.1f}")
    return lines


def _gains_db(y: np.ndarray, rate: int, freqs: list[float], amplitude: float) -> list[float]:
    """Levels of ``freqs`` in ``y`` relative to ``amplitude``, fitted jointly by least
    squares (so a strong tone does not leak into a weak product's estimate)."""
    t = np.arange(len(y)) / rate
    cols = []
    for f in freqs:
        cols += [np.cos(2 * np.pi * f * t), np.sin(2 * np.pi * f * t)]
    c, *_ = np.linalg.lstsq(np.stack(cols, axis=1), y, rcond=None)
    return [float(20 * np.log10(max(np.hypot(c[2 * i], c[2 * i + 1]) / amplitude, 1e-9)))
            for i in range(len(freqs))]


def _fold(freq: float, rate: int) -> float:
    return abs((freq + rate / 2) % rate - rate / 2)


def _response(fn: Callable[[np.ndarray], np.ndarray], in_rate: int, out_rate: int,
              freqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Measured magnitude response of a resampler, as (frequency, dB) points. Input tone f
    gives the gain at f where f passes (below the output Nyquist frequency), the level of its
    alias where it cannot (downsampling), and the level of its first image, which the filter
    sets at in_rate - f (upsampling)."""
    t = np.arange(in_rate // 4) / in_rate
    points = []
    for f in freqs:
        y = np.asarray(fn((0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32)), np.float64)
        y = y[out_rate // 50 : -out_rate // 50]
        if f >= out_rate / 2:  # downsampling, the tone cannot pass: its alias
            points.append((f, _gains_db(y, out_rate, [_fold(f, out_rate)], 0.5)[0]))
            continue
        image = in_rate - f
        if out_rate > in_rate and image < out_rate / 2 and abs(image - f) > 50:
            gain, level = _gains_db(y, out_rate, [f, image], 0.5)
            points += [(f, gain), (image, level)]
        else:
            points.append((f, _gains_db(y, out_rate, [f], 0.5)[0]))
    points.sort()
    return np.array([p[0] for p in points]), np.array([p[1] for p in points])


def plot(path: Path) -> None:
    """Magnitude responses of ours (designed and measured) and soxr HQ (measured), for
    16 -> 24 and 24 -> 16 kHz."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from audiocore.resampling import design_filter

    fig, axes = plt.subplots(2, 2, figsize=(12, 7))
    for col, (in_rate, out_rate) in enumerate([(16000, 24000), (24000, 16000)]):
        top = max(in_rate, out_rate) / 2
        freqs = np.linspace(50, in_rate / 2 - 50, 160)

        def ours(x: np.ndarray) -> np.ndarray:
            return np.frombuffer(audiocore.resample(x.tobytes(), in_rate, out_rate,
                                                    dtype="float32"), "<f4")

        def theirs(x: np.ndarray) -> np.ndarray:
            return np.asarray(soxr.resample(x, in_rate, out_rate, quality="HQ"))

        filt = design_filter(in_rate, out_rate)
        w, h = signal.freqz(filt.taps.astype(np.float64), worN=8192, fs=filt.up * in_rate)
        designed = 20 * np.log10(np.maximum(np.abs(h) / filt.up, 1e-9))
        keep = w <= top
        for row, (ylim, title) in enumerate([((-160, 5), "magnitude"),
                                             ((-0.05, 0.05), "passband detail")]):
            ax = axes[row, col]
            ax.plot(w[keep], designed[keep], color="tab:blue", lw=1,
                    label="audiocore hq (designed)")
            for fn, name, style in [(ours, "audiocore hq (measured)", "o"),
                                    (theirs, "soxr HQ (measured)", "x")]:
                f, db = _response(fn, in_rate, out_rate, freqs)
                ax.plot(f, db, style, ms=3, label=name)
            low = min(in_rate, out_rate) / 2
            for edge in (0.85 * low, low, 1.1 * low):
                ax.axvline(edge, color="grey", lw=0.6, ls=":")
            ax.set_xlim(0, top if row == 0 else 0.9 * low)
            ax.set_ylim(*ylim)
            ax.set_xlabel("frequency (Hz)")
            ax.set_ylabel("gain (dB)")
            ax.set_title(f"{in_rate // 1000} -> {out_rate // 1000} kHz, {title}")
            ax.grid(alpha=0.3)
        axes[0, col].legend(fontsize=7, loc="lower left")
    fig.suptitle("Resampler magnitude responses (tones: float32, gain at the tone, its image "
                 "or its alias); dotted: 0.85, 1.0, 1.1 x lower Nyquist")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
