"""Acceptance: a 2-minute ACS call through the bridge to the local realtime server, with
barge-ins in the middle (it runs in real time: about two minutes).

Checked on the shared clock of the two peers (audiocore.gateway.peers.timeline): the caller
hears StopAudio within one frame tick of the service's speech_started (at most one audio
frame arrives in between); every conversation.item.truncate carries exactly the milliseconds
of that item the caller received; no audio of a cancelled response reaches the caller after StopAudio (and late
deltas of it were really in flight and dropped by the bridge); no frame lost either way.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import DATA
from gateway_util import run, settle

from audiocore.gateway.bridge import Bridge, BridgeConfig
from audiocore.gateway.peers.acs_caller import call, read_wav
from audiocore.gateway.peers.realtime_server import RealtimeServer

SPEECH, RATE = read_wav(DATA / "speech-16k.wav")


def script() -> tuple[bytes, int]:
    """120 s: turns of 2 s of speech; after a normal turn the 10.5 s answer plays to its
    end, after a barge-in turn the next turn starts 3 s into the answer."""
    turn = SPEECH[: 2 * RATE * 2]
    out = bytearray()
    barges = 0
    i = 0
    while len(out) < 120 * RATE * 2:
        barge = i % 2 == 1
        out += turn + bytes(int((3.5 if barge else 12.5) * RATE) * 2)
        barges += barge
        i += 1
    return bytes(out[: 120 * RATE * 2]), barges


@pytest.mark.slow
def test_two_minute_call_with_barge_in() -> None:
    audio, _ = script()

    async def main() -> Any:
        # speed 1.5: the 10.5 s answer takes 7 s to send, so deltas are still coming when the
        # caller barges in 3 s into it; the service goes on for 150 ms after response.cancel
        async with RealtimeServer(mode="prompt", speed=1.5, delta_ms=100, cancel_delay=0.15) as rt, \
                Bridge(BridgeConfig(upstream_url=rt.url, insecure_no_auth=True)) as bridge:
            res = await call(bridge.url, audio, rate=RATE, tail_s=0, realtime=rt,
                             group_delay_ms=bridge.config.resampler_delays_ms(RATE))
            await settle(lambda: not bridge.calls)
            return res, bridge.finished[-1], rt

    res, stats, rt = run(main(), timeout=300)
    fig = res.figures
    assert fig is not None
    cancelled = [r for r in rt.responses if r[2] == "cancelled"]
    assert len(cancelled) >= 4 and stats.barge_ins == len(cancelled) == len(fig.stop_ms)
    # StopAudio within one frame tick of speech_started, every time: counted in frames the
    # caller received in between, not in wall-clock time (shared machines are noisy); the
    # milliseconds are reported
    print(f"StopAudio after speech_started: max {max(fig.stop_ms):.2f} ms, "
          f"frames in between {fig.stop_frames}")
    assert len(fig.stop_frames) == len(fig.stop_ms) and max(fig.stop_frames) <= 1
    # truncate carries the ms played: what the caller received of that item
    assert len(fig.truncates) == len(cancelled) == len(rt.truncates)
    for item, audio_end_ms, received_ms in fig.truncates:
        assert audio_end_ms == received_ms > 0, (item, audio_end_ms, received_ms)
    # nothing of a cancelled response after StopAudio, though its deltas were still coming
    assert fig.after_stop_frames == 0
    assert stats.dropped_deltas > 0
    assert stats.service_errors == 0  # no truncate was refused, no bad event sent
    assert fig.lost_frames == 0 and res.bad_frames == 0
    assert res.frames_sent == 6000 and stats.frames_in == 6000
    assert stats.end_reason == "ACS closed"
