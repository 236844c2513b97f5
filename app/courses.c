/* courses.c -- course reads through the tiered cache.
 *
 * GET /courses/{id} and GET /courses: validate, build the key with the key
 * module, and let the tiered cache serve it. The store is reached only from
 * the loaders below, by the single-flight leader of a miss, and the JSON is
 * made there once and cached as ready bytes. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "model/course.h"
#include "handlers.h"
#include "cache/key.h"
#include "model/oid.h"
#include "store/store.h"

struct course_load {
    struct el_store *store;
    const char *id;
};

struct list_load {
    struct el_store *store;
    const struct el_course_query *q;
};

/* Loader for one course: 200 + JSON, 404, or a negative store error. */
static int load_course(void *arg, struct el_buf *body)
{
    struct course_load *l = arg;
    struct el_course c;
    int rc;

    rc = el_store_course_get(l->store, l->id, &c);
    if (rc == EL_ENOTFOUND)
        return 404;
    if (rc != EL_OK)
        return rc;
    rc = el_course_to_json(&c, body);
    el_course_cleanup(&c);
    return rc == EL_OK ? 200 : rc;
}

static int load_list(void *arg, struct el_buf *body)
{
    struct list_load *l = arg;
    struct el_course_page page;
    int rc;

    rc = el_store_course_list(l->store, l->q, &page);
    if (rc != EL_OK)
        return rc;
    rc = el_course_page_to_json(&page, l->q, body);
    el_course_page_cleanup(&page);
    return rc == EL_OK ? 200 : rc;
}

/* Turn a failed tiered read into the client's answer. */
static int unavailable(struct el_response *res, int rc)
{
    if (rc == EL_ENOMEM)
        return el_response_error(res, 503, "Server out of memory, try again");
    return el_response_error(res, 503, "Database unavailable, try again shortly");
}

static int forbidden(struct el_response *res)
{
    return el_response_error(res, 403, "Insufficient permissions");
}

/* Lowercase a validated id into out: one spelling per id, so upper- and
 * lowercase share a cache entry. 422 (status set) when invalid. */
static int course_id(struct el_response *res, const char *raw, char out[EL_OID_HEX],
                     const char *what)
{
    char msg[96];

    if (!el_oid_valid(raw)) {
        snprintf(msg, sizeof(msg), "Invalid %s: must be a 24-character hex ObjectId", what);
        return el_response_error(res, 422, msg);
    }
    for (int i = 0; i < 24; i++)
        out[i] = (char)tolower((unsigned char)raw[i]);
    out[24] = '\0';
    return 0;
}

int el_app_course_read(struct el_app *app, const char *id, struct el_blob **out,
                       enum el_layer *layer)
{
    char key[EL_KEY_MAX];
    struct course_load l = {app->store, id};

    el_key_course(key, sizeof(key), id);
    return el_tiered_get(app->courses, key, load_course, &l, out, layer);
}

int el_app_list_read(struct el_app *app, const struct el_course_query *q, struct el_blob **out,
                     enum el_layer *layer)
{
    char digest[41], key[EL_KEY_MAX];
    struct list_load l = {app->store, q};

    el_course_query_digest(q, digest);
    el_key_courses_list(key, sizeof(key), atomic_load(&app->list_generation), digest);
    return el_tiered_get(app->course_lists, key, load_list, &l, out, layer);
}

int handle_course_get(const struct el_request *req, struct el_response *res)
{
    char id[EL_OID_HEX];
    struct el_blob *blob;
    enum el_layer layer;
    int status, rc;

    if ((status = course_id(res, req->params[0], id, "course id")) != 0)
        return status;
    rc = el_app_course_read(req->app, id, &blob, &layer);
    if (rc != EL_OK)
        return unavailable(res, rc);
    el_response_blob(res, blob, layer);
    el_blob_unref(blob);
    return res->status;
}

int handle_course_list(const struct el_request *req, struct el_response *res)
{
    struct el_course_query q;
    struct el_err err = {0};
    struct el_blob *blob;
    enum el_layer layer;
    int rc;

    if (el_course_query_parse(req->query, &q, &err) != EL_OK)
        return el_response_error(res, 422, err.msg[0] ? err.msg : "Invalid query parameters");
    rc = el_app_list_read(req->app, &q, &blob, &layer);
    if (rc != EL_OK)
        return unavailable(res, rc);
    el_response_blob(res, blob, layer);
    el_blob_unref(blob);
    return res->status;
}

/* ---- writes ---------------------------------------------------------------
 *
 * Every write goes to the store first; only after it succeeds are the
 * affected cache entries replaced or dropped and the list generation moved,
 * so a cache never holds something the store does not. The fresh document
 * is cached on the way out: the next read on this process sees the write. */

void el_app_bump_lists(struct el_app *app)
{
    int64_t gen;
    uint64_t cur = atomic_load(&app->list_generation), want;

    /* Redis holds the shared number; without it, count locally (other
     * processes then learn nothing until they see the gap or a reset). */
    if (el_redis_incr(app->redis, EL_KEY_LIST_GEN, &gen) == EL_OK && gen > 0) {
        want = (uint64_t)gen > cur ? (uint64_t)gen : cur + 1;
    } else {
        want = cur + 1;
        if (app->redis)
            atomic_store(&app->gen_unshared, 1); /* el_app_share_generation */
    }
    /* Never move backwards: a Redis that restarted empty counts from 1. */
    while (cur < want && !atomic_compare_exchange_weak(&app->list_generation, &cur, want))
        ;
    if (el_bus_publish_generation(app->bus, want) != EL_OK && app->bus)
        fprintf(stderr, "courses: list generation %llu not announced; peers will see a gap\n",
                (unsigned long long)want);
}

void el_app_share_generation(struct el_app *app)
{
    uint64_t cur = atomic_load(&app->list_generation);
    int64_t gen;
    char v[24];
    int n;

    if (!atomic_load(&app->gen_unshared) || !el_redis_is_up(app->redis))
        return;
    /* Redis must end at least at our number, or lists cached under the
     * generations in between would be read again by other processes. */
    if (el_redis_incr(app->redis, EL_KEY_LIST_GEN, &gen) != EL_OK)
        return;
    if ((uint64_t)gen < cur) {
        n = snprintf(v, sizeof(v), "%llu", (unsigned long long)cur);
        if (el_redis_set(app->redis, EL_KEY_LIST_GEN, v, (size_t)n, 0) != EL_OK)
            return;
        gen = (int64_t)cur;
    }
    if (el_bus_publish_generation(app->bus, (uint64_t)gen) == EL_OK)
        atomic_store(&app->gen_unshared, 0);
}

void el_app_invalidate_course(struct el_app *app, const char *id)
{
    char key[EL_KEY_MAX];

    el_key_course(key, sizeof(key), id);
    el_tiered_invalidate(app->courses, key);
    el_app_bump_lists(app);
}

static int write_failed(struct el_response *res, int rc, const char *what)
{
    if (rc == EL_ENOTFOUND)
        return el_response_error(res, 404, what);
    if (rc == EL_ECONFLICT)
        return el_response_error(res, 409, "Conflict");
    return el_response_error(res, 503, "Database unavailable, try again shortly");
}

/* Serialise c into the response and cache it as the current version. */
static int respond_course(const struct el_request *req, struct el_response *res,
                          const struct el_course *c, int status)
{
    char key[EL_KEY_MAX];

    if (el_course_to_json(c, &res->body) != EL_OK)
        return el_response_error(res, 503, "Server out of memory, try again");
    el_key_course(key, sizeof(key), c->id);
    if (el_tiered_set(req->app->courses, key, res->body.data, res->body.len) != EL_OK)
        el_tiered_invalidate(req->app->courses, key);
    return status;
}



/* The caller may change course id: its instructor or an admin. Returns 0,
 * or the status set on res (404, 403, 503). */
static int may_edit(const struct el_request *req, struct el_response *res,
                    const struct el_principal *p, const char *id)
{
    struct el_course c;
    int rc, own;

    if (strcmp(p->role, "admin") == 0)
        return 0;
    if (strcmp(p->role, "instructor") != 0)
        return forbidden(res);
    rc = el_store_course_get(req->app->store, id, &c);
    if (rc != EL_OK)
        return write_failed(res, rc, "Course not found");
    own = strcmp(c.instructor_id, p->id) == 0;
    el_course_cleanup(&c);
    return own ? 0 : forbidden(res);
}

int handle_course_create(const struct el_request *req, struct el_response *res)
{
    struct el_principal p;
    struct el_course c;
    struct el_err err = {0};
    struct el_buf body;
    int status, rc;

    if ((status = el_require_auth(req, res, &p)) != 0)
        return status;
    if (strcmp(p.role, "instructor") != 0 && strcmp(p.role, "admin") != 0)
        return forbidden(res);
    el_buf_init(&body, EL_BODY_MAX);
    if ((status = el_request_body_or_reply(req, res, &body)) != 0)
        goto out;
    if (el_course_create_parse(body.data ? body.data : "", body.len, &c, &err) != EL_OK) {
        status = el_response_error(res, 422, err.msg);
        goto out;
    }
    memcpy(c.instructor_id, p.id, sizeof(c.instructor_id));
    c.created_at = c.updated_at = el_wall_ms();
    rc = el_store_course_insert(req->app->store, &c);
    if (rc == EL_OK) {
        el_app_bump_lists(req->app);
        status = respond_course(req, res, &c, 201);
    } else {
        status = write_failed(res, rc, "Course not found");
    }
    el_course_cleanup(&c);
out:
    el_buf_cleanup(&body);
    return status;
}

int handle_course_patch(const struct el_request *req, struct el_response *res)
{
    struct el_principal p;
    struct el_course_patch patch;
    struct el_course c;
    struct el_err err = {0};
    struct el_buf body;
    char id[EL_OID_HEX];
    int status, rc;

    if ((status = el_require_auth(req, res, &p)) != 0)
        return status;
    if (strcmp(p.role, "instructor") != 0 && strcmp(p.role, "admin") != 0)
        return forbidden(res);
    if ((status = course_id(res, req->params[0], id, "course id")) != 0)
        return status;
    el_buf_init(&body, EL_BODY_MAX);
    if ((status = el_request_body_or_reply(req, res, &body)) != 0)
        goto out;
    if (el_course_patch_parse(body.data ? body.data : "", body.len, &patch, &err) != EL_OK) {
        status = el_response_error(res, 422, err.msg);
        goto out;
    }
    if ((status = may_edit(req, res, &p, id)) == 0) {
        rc = el_store_course_update(req->app->store, id, &patch, el_wall_ms(), &c);
        if (rc == EL_OK) {
            el_app_bump_lists(req->app);
            status = respond_course(req, res, &c, 200);
            el_course_cleanup(&c);
        } else {
            status = write_failed(res, rc, "Course not found");
        }
    }
    el_course_patch_cleanup(&patch);
out:
    el_buf_cleanup(&body);
    return status;
}

int handle_module_patch(const struct el_request *req, struct el_response *res)
{
    struct el_principal p;
    struct el_module_patch patch;
    struct el_course c;
    struct el_err err = {0};
    struct el_buf body;
    char id[EL_OID_HEX], mid[EL_OID_HEX];
    int status, rc;

    if ((status = el_require_auth(req, res, &p)) != 0)
        return status;
    if (strcmp(p.role, "instructor") != 0 && strcmp(p.role, "admin") != 0)
        return forbidden(res);
    if ((status = course_id(res, req->params[0], id, "course id")) != 0 ||
        (status = course_id(res, req->params[1], mid, "module id")) != 0)
        return status;
    el_buf_init(&body, EL_BODY_MAX);
    if ((status = el_request_body_or_reply(req, res, &body)) != 0)
        goto out;
    if (el_module_patch_parse(body.data ? body.data : "", body.len, &patch, &err) != EL_OK) {
        status = el_response_error(res, 422, err.msg);
        goto out;
    }
    if ((status = may_edit(req, res, &p, id)) == 0) {
        rc = el_store_module_update(req->app->store, id, mid, &patch, el_wall_ms(), &c);
        if (rc == EL_OK) {
            el_app_bump_lists(req->app);
            status = respond_course(req, res, &c, 200);
            el_course_cleanup(&c);
        } else {
            status = write_failed(res, rc, "Course or module not found");
        }
    }
    el_module_patch_cleanup(&patch);
out:
    el_buf_cleanup(&body);
    return status;
}

int handle_course_delete(const struct el_request *req, struct el_response *res)
{
    struct el_principal p;
    char id[EL_OID_HEX], key[EL_KEY_MAX];
    int status, rc;

    if ((status = el_require_auth(req, res, &p)) != 0)
        return status;
    if (strcmp(p.role, "admin") != 0)
        return forbidden(res);
    if ((status = course_id(res, req->params[0], id, "course id")) != 0)
        return status;
    rc = el_store_course_delete(req->app->store, id);
    if (rc != EL_OK)
        return write_failed(res, rc, "Course not found");
    el_key_course(key, sizeof(key), id);
    el_tiered_invalidate(req->app->courses, key);
    el_app_bump_lists(req->app);
    return 204;
}

int handle_course_enroll(const struct el_request *req, struct el_response *res)
{
    struct el_principal p;
    char id[EL_OID_HEX], key[EL_KEY_MAX];
    int64_t count = 0;
    int status, rc;

    if ((status = el_require_auth(req, res, &p)) != 0)
        return status;
    if ((status = course_id(res, req->params[0], id, "course id")) != 0)
        return status;
    rc = el_store_enroll(req->app->store, id, p.id, &count);
    if (rc == EL_ECONFLICT)
        return el_response_error(res, 409, "Already enrolled in this course");
    if (rc != EL_OK)
        return write_failed(res, rc, "Course not found");
    /* enrollment_count is part of the course and of the popular order:
     * cache the course as it is now, move the lists on. */
    {
        struct el_course c;
        struct el_buf b;

        el_key_course(key, sizeof(key), id);
        el_buf_init(&b, EL_RESPONSE_MAX);
        if (el_store_course_get(req->app->store, id, &c) == EL_OK) {
            if (el_course_to_json(&c, &b) != EL_OK ||
                el_tiered_set(req->app->courses, key, b.data, b.len) != EL_OK)
                el_tiered_invalidate(req->app->courses, key);
            el_course_cleanup(&c);
        } else {
            el_tiered_invalidate(req->app->courses, key);
        }
        el_buf_cleanup(&b);
    }
    el_app_bump_lists(req->app);
    if (el_buf_addf(&res->body, "{\"enrollment_count\":%lld}", (long long)count) != EL_OK)
        return el_response_error(res, 503, "Server out of memory, try again");
    return 200;
}
