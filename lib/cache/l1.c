/* l1.c -- the in-process response cache (see l1.h).
 *
 * Key decision: lock striping plus S3-FIFO. The key's 64-bit hash picks a
 * shard; each shard is an independent cache with its own mutex, byte budget,
 * chained hash table and S3-FIFO queues, so a hit costs one hash, one short
 * critical section (find, bump a 2-bit counter, take a blob reference) and
 * touches nothing that other shards use. FIFO queues, unlike LRU, do not
 * reorder on a hit, which is what keeps that critical section short.
 *
 * S3-FIFO, per shard (Yang et al., SOSP 2023):
 *   - a new key enters the small FIFO (~10% of the shard budget), unless its
 *     hash is in the ghost FIFO, in which case it goes straight to main;
 *   - a hit only raises the entry's frequency (saturating at 3);
 *   - evicting from small: an entry hit at least once moves to main (its
 *     counter reset), one never hit leaves and its hash enters the ghost;
 *   - evicting from main: an entry with frequency > 0 is reinserted at the
 *     head with frequency - 1, otherwise it leaves;
 *   - the ghost remembers as many hashes as main holds entries.
 * One-hit wonders (a scan, a crawler) thus pass through small without ever
 * touching the hot set in main. An entry whose TTL has passed is dropped
 * whenever a lookup or an eviction meets it, before any live entry.
 *
 * Shard count: EL_L1_SHARDS, halved until each shard has at least
 * MIN_SHARD_BYTES (down to one shard), so a small budget is not cut into
 * slices too thin to hold an ordinary response. Every shard gets
 * max_bytes / nshards, so the sum never exceeds max_bytes; an entry larger
 * than one shard's budget is refused with EL_ETOOBIG.
 *
 * Accounting: an entry costs what the allocator really holds for it -- its
 * blob and its entry struct with the key, each measured with
 * malloc_usable_size (header, rounding to the size class) -- plus
 * INDEX_OVERHEAD, its share of the index: bucket slots (the table doubles
 * at load 1: up to two per entry) and the ghost's ring and index slots
 * (sized like main, rounded up to a power of two: up to two of each per
 * entry). So the budget bounds real memory, not body bytes; what is left
 * over is a fixed overhead (the shard array, the allocator's own
 * bookkeeping and free lists), measured by bench/l1_footprint.c. A blob
 * cached under two keys is counted twice.
 *
 * The allocator: glibc serves blocks under its mmap threshold from per-
 * thread arenas, and raises that threshold each time it frees an mmap'd
 * block -- so after a while every blob comes from an arena, and the churn
 * of a full cache (evict one size, fill another) leaves the arenas holey:
 * measured, RSS reached 2.1 x the budget. With the threshold fixed at
 * MMAP_THRESHOLD (which also stops the raising), blobs above it are
 * mmap'd and given back whole when evicted, and RSS stays near 1.1 x the
 * budget (bench/l1_footprint.c, docs/benchmarks.md). el_l1_new sets it for
 * the process; a blob's mmap'd size (rounded to pages) is what
 * malloc_usable_size reports, so the accounting holds either way.
 *
 * Entries are never freed under a shard lock: removed ones are collected on a
 * local list and their blobs released after the unlock, so a blob's last
 * reference (free()) never lengthens anyone's critical section. */
#include "cache/l1.h"
#include "cache/testing.h"

#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MIN_SHARD_BYTES ((size_t)64 * 1024)
#define SMALL_PERCENT 10 /* small FIFO share of a shard's budget */
#define FREQ_MAX 3       /* 2-bit counter */
#define MOVE_MIN_FREQ 1  /* hits needed in small to be promoted to main */
#define BUCKETS_INIT 16
#define GHOST_MIN 16               /* ghost length while main is still (nearly) empty */
#define MMAP_THRESHOLD (16 * 1024) /* see "The allocator" above */

enum queue_id { Q_SMALL, Q_MAIN };

struct entry {
    struct entry *hnext;  /* hash chain; also the "to free" list once removed */
    struct entry *newer;  /* toward the queue head */
    struct entry *older;  /* toward the queue tail (next victim) */
    struct el_blob *blob; /* one reference, owned by the entry */
    uint64_t hash;
    uint64_t expires_ms;
    size_t size; /* accounted bytes */
    uint32_t keylen;
    uint8_t freq;
    uint8_t queue; /* enum queue_id */
    char key[];    /* NUL-terminated */
};

struct fifo {
    struct entry *head; /* newest */
    struct entry *tail; /* oldest */
    size_t bytes;
    size_t count;
};

/* One ghost index slot: a hash and the ring sequence number of its latest
 * insertion. hash == 0 marks an empty slot (hashes are stored with 0 mapped
 * to 1; a rare false match only nudges the policy). */
struct ghost_slot {
    uint64_t hash;
    uint64_t seq;
};

/* The ghost FIFO: a ring of hashes (live sequence numbers tail..head-1) and
 * an open-addressing index over it for O(1) membership. The index slot keeps
 * the seq of the latest insertion, so popping an old ring position removes
 * the key only if it was not re-inserted since, and taking a key out (ghost
 * hit) leaves a stale ring position that pops as a no-op. */
struct ghost {
    uint64_t *ring;
    size_t ring_mask; /* capacity - 1; capacity is a power of two */
    uint64_t head;    /* seq of the next insertion */
    uint64_t tail;    /* seq of the oldest live ring position */
    struct ghost_slot *idx;
    size_t idx_mask; /* index size (2 x ring capacity) - 1 */
};

/* Aligned to a cache line so two shards' mutexes never share one. */
struct shard {
    _Alignas(64) pthread_mutex_t lock;
    struct entry **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
    size_t bytes;
    size_t budget;
    size_t small_target;
    struct fifo small;
    struct fifo main;
    struct ghost ghost;
    uint64_t evictions;
    uint64_t expired;
};

struct el_l1 {
    size_t max_bytes;
    unsigned nshards; /* 0 when disabled */
    struct shard *shards;
};

/* Two bucket slots, and two ring + four index slots of ghost (see the
 * accounting note above). */
#define INDEX_OVERHEAD                                                                             \
    (2 * sizeof(struct entry *) + 2 * sizeof(uint64_t) + 4 * sizeof(struct ghost_slot))

/* 128-bit multiply folded to 64 bits: the mixing step of wyhash. */
static uint64_t mum(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;

    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/* A wyhash-style hash, eight bytes per step: keys are ~20-80 bytes, where
 * byte-at-a-time FNV would be the most expensive part of a hit. High bits
 * pick the shard, low bits the bucket, so both need to be well mixed. */
static uint64_t hash_key(const char *key, size_t len)
{
    const unsigned char *p = (const unsigned char *)key;
    uint64_t h = 0xa0761d6478bd642fULL ^ mum(len, 0xe7037ed1a0b428dbULL);
    uint64_t w;
    size_t n = len;

    for (; n >= 8; n -= 8, p += 8) {
        memcpy(&w, p, 8);
        h = mum(h ^ w, 0xe7037ed1a0b428dbULL);
    }
    if (n) {
        w = 0;
        memcpy(&w, p, n);
        h = mum(h ^ w, 0x8ebc6af09c88c6e3ULL);
    }
    return mum(h, 0x589965cc75374cc3ULL);
}

static void lock(struct shard *s)
{
    el_must(pthread_mutex_lock(&s->lock));
}

static void unlock(struct shard *s)
{
    el_must(pthread_mutex_unlock(&s->lock));
}

static struct shard *shard_of(struct el_l1 *c, uint64_t h)
{
    return &c->shards[(h >> 40) & (c->nshards - 1)];
}

/* ---- FIFO queues ---------------------------------------------------------- */

static struct fifo *queue_of(struct shard *s, const struct entry *e)
{
    return e->queue == Q_MAIN ? &s->main : &s->small;
}

static void fifo_push(struct fifo *q, struct entry *e)
{
    e->newer = NULL;
    e->older = q->head;
    if (q->head)
        q->head->newer = e;
    else
        q->tail = e;
    q->head = e;
    q->bytes += e->size;
    q->count++;
}

static void fifo_unlink(struct fifo *q, struct entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        q->head = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        q->tail = e->newer;
    q->bytes -= e->size;
    q->count--;
}

/* ---- ghost ---------------------------------------------------------------- */

static struct ghost_slot *ghost_find(struct ghost *g, uint64_t h)
{
    for (size_t i = h & g->idx_mask;; i = (i + 1) & g->idx_mask) {
        if (g->idx[i].hash == h)
            return &g->idx[i];
        if (g->idx[i].hash == 0)
            return NULL;
    }
}

/* Backward-shift deletion keeps linear probing correct without tombstones. */
static void ghost_idx_remove(struct ghost *g, struct ghost_slot *slot)
{
    size_t i = (size_t)(slot - g->idx);
    size_t j = i;

    for (;;) {
        j = (j + 1) & g->idx_mask;
        if (g->idx[j].hash == 0)
            break;
        size_t home = g->idx[j].hash & g->idx_mask;
        /* Move j back into the hole at i unless its home lies in (i, j]. */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            g->idx[i] = g->idx[j];
            i = j;
        }
    }
    g->idx[i].hash = 0;
}

static void ghost_idx_set(struct ghost *g, uint64_t h, uint64_t seq)
{
    size_t i = h & g->idx_mask;

    while (g->idx[i].hash != 0 && g->idx[i].hash != h)
        i = (i + 1) & g->idx_mask;
    g->idx[i].hash = h;
    g->idx[i].seq = seq;
}

static void ghost_pop(struct ghost *g)
{
    uint64_t seq = g->tail++;
    struct ghost_slot *slot = ghost_find(g, g->ring[seq & g->ring_mask]);

    if (slot && slot->seq == seq)
        ghost_idx_remove(g, slot);
}

/* Double the ghost (or allocate it). On failure the ghost keeps its size:
 * a shorter memory only costs hit ratio. */
static bool ghost_grow(struct ghost *g)
{
    size_t cap = g->ring ? (g->ring_mask + 1) * 2 : GHOST_MIN;
    uint64_t *ring = malloc(cap * sizeof(*ring));
    struct ghost_slot *idx = calloc(cap * 2, sizeof(*idx));
    struct ghost old = *g;

    if (ring == NULL || idx == NULL) {
        free(ring);
        free(idx);
        return false;
    }
    for (uint64_t seq = g->tail; seq != g->head; seq++)
        ring[seq & (cap - 1)] = g->ring[seq & g->ring_mask];
    g->ring = ring;
    g->ring_mask = cap - 1;
    g->idx = idx;
    g->idx_mask = cap * 2 - 1;
    if (old.ring) {
        for (size_t i = 0; i <= old.idx_mask; i++)
            if (old.idx[i].hash)
                ghost_idx_set(g, old.idx[i].hash, old.idx[i].seq);
    }
    free(old.ring);
    free(old.idx);
    return true;
}

/* Remember h as recently evicted from small; the ghost keeps about as many
 * hashes as main holds entries (never fewer than GHOST_MIN). */
static void ghost_push(struct ghost *g, uint64_t h, size_t limit)
{
    h = h ? h : 1;
    if (limit < GHOST_MIN)
        limit = GHOST_MIN;
    if ((g->ring == NULL || limit > g->ring_mask + 1) && !ghost_grow(g) && g->ring == NULL)
        return;
    if (limit > g->ring_mask + 1)
        limit = g->ring_mask + 1;
    while (g->head - g->tail >= limit)
        ghost_pop(g);
    g->ring[g->head & g->ring_mask] = h;
    ghost_idx_set(g, h, g->head);
    g->head++;
}

/* True if h was in the ghost; it is removed (it is being readmitted). */
static bool ghost_take(struct ghost *g, uint64_t h)
{
    struct ghost_slot *slot;

    if (g->ring == NULL)
        return false;
    slot = ghost_find(g, h ? h : 1);
    if (slot == NULL)
        return false;
    ghost_idx_remove(g, slot);
    return true;
}

static void ghost_reset(struct ghost *g)
{
    free(g->ring);
    free(g->idx);
    memset(g, 0, sizeof(*g));
}

/* ---- hash table ----------------------------------------------------------- */

/* The link that points at key's entry, or NULL when key is absent. */
static struct entry **find_link(struct shard *s, uint64_t h, const char *key, size_t len)
{
    struct entry **link = &s->buckets[h & (s->nbuckets - 1)];

    for (; *link; link = &(*link)->hnext) {
        struct entry *e = *link;
        if (e->hash == h && e->keylen == len && memcmp(e->key, key, len) == 0)
            return link;
    }
    return NULL;
}

/* Double the bucket array once the load passes 1. This allocates under the
 * lock, but only O(log n) times in a shard's life; on failure chains just
 * get longer. */
static void maybe_grow(struct shard *s)
{
    size_t n = s->nbuckets * 2;
    struct entry **b;

    if (s->count < s->nbuckets)
        return;
    b = calloc(n, sizeof(*b)); /* NOLINT(bugprone-sizeof-expression): an array of pointers */
    if (b == NULL)
        return;
    for (size_t i = 0; i < s->nbuckets; i++) {
        struct entry *e = s->buckets[i], *next;
        for (; e; e = next) {
            next = e->hnext;
            e->hnext = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = n;
}

/* ---- removal and eviction ------------------------------------------------- */

/* Take e out of the table and its queue (already unlinked from the queue
 * when in_queue is false) and push it on *freed for release after unlock. */
static void remove_entry(struct shard *s, struct entry *e, bool in_queue, struct entry **freed)
{
    struct entry **link = &s->buckets[e->hash & (s->nbuckets - 1)];

    while (*link != e)
        link = &(*link)->hnext;
    *link = e->hnext;
    if (in_queue)
        fifo_unlink(queue_of(s, e), e);
    s->count--;
    s->bytes -= e->size;
    e->hnext = *freed;
    *freed = e;
}

static void free_entries(struct entry *e)
{
    struct entry *next;

    for (; e; e = next) {
        next = e->hnext;
        el_blob_unref(e->blob);
        free(e);
    }
}

static bool expired(const struct entry *e, uint64_t now_ms)
{
    return now_ms >= e->expires_ms;
}

/* One step at the small FIFO's tail: drop it if expired, promote it to main
 * if it was hit, otherwise evict it and remember its hash in the ghost. */
static void evict_small(struct shard *s, uint64_t now_ms, struct entry **freed)
{
    struct entry *t = s->small.tail;

    fifo_unlink(&s->small, t);
    if (expired(t, now_ms)) {
        s->expired++;
        remove_entry(s, t, false, freed);
    } else if (t->freq >= MOVE_MIN_FREQ) {
        /* Hits in probation bought the promotion; from here on the counter
         * measures reuse in main (measured slightly better than keeping it). */
        t->freq = 0;
        t->queue = Q_MAIN;
        fifo_push(&s->main, t);
    } else {
        s->evictions++;
        ghost_push(&s->ghost, t->hash, s->main.count);
        remove_entry(s, t, false, freed);
    }
}

/* One step at the main FIFO's tail: drop it if expired, give it another
 * round (costing one unit of frequency) if it was hit, else evict it. */
static void evict_main(struct shard *s, uint64_t now_ms, struct entry **freed)
{
    struct entry *t = s->main.tail;

    fifo_unlink(&s->main, t);
    if (expired(t, now_ms)) {
        s->expired++;
        remove_entry(s, t, false, freed);
    } else if (t->freq > 0) {
        t->freq--;
        fifo_push(&s->main, t);
    } else {
        s->evictions++;
        remove_entry(s, t, false, freed);
    }
}

/* Evict until need more bytes fit. Terminates: each step removes an entry,
 * shrinks small, or spends a unit of some main entry's frequency. The
 * caller guarantees need <= budget. */
static void make_room(struct shard *s, size_t need, uint64_t now_ms, struct entry **freed)
{
    while (s->bytes + need > s->budget) {
        if (s->small.tail && (s->small.bytes >= s->small_target || s->main.tail == NULL))
            evict_small(s, now_ms, freed);
        else if (s->main.tail)
            evict_main(s, now_ms, freed);
        else
            break;
    }
}

/* ---- public API ----------------------------------------------------------- */

struct el_l1 *el_l1_new(size_t max_bytes)
{
    struct el_l1 *c = calloc(1, sizeof(*c));
    pthread_mutexattr_t attr;
    unsigned n = EL_L1_SHARDS, i;

    if (c == NULL)
        return NULL;
    c->max_bytes = max_bytes;
    if (max_bytes == 0)
        return c;
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    while (n > 1 && max_bytes / n < MIN_SHARD_BYTES)
        n /= 2;
    c->shards = aligned_alloc(_Alignof(struct shard), n * sizeof(struct shard));
    if (c->shards == NULL)
        goto fail;
    memset(c->shards, 0, n * sizeof(struct shard));
    if (pthread_mutexattr_init(&attr) != 0)
        goto fail;
    /* Critical sections are a few dozen instructions: spin briefly before
     * sleeping rather than paying a futex round trip on every collision. */
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
    for (i = 0; i < n; i++) {
        struct shard *s = &c->shards[i];
        s->budget = max_bytes / n;
        s->small_target = s->budget / 100 * SMALL_PERCENT;
        s->nbuckets = BUCKETS_INIT;
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
        s->buckets = calloc(s->nbuckets, sizeof(*s->buckets));
        if (s->buckets == NULL || pthread_mutex_init(&s->lock, &attr) != 0) {
            free(s->buckets);
            break;
        }
        c->nshards++;
    }
    pthread_mutexattr_destroy(&attr);
    if (c->nshards == n)
        return c;
fail:
    el_l1_free(c);
    return NULL;
}

void el_l1_free(struct el_l1 *c)
{
    if (c == NULL)
        return;
    for (unsigned i = 0; i < c->nshards; i++) {
        struct shard *s = &c->shards[i];
        for (size_t b = 0; b < s->nbuckets; b++)
            free_entries(s->buckets[b]);
        free(s->buckets);
        ghost_reset(&s->ghost);
        pthread_mutex_destroy(&s->lock);
    }
    free(c->shards);
    free(c);
}

struct el_blob *el_l1_get(struct el_l1 *c, const char *key, uint64_t now_ms, uint64_t *expires_at)
{
    size_t len;
    uint64_t h;
    struct shard *s;
    struct entry **link, *e, *freed = NULL;
    struct el_blob *b = NULL;

    if (c == NULL || c->nshards == 0 || key == NULL)
        return NULL;
    len = strlen(key);
    h = hash_key(key, len);
    s = shard_of(c, h);
    lock(s);
    link = find_link(s, h, key, len);
    if (link) {
        e = *link;
        if (expired(e, now_ms)) {
            s->expired++;
            remove_entry(s, e, true, &freed);
        } else {
            if (e->freq < FREQ_MAX)
                e->freq++;
            b = el_blob_ref(e->blob);
            if (expires_at)
                *expires_at = e->expires_ms;
        }
    }
    unlock(s);
    free_entries(freed);
    return b;
}

int el_l1_put(struct el_l1 *c, const char *key, struct el_blob *blob, uint64_t expires_ms,
              uint64_t now_ms)
{
    size_t len, size;
    uint64_t h;
    struct shard *s;
    struct entry **link, *e, *old, *freed = NULL;

    if (c == NULL || key == NULL || blob == NULL)
        return EL_EINVAL;
    if (c->nshards == 0)
        return EL_OK;
    len = strlen(key);
    if (len > UINT32_MAX)
        return EL_EINVAL;
    h = hash_key(key, len);
    s = shard_of(c, h);
    /* Too big, dead on arrival or out of memory: cache nothing, but still
     * drop the old entry -- the caller is replacing it, so it is stale now. */
    if (el_blob_footprint(blob) + len + INDEX_OVERHEAD > s->budget || now_ms >= expires_ms) {
        el_l1_del(c, key);
        return now_ms >= expires_ms ? EL_OK : EL_ETOOBIG;
    }
    /* Allocate and copy outside the lock. */
    e = malloc(offsetof(struct entry, key) + len + 1);
    if (e == NULL) {
        el_l1_del(c, key);
        return EL_ENOMEM;
    }
    size = el_blob_footprint(blob) + malloc_usable_size(e) + INDEX_OVERHEAD;
    if (size > s->budget) {
        free(e);
        el_l1_del(c, key);
        return EL_ETOOBIG;
    }
    memcpy(e->key, key, len + 1);
    e->keylen = (uint32_t)len;
    e->hash = h;
    e->expires_ms = expires_ms;
    e->size = size;
    e->blob = el_blob_ref(blob);
    e->freq = 0;
    e->queue = Q_SMALL;

    lock(s);
    link = find_link(s, h, key, len);
    if (link && (*link)->blob->version > blob->version && !expired(*link, now_ms)) {
        /* The version guard: an older document never replaces a newer
         * one, whatever order writers and fills arrive in. */
        unlock(s);
        el_blob_unref(e->blob);
        free(e);
        return EL_ECONFLICT;
    }
    if (link) {
        /* A replacement keeps the old entry's standing (queue, frequency):
         * refreshing a hot key must not demote it to probation. */
        old = *link;
        e->queue = old->queue;
        e->freq = old->freq;
        remove_entry(s, old, true, &freed);
    } else if (ghost_take(&s->ghost, h)) {
        e->queue = Q_MAIN;
    }
    make_room(s, size, now_ms, &freed);
    maybe_grow(s);
    e->hnext = s->buckets[h & (s->nbuckets - 1)];
    s->buckets[h & (s->nbuckets - 1)] = e;
    fifo_push(queue_of(s, e), e);
    s->count++;
    s->bytes += size;
    unlock(s);
    free_entries(freed);
    return EL_OK;
}

void el_l1_del(struct el_l1 *c, const char *key)
{
    size_t len;
    uint64_t h;
    struct shard *s;
    struct entry **link, *freed = NULL;

    if (c == NULL || c->nshards == 0 || key == NULL)
        return;
    len = strlen(key);
    h = hash_key(key, len);
    s = shard_of(c, h);
    lock(s);
    link = find_link(s, h, key, len);
    if (link)
        remove_entry(s, *link, true, &freed);
    unlock(s);
    free_entries(freed);
}

/* Remove the entries of one queue whose key starts with prefix (all of them
 * when prefix is NULL). */
static void drop_matching(struct shard *s, struct fifo *q, const char *prefix, size_t plen,
                          struct entry **freed)
{
    struct entry *e = q->head, *older;

    for (; e; e = older) {
        older = e->older;
        if (prefix == NULL || (e->keylen >= plen && memcmp(e->key, prefix, plen) == 0))
            remove_entry(s, e, true, freed);
    }
}

static void drop_all_matching(struct el_l1 *c, const char *prefix)
{
    size_t plen = prefix ? strlen(prefix) : 0;

    if (c == NULL)
        return;
    for (unsigned i = 0; i < c->nshards; i++) {
        struct shard *s = &c->shards[i];
        struct entry *freed = NULL;
        struct ghost ghost = {0};
        lock(s);
        drop_matching(s, &s->small, prefix, plen, &freed);
        drop_matching(s, &s->main, prefix, plen, &freed);
        if (prefix == NULL) {
            /* A cleared cache starts without history, too. */
            ghost = s->ghost;
            memset(&s->ghost, 0, sizeof(s->ghost));
        }
        unlock(s);
        ghost_reset(&ghost);
        free_entries(freed);
    }
}

void el_l1_del_prefix(struct el_l1 *c, const char *prefix)
{
    if (prefix)
        drop_all_matching(c, prefix);
}

void el_l1_clear(struct el_l1 *c)
{
    drop_all_matching(c, NULL);
}

void el_l1_stats(struct el_l1 *c, struct el_l1_stats *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof(*out));
    if (c == NULL)
        return;
    out->max_bytes = c->max_bytes;
    for (unsigned i = 0; i < c->nshards; i++) {
        struct shard *s = &c->shards[i];
        lock(s);
        out->bytes += s->bytes;
        out->entries += s->count;
        out->evictions += s->evictions;
        out->expired += s->expired;
        unlock(s);
    }
}
