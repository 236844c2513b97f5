/* stats.h -- process-local cache and store counters.
 *
 * Counting is one relaxed atomic add: a cache hit never pays a Redis round
 * trip to be counted (the original service did an INCR per hit). Counters
 * are process-wide (one responder process = one set). */
#ifndef EL_STATS_H
#define EL_STATS_H

#include <stdint.h>

enum el_cache_type {
    EL_TYPE_COURSE,      /* "courses" */
    EL_TYPE_COURSE_LIST, /* "courses_list" */
    EL_TYPE_SESSION,     /* "sessions" */
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

/* Zero every counter (tests). */
void el_stats_reset(void);

#endif /* EL_STATS_H */
