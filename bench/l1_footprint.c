/* l1_footprint.c -- does L1_MAX_BYTES bound what L1 really costs?
 *
 *     build/l1-footprint [BUDGET_MIB] [SECONDS] [THREADS]    (64, 20, 4)
 *
 * A long, varied load on one el_l1 of the given budget: THREADS threads
 * each draw keys from 1M (Zipf-ish: the square of a uniform draw), read
 * them, and on a miss put a new blob whose size is log-uniform between
 * 200 B and 64 KiB (each put picks a new size, so entries of one key change
 * size) with a TTL of 1-60 s; the clock is real. Every second the process's
 * RSS is sampled. The report gives the budget, what L1 accounts, its
 * entries, and RSS above the baseline taken before L1 existed (peak and
 * last) -- and their ratio to the budget: what "the L1 budget is its
 * footprint" means in practice, fixed overhead (allocator arenas and free
 * lists, the shard array) included. Printed as markdown. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/l1.h"
#include "core/blob.h"
#include "core/el.h"

#define NKEYS 1000000u
#define MAX_THREADS 16
#define SIZE_MIN 200.0
#define SIZE_MAX_ 65536.0

static struct el_l1 *cache;
static atomic_int stop;
static atomic_uint_fast64_t ops, nputs;
static char filler[65536];

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *s)
{
    return (double)(splitmix64(s) >> 11) / 9007199254740992.0;
}

/* Resident set size in bytes (/proc/self/statm, second field, in pages). */
static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, res = 0;

    if (f == NULL)
        return 0;
    if (fscanf(f, "%llu %llu", &size, &res) != 2)
        res = 0;
    fclose(f);
    return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void *worker(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ULL + 1;
    char key[40];

    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        double u = uniform(&seed);
        unsigned k = (unsigned)(u * u * NKEYS);
        uint64_t now = el_now_ms();
        struct el_blob *b;

        snprintf(key, sizeof(key), "course:%08x", k);
        b = el_l1_get(cache, key, now, NULL);
        if (b == NULL) {
            /* log-uniform size: as many small as large entries */
            double lg = uniform(&seed);
            size_t len = (size_t)(SIZE_MIN * exp(lg * log(SIZE_MAX_ / SIZE_MIN)));
            uint64_t ttl = 1000 + splitmix64(&seed) % 59000;

            b = el_blob_new(200, filler, len);
            if (b == NULL)
                continue;
            (void)el_l1_put(cache, key, b, now + ttl, now);
            atomic_fetch_add_explicit(&nputs, 1, memory_order_relaxed);
        }
        el_blob_unref(b);
        atomic_fetch_add_explicit(&ops, 1, memory_order_relaxed);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    size_t budget = (size_t)(argc > 1 ? atoi(argv[1]) : 64) << 20;
    int seconds = argc > 2 ? atoi(argv[2]) : 20;
    int nthreads = argc > 3 ? atoi(argv[3]) : 4;
    pthread_t th[MAX_THREADS];
    uint64_t base, peak = 0, last = 0;
    struct el_l1_stats st;

    if (budget == 0 || seconds <= 0 || nthreads <= 0 || nthreads > MAX_THREADS) {
        fprintf(stderr, "usage: %s [BUDGET_MIB] [SECONDS] [THREADS<=%d]\n", argv[0], MAX_THREADS);
        return 2;
    }
    memset(filler, 'x', sizeof(filler));
    base = rss_bytes();
    cache = el_l1_new(budget);
    if (cache == NULL) {
        fprintf(stderr, "l1_footprint: out of memory\n");
        return 1;
    }
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)(i + 1)) != 0) {
            fprintf(stderr, "l1_footprint: cannot start a thread\n");
            return 1;
        }
    for (int s = 0; s < seconds; s++) {
        sleep(1); /* a sampling period, not a wait for a condition */
        last = rss_bytes() - base;
        if (last > peak)
            peak = last;
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    el_l1_stats(cache, &st);
    printf("| budget | accounted | entries | RSS above baseline, peak | last | peak / budget |"
           " operations | nputs |\n");
    printf("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    printf("| %.1f MiB | %.1f MiB | %llu | %.1f MiB | %.1f MiB | %.2f | %llu | %llu |\n",
           budget / 1048576.0, st.bytes / 1048576.0, (unsigned long long)st.entries,
           peak / 1048576.0, last / 1048576.0, (double)peak / (double)budget,
           (unsigned long long)atomic_load(&ops), (unsigned long long)atomic_load(&nputs));
    printf("\n%d threads, %d s, keys from %u (u^2 skew), bodies 200 B - 64 KiB log-uniform, "
           "TTL 1-60 s.\n",
           nthreads, seconds, NKEYS);
    el_l1_free(cache);
    return 0;
}
