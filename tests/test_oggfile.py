"""audiocore.oggfile: Ogg Opus files to and from PCM, against opusdec, opusinfo and PyAV."""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from pathlib import Path

import av
import numpy as np
import opuslib
import pytest
import soxr
from hypothesis import given, settings
from hypothesis import strategies as st

import audiocore
from audiocore import DecodeError, OggOpusFileReader, OggOpusFileWriter, read_ogg_opus, write_ogg_opus
from signal_util import best_lag

DATA = Path(__file__).parent / "data"
FILES = ("speech-20ms.opus", "speech-60ms-64k.opus")

pytestmark = pytest.mark.skipif(not shutil.which("opusdec"), reason="opus-tools (./run installs it) missing")


def wav_pcm(path: Path) -> tuple[np.ndarray, int, int]:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2"), w.getframerate(), w.getnchannels()


def opusdec(path: Path, tmp: Path) -> np.ndarray:
    """opusdec at 48 kHz without dither: its pre-skip, gain and end trimming are the oracle."""
    out = tmp / (path.name + ".dec.wav")
    subprocess.run(["opusdec", "--quiet", "--no-dither", "--rate", "48000", str(path), str(out)],
                   check=True, timeout=120, capture_output=True)
    return wav_pcm(out)[0]


def opusinfo_problems(path: Path) -> list[str]:
    r = subprocess.run(["opusinfo", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return [line for line in (r.stdout + r.stderr).splitlines() if "WARNING" in line.upper() or "ERROR" in line.upper()]


def pyav_samples(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(f.samples for f in c.decode(audio=0))


def as_int(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, "<i2").astype(np.int32)


def source_16k() -> np.ndarray:
    return wav_pcm(DATA / "speech-16k.wav")[0]


# ---------------------------------------------------------------- reading


@pytest.mark.parametrize("name", FILES)
def test_reads_what_opusdec_and_pyav_decode(name: str, tmp_path: Path) -> None:
    path = DATA / name
    ref = opusdec(path, tmp_path)
    got = read_ogg_opus(path)
    assert (got.rate, got.channels) == (48000, 1)
    assert len(got.pcm) // 2 == len(ref) == pyav_samples(path)  # pre-skip and end trimming
    # opusdec decodes in float and rounds; libopus's int16 path may differ by a unit or two
    assert np.max(np.abs(as_int(got.pcm) - ref)) <= 2
    # the same from the bytes, from a file object, block by block
    assert read_ogg_opus(path.read_bytes()).pcm == got.pcm
    with open(path, "rb") as f, OggOpusFileReader(f) as r:
        assert b"".join(r) == got.pcm and r.bytes_read == path.stat().st_size
    with OggOpusFileReader(path) as r:
        assert r.head.pre_skip == 312 and r.input_rate == 48000 and r.tags is not None


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("rate", [8000, 12000, 16000, 24000, 11025, 22050, 32000, 44100])
def test_reads_at_any_rate(name: str, rate: int, tmp_path: Path) -> None:
    """Any rate gives exactly the 48 kHz length at that rate. Opus rates are libopus decoding
    straight at that rate (opuslib's decode of the packets PyAV demuxes, cut at opusdec's
    start and length); other rates are opusdec's audio resampled (soxr as the reference)."""
    path = DATA / name
    ref = opusdec(path, tmp_path)
    got = as_int(read_ogg_opus(path, rate).pcm)
    assert len(got) == len(ref) * rate // 48000
    if rate in audiocore.OPUS_RATES:
        with av.open(str(path)) as c:
            packets = [bytes(p) for p in c.demux(audio=0) if p.size]
        dec = opuslib.Decoder(rate, 1)
        whole = np.frombuffer(b"".join(dec.decode(p, rate * 120 // 1000) for p in packets), "<i2")
        start = 312 * rate // 48000  # both files' pre-skip (opusinfo: "Pre-skip: 312")
        assert np.array_equal(got, whole[start : start + len(got)])
    else:
        expected = soxr.resample(ref.astype(np.float32), 48000, rate)
        lag, corr = best_lag(expected, got, 40)
        assert lag == 0 and corr > 0.999, (lag, corr)  # measured >= 0.99993


def _restream(path: Path, out: Path, **head: int) -> None:
    """The packets of ``path`` in a new stream with other OpusHead fields (output_gain,
    pre_skip), the original end trimming kept."""
    reader = audiocore.OggOpusReader()
    packets = reader.feed(path.read_bytes())
    assert reader.head is not None
    total = sum(audiocore.opus_packet_samples(p.data) for p in packets)
    end = max(p.granule for p in packets)
    w = audiocore.OggOpusWriter(1, input_rate=48000, pre_skip=head.get("pre_skip", reader.head.pre_skip),
                                output_gain=head.get("output_gain", 0), serial=7)
    data = w.headers() + b"".join(w.write(p.data) for p in packets[:-1])
    out.write_bytes(data + w.close(packets[-1].data, end_trim=total - end))


@pytest.mark.parametrize("gain_db", [-20, -6, 0.1, 1, 3.5, 12])
def test_output_gain_is_applied_like_opusdec(gain_db: float, tmp_path: Path) -> None:
    """The header's output gain (Q7.8 dB) scales the audio as opusdec does. Where the result
    passes full scale opusdec soft-clips the stretch between the zero crossings around it
    (opus_pcm_soft_clip) and audiocore saturates instead: those stretches are left out, and
    must be saturated, not wrapped."""
    q78 = round(gain_db * 256)
    factor = 10 ** (q78 / 256 / 20)
    out = tmp_path / "gain.opus"
    _restream(DATA / "speech-20ms.opus", out, output_gain=q78)
    ref = opusdec(out, tmp_path).astype(np.int32)
    got = as_int(read_ogg_opus(out).pcm)
    assert len(got) == len(ref)
    unclipped = opusdec(DATA / "speech-20ms.opus", tmp_path).astype(np.float64) * factor
    over = np.abs(unclipped) > 32767
    stretch = np.cumsum(np.r_[0, np.diff(np.signbit(unclipped).astype(int)) != 0])
    kept = ~np.isin(stretch, np.unique(stretch[over]))
    # ours rounds libopus's int16 output, then the scaled value: half a unit each, the first scaled
    assert np.max(np.abs(got - ref)[kept]) <= 0.5 * factor + 1
    if over.any():
        assert np.array_equal(got[over], np.where(unclipped[over] > 0, 32767, -32768))
    else:
        assert kept.all()


@pytest.mark.parametrize("pre_skip", [0, 80, 3840, 10000])
def test_pre_skip_is_honoured_like_opusdec(pre_skip: int, tmp_path: Path) -> None:
    out = tmp_path / "skip.opus"
    _restream(DATA / "speech-60ms-64k.opus", out, pre_skip=pre_skip)
    ref = opusdec(out, tmp_path)
    for rate in (48000, 16000):
        got = read_ogg_opus(out, rate).pcm
        assert len(got) // 2 == len(ref) * rate // 48000
    assert np.max(np.abs(as_int(read_ogg_opus(out).pcm) - ref)) <= 2


def test_rate_is_fixed_once_reading_starts() -> None:
    r = OggOpusFileReader(DATA / "speech-20ms.opus")
    r.rate = 16000
    it = r.blocks()
    next(it)
    with pytest.raises(RuntimeError):
        r.rate = 8000
    with pytest.raises(RuntimeError):
        list(r.packets())
    r.close()


def test_packets_are_the_ones_pyav_demuxes() -> None:
    path = DATA / "speech-20ms.opus"
    with av.open(str(path)) as c:
        expected = [bytes(p) for p in c.demux(audio=0) if p.size]
    with OggOpusFileReader(path) as r:
        assert [p.data for p in r.packets()] == expected


# ---------------------------------------------------------------- bad input


def test_not_ogg_opus(tmp_path: Path) -> None:
    for data in (b"", b"RIFF" + bytes(100), (DATA / "speech-16k.wav").read_bytes()[:5000]):
        with pytest.raises(DecodeError):
            OggOpusFileReader(data)
    with pytest.raises(TypeError):
        OggOpusFileReader(5)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        OggOpusFileReader(tmp_path / "missing.opus")


def test_chained_streams_are_refused() -> None:
    data = (DATA / "speech-20ms.opus").read_bytes() + (DATA / "speech-60ms-64k.opus").read_bytes()
    with pytest.raises(DecodeError, match="chained"):
        read_ogg_opus(data)


def test_mapping_family_1_is_refused() -> None:
    data = bytearray((DATA / "speech-20ms.opus").read_bytes())
    head = data.index(b"OpusHead")
    data[head + 18] = 1  # mapping family byte; the page's CRC is then wrong, so fix it
    data[head + 19 : head + 19] = bytes([1, 0, 0])  # stream count, coupled count, mapping
    # rebuild the first page: segment table says 19 bytes; make it 22 and recompute the CRC
    assert data[26] == 1 and data[27] == 19
    data[27] = 22
    data[22:26] = bytes(4)
    page = bytes(data[: 28 + 22])
    data[22:26] = audiocore.ogg_crc32(page).to_bytes(4, "little")
    with pytest.raises(DecodeError, match="mapping family 1"):
        OggOpusFileReader(bytes(data))


def test_damaged_pages_raise_or_are_skipped_when_lenient() -> None:
    data = bytearray((DATA / "speech-20ms.opus").read_bytes())
    pages = [i for i in range(len(data)) if data[i : i + 4] == b"OggS"]
    bad = pages[len(pages) // 2]
    data[bad + 40] ^= 0xFF  # a CRC failure in the middle
    with pytest.raises(DecodeError) as info:
        read_ogg_opus(bytes(data))
    assert info.value.offset == bad
    whole = read_ogg_opus(DATA / "speech-20ms.opus").pcm
    r = OggOpusFileReader(bytes(data), lenient=True)
    pcm = r.read()
    assert [e.offset for e in r.errors] == [bad]
    assert 0 < len(pcm) < len(whole) and pcm[:4000] == whole[:4000]


# ---------------------------------------------------------------- writing


@pytest.mark.parametrize("rate", [8000, 16000, 48000, 11025, 44100])
@pytest.mark.parametrize("cut", [0, 137, 15999])
def test_written_files_have_the_exact_length_for_every_reader(rate: int, cut: int, tmp_path: Path) -> None:
    src = source_16k()[:40000]  # 2.5 s of speech
    src = src if rate == 16000 else soxr.resample(src, 16000, rate)
    src = src[: len(src) - cut] if cut else src
    out = tmp_path / "w.opus"
    write_ogg_opus(out, src.tobytes(), rate, bitrate=32000)
    assert opusinfo_problems(out) == []
    n48 = len(src) * 48000 // rate
    at48 = opusdec(out, tmp_path)
    assert len(at48) == n48 == pyav_samples(out)
    back = read_ogg_opus(out, rate).pcm
    assert len(back) // 2 == n48 * rate // 48000  # == len(src) at the Opus rates
    if rate in audiocore.OPUS_RATES:
        assert len(back) // 2 == len(src)
    # aligned: a wrong pre-skip shows as a lag of hundreds of samples
    lag, corr = best_lag(soxr.resample(src, rate, 48000), at48)
    assert abs(lag) <= 3 and corr > 0.95, (lag, corr)
    with OggOpusFileReader(out) as r:
        assert r.input_rate == rate


def test_writer_streams_stereo_and_file_objects(tmp_path: Path) -> None:
    mono = source_16k()[:16000]
    stereo = np.stack([mono, (mono // 2)], axis=1).reshape(-1)
    buf = io.BytesIO()
    with OggOpusFileWriter(buf, 16000, 2, serial=5, comments=["TITLE=test"]) as w:
        for i in range(0, len(stereo), 999 * 2):  # odd chunk sizes
            w.write(stereo[i : i + 999 * 2])
    assert not buf.closed
    path = tmp_path / "s.opus"
    write_ogg_opus(path, stereo.tobytes(), 16000, 2, serial=5, comments=["TITLE=test"])
    assert path.read_bytes() == buf.getvalue()  # chunking changes nothing
    assert opusinfo_problems(path) == []
    got = read_ogg_opus(buf.getvalue(), 16000)
    assert got.channels == 2 and len(got.pcm) == len(stereo) * 2
    with av.open(str(path)) as c:
        assert c.streams.audio[0].channels == 2
    with OggOpusFileReader(path) as r:
        assert r.tags is not None and "TITLE=test" in r.tags.comments


def test_writer_refusals(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        OggOpusFileWriter(tmp_path / "a.opus", 16000, 3)
    with pytest.raises(ValueError):
        OggOpusFileWriter(tmp_path / "a.opus", 16000, frame_ms=7)
    with pytest.raises(TypeError):
        OggOpusFileWriter(5, 16000)  # type: ignore[arg-type]
    w = OggOpusFileWriter(tmp_path / "b.opus", 16000)
    with pytest.raises(ValueError):
        w.write(b"\x00")
    w.close()
    w.close()  # once only
    with pytest.raises(RuntimeError):
        w.write(bytes(2))
    assert read_ogg_opus(tmp_path / "b.opus", 16000).pcm == b""  # an empty but valid file
    assert opusinfo_problems(tmp_path / "b.opus") == []


# ---------------------------------------------------------------- fuzz

_SMALL = (DATA / "speech-20ms.opus").read_bytes()
_SMALL = _SMALL[: [i for i in range(len(_SMALL)) if _SMALL[i : i + 4] == b"OggS"][6]]  # headers + 4 pages


def _with_crc(data: bytearray, page: int) -> None:
    """Give the page at ``page`` a valid CRC again (so the damage reaches the packets)."""
    n = data[page + 26]
    size = 27 + n + sum(data[page + 27 : page + 27 + n])
    data[page + 22 : page + 26] = bytes(4)
    data[page + 22 : page + 26] = audiocore.ogg_crc32(bytes(data[page : page + size])).to_bytes(4, "little")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(_SMALL) - 1), st.integers(0, 255)), min_size=1, max_size=6),
       st.booleans(), st.sampled_from([48000, 16000, 44100]))
def test_damaged_files_raise_only_decode_errors(edits: list[tuple[int, int]], fix_crc: bool, rate: int) -> None:
    """Bytes changed anywhere (and the page's CRC made valid again, or not): a strict reader
    raises DecodeError or reads; a lenient one reads once it has found a head."""
    data = bytearray(_SMALL)
    pages = [i for i in range(len(data)) if data[i : i + 4] == b"OggS"]
    for pos, value in edits:
        data[pos] = value
    if fix_crc:
        for page in pages:
            if data[page : page + 4] == b"OggS" and page + 27 <= len(data):
                _with_crc(data, page)
    for lenient in (False, True):
        try:
            r = OggOpusFileReader(bytes(data), rate=rate, lenient=lenient)
        except DecodeError:
            continue
        try:
            pcm = r.read()
        except DecodeError:
            assert not lenient
            continue
        assert len(pcm) % (2 * r.channels) == 0
