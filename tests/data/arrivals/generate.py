"""Write the synthetic arrival traces of this directory (fixed seeds: the output never changes).

Packet traces (``*.csv`` with header ``arrival_ms,frame``): one line per arrival of a 20 ms
media frame; ``frame`` is the sender's frame index (media time = frame * 20 ms), so a frame
that never arrives is lost and one listed twice is duplicated. Stream traces (header
``arrival_ms,nbytes,item``): one line per chunk of PCM16 of ``nbytes`` pushed without a
sequence number, ``item`` numbering the response it belongs to.

Run: ``python tests/data/arrivals/generate.py`` (numpy only).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FRAME_MS = 20


def _write(name: str, header: str, rows: list[tuple[float, ...]]) -> None:
    rows = sorted(rows, key=lambda r: r[0])
    lines = [header] + [",".join(f"{v:.1f}" if i == 0 else str(int(v)) for i, v in enumerate(r))
                        for r in rows]
    (HERE / name).write_text("\n".join(lines) + "\n")


def _send(n: int) -> np.ndarray:
    return np.arange(n) * FRAME_MS


def jitter() -> None:
    """UDP-like: 40 ms base delay plus gamma-distributed jitter (mean 30 ms), reordering."""
    rng = np.random.default_rng(1)
    send = _send(1500)
    arrival = send + 40 + rng.gamma(2.0, 15.0, send.size)
    _write("jitter.csv", "arrival_ms,frame", [(a, i) for i, a in enumerate(arrival)])


def bursts() -> None:
    """TCP-like: the link delivers what was sent, in order, every 60-140 ms."""
    rng = np.random.default_rng(2)
    send = _send(1000) + 30
    rows, t, i = [], 0.0, 0
    while i < send.size:
        t += rng.uniform(60, 140)
        while i < send.size and send[i] <= t:
            rows.append((t, i))
            i += 1
    _write("bursts.csv", "arrival_ms,frame", rows)


def reorder() -> None:
    """Telnyx-like: 15% of frames held back by one to three frame times, small jitter."""
    rng = np.random.default_rng(3)
    send = _send(1000)
    arrival = send + 30 + rng.uniform(0, 10, send.size)
    late = rng.random(send.size) < 0.15
    arrival[late] += rng.integers(1, 4, late.sum()) * FRAME_MS
    _write("reorder.csv", "arrival_ms,frame", [(a, i) for i, a in enumerate(arrival)])


def loss5() -> None:
    """5% of frames lost (independently), uniform jitter of 0-15 ms."""
    rng = np.random.default_rng(4)
    send = _send(1000)
    arrival = send + 30 + rng.uniform(0, 15, send.size)
    keep = rng.random(send.size) >= 0.05
    keep[:5] = True
    _write("loss5.csv", "arrival_ms,frame", [(a, i) for i, a in enumerate(arrival) if keep[i]])


def duplicates() -> None:
    """5% of frames arrive twice, the copy 0-80 ms after the original."""
    rng = np.random.default_rng(5)
    send = _send(1000)
    arrival = send + 30 + rng.uniform(0, 10, send.size)
    rows = [(a, i) for i, a in enumerate(arrival)]
    dup = np.flatnonzero(rng.random(send.size) < 0.05)
    rows += [(arrival[i] + rng.uniform(0, 80), int(i)) for i in dup]
    _write("duplicates.csv", "arrival_ms,frame", rows)


def stall() -> None:
    """In order (TCP); nothing arrives from 5.0 s to 7.0 s, then the backlog all at once."""
    rng = np.random.default_rng(6)
    send = _send(1000)
    arrival = send + 30 + rng.uniform(0, 10, send.size)
    arrival[(arrival >= 5000) & (arrival < 7000)] = 7000.0
    _write("stall.csv", "arrival_ms,frame", [(a, i) for i, a in enumerate(arrival)])


def flood_packets() -> None:
    """A sender blasting 20 s of frames at ten times real time (one every 2 ms)."""
    send = np.arange(1000) * 2.0
    _write("flood-packets.csv", "arrival_ms,frame", [(a + 20, i) for i, a in enumerate(send)])


def flood_stream() -> None:
    """A realtime AI: three responses of 6-9 s of 24 kHz PCM in deltas of 10-200 ms of audio
    (any whole number of samples), sent at about eight times real time, 3 s apart."""
    rng = np.random.default_rng(7)
    rows, t = [], 500.0
    for item in range(3):
        total = int(rng.uniform(6, 9) * 24000)
        sent = 0
        while sent < total:
            n = min(total - sent, int(rng.uniform(240, 4800)))
            rows.append((t, 2 * n, item))
            sent += n
            t += n / 24 / 8 * rng.uniform(0.5, 1.5)
        t += total / 24 + 3000  # the user listens, then speaks again
    _write("flood.csv", "arrival_ms,nbytes,item", rows)


if __name__ == "__main__":
    jitter()
    bursts()
    reorder()
    loss5()
    duplicates()
    stall()
    flood_packets()
    flood_stream()
