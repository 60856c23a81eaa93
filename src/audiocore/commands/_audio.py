"""Audio files for the codec commands: streaming readers and writers of WAV, raw PCM, Ogg
Opus and G.711 (mu-law, A-law), all as PCM16LE blocks, with memory bounded by a block.

What each format needs:

- ``wav``: 16-bit PCM WAV; rate and channels come from the file.
- ``raw``: headerless PCM16LE; reading needs the rate (``in_rate``) and ``channels`` (1).
- ``ulaw`` / ``alaw``: headerless G.711 bytes; reading assumes 8000 Hz mono unless told.
- ``opus``: Ogg Opus (RFC 7845), mono or stereo (mapping family 0). Reading honours pre-skip,
  the output gain and the end granule (the exact sample count); writing sets pre-skip from the
  encoder's lookahead and trims the last page's granule to the exact input length.
"""

from __future__ import annotations

import wave
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from audiocore._ext.errors import AudioCoreError, DecodeError
from audiocore._ext.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from audiocore._ext.ogg import OggOpusReader, OggOpusWriter, OggPacket, ogg_crc32
from audiocore._ext.opus import OPUS_RATES, OpusDecoder, OpusEncoder
from audiocore._ext.rechunk import Rechunker
from audiocore._ext.resample import Resampler

EXTENSIONS = {
    ".wav": "wav", ".raw": "raw", ".pcm": "raw", ".s16": "raw", ".opus": "opus", ".ogg": "opus",
    ".oga": "opus", ".ul": "ulaw", ".ulaw": "ulaw", ".mulaw": "ulaw", ".mu": "ulaw", ".al": "alaw",
    ".alaw": "alaw",
}
FORMATS = ("wav", "raw", "opus", "ulaw", "alaw")
_BLOCK = 1 << 16
_MAX_PAGE = 27 + 255 + 255 * 255  # the longest Ogg page (bytes)


class AudioFileError(AudioCoreError, ValueError):
    """A file the codec commands cannot read or write as asked."""


def format_of(path: str | Path, explicit: str | None = None) -> str:
    if explicit:
        if explicit not in FORMATS:
            raise AudioFileError(f"unknown format {explicit!r} (one of {', '.join(FORMATS)})")
        return explicit
    fmt = EXTENSIONS.get(Path(path).suffix.lower())
    if fmt is None:
        raise AudioFileError(f"{path}: cannot tell the format from the extension; "
                             f"use a known one ({', '.join(sorted(EXTENSIONS))}) or --format/--in-format")
    return fmt


# ---------------------------------------------------------------------------- reading


class Source:
    """PCM16LE blocks from a file. ``rate``/``channels``: of the PCM ``blocks`` yields;
    ``nominal_rate``: the rate the audio was made at (an Ogg Opus file's input rate);
    ``size``: bytes of input, for progress (each block comes with the input bytes read).

    Damaged input (a bad page, lost pages, a truncated file) raises :class:`AudioFileError`;
    with ``lenient`` what can be read is converted and ``damage`` says what was not."""

    rate: int
    channels: int
    nominal_rate: int
    size: int

    def __init__(self, lenient: bool = False) -> None:
        self.lenient = lenient
        self.damage: list[str] = []

    def damaged(self, what: str) -> None:
        """Input that cannot be read as it should: an error, or noted when ``lenient``."""
        if not self.lenient:
            raise AudioFileError(f"{what} (--lenient converts what can be read)")
        self.damage.append(what)

    def blocks(self) -> Iterator[tuple[bytes, int]]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class WavSource(Source):
    def __init__(self, path: Path, lenient: bool = False) -> None:
        super().__init__(lenient)
        self.path = path
        try:
            self.w = wave.open(str(path), "rb")
        except (wave.Error, EOFError) as exc:
            raise AudioFileError(f"{path}: not a PCM WAV file ({exc})") from None
        if self.w.getsampwidth() != 2:
            self.w.close()
            raise AudioFileError(f"{path}: {8 * self.w.getsampwidth()}-bit WAV; only 16-bit PCM is read")
        self.rate = self.nominal_rate = self.w.getframerate()
        self.channels = self.w.getnchannels()
        self.frames = self.w.getnframes()
        self.size = self.frames * 2 * self.channels

    def blocks(self) -> Iterator[tuple[bytes, int]]:
        fb = 2 * self.channels
        got = 0
        while data := self.w.readframes(_BLOCK // fb):
            whole = len(data) - len(data) % fb  # a file cut inside a frame ends in a part of one
            got += whole // fb
            yield data[:whole], len(data)
        if got < self.frames:
            self.damaged(f"{self.path}: truncated: the header says {self.frames} frames, "
                         f"the file holds {got}")

    def close(self) -> None:
        self.w.close()


class RawSource(Source):
    """Raw PCM16LE, or G.711 (``codec`` "ulaw"/"alaw") expanded to PCM16LE."""

    def __init__(self, path: Path, rate: int, channels: int, codec: str | None = None,
                 lenient: bool = False) -> None:
        super().__init__(lenient)
        self.f = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.rate = self.nominal_rate = rate
        self.channels = channels
        self.size = path.stat().st_size
        self.codec = codec
        self.path = path

    def blocks(self) -> Iterator[tuple[bytes, int]]:
        unit = self.channels * (1 if self.codec else 2)
        held = b""
        while data := self.f.read(_BLOCK):
            data = held + data
            cut = len(data) - len(data) % unit
            data, held = data[:cut], data[cut:]
            if self.codec == "ulaw":
                yield ulaw_decode(data), len(data)
            elif self.codec == "alaw":
                yield alaw_decode(data), len(data)
            else:
                yield data, len(data)
        if held:
            self.damaged(f"{self.path}: {len(held)} bytes at the end do not make a whole frame "
                         f"of {unit} bytes (wrong --channels?)")

    def close(self) -> None:
        self.f.close()


class OpusSource(Source):
    """An Ogg Opus file decoded with :class:`audiocore.OpusDecoder` at ``decode_rate``, from
    the end of pre-skip to the end granule, output gain applied."""

    def __init__(self, path: Path, lenient: bool = False) -> None:
        super().__init__(lenient)
        self.path = path
        self.f = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.size = path.stat().st_size
        try:
            self._read_head()
            if (problem := ogg_end_problem(self.f, self.size)) is not None:
                self.damaged(f"{path}: {problem}")
        except BaseException:
            self.f.close()
            raise

    def _read_head(self) -> None:
        path = self.path
        self.reader = OggOpusReader()
        self.early: list[tuple[list[OggPacket], int]] = []
        while self.reader.head is None:
            chunk = self.f.read(_BLOCK)
            if not chunk:
                raise AudioFileError(f"{path}: no OpusHead: not an Ogg Opus file")
            self.early.append((self._feed(chunk), len(chunk)))
        head = self.reader.head
        if head.mapping_family != 0:
            raise AudioFileError(f"{path}: channel mapping family {head.mapping_family}; only 0 (mono, stereo)")
        self.channels = head.channels
        self.nominal_rate = head.input_rate or 48000
        self.rate = 48000
        self.serial = self.reader.serial

    def _feed(self, chunk: bytes) -> list[OggPacket]:
        try:
            return list(self.reader.feed(chunk))
        except DecodeError as exc:  # the reader skipped to the next page: carry on if lenient
            self.damaged(f"{self.path}: {exc}")
            return list(self.reader.feed(b""))

    def blocks(self) -> Iterator[tuple[bytes, int]]:
        head = self.reader.head
        assert head is not None
        factor = 48000 // self.rate
        dec = OpusDecoder(self.rate, self.channels)
        fb = 2 * self.channels
        pre_skip = head.pre_skip // factor
        gain = 10 ** (head.output_gain / 256 / 20)
        buf = bytearray()
        done = decoded = 0  # positions in decoded samples at self.rate
        offset: int | None = None  # a start offset (first granule beyond its samples)
        end = 0  # the last granule's position in decoded samples
        mark = 0  # decoded samples at the last granule: where skipped pages' audio belongs
        filled = 0  # samples of silence in place of skipped pages' audio

        def emit(limit: int) -> bytes:
            nonlocal done
            limit = min(limit, decoded)
            if limit <= done:
                return b""
            start = max(done, pre_skip)
            out = bytes(buf[(start - done) * fb : (limit - done) * fb]) if limit > start else b""
            del buf[: (limit - done) * fb]
            done = limit
            if out and gain != 1.0:
                scaled = np.frombuffer(out, "<i2").astype(np.float64) * gain
                out = np.clip(np.rint(scaled), -32768, 32767).astype("<i2").tobytes()
            return out

        def packets() -> Iterator[tuple[list[OggPacket], int]]:
            yield from self.early
            while chunk := self.f.read(_BLOCK):
                yield self._feed(chunk), len(chunk)

        for batch, nbytes in packets():
            out = []
            for p in batch:
                if p.serial != self.serial:
                    raise AudioFileError(f"{self.path}: chained Ogg streams are not supported")
                try:
                    pcm = dec.decode(p.data)
                except DecodeError as exc:
                    self.damaged(f"{self.path}: {exc}")
                    pcm = b""
                buf += pcm
                decoded += len(pcm) // fb
                granule = p.granule
                if granule >= 0:
                    if offset is None:
                        offset = max(0, granule // factor - decoded)
                    end = granule // factor - offset
                    if self.damage and end > decoded:
                        # --lenient, pages skipped since the last granule: their audio becomes
                        # silence where they were, so what follows keeps its time
                        gap = end - decoded
                        buf[(mark - done) * fb : (mark - done) * fb] = bytes(gap * fb)
                        decoded += gap
                        filled += gap
                    mark = decoded
                    out.append(emit(end))
            yield b"".join(out), nbytes
        # whatever follows the last granule is padding: dropped
        if filled:
            self.damage.append(f"{self.path}: {filled / self.rate:.3f} s of audio lost with what was "
                               "skipped, replaced by silence")

    def close(self) -> None:
        self.f.close()


def ogg_end_problem(f: BinaryIO, size: int) -> str | None:
    """Why the Ogg file ``f`` (``size`` bytes) does not end with a whole page marked end of
    stream (EOS), or None when it does. Reads at most the last 65,307 bytes (a page's most);
    leaves ``f`` where it was."""
    start, was = max(0, size - _MAX_PAGE), f.tell()
    f.seek(start)
    tail = f.read()
    f.seek(was)
    at = len(tail)
    while (at := tail.rfind(b"OggS", 0, at)) >= 0:
        if at + 27 > len(tail) or at + 27 + tail[at + 26] > len(tail):
            continue
        end = at + 27 + tail[at + 26] + sum(tail[at + 27 : at + 27 + tail[at + 26]])
        if end > len(tail):
            continue
        page = bytearray(tail[at:end])
        crc = int.from_bytes(page[22:26], "little")
        page[22:26] = bytes(4)
        if ogg_crc32(page) != crc:
            continue
        if end < len(tail):
            return (f"truncated (or junk at the end): {len(tail) - end} bytes after the last whole page "
                    f"(offset {start + end})")
        return None if tail[at + 5] & 0x04 else "truncated: the last page is not marked end of stream"
    return "truncated: no whole Ogg page in its last 64 KiB"


def open_source(path: Path, fmt: str, in_rate: int | None, channels: int | None,
                lenient: bool = False) -> Source:
    """The reader of ``path`` in format ``fmt``; ``lenient``: see :class:`Source`."""
    if not path.is_file():
        raise AudioFileError(f"{path}: no such file")
    if fmt == "wav":
        return WavSource(path, lenient)
    if fmt == "opus":
        return OpusSource(path, lenient)
    if fmt == "raw":
        if not in_rate:
            raise AudioFileError(f"{path}: raw PCM has no header: give its rate with --in-rate "
                                 "(and --channels if not mono)")
        return RawSource(path, in_rate, channels or 1, lenient=lenient)
    return RawSource(path, in_rate or 8000, channels or 1, codec=fmt, lenient=lenient)


# ---------------------------------------------------------------------------- writing


class Sink:
    """Takes PCM16LE at ``rate`` with ``channels``; ``close()`` finishes the file, ``abort()``
    (after a failure) closes it unfinished: the caller deletes it."""

    rate: int
    channels: int
    f: BinaryIO

    def write(self, pcm: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        self.f.close()


class WavSink(Sink):
    def __init__(self, path: Path, rate: int, channels: int) -> None:
        self.rate, self.channels = rate, channels
        self.f = open(path, "wb")  # noqa: SIM115 - closed by close() or abort()
        self.w = wave.open(self.f, "wb")  # noqa: SIM115 - does not own self.f
        self.w.setnchannels(channels)
        self.w.setsampwidth(2)
        self.w.setframerate(rate)

    def write(self, pcm: bytes) -> None:
        self.w.writeframesraw(pcm)

    def close(self) -> None:
        try:
            self.w.close()
        finally:
            self.f.close()

    def abort(self) -> None:
        try:  # wave writes the header when closed (else when collected, into a closed file)
            self.w.close()
        except (OSError, ValueError, wave.Error):
            pass
        finally:
            self.f.close()


class RawSink(Sink):
    def __init__(self, path: Path, rate: int, channels: int, codec: str | None = None) -> None:
        self.rate, self.channels, self.codec = rate, channels, codec
        self.f = open(path, "wb")  # noqa: SIM115 - closed by close()

    def write(self, pcm: bytes) -> None:
        if self.codec == "ulaw":
            pcm = ulaw_encode(pcm)
        elif self.codec == "alaw":
            pcm = alaw_encode(pcm)
        self.f.write(pcm)

    def close(self) -> None:
        self.f.close()


class OpusSink(Sink):
    """Ogg Opus: :class:`audiocore.OpusEncoder` at ``rate`` if libopus takes it (else at 48
    kHz: the caller resamples), ``frame_ms`` packets, pages of about a second, OpusHead input
    rate ``nominal_rate``; the last page's granule is trimmed to the exact input length."""

    def __init__(self, path: Path, nominal_rate: int, channels: int, *, bitrate: int | None = None,
                 frame_ms: float = 20, application: str = "audio") -> None:
        if channels not in (1, 2):
            raise AudioFileError(f"Ogg Opus output takes 1 or 2 channels, not {channels}")
        self.rate = nominal_rate if nominal_rate in OPUS_RATES else 48000
        self.channels = channels
        self.encoder = OpusEncoder(self.rate, channels, application, bitrate=bitrate)  # type: ignore[arg-type]
        self.factor = 48000 // self.rate
        self.pre_skip = self.encoder.lookahead * self.factor
        self.writer = OggOpusWriter(channels, input_rate=nominal_rate, pre_skip=self.pre_skip, max_page_ms=1000)
        self.frame_bytes = int(self.rate * frame_ms / 1000) * 2 * channels
        self.f = open(path, "wb")  # noqa: SIM115 - closed by close() or abort()
        self.f.write(self.writer.headers())
        self.frames = Rechunker(self.frame_bytes)
        self.samples = 0  # input samples per channel, at self.rate
        self.last: bytes | None = None  # the newest packet, written at close with the trimmed page
        self.packets = 0  # packets encoded

    def write(self, pcm: bytes) -> None:
        self.samples += len(pcm) // (2 * self.channels)
        for frame in self.frames.push(pcm):
            self._packet(self.encoder.encode(frame))

    def _packet(self, packet: bytes) -> None:
        if self.last is not None:
            self.f.write(self.writer.write(self.last))
        self.last = packet
        self.packets += 1

    def close(self) -> None:
        # The packets must cover the encoder's lookahead (pre_skip) plus every input sample:
        # pad the last frame, then encode silence until they do; the EOS page's granule is
        # trimmed back to the exact end (RFC 7845 end trimming).
        fb = self.frame_bytes
        frame48 = fb // (2 * self.channels) * self.factor
        need = self.pre_skip + self.samples * self.factor
        for frame in self.frames.flush(pad=True):
            self._packet(self.encoder.encode(frame))
        while self.packets * frame48 < need:
            self._packet(self.encoder.encode(bytes(fb)))
        try:
            if self.last is None:
                self.f.write(self.writer.close())
            else:
                self.f.write(self.writer.close(self.last, end_trim=self.packets * frame48 - need))
        finally:
            self.f.close()


def open_sink(path: Path, fmt: str, rate: int, channels: int, *, bitrate: int | None = None,
              frame_ms: float = 20) -> Sink:
    if fmt == "wav":
        return WavSink(path, rate, channels)
    if fmt == "opus":
        return OpusSink(path, rate, channels, bitrate=bitrate, frame_ms=frame_ms)
    return RawSink(path, rate, channels, codec=None if fmt == "raw" else fmt)


# ---------------------------------------------------------------------------- the pipeline


def convert_file(source: Source, sink: Sink, progress: object | None = None) -> int:
    """Stream ``source`` into ``sink``, resampling when the rates differ (time-aligned:
    exactly ``floor(N * out / in)`` samples come out of ``N``). Returns the samples written;
    the caller closes ``sink``."""
    if source.channels != sink.channels:
        raise AudioFileError(f"{source.channels} channels in, {sink.channels} out: channel mixing is not done")
    resampler = Resampler(source.rate, sink.rate, channels=source.channels) if source.rate != sink.rate else None
    skip = resampler.delay_samples * 2 * source.channels if resampler else 0
    written = 0
    fb = 2 * source.channels

    def put(pcm: bytes) -> None:
        nonlocal skip, written
        if skip:
            cut = min(skip, len(pcm))
            pcm, skip = pcm[cut:], skip - cut
        if pcm:
            sink.write(pcm)
            written += len(pcm) // fb

    for pcm, nbytes in source.blocks():
        put(resampler.process(pcm) if resampler else pcm)
        if progress is not None:
            progress.update(nbytes)  # type: ignore[attr-defined]
    if resampler:
        put(resampler.flush())
    return written


__all__ = [
    "EXTENSIONS", "FORMATS", "OPUS_RATES", "AudioFileError", "OpusSink", "Sink", "Source",
    "convert_file", "format_of", "open_sink", "open_source",
]
