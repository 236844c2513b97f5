/* test_tiered.c -- the L1 -> Redis -> store read path, against the private
 * redis-server the harness starts. Loaders here stand in for the store and
 * count their calls; Redis is real. */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "cache/tiered.h"
#include "cache/testing.h"
#include "unit.h"

#define NEG "{\"detail\":\"Course not found\"}"

struct loader {
    atomic_int calls;
    int status; /* 200, 404 or a negative code */
    const char *body;
    struct el_tiered *gate; /* when set: wait for gate_users in the flight */
    const char *gate_key;
    int gate_users;
    uint64_t version; /* the document's revision, 0: unversioned */
};

static int load(void *arg, struct el_buf *body, uint64_t *version)
{
    struct loader *l = arg;

    *version = l->version;
    atomic_fetch_add(&l->calls, 1);
    if (l->gate) {
        /* Hold the flight open until every thread has joined it, so the
         * test proves they waited instead of querying. Bounded: 5 s. */
        uint64_t deadline = el_now_ms() + 5000;
        while (el_tiered_inflight(l->gate, l->gate_key) < l->gate_users && el_now_ms() < deadline)
            sched_yield();
    }
    if ((l->status == 200 || (l->status >= 400 && l->status != 404)) &&
        el_buf_adds(body, l->body) != EL_OK)
        return EL_ENOMEM;
    return l->status;
}

static redisContext *raw(void)
{
    return unit_redis_raw(3);
}

static long long redis_calls(redisContext *c, const char *cmd)
{
    redisReply *r = redisCommand(c, "INFO commandstats");
    char needle[64], *p;
    long long n = 0;

    snprintf(needle, sizeof(needle), "cmdstat_%s:calls=", cmd);
    if (r && r->type == REDIS_REPLY_STRING && (p = strstr(r->str, needle)) != NULL)
        n = strtoll(p + strlen(needle), NULL, 10);
    freeReplyObject(r);
    return n;
}

struct fixture {
    struct el_l1 *l1;
    struct el_redis *redis;
    struct el_tiered *t;
};

/* redis_timeout_ms 0: the default (100 ms). */
static void setup_timeout(struct fixture *f, const char *redis_url, int redis_timeout_ms)
{
    struct el_tiered_opts o = {
        .type = EL_TYPE_COURSE, .ttl_ms = 60000, .neg_ttl_ms = 30000, .neg_body = NEG};
    struct el_redis_opts ro = {.timeout_ms = redis_timeout_ms};
    int rc;

    f->l1 = el_l1_new(1 << 20);
    rc = el_redis_new(redis_url, &ro, &f->redis, NULL);
    CU_ASSERT_EQUAL_FATAL(rc, EL_OK);
    f->t = el_tiered_new(f->l1, f->redis, &o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->t);
}

static void setup(struct fixture *f, const char *redis_url)
{
    setup_timeout(f, redis_url, 0);
}

static void teardown(struct fixture *f)
{
    el_tiered_free(f->t);
    el_redis_free(f->redis);
    el_l1_free(f->l1);
}

static void flushdb(void)
{
    redisContext *c = raw();
    freeReplyObject(redisCommand(c, "FLUSHDB"));
    redisFree(c);
}

static void test_miss_then_l1_then_l2_elsewhere(void)
{
    struct fixture a, b;
    struct loader l = {.status = 200, .body = "{\"_id\":\"x\"}"};
    struct el_blob *blob;
    enum el_layer layer;
    struct el_buf v;

    flushdb();
    setup(&a, unit_redis_url(3));
    setup(&b, unit_redis_url(3)); /* "another process": its own L1, same Redis */

    CU_ASSERT_EQUAL(el_tiered_get(a.t, "course:x", load, &l, &blob, &layer), EL_OK);
    CU_ASSERT_EQUAL(layer, EL_LAYER_MISS);
    CU_ASSERT_EQUAL(blob->status, 200);
    CU_ASSERT_STRING_EQUAL(blob->data, "{\"_id\":\"x\"}");
    el_blob_unref(blob);

    CU_ASSERT_EQUAL(el_tiered_get(a.t, "course:x", load, &l, &blob, &layer), EL_OK);
    CU_ASSERT_EQUAL(layer, EL_LAYER_L1);
    el_blob_unref(blob);

    /* L2 holds the same bytes. */
    el_buf_init(&v, 1024);
    CU_ASSERT_EQUAL(el_redis_get(a.redis, "course:x", &v), EL_OK);
    CU_ASSERT_STRING_EQUAL(v.data, "{\"_id\":\"x\"}");
    el_buf_cleanup(&v);

    CU_ASSERT_EQUAL(el_tiered_get(b.t, "course:x", load, &l, &blob, &layer), EL_OK);
    CU_ASSERT_EQUAL(layer, EL_LAYER_L2);
    CU_ASSERT_STRING_EQUAL(blob->data, "{\"_id\":\"x\"}");
    el_blob_unref(blob);
    CU_ASSERT_EQUAL(el_tiered_get(b.t, "course:x", load, &l, &blob, &layer), EL_OK);
    CU_ASSERT_EQUAL(layer, EL_LAYER_L1);
    el_blob_unref(blob);

    CU_ASSERT_EQUAL(atomic_load(&l.calls), 1);
    teardown(&a);
    teardown(&b);
}

static void test_negative_caching(void)
{
    struct fixture a, b;
    struct loader l = {.status = 404};
    struct el_blob *blob;
    enum el_layer layer;

    flushdb();
    setup(&a, unit_redis_url(3));
    setup(&b, unit_redis_url(3));
    for (int i = 0; i < 50; i++) {
        CU_ASSERT_EQUAL(el_tiered_get(a.t, "course:missing", load, &l, &blob, &layer), EL_OK);
        CU_ASSERT_EQUAL(blob->status, 404);
        CU_ASSERT_STRING_EQUAL(blob->data, NEG);
        CU_ASSERT_EQUAL(layer, i == 0 ? EL_LAYER_MISS : EL_LAYER_L1);
        el_blob_unref(blob);
    }
    /* The other process finds the not-found in Redis, not in the store. */
    CU_ASSERT_EQUAL(el_tiered_get(b.t, "course:missing", load, &l, &blob, &layer), EL_OK);
    CU_ASSERT_EQUAL(layer, EL_LAYER_L2);
    CU_ASSERT_EQUAL(blob->status, 404);
    el_blob_unref(blob);
    CU_ASSERT_EQUAL(atomic_load(&l.calls), 1);

    /* The negative entry is short-lived in Redis: 30 s, not the course TTL. */
    redisContext *c = raw();
    redisReply *r = redisCommand(c, "PTTL course:missing");
    CU_ASSERT(r && r->type == REDIS_REPLY_INTEGER && r->integer > 20000 && r->integer <= 33000);
    freeReplyObject(r);
    redisFree(c);
    teardown(&a);
    teardown(&b);
}

struct racer {
    struct fixture *f;
    struct loader *l;
    int rc;
    enum el_layer layer;
    char body[64];
};

static void *race(void *arg)
{
    struct racer *r = arg;
    struct el_blob *blob;

    r->rc = el_tiered_get(r->f->t, "course:hot", load, r->l, &blob, &r->layer);
    if (r->rc == EL_OK) {
        snprintf(r->body, sizeof(r->body), "%s", blob->data);
        el_blob_unref(blob);
    }
    return NULL;
}

static void test_single_flight(void)
{
    enum { N = 16 };
    struct fixture f;
    struct loader l = {
        .status = 200, .body = "{\"hot\":true}", .gate_key = "course:hot", .gate_users = N};
    struct racer r[N];
    pthread_t th[N];
    redisContext *c;
    long long gets0;

    flushdb();
    setup(&f, unit_redis_url(3));
    l.gate = f.t;
    c = raw();
    gets0 = redis_calls(c, "get");
    for (int i = 0; i < N; i++) {
        r[i] = (struct racer){.f = &f, .l = &l};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++) {
        CU_ASSERT_EQUAL(r[i].rc, EL_OK);
        CU_ASSERT_STRING_EQUAL(r[i].body, "{\"hot\":true}");
    }
    /* Exactly one store query and exactly one Redis read for N misses. */
    CU_ASSERT_EQUAL(atomic_load(&l.calls), 1);
    CU_ASSERT_EQUAL(redis_calls(c, "get") - gets0, 1);
    CU_ASSERT_EQUAL(el_tiered_inflight(f.t, "course:hot"), 0);
    redisFree(c);
    teardown(&f);
}

static void test_store_error_not_cached(void)
{
    struct fixture f;
    struct loader l = {.status = EL_EUNAVAIL};
    struct el_blob *blob = (void *)1;
    enum el_layer layer;

    flushdb();
    setup(&f, unit_redis_url(3));
    CU_ASSERT_EQUAL(el_tiered_get(f.t, "course:down", load, &l, &blob, &layer), EL_EUNAVAIL);
    CU_ASSERT_PTR_NULL(blob);
    l.status = 200;
    l.body = "{}";
    CU_ASSERT_EQUAL(el_tiered_get(f.t, "course:down", load, &l, &blob, &layer), EL_OK);
    CU_ASSERT_EQUAL(layer, EL_LAYER_MISS);
    el_blob_unref(blob);
    CU_ASSERT_EQUAL(atomic_load(&l.calls), 2);
    teardown(&f);
}

static void test_redis_down_reads_go_on(void)
{
    struct fixture f;
    struct loader l = {.status = 200, .body = "{\"ok\":1}"};
    struct el_blob *blob;
    enum el_layer layer;
    uint64_t t0;

    /* Port 1 on loopback: nothing listens, connections are refused. */
    setup(&f, "redis://127.0.0.1:1/0");
    t0 = el_now_ms();
    CU_ASSERT_EQUAL(el_tiered_get(f.t, "course:r", load, &l, &blob, &layer), EL_OK);
    CU_ASSERT_EQUAL(layer, EL_LAYER_MISS);
    el_blob_unref(blob);
    CU_ASSERT_EQUAL(el_tiered_get(f.t, "course:r", load, &l, &blob, &layer), EL_OK);
    CU_ASSERT_EQUAL(layer, EL_LAYER_L1);
    el_blob_unref(blob);
    for (int i = 0; i < 100; i++) {
        char key[32];
        snprintf(key, sizeof(key), "course:r%d", i);
        CU_ASSERT_EQUAL(el_tiered_get(f.t, key, load, &l, &blob, &layer), EL_OK);
        el_blob_unref(blob);
    }
    /* 102 reads with Redis refusing: the breaker keeps them from waiting. */
    CU_ASSERT(el_now_ms() - t0 < 1000);
    teardown(&f);
}

static void test_invalidate(void)
{
    struct fixture f;
    struct loader l = {.status = 200, .body = "{\"v\":1}"};
    struct el_blob *blob;
    enum el_layer layer;
    struct el_buf v;

    flushdb();
    setup(&f, unit_redis_url(3));
    CU_ASSERT_EQUAL(el_tiered_get(f.t, "course:i", load, &l, &blob, &layer), EL_OK);
    el_blob_unref(blob);
    el_tiered_invalidate(f.t, "course:i");
    el_buf_init(&v, 64);
    CU_ASSERT_EQUAL(el_redis_get(f.redis, "course:i", &v), EL_ENOTFOUND);
    el_buf_cleanup(&v);
    l.body = "{\"v\":2}";
    CU_ASSERT_EQUAL(el_tiered_get(f.t, "course:i", load, &l, &blob, &layer), EL_OK);
    CU_ASSERT_EQUAL(layer, EL_LAYER_MISS);
    CU_ASSERT_STRING_EQUAL(blob->data, "{\"v\":2}");
    el_blob_unref(blob);
    teardown(&f);
}

static void test_jitter(void)
{
    int64_t lo = 1000000, hi = 0;

    for (int i = 0; i < 2000; i++) {
        int64_t v = el_tiered_jitter(300000);
        CU_ASSERT(v >= 270000 && v <= 330000);
        if (v < lo)
            lo = v;
        if (v > hi)
            hi = v;
    }
    /* Spread over most of the +-10 % band, not a constant. */
    CU_ASSERT(lo < 280000);
    CU_ASSERT(hi > 320000);
    CU_ASSERT_EQUAL(el_tiered_jitter(1), 1);
}

/* ---- coherence ------------------------------------------------- */

struct proc {
    struct el_l1 *l1;
    struct el_redis *redis;
    struct el_bus *bus;
    struct el_tiered *t;
};

static void bus_filled(void *arg, const char *key)
{
    EL_UNUSED(arg);
    el_tiered_filled(key);
}

static void proc_start(struct proc *p, const char *url)
{
    struct el_tiered_opts o = {.type = EL_TYPE_COURSE, .ttl_ms = 60000, .neg_body = NEG};
    struct el_bus_handlers h = {p, NULL, NULL, bus_filled, NULL, NULL, NULL, NULL};
    uint64_t deadline;

    p->l1 = el_l1_new(1 << 20);
    CU_ASSERT_EQUAL_FATAL(el_redis_new(url, NULL, &p->redis, NULL), EL_OK);
    CU_ASSERT_EQUAL_FATAL(el_bus_start(url, p->redis, &h, NULL, &p->bus, NULL), EL_OK);
    p->t = el_tiered_new(p->l1, p->redis, &o);
    el_tiered_set_bus(p->t, p->bus);
    deadline = el_now_ms() + 5000;
    while (!el_bus_fresh(p->bus, el_now_ms()) && el_now_ms() < deadline)
        sched_yield();
    CU_ASSERT_FATAL(el_bus_fresh(p->bus, el_now_ms()));
}

static void proc_stop(struct proc *p)
{
    el_bus_stop(p->bus);
    el_tiered_free(p->t);
    el_redis_free(p->redis);
    el_l1_free(p->l1);
}

enum { PROCS = 4, PER_PROC = 25 };

struct cluster_load {
    atomic_int calls;
    struct proc *procs;
};

/* The store: hold the first query until every process has a miss in
 * flight for the key, so they really are concurrent. */
static int cluster_loader(void *arg, struct el_buf *body, uint64_t *version)
{
    EL_UNUSED(version);
    struct cluster_load *cl = arg;
    uint64_t deadline = el_now_ms() + 5000;
    int all = 0;

    atomic_fetch_add(&cl->calls, 1);
    while (!all && el_now_ms() < deadline) {
        all = 1;
        for (int i = 0; i < PROCS; i++)
            if (el_tiered_inflight(cl->procs[i].t, "course:cold") == 0)
                all = 0;
        if (!all)
            sched_yield();
    }
    return el_buf_adds(body, "{\"cold\":1}") == EL_OK ? 200 : EL_ENOMEM;
}

struct cluster_racer {
    struct proc *p;
    struct cluster_load *cl;
    int rc;
    char body[32];
};

static void *cluster_race(void *arg)
{
    struct cluster_racer *r = arg;
    struct el_blob *b;
    enum el_layer layer;

    r->rc = el_tiered_get(r->p->t, "course:cold", cluster_loader, r->cl, &b, &layer);
    if (r->rc == EL_OK) {
        snprintf(r->body, sizeof(r->body), "%s", b->data);
        el_blob_unref(b);
    }
    return NULL;
}

static void test_cluster_single_flight(void)
{
    struct proc procs[PROCS];
    struct cluster_load cl = {.procs = procs};
    struct cluster_racer r[PROCS * PER_PROC];
    pthread_t th[PROCS * PER_PROC];

    flushdb();
    for (int i = 0; i < PROCS; i++)
        proc_start(&procs[i], unit_redis_url(3));
    for (int i = 0; i < PROCS * PER_PROC; i++) {
        r[i] = (struct cluster_racer){.p = &procs[i % PROCS], .cl = &cl};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, cluster_race, &r[i]), 0);
    }
    for (int i = 0; i < PROCS * PER_PROC; i++) {
        pthread_join(th[i], NULL);
        CU_ASSERT_EQUAL(r[i].rc, EL_OK);
        CU_ASSERT_STRING_EQUAL(r[i].body, "{\"cold\":1}");
    }
    /* 4 processes x 25 concurrent misses: one store query in all. */
    CU_ASSERT_EQUAL(atomic_load(&cl.calls), 1);
    for (int i = 0; i < PROCS; i++)
        proc_stop(&procs[i]);
}

struct racing_load {
    struct el_l1 *l1;
    atomic_int calls;
};

/* A store read during which another process's write is announced. */
static int load_then_invalidated(void *arg, struct el_buf *body, uint64_t *version)
{
    struct racing_load *rl = arg;

    EL_UNUSED(version);
    atomic_fetch_add(&rl->calls, 1);
    el_tiered_dropped(rl->l1, "course:race");
    return el_buf_adds(body, "{\"v\":\"old\"}") == EL_OK ? 200 : EL_ENOMEM;
}

static void test_fill_race_not_cached(void)
{
    struct fixture f;
    struct racing_load rl;
    struct el_blob *blob;
    enum el_layer layer;
    struct el_buf v;

    flushdb();
    setup(&f, unit_redis_url(3));
    rl.l1 = f.l1;
    atomic_init(&rl.calls, 0);
    CU_ASSERT_EQUAL(el_tiered_get(f.t, "course:race", load_then_invalidated, &rl, &blob, &layer),
                    EL_OK);
    CU_ASSERT_STRING_EQUAL(blob->data, "{\"v\":\"old\"}"); /* the caller gets it */
    el_blob_unref(blob);
    /* ...but neither L1 nor Redis keeps it. */
    CU_ASSERT_PTR_NULL(el_l1_get(f.l1, "course:race", el_now_ms(), NULL));
    el_buf_init(&v, 64);
    CU_ASSERT_EQUAL(el_redis_get(f.redis, "course:race", &v), EL_ENOTFOUND);
    el_buf_cleanup(&v);
    teardown(&f);
}

static void test_fill_never_overwrites_a_write(void)
{
    struct fixture f;
    struct loader l = {.status = 200, .body = "{\"v\":\"from store\"}"};
    struct el_blob *blob;
    enum el_layer layer;
    struct el_buf v;

    flushdb();
    setup(&f, unit_redis_url(3));
    /* A write put the new version in Redis; this process's L1 is cold. */
    CU_ASSERT_EQUAL(el_redis_set(f.redis, "course:w", "{\"v\":\"written\"}", 15, 60000), EL_OK);
    CU_ASSERT_EQUAL(el_tiered_get(f.t, "course:w", load, &l, &blob, &layer), EL_OK);
    CU_ASSERT_EQUAL(layer, EL_LAYER_L2);
    el_blob_unref(blob);
    el_buf_init(&v, 64);
    CU_ASSERT_EQUAL(el_redis_get(f.redis, "course:w", &v), EL_OK);
    CU_ASSERT_STRING_EQUAL(v.data, "{\"v\":\"written\"}");
    el_buf_cleanup(&v);
    teardown(&f);
}

static void test_silent_bus_revalidates_then_stale(void)
{
    struct el_tiered_opts o = {
        .type = EL_TYPE_COURSE, .ttl_ms = 60000, .neg_body = NEG, .max_stale_ms = 200};
    struct el_bus_handlers h = {0};
    struct loader l = {.status = 200, .body = "{\"v\":1}"};
    struct el_l1 *l1 = el_l1_new(1 << 20);
    struct el_redis *dead;
    struct el_bus *bus;
    struct el_tiered *t;
    struct el_blob *blob;
    enum el_layer layer;

    /* Redis (and so the bus) unreachable: the channel is never heard. */
    CU_ASSERT_EQUAL_FATAL(el_redis_new("redis://127.0.0.1:1/0", NULL, &dead, NULL), EL_OK);
    CU_ASSERT_EQUAL_FATAL(el_bus_start("redis://127.0.0.1:1/0", dead, &h, NULL, &bus, NULL), EL_OK);
    t = el_tiered_new(l1, dead, &o);
    el_tiered_set_bus(t, bus);
    CU_ASSERT_EQUAL(el_tiered_get(t, "course:s", load, &l, &blob, &layer), EL_OK);
    CU_ASSERT_EQUAL(layer, EL_LAYER_MISS);
    el_blob_unref(blob);
    /* Just checked: served from L1 unverified. */
    CU_ASSERT_EQUAL(el_tiered_get(t, "course:s", load, &l, &blob, &layer), EL_OK);
    CU_ASSERT_EQUAL(layer, EL_LAYER_L1);
    /* Age the check past max_stale (no sleep: move its timestamp). */
    atomic_store(&blob->checked_ms, el_now_ms() - 1000);
    el_blob_unref(blob);
    CU_ASSERT_EQUAL(el_tiered_get(t, "course:s", load, &l, &blob, &layer), EL_OK);
    CU_ASSERT_EQUAL(layer, EL_LAYER_MISS); /* revalidated against the store */
    CU_ASSERT_EQUAL(atomic_load(&l.calls), 2);
    atomic_store(&blob->checked_ms, el_now_ms() - 1000);
    el_blob_unref(blob);
    /* And when the store cannot answer, the copy is served as STALE. */
    l.status = EL_EUNAVAIL;
    CU_ASSERT_EQUAL(el_tiered_get(t, "course:s", load, &l, &blob, &layer), EL_OK);
    CU_ASSERT_EQUAL(layer, EL_LAYER_STALE);
    CU_ASSERT_STRING_EQUAL(blob->data, "{\"v\":1}");
    el_blob_unref(blob);
    el_tiered_free(t);
    el_bus_stop(bus);
    el_redis_free(dead);
    el_l1_free(l1);
}

static void test_hot_key_refreshed_early(void)
{
    struct fixture f;
    struct loader l = {.status = 200, .body = "{\"v\":2}"};
    struct el_blob *old = el_blob_new(200, "{\"v\":1}", 7), *blob;
    enum el_layer layer;
    uint64_t expires = 0;

    flushdb();
    setup(&f, unit_redis_url(3));
    /* An entry in the last tenth of its 60 s TTL. */
    CU_ASSERT_EQUAL(el_l1_put(f.l1, "course:hot2", old, el_now_ms() + 3000, el_now_ms()), EL_OK);
    el_blob_unref(old);
    CU_ASSERT_EQUAL(el_tiered_get(f.t, "course:hot2", load, &l, &blob, &layer), EL_OK);
    CU_ASSERT_EQUAL(layer, EL_LAYER_MISS); /* this one request refreshed it */
    CU_ASSERT_STRING_EQUAL(blob->data, "{\"v\":2}");
    el_blob_unref(blob);
    blob = el_l1_get(f.l1, "course:hot2", el_now_ms(), &expires);
    CU_ASSERT_PTR_NOT_NULL_FATAL(blob);
    CU_ASSERT(expires > el_now_ms() + 50000); /* a whole new TTL */
    el_blob_unref(blob);
    CU_ASSERT_EQUAL(el_tiered_get(f.t, "course:hot2", load, &l, &blob, &layer), EL_OK);
    CU_ASSERT_EQUAL(layer, EL_LAYER_L1);
    el_blob_unref(blob);
    CU_ASSERT_EQUAL(atomic_load(&l.calls), 1);
    teardown(&f);
}

struct slow_fill {
    struct el_l1 *l1;
    struct el_redis *redis;
};

/* A store read of revision 4 during which revision 6 is written into
 * Redis and L1 (as another writer would), with no announcement. */
static int load_while_written(void *arg, struct el_buf *body, uint64_t *version)
{
    struct slow_fill *sf = arg;
    struct el_blob *six = el_blob_new(200, "{\"v\":6}", 7);

    six->version = 6;
    CU_ASSERT_EQUAL(el_redis_set_versioned(sf->redis, "course:g", 6, six->data, six->len, 60000),
                    EL_OK);
    CU_ASSERT_EQUAL(el_l1_put(sf->l1, "course:g", six, el_now_ms() + 60000, el_now_ms()), EL_OK);
    el_blob_unref(six);
    *version = 4;
    return el_buf_adds(body, "{\"v\":4}") == EL_OK ? 200 : EL_ENOMEM;
}

/* The version guard: writers' cache updates that land in the opposite
 * order of their commits, and fills that read an older revision, never
 * move L1 or Redis backwards; the version travels with the bytes into
 * another process's L1. */
static void test_version_guard(void)
{
    struct fixture a, b;
    struct loader old = {.status = 200, .body = "{\"v\":4}", .version = 4};
    struct el_blob *blob;
    enum el_layer layer;
    struct el_buf v;
    uint64_t ver = 0;

    flushdb();
    setup(&a, unit_redis_url(3));
    setup(&b, unit_redis_url(3));
    CU_ASSERT_EQUAL(el_tiered_set(a.t, "course:g", "{\"v\":6}", 7, 6), EL_OK);
    CU_ASSERT_EQUAL(el_tiered_set(a.t, "course:g", "{\"v\":5}", 7, 5), EL_OK); /* late */
    blob = el_l1_get(a.l1, "course:g", el_now_ms(), NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(blob);
    CU_ASSERT_STRING_EQUAL(blob->data, "{\"v\":6}");
    CU_ASSERT_EQUAL(blob->version, 6);
    el_blob_unref(blob);
    el_buf_init(&v, 64);
    CU_ASSERT_EQUAL(el_redis_get_versioned(a.redis, "course:g", &v, &ver), EL_OK);
    CU_ASSERT_STRING_EQUAL(v.data, "{\"v\":6}");
    CU_ASSERT_EQUAL(ver, 6);
    el_buf_cleanup(&v);
    /* Another process: served from Redis with its version. */
    CU_ASSERT_EQUAL(el_tiered_get(b.t, "course:g", load, &old, &blob, &layer), EL_OK);
    CU_ASSERT_EQUAL(layer, EL_LAYER_L2);
    CU_ASSERT_EQUAL(blob->version, 6);
    el_blob_unref(blob);
    /* A fill that read revision 4 while another process's write of 6
     * landed (its announcement not yet heard) changes nothing: L1 and
     * Redis keep 6. */
    el_l1_clear(b.l1);
    CU_ASSERT_EQUAL(el_redis_del(b.redis, "course:g"), EL_OK);
    {
        struct slow_fill sf = {.l1 = b.l1, .redis = b.redis};
        CU_ASSERT_EQUAL(el_tiered_get(b.t, "course:g", load_while_written, &sf, &blob, &layer),
                        EL_OK);
        CU_ASSERT_EQUAL(layer, EL_LAYER_MISS);
        CU_ASSERT_EQUAL(blob->version, 4); /* this caller gets what it read */
        el_blob_unref(blob);
    }
    blob = el_l1_get(b.l1, "course:g", el_now_ms(), NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(blob);
    CU_ASSERT_EQUAL(blob->version, 6);
    el_blob_unref(blob);
    el_buf_init(&v, 64);
    CU_ASSERT_EQUAL(el_redis_get_versioned(b.redis, "course:g", &v, &ver), EL_OK);
    CU_ASSERT_EQUAL(ver, 6);
    el_buf_cleanup(&v);
    teardown(&a);
    teardown(&b);
}

/* A fill that read the course before its delete cannot bring it back. */
static void test_delete_tombstone(void)
{
    struct fixture f;
    struct loader before = {.status = 200, .body = "{\"v\":9}", .version = 9};
    struct el_blob *blob;
    enum el_layer layer;

    flushdb();
    setup(&f, unit_redis_url(3));
    CU_ASSERT_EQUAL(el_tiered_set_deleted(f.t, "course:d"), EL_OK);
    CU_ASSERT_EQUAL(el_tiered_get(f.t, "course:d", load, &before, &blob, &layer), EL_OK);
    CU_ASSERT_EQUAL(blob->status, 404);
    CU_ASSERT_EQUAL(atomic_load(&before.calls), 0);
    el_blob_unref(blob);
    /* Even straight into the layers: both refuse the older version. */
    blob = el_blob_new(200, "{\"v\":9}", 7);
    blob->version = 9;
    CU_ASSERT_EQUAL(el_l1_put(f.l1, "course:d", blob, el_now_ms() + 60000, el_now_ms()),
                    EL_ECONFLICT);
    el_blob_unref(blob);
    CU_ASSERT_EQUAL(el_redis_set_versioned(f.redis, "course:d", 9, "{}", 2, 60000), EL_ECONFLICT);
    teardown(&f);
}

/* A write whose Redis update failed (Redis paused) leaves the old bytes in
 * Redis until the replay. Meanwhile this process's L1 is dropped (as a bus
 * reset after the outage does): its own next read must come from the
 * store, not from the old copy in L2 -- the version guard has nothing left
 * to compare with. After the replay, Redis is clean. */
static void test_own_pending_write_not_read_back_from_l2(void)
{
    struct fixture f;
    struct loader v1 = {.status = 200, .body = "{\"v\":1}", .version = 1};
    struct loader v2 = {.status = 200, .body = "{\"v\":2}", .version = 2};
    struct el_blob *blob;
    enum el_layer layer;
    struct el_buf v;
    uint64_t ver = 0, deadline;
    redisContext *c;
    redisReply *r;
    int rc;

    flushdb();
    setup(&f, unit_redis_url(3));
    CU_ASSERT_EQUAL_FATAL(el_tiered_get(f.t, "course:pend", load, &v1, &blob, &layer), EL_OK);
    el_blob_unref(blob);
    c = raw();
    r = redisCommand(c, "CLIENT PAUSE 300 ALL");
    CU_ASSERT(r != NULL && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    redisFree(c);
    CU_ASSERT_EQUAL(el_tiered_set(f.t, "course:pend", "{\"v\":2}", 7, 2), EL_OK);
    /* Redis answers again (the breaker probes on its own schedule). */
    el_buf_init(&v, 64);
    deadline = el_now_ms() + 5000;
    while ((rc = el_redis_get_versioned(f.redis, "course:pend", &v, &ver)) != EL_OK &&
           el_now_ms() < deadline)
        usleep(10000);
    CU_ASSERT_EQUAL_FATAL(rc, EL_OK);
    CU_ASSERT_EQUAL(ver, 1); /* the old bytes are still there */
    el_tiered_dropped_all(f.l1);
    CU_ASSERT_EQUAL(el_tiered_get(f.t, "course:pend", load, &v2, &blob, &layer), EL_OK);
    CU_ASSERT_EQUAL(blob->version, 2);
    CU_ASSERT_EQUAL(layer, EL_LAYER_MISS);
    CU_ASSERT_EQUAL(atomic_load(&v2.calls), 1);
    el_blob_unref(blob);
    el_tiered_replay(f.redis, NULL);
    el_buf_reset(&v);
    rc = el_redis_get_versioned(f.redis, "course:pend", &v, &ver);
    CU_ASSERT(rc == EL_ENOTFOUND || (rc == EL_OK && ver == 2));
    el_buf_cleanup(&v);
    teardown(&f);
}

#define GUARD_THREADS 8
#define GUARD_WRITES 50

struct guard_writer {
    struct fixture *f;
    int first;
};

/* Versions first, first + GUARD_THREADS, ... written as fast as possible
 * by each thread, so updates of neighbouring versions race. */
static void *guard_write(void *arg)
{
    struct guard_writer *w = arg;
    char body[32];

    for (int i = 0; i < GUARD_WRITES; i++) {
        uint64_t ver = (uint64_t)w->first + (uint64_t)i * GUARD_THREADS;
        int n = snprintf(body, sizeof(body), "{\"v\":%llu}", (unsigned long long)ver);
        CU_ASSERT_EQUAL(el_tiered_set(w->f->t, "course:race2", body, (size_t)n, ver), EL_OK);
    }
    return NULL;
}

static void test_version_guard_concurrent(void)
{
    struct fixture f[2];
    struct guard_writer w[GUARD_THREADS];
    pthread_t th[GUARD_THREADS];
    uint64_t last = GUARD_THREADS * GUARD_WRITES;
    struct el_buf v;
    uint64_t ver = 0;
    char want[32];

    flushdb();
    /* What races here is versions, not Redis's speed: under a sanitizer on
     * a loaded machine 100 ms answers are missed, the breaker opens, and
     * Redis legitimately lacks the last write (it is replayed later). */
    setup_timeout(&f[0], unit_redis_url(3), 5000);
    setup_timeout(&f[1], unit_redis_url(3), 5000);
    for (int i = 0; i < GUARD_THREADS; i++) {
        w[i] = (struct guard_writer){.f = &f[i % 2], .first = i + 1};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, guard_write, &w[i]), 0);
    }
    for (int i = 0; i < GUARD_THREADS; i++)
        pthread_join(th[i], NULL);
    snprintf(want, sizeof(want), "{\"v\":%llu}", (unsigned long long)last);
    el_buf_init(&v, 64);
    if (el_redis_get_versioned(f[0].redis, "course:race2", &v, &ver) == EL_OK) {
        CU_ASSERT_EQUAL(ver, last);
        CU_ASSERT_STRING_EQUAL(v.data, want);
    } else {
        CU_FAIL("course:race2 is not in Redis");
    }
    el_buf_cleanup(&v);
    for (int i = 0; i < 2; i++) {
        struct el_blob *b = el_l1_get(f[i].l1, "course:race2", el_now_ms(), NULL);
        /* Each process's L1 holds at least the newest version its own
         * writers put (f[0] wrote up to last - 1; with no bus between the
         * two here, it may not have heard of last), or nothing. */
        if (b)
            CU_ASSERT(b->version >= last - (uint64_t)(i == 0 ? 1 : 0));
        el_blob_unref(b);
    }
    teardown(&f[0]);
    teardown(&f[1]);
}

/* An answer that cannot be built (here a 422 the loader made) is served
 * with its status and cached in L1 for the not-found TTL -- a storm of such
 * requests makes one load -- and never in Redis. */
static void test_error_answer_cached_briefly(void)
{
    struct fixture f;
    struct loader l = {.status = 422, .body = "{\"detail\":\"too large\"}"};
    struct el_blob *blob;
    enum el_layer layer;
    struct el_buf v;
    uint64_t expires = 0;

    flushdb();
    setup(&f, unit_redis_url(3));
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(el_tiered_get(f.t, "courses_list:1:x", load, &l, &blob, &layer), EL_OK);
        CU_ASSERT_EQUAL(blob->status, 422);
        CU_ASSERT_STRING_EQUAL(blob->data, "{\"detail\":\"too large\"}");
        CU_ASSERT_EQUAL(layer, i == 0 ? EL_LAYER_MISS : EL_LAYER_L1);
        el_blob_unref(blob);
    }
    CU_ASSERT_EQUAL(atomic_load(&l.calls), 1);
    blob = el_l1_get(f.l1, "courses_list:1:x", el_now_ms(), &expires);
    CU_ASSERT_PTR_NOT_NULL_FATAL(blob);
    CU_ASSERT(expires <= el_now_ms() + 30000); /* the not-found TTL, not the 60 s one */
    el_blob_unref(blob);
    el_buf_init(&v, 64);
    CU_ASSERT_EQUAL(el_redis_get(f.redis, "courses_list:1:x", &v), EL_ENOTFOUND);
    el_buf_cleanup(&v);
    teardown(&f);
}

/* el_tiered_peek answers exactly when el_tiered_get would answer from L1
 * with nothing else to do: never for a miss, an entry due for its early
 * refresh, or one the silent bus no longer vouches for. */
static void test_peek_only_what_l1_would_serve(void)
{
    struct el_tiered_opts o = {
        .type = EL_TYPE_COURSE, .ttl_ms = 60000, .neg_body = NEG, .max_stale_ms = 200};
    struct el_bus_handlers h = {0};
    struct loader l = {.status = 200, .body = "{\"v\":1}"};
    struct el_blob *hot = el_blob_new(200, "{\"v\":0}", 7), *blob, *peeked;
    struct el_l1 *l1 = el_l1_new(1 << 20);
    struct el_redis *dead;
    struct el_bus *bus;
    struct el_tiered *t;
    enum el_layer layer;

    CU_ASSERT_EQUAL_FATAL(el_redis_new("redis://127.0.0.1:1/0", NULL, &dead, NULL), EL_OK);
    CU_ASSERT_EQUAL_FATAL(el_bus_start("redis://127.0.0.1:1/0", dead, &h, NULL, &bus, NULL), EL_OK);
    t = el_tiered_new(l1, dead, &o);
    el_tiered_set_bus(t, bus);
    CU_ASSERT_PTR_NULL(el_tiered_peek(t, "course:p")); /* a miss */
    CU_ASSERT_EQUAL(el_tiered_get(t, "course:p", load, &l, &blob, &layer), EL_OK);
    CU_ASSERT_EQUAL(layer, EL_LAYER_MISS);
    peeked = el_tiered_peek(t, "course:p"); /* just checked: served */
    CU_ASSERT_PTR_EQUAL(peeked, blob);
    el_blob_unref(peeked);
    /* the bus silent and the check old: a worker must revalidate it */
    atomic_store(&blob->checked_ms, el_now_ms() - 1000);
    CU_ASSERT_PTR_NULL(el_tiered_peek(t, "course:p"));
    el_blob_unref(blob);
    /* in the last tenth of its TTL: a worker refreshes it */
    CU_ASSERT_EQUAL(el_l1_put(l1, "course:h", hot, el_now_ms() + 3000, el_now_ms()), EL_OK);
    el_blob_unref(hot);
    CU_ASSERT_PTR_NULL(el_tiered_peek(t, "course:h"));
    /* dropped (another process wrote it) */
    el_tiered_dropped(l1, "course:p");
    CU_ASSERT_PTR_NULL(el_tiered_peek(t, "course:p"));
    CU_ASSERT_EQUAL(atomic_load(&l.calls), 1);
    el_tiered_free(t);
    el_bus_stop(bus);
    el_redis_free(dead);
    el_l1_free(l1);
}

void test_tiered_register(void)
{
    CU_pSuite s = CU_add_suite("tiered", NULL, NULL);

    CU_add_test(s, "miss, then L1, then L2 in another process",
                test_miss_then_l1_then_l2_elsewhere);
    CU_add_test(s, "negative caching", test_negative_caching);
    CU_add_test(s, "single flight: one Redis read, one load", test_single_flight);
    CU_add_test(s, "store error is not cached", test_store_error_not_cached);
    CU_add_test(s, "Redis down: reads go on, fast", test_redis_down_reads_go_on);
    CU_add_test(s, "invalidate drops L1 and L2", test_invalidate);
    CU_add_test(s, "TTL jitter", test_jitter);
    CU_add_test(s, "4 processes x 25 misses: one store query", test_cluster_single_flight);
    CU_add_test(s, "fill race: an invalidated read is not cached", test_fill_race_not_cached);
    CU_add_test(s, "a fill never overwrites a write in Redis", test_fill_never_overwrites_a_write);
    CU_add_test(s, "silent bus: revalidate, then STALE", test_silent_bus_revalidates_then_stale);
    CU_add_test(s, "a hot key is refreshed before it expires", test_hot_key_refreshed_early);
    CU_add_test(s, "version guard: out-of-order writes and old fills", test_version_guard);
    CU_add_test(s, "version guard: a delete's tombstone", test_delete_tombstone);
    CU_add_test(s, "a write that missed Redis is not read back from L2 here",
                test_own_pending_write_not_read_back_from_l2);
    CU_add_test(s, "version guard: 8 racing writers, 2 processes", test_version_guard_concurrent);
    CU_add_test(s, "an answer that cannot be built is cached briefly, in L1 only",
                test_error_answer_cached_briefly);
    CU_add_test(s, "peek serves only what L1 would", test_peek_only_what_l1_would_serve);
}
