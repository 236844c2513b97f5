/* cluster_stats.c -- obs/stats's remote made of an el_redis: the flush is
 * one EVAL (el_redis_hadd_totals), the read one HGETALL. */
#include "cache/cluster_stats.h"

#include "cache/redis.h"

static int add_totals(void *arg, const char *sum_key, const char *own_key, int n,
                      const char *const *fields, const uint64_t *totals)
{
    return el_redis_hadd_totals(arg, sum_key, own_key, n, fields, totals);
}

static int read_sums(void *arg, const char *key,
                     void (*fn)(const char *field, int64_t value, void *fn_arg), void *fn_arg)
{
    return el_redis_hgetall_int(arg, key, fn, fn_arg);
}

void el_cluster_stats_flush(struct el_redis *r)
{
    const struct el_stats_remote remote = {add_totals, read_sums, r};

    el_stats_flush(&remote);
}

int el_cluster_stats_read(struct el_redis *r, struct el_stats_snapshot *out)
{
    const struct el_stats_remote remote = {add_totals, read_sums, r};

    return el_stats_cluster(&remote, out);
}
