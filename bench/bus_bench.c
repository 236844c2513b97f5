/* bus_bench.c -- how the cache bus (lib/cache/bus.c) scales with the number
 * of processes N and the write rate W.
 *
 *     build/bus-bench REDIS_URL [SECONDS_PER_CELL]        (default 4)
 *
 * For N = 10, 50, 100 and 150 light subscribers -- each a real el_bus (its
 * own subscriber thread and connection, its own publisher id, its own try
 * at the heartbeat lease), all in this one process -- and W = 0, 100 and
 * 500 writes/s, one bus publishes W invalidations a second, each naming
 * the microsecond it was sent; every other bus records how long it took to
 * arrive. Per cell: Redis CPU (INFO cpu, user + sys, per second of wall
 * time), messages delivered per second (the sum of what the buses heard,
 * heartbeats included), and the propagation delay p50 / p99. Printed as a
 * markdown table. Bounded: cells x SECONDS, plus connecting. */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/bus.h"
#include "cache/redis.h"
#include "core/buf.h"
#include "core/el.h"

#define MAX_BUSES 160
#define MAX_SAMPLES (1u << 22)

static uint32_t samples[MAX_SAMPLES]; /* microseconds */
static atomic_uint nsamples;
static atomic_int recording;

static void on_key(void *arg, const char *key)
{
    uint64_t sent, now = el_now_us();
    unsigned i;

    EL_UNUSED(arg);
    if (!atomic_load(&recording) || sscanf(key, "bench:%" SCNu64, &sent) != 1 || now < sent)
        return;
    i = atomic_fetch_add(&nsamples, 1);
    if (i < MAX_SAMPLES)
        samples[i] = (uint32_t)(now - sent > UINT32_MAX ? UINT32_MAX : now - sent);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

/* used_cpu_user + used_cpu_sys of the Redis server, in seconds. */
static double redis_cpu(struct el_redis *r)
{
    struct el_buf b;
    double user = 0, sys = 0;
    const char *p;

    el_buf_init(&b, 1 << 16);
    if (el_redis_info(r, "cpu", &b) == EL_OK && b.data) {
        if ((p = strstr(b.data, "used_cpu_sys:")) != NULL)
            sys = atof(p + 13);
        if ((p = strstr(b.data, "used_cpu_user:")) != NULL)
            user = atof(p + 14);
    }
    el_buf_cleanup(&b);
    return user + sys;
}

static uint64_t heard(struct el_bus **bus, int n)
{
    uint64_t sum = 0;

    for (int i = 0; i < n; i++) {
        struct el_bus_stats st;
        el_bus_stats(bus[i], &st);
        sum += st.received;
    }
    return sum;
}

static void sleep_until_us(uint64_t t)
{
    uint64_t now = el_now_us();

    if (t > now) {
        struct timespec ts = {(time_t)((t - now) / 1000000), (long)((t - now) % 1000000) * 1000};
        nanosleep(&ts, NULL);
    }
}

int main(int argc, char **argv)
{
    static const int ns[] = {10, 50, 100, 150};
    static const int ws[] = {0, 100, 500};
    struct el_bus_handlers h = {0};
    struct el_bus_opts o = {0};
    struct el_redis *r;
    struct el_bus *bus[MAX_BUSES];
    struct el_err err = {0};
    int secs = argc > 2 ? atoi(argv[2]) : 4;

    if (argc < 2 || secs <= 0) {
        fprintf(stderr, "usage: %s REDIS_URL [SECONDS_PER_CELL]\n", argv[0]);
        return 2;
    }
    h.key = on_key;
    o.timeout_ms = 2000;
    if (el_redis_new(argv[1], &(struct el_redis_opts){.timeout_ms = 2000}, &r, &err) != EL_OK) {
        fprintf(stderr, "bus-bench: %s\n", err.msg);
        return 1;
    }
    printf("| N processes | W writes/s | Redis CPU | deliveries/s | propagation p50 | p99 |\n");
    printf("|---:|---:|---:|---:|---:|---:|\n");
    fflush(stdout);
    for (size_t a = 0; a < sizeof(ns) / sizeof(ns[0]); a++) {
        int n = ns[a];

        for (int i = 0; i < n; i++)
            if (el_bus_start(argv[1], r, &h, &o, &bus[i], &err) != EL_OK) {
                fprintf(stderr, "bus-bench: %s\n", err.msg);
                return 1;
            }
        /* Every subscriber connected and hearing the heartbeat. */
        for (uint64_t deadline = el_now_ms() + 30000; el_now_ms() < deadline;) {
            int fresh = 0;
            for (int i = 0; i < n; i++)
                fresh += el_bus_fresh(bus[i], el_now_ms());
            if (fresh == n)
                break;
            sleep_until_us(el_now_us() + 20000);
        }
        for (size_t c = 0; c < sizeof(ws) / sizeof(ws[0]); c++) {
            int w = ws[c];
            uint64_t t0 = el_now_us(), end = t0 + (uint64_t)secs * 1000000, next = t0, h0, h1;
            double cpu0 = redis_cpu(r), cpu1, wall;
            unsigned m;
            char key[64];

            atomic_store(&nsamples, 0);
            atomic_store(&recording, 1);
            h0 = heard(bus, n);
            while (el_now_us() < end) {
                if (w == 0) {
                    sleep_until_us(end);
                    break;
                }
                snprintf(key, sizeof(key), "bench:%" PRIu64, el_now_us());
                (void)el_bus_publish_key(bus[0], key);
                next += 1000000u / (unsigned)w;
                sleep_until_us(next);
            }
            wall = (el_now_us() - t0) / 1e6;
            h1 = heard(bus, n);
            cpu1 = redis_cpu(r);
            /* Let the last messages arrive before the samples are read. */
            sleep_until_us(el_now_us() + 200000);
            atomic_store(&recording, 0);
            m = atomic_load(&nsamples);
            if (m > MAX_SAMPLES)
                m = MAX_SAMPLES;
            qsort(samples, m, sizeof(samples[0]), cmp_u32);
            if (m > 0)
                printf("| %d | %d | %.0f %% | %.0f | %.2f ms | %.2f ms |\n", n, w,
                       100.0 * (cpu1 - cpu0) / wall, (h1 - h0) / wall, samples[m / 2] / 1000.0,
                       samples[(size_t)((m - 1) * 0.99)] / 1000.0);
            else
                printf("| %d | %d | %.0f %% | %.0f | - | - |\n", n, w, 100.0 * (cpu1 - cpu0) / wall,
                       (h1 - h0) / wall);
            fflush(stdout);
        }
        for (int i = 0; i < n; i++)
            el_bus_stop(bus[i]);
    }
    el_redis_free(r);
    return 0;
}
