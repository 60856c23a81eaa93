# The Opus codec types, for cimport by kernels that decode or encode per packet (jitter queue).
#
# c_decode / c_conceal / c_encode work on native-endian int16 samples (the Python methods
# return PCM16 little-endian bytes) and raise like the Python methods on bad input.

cdef extern from "opus.h" nogil:
    ctypedef struct COpusDecoder "OpusDecoder":
        pass
    ctypedef struct COpusEncoder "OpusEncoder":
        pass


cdef class OpusDecoder:
    cdef COpusDecoder* _dec
    cdef readonly int rate        # output sample rate in Hz
    cdef readonly int channels    # 1 or 2, interleaved
    cdef int _step                # samples per channel in 2.5 ms
    cdef bint _busy               # a call is running with the GIL released

    # Decode packet[0:n] into out (room for max_frames samples per channel); returns the
    # samples per channel written. With fec, recover the packet lost just before this one
    # from its in-band FEC instead: max_frames is then the lost duration (a multiple of
    # 2.5 ms), all of which is written (concealed where the FEC data does not reach).
    cdef int c_decode(self, const unsigned char* packet, Py_ssize_t n, short* out,
                      int max_frames, bint fec) except -1
    # Packet-loss concealment: write frames samples per channel (a multiple of 2.5 ms).
    cdef int c_conceal(self, short* out, int frames) except -1
    cdef int _enter(self) except -1
    cdef int _check_span(self, int frames, str what) except -1


cdef class OpusEncoder:
    cdef COpusEncoder* _enc
    cdef readonly int rate
    cdef readonly int channels
    cdef int _application
    cdef int _step
    cdef bint _busy

    # Encode frames samples per channel (2.5 to 120 ms) into out; returns the packet's bytes.
    cdef Py_ssize_t c_encode(self, const short* pcm, int frames, unsigned char* out,
                             Py_ssize_t max_bytes) except -1
    cdef int _get(self, int request) except? -1
    cdef int _set(self, int request, int value) except -1
