/* password.h -- argon2id password hashing through libargon2.
 *
 * Parameters are at or above OWASP's minimum (m = 19 MiB, t = 2, p = 1); the
 * encoded PHC string is what the store keeps, so parameters can be raised
 * later and old hashes upgraded on the next login (el_password_needs_rehash).
 * Verification is constant-time (argon2_verify).
 *
 * Hashing is memory-hard by design, so its concurrency is bounded: at most
 * `slots` hashes run at once (about one per core) and at most `slots` more
 * callers may wait for one; beyond that a call fails at once with
 * EL_EUNAVAIL (the app answers 503 with Retry-After) instead of tying up a
 * worker thread that course reads need. */
#ifndef EL_PASSWORD_H
#define EL_PASSWORD_H

#include <stddef.h>
#include <stdint.h>

#include "core/el.h"

#define EL_PASSWORD_HASH_MAX 128 /* encoded PHC string incl. NUL */
#define EL_PASSWORD_MIN 10
#define EL_PASSWORD_MAX 256 /* bytes; longer input is refused (422) */

struct el_password_params {
    uint32_t m_cost_kib;  /* default 19456 */
    uint32_t t_cost;      /* default 2 */
    uint32_t parallelism; /* default 1 */
};

/* Set the parameters and the concurrency bound for the process (call once at
 * start-up; NULL params = defaults; slots <= 0 = number of online CPUs).
 * Tests may lower the costs. */
void el_password_setup(const struct el_password_params *params, int slots);

/* Hash password with a fresh random salt into out (EL_PASSWORD_HASH_MAX).
 * EL_EUNAVAIL when too many hashes are already running or waiting (or its
 * memory cannot be allocated). */
int el_password_hash(const char *password, char out[EL_PASSWORD_HASH_MAX]) EL_WUR;

/* 0 when password matches encoded, EL_EINVAL when it does not (or encoded
 * is malformed), EL_EUNAVAIL as above. */
int el_password_verify(const char *encoded, const char *password) EL_WUR;

/* Do the same work as a verification against a real hash, for an unknown
 * user, so login time does not reveal whether an email exists. Always
 * returns EL_EINVAL (or EL_EUNAVAIL). */
int el_password_verify_dummy(const char *password) EL_WUR;

/* 1 when encoded was made with weaker parameters than the current ones. */
int el_password_needs_rehash(const char *encoded);

#endif /* EL_PASSWORD_H */
