/* stats.c -- counters, the cluster flush, request histograms and the
 * reports built from them (see stats.h). Relaxed atomics: the numbers are
 * monotonic tallies read for reporting, never used to order other memory.
 * The one ordered publication is a route's name in the registry (release
 * store of the route count, acquire load by readers). */
#include "obs/stats.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "obs/histogram.h"
#include "obs/testing.h"

static atomic_uint_fast64_t hits[EL_TYPE__COUNT][EL_LAYER__COUNT];
static atomic_uint_fast64_t store_queries, store_failures, store_micros;

const char *el_cache_type_name(enum el_cache_type t)
{
    static const char *const names[EL_TYPE__COUNT] = {"courses", "courses_list", "sessions",
                                                      "course_summaries"};
    return (unsigned)t < EL_TYPE__COUNT ? names[t] : "unknown";
}

const char *el_layer_name(enum el_layer l)
{
    static const char *const names[EL_LAYER__COUNT] = {"L1", "L2", "MISS", "STALE"};
    return (unsigned)l < EL_LAYER__COUNT ? names[l] : "-";
}

void el_stats_count(enum el_cache_type t, enum el_layer l)
{
    if ((unsigned)t < EL_TYPE__COUNT && (unsigned)l < EL_LAYER__COUNT)
        atomic_fetch_add_explicit(&hits[t][l], 1, memory_order_relaxed);
}

uint64_t el_stats_get(enum el_cache_type t, enum el_layer l)
{
    if ((unsigned)t < EL_TYPE__COUNT && (unsigned)l < EL_LAYER__COUNT)
        return atomic_load_explicit(&hits[t][l], memory_order_relaxed);
    return 0;
}

void el_stats_store_query(uint64_t micros, int failed)
{
    atomic_fetch_add_explicit(&store_queries, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&store_micros, micros, memory_order_relaxed);
    if (failed)
        atomic_fetch_add_explicit(&store_failures, 1, memory_order_relaxed);
}

void el_stats_store_get(uint64_t *queries, uint64_t *failures, uint64_t *micros_total)
{
    *queries = atomic_load_explicit(&store_queries, memory_order_relaxed);
    *failures = atomic_load_explicit(&store_failures, memory_order_relaxed);
    *micros_total = atomic_load_explicit(&store_micros, memory_order_relaxed);
}

void el_stats_snapshot(struct el_stats_snapshot *out)
{
    for (int t = 0; t < EL_TYPE__COUNT; t++)
        for (int l = 0; l < EL_LAYER__COUNT; l++)
            out->cache[t][l] = atomic_load_explicit(&hits[t][l], memory_order_relaxed);
    el_stats_store_get(&out->store_queries, &out->store_failures, &out->store_micros);
}

/* ---- the cluster flush ----------------------------------------------------
 *
 * A snapshot is handled as a flat array of NFIELDS counters in a fixed
 * order, each with its field name in the Redis hash. */

#define NCACHE (EL_TYPE__COUNT * EL_LAYER__COUNT)
#define NFIELDS (NCACHE + 3)
#define FIELD_LEN 32

static const char *layer_field(int l)
{
    static const char *const names[EL_LAYER__COUNT] = {"l1", "l2", "miss", "stale"};
    return names[l];
}

static void field_name(int i, char out[FIELD_LEN])
{
    static const char *const store[3] = {"store:queries", "store:failures", "store:micros"};

    if (i < NCACHE)
        snprintf(out, FIELD_LEN, "%s:%s",
                 el_cache_type_name((enum el_cache_type)(i / EL_LAYER__COUNT)),
                 layer_field(i % EL_LAYER__COUNT));
    else
        snprintf(out, FIELD_LEN, "%s", store[i - NCACHE]);
}

static uint64_t *slot(struct el_stats_snapshot *s, int i)
{
    if (i < NCACHE)
        return &s->cache[i / EL_LAYER__COUNT][i % EL_LAYER__COUNT];
    if (i == NCACHE)
        return &s->store_queries;
    if (i == NCACHE + 1)
        return &s->store_failures;
    return &s->store_micros;
}

/* What has been added to the Redis hash so far, and this process's own
 * hash there (EL_STATS_PROCESS_KEY_PREFIX + a random id; "" until the first
 * flush); guarded by flush_lock, which also serialises flushes with each
 * other and with cluster reads. */
static pthread_mutex_t flush_lock = PTHREAD_MUTEX_INITIALIZER;
static struct el_stats_snapshot flushed;
static char own_key[sizeof(EL_STATS_PROCESS_KEY_PREFIX) + 32];

static void pending_locked(struct el_stats_snapshot *cur, struct el_stats_snapshot *out)
{
    for (int i = 0; i < NFIELDS; i++)
        *slot(out, i) = *slot(cur, i) - *slot(&flushed, i);
}

void el_stats_pending(struct el_stats_snapshot *out)
{
    struct el_stats_snapshot cur;

    el_must(pthread_mutex_lock(&flush_lock));
    el_stats_snapshot(&cur);
    pending_locked(&cur, out);
    el_must(pthread_mutex_unlock(&flush_lock));
}

/* A key of its own for this process's totals: unique across the cluster
 * and restarts. Called with flush_lock held. */
static void new_own_key_locked(void)
{
    unsigned char rnd[16];
    size_t at = (size_t)snprintf(own_key, sizeof(own_key), "%s", EL_STATS_PROCESS_KEY_PREFIX);

    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        /* No entropy yet: the pid and the clock are unique enough here. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(own_key + at, sizeof(own_key) - at, "%ld.%lld.%ld", (long)getpid(),
                 (long long)ts.tv_sec, ts.tv_nsec);
        return;
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(own_key + at + 2 * i, 3, "%02x", rnd[i]);
}

void el_stats_flush(const struct el_stats_remote *remote)
{
    struct el_stats_snapshot cur, delta;
    char names[NFIELDS][FIELD_LEN];
    const char *fields[NFIELDS];
    uint64_t totals[NFIELDS];
    int idx[NFIELDS], n = 0;

    el_must(pthread_mutex_lock(&flush_lock));
    if (own_key[0] == '\0')
        new_own_key_locked();
    el_stats_snapshot(&cur);
    pending_locked(&cur, &delta);
    for (int i = 0; i < NFIELDS; i++) {
        if (*slot(&delta, i) == 0)
            continue;
        field_name(i, names[n]);
        fields[n] = names[n];
        totals[n] = *slot(&cur, i);
        idx[n++] = i;
    }
    /* Totals, not deltas: Redis adds what they rose by since the last
     * totals it took from us, so a flush retried after a reply that timed
     * out (it was applied) adds nothing twice. Only what was sent is marked
     * flushed: counts that arrived after the snapshot go next time. */
    if (n > 0 &&
        remote->add_totals(remote->arg, EL_STATS_CLUSTER_KEY, own_key, n, fields, totals) == EL_OK)
        for (int k = 0; k < n; k++)
            *slot(&flushed, idx[k]) = *slot(&cur, idx[k]);
    el_must(pthread_mutex_unlock(&flush_lock));
}

struct cluster_read {
    struct el_stats_snapshot *out;
};

static void on_cluster_field(const char *field, int64_t value, void *arg)
{
    struct cluster_read *c = arg;
    char name[FIELD_LEN];

    if (value < 0)
        return; /* not ours to interpret */
    for (int i = 0; i < NFIELDS; i++) {
        field_name(i, name);
        if (strcmp(name, field) == 0) {
            *slot(c->out, i) = (uint64_t)value;
            return;
        }
    }
}

int el_stats_cluster(const struct el_stats_remote *remote, struct el_stats_snapshot *out)
{
    struct el_stats_snapshot cur, pend;
    struct cluster_read c;
    int rc;

    memset(out, 0, sizeof(*out));
    c.out = out;
    /* Under the flush lock, so a flush cannot move counts from "pending" to
     * "in Redis" between the two reads (they would be counted twice). */
    el_must(pthread_mutex_lock(&flush_lock));
    rc = remote->read(remote->arg, EL_STATS_CLUSTER_KEY, on_cluster_field, &c);
    if (rc == EL_OK) {
        el_stats_snapshot(&cur);
        pending_locked(&cur, &pend);
        for (int i = 0; i < NFIELDS; i++)
            *slot(out, i) += *slot(&pend, i);
    }
    el_must(pthread_mutex_unlock(&flush_lock));
    if (rc != EL_OK)
        memset(out, 0, sizeof(*out));
    return rc;
}

/* ---- request latency ------------------------------------------------------
 *
 * Slot 0 is "unmatched", slot 1 "other" (registry full, or a name too
 * long); registered routes follow. A reader scans the first nroutes slots,
 * whose names never change once published. */

#define LAYER_NONE EL_LAYER__COUNT
#define NLAYERS (EL_LAYER__COUNT + 1)
#define ROUTE_UNMATCHED 0
#define ROUTE_OTHER 1
#define ROUTE_FIRST 2

#define NCODES 6 /* status classes 1xx..5xx; [0] unused */

struct route_slot {
    char name[EL_STATS_ROUTE_LEN];
    struct el_histogram h[NLAYERS];
    atomic_uint_fast64_t codes[NCODES]; /* responses by status / 100 */
};

static struct route_slot routes[EL_STATS_ROUTES_MAX] = {
    [ROUTE_UNMATCHED] = {.name = "unmatched"},
    [ROUTE_OTHER] = {.name = "other"},
};
static atomic_int nroutes = ROUTE_FIRST;
static pthread_mutex_t routes_lock = PTHREAD_MUTEX_INITIALIZER;

static int layer_index(const char *layer)
{
    if (layer != NULL)
        for (int l = 0; l < EL_LAYER__COUNT; l++)
            if (strcmp(layer, el_layer_name((enum el_layer)l)) == 0)
                return l;
    return LAYER_NONE;
}

static const char *layer_label(int l)
{
    return l == LAYER_NONE ? "none" : el_layer_name((enum el_layer)l);
}

static struct route_slot *route_find(const char *route)
{
    struct route_slot *found = NULL;
    int n;

    if (route == NULL || *route == '\0')
        return &routes[ROUTE_UNMATCHED];
    n = atomic_load_explicit(&nroutes, memory_order_acquire);
    for (int i = 0; i < n; i++)
        if (strcmp(routes[i].name, route) == 0)
            return &routes[i];
    if (strlen(route) >= EL_STATS_ROUTE_LEN)
        return &routes[ROUTE_OTHER];

    /* First sight of this route: register it. Another thread may have done
     * so since the scan; look again under the lock. */
    el_must(pthread_mutex_lock(&routes_lock));
    n = atomic_load_explicit(&nroutes, memory_order_relaxed);
    for (int i = ROUTE_FIRST; i < n && found == NULL; i++)
        if (strcmp(routes[i].name, route) == 0)
            found = &routes[i];
    if (found == NULL && n < EL_STATS_ROUTES_MAX) {
        found = &routes[n];
        memcpy(found->name, route, strlen(route) + 1);
        atomic_store_explicit(&nroutes, n + 1, memory_order_release);
    }
    el_must(pthread_mutex_unlock(&routes_lock));
    return found ? found : &routes[ROUTE_OTHER];
}

void el_stats_request(const char *route, const char *layer, uint64_t micros)
{
    el_stats_response(route, layer, 0, micros);
}

void el_stats_response(const char *route, const char *layer, int status, uint64_t micros)
{
    struct route_slot *r = route_find(route);

    el_histogram_observe(&r->h[layer_index(layer)], micros);
    if (status >= 100 && status < 600)
        atomic_fetch_add_explicit(&r->codes[status / 100], 1, memory_order_relaxed);
}

/* Who this process is, for /metrics; set once at start-up. */
static struct {
    char instance[72], version[40], commit[48];
    int64_t start_ms;
} identity = {"unknown", "unknown", "unknown", 0};

void el_stats_set_identity(const char *instance, const char *version, const char *commit)
{
    snprintf(identity.instance, sizeof(identity.instance), "%s", instance ? instance : "unknown");
    snprintf(identity.version, sizeof(identity.version), "%s", version ? version : "unknown");
    snprintf(identity.commit, sizeof(identity.commit), "%s", commit ? commit : "unknown");
    identity.start_ms = el_wall_ms();
}

void el_stats_reset(void)
{
    int n;

    for (int t = 0; t < EL_TYPE__COUNT; t++)
        for (int l = 0; l < EL_LAYER__COUNT; l++)
            atomic_store(&hits[t][l], 0);
    atomic_store(&store_queries, 0);
    atomic_store(&store_failures, 0);
    atomic_store(&store_micros, 0);
    el_must(pthread_mutex_lock(&flush_lock));
    memset(&flushed, 0, sizeof(flushed));
    new_own_key_locked(); /* counting starts again from 0: a new process */
    el_must(pthread_mutex_unlock(&flush_lock));
    /* Registered names stay: they are the routing table's, not counts. */
    n = atomic_load_explicit(&nroutes, memory_order_acquire);
    for (int i = 0; i < n; i++) {
        for (int l = 0; l < NLAYERS; l++)
            el_histogram_reset(&routes[i].h[l]);
        for (int c = 0; c < NCODES; c++)
            atomic_store(&routes[i].codes[c], 0);
    }
}

/* ---- reports -------------------------------------------------------------- */

/* A percentage with two decimals, or 0 when there is nothing to divide. */
static int add_ratio(struct el_buf *b, const char *name, uint64_t part, uint64_t whole)
{
    if (whole == 0)
        return el_buf_addf(b, "\"%s\":0", name);
    return el_buf_addf(b, "\"%s\":%.2f", name, 100.0 * (double)part / (double)whole);
}

static int add_type(struct el_buf *b, const char *name, const uint64_t c[EL_LAYER__COUNT])
{
    uint64_t l1 = c[EL_LAYER_L1], l2 = c[EL_LAYER_L2];
    uint64_t total = l1 + l2 + c[EL_LAYER_MISS] + c[EL_LAYER_STALE];
    int rc;

    rc = el_buf_addf(b,
                     "\"%s\":{\"l1_hits\":%llu,\"l2_hits\":%llu,\"misses\":%llu,\"stale\":%llu,"
                     "\"requests\":%llu,",
                     name, (unsigned long long)l1, (unsigned long long)l2,
                     (unsigned long long)c[EL_LAYER_MISS], (unsigned long long)c[EL_LAYER_STALE],
                     (unsigned long long)total);
    if (rc == EL_OK)
        rc = add_ratio(b, "l1_hit_ratio", l1, total);
    if (rc == EL_OK)
        rc = el_buf_adds(b, ",");
    if (rc == EL_OK)
        rc = add_ratio(b, "l2_hit_ratio", l2, total - l1);
    if (rc == EL_OK)
        rc = el_buf_adds(b, ",");
    if (rc == EL_OK)
        rc = add_ratio(b, "hit_ratio", l1 + l2, total);
    if (rc == EL_OK)
        rc = el_buf_adds(b, "}");
    return rc;
}

int el_stats_json(const struct el_stats_snapshot *s, struct el_buf *out)
{
    uint64_t all[EL_LAYER__COUNT] = {0};
    int rc;

    rc = el_buf_adds(out, "{");
    for (int t = 0; t < EL_TYPE__COUNT && rc == EL_OK; t++) {
        for (int l = 0; l < EL_LAYER__COUNT; l++)
            all[l] += s->cache[t][l];
        rc = add_type(out, el_cache_type_name((enum el_cache_type)t), s->cache[t]);
        if (rc == EL_OK)
            rc = el_buf_adds(out, ",");
    }
    if (rc == EL_OK)
        rc = add_type(out, "all", all);
    if (rc == EL_OK)
        rc = el_buf_addf(
            out, ",\"store\":{\"queries\":%llu,\"failures\":%llu,\"mean_latency_us\":%llu}}",
            (unsigned long long)s->store_queries, (unsigned long long)s->store_failures,
            (unsigned long long)(s->store_queries ? s->store_micros / s->store_queries : 0));
    return rc;
}

/* A label value in the text format: backslash, double quote and newline
 * are escaped. Our routes never hold them, but a label must never be able
 * to break a line. */
static int add_label_value(struct el_buf *b, const char *v)
{
    int rc = EL_OK;

    for (; *v && rc == EL_OK; v++) {
        if (*v == '\\' || *v == '"')
            rc = el_buf_addf(b, "\\%c", *v);
        else if (*v == '\n')
            rc = el_buf_adds(b, "\\n");
        else
            rc = el_buf_add(b, v, 1);
    }
    return rc;
}

static int family(struct el_buf *b, const char *name, const char *type, const char *help)
{
    return el_buf_addf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int sample(struct el_buf *b, const char *name, uint64_t v)
{
    return el_buf_addf(b, "%s %llu\n", name, (unsigned long long)v);
}

static int cache_family(struct el_buf *b, const char *name, const char *help,
                        const struct el_stats_snapshot *s)
{
    int rc = family(b, name, "counter", help);

    for (int t = 0; t < EL_TYPE__COUNT && rc == EL_OK; t++)
        for (int l = 0; l < EL_LAYER__COUNT && rc == EL_OK; l++)
            rc = el_buf_addf(b, "%s{type=\"%s\",layer=\"%s\"} %llu\n", name,
                             el_cache_type_name((enum el_cache_type)t),
                             el_layer_name((enum el_layer)l), (unsigned long long)s->cache[t][l]);
    return rc;
}

static int seconds(struct el_buf *b, const char *name, uint64_t micros)
{
    return el_buf_addf(b, "%s %llu.%06llu\n", name, (unsigned long long)(micros / 1000000),
                       (unsigned long long)(micros % 1000000));
}

static int store_families(struct el_buf *b, const char *prefix, const struct el_stats_snapshot *s)
{
    char name[64];
    int rc;

    snprintf(name, sizeof(name), "%s_store_queries_total", prefix);
    rc = family(b, name, "counter", "Store (L3) queries.");
    if (rc == EL_OK)
        rc = sample(b, name, s->store_queries);
    snprintf(name, sizeof(name), "%s_store_failures_total", prefix);
    if (rc == EL_OK)
        rc = family(b, name, "counter", "Store queries that failed (unavailable, timeout).");
    if (rc == EL_OK)
        rc = sample(b, name, s->store_failures);
    snprintf(name, sizeof(name), "%s_store_query_seconds_total", prefix);
    if (rc == EL_OK)
        rc = family(b, name, "counter", "Time spent in store queries.");
    if (rc == EL_OK)
        rc = seconds(b, name, s->store_micros);
    return rc;
}

static int l1_families(struct el_buf *b, const struct el_stats_l1 *l1)
{
    int rc;

    rc = family(b, "elearn_l1_bytes", "gauge", "Bytes held by the in-process cache (L1).");
    if (rc == EL_OK)
        rc = sample(b, "elearn_l1_bytes", l1->bytes);
    if (rc == EL_OK)
        rc = family(b, "elearn_l1_max_bytes", "gauge", "The L1 budget (L1_MAX_BYTES).");
    if (rc == EL_OK)
        rc = sample(b, "elearn_l1_max_bytes", l1->max_bytes);
    if (rc == EL_OK)
        rc = family(b, "elearn_l1_entries", "gauge", "Entries in L1.");
    if (rc == EL_OK)
        rc = sample(b, "elearn_l1_entries", l1->entries);
    if (rc == EL_OK)
        rc = family(b, "elearn_l1_evictions_total", "counter",
                    "L1 entries evicted to stay within the budget.");
    if (rc == EL_OK)
        rc = sample(b, "elearn_l1_evictions_total", l1->evictions);
    if (rc == EL_OK)
        rc = family(b, "elearn_l1_expired_total", "counter", "L1 entries dropped at expiry.");
    if (rc == EL_OK)
        rc = sample(b, "elearn_l1_expired_total", l1->expired);
    return rc;
}

static int bus_families(struct el_buf *b, const struct el_stats_bus *bus)
{
    const struct {
        const char *name, *help;
        uint64_t v;
    } counters[] = {
        {"elearn_bus_received_total", "Invalidation bus messages received.", bus->received},
        {"elearn_bus_gaps_total", "Sequence gaps seen on the bus (lost messages).", bus->gaps},
        {"elearn_bus_resets_total", "Times L1 was dropped because messages may have been lost.",
         bus->resets},
        {"elearn_bus_published_total", "Bus messages published.", bus->published},
        {"elearn_bus_publish_failures_total", "Bus messages that could not be published.",
         bus->publish_failures},
    };
    int rc = EL_OK;

    for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]) && rc == EL_OK; i++) {
        rc = family(b, counters[i].name, "counter", counters[i].help);
        if (rc == EL_OK)
            rc = sample(b, counters[i].name, counters[i].v);
    }
    if (rc == EL_OK)
        rc = family(b, "elearn_bus_connected", "gauge", "1 when the bus subscriber is connected.");
    if (rc == EL_OK)
        rc = sample(b, "elearn_bus_connected", bus->connected ? 1 : 0);
    return rc;
}

static int request_family(struct el_buf *b)
{
    static const char name[] = "elearn_request_duration_seconds";
    struct el_histogram_snapshot hs;
    struct el_buf labels;
    int n, rc;

    rc = family(b, name, "histogram",
                "Request duration by route pattern and the cache layer that answered.");
    el_buf_init(&labels, 4 * EL_STATS_ROUTE_LEN);
    n = atomic_load_explicit(&nroutes, memory_order_acquire);
    for (int i = 0; i < n && rc == EL_OK; i++) {
        for (int l = 0; l < NLAYERS && rc == EL_OK; l++) {
            el_histogram_read(&routes[i].h[l], &hs);
            if (hs.count == 0)
                continue; /* only series that have been seen */
            el_buf_reset(&labels);
            rc = el_buf_adds(&labels, "route=\"");
            if (rc == EL_OK)
                rc = add_label_value(&labels, routes[i].name);
            if (rc == EL_OK)
                rc = el_buf_addf(&labels, "\",layer=\"%s\"", layer_label(l));
            if (rc == EL_OK)
                rc = el_histogram_write(&hs, name, labels.data, b);
        }
    }
    el_buf_cleanup(&labels);
    return rc;
}

/* elearn_requests_total{route,method,code}: the registry's "GET /x" names
 * split into method and route; "unmatched" and "other" have method "none". */
static int requests_family(struct el_buf *b)
{
    static const char name[] = "elearn_requests_total";
    int n, rc;

    rc = family(b, name, "counter",
                "Responses by route pattern, method and status class (2xx, 4xx, 5xx ...).");
    n = atomic_load_explicit(&nroutes, memory_order_acquire);
    for (int i = 0; i < n && rc == EL_OK; i++) {
        const char *full = routes[i].name, *sp = strchr(full, ' ');
        char method[16] = "none";
        const char *route = full;

        if (sp != NULL && (size_t)(sp - full) < sizeof(method)) {
            memcpy(method, full, (size_t)(sp - full));
            method[sp - full] = '\0';
            route = sp + 1;
        }
        for (int c = 1; c < NCODES && rc == EL_OK; c++) {
            uint64_t v = atomic_load_explicit(&routes[i].codes[c], memory_order_relaxed);

            if (v == 0)
                continue;
            rc = el_buf_addf(b, "%s{route=\"", name);
            if (rc == EL_OK)
                rc = add_label_value(b, route);
            if (rc == EL_OK)
                rc = el_buf_addf(b, "\",method=\"");
            if (rc == EL_OK)
                rc = add_label_value(b, method);
            if (rc == EL_OK)
                rc = el_buf_addf(b, "\",code=\"%dxx\"} %llu\n", c, (unsigned long long)v);
        }
    }
    return rc;
}

static int identity_families(struct el_buf *b)
{
    int rc = family(b, "elearn_build_info", "gauge", "Always 1; the build's version and commit.");

    if (rc == EL_OK)
        rc = el_buf_adds(b, "elearn_build_info{version=\"");
    if (rc == EL_OK)
        rc = add_label_value(b, identity.version);
    if (rc == EL_OK)
        rc = el_buf_adds(b, "\",commit=\"");
    if (rc == EL_OK)
        rc = add_label_value(b, identity.commit);
    if (rc == EL_OK)
        rc = el_buf_adds(b, "\"} 1\n");
    if (rc == EL_OK)
        rc = family(b, "elearn_instance_info", "gauge",
                    "Always 1; which responder process answered this scrape (INSTANCE).");
    if (rc == EL_OK)
        rc = el_buf_adds(b, "elearn_instance_info{elearn_instance=\"");
    if (rc == EL_OK)
        rc = add_label_value(b, identity.instance);
    if (rc == EL_OK)
        rc = el_buf_addf(b, "\",pid=\"%d\"} 1\n", (int)getpid());
    if (rc == EL_OK)
        rc = family(b, "process_start_time_seconds", "gauge",
                    "Start time of the process since the Unix epoch in seconds.");
    if (rc == EL_OK)
        rc = el_buf_addf(b, "process_start_time_seconds %lld.%03d\n",
                         (long long)(identity.start_ms / 1000), (int)(identity.start_ms % 1000));
    return rc;
}

int el_stats_metrics(const struct el_stats_gauges *g, struct el_buf *out)
{
    struct el_stats_snapshot s;
    int rc;

    el_stats_snapshot(&s);
    rc = identity_families(out);
    if (rc == EL_OK)
        rc = cache_family(out, "elearn_cache_requests_total",
                          "Cache lookups of this process by type and the layer that answered.", &s);
    if (rc == EL_OK && g->cluster != NULL)
        rc = cache_family(out, "elearn_cluster_cache_requests_total",
                          "Cache lookups summed over every process (through Redis).", g->cluster);
    if (rc == EL_OK)
        rc = store_families(out, "elearn", &s);
    if (rc == EL_OK && g->cluster != NULL)
        rc = store_families(out, "elearn_cluster", g->cluster);
    if (rc == EL_OK && g->l1 != NULL)
        rc = l1_families(out, g->l1);
    if (rc == EL_OK)
        rc = family(out, "elearn_redis_up", "gauge", "1 when Redis (L2) answers, else 0.");
    if (rc == EL_OK)
        rc = sample(out, "elearn_redis_up", g->redis == 1);
    if (rc == EL_OK)
        rc = family(out, "elearn_redis_enabled", "gauge", "1 when REDIS_URL configures an L2.");
    if (rc == EL_OK)
        rc = sample(out, "elearn_redis_enabled", g->redis >= 0);
    if (rc == EL_OK && g->bus != NULL)
        rc = bus_families(out, g->bus);
    if (rc == EL_OK)
        rc = requests_family(out);
    if (rc == EL_OK)
        rc = request_family(out);
    return rc;
}

int el_stats_info_field(const char *info, const char *field, char *out, size_t outlen)
{
    size_t flen = strlen(field);
    const char *p = info;

    if (outlen > 0)
        out[0] = '\0';
    while (p != NULL && *p) {
        if (strncmp(p, field, flen) == 0 && p[flen] == ':') {
            const char *v = p + flen + 1;
            size_t n = strcspn(v, "\r\n");

            if (n >= outlen)
                return EL_ETOOBIG;
            memcpy(out, v, n);
            out[n] = '\0';
            return EL_OK;
        }
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return EL_ENOTFOUND;
}
