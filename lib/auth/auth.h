/* auth.h -- authentication through the cache layers: logins, token
 * rotation, revocation and the per-request validation path.
 *
 * Validation of an access token usually costs no I/O: the local state
 * (see "Auth without a round trip" below) answers while the cache bus
 * vouches for it. Otherwise it costs one Redis round trip and no store
 * query: after the signature and claims (jwt.c), one pipeline of three
 * HMGETs reads, from the bucket (cache/key.h) of the token's jti, of its
 * login's sid and of its user, that bucket's completeness marker "@sync"
 * and the field "r:<jti>" / "r:<sid>" (revoked until ...) / "s:<sub>" (the
 * session: role, email, name). The role comes from the session, not from
 * the token, so a role change or a user deletion (which remove the
 * session field) takes effect on the next request on every process.
 *
 * Why no Redis event can bring a revoked token back. Revocations are
 * written to the store first (the truth), then to Redis. Redis is trusted
 * for a bucket only while that bucket's marker names the server that
 * answers (its INFO run_id, read when the connection was made):
 *  - eviction, FLUSHDB, a restart: revocations and marker live in one hash,
 *    so whatever removes one removes the other -- no marker, no trust;
 *  - a failover or a restarted master: the marker names the old server; a
 *    promoted replica's run_id differs, so its copy is not trusted, however
 *    complete it looks;
 *  - a write Redis did not take, or that no replica acknowledged (WAIT 1
 *    when the master has replicas), marks the bucket dirty here: this
 *    process stops trusting it at once, and el_auth_tick removes its marker
 *    (so every process stops) and copies it again;
 *  - a Redis outage or a master switch seen by this process (the epoch of
 *    el_redis moved) makes it copy every bucket before trusting any;
 *    A hang counts: every process calls Redis through the same handle
 *    each heartbeat (the bus's lease), so a hang longer than the command
 *    timeout opens its breaker and moves its epoch. That covers a
 *    revocation whose announcement and write both failed while Redis hung
 *    (in the store alone; its process takes the marker away only once it
 *    reaches Redis again): after the hang no process trusts its copy of
 *    Redis before copying every bucket from the store.
 * A bucket not trusted sends the request to the store. Copies are made
 * from the store by el_auth_tick, never on a request thread: begin (empty
 * the hash, leave a nonce), read the live revocations, write them, end (set
 * the marker) only if the nonce survived -- an eviction during the copy
 * takes the nonce too, and the bucket stays unmarked. Hash fields carry
 * their expiry in their value (Redis 7.0 has no per-field TTL); the tick
 * removes expired ones, one bucket at a time. While Redis is down,
 * revocations are checked in the store and sessions come from L1 (5 s) or
 * the store.
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
    int64_t access_ttl_s;  /* ACCESS_TOKEN_EXPIRE_MINUTES * 60 */
    int64_t refresh_ttl_s; /* REFRESH_TOKEN_EXPIRE_DAYS * 86400 */
    int64_t session_ttl_s; /* lifetime of a session cached in its Redis bucket; default 3600 */
    int64_t session_l1_ms; /* L1 TTL of a session (Redis-down path); default 5000 */
};

/* The authenticated caller of a request. */
struct el_principal {
    char id[EL_OID_HEX];
    char role[EL_ROLE_MAX];
    char email[EL_EMAIL_MAX + 1];
    char name[EL_NAME_MAX * 4 + 1];
    char jti[EL_JTI_LEN];
    char sid[EL_JTI_LEN];
    int64_t exp; /* the access token's expiry, seconds */
};

struct el_token_pair {
    char access_token[EL_JWT_MAX];
    char refresh_token[EL_JWT_MAX];
    int64_t expires_in; /* seconds, of the access token */
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

/* el_auth_authenticate's success, when the local state alone can give it:
 * the signature and claims (CPU only), then the local revocation set and
 * the session in L1 while the bus vouches for them (see "Auth without a
 * round trip"). It never blocks -- no Redis, no store, no lock held across
 * I/O -- so an event thread may call it. 0 with *p filled; EL_EUNAVAIL
 * ("not local") for anything else, a bad or revoked token included: the
 * caller then runs el_auth_authenticate, which decides and words it. */
int el_auth_check_local(struct el_auth *a, const char *authorization, int64_t now_s,
                        struct el_principal *p) EL_WUR;

/* Register a student from client (the caller's address). EL_EINVAL (422,
 * detail in err) for invalid input, EL_ECONFLICT when the email exists,
 * EL_ELIMIT when client made EL_AUTH_MAX_REGISTER_IP attempts this window
 * (*retry_after_s set), EL_EUNAVAIL. */
int el_auth_register(struct el_auth *a, const char *email, const char *password, const char *name,
                     const char *client, struct el_user *out, int *retry_after_s,
                     struct el_err *err) EL_WUR;

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

/* Housekeeping, called about every 250 ms by a background thread (and
 * once at start): take the marker off every dirty bucket, copy every
 * stale bucket (or all of them after an outage, a master switch or at
 * start) from the store, and drop expired fields of one bucket. */
void el_auth_tick(struct el_auth *a);

/* At start, before serving: wait up to wait_ms for the bus to be
 * subscribed and heard, then tick once -- the first copy into Redis and
 * the load of the local set happen before the first request, not during
 * the first ones. */
void el_auth_warm(struct el_auth *a, int wait_ms);

/* The revocation-sync state, for /health and /cache/stats (no I/O). */
struct el_auth_sync_state {
    int redis;  /* 1 when Redis is configured */
    int synced; /* 1 when this process trusts every bucket */
    int buckets, dirty, stale;
    uint64_t syncs;       /* copies from the store made by this process */
    uint64_t copied;      /* revocations copied by them */
    uint64_t lost_writes; /* writes Redis did not take or replicate */
    uint64_t store_reads; /* reads of every live revocation from the store
                           * (copies into Redis, loads of the local set) */
    int64_t last_sync_ms; /* wall clock of the last copy; 0: none */
    int local_trusted;    /* 1 when the local state may vouch now */
    uint64_t local_hits;  /* requests authenticated without a round trip */
    uint64_t nowait_hits; /* of them, by el_auth_check_local (no worker) */
};
void el_auth_sync_state(struct el_auth *a, struct el_auth_sync_state *out);

/* Auth without a round trip. With a bus, every process keeps every live
 * revocation in a local set -- loaded from the store by el_auth_tick, then
 * kept current by the bus (revocations are announced like invalidations,
 * session changes drop the "session:<id>" L1 entry everywhere) -- and
 * serves a request from it and the session in L1 with no I/O at all. It
 * trusts that state only while the bus does: no reset (gap, reconnect, lost
 * publish) and no silence longer than 600 ms since it was loaded, a message
 * heard within 600 ms (and L1_MAX_STALE), and a master switch or reconnect
 * resubscribes, which is a reset too).
 * Otherwise it asks Redis, and from there the store. A revocation reaches every process
 * within the bus bound (the revoking process applies it at once).
 * el_auth_set_bus: give the bus (borrowed; NULL turns the local path
 * off). el_auth_revoked_heard: the bus handler for another process's
 * revocation. */
struct el_bus;
void el_auth_set_bus(struct el_auth *a, struct el_bus *bus);
void el_auth_revoked_heard(struct el_auth *a, const char *id, int64_t expires_ms);
/* The bus handler for "heard again after silent_ms": a silence longer than
 * the local state's window may hide a revocation whose announcement
 * failed (see announce in auth.c), so the local set is loaded again from
 * the store before it is trusted. */
void el_auth_bus_heard(struct el_auth *a, uint64_t silent_ms);

#endif /* EL_AUTH_H */
