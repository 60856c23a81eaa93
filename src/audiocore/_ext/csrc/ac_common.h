/* Portability helpers shared by the C kernels: byte order, run-time ISA checks. */
#ifndef AC_COMMON_H
#define AC_COMMON_H

#include <stdint.h>
#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define AC_X86 1
#define AC_TARGET_SSSE3 __attribute__((target("ssse3")))
#define AC_TARGET_AVX2 __attribute__((target("avx2")))
static inline int ac_cpu_has_ssse3(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("ssse3");
}
static inline int ac_cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}
#else
#define AC_X86 0
static inline int ac_cpu_has_ssse3(void) { return 0; }
static inline int ac_cpu_has_avx2(void) { return 0; }
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define AC_BIG_ENDIAN 1
#else
#define AC_BIG_ENDIAN 0
#endif

static inline uint64_t ac_load_be64(const uint8_t *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
#if AC_BIG_ENDIAN
    return x;
#else
    return __builtin_bswap64(x);
#endif
}

/* PCM16 is little-endian on the wire whatever the host. */
static inline int16_t ac_load_s16le(const uint8_t *p)
{
    return (int16_t)(uint16_t)((uint16_t)p[0] | ((uint16_t)p[1] << 8));
}

static inline void ac_store_s16le(uint8_t *p, int16_t v)
{
    p[0] = (uint8_t)((uint16_t)v & 0xff);
    p[1] = (uint8_t)((uint16_t)v >> 8);
}

#endif /* AC_COMMON_H */
