/* test_l1.c -- the in-process cache (lib/l1.c).
 *
 * Three suites: "l1" (the contract: lookups, replacement, removal, blob
 * references, TTL driven by now_ms, the byte bound, size limits, the
 * disabled cache), "l1 policy" (S3-FIFO against a small exact LRU written
 * here: scan resistance, ghost readmission, Zipf hit ratio) and "l1 threads"
 * (eight threads on overlapping keys, TSan-clean). No test sleeps: time is
 * the now_ms parameter.
 *
 * Tests that depend on exact FIFO order (expired victims, scan resistance,
 * ghost readmission) use 32 KiB caches, which l1.c keeps in one shard (it
 * gives each shard at least 64 KiB); everything else holds for any shard
 * count. */
#include <math.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/blob.h"
#include "core/el.h"
#include "cache/l1.h"
#include "cache/testing.h"
#include "unit.h"

#define FAR_FUTURE UINT64_MAX

static struct el_blob *blob_str(const char *s)
{
    struct el_blob *b = el_blob_new(200, s, strlen(s));

    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    return b;
}

static unsigned refs(struct el_blob *b)
{
    return atomic_load(&b->refs);
}

static struct el_l1_stats stats(struct el_l1 *c)
{
    struct el_l1_stats st;

    el_l1_stats(c, &st);
    return st;
}

/* Bytes one entry (key, blob) is accounted at, measured on a fresh cache. */
static uint64_t cost_of(const char *key, struct el_blob *b)
{
    struct el_l1 *c = el_l1_new(1u << 20);
    uint64_t bytes;

    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(el_l1_put(c, key, b, FAR_FUTURE, 0), EL_OK);
    bytes = stats(c).bytes;
    el_l1_free(c);
    return bytes;
}

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* ---- suite "l1": the contract ----------------------------------------------- */

static void test_put_get(void)
{
    struct el_l1 *c = el_l1_new(1u << 20);
    struct el_blob *b = blob_str("{\"id\":1}"), *g;
    uint64_t exp = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_PTR_NULL(el_l1_get(c, "course:1", 0, NULL));
    CU_ASSERT_EQUAL(el_l1_put(c, "course:1", b, 5000, 0), EL_OK);
    CU_ASSERT_EQUAL(refs(b), 2); /* ours and the cache's */

    g = el_l1_get(c, "course:1", 10, &exp);
    CU_ASSERT_PTR_EQUAL(g, b); /* the same bytes, not a copy */
    CU_ASSERT_EQUAL(exp, 5000);
    CU_ASSERT_EQUAL(refs(b), 3);
    CU_ASSERT_STRING_EQUAL(g->data, "{\"id\":1}");
    el_blob_unref(g);

    CU_ASSERT_PTR_NULL(el_l1_get(c, "course:2", 10, NULL));
    CU_ASSERT_PTR_NULL(el_l1_get(c, "course:", 10, NULL));
    CU_ASSERT_PTR_NULL(el_l1_get(c, "course:10", 10, NULL));
    CU_ASSERT_EQUAL(stats(c).entries, 1);
    CU_ASSERT_EQUAL(stats(c).bytes, cost_of("course:1", b));
    CU_ASSERT_EQUAL(stats(c).max_bytes, 1u << 20);
    el_l1_free(c);
    CU_ASSERT_EQUAL(refs(b), 1);
    el_blob_unref(b);
}

static void test_accounting(void)
{
    struct el_blob *b = blob_str("0123456789");
    uint64_t c1 = cost_of("k", b), c41 = cost_of("k1234567890123456789012345678901234567890", b);

    /* What the allocator holds: the blob with its header and rounding, the
     * entry with its key (in 16-byte size classes), and an index share of
     * at least a few pointers' worth. */
    CU_ASSERT(c41 - c1 >= 40 - 16 && c41 - c1 <= 40 + 16);
    CU_ASSERT_EQUAL(el_blob_footprint(b), malloc_usable_size(b));
    CU_ASSERT(el_blob_footprint(b) >= sizeof(*b) + 11);
    CU_ASSERT(c1 >= el_blob_footprint(b) + 2 + 8 * sizeof(void *));
    el_blob_unref(b);
}

static void test_replace(void)
{
    struct el_l1 *c = el_l1_new(1u << 20);
    struct el_blob *b1 = blob_str("old body"), *b2 = blob_str("a new and longer body"), *g1, *g2;

    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(el_l1_put(c, "k", b1, 100, 0), EL_OK);
    g1 = el_l1_get(c, "k", 0, NULL);
    CU_ASSERT_PTR_EQUAL(g1, b1);
    CU_ASSERT_EQUAL(el_l1_put(c, "k", b2, 200, 0), EL_OK);
    /* The cache dropped its reference to b1; ours and g1 remain. */
    CU_ASSERT_EQUAL(refs(b1), 2);
    CU_ASSERT_STRING_EQUAL(g1->data, "old body");

    uint64_t exp = 0;
    g2 = el_l1_get(c, "k", 150, &exp);
    CU_ASSERT_PTR_EQUAL(g2, b2);
    CU_ASSERT_EQUAL(exp, 200);
    CU_ASSERT_EQUAL(stats(c).entries, 1);
    CU_ASSERT_EQUAL(stats(c).bytes, cost_of("k", b2));

    /* Putting the blob that is already there changes nothing. */
    CU_ASSERT_EQUAL(el_l1_put(c, "k", b2, 200, 0), EL_OK);
    CU_ASSERT_EQUAL(refs(b2), 3);
    CU_ASSERT_EQUAL(stats(c).entries, 1);

    el_blob_unref(g1);
    el_blob_unref(g2);
    CU_ASSERT_EQUAL(refs(b1), 1);
    el_l1_free(c);
    CU_ASSERT_EQUAL(refs(b2), 1);
    el_blob_unref(b1);
    el_blob_unref(b2);
}

/* The version guard: a live entry is never replaced by a lower version;
 * an equal or higher one replaces it, and so does anything once the entry
 * has expired. */
static void test_version_guard(void)
{
    struct el_l1 *c = el_l1_new(1u << 20);
    struct el_blob *v2 = blob_str("v2"), *v1 = blob_str("v1"), *v3 = blob_str("v3"), *g;

    v1->version = 1;
    v2->version = 2;
    v3->version = 3;
    CU_ASSERT_EQUAL(el_l1_put(c, "k", v2, 100, 0), EL_OK);
    CU_ASSERT_EQUAL(el_l1_put(c, "k", v1, 100, 0), EL_ECONFLICT);
    CU_ASSERT_EQUAL(refs(v1), 1); /* nothing kept of the refused put */
    g = el_l1_get(c, "k", 0, NULL);
    CU_ASSERT_PTR_EQUAL(g, v2);
    el_blob_unref(g);
    CU_ASSERT_EQUAL(el_l1_put(c, "k", v2, 200, 0), EL_OK); /* equal: new expiry */
    CU_ASSERT_EQUAL(el_l1_put(c, "k", v3, 100, 0), EL_OK);
    g = el_l1_get(c, "k", 0, NULL);
    CU_ASSERT_PTR_EQUAL(g, v3);
    el_blob_unref(g);
    /* Once v3 has expired, an older version may be cached again. */
    CU_ASSERT_EQUAL(el_l1_put(c, "k", v1, 300, 150), EL_OK);
    g = el_l1_get(c, "k", 150, NULL);
    CU_ASSERT_PTR_EQUAL(g, v1);
    el_blob_unref(g);
    CU_ASSERT_EQUAL(stats(c).entries, 1);
    el_l1_free(c);
    el_blob_unref(v1);
    el_blob_unref(v2);
    el_blob_unref(v3);
}

static void test_del(void)
{
    struct el_l1 *c = el_l1_new(1u << 20);
    struct el_blob *a = blob_str("a"), *b = blob_str("b");

    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(el_l1_put(c, "a", a, FAR_FUTURE, 0), EL_OK);
    CU_ASSERT_EQUAL(el_l1_put(c, "b", b, FAR_FUTURE, 0), EL_OK);
    el_l1_del(c, "a");
    el_l1_del(c, "a");       /* already gone: no-op */
    el_l1_del(c, "missing"); /* never there: no-op */
    CU_ASSERT_PTR_NULL(el_l1_get(c, "a", 0, NULL));
    CU_ASSERT_EQUAL(refs(a), 1);
    struct el_blob *g = el_l1_get(c, "b", 0, NULL);
    CU_ASSERT_PTR_EQUAL(g, b);
    el_blob_unref(g);
    CU_ASSERT_EQUAL(stats(c).entries, 1);
    CU_ASSERT_EQUAL(stats(c).bytes, cost_of("b", b));
    CU_ASSERT_EQUAL(stats(c).evictions, 0); /* a delete is not an eviction */
    el_l1_del(c, "b");
    CU_ASSERT_EQUAL(stats(c).entries, 0);
    CU_ASSERT_EQUAL(stats(c).bytes, 0);
    el_l1_free(c);
    el_blob_unref(a);
    el_blob_unref(b);
}

static void test_clear(void)
{
    struct el_l1 *c = el_l1_new(8u << 20); /* many shards */
    struct el_blob *b = blob_str("shared body");
    char key[32];

    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof(key), "key:%d", i);
        CU_ASSERT_EQUAL(el_l1_put(c, key, b, FAR_FUTURE, 0), EL_OK);
    }
    CU_ASSERT_EQUAL(stats(c).entries, 500);
    CU_ASSERT_EQUAL(refs(b), 501);
    el_l1_clear(c);
    CU_ASSERT_EQUAL(stats(c).entries, 0);
    CU_ASSERT_EQUAL(stats(c).bytes, 0);
    CU_ASSERT_EQUAL(refs(b), 1);
    CU_ASSERT_PTR_NULL(el_l1_get(c, "key:7", 0, NULL));
    /* Still usable after a clear. */
    CU_ASSERT_EQUAL(el_l1_put(c, "key:7", b, FAR_FUTURE, 0), EL_OK);
    CU_ASSERT_EQUAL(stats(c).entries, 1);
    el_l1_free(c);
    CU_ASSERT_EQUAL(refs(b), 1);
    el_blob_unref(b);
}

static void test_del_prefix(void)
{
    struct el_l1 *c = el_l1_new(8u << 20);
    struct el_blob *b = blob_str("x"), *g;
    static const char *const keys[] = {"course:1", "course:22",   "courses_list:p1",
                                       "course",   "session:abc", "cours"};
    char key[32];

    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        CU_ASSERT_EQUAL(el_l1_put(c, keys[i], b, FAR_FUTURE, 0), EL_OK);
    for (int i = 0; i < 300; i++) { /* spread over every shard */
        snprintf(key, sizeof(key), "course:x%d", i);
        CU_ASSERT_EQUAL(el_l1_put(c, key, b, FAR_FUTURE, 0), EL_OK);
    }
    el_l1_del_prefix(c, "course:");
    CU_ASSERT_EQUAL(stats(c).entries, 4);
    CU_ASSERT_PTR_NULL(el_l1_get(c, "course:1", 0, NULL));
    CU_ASSERT_PTR_NULL(el_l1_get(c, "course:22", 0, NULL));
    CU_ASSERT_PTR_NULL(el_l1_get(c, "course:x299", 0, NULL));
    static const char *const kept[] = {"courses_list:p1", "course", "session:abc", "cours"};
    for (size_t i = 0; i < 4; i++) {
        g = el_l1_get(c, kept[i], 0, NULL);
        CU_ASSERT_PTR_EQUAL(g, b);
        el_blob_unref(g);
    }
    CU_ASSERT_EQUAL(refs(b), 5);

    el_l1_del_prefix(c, "nothing:");
    CU_ASSERT_EQUAL(stats(c).entries, 4);
    el_l1_del_prefix(c, ""); /* every key starts with "" */
    CU_ASSERT_EQUAL(stats(c).entries, 0);
    CU_ASSERT_EQUAL(stats(c).bytes, 0);
    CU_ASSERT_EQUAL(refs(b), 1);
    el_l1_free(c);
    el_blob_unref(b);
}

/* A blob handed out by get stays valid, and counted, through every way the
 * cache can let go of it; the last reference frees it. */
static void test_refcount(void)
{
    struct el_l1 *c = el_l1_new(1u << 20);
    struct el_blob *b = blob_str("payload"), *g1, *g2;

    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(el_l1_put(c, "k", b, FAR_FUTURE, 0), EL_OK);
    el_blob_unref(b); /* the cache holds the only reference now */
    g1 = el_l1_get(c, "k", 0, NULL);
    g2 = el_l1_get(c, "k", 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g1);
    CU_ASSERT_EQUAL(refs(g1), 3);

    el_l1_del(c, "k"); /* deleted ... */
    CU_ASSERT_EQUAL(refs(g1), 2);
    CU_ASSERT_STRING_EQUAL(g1->data, "payload"); /* ... still readable */
    el_blob_unref(g2);
    CU_ASSERT_EQUAL(refs(g1), 1);

    /* Cached again, then the whole cache freed under the reader. */
    CU_ASSERT_EQUAL(el_l1_put(c, "k", g1, FAR_FUTURE, 0), EL_OK);
    CU_ASSERT_EQUAL(refs(g1), 2);
    el_l1_free(c);
    CU_ASSERT_EQUAL(refs(g1), 1);
    CU_ASSERT_EQUAL(g1->len, 7);
    el_blob_unref(g1); /* the last one: freed (ASan would see a leak or a double free) */
}

static void test_ttl(void)
{
    struct el_l1 *c = el_l1_new(1u << 20);
    struct el_blob *b = blob_str("ttl"), *g;
    uint64_t exp = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(el_l1_put(c, "k", b, 1000, 0), EL_OK);
    g = el_l1_get(c, "k", 999, &exp); /* the last live millisecond */
    CU_ASSERT_PTR_EQUAL(g, b);
    CU_ASSERT_EQUAL(exp, 1000);
    el_blob_unref(g);
    CU_ASSERT_EQUAL(stats(c).expired, 0);

    exp = 12345;
    CU_ASSERT_PTR_NULL(el_l1_get(c, "k", 1000, &exp)); /* now >= expires: miss */
    CU_ASSERT_EQUAL(exp, 12345);                       /* untouched on a miss */
    CU_ASSERT_EQUAL(stats(c).expired, 1);
    CU_ASSERT_EQUAL(stats(c).entries, 0); /* dropped, not just hidden */
    CU_ASSERT_EQUAL(stats(c).bytes, 0);
    CU_ASSERT_EQUAL(refs(b), 1);
    /* Going back in time does not revive it. */
    CU_ASSERT_PTR_NULL(el_l1_get(c, "k", 0, NULL));
    CU_ASSERT_EQUAL(stats(c).expired, 1);

    /* Dead on arrival: nothing cached, and the stale entry it replaces goes. */
    CU_ASSERT_EQUAL(el_l1_put(c, "k", b, 2000, 0), EL_OK);
    CU_ASSERT_EQUAL(el_l1_put(c, "k", b, 1500, 1500), EL_OK);
    CU_ASSERT_PTR_NULL(el_l1_get(c, "k", 0, NULL));
    CU_ASSERT_EQUAL(stats(c).entries, 0);
    CU_ASSERT_EQUAL(refs(b), 1);
    el_l1_free(c);
    el_blob_unref(b);
}

/* An entry whose TTL has passed is dropped (counted as expired) when
 * eviction meets it, even one that earned promotion by being read, and
 * before any live entry is evicted. One shard, equal-sized entries. */
static void test_expired_victims(void)
{
    const size_t budget = 32u << 10;
    struct el_l1 *c = el_l1_new(budget);
    struct el_blob *b = blob_str("body"), *g;
    uint64_t cap = budget / cost_of("old:0000", b);
    struct el_l1_stats st;
    char key[32];
    int missing = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_FATAL(cap > 40);
    for (int i = 0; i < 20; i++) { /* oldest; read once; expire at 100 */
        snprintf(key, sizeof(key), "old:%04d", i);
        CU_ASSERT_EQUAL(el_l1_put(c, key, b, 100, 0), EL_OK);
        el_blob_unref(el_l1_get(c, key, 0, NULL));
    }
    for (int i = 0; i < (int)cap - 20; i++) { /* exactly full */
        snprintf(key, sizeof(key), "liv:%04d", i);
        CU_ASSERT_EQUAL(el_l1_put(c, key, b, FAR_FUTURE, 0), EL_OK);
    }
    st = stats(c);
    CU_ASSERT_EQUAL(st.entries, cap);
    CU_ASSERT_EQUAL(st.evictions, 0);

    /* At now=200 each new entry needs one victim: the expired ones go. */
    for (int i = 0; i < 19; i++) {
        snprintf(key, sizeof(key), "new:%04d", i);
        CU_ASSERT_EQUAL(el_l1_put(c, key, b, FAR_FUTURE, 200), EL_OK);
    }
    st = stats(c);
    CU_ASSERT_EQUAL(st.expired, 19);
    CU_ASSERT_EQUAL(st.evictions, 0);
    CU_ASSERT_EQUAL(st.entries, cap);
    for (int i = 0; i < (int)cap - 20; i++) {
        snprintf(key, sizeof(key), "liv:%04d", i);
        g = el_l1_get(c, key, 200, NULL);
        missing += g == NULL;
        el_blob_unref(g);
    }
    CU_ASSERT_EQUAL(missing, 0);
    el_l1_free(c);
    CU_ASSERT_EQUAL(refs(b), 1);
    el_blob_unref(b);
}

static void test_byte_bound(void)
{
    static const size_t budgets[] = {6000, 100u << 10, 3u << 20};
    char body[4096], key[48];
    uint64_t seed = 1;

    memset(body, 'b', sizeof(body));
    for (size_t t = 0; t < sizeof(budgets) / sizeof(budgets[0]); t++) {
        struct el_l1 *c = el_l1_new(budgets[t]);
        struct el_l1_stats st;
        int over = 0, failed = 0;

        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        for (int i = 0; i < 4000; i++) {
            uint64_t r = splitmix64(&seed);
            struct el_blob *b;
            /* Keys of varying length, some repeated (replacements). */
            snprintf(key, sizeof(key), "k:%u:%.*s", (unsigned)(r % 3000), (int)(r >> 60),
                     "pppppppppppppppp");
            b = el_blob_new(200, body, (size_t)(r >> 20) % sizeof(body));
            CU_ASSERT_PTR_NOT_NULL_FATAL(b);
            if (el_l1_put(c, key, b, FAR_FUTURE, 0) != EL_OK)
                failed++;
            el_blob_unref(b);
            st = stats(c);
            if (st.bytes > st.max_bytes)
                over++;
        }
        st = stats(c);
        CU_ASSERT_EQUAL(over, 0);
        CU_ASSERT_EQUAL(failed, 0);
        CU_ASSERT_EQUAL(st.max_bytes, budgets[t]);
        CU_ASSERT(st.evictions > 0);
        CU_ASSERT(st.entries > 0);
        /* Accounting returns to zero: nothing leaked out of the books. */
        el_l1_clear(c);
        CU_ASSERT_EQUAL(stats(c).bytes, 0);
        el_l1_free(c);
    }
}

static void test_many_keys(void)
{
    struct el_l1 *c = el_l1_new(64u << 20);
    struct el_blob *b = blob_str("v");
    char key[32];
    int missing = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    for (int i = 0; i < 20000; i++) { /* every shard's table grows many times */
        snprintf(key, sizeof(key), "course:%d", i);
        CU_ASSERT_EQUAL(el_l1_put(c, key, b, FAR_FUTURE, 0), EL_OK);
    }
    CU_ASSERT_EQUAL(stats(c).entries, 20000);
    CU_ASSERT_EQUAL(stats(c).evictions, 0);
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "course:%d", i);
        struct el_blob *g = el_l1_get(c, key, 0, NULL);
        missing += g == NULL;
        el_blob_unref(g);
    }
    CU_ASSERT_EQUAL(missing, 0);
    for (int i = 0; i < 20000; i += 2) {
        snprintf(key, sizeof(key), "course:%d", i);
        el_l1_del(c, key);
    }
    CU_ASSERT_EQUAL(stats(c).entries, 10000);
    CU_ASSERT_EQUAL(refs(b), 10001);
    el_l1_free(c);
    CU_ASSERT_EQUAL(refs(b), 1);
    el_blob_unref(b);
}

static void test_too_big(void)
{
    struct el_l1 *c = el_l1_new(64u << 20); /* 64 shards of 1 MiB */
    struct el_l1 *tiny = el_l1_new(4096);
    size_t big_len = 2u << 20;
    char *body = calloc(1, big_len);
    struct el_blob *big, *small = blob_str("small"), *g;

    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tiny);
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    big = el_blob_new(200, body, big_len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);

    /* Smaller than the cache, larger than a shard: refused, not cached, and
     * the entry it would have replaced is gone (it is stale now). */
    CU_ASSERT_EQUAL(el_l1_put(c, "k", small, FAR_FUTURE, 0), EL_OK);
    CU_ASSERT_EQUAL(el_l1_put(c, "k", big, FAR_FUTURE, 0), EL_ETOOBIG);
    CU_ASSERT_EQUAL(refs(big), 1);
    CU_ASSERT_PTR_NULL(el_l1_get(c, "k", 0, NULL));
    CU_ASSERT_EQUAL(stats(c).entries, 0);
    CU_ASSERT_EQUAL(stats(c).bytes, 0);
    CU_ASSERT_EQUAL(refs(small), 1);

    /* A small budget is not sliced 64 ways: a 1 KiB response fits in 4 KiB,
     * and so do a couple of them. */
    struct el_blob *kb = el_blob_new(200, body, 1024);
    CU_ASSERT_PTR_NOT_NULL_FATAL(kb);
    CU_ASSERT_EQUAL(el_l1_put(tiny, "a", kb, FAR_FUTURE, 0), EL_OK);
    CU_ASSERT_EQUAL(el_l1_put(tiny, "b", kb, FAR_FUTURE, 0), EL_OK);
    g = el_l1_get(tiny, "a", 0, NULL);
    CU_ASSERT_PTR_EQUAL(g, kb);
    el_blob_unref(g);
    g = el_l1_get(tiny, "b", 0, NULL);
    CU_ASSERT_PTR_EQUAL(g, kb);
    el_blob_unref(g);
    CU_ASSERT(stats(tiny).bytes <= 4096);
    CU_ASSERT_EQUAL(el_l1_put(tiny, "c", big, FAR_FUTURE, 0), EL_ETOOBIG);
    CU_ASSERT_EQUAL(stats(tiny).entries, 2);

    el_l1_free(c);
    el_l1_free(tiny);
    CU_ASSERT_EQUAL(refs(kb), 1);
    el_blob_unref(kb);
    el_blob_unref(big);
    el_blob_unref(small);
    free(body);
}

static void test_disabled(void)
{
    struct el_l1 *c = el_l1_new(0);
    struct el_blob *b = blob_str("x");
    struct el_l1_stats st;

    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(el_l1_put(c, "k", b, FAR_FUTURE, 0), EL_OK);
    CU_ASSERT_EQUAL(refs(b), 1); /* no reference kept */
    CU_ASSERT_PTR_NULL(el_l1_get(c, "k", 0, NULL));
    el_l1_del(c, "k");
    el_l1_del_prefix(c, "");
    el_l1_clear(c);
    memset(&st, 0xff, sizeof(st));
    el_l1_stats(c, &st);
    CU_ASSERT_EQUAL(st.bytes, 0);
    CU_ASSERT_EQUAL(st.entries, 0);
    CU_ASSERT_EQUAL(st.evictions, 0);
    CU_ASSERT_EQUAL(st.expired, 0);
    CU_ASSERT_EQUAL(st.max_bytes, 0);
    el_l1_free(c);
    el_l1_free(NULL);
    el_blob_unref(b);
}

static void test_bad_args(void)
{
    struct el_l1 *c = el_l1_new(1u << 20);
    struct el_blob *b = blob_str("x");

    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(el_l1_put(c, NULL, b, FAR_FUTURE, 0), EL_EINVAL);
    CU_ASSERT_EQUAL(el_l1_put(c, "k", NULL, FAR_FUTURE, 0), EL_EINVAL);
    CU_ASSERT_PTR_NULL(el_l1_get(c, NULL, 0, NULL));
    el_l1_del(c, NULL);
    el_l1_del_prefix(c, NULL);
    CU_ASSERT_EQUAL(stats(c).entries, 0);
    CU_ASSERT_EQUAL(refs(b), 1);
    el_l1_free(c);
    el_blob_unref(b);
}

/* ---- suite "l1 policy": S3-FIFO against an exact LRU ------------------------- */

/* A plain LRU over key ids with a capacity in entries, the reference that
 * S3-FIFO must beat. Arrays indexed by id; head = most recently used. */
struct lru {
    int *prev, *next;
    char *in;
    int head, tail;
    size_t count, cap;
};

static void lru_init(struct lru *l, size_t nkeys, size_t cap)
{
    l->prev = malloc(nkeys * sizeof(int));
    l->next = malloc(nkeys * sizeof(int));
    l->in = calloc(nkeys, 1);
    CU_ASSERT_FATAL(l->prev && l->next && l->in);
    l->head = l->tail = -1;
    l->count = 0;
    l->cap = cap;
}

static void lru_cleanup(struct lru *l)
{
    free(l->prev);
    free(l->next);
    free(l->in);
}

static void lru_unlink(struct lru *l, int k)
{
    if (l->prev[k] >= 0)
        l->next[l->prev[k]] = l->next[k];
    else
        l->head = l->next[k];
    if (l->next[k] >= 0)
        l->prev[l->next[k]] = l->prev[k];
    else
        l->tail = l->prev[k];
}

static void lru_push(struct lru *l, int k)
{
    l->prev[k] = -1;
    l->next[k] = l->head;
    if (l->head >= 0)
        l->prev[l->head] = k;
    else
        l->tail = k;
    l->head = k;
}

/* Cache-aside access: returns 1 on a hit, inserts on a miss. */
static int lru_access(struct lru *l, int k)
{
    if (l->in[k]) {
        lru_unlink(l, k);
        lru_push(l, k);
        return 1;
    }
    if (l->count == l->cap) {
        int v = l->tail;
        lru_unlink(l, v);
        l->in[v] = 0;
        l->count--;
    }
    lru_push(l, k);
    l->in[k] = 1;
    l->count++;
    return 0;
}

/* The same cache-aside access on el_l1: get, and put on a miss. Keys are
 * fixed-length so every entry costs the same. */
static int l1_access(struct el_l1 *c, int k, struct el_blob *b)
{
    char key[16];
    struct el_blob *g;

    snprintf(key, sizeof(key), "k%07d", k);
    g = el_l1_get(c, key, 0, NULL);
    if (g) {
        el_blob_unref(g);
        return 1;
    }
    CU_ASSERT_EQUAL(el_l1_put(c, key, b, FAR_FUTURE, 0), EL_OK);
    return 0;
}

static int l1_has(struct el_l1 *c, int k)
{
    char key[16];
    struct el_blob *g;

    snprintf(key, sizeof(key), "k%07d", k);
    g = el_l1_get(c, key, 0, NULL);
    el_blob_unref(g);
    return g != NULL;
}

/* A hot set read over and over, then one pass over many keys read once (a
 * crawler, a report): S3-FIFO keeps the hot set, LRU loses all of it. */
static void test_scan_resistance(void)
{
    const size_t budget = 32u << 10;
    const int nhot = 40, nscan = 3000;
    struct el_blob *b = blob_str("a typical small response body, some sixty bytes or so");
    struct el_l1 *c = el_l1_new(budget);
    uint64_t cost = cost_of("k0000000", b);
    struct lru lru;
    int kept_l1 = 0, kept_lru = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_FATAL(nhot * cost < budget / 2); /* the hot set fits easily */
    lru_init(&lru, (size_t)nhot + (size_t)nscan, budget / cost);
    for (int round = 0; round < 4; round++)
        for (int k = 0; k < nhot; k++) {
            l1_access(c, k, b);
            lru_access(&lru, k);
        }
    for (int k = nhot; k < nhot + nscan; k++) {
        l1_access(c, k, b);
        lru_access(&lru, k);
    }
    for (int k = 0; k < nhot; k++) {
        kept_l1 += l1_has(c, k);
        kept_lru += lru.in[k];
    }
    CU_ASSERT_EQUAL(kept_l1, nhot);
    CU_ASSERT_EQUAL(kept_lru, 0); /* the test can tell the policies apart */
    CU_ASSERT(stats(c).evictions >= (uint64_t)nscan - budget / cost);
    lru_cleanup(&lru);
    el_l1_free(c);
    el_blob_unref(b);
}

/* A key evicted from probation unused, then asked for again soon, was worth
 * keeping: the ghost sends it straight to main, where a scan cannot reach
 * it. A fresh key inserted at the same moment is not so protected. */
static void test_ghost_readmission(void)
{
    struct el_blob *b = blob_str("body");
    struct el_l1 *c = el_l1_new(32u << 10);
    const int x = 0, fresh = 1;
    int k = 2;

    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(l1_access(c, x, b), 0);
    /* Fill until the first eviction: the oldest entry, x, never read. */
    while (stats(c).evictions == 0 && k < 10000)
        CU_ASSERT_EQUAL(l1_access(c, k++, b), 0);
    CU_ASSERT_EQUAL_FATAL(stats(c).evictions, 1);
    CU_ASSERT_FALSE(l1_has(c, x));

    CU_ASSERT_EQUAL(l1_access(c, x, b), 0);     /* asked again: ghost hit */
    CU_ASSERT_EQUAL(l1_access(c, fresh, b), 0); /* a newcomer, same moment */
    for (int i = 0; i < 2000; i++)
        CU_ASSERT_EQUAL(l1_access(c, k++, b), 0);
    CU_ASSERT_TRUE(l1_has(c, x));
    CU_ASSERT_FALSE(l1_has(c, fresh));
    el_l1_free(c);
    el_blob_unref(b);
}

/* n requests over nkeys keys, key i drawn with probability ~ 1/(i+1)^alpha. */
static int *zipf_trace(size_t nkeys, size_t n, double alpha, uint64_t seed)
{
    double *cdf = malloc(nkeys * sizeof(*cdf)), sum = 0;
    int *trace = malloc(n * sizeof(*trace));

    CU_ASSERT_FATAL(cdf && trace);
    for (size_t i = 0; i < nkeys; i++)
        cdf[i] = (sum += 1.0 / pow((double)i + 1.0, alpha));
    for (size_t i = 0; i < n; i++) {
        double u = (double)(splitmix64(&seed) >> 11) * 0x1p-53 * sum;
        size_t lo = 0, hi = nkeys - 1;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (cdf[mid] < u)
                lo = mid + 1;
            else
                hi = mid;
        }
        trace[i] = (int)lo;
    }
    free(cdf);
    return trace;
}

static void test_zipf_vs_lru(void)
{
    static const double alphas[] = {0.8, 0.99, 1.2};
    const size_t nkeys = 10000, nreq = 150000;
    struct el_blob *b = blob_str("a typical small response body, some sixty bytes or so");
    uint64_t cost = cost_of("k0000000", b);
    size_t budget = nkeys / 10 * cost; /* ~10% of the keys, over 2 shards */

    for (size_t a = 0; a < sizeof(alphas) / sizeof(alphas[0]); a++) {
        int *trace = zipf_trace(nkeys, nreq, alphas[a], 99 + a);
        struct el_l1 *c = el_l1_new(budget);
        struct lru lru;
        size_t hits_l1 = 0, hits_lru = 0;

        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        lru_init(&lru, nkeys, budget / cost);
        for (size_t i = 0; i < nreq; i++) {
            hits_l1 += (size_t)l1_access(c, trace[i], b);
            hits_lru += (size_t)lru_access(&lru, trace[i]);
        }
        /* S3-FIFO must at least match the LRU, though the LRU is global and
         * el_l1 splits its budget over shards. */
        CU_ASSERT(hits_l1 >= hits_lru);
        CU_ASSERT(hits_lru > nreq / 4); /* a meaningful workload, not all misses */
        if (hits_l1 < hits_lru)
            fprintf(stderr, "\nzipf %.2f: el_l1 %zu hits < LRU %zu\n", alphas[a], hits_l1,
                    hits_lru);
        CU_ASSERT(stats(c).bytes <= budget);
        lru_cleanup(&lru);
        el_l1_free(c);
        free(trace);
    }
    el_blob_unref(b);
}

/* ---- suite "l1 threads" ------------------------------------------------------ */

#define ST_THREADS 8
#define ST_OPS 25000
#define ST_KEYS 1000

static struct el_blob *st_blobs[ST_KEYS];

struct stress {
    pthread_t tid;
    struct el_l1 *c;
    uint64_t seed;
    /* Failures are counted here and asserted by the main thread: CUnit's
     * assertions are not thread-safe. */
    long bad_blob, over_budget, put_failed;
    long hits;
};

static void st_key(char *key, size_t size, int k)
{
    snprintf(key, size, "s:%d", k);
}

static void *stress_main(void *arg)
{
    struct stress *s = arg;
    uint64_t now = 1000;
    char key[16];
    size_t klen;

    for (int i = 0; i < ST_OPS; i++, now++) {
        uint64_t r = splitmix64(&s->seed);
        int k = (int)((r >> 8) % ST_KEYS), op = (int)(r % 100);
        st_key(key, sizeof(key), k);
        if (op < 60) {
            struct el_blob *g = el_l1_get(s->c, key, now, NULL);
            if (g) {
                klen = strlen(key);
                s->hits++;
                /* The blob must be the one made for this key, whole. */
                if (g->len < klen + 1 || memcmp(g->data, key, klen) != 0 || g->data[klen] != '|' ||
                    g->len != strlen(g->data) || g->status != 200)
                    s->bad_blob++;
                el_blob_unref(g);
            }
        } else if (op < 90) {
            if (el_l1_put(s->c, key, st_blobs[k], now + 1 + (r >> 40) % 3000, now) != EL_OK)
                s->put_failed++;
        } else if (op < 98) {
            el_l1_del(s->c, key);
        } else if (op < 99) {
            el_l1_del_prefix(s->c, "s:9"); /* ~111 keys across shards */
        } else {
            struct el_l1_stats st;
            el_l1_stats(s->c, &st);
            if (st.bytes > st.max_bytes)
                s->over_budget++;
        }
    }
    return NULL;
}

static void test_threads_stress(void)
{
    struct el_l1 *c = el_l1_new(256u << 10); /* several shards, constant eviction */
    struct stress th[ST_THREADS];
    struct el_l1_stats st;
    char key[16], body[1200];
    long hits = 0;
    uint64_t present = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    memset(body, '.', sizeof(body));
    for (int k = 0; k < ST_KEYS; k++) {
        int n;
        st_key(key, sizeof(key), k);
        n = snprintf(body, sizeof(body), "%s|", key);
        body[n] = '.'; /* sizes vary with k, so eviction has to juggle */
        st_blobs[k] = el_blob_new(200, body, (size_t)n + (size_t)(k * 7919) % 1000);
        CU_ASSERT_PTR_NOT_NULL_FATAL(st_blobs[k]);
    }
    for (int t = 0; t < ST_THREADS; t++) {
        th[t] = (struct stress){.c = c, .seed = 1000 + (uint64_t)t};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[t].tid, NULL, stress_main, &th[t]), 0);
    }
    for (int t = 0; t < ST_THREADS; t++) {
        CU_ASSERT_EQUAL(pthread_join(th[t].tid, NULL), 0);
        CU_ASSERT_EQUAL(th[t].bad_blob, 0);
        CU_ASSERT_EQUAL(th[t].over_budget, 0);
        CU_ASSERT_EQUAL(th[t].put_failed, 0);
        hits += th[t].hits;
    }
    CU_ASSERT(hits > 0);

    st = stats(c);
    CU_ASSERT(st.bytes <= st.max_bytes);
    CU_ASSERT(st.evictions > 0);
    CU_ASSERT(st.expired > 0);
    /* The books match the contents: at now=0 nothing has expired, so every
     * counted entry is found, and nothing else is. */
    for (int k = 0; k < ST_KEYS; k++) {
        st_key(key, sizeof(key), k);
        struct el_blob *g = el_l1_get(c, key, 0, NULL);
        if (g) {
            present++;
            CU_ASSERT_PTR_EQUAL(g, st_blobs[k]);
            el_blob_unref(g);
        }
    }
    CU_ASSERT_EQUAL(present, st.entries);
    el_l1_clear(c);
    st = stats(c);
    CU_ASSERT_EQUAL(st.entries, 0);
    CU_ASSERT_EQUAL(st.bytes, 0);
    /* No reference gained or lost under concurrency. */
    int leaked = 0;
    for (int k = 0; k < ST_KEYS; k++) {
        leaked += refs(st_blobs[k]) != 1;
        el_blob_unref(st_blobs[k]);
    }
    CU_ASSERT_EQUAL(leaked, 0);
    el_l1_free(c);
}

void test_l1_register(void)
{
    CU_pSuite s = CU_add_suite("l1", NULL, NULL);

    CU_add_test(s, "put and get", test_put_get);
    CU_add_test(s, "accounting", test_accounting);
    CU_add_test(s, "replace", test_replace);
    CU_add_test(s, "version guard", test_version_guard);
    CU_add_test(s, "del", test_del);
    CU_add_test(s, "clear", test_clear);
    CU_add_test(s, "del_prefix", test_del_prefix);
    CU_add_test(s, "refcount", test_refcount);
    CU_add_test(s, "ttl", test_ttl);
    CU_add_test(s, "expired victims", test_expired_victims);
    CU_add_test(s, "byte bound", test_byte_bound);
    CU_add_test(s, "many keys", test_many_keys);
    CU_add_test(s, "too big", test_too_big);
    CU_add_test(s, "disabled", test_disabled);
    CU_add_test(s, "bad args", test_bad_args);

    s = CU_add_suite("l1 policy", NULL, NULL);
    CU_add_test(s, "scan resistance", test_scan_resistance);
    CU_add_test(s, "ghost readmission", test_ghost_readmission);
    CU_add_test(s, "zipf hit ratio vs lru", test_zipf_vs_lru);

    s = CU_add_suite("l1 threads", NULL, NULL);
    CU_add_test(s, "stress", test_threads_stress);
}
