/* key.h -- the one place cache keys are spelled. Every layer (L1, Redis) and
 * every process uses these builders, so a key written by one responder is the
 * key read by another.
 *
 * Each builder writes a NUL-terminated key into dst (size n) and returns its
 * length, or EL_ETOOBIG if it does not fit (dst then holds ""). Ids are
 * copied as given: callers validate them first (el_oid_valid, model/oid.h). */
#ifndef EL_KEY_H
#define EL_KEY_H

#include <stddef.h>
#include <stdint.h>

#define EL_KEY_MAX 320

/* Redis key holding the course-list generation (an integer). Bumping it
 * invalidates every cached list in O(1): list keys embed the generation, so
 * old ones are simply never read again and expire by TTL. */
#define EL_KEY_LIST_GEN "courses_list:gen"

/* Redis key present while Redis holds every live revocation. Written (no
 * TTL) after the revocations are copied from the store into Redis; a Redis
 * that restarted empty or was flushed lacks it, and is not trusted for
 * revocation checks until they have been written back. */
#define EL_KEY_REVOCATIONS_SYNCED "blacklisted_tokens:synced"

int el_key_course(char *dst, size_t n, const char *course_id);
/* digest: hex digest of the canonical, validated list parameters. */
int el_key_courses_list(char *dst, size_t n, uint64_t generation, const char *digest);
int el_key_user_session(char *dst, size_t n, const char *user_id);
int el_key_refresh_tokens(char *dst, size_t n, const char *user_id);
int el_key_blacklisted_token(char *dst, size_t n, const char *jti);
/* The cluster-wide fill lease of a cache key (tiered.c). */
int el_key_lease(char *dst, size_t n, const char *key);
/* Failed-login counters for throttling: by email and by client address. */
int el_key_login_failures_email(char *dst, size_t n, const char *email);
int el_key_login_failures_ip(char *dst, size_t n, const char *addr);

#endif /* EL_KEY_H */
