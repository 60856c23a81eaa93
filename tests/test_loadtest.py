"""``audiocore loadtest``: the JSON it prints, on a small load (4 calls of 5 s, both bridges).

Structure and sanity only: no speed is asserted (the machine is shared). Correctness
properties are: no lost frames, every barge-in's truncate equal to what the caller received,
nothing of a cancelled response after StopAudio.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_loadtest_json() -> None:
    r = subprocess.run([sys.executable, "-m", "audiocore", "loadtest", "--calls", "4", "--seconds", "5",
                        "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for key in ("calls_per_core", "baseline_calls_per_core", "p99_added_latency_ms", "lost_frames"):
        assert key in out
    assert out["calls"] == 4 and out["seconds"] == 5
    ours, base = out["ours"], out["baseline"]
    for fig in (ours, base):
        assert fig["cpu_us_per_call_second"] > 0 and fig["calls_per_core"] > 0
        assert abs(fig["calls_per_core"] * fig["cpu_us_per_call_second"] - 1e6) < 1e6 * 0.01
        assert 0 <= fig["p50_added_latency_ms"] <= fig["p99_added_latency_ms"]
        assert fig["frames_sent"] == 4 * 250
        assert fig["barge_ins"] >= 4 and fig["responses"] >= 4
    assert out["calls_per_core"] == ours["calls_per_core"]
    assert out["baseline_calls_per_core"] == base["calls_per_core"]
    assert out["p99_added_latency_ms"] == ours["p99_added_latency_ms"]
    assert out["lost_frames"] == ours["lost_frames"] == 0
    assert ours["truncate_mismatches"] == 0 and ours["after_stop_frames"] == 0
    assert ours["barge_ins"] == 4  # one per call: the second turn interrupts the first answer


def test_loadtest_controls_both_runs_each_setting_and_reports_their_ratio() -> None:
    """--controls both: one run with the controls on and one off per round, interleaved; the
    ratio is of the medians it reports (structure only: no speed is asserted)."""
    r = subprocess.run([sys.executable, "-m", "audiocore", "loadtest", "--calls", "2", "--seconds", "2",
                        "--controls", "both", "--rounds", "2", "--json"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    runs = out["cpu_us_per_call_second"]
    assert len(runs["on"]) == len(runs["off"]) == 2 and min(runs["on"] + runs["off"]) > 0
    assert out["median_on"] == sum(runs["on"]) / 2 and out["median_off"] == sum(runs["off"]) / 2
    assert out["ratio"] == round(out["median_on"] / out["median_off"], 3)
    assert out["lost_frames"] == 0
