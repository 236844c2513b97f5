/* tiered.c -- the L1 -> L2 -> L3 read path (see tiered.h).
 *
 * Four mechanisms meet here:
 *  - single flight per key in this process (below);
 *  - a cluster-wide fill lease (SET NX PX in Redis) so that of all the
 *    processes missing one key, one queries the store and the others wait
 *    for its "filled" message on the bus instead of polling;
 *  - the fill race: every key hash has an invalidation counter (plus one
 *    global epoch for resets); a miss notes it before reading, and if it
 *    moved by the time the value is back, the value is returned but not
 *    cached -- and fills write Redis with SET NX, so they never overwrite a
 *    newer write's value;
 *  - staleness: with the bus silent for max_stale_ms an L1 entry is
 *    revalidated through L2 or the store before it is served (a failure
 *    then serves it marked STALE).
 *
 * The interesting part is the miss. Concurrent misses on one key in this
 * process are collapsed into one "flight": the first thread (the leader)
 * reads Redis and, if needed, the store; the others block on the flight's
 * condition variable and take a reference to the leader's blob. Flights live
 * in a small table of mutex-protected stripes keyed by hash; a flight is
 * freed by whichever of its users leaves last.
 *
 * The leader re-checks L1 after registering its flight: a thread that missed
 * L1 just before another thread's flight completed would otherwise start a
 * second flight and query again. */
#include "cache/tiered.h"
#include "cache/testing.h"

#include "cache/key.h"
#include "core/hash.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/random.h>
#include <time.h>

#define FLIGHT_STRIPES 32

struct flight {
    struct flight *next;
    char *key;
    uint64_t hash;
    int users; /* leader + waiters still holding it */
    int done;
    int rc;               /* result for everyone */
    struct el_blob *blob; /* one reference owned by the flight */
    enum el_layer layer;
    pthread_cond_t cond;
};

struct stripe {
    pthread_mutex_t lock;
    struct flight *head;
};

struct el_tiered {
    struct el_l1 *l1;
    struct el_redis *redis;
    struct el_bus *bus;
    struct el_tiered_opts opts;
    atomic_uint_fast64_t l1_changes; /* see el_tiered_epoch */
    struct stripe stripes[FLIGHT_STRIPES];
};

/* ---- process-wide coherence state --------------------------------------- */

#define INVAL_STRIPES 1024
#define LEASE_STRIPES 32

static atomic_uint_fast64_t inval_seq[INVAL_STRIPES];
static atomic_uint_fast64_t inval_epoch;
/* Every drop here (any key, or all of L1), counted after the drop: one
 * half of el_tiered_epoch. */
static atomic_uint_fast64_t drops;

/* A thread waiting for another process to fill a key it could not lease. */
struct waiter {
    struct waiter *next;
    const char *key;
    int filled;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
};

static struct {
    pthread_mutex_t lock;
    struct waiter *head;
} waiters[LEASE_STRIPES];
static pthread_once_t waiters_once = PTHREAD_ONCE_INIT;

static void waiters_init(void)
{
    for (int i = 0; i < LEASE_STRIPES; i++)
        pthread_mutex_init(&waiters[i].lock, NULL);
}

/* Cache writes to Redis are best effort: the read they belong to has already
 * succeeded, and a failure is already counted by the breaker. */
static void best_effort(int rc)
{
    EL_UNUSED(rc);
}

static uint64_t hash_key(const char *s)
{
    return el_fnv1a64_str(s);
}

/* Keys whose Redis write after a store write (the new version, or a DEL)
 * failed: Redis may still hold the old bytes, for the rest of their TTL,
 * and other processes would read them from L2. Replayed as DEL plus an
 * announcement once Redis answers (el_tiered_replay). */
#define PENDING_MAX 4096
static pthread_mutex_t pending_lock = PTHREAD_MUTEX_INITIALIZER;
static char *pending[PENDING_MAX];
static int npending, pending_lost;
static atomic_int pending_any; /* npending != 0, read without the lock */

static void pending_add(const char *key)
{
    char *k = strdup(key);

    el_must(pthread_mutex_lock(&pending_lock));
    if (k && npending < PENDING_MAX)
        pending[npending++] = k;
    else {
        pending_lost++;
        free(k);
    }
    atomic_store(&pending_any, npending != 0);
    el_must(pthread_mutex_unlock(&pending_lock));
}

/* 1 when key waits in the queue: Redis may hold bytes older than a write
 * this process made. Its own readers must not take them from L2 either --
 * after its L1 was dropped (a bus reset, which a Redis outage brings),
 * nothing else would stop them, and the version guard has nothing to
 * compare with. Only a Redis outage fills the queue, so the scan is rare;
 * the usual cost is one atomic load. */
static int pending_has(const char *key)
{
    int found = 0;

    if (!atomic_load_explicit(&pending_any, memory_order_acquire))
        return 0;
    el_must(pthread_mutex_lock(&pending_lock));
    for (int i = 0; i < npending && !found; i++)
        found = strcmp(pending[i], key) == 0;
    el_must(pthread_mutex_unlock(&pending_lock));
    return found;
}

int el_tiered_replay(struct el_redis *redis, struct el_bus *bus)
{
    int lost, left;

    /* One key at a time off the queue, its DEL and announcement outside the
     * lock: request threads queueing keys never wait behind up to
     * PENDING_MAX Redis round trips. */
    for (;;) {
        char *key;

        el_must(pthread_mutex_lock(&pending_lock));
        key = npending > 0 ? pending[npending - 1] : NULL;
        el_must(pthread_mutex_unlock(&pending_lock));
        if (key == NULL)
            break;
        /* Left on the queue until Redis no longer holds the old bytes, so
         * pending_has answers for it throughout. Only this thread removes
         * keys; others only append, so the key is still found below. */
        if (el_redis_del(redis, key) != EL_OK)
            break; /* Redis is away again: next time */
        el_must(pthread_mutex_lock(&pending_lock));
        for (int i = npending - 1; i >= 0; i--)
            if (pending[i] == key) {
                pending[i] = pending[--npending];
                break;
            }
        atomic_store(&pending_any, npending != 0);
        el_must(pthread_mutex_unlock(&pending_lock));
        best_effort(el_bus_publish_key(bus, key));
        free(key);
    }
    el_must(pthread_mutex_lock(&pending_lock));
    lost = pending_lost;
    pending_lost = 0;
    left = npending;
    el_must(pthread_mutex_unlock(&pending_lock));
    if (lost)
        fprintf(stderr,
                "tiered: %d cache keys could not be cleaned from Redis after writes "
                "(queue full); they expire by TTL\n",
                lost);
    return left;
}

/* The invalidation mark of a key: moves whenever the key (or everything)
 * is invalidated. Both counters only grow, so their sum does too. */
static uint64_t inval_mark(uint64_t h)
{
    return atomic_load(&inval_seq[h % INVAL_STRIPES]) + atomic_load(&inval_epoch);
}

/* Put b into L1 unless key was invalidated since mark was read -- and if it
 * is invalidated while we put (an announcement handled between our check
 * and our put would have dropped the entry before it existed), take it out
 * again: what we hold may be older than what the announcement was about.
 * At worst that costs one miss. */
static void l1_put_unless_moved(struct el_tiered *t, const char *key, struct el_blob *b,
                                uint64_t expires, uint64_t h, uint64_t mark)
{
    if (t->l1 == NULL || inval_mark(h) != mark)
        return;
    best_effort(el_l1_put(t->l1, key, b, expires, el_now_ms()));
    if (inval_mark(h) != mark)
        el_l1_del(t->l1, key);
    atomic_fetch_add(&t->l1_changes, 1); /* after the change: el_tiered_epoch */
}

static int l2_get(struct el_tiered *t, const char *key, struct el_buf *body, struct el_blob **out);

/* After a write: put b (NULL: nothing of ours) into L1, where the version
 * guard orders it against this process's other writers. An invalidation of
 * key since mark -- another writer here, or another process's announcement,
 * which empties L1 and so loses the guard's knowledge -- means a newer
 * version may exist that L1 no longer shows: then L1 takes what Redis holds
 * now (the guard keeps the higher of the two), until no invalidation
 * arrives meanwhile; after a few rounds, or without Redis, the entry is
 * dropped and the next read fetches it. */
static void l1_settle(struct el_tiered *t, const char *key, uint64_t h, uint64_t mark,
                      struct el_blob *b, int64_t ttl)
{
    struct el_blob *own = NULL;
    struct el_buf body;
    int tries = 0, force = b == NULL;

    if (t->l1 == NULL)
        return;
    el_buf_init(&body, EL_RESPONSE_MAX);
    for (;;) {
        if (b)
            best_effort(el_l1_put(t->l1, key, b, el_now_ms() + (uint64_t)ttl, el_now_ms()));
        if (!force && inval_mark(h) == mark)
            break;
        force = 0;
        mark = inval_mark(h);
        el_blob_unref(own);
        own = b = NULL;
        if (tries++ == 3 || t->redis == NULL || l2_get(t, key, &body, &own) != EL_OK) {
            el_l1_del(t->l1, key);
            break;
        }
        b = own;
    }
    atomic_fetch_add(&t->l1_changes, 1); /* after the change: el_tiered_epoch */
    el_blob_unref(own);
    el_buf_cleanup(&body);
}

uint64_t el_tiered_epoch(struct el_tiered *t)
{
    return atomic_load(&t->l1_changes) + atomic_load(&drops);
}

uint64_t el_tiered_mark(const char *key)
{
    return inval_mark(hash_key(key));
}

void el_tiered_dropped(struct el_l1 *l1, const char *key)
{
    atomic_fetch_add(&inval_seq[hash_key(key) % INVAL_STRIPES], 1);
    if (l1)
        el_l1_del(l1, key);
    atomic_fetch_add(&drops, 1);
}

void el_tiered_dropped_all(struct el_l1 *l1)
{
    atomic_fetch_add(&inval_epoch, 1);
    if (l1)
        el_l1_clear(l1);
    atomic_fetch_add(&drops, 1);
}

void el_tiered_filled(const char *key)
{
    uint64_t h = hash_key(key);
    struct waiter *w;

    pthread_once(&waiters_once, waiters_init);
    el_must(pthread_mutex_lock(&waiters[h % LEASE_STRIPES].lock));
    for (w = waiters[h % LEASE_STRIPES].head; w; w = w->next)
        if (strcmp(w->key, key) == 0) {
            w->filled = 1;
            el_must(pthread_cond_signal(&w->cond));
        }
    el_must(pthread_mutex_unlock(&waiters[h % LEASE_STRIPES].lock));
}

static void waiter_add(struct waiter *w, const char *key, uint64_t h)
{
    pthread_condattr_t ca;

    pthread_once(&waiters_once, waiters_init);
    w->key = key;
    w->filled = 0;
    el_must(pthread_condattr_init(&ca));
    el_must(pthread_condattr_setclock(&ca, CLOCK_MONOTONIC));
    el_must(pthread_cond_init(&w->cond, &ca));
    pthread_condattr_destroy(&ca);
    el_must(pthread_mutex_lock(&waiters[h % LEASE_STRIPES].lock));
    w->next = waiters[h % LEASE_STRIPES].head;
    waiters[h % LEASE_STRIPES].head = w;
    el_must(pthread_mutex_unlock(&waiters[h % LEASE_STRIPES].lock));
}

/* Wait until w is filled or ms pass; returns 1 when filled. */
static int waiter_wait(struct waiter *w, uint64_t h, int64_t ms)
{
    struct timespec ts;
    int filled;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    el_must(pthread_mutex_lock(&waiters[h % LEASE_STRIPES].lock));
    while (!w->filled)
        if (pthread_cond_timedwait(&w->cond, &waiters[h % LEASE_STRIPES].lock, &ts) != 0)
            break;
    filled = w->filled;
    el_must(pthread_mutex_unlock(&waiters[h % LEASE_STRIPES].lock));
    return filled;
}

static void waiter_remove(struct waiter *w, uint64_t h)
{
    struct waiter **pp;

    el_must(pthread_mutex_lock(&waiters[h % LEASE_STRIPES].lock));
    for (pp = &waiters[h % LEASE_STRIPES].head; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    el_must(pthread_mutex_unlock(&waiters[h % LEASE_STRIPES].lock));
    pthread_cond_destroy(&w->cond);
}

struct el_tiered *el_tiered_new(struct el_l1 *l1, struct el_redis *redis,
                                const struct el_tiered_opts *opts)
{
    struct el_tiered *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return NULL;
    t->l1 = l1;
    t->redis = redis;
    t->opts = *opts;
    if (t->opts.neg_ttl_ms <= 0)
        t->opts.neg_ttl_ms = 30000;
    if (t->opts.neg_body == NULL)
        t->opts.neg_body = "{\"detail\":\"Not found\"}";
    if (t->opts.max_stale_ms <= 0)
        t->opts.max_stale_ms = 1000;
    if (t->opts.lease_ms <= 0)
        t->opts.lease_ms = 2000;
    for (int i = 0; i < FLIGHT_STRIPES; i++)
        el_must(pthread_mutex_init(&t->stripes[i].lock, NULL));
    return t;
}

void el_tiered_free(struct el_tiered *t)
{
    if (t == NULL)
        return;
    for (int i = 0; i < FLIGHT_STRIPES; i++)
        pthread_mutex_destroy(&t->stripes[i].lock);
    free(t);
}

int64_t el_tiered_jitter(int64_t ttl_ms)
{
    static __thread uint64_t state;
    int64_t span, v;

    if (state == 0) {
        if (getrandom(&state, sizeof(state), 0) != sizeof(state))
            state = el_now_us();
        state |= 1;
    }
    /* xorshift64: cheap, per-thread, good enough to spread expiries. */
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    span = ttl_ms / 10;
    v = ttl_ms;
    if (span > 0)
        v += (int64_t)(state % (uint64_t)(2 * span + 1)) - span;
    return v < 1 ? 1 : v;
}

/* Make the blob for a 200 (body) or a cached not-found (neg_body). */
static struct el_blob *make_blob(struct el_tiered *t, int status, const char *body, size_t len,
                                 uint64_t version)
{
    struct el_blob *b = status == 404 ? el_blob_new(404, t->opts.neg_body, strlen(t->opts.neg_body))
                                      : el_blob_new(status, body, len);

    if (b)
        b->version = version;
    return b;
}

/* Write a value into Redis for a fill or a write: versioned values through
 * the guard (never over a newer version), unversioned ones plainly
 * (overwrite) or, for a fill, only where nothing is (NX). */
static int l2_put(struct el_tiered *t, const char *key, const struct el_blob *b, int overwrite,
                  int64_t ttl)
{
    const char *v = b->status == 404 ? "" : b->data;
    size_t n = b->status == 404 ? 0 : b->len;

    if (b->version > 0)
        return el_redis_set_versioned(t->redis, key, b->version, v, n, ttl);
    if (overwrite)
        return el_redis_set(t->redis, key, v, n, ttl);
    return el_redis_set_nx(t->redis, key, v, n, ttl);
}

/* L2 read into a blob: EL_OK, EL_ENOTFOUND, or a Redis failure. */
static int l2_get(struct el_tiered *t, const char *key, struct el_buf *body, struct el_blob **out)
{
    uint64_t version = 0;
    int rc;

    el_buf_reset(body);
    if (pending_has(key))
        return EL_ENOTFOUND;
    rc = el_redis_get_versioned(t->redis, key, body, &version);
    if (rc != EL_OK)
        return rc;
    /* An empty value is a cached not-found; anything else is the body. */
    *out = make_blob(t, body->len == 0 ? 404 : 200, body->data, body->len, version);
    return *out ? EL_OK : EL_ENOMEM;
}

/* Cluster-wide single flight. Returns 1 when this process holds the lease
 * for key (token written into token) and must load from the store, 0 when
 * another process filled L2 meanwhile (*out is the L2 value), and -1 when
 * there is no usable lease (no bus, Redis trouble, or the holder vanished
 * twice): load from the store without one. */
static int lease_or_wait(struct el_tiered *t, const char *key, uint64_t h, struct el_buf *body,
                         struct el_blob **out, char token[33])
{
    char lkey[EL_KEY_MAX];
    struct waiter w;
    int tries, rc;

    if (t->bus == NULL || !el_bus_fresh(t->bus, el_now_ms()) ||
        el_key_lease(lkey, sizeof(lkey), key) < 0)
        return -1;
    {
        unsigned char rnd[16];
        if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
            return -1;
        for (int i = 0; i < 16; i++)
            snprintf(token + 2 * i, 3, "%02x", rnd[i]);
    }
    for (tries = 0; tries < 2; tries++) {
        /* Listen before asking, so a fill that lands between our failed
         * SET NX and our wait is not missed. */
        waiter_add(&w, key, h);
        rc = el_redis_set_nx(t->redis, lkey, token, strlen(token), t->opts.lease_ms);
        if (rc == EL_OK) {
            waiter_remove(&w, h);
            /* The previous holder may have filled and released between our
             * L2 miss and our lease: look again before querying. */
            if (l2_get(t, key, body, out) == EL_OK) {
                best_effort(el_redis_del_if(t->redis, lkey, token));
                return 0;
            }
            return 1;
        }
        if (rc != EL_ECONFLICT) {
            waiter_remove(&w, h);
            return -1;
        }
        if (l2_get(t, key, body, out) == EL_OK) {
            waiter_remove(&w, h);
            return 0;
        }
        waiter_wait(&w, h, t->opts.lease_ms);
        waiter_remove(&w, h);
        if (l2_get(t, key, body, out) == EL_OK)
            return 0;
        /* Not filled in time: the holder died or is slow. Its lease
         * expires on its own; try to take it over. */
    }
    return -1;
}

/* Give the lease back and wake its waiters in every process (after a fill,
 * they find the value in L2; after a failure, one of them takes over). */
static void lease_release(struct el_tiered *t, const char *key, const char *token)
{
    char lkey[EL_KEY_MAX];

    el_key_lease(lkey, sizeof(lkey), key);
    best_effort(el_redis_del_if(t->redis, lkey, token));
    best_effort(el_bus_publish_filled(t->bus, key));
}

/* The leader's work: L2, then the store, filling the layers above. stale
 * is the L1 copy being revalidated, or NULL. refresh: an early refresh of
 * a hot entry close to expiry -- straight to the store (L2's copy expires
 * with it), then overwrite L2. */
static int fetch(struct el_tiered *t, const char *key, el_tiered_load_fn load, void *arg,
                 struct el_blob *stale, int refresh, struct el_blob **out, enum el_layer *layer)
{
    struct el_buf body;
    uint64_t h = hash_key(key), mark = inval_mark(h);
    int64_t ttl;
    uint64_t version = 0;
    int rc, status, leased = -1;
    char token[33] = "";

    *out = NULL;
    el_buf_init(&body, EL_RESPONSE_MAX);

    rc = refresh ? EL_EDISABLED : l2_get(t, key, &body, out);
    if (rc == EL_OK) {
        *layer = EL_LAYER_L2;
        goto fill_l1;
    }
    if (rc == EL_ENOTFOUND) {
        leased = lease_or_wait(t, key, h, &body, out, token);
        if (leased == 0) {
            *layer = EL_LAYER_L2;
            goto fill_l1;
        }
    }

    el_buf_reset(&body);
    status = load(arg, &body, &version);
    if (status >= 400 && status < 600 && status != 404) {
        /* An answer that cannot be built (the loader's error document):
         * cached here, briefly, so a storm of such requests does not
         * rebuild it each time -- but not in Redis, whose values are
         * documents and not-founds only. */
        *out = make_blob(t, status, body.data, body.len, 0);
        if (*out == NULL) {
            rc = EL_ENOMEM;
        } else {
            *layer = EL_LAYER_MISS;
            l1_put_unless_moved(t, key, *out, el_now_ms() + (uint64_t)t->opts.neg_ttl_ms, h, mark);
            rc = EL_OK;
        }
        if (leased == 1)
            lease_release(t, key, token);
        goto out;
    }
    if (status != 200 && status != 404) {
        rc = status < 0 ? status : EL_EIO;
        if (leased == 1)
            lease_release(t, key, token); /* waiters retry at once */
        if (stale) {
            /* The store cannot answer: the copy we have beats an error (a
             * refresh's copy has not even expired yet). */
            *out = el_blob_ref(stale);
            *layer = refresh ? EL_LAYER_L1 : EL_LAYER_STALE;
            rc = EL_OK;
        }
        goto out;
    }
    *out = make_blob(t, status, body.data, body.len, version);
    if (*out == NULL) {
        rc = EL_ENOMEM;
        goto out;
    }
    *layer = EL_LAYER_MISS;
    ttl = el_tiered_jitter(status == 404 ? t->opts.neg_ttl_ms : t->opts.ttl_ms);
    /* An invalidation arrived while we read: what we hold may predate the
     * write. Return it to this caller, cache it nowhere. Otherwise never
     * replace a value a write has put there since: versioned values pass
     * the version guard, others are written NX (a refresh overwrites). */
    if (inval_mark(h) == mark)
        best_effort(l2_put(t, key, *out, refresh, ttl));
    if (leased == 1)
        lease_release(t, key, token);

fill_l1:
    if (*out == NULL) {
        rc = EL_ENOMEM;
        goto out;
    }
    if (stale && !refresh && strcmp(stale->etag, (*out)->etag) == 0) {
        /* Unchanged: keep the entry (and serve it), note when it was last
         * verified. */
        atomic_store(&stale->checked_ms, el_now_ms());
        el_blob_unref(*out);
        *out = el_blob_ref(stale);
    } else if (t->l1) {
        int64_t l1_ttl = (*out)->status == 404 ? t->opts.neg_ttl_ms : t->opts.ttl_ms;
        l1_put_unless_moved(t, key, *out, el_now_ms() + (uint64_t)el_tiered_jitter(l1_ttl), h,
                            mark);
    }
    rc = EL_OK;
out:
    el_buf_cleanup(&body);
    return rc;
}

/* An L1 copy may be served as it is: the bus vouches for it, or it was
 * verified recently enough. */
static int l1_trusted(struct el_tiered *t, struct el_blob *b, uint64_t now)
{
    return el_bus_fresh(t->bus, now) ||
           now - atomic_load(&b->checked_ms) <= (uint64_t)t->opts.max_stale_ms;
}

struct el_blob *el_tiered_peek(struct el_tiered *t, const char *key)
{
    uint64_t now = el_now_ms(), expires = 0;
    struct el_blob *b;

    if (t->l1 == NULL || (b = el_l1_get(t->l1, key, now, &expires)) == NULL)
        return NULL;
    /* Exactly el_tiered_get's conditions for an L1 answer with nothing
     * else to do: trusted, and not due for the early refresh of a hot key
     * (that refresh is a store read, so it is a worker's). */
    if (!l1_trusted(t, b, now) ||
        (b->status == 200 && expires - now < (uint64_t)t->opts.ttl_ms / 10)) {
        el_blob_unref(b);
        return NULL;
    }
    el_stats_count(t->opts.type, EL_LAYER_L1);
    return b;
}

int el_tiered_get(struct el_tiered *t, const char *key, el_tiered_load_fn load, void *arg,
                  struct el_blob **out, enum el_layer *layer)
{
    uint64_t h, now = el_now_ms();
    struct stripe *s;
    struct flight *f;
    struct el_blob *stale = NULL, *hot = NULL;
    uint64_t expires = 0;
    int rc, last, leader = 0, refresh = 0;

    *out = NULL;
    if (t->l1 && (*out = el_l1_get(t->l1, key, now, &expires)) != NULL) {
        if (l1_trusted(t, *out, now)) {
            /* Hot keys never miss: in the last tenth of its TTL, one request
             * refreshes the entry while the others keep being served it. */
            if ((*out)->status != 200 || expires - now >= (uint64_t)t->opts.ttl_ms / 10) {
                *layer = EL_LAYER_L1;
                el_stats_count(t->opts.type, EL_LAYER_L1);
                return EL_OK;
            }
            hot = *out;
            refresh = 1;
        } else {
            stale = *out; /* revalidate it below */
        }
        *out = NULL;
    }

    h = hash_key(key);
    s = &t->stripes[h % FLIGHT_STRIPES];
    el_must(pthread_mutex_lock(&s->lock));
    for (f = s->head; f; f = f->next)
        if (f->hash == h && strcmp(f->key, key) == 0)
            break;
    if (f != NULL && refresh) {
        /* Someone is already refreshing it: serve the copy we have. */
        el_must(pthread_mutex_unlock(&s->lock));
        *out = hot;
        *layer = EL_LAYER_L1;
        el_stats_count(t->opts.type, EL_LAYER_L1);
        return EL_OK;
    }
    if (f == NULL) {
        f = calloc(1, sizeof(*f));
        if (f == NULL || (f->key = strdup(key)) == NULL) {
            free(f);
            el_must(pthread_mutex_unlock(&s->lock));
            el_blob_unref(stale);
            el_blob_unref(hot);
            return EL_ENOMEM;
        }
        f->hash = h;
        el_must(pthread_cond_init(&f->cond, NULL));
        f->next = s->head;
        s->head = f;
        leader = 1;
    }
    f->users++;
    el_must(pthread_mutex_unlock(&s->lock));

    if (leader) {
        struct el_blob *b = NULL;
        enum el_layer l = EL_LAYER_MISS;

        /* Re-check L1: another flight may have completed since our miss. */
        if (!refresh && t->l1 && (b = el_l1_get(t->l1, key, el_now_ms(), NULL)) != NULL &&
            l1_trusted(t, b, el_now_ms())) {
            l = EL_LAYER_L1;
            rc = EL_OK;
        } else {
            el_blob_unref(b);
            rc = fetch(t, key, load, arg, stale ? stale : hot, refresh, &b, &l);
        }
        el_must(pthread_mutex_lock(&s->lock));
        f->rc = rc;
        f->blob = b;
        f->layer = l;
        f->done = 1;
        /* Unlink at once: a miss that starts from now on begins a new flight
         * rather than reusing this result. Waiters still hold f. */
        for (struct flight **pp = &s->head; *pp; pp = &(*pp)->next)
            if (*pp == f) {
                *pp = f->next;
                break;
            }
        el_must(pthread_cond_broadcast(&f->cond));
    } else {
        el_must(pthread_mutex_lock(&s->lock));
        while (!f->done)
            el_must(pthread_cond_wait(&f->cond, &s->lock));
    }

    rc = f->rc;
    *layer = f->layer;
    *out = el_blob_ref(f->blob);
    last = --f->users == 0;
    el_must(pthread_mutex_unlock(&s->lock));
    if (last) {
        el_blob_unref(f->blob);
        pthread_cond_destroy(&f->cond);
        free(f->key);
        free(f);
    }
    el_blob_unref(stale);
    el_blob_unref(hot);
    if (rc == EL_OK)
        el_stats_count(t->opts.type, *layer);
    return rc;
}

static int put_version(struct el_tiered *t, const char *key, int status, const char *body,
                       size_t len, uint64_t version, int64_t ttl)
{
    struct el_blob *b = make_blob(t, status, body, len, version);
    uint64_t h = hash_key(key), mark;
    int rc = EL_OK;

    if (b == NULL)
        return EL_ENOMEM;
    /* Any fill of key already in flight here predates this write. */
    el_tiered_dropped(NULL, key);
    mark = inval_mark(h);
    if (t->redis) {
        rc = l2_put(t, key, b, 1, ttl);
        if (rc != EL_OK && rc != EL_ECONFLICT)
            pending_add(key);
    }
    /* EL_ECONFLICT: Redis has a newer version (another writer's); ours
     * must not go into L1, which that writer's announcement may already
     * have emptied: L1 takes Redis's version instead. */
    l1_settle(t, key, h, mark, rc == EL_ECONFLICT ? NULL : b, ttl);
    el_blob_unref(b);
    best_effort(el_bus_publish_key(t->bus, key));
    return EL_OK;
}

int el_tiered_set(struct el_tiered *t, const char *key, const char *body, size_t len,
                  uint64_t version)
{
    return put_version(t, key, 200, body, len, version, el_tiered_jitter(t->opts.ttl_ms));
}

void el_tiered_fill(struct el_tiered *t, const char *key, const char *body, size_t len,
                    uint64_t version)
{
    struct el_blob *b;
    uint64_t h = hash_key(key), mark = inval_mark(h);
    int64_t ttl = el_tiered_jitter(t->opts.ttl_ms);

    if (version == 0 || t->redis == NULL || (b = make_blob(t, 200, body, len, version)) == NULL)
        return;
    /* Redis first: it says whether ours is the newest version known. A
     * write announced after our mark was taken is caught by the mark. */
    if (l2_put(t, key, b, 0, ttl) == EL_OK)
        l1_put_unless_moved(t, key, b, el_now_ms() + (uint64_t)ttl, h, mark);
    el_blob_unref(b);
}

int el_tiered_set_deleted(struct el_tiered *t, const char *key)
{
    return put_version(t, key, 404, NULL, 0, EL_VERSION_DELETED, t->opts.neg_ttl_ms);
}

int el_tiered_set_not_found(struct el_tiered *t, const char *key, uint64_t version)
{
    return put_version(t, key, 404, NULL, 0, version, t->opts.neg_ttl_ms);
}

void el_tiered_invalidate(struct el_tiered *t, const char *key)
{
    el_tiered_dropped(t->l1, key);
    if (t->redis && el_redis_del(t->redis, key) != EL_OK)
        pending_add(key);
    best_effort(el_bus_publish_key(t->bus, key));
}

void el_tiered_set_bus(struct el_tiered *t, struct el_bus *bus)
{
    t->bus = bus;
}

int el_tiered_inflight(struct el_tiered *t, const char *key)
{
    uint64_t h = hash_key(key);
    struct stripe *s = &t->stripes[h % FLIGHT_STRIPES];
    struct flight *f;
    int n = 0;

    el_must(pthread_mutex_lock(&s->lock));
    for (f = s->head; f; f = f->next)
        if (f->hash == h && strcmp(f->key, key) == 0)
            n = f->users;
    el_must(pthread_mutex_unlock(&s->lock));
    return n;
}
