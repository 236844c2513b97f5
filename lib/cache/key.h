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

/* Auth state in Redis lives in EL_KEY_AUTH_BUCKETS hashes, "auth:{bNN}".
 * Bucket el_key_auth_bucket_index(id) of a revoked token or login id holds
 * the field "r:<id>" (value: expiry, ms since the epoch); that of a user id
 * holds "s:<user id>" (the cached session, "<expiry ms>|<bytes>"). Each
 * bucket also holds its own completeness marker "@sync" (the run_id of the
 * master it was copied to), so whatever removes the revocations (eviction,
 * a flush, a failover) removes the marker with them: see auth.h. The hash
 * tag {bNN} names the slot on Redis Cluster; every command touches one
 * bucket. */
#define EL_KEY_AUTH_BUCKETS 64
unsigned el_key_auth_bucket_index(const char *id);
int el_key_auth_bucket(char *dst, size_t n, unsigned bucket);

int el_key_course(char *dst, size_t n, const char *course_id);
/* A list page's ids (app/lists.c): the generations of its members, its
 * search (0 without one) and its sort order (0 for none), and the digest
 * (hex, of the canonical, validated list parameters). */
int el_key_courses_ids(char *dst, size_t n, uint64_t members, uint64_t search, uint64_t order,
                       const char *digest);
/* The assembled page of the ids page under ids_key (a courses_ids: key),
 * kept in Redis for processes without L1: "course_page:" and the same
 * generations and digest. */
int el_key_course_page(char *dst, size_t n, const char *ids_key);
/* Redis counter that moves after every change to a course summary, in any
 * process: the stamp of the pages above (app/lists.c). */
#define EL_KEY_SUMMARY_EPOCH "course_summary_epoch"
/* A course's summary (list items; model/course.h). */
int el_key_course_summary(char *dst, size_t n, const char *course_id);
/* The Redis counter of a list-generation dimension ("courses_list:gen:popular"). */
int el_key_list_gen(char *dst, size_t n, const char *dimension);
int el_key_refresh_tokens(char *dst, size_t n, const char *user_id);
/* The cluster-wide fill lease of a cache key (tiered.c). */
int el_key_lease(char *dst, size_t n, const char *key);
/* Failed-login counters for throttling: by email and by client address. */
int el_key_login_failures_email(char *dst, size_t n, const char *email);
int el_key_login_failures_ip(char *dst, size_t n, const char *addr);
/* Registration attempts per client address (throttling). */
int el_key_register_ip(char *dst, size_t n, const char *addr);

#endif /* EL_KEY_H */
