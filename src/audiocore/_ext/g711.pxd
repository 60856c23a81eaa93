# C declarations of the g711 kernel, for cimport by other kernels (call the init first).

cdef extern from "ac_g711.h" nogil:
    void ac_g711_init()
    void ac_ulaw_encode(const unsigned char* src, size_t n, unsigned char* dst)
    void ac_alaw_encode(const unsigned char* src, size_t n, unsigned char* dst)
    void ac_ulaw_decode(const unsigned char* src, size_t n, unsigned char* dst)
    void ac_alaw_decode(const unsigned char* src, size_t n, unsigned char* dst)
