/* health.c -- the two unauthenticated probes: GET /health for load
 * balancers and orchestrators, GET /metrics for Prometheus.
 *
 * Neither may hang or pile up: the Redis ping is bounded by
 * REDIS_TIMEOUT_MS and answered at once while the breaker is open; the
 * store ping is bounded by DB_TIMEOUT_MS, and while one health check is
 * pinging the store, concurrent ones reuse the last answer instead of
 * each holding a worker for up to DB_TIMEOUT_MS against a dead database.
 * /metrics does no store I/O at all, and one Redis read (the cluster
 * sums). */
#include <stdatomic.h>
#include <string.h>

#include "app.h"
#include "handlers.h"
#include "cache/cluster_stats.h"
#include "obs/stats.h"

/* The store's last known state (1 up, 0 down, -1 not known yet) and
 * whether a health check is pinging it now. Process-wide like the store. */
static atomic_int db_last = -1;
static atomic_flag db_pinging = ATOMIC_FLAG_INIT;

static int db_up(struct el_store *s)
{
    int up = atomic_load(&db_last);

    if (up < 0 || !atomic_flag_test_and_set(&db_pinging)) {
        /* Nothing known yet (ping regardless: bounded), or our turn. */
        int mine = up >= 0;

        up = el_store_ping(s) == EL_OK;
        atomic_store(&db_last, up);
        if (mine)
            atomic_flag_clear(&db_pinging);
    }
    return up;
}

static const char *redis_state(struct el_redis *r)
{
    if (r == NULL)
        return "disabled";
    return el_redis_ping(r) == EL_OK ? "up" : "down";
}

/* The Redis topology and the revocation-sync state as JSON members
 * (",\"redis_topology\":{...},\"revocations\":{...}"), for /health and
 * /cache/stats. No I/O: what the last connect saw. Host names come from
 * the URL or a sentinel and are checked to be plain host characters. */
int el_app_auth_state_json(struct el_app *app, struct el_buf *b)
{
    struct el_redis_topology t;
    struct el_auth_sync_state st;
    int rc;

    el_redis_topology(app->redis, &t);
    el_auth_sync_state(app->auth, &st);
    if (app->redis == NULL)
        rc = el_buf_adds(b, ",\"redis_topology\":null");
    else
        rc = el_buf_addf(b,
                         ",\"redis_topology\":{\"role\":\"%s\",\"master\":\"%s:%d\","
                         "\"sentinel\":%s%s%s,\"replicas\":%d,\"master_switches\":%llu}",
                         t.run_id[0] ? "master" : "unknown", t.host, t.port, t.sentinel ? "\"" : "",
                         t.sentinel ? t.master_name : "null", t.sentinel ? "\"" : "", t.replicas,
                         (unsigned long long)t.switches);
    if (rc == EL_OK)
        rc = el_buf_addf(b,
                         ",\"revocations\":{\"source\":\"%s\",\"synced\":%s,\"buckets\":%d,"
                         "\"stale_buckets\":%d,\"dirty_buckets\":%d,\"copies\":%llu,"
                         "\"copied\":%llu,\"lost_writes\":%llu,\"store_reads\":%llu,\"local\":%s,"
                         "\"local_hits\":%llu,\"event_thread_hits\":%llu}",
                         st.local_trusted        ? "local"
                         : st.redis && st.synced ? "redis"
                                                 : "store",
                         st.synced ? "true" : "false", st.buckets, st.stale, st.dirty,
                         (unsigned long long)st.syncs, (unsigned long long)st.copied,
                         (unsigned long long)st.lost_writes, (unsigned long long)st.store_reads,
                         st.local_trusted ? "true" : "false", (unsigned long long)st.local_hits,
                         (unsigned long long)st.nowait_hits);
    return rc;
}

/* GET /health: 200 {"status":"ok"} when the store and Redis answer,
 * "degraded" when either does not; 503 with the same body when the store
 * is down and nothing cached can be served either (L1 empty, Redis not
 * up). */
int handle_health(const struct el_request *req, struct el_response *res)
{
    struct el_app *app = req->app;
    struct el_l1_stats l1;
    const char *redis;
    int db, degraded;

    el_l1_stats(app->l1, &l1);
    redis = redis_state(app->redis);
    db = db_up(app->store);
    degraded = !db || strcmp(redis, "down") == 0;
    if (el_buf_addf(&res->body,
                    "{\"status\":\"%s\",\"l1\":{\"entries\":%llu,\"bytes\":%llu},"
                    "\"redis\":\"%s\",\"db\":\"%s\"",
                    degraded ? "degraded" : "ok", (unsigned long long)l1.entries,
                    (unsigned long long)l1.bytes, redis, db ? "up" : "down") != EL_OK ||
        el_app_auth_state_json(app, &res->body) != EL_OK || el_buf_adds(&res->body, "}") != EL_OK)
        return el_response_error(res, 503, "Server out of memory, try again");
    el_response_header(res, "Cache-Control", "no-store");
    if (!db && l1.entries == 0 && strcmp(redis, "up") != 0)
        return 503;
    return 200;
}

/* GET /metrics: the Prometheus text exposition format 0.0.4. Counters are
 * this process's, plus the sums over every process when Redis can give
 * them -- behind a web server a scrape reaches one process of the pool,
 * and the elearn_cluster_* families make that scrape meaningful anyway. */
int handle_metrics(const struct el_request *req, struct el_response *res)
{
    struct el_app *app = req->app;
    struct el_stats_gauges g = {0};
    struct el_stats_snapshot cluster;
    struct el_stats_l1 l1;
    struct el_stats_bus bus;
    struct el_l1_stats l1s;
    struct el_bus_stats bs;

    el_l1_stats(app->l1, &l1s);
    l1 = (struct el_stats_l1){l1s.bytes, l1s.max_bytes, l1s.entries, l1s.evictions, l1s.expired};
    g.l1 = &l1;
    g.redis = app->redis == NULL ? -1 : el_redis_is_up(app->redis);
    if (el_cluster_stats_read(app->redis, &cluster) == EL_OK)
        g.cluster = &cluster;
    if (app->bus != NULL) {
        el_bus_stats(app->bus, &bs);
        bus = (struct el_stats_bus){bs.received,         bs.gaps,     bs.resets, bs.published,
                                    bs.publish_failures, bs.connected};
        g.bus = &bus;
    }
    el_buf_reset(&res->body);
    if (el_stats_metrics(&g, &res->body) != EL_OK)
        return el_response_error(res, 503, "Server out of memory, try again");
    res->content_type = "text/plain; version=0.0.4";
    el_response_header(res, "Cache-Control", "no-store");
    return 200;
}
