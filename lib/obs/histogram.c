/* histogram.c -- lock-free fixed-bucket latency histograms (see
 * histogram.h). Relaxed atomics: the numbers are tallies read for reporting
 * and never order other memory. */
#include "obs/histogram.h"
#include "obs/testing.h"

static const uint64_t bounds_us[EL_HIST_BUCKETS - 1] = {
    50,    100,   250,    500,    1000,   2500,    5000,    10000,
    25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
};

static const char *const les[EL_HIST_BUCKETS] = {
    "0.00005", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01",
    "0.025",   "0.05",   "0.1",     "0.25",   "0.5",   "1",      "2.5",   "+Inf",
};

int el_histogram_bucket(uint64_t micros)
{
    int i = 0;

    /* 15 compares at most; a request takes far longer than this scan. */
    while (i < EL_HIST_BUCKETS - 1 && micros > bounds_us[i])
        i++;
    return i;
}

uint64_t el_histogram_bound_us(int i)
{
    return i >= 0 && i < EL_HIST_BUCKETS - 1 ? bounds_us[i] : UINT64_MAX;
}

const char *el_histogram_le(int i)
{
    return i >= 0 && i < EL_HIST_BUCKETS ? les[i] : "+Inf";
}

void el_histogram_observe(struct el_histogram *h, uint64_t micros)
{
    atomic_fetch_add_explicit(&h->buckets[el_histogram_bucket(micros)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, micros, memory_order_relaxed);
}

void el_histogram_read(struct el_histogram *h, struct el_histogram_snapshot *out)
{
    uint64_t total = 0;

    for (int i = 0; i < EL_HIST_BUCKETS; i++) {
        total += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        out->cumulative[i] = total;
    }
    out->count = total;
    out->sum_us = atomic_load_explicit(&h->sum_us, memory_order_relaxed);
}

void el_histogram_reset(struct el_histogram *h)
{
    for (int i = 0; i < EL_HIST_BUCKETS; i++)
        atomic_store_explicit(&h->buckets[i], 0, memory_order_relaxed);
    atomic_store_explicit(&h->sum_us, 0, memory_order_relaxed);
}

int el_histogram_write(const struct el_histogram_snapshot *s, const char *name, const char *labels,
                       struct el_buf *out)
{
    const char *sep = labels[0] ? "," : "";
    int rc = EL_OK;

    for (int i = 0; i < EL_HIST_BUCKETS && rc == EL_OK; i++)
        rc = el_buf_addf(out, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, labels, sep, les[i],
                         (unsigned long long)s->cumulative[i]);
    if (rc == EL_OK)
        rc = el_buf_addf(out, "%s_sum%s%s%s %llu.%06llu\n", name, labels[0] ? "{" : "", labels,
                         labels[0] ? "}" : "", (unsigned long long)(s->sum_us / 1000000),
                         (unsigned long long)(s->sum_us % 1000000));
    if (rc == EL_OK)
        rc = el_buf_addf(out, "%s_count%s%s%s %llu\n", name, labels[0] ? "{" : "", labels,
                         labels[0] ? "}" : "", (unsigned long long)s->count);
    return rc;
}
