"""RingBuffer kernel: a fixed-capacity byte FIFO whose wrap-around is handled in C."""

cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy

from audiocore._ext._buffer cimport (
    ACCEPT_PCM16, InBuf, OutBuf, in_release, out_acquire, out_release, pcm_acquire,
)

from audiocore._ext.errors import BufferFullError


@cython.final
cdef class RingBuffer:
    """A byte FIFO of fixed ``capacity`` (bytes).

    ``overflow="error"``: a write that does not fit raises :class:`BufferFullError` and
    writes nothing. ``overflow="drop_oldest"``: the oldest bytes make room and are counted in
    :attr:`dropped`; of a write longer than the capacity only its last ``capacity`` bytes stay.

    The buffer is allocated once; reads allocate only the returned ``bytes``. Use an instance
    from one thread at a time.
    """

    def __cinit__(self, Py_ssize_t capacity, str overflow="error"):
        if capacity <= 0:
            raise ValueError(f"capacity must be a positive number of bytes, not {capacity}")
        if overflow == "error":
            self._drop_oldest = False
        elif overflow == "drop_oldest":
            self._drop_oldest = True
        else:
            raise ValueError(f"overflow must be 'error' or 'drop_oldest', not {overflow!r}")
        self._buf = <unsigned char*>malloc(<size_t>capacity)
        if self._buf == NULL:
            raise MemoryError(f"cannot allocate a ring buffer of {capacity} bytes")
        self._cap = capacity

    def __dealloc__(self):
        free(self._buf)

    # ---------------------------------------------------------------- C level

    cdef int c_write(self, const unsigned char* src, Py_ssize_t n) except -1:
        cdef Py_ssize_t tail, first, excess
        if n > self._cap - self._size:
            if not self._drop_oldest:
                raise BufferFullError(
                    f"write of {n} bytes does not fit: {self._cap - self._size} of "
                    f"{self._cap} bytes free")
            if n >= self._cap:
                # Only the newest capacity bytes of src survive; everything held is dropped.
                self._dropped += <unsigned long long>(self._size + n - self._cap)
                src += n - self._cap
                n = self._cap
                self._head = 0
                self._size = 0
            else:
                excess = n - (self._cap - self._size)
                self.c_skip(excess)
                self._dropped += <unsigned long long>excess
        tail = self._head + self._size
        if tail >= self._cap:
            tail -= self._cap
        first = self._cap - tail
        if first >= n:
            memcpy(self._buf + tail, src, <size_t>n)
        else:
            memcpy(self._buf + tail, src, <size_t>first)
            memcpy(self._buf, src + first, <size_t>(n - first))
        self._size += n
        return 0

    cdef void c_peek(self, unsigned char* dst, Py_ssize_t n) noexcept nogil:
        """Copy the oldest n bytes (n <= held) to dst without consuming them."""
        cdef Py_ssize_t first = self._cap - self._head
        if first >= n:
            memcpy(dst, self._buf + self._head, <size_t>n)
        else:
            memcpy(dst, self._buf + self._head, <size_t>first)
            memcpy(dst + first, self._buf, <size_t>(n - first))

    cdef void c_skip(self, Py_ssize_t n) noexcept nogil:
        """Consume the oldest n bytes (n <= held)."""
        self._head += n
        if self._head >= self._cap:
            self._head -= self._cap
        self._size -= n
        if self._size == 0:
            self._head = 0

    # ---------------------------------------------------------------- Python API

    def write(self, data) -> int:
        """Append raw bytes or int16 PCM (an int16 array); returns the number of its bytes now
        held."""
        cdef InBuf b
        pcm_acquire(data, &b, 0)
        try:
            self.c_write(b.ptr, b.len)
            return b.len if b.len < self._cap else self._cap
        finally:
            in_release(&b)

    def read(self, Py_ssize_t n=-1) -> bytes:
        """Remove and return up to ``n`` of the oldest bytes (all of them if ``n`` < 0)."""
        if n < 0 or n > self._size:
            n = self._size
        out = PyBytes_FromStringAndSize(NULL, n)
        self.c_peek(<unsigned char*>PyBytes_AS_STRING(out), n)
        self.c_skip(n)
        return out

    def readinto(self, buf) -> int:
        """Move up to ``len(buf)`` of the oldest bytes into the writable buffer ``buf``;
        returns how many."""
        cdef OutBuf o
        cdef Py_ssize_t n
        out_acquire(buf, &o, ACCEPT_PCM16, 0)
        n = o.len if o.len < self._size else self._size
        self.c_peek(o.ptr, n)
        self.c_skip(n)
        out_release(&o)
        return n

    def peek(self, Py_ssize_t n=-1) -> bytes:
        """Return up to ``n`` of the oldest bytes (all if ``n`` < 0) without removing them."""
        if n < 0 or n > self._size:
            n = self._size
        out = PyBytes_FromStringAndSize(NULL, n)
        self.c_peek(<unsigned char*>PyBytes_AS_STRING(out), n)
        return out

    def skip(self, Py_ssize_t n) -> int:
        """Drop up to ``n`` of the oldest bytes; returns how many were dropped."""
        if n < 0:
            raise ValueError(f"cannot skip a negative number of bytes ({n})")
        if n > self._size:
            n = self._size
        self.c_skip(n)
        return n

    def clear(self) -> int:
        """Drop everything; returns the number of bytes dropped."""
        cdef Py_ssize_t n = self._size
        self._head = 0
        self._size = 0
        return n

    def __len__(self) -> int:
        return self._size

    @property
    def capacity(self) -> int:
        """Fixed size in bytes."""
        return self._cap

    @property
    def free(self) -> int:
        """Bytes that can be written without overflow."""
        return self._cap - self._size

    @property
    def overflow(self) -> str:
        """The overflow policy: ``"error"`` or ``"drop_oldest"``."""
        return "drop_oldest" if self._drop_oldest else "error"

    @property
    def dropped(self) -> int:
        """Total bytes discarded by ``drop_oldest`` overflow (not by skip/clear)."""
        return self._dropped

    def __repr__(self) -> str:
        return (f"RingBuffer(capacity={self._cap}, overflow={self.overflow!r}) "
                f"holding {self._size} bytes")

    def __reduce__(self):
        raise TypeError("RingBuffer cannot be pickled")
