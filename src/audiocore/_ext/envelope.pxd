# Fused JSON-envelope kernels (shape scanning, templated emitting), for cimport by other kernels.
from libc.stdint cimport int64_t, uint8_t


cdef extern from "ac_json.h" nogil:
    enum:
        AC_JSON_MAX_FIELDS
        AC_JSON_MAX_ALTS
        AC_J_ABSENT
        AC_J_STR
        AC_J_INT
        AC_J_TRUE
        AC_J_FALSE
        AC_J_NULL
        AC_J_OBJ
        AC_JW_STR
        AC_JW_INT
        AC_JW_BOOL
        AC_JW_OBJ
        AC_JW_DIGITS

    ctypedef struct ac_jfield:
        const uint8_t* name
        size_t name_len
        int parent
        unsigned want
        int required
        int raw
        int nalts
        const uint8_t* alts[4]
        size_t alt_len[4]

    ctypedef struct ac_jshape:
        ac_jfield f[16]
        int n
        int ci

    ctypedef struct ac_jval:
        const uint8_t* p
        size_t n
        int64_t i
        int type
        int alt

    int ac_json_scan(const ac_jshape* sh, const uint8_t* text, size_t n, ac_jval* out)


cdef enum Codec:
    CODEC_NONE = 0
    CODEC_ULAW = 1
    CODEC_ALAW = 2
    CODEC_PCM16 = 3     # the payload is PCM16 already: appended as is


cdef class Shape:
    cdef ac_jshape sh
    cdef list _keep
    cdef tuple _alts
    cdef tuple _defaults
    cdef int _b64
    cdef Codec _codec
    cdef int _leaves[16]
    cdef int _nleaves
    cdef int _nout
    cdef object _record
    cdef Py_ssize_t _offsets[17]
    cdef readonly tuple paths

    cdef int c_scan(self, const uint8_t* text, size_t n, ac_jval* out) noexcept
    cdef _bind(self, record, slots)
    cdef object _value(self, int i, ac_jval* vals, object payload)


cdef class Template:
    cdef bytes _prefix
    cdef bytes _suffix
    cdef Codec _codec
    cdef bint _pcm16

    cdef Py_ssize_t c_length(self, Py_ssize_t audio_bytes) noexcept
    cdef void c_write(self, const uint8_t* audio, Py_ssize_t n, uint8_t* dst) noexcept
    cdef object c_build(self, const uint8_t* audio, Py_ssize_t n)


cdef int text_view(object text, const uint8_t** ptr, Py_ssize_t* n) noexcept
