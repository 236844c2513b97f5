/* cache_admin.c -- the admin's view of the cache and its one lever:
 * GET /cache/stats and DELETE /cache/invalidate/{course_id}.
 *
 * Both require an admin: authentication first (401/503 from
 * el_require_auth), then the role (403), then the input (422), so nothing
 * about the cache is revealed to anyone else. Stats cost a few Redis round
 * trips (INFO, DBSIZE, HGETALL), each bounded by REDIS_TIMEOUT_MS and
 * skipped at once while the breaker is open; counting itself never touches
 * Redis (lib/obs/stats.c). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "handlers.h"
#include "cache/cluster_stats.h"
#include "cache/key.h"
#include "http/json.h"
#include "model/oid.h"
#include "obs/stats.h"

/* 0 when the caller is an admin, else the status set on res. */
static int require_admin(const struct el_request *req, struct el_response *res)
{
    struct el_principal p;
    int status;

    if ((status = el_require_auth(req, res, &p)) != 0)
        return status;
    if (strcmp(p.role, "admin") != 0)
        return el_response_error(res, 403, "Insufficient permissions");
    return 0;
}

static int out_of_memory(struct el_response *res)
{
    return el_response_error(res, 503, "Server out of memory, try again");
}

/* A JSON string member "name":"value" with value escaped (it comes from
 * Redis's INFO text). */
static int add_string(struct el_buf *b, const char *name, const char *value)
{
    int rc = el_buf_addf(b, "\"%s\":", name);

    return rc == EL_OK ? el_json_add_string(b, value) : rc;
}

/* What Redis itself says, as the original service reported it. */
struct redis_view {
    const char *state;     /* "up", "down", "disabled" */
    int64_t keys;          /* DBSIZE */
    char memory_used[32];  /* INFO used_memory_human */
    uint64_t hits, misses; /* INFO keyspace_hits / keyspace_misses */
};

static void redis_view(struct el_redis *r, struct redis_view *v)
{
    struct el_buf info;
    char num[32];
    int rc;

    memset(v, 0, sizeof(*v));
    snprintf(v->memory_used, sizeof(v->memory_used), "N/A");
    if (r == NULL) {
        v->state = "disabled";
        return;
    }
    el_buf_init(&info, 1u << 20);
    rc = el_redis_info(r, "default", &info);
    if (rc == EL_OK)
        rc = el_redis_dbsize(r, &v->keys);
    if (rc == EL_OK) {
        if (el_stats_info_field(info.data, "used_memory_human", v->memory_used,
                                sizeof(v->memory_used)) != EL_OK)
            snprintf(v->memory_used, sizeof(v->memory_used), "N/A");
        if (el_stats_info_field(info.data, "keyspace_hits", num, sizeof(num)) == EL_OK)
            v->hits = strtoull(num, NULL, 10);
        if (el_stats_info_field(info.data, "keyspace_misses", num, sizeof(num)) == EL_OK)
            v->misses = strtoull(num, NULL, 10);
    } else {
        v->keys = 0;
    }
    v->state = rc == EL_OK ? "up" : "down";
    el_buf_cleanup(&info);
}

/* GET /cache/stats: the original service's fields (memory_cache_size,
 * redis_keys, redis_memory_used, redis_hits, redis_misses, hit_ratio --
 * Redis's own keyspace hit percentage), then L1, and per type and layer the
 * counts of this process and the sums over every process ("cluster" is null
 * when Redis cannot be read). */
int handle_cache_stats(const struct el_request *req, struct el_response *res)
{
    struct el_app *app = req->app;
    struct el_stats_snapshot mine, all;
    struct el_l1_stats l1;
    struct redis_view rv;
    struct el_buf *b = &res->body;
    uint64_t lookups;
    int status, rc, have_cluster;

    if ((status = require_admin(req, res)) != 0)
        return status;
    el_l1_stats(app->l1, &l1);
    redis_view(app->redis, &rv);
    el_stats_snapshot(&mine);
    have_cluster = el_cluster_stats_read(app->redis, &all) == EL_OK;

    lookups = rv.hits + rv.misses;
    el_buf_reset(b);
    rc = el_buf_addf(b, "{\"memory_cache_size\":%llu,\"redis_keys\":%lld,",
                     (unsigned long long)l1.entries, (long long)rv.keys);
    if (rc == EL_OK)
        rc = add_string(b, "redis_memory_used", rv.memory_used);
    if (rc == EL_OK)
        rc = el_buf_addf(b, ",\"redis_hits\":%llu,\"redis_misses\":%llu,",
                         (unsigned long long)rv.hits, (unsigned long long)rv.misses);
    if (rc == EL_OK)
        rc = lookups
                 ? el_buf_addf(b, "\"hit_ratio\":%.2f,", 100.0 * (double)rv.hits / (double)lookups)
                 : el_buf_adds(b, "\"hit_ratio\":0,");
    if (rc == EL_OK)
        rc = el_buf_addf(b,
                         "\"redis\":\"%s\",\"l1\":{\"entries\":%llu,\"bytes\":%llu,"
                         "\"max_bytes\":%llu,\"evictions\":%llu,\"expired\":%llu,"
                         "\"list_memo_hits\":%llu},"
                         "\"pid\":%ld,\"process\":",
                         rv.state, (unsigned long long)l1.entries, (unsigned long long)l1.bytes,
                         (unsigned long long)l1.max_bytes, (unsigned long long)l1.evictions,
                         (unsigned long long)l1.expired,
                         (unsigned long long)el_app_list_memo_hits(app), (long)getpid());
    if (rc == EL_OK)
        rc = el_stats_json(&mine, b);
    if (rc == EL_OK)
        rc = el_buf_adds(b, ",\"cluster\":");
    if (rc == EL_OK)
        rc = have_cluster ? el_stats_json(&all, b) : el_buf_adds(b, "null");
    if (rc == EL_OK)
        rc = el_app_auth_state_json(app, b);
    if (rc == EL_OK)
        rc = el_buf_adds(b, "}");
    if (rc != EL_OK)
        return out_of_memory(res);
    return 200;
}

/* DELETE /cache/invalidate/{course_id}: drop one course from every layer of
 * every process (el_app_invalidate_course: L1 here, Redis, and the other
 * processes through the bus) and move the list generation. */
int handle_cache_invalidate(const struct el_request *req, struct el_response *res)
{
    char id[EL_OID_HEX];
    int status;

    if ((status = require_admin(req, res)) != 0)
        return status;
    if (!el_oid_valid(req->params[0]))
        return el_response_error(res, 422,
                                 "Invalid course id: must be a 24-character hex ObjectId");
    /* One spelling per id, as app/courses.c keys it. */
    for (int i = 0; i < 24; i++)
        id[i] = (char)tolower((unsigned char)req->params[0][i]);
    id[24] = '\0';
    el_app_invalidate_course(req->app, id);
    /* The id is validated hex: nothing to escape. */
    if (el_buf_addf(&res->body, "{\"message\":\"Cache cleared for course %s\"}", req->params[0]) !=
        EL_OK)
        return out_of_memory(res);
    return 200;
}
