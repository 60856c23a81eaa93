"""Resampler kernel: streaming polyphase resampling of int16 or float32 PCM (csrc/ac_resample.h).

The filter comes from a designer registered by ``audiocore.resampling`` (scipy, cached per
ratio and quality); this module holds no design policy.
"""

import numbers
import operator

cimport cython
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_CheckExact
from libc.stdint cimport int64_t

from audiocore._ext._buffer cimport (
    ACCEPT_F32, ACCEPT_PCM16, InBuf, OutBuf, acquire, in_release, out_acquire, out_release,
)

ac_rs_init()

MIN_RATE = 8000
MAX_RATE = 192000

# A push whose work (output frames x channels x taps per phase) reaches this many
# multiply-adds runs with the GIL released: that is every 20 ms frame of the 8/16/24/48 kHz
# pairs at either quality (7.7 to 77 thousand), where releasing and re-taking an uncontended
# GIL (about 40 ns) costs a few per cent of the work. Pushes of a few samples keep the GIL:
# there the release would cost as much as the work.
cdef enum:
    NOGIL_MACS = 4096

cdef object _designer = None


def _set_designer(fn) -> None:
    """Called by ``audiocore.resampling``: ``fn(up, down, quality)`` returns the filter."""
    global _designer
    _designer = fn


# Quality names, case-insensitive: ours, and python-soxr's mapped by intent (HQ and VHQ: the
# best this has; QQ, LQ and MQ: the cheaper filter). Neither of ours is soxr's VHQ (28-bit).
_QUALITIES = {
    "hq": "hq", "vhq": "hq", "soxr_hq": "hq", "soxr_vhq": "hq",
    "fast": "fast", "mq": "fast", "lq": "fast", "qq": "fast",
    "soxr_mq": "fast", "soxr_lq": "fast", "soxr_qq": "fast",
}


cdef object _int_arg(str name, object value):
    """An integer argument: int or anything with __index__ (NumPy integers), not bool."""
    if type(value) is int:
        return value
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, not {type(value).__name__}") from None


cdef object _rate_arg(str name, object value):
    """A rate in Hz: an int, or a real number that is a whole number (44100.0, as soxr and
    audio file readers give them); 44100.5 is a ValueError."""
    if type(value) is int:
        return value
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a whole number of Hz, not bool")
    try:
        return operator.index(value)
    except TypeError:
        pass
    if isinstance(value, numbers.Real):
        f = float(value)
        if f.is_integer():
            return int(f)
        raise ValueError(f"unsupported {name} {value!r} Hz: rates must be whole numbers of Hz")
    raise TypeError(f"{name} must be a whole number of Hz (int or float), not "
                    f"{type(value).__name__}")


cdef str _quality_name(object quality):
    """``"hq"`` or ``"fast"`` for any accepted spelling of ``quality``."""
    if type(quality) is str and (quality == "hq" or quality == "fast"):
        return quality
    name = _QUALITIES.get(quality.lower()) if isinstance(quality, str) else None
    if name is None:
        raise ValueError(f"quality must be 'hq' or 'fast' (or soxr's 'VHQ', 'HQ': hq; "
                         f"'MQ', 'LQ', 'QQ': fast; any case), not {quality!r}")
    return name


@cython.final
cdef class Resampler:
    """Streaming resampler from ``in_rate`` to ``out_rate`` Hz (whole numbers, 8000..192000;
    a float such as 44100.0 is taken, 44100.5 is not).

    ``channels`` 1 or 2 (interleaved); ``dtype`` ``"int16"`` (little-endian; output rounded
    to nearest and saturated) or ``"float32"`` (native floats, not clipped); ``quality``
    ``"hq"`` or ``"fast"`` (the module ``audiocore.resampling`` has the specification), or
    python-soxr's names in any case (``"VHQ"``/``"HQ"``: hq, ``"MQ"``/``"LQ"``/``"QQ"``: fast).
    The first four arguments are in soxr ``ResampleStream``'s order. The
    filter is designed on first use of a ratio and quality and shared afterwards, so building
    one per call is cheap (the first design in a process imports scipy: do it at start-up).

    :meth:`process` takes any number of frames and returns exactly
    ``floor(total_in * out_rate / in_rate)`` frames in total so far: a 20 ms push gives 20 ms
    every time, and the output does not depend on how the input was split. The output
    trails the input by :attr:`delay_samples` output frames; :meth:`flush` releases them at
    the end. Deterministic (no dither): the same input gives the same bytes, on the SIMD and
    the portable path alike.

    Use an instance from one thread at a time (a call made while another runs with the GIL
    released raises RuntimeError).
    """

    def __cinit__(self, in_rate, out_rate, channels=1, dtype="int16", quality="hq"):
        cdef int64_t up, down, g
        cdef Py_ssize_t itemsize
        in_rate = _rate_arg("in_rate", in_rate)
        out_rate = _rate_arg("out_rate", out_rate)
        channels = _int_arg("channels", channels)
        for name, rate in (("in_rate", in_rate), ("out_rate", out_rate)):
            if not MIN_RATE <= rate <= MAX_RATE:
                raise ValueError(f"unsupported {name} {rate} Hz: rates must be whole numbers "
                                 f"from {MIN_RATE} to {MAX_RATE} Hz")
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, not {channels}")
        quality = _quality_name(quality)
        if dtype == "int16":
            self.st.dtype = AC_RS_INT16
            itemsize = 2
        elif dtype == "float32":
            self.st.dtype = AC_RS_FLOAT32
            itemsize = 4
        else:
            raise ValueError(f"dtype must be 'int16' or 'float32', not {dtype!r}")
        if _designer is None:
            import audiocore.resampling  # registers the designer
        g = _gcd(in_rate, out_rate)
        up = out_rate // g
        down = in_rate // g
        filt = _designer(up, down, quality)  # its phase table is held by _coef_view below
        self.st.up = up
        self.st.down = down
        self.st.taps = filt.taps_per_phase
        self.st.shift = filt.shift
        self.st.delay = filt.delay_samples
        if (self.st.taps < 1 or self.st.taps <= down // up + 1
                or not 0 <= self.st.shift < down):
            raise RuntimeError(f"unusable filter for {up}/{down}")
        PyObject_GetBuffer(filt.phase_table, &self._coef_view, PyBUF_SIMPLE)
        self._has_view = True
        if self._coef_view.len != up * self.st.taps * 4:
            raise RuntimeError(f"filter table of {up}/{down} has the wrong size")
        self.st.coef = <const float*>self._coef_view.buf
        self.st.channels = channels
        if ac_rs_open(&self.st) != 0:
            raise MemoryError("cannot allocate the resampler's buffers")
        self._frame_bytes = channels * itemsize
        self._accept = ACCEPT_PCM16 if dtype == "int16" else ACCEPT_F32
        self._in_rate = in_rate
        self._out_rate = out_rate
        self._quality = quality
        self._dtype = dtype

    def __dealloc__(self):
        ac_rs_close(&self.st)
        if self._has_view:
            PyBuffer_Release(&self._coef_view)

    # ---------------------------------------------------------------- C level

    cdef Py_ssize_t c_output_samples(self, Py_ssize_t in_frames) noexcept:
        return <Py_ssize_t>ac_rs_output_frames(&self.st, in_frames)

    cdef Py_ssize_t c_process(self, const unsigned char* src, Py_ssize_t in_bytes,
                              unsigned char* dst) except -1:
        cdef int64_t frames, n_out
        if in_bytes % self._frame_bytes:
            raise ValueError(self._frames_error(in_bytes))
        frames = in_bytes // self._frame_bytes
        n_out = ac_rs_output_frames(&self.st, frames)
        self._run(src, frames, 0, n_out, 0, dst)
        self.st.in_mod = (self.st.in_mod + frames) % self.st.down
        return <Py_ssize_t>(n_out * self._frame_bytes)

    cdef int _run(self, const unsigned char* src, int64_t frames, int64_t zeros, int64_t n_out,
                  int64_t skip, unsigned char* dst) except -1:
        """ac_rs_run, with the GIL released for long work, and refused while another call
        on this object runs."""
        cdef int64_t done
        if self._busy:
            raise RuntimeError("Resampler used from two threads at once")
        self._busy = True
        if n_out * self.st.channels * self.st.taps >= NOGIL_MACS:
            with nogil:
                done = ac_rs_run(&self.st, src, frames, zeros, n_out, skip, dst)
        else:
            done = ac_rs_run(&self.st, src, frames, zeros, n_out, skip, dst)
        self._busy = False
        if done != n_out:  # unreachable: the counts are exact
            raise RuntimeError(f"resampler internal error: {done} of {n_out} frames")
        return 0

    cdef str _frames_error(self, Py_ssize_t nbytes):
        kind = f"{self._dtype} {'mono' if self.st.channels == 1 else 'stereo'}"
        return (f"{kind} data must be a whole number of {self._frame_bytes}-byte frames; "
                f"got {nbytes} bytes")

    # ---------------------------------------------------------------- Python API

    def process(self, data) -> bytes:
        """Resample the next ``data`` (bytes-like PCM, whole frames); returns the output
        frames now due, as ``bytes``. ``data`` is raw bytes or an array of this resampler's
        dtype, 1-D or C-contiguous (frames, channels). Raises, consuming nothing, ValueError
        on a partial frame or another shape, TypeError on another dtype."""
        cdef InBuf b
        acquire(data, &b, self._accept, self.st.channels)
        try:
            # (a partial frame: c_process raises before anything is consumed)
            out = PyBytes_FromStringAndSize(
                NULL, self.c_output_samples(b.len // self._frame_bytes) * self._frame_bytes)
            self.c_process(b.ptr, b.len, <unsigned char*>PyBytes_AS_STRING(out))
            return out
        finally:
            in_release(&b)

    def process_into(self, data, out) -> int:
        """Like :meth:`process`, into the writable buffer ``out``; returns bytes written.
        Raises ValueError, consuming nothing, when ``out`` is too small."""
        cdef InBuf b
        cdef OutBuf o
        cdef Py_ssize_t need
        acquire(data, &b, self._accept, self.st.channels)
        try:
            if b.len % self._frame_bytes:
                raise ValueError(self._frames_error(b.len))
            out_acquire(out, &o, self._accept, self.st.channels)
            try:
                need = self.c_output_samples(b.len // self._frame_bytes) * self._frame_bytes
                if o.len < need:
                    raise ValueError(f"output buffer too small: {need} bytes needed, "
                                     f"{o.len} available")
                return self.c_process(b.ptr, b.len, o.ptr)
            finally:
                out_release(&o)
        finally:
            in_release(&b)

    def output_samples(self, in_samples: int) -> int:
        """Frames (samples per channel) the next :meth:`process` of ``in_samples`` input
        frames returns."""
        if in_samples < 0:
            raise ValueError(f"in_samples must not be negative, not {in_samples}")
        a = self.st.in_mod  # in Python integers: exact for any count
        return (a + in_samples) * self.st.up // self.st.down - a * self.st.up // self.st.down

    def flush(self) -> bytes:
        """Return the last :attr:`delay_samples` frames still inside the filter (the input
        followed by silence), then reset. Nothing (``b""``) if no input came since the last
        reset or flush."""
        cdef int64_t n
        if self._busy:
            raise RuntimeError("Resampler used from two threads at once")
        if not self.st.fed:
            ac_rs_reset(&self.st)
            return b""
        n = self.st.delay
        out = PyBytes_FromStringAndSize(NULL, n * self._frame_bytes)
        self._run(NULL, 0, ac_rs_zeros_needed(&self.st, 0, n), n, 0,
                  <unsigned char*>PyBytes_AS_STRING(out))
        ac_rs_reset(&self.st)
        return out

    def reset(self) -> None:
        """Forget all input: the next :meth:`process` starts a new stream."""
        if self._busy:
            raise RuntimeError("Resampler used from two threads at once")
        ac_rs_reset(&self.st)

    def _process_aligned(self, data) -> bytes:
        """One-shot: ``process(data) + flush()`` less the first ``delay_samples`` frames,
        computed in one pass (the skipped frames are not computed). Resets afterwards."""
        cdef InBuf b
        cdef int64_t frames, n_out, total
        acquire(data, &b, self._accept, self.st.channels)
        try:
            if b.len % self._frame_bytes:
                raise ValueError(self._frames_error(b.len))
            if self._busy:
                raise RuntimeError("Resampler used from two threads at once")
            ac_rs_reset(&self.st)
            frames = b.len // self._frame_bytes
            n_out = ac_rs_output_frames(&self.st, frames)
            out = PyBytes_FromStringAndSize(NULL, n_out * self._frame_bytes)
            if frames == 0:
                return out
            total = n_out + self.st.delay
            try:
                self._run(b.ptr, frames, ac_rs_zeros_needed(&self.st, frames, total), total,
                          self.st.delay, <unsigned char*>PyBytes_AS_STRING(out))
            finally:
                ac_rs_reset(&self.st)
            return out
        finally:
            in_release(&b)

    @property
    def delay_samples(self) -> int:
        """Group delay in output frames: output frame ``j`` is the input signal at time
        ``(j - delay_samples) / out_rate`` (exactly, the filter being linear-phase)."""
        return self.st.delay

    @property
    def in_rate(self) -> int:
        """Input sample rate in Hz."""
        return self._in_rate

    @property
    def out_rate(self) -> int:
        """Output sample rate in Hz."""
        return self._out_rate

    @property
    def channels(self) -> int:
        """1 (mono) or 2 (interleaved stereo)."""
        return self.st.channels

    @property
    def quality(self) -> str:
        """``"hq"`` or ``"fast"``."""
        return self._quality

    @property
    def dtype(self) -> str:
        """``"int16"`` or ``"float32"``: the sample type in and out."""
        return self._dtype

    def __repr__(self) -> str:
        return (f"Resampler({self._in_rate}, {self._out_rate}, channels={self.st.channels}, "
                f"quality={self._quality!r}, dtype={self._dtype!r})")

    def __reduce__(self):
        raise TypeError("Resampler cannot be pickled")


cdef int64_t _gcd(int64_t a, int64_t b) noexcept:
    cdef int64_t t
    while b:
        t = a % b
        a = b
        b = t
    return a


def _simd(enabled=None) -> bool:
    """Test hook: whether the AVX2 path is used; pass a bool to switch it (off, or on if the
    CPU has it). Returns the setting now in force. Both paths give the same bytes."""
    global ac_rs_use_simd
    if enabled is not None:
        ac_rs_use_simd = 1 if (enabled and ac_cpu_has_avx2()) else 0
    return bool(ac_rs_use_simd)
