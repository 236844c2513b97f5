/* redis.h -- Redis (L2) access for many threads, with bounded waits and a
 * circuit breaker.
 *
 * One struct el_redis is shared by the whole process. Each thread that calls
 * it gets its own hiredis connection, made lazily and kept in thread-local
 * storage (a redisContext is not thread-safe), so calls never contend on a
 * lock. Every connect and command is bounded by a timeout (default 100 ms);
 * hiredis alone would block forever.
 *
 * Breaker: after a failure (refused connection, timeout, I/O error) Redis is
 * marked down and every call fails at once with EL_EUNAVAIL -- no socket is
 * touched -- until the retry interval passes; then exactly one caller probes
 * it. The interval doubles on each failed probe up to a ceiling and resets
 * once Redis answers, so a dead Redis costs requests nothing and a returning
 * one is used again within about a second. Threads whose connection died
 * reconnect on their next call after the breaker closes.
 *
 * hiredis types never cross this header. */
#ifndef EL_REDIS_H
#define EL_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/el.h"

struct el_redis;

struct el_redis_opts {
    int timeout_ms;   /* connect and command timeout; default 100 */
    int retry_min_ms; /* first breaker interval; default 250 */
    int retry_max_ms; /* breaker interval ceiling; default 2000 */
};

/* Parse url and make a handle; no connection to Redis is attempted yet. The
 * URL is one of
 *   redis://[[user]:password@]host[:port][/db]
 *   redis-sentinel://[[user]:password@]host1:port1[,host2:port2...]/master-name[/db]
 * With Sentinel, the master's address is asked of the sentinels (any one
 * that answers) on every connect, a watcher thread follows +switch-master,
 * and a move of the master starts a new epoch (see el_redis_epoch). The
 * password is for the master; sentinels are asked without one. opts may be
 * NULL for the defaults. Returns
 * EL_EINVAL (detail in err) for a malformed URL. An empty or NULL url gives
 * EL_EDISABLED and *out = NULL: every el_redis_* call accepts a NULL handle
 * and fails with EL_EDISABLED, so callers need no special case. */
int el_redis_new(const char *url, const struct el_redis_opts *opts, struct el_redis **out,
                 struct el_err *err) EL_WUR;

/* Free the handle. Per-thread connections are closed when their threads
 * exit, or by el_redis_thread_cleanup(). NULL is a no-op. Call only after
 * all threads have stopped using it. */
void el_redis_free(struct el_redis *r);

/* Close the calling thread's connection, if any (worker thread exit). */
void el_redis_thread_cleanup(struct el_redis *r);

/* 1 if the breaker is closed (Redis believed up), else 0. No I/O. */
int el_redis_is_up(struct el_redis *r);

/* The breaker's epoch: grows by one each time Redis is seen to go down, and
 * each time Sentinel moves the master.
 * A caller that remembers it can tell "Redis may have missed writes since
 * I last looked" without any I/O. */
uint64_t el_redis_epoch(struct el_redis *r);

/* GET key into out (appended). 0 when found, EL_ENOTFOUND when missing,
 * EL_EUNAVAIL / EL_ETIMEOUT when Redis cannot answer, EL_EDISABLED. */
int el_redis_get(struct el_redis *r, const char *key, struct el_buf *out) EL_WUR;

/* SET key val with a TTL in milliseconds (PX); ttl_ms <= 0 means no TTL. */
int el_redis_set(struct el_redis *r, const char *key, const void *val, size_t len,
                 int64_t ttl_ms) EL_WUR;

/* DEL key (missing keys are not an error). */
int el_redis_del(struct el_redis *r, const char *key) EL_WUR;

/* INCR key; the new value in *out (may be NULL). */
int el_redis_incr(struct el_redis *r, const char *key, int64_t *out) EL_WUR;

/* GET key as a decimal integer: EL_ENOTFOUND when missing, EL_EPROTO when
 * not an integer. */
int el_redis_get_int(struct el_redis *r, const char *key, int64_t *out) EL_WUR;

#define EL_REDIS_GET_EACH_MAX 8

/* GET n keys (n <= EL_REDIS_GET_EACH_MAX) in one round trip, as n
 * single-key commands in one pipeline, run in this order (a key read later
 * sees every write Redis took before an earlier one was read); unlike MGET
 * the keys need not share a Redis Cluster slot. found[i] = 1 and the value
 * appended to vals[i] for each key present, found[i] = 0 for each missing. */
int el_redis_get_each(struct el_redis *r, int n, const char *const *keys, struct el_buf *vals,
                      int *found) EL_WUR;

/* Count an event in a fixed window: INCR key, and give it a TTL of
 * window_ms when the increment created it; atomic (one EVAL). The new count
 * in *count. */
int el_redis_incr_window(struct el_redis *r, const char *key, int64_t window_ms,
                         int64_t *count) EL_WUR;

/* DECR key if it holds a positive integer, atomically (one EVAL); a
 * missing key stays missing. Gives back a count taken by incr_window. */
int el_redis_decr_positive(struct el_redis *r, const char *key) EL_WUR;

/* PTTL: remaining TTL in ms, -1 without TTL, -2 when missing. */
int el_redis_pttl(struct el_redis *r, const char *key, int64_t *ms) EL_WUR;

/* PING; 0 when Redis answered. Also the breaker's probe. */
int el_redis_ping(struct el_redis *r) EL_WUR;

/* SET key val NX PX ttl_ms: EL_OK when set, EL_ECONFLICT when the key
 * already exists (a fill must not overwrite a newer write; a lease is held
 * by someone else). */
int el_redis_set_nx(struct el_redis *r, const char *key, const void *val, size_t len,
                    int64_t ttl_ms) EL_WUR;

/* Versioned values (the version guard of tiered.c). A versioned value is
 * stored as "#<version>:" followed by the bytes, so the version travels with
 * the value into every process that reads it.
 *
 * el_redis_set_versioned: SET key to version + val with a TTL, atomically
 * (one EVAL on one key), unless key already holds a value with a higher
 * version: caches never go backwards, whatever order writers' cache updates
 * arrive in. EL_OK when written, EL_ECONFLICT when a newer version is there
 * (left as it is). An equal version is rewritten (same bytes, new TTL).
 *
 * el_redis_get_versioned: GET key; appends the bytes after the header to
 * out and sets *version (0 for a value without a header). */
int el_redis_set_versioned(struct el_redis *r, const char *key, uint64_t version, const void *val,
                           size_t len, int64_t ttl_ms) EL_WUR;
int el_redis_get_versioned(struct el_redis *r, const char *key, struct el_buf *out,
                           uint64_t *version) EL_WUR;

/* Hold a lease: SET key owner PX ttl_ms when key is absent or already
 * owner's (taking or renewing it), atomically. EL_OK when owner holds it
 * now, EL_ECONFLICT when another owner does. */
int el_redis_lease(struct el_redis *r, const char *key, const char *owner, int64_t ttl_ms) EL_WUR;

/* DEL key only if its value is val (releasing a lease we own), atomically. */
int el_redis_del_if(struct el_redis *r, const char *key, const char *val) EL_WUR;

/* ---- topology (Sentinel, replicas) ---------------------------------------- */

#define EL_REDIS_ID_MAX 48 /* a server's run_id (40 hex digits) and NUL */

/* What the handle knows of the server it talks to, as of the last connect
 * (no I/O). Every connect checks with ROLE that the server is a master and
 * reads its run_id (which changes when it restarts; a promoted replica has
 * its own). */
struct el_redis_topology {
    int sentinel;          /* 1 for a redis-sentinel:// URL */
    char master_name[128]; /* Sentinel's name for the master */
    char host[256];        /* the master's address ("" until known) */
    int port;
    char run_id[EL_REDIS_ID_MAX]; /* "" until connected */
    int replicas;                 /* connected replicas, per ROLE */
    uint64_t switches;            /* master moves seen (Sentinel) */
};
void el_redis_topology(struct el_redis *r, struct el_redis_topology *out);

/* ---- hashes (auth's revocation buckets) -------------------------------------- */

#define EL_REDIS_HMGET_FIELDS 4
#define EL_REDIS_BATCH_MAX 8

/* One HMGET of a batch: up to EL_REDIS_HMGET_FIELDS fields of key. */
struct el_redis_hmget {
    const char *key;
    int n;
    const char *fields[EL_REDIS_HMGET_FIELDS];
    struct el_buf *vals;              /* n buffers; a value is appended */
    int found[EL_REDIS_HMGET_FIELDS]; /* set by the call */
};

/* Run n (<= EL_REDIS_BATCH_MAX) HMGETs in one round trip. Each is a
 * single-key command, so a batch is valid on Redis Cluster whatever slots
 * its keys hash to. server (may be NULL) gets the run_id of the server that
 * answered all of them. */
int el_redis_hmget_batch(struct el_redis *r, int n, struct el_redis_hmget *q, char *server) EL_WUR;

/* HSET key with n field/value pairs (one command). */
int el_redis_hset(struct el_redis *r, const char *key, int n, const char *const *fields,
                  const char *const *vals, const size_t *lens) EL_WUR;

/* HSET one field, and when the master has replicas, WAIT until one of them
 * has it (within about 3/4 of the handle's timeout). *acked: replicas that
 * acknowledged, or -1 when the master has none. server (may be NULL) gets
 * the run_id of the server that took the write. */
int el_redis_hset_replicated(struct el_redis *r, const char *key, const char *field,
                             const void *val, size_t len, int *acked, char *server) EL_WUR;

/* HDEL key field. */
int el_redis_hdel(struct el_redis *r, const char *key, const char *field) EL_WUR;

/* EVAL script over one key with nargs (<= 8) arguments; an integer reply
 * in *out (may be NULL); server (may be NULL) gets the run_id of the
 * server that ran it. */
int el_redis_eval_int(struct el_redis *r, const char *script, const char *key, int nargs,
                      const char *const *args, int64_t *out, char *server) EL_WUR;

/* ---- hashes and server info (stats) -------------------------------------- */

/* Raise field[i] of hash own_key to totals[i] (never lowers it) and add
 * what it rose by to field[i] of hash sum_key, for i < n: one round trip
 * (EVAL), atomically. Idempotent: sending the same or older totals again
 * (a retry after a reply that timed out) adds nothing. own_key expires a
 * week after its last use. */
int el_redis_hadd_totals(struct el_redis *r, const char *sum_key, const char *own_key, int n,
                         const char *const *fields, const uint64_t *totals) EL_WUR;

/* HGETALL key, calling fn for each field with its value as an integer. */
typedef void (*el_redis_field_fn)(const char *field, int64_t value, void *arg);
int el_redis_hgetall_int(struct el_redis *r, const char *key, el_redis_field_fn fn,
                         void *arg) EL_WUR;

/* INFO section (the raw text appended to out); DBSIZE. */
int el_redis_info(struct el_redis *r, const char *section, struct el_buf *out) EL_WUR;
int el_redis_dbsize(struct el_redis *r, int64_t *n) EL_WUR;

/* ---- pub/sub ---------------------------------------------------------- */

/* PUBLISH msg on channel (through the calling thread's connection). */
int el_redis_publish(struct el_redis *r, const char *channel, const char *msg, size_t len) EL_WUR;

/* A subscription on its own connection (not thread-local, not behind the
 * breaker), for one subscriber thread. */
struct el_redis_sub;
typedef void (*el_redis_sub_fn)(const char *msg, size_t len, void *arg);

/* Connect (AUTH as the URL says) and SUBSCRIBE to channel, within the
 * handle's timeout. On failure a one-line reason is put in why. */
int el_redis_sub_open(struct el_redis *r, const char *channel, struct el_redis_sub **out, char *why,
                      size_t whylen) EL_WUR;

/* Wait up to wait_ms for messages and pass each one's payload to fn.
 * EL_EUNAVAIL when the connection is lost (close it and open a new one). */
int el_redis_sub_poll(struct el_redis_sub *s, int wait_ms, el_redis_sub_fn fn, void *arg) EL_WUR;

void el_redis_sub_close(struct el_redis_sub *s);

#endif /* EL_REDIS_H */
