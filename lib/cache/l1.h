/* l1.h -- the in-process cache: bounded, thread-safe, holding ready
 * responses (struct el_blob) by key.
 *
 * Design: the key space is split over EL_L1_SHARDS shards, each with its own
 * mutex and its own share of the byte budget, so threads on different keys
 * rarely meet. Inside a shard, eviction is S3-FIFO (a small probationary
 * FIFO, a main FIFO with 2-bit frequency counters, and a ghost FIFO of
 * recently evicted keys), which keeps one-hit wonders from flushing the hot
 * set and beats LRU on skewed (Zipf) workloads. Expired entries are dropped
 * when met and preferred as victims.
 *
 * Time is a parameter (now_ms), so tests drive expiry without sleeping.
 * All functions are safe to call from any thread. */
#ifndef EL_L1_H
#define EL_L1_H

#include <stddef.h>
#include <stdint.h>

#include "core/blob.h"
#include "core/el.h"

#define EL_L1_SHARDS 64

struct el_l1;

struct el_l1_stats {
    uint64_t bytes;     /* accounted bytes in use (keys, blobs, overhead) */
    uint64_t entries;   /* live entries */
    uint64_t evictions; /* entries evicted to stay under the budget */
    uint64_t expired;   /* entries dropped because their TTL passed */
    uint64_t max_bytes; /* the configured budget */
};

/* A cache holding at most max_bytes (accounted as blob footprint + key +
 * per-entry overhead). max_bytes == 0 gives a disabled cache: every get
 * misses and every put is a no-op. Returns NULL when out of memory. */
struct el_l1 *el_l1_new(size_t max_bytes);

/* Free the cache and drop its references on every blob. NULL is a no-op. */
void el_l1_free(struct el_l1 *c);

/* A new reference to the blob cached under key and not yet expired at now_ms,
 * or NULL. The caller releases it with el_blob_unref(). When expires_at is
 * not NULL it receives the entry's expiry time. */
struct el_blob *el_l1_get(struct el_l1 *c, const char *key, uint64_t now_ms, uint64_t *expires_at);

/* Cache blob under key until expires_ms, replacing any previous entry --
 * unless that entry is live and holds a higher blob version (the version
 * guard: EL_ECONFLICT, the newer entry stays). The cache takes its own
 * reference; the caller keeps theirs. A blob larger than a shard's budget is
 * not cached (returns EL_ETOOBIG). */
int el_l1_put(struct el_l1 *c, const char *key, struct el_blob *blob, uint64_t expires_ms,
              uint64_t now_ms);

/* Remove key if present. */
void el_l1_del(struct el_l1 *c, const char *key);

/* Remove every entry. */
void el_l1_clear(struct el_l1 *c);

void el_l1_stats(struct el_l1 *c, struct el_l1_stats *out);

#endif /* EL_L1_H */
