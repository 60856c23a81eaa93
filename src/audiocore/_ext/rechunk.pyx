"""Rechunker kernel: byte pushes of any size in, frames of exactly ``frame_bytes`` out."""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from audiocore._ext._buffer cimport InBuf, in_release, pcm_acquire


@cython.final
cdef class Rechunker:
    """Cuts a byte stream into frames of exactly ``frame_bytes`` bytes.

    :meth:`push` returns every frame completed so far and keeps the rest (less than one frame,
    in a buffer allocated once); :meth:`flush` returns that rest, padded with zero bytes to a
    whole frame by default. Use an instance from one thread at a time.
    """

    def __cinit__(self, Py_ssize_t frame_bytes):
        if frame_bytes <= 0:
            raise ValueError(f"frame_bytes must be positive, not {frame_bytes}")
        self._buf = <uint8_t*>malloc(<size_t>frame_bytes)
        if self._buf == NULL:
            raise MemoryError(f"cannot allocate a frame of {frame_bytes} bytes")
        self._frame = frame_bytes
        self._held = 0

    def __dealloc__(self):
        free(self._buf)

    # ---------------------------------------------------------------- C level

    cdef Py_ssize_t c_count(self, Py_ssize_t n) noexcept:
        """Frames a push of n bytes completes."""
        return (self._held + n) // self._frame

    cdef const uint8_t* c_next(self, const uint8_t** src, Py_ssize_t* n) noexcept:
        """The next whole frame from the held bytes and src[0:*n], advancing src and *n; NULL
        when no whole frame is left, the rest of src then held. The frame is either the
        internal buffer (valid until the next call) or a pointer into src."""
        cdef const uint8_t* frame
        cdef Py_ssize_t take
        if self._held:
            take = self._frame - self._held
            if take > n[0]:
                take = n[0]
            memcpy(self._buf + self._held, src[0], <size_t>take)
            self._held += take
            src[0] += take
            n[0] -= take
            if self._held < self._frame:
                return NULL
            self._held = 0
            return self._buf
        if n[0] >= self._frame:
            frame = src[0]
            src[0] += self._frame
            n[0] -= self._frame
            return frame
        if n[0]:
            memcpy(self._buf, src[0], <size_t>n[0])
            self._held = n[0]
            src[0] += n[0]
            n[0] = 0
        return NULL

    # ---------------------------------------------------------------- Python API

    def push(self, data) -> list:
        """Append raw bytes or int16 PCM (an int16 array); returns the frames it completes (a
        list of bytes)."""
        cdef InBuf b
        cdef const uint8_t* src
        cdef const uint8_t* frame
        cdef Py_ssize_t n, i = 0
        pcm_acquire(data, &b, 0)
        try:
            src = b.ptr
            n = b.len
            out = PyList_New(self.c_count(n))
            while True:
                frame = self.c_next(&src, &n)
                if frame == NULL:
                    break
                item = PyBytes_FromStringAndSize(<const char*>frame, self._frame)
                Py_INCREF(item)
                PyList_SET_ITEM(out, i, item)
                i += 1
            return out
        finally:
            in_release(&b)

    def flush(self, bint pad=True) -> list:
        """The held partial frame, zero-padded to ``frame_bytes`` (``pad=False``: as it is),
        as a list of zero or one ``bytes``; nothing is held afterwards."""
        if not self._held:
            return []
        n = self._frame if pad else self._held
        out = PyBytes_FromStringAndSize(NULL, n)
        memcpy(PyBytes_AS_STRING(out), self._buf, <size_t>self._held)
        memset(PyBytes_AS_STRING(out) + self._held, 0, <size_t>(n - self._held))
        self._held = 0
        return [out]

    def reset(self) -> None:
        """Drop the held partial frame."""
        self._held = 0

    @property
    def frame_bytes(self) -> int:
        """Bytes per frame."""
        return self._frame

    @property
    def pending(self) -> int:
        """Bytes held towards the next frame (less than ``frame_bytes``)."""
        return self._held

    def __len__(self) -> int:
        return self._held

    def __repr__(self) -> str:
        return f"Rechunker(frame_bytes={self._frame}) holding {self._held} bytes"

    def __reduce__(self):
        raise TypeError("Rechunker cannot be pickled")
