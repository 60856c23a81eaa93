"""Drive a playout queue (``audiocore.JitterQueue`` or the reference model) with an arrival
trace from tests/data/arrivals, with no wall clock.

Time is simulated: pop ``n`` happens at ``n * frame_ms`` ms, and every arrival at or before
that instant is pushed just before it (the order a gateway's event loop produces when its
20 ms timer fires after the socket reads). Nothing here knows how the queue works; the tests
compute what to expect from the trace and the content.
"""

from __future__ import annotations

import csv
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parents[1] / "data"
ARRIVALS = DATA / "arrivals"


@dataclass(frozen=True)
class Arrival:
    ms: float
    frame: int          # packet traces: the sender's frame index; stream traces: chunk bytes
    item: int = 0       # stream traces: which response


@cache
def trace(name: str) -> tuple[Arrival, ...]:
    with open(ARRIVALS / f"{name}.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    key = "frame" if "frame" in rows[0] else "nbytes"
    return tuple(Arrival(float(r["arrival_ms"]), int(r[key]), int(r.get("item") or 0))
                 for r in rows)


@cache
def speech(rate: int) -> np.ndarray:
    """The bundled sentence as int16 samples at ``rate`` (8000, 16000, 24000 or 48000)."""
    with wave.open(str(DATA / f"speech-{rate // 1000}k.wav"), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").copy()


def looped(signal: np.ndarray, samples: int) -> np.ndarray:
    """``signal`` repeated to ``samples`` long (traces outlast the bundled sentence)."""
    reps = -(-samples // signal.size)
    return np.tile(signal, reps)[:samples]


def tone(rate: int, seconds: float, hz: float = 440.0, amplitude: int = 8000) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.round(amplitude * np.sin(2 * np.pi * hz * t)).astype("<i2")


@dataclass
class Run:
    frame_ms: int
    outputs: list[bytes] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)      # stats()["target_ms"] after each pop
    buffered: list[int] = field(default_factory=list)     # buffered_ms after each pop
    pushed: list[tuple[int, Arrival, bool]] = field(default_factory=list)  # (tick, arrival, ok)
    kinds: list[str] = field(default_factory=list)  # which counter each pop advanced

    def pop_ms(self, tick: int) -> int:
        return tick * self.frame_ms

    def pcm(self) -> np.ndarray:
        return np.frombuffer(b"".join(self.outputs), "<i2")


def run(queue: Any, arrivals: Sequence[Arrival], push: Callable[[Any, Arrival], bool],
        frame_ms: int = 20, extra_ms: float = 1000.0,
        before_pop: Callable[[Any, int], None] | None = None) -> Run:
    """Push ``arrivals`` (sorted by time) with ``push(queue, arrival)`` and pop every
    ``frame_ms`` until ``extra_ms`` after the last arrival."""
    result = Run(frame_ms)
    end = max(a.ms for a in arrivals) + extra_ms
    i = 0
    tick = 0
    while tick * frame_ms <= end:
        now = tick * frame_ms
        while i < len(arrivals) and arrivals[i].ms <= now:
            result.pushed.append((tick, arrivals[i], push(queue, arrivals[i])))
            i += 1
        if before_pop is not None:
            before_pop(queue, tick)
        before = queue.stats
        result.outputs.append(queue.pop())
        after = queue.stats
        result.kinds.append(next((k for k in ("played", "concealed", "inserted", "idle")
                                  if after.get(k, 0) != before.get(k, 0)), "?")
                            if after.get("drained", 0) == before.get("drained", 0) else "cut")
        result.targets.append(after["target_ms"])
        result.buffered.append(queue.buffered_ms)
        tick += 1
    return result


def max_step(pcm: np.ndarray) -> int:
    """The largest sample-to-sample jump of a mono int16 signal."""
    return int(np.abs(np.diff(pcm.astype(np.int32))).max())


def random_trace(rng: np.random.Generator, frames: int, frame_ms: int = 20) -> list[Arrival]:
    """A random packet arrival pattern: a base delay, one of several jitter models, loss,
    duplicates, a sender clock a little fast or slow, maybe a stall (backlog kept or lost)."""
    drift = rng.choice([-0.01, 0.0, 0.0, 0.01])
    send = np.arange(frames) * frame_ms * (1 + drift)
    model = rng.integers(0, 4)
    if model == 0:
        delay = np.full(frames, rng.uniform(5, 60))
    elif model == 1:
        delay = rng.uniform(5, 30) + rng.uniform(0, rng.uniform(5, 120), frames)
    elif model == 2:
        delay = rng.uniform(5, 30) + rng.gamma(2.0, rng.uniform(3, 30), frames)
    else:  # in-order bursts every 40-200 ms
        period = rng.uniform(40, 200)
        delay = (np.floor(send / period) + 1) * period - send + rng.uniform(0, 20)
    arrival = send + delay
    if rng.random() < 0.3:
        t0 = rng.uniform(0, arrival.max())
        dur = rng.uniform(100, 4000)
        inside = (arrival >= t0) & (arrival < t0 + dur)
        arrival[inside] = t0 + dur
    keep = rng.random(frames) >= rng.choice([0.0, 0.05, 0.2])
    rows = [Arrival(float(a), i) for i, a in enumerate(arrival) if keep[i]]
    dup = rng.choice([0.0, 0.05])
    rows += [Arrival(float(arrival[i] + rng.uniform(0, 100)), i)
             for i in range(frames) if keep[i] and rng.random() < dup]
    return sorted(rows, key=lambda a: a.ms)


def random_content(rng: np.random.Generator, samples: int) -> np.ndarray:
    """Speech-like content: loud bursts (a tone or noise) separated by pauses."""
    out = np.zeros(samples, np.int16)
    i = 0
    while i < samples:
        n = int(rng.integers(200, 4000))
        kind = rng.integers(0, 4)
        if kind == 1:
            out[i : i + n] = rng.integers(-60, 60, min(n, samples - i))
        elif kind >= 2:
            amp = rng.uniform(1000, 20000)
            t = np.arange(min(n, samples - i))
            out[i : i + n] = np.round(amp * np.sin(rng.uniform(0.02, 1.0) * t)).astype(np.int16)
        i += n
    return out
