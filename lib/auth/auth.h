/* auth.h -- authentication through the cache layers: logins, token
 * rotation, revocation and the per-request validation path.
 *
 * Validation of an access token costs one Redis round trip and no store
 * query: after the signature and claims (jwt.c), one MGET reads
 *   blacklisted_tokens:synced  -- Redis holds every live revocation
 *   blacklisted_tokens:{jti}   -- this token revoked (logout)
 *   blacklisted_tokens:{sid}   -- its whole login revoked (refresh reuse)
 *   user_session:{sub}         -- email, name, role (a short string, not JSON)
 * The role comes from the session, not from the token, so a role change or a
 * user deletion (which delete the session key) takes effect on the next
 * request on every process.
 *
 * Revocations are written to the store first (the truth), then to Redis.
 * Redis is trusted for revocation checks only while the sentinel key is
 * present: a Redis that restarted empty or was flushed lacks it, and the
 * first process to notice copies every live revocation back from the store
 * before setting it again. A revocation that could not be written to Redis
 * makes this process delete the sentinel as soon as Redis answers again,
 * so every process falls back to the store until the copy is complete. And
 * a process that saw Redis go down (its breaker's epoch moved -- the bus
 * heartbeat makes every process see an outage) copies the live revocations
 * into Redis again before it trusts Redis: a revocation written to the
 * store during the outage is never missed there. While
 * Redis is down, revocations are checked in the store and sessions come from
 * L1 (5 s) or the store.
 *
 * Login throttling counts failures per email (5) and per client address
 * (20) in 15-minute windows, in Redis when it is up and in a process-local
 * table when it is not. An attempt is counted (reserved) before its
 * password is checked, with one atomic increment per counter, so concurrent
 * attempts can never exceed the limits together; a failed attempt stays
 * counted, a successful or unanswered one is given back. Registration is
 * limited the same way, to 20 attempts per client address per window. */
#ifndef EL_AUTH_H
#define EL_AUTH_H

#include <stdint.h>

#include "core/el.h"
#include "auth/jwt.h"
#include "cache/l1.h"
#include "cache/redis.h"
#include "store/store.h"
#include "model/user.h"

#define EL_AUTH_MAX_FAIL_EMAIL 5
#define EL_AUTH_MAX_FAIL_IP 20
#define EL_AUTH_MAX_REGISTER_IP 20
#define EL_AUTH_FAIL_WINDOW_MS (15 * 60 * 1000)

struct el_auth;

struct el_auth_opts {
    int64_t access_ttl_s;   /* ACCESS_TOKEN_EXPIRE_MINUTES * 60 */
    int64_t refresh_ttl_s;  /* REFRESH_TOKEN_EXPIRE_DAYS * 86400 */
    int64_t session_ttl_s;  /* Redis TTL of user_session:{id}; default 3600 */
    int64_t session_l1_ms;  /* L1 TTL of a session (Redis-down path); default 5000 */
};

/* The authenticated caller of a request. */
struct el_principal {
    char id[EL_OID_HEX];
    char role[EL_ROLE_MAX];
    char email[EL_EMAIL_MAX + 1];
    char name[EL_NAME_MAX * 4 + 1];
    char jti[EL_JTI_LEN];
    char sid[EL_JTI_LEN];
    int64_t exp;            /* the access token's expiry, seconds */
};

struct el_token_pair {
    char access_token[EL_JWT_MAX];
    char refresh_token[EL_JWT_MAX];
    int64_t expires_in;     /* seconds, of the access token */
};

/* Everything is borrowed and must outlive the auth handle; redis may be NULL
 * (L2 off), l1 may be a disabled cache. */
struct el_auth *el_auth_new(struct el_jwt *jwt, struct el_store *store, struct el_redis *redis,
                            struct el_l1 *l1, const struct el_auth_opts *opts);
void el_auth_free(struct el_auth *a);

/* Validate "Bearer <token>" at now_s. 0 with *p filled; EL_EINVAL for any
 * reason to answer 401 (detail in err->msg); EL_EUNAVAIL when neither Redis
 * nor the store can say whether the token is revoked (answer 503). */
int el_auth_authenticate(struct el_auth *a, const char *authorization, int64_t now_s,
                         struct el_principal *p, struct el_err *err) EL_WUR;

/* Register a student from client (the caller's address). EL_EINVAL (422,
 * detail in err) for invalid input, EL_ECONFLICT when the email exists,
 * EL_ELIMIT when client made EL_AUTH_MAX_REGISTER_IP attempts this window
 * (*retry_after_s set), EL_EUNAVAIL. */
int el_auth_register(struct el_auth *a, const char *email, const char *password,
                     const char *name, const char *client, struct el_user *out,
                     int *retry_after_s, struct el_err *err) EL_WUR;

/* Log in: EL_ELIMIT when throttled (*retry_after_s set), EL_EINVAL for bad
 * credentials (the same work and answer for an unknown email and a wrong
 * password), EL_EUNAVAIL. */
int el_auth_login(struct el_auth *a, const char *email, const char *password, const char *client,
                  int64_t now_s, struct el_token_pair *out, int *retry_after_s,
                  struct el_err *err) EL_WUR;

/* Rotate a refresh token: exactly one of concurrent calls with the same
 * token succeeds; presenting a used token revokes its whole login. EL_EINVAL
 * (401) otherwise. */
int el_auth_refresh(struct el_auth *a, const char *refresh_token, int64_t now_s,
                    struct el_token_pair *out, struct el_err *err) EL_WUR;

/* Revoke p's access token (until its expiry) and its login (refresh tokens),
 * and drop its cached session. */
int el_auth_logout(struct el_auth *a, const struct el_principal *p, int64_t now_s) EL_WUR;

/* Drop user_id's cached session from L1 and Redis (role change, deletion). */
void el_auth_session_invalidate(struct el_auth *a, const char *user_id);

/* Housekeeping, called about every 250 ms by a background thread: after a
 * Redis outage that lost a revocation write, clear the sentinel once Redis
 * answers; copy revocations back when the sentinel is missing. */
void el_auth_tick(struct el_auth *a);

#endif /* EL_AUTH_H */
