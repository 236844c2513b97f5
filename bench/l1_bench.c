/* l1_bench.c -- how good and how fast is L1 (lib/l1.c)?
 *
 * 1. Hit ratio of el_l1 (S3-FIFO, sharded) against a plain, global LRU with
 *    the same byte budget, on Zipf traces (alpha 0.8, 0.99, 1.2) of
 *    100k keys and 1M requests, the cache holding ~10% of the keys. Both are
 *    driven cache-aside: get, and put on a miss.
 * 2. Throughput of a 90% get / 10% put mix on a Zipf (0.99) key set for 1,
 *    2, 4 and 8 threads: the median of REPS interleaved runs of RUN_MS each,
 *    because a shared VM's CPUs are noisy enough that one run says little.
 *
 * Both tables are printed as markdown. Every entry has the same key length
 * and body size, so the LRU's per-entry cost is measured from el_l1's own
 * accounting (stats.bytes after one put) and the two compare on equal terms.
 * The run is bounded: about 1 s per alpha plus REPS x RUN_MS per thread
 * count (~10 s in all). */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/blob.h"
#include "core/el.h"
#include "cache/l1.h"

#define NKEYS 100000u
#define NREQ 1000000u
#define CACHE_PERCENT 10u
#define BODY_LEN 256
#define KEY_LEN 32
#define RUN_MS 250
#define REPS 7
#define MAX_THREADS 8
#define TTL_MS (UINT64_C(3600) * 1000)

/* ---- workload --------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* n requests over NKEYS keys, key k drawn with probability ~ 1/(k+1)^alpha.
 * Caller frees. */
static uint32_t *zipf_trace(double alpha, size_t n, uint64_t seed)
{
    double *cdf = malloc(NKEYS * sizeof(*cdf));
    uint32_t *trace = malloc(n * sizeof(*trace));
    double sum = 0;

    if (cdf == NULL || trace == NULL) {
        fprintf(stderr, "l1_bench: out of memory\n");
        exit(1);
    }
    for (uint32_t k = 0; k < NKEYS; k++)
        cdf[k] = (sum += 1.0 / pow(k + 1.0, alpha));
    for (size_t i = 0; i < n; i++) {
        double u = (double)(splitmix64(&seed) >> 11) * 0x1p-53 * sum;
        uint32_t lo = 0, hi = NKEYS - 1;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (cdf[mid] < u)
                lo = mid + 1;
            else
                hi = mid;
        }
        trace[i] = lo;
    }
    free(cdf);
    return trace;
}

static char keys[NKEYS][KEY_LEN + 1];
static struct el_blob *blobs[NKEYS];

static void make_keys_and_blobs(void)
{
    char body[BODY_LEN];

    memset(body, 'x', sizeof(body));
    for (uint32_t k = 0; k < NKEYS; k++) {
        /* Shaped like the app's keys: a prefix and a 24-hex ObjectId. */
        snprintf(keys[k], sizeof(keys[k]), "course:0%023x", k * 2654435761u);
        blobs[k] = el_blob_new(200, body, sizeof(body));
        if (blobs[k] == NULL) {
            fprintf(stderr, "l1_bench: out of memory\n");
            exit(1);
        }
    }
}

/* Accounted bytes of one entry, as el_l1 counts them. */
static size_t entry_cost(void)
{
    struct el_l1 *c = el_l1_new(1u << 20);
    struct el_l1_stats st;

    if (c == NULL || el_l1_put(c, keys[0], blobs[0], TTL_MS, 0) != EL_OK) {
        fprintf(stderr, "l1_bench: cannot calibrate\n");
        exit(1);
    }
    el_l1_stats(c, &st);
    el_l1_free(c);
    return (size_t)st.bytes;
}

/* ---- reference LRU ----------------------------------------------------------
 * Global, exact LRU over key ids (arrays indexed by id: no hashing, so it is
 * the policy alone that is compared). */

struct lru {
    uint32_t *prev, *next; /* doubly linked, NIL-terminated; head = most recent */
    unsigned char *in;
    uint32_t head, tail;
    size_t count, cap;
};

#define NIL UINT32_MAX

static void lru_init(struct lru *l, size_t cap)
{
    l->prev = malloc(NKEYS * sizeof(uint32_t));
    l->next = malloc(NKEYS * sizeof(uint32_t));
    l->in = calloc(NKEYS, 1);
    if (l->prev == NULL || l->next == NULL || l->in == NULL) {
        fprintf(stderr, "l1_bench: out of memory\n");
        exit(1);
    }
    l->head = l->tail = NIL;
    l->count = 0;
    l->cap = cap;
}

static void lru_cleanup(struct lru *l)
{
    free(l->prev);
    free(l->next);
    free(l->in);
}

static void lru_unlink(struct lru *l, uint32_t k)
{
    if (l->prev[k] != NIL)
        l->next[l->prev[k]] = l->next[k];
    else
        l->head = l->next[k];
    if (l->next[k] != NIL)
        l->prev[l->next[k]] = l->prev[k];
    else
        l->tail = l->prev[k];
}

static void lru_push(struct lru *l, uint32_t k)
{
    l->prev[k] = NIL;
    l->next[k] = l->head;
    if (l->head != NIL)
        l->prev[l->head] = k;
    else
        l->tail = k;
    l->head = k;
}

/* Cache-aside access: 1 on a hit; on a miss the key is inserted. */
static int lru_access(struct lru *l, uint32_t k)
{
    if (l->in[k]) {
        lru_unlink(l, k);
        lru_push(l, k);
        return 1;
    }
    if (l->count == l->cap) {
        uint32_t v = l->tail;
        lru_unlink(l, v);
        l->in[v] = 0;
        l->count--;
    }
    lru_push(l, k);
    l->in[k] = 1;
    l->count++;
    return 0;
}

/* ---- 1. hit ratio ------------------------------------------------------------ */

static void hit_ratio_table(size_t cost)
{
    static const double alphas[] = {0.8, 0.99, 1.2};
    size_t budget = (size_t)NKEYS * CACHE_PERCENT / 100 * cost;

    printf("### L1 hit ratio: S3-FIFO (el_l1) vs LRU\n\n");
    printf("%u keys, %u requests, cache-aside, budget %zu bytes (~%u%% of keys, "
           "%zu bytes per entry).\n\n",
           NKEYS, NREQ, budget, CACHE_PERCENT, cost);
    printf("| Zipf alpha | el_l1 (S3-FIFO) | LRU | difference | el_l1 evictions |\n");
    printf("|-----------:|----------------:|----:|-----------:|----------------:|\n");
    for (size_t a = 0; a < sizeof(alphas) / sizeof(alphas[0]); a++) {
        uint32_t *trace = zipf_trace(alphas[a], NREQ, 42 + a);
        struct el_l1 *c = el_l1_new(budget);
        struct el_l1_stats st;
        struct lru lru;
        size_t hits_l1 = 0, hits_lru = 0;

        if (c == NULL) {
            fprintf(stderr, "l1_bench: out of memory\n");
            exit(1);
        }
        lru_init(&lru, budget / cost);
        for (size_t i = 0; i < NREQ; i++) {
            uint32_t k = trace[i];
            struct el_blob *b = el_l1_get(c, keys[k], 0, NULL);
            if (b) {
                hits_l1++;
                el_blob_unref(b);
            } else if (el_l1_put(c, keys[k], blobs[k], TTL_MS, 0) != EL_OK) {
                fprintf(stderr, "l1_bench: put failed\n");
                exit(1);
            }
            hits_lru += (size_t)lru_access(&lru, k);
        }
        el_l1_stats(c, &st);
        printf("| %.2f | %.2f%% | %.2f%% | %+.2f pts | %llu |\n", alphas[a],
               100.0 * (double)hits_l1 / NREQ, 100.0 * (double)hits_lru / NREQ,
               100.0 * ((double)hits_l1 - (double)hits_lru) / NREQ,
               (unsigned long long)st.evictions);
        el_l1_free(c);
        lru_cleanup(&lru);
        free(trace);
    }
    printf("\n");
}

/* ---- 2. throughput ----------------------------------------------------------- */

#define TRACE_LEN (1u << 20)

/* Every put_every-th operation is a put (0: gets only). */
static unsigned put_every = 10;

struct worker {
    pthread_t tid;
    struct el_l1 *cache;
    const uint32_t *trace;
    size_t start;
    pthread_barrier_t *go;
    atomic_bool *stop;
    uint64_t ops, gets, hits;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    size_t i = w->start;
    uint64_t ops = 0, gets = 0, hits = 0;

    pthread_barrier_wait(w->go);
    while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
        /* Check the stop flag every 256 operations, not on each. */
        for (int n = 0; n < 256; n++, ops++) {
            uint32_t k = w->trace[i++ & (TRACE_LEN - 1)];
            if (put_every && ops % put_every == put_every - 1) {
                if (el_l1_put(w->cache, keys[k], blobs[k], TTL_MS, 0) != EL_OK)
                    abort();
            } else {
                struct el_blob *b = el_l1_get(w->cache, keys[k], 0, NULL);
                gets++;
                if (b) {
                    hits++;
                    el_blob_unref(b);
                }
            }
        }
    }
    w->ops = ops;
    w->gets = gets;
    w->hits = hits;
    return NULL;
}

/* One timed run of n threads on c; returns ops/s and adds to *gets, *hits. */
static double timed_run(struct el_l1 *c, const uint32_t *trace, unsigned n, uint64_t *gets,
                        uint64_t *hits)
{
    struct worker w[MAX_THREADS];
    pthread_barrier_t go;
    atomic_bool stop = false;
    struct timespec pause = {RUN_MS / 1000, (RUN_MS % 1000) * 1000000L};
    uint64_t ops = 0, t0, t1;

    if (pthread_barrier_init(&go, NULL, n + 1) != 0) {
        fprintf(stderr, "l1_bench: cannot set up\n");
        exit(1);
    }
    for (unsigned i = 0; i < n; i++) {
        w[i] = (struct worker){
            .cache = c, .trace = trace, .start = (size_t)i * 131071u, .go = &go, .stop = &stop};
        if (pthread_create(&w[i].tid, NULL, worker_main, &w[i]) != 0) {
            fprintf(stderr, "l1_bench: pthread_create failed\n");
            exit(1);
        }
    }
    pthread_barrier_wait(&go);
    t0 = el_now_us();
    nanosleep(&pause, NULL);
    atomic_store(&stop, true);
    for (unsigned i = 0; i < n; i++) {
        pthread_join(w[i].tid, NULL);
        ops += w[i].ops;
        *gets += w[i].gets;
        *hits += w[i].hits;
    }
    t1 = el_now_us();
    pthread_barrier_destroy(&go);
    return (double)ops * 1e6 / (double)(t1 - t0);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static void throughput_table(size_t cost)
{
    static const unsigned nthreads[] = {1, 2, 4, MAX_THREADS};
    enum { NROWS = sizeof(nthreads) / sizeof(nthreads[0]) };
    size_t budget = (size_t)NKEYS * CACHE_PERCENT / 100 * cost;
    uint32_t *trace = zipf_trace(0.99, TRACE_LEN, 7);
    struct el_l1 *cache[NROWS];
    double rate[NROWS][REPS], base;
    uint64_t gets[NROWS] = {0}, hits[NROWS] = {0};

    for (size_t t = 0; t < NROWS; t++) {
        cache[t] = el_l1_new(budget);
        if (cache[t] == NULL) {
            fprintf(stderr, "l1_bench: out of memory\n");
            exit(1);
        }
        /* Warm every cache so each row starts from the same steady state. */
        for (size_t i = 0; i < TRACE_LEN; i++)
            if (el_l1_put(cache[t], keys[trace[i]], blobs[trace[i]], TTL_MS, 0) != EL_OK)
                abort();
    }
    /* Rounds interleave the rows, so a slow spell of a shared host hits
     * every thread count alike instead of skewing one row. */
    for (int r = 0; r < REPS; r++)
        for (size_t t = 0; t < NROWS; t++)
            rate[t][r] = timed_run(cache[t], trace, nthreads[t], &gets[t], &hits[t]);

    if (put_every)
        printf("### L1 throughput: %u%% get / %u%% put, Zipf 0.99\n\n", 100 - 100 / put_every,
               100 / put_every);
    else
        printf(
            "### L1 throughput: gets only (every request a hit or miss, no fills), Zipf 0.99\n\n");
    printf("%u keys, budget %zu bytes (~%u%% of keys); median (and best) of %d interleaved "
           "runs of %d ms per row; the machine has %ld CPUs.\n\n",
           NKEYS, budget, CACHE_PERCENT, REPS, RUN_MS, sysconf(_SC_NPROCESSORS_ONLN));
    printf("| threads | ops/s (median) | ops/s (best) | per thread (median) | vs 1 thread "
           "| get hit ratio |\n");
    printf("|--------:|---------------:|-------------:|--------------------:|------------:"
           "|--------------:|\n");
    for (size_t t = 0; t < NROWS; t++)
        qsort(rate[t], REPS, sizeof(rate[t][0]), cmp_double);
    base = rate[0][REPS / 2];
    for (size_t t = 0; t < NROWS; t++) {
        double med = rate[t][REPS / 2];
        printf("| %u | %.2fM | %.2fM | %.2fM | %.2fx | %.1f%% |\n", nthreads[t], med / 1e6,
               rate[t][REPS - 1] / 1e6, med / nthreads[t] / 1e6, med / base,
               100.0 * (double)hits[t] / (double)gets[t]);
        el_l1_free(cache[t]);
    }
    printf("\n");
    free(trace);
}

int main(void)
{
    size_t cost;

    make_keys_and_blobs();
    cost = entry_cost();
    hit_ratio_table(cost);
    throughput_table(cost);
    /* The same with gets only: what a cache serving a hot set does between
     * fills. Puts replace and evict under the shard lock and free blobs
     * made by other threads, which is what limits the mixed table above. */
    put_every = 0;
    printf("\n");
    throughput_table(cost);
    for (uint32_t k = 0; k < NKEYS; k++)
        el_blob_unref(blobs[k]);
    return 0;
}
