"""The Opus binding against opuslib (the same system libopus through ctypes), libopus's own
packet parser (through ctypes) and the plain RFC 6716 reference; PLC and FEC on real speech."""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import wave

import numpy as np
import opuslib
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import audiocore
from conftest import DATA
from reference import opus_packet as ref

RATES = [8000, 12000, 16000, 24000, 48000]
FRAME_MS = [2.5, 5, 10, 20, 40, 60, 80, 100, 120]

_libopus = ctypes.CDLL(ctypes.util.find_library("opus") or "libopus.so.0")
_libopus.opus_packet_parse.argtypes = [
    ctypes.c_char_p, ctypes.c_int32, ctypes.POINTER(ctypes.c_ubyte),
    ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int16), ctypes.POINTER(ctypes.c_int),
]
_libopus.opus_packet_get_nb_samples.argtypes = [ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32]


def libopus_samples(packet: bytes, rate: int) -> int | None:
    """libopus's verdict: samples per channel, or None when its parser rejects the packet."""
    toc = ctypes.c_ubyte()
    frames = (ctypes.c_void_p * 48)()
    sizes = (ctypes.c_int16 * 48)()
    offset = ctypes.c_int()
    n = _libopus.opus_packet_parse(packet, len(packet), ctypes.byref(toc), frames, sizes,
                                   ctypes.byref(offset))
    if n < 0:
        return None
    return int(_libopus.opus_packet_get_nb_samples(packet, len(packet), rate))


def speech(rate: int) -> bytes:
    with wave.open(str(DATA / f"speech-{rate // 1000}k.wav"), "rb") as w:
        return w.readframes(w.getnframes())


def encode_all(rate: int, ms: float, channels: int = 1, **settings_: object) -> list[bytes]:
    enc = audiocore.OpusEncoder(rate, channels)
    for key, value in settings_.items():
        setattr(enc, key, value)
    pcm = speech(rate if rate != 12000 else 24000)
    if rate == 12000:
        pcm = pcm[: len(pcm) // 4 * 4]
        pcm = np.frombuffer(pcm, np.int16)[::2].tobytes()
    if channels == 2:
        mono = np.frombuffer(pcm, np.int16)
        pcm = np.stack([mono, mono[::-1]], axis=1).tobytes()
    step = int(rate * ms / 1000) * 2 * channels
    return [enc.encode(pcm[i : i + step]) for i in range(0, len(pcm) - step + 1, step)]


@pytest.fixture(scope="module")
def packets_20ms() -> list[bytes]:
    return encode_all(48000, 20, bitrate=24000)


# ---------------------------------------------------------------- packet framing


@given(st.binary(max_size=40))
@example(b"")
@example(b"\x03")
@example(b"\x03\x00")
@example(b"\x03\x41\xff")
@example(b"\x02\xfc")
@example(b"\x01\x00")
@example(bytes([0xFB, 0x30]))  # 48 x 2.5 ms = 120 ms: legal
@example(bytes([0xFB, 0x31]))  # 49 frames: too long
def test_packet_samples_agree_with_libopus_and_reference(packet: bytes) -> None:
    for rate in (48000, 16000):
        try:
            ours = audiocore.opus_packet_samples(packet, rate)
        except audiocore.DecodeError as exc:
            ours = None
            assert exc.offset is not None and 0 <= exc.offset <= len(packet)
        assert ours == libopus_samples(packet, rate)
        try:
            theirs = ref.samples48(packet) * rate // 48000
        except ref.Malformed:
            theirs = None
        assert ours == theirs


@settings(max_examples=300)
@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=3000))
def test_long_code3_packets_agree_with_libopus(toc: int, count: int, tail: bytes) -> None:
    packet = bytes([toc | 3, count]) + tail
    try:
        ours: int | None = audiocore.opus_packet_samples(packet)
    except audiocore.DecodeError:
        ours = None
    assert ours == libopus_samples(packet, 48000)


def test_every_config_and_code_duration() -> None:
    for toc in range(256):
        frame = ref.frame_ms_x10(toc) * 48 // 10
        code = toc & 3
        packet = {0: bytes([toc, 1, 2]), 1: bytes([toc, 1, 2]), 2: bytes([toc, 1, 9, 8]),
                  3: bytes([toc, 0x02, 7, 7])}[code]
        expected = frame * (1 if code == 0 else 2)
        for rate in RATES:
            assert audiocore.opus_packet_samples(packet, rate) == expected * rate // 48000


def test_packet_errors_name_the_bad_byte() -> None:
    cases = {
        b"": (0, "empty packet"),
        b"\x01\x00\x00\x00": (3, "odd number"),
        b"\x02\xfc": (2, "runs past the end"),
        b"\x02\x05\x00": (1, "runs past the end"),
        b"\x03": (1, "frame count"),
        b"\x03\x00": (1, "frame count"),
        bytes([0x1B, 0x07]): (1, "longer than 120 ms"),  # 7 x 20 ms
        b"\x03\x41\x05\x00": (2, "padding"),
        b"\x03\x02\x00\x00\x00": (1, "multiple of the frame count"),
        bytes([0]) + bytes(1276): (1276, "1275 bytes"),
    }
    for packet, (offset, text) in cases.items():
        with pytest.raises(audiocore.DecodeError, match=text) as info:
            audiocore.opus_packet_samples(packet)
        assert info.value.offset == offset, packet
    with pytest.raises(ValueError, match="rate"):
        audiocore.opus_packet_samples(b"\x00", 44100)


def test_padding_reference_makes_packets_of_any_size(packets_20ms: list[bytes]) -> None:
    dec_a, dec_b = audiocore.OpusDecoder(), audiocore.OpusDecoder()
    for size in (len(packets_20ms[50]) + 2, 255, 510, 1500, 70000):
        packet = ref.padded(packets_20ms[50], size)
        assert len(packet) == size
        assert audiocore.opus_packet_samples(packet) == 960 == libopus_samples(packet, 48000)
        assert dec_a.decode(packet) == dec_b.decode(packets_20ms[50])


# ---------------------------------------------------------------- decoder


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("rate", RATES)
def test_decode_is_bit_identical_to_opuslib(rate: int, channels: int) -> None:
    packets = encode_all(48000, 20, channels, bitrate=32000)[:120]
    packets += encode_all(48000, 60, channels)[:10] + encode_all(48000, 2.5, channels)[:40]
    ours = audiocore.OpusDecoder(rate, channels)
    theirs = opuslib.Decoder(rate, channels)
    assert ours.rate == rate and ours.channels == channels
    for packet in packets:
        pcm = ours.decode(packet)
        assert len(pcm) == audiocore.opus_packet_samples(packet, rate) * 2 * channels
        assert pcm == theirs.decode(packet, rate * 120 // 1000)


def test_decodes_every_duration_and_the_opusenc_files() -> None:
    for ms in FRAME_MS:
        packets = encode_all(48000, ms)[:8]
        dec, ref_dec = audiocore.OpusDecoder(16000), opuslib.Decoder(16000, 1)
        for packet in packets:
            pcm = dec.decode(bytearray(packet))
            assert len(pcm) == int(16000 * ms / 1000) * 2
            assert pcm == ref_dec.decode(packet, 1920)
    # the bundled opusenc file, read by the plain reference parser
    from reference import ogg as ogg_ref

    stream = (DATA / "speech-60ms-64k.opus").read_bytes()
    audio = ogg_ref.packets(ogg_ref.pages(stream))[2:]
    dec, ref_dec = audiocore.OpusDecoder(24000), opuslib.Decoder(24000, 1)
    for pkt in audio:
        assert dec.decode(memoryview(pkt.data)) == ref_dec.decode(pkt.data, 2880)


def test_conceal_and_fec_are_bit_identical_to_opuslib(packets_20ms: list[bytes]) -> None:
    packets = encode_all(16000, 20, fec=True, packet_loss_perc=20, bitrate=24000)
    ours, theirs = audiocore.OpusDecoder(16000), opuslib.Decoder(16000, 1)
    for i, packet in enumerate(packets[:150]):
        if i % 7 == 3:
            assert ours.conceal(320) == theirs.decode(b"", 320)
        elif i % 7 == 5:
            assert ours.decode_fec(packet, 320) == theirs.decode(packet, 320, decode_fec=True)
            assert ours.decode(packet) == theirs.decode(packet, 320)
        else:
            assert ours.decode(packet) == theirs.decode(packet, 320)


def _snr(reference: np.ndarray, test: np.ndarray) -> float:
    noise = np.sum((reference.astype(float) - test) ** 2)
    return float(10 * np.log10(np.sum(reference.astype(float) ** 2) / max(noise, 1.0)))


def test_fec_recovers_lost_packets_better_than_concealment() -> None:
    rate, frame = 16000, 320
    packets = encode_all(rate, 20, fec=True, packet_loss_perc=30, bitrate=32000)
    clean_dec = audiocore.OpusDecoder(rate)
    clean = [np.frombuffer(clean_dec.decode(p), np.int16) for p in packets]
    lost = set(range(5, len(packets) - 1, 6))
    plc_dec, fec_dec = audiocore.OpusDecoder(rate), audiocore.OpusDecoder(rate)
    plc_out, fec_out = [], []
    for i, packet in enumerate(packets):
        if i in lost:
            plc_out.append(np.frombuffer(plc_dec.conceal(frame), np.int16))
            # the FEC decoder waits for the next packet and recovers this one from it
            fec_out.append(np.frombuffer(fec_dec.decode_fec(packets[i + 1], frame), np.int16))
        else:
            plc_out.append(np.frombuffer(plc_dec.decode(packet), np.int16))
            fec_out.append(np.frombuffer(fec_dec.decode(packet), np.int16))
    loud = [i for i in sorted(lost) if np.abs(clean[i]).mean() > 300]
    assert len(loud) >= 10
    ref_lost = np.concatenate([clean[i] for i in loud])
    plc_snr = _snr(ref_lost, np.concatenate([plc_out[i] for i in loud]))
    fec_snr = _snr(ref_lost, np.concatenate([fec_out[i] for i in loud]))
    print(f"FEC {fec_snr:.1f} dB, PLC {plc_snr:.1f} dB")
    assert fec_snr > plc_snr + 3, (fec_snr, plc_snr)
    # and both beat silence (0 dB)
    assert plc_snr > 0.5


def test_decoder_errors_leave_it_usable(packets_20ms: list[bytes]) -> None:
    dec, fresh = audiocore.OpusDecoder(), opuslib.Decoder(48000, 1)
    for packet in packets_20ms[:20]:
        dec.decode(packet)
        fresh.decode(packet, 960)
    with pytest.raises(audiocore.DecodeError, match="odd number") as info:
        dec.decode(b"\x01\x00\x00\x00")
    assert info.value.offset == 3
    with pytest.raises(audiocore.DecodeError):
        dec.decode(b"")
    with pytest.raises(ValueError, match="multiple of 2.5 ms"):
        dec.conceal(100)
    with pytest.raises(ValueError, match="up to 120 ms"):
        dec.conceal(48000 * 125 // 1000)
    with pytest.raises(ValueError):
        dec.decode_fec(packets_20ms[21], 0)
    with pytest.raises(TypeError):
        dec.decode("text")  # type: ignore[arg-type]
    # nothing above touched the decoder's state
    for packet in packets_20ms[20:40]:
        assert dec.decode(packet) == fresh.decode(packet, 960)
    dec.reset()
    fresh.reset_state()
    assert dec.decode(packets_20ms[40]) == fresh.decode(packets_20ms[40], 960)


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="rate"):
        audiocore.OpusDecoder(44100)
    with pytest.raises(ValueError, match="channels"):
        audiocore.OpusDecoder(48000, 3)
    with pytest.raises(ValueError, match="application"):
        audiocore.OpusEncoder(application="music")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bitrate"):
        audiocore.OpusEncoder(bitrate=100)
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(audiocore.OpusDecoder())
    with pytest.raises(AttributeError):
        audiocore.OpusDecoder().rate = 8000  # type: ignore[misc]
    assert repr(audiocore.OpusDecoder(16000)) == "OpusDecoder(rate=16000, channels=1)"


def test_one_object_two_threads_never_corrupts() -> None:
    packets = encode_all(48000, 20)[:200]
    dec = audiocore.OpusDecoder()
    busy = []

    def work() -> None:
        for packet in packets:
            try:
                dec.decode(packet)
            except RuntimeError as exc:
                busy.append(str(exc))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all("in use by another thread" in b for b in busy)


# ---------------------------------------------------------------- encoder


@pytest.mark.parametrize("rate", RATES)
def test_encoder_output_decodes_and_matches_opuslib_encoder(rate: int) -> None:
    pcm = speech(16000)[: 16000 * 2]  # 1 s (treated as audio at `rate`)
    ours = audiocore.OpusEncoder(rate, 1, "voip", bitrate=20000)
    theirs = opuslib.Encoder(rate, 1, opuslib.APPLICATION_VOIP)
    theirs.bitrate = 20000
    step = rate // 50 * 2
    for i in range(0, len(pcm) - step + 1, step):
        packet = ours.encode(pcm[i : i + step])
        assert packet == theirs.encode(pcm[i : i + step], rate // 50)
        assert audiocore.opus_packet_samples(packet, rate) == rate // 50


def test_encoder_frame_sizes_and_settings() -> None:
    enc = audiocore.OpusEncoder(16000, 2, application="audio", bitrate=64000)
    assert (enc.rate, enc.channels, enc.application) == (16000, 2, "audio")
    assert enc.bitrate == 64000
    for ms in FRAME_MS:
        frames = int(16000 * ms / 1000)
        packet = enc.encode(bytes(frames * 4))
        assert audiocore.opus_packet_samples(packet, 16000) == frames
    for bad in (0, 1, 159, 161, 2000):
        with pytest.raises(ValueError, match="a frame must last"):
            enc.encode(bytes(bad * 4))
    with pytest.raises(ValueError, match="whole number"):
        enc.encode(bytes(3))
    enc.complexity = 3
    enc.fec = True
    enc.packet_loss_perc = 15
    enc.dtx = True
    enc.bitrate = None
    assert (enc.complexity, enc.fec, enc.packet_loss_perc, enc.dtx) == (3, True, 15, True)
    assert enc.bitrate > 0
    for name, bad in [("complexity", 11), ("packet_loss_perc", 101), ("bitrate", 10**6)]:
        with pytest.raises(ValueError):
            setattr(enc, name, bad)
    assert enc.lookahead > 0
    enc.reset()
    assert enc.complexity == 3


def test_dtx_sends_tiny_packets_in_silence() -> None:
    enc = audiocore.OpusEncoder(16000)
    enc.dtx = True
    sizes = [len(enc.encode(bytes(640))) for _ in range(60)]
    assert min(sizes[10:]) <= 3


@settings(max_examples=300)
@given(st.binary(min_size=1, max_size=1600))
def test_fuzz_decode_of_arbitrary_bytes_agrees_with_opuslib(packet: bytes) -> None:
    ours, theirs = audiocore.OpusDecoder(16000), opuslib.Decoder(16000, 1)
    try:
        pcm: bytes | None = ours.decode(packet)
    except audiocore.DecodeError:
        pcm = None
    try:
        expected: bytes | None = theirs.decode(packet, 1920)
    except opuslib.OpusError:
        expected = None
    assert pcm == expected


# ---------------------------------------------------------------- opuslib's spellings


def test_opuslib_frame_size_spellings_are_bit_identical_to_opuslib() -> None:
    """``decode(packet, frame_size, decode_fec)`` and ``encode(pcm, frame_size)`` as opuslib
    is called, on the same packets, give opuslib's bytes: frame_size is the room for the
    output (the packet's duration comes out), FEC recovers frame_size samples, an empty
    packet is concealed."""
    pcm = speech(16000)[: 16000 * 2 * 3]
    ours_enc = audiocore.OpusEncoder(16000, 1, "voip", bitrate=24000)
    theirs_enc = opuslib.Encoder(16000, 1, opuslib.APPLICATION_VOIP)
    theirs_enc.bitrate = 24000
    for i in range(0, len(pcm) - 640 + 1, 640):
        assert ours_enc.encode(pcm[i : i + 640], 320) == theirs_enc.encode(pcm[i : i + 640], 320)
    # (opuslib's inband_fec setter is broken: packets with FEC data come from ours)
    packets = encode_all(16000, 20, fec=True, packet_loss_perc=20, bitrate=24000)[:150]
    ours, theirs = audiocore.OpusDecoder(16000), opuslib.Decoder(16000, 1)
    for i, packet in enumerate(packets):
        if i % 5 == 1:
            assert ours.decode(b"", 320) == theirs.decode(b"", 320)  # lost: concealed
        elif i % 5 == 3:
            assert ours.decode(packet, 320, True) == theirs.decode(packet, 320, True)
            assert ours.decode(packet, 320) == theirs.decode(packet, 320)
        else:
            room = (320, 960, 1920, 5760)[i % 4]
            assert ours.decode(packet, room) == theirs.decode(packet, room)
    assert len(packets) == 150


def test_opuslib_frame_size_is_refused_where_it_does_not_fit() -> None:
    enc = audiocore.OpusEncoder(16000, 2)
    pcm = bytes(1280)  # 20 ms of stereo: 320 samples per channel
    assert enc.encode(pcm, 320) == audiocore.OpusEncoder(16000, 2).encode(pcm)
    # opuslib would encode the first 160 samples (or read past the end for 480): refused
    for frame_size in (160, 480, 640):
        with pytest.raises(ValueError, match=f"frame_size {frame_size} does not match the PCM "
                           "given: 1280 bytes are 320 samples per channel"):
            enc.encode(pcm, frame_size)
    packet = audiocore.OpusEncoder(16000).encode(bytes(640))
    dec = audiocore.OpusDecoder(16000)
    # less room than the packet holds: opuslib's libopus call fails, ours says why
    with pytest.raises(opuslib.OpusError, match="buffer too small"):
        opuslib.Decoder(16000, 1).decode(packet, 160)
    with pytest.raises(ValueError, match="frame_size 160 is less than this packet's duration: "
                       "320 samples per channel at 16000 Hz"):
        dec.decode(packet, 160)
    with pytest.raises(ValueError, match="lost span must be a positive multiple of 2.5 ms"):
        dec.decode(packet, 330, decode_fec=True)
    with pytest.raises(TypeError, match="decode_fec=True needs frame_size"):
        dec.decode(packet, decode_fec=True)
    for bad, error in ((0, ValueError), (-320, ValueError), (True, TypeError),
                       ("320", TypeError), (320.0, TypeError)):
        with pytest.raises(error, match="frame_size must be"):
            dec.decode(packet, bad)  # type: ignore[arg-type]
        with pytest.raises(error, match="frame_size must be"):
            audiocore.OpusEncoder(16000).encode(bytes(640), bad)  # type: ignore[arg-type]
    with pytest.raises(audiocore.DecodeError):
        dec.decode(b"")  # an empty packet without frame_size is still malformed
    # the decoder is unharmed by the refusals
    assert dec.decode(packet, np.int64(320)) == audiocore.OpusDecoder(16000).decode(packet)
