"""G.711 kernel: mu-law and A-law <-> PCM16 little-endian, bit-exact with ITU-T G.711."""

from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING

from audiocore._ext._buffer cimport InBuf, in_acquire, in_release, pcm_acquire


ac_g711_init()

ctypedef void (*coder_t)(const unsigned char*, size_t, unsigned char*) noexcept nogil

cdef enum:
    NOGIL_SAMPLES = 65536


cdef object _encode(object pcm, coder_t coder):
    cdef InBuf b
    cdef size_t n
    cdef unsigned char* dst
    pcm_acquire(pcm, &b, 0)
    try:
        if b.len & 1:
            raise ValueError(f"PCM16 input has an odd number of bytes ({b.len})")
        n = <size_t>b.len // 2
        out = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>n)
        dst = <unsigned char*>PyBytes_AS_STRING(out)
        if n >= NOGIL_SAMPLES:
            with nogil:
                coder(b.ptr, n, dst)
        else:
            coder(b.ptr, n, dst)
        return out
    finally:
        in_release(&b)


cdef object _decode(object codes, coder_t coder):
    cdef InBuf b
    cdef size_t n
    cdef unsigned char* dst
    in_acquire(codes, &b)
    try:
        n = <size_t>b.len
        out = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>(2 * n))
        dst = <unsigned char*>PyBytes_AS_STRING(out)
        if n >= NOGIL_SAMPLES:
            with nogil:
                coder(b.ptr, n, dst)
        else:
            coder(b.ptr, n, dst)
        return out
    finally:
        in_release(&b)


def ulaw_encode(pcm) -> bytes:
    """PCM16LE samples -> one mu-law code byte per sample (G.711, 14-bit input)."""
    return _encode(pcm, ac_ulaw_encode)


def ulaw_decode(codes) -> bytes:
    """mu-law code bytes -> PCM16LE, two bytes per code."""
    return _decode(codes, ac_ulaw_decode)


def alaw_encode(pcm) -> bytes:
    """PCM16LE samples -> one A-law code byte per sample (G.711, 13-bit input)."""
    return _encode(pcm, ac_alaw_encode)


def alaw_decode(codes) -> bytes:
    """A-law code bytes -> PCM16LE, two bytes per code."""
    return _decode(codes, ac_alaw_decode)
