"""convert / dump2ogg / inspect end to end on the bundled data, checked against independent
tools: opusinfo, opusdec, PyAV, the wave module, soxr, audioop."""

from __future__ import annotations

import audioop
import base64
import json
import subprocess
import sys
import wave
from pathlib import Path

import av
import numpy as np
import pytest
import soxr
from hypothesis import given, settings
from hypothesis import strategies as st

from audiocore.commands.dump2ogg import DumpError, parse_record
from audiocore.gateway.peers.sora_client import packets_from_ogg
from conftest import DATA
from gateway_util import opusinfo, pyav_packets
from signal_util import best_lag

PACKETS = packets_from_ogg(DATA / "speech-20ms.opus")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audiocore", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def wav_pcm(path: Path) -> tuple[np.ndarray, int, int]:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2"), w.getframerate(), w.getnchannels()


def opusdec(path: Path, out: Path, *args: str) -> np.ndarray:
    subprocess.run(["opusdec", "--quiet", "--no-dither", *args, str(path), str(out)], check=True, timeout=120)
    return wav_pcm(out)[0]


# The whole sample ends 92 samples into a 20 ms frame; 32000 samples end on a frame boundary
# and 31980 ends 300 samples in: either way the encoder's lookahead (104 samples at 16 kHz)
# no longer fits in the last frame, so silence must be encoded after it.
@pytest.mark.parametrize("samples", [None, 32000, 31980])
def test_wav_to_opus_exact_length_and_aligned(tmp_path: Path, samples: int | None) -> None:
    src, rate, _ = wav_pcm(DATA / "speech-16k.wav")
    wav = DATA / "speech-16k.wav"
    if samples is not None:
        src = src[:samples]
        wav = tmp_path / "cut.wav"
        with wave.open(str(wav), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(src.tobytes())
    out = tmp_path / "a.opus"
    result = cli("convert", wav, out, "--bitrate", "32000")
    assert result.returncode == 0 and result.stdout == "", result.stderr
    report = opusinfo(out)
    assert "Original sample rate: 16000 Hz" in report
    decoded = opusdec(out, tmp_path / "dec.wav")
    assert wav_pcm(tmp_path / "dec.wav")[1] == 16000
    assert len(decoded) == len(src)  # pre-skip and end trimming: exact
    # aligned: opusdec at 48 kHz against the source upsampled by soxr; a wrong pre-skip would
    # show as a lag of hundreds of samples (libopus itself is within a 16 kHz sample)
    at48 = opusdec(out, tmp_path / "dec48.wav", "--rate", "48000")
    lag, corr = best_lag(soxr.resample(src, 16000, 48000), at48, 600)
    assert abs(lag) <= 3 and corr > 0.95, (lag, corr)
    with av.open(str(out)) as c:
        n48 = sum(f.samples for f in c.decode(audio=0))
    assert n48 == len(src) * 3


def test_opus_to_wav_equals_opusdec_and_pyav(tmp_path: Path) -> None:
    for name in ("speech-20ms.opus", "speech-60ms-64k.opus"):
        out = tmp_path / (name + ".wav")
        assert cli("convert", DATA / name, out).returncode == 0
        ours, rate, channels = wav_pcm(out)
        assert (rate, channels) == (48000, 1)
        ref = opusdec(DATA / name, tmp_path / "ref.wav", "--rate", "48000")
        assert len(ours) == len(ref)
        assert np.max(np.abs(ours.astype(np.int32) - ref)) <= 2  # float vs int16 decoding
        with av.open(str(DATA / name)) as c:
            frames = [f.to_ndarray() for f in c.decode(audio=0)]
        pyav = np.concatenate([f.reshape(-1) for f in frames])
        assert len(pyav) == len(ours)
        # decode straight at 16 kHz: a third of the samples, exactly
        out16 = tmp_path / (name + ".16k.wav")
        assert cli("convert", DATA / name, out16, "--rate", "16000").returncode == 0
        assert len(wav_pcm(out16)[0]) == len(ours) // 3


def test_wav_resampled_against_soxr(tmp_path: Path) -> None:
    src, _, _ = wav_pcm(DATA / "speech-16k.wav")
    for rate in (24000, 8000, 44100):
        out = tmp_path / f"r{rate}.wav"
        assert cli("convert", DATA / "speech-16k.wav", out, "--rate", rate).returncode == 0
        ours, got_rate, _ = wav_pcm(out)
        assert got_rate == rate and len(ours) == len(src) * rate // 16000
        ref = soxr.resample(src, 16000, rate, quality="HQ")
        n = min(len(ref), len(ours))
        err = ours[:n].astype(np.float64) - ref[:n]
        snr = 10 * np.log10(np.sum(ref[:n].astype(np.float64) ** 2) / np.sum(err**2))
        assert snr > 35, (rate, snr)


def test_g711_both_ways_equal_audioop(tmp_path: Path) -> None:
    src, _, _ = wav_pcm(DATA / "speech-8k.wav")
    for ext, enc, dec in ((".ul", audioop.lin2ulaw, audioop.ulaw2lin), (".al", audioop.lin2alaw, audioop.alaw2lin)):
        coded = tmp_path / ("x" + ext)
        assert cli("convert", DATA / "speech-8k.wav", coded).returncode == 0
        assert coded.read_bytes() == enc(src.tobytes(), 2)
        back = tmp_path / (ext[1:] + ".wav")
        assert cli("convert", coded, back).returncode == 0
        pcm, rate, _ = wav_pcm(back)
        assert rate == 8000 and pcm.tobytes() == dec(coded.read_bytes(), 2)
    # 16 kHz to mu-law at 8 kHz in one step
    out = tmp_path / "tel.ulaw"
    assert cli("convert", DATA / "speech-16k.wav", out, "--rate", "8000").returncode == 0
    assert len(out.read_bytes()) == len(src)


def test_raw_pcm_needs_its_rate(tmp_path: Path) -> None:
    src, _, _ = wav_pcm(DATA / "speech-16k.wav")
    raw = tmp_path / "x.raw"
    assert cli("convert", DATA / "speech-16k.wav", raw).returncode == 0
    assert raw.read_bytes() == src.tobytes()
    missing = cli("convert", raw, tmp_path / "y.wav")
    assert missing.returncode == 1 and "--in-rate" in missing.stderr
    assert cli("convert", raw, tmp_path / "y.wav", "--in-rate", "16000").returncode == 0
    assert wav_pcm(tmp_path / "y.wav")[0].tobytes() == src.tobytes()
    odd = tmp_path / "odd.raw"
    odd.write_bytes(src.tobytes()[:1001])
    bad = cli("convert", odd, tmp_path / "z.wav", "--in-rate", "16000")
    assert bad.returncode == 1 and "whole frame" in bad.stderr
    # a failure closes both files (-X dev reports a file left to the garbage collector) and
    # leaves no output: neither a partial file nor its temporary
    cut = subprocess.run([sys.executable, "-X", "dev", "-m", "audiocore", "convert", str(odd),
                          str(tmp_path / "z.opus"), "--in-rate", "16000"], capture_output=True, text=True, timeout=300)
    assert cut.returncode == 1 and "whole frame" in cut.stderr and "ResourceWarning" not in cut.stderr, cut.stderr
    assert not (tmp_path / "z.opus").exists() and not list(tmp_path.glob(".z.opus*"))
    # --lenient drops the partial frame, says so, and the file is whole
    lenient = cli("convert", odd, tmp_path / "z.opus", "--in-rate", "16000", "--lenient")
    assert lenient.returncode == 0 and "warning" in lenient.stderr and "whole frame" in lenient.stderr
    opusinfo(tmp_path / "z.opus")
    (tmp_path / "junk.opus").write_bytes(b"OggS" + bytes(100))
    junk = subprocess.run([sys.executable, "-X", "dev", "-m", "audiocore", "convert", str(tmp_path / "junk.opus"),
                           str(tmp_path / "j.wav")], capture_output=True, text=True, timeout=300)
    assert junk.returncode == 1 and "ResourceWarning" not in junk.stderr, junk.stderr
    unknown = cli("convert", DATA / "speech-16k.wav", tmp_path / "x.xyz")
    assert unknown.returncode == 1 and "extension" in unknown.stderr


def test_many_files_with_a_forced_progress_bar(tmp_path: Path) -> None:
    inputs = [DATA / "speech-8k.wav", DATA / "speech-24k.wav", DATA / "speech-20ms.opus"]
    result = cli("convert", *inputs, "--to", tmp_path / "out", "--format", "opus", "--rate", "16000", "--progress")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # the bar is on stderr only
    assert "3 files [" in result.stderr and "100.0%" in result.stderr
    for name in ("speech-8k.opus", "speech-24k.opus", "speech-20ms.opus"):
        opusinfo(tmp_path / "out" / name)
    quiet = cli("convert", DATA / "speech-8k.wav", tmp_path / "q.wav")
    assert quiet.stderr == ""  # not a terminal: no bar


def _dump_line(packet: bytes, conn: str = "c1") -> str:
    return json.dumps({"timestamp": 1, "channel_id": "sora", "connection_id": conn, "language_code": "ja-JP",
                       "sample_rate": 48000, "channel_count": 1, "payload": base64.b64encode(packet).decode()})


def test_dump2ogg(tmp_path: Path) -> None:
    dump = tmp_path / "dump.jsonl"
    packets = PACKETS[:100]
    dump.write_text("\n".join(_dump_line(p) for p in packets) + "\n\n")
    out = tmp_path / "x.ogg"
    result = cli("dump2ogg", dump, out)
    assert result.returncode == 0, result.stderr
    opusinfo(out)
    assert pyav_packets(out) == packets == packets_from_ogg(out)
    # two connections: refused without a choice, split or picked with one
    dump.write_text("\n".join(_dump_line(p, "c1" if i % 2 else "c2") for i, p in enumerate(packets)) + "\n")
    mixed = cli("dump2ogg", dump, out)
    assert mixed.returncode == 1 and "several connections" in mixed.stderr
    assert cli("dump2ogg", dump, "--split", tmp_path / "split").returncode == 0
    assert pyav_packets(tmp_path / "split" / "sora-c1.ogg") == packets[1::2]
    assert pyav_packets(tmp_path / "split" / "sora-c2.ogg") == packets[0::2]
    assert cli("dump2ogg", dump, out, "--connection-id", "c2").returncode == 0
    assert pyav_packets(out) == packets[0::2]
    dump.write_text(_dump_line(packets[0]) + "\n" + _dump_line(b"") + "\n")
    bad = cli("dump2ogg", dump, out)
    assert bad.returncode == 1 and "line 2: payload" in bad.stderr
    assert cli("dump2ogg", dump, out, "--skip-bad").returncode == 0
    missing = cli("dump2ogg", tmp_path / "none.jsonl", out)
    assert missing.returncode == 1 and missing.stderr.startswith("audiocore dump2ogg: "), missing.stderr


def test_dump2ogg_reads_what_the_gateway_dumped(tmp_path: Path) -> None:
    from audiocore.gateway.config import SoraConfig
    from audiocore.gateway.peers.sora_client import stream_opus
    from audiocore.gateway.sora import SoraServer
    from gateway_util import run

    async def scenario() -> None:
        cfg = SoraConfig(listen_port=0, dump_file=str(tmp_path / "d.jsonl"), audio_streaming_header=True,
                         service="dump", skip_basic_auth=True)
        async with SoraServer(cfg) as server:
            r = await stream_opus(server.url + "/dump", PACKETS[:60], realtime=False, connection_id="C")
            assert r.status == 200 and len(r.lines) == 60

    run(scenario())
    assert cli("dump2ogg", tmp_path / "d.jsonl", tmp_path / "d.ogg").returncode == 0
    opusinfo(tmp_path / "d.ogg")
    assert pyav_packets(tmp_path / "d.ogg") == PACKETS[:60]


_records = st.fixed_dictionaries(
    {"payload": st.binary(max_size=50).map(lambda b: base64.b64encode(b).decode())},
    optional={"timestamp": st.integers(0, 2**50), "channel_id": st.text(max_size=8),
              "connection_id": st.text(max_size=8), "language_code": st.text(max_size=8),
              "sample_rate": st.integers(1, 384000), "channel_count": st.integers(1, 2)},
)


@given(_records)
def test_dump_records_round_trip(obj: dict[str, object]) -> None:
    record = parse_record(json.dumps(obj))
    assert record.payload == base64.b64decode(str(obj["payload"]))
    assert record.channel_count == obj.get("channel_count", 1)
    assert record.connection_id == obj.get("connection_id", "")


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


@settings(max_examples=300)
@given(st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200),
    _json_values.map(json.dumps),
    _records.flatmap(lambda r: st.dictionaries(st.sampled_from(list(r) + ["x"]), _json_values, max_size=4)
                     .map(lambda extra: json.dumps({**r, **extra}))),
))
def test_dump_parser_never_crashes(text: str | bytes) -> None:
    try:
        record = parse_record(text, 7)
    except DumpError as exc:
        assert exc.line == 7
        return
    assert isinstance(record.payload, bytes) and record.channel_count in (1, 2)


def test_inspect_facts_against_opusinfo_and_pyav(tmp_path: Path) -> None:
    for name in ("speech-20ms.opus", "speech-60ms-64k.opus"):
        result = cli("inspect", "--json", DATA / name)
        assert result.returncode == 0, result.stderr
        facts = json.loads(result.stdout)
        (stream,) = facts["streams"]
        report = opusinfo(DATA / name)
        assert f"Pre-skip: {stream['pre_skip']}" in report
        assert stream["packets"] == len(pyav_packets(DATA / name))
        with av.open(str(DATA / name)) as c:
            samples = sum(f.samples for f in c.decode(audio=0))
        assert stream["samples_48k"] == samples
        assert stream["problems"] == [] and facts["problems"] == []
        assert f"Average bitrate: {stream['bitrate_with_overhead_bps'] / 1000:.1f}" in report
        text = cli("inspect", DATA / name).stdout
        assert "no problems found" in text and "packet_ms" in text
    broken = tmp_path / "broken.opus"
    data = bytearray((DATA / "speech-20ms.opus").read_bytes())
    data[5000] ^= 0xFF
    broken.write_bytes(bytes(data))
    result = cli("inspect", broken)
    assert result.returncode == 3 and "CRC mismatch" in result.stdout
    wav = json.loads(cli("inspect", "--json", DATA / "speech-24k.wav").stdout)
    with wave.open(str(DATA / "speech-24k.wav")) as w:
        assert (wav["sample_rate"], wav["frames"], wav["channels"]) == (w.getframerate(), w.getnframes(), w.getnchannels())
    assert cli("inspect", tmp_path / "nope.ogg").returncode == 1
    chained = tmp_path / "chained.opus"
    chained.write_bytes((DATA / "speech-20ms.opus").read_bytes() + (DATA / "speech-60ms-64k.opus").read_bytes())
    facts = json.loads(cli("inspect", "--json", chained).stdout)
    assert [(s["packets"], s["pre_skip"], s["problems"]) for s in facts["streams"]] == [
        (len(pyav_packets(DATA / "speech-20ms.opus")), 312, []), (len(pyav_packets(DATA / "speech-60ms-64k.opus")), 312, [])]
    refused = cli("convert", chained, tmp_path / "c.wav")
    assert refused.returncode == 1 and "chained" in refused.stderr


@pytest.mark.parametrize("name", ["speech-20ms.opus", "speech-60ms-64k.opus"])
def test_inspect_on_gateway_output(tmp_path: Path, name: str) -> None:
    # A file the gateway's Ogg writer made from dumped packets is inspected without problems.
    dump = tmp_path / "d.jsonl"
    packets = packets_from_ogg(DATA / name)
    dump.write_text("\n".join(_dump_line(p) for p in packets) + "\n")
    assert cli("dump2ogg", dump, tmp_path / "g.ogg").returncode == 0
    facts = json.loads(cli("inspect", "--json", tmp_path / "g.ogg").stdout)
    (stream,) = facts["streams"]
    assert stream["pages"] == len(packets) + 3  # OpusHead, OpusTags, one per packet, EOS
    assert stream["pre_skip"] == 3840 and stream["problems"] == []
