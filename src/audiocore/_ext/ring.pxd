# The RingBuffer type, for cimport by kernels that keep byte FIFOs (playout, rechunking).

cdef class RingBuffer:
    cdef unsigned char* _buf
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _head      # offset of the oldest byte
    cdef Py_ssize_t _size      # bytes held
    cdef bint _drop_oldest
    cdef unsigned long long _dropped

    cdef int c_write(self, const unsigned char* src, Py_ssize_t n) except -1
    cdef void c_peek(self, unsigned char* dst, Py_ssize_t n) noexcept nogil
    cdef void c_skip(self, Py_ssize_t n) noexcept nogil
