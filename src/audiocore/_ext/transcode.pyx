"""Transcoder kernel: one JSON-envelope audio message in, resampled, message(s) out, one C call.

The fused step of a bridge between two audio services: scan the incoming message
(:class:`~audiocore._ext.envelope.Shape`), decode its base64 audio, resample it
(:class:`~audiocore._ext.resample.Resampler`), optionally cut the result into exact frames
(:class:`~audiocore._ext.rechunk.Rechunker`), and build each outgoing message
(:class:`~audiocore._ext.envelope.Template`). It answers only the plain case and declines
(returns None, having changed nothing) otherwise, for the caller's general path. It knows no
protocol: the shapes, field paths and rules come from the caller.

The per-message work is a few microseconds, so the GIL is kept: releasing it would cost more
than it frees.
"""

cimport cython
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF
from libc.stdint cimport uint8_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcmp, memset

from audiocore._ext.b64 cimport AC_B64_OK, ac_b64_decode, ac_b64_decoded_len, ac_b64_init
from audiocore._ext.envelope cimport AC_J_STR, AC_J_TRUE, CODEC_NONE, Shape, Template, ac_jval, text_view
from audiocore._ext.rechunk cimport Rechunker
from audiocore._ext.resample cimport Resampler


ac_b64_init()


cdef int _grow(uint8_t** buf, Py_ssize_t* cap, Py_ssize_t need) except -1:
    cdef uint8_t* p
    if need <= cap[0]:
        return 0
    need = max(need, 2 * cap[0], 4096)
    p = <uint8_t*>realloc(buf[0], <size_t>need)
    if p == NULL:
        raise MemoryError(f"cannot allocate {need} bytes of scratch")
    buf[0] = p
    cap[0] = need
    return 0


@cython.final
cdef class Transcoder:
    """``shape`` message in -> ``resampler`` -> ``template`` message(s) out, in one call.

    ``shape`` must have a base64 field (its audio, PCM in the resampler's format); ``template``
    takes no codec. ``frame_bytes``: the decoded audio must hold exactly this many bytes (0:
    any whole number of frames); ``silence``: the path of a boolean field which, when true,
    lets an empty audio field stand for ``frame_bytes`` of zeros. ``rechunker``: cut the
    output into messages of exactly its frame (the rest held for the next call); without it,
    one message per input. ``key``: the path of a string field that must equal :attr:`key`
    (declined otherwise, also while :attr:`key` is None); :attr:`key_bytes` counts the decoded
    audio bytes taken under the current key. ``deny``: the path of a string field whose value
    must not be one of :attr:`denied`.

    :meth:`run` returns the message (``str``; with a rechunker a ``list`` of them), or None
    when it declines. Use an instance from one thread at a time.
    """

    cdef Shape _shape
    cdef Template _template
    cdef Resampler _rs
    cdef Rechunker _chunks
    cdef Py_ssize_t _frame
    cdef Py_ssize_t _unit            # bytes per resampler frame (channels * 2)
    cdef int _b64
    cdef int _silence
    cdef int _key
    cdef int _deny
    cdef bytes _key_value
    cdef tuple _denied
    cdef public long long key_bytes
    cdef uint8_t* _in
    cdef Py_ssize_t _in_cap
    cdef uint8_t* _out
    cdef Py_ssize_t _out_cap

    def __cinit__(self, Shape shape not None, Template template not None, Resampler resampler not None,
                  *, Py_ssize_t frame_bytes=0, str silence=None, Rechunker rechunker=None,
                  str key=None, str deny=None):
        if shape._b64 < 0:
            raise ValueError("the shape has no base64 field")
        if template._codec != CODEC_NONE:
            raise ValueError("the template must not code the audio")
        if resampler._dtype != "int16":
            raise ValueError("the resampler must take int16 PCM")
        self._shape = shape
        self._template = template
        self._rs = resampler
        self._chunks = rechunker
        self._unit = resampler._frame_bytes
        self.frame_bytes = frame_bytes
        self._silence = self._field(silence)
        self._key = self._field(key)
        self._deny = self._field(deny)
        self._b64 = shape._b64
        self._key_value = None
        self._denied = ()
        self.key_bytes = 0

    def __dealloc__(self):
        free(self._in)
        free(self._out)

    cdef int _field(self, str path) except -2:
        if path is None:
            return -1
        if path not in self._shape.paths:
            raise ValueError(f"{path!r} is not a field of the shape")
        return self._shape._leaves[self._shape.paths.index(path)]

    @property
    def frame_bytes(self) -> int:
        """Bytes of audio each incoming message must hold (0: any whole number of frames)."""
        return self._frame

    @frame_bytes.setter
    def frame_bytes(self, Py_ssize_t n) -> None:
        if n < 0 or n % self._unit:
            raise ValueError(f"frame_bytes must be a whole number of {self._unit}-byte frames")
        self._frame = n

    @property
    def key(self) -> str | None:
        """The value the key field must have; None declines every message."""
        return None if self._key_value is None else self._key_value.decode("ascii")

    @key.setter
    def key(self, str value) -> None:
        self._key_value = None if value is None else value.encode("ascii")

    @property
    def denied(self) -> tuple:
        """Values of the deny field that make :meth:`run` decline."""
        return tuple(v.decode("ascii") for v in self._denied)

    @denied.setter
    def denied(self, values) -> None:
        # A non-ASCII value needs no entry: text holding one never takes this path.
        self._denied = tuple(v.encode("ascii") for v in values if v.isascii())

    cdef bint _equals(self, ac_jval* v, bytes value) noexcept:
        return (v.type == AC_J_STR and <Py_ssize_t>v.n == len(value)
                and memcmp(v.p, <const char*>value, v.n) == 0)

    def run(self, text):
        """The outgoing message(s) for ``text``, or None (nothing changed) to decline."""
        cdef const uint8_t* p
        cdef Py_ssize_t n, audio, produced, count, i
        cdef ac_jval vals[16]
        cdef ac_jval* v
        cdef size_t err_offset
        cdef bint fill = False
        cdef const uint8_t* frame
        cdef const uint8_t* src
        if not text_view(text, &p, &n):
            return None
        if not self._shape.c_scan(p, <size_t>n, vals):
            return None
        if self._key >= 0 and (self._key_value is None or not self._equals(&vals[self._key], self._key_value)):
            return None
        if self._deny >= 0:
            for value in self._denied:
                if self._equals(&vals[self._deny], <bytes>value):
                    return None
        v = &vals[self._b64]
        audio = <Py_ssize_t>ac_b64_decoded_len(v.p, v.n)
        if self._frame:
            if audio != self._frame:
                if audio or self._silence < 0 or vals[self._silence].type != AC_J_TRUE:
                    return None
                fill = True
        elif audio % self._unit:
            return None
        _grow(&self._in, &self._in_cap, self._frame if fill else audio)
        if fill:
            memset(self._in, 0, <size_t>self._frame)
            audio = self._frame
        elif ac_b64_decode(v.p, v.n, self._in, &err_offset) != AC_B64_OK:
            return None
        # Nothing can decline from here on: state changes.
        _grow(&self._out, &self._out_cap, self._rs.c_output_samples(audio // self._unit) * self._unit)
        produced = self._rs.c_process(self._in, audio, self._out)
        if self._key >= 0 and not fill:
            self.key_bytes += audio
        if self._chunks is None:
            return self._template.c_build(self._out, produced)
        count = self._chunks.c_count(produced)
        out = PyList_New(count)
        src = self._out
        for i in range(count):
            frame = self._chunks.c_next(&src, &produced)
            msg = self._template.c_build(frame, self._chunks._frame)
            Py_INCREF(msg)
            PyList_SET_ITEM(out, i, msg)
        self._chunks.c_next(&src, &produced)  # keeps the partial rest
        return out
