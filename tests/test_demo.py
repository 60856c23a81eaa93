"""``audiocore demo``, the README's main command, run as a user runs it (a subprocess, real
sockets, real time), its outputs checked with independent readers: the wave module and numpy
for the WAV files, opusinfo and PyAV for the Sora pass's Ogg file."""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path

import av
import numpy as np
import scipy.signal
import soxr
from conftest import DATA
from gateway_util import opusinfo, pyav_packets

RATE = 16000
OPUS_LOOKAHEAD = 312  # libopus's encoder delay at 48 kHz (2.5 ms + 4 ms)
SORA_PRE_SKIP = 3840  # what the Sora gateway writes in OpusHead (PROTOCOLS.md section 4)


def _wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, RATE)
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64)


def _rms(x: np.ndarray, start_s: float, end_s: float) -> float:
    part = x[int(start_s * RATE) : int(end_s * RATE)]
    return float(np.sqrt(np.mean(part**2)))


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "audiocore", "demo", "--json", "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    summary = json.loads(r.stdout)
    assert json.loads((out / "summary.json").read_text()) == summary
    assert summary["seconds"] < 60

    # The caller's script: the bundled sentence, a pause, its first 2 s again, a tail.
    speech = _wav(DATA / "speech-16k.wav")
    said = _wav(out / "caller.wav")
    n = len(speech)
    assert np.array_equal(said[:n], speech) and np.array_equal(said[n + 3 * RATE : n + 5 * RATE],
                                                               speech[: 2 * RATE])
    spoken_s = n / RATE

    # What the caller heard: nothing while it spoke, the answer in the pause, silence from the
    # barge-in until the second answer (its 2 s of speech plus the service's 0.7 s VAD pause).
    # heard.wav spans the call as scripted, 20 ms per frame sent (said, its last frame padded),
    # so the two line up sample for sample; the hang-up's duration is not in it
    heard = _wav(out / "heard.wav")
    frame = RATE // 50
    assert len(heard) == -(-len(said) // frame) * frame
    assert summary["acs"]["caller"]["frames_sent"] * frame == len(heard)
    assert _rms(heard, 0, spoken_s) == 0
    assert _rms(heard, spoken_s + 0.8, spoken_s + 2.8) > 500
    assert _rms(heard, spoken_s + 3.4, spoken_s + 5.5) == 0
    assert _rms(heard, spoken_s + 6.0, spoken_s + 8.0) > 500

    caller = summary["acs"]["caller"]
    assert caller["frames_sent"] == -(-len(said) // (RATE // 50))  # the last one padded
    assert caller["lost_frames"] == 0 and caller["bad_frames"] == 0
    assert caller["barge_ins"] == 1 and caller["after_stop_frames"] == 0
    assert caller["responses"] == 2
    [(item, audio_end_ms, heard_ms)] = summary["acs"]["truncates"]
    assert audio_end_ms == heard_ms and 2000 <= heard_ms <= 3200

    # The Sora pass: the gateway's Ogg file holds the sentence, readable by the reference tools.
    ogg = Path(summary["outputs"]["ogg"])
    opusinfo(ogg)
    sora = summary["sora"]
    assert sora["status"] == 200 and len(pyav_packets(ogg)) == sora["packets_sent"]
    with av.open(str(ogg)) as container:
        decoded = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    back = soxr.resample(decoded.astype(np.float64), 48000, RATE)
    lag = int(np.argmax(np.abs(scipy.signal.correlate(back, speech, method="fft")))) - (n - 1)
    # The gateway declares Sora's fixed pre-skip, longer than this encoder's lookahead: the
    # decoded audio starts that much early.
    assert abs(lag * 3 + (SORA_PRE_SKIP - OPUS_LOOKAHEAD)) <= 6
    a, b = speech[-lag:], back[: n + lag]
    assert np.corrcoef(a, b)[0, 1] > 0.9


def test_a_second_demo_run_checks_the_ogg_file_its_own_stream_produced(tmp_path: Path) -> None:
    """Two Sora passes of the demo into one --out: the gateway gives the second stream a new
    file (it never overwrites the first run's ``demo-call1.ogg``); the second pass must check
    and list that new file. The first run's file is corrupted in between: were it checked
    again, the second pass would fail."""
    import asyncio

    from audiocore.commands.demo import _problems, _sora_pass, bundled_speech

    speech, rate = bundled_speech()
    out = tmp_path / "demo"
    out.mkdir()
    first = asyncio.run(_sora_pass(out, speech, rate))
    first_file = Path(first["check"]["file"])
    assert first_file == out / "sora" / "demo-call1.ogg" and first["check"]["packets_equal_sent"]
    first_file.write_bytes(b"OggS stale data of an earlier run")

    second = asyncio.run(_sora_pass(out, speech, rate))
    check = second["check"]
    second_file = Path(check["file"])
    assert second_file != first_file and second_file.parent == first_file.parent
    assert second_file.name.startswith("demo-call1.") and second_file.suffix == ".ogg"
    assert check["problem"] is None and check["packets_equal_sent"]
    assert len(pyav_packets(second_file)) == second["packets_sent"]  # read independently
    assert first_file.read_bytes() == b"OggS stale data of an earlier run"  # left alone
    summary = {"acs": {"caller": {"lost_frames": 0, "bad_frames": 0, "barge_ins": 1,
                                  "after_stop_frames": 0}, "truncates": []}, "sora": second}
    assert _problems(summary) == []


def test_demo_reports_a_bad_or_missing_ogg_file(tmp_path: Path) -> None:
    """The demo's Ogg check turns a corrupt or missing file into a problem, not a traceback."""
    from audiocore.commands.demo import _check_ogg, _problems

    good = (DATA / "speech-20ms.opus").read_bytes()
    sent = pyav_packets(DATA / "speech-20ms.opus")
    bad = tmp_path / "bad.ogg"
    bad.write_bytes(good[:200] + bytes([good[200] ^ 0xFF]) + good[201:])  # in the first page
    check = _check_ogg(bad, sent)
    assert check["problem"].startswith("unreadable") and not check["packets_equal_sent"]
    assert check["opusinfo"].startswith("problems")
    missing = _check_ogg(tmp_path / "none.ogg", sent)
    assert missing["problem"] == "the gateway wrote no file" and missing["packets"] == 0
    none = _check_ogg(None, sent)  # the gateway opened no file for the stream
    assert none["problem"] == "the gateway wrote no file" and none["file"] is None

    whole = tmp_path / "good.ogg"
    whole.write_bytes(good)
    check = _check_ogg(whole, sent)
    assert check["problem"] is None and check["packets_equal_sent"] and check["opusinfo"] == "clean"

    summary = {"acs": {"caller": {"lost_frames": 0, "bad_frames": 0, "barge_ins": 1,
                                  "after_stop_frames": 0}, "truncates": [["i", 5, 5]]},
               "sora": {"status": 200, "check": _check_ogg(bad, sent)}}
    problem, opusinfo_problem = _problems(summary)
    assert opusinfo_problem == "opusinfo found problems in the Ogg file"
    assert problem.startswith("the Sora gateway's Ogg file does not hold the packets sent "
                              "(unreadable: ")
