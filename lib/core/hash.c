/* hash.c -- 64-bit FNV-1a (see hash.h). */
#include "core/hash.h"

uint64_t el_fnv1a64(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint64_t el_fnv1a64_str(const char *s)
{
    uint64_t h = EL_FNV1A64_INIT;

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}
