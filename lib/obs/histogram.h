/* histogram.h -- a fixed-bucket latency histogram that many threads record
 * into without a lock, and its Prometheus text form.
 *
 * Key decision: the bucket bounds are one fixed set (50 us ... 2.5 s, then
 * +Inf) shared by every histogram, so observing is a short scan for the
 * bucket and two relaxed atomic adds -- no lock, no allocation -- and a
 * histogram is plain zeroed storage (a static or calloc'ed one is empty and
 * ready). Buckets are stored per bucket, not cumulatively, and made
 * cumulative only when read; the count is the sum of the buckets, so the
 * +Inf bucket and _count always agree in what is exported. */
#ifndef EL_HISTOGRAM_H
#define EL_HISTOGRAM_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/el.h"

/* 15 finite upper bounds and +Inf. */
#define EL_HIST_BUCKETS 16

struct el_histogram {
    atomic_uint_fast64_t buckets[EL_HIST_BUCKETS]; /* per bucket, not cumulative */
    atomic_uint_fast64_t sum_us;
};

/* A consistent-enough copy for reporting: cumulative[i] counts observations
 * <= bound i; cumulative[EL_HIST_BUCKETS - 1] == count. */
struct el_histogram_snapshot {
    uint64_t cumulative[EL_HIST_BUCKETS];
    uint64_t count;
    uint64_t sum_us;
};

/* The bucket an observation of micros falls in: the first whose upper bound
 * is >= micros (Prometheus "le" semantics); EL_HIST_BUCKETS - 1 for +Inf. */
int el_histogram_bucket(uint64_t micros);

/* Upper bound of bucket i in microseconds; UINT64_MAX for +Inf (and for an
 * index out of range). */
uint64_t el_histogram_bound_us(int i);

/* The "le" label value of bucket i in seconds ("0.00005" ... "2.5", "+Inf").
 * A static string. */
const char *el_histogram_le(int i);

/* Record one observation. Any thread; lock-free. */
void el_histogram_observe(struct el_histogram *h, uint64_t micros);

void el_histogram_read(struct el_histogram *h, struct el_histogram_snapshot *out);

/* Append s in the Prometheus text format (0.0.4): one name_bucket line per
 * bound with le, then name_sum (seconds) and name_count. labels is a
 * ready, escaped label list without braces ('route="x",layer="L1"') or ""
 * for none. No # HELP / # TYPE lines: the caller writes them once per
 * family. */
int el_histogram_write(const struct el_histogram_snapshot *s, const char *name, const char *labels,
                       struct el_buf *out) EL_WUR;

#endif /* EL_HISTOGRAM_H */
