"""Opus kernel: the binding to the system libopus (linked through pkg-config at build time).

OpusDecoder and OpusEncoder own one libopus state each (freed with the object). Their C-level
methods (``c_decode``, ``c_conceal``, ``c_encode``; see opus.pxd) are what the Python methods
wrap, so kernels that cimport this one pay no Python call per packet.

libopus works for tens of microseconds per 20 ms packet, so its calls run with the GIL
released; an object is for one thread at a time, and a second thread calling into an object
that is busy gets a RuntimeError instead of corrupting the codec state.
"""

import operator

cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from libc.stdlib cimport malloc, free

from audiocore._ext._buffer cimport InBuf, in_acquire, in_release, pcm_acquire
from audiocore._ext._opus_packet cimport packet_samples48

from audiocore._ext.errors import DecodeError, OpusError

cdef extern from "ac_common.h" nogil:
    enum:
        AC_BIG_ENDIAN

cdef extern from "opus.h" nogil:
    ctypedef int opus_int32
    const char* opus_get_version_string()
    const char* opus_strerror(int error)
    COpusDecoder* opus_decoder_create(opus_int32 Fs, int channels, int* error)
    void opus_decoder_destroy(COpusDecoder* st)
    int opus_decode(COpusDecoder* st, const unsigned char* data, opus_int32 len, short* pcm,
                    int frame_size, int decode_fec)
    int opus_decoder_ctl(COpusDecoder* st, int request, ...)
    COpusEncoder* opus_encoder_create(opus_int32 Fs, int channels, int application, int* error)
    void opus_encoder_destroy(COpusEncoder* st)
    opus_int32 opus_encode(COpusEncoder* st, const short* pcm, int frame_size,
                           unsigned char* data, opus_int32 max_data_bytes)
    int opus_encoder_ctl(COpusEncoder* st, int request, ...)
    enum:
        OPUS_OK
        OPUS_AUTO
        OPUS_BITRATE_MAX
        OPUS_APPLICATION_VOIP
        OPUS_APPLICATION_AUDIO
        OPUS_APPLICATION_RESTRICTED_LOWDELAY
        OPUS_RESET_STATE
        OPUS_SET_BITRATE_REQUEST
        OPUS_GET_BITRATE_REQUEST
        OPUS_SET_COMPLEXITY_REQUEST
        OPUS_GET_COMPLEXITY_REQUEST
        OPUS_SET_INBAND_FEC_REQUEST
        OPUS_GET_INBAND_FEC_REQUEST
        OPUS_SET_PACKET_LOSS_PERC_REQUEST
        OPUS_GET_PACKET_LOSS_PERC_REQUEST
        OPUS_SET_DTX_REQUEST
        OPUS_GET_DTX_REQUEST
        OPUS_GET_LOOKAHEAD_REQUEST

cdef enum:
    MAX_PACKET_MS = 120
    # Largest packet libopus writes: 120 ms as six 20 ms frames of at most 1275 bytes each,
    # plus the code-3 header and five two-byte length fields.
    MAX_PACKET_BYTES = 6 * 1275 + 2 + 10

#: The sample rates libopus decodes and encodes at, Hz.
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
_APPLICATIONS = {
    "voip": OPUS_APPLICATION_VOIP,
    "audio": OPUS_APPLICATION_AUDIO,
    "restricted_lowdelay": OPUS_APPLICATION_RESTRICTED_LOWDELAY,
}


def libopus_version() -> str:
    """The version string of the libopus this build links, e.g. ``"libopus 1.3.1"``."""
    return opus_get_version_string().decode("ascii")


cdef object _opus_error(int code, str context):
    return OpusError(code, opus_strerror(code).decode("utf-8", "replace"), context)


cdef int _check_rate(int rate) except -1:
    if rate not in OPUS_RATES:
        raise ValueError(f"rate must be one of 8000, 12000, 16000, 24000, 48000 Hz, not {rate}")
    return 0


cdef int _check_rate_channels(int rate, int channels) except -1:
    _check_rate(rate)
    if channels != 1 and channels != 2:
        raise ValueError(f"channels must be 1 or 2, not {channels}")
    return 0


cdef int _samples_arg(object value) except -1:
    """A positive count of samples per channel (int or NumPy integer, not bool)."""
    if isinstance(value, bool):
        raise TypeError("frame_size must be an int, not bool")
    try:
        n = operator.index(value)
    except TypeError:
        raise TypeError(f"frame_size must be an int, not {type(value).__name__}") from None
    if not 0 < n <= 1 << 20:
        raise ValueError(f"frame_size must be a positive number of samples per channel, "
                         f"not {n}")
    return n


cdef inline void _to_le(short* pcm, Py_ssize_t count) noexcept nogil:
    """PCM16 is little-endian on the wire: swap libopus's native samples on big-endian hosts."""
    cdef Py_ssize_t i
    cdef unsigned short v
    if AC_BIG_ENDIAN:
        for i in range(count):
            v = <unsigned short>pcm[i]
            pcm[i] = <short>((v >> 8) | (v << 8))


def opus_packet_samples(packet, int rate=48000) -> int:
    """Samples per channel that ``packet`` decodes to at ``rate`` Hz, from its TOC byte.

    The packet's framing is checked against RFC 6716 section 3.4 (rules R1-R7); a malformed
    packet raises :class:`DecodeError` whose ``.offset`` is the byte found wrong.
    """
    cdef InBuf b
    _check_rate(rate)
    in_acquire(packet, &b)
    try:
        return packet_samples48(b.ptr, b.len) * rate // 48000
    finally:
        in_release(&b)


@cython.final
cdef class OpusDecoder:
    """A libopus decoder to PCM16 at ``rate`` Hz (8000, 12000, 16000, 24000 or 48000) with
    ``channels`` (1 or 2) interleaved: decoding at 16 or 24 kHz needs no separate resampler.

    Durations are samples per channel at ``rate``; losses are spans of whole 2.5 ms steps.
    Use an instance from one thread at a time.
    """

    def __cinit__(self, int rate=48000, int channels=1):
        cdef int err = OPUS_OK
        _check_rate_channels(rate, channels)
        self._dec = opus_decoder_create(rate, channels, &err)
        if self._dec == NULL or err != OPUS_OK:
            raise _opus_error(err, "opus_decoder_create")
        self.rate = rate
        self.channels = channels
        self._step = rate // 400

    def __dealloc__(self):
        if self._dec != NULL:
            opus_decoder_destroy(self._dec)

    # ---------------------------------------------------------------- C level

    cdef int c_decode(self, const unsigned char* packet, Py_ssize_t n, short* out,
                      int max_frames, bint fec) except -1:
        cdef int frames, ret
        frames = packet_samples48(packet, n) // (48000 // self.rate)
        if fec:
            self._check_span(max_frames, "lost span")
            frames = max_frames
        elif frames > max_frames:
            raise ValueError(f"packet decodes to {frames} samples per channel, "
                             f"room for {max_frames}")
        self._enter()
        with nogil:
            ret = opus_decode(self._dec, packet, <opus_int32>n, out, frames, fec)
        self._busy = False
        if ret < 0:
            raise _opus_error(ret, "opus_decode")
        return ret

    cdef int c_conceal(self, short* out, int frames) except -1:
        cdef int ret
        self._check_span(frames, "concealed span")
        self._enter()
        with nogil:
            ret = opus_decode(self._dec, NULL, 0, out, frames, 0)
        self._busy = False
        if ret < 0:
            raise _opus_error(ret, "opus_decode (concealment)")
        return ret

    cdef int _enter(self) except -1:
        if self._busy:
            raise RuntimeError("OpusDecoder is in use by another thread")
        self._busy = True
        return 0

    cdef int _check_span(self, int frames, str what) except -1:
        if frames <= 0 or frames % self._step or frames > self.rate * MAX_PACKET_MS // 1000:
            raise ValueError(
                f"{what} must be a positive multiple of 2.5 ms ({self._step} samples at "
                f"{self.rate} Hz) up to 120 ms, not {frames} samples")
        return 0

    # ---------------------------------------------------------------- Python API

    def decode(self, packet, frame_size=None, decode_fec=False) -> bytes:
        """Decode one Opus packet (2.5 to 120 ms; its duration comes from the packet) to
        PCM16LE bytes. A malformed packet raises :class:`DecodeError` and leaves the decoder
        unchanged; libopus's own failures raise :class:`OpusError`.

        ``frame_size`` and ``decode_fec`` are opuslib's: ``frame_size`` (samples per channel)
        is the room for the output, at least the packet's duration (ValueError otherwise),
        and the output is the packet's duration; ``decode_fec=True`` is
        ``decode_fec(packet, frame_size)``; an empty packet with ``frame_size`` is
        ``conceal(frame_size)``. Without ``frame_size`` an empty packet is a DecodeError."""
        cdef InBuf b
        cdef int frames
        if frame_size is not None or decode_fec:
            return _decode_opuslib(self, packet, frame_size, decode_fec)
        in_acquire(packet, &b)
        try:
            frames = packet_samples48(b.ptr, b.len) // (48000 // self.rate)
            out = PyBytes_FromStringAndSize(NULL, frames * self.channels * 2)
            frames = self.c_decode(b.ptr, b.len, <short*>PyBytes_AS_STRING(out), frames, False)
            _to_le(<short*>PyBytes_AS_STRING(out), frames * self.channels)
            return out
        finally:
            in_release(&b)

    def conceal(self, int samples) -> bytes:
        """PCM16LE for ``samples`` lost samples per channel (a multiple of 2.5 ms, at most
        120 ms: call again for longer gaps), made up by libopus's packet-loss concealment.
        Concealment decays towards silence over a long gap."""
        self._check_span(samples, "concealed span")
        out = PyBytes_FromStringAndSize(NULL, samples * self.channels * 2)
        self.c_conceal(<short*>PyBytes_AS_STRING(out), samples)
        _to_le(<short*>PyBytes_AS_STRING(out), samples * self.channels)
        return out

    def decode_fec(self, packet, int samples) -> bytes:
        """Recover the packet lost just before ``packet`` from the in-band FEC data that
        ``packet`` carries: PCM16LE for ``samples`` per channel (the lost duration, a multiple
        of 2.5 ms up to 120 ms). Where ``packet`` has no FEC data this conceals instead. Then
        decode ``packet`` itself with :meth:`decode`."""
        cdef InBuf b
        self._check_span(samples, "lost span")
        in_acquire(packet, &b)
        try:
            out = PyBytes_FromStringAndSize(NULL, samples * self.channels * 2)
            self.c_decode(b.ptr, b.len, <short*>PyBytes_AS_STRING(out), samples, True)
            _to_le(<short*>PyBytes_AS_STRING(out), samples * self.channels)
            return out
        finally:
            in_release(&b)

    def reset(self) -> None:
        """Forget all history, as if newly created (a new stream starts)."""
        if self._busy:
            raise RuntimeError("OpusDecoder is in use by another thread")
        opus_decoder_ctl(self._dec, OPUS_RESET_STATE)

    def __repr__(self) -> str:
        return f"OpusDecoder(rate={self.rate}, channels={self.channels})"

    def __reduce__(self):
        raise TypeError("OpusDecoder cannot be pickled")


cdef bytes _decode_opuslib(OpusDecoder dec, object packet, object frame_size, object decode_fec):
    """OpusDecoder.decode with opuslib's frame_size (the room) and decode_fec."""
    cdef InBuf b
    cdef int frames
    if frame_size is None:
        raise TypeError("decode_fec=True needs frame_size: the lost duration in samples "
                        "per channel")
    room = _samples_arg(frame_size)
    in_acquire(packet, &b)
    try:
        if b.len == 0:  # libopus (and so opuslib) conceals for an empty packet
            return dec.conceal(room)
        if decode_fec:
            return dec.decode_fec(packet, room)
        frames = packet_samples48(b.ptr, b.len) // (48000 // dec.rate)
    finally:
        in_release(&b)
    if room < frames:
        raise ValueError(f"frame_size {room} is less than this packet's duration: "
                         f"{frames} samples per channel at {dec.rate} Hz")
    return dec.decode(packet)


@cython.final
cdef class OpusEncoder:
    """A libopus encoder of PCM16LE at ``rate`` Hz (8000, 12000, 16000, 24000 or 48000) with
    ``channels`` (1 or 2) interleaved.

    ``application`` is ``"voip"`` (speech), ``"audio"`` or ``"restricted_lowdelay"``;
    ``bitrate`` in bits per second (500 to 512000), ``None`` for libopus's automatic choice.
    Use an instance from one thread at a time.
    """

    def __cinit__(self, int rate=48000, int channels=1, str application="voip", bitrate=None):
        cdef int err = OPUS_OK
        _check_rate_channels(rate, channels)
        if application not in _APPLICATIONS:
            raise ValueError("application must be 'voip', 'audio' or 'restricted_lowdelay', "
                             f"not {application!r}")
        self._application = _APPLICATIONS[application]
        self._enc = opus_encoder_create(rate, channels, self._application, &err)
        if self._enc == NULL or err != OPUS_OK:
            raise _opus_error(err, "opus_encoder_create")
        self.rate = rate
        self.channels = channels
        self._step = rate // 400
        if bitrate is not None:
            self.bitrate = bitrate

    def __dealloc__(self):
        if self._enc != NULL:
            opus_encoder_destroy(self._enc)

    cdef Py_ssize_t c_encode(self, const short* pcm, int frames, unsigned char* out,
                             Py_ssize_t max_bytes) except -1:
        cdef opus_int32 ret
        cdef int steps = frames // self._step  # _step = rate / 400: at least 20
        if frames % self._step or steps not in (1, 2, 4, 8, 16, 24, 32, 40, 48):
            raise ValueError(
                f"a frame must last 2.5, 5, 10, 20, 40, 60, 80, 100 or 120 ms; got {frames} "
                f"samples per channel at {self.rate} Hz")
        if self._busy:
            raise RuntimeError("OpusEncoder is in use by another thread")
        self._busy = True
        with nogil:
            ret = opus_encode(self._enc, pcm, frames, out, <opus_int32>max_bytes)
        self._busy = False
        if ret < 0:
            raise _opus_error(ret, "opus_encode")
        return ret

    def encode(self, pcm, frame_size=None) -> bytes:
        """Encode one frame of PCM16LE (2.5, 5, 10, 20, 40, 60, 80, 100 or 120 ms, its
        duration taken from its length) to one Opus packet. ``pcm`` is raw bytes or an int16
        array, 1-D or C-contiguous (frames, channels). ``frame_size`` (opuslib's: samples per
        channel), when given, must be the duration ``pcm`` holds (ValueError otherwise)."""
        cdef InBuf b
        cdef unsigned char buf[MAX_PACKET_BYTES]
        cdef short* native = NULL
        cdef Py_ssize_t n, i
        cdef int width = 2 * self.channels
        pcm_acquire(pcm, &b, self.channels)
        try:
            if b.len % width:
                raise ValueError(f"PCM length {b.len} is not a whole number of "
                                 f"{self.channels}-channel 16-bit samples")
            if frame_size is not None and _samples_arg(frame_size) != b.len // width:
                raise ValueError(
                    f"frame_size {frame_size} does not match the PCM given: {b.len} bytes are "
                    f"{b.len // width} samples per channel ({self.channels} channel"
                    f"{'s' if self.channels > 1 else ''} of 16 bits)")
            if AC_BIG_ENDIAN:
                native = <short*>malloc(<size_t>b.len + 2)
                if native == NULL:
                    raise MemoryError()
                for i in range(b.len // 2):
                    native[i] = <short>(b.ptr[2 * i] | (b.ptr[2 * i + 1] << 8))
                n = self.c_encode(native, <int>(b.len // width), buf, MAX_PACKET_BYTES)
            else:
                n = self.c_encode(<const short*>b.ptr, <int>(b.len // width), buf,
                                  MAX_PACKET_BYTES)
            return PyBytes_FromStringAndSize(<char*>buf, n)
        finally:
            free(native)
            in_release(&b)

    def reset(self) -> None:
        """Forget all history, as if newly created (settings are kept)."""
        if self._busy:
            raise RuntimeError("OpusEncoder is in use by another thread")
        opus_encoder_ctl(self._enc, OPUS_RESET_STATE)

    cdef int _get(self, int request) except? -1:
        cdef opus_int32 value = 0
        cdef int ret = opus_encoder_ctl(self._enc, request, &value)
        if ret != OPUS_OK:
            raise _opus_error(ret, "opus_encoder_ctl")
        return value

    cdef int _set(self, int request, int value) except -1:
        cdef int ret
        if self._busy:
            raise RuntimeError("OpusEncoder is in use by another thread")
        ret = opus_encoder_ctl(self._enc, request, value)
        if ret != OPUS_OK:
            raise _opus_error(ret, "opus_encoder_ctl")
        return 0

    @property
    def application(self) -> str:
        """``"voip"``, ``"audio"`` or ``"restricted_lowdelay"``."""
        for name, value in _APPLICATIONS.items():
            if value == self._application:
                return name

    @property
    def bitrate(self) -> int:
        """Target bitrate in bits per second. Set an int (500 to 512000) or ``None`` for
        libopus's automatic choice; reading gives the bitrate in force."""
        return self._get(OPUS_GET_BITRATE_REQUEST)

    @bitrate.setter
    def bitrate(self, value) -> None:
        if value is None:
            self._set(OPUS_SET_BITRATE_REQUEST, OPUS_AUTO)
            return
        if not isinstance(value, int) or isinstance(value, bool) or not 500 <= value <= 512000:
            raise ValueError(f"bitrate must be an int from 500 to 512000 bits/s or None, "
                             f"not {value!r}")
        self._set(OPUS_SET_BITRATE_REQUEST, value)

    @property
    def complexity(self) -> int:
        """Encoder effort, 0 (cheapest) to 10 (best; libopus's default)."""
        return self._get(OPUS_GET_COMPLEXITY_REQUEST)

    @complexity.setter
    def complexity(self, int value) -> None:
        if not 0 <= value <= 10:
            raise ValueError(f"complexity must be 0 to 10, not {value}")
        self._set(OPUS_SET_COMPLEXITY_REQUEST, value)

    @property
    def fec(self) -> bool:
        """Whether packets carry in-band FEC for the previous packet (SILK and hybrid modes;
        takes effect with a ``packet_loss_perc`` above 0)."""
        return bool(self._get(OPUS_GET_INBAND_FEC_REQUEST))

    @fec.setter
    def fec(self, bint value) -> None:
        self._set(OPUS_SET_INBAND_FEC_REQUEST, 1 if value else 0)

    @property
    def packet_loss_perc(self) -> int:
        """Expected packet loss in percent (0 to 100); more means more robust packets."""
        return self._get(OPUS_GET_PACKET_LOSS_PERC_REQUEST)

    @packet_loss_perc.setter
    def packet_loss_perc(self, int value) -> None:
        if not 0 <= value <= 100:
            raise ValueError(f"packet_loss_perc must be 0 to 100, not {value}")
        self._set(OPUS_SET_PACKET_LOSS_PERC_REQUEST, value)

    @property
    def dtx(self) -> bool:
        """Discontinuous transmission: tiny packets during silence."""
        return bool(self._get(OPUS_GET_DTX_REQUEST))

    @dtx.setter
    def dtx(self, bint value) -> None:
        self._set(OPUS_SET_DTX_REQUEST, 1 if value else 0)

    @property
    def lookahead(self) -> int:
        """The encoder's delay in samples per channel at ``rate`` (decoders skip it: an Ogg
        Opus pre-skip must be at least this, counted at 48 kHz)."""
        return self._get(OPUS_GET_LOOKAHEAD_REQUEST)

    def __repr__(self) -> str:
        return (f"OpusEncoder(rate={self.rate}, channels={self.channels}, "
                f"application={self.application!r})")

    def __reduce__(self):
        raise TypeError("OpusEncoder cannot be pickled")
