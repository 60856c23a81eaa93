# Opus packet framing (csrc/ac_opus_packet.h) for the kernels that check packets (opus, ogg).

cdef extern from "ac_opus_packet.h" nogil:
    int ac_opus_packet_samples48(const unsigned char* p, size_t n, size_t* err_at)
    const char* ac_opus_packet_error_text(int code)


cdef inline int packet_samples48(const unsigned char* p, Py_ssize_t n) except -1:
    """The packet's duration in 48 kHz samples, or DecodeError naming the bad byte."""
    cdef size_t err_at = 0
    cdef int r = ac_opus_packet_samples48(p, <size_t>n, &err_at)
    if r < 0:
        from audiocore._ext.errors import DecodeError
        raise DecodeError(
            f"invalid Opus packet: {ac_opus_packet_error_text(r).decode('ascii')} "
            f"(offset {err_at} of {n} bytes)", err_at)
    return r
