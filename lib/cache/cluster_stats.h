/* cluster_stats.h -- the counters of obs/stats summed over every process
 * in Redis: el_stats_flush and el_stats_cluster with an el_redis as their
 * remote (obs/stats.h has the contract). */
#ifndef EL_CLUSTER_STATS_H
#define EL_CLUSTER_STATS_H

#include "core/el.h"
#include "obs/stats.h"

struct el_redis;

/* el_stats_flush through r. r == NULL (L2 disabled) or a Redis failure
 * (the breaker answers at once when Redis is down) keeps the counts
 * pending for the next flush. */
void el_cluster_stats_flush(struct el_redis *r);

/* el_stats_cluster through r: EL_EDISABLED when r is NULL. */
int el_cluster_stats_read(struct el_redis *r, struct el_stats_snapshot *out) EL_WUR;

#endif /* EL_CLUSTER_STATS_H */
