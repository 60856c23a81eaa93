"""Plain resampling references for audiocore.Resampler.

``stream`` is the definition in float64 with scipy.signal.upfirdn: zero-stuff by ``up``,
filter with the prototype taps, keep every ``down``-th sample starting at ``shift``. It is
what the kernel computes up to float32 rounding.

``canonical`` computes the same outputs with the kernel's documented float32 arithmetic
(``y = 0; y = y + c[u] * x[pos + u]`` for u = 0, 1, .., each step rounded to float32), in
NumPy float32, so it must equal the kernel bit for bit on every code path.

Both take the whole input at once and return the stream's outputs: ``floor(N * up / down)``
frames, plus ``delay_samples`` more when ``flush`` (the input followed by silence).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import signal

from audiocore.resampling import ResampleFilter

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


def _count(filt: ResampleFilter, frames: int, flush: bool) -> int:
    return frames * filt.up // filt.down + (filt.delay_samples if flush and frames else 0)


def _to_dtype(y: F64 | F32, dtype: str) -> bytes:
    if dtype == "int16":
        # Round half to even (np.rint), saturate.
        return np.clip(np.rint(y), -32768, 32767).astype("<i2").tobytes()
    return np.asarray(y, "<f4").tobytes()


def planar(data: bytes, channels: int, dtype: str) -> F64:
    """(channels, frames) float64 of interleaved PCM bytes, in the kernel's native units
    (int16 samples as integers, float32 as they are)."""
    x = np.frombuffer(data, "<i2" if dtype == "int16" else "<f4").astype(np.float64)
    return x.reshape(-1, channels).T


def stream(data: bytes, filt: ResampleFilter, *, channels: int = 1, dtype: str = "int16",
           flush: bool = False) -> bytes:
    """The kernel's output, computed in float64 with upfirdn."""
    x = planar(data, channels, dtype)
    n = _count(filt, x.shape[1], flush)
    h = filt.taps.astype(np.float64)
    out = np.zeros((channels, n))
    for c in range(channels):
        if n:
            full = signal.upfirdn(h, x[c], up=filt.up, down=1)  # y at every prototype index
            t = filt.shift + filt.down * np.arange(n)
            padded = np.concatenate([full, np.zeros(max(0, t[-1] + 1 - len(full)))])
            out[c] = padded[t]
    return _to_dtype(out.T.reshape(-1), dtype)


def aligned(data: bytes, filt: ResampleFilter, *, channels: int = 1,
            dtype: str = "int16") -> bytes:
    """What the one-shot ``resample`` returns: ``stream(flush=True)`` less the first
    ``delay_samples`` frames."""
    full = stream(data, filt, channels=channels, dtype=dtype, flush=True)
    item = 2 if dtype == "int16" else 4
    return full[filt.delay_samples * channels * item :]


def canonical(data: bytes, filt: ResampleFilter, *, channels: int = 1, dtype: str = "int16",
              flush: bool = False) -> bytes:
    """The kernel's output with its float32 arithmetic, in NumPy (bit-exact)."""
    x = planar(data, channels, dtype).astype(np.float32)
    frames = x.shape[1]
    n = _count(filt, frames, flush)
    k = filt.taps_per_phase
    table = np.asarray(filt.phase_table, np.float32)
    out = np.zeros((channels, n), np.float32)
    if n:
        j = np.arange(n)
        t = j * filt.down + filt.shift
        phase, newest = t % filt.up, t // filt.up
        # History: K-1 zeros, the input, zeros after it for the flushed tail.
        tail = max(0, int(newest[-1]) + 1 - frames)
        hist = np.concatenate(
            [np.zeros((channels, k - 1), np.float32), x, np.zeros((channels, tail), np.float32)],
            axis=1)
        idx = newest[:, None] + np.arange(k)[None, :]  # window of output j in hist
        coef = table[phase]  # (n, K)
        for c in range(channels):
            window = hist[c][idx]  # (n, K)
            acc = np.zeros(n, np.float32)
            for u in range(k):
                acc = (acc + (coef[:, u] * window[:, u]).astype(np.float32)).astype(np.float32)
            out[c] = acc
    return _to_dtype(out.T.reshape(-1), dtype)
