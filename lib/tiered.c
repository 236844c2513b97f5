/* tiered.c -- the L1 -> L2 -> L3 read path (see tiered.h).
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
#include "tiered.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define FLIGHT_STRIPES 32
#define BODY_MAX (16u << 20) /* largest document we will cache or serve */

struct flight {
    struct flight *next;
    char *key;
    uint64_t hash;
    int users;             /* leader + waiters still holding it */
    int done;
    int rc;                /* result for everyone */
    struct el_blob *blob;  /* one reference owned by the flight */
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
    struct el_tiered_opts opts;
    struct stripe stripes[FLIGHT_STRIPES];
};

static void must(int rc)
{
    if (rc != 0)
        abort(); /* pthread mutex/cond failures are programming errors */
}

/* Cache writes to Redis are best effort: the read they belong to has already
 * succeeded, and a failure is already counted by the breaker. */
static void best_effort(int rc)
{
    EL_UNUSED(rc);
}

static uint64_t hash_key(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    while (*s) {
        h ^= (unsigned char)*s++;
        h *= 0x100000001b3ULL;
    }
    return h;
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
    for (int i = 0; i < FLIGHT_STRIPES; i++)
        must(pthread_mutex_init(&t->stripes[i].lock, NULL));
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
static struct el_blob *make_blob(struct el_tiered *t, int status, const char *body, size_t len)
{
    if (status == 404)
        return el_blob_new(404, t->opts.neg_body, strlen(t->opts.neg_body));
    return el_blob_new(200, body, len);
}

/* The leader's work: L2, then the store, filling the layers above. */
static int fetch(struct el_tiered *t, const char *key, el_tiered_load_fn load, void *arg,
                 struct el_blob **out, enum el_layer *layer)
{
    struct el_buf body;
    int64_t ttl;
    int rc, status;

    *out = NULL;
    el_buf_init(&body, BODY_MAX);

    rc = el_redis_get(t->redis, key, &body);
    if (rc == EL_OK) {
        /* An empty value is a cached not-found; anything else is the body. */
        status = body.len == 0 ? 404 : 200;
        *out = make_blob(t, status, body.data, body.len);
        *layer = EL_LAYER_L2;
        ttl = status == 404 ? t->opts.neg_ttl_ms : el_tiered_jitter(t->opts.ttl_ms);
        goto fill_l1;
    }
    el_buf_reset(&body);

    status = load(arg, &body);
    if (status != 200 && status != 404) {
        rc = status < 0 ? status : EL_EIO;
        goto out;
    }
    *out = make_blob(t, status, body.data, body.len);
    if (*out == NULL) {
        rc = EL_ENOMEM;
        goto out;
    }
    *layer = EL_LAYER_MISS;
    ttl = status == 404 ? el_tiered_jitter(t->opts.neg_ttl_ms) : el_tiered_jitter(t->opts.ttl_ms);
    /* Best effort: a Redis failure must not fail a read the store answered
     * (the breaker already makes a dead Redis cost nothing). */
    best_effort(el_redis_set(t->redis, key, status == 404 ? "" : (*out)->data,
                             status == 404 ? 0 : (*out)->len, ttl));

fill_l1:
    if (*out == NULL) {
        rc = EL_ENOMEM;
        goto out;
    }
    if (t->l1)
        (void)el_l1_put(t->l1, key, *out, el_now_ms() + (uint64_t)ttl, el_now_ms());
    rc = EL_OK;
out:
    el_buf_cleanup(&body);
    return rc;
}

int el_tiered_get(struct el_tiered *t, const char *key, el_tiered_load_fn load, void *arg,
                  struct el_blob **out, enum el_layer *layer)
{
    uint64_t h;
    struct stripe *s;
    struct flight *f;
    int rc, last, leader = 0;

    *out = NULL;
    if (t->l1 && (*out = el_l1_get(t->l1, key, el_now_ms(), NULL)) != NULL) {
        *layer = EL_LAYER_L1;
        el_stats_count(t->opts.type, EL_LAYER_L1);
        return EL_OK;
    }

    h = hash_key(key);
    s = &t->stripes[h % FLIGHT_STRIPES];
    must(pthread_mutex_lock(&s->lock));
    for (f = s->head; f; f = f->next)
        if (f->hash == h && strcmp(f->key, key) == 0)
            break;
    if (f == NULL) {
        f = calloc(1, sizeof(*f));
        if (f == NULL || (f->key = strdup(key)) == NULL) {
            free(f);
            must(pthread_mutex_unlock(&s->lock));
            return EL_ENOMEM;
        }
        f->hash = h;
        must(pthread_cond_init(&f->cond, NULL));
        f->next = s->head;
        s->head = f;
        leader = 1;
    }
    f->users++;
    must(pthread_mutex_unlock(&s->lock));

    if (leader) {
        struct el_blob *b = NULL;
        enum el_layer l = EL_LAYER_MISS;

        /* Re-check L1: another flight may have completed since our miss. */
        if (t->l1 && (b = el_l1_get(t->l1, key, el_now_ms(), NULL)) != NULL) {
            l = EL_LAYER_L1;
            rc = EL_OK;
        } else {
            rc = fetch(t, key, load, arg, &b, &l);
        }
        must(pthread_mutex_lock(&s->lock));
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
        must(pthread_cond_broadcast(&f->cond));
    } else {
        must(pthread_mutex_lock(&s->lock));
        while (!f->done)
            must(pthread_cond_wait(&f->cond, &s->lock));
    }

    rc = f->rc;
    *layer = f->layer;
    *out = el_blob_ref(f->blob);
    last = --f->users == 0;
    must(pthread_mutex_unlock(&s->lock));
    if (last) {
        el_blob_unref(f->blob);
        pthread_cond_destroy(&f->cond);
        free(f->key);
        free(f);
    }
    if (rc == EL_OK)
        el_stats_count(t->opts.type, *layer);
    return rc;
}

int el_tiered_set(struct el_tiered *t, const char *key, const char *body, size_t len)
{
    struct el_blob *b = el_blob_new(200, body, len);
    int64_t ttl = el_tiered_jitter(t->opts.ttl_ms);

    if (b == NULL)
        return EL_ENOMEM;
    best_effort(el_redis_set(t->redis, key, body, len, ttl));
    if (t->l1)
        best_effort(el_l1_put(t->l1, key, b, el_now_ms() + (uint64_t)ttl, el_now_ms()));
    el_blob_unref(b);
    return EL_OK;
}

void el_tiered_invalidate(struct el_tiered *t, const char *key)
{
    if (t->l1)
        el_l1_del(t->l1, key);
    best_effort(el_redis_del(t->redis, key));
}

int el_tiered_inflight(struct el_tiered *t, const char *key)
{
    uint64_t h = hash_key(key);
    struct stripe *s = &t->stripes[h % FLIGHT_STRIPES];
    struct flight *f;
    int n = 0;

    must(pthread_mutex_lock(&s->lock));
    for (f = s->head; f; f = f->next)
        if (f->hash == h && strcmp(f->key, key) == 0)
            n = f->users;
    must(pthread_mutex_unlock(&s->lock));
    return n;
}
