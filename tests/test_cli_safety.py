"""The command line loses nothing and answers every mistake with one clear line.

- Outputs replace their targets only on success: every failure path (Ctrl-C by a real SIGINT
  included) leaves an existing output byte for byte as it was, and no temporary file.
- Damaged input (a bad page, a truncated Ogg or WAV file) fails unless --lenient, which
  converts what can be read and says what was skipped; the converted part is checked against
  the clean file's conversion and the wave module.
- Mistakes get one line on stderr, exit 2 for usage and 1 for failures, never a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from audiocore import Resampler
from audiocore.commands import COMMANDS
from conftest import DATA
from gateway_util import opusinfo
from reference import ogg as ref_ogg

ROOT = Path(__file__).resolve().parents[1]
SPEECH = DATA / "speech-16k.wav"
OPUS = DATA / "speech-20ms.opus"


def cli(*args: object, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audiocore", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file of ``directory`` (hidden ones included) and its bytes."""
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


def one_line(stderr: str) -> str:
    """The single line a refusal prints, never a traceback."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def write_wav(path: Path, pcm: np.ndarray, rate: int, channels: int = 1) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())


def wav_pcm(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2"), w.getframerate()


def damaged_ogg(tmp_path: Path) -> tuple[Path, list[ref_ogg.Page], int]:
    """The bundled Ogg Opus file with one bit flipped in the body of an audio page in its
    middle (the reference parser finds its pages); returns the file, the clean pages and the
    index of the damaged one."""
    data = OPUS.read_bytes()
    pages = ref_ogg.pages(data)
    index = len(pages) // 2
    assert index >= 3  # OpusHead, OpusTags, then audio pages
    bad = bytearray(data)
    bad[pages[index].offset + 27 + len(pages[index].lacing) + 5] ^= 0x10
    path = tmp_path / "bad-crc.opus"
    path.write_bytes(bytes(bad))
    return path, pages, index


# ------------------------------------------------------------------ nothing lost


def _failures(tmp_path: Path) -> list[tuple[list[object], int]]:
    """Conversions onto an existing ``keep.*`` that fail: before, or after the output was
    opened (the resampler's range, a damaged input found while converting, a partial frame,
    too many channels for Opus, a bad CRC)."""
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(SPEECH.read_bytes()[:60000])
    odd = tmp_path / "odd.raw"
    odd.write_bytes(bytes(1001))
    three = tmp_path / "three.wav"
    write_wav(three, np.zeros(3 * 1600, np.int16), 16000, channels=3)
    bad_crc = damaged_ogg(tmp_path)[0]
    return [
        ([SPEECH, tmp_path / "keep.wav", "--rate", "5000"], 2),
        ([SPEECH, tmp_path / "keep.opus", "--rate", "1000"], 2),
        ([truncated, tmp_path / "keep.wav"], 1),
        ([truncated, tmp_path / "keep.opus"], 1),
        ([odd, tmp_path / "keep.opus", "--in-rate", "16000"], 1),
        ([three, tmp_path / "keep.opus"], 1),
        ([bad_crc, tmp_path / "keep.wav"], 1),
        ([bad_crc, tmp_path / "keep.ul", "--rate", "8000"], 1),
    ]


def test_a_failed_convert_leaves_the_existing_output_as_it_was(tmp_path: Path) -> None:
    for name in ("keep.wav", "keep.opus", "keep.ul"):
        (tmp_path / name).write_bytes(b"precious " + name.encode())
    failures = _failures(tmp_path)
    before = snapshot(tmp_path)
    for args, status in failures:
        result = cli("convert", *args)
        assert result.returncode == status, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert snapshot(tmp_path) == before, args  # the target untouched, no temporary left


def test_a_successful_convert_replaces_the_output_keeping_its_mode(tmp_path: Path) -> None:
    out = tmp_path / "out.wav"
    out.write_bytes(b"old")
    out.chmod(0o640)
    assert cli("convert", SPEECH, out, "--rate", "8000").returncode == 0
    pcm, rate = wav_pcm(out)
    assert rate == 8000 and len(pcm) == len(wav_pcm(SPEECH)[0]) // 2
    assert out.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]


def test_outputs_through_a_link_or_to_a_device(tmp_path: Path) -> None:
    real = tmp_path / "real.raw"
    real.write_bytes(b"old")
    link = tmp_path / "link.raw"
    link.symlink_to(real)
    assert cli("convert", SPEECH, link).returncode == 0
    assert link.is_symlink() and real.read_bytes() == wav_pcm(SPEECH)[0].tobytes()
    # a target that is not a regular file is written in place: the PCM on stdout
    piped = subprocess.run([sys.executable, "-m", "audiocore", "convert", str(SPEECH), "/dev/stdout",
                            "--format", "raw"], capture_output=True, timeout=300)
    assert piped.returncode == 0 and piped.stdout == wav_pcm(SPEECH)[0].tobytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.raw", "real.raw"]


def _interrupt_when_present(proc: subprocess.Popen[bytes], directory: Path, pattern: str) -> None:
    """SIGINT to ``proc`` once a file matching ``pattern`` (its temporary output) exists in
    ``directory`` (deadline 60 s: a slow start on a busy machine; no fixed sleep)."""
    deadline = time.monotonic() + 60
    while not list(directory.glob(pattern)):
        assert proc.poll() is None, "the command ended before its output was opened"
        assert time.monotonic() < deadline, "no temporary output within 60 s"
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)


def test_ctrl_c_during_convert_keeps_the_existing_output(tmp_path: Path) -> None:
    # 20 minutes of noise at 16 kHz to Opus at 24 kHz (resampled, then encoded): far longer
    # than the time between the temporary file appearing and the signal
    long = tmp_path / "long.wav"
    write_wav(long, np.random.default_rng(1).integers(-8000, 8000, 16000 * 1200), 16000)
    out = tmp_path / "keep.opus"
    out.write_bytes(b"the previous conversion")
    before = snapshot(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "audiocore", "convert", str(long), str(out), "--rate", "24000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _interrupt_when_present(proc, tmp_path, ".keep.*.part.opus")
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, stderr
    assert one_line(stderr.decode()) == "audiocore convert: interrupted"
    assert stdout == b""
    assert snapshot(tmp_path) == before


def _dump_line(packet: bytes) -> bytes:
    import base64

    return json.dumps({"connection_id": "c1", "payload": base64.b64encode(packet).decode()}).encode() + b"\n"


def test_ctrl_c_during_dump2ogg_keeps_the_existing_output(tmp_path: Path) -> None:
    from audiocore.gateway.peers.sora_client import packets_from_ogg

    out = tmp_path / "keep.ogg"
    out.write_bytes(b"the previous dump")
    before = snapshot(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "audiocore", "dump2ogg", "-", str(out)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdin is not None
        for packet in packets_from_ogg(OPUS)[:10]:  # then the dump stays open: still reading
            proc.stdin.write(_dump_line(packet))
        proc.stdin.flush()
        _interrupt_when_present(proc, tmp_path, ".keep.*.part.ogg")
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, stderr
    assert one_line(stderr.decode()) == "audiocore dump2ogg: interrupted"
    assert snapshot(tmp_path) == before


def test_a_failed_dump2ogg_leaves_the_existing_outputs_as_they_were(tmp_path: Path) -> None:
    from audiocore.gateway.peers.sora_client import packets_from_ogg

    packets = packets_from_ogg(OPUS)[:5]
    dump = tmp_path / "d.jsonl"
    dump.write_bytes(b"".join(_dump_line(p) for p in packets) + b'{"payload": "not base64!"}\n')
    out = tmp_path / "keep.ogg"
    out.write_bytes(b"the previous dump")
    before = snapshot(tmp_path)
    result = cli("dump2ogg", dump, out)
    assert result.returncode == 1 and one_line(result.stderr).startswith("audiocore dump2ogg: line 6: payload")
    assert snapshot(tmp_path) == before
    # and a good dump replaces it: the packets, read back by the reference parser
    dump.write_bytes(b"".join(_dump_line(p) for p in packets))
    assert cli("dump2ogg", dump, out).returncode == 0
    assert [p.data for p in ref_ogg.packets(ref_ogg.pages(out.read_bytes()))][2:] == packets
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl", "keep.ogg"]


# ------------------------------------------------------------------ one rate range


def test_the_rate_range_is_the_resamplers_and_checked_before_writing(tmp_path: Path) -> None:
    # the resampler's real range, found by asking it
    Resampler(8000, 48000)
    Resampler(192000, 48000)
    for rate in (7999, 192001):
        with pytest.raises(ValueError):
            Resampler(rate, 48000)
    for rate in (1000, 7999, 192001):
        result = cli("convert", SPEECH, tmp_path / "x.opus", "--rate", rate)
        assert result.returncode == 2 and "outside 8000-192000" in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []
    # what is written reads back, at the edges of the range
    for rate in (8000, 11025, 192000):
        assert cli("convert", SPEECH, tmp_path / f"{rate}.opus", "--rate", rate).returncode == 0
        back = cli("convert", tmp_path / f"{rate}.opus", tmp_path / f"{rate}.wav")
        assert back.returncode == 0, back.stderr
        pcm, got = wav_pcm(tmp_path / f"{rate}.wav")
        assert got == rate and len(pcm) == len(wav_pcm(SPEECH)[0]) * rate // 16000
    # an input outside it converts where no resampling is needed, and is refused (before
    # anything is written) where it is
    raw = tmp_path / "slow.raw"
    raw.write_bytes(bytes(4000 * 2))
    assert cli("convert", raw, tmp_path / "slow.wav", "--in-rate", 4000).returncode == 0
    assert wav_pcm(tmp_path / "slow.wav")[1] == 4000
    refused = cli("convert", raw, tmp_path / "slow.opus", "--in-rate", 4000)
    assert refused.returncode == 1 and "4000 Hz is outside" in one_line(refused.stderr)
    assert not (tmp_path / "slow.opus").exists()


# ------------------------------------------------------------------ damaged input


def test_a_bad_crc_fails_unless_lenient_which_skips_the_page(tmp_path: Path) -> None:
    bad, pages, index = damaged_ogg(tmp_path)
    strict = cli("convert", bad, tmp_path / "strict.wav")
    line = one_line(strict.stderr)
    assert strict.returncode == 1 and "CRC" in line and "--lenient" in line
    assert not (tmp_path / "strict.wav").exists()
    assert cli("convert", OPUS, tmp_path / "clean.wav").returncode == 0
    lenient = cli("convert", bad, tmp_path / "lenient.wav", "--lenient")
    assert lenient.returncode == 0, lenient.stderr
    assert "warning: skipped damaged input" in lenient.stderr and "CRC mismatch" in lenient.stderr
    clean, _ = wav_pcm(tmp_path / "clean.wav")
    got, rate = wav_pcm(tmp_path / "lenient.wav")
    # before the damaged page: the clean conversion; the page's audio is missing (the rest
    # comes earlier by as much, within a packet), and the rest is the clean audio again once
    # the decoder, which missed those packets, has caught up
    pre_skip = ref_ogg.parse_opus_head(pages[0].body)["pre_skip"]
    before = pages[index - 1].granule - pre_skip
    lost = pages[index].granule - pages[index - 1].granule
    assert rate == 48000 and np.array_equal(got[:before], clean[:before])
    assert len(clean) - lost - 960 <= len(got) <= len(clean) - lost + 960
    x = clean[before + lost + 4800 :].astype(np.float64)  # from 100 ms after the gap
    y = got[before + 4800 :][: len(x)].astype(np.float64)
    x = x[: len(y)]
    assert 10 * np.log10(np.sum(x**2) / max(np.sum((x - y) ** 2), 1e-9)) > 30


def test_a_truncated_ogg_fails_unless_lenient(tmp_path: Path) -> None:
    data = OPUS.read_bytes()
    pages = ref_ogg.pages(data)
    cut = tmp_path / "cut.opus"
    cut.write_bytes(data[: pages[-3].offset + 100])  # inside the third page from the end
    no_eos = tmp_path / "no-eos.opus"
    last = pages[-1]
    no_eos.write_bytes(data[: last.offset] + ref_ogg.page_bytes(
        last.flags & ~ref_ogg.EOS, last.granule, last.serial, last.seq, last.lacing, last.body))
    assert cli("convert", OPUS, tmp_path / "clean.wav").returncode == 0
    clean, _ = wav_pcm(tmp_path / "clean.wav")
    for damaged in (cut, no_eos):
        out = tmp_path / (damaged.stem + ".wav")
        strict = cli("convert", damaged, out)
        assert strict.returncode == 1 and "truncated" in one_line(strict.stderr)
        assert not out.exists()
        lenient = cli("convert", damaged, out, "--lenient")
        assert lenient.returncode == 0 and "truncated" in lenient.stderr
        got, _ = wav_pcm(out)
        assert np.array_equal(got, clean[: len(got)])
        if damaged is no_eos:
            assert len(got) == len(clean)  # every page is there: only the flag is missing
        else:
            assert len(got) == pages[-4].granule - ref_ogg.parse_opus_head(pages[0].body)["pre_skip"]
        # inspect says so too
        problems = json.loads(cli("inspect", "--json", damaged).stdout)
        text = json.dumps(problems)
        assert "truncated page" in text or "no EOS" in text


def test_a_truncated_wav_fails_unless_lenient(tmp_path: Path) -> None:
    cut = tmp_path / "cut.wav"
    cut.write_bytes(SPEECH.read_bytes()[:50001])  # mid-sample too
    with wave.open(str(cut)) as w:  # the wave module's view: the header's count, the data held
        header_frames = w.getnframes()
        held = w.readframes(header_frames)
    assert len(held) // 2 < header_frames
    strict = cli("convert", cut, tmp_path / "x.raw")
    line = one_line(strict.stderr)
    assert strict.returncode == 1 and f"header says {header_frames} frames" in line
    assert not (tmp_path / "x.raw").exists()
    lenient = cli("convert", cut, tmp_path / "x.raw", "--lenient")
    assert lenient.returncode == 0 and "truncated" in lenient.stderr
    assert (tmp_path / "x.raw").read_bytes() == held[: len(held) // 2 * 2]
    inspected = cli("inspect", cut)
    assert inspected.returncode == 3 and "PROBLEM: truncated" in inspected.stdout


def test_inspect_reports_junk_before_the_first_page(tmp_path: Path) -> None:
    junk = tmp_path / "junk.opus"
    junk.write_bytes(b"\x00garbage" * 40 + OPUS.read_bytes())
    result = cli("inspect", "--json", junk)
    assert result.returncode == 3, result.stderr
    facts = json.loads(result.stdout)
    assert "320 bytes that are not a page at offset 0" in facts["problems"]
    assert facts["streams"][0]["packets"] == len(ref_ogg.packets(ref_ogg.pages(OPUS.read_bytes()))) - 2
    neither = tmp_path / "neither.opus"
    neither.write_bytes(b"\x00" * 1000)
    refused = cli("inspect", neither)
    assert refused.returncode == 1 and "neither Ogg nor WAV" in one_line(refused.stderr)


# ------------------------------------------------------------------ inspect's text


def test_inspect_shows_silence_and_empty_files_without_none_or_tracebacks(tmp_path: Path) -> None:
    silent = tmp_path / "silent.wav"
    write_wav(silent, np.zeros(1600, np.int16), 16000)
    text = cli("inspect", silent)
    assert text.returncode == 0
    assert "peak_dbfs: -inf (silent)" in text.stdout and "rms_dbfs: -inf (silent)" in text.stdout
    facts = json.loads(cli("inspect", "--json", silent).stdout)
    assert facts["peak_dbfs"] is None and facts["rms_dbfs"] is None
    quiet = tmp_path / "quiet.wav"  # one sample of 1: peak 20 log10(1/32768)
    write_wav(quiet, np.array([0, 1, 0, 0], np.int16), 16000)
    facts = json.loads(cli("inspect", "--json", quiet).stdout)
    assert facts["peak_dbfs"] == round(20 * np.log10(1 / 32768), 2)
    assert facts["rms_dbfs"] == round(20 * np.log10(np.sqrt(1 / 4) / 32768), 2)
    no_data = tmp_path / "no-data.wav"
    no_data.write_bytes(silent.read_bytes()[:44])  # the header promises 1600 frames
    empty = tmp_path / "empty.wav"
    write_wav(empty, np.zeros(0, np.int16), 16000)
    # an Ogg Opus stream of no audio: the bitrates have no duration to divide by
    zero = tmp_path / "zero.opus"
    data = OPUS.read_bytes()
    pages = ref_ogg.pages(data)
    first = pages[2]
    zero.write_bytes(data[: first.offset] + ref_ogg.page_bytes(
        ref_ogg.EOS, ref_ogg.parse_opus_head(pages[0].body)["pre_skip"], first.serial, first.seq,
        ref_ogg.lacing(len(ref_ogg.packets(pages)[2].data)), ref_ogg.packets(pages)[2].data))
    for path, status in ((silent, 0), (no_data, 3), (empty, 0), (zero, 0)):
        result = cli("inspect", path)
        assert result.returncode == status, (path, result.stdout, result.stderr)
        assert result.stderr == ""
        assert "None" not in result.stdout and "-270" not in result.stdout, result.stdout
    assert "truncated: the header says 1600 frames, the file holds 0" in cli("inspect", no_data).stdout
    assert "bitrate_bps: n/a" in cli("inspect", zero).stdout


def test_inspect_into_a_closed_pipe_ends_quietly() -> None:
    # far more than a pipe holds, so the command is still writing when the reader goes away
    proc = subprocess.Popen([sys.executable, "-m", "audiocore", "inspect", *[str(OPUS)] * 300],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    try:
        stderr = proc.stderr.read()
        proc.wait(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert first.startswith(str(OPUS).encode())
    assert proc.returncode == 141 and stderr == b"", stderr


# ------------------------------------------------------------------ one clear line


def test_bench_refuses_a_missing_folder_and_a_filter_matching_nothing(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_text('{"earlier": "results"}\n')
    typo = cli("bench", "-k", "no-such-case", "--json", results)
    assert typo.returncode == 2 and "no case matches -k 'no-such-case'" in one_line(typo.stderr)
    assert typo.stdout == "" and results.read_text() == '{"earlier": "results"}\n'
    for flag, name in (("--json", "r.json"), ("--plot", "r.png")):
        missing = cli("bench", "-k", "ulaw_encode", flag, tmp_path / "no" / name)
        assert missing.returncode == 2, missing.stderr
        assert f"no directory {tmp_path / 'no'}" in one_line(missing.stderr)
        assert missing.stdout == ""  # refused before the run: no table
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_bench_writes_its_files_whole(tmp_path: Path) -> None:
    result = cli("bench", "--quick", "--seconds", "0.01", "-k", "ulaw_encode", "--json", tmp_path / "r.json",
                 "--plot", tmp_path / "r.png")
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "r.json").read_text())["results"]
    assert rows and all(row["operation"].startswith("ulaw_encode") for row in rows)
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]
    assert f"results in {tmp_path / 'r.json'}" in result.stdout


def test_demo_out_must_be_a_directory(tmp_path: Path) -> None:
    taken = tmp_path / "a-file"
    taken.write_bytes(b"mine")
    result = cli("demo", "--out", taken)
    assert result.returncode == 2 and "not a directory" in one_line(result.stderr)
    assert taken.read_bytes() == b"mine"


# Runs the command with the libraries named in $BLOCK unimportable, as in an installation
# without the extra that brings them.
_WITHOUT = """
import os, sys
BLOCKED = os.environ["BLOCK"].split(",")
class Without:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Without())
from audiocore.cli import main
sys.exit(main(sys.argv[1:]))
"""


def without(blocked: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _WITHOUT, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "BLOCK": blocked})


@pytest.mark.parametrize("args", [["demo", "--out", "demo-out"], ["serve", "sora", "--listen-port", "0"],
                                  ["serve", "bridge", "--port", "0"], ["loadtest", "--calls", "1"],
                                  ["dump2ogg", "dump.jsonl", "--split", "out"]],
                         ids=lambda a: " ".join(a[:2]))
def test_without_the_gateway_extra_one_line_names_it(tmp_path: Path, args: list[str]) -> None:
    result = without("picows,h2", args, tmp_path)
    line = one_line(result.stderr)
    assert result.returncode == 2, result.stderr
    assert "pip install 'audiocore[gateway]'" in line and "picows" in line and "h2" in line
    assert list(tmp_path.iterdir()) == []  # nothing created


@pytest.mark.parametrize("args", [["bench", "--json", "r.json"], ["loadtest", "--calls", "1"]],
                         ids=lambda a: a[0])
def test_without_the_bench_extra_one_line_names_it(tmp_path: Path, args: list[str]) -> None:
    result = without("soxr", args, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "pip install 'audiocore[bench]'" in one_line(result.stderr) and "soxr" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_in_the_asyncio_demo_is_one_line(tmp_path: Path) -> None:
    # an interrupt inside an event loop, with servers, connections and tasks cut short
    proc = subprocess.Popen([sys.executable, "-m", "audiocore", "demo", "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _interrupt_when_present(proc, tmp_path, "caller.wav")  # the call has begun
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    text = stderr.decode()
    assert proc.returncode == 130, text
    assert text.splitlines()[-1] == "audiocore demo: interrupted"
    assert "Traceback" not in text and "Exception ignored" not in text and "never retrieved" not in text, text
    assert stdout == b""


def test_help_texts_have_no_rest_markup() -> None:
    runs = [[name, "--help"] for name in COMMANDS if name != "serve"]
    runs += [["serve", "--help"], ["serve", "sora", "--help"], ["serve", "bridge", "--help"], ["--help"]]
    for args in runs:
        result = cli(*args)
        assert result.returncode == 0, (args, result.stderr)
        for markup in ("``", ":class:", ":mod:", ":func:", ":meth:"):
            assert markup not in result.stdout, (args, markup, result.stdout)
