"""Acceptance of JitterQueue: deterministic simulations driven by the arrival traces of
tests/data/arrivals (bursts, jitter, reordering, 5% loss, duplicates, sequence wrap, a 2 s
stall, floods, a real loopback TCP recording).

Every expectation is computed here from the trace and the content, not by the queue: frame
counts from ticks, latency by finding each output frame among the input frames, clicks
against the input's own largest sample-to-sample step.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import audiocore
from sim import playout as sim
from sim.opuslib_decoder import OpuslibDecoder, encode

RATE = 16000
F = 20
FS = RATE * F // 1000
FB = 2 * FS
PACKET_TRACES = ["loopback", "jitter", "bursts", "reorder", "loss5", "duplicates", "stall",
                 "flood-packets"]


def distinct_speech(frames: int) -> np.ndarray:
    """The bundled speech, looped with a different gain per repetition, over a faint noise
    floor (+-4, as a line has), so that no two frames are equal: every frame of output that
    is unaltered input can be found in the input."""
    speech = sim.speech(RATE)
    reps = -(-frames * FS // speech.size)
    gains = 1.0 - 0.07 * np.arange(reps)
    looped = np.concatenate([np.round(speech * g).astype(np.int16) for g in gains])
    noise = np.random.default_rng(0).integers(-4, 5, frames * FS)
    return (looped[: frames * FS] + noise).astype(np.int16)


@dataclass
class PacketRun:
    run: sim.Run
    queue: audiocore.JitterQueue
    frames: list[bytes]
    first_arrival: dict[int, float]
    played: list[tuple[int, int]]        # (tick, input frame) for outputs found in the input


def run_packets(name: str, content: str = "speech", key: str = "seq", seq0: int = 0,
                **kw: Any) -> PacketRun:
    arrivals = sim.trace(name)
    nframes = max(a.frame for a in arrivals) + 1
    signal = distinct_speech(nframes) if content == "speech" else \
        sim.tone(RATE, nframes * F / 1000 + 1)[: nframes * FS]
    frames = [signal[i * FS : (i + 1) * FS].tobytes() for i in range(nframes)]
    q = audiocore.JitterQueue(RATE, **kw)
    wrap = 2**32 if seq0 > 0xFFFF else 2**16

    def push(q: audiocore.JitterQueue, a: sim.Arrival) -> bool:
        if key == "timestamp":
            return q.push(frames[a.frame], timestamp=1_000_000 + a.frame * F)
        return q.push(frames[a.frame], seq=(seq0 + a.frame) % wrap)

    run = sim.run(q, arrivals, push)
    first: dict[int, float] = {}
    for _, a, _ in run.pushed:
        first.setdefault(a.frame, a.ms)
    counts = Counter(frames)
    index = {f: i for i, f in enumerate(frames) if counts[f] == 1}
    played = [(t, index[o]) for t, o in enumerate(run.outputs) if o in index]
    return PacketRun(run, q, frames, first, played)


def latency_windows(r: PacketRun) -> list[tuple[int, int, float]]:
    """(first tick, target_ms, max latency) of each 1 s window of output whose target held
    through it and the 2 s before. The max over a window is the wait of the packets that
    arrived earliest relative to their media time: the delay the queue adds to the stream."""
    win, settle = 1000 // F, 2000 // F
    out = []
    for w0 in range(settle, len(r.run.outputs) - win, win):
        targets = set(r.run.targets[w0 - settle : w0 + win])
        lat = [r.run.pop_ms(t) - r.first_arrival[i] for t, i in r.played if w0 <= t < w0 + win]
        if len(targets) == 1 and lat:
            out.append((w0, targets.pop(), max(lat)))
    return out


@pytest.mark.parametrize("name", PACKET_TRACES)
def test_packet_trace_acceptance(name: str) -> None:
    r = run_packets(name)
    q, run = r.queue, r.run
    ticks = len(run.outputs)
    # every pop is exactly one frame; one per tick
    assert all(len(o) == FB for o in run.outputs)
    assert ticks == int((max(a.ms for a in sim.trace(name)) + 1000) // F) + 1
    st = q.stats
    assert st["played"] + st["concealed"] + st["inserted"] + st["idle"] == ticks
    # every push is accounted for once; every repeated arrival is a duplicate or late
    pushes = len(run.pushed)
    assert st["received"] + st["late"] + st["duplicate"] == pushes
    repeats = pushes - len({a.frame for _, a, _ in run.pushed})
    assert st["duplicate"] + st["late"] >= repeats
    # bounded memory
    assert max(run.buffered) <= q.max_ms
    # order kept: the input frames found in the output only move forward
    found = [i for _, i in r.played]
    assert all(b > a for a, b in zip(found, found[1:]))
    # no stall: no stretch of output without input audio while input kept arriving (frames
    # that arrived 200 ms or more before such a stretch ended should have been heard in it)
    arrivals_at = np.array(sorted(r.first_arrival.values()))
    played_ticks = sorted({t for t, _ in r.played})
    edges = [-1] + played_ticks + [ticks]
    for a, b in zip(edges, edges[1:]):
        waited = np.count_nonzero((arrivals_at >= (a + 1) * F) & (arrivals_at <= b * F - 200))
        assert waited < 10, (name, a, b, waited)
    # latency converges to within one frame (20 ms) of the target
    windows = latency_windows(r)
    bad = [(w, t, round(lat, 1)) for w, t, lat in windows if abs(lat - t) > 20]
    assert not bad, bad
    if name != "flood-packets":  # (a flood leaves no steady second to measure)
        assert len(windows) >= 5
        assert windows[-1][0] * F >= max(a.ms for a in sim.trace(name)) * 2 / 3


def test_loss_is_concealed_frame_for_frame() -> None:
    r = run_packets("loss5")
    sent = {a.frame for a in sim.trace("loss5")}
    found = [i for _, i in r.played]
    missing = [i for i in range(found[0], found[-1]) if i not in sent]
    assert len(missing) > 30
    assert r.queue.stats["lost"] >= len(missing)
    # a lost frame is replaced by exactly one concealed frame: the frames around it keep
    # their distance in ticks (no stall, no extra latency per loss). The frame right after
    # the gap fades in from the concealment, so the one after it is the landmark.
    ticks = dict((i, t) for t, i in r.played)
    gaps = [ticks[i + 2] - ticks[i - 1] for i in missing if i - 1 in ticks and i + 2 in ticks]
    assert len(gaps) > 20
    assert Counter(gaps).most_common(1)[0][0] == 3
    assert Counter(gaps)[3] >= 0.9 * len(gaps)


@pytest.mark.parametrize("seq0", [65500, 2**32 - 300])
def test_sequence_wrap_changes_nothing(seq0: int) -> None:
    plain = run_packets("loss5").run.outputs
    assert run_packets("loss5", seq0=seq0).run.outputs == plain


def test_timestamps_place_packets_as_sequence_numbers_do() -> None:
    assert run_packets("reorder", key="timestamp").run.outputs == \
        run_packets("reorder").run.outputs


@pytest.mark.parametrize("name", ["loss5", "reorder", "stall", "jitter", "bursts",
                                  "duplicates", "flood-packets", "loopback"])
def test_no_clicks_on_a_tone(name: str) -> None:
    """Concealment, merges and drops never step further than the tone itself does."""
    r = run_packets(name, content="tone")
    tone = np.frombuffer(b"".join(r.frames), "<i2")
    assert sim.max_step(r.run.pcm()) <= sim.max_step(tone)
    assert r.queue.stats["concealed"] > 0


@pytest.mark.parametrize("name", ["loss5", "stall"])
def test_no_clicks_on_speech(name: str) -> None:
    r = run_packets(name)
    speech = np.frombuffer(b"".join(r.frames), "<i2")
    assert sim.max_step(r.run.pcm()) <= sim.max_step(speech)


def test_target_follows_the_measured_jitter() -> None:
    """The target ends between the 90th and the 99th percentile of the relative arrival
    delay of the last few seconds (delay against the fastest packet of the trailing 2 s),
    plus the one tick of rounding a pop clock adds, computed here with numpy."""
    arrivals = sim.trace("jitter")
    r = run_packets("jitter")
    tail = [a for a in arrivals if a.ms > arrivals[-1].ms - 6000]
    ticks = np.array([np.ceil(a.ms / F) for a in tail])
    d = ticks - np.array([a.frame for a in tail])
    ms = np.array([a.ms for a in tail])
    rel = np.array([d[i] - d[(ms >= ms[i] - 2000) & (ms <= ms[i])].min() for i in range(d.size)])
    lo, hi = np.percentile(rel, 90), np.percentile(rel, 99)
    target = r.queue.target_ms // F
    assert lo + 1 <= target <= hi + 1, (lo, hi, target)


def test_stall_recovers_and_drops_the_backlog() -> None:
    r = run_packets("stall")
    st = r.queue.stats
    # nothing arrives from 5.0 s to 7.0 s: the queue conceals, then the 2 s backlog arrives at
    # once; it keeps at most max_ms of it and cuts the rest to return to its target
    assert st["dropped"] + st["drained"] >= 80
    after = [(t, i) for t, i in r.played if r.run.pop_ms(t) >= 7000]
    assert after[0][0] * F <= 7000 + r.queue.target_ms + 20
    # from then on it plays on as before the stall
    assert all(b - a == 1 for (a, _), (b, _) in zip(after[:20], after[1:20]))
    assert max(r.run.buffered) <= 1000


# ------------------------------------------------------------------------- stream mode


def run_flood(max_ms: int = 60_000, clear_at: int | None = None) -> dict[str, Any]:
    arrivals = sim.trace("flood")
    rate = 24000
    total = sum(a.frame for a in arrivals)
    raw = sim.looped(sim.speech(rate), total // 2).tobytes()
    q = audiocore.JitterQueue(rate, max_ms=max_ms)
    state = {"off": 0, "item": None, "bounds": {}}
    seen: list[tuple[Any, int]] = []
    cleared: list[tuple[int, int, Any]] = []

    def push(q: audiocore.JitterQueue, a: sim.Arrival) -> bool:
        if a.item != state["item"]:
            q.mark(a.item)
            state["item"] = a.item
            state["bounds"][a.item] = [state["off"], state["off"]]
        chunk = raw[state["off"] : state["off"] + a.frame]
        state["off"] += a.frame
        state["bounds"][a.item][1] = state["off"]
        return q.push(chunk)

    def before(q: audiocore.JitterQueue, tick: int) -> None:
        if clear_at is not None and tick == clear_at:
            cleared.append((tick, q.clear(), q.item))
        seen.append((q.item, q.played_ms))

    run = sim.run(q, arrivals, push, before_pop=before, extra_ms=12000, frame_ms=20)
    return dict(run=run, queue=q, raw=raw, bounds=state["bounds"], seen=seen,
                cleared=cleared, rate=rate)


def test_flood_from_a_realtime_ai_plays_everything_in_real_time() -> None:
    f = run_flood()
    run, q, raw = f["run"], f["queue"], f["raw"]
    fb = q.frame_bytes
    out = b"".join(run.outputs)
    assert all(len(o) == fb for o in run.outputs)
    # nothing is dropped or declared lost: every whole frame of every item (counted from the
    # item's start) is in the output, in order
    pos = 0
    for s0, s1 in f["bounds"].values():
        for k in range(s0 + fb, s1 - fb + 1, fb):
            j = out.find(raw[k : k + fb], pos)
            assert j >= 0, k
            pos = j
    st = q.stats
    assert st["dropped"] == st["lost"] == st["drained"] == st["concealed"] == 0
    # played out in real time: one frame per tick while an item plays, the whole item in
    # exactly its own duration (plus the one tick of its partial last frame)
    for item, (s0, s1) in f["bounds"].items():
        ticks = [t for t, (it, ms) in enumerate(f["seen"]) if it == item]
        duration_ms = (s1 - s0) // 2 * 1000 // f["rate"]
        final = max(ms for it, ms in f["seen"] if it == item)
        assert final == duration_ms
        playing = [t for t in ticks if f["seen"][t][1] < duration_ms]
        assert len(playing) == -(-duration_ms // F)
    # the buffer held the flood (far more than the 60 ms target) and never exceeded max_ms
    assert max(run.buffered) > 5000
    assert max(run.buffered) <= q.max_ms


def test_played_ms_tracks_the_current_item() -> None:
    f = run_flood()
    seen = f["seen"]
    items = [it for it, _ in seen]
    # items change in order 0, 1, 2 and played_ms only grows within an item
    assert [k for k, _ in __import__("itertools").groupby(items)] == [None, 0, 1, 2]
    for (a, ma), (b, mb) in zip(seen, seen[1:]):
        if a == b:
            assert mb >= ma
            assert mb - ma in (0, 20) or mb - ma < 20


def test_barge_in_clear_returns_ms_played_and_silences_at_once() -> None:
    plain = run_flood()
    first_tick = next(t for t, (it, _) in enumerate(plain["seen"]) if it == 1)
    clear_at = first_tick + 123
    f = run_flood(clear_at=clear_at)
    (tick, played, item_after), = f["cleared"]
    # played_ms equals the ticks item 1 has been playing for, times the frame (the item
    # started at a frame boundary of an empty queue)
    start = next(t for t, o in enumerate(plain["run"].outputs) if t >= first_tick
                 and plain["seen"][t][0] == 1 and np.abs(np.frombuffer(o, "<i2")).max() > 0)
    assert played == (clear_at - start) * F
    assert item_after is None
    # the next frame fades out from the last one; silence follows until the next item
    out = f["run"].outputs
    nxt = np.frombuffer(out[clear_at], "<i2")
    assert np.abs(nxt[len(nxt) // 2 :]).max() == 0
    second = next(t for t, (it, _) in enumerate(f["seen"]) if it == 2)
    assert all(o == bytes(len(o)) for o in out[clear_at + 1 : second])
    assert sim.max_step(f["run"].pcm()) <= sim.max_step(np.frombuffer(f["raw"], "<i2"))


def test_flood_beyond_max_ms_drops_the_oldest_and_counts() -> None:
    f = run_flood(max_ms=2000)
    q, run = f["queue"], f["run"]
    assert max(run.buffered) <= 2000
    assert q.stats["dropped"] > 100
    assert all(len(o) == q.frame_bytes for o in run.outputs)


# ------------------------------------------------------------------------------- Opus


@pytest.mark.parametrize("name", ["loss5", "reorder", "jitter", "stall"])
def test_opus_with_plc_and_fec(name: str) -> None:
    arrivals = sim.trace(name)
    nframes = max(a.frame for a in arrivals) + 1
    tone = sim.tone(RATE, nframes * F / 1000 + 1, hz=330, amplitude=6000)[: nframes * FS]
    packets = encode(tone.tobytes(), RATE, fec=True, loss_percent=10, bitrate=32000)
    clean_decoder = audiocore.OpusDecoder(RATE)
    clean = np.frombuffer(b"".join(clean_decoder.decode(p) for p in packets), "<i2")
    q = audiocore.JitterQueue(RATE, decoder=audiocore.OpusDecoder(RATE))
    run = sim.run(q, arrivals, lambda q, a: q.push(packets[a.frame], seq=a.frame))
    st = q.stats
    assert all(len(o) == FB for o in run.outputs)
    assert st["played"] + st["concealed"] + st["inserted"] + st["idle"] == len(run.outputs)
    assert st["errors"] == 0
    # FEC rebuilt frames on every lossy trace; PLC covered the rest
    if name in ("loss5", "jitter", "reorder"):
        assert st["recovered"] > 0
    assert st["concealed"] > st["recovered"]
    # the same run through opuslib's decoder, called by its Python methods, is identical
    q2 = audiocore.JitterQueue(RATE, decoder=OpuslibDecoder(RATE))
    run2 = sim.run(q2, arrivals, lambda q, a: q.push(packets[a.frame], seq=a.frame))
    assert run2.outputs == run.outputs and q2.stats == st
    # clicks: the queue touches samples only in frames that are not played straight on
    # (concealment, FEC, the first frame after either, a cut); the steps there stay within
    # the largest step of the frames it passed through untouched - the decoded audio's own
    # (after a loss libopus's output is not the lossless decode's, so that is the yardstick)
    out = run.pcm().astype(np.int32)
    kinds = np.array(run.kinds)
    straight = (kinds == "played") & (np.roll(kinds, 1) == "played")
    straight[0] = False
    steps = np.abs(np.diff(out))
    in_straight = straight[(np.arange(steps.size) + 1) // FS]
    assert (~straight).sum() > 20
    assert steps[~in_straight].max() <= steps[in_straight].max()
    assert steps[in_straight].max() <= sim.max_step(clean) * 1.5
    # no stall: the last seconds before the end of the input carry the tone
    tail = run.pcm()[-(1000 + 2000) * RATE // 1000 : -1000 * RATE // 1000]
    assert np.sqrt(np.mean(tail.astype(float) ** 2)) > 2000
