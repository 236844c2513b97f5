/* hash.h -- the one non-cryptographic hash: 64-bit FNV-1a. For stripes,
 * slots and ETags -- never where an attacker choosing keys could hurt more
 * than a collision costs (a slot reset, a shared lock). */
#ifndef EL_HASH_H
#define EL_HASH_H

#include <stddef.h>
#include <stdint.h>

#define EL_FNV1A64_INIT 0xcbf29ce484222325ULL

/* Continue the FNV-1a hash h over len bytes of data (start with
 * EL_FNV1A64_INIT); hashing in pieces gives the hash of the whole. */
uint64_t el_fnv1a64(uint64_t h, const void *data, size_t len);

/* The FNV-1a hash of a NUL-terminated string. */
uint64_t el_fnv1a64_str(const char *s);

#endif /* EL_HASH_H */
