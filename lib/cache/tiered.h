/* tiered.h -- the read path: L1 -> L2 (Redis) -> L3 (a loader that queries
 * the store), filling the layers above on the way back.
 *
 *  - L1 and L2 hold the same bytes: the JSON body of a 200, or nothing (an
 *    empty Redis value) for a cached 404. An L1 hit does no I/O and no JSON
 *    work.
 *  - Single flight: concurrent misses for one key in this process make one
 *    L2 read and at most one load; the others wait for that result.
 *  - TTLs get +-10 % jitter so keys filled together do not expire together;
 *    not-found results are cached for neg_ttl_ms (negative caching).
 *  - Redis failures are absorbed: the breaker in redis.c makes them cost
 *    nothing, and the read goes on to the store. A store failure with nothing
 *    cached is returned to the caller (the app answers 503).
 *
 * Thread-safe. One struct el_tiered per cached resource type; they may share
 * one L1 and one Redis handle. */
#ifndef EL_TIERED_H
#define EL_TIERED_H

#include <stdint.h>

#include "core/blob.h"
#include "core/buf.h"
#include "core/el.h"
#include "cache/l1.h"
#include "cache/redis.h"
#include "cache/bus.h"
#include "obs/stats.h"

struct el_tiered;

struct el_tiered_opts {
    enum el_cache_type type; /* for the counters */
    int64_t ttl_ms;          /* base TTL of a found document */
    int64_t neg_ttl_ms;      /* TTL of a cached not-found; default 30 s */
    const char *neg_body;    /* body served for a cached not-found (404) */
    int64_t max_stale_ms;    /* L1_MAX_STALE: with the bus silent this long,
                              * an L1 entry is revalidated before use;
                              * default 1000 */
    int64_t lease_ms;        /* cluster-wide fill lease; default 2000 */
};

/* Loads one document from the store: appends its JSON to body and returns
 * 200, returns 404 when the store has no such document, returns another
 * 4xx/5xx status with an error document in body when the answer cannot be
 * built (served, and cached in L1 only, for neg_ttl_ms), or returns a
 * negative el code (EL_EUNAVAIL, EL_ENOMEM, ...) on failure. *version is 0
 * on entry; a loader of a versioned document sets it to the document's
 * revision (see "version guard" below). Called at most once per miss, by
 * the single-flight leader, from the requesting thread. */
typedef int (*el_tiered_load_fn)(void *arg, struct el_buf *body, uint64_t *version);

/* l1 and redis are borrowed and must outlive the tiered cache; either may be
 * NULL (a layer switched off). Returns NULL when out of memory. */
struct el_tiered *el_tiered_new(struct el_l1 *l1, struct el_redis *redis,
                                const struct el_tiered_opts *opts);
void el_tiered_free(struct el_tiered *t);

/* Serve key. On success returns 0, *out holds a new reference (release with
 * el_blob_unref) whose status is 200 or 404, and *layer says which layer
 * served it. On failure returns a negative code and *out is NULL. */
int el_tiered_get(struct el_tiered *t, const char *key, el_tiered_load_fn load, void *arg,
                  struct el_blob **out, enum el_layer *layer) EL_WUR;

/* The version guard. A versioned document carries its store revision,
 * which grows with every committed write; L1 and Redis replace an entry only
 * with one of an equal or higher version (el_l1_put, el_redis_set_versioned),
 * so writers' and fills' cache updates may land in any order and the caches
 * still end at the newest committed version. Version 0 means unversioned
 * (course lists): the older rules apply (fills NX, writes overwrite). */

/* A deleted document's version: above every revision, so no fill that read
 * the document before its delete can bring it back. (2^53 - 1: the guard's
 * Lua compares doubles.) */
#define EL_VERSION_DELETED ((1ULL << 53) - 1)

/* Cache a freshly written document (status 200, body) of the given version
 * under key in Redis and L1, replacing what was there unless that is newer,
 * and announce it: after a write, the next read on this process returns this
 * version or a newer one. EL_ENOMEM; Redis failures are ignored (the key is
 * cleaned from Redis later, see el_tiered_replay). */
int el_tiered_set(struct el_tiered *t, const char *key, const char *body, size_t len,
                  uint64_t version);

/* Cache a document read from the store on the way (e.g. the items of a
 * list query), as a fill: only where nothing newer is (the version guard),
 * into L1 only when Redis took it and no invalidation of key came in
 * meanwhile. No announcement. version > 0. */
void el_tiered_fill(struct el_tiered *t, const char *key, const char *body, size_t len,
                    uint64_t version);

/* After a delete: cache a not-found (neg_body, neg_ttl_ms) with version
 * EL_VERSION_DELETED under key in Redis and L1 and announce it. */
int el_tiered_set_deleted(struct el_tiered *t, const char *key);

/* After a write that leaves the document unservable (a draft): cache a
 * not-found of that version, like a delete's tombstone but replaced by the
 * next version (its publication). */
int el_tiered_set_not_found(struct el_tiered *t, const char *key, uint64_t version);

/* The part of el_tiered_get that never blocks: a new reference to key's
 * L1 entry when el_tiered_get would serve it from L1 with no other work --
 * present, unexpired, trusted (bus fresh or recently verified) and not in
 * the last tenth of its TTL (a hot key's early refresh reads the store) --
 * counted as an L1 hit; otherwise NULL, and the caller goes through
 * el_tiered_get (on a thread that may block). Touches only L1's shard lock
 * and atomics. */
struct el_blob *el_tiered_peek(struct el_tiered *t, const char *key);

/* Drop key from L1 and Redis (after a write) and tell every other process
 * through the bus. */
void el_tiered_invalidate(struct el_tiered *t, const char *key);

/* Retry the Redis side of earlier writes that failed (Redis down or
 * restarting): DEL each key and announce it. Called about every 250 ms by
 * a housekeeping thread; cheap when nothing is pending. Returns how many
 * keys are still pending (0: Redis holds no stale value we know of). */
int el_tiered_replay(struct el_redis *redis, struct el_bus *bus);

/* Coherence (see bus.h). With a bus, L1 entries are trusted only while the
 * channel is heard (or for max_stale_ms after they were last checked), a
 * miss takes a cluster-wide lease so one process in the cluster queries the
 * store while the others wait for its fill, and writes are announced. bus
 * may be NULL (single process). Set before the first request. */
void el_tiered_set_bus(struct el_tiered *t, struct el_bus *bus);

/* Bus handlers, process-wide (they serve every tiered cache): another
 * process changed key -- drop it from L1 and make any fill of it that is in
 * progress here skip caching (the fill race); messages may have been lost --
 * the same for every key (the caller clears L1); a process filled key in
 * Redis -- wake the local waiters of its lease. */
void el_tiered_dropped(struct el_l1 *l1, const char *key);
void el_tiered_dropped_all(struct el_l1 *l1);
void el_tiered_filled(const char *key);

/* The invalidation mark of key: it moves whenever key (or everything) is
 * dropped here or by a bus message. A caller that reads a value to put into
 * L1 takes the mark first and puts only if it has not moved (auth.c caches
 * sessions this way, outside the tiered read path). */
uint64_t el_tiered_mark(const char *key);

/* t's epoch: it moves after every change this process makes to t's L1
 * entries (a write, a fill, a revalidation) and after every drop of any
 * key, or of all of L1, by a write or a bus message. A caller that derives
 * something from t's L1 entries (lists.c's assembled pages) may reuse it
 * while the epoch read before deriving it has not moved. */
uint64_t el_tiered_epoch(struct el_tiered *t);

/* ttl_ms with uniform +-10 % jitter (never below 1). */
int64_t el_tiered_jitter(int64_t ttl_ms);

#endif /* EL_TIERED_H */
