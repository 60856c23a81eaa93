"""Ogg kernel: Ogg Opus paging (RFC 3533, RFC 7845): a page writer and a push reader.

No libopus here: packet durations come from the TOC parser in ``csrc/ac_opus_packet.h``.
Every byte from outside is parsed in C with bounds checks. Per page the work is small (tens of
nanoseconds), so nothing releases the GIL.
"""

cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from libc.string cimport memcpy, memmove, memset, memcmp
from libc.stdint cimport int64_t, uint32_t, uint64_t

from audiocore._ext._buffer cimport InBuf, in_acquire, in_release
from audiocore._ext._opus_packet cimport packet_samples48

import os
import struct

from audiocore._ext.errors import DecodeError

ac_ogg_init()

cdef enum:
    READ_CHUNK = 16384                # the reader's buffer starts at this size
    DEFAULT_MAX_PACKET = 1 << 20


def ogg_crc32(data, unsigned int crc=0) -> int:
    """Ogg's CRC-32 of a bytes-like object (polynomial 0x04c11db7, MSB-first, initial value 0,
    no final xor; not zlib's). Pass a previous result as ``crc`` to continue it. A page's CRC is
    this over the page with its CRC field (bytes 22 to 25) zeroed."""
    cdef InBuf b
    in_acquire(data, &b)
    try:
        return ac_ogg_crc_update(crc, b.ptr, <size_t>b.len)
    finally:
        in_release(&b)


# ==================================================================== packets and headers

@cython.final
cdef class OggPacket:
    """One packet read from an Ogg stream: ``data`` (bytes), ``granule`` (the granule
    position of its page if it is the last packet completed on that page, else -1) and
    ``serial`` (its logical stream)."""

    def __repr__(self) -> str:
        return f"OggPacket({len(self.data)} bytes, granule={self.granule}, serial={self.serial:#010x})"


cdef OggPacket _packet(bytes data, unsigned int serial):
    cdef OggPacket p = OggPacket.__new__(OggPacket)
    p.data = data
    p.granule = -1
    p.serial = serial
    return p


@cython.final
cdef class OpusHead:
    """The identification header of an Ogg Opus stream (RFC 7845 section 5.1).

    ``pre_skip`` is in 48 kHz samples; ``input_rate`` in Hz is informational (0: unknown);
    ``output_gain`` is in Q7.8 dB (divide by 256); ``channel_mapping`` is empty for mapping
    family 0, else one stream index per output channel."""

    cdef readonly int version
    cdef readonly int channels
    cdef readonly int pre_skip
    cdef readonly unsigned int input_rate
    cdef readonly int output_gain
    cdef readonly int mapping_family
    cdef readonly int stream_count
    cdef readonly int coupled_count
    cdef readonly bytes channel_mapping

    def __repr__(self) -> str:
        return (f"OpusHead(channels={self.channels}, pre_skip={self.pre_skip}, "
                f"input_rate={self.input_rate}, output_gain={self.output_gain}, "
                f"mapping_family={self.mapping_family})")


@cython.final
cdef class OpusTags:
    """The comment header of an Ogg Opus stream (RFC 7845 section 5.2): ``vendor`` and the
    ``comments`` as ``"NAME=value"`` strings, in stream order."""

    cdef readonly str vendor
    cdef readonly tuple comments

    def __repr__(self) -> str:
        return f"OpusTags(vendor={self.vendor!r}, comments={self.comments!r})"


cdef inline int _u16(const unsigned char* p) noexcept:
    return p[0] | (p[1] << 8)


cdef OpusHead _parse_head(const unsigned char* d, Py_ssize_t n, long long offset):
    """Parse an OpusHead packet; DecodeError at ``offset`` (its page) when malformed."""
    cdef OpusHead h = OpusHead.__new__(OpusHead)
    cdef int i, m
    if n < 19:
        raise DecodeError(f"OpusHead of {n} bytes is shorter than 19 (page at offset {offset})",
                          offset)
    h.version = d[8]
    if h.version & 0xF0:
        raise DecodeError(f"OpusHead version {h.version} is not supported (page at offset "
                          f"{offset})", offset)
    h.channels = d[9]
    h.pre_skip = _u16(d + 10)
    h.input_rate = ac_load_le32(d + 12)
    h.output_gain = <short>_u16(d + 16)
    h.mapping_family = d[18]
    if h.channels == 0:
        raise DecodeError(f"OpusHead with 0 channels (page at offset {offset})", offset)
    if h.mapping_family == 0:
        if h.channels > 2:
            raise DecodeError(f"OpusHead mapping family 0 with {h.channels} channels (at most "
                              f"2; page at offset {offset})", offset)
        h.stream_count = 1
        h.coupled_count = h.channels - 1
        h.channel_mapping = b""
        return h
    if n < 21 + h.channels:
        raise DecodeError(f"OpusHead of {n} bytes lacks its channel mapping table "
                          f"({21 + h.channels} bytes needed; page at offset {offset})", offset)
    h.stream_count = d[19]
    h.coupled_count = d[20]
    if (h.stream_count == 0 or h.coupled_count > h.stream_count
            or h.stream_count + h.coupled_count > 255):
        raise DecodeError(f"OpusHead with {h.stream_count} streams of which {h.coupled_count} "
                          f"coupled (page at offset {offset})", offset)
    if h.mapping_family == 1 and h.channels > 8:
        raise DecodeError(f"OpusHead mapping family 1 with {h.channels} channels (at most 8; "
                          f"page at offset {offset})", offset)
    for i in range(h.channels):
        m = d[21 + i]
        if m != 255 and m >= h.stream_count + h.coupled_count:
            raise DecodeError(f"OpusHead maps channel {i} to stream {m} of "
                              f"{h.stream_count + h.coupled_count} (page at offset {offset})",
                              offset)
    h.channel_mapping = PyBytes_FromStringAndSize(<const char*>d + 21, h.channels)
    return h


cdef str _utf8(const unsigned char* p, Py_ssize_t n, str what, long long offset):
    try:
        return PyBytes_FromStringAndSize(<const char*>p, n).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"OpusTags {what} is not valid UTF-8 ({exc.reason}; page at offset "
                          f"{offset})", offset) from None


cdef OpusTags _parse_tags(const unsigned char* d, Py_ssize_t n, long long offset):
    """Parse an OpusTags packet; DecodeError at ``offset`` (its page) when malformed."""
    cdef OpusTags t = OpusTags.__new__(OpusTags)
    cdef Py_ssize_t pos, length
    cdef uint32_t count, i
    if n < 16:
        raise DecodeError(f"OpusTags of {n} bytes is shorter than 16 (page at offset {offset})",
                          offset)
    length = ac_load_le32(d + 8)
    if length > n - 16:
        raise DecodeError(f"OpusTags vendor string of {length} bytes runs past the end of the "
                          f"{n}-byte packet (page at offset {offset})", offset)
    t.vendor = _utf8(d + 12, length, "vendor string", offset)
    pos = 12 + length
    count = ac_load_le32(d + pos)
    pos += 4
    if count > <uint64_t>(n - pos) // 4:
        raise DecodeError(f"OpusTags claims {count} comments, more than its {n} bytes hold "
                          f"(page at offset {offset})", offset)
    comments = []
    for i in range(count):
        if n - pos < 4:
            raise DecodeError(f"OpusTags comment {i} runs past the end of the packet (page at "
                              f"offset {offset})", offset)
        length = ac_load_le32(d + pos)
        pos += 4
        if length > n - pos:
            raise DecodeError(f"OpusTags comment {i} of {length} bytes runs past the end of "
                              f"the packet (page at offset {offset})", offset)
        comments.append(_utf8(d + pos, length, f"comment {i}", offset))
        pos += length
    t.comments = tuple(comments)
    return t


# ==================================================================== writer

cdef bytes _head_packet(int channels, int pre_skip, uint32_t input_rate, int output_gain):
    cdef unsigned char h[19]
    memcpy(h, b"OpusHead", 8)
    h[8] = 1
    h[9] = <unsigned char>channels
    h[10] = pre_skip & 0xff
    h[11] = (pre_skip >> 8) & 0xff
    ac_store_le32(h + 12, input_rate)
    h[16] = output_gain & 0xff
    h[17] = (output_gain >> 8) & 0xff
    h[18] = 0
    return PyBytes_FromStringAndSize(<char*>h, 19)


cdef bytes _tags_packet(str vendor, comments):
    parts = [b"OpusTags"]
    v = vendor.encode("utf-8")
    parts += [struct.pack("<I", len(v)), v]
    encoded = []
    for c in comments:
        if isinstance(c, str):
            name, sep, value = c.partition("=")
        else:
            name, value = c
            sep = "="
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"a comment is a 'NAME=value' str or a (name, value) pair of str, "
                            f"not {c!r}")
        if not sep or not name or any(not 0x20 <= ord(ch) <= 0x7D or ch == "=" for ch in name):
            raise ValueError(f"comment {c!r}: the name must be non-empty printable ASCII "
                             f"without '=' followed by '='")
        encoded.append(f"{name}={value}".encode("utf-8"))
    parts.append(struct.pack("<I", len(encoded)))
    for e in encoded:
        parts += [struct.pack("<I", len(e)), e]
    return b"".join(parts)


cdef Py_ssize_t _lay_pages(unsigned char* out, const unsigned char* body,
                           const Py_ssize_t* lens, const int64_t* grans, Py_ssize_t npk,
                           Py_ssize_t done, bint flush, unsigned char first_flags, bint eos,
                           uint32_t serial, uint32_t* seq, Py_ssize_t* k_out,
                           Py_ssize_t* done_out, int64_t* granule_out) noexcept nogil:
    """Lay packets out as Ogg pages; returns the bytes the pages take, and writes them to
    ``out`` unless it is NULL (so one call sizes the output and a second fills it).

    ``body`` holds the packets back to back from the first one's byte ``done`` on (its first
    ``done`` bytes are already on a page); ``lens``/``grans`` are their lengths and end
    granules. With ``flush`` every packet is paged, the last page ending on the last packet
    (and carrying EOS if ``eos``); otherwise only full pages (255 lacing values) are made.
    On return ``seq`` is the next page sequence number, ``k_out`` the number of packets
    completed, ``done_out`` the bytes of the next one already paged, and ``granule_out`` the
    granule of the last packet completed (unchanged if none)."""
    cdef Py_ssize_t k = 0, off = done, total = 0, pos = 0, start, rem, full, slots, values = 0
    cdef Py_ssize_t page_len, i
    cdef int nseg
    cdef int64_t granule
    cdef unsigned char flags
    cdef unsigned char* page
    if not flush:
        for i in range(npk):
            values += (lens[i] - (done if i == 0 else 0)) // 255 + 1
    while k < npk:
        if not flush and values <= 255:
            break
        page = out + total if out != NULL else NULL
        flags = first_flags if total == 0 else 0
        if off > 0:
            flags |= AC_OGG_CONTINUED
        nseg = 0
        granule = -1
        start = pos
        while nseg < 255 and k < npk:
            rem = lens[k] - off
            full = rem // 255
            slots = 255 - nseg
            if full < slots:
                if page != NULL:
                    memset(page + AC_OGG_HEADER + nseg, 255, <size_t>full)
                    page[AC_OGG_HEADER + nseg + full] = <unsigned char>(rem % 255)
                nseg += <int>full + 1
                pos += rem
                granule = grans[k]
                granule_out[0] = granule
                k += 1
                off = 0
            else:
                if page != NULL:
                    memset(page + AC_OGG_HEADER + nseg, 255, <size_t>slots)
                nseg += <int>slots
                pos += slots * 255
                off += slots * 255
        values -= nseg
        if eos and flush and k == npk:
            flags |= AC_OGG_EOS
        page_len = AC_OGG_HEADER + nseg + (pos - start)
        if page != NULL:
            ac_ogg_put_header(page, flags, granule, serial, seq[0], <unsigned char>nseg)
            memcpy(page + AC_OGG_HEADER + nseg, body + start, <size_t>(pos - start))
            ac_ogg_seal(page, <size_t>page_len)
        seq[0] += 1
        total += page_len
    k_out[0] = k
    done_out[0] = off
    return total


cdef bytes _pages(const unsigned char* body, const Py_ssize_t* lens, const int64_t* grans,
                  Py_ssize_t npk, Py_ssize_t done, bint flush, unsigned char first_flags,
                  bint eos, uint32_t serial, uint32_t* seq, Py_ssize_t* k_out,
                  Py_ssize_t* done_out, int64_t* granule_out):
    """The pages of _lay_pages as bytes; seq and the outputs are updated only on success."""
    cdef uint32_t s = seq[0]
    cdef int64_t g = granule_out[0]
    cdef Py_ssize_t size = _lay_pages(NULL, body, lens, grans, npk, done, flush, first_flags,
                                      eos, serial, &s, k_out, done_out, &g)
    out = PyBytes_FromStringAndSize(NULL, size)
    s = seq[0]
    _lay_pages(<unsigned char*>PyBytes_AS_STRING(out), body, lens, grans, npk, done, flush,
               first_flags, eos, serial, &s, k_out, done_out, granule_out)
    seq[0] = s
    return out


cdef int _check_trim(int64_t end_trim, int64_t duration) except -1:
    if end_trim > duration:
        raise ValueError(f"end_trim {end_trim} exceeds the last packet's "
                         f"{duration} samples at 48 kHz")
    return 0


@cython.final
cdef class OggOpusWriter:
    """Ogg Opus pages (RFC 7845) from Opus packets, with mapping family 0 (1 or 2 channels).

    :meth:`headers` gives the OpusHead page (BOS, granule 0) and the OpusTags page(s);
    :meth:`write` takes one Opus packet and returns the page bytes now complete: by default
    one page per packet (``max_page_ms=None``, for latency), or with ``max_page_ms`` pages
    holding at least that much audio (for files; :meth:`flush` ends a page early);
    :meth:`close` returns the last page, with EOS (and can take the last packet and an
    end trim for exact lengths).

    The granule position counts 48 kHz samples from the TOC of every packet, from 0: a
    page's granule is the end of the last packet completed on it, and -1 when none is.
    ``pre_skip`` (48 kHz samples) is the decoder delay playback drops: at least the encoder's
    lookahead. ``serial=None`` picks a random serial. ``input_rate`` (Hz) is informational.
    ``comments`` are ``"NAME=value"`` strings or ``(name, value)`` pairs.

    Every packet is checked to be a well-formed Opus packet first: a bad one raises
    :class:`DecodeError` and nothing is emitted or changed. Use from one thread at a time.
    """

    def __cinit__(self, int channels=1, unsigned int input_rate=48000, int pre_skip=3840,
                  serial=None, str vendor="audiocore", comments=(), max_page_ms=None,
                  int output_gain=0):
        if channels != 1 and channels != 2:
            raise ValueError(f"channels must be 1 or 2 (mapping family 0), not {channels}")
        if not 0 <= pre_skip <= 65535:
            raise ValueError(f"pre_skip must be 0 to 65535 samples at 48 kHz, not {pre_skip}")
        if not -32768 <= output_gain <= 32767:
            raise ValueError(f"output_gain must be -32768 to 32767 (Q7.8 dB), not {output_gain}")
        if serial is None:
            serial = int.from_bytes(os.urandom(4), "little")
        elif not 0 <= serial <= 0xFFFFFFFF:
            raise ValueError(f"serial must be 0 to 2**32 - 1, not {serial}")
        if max_page_ms is None:
            self._max_page_samples = 0
        elif max_page_ms > 0:
            self._max_page_samples = max(1, <int64_t>(max_page_ms * 48))
        else:
            raise ValueError(f"max_page_ms must be positive or None, not {max_page_ms}")
        self._serial = serial
        self._channels = channels
        self._pre_skip = pre_skip
        self._head_packet = _head_packet(channels, pre_skip, input_rate, output_gain)
        self._tags_packet = _tags_packet(vendor, comments)

    def __dealloc__(self):
        PyMem_Free(self._body)
        PyMem_Free(self._lens)
        PyMem_Free(self._grans)

    def headers(self) -> bytes:
        """The OpusHead page (BOS, granule 0) and the OpusTags page(s), once per stream."""
        cdef Py_ssize_t length, k, done
        cdef int64_t granule = 0
        if self._stage != 0:
            raise RuntimeError("headers() was already called for this stream")
        length = len(self._head_packet)
        head = _pages(<const unsigned char*>PyBytes_AS_STRING(self._head_packet), &length,
                      &granule, 1, 0, True, AC_OGG_BOS, False, self._serial, &self._seq,
                      &k, &done, &granule)
        length = len(self._tags_packet)
        tags = _pages(<const unsigned char*>PyBytes_AS_STRING(self._tags_packet), &length,
                      &granule, 1, 0, True, 0, False, self._serial, &self._seq,
                      &k, &done, &granule)
        self._stage = 1
        return head + tags

    def write(self, packet) -> bytes:
        """Add one Opus packet; returns the pages it completes (maybe none when batching)."""
        if self._stage != 1:
            raise RuntimeError("call headers() before write()" if self._stage == 0
                               else "the stream is closed")
        return self._add(packet, False, 0)

    cdef bytes _add(self, packet, bint last, int64_t end_trim):
        """Page one packet; ``last``: onto the EOS page, its granule ``end_trim`` lower.
        Raises before changing anything on a bad packet or trim."""
        cdef InBuf b
        cdef Py_ssize_t length, k, done
        cdef int64_t duration, granule
        in_acquire(packet, &b)
        try:
            duration = packet_samples48(b.ptr, b.len)
            _check_trim(end_trim, duration)
            granule = self._granule + duration - end_trim
            if self._max_page_samples == 0:
                length = b.len
                out = _pages(b.ptr, &length, &granule, 1, 0, True, 0, last, self._serial,
                             &self._seq, &k, &done, &self._paged_granule)
            else:
                self._enqueue(b.ptr, b.len, granule)
                out = self._emit(last or granule - self._paged_granule >= self._max_page_samples,
                                 last)
            self._granule = granule + end_trim
            return out
        finally:
            in_release(&b)

    def flush(self) -> bytes:
        """Page every packet written so far now (batching only; otherwise returns b"")."""
        if self._stage != 1:
            raise RuntimeError("call headers() before flush()" if self._stage == 0
                               else "the stream is closed")
        return self._emit(True, False)

    def close(self, packet=None, *, int end_trim=0) -> bytes:
        """The last page(s), the final one with EOS; the writer takes nothing after this.

        ``packet``: the stream's last Opus packet, to be put on the EOS page (else the
        packets waiting when batching go there, or, with none, an empty EOS page with
        granule -1 is written: no packet completes on it). ``end_trim``: 48 kHz samples to
        drop from the end of the decoded audio (RFC 7845 section 4.4): the EOS page's granule
        is that much lower than the packets' durations add up to. It needs a packet on the
        EOS page and may not exceed the last packet's duration. A bad packet or trim raises
        and leaves the writer open and unchanged."""
        cdef int64_t duration
        if self._stage != 1:
            raise RuntimeError("call headers() before close()" if self._stage == 0
                               else "the stream is already closed")
        if end_trim < 0:
            raise ValueError(f"end_trim must be 0 or more samples at 48 kHz, not {end_trim}")
        if packet is not None:
            out = self._add(packet, True, end_trim)
        elif self._npk:
            if end_trim:
                duration = self._grans[self._npk - 1] - (
                    self._grans[self._npk - 2] if self._npk > 1 else self._paged_granule)
                _check_trim(end_trim, duration)
                self._grans[self._npk - 1] -= end_trim
            out = self._emit(True, True)
        else:
            if end_trim:
                raise ValueError("end_trim needs a packet on the EOS page: pass the stream's "
                                 "last packet to close()")
            out = PyBytes_FromStringAndSize(NULL, AC_OGG_HEADER)
            ac_ogg_put_header(<unsigned char*>PyBytes_AS_STRING(out), AC_OGG_EOS, -1,
                              self._serial, self._seq, 0)
            ac_ogg_seal(<unsigned char*>PyBytes_AS_STRING(out), AC_OGG_HEADER)
            self._seq += 1
        self._stage = 2
        return out

    cdef int _enqueue(self, const unsigned char* p, Py_ssize_t n, int64_t granule) except -1:
        cdef Py_ssize_t cap
        cdef void* mem
        if self._body_len + n > self._body_cap:
            cap = max(self._body_len + n, 2 * self._body_cap, 4096)
            mem = PyMem_Realloc(self._body, <size_t>cap)
            if mem == NULL:
                raise MemoryError()
            self._body = <unsigned char*>mem
            self._body_cap = cap
        if self._npk == self._pk_cap:
            cap = max(16, 2 * self._pk_cap)
            mem = PyMem_Realloc(self._lens, <size_t>cap * sizeof(Py_ssize_t))
            if mem == NULL:
                raise MemoryError()
            self._lens = <Py_ssize_t*>mem
            mem = PyMem_Realloc(self._grans, <size_t>cap * sizeof(int64_t))
            if mem == NULL:
                raise MemoryError()
            self._grans = <int64_t*>mem
            self._pk_cap = cap
        memcpy(self._body + self._body_len, p, <size_t>n)
        self._body_len += n
        self._lens[self._npk] = n
        self._grans[self._npk] = granule
        self._npk += 1
        return 0

    cdef bytes _emit(self, bint flush, bint eos):
        """Page the waiting packets (all of them with ``flush``, else full pages only) and
        drop what was paged from the queue."""
        cdef Py_ssize_t k = 0, done = 0, used, i
        if self._npk == 0:
            return b""
        out = _pages(self._body, self._lens, self._grans, self._npk, self._done, flush, 0, eos,
                     self._serial, &self._seq, &k, &done, &self._paged_granule)
        used = 0
        for i in range(k):
            used += self._lens[i] - (self._done if i == 0 else 0)
        if k < self._npk:
            used += done - (self._done if k == 0 else 0)
        memmove(self._body, self._body + used, <size_t>(self._body_len - used))
        self._body_len -= used
        memmove(self._lens, self._lens + k, <size_t>(self._npk - k) * sizeof(Py_ssize_t))
        memmove(self._grans, self._grans + k, <size_t>(self._npk - k) * sizeof(int64_t))
        self._npk -= k
        self._done = done
        return out

    @property
    def serial(self) -> int:
        """The stream's serial number."""
        return self._serial

    @property
    def granule(self) -> int:
        """48 kHz samples written so far (the granule at the end of the last packet)."""
        return self._granule

    @property
    def channels(self) -> int:
        return self._channels

    @property
    def pre_skip(self) -> int:
        """Samples at 48 kHz a player drops at the start."""
        return self._pre_skip

    def __repr__(self) -> str:
        return (f"OggOpusWriter(channels={self._channels}, serial={self._serial:#010x}) at "
                f"granule {self._granule}")

    def __reduce__(self):
        raise TypeError("OggOpusWriter cannot be pickled")


# ==================================================================== reader

@cython.final
cdef class OggOpusReader:
    """A push reader of Ogg Opus: feed it bytes as they arrive, in pieces of any size; it
    returns the audio packets completed so far. No threads, no I/O.

    Pages are checked (capture pattern, version, flags, CRC) and packets reassembled across
    pages. The first packet of an Opus stream (BOS page) is parsed into :attr:`head`, the
    second into :attr:`tags`; the rest are returned by :meth:`feed` as :class:`OggPacket`.
    Chained streams (a new BOS, with or without EOS before it) are followed: :attr:`head`,
    :attr:`tags` and :attr:`serial` change with the new stream. Pages of other logical
    streams (non-Opus streams multiplexed in, or pages before any OpusHead) are skipped and
    counted in :attr:`skipped_pages`.

    Memory is bounded: at most one page (65,307 bytes) is buffered, plus one packet being
    reassembled across pages, at most ``max_packet_bytes`` (default 1 MiB; settable).

    Errors: bad data (not a page where one should start, a bad CRC, reserved bits, a packet
    over ``max_packet_bytes``, lost pages, a malformed OpusHead/OpusTags) raise
    :class:`DecodeError` whose ``.offset`` is the offset in the whole stream fed so far. The
    reader stays usable: it has already consumed the whole input of that call, skipping to the
    next "OggS" capture pattern after bad bytes and dropping the packets they cut. Packets
    completed in that call are not lost: the next :meth:`feed` returns them first
    (``feed(b"")`` collects them).

    Use from one thread at a time.
    """

    def __cinit__(self, Py_ssize_t max_packet_bytes=DEFAULT_MAX_PACKET):
        self._buf = <unsigned char*>PyMem_Malloc(READ_CHUNK)
        if self._buf == NULL:
            raise MemoryError()
        self._cap = READ_CHUNK
        self.max_packet_bytes = max_packet_bytes
        self._held = []

    def __dealloc__(self):
        PyMem_Free(self._buf)
        PyMem_Free(self._pkt)

    @property
    def max_packet_bytes(self) -> int:
        """The longest packet accepted (bytes); a longer one is dropped with a DecodeError."""
        return self._max_packet

    @max_packet_bytes.setter
    def max_packet_bytes(self, Py_ssize_t value) -> None:
        if value < 1:
            raise ValueError(f"max_packet_bytes must be positive, not {value}")
        self._max_packet = value

    @property
    def head(self) -> OpusHead | None:
        """The current stream's OpusHead, or None before one was read."""
        return self._head

    @property
    def tags(self) -> OpusTags | None:
        """The current stream's OpusTags, or None before they were read."""
        return self._tags

    @property
    def serial(self) -> int | None:
        """The serial number of the current Opus stream, or None before one began."""
        return None if self._head is None else self._serial

    @property
    def offset(self) -> int:
        """Bytes fed so far."""
        return self._base + self._have

    @property
    def skipped_pages(self) -> int:
        """Valid pages skipped because they belong to no Opus stream being read."""
        return self._skipped_pages

    def feed(self, data) -> list:
        """Take the next bytes of the stream; returns the audio packets completed (a list of
        :class:`OggPacket`, maybe empty). Raises :class:`DecodeError` for bad data, after
        consuming all of ``data`` (see the class notes)."""
        cdef InBuf b
        cdef Py_ssize_t pos = 0, take
        cdef list out = self._held
        self._held = []
        self._error = None
        self._errors = 0
        in_acquire(data, &b)
        try:
            while True:
                self._scan(out)
                if pos >= b.len:
                    break
                if self._start > 0:
                    memmove(self._buf, self._buf + self._start, <size_t>(self._have - self._start))
                    self._base += self._start
                    self._have -= self._start
                    self._start = 0
                take = min(self._cap - self._have, b.len - pos)
                memcpy(self._buf + self._have, b.ptr + pos, <size_t>take)
                self._have += take
                pos += take
        finally:
            in_release(&b)
        if self._error is not None:
            self._held = out
            message, offset = self._error
            if self._errors > 1:
                message += f" (and {self._errors - 1} more errors in this input)"
            raise DecodeError(message, offset)
        return out

    cdef void _fail(self, str message, long long offset):
        if self._error is None:
            self._error = (message, offset)
        self._errors += 1

    cdef void _lose(self):
        """Pages went missing: the packet in progress can't be completed."""
        self._pending = False
        self._oversize = False
        self._pkt_len = 0
        self._lost = True

    cdef int _scan(self, list out) except -1:
        """Parse every whole page buffered; keep a partial one for later."""
        cdef size_t page_len = 0
        cdef Py_ssize_t at, cap
        cdef int r
        cdef void* mem
        while self._start < self._have:
            if self._hunting:
                at = <Py_ssize_t>ac_ogg_find_capture(self._buf, <size_t>self._have,
                                                     <size_t>self._start)
                self._start = at
                if self._have - at < 4:
                    break
                self._hunting = False
            r = ac_ogg_page_check(self._buf + self._start, <size_t>(self._have - self._start),
                                  &page_len)
            if r == AC_OGG_NEED:
                if <Py_ssize_t>page_len > self._cap:
                    cap = AC_OGG_MAX_PAGE
                    mem = PyMem_Realloc(self._buf, <size_t>cap)
                    if mem == NULL:
                        raise MemoryError()
                    self._buf = <unsigned char*>mem
                    self._cap = cap
                break
            if r != AC_OGG_PAGE:
                at = self._start
                if r == AC_OGG_E_CAPTURE:
                    what = "no Ogg page starts here (capture pattern 'OggS' expected)"
                elif r == AC_OGG_E_VERSION:
                    what = f"Ogg page with unknown structure version {self._buf[at + 4]}"
                elif r == AC_OGG_E_FLAGS:
                    what = f"Ogg page with reserved header-type bits set (0x{self._buf[at + 5]:02x})"
                else:
                    what = "Ogg page CRC mismatch"
                self._fail(f"{what} at offset {self._base + at}", self._base + at)
                self._lose()
                self._hunting = True
                self._start += 1
                continue
            self._page(self._buf + self._start, <Py_ssize_t>page_len, self._base + self._start,
                       out)
            self._start += <Py_ssize_t>page_len
        return 0

    cdef int _page(self, const unsigned char* p, Py_ssize_t page_len, long long offset,
                   list out) except -1:
        cdef unsigned char flags = p[5]
        cdef int64_t granule = <int64_t>ac_load_le64(p + 6)
        cdef uint32_t serial = ac_load_le32(p + 14)
        cdef uint32_t seq = ac_load_le32(p + 18)
        cdef int nseg = p[26], i = 0, v
        cdef const unsigned char* lacing = p + AC_OGG_HEADER
        cdef const unsigned char* body = p + AC_OGG_HEADER + nseg
        cdef Py_ssize_t pos = 0, start, first_len
        cdef OggPacket last = None
        if flags & AC_OGG_BOS:
            return self._begin(p, nseg, flags, serial, seq, offset)
        if not self._in_stream or serial != self._serial:
            self._skipped_pages += 1
            return 0
        if seq != <uint32_t>(self._seq + 1):
            self._fail(f"Ogg page sequence number jumps from {self._seq} to {seq} at offset "
                       f"{offset}: pages were lost", offset)
            self._lose()
        self._seq = seq
        if flags & AC_OGG_CONTINUED:
            if not self._pending:
                if not self._lost:
                    self._fail(f"Ogg page at offset {offset} continues a packet that was never "
                               f"started", offset)
                # Drop the rest of a packet whose start is gone.
                while i < nseg:
                    v = lacing[i]
                    i += 1
                    pos += v
                    if v < 255:
                        break
                else:
                    self._lost = True
                    return self._end_page(flags, offset)
        elif self._pending:
            self._fail(f"Ogg page at offset {offset} starts a new packet while one of "
                       f"{self._pkt_len} bytes is unfinished", offset)
            self._lose()
        self._lost = False
        start = pos
        while i < nseg:
            v = lacing[i]
            i += 1
            pos += v
            if v == 255:
                continue
            # a packet ends here
            if self._pending:
                self._append(body + start, pos - start, offset)
                if self._oversize:
                    self._oversize = False
                    data = None
                else:
                    data = PyBytes_FromStringAndSize(<char*>self._pkt, self._pkt_len)
                self._pending = False
                self._pkt_len = 0
            elif pos - start > self._max_packet:
                self._fail(f"Ogg packet of {pos - start} bytes is over max_packet_bytes "
                           f"({self._max_packet}) at offset {offset}", offset)
                data = None
            else:
                data = PyBytes_FromStringAndSize(<const char*>body + start, pos - start)
            start = pos
            if data is None:
                continue
            if self._stage == 2:
                last = _packet(data, serial)
                out.append(last)
            else:
                self._stage = 2
                if data[:8] != b"OpusTags":
                    self._fail(f"the second packet of the Opus stream is not OpusTags (page at "
                               f"offset {offset}); dropped", offset)
                else:
                    try:
                        self._tags = _parse_tags(data, len(data), offset)
                    except DecodeError as exc:
                        self._fail(exc.message, offset)
        if pos > start:
            # the last packet continues on the next page
            if not self._pending:
                self._pending = True
                self._pkt_len = 0
            self._append(body + start, pos - start, offset)
        if last is not None:
            last.granule = granule
        return self._end_page(flags, offset)

    cdef int _end_page(self, unsigned char flags, long long offset) except -1:
        if flags & AC_OGG_EOS:
            if self._pending or self._lost:
                self._fail(f"the Opus stream ends (EOS page at offset {offset}) inside a "
                           f"packet", offset)
            self._pending = False
            self._oversize = False
            self._lost = False
            self._pkt_len = 0
            self._in_stream = False
        return 0

    cdef int _append(self, const unsigned char* p, Py_ssize_t n, long long offset) except -1:
        """Add to the packet being reassembled, up to max_packet_bytes."""
        cdef Py_ssize_t cap
        cdef void* mem
        if self._oversize:
            return 0
        if self._pkt_len + n > self._max_packet:
            self._fail(f"Ogg packet of more than {self._max_packet} bytes (max_packet_bytes) "
                       f"at offset {offset}", offset)
            self._oversize = True
            self._pkt_len = 0
            return 0
        if self._pkt_len + n > self._pkt_cap:
            cap = min(max(self._pkt_len + n, 2 * self._pkt_cap, 4096), self._max_packet)
            mem = PyMem_Realloc(self._pkt, <size_t>cap)
            if mem == NULL:
                raise MemoryError()
            self._pkt = <unsigned char*>mem
            self._pkt_cap = cap
        memcpy(self._pkt + self._pkt_len, p, <size_t>n)
        self._pkt_len += n
        return 0

    cdef int _begin(self, const unsigned char* p, int nseg, unsigned char flags,
                    uint32_t serial, uint32_t seq, long long offset) except -1:
        """A BOS page: an Opus stream begins if its only packet is an OpusHead."""
        cdef const unsigned char* lacing = p + AC_OGG_HEADER
        cdef const unsigned char* body = p + AC_OGG_HEADER + nseg
        cdef Py_ssize_t n = 0
        cdef int i = 0
        while i < nseg:
            n += lacing[i]
            i += 1
            if lacing[i - 1] < 255:
                break
        if n < 8 or memcmp(body, b"OpusHead", 8) != 0:
            self._skipped_pages += 1  # another codec's stream
            if self._in_stream and serial == self._serial:
                self._in_stream = False
            return 0
        if lacing[i - 1] == 255 or i != nseg or flags & AC_OGG_CONTINUED:
            self._fail(f"the OpusHead page at offset {offset} must hold the OpusHead packet "
                       f"alone", offset)
            return 0
        try:
            head = _parse_head(body, n, offset)
        except DecodeError as exc:
            self._fail(exc.message, offset)
            return 0
        self._head = head
        self._tags = None
        self._serial = serial
        self._seq = seq
        self._stage = 1
        self._in_stream = True
        self._pending = False
        self._oversize = False
        self._lost = False
        self._pkt_len = 0
        return 0

    def __repr__(self) -> str:
        return f"OggOpusReader(serial={self.serial}, offset={self.offset})"

    def __reduce__(self):
        raise TypeError("OggOpusReader cannot be pickled")
