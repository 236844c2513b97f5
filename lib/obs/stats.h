/* stats.h -- cache, store and request counters: counted per process,
 * summed across processes through Redis, reported as JSON and in the
 * Prometheus text format.
 *
 * Counting is one relaxed atomic add: a cache hit never pays a Redis round
 * trip to be counted (the original service did an INCR per hit). Counters
 * are process-wide (one responder process = one set).
 *
 * The cluster view: once a second the housekeeping thread calls
 * el_stats_flush(), which adds what this process counted since its last
 * successful flush to one Redis hash (EL_STATS_CLUSTER_KEY) in a single
 * round trip. This layer does not know Redis: the flush and the read go
 * through a struct el_stats_remote, which cache/cluster_stats.h makes from
 * an el_redis. Every process does the same, so the hash holds the sums over
 * all processes since the hash was created. A flush that fails keeps its
 * counts for the next one; nothing is counted twice or lost while Redis is
 * down or slow.
 *
 * Request latency: el_stats_request() records each request's duration in a
 * histogram per (route pattern, layer). Routes come from the routing table,
 * a small fixed set, so they live in a fixed registry found without a lock;
 * only the first request of a route takes a mutex to register it. */
#ifndef EL_STATS_H
#define EL_STATS_H

#include <stdint.h>

#include "core/buf.h"
#include "core/el.h"

enum el_cache_type {
    EL_TYPE_COURSE,         /* "courses" */
    EL_TYPE_COURSE_LIST,    /* "courses_list" */
    EL_TYPE_SESSION,        /* "sessions" */
    EL_TYPE_COURSE_SUMMARY, /* "course_summaries": list items (app/lists.c) */
    EL_TYPE__COUNT
};

/* The layer that served a response; also the X-Cache header value. */
enum el_layer {
    EL_LAYER_L1,    /* "L1" */
    EL_LAYER_L2,    /* "L2" */
    EL_LAYER_MISS,  /* "MISS": served from the store */
    EL_LAYER_STALE, /* "STALE": stale copy served on store error */
    EL_LAYER__COUNT
};

const char *el_cache_type_name(enum el_cache_type t);
const char *el_layer_name(enum el_layer l);

void el_stats_count(enum el_cache_type t, enum el_layer l);
uint64_t el_stats_get(enum el_cache_type t, enum el_layer l);

/* Store queries: count and total latency. */
void el_stats_store_query(uint64_t micros, int failed);
void el_stats_store_get(uint64_t *queries, uint64_t *failures, uint64_t *micros_total);

/* ---- snapshots and the cluster view ----------------------------------- */

/* Every counter that is summed across processes. */
struct el_stats_snapshot {
    uint64_t cache[EL_TYPE__COUNT][EL_LAYER__COUNT];
    uint64_t store_queries, store_failures, store_micros;
};

/* The Redis hash the processes add their counts to; fields are
 * "<type>:<layer>" ("courses:l1", "courses_list:miss", ...) and
 * "store:queries", "store:failures", "store:micros". */
#define EL_STATS_CLUSTER_KEY "stats:cluster"

/* This process's counters now. */
void el_stats_snapshot(struct el_stats_snapshot *out);

/* Where the sums over every process are kept (Redis, through
 * cache/cluster_stats.h). Both functions return 0 or a negative EL_ code
 * (EL_EUNAVAIL, EL_ETIMEOUT, EL_EDISABLED ...).
 *   add_totals: for each i, add to field fields[i] of the hash sum_key what
 *     totals[i] rose by since the totals last recorded under own_key (and
 *     record them there), atomically, in one round trip.
 *   read: call fn for each field of the hash key with its integer value. */
struct el_stats_remote {
    int (*add_totals)(void *arg, const char *sum_key, const char *own_key, int n,
                      const char *const *fields, const uint64_t *totals);
    int (*read)(void *arg, const char *key,
                void (*fn)(const char *field, int64_t value, void *fn_arg), void *fn_arg);
    void *arg;
};

/* Add this process's counts since its last successful flush to
 * EL_STATS_CLUSTER_KEY: one add_totals, nothing when nothing changed. What
 * is sent are this process's totals, kept in a hash of its own
 * (EL_STATS_PROCESS_KEY_PREFIX + a random id, expiring a week after its
 * last flush); the remote adds to the cluster hash what they rose by. So a
 * flush whose reply timed out after it was applied, retried, adds nothing
 * twice. On failure the counts stay pending and go with the next flush.
 * Thread-safe; meant to be called once a second from one housekeeping
 * thread. */
#define EL_STATS_PROCESS_KEY_PREFIX "stats:process:"
void el_stats_flush(const struct el_stats_remote *remote);

/* The sums over every process: the cluster hash plus what this process has
 * not flushed yet (so its own counts are never behind). A failure of the
 * remote leaves *out zeroed and is returned. One read. */
int el_stats_cluster(const struct el_stats_remote *remote, struct el_stats_snapshot *out) EL_WUR;

/* ---- request latency ---------------------------------------------------- */

/* Routes beyond this many distinct names are counted as route="other". */
#define EL_STATS_ROUTES_MAX 64
#define EL_STATS_ROUTE_LEN 64

/* Record that a request on route took micros. route is the matched
 * method and pattern ("GET /courses/{id}"); NULL or "" for a request that
 * matched no route (counted as "unmatched"). layer is the X-Cache value
 * ("L1", "L2", "MISS", "STALE") or NULL / "-" when the response has none
 * (counted as layer="none"). Lock-free except the first time a route is
 * seen. Any thread. */
void el_stats_request(const char *route, const char *layer, uint64_t micros);

/* el_stats_request, and count the response in its status class (status
 * 100-599; anything else is not counted) for elearn_requests_total. */
void el_stats_response(const char *route, const char *layer, int status, uint64_t micros);

/* The process's identity on /metrics: elearn_instance_info{elearn_instance,
 * pid}, elearn_build_info{version, commit}, process_start_time_seconds (the
 * time of this call). Once at start-up, before requests. */
void el_stats_set_identity(const char *instance, const char *version, const char *commit);

/* ---- reports ----------------------------------------------------------- */

/* Append s as a JSON object: one member per cache type plus "all", each
 * {"l1_hits","l2_hits","misses","stale","requests","l1_hit_ratio",
 * "l2_hit_ratio","hit_ratio"}, and "store": {"queries","failures",
 * "mean_latency_us"}. Ratios are percentages with two decimals (0 when
 * there were no requests): l1 = L1 hits / requests, l2 = L2 hits /
 * requests that reached L2 (not served by L1), hit = (L1 + L2) / requests. */
int el_stats_json(const struct el_stats_snapshot *s, struct el_buf *out) EL_WUR;

/* The in-process cache (L1), for elearn_l1_*. */
struct el_stats_l1 {
    uint64_t bytes, max_bytes, entries, evictions, expired;
};

/* The cache bus, for elearn_bus_*. */
struct el_stats_bus {
    uint64_t received, gaps, resets, published, publish_failures;
    int connected;
};

/* What the Prometheus page shows beyond this module's own counters: plain
 * numbers, filled by the program from the cache layer. */
struct el_stats_gauges {
    const struct el_stats_l1 *l1;            /* NULL: no L1 lines */
    int redis;                               /* 1 up, 0 down, -1 disabled */
    const struct el_stats_snapshot *cluster; /* NULL: Redis could not say */
    const struct el_stats_bus *bus;          /* NULL: no bus lines */
};

/* Append every metric in the Prometheus text exposition format 0.0.4:
 * # HELP and # TYPE once per family, then "name{labels} value" lines. */
int el_stats_metrics(const struct el_stats_gauges *g, struct el_buf *out) EL_WUR;

/* Copy the value of field from the text of a Redis INFO reply
 * ("field:value" lines) into out. EL_ENOTFOUND when absent, EL_ETOOBIG when
 * it does not fit (out is then ""). */
int el_stats_info_field(const char *info, const char *field, char *out, size_t outlen) EL_WUR;

#endif /* EL_STATS_H */
