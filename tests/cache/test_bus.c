/* test_bus.c -- the coherence channel, against the harness's redis-server.
 * Two buses on one Redis stand for two responder processes. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <unistd.h>

#include "cache/bus.h"
#include "unit.h"

struct seen {
    pthread_mutex_t lock;
    char key[128];
    int keys, resets, fills;
    uint64_t longest_silence; /* the heard handler's largest silent_ms */
    uint64_t gen;
    int dim;
    uint64_t dim_gen;
    char why[128];
};

static void on_key(void *arg, const char *key)
{
    struct seen *s = arg;
    pthread_mutex_lock(&s->lock);
    snprintf(s->key, sizeof(s->key), "%s", key);
    s->keys++;
    pthread_mutex_unlock(&s->lock);
}

static void on_gen(void *arg, uint64_t gen)
{
    struct seen *s = arg;
    pthread_mutex_lock(&s->lock);
    s->gen = gen;
    pthread_mutex_unlock(&s->lock);
}

static void on_dim(void *arg, int dim, uint64_t gen)
{
    struct seen *s = arg;
    pthread_mutex_lock(&s->lock);
    s->dim = dim;
    s->dim_gen = gen;
    pthread_mutex_unlock(&s->lock);
}

static void on_filled(void *arg, const char *key)
{
    struct seen *s = arg;
    EL_UNUSED(key);
    pthread_mutex_lock(&s->lock);
    s->fills++;
    pthread_mutex_unlock(&s->lock);
}

static void on_reset(void *arg, const char *why)
{
    struct seen *s = arg;
    pthread_mutex_lock(&s->lock);
    s->resets++;
    snprintf(s->why, sizeof(s->why), "%s", why);
    pthread_mutex_unlock(&s->lock);
}

static void on_heard(void *arg, uint64_t silent_ms)
{
    struct seen *s = arg;
    pthread_mutex_lock(&s->lock);
    if (silent_ms > s->longest_silence)
        s->longest_silence = silent_ms;
    pthread_mutex_unlock(&s->lock);
}

struct node {
    struct seen seen;
    struct el_redis *redis;
    struct el_bus *bus;
};

/* A bus with its own Redis handle: heartbeats every heartbeat_ms, fresh for
 * max_stale_ms after the last message heard. */
static void node_start_with(struct node *n, int heartbeat_ms, int max_stale_ms)
{
    struct el_bus_handlers h = {&n->seen, on_key, on_gen, on_filled,
                                on_reset, NULL,   on_dim, on_heard};
    struct el_bus_opts o = {.heartbeat_ms = heartbeat_ms, .max_stale_ms = max_stale_ms};

    memset(n, 0, sizeof(*n));
    pthread_mutex_init(&n->seen.lock, NULL);
    CU_ASSERT_EQUAL_FATAL(el_redis_new(unit_redis_url(0), NULL, &n->redis, NULL), EL_OK);
    CU_ASSERT_EQUAL_FATAL(el_bus_start(unit_redis_url(0), n->redis, &h, &o, &n->bus, NULL), EL_OK);
}

/* Fast heartbeats, so the tests of freshness are quick. */
static void node_start(struct node *n)
{
    node_start_with(n, 50, 300);
}

static void node_stop(struct node *n)
{
    el_bus_stop(n->bus);
    el_redis_free(n->redis);
    pthread_mutex_destroy(&n->seen.lock);
}

/* Poll a condition on n (under its lock) for up to 5 s. */
#define AWAIT(n, cond)                                                                             \
    do {                                                                                           \
        uint64_t deadline_ = el_now_ms() + 5000;                                                   \
        int ok_ = 0;                                                                               \
        while (!ok_ && el_now_ms() < deadline_) {                                                  \
            pthread_mutex_lock(&(n)->seen.lock);                                                   \
            ok_ = (cond);                                                                          \
            pthread_mutex_unlock(&(n)->seen.lock);                                                 \
            if (!ok_)                                                                              \
                sched_yield();                                                                     \
        }                                                                                          \
        CU_ASSERT(ok_);                                                                            \
    } while (0)

static void await_fresh(struct node *n)
{
    uint64_t deadline = el_now_ms() + 5000;

    while (!el_bus_fresh(n->bus, el_now_ms()) && el_now_ms() < deadline)
        sched_yield();
    CU_ASSERT(el_bus_fresh(n->bus, el_now_ms()));
}

static void test_invalidation_reaches_the_other(void)
{
    struct node a, b;

    node_start(&a);
    node_start(&b);
    /* Each drops its L1 once when it subscribes. */
    AWAIT(&a, a.seen.resets == 1);
    AWAIT(&b, b.seen.resets == 1);
    await_fresh(&a);
    await_fresh(&b);
    CU_ASSERT_EQUAL(el_bus_publish_key(a.bus, "course:abc"), EL_OK);
    AWAIT(&b, b.seen.keys == 1 && strcmp(b.seen.key, "course:abc") == 0);
    CU_ASSERT_EQUAL(el_bus_publish_generation(b.bus, 42), EL_OK);
    AWAIT(&a, a.seen.gen == 42);
    /* A list-generation dimension: its own handler, not the generation's. */
    CU_ASSERT_EQUAL(el_bus_publish_list_dim(b.bus, 3, 77), EL_OK);
    AWAIT(&a, a.seen.dim == 3 && a.seen.dim_gen == 77);
    pthread_mutex_lock(&a.seen.lock);
    CU_ASSERT_EQUAL(a.seen.gen, 42);
    pthread_mutex_unlock(&a.seen.lock);
    CU_ASSERT_EQUAL(el_bus_publish_filled(a.bus, "course:abc"), EL_OK);
    AWAIT(&b, b.seen.fills == 1);
    /* A process does not apply its own messages (it did so locally). */
    pthread_mutex_lock(&a.seen.lock);
    CU_ASSERT_EQUAL(a.seen.keys, 0);
    CU_ASSERT_EQUAL(a.seen.fills, 0);
    pthread_mutex_unlock(&a.seen.lock);
    /* No gap was seen: still one reset each. */
    pthread_mutex_lock(&b.seen.lock);
    CU_ASSERT_EQUAL(b.seen.resets, 1);
    pthread_mutex_unlock(&b.seen.lock);
    node_stop(&a);
    node_stop(&b);
}

static uint64_t beats(struct node *n)
{
    struct el_bus_stats st;

    el_bus_stats(n->bus, &st);
    return st.heartbeats;
}

/* One heartbeat sender for all (the lease holder), not one per process:
 * of 20 heartbeats, most come from one node (each node used to send its
 * own, a third each); when it stops, another takes over and everyone
 * stays fresh. Heartbeats every 200 ms here, not 50: the lease lives two
 * heartbeats, and a loaded machine can hold a thread back for 100 ms,
 * which would hand the lease around and make this a test of the
 * scheduler. */
static void test_one_heartbeat_sender(void)
{
    struct node n[3];
    uint64_t b0[3], d[3], total = 0, top = 0;
    int leader = 0;

    for (int i = 0; i < 3; i++)
        node_start_with(&n[i], 200, 2000);
    for (int i = 0; i < 3; i++)
        await_fresh(&n[i]);
    for (int i = 0; i < 3; i++)
        b0[i] = beats(&n[i]);
    {
        uint64_t deadline = el_now_ms() + 10000;
        do {
            total = 0;
            for (int i = 0; i < 3; i++)
                total += (d[i] = beats(&n[i]) - b0[i]);
            sched_yield();
        } while (total < 20 && el_now_ms() < deadline);
    }
    CU_ASSERT_FATAL(total >= 20);
    for (int i = 0; i < 3; i++)
        if (d[i] > top) {
            top = d[i];
            leader = i;
        }
    /* (Others beat too when the holder is late by half of max_stale, which
     * a loaded machine can make happen: most, not all.) */
    CU_ASSERT(top * 10 >= total * 6);
    node_stop(&n[leader]);
    {
        int other = (leader + 1) % 3;
        uint64_t before = beats(&n[other]) + beats(&n[(leader + 2) % 3]);
        uint64_t deadline = el_now_ms() + 5000;

        while (beats(&n[other]) + beats(&n[(leader + 2) % 3]) < before + 10 &&
               el_now_ms() < deadline)
            sched_yield();
        CU_ASSERT(beats(&n[other]) + beats(&n[(leader + 2) % 3]) >= before + 10);
        await_fresh(&n[other]);
        await_fresh(&n[(leader + 2) % 3]);
        node_stop(&n[other]);
        node_stop(&n[(leader + 2) % 3]);
    }
}

/* A batch goes out as one message and is applied part by part. */
static void test_batch_is_one_message(void)
{
    struct node a, b;
    struct el_bus_stats s0, s1;

    node_start(&a);
    node_start(&b);
    await_fresh(&a);
    await_fresh(&b);
    el_bus_stats(a.bus, &s0);
    el_bus_batch_begin(a.bus);
    CU_ASSERT_EQUAL(el_bus_publish_key(a.bus, "course:one"), EL_OK);
    el_bus_batch_begin(a.bus); /* nested: still one message */
    CU_ASSERT_EQUAL(el_bus_publish_key(a.bus, "course_summary:one"), EL_OK);
    CU_ASSERT_EQUAL(el_bus_publish_generation(a.bus, 9), EL_OK);
    CU_ASSERT_EQUAL(el_bus_batch_end(a.bus), EL_OK);
    CU_ASSERT_EQUAL(el_bus_publish_list_dim(a.bus, 2, 5), EL_OK);
    CU_ASSERT_EQUAL(el_bus_batch_end(a.bus), EL_OK);
    AWAIT(&b, b.seen.keys == 2 && strcmp(b.seen.key, "course_summary:one") == 0 &&
                  b.seen.gen == 9 && b.seen.dim == 2 && b.seen.dim_gen == 5);
    el_bus_stats(a.bus, &s1);
    /* One message for the four (heartbeats are not batched: not counted). */
    CU_ASSERT_EQUAL((s1.published - s1.heartbeats) - (s0.published - s0.heartbeats), 1);
    /* No gap seen for it. */
    pthread_mutex_lock(&b.seen.lock);
    CU_ASSERT_EQUAL(b.seen.resets, 1);
    pthread_mutex_unlock(&b.seen.lock);
    node_stop(&a);
    node_stop(&b);
}

static void test_gap_drops_l1(void)
{
    struct node b;
    struct el_redis *raw;
    struct el_bus_stats st;
    const char *m1 = "E1 00000000000000aa 1 K course:x";
    const char *m3 = "E1 00000000000000aa 3 K course:y"; /* #2 never arrives */

    node_start(&b);
    AWAIT(&b, b.seen.resets == 1);
    await_fresh(&b);
    CU_ASSERT_EQUAL_FATAL(el_redis_new(unit_redis_url(0), NULL, &raw, NULL), EL_OK);
    CU_ASSERT_EQUAL(el_redis_publish(raw, EL_BUS_CHANNEL, m1, strlen(m1)), EL_OK);
    AWAIT(&b, b.seen.keys == 1);
    CU_ASSERT_EQUAL(el_redis_publish(raw, EL_BUS_CHANNEL, m3, strlen(m3)), EL_OK);
    AWAIT(&b, b.seen.resets == 2 && b.seen.keys == 2);
    pthread_mutex_lock(&b.seen.lock);
    CU_ASSERT_PTR_NOT_NULL(strstr(b.seen.why, "lost"));
    CU_ASSERT_STRING_EQUAL(b.seen.key, "course:y"); /* still applied */
    pthread_mutex_unlock(&b.seen.lock);
    el_bus_stats(b.bus, &st);
    CU_ASSERT_EQUAL(st.gaps, 1);
    el_redis_free(raw);
    node_stop(&b);
}

static void test_freshness_needs_the_channel(void)
{
    struct el_bus_handlers h = {0};
    struct el_redis *dead;
    struct el_bus *bus;

    /* No bus at all: one process, nobody to hear from -- always fresh. */
    CU_ASSERT_TRUE(el_bus_fresh(NULL, el_now_ms()));
    /* A bus that cannot subscribe is never fresh. */
    CU_ASSERT_EQUAL_FATAL(el_redis_new("redis://127.0.0.1:1/0", NULL, &dead, NULL), EL_OK);
    CU_ASSERT_EQUAL_FATAL(el_bus_start("redis://127.0.0.1:1/0", dead, &h, NULL, &bus, NULL), EL_OK);
    CU_ASSERT_FALSE(el_bus_fresh(bus, el_now_ms()));
    el_bus_stop(bus);
    el_redis_free(dead);
}

static void test_heard_recently_then_stale(void)
{
    struct node a;

    node_start(&a);
    await_fresh(&a);
    /* 300 ms of silence (max_stale_ms) later, it is no longer fresh. */
    CU_ASSERT_FALSE(el_bus_fresh(a.bus, el_now_ms() + 301));
    node_stop(&a);
}

/* Redis hangs (CLIENT PAUSE 600 ms, twice max_stale): nothing is heard,
 * and when the channel is heard again the heard handler is told how long
 * the silence was. Before it, heartbeats every 50 ms: no silence near
 * max_stale. */
static void test_silence_reported(void)
{
    struct node a;
    redisContext *c;
    redisReply *r;

    node_start(&a);
    AWAIT(&a, a.seen.resets == 1); /* subscribed */
    await_fresh(&a);
    usleep(400 * 1000);
    pthread_mutex_lock(&a.seen.lock);
    CU_ASSERT(a.seen.longest_silence < 300);
    pthread_mutex_unlock(&a.seen.lock);
    c = unit_redis_raw(0);
    r = redisCommand(c, "CLIENT PAUSE 600 ALL");
    CU_ASSERT(r != NULL && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    redisFree(c);
    AWAIT(&a, a.seen.longest_silence > 450);
    await_fresh(&a);
    node_stop(&a);
}

void test_bus_register(void)
{
    CU_pSuite s = CU_add_suite("bus", NULL, NULL);

    CU_add_test(s, "one heartbeat sender (a lease), another when it stops",
                test_one_heartbeat_sender);
    CU_add_test(s, "a batch is one message, applied part by part", test_batch_is_one_message);
    CU_add_test(s, "invalidation, generation, fill reach the other process",
                test_invalidation_reaches_the_other);
    CU_add_test(s, "a sequence gap drops L1", test_gap_drops_l1);
    CU_add_test(s, "heard again after a silence: the handler is told", test_silence_reported);
    CU_add_test(s, "fresh only while the channel is heard", test_freshness_needs_the_channel);
    CU_add_test(s, "silence past max_stale is stale", test_heard_recently_then_stale);
}
