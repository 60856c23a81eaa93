"""Resampling glue: the filter design (once per ratio), its cache, and :func:`resample`.

The streaming kernel is :class:`audiocore.Resampler` (``audiocore/_ext/resample.pyx``); it asks
:func:`design_filter` for its filter when it is built. A filter depends only on the reduced
ratio ``up/down`` and the quality (16 -> 24 kHz and 32 -> 48 kHz share one), and the same
float32 taps serve both dtypes, so the cache key is ``(up, down, quality)``.

Specification, relative to the Nyquist frequency of the lower of the two rates:

- passband edge 0.85, stopband edge 1.1: output below 0.9 x Nyquist holds no image or alias
  product of anything at or above 1.1 x Nyquist (an 8.8 kHz tone at 24 -> 16 kHz, or the
  9 kHz image of a 7 kHz tone at 16 -> 24 kHz, is suppressed);
- ``"hq"``: 40 taps per phase counted at the lower rate (more for downsampling, in
  proportion), minimax (equiripple): stopband >= 100 dB, passband ripple < 0.01 dB,
  group delay under 2.5 ms for every pair of 8/16/24/48 kHz;
- ``"fast"``: 28 taps at the lower rate: stopband >= 72 dB, ripple < 0.025 dB (an upsampler
  by 6 has 5 images in its output band, so a tone's SNR is the stopband less 7 dB).

Minimax designs of up to ``LAWSON_MAX_TAPS`` taps (every pair of 8/16/24/48 kHz) come from
Lawson's iteration on a weighted least-squares fit, in NumPy: a few milliseconds, and no
``scipy.signal`` import, which alone takes one to two seconds. Longer ones up to a ratio of 32
use Parks-McClellan (``scipy.signal.remez``). Ratios with ``max(up, down) > 32`` (44.1 <-> 48
kHz, say) have prototypes too long for either to converge; they get a Kaiser-windowed sinc
with the same band edges and the same stopband, which needs 56 (hq) or 36 (fast) taps at the
lower rate, so more delay.
"""

from __future__ import annotations

import collections
import math
import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from audiocore._ext.resample import MAX_RATE, MIN_RATE, Resampler, _set_designer

if TYPE_CHECKING:
    from audiocore._ext._typing import PCMLike

__all__ = ["ResampleFilter", "design_filter", "resample"]

PASS_EDGE = 0.85  # x the lower Nyquist frequency
STOP_EDGE = 1.1
# Prototypes up to this many times the lower rate get a minimax design.
REMEZ_MAX_RATIO = 32
# Minimax prototypes up to this length come from Lawson's iteration (NumPy), longer ones from
# Parks-McClellan (scipy.signal).
LAWSON_MAX_TAPS = 480


@dataclass(frozen=True)
class _Spec:
    taps: int  # per phase, at the lower rate, equiripple design
    stop_weight: float  # Parks-McClellan weight of the stopband against the passband
    kaiser_taps: int  # per phase, at the lower rate, Kaiser design
    kaiser_atten_db: float


_SPECS: dict[str, _Spec] = {
    "hq": _Spec(taps=40, stop_weight=100.0, kaiser_taps=56, kaiser_atten_db=100.0),
    "fast": _Spec(taps=28, stop_weight=10.0, kaiser_taps=36, kaiser_atten_db=72.0),
}


@dataclass(frozen=True, eq=False)
class ResampleFilter:
    """A designed polyphase filter for the ratio ``up/down`` (reduced).

    ``taps`` is the float32 prototype low-pass at ``up`` x the input rate: odd length, linear
    phase, passband gain ``up``. Output ``j`` is ``sum_k taps[k] * x_up[j*down + shift - k]``
    (``x_up``: the input with ``up - 1`` zeros after each sample), so it trails the input by
    ``delay_samples`` output samples exactly. ``phase_table`` holds the same taps as the
    kernel reads them: ``up`` rows of ``taps_per_phase``, each reversed,
    32-byte aligned. Read-only; shared by every Resampler of this ratio and quality.
    """

    up: int
    down: int
    quality: str
    method: str  # "lawson", "remez", "kaiser" or "identity" (equal rates)
    taps: npt.NDArray[np.float32]
    taps_per_phase: int
    shift: int
    delay_samples: int
    phase_table: npt.NDArray[np.float32]


def _aligned_zeros(shape: tuple[int, int], align: int = 64) -> npt.NDArray[np.float32]:
    n = shape[0] * shape[1]
    raw = np.zeros(n + align // 4, np.float32)
    start = (-raw.ctypes.data % align) // 4
    return raw[start : start + n].reshape(shape)


def _lawson_lowpass(n: int, fs: float, pass_edge: float, stop_edge: float,
                    stop_weight: float, iterations: int = 30,
                    grid: int = 8) -> npt.NDArray[np.float64]:
    """A linear-phase low-pass of odd length ``n`` (unit passband gain) minimising the
    weighted peak error, by Lawson's iteration: each round solves a weighted least-squares fit
    on a dense frequency grid, then multiplies every grid point's weight by its error, which
    drives the fit towards equiripple. Edges and ``fs`` share one unit."""
    half = (n - 1) // 2
    points = grid * half // 2 + 1
    freqs = np.concatenate([np.linspace(0.0, pass_edge, points),
                            np.linspace(stop_edge, fs / 2, points)])
    basis = np.cos(np.outer(2 * np.pi * freqs / fs, np.arange(half + 1)))
    desired = (freqs <= pass_edge).astype(np.float64)
    band_weight = np.where(freqs <= pass_edge, 1.0, stop_weight)
    weight = band_weight.copy()
    for _ in range(iterations):
        weighted = basis * weight[:, None]
        coef = np.linalg.solve(weighted.T @ basis, weighted.T @ desired)
        # The square root damps the update; plain Lawson oscillates on these long filters.
        weight *= np.sqrt(np.abs(basis @ coef - desired) * band_weight)
        weight /= weight.max()
    return np.concatenate([coef[:0:-1] / 2, coef[:1], coef[1:] / 2])


def _prototype(up: int, down: int, spec: _Spec) -> tuple[npt.NDArray[np.float64], int, str]:
    """The prototype taps (float64, odd length, gain ``up``) and the taps per phase."""
    if up == down == 1:  # equal rates: a copy
        return np.ones(1), 8, "identity"
    # Frequencies in units of the lower rate; the input rate is 1 (upsampling) or down/up.
    f_in = 1.0 if up >= down else down / up
    fs_proto = up * f_in
    pass_edge, stop_edge = PASS_EDGE / 2, STOP_EDGE / 2
    if max(up, down) <= REMEZ_MAX_RATIO:
        per_phase = math.ceil(spec.taps * f_in)
        n = up * per_phase - (1 - (up * per_phase) % 2)
        if n <= LAWSON_MAX_TAPS:
            h = _lawson_lowpass(n, fs_proto, pass_edge, stop_edge, spec.stop_weight)
            return h * up, per_phase, "lawson"
        # scipy.signal takes a second or two to import: only long designs pay it
        from scipy import signal  # type: ignore[import-untyped, unused-ignore]

        h = signal.remez(n, [0, pass_edge, stop_edge, fs_proto / 2], [1, 0],
                         weight=[1, spec.stop_weight], fs=fs_proto, maxiter=100)
        return np.asarray(h, np.float64) * up, per_phase, "remez"
    per_phase = math.ceil(spec.kaiser_taps * f_in)
    n = up * per_phase - (1 - (up * per_phase) % 2)
    cutoff = (pass_edge + stop_edge) / 2 / fs_proto  # cycles per prototype sample
    atten = spec.kaiser_atten_db  # Kaiser's formula for the window's beta (> 50 dB)
    beta = 0.1102 * (atten - 8.7)
    k = np.arange(n) - (n - 1) / 2
    h = 2 * cutoff * np.sinc(2 * cutoff * k) * np.kaiser(n, beta)
    return h * (up / h.sum()), per_phase, "kaiser"


def _build(up: int, down: int, quality: str) -> ResampleFilter:
    proto, per_phase, method = _prototype(up, down, _SPECS[quality])
    taps = proto.astype(np.float32)
    taps.setflags(write=False)
    center = (len(taps) - 1) // 2
    delay, shift = divmod(center, down)
    # Phase p holds taps p, p + up, p + 2 up, ..., reversed and aligned to the right.
    padded = np.zeros(up * per_phase, np.float32)
    padded[: len(taps)] = taps
    table = _aligned_zeros((up, per_phase))
    table[:] = padded.reshape(per_phase, up).T[:, ::-1]
    table.setflags(write=False)
    return ResampleFilter(up, down, quality, method, taps, per_phase, shift, delay, table)


# Designed filters by (up, down, quality), least recently used first: a bounded cache (a
# design can hold megabytes; a server fed arbitrary rates must not keep one per rate), in
# which the few ratios a process really uses stay.
_CACHE: collections.OrderedDict[tuple[int, int, str], ResampleFilter] = collections.OrderedDict()
_CACHE_SIZE = 32


def _design(up: int, down: int, quality: str) -> ResampleFilter:
    key = (up, down, quality)
    filt = _CACHE.get(key)
    if filt is None:
        filt = _build(up, down, quality)
        while len(_CACHE) >= _CACHE_SIZE:
            _CACHE.popitem(last=False)
        _CACHE[key] = filt
    else:
        _CACHE.move_to_end(key)
    return filt


def design_filter(in_rate: int, out_rate: int,
                  quality: Literal["hq", "fast"] = "hq") -> ResampleFilter:
    """The filter :class:`Resampler` uses for ``in_rate -> out_rate`` at ``quality``.

    Designed on first use, then cached per reduced ratio and quality. A design of the
    8/16/24/48 kHz pairs takes a few milliseconds (NumPy only); longer prototypes (ratios up
    to 32 beyond 480 taps) use ``scipy.signal.remez``, whose first import takes a second or
    two: call this at start-up for such ratios. Coprime ratios near 1 (191999 -> 192000 Hz)
    have prototypes of millions of taps and take seconds.
    """
    rates = []
    for name, rate in (("in_rate", in_rate), ("out_rate", out_rate)):
        if isinstance(rate, bool):
            raise TypeError(f"{name} must be an int (Hz), not bool")
        try:
            rate = operator.index(rate)  # int, NumPy integers
        except TypeError:
            raise TypeError(f"{name} must be an int (Hz), not {type(rate).__name__}") from None
        if not MIN_RATE <= rate <= MAX_RATE:
            raise ValueError(f"unsupported {name} {rate} Hz: rates must be integers from "
                             f"{MIN_RATE} to {MAX_RATE} Hz")
        rates.append(rate)
    if quality not in _SPECS:
        raise ValueError(f"quality must be 'hq' or 'fast', not {quality!r}")
    g = math.gcd(*rates)
    return _design(rates[1] // g, rates[0] // g, quality)


_set_designer(_design)


def resample(data: PCMLike, in_rate: int | float, out_rate: int | float,
             quality: Literal["hq", "fast", "HQ", "VHQ", "MQ", "LQ", "QQ", "vhq", "mq", "lq",
                              "qq"] = "hq",
             *, channels: int = 1, dtype: Literal["int16", "float32"] = "int16") -> bytes:
    """Resample a whole signal at once; returns ``bytes`` of the same dtype and channels.

    The arguments are those of :class:`Resampler`, in ``soxr.resample``'s order (``quality``
    the fourth; ``channels`` and ``dtype`` by keyword: they are not read from an array).

    The output is time-aligned with the input, as ``soxr.resample`` does: the filter's
    group delay is removed and the tail flushed, so output frame ``j`` is the signal at time
    ``j / out_rate`` and there are exactly ``floor(frames * out_rate / in_rate)`` frames.
    It equals what a :class:`Resampler` gives for ``process(data) + flush()`` with its first
    ``delay_samples`` frames dropped. The work runs with the GIL released for long inputs.
    ``data`` is raw bytes or an array of ``dtype``, 1-D or C-contiguous (frames, channels);
    another dtype is a TypeError, another shape a ValueError.
    """
    r = Resampler(in_rate, out_rate, channels=channels, quality=quality, dtype=dtype)
    return r._process_aligned(data)
