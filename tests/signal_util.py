"""Signal helpers shared by the audio tests (NumPy only)."""

from __future__ import annotations

import numpy as np


def best_lag(a: np.ndarray, b: np.ndarray, max_lag: int = 600) -> tuple[int, float]:
    """The shift of ``b`` against ``a`` (samples, within +-``max_lag``) with the highest
    normalised correlation, and that correlation."""
    n = min(len(a), len(b)) - 2 * max_lag
    a, b = a.astype(np.float64), b.astype(np.float64)
    scores = []
    for lag in range(-max_lag, max_lag + 1):
        x, y = a[max_lag : max_lag + n], b[max_lag + lag : max_lag + lag + n]
        scores.append((float(np.dot(x, y) / np.sqrt(np.dot(x, x) * np.dot(y, y))), lag))
    corr, lag = max(scores)
    return lag, corr
