"""Ogg Opus files (RFC 7845) to and from PCM16LE, with the container's timing applied.

:class:`OggOpusFileReader` decodes a file, its bytes or a binary stream at any rate: libopus
decodes straight at 8/12/16/24/48 kHz, other rates are resampled from 48 kHz
(:class:`audiocore.Resampler`, HQ). The decoded audio starts after the pre-skip, ends at the
last page's granule (end trimming: the exact length the writer meant) and has the header's
output gain applied. :class:`OggOpusFileWriter` encodes PCM16LE at any rate into a file that
does the same for every reader (``opusdec``, PyAV/FFmpeg, browsers): pre-skip from the encoder's
lookahead (plus the resampler's delay at other rates), the last page trimmed to the exact
input length. :func:`read_ogg_opus` and :func:`write_ogg_opus` do a whole file at once.

Mapping family 0 only (mono, stereo); chained streams are refused. Memory is bounded by a
block of input, one page and one packet, whatever the file's length. Bad data raises
:class:`~audiocore.DecodeError` naming its offset; ``lenient=True`` records it in
:attr:`OggOpusFileReader.errors` and goes on from the next good page instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from audiocore._ext.errors import DecodeError, OpusError
from audiocore._ext.ogg import OggOpusReader, OggOpusWriter, OggPacket, OpusHead, OpusTags
from audiocore._ext.opus import OPUS_RATES, OpusDecoder, OpusEncoder
from audiocore._ext.rechunk import Rechunker
from audiocore._ext.resample import Resampler

if TYPE_CHECKING:
    from audiocore._ext._typing import PCM16Like

__all__ = ["OggOpusAudio", "OggOpusFileReader", "OggOpusFileWriter", "read_ogg_opus", "write_ogg_opus"]

#: Bytes read from the source per step.
BLOCK_BYTES = 1 << 16
_FRAME_MS = (2.5, 5, 10, 20, 40, 60)

Source = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes]
Destination = str | os.PathLike[str] | IO[bytes]


class OggOpusAudio(NamedTuple):
    """A whole decoded file: ``pcm`` (PCM16LE, interleaved) at ``rate`` Hz, ``channels``."""

    pcm: bytes
    rate: int
    channels: int


def _gain(pcm: bytes, factor: float) -> bytes:
    import numpy as np  # only for files with an output gain: `import audiocore` stays numpy-free

    scaled = np.frombuffer(pcm, "<i2").astype(np.float64) * factor
    return np.clip(np.rint(scaled), -32768, 32767).astype("<i2").tobytes()


class OggOpusFileReader:
    """Decodes one Ogg Opus stream to PCM16LE at ``rate`` (Hz, default 48000).

    ``source``: a path, the file's bytes, or a binary file object read from where it stands
    (not closed here). The headers are read on construction: :attr:`head`, :attr:`tags`,
    :attr:`channels`, :attr:`input_rate` (the rate the audio was made at, 0 if unknown) are
    known at once. Iterate (or :meth:`blocks`) for the PCM, block by block, or :meth:`read`
    it all; one pass only. :meth:`packets` gives the Opus packets instead, undecoded.

    ``lenient``: on bad Ogg data or a malformed packet, record the :class:`DecodeError` in
    :attr:`errors` and go on (the reader resynchronises on the next page) rather than raise.
    ``max_packet_bytes``: longer packets are refused (bounded memory).
    """

    def __init__(
        self,
        source: Source,
        *,
        rate: int = 48000,
        lenient: bool = False,
        max_packet_bytes: int = 1 << 20,
    ) -> None:
        self._rate = rate
        self.lenient = lenient
        self.errors: list[DecodeError] = []
        self._owned: IO[bytes] | None = None
        self._data: memoryview | None = None
        self._file: IO[bytes] | None = None
        if isinstance(source, (bytes, bytearray, memoryview)):
            view = memoryview(source)
            if view.format not in ("B", "b", "c"):  # the kernels' rule: Ogg data is bytes
                raise TypeError(f"wrong dtype: expected the file's bytes, got a buffer of format {view.format!r}")
            self._data = view.cast("B") if view.ndim != 1 else view
        elif isinstance(source, (str, os.PathLike)):
            self._file = self._owned = open(source, "rb")  # noqa: SIM115 - closed by close()
        elif hasattr(source, "read"):
            self._file = source
        else:
            raise TypeError(f"source must be a path, bytes or a binary file, not {type(source).__name__!r}")
        self._pos = 0  # bytes taken from the source
        self._reader = OggOpusReader(max_packet_bytes)
        self._early: list[OggPacket] = []
        self._used = False
        self._resampler: Resampler | None = None
        try:
            while self._reader.head is None:
                chunk = self._read()
                if not chunk:
                    raise DecodeError("no OpusHead: not an Ogg Opus stream", self._pos)
                self._early += self._feed(chunk)
            head = self._reader.head
            if head.mapping_family != 0:
                raise DecodeError(f"channel mapping family {head.mapping_family}: only 0 (mono, stereo) is decoded")
            self.serial = self._reader.serial
            self.rate = rate  # checked
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ facts

    @property
    def rate(self) -> int:
        """The output rate (Hz); it may be changed until reading starts."""
        return self._rate

    @rate.setter
    def rate(self, rate: int) -> None:
        if self._used:
            raise RuntimeError("the output rate is fixed once reading has started")
        if isinstance(rate, bool) or not isinstance(rate, int):
            raise TypeError(f"rate must be an int, not {type(rate).__name__!r}")
        # the decoder runs at the output rate if libopus has it, else at 48 kHz and resamples
        self._resampler = None if rate in OPUS_RATES else Resampler(48000, rate, channels=self.channels)
        self._decode_rate = rate if rate in OPUS_RATES else 48000
        self._rate = rate

    @property
    def head(self) -> OpusHead:
        head = self._reader.head
        assert head is not None
        return head

    @property
    def tags(self) -> OpusTags | None:
        """The OpusTags (None until their page is read, or when malformed)."""
        return self._reader.tags

    @property
    def channels(self) -> int:
        return self.head.channels

    @property
    def input_rate(self) -> int:
        return self.head.input_rate

    @property
    def bytes_read(self) -> int:
        """Bytes taken from the source so far (for progress)."""
        return self._pos

    # ------------------------------------------------------------ reading

    def _read(self) -> bytes:
        if self._data is not None:
            chunk = bytes(self._data[self._pos : self._pos + BLOCK_BYTES])
        else:
            assert self._file is not None
            chunk = self._file.read(BLOCK_BYTES)
        self._pos += len(chunk)
        return chunk

    def _feed(self, chunk: bytes) -> list[OggPacket]:
        try:
            return list(self._reader.feed(chunk))
        except DecodeError as exc:
            if not self.lenient:
                raise
            self.errors.append(exc)
            return list(self._reader.feed(b""))  # the packets completed before the bad data

    def packets(self) -> Iterator[OggPacket]:
        """The stream's audio packets as stored (granule: of the page a packet ends, else -1)."""
        if self._used:
            raise RuntimeError("the stream has been read already")
        self._used = True
        batch, self._early = self._early, []
        while True:
            for packet in batch:
                if packet.serial != self.serial:
                    raise DecodeError("a chained Ogg stream follows: only the first is read", self._pos)
                yield packet
            chunk = self._read()
            if not chunk:
                return
            batch = self._feed(chunk)

    def blocks(self) -> Iterator[bytes]:
        """The PCM16LE, a page of the file at a time (blocks may be empty)."""
        head = self.head
        factor = 48000 // self._decode_rate
        dec = OpusDecoder(self._decode_rate, head.channels)
        fb = 2 * head.channels
        pre_skip = head.pre_skip
        start = (pre_skip + factor // 2) // factor  # the first sample out, at the decoder's rate
        gain = 10 ** (head.output_gain / (20 * 256))
        buf = bytearray()
        done = decoded = 0  # positions in decoded samples, at the decoder's rate
        offset: int | None = None  # a stream starting later than 0 (first granule > its samples), 48 kHz
        out: list[bytes] = []

        def position(granule: int) -> int:
            """Decoded samples up to a page's granule: whole output samples from ``start``, so
            a stream's length is its 48 kHz length at this rate, rounded down."""
            end48 = granule - (offset or 0)
            return start + (end48 - pre_skip) // factor if end48 >= pre_skip else end48 // factor

        def emit(limit: int) -> None:
            nonlocal done
            limit = min(limit, decoded)
            if limit <= done:
                return
            first = max(done, start)
            if limit > first:
                out.append(bytes(buf[(first - done) * fb : (limit - done) * fb]))
            del buf[: (limit - done) * fb]
            done = limit

        def ready() -> bytes:
            pcm = b"".join(out)
            out.clear()
            if pcm and gain != 1.0:
                pcm = _gain(pcm, gain)
            return pcm if self._resampler is None else self._resampler.process(pcm)

        skip = 0 if self._resampler is None else self._resampler.delay_samples * fb
        for packet in self.packets():
            try:
                pcm = dec.decode(packet.data)
            except (DecodeError, OpusError) as exc:  # a packet the RFC 6716 rules or libopus refuse
                error = DecodeError(f"an Opus packet before stream byte {self._pos}: {exc}", None)
                if not self.lenient:
                    raise error from None
                self.errors.append(error)
                continue
            buf += pcm
            decoded += len(pcm) // fb
            if packet.granule >= 0:
                if offset is None:
                    offset = max(0, packet.granule - decoded * factor)
                emit(position(packet.granule))
            if out:  # a page's worth (a granule was reached)
                block = ready()
                if skip:
                    cut = min(skip, len(block))
                    block, skip = block[cut:], skip - cut
                yield block
        # whatever follows the last granule is padding: dropped
        tail = ready()
        if self._resampler is not None:
            tail += self._resampler.flush()
            cut = min(skip, len(tail))
            tail = tail[cut:]
        yield tail

    __iter__ = blocks

    def read(self) -> bytes:
        """All the PCM16LE that is left."""
        return b"".join(self.blocks())

    def close(self) -> None:
        """Close the file if this reader opened it."""
        if self._owned is not None:
            self._owned.close()
            self._owned = None

    def __enter__(self) -> OggOpusFileReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OggOpusFileWriter:
    """Encodes PCM16LE at ``rate`` (Hz, any; ``channels`` 1 or 2) into an Ogg Opus stream.

    ``dest``: a path (the file is created or replaced) or a binary file object (written from
    where it stands, not closed here). The headers are written at once; :meth:`write` takes
    PCM in any amount; :meth:`close` encodes what is held and writes the last page, trimmed to
    the exact input length. ``bitrate`` (bits/s, None: libopus's choice), ``frame_ms`` (the
    packet duration), ``application`` ("audio", "voip", "restricted_lowdelay"), ``comments``
    ("NAME=value" or (name, value)) go to the encoder and the headers; pages hold about
    ``page_ms`` of audio (None: one packet each). ``input_rate``: the original's rate recorded
    in OpusHead (default ``rate``), for audio resampled before it came here.
    """

    def __init__(
        self,
        dest: Destination,
        rate: int,
        channels: int = 1,
        *,
        bitrate: int | None = None,
        frame_ms: float = 20,
        application: str = "audio",
        comments: Iterable[str | tuple[str, str]] = (),
        page_ms: float | None = 1000,
        serial: int | None = None,
        input_rate: int | None = None,
    ) -> None:
        if channels not in (1, 2):
            raise ValueError(f"an Ogg Opus file holds 1 or 2 channels here, not {channels}")
        if frame_ms not in _FRAME_MS:
            raise ValueError(f"frame_ms must be one of {', '.join(map(str, _FRAME_MS))}, not {frame_ms!r}")
        enc_rate = rate if rate in OPUS_RATES else 48000
        self._resampler = None if rate in OPUS_RATES else Resampler(rate, 48000, channels=channels)
        self.rate = rate
        self.channels = channels
        self._encoder = OpusEncoder(enc_rate, channels, application, bitrate=bitrate)  # type: ignore[arg-type]
        self._factor = 48000 // enc_rate
        delay = self._resampler.delay_samples if self._resampler else 0  # 48 kHz samples
        self.pre_skip = self._encoder.lookahead * self._factor + delay
        self._writer = OggOpusWriter(channels, input_rate=input_rate or rate, pre_skip=self.pre_skip, serial=serial,
                                     comments=comments, max_page_ms=page_ms)
        self._frame_bytes = int(enc_rate * frame_ms / 1000) * 2 * channels
        self._frames = Rechunker(self._frame_bytes)
        self._samples = 0  # input samples per channel, at `rate`
        self._last: bytes | None = None  # the newest packet: it goes on the EOS page
        self._packets = 0
        self._owned: IO[bytes] | None = None
        if isinstance(dest, (str, os.PathLike)):
            self._file: IO[bytes] = open(dest, "wb")  # noqa: SIM115 - closed by close()
            self._owned = self._file
        elif hasattr(dest, "write"):
            self._file = dest
        else:
            raise TypeError(f"dest must be a path or a binary file, not {type(dest).__name__!r}")
        self.closed = False
        self._file.write(self._writer.headers())

    @property
    def serial(self) -> int:
        return self._writer.serial

    def write(self, pcm: PCM16Like) -> None:
        """Encode ``pcm``: PCM16LE, interleaved, whole samples (bytes-like or int16, as the
        kernels take it: other dtypes are a TypeError, never read as raw bytes)."""
        if self.closed:
            raise RuntimeError("the writer is closed")
        nbytes = _pcm16_bytes(pcm)
        if nbytes % (2 * self.channels):
            raise ValueError(f"{nbytes} bytes is not a whole number of {self.channels}-channel PCM16 samples")
        # the kernels check the buffer's dtype before they keep anything of it
        frames = self._frames.push(pcm if self._resampler is None else self._resampler.process(pcm))
        self._samples += nbytes // (2 * self.channels)
        for frame in frames:
            self._packet(self._encoder.encode(frame))

    def _packet(self, packet: bytes) -> None:
        if self._last is not None:
            self._file.write(self._writer.write(self._last))
        self._last = packet
        self._packets += 1

    def close(self) -> None:
        """Finish the stream (once): the held audio, silence to cover the encoder's
        lookahead, the EOS page trimmed to the exact length; close the file if opened here."""
        if self.closed:
            return
        self.closed = True
        try:
            if self._resampler is not None:
                for frame in self._frames.push(self._resampler.flush()):
                    self._packet(self._encoder.encode(frame))
            fb = self._frame_bytes
            frame48 = fb // (2 * self.channels) * self._factor
            length48 = self._samples * 48000 // self.rate  # the resampler gives exactly this many
            need = self.pre_skip + length48
            for frame in self._frames.flush(pad=True):
                self._packet(self._encoder.encode(frame))
            while self._packets * frame48 < need:
                self._packet(self._encoder.encode(bytes(fb)))
            if self._last is None:
                self._file.write(self._writer.close())
            else:
                self._file.write(self._writer.close(self._last, end_trim=self._packets * frame48 - need))
        finally:
            if self._owned is not None:
                self._owned.close()
                self._owned = None

    def __enter__(self) -> OggOpusFileWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_PCM16_FORMATS = frozenset({"B", "b", "c", "<h", "=h"} | ({"h"} if sys.byteorder == "little" else set()))


def _pcm16_bytes(pcm: Any) -> int:
    """The size of ``pcm`` if the kernels read it as PCM16LE (bytes-like or a flat int16
    array); otherwise the kernels' own TypeError/ValueError, before anything is kept."""
    try:
        view = memoryview(pcm)
    except TypeError:
        raise TypeError(f"expected int16 PCM (or bytes), got {type(pcm).__name__!r}") from None
    if view.format in _PCM16_FORMATS and view.ndim <= 1 and view.c_contiguous:
        return view.nbytes
    Rechunker(2).push(pcm)  # refuses what it would not read as PCM16, with the rule's message
    return view.nbytes


def read_ogg_opus(source: Source, rate: int = 48000, *, lenient: bool = False) -> OggOpusAudio:
    """A whole Ogg Opus file (path, bytes or binary file) decoded to PCM16LE at ``rate``."""
    with OggOpusFileReader(source, rate=rate, lenient=lenient) as r:
        return OggOpusAudio(r.read(), rate, r.channels)


def write_ogg_opus(dest: Destination, pcm: PCM16Like, rate: int, channels: int = 1, **options: Any) -> None:
    """Encode PCM16LE at ``rate`` into an Ogg Opus file (options of :class:`OggOpusFileWriter`)."""
    with OggOpusFileWriter(dest, rate, channels, **options) as w:
        w.write(pcm)
