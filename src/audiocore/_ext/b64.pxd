# C declarations of the b64 kernel, for cimport by other kernels (call the init first).

cdef extern from "ac_b64.h" nogil:
    void ac_b64_init()
    size_t ac_b64_encoded_len(size_t n)
    void ac_b64_encode(const unsigned char* src, size_t n, unsigned char* dst)
    size_t ac_b64_decoded_len(const unsigned char* src, size_t n)
    int ac_b64_decode(const unsigned char* src, size_t n, unsigned char* dst, size_t* err_offset)
    void ac_b64_encode_url(const unsigned char* src, size_t n, unsigned char* dst)
    int ac_b64_decode_url(const unsigned char* src, size_t n, unsigned char* dst,
                          size_t* err_offset)
    int ac_b64_use_simd
    int ac_cpu_has_ssse3()
    enum:
        AC_B64_OK
        AC_B64_ERR_CHAR
        AC_B64_ERR_PAD
        AC_B64_ERR_LENGTH
