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

from audiocore._ext.errors import AudioCoreError, DecodeError
from audiocore._ext.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from audiocore._ext.ogg import ogg_crc32
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
    """An Ogg Opus file decoded by :class:`audiocore.oggfile.OggOpusFileReader` at ``rate``
    (which the caller may set before :meth:`blocks`), pre-skip, gain and end trimming applied."""

    def __init__(self, path: Path, lenient: bool = False) -> None:
        super().__init__(lenient)
        self.path = path
        self.size = path.stat().st_size
        try:
            self.reader = OggOpusFileReader(path, lenient=lenient)
        except DecodeError as exc:  # no stream to read, or (strict) damage in the first block
            raise AudioFileError(f"{path}: {exc}" + ("" if lenient else " (--lenient converts what can be read)")) \
                from None
        self.channels = self.reader.channels
        self.nominal_rate = self.reader.input_rate or 48000
        self.rate = 48000
        try:
            with open(path, "rb") as f:
                problem = ogg_end_problem(f, self.size)
            if problem is not None:
                self.damaged(f"{path}: {problem}")
        except BaseException:
            self.reader.close()
            raise

    def blocks(self) -> Iterator[tuple[bytes, int]]:
        self.reader.rate = self.rate
        seen = 0
        try:
            for pcm in self.reader.blocks():
                yield pcm, self.reader.bytes_read - seen
                seen = self.reader.bytes_read
        except DecodeError as exc:  # the reader skips to the next page when lenient
            self.damaged(f"{self.path}: {exc}")
        self.damage += [f"{self.path}: {exc}" for exc in self.reader.errors]

    def close(self) -> None:
        self.reader.close()


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
    """Ogg Opus by :class:`audiocore.oggfile.OggOpusFileWriter` at ``rate`` if libopus takes it
    (else at 48 kHz: the caller resamples), ``frame_ms`` packets, pages of about a second,
    OpusHead input rate ``nominal_rate``; the last page trimmed to the exact input length."""

    def __init__(self, path: Path, nominal_rate: int, channels: int, *, bitrate: int | None = None,
                 frame_ms: float = 20, application: str = "audio") -> None:
        if channels not in (1, 2):
            raise AudioFileError(f"Ogg Opus output takes 1 or 2 channels, not {channels}")
        self.rate = nominal_rate if nominal_rate in OPUS_RATES else 48000
        self.channels = channels
        self.f = open(path, "wb")  # noqa: SIM115 - closed by close() or abort()
        try:
            self.writer = OggOpusFileWriter(self.f, self.rate, channels, bitrate=bitrate, frame_ms=frame_ms,
                                            application=application, input_rate=nominal_rate)
        except BaseException:
            self.f.close()
            raise

    def write(self, pcm: bytes) -> None:
        self.writer.write(pcm)

    def close(self) -> None:
        try:
            self.writer.close()
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
