/* stats.c -- process-local counters (see stats.h). Relaxed atomics: the
 * numbers are monotonic tallies read for reporting, never used to order
 * other memory. */
#include "stats.h"

#include <stdatomic.h>

static atomic_uint_fast64_t hits[EL_TYPE__COUNT][EL_LAYER__COUNT];
static atomic_uint_fast64_t store_queries, store_failures, store_micros;

const char *el_cache_type_name(enum el_cache_type t)
{
    static const char *const names[EL_TYPE__COUNT] = {"courses", "courses_list", "sessions"};
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

void el_stats_reset(void)
{
    for (int t = 0; t < EL_TYPE__COUNT; t++)
        for (int l = 0; l < EL_LAYER__COUNT; l++)
            atomic_store(&hits[t][l], 0);
    atomic_store(&store_queries, 0);
    atomic_store(&store_failures, 0);
    atomic_store(&store_micros, 0);
}
