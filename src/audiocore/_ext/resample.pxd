# The Resampler type and its C kernel, for cimport by kernels that resample inside a fused
# per-frame path (the ACS <-> realtime transcoder, say). Build instances from Python
# (audiocore.Resampler(...)); then call c_output_samples / c_process on them.
from libc.stdint cimport int64_t, uint8_t
from cpython.buffer cimport Py_buffer

cdef extern from "ac_resample.h" nogil:
    enum:
        AC_RS_INT16
        AC_RS_FLOAT32

    ctypedef struct ac_rs:
        const float* coef
        int64_t up
        int64_t down
        int64_t taps
        int64_t shift
        int64_t delay
        int channels
        int dtype
        int64_t len
        int64_t pos
        int64_t phase
        int64_t in_mod
        int fed

    int ac_rs_use_simd
    int ac_cpu_has_avx2()
    void ac_rs_init()
    int ac_rs_open(ac_rs* st)
    void ac_rs_close(ac_rs* st)
    void ac_rs_reset(ac_rs* st)
    int64_t ac_rs_output_frames(const ac_rs* st, int64_t in_frames)
    int64_t ac_rs_zeros_needed(const ac_rs* st, int64_t frames, int64_t n_out)
    int64_t ac_rs_run(ac_rs* st, const uint8_t* src, int64_t frames, int64_t zeros,
                      int64_t n_out, int64_t skip, uint8_t* dst)


cdef class Resampler:
    cdef ac_rs st
    cdef Py_buffer _coef_view     # the filter's phase table, held while we live
    cdef bint _has_view
    cdef bint _busy               # inside a call that released the GIL
    cdef Py_ssize_t _frame_bytes  # channels * itemsize
    cdef int _accept              # the ITEM_* kinds a typed buffer may hold (_buffer.pxd)
    cdef int _in_rate
    cdef int _out_rate
    cdef object _quality
    cdef object _dtype

    # Output frames (per channel) that the next c_process of in_frames input frames yields.
    cdef Py_ssize_t c_output_samples(self, Py_ssize_t in_frames) noexcept
    # The work of .process() into dst, which holds at least
    # c_output_samples(in_bytes // frame) * channels * itemsize bytes. Raises ValueError (and
    # changes nothing) when in_bytes is not a whole number of frames. Returns bytes written.
    cdef Py_ssize_t c_process(self, const unsigned char* src, Py_ssize_t in_bytes,
                              unsigned char* dst) except -1
    cdef int _run(self, const unsigned char* src, int64_t frames, int64_t zeros, int64_t n_out,
                  int64_t skip, unsigned char* dst) except -1
    cdef str _frames_error(self, Py_ssize_t nbytes)
