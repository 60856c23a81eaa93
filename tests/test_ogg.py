"""Ogg Opus paging against the plain reference (tests/reference/ogg.py) and the reference tools:
`opusinfo` (no warnings), `opusdec`, `opusenc`-made files, PyAV's demuxer and decoder."""

from __future__ import annotations

import ctypes
import glob
import os
import random
import struct
import subprocess
import tracemalloc
import wave
import zlib
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import audiocore
from conftest import DATA
from gateway_util import opusinfo, pyav_packets
from reference import ogg as ref
from reference import opus_packet as ref_packet

# ---------------------------------------------------------------- helpers


def speech(rate: int = 48000) -> bytes:
    with wave.open(str(DATA / f"speech-{rate // 1000}k.wav"), "rb") as w:
        return w.readframes(w.getnframes())


def encoded(ms: float, channels: int = 1, bitrate: int = 32000, limit: int = 0) -> list[bytes]:
    enc = audiocore.OpusEncoder(48000, channels, bitrate=bitrate)
    pcm = speech()
    if channels == 2:
        mono = np.frombuffer(pcm, np.int16)
        pcm = np.stack([mono, mono[::-1]], axis=1).tobytes()
    step = int(48 * ms) * 2 * channels
    if limit:  # the first packets only: encode no more than they need
        pcm = pcm[: limit * step]
    return [enc.encode(pcm[i : i + step]) for i in range(0, len(pcm) - step + 1, step)]


def write_stream(packets: list[bytes], **kw: object) -> bytes:
    w = audiocore.OggOpusWriter(**kw)  # type: ignore[arg-type]
    out = [w.headers()]
    out += [w.write(p) for p in packets]
    out.append(w.close())
    return b"".join(out)


def opusdec_samples(path: Path, tmp: Path) -> int:
    """Decode with opusdec to a 48 kHz WAV; returns its sample count."""
    out = tmp / (path.stem + ".wav")
    result = subprocess.run(["opusdec", "--rate", "48000", str(path), str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    with wave.open(str(out), "rb") as w:
        return w.getnframes()


def _pyav_libopus() -> ctypes.CDLL | None:
    """The libopus bundled inside PyAV's wheel, if it has one (it may differ in version from the
    system libopus audiocore and opuslib use)."""
    libs = glob.glob(os.path.join(os.path.dirname(os.path.dirname(av.__file__)),
                                  "av.libs", "libopus*.so*"))
    return ctypes.CDLL(libs[0]) if libs else None


def pyav_decode(packets: list[bytes], channels: int) -> list[bytes]:
    ctx = av.CodecContext.create("libopus", "r")
    ctx.sample_rate = 48000
    ctx.layout = "mono" if channels == 1 else "stereo"
    out = []
    for p in packets:
        frames = ctx.decode(av.Packet(p))
        out.append(b"".join(f.to_ndarray().astype("<i2").T.tobytes() for f in frames))
    return out


def libopus_decode(lib: ctypes.CDLL, packets: list[bytes], channels: int) -> list[bytes]:
    """Decode through a given libopus with ctypes (the PyAV-bundled one, for the cross-check)."""
    lib.opus_decoder_create.restype = ctypes.c_void_p
    err = ctypes.c_int()
    dec = lib.opus_decoder_create(48000, channels, ctypes.byref(err))
    buf = (ctypes.c_int16 * (5760 * channels))()
    out = []
    for p in packets:
        n = lib.opus_decode(ctypes.c_void_p(dec), p, len(p), buf, 5760, 0)
        assert n > 0
        out.append(bytes(buf)[: n * 2 * channels])
    lib.opus_decoder_destroy(ctypes.c_void_p(dec))
    return out


def assert_pyav_decodes_like_us(packets: list[bytes], channels: int) -> None:
    """PyAV's libopus decoder gives our decoder's PCM. When PyAV bundles a libopus of another
    version, its output may differ by rounding (1 LSB); then we show that PyAV equals its own
    libopus called directly and differs from ours by no more than that."""
    dec = audiocore.OpusDecoder(48000, channels)
    ours = [dec.decode(p) for p in packets]
    theirs = pyav_decode(packets, channels)
    assert [len(x) for x in ours] == [len(x) for x in theirs]
    if ours == theirs:
        return
    bundled = _pyav_libopus()
    assert bundled is not None, "PyAV uses the system libopus yet decodes differently"
    assert theirs == libopus_decode(bundled, packets, channels)
    a = np.frombuffer(b"".join(ours), np.int16).astype(int)
    b = np.frombuffer(b"".join(theirs), np.int16).astype(int)
    assert np.abs(a - b).max() <= 1 and np.mean(a != b) < 0.001


# ---------------------------------------------------------------- CRC


@given(st.binary(max_size=600), st.integers(0, 2**32 - 1))
def test_crc_matches_bitwise_reference(data: bytes, start: int) -> None:
    assert audiocore.ogg_crc32(data) == ref.crc32(data)
    split = len(data) // 3
    assert audiocore.ogg_crc32(data[split:], audiocore.ogg_crc32(data[:split])) == ref.crc32(data)


def test_crc_is_oggs_not_zlibs() -> None:
    assert audiocore.ogg_crc32(b"123456789") == 0x89A1897F
    assert audiocore.ogg_crc32(b"123456789") != zlib.crc32(b"123456789")
    stream = (DATA / "speech-20ms.opus").read_bytes()
    for page in ref.pages(stream):  # the reference checks every stored CRC
        zeroed = page.raw[:22] + b"\0\0\0\0" + page.raw[26:]
        assert audiocore.ogg_crc32(zeroed) == struct.unpack_from("<I", page.raw, 22)[0]


# ---------------------------------------------------------------- writer


def test_headers_and_first_pages() -> None:
    packets = encoded(20, limit=100)
    w = audiocore.OggOpusWriter(serial=0x12345678, comments=["TITLE=test", ("ARTIST", "me")])
    head = w.headers()
    first = w.write(packets[0])
    page_list = ref.pages(head + first)
    assert [p.seq for p in page_list] == [0, 1, 2]
    assert page_list[0].flags == ref.BOS and page_list[0].granule == 0
    assert page_list[1].flags == 0 and page_list[1].granule == 0
    assert page_list[2].granule == 960  # the first audio page ends the first packet: 20 ms
    assert all(p.serial == 0x12345678 for p in page_list)
    assert ref.parse_opus_head(page_list[0].body) == {
        "version": 1, "channels": 1, "pre_skip": 3840, "input_rate": 48000,
        "output_gain": 0, "mapping_family": 0}
    assert ref.parse_opus_tags(page_list[1].body) == ("audiocore", ["TITLE=test", "ARTIST=me"])
    assert len(page_list[0].body) == 19
    assert w.granule == 960 and w.serial == 0x12345678


def test_serial_is_random_by_default() -> None:
    serials = {audiocore.OggOpusWriter().serial for _ in range(20)}
    assert len(serials) > 15


@pytest.mark.parametrize("ms", [2.5, 5, 10, 20, 40, 60, 80, 100, 120])
def test_every_duration_passes_the_reference_tools(ms: float, tmp_path: Path) -> None:
    channels = 2 if ms in (10, 60) else 1
    packets = encoded(ms, channels, limit=int(1500 / ms))  # 1.5 s
    stream = write_stream(packets, channels=channels, pre_skip=312)
    audio = ref.check_opus_stream(stream)
    assert [p.data for p in audio] == packets
    path = tmp_path / f"d{ms}.opus"
    path.write_bytes(stream)
    opusinfo(path)
    total = sum(ref_packet.samples48(p) for p in packets)
    assert opusdec_samples(path, tmp_path) == total - 312
    assert pyav_packets(path) == packets
    assert_pyav_decodes_like_us(packets, channels)


def sized_packets(sizes: list[int]) -> list[bytes]:
    """Real 20 ms packets grown to the given sizes with code-3 padding (sizes below the
    packet's own plus 2: its frame cut or extended), so decoders still decode them."""
    base = encoded(20, bitrate=12000)[100:]
    out = []
    for i, size in enumerate(sizes):
        p = base[i % len(base)]
        if size >= len(p) + 2:
            out.append(ref_packet.padded(p, size))
        else:  # a frame cut short, or one byte longer
            out.append((p + b"\0")[:size])
    return out


def test_every_packet_size_up_to_1500_one_page_each(tmp_path: Path) -> None:
    sizes = list(range(1, 1501))
    packets = sized_packets(sizes)
    assert [len(p) for p in packets] == sizes
    w = audiocore.OggOpusWriter(pre_skip=312)
    stream = w.headers()
    for p in packets:
        page = w.write(p)
        assert len(ref.pages(page)) == 1  # one page per packet
        stream += page
    stream += w.close()
    audio = ref.check_opus_stream(stream)
    assert [p.data for p in audio] == packets
    path = tmp_path / "sizes.opus"
    path.write_bytes(stream)
    opusinfo(path)
    assert opusdec_samples(path, tmp_path) == 960 * len(packets) - 312
    assert pyav_packets(path) == packets
    assert_pyav_decodes_like_us(packets[::7], 1)


@pytest.mark.parametrize("max_page_ms", [None, 100, 1000])
def test_packets_larger_than_a_page_continue(max_page_ms: float | None, tmp_path: Path) -> None:
    # 255 * 255 = 65025 bytes fill one page's lacing table exactly; the lacing 0 that ends such a
    # packet goes on the next page. Sizes around it and far beyond force continuation pages.
    sizes = [300, 65024, 65025, 65026, 200, 255 * 256, 130050, 140000, 510, 700, 65025, 100]
    packets = sized_packets(sizes)
    stream = write_stream(packets, max_page_ms=max_page_ms, pre_skip=312)
    audio = ref.check_opus_stream(stream)
    assert [p.data for p in audio] == packets
    page_list = ref.pages(stream)
    assert any(p.flags & ref.CONTINUED for p in page_list)
    assert any(p.granule == -1 for p in page_list)
    path = tmp_path / "big.opus"
    path.write_bytes(stream)
    opusinfo(path)
    assert opusdec_samples(path, tmp_path) == 960 * len(packets) - 312
    assert pyav_packets(path) == packets
    r = audiocore.OggOpusReader()
    assert [p.data for p in r.feed(stream)] == packets


def test_batched_pages_for_files(tmp_path: Path) -> None:
    packets = encoded(20)
    w = audiocore.OggOpusWriter(max_page_ms=1000, pre_skip=312)
    chunks = [w.headers()] + [w.write(p) for p in packets] + [w.close()]
    assert sum(1 for c in chunks[1:-1] if c) == len(packets) // 50  # a page per second
    stream = b"".join(chunks)
    ref.check_opus_stream(stream)
    page_list = ref.pages(stream)
    assert max(len(p.lacing) for p in page_list) == 50
    path = tmp_path / "file.opus"
    path.write_bytes(stream)
    text = opusinfo(path)
    assert "Page duration:   1000.0ms (max)" in text
    assert pyav_packets(path) == packets
    # flush ends a page early
    w = audiocore.OggOpusWriter(max_page_ms=1000)
    w.headers()
    assert w.write(packets[0]) == b""
    assert [len(p.lacing) for p in ref.pages(w.flush())] == [1]
    assert w.flush() == b""


def test_big_tags_span_pages(tmp_path: Path) -> None:
    comment = "DESCRIPTION=" + "x" * 70000
    packets = encoded(20, limit=100)
    stream = write_stream(packets, comments=[comment], vendor="vendor é", pre_skip=312)
    ref.check_opus_stream(stream)
    path = tmp_path / "tags.opus"
    path.write_bytes(stream)
    opusinfo(path)
    r = audiocore.OggOpusReader()
    assert [p.data for p in r.feed(stream)] == packets
    assert r.tags is not None
    assert r.tags.vendor == "vendor é" and r.tags.comments == (comment,)


def test_empty_stream_and_close_page() -> None:
    w = audiocore.OggOpusWriter()
    stream = w.headers() + w.close()
    page_list = ref.pages(stream)
    assert page_list[-1].flags == ref.EOS and page_list[-1].lacing == []
    assert page_list[-1].granule == -1  # no packet completes on it


def test_writer_rejects_bad_packets_and_misuse() -> None:
    packets = encoded(20, limit=10)
    w = audiocore.OggOpusWriter()
    with pytest.raises(RuntimeError, match="headers"):
        w.write(packets[0])
    w.headers()
    with pytest.raises(RuntimeError, match="already"):
        w.headers()
    w.write(packets[0])
    for bad in (b"", b"\x01\x00\x00\x00", b"\x03\x00"):
        with pytest.raises(audiocore.DecodeError):
            w.write(bad)
    assert w.granule == 960
    rest = b"".join(w.write(p) for p in packets[1:]) + w.close()
    pages = ref.pages(rest)
    assert pages[0].seq == 3  # no sequence number was used by the failed writes
    with pytest.raises(RuntimeError, match="closed"):
        w.write(packets[0])
    with pytest.raises(RuntimeError, match="closed"):
        w.close()
    for kw in [{"channels": 3}, {"pre_skip": 70000}, {"serial": -1}, {"max_page_ms": 0},
               {"comments": ["NOEQUALS"]}, {"comments": ["=x"]}, {"output_gain": 40000}]:
        with pytest.raises(ValueError):
            audiocore.OggOpusWriter(**kw)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        audiocore.OggOpusWriter(comments=[("A", 1)])  # type: ignore[list-item]


@settings(max_examples=60)
@given(
    st.lists(st.tuples(st.sampled_from([0, 1, 3, 7, 8, 11, 16, 19, 31]),
                       st.integers(2, 1300) | st.sampled_from([254, 255, 256, 510, 765, 65025])),
             min_size=1, max_size=40),
    st.sampled_from([None, 10, 60, 500]),
    st.randoms(use_true_random=False),
)
def test_any_packets_round_trip_through_reference_and_reader(
    spec: list[tuple[int, int]], max_page_ms: float | None, rnd: random.Random
) -> None:
    # code-0 packets of every TOC configuration class, of the given sizes (frame <= 1275
    # bytes, bigger ones as padded code 3)
    packets = []
    for config, size in spec:
        toc = config << 3
        if size - 1 <= 1275:
            packets.append(bytes([toc]) + rnd.randbytes(size - 1))
        else:
            packets.append(ref_packet.padded(bytes([toc]) + rnd.randbytes(100), size))
    stream = write_stream(packets, max_page_ms=max_page_ms)
    assert [p.data for p in ref.check_opus_stream(stream)] == packets
    reader = audiocore.OggOpusReader()
    got = []
    pos = 0
    while pos < len(stream):
        n = rnd.choice([1, 2, 27, 100, 4096, 70000])
        got += reader.feed(stream[pos : pos + n])
        pos += n
    expected = ref.packets(ref.pages(stream))[2:]
    assert [(p.data, p.granule) for p in got] == [(p.data, p.granule) for p in expected]


# ---------------------------------------------------------------- reader


@pytest.fixture(scope="module")
def opusenc_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The bundled opusenc files and more made here with opusenc: every frame size, stereo,
    comments."""
    tmp = tmp_path_factory.mktemp("opusenc")
    stereo_wav = tmp / "stereo.wav"
    mono = np.frombuffer(speech(), np.int16)
    with wave.open(str(stereo_wav), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(np.stack([mono, mono[::-1]], axis=1).tobytes())
    files = [DATA / "speech-20ms.opus", DATA / "speech-60ms-64k.opus"]
    jobs = [("2.5", "16", DATA / "speech-48k.wav"), ("10", "96", stereo_wav),
            ("40", "12", DATA / "speech-16k.wav"), ("60", "200", stereo_wav)]
    for framesize, bitrate, wav in jobs:
        out = tmp / f"enc-{framesize}-{bitrate}.opus"
        subprocess.run(["opusenc", "--quiet", "--framesize", framesize, "--bitrate", bitrate,
                        "--comment", "TITLE=made by opusenc", str(wav), str(out)],
                       check=True, timeout=120)
        files.append(out)
    return files


def test_reads_opusenc_files_exactly_as_pyav_demuxes(opusenc_files: list[Path]) -> None:
    rnd = random.Random(7)
    for path in opusenc_files:
        stream = path.read_bytes()
        expected = ref.packets(ref.pages(stream))
        for chunking in ("all", "random", "bytes"):
            reader = audiocore.OggOpusReader()
            if chunking == "all":
                got = reader.feed(stream)
            else:
                got, pos = [], 0
                while pos < len(stream):
                    n = 1 if chunking == "bytes" else rnd.randint(1, 9000)
                    got += reader.feed(memoryview(stream)[pos : pos + n])
                    pos += n
            assert [p.data for p in got] == pyav_packets(path), path
            assert [(p.granule, p.serial) for p in got] == [
                (p.granule, p.serial) for p in expected[2:]]
            head = ref.parse_opus_head(expected[0].data)
            assert reader.head is not None and reader.tags is not None
            assert (reader.head.channels, reader.head.pre_skip, reader.head.input_rate,
                    reader.head.output_gain, reader.head.mapping_family) == (
                head["channels"], head["pre_skip"], head["input_rate"], head["output_gain"],
                head["mapping_family"])
            vendor, comments = ref.parse_opus_tags(expected[1].data)
            assert reader.tags.vendor == vendor and list(reader.tags.comments) == comments
            assert reader.serial == expected[0].serial
            assert reader.offset == len(stream)
            if chunking == "bytes" and path.stat().st_size > 100000:
                break


def test_chained_streams() -> None:
    a = write_stream(encoded(20, limit=30), serial=1)
    b_packets = encoded(60, channels=2, limit=10)
    b = write_stream(b_packets, serial=2, channels=2, pre_skip=999)
    w = audiocore.OggOpusWriter(serial=3)
    c_unclosed = w.headers() + b"".join(w.write(p) for p in encoded(10, limit=5))
    reader = audiocore.OggOpusReader()
    first = reader.feed(a)
    assert len(first) == 30 and reader.serial == 1
    second = reader.feed(b)
    assert [p.data for p in second] == b_packets and {p.serial for p in second} == {2}
    assert reader.serial == 2 and reader.head is not None and reader.head.pre_skip == 999
    third = reader.feed(c_unclosed + a)  # a new stream begins without EOS on the old one
    assert [p.serial for p in third] == [3] * 5 + [1] * 30


def test_other_logical_streams_are_skipped() -> None:
    stream = write_stream(encoded(20, limit=20), serial=5)
    page_list = ref.pages(stream)
    other = [ref.page_bytes(ref.BOS, 0, 9, 0, [8], b"fishead\0"),
             ref.page_bytes(0, 0, 9, 1, [3], b"abc"),
             ref.page_bytes(ref.EOS, 0, 9, 2, [0], b"")]
    mixed = other[0] + page_list[0].raw + other[1] + b"".join(p.raw for p in page_list[1:5])
    mixed += other[2] + b"".join(p.raw for p in page_list[5:])
    reader = audiocore.OggOpusReader()
    got = reader.feed(mixed)
    assert [p.data for p in got] == [p.data for p in ref.packets(page_list)[2:]]
    assert reader.skipped_pages == 3


def _split_feed(reader: audiocore.OggOpusReader, data: bytes, rnd: random.Random) -> tuple[
        list[audiocore.OggPacket], list[audiocore.DecodeError]]:
    got: list[audiocore.OggPacket] = []
    errors: list[audiocore.DecodeError] = []
    pos = 0
    while pos < len(data):
        n = rnd.randint(1, 3000)
        try:
            got += reader.feed(data[pos : pos + n])
        except audiocore.DecodeError as exc:
            errors.append(exc)
        pos += n
    got += reader.feed(b"")
    return got, errors


@pytest.mark.parametrize("where", ["header", "lacing", "body", "crc"])
def test_bad_crc_names_the_page_and_the_reader_resyncs(where: str) -> None:
    packets = encoded(20, limit=60)
    stream = bytearray(write_stream(packets, pre_skip=312))
    page_list = ref.pages(bytes(stream))
    bad = page_list[20]
    pos = bad.offset + {"header": 9, "lacing": 27, "body": 40, "crc": 23}[where]
    stream[pos] ^= 0x5A
    reader = audiocore.OggOpusReader()
    with pytest.raises(audiocore.DecodeError) as info:
        reader.feed(bytes(stream))
    assert info.value.offset == bad.offset
    assert f"offset {bad.offset}" in str(info.value)
    got = reader.feed(b"")  # the good packets of that call
    lost = {i - 2 for i, p in enumerate(ref.packets(page_list)) if p.page_index == 20}
    assert [p.data for p in got] == [p for i, p in enumerate(packets) if i not in lost]
    # and in pieces of any size, the same
    reader = audiocore.OggOpusReader()
    got, errors = _split_feed(reader, bytes(stream), random.Random(3))
    assert [e.offset for e in errors] == [bad.offset]
    assert [p.data for p in got] == [p for i, p in enumerate(packets) if i not in lost]


def test_garbage_lost_pages_and_broken_continuations() -> None:
    packets = sized_packets([100, 200, 70000, 300, 400, 500])
    stream = write_stream(packets)
    page_list = ref.pages(stream)
    raws = [p.raw for p in page_list]
    # garbage before the stream and between pages
    reader = audiocore.OggOpusReader()
    with pytest.raises(audiocore.DecodeError, match="capture pattern") as info:
        reader.feed(b"junkOgg" + b"".join(raws[:3]) + b"\x00" * 50 + b"".join(raws[3:]))
    assert info.value.offset == 0 and "1 more error" in str(info.value)
    assert [p.data for p in reader.feed(b"")] == packets
    # a lost page in the middle of the 70000-byte packet: that packet is dropped
    big = [i for i, p in enumerate(page_list) if p.flags & ref.CONTINUED]
    assert len(big) == 1
    reader = audiocore.OggOpusReader()
    with pytest.raises(audiocore.DecodeError, match="pages were lost") as info:
        reader.feed(b"".join(raws[: big[0]] + raws[big[0] + 1 :]))
    assert info.value.offset == page_list[big[0] + 1].offset - len(raws[big[0]])
    assert [p.data for p in reader.feed(b"")] == [p for p in packets if len(p) != 70000]


def test_structural_errors_in_pages_we_build() -> None:
    serial = 77
    head = ref.page_bytes(ref.BOS, 0, serial, 0, [19], struct.pack(
        "<8sBBHIhB", b"OpusHead", 1, 1, 312, 48000, 0, 0))
    tags_body = b"OpusTags" + struct.pack("<I", 1) + b"v" + struct.pack("<I", 0)
    tags = ref.page_bytes(0, 0, serial, 1, [len(tags_body)], tags_body)
    audio = bytes([0xF8]) + bytes(30)

    def feed(*pages: bytes) -> tuple[list[bytes], audiocore.DecodeError | None]:
        reader = audiocore.OggOpusReader()
        try:
            return [p.data for p in reader.feed(b"".join(pages))], None
        except audiocore.DecodeError as exc:
            return [p.data for p in reader.feed(b"")], exc

    good, err = feed(head, tags, ref.page_bytes(0, 960, serial, 2, [31], audio))
    assert good == [audio] and err is None
    # continued flag on a page whose predecessor ended its packet
    _, err = feed(head, tags, ref.page_bytes(ref.CONTINUED, 960, serial, 2, [31], audio))
    assert err is not None and "never started" in str(err)
    # a page that starts a new packet while one is unfinished
    got, err = feed(head, tags, ref.page_bytes(0, -1, serial, 2, [255], bytes(255)),
                    ref.page_bytes(0, 960, serial, 3, [31], audio))
    assert err is not None and "unfinished" in str(err) and got == [audio]
    # EOS inside a packet
    _, err = feed(head, tags, ref.page_bytes(ref.EOS, -1, serial, 2, [255], bytes(255)))
    assert err is not None and "inside a packet" in str(err)
    # OpusHead sharing its page
    _, err = feed(ref.page_bytes(ref.BOS, 0, serial, 0, [19, 1], head[28:47] + b"x"))
    assert err is not None and "alone" in str(err)
    # reserved flag bits, and a wrong version byte (both with a correct CRC)
    for raw, text in [(ref.page_bytes(0x08, 0, 1, 0, [], b""), "reserved"),
                      (b"OggS\x01" + ref.page_bytes(0, 0, 1, 0, [], b"")[5:], "version")]:
        _, err = feed(raw)
        assert err is not None and text in str(err)


def _head_packet(version: int = 1, channels: int = 1, family: int = 0, table: bytes = b"",
                 length: int | None = None) -> bytes:
    body = struct.pack("<8sBBHIhB", b"OpusHead", version, channels, 312, 48000, 0, family)
    body += table
    return body if length is None else body[:length]


@pytest.mark.parametrize("packet, text", [
    (_head_packet(length=18), "shorter than 19"),
    (_head_packet(version=0x10), "version 16"),
    (_head_packet(channels=0), "0 channels"),
    (_head_packet(channels=3), "family 0 with 3"),
    (_head_packet(channels=2, family=1, table=b"\x01\x01\x00"), "mapping table"),
    (_head_packet(channels=2, family=1, table=b"\x00\x00\x00\x01"), "0 streams"),
    (_head_packet(channels=2, family=1, table=b"\x01\x02\x00\x01"), "2 coupled"),
    (_head_packet(channels=2, family=1, table=b"\x01\x00\x00\x05"), "maps channel 1"),
    (_head_packet(channels=9, family=1, table=b"\x09\x00" + bytes(range(9))), "at most 8"),
])
def test_malformed_opus_head(packet: bytes, text: str) -> None:
    reader = audiocore.OggOpusReader()
    with pytest.raises(audiocore.DecodeError, match=text) as info:
        reader.feed(ref.page_bytes(ref.BOS, 0, 1, 0, ref.lacing(len(packet)), packet))
    assert info.value.offset == 0 and reader.head is None


def test_opus_head_with_a_mapping_table() -> None:
    packet = _head_packet(channels=3, family=1, table=b"\x02\x01\x00\x02\x01")
    reader = audiocore.OggOpusReader()
    reader.feed(ref.page_bytes(ref.BOS, 0, 1, 0, ref.lacing(len(packet)), packet))
    assert reader.head is not None
    assert (reader.head.channels, reader.head.stream_count, reader.head.coupled_count,
            reader.head.channel_mapping) == (3, 2, 1, b"\x00\x02\x01")


@pytest.mark.parametrize("tags, text", [
    (b"OpusTags" + bytes(7), "shorter than 16"),
    (b"OpusTags" + struct.pack("<I", 100) + bytes(8), "vendor string of 100"),
    (b"OpusTags" + struct.pack("<I", 1) + b"\xff" + struct.pack("<I", 0), "UTF-8"),
    (b"OpusTags" + struct.pack("<II", 0, 5) + bytes(8), "claims 5 comments"),
    (b"OpusTags" + struct.pack("<III", 0, 1, 9) + b"A=b", "comment 0 of 9"),
    (b"NotTags!" + bytes(8), "not OpusTags"),
])
def test_malformed_opus_tags(tags: bytes, text: str) -> None:
    head = _head_packet()
    audio = bytes([0xF8, 1, 2])
    stream = (ref.page_bytes(ref.BOS, 0, 1, 0, [19], head)
              + ref.page_bytes(0, 0, 1, 1, ref.lacing(len(tags)), tags)
              + ref.page_bytes(0, 960, 1, 2, [3], audio))
    reader = audiocore.OggOpusReader()
    with pytest.raises(audiocore.DecodeError, match=text) as info:
        reader.feed(stream)
    assert info.value.offset == len(ref.page_bytes(ref.BOS, 0, 1, 0, [19], head))
    assert [p.data for p in reader.feed(b"")] == [audio]  # the audio that follows is kept


def _fast_page(flags: int, granule: int, serial: int, seq: int, segments: list[int],
               body: bytes) -> bytes:
    """ref.page_bytes with the kernel's CRC (checked against the reference above): for
    building megabytes of pages quickly."""
    raw = b"OggS" + struct.pack("<BBqIIIB", 0, flags, granule, serial, seq, 0, len(segments))
    raw += bytes(segments) + body
    return raw[:22] + struct.pack("<I", audiocore.ogg_crc32(raw)) + raw[26:]


def test_packet_cap_and_bounded_memory() -> None:
    packets = sized_packets([100, 300000, 200])
    stream = write_stream(packets)
    reader = audiocore.OggOpusReader(max_packet_bytes=100000)
    assert reader.max_packet_bytes == 100000
    with pytest.raises(audiocore.DecodeError, match="max_packet_bytes"):
        reader.feed(stream)
    assert [p.data for p in reader.feed(b"")] == [packets[0], packets[2]]
    reader.max_packet_bytes = 400000
    assert len(audiocore.OggOpusReader(max_packet_bytes=400000).feed(stream)) == 3
    with pytest.raises(ValueError):
        reader.max_packet_bytes = 0
    # Garbage, endless continuation pages and many partial pages: memory stays bounded.
    head = ref.pages(stream)[:2]
    endless = b"".join(p.raw for p in head) + b"".join(
        _fast_page(ref.CONTINUED if i else 0, -1, head[0].serial, 2 + i, [255] * 255,
                   bytes(65025)) for i in range(40))
    rnd = random.Random(1)
    reader = audiocore.OggOpusReader()
    blobs = (rnd.randbytes(1 << 20), endless, b"OggS" * 100000)
    tracemalloc.start()
    try:
        for _ in range(2):
            for blob in blobs:
                for pos in range(0, len(blob), 50000):
                    try:
                        reader.feed(blob[pos : pos + 50000])
                    except audiocore.DecodeError:
                        pass
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * (1 << 20), peak  # 1 MiB packet cap + one page + the chunks fed


# ---------------------------------------------------------------- fuzzing


def _outcome(reader: audiocore.OggOpusReader, data: bytes) -> list[bytes]:
    try:
        return [p.data for p in reader.feed(data)]
    except audiocore.DecodeError as exc:
        assert exc.offset is not None and 0 <= exc.offset <= reader.offset
        return [p.data for p in reader.feed(b"")]


@given(st.binary(max_size=2000))
def test_fuzz_random_bytes(data: bytes) -> None:
    reader = audiocore.OggOpusReader()
    _outcome(reader, data)
    _outcome(reader, b"OggS" + data)


@settings(max_examples=300)
@given(st.binary(max_size=60), st.binary(max_size=60), st.booleans())
def test_fuzz_opus_head_and_tags(head_tail: bytes, tags_tail: bytes, structured: bool) -> None:
    head = b"OpusHead" + head_tail
    if structured:  # a plausible prefix, so the checks past the first fields get exercised
        head = _head_packet(channels=len(head_tail) % 4, family=head_tail[:1] == b"\x01") + head_tail
    tags = b"OpusTags" + tags_tail
    stream = (ref.page_bytes(ref.BOS, 0, 1, 0, ref.lacing(len(head)), head)
              + ref.page_bytes(0, 0, 1, 1, ref.lacing(len(tags)), tags)
              + ref.page_bytes(0, 960, 1, 2, [3], b"\xf8\x01\x02"))
    reader = audiocore.OggOpusReader()
    got = _outcome(reader, stream)
    if reader.head is None:
        assert got == []
    else:
        assert got == [b"\xf8\x01\x02"]
        assert 1 <= reader.head.channels and reader.head.pre_skip >= 0
        if reader.tags is not None:
            assert all(isinstance(c, str) for c in reader.tags.comments)


_FUZZ_STREAM = write_stream(sized_packets([40, 255, 510, 3000, 60, 70000, 20, 90]))
_FUZZ_PACKETS = [p.data for p in ref.packets(ref.pages(_FUZZ_STREAM))[2:]]


@settings(max_examples=150)
@given(st.lists(st.tuples(st.integers(0, len(_FUZZ_STREAM) - 1), st.integers(0, 255),
                          st.sampled_from(["set", "insert", "delete"])), max_size=6),
       st.integers(1, 5000))
def test_fuzz_mutated_pages(mutations: list[tuple[int, int, str]], chunk: int) -> None:
    data = bytearray(_FUZZ_STREAM)
    for pos, value, kind in mutations:
        pos %= len(data)
        if kind == "set":
            data[pos] = value
        elif kind == "insert":
            data[pos:pos] = bytes([value])
        else:
            del data[pos]
    reader = audiocore.OggOpusReader(max_packet_bytes=80000)
    got = []
    for pos in range(0, len(data), chunk):
        got += _outcome(reader, bytes(data[pos : pos + chunk]))
    original = _FUZZ_PACKETS
    # whatever survives is a real packet of the stream, in order: never invented bytes
    # (a mutation inside a packet body is caught by the CRC)
    it = iter(original)
    assert all(any(p == q for q in it) for p in got)
    if not mutations:
        assert got == original


def test_reader_objects() -> None:
    reader = audiocore.OggOpusReader()
    stream = write_stream(encoded(20, limit=3), serial=0xABCDEF01)
    packets = reader.feed(stream)
    assert "granule=" in repr(packets[-1]) and "0xabcdef01" in repr(packets[-1])
    assert "OpusHead(channels=1" in repr(reader.head) and "OpusTags(" in repr(reader.tags)
    assert packets[-1].granule == 2880 and packets[0].granule == 960
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(reader)
    with pytest.raises(TypeError):
        reader.feed("text")  # type: ignore[arg-type]


@pytest.mark.parametrize("max_page_ms", [None, 100.0])
@pytest.mark.parametrize("trim", [0, 1, 313, 960])
def test_close_with_the_last_packet_and_an_end_trim(max_page_ms: float | None, trim: int,
                                                    tmp_path: Path) -> None:
    """close(packet, end_trim=n): the last packet on the EOS page, whose granule is n lower
    (RFC 7845 end trimming); the reference tools then decode exactly n samples fewer."""
    packets = encoded(20, limit=60)
    w = audiocore.OggOpusWriter(max_page_ms=max_page_ms)
    data = w.headers() + b"".join(w.write(p) for p in packets[:-1])
    data += w.close(packets[-1], end_trim=trim)
    audio = ref.check_opus_stream(data, end_trim=trim)
    assert [p.data for p in audio] == packets
    path = tmp_path / "trimmed.opus"
    path.write_bytes(data)
    opusinfo(path)
    assert pyav_packets(path) == packets
    assert opusdec_samples(path, tmp_path) == 60 * 960 - 3840 - trim


def test_end_trim_needs_a_packet_and_stays_within_it() -> None:
    packets = encoded(20, limit=3)
    w = audiocore.OggOpusWriter()
    w.headers()
    w.write(packets[0])
    with pytest.raises(ValueError, match="exceeds the last packet's 960 samples"):
        w.close(packets[1], end_trim=961)
    with pytest.raises(ValueError, match="needs a packet on the EOS page"):
        w.close(end_trim=10)
    with pytest.raises(ValueError, match="0 or more"):
        w.close(packets[1], end_trim=-1)
    with pytest.raises(audiocore.DecodeError):
        w.close(b"", end_trim=0)
    tail = w.close(packets[1], end_trim=960)  # still open after the refusals
    assert struct.unpack_from("<q", tail, 6)[0] == 960 and tail[5] & 0x04
    with pytest.raises(RuntimeError):
        w.close()
    # batching: the waiting packets go on the EOS page, the last one trimmed
    b = audiocore.OggOpusWriter(max_page_ms=1000)
    data = b.headers() + b"".join(b.write(p) for p in packets)
    with pytest.raises(ValueError, match="exceeds"):
        b.close(end_trim=961)
    data += b.close(end_trim=100)
    ref.check_opus_stream(data, end_trim=100)
