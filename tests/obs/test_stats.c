/* test_stats.c -- lib/obs/stats.c and lib/obs/histogram.c: counters, bucket math,
 * request histograms, the cluster flush against the harness's redis
 * (database 7), the JSON report and the Prometheus text, which is parsed
 * line by line here.
 *
 * The counters are process-wide, so every test starts from el_stats_reset()
 * -- which is also how a second responder process is simulated: a fresh
 * process has zero counters and has flushed nothing. The Redis hash is read
 * back with a raw hiredis connection, independently of the code under test.
 * CUnit is not thread-safe: worker threads only count, the main thread
 * asserts. */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CUnit/CUnit.h>
#include <hiredis/hiredis.h>
#include <json-c/json.h>

#include "cache/cluster_stats.h"
#include "obs/histogram.h"
#include "cache/redis.h"
#include "obs/stats.h"
#include "obs/testing.h"
#include "unit.h"

#define TEST_DB 7

/* ---- helpers ---------------------------------------------------------- */

static redisContext *raw_db(void)
{
    return unit_redis_raw(TEST_DB);
}

static void flushdb(void)
{
    redisContext *c = raw_db();

    freeReplyObject(redisCommand(c, "FLUSHDB"));
    redisFree(c);
}

/* The field of the cluster hash as Redis holds it; -1 when absent. */
static long long hget(const char *field)
{
    redisContext *c = raw_db();
    redisReply *r = redisCommand(c, "HGET %s %s", EL_STATS_CLUSTER_KEY, field);
    long long v = -1;

    if (r != NULL && r->type == REDIS_REPLY_STRING)
        v = strtoll(r->str, NULL, 10);
    freeReplyObject(r);
    redisFree(c);
    return v;
}

static long long hlen(void)
{
    redisContext *c = raw_db();
    redisReply *r = redisCommand(c, "HLEN %s", EL_STATS_CLUSTER_KEY);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;

    freeReplyObject(r);
    redisFree(c);
    return v;
}

static struct el_redis *redis_up(void)
{
    struct el_redis *r = NULL;

    CU_ASSERT_FATAL(el_redis_new(unit_redis_url(TEST_DB), NULL, &r, NULL) == EL_OK);
    return r;
}

/* A handle on a loopback port where nothing listens: every call is refused
 * (then answered by the open breaker), as when Redis is down. */
static struct el_redis *redis_down(void)
{
    struct sockaddr_in a = {0};
    socklen_t len = sizeof(a);
    struct el_redis *r = NULL;
    char url[64];
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    CU_ASSERT_FATAL(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd); /* bound, never listened: the port refuses connections */
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/%d", ntohs(a.sin_port), TEST_DB);
    CU_ASSERT_FATAL(el_redis_new(url, NULL, &r, NULL) == EL_OK);
    return r;
}

static void count_n(enum el_cache_type t, enum el_layer l, int n)
{
    for (int i = 0; i < n; i++)
        el_stats_count(t, l);
}

static int snapshot_is_zero(const struct el_stats_snapshot *s)
{
    static const struct el_stats_snapshot zero;

    return memcmp(s, &zero, sizeof(zero)) == 0;
}

/* ---- counters ----------------------------------------------------------- */

static void test_counters(void)
{
    struct el_stats_snapshot s;

    el_stats_reset();
    count_n(EL_TYPE_COURSE, EL_LAYER_L1, 3);
    count_n(EL_TYPE_SESSION, EL_LAYER_MISS, 2);
    el_stats_count(EL_TYPE__COUNT, EL_LAYER_L1);     /* out of range: ignored */
    el_stats_count(EL_TYPE_COURSE, EL_LAYER__COUNT); /* likewise */
    el_stats_store_query(120, 0);
    el_stats_store_query(80, 1);

    CU_ASSERT_EQUAL(el_stats_get(EL_TYPE_COURSE, EL_LAYER_L1), 3);
    CU_ASSERT_EQUAL(el_stats_get(EL_TYPE_SESSION, EL_LAYER_MISS), 2);
    CU_ASSERT_EQUAL(el_stats_get(EL_TYPE_COURSE_LIST, EL_LAYER_L2), 0);
    CU_ASSERT_EQUAL(el_stats_get(EL_TYPE__COUNT, EL_LAYER_L1), 0);
    el_stats_snapshot(&s);
    CU_ASSERT_EQUAL(s.cache[EL_TYPE_COURSE][EL_LAYER_L1], 3);
    CU_ASSERT_EQUAL(s.cache[EL_TYPE_SESSION][EL_LAYER_MISS], 2);
    CU_ASSERT_EQUAL(s.store_queries, 2);
    CU_ASSERT_EQUAL(s.store_failures, 1);
    CU_ASSERT_EQUAL(s.store_micros, 200);
    CU_ASSERT_STRING_EQUAL(el_cache_type_name(EL_TYPE_COURSE_LIST), "courses_list");
    CU_ASSERT_STRING_EQUAL(el_layer_name(EL_LAYER_STALE), "STALE");

    el_stats_reset();
    el_stats_snapshot(&s);
    CU_ASSERT_TRUE(snapshot_is_zero(&s));
}

/* ---- histogram ------------------------------------------------------------ */

static void test_histogram_buckets(void)
{
    /* Upper bounds are inclusive ("le"). */
    CU_ASSERT_EQUAL(el_histogram_bucket(0), 0);
    CU_ASSERT_EQUAL(el_histogram_bucket(50), 0);
    CU_ASSERT_EQUAL(el_histogram_bucket(51), 1);
    CU_ASSERT_EQUAL(el_histogram_bucket(100), 1);
    CU_ASSERT_EQUAL(el_histogram_bucket(101), 2);
    CU_ASSERT_EQUAL(el_histogram_bucket(1000), 4);
    CU_ASSERT_EQUAL(el_histogram_bucket(1001), 5);
    CU_ASSERT_EQUAL(el_histogram_bucket(1000000), 13);
    CU_ASSERT_EQUAL(el_histogram_bucket(2500000), 14);
    CU_ASSERT_EQUAL(el_histogram_bucket(2500001), EL_HIST_BUCKETS - 1);
    CU_ASSERT_EQUAL(el_histogram_bucket(UINT64_MAX), EL_HIST_BUCKETS - 1);

    /* Bounds rise, and each "le" label is the bound in seconds. */
    for (int i = 0; i < EL_HIST_BUCKETS - 1; i++) {
        uint64_t b = el_histogram_bound_us(i);

        if (i > 0)
            CU_ASSERT(b > el_histogram_bound_us(i - 1));
        CU_ASSERT_EQUAL(el_histogram_bucket(b), i);
        CU_ASSERT_EQUAL(el_histogram_bucket(b + 1), i + 1);
        CU_ASSERT(fabs(strtod(el_histogram_le(i), NULL) * 1e6 - (double)b) < 1e-6);
    }
    CU_ASSERT_EQUAL(el_histogram_bound_us(EL_HIST_BUCKETS - 1), UINT64_MAX);
    CU_ASSERT_STRING_EQUAL(el_histogram_le(EL_HIST_BUCKETS - 1), "+Inf");
    CU_ASSERT_STRING_EQUAL(el_histogram_le(0), "0.00005");
    CU_ASSERT_STRING_EQUAL(el_histogram_le(14), "2.5");
}

static void test_histogram_observe(void)
{
    static struct el_histogram h; /* zeroed storage is an empty histogram */
    struct el_histogram_snapshot s;
    struct el_buf b;

    el_histogram_read(&h, &s);
    CU_ASSERT_EQUAL(s.count, 0);
    el_histogram_observe(&h, 10);      /* bucket 0 */
    el_histogram_observe(&h, 50);      /* bucket 0 */
    el_histogram_observe(&h, 700);     /* bucket 4 (1 ms) */
    el_histogram_observe(&h, 3000000); /* +Inf */
    el_histogram_read(&h, &s);
    CU_ASSERT_EQUAL(s.cumulative[0], 2);
    CU_ASSERT_EQUAL(s.cumulative[3], 2);
    CU_ASSERT_EQUAL(s.cumulative[4], 3);
    CU_ASSERT_EQUAL(s.cumulative[14], 3);
    CU_ASSERT_EQUAL(s.cumulative[EL_HIST_BUCKETS - 1], 4);
    CU_ASSERT_EQUAL(s.count, 4);
    CU_ASSERT_EQUAL(s.sum_us, 3000760);

    el_buf_init(&b, 1 << 16);
    CU_ASSERT_EQUAL(el_histogram_write(&s, "t_seconds", "a=\"b\"", &b), EL_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "t_seconds_bucket{a=\"b\",le=\"0.00005\"} 2\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "t_seconds_bucket{a=\"b\",le=\"0.001\"} 3\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "t_seconds_bucket{a=\"b\",le=\"+Inf\"} 4\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "t_seconds_sum{a=\"b\"} 3.000760\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "t_seconds_count{a=\"b\"} 4\n"));
    el_buf_reset(&b);
    CU_ASSERT_EQUAL(el_histogram_write(&s, "u", "", &b), EL_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "u_bucket{le=\"+Inf\"} 4\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "u_count 4\n"));
    el_buf_cleanup(&b);

    el_histogram_reset(&h);
    el_histogram_read(&h, &s);
    CU_ASSERT_EQUAL(s.count, 0);
    CU_ASSERT_EQUAL(s.sum_us, 0);
}

/* ---- Prometheus text parsing -----------------------------------------------
 *
 * Enough of the 0.0.4 grammar to hold the output to it: every line is
 * "# HELP name text", "# TYPE name type", or name[{label="value",...}] value
 * where the value is a float (or +Inf/-Inf/NaN); a sample's family must
 * have been typed before it. The parse results are kept for lookups. */

#define MAX_SAMPLES 4096

struct sample {
    char name[96];
    char labels[256]; /* raw text between the braces, "" when none */
    double value;
};

struct parsed {
    struct sample s[MAX_SAMPLES];
    int n;
    char typed[64][96];
    int ntyped;
    int bad_lines;
};

static int name_char(char c, int first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

/* Length of a metric or label name at p, 0 when none. */
static size_t name_len(const char *p)
{
    size_t n = 0;

    while (name_char(p[n], n == 0))
        n++;
    return n;
}

/* The family a sample belongs to: histograms add _bucket/_sum/_count. */
static int family_typed(const struct parsed *ps, const char *name)
{
    static const char *const suffixes[] = {"", "_bucket", "_sum", "_count"};

    for (int i = 0; i < ps->ntyped; i++)
        for (size_t k = 0; k < sizeof(suffixes) / sizeof(suffixes[0]); k++) {
            size_t fl = strlen(ps->typed[i]);

            if (strncmp(name, ps->typed[i], fl) == 0 && strcmp(name + fl, suffixes[k]) == 0)
                return 1;
        }
    return 0;
}

static int parse_line(struct parsed *ps, const char *line)
{
    struct sample *s;
    const char *p = line;
    char *end;
    size_t n;

    if (strncmp(p, "# HELP ", 7) == 0)
        return name_len(p + 7) > 0 && p[7 + name_len(p + 7)] == ' ';
    if (strncmp(p, "# TYPE ", 7) == 0) {
        const char *t;

        n = name_len(p + 7);
        if (n == 0 || n >= sizeof(ps->typed[0]) || p[7 + n] != ' ' || ps->ntyped == 64)
            return 0;
        t = p + 8 + n;
        if (strcmp(t, "counter") != 0 && strcmp(t, "gauge") != 0 && strcmp(t, "histogram") != 0)
            return 0;
        memcpy(ps->typed[ps->ntyped], p + 7, n);
        ps->typed[ps->ntyped++][n] = '\0';
        return 1;
    }
    if (*p == '#' || ps->n == MAX_SAMPLES)
        return 0;
    s = &ps->s[ps->n];
    n = name_len(p);
    if (n == 0 || n >= sizeof(s->name))
        return 0;
    memcpy(s->name, p, n);
    s->name[n] = '\0';
    p += n;
    s->labels[0] = '\0';
    if (*p == '{') {
        const char *start = ++p;

        for (;;) { /* label="value" (escaped), separated by commas */
            n = name_len(p);
            if (n == 0 || p[n] != '=' || p[n + 1] != '"')
                return 0;
            p += n + 2;
            while (*p && *p != '"') {
                if (*p == '\\') {
                    if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
                        return 0;
                    p++;
                }
                p++;
            }
            if (*p++ != '"')
                return 0;
            if (*p == ',') {
                p++;
                continue;
            }
            if (*p != '}')
                return 0;
            break;
        }
        if ((size_t)(p - start) >= sizeof(s->labels))
            return 0;
        memcpy(s->labels, start, (size_t)(p - start));
        s->labels[p - start] = '\0';
        p++;
    }
    if (*p++ != ' ')
        return 0;
    s->value = strtod(p, &end);
    if (end == p || *end != '\0')
        return 0;
    if (!family_typed(ps, s->name))
        return 0;
    ps->n++;
    return 1;
}

static void parse_metrics(const char *text, struct parsed *ps)
{
    const char *p = text;

    memset(ps, 0, sizeof(*ps));
    while (*p) {
        const char *nl = strchr(p, '\n');
        char line[512];
        size_t n;

        if (nl == NULL) { /* every line, the last too, ends in \n */
            ps->bad_lines++;
            break;
        }
        n = (size_t)(nl - p);
        if (n >= sizeof(line) || !(memcpy(line, p, n), line[n] = '\0', parse_line(ps, line))) {
            fprintf(stderr, "bad metrics line: %.*s\n", (int)n, p);
            ps->bad_lines++;
        }
        p = nl + 1;
    }
}

/* The value of sample name{labels}; NAN when absent. */
static double value_of(const struct parsed *ps, const char *name, const char *labels)
{
    for (int i = 0; i < ps->n; i++)
        if (strcmp(ps->s[i].name, name) == 0 && strcmp(ps->s[i].labels, labels) == 0)
            return ps->s[i].value;
    return NAN;
}

/* ---- request histograms and the metrics page ------------------------------ */

static void test_metrics_format(void)
{
    static struct parsed ps;
    struct el_stats_l1 l1 = {
        .bytes = 4096, .entries = 3, .evictions = 7, .expired = 2, .max_bytes = 1 << 20};
    struct el_stats_bus bus = {.received = 11,
                               .gaps = 1,
                               .resets = 2,
                               .published = 5,
                               .publish_failures = 0,
                               .connected = 1};
    struct el_stats_snapshot cluster = {0};
    struct el_stats_gauges g = {0};
    struct el_buf b;
    double prev;

    el_stats_reset();
    count_n(EL_TYPE_COURSE, EL_LAYER_L1, 4);
    count_n(EL_TYPE_COURSE_LIST, EL_LAYER_MISS, 1);
    el_stats_store_query(1500000, 0);
    el_stats_request("GET /courses/{id}", "L1", 40);
    el_stats_request("GET /courses/{id}", "L1", 700);
    el_stats_request("GET /courses/{id}", "MISS", 30000);
    el_stats_request("GET /health", NULL, 900);
    el_stats_request("GET /health", "-", 90);
    el_stats_request(NULL, NULL, 10);
    el_stats_request("GET /odd\"route\\", "L2", 10);
    cluster.cache[EL_TYPE_COURSE][EL_LAYER_L1] = 40;
    cluster.store_queries = 9;

    g.l1 = &l1;
    g.redis = 1;
    g.cluster = &cluster;
    g.bus = &bus;
    el_buf_init(&b, 1 << 20);
    CU_ASSERT_EQUAL_FATAL(el_stats_metrics(&g, &b), EL_OK);
    parse_metrics(b.data, &ps);
    CU_ASSERT_EQUAL(ps.bad_lines, 0);
    CU_ASSERT(ps.n > 50);

    CU_ASSERT_EQUAL(value_of(&ps, "elearn_cache_requests_total", "type=\"courses\",layer=\"L1\""),
                    4);
    CU_ASSERT_EQUAL(
        value_of(&ps, "elearn_cache_requests_total", "type=\"courses_list\",layer=\"MISS\""), 1);
    CU_ASSERT_EQUAL(value_of(&ps, "elearn_cache_requests_total", "type=\"sessions\",layer=\"L2\""),
                    0);
    CU_ASSERT_EQUAL(
        value_of(&ps, "elearn_cluster_cache_requests_total", "type=\"courses\",layer=\"L1\""), 40);
    CU_ASSERT_EQUAL(value_of(&ps, "elearn_store_queries_total", ""), 1);
    CU_ASSERT_EQUAL(value_of(&ps, "elearn_store_query_seconds_total", ""), 1.5);
    CU_ASSERT_EQUAL(value_of(&ps, "elearn_cluster_store_queries_total", ""), 9);
    CU_ASSERT_EQUAL(value_of(&ps, "elearn_l1_bytes", ""), 4096);
    CU_ASSERT_EQUAL(value_of(&ps, "elearn_l1_entries", ""), 3);
    CU_ASSERT_EQUAL(value_of(&ps, "elearn_l1_evictions_total", ""), 7);
    CU_ASSERT_EQUAL(value_of(&ps, "elearn_l1_max_bytes", ""), 1 << 20);
    CU_ASSERT_EQUAL(value_of(&ps, "elearn_redis_up", ""), 1);
    CU_ASSERT_EQUAL(value_of(&ps, "elearn_redis_enabled", ""), 1);
    CU_ASSERT_EQUAL(value_of(&ps, "elearn_bus_received_total", ""), 11);
    CU_ASSERT_EQUAL(value_of(&ps, "elearn_bus_connected", ""), 1);

    /* The histogram of one series: cumulative, +Inf == _count, sum in s. */
    prev = 0;
    for (int i = 0; i < EL_HIST_BUCKETS; i++) {
        char labels[128];
        double v;

        snprintf(labels, sizeof(labels), "route=\"GET /courses/{id}\",layer=\"L1\",le=\"%s\"",
                 el_histogram_le(i));
        v = value_of(&ps, "elearn_request_duration_seconds_bucket", labels);
        CU_ASSERT(v >= prev);
        prev = v;
    }
    CU_ASSERT_EQUAL(prev, 2);
    CU_ASSERT_EQUAL(value_of(&ps, "elearn_request_duration_seconds_bucket",
                             "route=\"GET /courses/{id}\",layer=\"L1\",le=\"0.00005\""),
                    1);
    CU_ASSERT_EQUAL(value_of(&ps, "elearn_request_duration_seconds_count",
                             "route=\"GET /courses/{id}\",layer=\"L1\""),
                    2);
    CU_ASSERT(fabs(value_of(&ps, "elearn_request_duration_seconds_sum",
                            "route=\"GET /courses/{id}\",layer=\"L1\"") -
                   0.00074) < 1e-9);
    CU_ASSERT_EQUAL(value_of(&ps, "elearn_request_duration_seconds_count",
                             "route=\"GET /courses/{id}\",layer=\"MISS\""),
                    1);
    CU_ASSERT_EQUAL(value_of(&ps, "elearn_request_duration_seconds_count",
                             "route=\"GET /health\",layer=\"none\""),
                    2);
    CU_ASSERT_EQUAL(value_of(&ps, "elearn_request_duration_seconds_count",
                             "route=\"unmatched\",layer=\"none\""),
                    1);
    /* A quote or backslash in a route cannot break out of its label. */
    CU_ASSERT_EQUAL(value_of(&ps, "elearn_request_duration_seconds_count",
                             "route=\"GET /odd\\\"route\\\\\",layer=\"L2\""),
                    1);
    /* Series never observed are not shown. */
    CU_ASSERT(isnan(value_of(&ps, "elearn_request_duration_seconds_count",
                             "route=\"GET /courses/{id}\",layer=\"L2\"")));

    /* Without Redis, L1 or bus: those families are absent, the rest holds. */
    el_buf_reset(&b);
    memset(&g, 0, sizeof(g));
    g.redis = -1;
    CU_ASSERT_EQUAL_FATAL(el_stats_metrics(&g, &b), EL_OK);
    parse_metrics(b.data, &ps);
    CU_ASSERT_EQUAL(ps.bad_lines, 0);
    CU_ASSERT_EQUAL(value_of(&ps, "elearn_redis_up", ""), 0);
    CU_ASSERT_EQUAL(value_of(&ps, "elearn_redis_enabled", ""), 0);
    CU_ASSERT(isnan(value_of(&ps, "elearn_l1_bytes", "")));
    CU_ASSERT(isnan(value_of(&ps, "elearn_cluster_store_queries_total", "")));
    CU_ASSERT(isnan(value_of(&ps, "elearn_bus_gaps_total", "")));
    el_buf_cleanup(&b);
}

/* Many threads recording on a few routes, registering them concurrently:
 * every observation lands once, in its own series. */
#define REQ_THREADS 4
#define REQ_EACH 5000

static void *request_worker(void *arg)
{
    static const char *const routes[] = {"GET /t/a", "GET /t/b", "GET /t/c"};
    long id = *(const long *)arg;

    for (int i = 0; i < REQ_EACH; i++)
        el_stats_request(routes[(i + id) % 3], (i & 1) ? "L1" : "L2", (uint64_t)i);
    return NULL;
}

static void test_request_concurrent(void)
{
    static struct parsed ps;
    pthread_t th[REQ_THREADS];
    struct el_stats_gauges g = {.redis = -1};
    struct el_buf b;
    double total = 0;

    static long ids[REQ_THREADS];

    el_stats_reset();
    for (long i = 0; i < REQ_THREADS; i++) {
        ids[i] = i;
        CU_ASSERT_FATAL(pthread_create(&th[i], NULL, request_worker, &ids[i]) == 0);
    }
    for (int i = 0; i < REQ_THREADS; i++)
        pthread_join(th[i], NULL);

    el_buf_init(&b, 1 << 20);
    CU_ASSERT_EQUAL_FATAL(el_stats_metrics(&g, &b), EL_OK);
    parse_metrics(b.data, &ps);
    CU_ASSERT_EQUAL(ps.bad_lines, 0);
    for (int i = 0; i < ps.n; i++)
        if (strcmp(ps.s[i].name, "elearn_request_duration_seconds_count") == 0) {
            CU_ASSERT_PTR_NOT_NULL(strstr(ps.s[i].labels, "route=\"GET /t/"));
            total += ps.s[i].value;
        }
    CU_ASSERT_EQUAL(total, REQ_THREADS * REQ_EACH);
    /* Each route registered once: three routes times two layers. */
    for (int i = 0, series = 0; i <= ps.n; i++) {
        if (i == ps.n) {
            CU_ASSERT_EQUAL(series, 6);
            break;
        }
        if (strcmp(ps.s[i].name, "elearn_request_duration_seconds_count") == 0)
            series++;
    }
    el_buf_cleanup(&b);
}

/* ---- the cluster flush ---------------------------------------------------- */

static void test_flush_deltas(void)
{
    struct el_redis *r = redis_up();
    struct el_stats_snapshot pend;

    flushdb();
    el_stats_reset();
    count_n(EL_TYPE_COURSE, EL_LAYER_L1, 3);
    count_n(EL_TYPE_COURSE, EL_LAYER_L2, 2);
    count_n(EL_TYPE_COURSE_LIST, EL_LAYER_MISS, 1);
    count_n(EL_TYPE_SESSION, EL_LAYER_STALE, 1);
    el_stats_store_query(250, 1);

    el_cluster_stats_flush(r);
    CU_ASSERT_EQUAL(hget("courses:l1"), 3);
    CU_ASSERT_EQUAL(hget("courses:l2"), 2);
    CU_ASSERT_EQUAL(hget("courses_list:miss"), 1);
    CU_ASSERT_EQUAL(hget("sessions:stale"), 1);
    CU_ASSERT_EQUAL(hget("store:queries"), 1);
    CU_ASSERT_EQUAL(hget("store:failures"), 1);
    CU_ASSERT_EQUAL(hget("store:micros"), 250);
    CU_ASSERT_EQUAL(hlen(), 7); /* zero counters are not sent */
    el_stats_pending(&pend);
    CU_ASSERT_TRUE(snapshot_is_zero(&pend));

    /* Nothing new: a flush adds nothing (no double counting). */
    el_cluster_stats_flush(r);
    el_cluster_stats_flush(r);
    CU_ASSERT_EQUAL(hget("courses:l1"), 3);
    CU_ASSERT_EQUAL(hget("store:micros"), 250);

    /* Only the increments since the last flush are added. */
    count_n(EL_TYPE_COURSE, EL_LAYER_L1, 4);
    el_stats_pending(&pend);
    CU_ASSERT_EQUAL(pend.cache[EL_TYPE_COURSE][EL_LAYER_L1], 4);
    CU_ASSERT_EQUAL(pend.cache[EL_TYPE_COURSE][EL_LAYER_L2], 0);
    el_cluster_stats_flush(r);
    CU_ASSERT_EQUAL(hget("courses:l1"), 7);
    CU_ASSERT_EQUAL(hget("courses:l2"), 2);
    el_redis_free(r);
}

/* Two processes flushing into one hash: the hash holds the sums, and the
 * cluster view adds what this process has not flushed yet. */
static void test_flush_two_processes(void)
{
    struct el_redis *r = redis_up();
    struct el_stats_snapshot c;

    flushdb();
    el_stats_reset(); /* process A */
    count_n(EL_TYPE_COURSE, EL_LAYER_L1, 5);
    count_n(EL_TYPE_COURSE, EL_LAYER_MISS, 1);
    el_stats_store_query(100, 0);
    el_cluster_stats_flush(r);

    el_stats_reset(); /* process B: fresh counters, nothing flushed */
    count_n(EL_TYPE_COURSE, EL_LAYER_L1, 2);
    count_n(EL_TYPE_COURSE_LIST, EL_LAYER_L2, 3);
    el_stats_store_query(300, 0);
    el_cluster_stats_flush(r);

    CU_ASSERT_EQUAL(hget("courses:l1"), 7);
    CU_ASSERT_EQUAL(hget("courses:miss"), 1);
    CU_ASSERT_EQUAL(hget("courses_list:l2"), 3);
    CU_ASSERT_EQUAL(hget("store:queries"), 2);
    CU_ASSERT_EQUAL(hget("store:micros"), 400);

    /* B counts more without flushing: the cluster view has it anyway, once. */
    count_n(EL_TYPE_COURSE, EL_LAYER_L1, 1);
    CU_ASSERT_EQUAL_FATAL(el_cluster_stats_read(r, &c), EL_OK);
    CU_ASSERT_EQUAL(c.cache[EL_TYPE_COURSE][EL_LAYER_L1], 8);
    CU_ASSERT_EQUAL(c.cache[EL_TYPE_COURSE][EL_LAYER_MISS], 1);
    CU_ASSERT_EQUAL(c.cache[EL_TYPE_COURSE_LIST][EL_LAYER_L2], 3);
    CU_ASSERT_EQUAL(c.store_queries, 2);
    CU_ASSERT_EQUAL(c.store_micros, 400);
    el_cluster_stats_flush(r);
    CU_ASSERT_EQUAL_FATAL(el_cluster_stats_read(r, &c), EL_OK);
    CU_ASSERT_EQUAL(c.cache[EL_TYPE_COURSE][EL_LAYER_L1], 8);
    CU_ASSERT_EQUAL(hget("courses:l1"), 8);
    el_redis_free(r);
}

/* Redis down (or disabled): the deltas wait, and the first flush that gets
 * through carries all of them, once. */
static void test_flush_redis_down(void)
{
    struct el_redis *up = redis_up(), *down = redis_down();
    struct el_stats_snapshot pend, c;

    flushdb();
    el_stats_reset();
    count_n(EL_TYPE_COURSE, EL_LAYER_L1, 2);
    el_cluster_stats_flush(up);
    count_n(EL_TYPE_COURSE, EL_LAYER_L1, 3);
    count_n(EL_TYPE_SESSION, EL_LAYER_MISS, 4);

    el_cluster_stats_flush(down); /* refused: the breaker opens */
    el_cluster_stats_flush(down); /* answered by the open breaker */
    el_cluster_stats_flush(NULL); /* L2 disabled */
    CU_ASSERT_EQUAL(hget("courses:l1"), 2);
    CU_ASSERT_EQUAL(hget("sessions:miss"), -1);
    el_stats_pending(&pend);
    CU_ASSERT_EQUAL(pend.cache[EL_TYPE_COURSE][EL_LAYER_L1], 3);
    CU_ASSERT_EQUAL(pend.cache[EL_TYPE_SESSION][EL_LAYER_MISS], 4);
    CU_ASSERT_NOT_EQUAL(el_cluster_stats_read(down, &c), EL_OK);
    CU_ASSERT_TRUE(snapshot_is_zero(&c));
    CU_ASSERT_EQUAL(el_cluster_stats_read(NULL, &c), EL_EDISABLED);

    count_n(EL_TYPE_SESSION, EL_LAYER_MISS, 1);
    el_cluster_stats_flush(up);
    CU_ASSERT_EQUAL(hget("courses:l1"), 5);
    CU_ASSERT_EQUAL(hget("sessions:miss"), 5);
    el_stats_pending(&pend);
    CU_ASSERT_TRUE(snapshot_is_zero(&pend));
    el_cluster_stats_flush(up);
    CU_ASSERT_EQUAL(hget("courses:l1"), 5);
    el_redis_free(down);
    el_redis_free(up);
}

/* What a flush sends is a process's totals: sent again (a flush retried
 * after its reply timed out, though Redis had applied it) they add nothing;
 * higher ones add what they rose by; older ones never lower anything. */
static void test_flush_retry_adds_nothing_twice(void)
{
    struct el_redis *r = redis_up();
    const char *fields[2] = {"courses:l1", "store:queries"};
    uint64_t first[2] = {5, 2}, later[2] = {9, 2}, older[2] = {7, 1};

    flushdb();
    CU_ASSERT_EQUAL(
        el_redis_hadd_totals(r, EL_STATS_CLUSTER_KEY, "stats:process:p1", 2, fields, first), EL_OK);
    CU_ASSERT_EQUAL(
        el_redis_hadd_totals(r, EL_STATS_CLUSTER_KEY, "stats:process:p1", 2, fields, first), EL_OK);
    CU_ASSERT_EQUAL(hget("courses:l1"), 5);
    CU_ASSERT_EQUAL(hget("store:queries"), 2);
    CU_ASSERT_EQUAL(
        el_redis_hadd_totals(r, EL_STATS_CLUSTER_KEY, "stats:process:p1", 2, fields, later), EL_OK);
    CU_ASSERT_EQUAL(
        el_redis_hadd_totals(r, EL_STATS_CLUSTER_KEY, "stats:process:p1", 2, fields, older), EL_OK);
    CU_ASSERT_EQUAL(hget("courses:l1"), 9);
    CU_ASSERT_EQUAL(hget("store:queries"), 2);
    /* Another process's totals add to the same sums. */
    CU_ASSERT_EQUAL(
        el_redis_hadd_totals(r, EL_STATS_CLUSTER_KEY, "stats:process:p2", 2, fields, first), EL_OK);
    CU_ASSERT_EQUAL(hget("courses:l1"), 14);
    CU_ASSERT_EQUAL(hget("store:queries"), 4);
    CU_ASSERT_EQUAL(hlen(), 2);
    el_redis_free(r);
}

/* Counting goes on in worker threads while the housekeeping thread
 * flushes: after a last flush the hash holds exactly what was counted. */
#define FLUSH_THREADS 4
#define FLUSH_EACH 20000

static void *count_worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < FLUSH_EACH; i++) {
        el_stats_count(EL_TYPE_COURSE, (i & 1) ? EL_LAYER_L1 : EL_LAYER_L2);
        if (i % 10 == 0)
            el_stats_store_query(3, 0);
    }
    return NULL;
}

static void test_flush_concurrent(void)
{
    struct el_redis *r = redis_up();
    pthread_t th[FLUSH_THREADS];
    int flushes = 0;

    flushdb();
    el_stats_reset();
    for (int i = 0; i < FLUSH_THREADS; i++)
        CU_ASSERT_FATAL(pthread_create(&th[i], NULL, count_worker, NULL) == 0);
    /* Flush while they run: at least a few flushes overlap the counting. */
    while (flushes < 5 ||
           el_stats_get(EL_TYPE_COURSE, EL_LAYER_L1) + el_stats_get(EL_TYPE_COURSE, EL_LAYER_L2) <
               FLUSH_THREADS * FLUSH_EACH) {
        el_cluster_stats_flush(r);
        flushes++;
    }
    for (int i = 0; i < FLUSH_THREADS; i++)
        pthread_join(th[i], NULL);
    el_cluster_stats_flush(r);
    CU_ASSERT_EQUAL(hget("courses:l1"), FLUSH_THREADS * FLUSH_EACH / 2);
    CU_ASSERT_EQUAL(hget("courses:l2"), FLUSH_THREADS * FLUSH_EACH / 2);
    CU_ASSERT_EQUAL(hget("store:queries"), FLUSH_THREADS * (FLUSH_EACH / 10));
    CU_ASSERT_EQUAL(hget("store:micros"), 3 * FLUSH_THREADS * (FLUSH_EACH / 10));
    el_redis_free(r);
}

/* ---- the JSON report and INFO parsing ------------------------------------- */

static double jnum(json_object *o, const char *type, const char *field)
{
    json_object *t, *f;

    if (!json_object_object_get_ex(o, type, &t) || !json_object_object_get_ex(t, field, &f))
        return NAN;
    return json_object_get_double(f);
}

static void test_json(void)
{
    struct el_stats_snapshot s = {0};
    struct el_buf b;
    json_object *o;

    s.cache[EL_TYPE_COURSE][EL_LAYER_L1] = 3;
    s.cache[EL_TYPE_COURSE][EL_LAYER_L2] = 1;
    s.cache[EL_TYPE_COURSE][EL_LAYER_MISS] = 1;
    s.cache[EL_TYPE_COURSE_LIST][EL_LAYER_L2] = 2;
    s.cache[EL_TYPE_COURSE_LIST][EL_LAYER_STALE] = 1;
    s.store_queries = 4;
    s.store_failures = 1;
    s.store_micros = 1002;

    el_buf_init(&b, 1 << 16);
    CU_ASSERT_EQUAL_FATAL(el_stats_json(&s, &b), EL_OK);
    o = json_tokener_parse(b.data);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    CU_ASSERT_EQUAL(jnum(o, "courses", "l1_hits"), 3);
    CU_ASSERT_EQUAL(jnum(o, "courses", "l2_hits"), 1);
    CU_ASSERT_EQUAL(jnum(o, "courses", "misses"), 1);
    CU_ASSERT_EQUAL(jnum(o, "courses", "requests"), 5);
    CU_ASSERT_EQUAL(jnum(o, "courses", "l1_hit_ratio"), 60);
    CU_ASSERT_EQUAL(jnum(o, "courses", "l2_hit_ratio"), 50); /* 1 of the 2 that reached L2 */
    CU_ASSERT_EQUAL(jnum(o, "courses", "hit_ratio"), 80);
    CU_ASSERT_EQUAL(jnum(o, "courses_list", "stale"), 1);
    CU_ASSERT(fabs(jnum(o, "courses_list", "hit_ratio") - 66.67) < 1e-9);
    CU_ASSERT_EQUAL(jnum(o, "sessions", "requests"), 0);
    CU_ASSERT_EQUAL(jnum(o, "sessions", "hit_ratio"), 0);
    CU_ASSERT_EQUAL(jnum(o, "all", "requests"), 8);
    CU_ASSERT_EQUAL(jnum(o, "all", "l2_hits"), 3);
    CU_ASSERT_EQUAL(jnum(o, "all", "hit_ratio"), 75);
    CU_ASSERT_EQUAL(jnum(o, "store", "queries"), 4);
    CU_ASSERT_EQUAL(jnum(o, "store", "failures"), 1);
    CU_ASSERT_EQUAL(jnum(o, "store", "mean_latency_us"), 250);
    json_object_put(o);
    el_buf_cleanup(&b);
}

static void test_info_field(void)
{
    static const char info[] = "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n"
                               "# Stats\r\nkeyspace_hits:42\r\nkeyspace_misses:8\r\n";
    char out[16], tiny[4];

    CU_ASSERT_EQUAL(el_stats_info_field(info, "used_memory_human", out, sizeof(out)), EL_OK);
    CU_ASSERT_STRING_EQUAL(out, "1.00M");
    CU_ASSERT_EQUAL(el_stats_info_field(info, "used_memory", out, sizeof(out)), EL_OK);
    CU_ASSERT_STRING_EQUAL(out, "1048576"); /* a whole name, not a prefix */
    CU_ASSERT_EQUAL(el_stats_info_field(info, "keyspace_misses", out, sizeof(out)), EL_OK);
    CU_ASSERT_STRING_EQUAL(out, "8");
    CU_ASSERT_EQUAL(el_stats_info_field(info, "keyspace", out, sizeof(out)), EL_ENOTFOUND);
    CU_ASSERT_EQUAL(el_stats_info_field(info, "used_memory", tiny, sizeof(tiny)), EL_ETOOBIG);
    CU_ASSERT_STRING_EQUAL(tiny, "");
}

/* INFO from the harness's redis has the fields /cache/stats reads. */
static void test_info_live(void)
{
    struct el_redis *r = redis_up();
    struct el_buf info;
    char out[32];
    int64_t keys = -1;

    el_buf_init(&info, 1 << 20);
    CU_ASSERT_EQUAL_FATAL(el_redis_info(r, "default", &info), EL_OK);
    CU_ASSERT_EQUAL(el_stats_info_field(info.data, "used_memory_human", out, sizeof(out)), EL_OK);
    CU_ASSERT_EQUAL(el_stats_info_field(info.data, "keyspace_hits", out, sizeof(out)), EL_OK);
    CU_ASSERT_EQUAL(el_stats_info_field(info.data, "keyspace_misses", out, sizeof(out)), EL_OK);
    CU_ASSERT_EQUAL(el_redis_dbsize(r, &keys), EL_OK);
    CU_ASSERT(keys >= 0);
    el_buf_cleanup(&info);
    el_redis_free(r);
}

/* Last: it fills the route registry for the rest of the process. */
static void test_request_registry_full(void)
{
    static struct parsed ps;
    struct el_stats_gauges g = {.redis = -1};
    char name[EL_STATS_ROUTE_LEN + 8];
    struct el_buf b;

    el_stats_reset();
    memset(name, 'x', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    el_stats_request(name, "L1", 1); /* too long to be a label: "other" */
    for (int i = 0; i < EL_STATS_ROUTES_MAX + 10; i++) {
        snprintf(name, sizeof(name), "GET /full/%d", i);
        el_stats_request(name, "L1", 1);
    }
    el_buf_init(&b, 1 << 20);
    CU_ASSERT_EQUAL_FATAL(el_stats_metrics(&g, &b), EL_OK);
    parse_metrics(b.data, &ps);
    CU_ASSERT_EQUAL(ps.bad_lines, 0);
    /* Every observation is somewhere; the overflow went to "other". */
    {
        double total = 0, other;

        for (int i = 0; i < ps.n; i++)
            if (strcmp(ps.s[i].name, "elearn_request_duration_seconds_count") == 0)
                total += ps.s[i].value;
        CU_ASSERT_EQUAL(total, EL_STATS_ROUTES_MAX + 11);
        other =
            value_of(&ps, "elearn_request_duration_seconds_count", "route=\"other\",layer=\"L1\"");
        CU_ASSERT(other >= 11);
    }
    el_buf_cleanup(&b);
}

/* elearn_requests_total by route, method and status class; the build,
 * instance and start-time families. */
static void test_requests_and_identity(void)
{
    static struct parsed ps;
    struct el_stats_gauges g = {0};
    struct el_buf b;
    char pidlabel[96];

    el_stats_reset();
    el_stats_set_identity("web1:7", "1.2.3", "abc123def456");
    el_stats_response("GET /courses/{id}", "L1", 200, 40);
    el_stats_response("GET /courses/{id}", "L1", 304, 40);
    el_stats_response("GET /courses/{id}", NULL, 404, 40);
    el_stats_response("GET /courses/{id}", NULL, 422, 40);
    el_stats_response("POST /courses", NULL, 503, 40);
    el_stats_response(NULL, NULL, 404, 40);
    el_stats_response("GET /health", NULL, 999, 40); /* not a status: not counted */
    g.redis = -1;
    el_buf_init(&b, 1 << 20);
    CU_ASSERT_EQUAL_FATAL(el_stats_metrics(&g, &b), EL_OK);
    parse_metrics(b.data, &ps);
    CU_ASSERT_EQUAL(ps.bad_lines, 0);
    CU_ASSERT_EQUAL(value_of(&ps, "elearn_requests_total",
                             "route=\"/courses/{id}\",method=\"GET\",code=\"2xx\""),
                    1);
    CU_ASSERT_EQUAL(value_of(&ps, "elearn_requests_total",
                             "route=\"/courses/{id}\",method=\"GET\",code=\"3xx\""),
                    1);
    CU_ASSERT_EQUAL(value_of(&ps, "elearn_requests_total",
                             "route=\"/courses/{id}\",method=\"GET\",code=\"4xx\""),
                    2);
    CU_ASSERT_EQUAL(
        value_of(&ps, "elearn_requests_total", "route=\"/courses\",method=\"POST\",code=\"5xx\""),
        1);
    CU_ASSERT_EQUAL(
        value_of(&ps, "elearn_requests_total", "route=\"unmatched\",method=\"none\",code=\"4xx\""),
        1);
    CU_ASSERT_PTR_NULL(strstr(b.data, "route=\"/health\""));
    CU_ASSERT_EQUAL(value_of(&ps, "elearn_build_info", "version=\"1.2.3\",commit=\"abc123def456\""),
                    1);
    snprintf(pidlabel, sizeof(pidlabel), "elearn_instance=\"web1:7\",pid=\"%d\"", (int)getpid());
    CU_ASSERT_EQUAL(value_of(&ps, "elearn_instance_info", pidlabel), 1);
    CU_ASSERT(value_of(&ps, "process_start_time_seconds", "") > 1.7e9);
    CU_ASSERT(value_of(&ps, "process_start_time_seconds", "") <= (double)el_wall_ms() / 1000 + 1);
    el_buf_cleanup(&b);
    el_stats_reset();
}

void test_stats_register(void)
{
    CU_pSuite s = CU_add_suite("stats", NULL, NULL);

    CU_add_test(s, "counters, snapshot and reset", test_counters);
    CU_add_test(s, "requests by route, method, status class; identity", test_requests_and_identity);
    CU_add_test(s, "histogram bucket math", test_histogram_buckets);
    CU_add_test(s, "histogram observe, read and text", test_histogram_observe);
    CU_add_test(s, "metrics text parses and holds the counts", test_metrics_format);
    CU_add_test(s, "request histograms from many threads", test_request_concurrent);
    CU_add_test(s, "flush adds deltas, never twice", test_flush_deltas);
    CU_add_test(s, "two processes sum in the cluster hash", test_flush_two_processes);
    CU_add_test(s, "Redis down keeps the deltas", test_flush_redis_down);
    CU_add_test(s, "a retried flush adds nothing twice", test_flush_retry_adds_nothing_twice);
    CU_add_test(s, "flush while counting loses nothing", test_flush_concurrent);
    CU_add_test(s, "JSON report and ratios", test_json);
    CU_add_test(s, "INFO field parsing", test_info_field);
    CU_add_test(s, "INFO and DBSIZE from a live redis", test_info_live);
    CU_add_test(s, "route registry overflow goes to other", test_request_registry_full);
}
