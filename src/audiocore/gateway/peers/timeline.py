"""What a call through a bridge did, on one clock: the figures the demo and the load test
report, and their definitions.

Both peers of a call (the ACS caller and the realtime server) write to one :class:`Timeline`
with ``time.monotonic()`` (one clock for the whole machine), so a time written by one peer
and a time written by the other can be subtracted. Nothing here reads a socket.

Definitions (also in ``docs/gateway-bridge.md``):

Added latency, caller -> service (per caller frame ``n``, sent at ``s_n``)
    ``a_n - s_n + group_delay_in_ms``, where ``a_n`` is the first time the service holds
    ``floor((n + 1) * r_up / 50)`` samples (the count frame ``n`` completes at the service's
    input rate ``r_up``). Queueing, processing, transport and any audio a resampler holds
    back all count; the linear-phase delay of a filter that emits on time does not show in
    counts, so the bridge's declared group delay is added. Frames sent before the service
    had the session (call set-up) are left out (``setup_ms`` says how long that took).

Added latency, service -> caller (per played frame ``k`` of a response)
    ``max(0, f_k - due_k) + group_delay_out_ms``: ``f_k`` is when the caller received the
    frame; ``due_k = max(avail_k, avail_0 + k * 20 ms)`` is when an ideal bridge would
    deliver it, ``avail_k`` being when the service had sent the audio the frame completes
    (``ceil((k + 1) * r_out / 50)`` samples at the output rate, or the response's end).
    Delivering early (ACS buffers) adds nothing.

Lost frames, caller -> service
    caller frames sent at least ``grace`` (0.5 s) before the end of the observation whose
    samples never reached the service.

Lost frames, service -> caller
    per response, the whole 20 ms frames of its audio that were due (``due_k``) at least
    ``grace`` before the response was cut (StopAudio) or the observation ended, minus the
    frames the caller received for it (never below 0).

Barge-in
    ``stop_ms``: for each StopAudio the caller received, the time since the service sent its
    latest ``speech_started``; ``stop_frames``: the audio frames the caller received in that
    time (within one frame tick: at most 1). ``truncates``: for each ``conversation.item.truncate`` the
    service received, ``(item_id, audio_end_ms, ms of that item's audio the caller received
    before StopAudio)``. ``after_stop_frames``: frames received after a StopAudio and before
    the next response's first audio was sent (audio of a cancelled response): must be 0.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Figures", "Timeline", "percentile"]


def percentile(values: list[float] | array[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100, nearest rank) of ``values``; None if empty."""
    if not len(values):
        return None
    xs = sorted(values)
    k = max(0, min(len(xs) - 1, math.ceil(q / 100 * len(xs)) - 1))
    return float(xs[k])


class _Response:
    __slots__ = ("id", "item_id", "times", "counts", "total", "received", "cut")

    def __init__(self, rid: str, item_id: str) -> None:
        self.id = rid
        self.item_id = item_id
        self.times: array[float] = array("d")
        self.counts: array[int] = array("q")
        self.total: int | None = None  # samples, once done
        self.received = 0  # frames the caller received
        self.cut: float | None = None  # StopAudio time


@dataclass
class Figures:
    """Figures of one or more calls (milliseconds; counts of 20 ms frames)."""

    in_latency_ms: list[float] = field(default_factory=list)
    out_latency_ms: list[float] = field(default_factory=list)
    lost_in: int = 0
    lost_out: int = 0
    frames_sent: int = 0
    frames_received: int = 0
    stop_ms: list[float] = field(default_factory=list)
    stop_frames: list[int] = field(default_factory=list)
    truncates: list[tuple[str, int, int]] = field(default_factory=list)
    after_stop_frames: int = 0
    setup_ms: list[float] = field(default_factory=list)
    responses: int = 0

    def add(self, other: Figures) -> None:
        for name in ("in_latency_ms", "out_latency_ms", "stop_ms", "stop_frames", "truncates",
                     "setup_ms"):
            getattr(self, name).extend(getattr(other, name))
        for name in ("lost_in", "lost_out", "frames_sent", "frames_received", "after_stop_frames",
                     "responses"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def lost_frames(self) -> int:
        return self.lost_in + self.lost_out

    def summary(self) -> dict[str, Any]:
        """The figures as a JSON-ready dict (percentiles in ms, rounded to 0.01)."""
        both = self.in_latency_ms + self.out_latency_ms

        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 2)

        return {
            "p50_added_latency_ms": r(percentile(both, 50)),
            "p99_added_latency_ms": r(percentile(both, 99)),
            "in_p50_ms": r(percentile(self.in_latency_ms, 50)),
            "in_p99_ms": r(percentile(self.in_latency_ms, 99)),
            "out_p50_ms": r(percentile(self.out_latency_ms, 50)),
            "out_p99_ms": r(percentile(self.out_latency_ms, 99)),
            "lost_frames": self.lost_frames,
            "lost_in": self.lost_in,
            "lost_out": self.lost_out,
            "frames_sent": self.frames_sent,
            "frames_received": self.frames_received,
            "responses": self.responses,
            "barge_ins": len(self.stop_ms),
            "stop_audio_max_ms": r(max(self.stop_ms)) if self.stop_ms else None,
            "stop_audio_max_frames": max(self.stop_frames) if self.stop_frames else None,
            "truncate_mismatches": sum(1 for _, a, b in self.truncates if a != b),
            "after_stop_frames": self.after_stop_frames,
            "setup_p50_ms": r(percentile(self.setup_ms, 50)),
        }


class Timeline:
    """One call's events on the shared clock; both peers write, :meth:`figures` reads.

    ``acs_rate``: the caller's rate. The server sets ``in_rate``/``out_rate`` (its input
    and output rates). ``group_delay_in_ms``/``group_delay_out_ms``: the bridge's declared
    resampler delays, added to the latencies (see the module docstring).
    """

    def __init__(self, acs_rate: int = 16000, *, group_delay_in_ms: float = 0.0,
                 group_delay_out_ms: float = 0.0, grace: float = 0.5) -> None:
        self.acs_rate = acs_rate
        self.in_rate = 24000
        self.out_rate = 24000
        self.group_delay_in_ms = group_delay_in_ms
        self.group_delay_out_ms = group_delay_out_ms
        self.grace = grace
        self.sent: array[float] = array("d")  # caller frame send times
        self.arrived: array[float] = array("d")  # when the service completed each frame
        self.in_samples = 0
        self.session_at: float | None = None
        self.started_at: float | None = None
        self.responses: list[_Response] = []
        self._current: _Response | None = None
        self.speech_started_at: float | None = None
        self.stop_ms: list[float] = []
        self.stop_frames: list[int] = []
        self._frames_since_started = 0
        self.stopped_at: float | None = None  # last StopAudio not yet followed by new audio
        self.after_stop_frames = 0
        self.truncates: list[tuple[str, int]] = []
        self.frames_received = 0
        self.out_latency: list[float] = []  # per frame received, as it arrives
        self.ended_at: float | None = None

    # ------------------------------------------------------------ caller side

    def frame_sent(self, t: float) -> None:
        if self.started_at is None:
            self.started_at = t
        self.sent.append(t)

    def frame_received(self, t: float) -> None:
        self.frames_received += 1
        self._frames_since_started += 1
        r = self._current
        if r is None or self.stopped_at is not None:
            self.after_stop_frames += self.stopped_at is not None
            return
        r.received += 1
        r_k = r.received - 1
        # the frame k = r_k of response r: received at t
        self.out_latency.append(self._late(r, r_k, t))

    def stop_received(self, t: float) -> None:
        if self.speech_started_at is not None:
            self.stop_ms.append((t - self.speech_started_at) * 1000)
            self.stop_frames.append(self._frames_since_started)
        r = self._current
        if r is not None and r.cut is None:
            r.cut = t
        self.stopped_at = t

    def ended(self, t: float) -> None:
        self.ended_at = t

    # ------------------------------------------------------------ server side

    def session_ready(self, t: float) -> None:
        if self.session_at is None:
            self.session_at = t

    def audio_in(self, samples: int, t: float) -> None:
        """The service received ``samples`` more samples at ``in_rate``."""
        self.in_samples += samples
        n = len(self.arrived)
        while n < len(self.sent) and self.in_samples >= (n + 1) * self.in_rate // 50:
            self.arrived.append(t)
            n += 1

    def speech_started(self, t: float) -> None:
        self.speech_started_at = t
        self._frames_since_started = 0

    def delta_sent(self, response_id: str, item_id: str, samples: int, t: float) -> None:
        """The service sent ``samples`` more samples (``out_rate``) of ``response_id``."""
        r = self._current
        if r is None or r.id != response_id:
            r = _Response(response_id, item_id)
            self.responses.append(r)
            self._current = r
            self.stopped_at = None
        r.counts.append((r.counts[-1] if r.counts else 0) + samples)
        r.times.append(t)

    def response_done(self, response_id: str) -> None:
        for r in reversed(self.responses):
            if r.id == response_id:
                r.total = r.counts[-1] if r.counts else 0
                return

    def truncated(self, item_id: str, audio_end_ms: int) -> None:
        self.truncates.append((item_id, audio_end_ms))

    # ------------------------------------------------------------ figures

    def _avail(self, r: _Response, k: int) -> float | None:
        """When the service had sent the audio frame k of r completes (None: not yet)."""
        need = -(-(k + 1) * self.out_rate // 50)
        if r.total is not None:
            need = min(need, r.total)
        counts = r.counts
        lo, hi = 0, len(counts)
        while lo < hi:
            mid = (lo + hi) // 2
            if counts[mid] >= need:
                hi = mid
            else:
                lo = mid + 1
        return r.times[lo] if lo < len(counts) else None

    def _due(self, r: _Response, k: int) -> float | None:
        avail = self._avail(r, k)
        first = self._avail(r, 0)
        if avail is None or first is None:
            return None
        return max(avail, first + k * 0.02)

    def _late(self, r: _Response, k: int, t: float) -> float:
        due = self._due(r, k)
        late = 0.0 if due is None else max(0.0, t - due) * 1000
        return late + self.group_delay_out_ms

    def figures(self, end: float | None = None) -> Figures:
        """The figures as of ``end`` (default: when the caller ended)."""
        end = end if end is not None else (self.ended_at if self.ended_at is not None else math.inf)
        f = Figures()
        f.frames_sent = len(self.sent)
        f.frames_received = self.frames_received
        start = self.session_at if self.session_at is not None else math.inf
        if self.session_at is not None and self.started_at is not None:
            f.setup_ms.append(max(0.0, self.session_at - self.started_at) * 1000)
        for n, s in enumerate(self.sent):
            if n < len(self.arrived):
                if s >= start:
                    f.in_latency_ms.append((self.arrived[n] - s) * 1000 + self.group_delay_in_ms)
            elif s <= end - self.grace:
                f.lost_in += 1
        f.out_latency_ms = list(self.out_latency)
        for r in self.responses:
            cut = r.cut if r.cut is not None else end
            frames = (r.counts[-1] if r.counts else 0) * self.acs_rate // self.out_rate // (self.acs_rate // 50)
            expected = 0
            for k in range(frames):
                due = self._due(r, k)
                if due is None or due > cut - self.grace:
                    break
                expected += 1
            f.lost_out += max(0, expected - r.received)
        f.responses = len(self.responses)
        f.stop_ms = list(self.stop_ms)
        f.stop_frames = list(self.stop_frames)
        received = {r.item_id: r.received * 20 for r in self.responses}
        f.truncates = [(item, end, received.get(item, 0)) for item, end in self.truncates]
        f.after_stop_frames = self.after_stop_frames
        return f
