# Fast acquisition of caller buffers for the kernels: exact bytes objects are read in place,
# anything else goes through the buffer protocol (C-contiguous, any item type, read as bytes).
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_WRITABLE
from cpython.bytes cimport PyBytes_CheckExact, PyBytes_AS_STRING, PyBytes_GET_SIZE

# Inputs at least this long are coded with the GIL released (base64, the JSON envelopes); a
# 20 ms frame is far shorter, and releasing the GIL would cost more than its work.
cdef enum:
    NOGIL_BYTES = 65536


cdef struct InBuf:
    const unsigned char* ptr
    Py_ssize_t len
    Py_buffer view
    bint owned


cdef struct OutBuf:
    unsigned char* ptr
    Py_ssize_t len
    Py_buffer view


cdef inline int in_acquire(object obj, InBuf* b) except -1:
    """Borrow a read-only view of ``obj``; pair with in_release."""
    if PyBytes_CheckExact(obj):
        b.ptr = <const unsigned char*>PyBytes_AS_STRING(obj)
        b.len = PyBytes_GET_SIZE(obj)
        b.owned = 0
        return 0
    if isinstance(obj, str):
        raise TypeError("expected a bytes-like object, not 'str'")
    PyObject_GetBuffer(obj, &b.view, PyBUF_SIMPLE)
    b.ptr = <const unsigned char*>b.view.buf
    b.len = b.view.len
    b.owned = 1
    return 0


cdef inline void in_release(InBuf* b) noexcept:
    if b.owned:
        PyBuffer_Release(&b.view)
        b.owned = 0


cdef inline int out_acquire(object obj, OutBuf* b) except -1:
    """Borrow a writable view of ``obj``; pair with out_release."""
    try:
        PyObject_GetBuffer(obj, &b.view, PyBUF_SIMPLE | PyBUF_WRITABLE)
    except BufferError as exc:
        raise TypeError(f"expected a writable, C-contiguous buffer, not "
                        f"{type(obj).__name__!r} ({exc})") from None
    b.ptr = <unsigned char*>b.view.buf
    b.len = b.view.len
    return 0


cdef inline void out_release(OutBuf* b) noexcept:
    PyBuffer_Release(&b.view)
