# The Rechunker type, for cimport by kernels that cut audio into exact frames.
from libc.stdint cimport uint8_t


cdef class Rechunker:
    cdef uint8_t* _buf
    cdef Py_ssize_t _frame     # bytes per frame
    cdef Py_ssize_t _held      # bytes of the partial frame in _buf

    cdef const uint8_t* c_next(self, const uint8_t** src, Py_ssize_t* n) noexcept
    cdef Py_ssize_t c_count(self, Py_ssize_t n) noexcept
