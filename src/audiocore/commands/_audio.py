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

from audiocore._ext.errors import AudioCoreError, DecodeError
from audiocore._ext.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from audiocore._ext.opus import OPUS_RATES
from audiocore._ext.resample import Resampler
from audiocore.oggfile import OggOpusFileReader, OggOpusFileWriter

EXTENSIONS = {
    ".wav": "wav", ".raw": "raw", ".pcm": "raw", ".s16": "raw", ".opus": "opus", ".ogg": "opus",
    ".oga": "opus", ".ul": "ulaw", ".ulaw": "ulaw", ".mulaw": "ulaw", ".mu": "ulaw", ".al": "alaw",
    ".alaw": "alaw",
}
FORMATS = ("wav", "raw", "opus", "ulaw", "alaw")
_BLOCK = 1 << 16


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
    ``size``: bytes of input, for progress (each block comes with the input bytes read)."""

    rate: int
    channels: int
    nominal_rate: int
    size: int

    def blocks(self) -> Iterator[tuple[bytes, int]]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class WavSource(Source):
    def __init__(self, path: Path) -> None:
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
        step = _BLOCK // (2 * self.channels)
        while data := self.w.readframes(step):
            yield data, len(data)

    def close(self) -> None:
        self.w.close()


class RawSource(Source):
    """Raw PCM16LE, or G.711 (``codec`` "ulaw"/"alaw") expanded to PCM16LE."""

    def __init__(self, path: Path, rate: int, channels: int, codec: str | None = None) -> None:
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
            raise AudioFileError(f"{self.path}: {len(held)} bytes at the end do not make a whole frame "
                                 f"of {unit} bytes (wrong --channels?)")

    def close(self) -> None:
        self.f.close()


class OpusSource(Source):
    """An Ogg Opus file decoded by :class:`audiocore.oggfile.OggOpusFileReader` at ``rate``
    (which the caller may set before :meth:`blocks`), pre-skip, gain and end trimming applied."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = path.stat().st_size
        try:
            self.reader = OggOpusFileReader(path)
        except DecodeError as exc:
            raise AudioFileError(f"{path}: {exc}") from None
        self.channels = self.reader.channels
        self.nominal_rate = self.reader.input_rate or 48000
        self.rate = 48000

    def blocks(self) -> Iterator[tuple[bytes, int]]:
        self.reader.rate = self.rate
        seen = 0
        try:
            for pcm in self.reader.blocks():
                yield pcm, self.reader.bytes_read - seen
                seen = self.reader.bytes_read
        except DecodeError as exc:
            raise AudioFileError(f"{self.path}: {exc}") from None

    def close(self) -> None:
        self.reader.close()


def open_source(path: Path, fmt: str, in_rate: int | None, channels: int | None) -> Source:
    if not path.is_file():
        raise AudioFileError(f"{path}: no such file")
    if fmt == "wav":
        return WavSource(path)
    if fmt == "opus":
        return OpusSource(path)
    if fmt == "raw":
        if not in_rate:
            raise AudioFileError(f"{path}: raw PCM has no header: give its rate with --in-rate "
                                 "(and --channels if not mono)")
        return RawSource(path, in_rate, channels or 1)
    return RawSource(path, in_rate or 8000, channels or 1, codec=fmt)


# ---------------------------------------------------------------------------- writing


class Sink:
    """Takes PCM16LE at ``rate`` with ``channels``; ``close()`` finishes the file."""

    rate: int
    channels: int

    def write(self, pcm: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class WavSink(Sink):
    def __init__(self, path: Path, rate: int, channels: int) -> None:
        self.rate, self.channels = rate, channels
        self.w = wave.open(str(path), "wb")
        self.w.setnchannels(channels)
        self.w.setsampwidth(2)
        self.w.setframerate(rate)

    def write(self, pcm: bytes) -> None:
        self.w.writeframesraw(pcm)

    def close(self) -> None:
        self.w.close()


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
    """Ogg Opus by :class:`audiocore.oggfile.OggOpusFileWriter` at ``rate`` if libopus takes it
    (else at 48 kHz: the caller resamples), ``frame_ms`` packets, pages of about a second,
    OpusHead input rate ``nominal_rate``; the last page trimmed to the exact input length."""

    def __init__(self, path: Path, nominal_rate: int, channels: int, *, bitrate: int | None = None,
                 frame_ms: float = 20, application: str = "audio") -> None:
        if channels not in (1, 2):
            raise AudioFileError(f"Ogg Opus output takes 1 or 2 channels, not {channels}")
        self.rate = nominal_rate if nominal_rate in OPUS_RATES else 48000
        self.channels = channels
        self.writer = OggOpusFileWriter(path, self.rate, channels, bitrate=bitrate, frame_ms=frame_ms,
                                        application=application, input_rate=nominal_rate)

    def write(self, pcm: bytes) -> None:
        self.writer.write(pcm)

    def close(self) -> None:
        self.writer.close()


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
