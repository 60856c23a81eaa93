"""What the kernels read: a typed buffer (a NumPy array, a typed memoryview, an array.array)
of another item type, byte order or shape is refused with an error naming the expected dtype,
never read as raw PCM16; bytes-like and int16 inputs give what the same bytes give
(docs/design.md, "Kernel conventions"). The kernels and their buffer parameters are read from
the .pyi stubs, so a new kernel without an entry here fails test_every_buffer_parameter_is_covered.
"""

from __future__ import annotations

import array
import ast
import base64
import io
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import audiocore
from audiocore._ext.envelope import Template
from audiocore.protocols import acs, realtime
from reference import g711 as ref_g711

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "audiocore"
# The stubs' buffer types (src/audiocore/_ext/_typing.pyi), and Buffer in case one is added.
BUFFER_TYPES = {"BytesLike", "PCM16Like", "PCMLike", "Buffer"}


def stub_buffer_params() -> set[str]:
    """``module.[Class.]function:param`` for every parameter the stubs type as a buffer (and
    those of the Python modules taking PCM: resampling.py, oggfile.py)."""
    found: set[str] = set()
    sources = [p for p in sorted((PACKAGE / "_ext").glob("*.pyi")) if p.stem != "_typing"]
    for path in [*sources, PACKAGE / "resampling.py", PACKAGE / "oggfile.py"]:
        def visit(body: list[ast.stmt], prefix: str) -> None:
            for node in body:
                if isinstance(node, ast.ClassDef):
                    visit(node.body, f"{prefix}{node.name}.")
                elif isinstance(node, ast.FunctionDef):
                    a = node.args
                    for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs]:
                        names = {n.id for n in ast.walk(arg.annotation) if isinstance(n, ast.Name)
                                 } if arg.annotation else set()
                        if names & BUFFER_TYPES:
                            found.add(f"{path.stem}.{prefix}{node.name}:{arg.arg}")
        visit(ast.parse(path.read_text()).body, "")
    return found


# ---------------------------------------------------------------- the kernels, one entry each

PCM = (np.round(9000 * np.sin(0.05 * np.arange(960))).astype("<i2")).tobytes()  # 960 samples
STEREO_PCM = np.repeat(np.frombuffer(PCM, "<i2"), 2).astype("<i2").tobytes()
F32 = (np.frombuffer(PCM, "<i2") / 32768).astype("<f4").tobytes()
STEREO_F32 = np.repeat(np.frombuffer(F32, "<f4"), 2).astype("<f4").tobytes()
B64 = base64.b64encode(PCM[:600])
PACKET = audiocore.OpusEncoder(16000, 1).encode(PCM[:640])  # 20 ms at 16 kHz
STEREO_PACKET = audiocore.OpusEncoder(16000, 2).encode(STEREO_PCM[:1280])


def _ogg_stream() -> bytes:
    w = audiocore.OggOpusWriter(serial=1)
    return w.headers() + w.write(PACKET) + w.close(PACKET)


OGG = _ogg_stream()


@dataclass(frozen=True)
class Param:
    """How to call one kernel, on fresh state, with ``x`` in one buffer parameter.

    ``good``: a valid input (raw bytes); for an output, its size. ``takes``: the typed arrays
    read besides raw bytes ("bytes": none, "int16", "float32"). ``channels`` > 0: a
    C-contiguous (frames, channels) array of samples is read too."""

    call: Callable[[Any], Any] = field(repr=False)
    good: bytes = field(repr=False)
    takes: str
    channels: int = 0
    out: bool = False


def _jitter(x: Any, channels: int = 1) -> list[bytes]:
    q = audiocore.JitterQueue(8000, channels=channels, target_ms=20, min_ms=20)
    q.push(x)
    return [q.pop() for _ in range(4)]


def _jitter_opus(x: Any) -> list[bytes]:
    q = audiocore.JitterQueue(16000, target_ms=20, min_ms=20, decoder=audiocore.OpusDecoder(16000))
    q.push(x, seq=7)
    return [q.pop() for _ in range(2)]


def _ring(x: Any) -> bytes:
    r = audiocore.RingBuffer(4096)
    r.write(x)
    return r.read()


def _ring_into(out: Any) -> tuple[int, bytes]:
    r = audiocore.RingBuffer(4096)
    r.write(PCM[:300])
    return r.readinto(out), bytes(out)


def _writer(method: str) -> Callable[[Any], bytes]:
    def call(x: Any) -> bytes:
        w = audiocore.OggOpusWriter(serial=1)
        w.headers()
        return getattr(w, method)(x)  # type: ignore[no-any-return]
    return call


def _feed(x: Any) -> list[tuple[bytes, int]]:
    return [(p.data, p.granule) for p in audiocore.OggOpusReader().feed(x)]


def _ogg_file(x: Any, rate: int, whole: bool = False) -> list[bytes]:
    """The Opus packets an Ogg Opus file of ``x`` holds (serial fixed: same bytes in, same out)."""
    out = io.BytesIO()
    if whole:
        audiocore.write_ogg_opus(out, x, rate, serial=1)
    else:
        with audiocore.OggOpusFileWriter(out, rate, serial=1) as w:
            w.write(x)
    return [p.data for p in audiocore.OggOpusReader().feed(out.getvalue())]


def _resampler(dtype: str = "int16", channels: int = 1) -> audiocore.Resampler:
    return audiocore.Resampler(16000, 24000, channels=channels, dtype=dtype)  # type: ignore[arg-type]


def _process_into(dtype: str, channels: int, data: Any = None, out: Any = None) -> Any:
    r = _resampler(dtype, channels)
    good = {"int16": PCM, "float32": F32}[dtype] if channels == 1 else {
        "int16": STEREO_PCM, "float32": STEREO_F32}[dtype]
    if out is None:
        out = bytearray(len(good) * 2)
    n = r.process_into(good if data is None else data, out)
    return n, bytes(out)


KERNELS: dict[str, list[Param]] = {
    "b64.b64encode:data": [Param(audiocore.b64encode, PCM, "int16")],
    "b64.b64decode:data": [Param(audiocore.b64decode, B64, "bytes")],
    "b64.urlsafe_b64encode:data": [Param(audiocore.urlsafe_b64encode, PCM, "int16")],
    "b64.urlsafe_b64decode:data": [
        Param(audiocore.urlsafe_b64decode, base64.urlsafe_b64encode(PCM[:600]), "bytes")],
    "b64.b64decoded_length:data": [Param(audiocore.b64decoded_length, B64, "bytes")],
    "b64.b64decode_into:data": [
        Param(lambda x: (audiocore.b64decode_into(x, o := bytearray(600)), bytes(o)), B64,
              "bytes")],
    "b64.b64decode_into:out": [
        Param(lambda o: (audiocore.b64decode_into(B64, o), bytes(o)), bytes(600), "int16",
              out=True)],
    "envelope.Template.build:audio": [
        Param(Template(b'{"a":"', b'"}', pcm16=True).build, PCM, "int16"),
        Param(Template(b'{"a":"', b'"}', codec="ulaw").build, PCM, "int16"),
        Param(Template(b'{"a":"', b'"}').build, PCM, "int16"),
    ],
    "g711.ulaw_encode:pcm": [Param(audiocore.ulaw_encode, PCM, "int16")],
    "g711.alaw_encode:pcm": [Param(audiocore.alaw_encode, PCM, "int16")],
    "g711.ulaw_decode:codes": [Param(audiocore.ulaw_decode, PCM[:333], "bytes")],
    "g711.alaw_decode:codes": [Param(audiocore.alaw_decode, PCM[:333], "bytes")],
    "jitter.JitterQueue.push:payload": [
        Param(_jitter, PCM[:960], "int16", channels=1),
        Param(lambda x: _jitter(x, 2), STEREO_PCM[:1280], "int16", channels=2),
        Param(_jitter_opus, PACKET, "int16"),  # packets, with a decoder
    ],
    "ogg.ogg_crc32:data": [Param(audiocore.ogg_crc32, OGG, "bytes")],
    "ogg.OggOpusWriter.write:packet": [Param(_writer("write"), PACKET, "bytes")],
    "ogg.OggOpusWriter.close:packet": [Param(_writer("close"), PACKET, "bytes")],
    "ogg.OggOpusReader.feed:data": [Param(_feed, OGG, "bytes")],
    "opus.opus_packet_samples:packet": [Param(audiocore.opus_packet_samples, PACKET, "bytes")],
    "opus.OpusDecoder.decode:packet": [
        Param(lambda x: audiocore.OpusDecoder(16000).decode(x), PACKET, "bytes"),
        Param(lambda x: audiocore.OpusDecoder(16000).decode(x, 960), PACKET, "bytes"),
        Param(lambda x: audiocore.OpusDecoder(16000, 2).decode(x, 320, True), STEREO_PACKET,
              "bytes"),
    ],
    "opus.OpusDecoder.decode_fec:packet": [
        Param(lambda x: audiocore.OpusDecoder(16000, 2).decode_fec(x, 320), STEREO_PACKET,
              "bytes")],
    "opus.OpusEncoder.encode:pcm": [
        Param(lambda x: audiocore.OpusEncoder(16000, 1).encode(x), PCM[:640], "int16",
              channels=1),
        Param(lambda x: audiocore.OpusEncoder(16000, 2).encode(x), STEREO_PCM[:1280], "int16",
              channels=2),
        Param(lambda x: audiocore.OpusEncoder(16000, 2).encode(x, 320), STEREO_PCM[:1280],
              "int16", channels=2),
    ],
    "rechunk.Rechunker.push:data": [
        Param(lambda x: audiocore.Rechunker(100).push(x), PCM[:450], "int16")],
    "resample.Resampler.process:data": [
        Param(lambda x: _resampler().process(x), PCM, "int16", channels=1),
        Param(lambda x: _resampler("int16", 2).process(x), STEREO_PCM, "int16", channels=2),
        Param(lambda x: _resampler("float32").process(x), F32, "float32", channels=1),
        Param(lambda x: _resampler("float32", 2).process(x), STEREO_F32, "float32", channels=2),
    ],
    "resample.Resampler.process_into:data": [
        Param(lambda x: _process_into("int16", 2, data=x), STEREO_PCM, "int16", channels=2),
        Param(lambda x: _process_into("float32", 1, data=x), F32, "float32", channels=1),
    ],
    "resample.Resampler.process_into:out": [
        Param(lambda o: _process_into("int16", 2, out=o), bytes(2 * len(STEREO_PCM)), "int16",
              channels=2, out=True),
        Param(lambda o: _process_into("float32", 1, out=o), bytes(2 * len(F32)), "float32",
              channels=1, out=True),
    ],
    "resample.Resampler._process_aligned:data": [
        Param(lambda x: _resampler()._process_aligned(x), PCM, "int16", channels=1)],
    "resampling.resample:data": [
        Param(lambda x: audiocore.resample(x, 16000, 24000), PCM, "int16", channels=1),
        Param(lambda x: audiocore.resample(x, 16000, 24000, channels=2), STEREO_PCM, "int16",
              channels=2),
        Param(lambda x: audiocore.resample(x, 16000, 24000, dtype="float32"), F32, "float32",
              channels=1),
    ],
    "oggfile.OggOpusFileWriter.write:pcm": [
        Param(lambda x: _ogg_file(x, 16000), PCM[:640], "int16"),
        Param(lambda x: _ogg_file(x, 44100), PCM[:882], "int16"),  # through the resampler
    ],
    "oggfile.write_ogg_opus:pcm": [
        Param(lambda x: _ogg_file(x, 16000, whole=True), PCM[:640], "int16")],
    "ring.RingBuffer.write:data": [Param(_ring, PCM[:1000], "int16")],
    "ring.RingBuffer.readinto:buf": [Param(_ring_into, bytes(400), "int16", out=True)],
}
# Protocol builders the issue names, which call the kernels above (Template, b64encode).
PROTOCOLS: dict[str, list[Param]] = {
    "protocols.acs.audio_message:pcm": [Param(acs.audio_message, PCM[:640], "int16")],
    "protocols.realtime.append:audio": [
        Param(realtime.append, PCM[:960], "int16"),
        Param(lambda x: realtime.append(x, event_id="e1"), PCM[:960], "int16"),
    ],
}
# Parameters that take text and are not buffers in the stubs: JSON text is ``str`` or exact
# ``bytes``, and anything else is declined (None) by design, for the caller's general parser.
EXCLUDED = {
    "envelope.Shape.scan:text": "JSON text (str or bytes); other objects are declined (None)",
    "transcode.Transcoder.run:text": "JSON text (str or bytes); other objects are declined (None)",
}
CASES = [(key, i, p) for table in (KERNELS, PROTOCOLS) for key, ps in table.items()
         for i, p in enumerate(ps)]
IDS = [f"{key}[{i}]" for key, i, _ in CASES]
EXPECTED_NAME = {"bytes": "bytes", "int16": "int16", "float32": "float32"}

# Item types that are never samples here: each is refused by every kernel.
WRONG = ["<f4", "<f8", "<i4", "<u2", "<i8", "<u8", ">i2", ">u2", "<c8", "<c16", "?", "<f2"]
WRONG_FOR = {
    "bytes": [*WRONG, "<i2"],
    "int16": WRONG,
    "float32": [d for d in WRONG if d != "<f4"] + ["<i2", ">f4"],
}
ACCEPTED_DTYPE = {"bytes": "u1", "int16": "<i2", "float32": "<f4"}


def test_every_buffer_parameter_is_covered() -> None:
    assert set(KERNELS) == stub_buffer_params(), (
        "every stub parameter typed as a buffer needs an entry in KERNELS (or the stub a fix)")
    # and every kernel module the package exports has its entries
    exports = {getattr(getattr(audiocore, name), "__module__", None) for name in audiocore.__all__}
    covered = {f"audiocore.{'' if key.startswith(('resampling', 'oggfile')) else '_ext.'}{key.split('.')[0]}"
               for key in KERNELS}
    assert exports - {None, "audiocore._ext.errors"} <= covered
    for key in EXCLUDED:
        module, rest = key.split(".", 1)
        stub = (PACKAGE / "_ext" / f"{module}.pyi").read_text()
        assert f"def {rest.split(':')[0].split('.')[-1]}(" in stub, key


def _message_names(exc: BaseException, takes: str) -> None:
    assert EXPECTED_NAME[takes] in str(exc), str(exc)


@pytest.mark.parametrize("key, i, p", CASES, ids=IDS)
@settings(max_examples=40)
@given(data=st.data())
def test_wrong_dtypes_are_refused(key: str, i: int, p: Param, data: st.DataObject) -> None:
    dtype = data.draw(st.sampled_from(WRONG_FOR[p.takes]), label="dtype")
    n = data.draw(st.integers(0, 48), label="items")
    source = data.draw(st.sampled_from(["numpy", "memoryview"]), label="source")
    x: Any = np.zeros(n, dtype)
    if source == "memoryview":
        # the same items through a typed memoryview (formats such as '<h' and 'Zf' it cannot
        # cast to stay NumPy arrays)
        code = np.dtype(dtype).char
        if np.dtype(dtype).byteorder != ">" and code in "fdhilqHIQ?":
            x = memoryview(bytearray(x.tobytes())).cast(code)
    with pytest.raises(TypeError, match="wrong dtype") as info:
        p.call(x)
    _message_names(info.value, p.takes)


@pytest.mark.parametrize("key, i, p", CASES, ids=IDS)
def test_array_module_arrays_of_wrong_types_are_refused(key: str, i: int, p: Param) -> None:
    for code in ("f", "d", "i", "H", "q"):
        if code == "f" and p.takes == "float32":
            continue
        with pytest.raises(TypeError, match="wrong dtype") as info:
            p.call(array.array(code, [0] * 8))
        _message_names(info.value, p.takes)


@pytest.mark.parametrize("key, i, p", CASES, ids=IDS)
@settings(max_examples=30)
@given(data=st.data())
def test_wrong_shapes_are_refused(key: str, i: int, p: Param, data: st.DataObject) -> None:
    dtype = data.draw(st.sampled_from(sorted({ACCEPTED_DTYPE[p.takes], "u1", "i1"})),
                      label="dtype")
    frames = data.draw(st.integers(1, 8), label="frames")
    typed = dtype not in ("u1", "i1")
    shapes = [(frames, c) for c in (1, 2, 3) if not (typed and c == p.channels)]
    shapes += [(frames, max(p.channels, 1), 1), (2, frames, 2, 1)]
    shape = data.draw(st.sampled_from(shapes), label="shape")
    with pytest.raises(ValueError, match="wrong shape") as info:
        p.call(np.zeros(shape, dtype))
    _message_names(info.value, p.takes)


@pytest.mark.parametrize("key, i, p", CASES, ids=IDS)
@settings(max_examples=20)
@given(data=st.data())
def test_non_contiguous_views_are_refused(key: str, i: int, p: Param,
                                          data: st.DataObject) -> None:
    dtype = ACCEPTED_DTYPE[p.takes]
    n = data.draw(st.integers(2, 40), label="items")
    views = [np.zeros(2 * n, dtype)[::2], np.zeros(2 * n, dtype)[::-1],
             memoryview(np.zeros(2 * n, dtype))[::2]]
    if p.channels >= 2 and p.takes != "bytes":
        views.append(np.asfortranarray(np.zeros((n, p.channels), dtype)))
    x = views[data.draw(st.integers(0, len(views) - 1), label="view")]
    # an input is a ValueError, an output a TypeError (as before: not a usable writable buffer)
    with pytest.raises(TypeError if p.out else ValueError, match="C-contiguous") as info:
        p.call(x)
    _message_names(info.value, p.takes)


@pytest.mark.parametrize("key, i, p", CASES, ids=IDS)
def test_readonly_outputs_and_non_buffers_are_refused(key: str, i: int, p: Param) -> None:
    for x in (12345, 1.5, object(), [1, 2, 3], "text"):
        if isinstance(x, str) and "b64decode" in key and not p.out:
            continue  # base64 text may be str
        with pytest.raises(TypeError) as info:
            p.call(x)
        _message_names(info.value, p.takes)
    if p.out:
        readonly = np.zeros(len(p.good), np.uint8)
        readonly.flags.writeable = False
        with pytest.raises(TypeError, match="writable") as info:
            p.call(readonly)
        _message_names(info.value, p.takes)


def _forms(p: Param) -> list[Any]:
    """The same bytes as every object a kernel reads (fresh writable ones for an output)."""
    g = p.good if not p.out else bytes(len(p.good))
    wrap: Callable[[bytes], Any] = bytearray if p.out else bytes
    forms: list[Any] = [wrap(g), bytearray(g), memoryview(bytearray(g)),
                        np.frombuffer(bytearray(g), np.uint8), np.frombuffer(bytearray(g), np.int8),
                        array.array("B", g)]
    if not p.out:
        forms.append(memoryview(g))
    if p.takes != "bytes":
        native = {"int16": "h", "float32": "f"}[p.takes]
        size = np.dtype(ACCEPTED_DTYPE[p.takes]).itemsize
        if len(g) % size == 0:
            typed = np.frombuffer(bytearray(g), ACCEPTED_DTYPE[p.takes])
            forms += [typed, memoryview(bytearray(g)).cast(native), array.array(native, g)]
            if p.channels and len(typed) % p.channels == 0:
                forms.append(typed.reshape(-1, p.channels))
    return forms


@pytest.mark.parametrize("key, i, p", CASES, ids=IDS)
def test_accepted_forms_give_what_the_bytes_give(key: str, i: int, p: Param) -> None:
    want = p.call(bytearray(len(p.good)) if p.out else p.good)
    for form in _forms(p):
        assert p.call(form) == want, type(form)


def test_int16_arrays_against_independent_references() -> None:
    x = np.frombuffer(PCM, "<i2")
    assert audiocore.ulaw_encode(x) == ref_g711.ulaw_encode(PCM)
    assert audiocore.alaw_encode(x.reshape(-1).copy()) == ref_g711.alaw_encode(PCM)
    assert audiocore.b64encode(x) == base64.b64encode(PCM)
    message = json.loads(acs.audio_message(x[:320]))
    assert base64.b64decode(message["AudioData"]["Data"]) == PCM[:640]
    assert base64.b64decode(json.loads(realtime.append(x[:480]))["audio"]) == PCM[:960]
    out = np.zeros(300, np.int16)
    assert audiocore.b64decode_into(B64, out) == 600 and out.tobytes() == PCM[:600]


def test_the_issue_examples() -> None:
    """Issue 11's: 4 float32 samples gave 8 mu-law codes; an (n, 2) array was read as 2n mono
    samples."""
    with pytest.raises(TypeError, match="expected int16 PCM .*got float32"):
        audiocore.ulaw_encode(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match=r"\(frames, 1\).*got shape \(480, 2\)"):
        audiocore.resample(np.zeros((480, 2), np.int16), 16000, 24000)
    for wrong in (np.zeros(320, np.float32), np.zeros(320, np.int32), np.zeros(320, ">i2")):
        with pytest.raises(TypeError, match="int16"):
            audiocore.OpusEncoder(16000).encode(wrong)
        with pytest.raises(TypeError, match="int16"):
            audiocore.JitterQueue(16000).push(wrong)
        with pytest.raises(TypeError, match="int16"):
            acs.audio_message(wrong)
        with pytest.raises(TypeError, match="int16"):
            realtime.append(wrong)


def test_a_refusal_leaves_the_object_unchanged() -> None:
    ring, q, r = audiocore.RingBuffer(100), audiocore.JitterQueue(8000), _resampler()
    chunker, fresh = audiocore.Rechunker(10), _resampler()
    r.process(PCM[:64])
    fresh.process(PCM[:64])
    for method in (ring.write, q.push, r.process, chunker.push):
        with pytest.raises(TypeError):
            method(np.ones(6, np.float32))
    assert len(ring) == 0 and q.stats["received"] == 0 and chunker.pending == 0
    assert q.buffered_ms == 0 and q.mode is None
    assert r.process(PCM[64:]) + r.flush() == fresh.process(PCM[64:]) + fresh.flush()


# ---------------------------------------------------------------- typing

TYPED_SNIPPET = """
    from typing import Any

    import numpy as np
    import numpy.typing as npt

    import audiocore
    from audiocore._ext.envelope import Template

    pcm: npt.NDArray[np.int16] = np.zeros(320, np.int16)
    stereo = np.zeros((320, 2), dtype=np.int16)
    codes = np.zeros(160, np.uint8)
    signed = np.zeros(160, np.int8)
    f32 = np.zeros(320, np.float32)
    loose: np.ndarray[Any, Any] = np.zeros(3, np.int16)

    audiocore.ulaw_encode(pcm), audiocore.alaw_encode(loose), audiocore.ulaw_encode(codes)
    audiocore.ulaw_decode(codes), audiocore.alaw_decode(signed)
    audiocore.b64encode(pcm), audiocore.b64decode(codes), audiocore.b64decoded_length(codes)
    audiocore.b64decode_into(codes, pcm)
    audiocore.urlsafe_b64encode(pcm), audiocore.urlsafe_b64decode(codes)
    audiocore.b64encode(pcm, altchars=b"-_"), audiocore.b64decode(codes, b"-_", validate=True)
    ring = audiocore.RingBuffer(1000)
    ring.write(pcm), ring.readinto(pcm)
    audiocore.Rechunker(640).push(pcm)
    audiocore.JitterQueue(16000).push(pcm)
    audiocore.OpusEncoder(16000, 2).encode(stereo)
    dec = audiocore.OpusDecoder(16000)
    dec.decode(codes), dec.decode_fec(codes, 320), audiocore.opus_packet_samples(codes)
    dec.decode(codes, 960), dec.decode(codes, 320, decode_fec=True)
    audiocore.OpusEncoder(16000).encode(pcm, 320)
    audiocore.ogg_crc32(codes)
    writer = audiocore.OggOpusWriter()
    writer.write(codes), writer.close(codes)
    audiocore.OggOpusReader().feed(codes)
    r = audiocore.Resampler(16000, 24000)
    r.process(pcm), r.process_into(pcm, pcm), r._process_aligned(pcm)
    audiocore.Resampler(16000, 24000, dtype="float32").process(f32)
    audiocore.resample(stereo, 16000, 24000, channels=2)
    Template(b"", b"", pcm16=True).build(pcm)
    import io
    with audiocore.OggOpusFileWriter(io.BytesIO(), 16000) as w:
        w.write(pcm)
    audiocore.write_ogg_opus(io.BytesIO(), pcm, 16000)

    # the protocol builders that take PCM, and what RealtimeSession.receive returns
    from audiocore.protocols import acs, realtime

    acs.audio_message(pcm), realtime.append(pcm)
    realtime.append(codes, event_id="e1")
    session = realtime.RealtimeSession()
    ev = session.receive('{"type":"error","error":{"message":"m"}}')
    kind: str = ev.type  # every event has its type
    if isinstance(ev, realtime.AudioDelta):
        played: bytes = ev.pcm
    elif isinstance(ev, realtime.Error):
        text: str = ev.message
    elif isinstance(ev, realtime.Unknown):
        whole: dict[str, object] = ev.payload
    match ev:
        case realtime.ResponseDone(response_id=rid):
            done: str | None = rid
        case realtime.DroppedAudioDelta(audio_bytes=n):
            dropped: int = n
"""
# On Python 3.11 (what mypy checks here) these are type errors too, as they are at run time.
WRONG_SNIPPET = """
    import numpy as np

    import audiocore

    audiocore.ulaw_encode(np.zeros(4, np.float32))
    audiocore.ulaw_decode(np.zeros(4, np.int16))
    audiocore.OpusEncoder().encode(np.zeros(4, np.int32))

    from audiocore.protocols import acs, realtime

    acs.audio_message(np.zeros(4, np.float32))
    realtime.append(np.zeros(4, np.int32))
    ev = realtime.RealtimeSession().receive("{}")
    ev.message
    n: int = ev
"""


def _mypy(tmp_path: Path, name: str, code: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / name
    path.write_text(textwrap.dedent(code))
    env = dict(os.environ, MYPYPATH=str(ROOT / "src"))
    return subprocess.run(  # the project's settings: --strict, Python 3.11
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--no-error-summary", "--cache-dir", str(tmp_path / "cache"), str(path)],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)


def test_numpy_arrays_type_check_on_python_311(tmp_path: Path) -> None:
    for key in stub_buffer_params():
        function = key.split(":")[0].split(".")[-1]
        assert f"{function}(" in TYPED_SNIPPET, f"the typing snippet leaves out {key}"
    result = _mypy(tmp_path, "typed.py", TYPED_SNIPPET)
    assert result.returncode == 0, result.stdout + result.stderr
    result = _mypy(tmp_path, "wrong.py", WRONG_SNIPPET)
    errors = [line for line in result.stdout.splitlines() if "error:" in line]
    lines = [line.split(":")[1] for line in errors]
    # receive() returns the union of its event classes, not Any: an attribute that not every
    # event has (.message: Error's) is an error, and so is using an event as an int
    assert lines[:5] + lines[-1:] == ["6", "7", "8", "12", "13", "16"], result.stdout
    assert set(lines[5:-1]) == {"15"}, result.stdout
    assert all("[arg-type]" in line for line in errors if line.split(":")[1] in "6 7 8 12 13")
    assert any('Item "SessionCreated" of ' in line and "[union-attr]" in line
               for line in errors if line.split(":")[1] == "15"), result.stdout
    assert "[assignment]" in errors[-1], result.stdout
