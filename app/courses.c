/* courses.c -- course reads through the tiered cache.
 *
 * GET /courses/{id} and GET /courses: validate, build the key with the key
 * module, and let the tiered cache serve it. The store is reached only from
 * the loaders below, by the single-flight leader of a miss, and the JSON is
 * made there once and cached as ready bytes.
 *
 * Drafts (published false; issue 12): the shared caches only ever hold what
 * anyone may see. The course loader answers 404 for a draft, and a write
 * that leaves a course a draft drops it from the caches instead of caching
 * it, so no cached copy can leak one. Its instructor and admins read a
 * draft -- and their own lists with drafts -- straight from the store
 * (X-Cache: BYPASS, Cache-Control: private): few readers, and always their
 * latest write. Publishing caches the published document at once, which
 * the bus makes every process see. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "course_int.h"
#include "model/course.h"
#include "handlers.h"
#include "cache/key.h"
#include "model/oid.h"
#include "store/store.h"

struct course_load {
    struct el_store *store;
    const char *id;
};

/* Loader for one course: 200 + JSON, 404, or a negative store error; the
 * version is the course's revision (the version guard, tiered.h) -- a
 * draft's too, so its not-found is not replaced by an older published
 * copy. */
static int load_course(void *arg, struct el_buf *body, uint64_t *version)
{
    struct course_load *l = arg;
    struct el_course c;
    int rc;

    rc = el_store_course_get(l->store, l->id, &c);
    if (rc == EL_ENOTFOUND)
        return 404;
    if (rc != EL_OK)
        return rc;
    *version = c.rev;
    if (!c.published) { /* a draft is "not found" to the shared caches */
        el_course_cleanup(&c);
        return 404;
    }
    rc = el_course_to_json(&c, body);
    el_course_cleanup(&c);
    return rc == EL_OK ? 200 : rc;
}

/* Turn a failed tiered read into the client's answer. */
int el_course_unavailable(struct el_response *res, int rc)
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
int el_course_id_param(struct el_response *res, const char *raw, char out[EL_OID_HEX],
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

/* The caller, when the request carries a valid bearer token: 1 and *p
 * filled, else 0 (anonymous, an invalid token or auth unavailable). */
static int caller(const struct el_request *req, struct el_principal *p)
{
    struct el_err err = {0};

    return req->authorization != NULL &&
           el_auth_authenticate(req->app->auth, req->authorization, (int64_t)time(NULL), p, &err) ==
               EL_OK;
}

static int is_admin(const struct el_principal *p)
{
    return strcmp(p->role, "admin") == 0;
}

/* Mark a response that must not be cached anywhere (drafts, own lists). */
static void private_answer(struct el_response *res)
{
    el_response_header(res, "X-Cache", "BYPASS");
    el_response_header(res, "Cache-Control", "private, no-store");
}

/* A course the caches answered 404 for may be a draft the caller may see:
 * its instructor's or any, for an admin. Anyone else keeps the 404. */
static int draft_get(const struct el_request *req, struct el_response *res, const char *id)
{
    struct el_principal p;
    struct el_course c;
    int rc, mine;

    if (!caller(req, &p) || (!is_admin(&p) && strcmp(p.role, "instructor") != 0))
        return res->status;
    rc = el_store_course_get(req->app->store, id, &c);
    if (rc == EL_ENOTFOUND)
        return res->status;
    if (rc != EL_OK)
        return el_course_unavailable(res, rc);
    mine = is_admin(&p) || strcmp(c.instructor_id, p.id) == 0;
    if (mine && !c.published) {
        el_response_cleanup(res);
        el_response_init(res);
        if (el_course_to_json(&c, &res->body) != EL_OK) {
            el_course_cleanup(&c);
            return el_response_error(res, 503, "Server out of memory, try again");
        }
        private_answer(res);
        res->status = 200;
    }
    el_course_cleanup(&c);
    return res->status;
}

int handle_course_get(const struct el_request *req, struct el_response *res)
{
    char id[EL_OID_HEX];
    struct el_blob *blob;
    enum el_layer layer;
    int status, rc;

    if ((status = el_course_id_param(res, req->params[0], id, "course id")) != 0)
        return status;
    rc = el_app_course_read(req->app, id, &blob, &layer);
    if (rc != EL_OK)
        return el_course_unavailable(res, rc);
    el_response_blob(res, blob, layer);
    el_blob_unref(blob);
    if (res->status == 404 && req->authorization != NULL)
        return draft_get(req, res, id);
    return res->status;
}

/* instructor_id=me|<id>: that instructor (or an admin) gets the list with
 * drafts, read from the store (0 is never returned then: the status is);
 * anyone else gets the public list of that instructor (0: the caller goes
 * on through the cache with q's public filter). */
static int own_list(const struct el_request *req, struct el_response *res,
                    struct el_course_query *q)
{
    struct el_principal p;
    struct el_course_page page;
    int status, rc;

    if (q->instructor_me || req->authorization != NULL) {
        if ((status = el_require_auth(req, res, &p)) != 0)
            return status;
    } else {
        return 0;
    }
    if (q->instructor_me) {
        memcpy(q->instructor_id, p.id, sizeof(q->instructor_id));
        q->instructor_me = false;
    }
    if (!is_admin(&p) && strcmp(q->instructor_id, p.id) != 0)
        return 0;
    q->published_only = false;
    rc = el_store_course_list(req->app->store, q, &page);
    if (rc != EL_OK)
        return el_course_unavailable(res, rc);
    rc = el_course_page_to_json(&page, q, &res->body);
    el_course_page_cleanup(&page);
    if (rc != EL_OK)
        return el_response_error(res, 503, "Server out of memory, try again");
    private_answer(res);
    return 200;
}

/* Try-fast handlers (router.h): the same answers as the handlers below
 * when they can be given from L1 alone, on the event thread. */
int fast_course_get(const struct el_request *req, struct el_response *res)
{
    char id[EL_OID_HEX], key[EL_KEY_MAX];
    struct el_blob *blob;
    int status;

    if ((status = el_course_id_param(res, req->params[0], id, "course id")) != 0)
        return status;
    el_key_course(key, sizeof(key), id);
    if ((blob = el_tiered_peek(req->app->courses, key)) == NULL)
        return 0;
    /* A cached 404 may be a draft its instructor or an admin may read:
     * with a token, the full handler decides. */
    if (blob->status != 200 && req->authorization != NULL) {
        el_blob_unref(blob);
        return 0;
    }
    el_response_blob(res, blob, EL_LAYER_L1);
    el_blob_unref(blob);
    return res->status;
}

int fast_course_list(const struct el_request *req, struct el_response *res)
{
    struct el_course_query q;
    struct el_err err = {0};
    struct el_blob *blob;

    if (el_course_query_parse(req->query, &q, &err) != EL_OK)
        return el_response_error(res, 422, err.msg[0] ? err.msg : "Invalid query parameters");
    /* One instructor's list may be the caller's own, with drafts: the full
     * handler decides who sees what. */
    if (q.instructor_me || q.instructor_id[0])
        return 0;
    if ((blob = el_app_list_peek(req->app, &q)) == NULL)
        return 0;
    el_response_blob(res, blob, EL_LAYER_L1);
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
    if (q.instructor_me || q.instructor_id[0]) {
        int status = own_list(req, res, &q);

        if (status != 0)
            return status;
    }
    rc = el_app_list_read(req->app, &q, &blob, &layer);
    if (rc != EL_OK)
        return el_course_unavailable(res, rc);
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

int el_course_write_failed(struct el_response *res, int rc, const char *what)
{
    if (rc == EL_ENOTFOUND)
        return el_response_error(res, 404, what);
    if (rc == EL_ECONFLICT)
        return el_response_error(res, 409, "Conflict");
    return el_response_error(res, 503, "Database unavailable, try again shortly");
}

/* Which lists a course patch can change (app/lists.c). */
static unsigned patch_changes(unsigned fields)
{
    unsigned what = 0;

    if (fields & (EL_CF_CATEGORY | EL_CF_DIFFICULTY | EL_CF_PUBLISHED))
        what |= EL_LISTS_MEMBERS;
    if (fields & (EL_CF_TITLE | EL_CF_DESCRIPTION | EL_CF_TAGS))
        what |= EL_LISTS_SEARCH;
    if (fields & EL_CF_DURATION)
        what |= EL_LISTS_DURATION;
    return what;
}

/* Serialise c into the response and cache it as the current version -- a
 * published one; a draft is dropped from every cache instead (file
 * header). */
int el_course_respond(const struct el_request *req, struct el_response *res,
                      const struct el_course *c, int status)
{
    char key[EL_KEY_MAX];

    if (el_course_to_json(c, &res->body) != EL_OK)
        return el_response_error(res, 503, "Server out of memory, try again");
    el_key_course(key, sizeof(key), c->id);
    /* A draft is cached as a not-found of its revision: a read that fetched
     * the published copy before this write cannot bring it back. */
    if (!c->published
            ? el_tiered_set_not_found(req->app->courses, key, c->rev) != EL_OK
            : el_tiered_set(req->app->courses, key, res->body.data, res->body.len, c->rev) != EL_OK)
        el_tiered_invalidate(req->app->courses, key);
    el_app_summary_written(req->app, c);
    return status;
}

/* The caller may change course id: its instructor or an admin. Returns 0,
 * or the status set on res (404, 403, 503). *nmodules (when not NULL) gets
 * how many modules the course has now. */
int el_course_may_edit(const struct el_request *req, struct el_response *res,
                       const struct el_principal *p, const char *id, size_t *nmodules)
{
    struct el_course c;
    int rc, own;

    if (!is_admin(p) && strcmp(p->role, "instructor") != 0)
        return forbidden(res);
    if (is_admin(p) && nmodules == NULL)
        return 0;
    rc = el_store_course_get(req->app->store, id, &c);
    if (rc != EL_OK)
        return el_course_write_failed(res, rc, "Course not found");
    own = is_admin(p) || strcmp(c.instructor_id, p->id) == 0;
    if (nmodules)
        *nmodules = c.nmodules;
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
        status = el_course_written(req, res, &c, 201, EL_LISTS_MEMBERS);
    } else {
        status = el_course_write_failed(res, rc, "Course not found");
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
    if ((status = el_course_id_param(res, req->params[0], id, "course id")) != 0)
        return status;
    el_buf_init(&body, EL_BODY_MAX);
    if ((status = el_request_body_or_reply(req, res, &body)) != 0)
        goto out;
    if (el_course_patch_parse(body.data ? body.data : "", body.len, &patch, &err) != EL_OK) {
        status = el_response_error(res, 422, err.msg);
        goto out;
    }
    if ((status = el_course_may_edit(req, res, &p, id, NULL)) == 0) {
        rc = el_store_course_update(req->app->store, id, &patch, el_wall_ms(), &c);
        if (rc == EL_OK) {
            status = el_course_written(req, res, &c, 200, patch_changes(patch.fields));
            el_course_cleanup(&c);
        } else {
            status = el_course_write_failed(res, rc, "Course not found");
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
    if ((status = el_course_id_param(res, req->params[0], id, "course id")) != 0 ||
        (status = el_course_id_param(res, req->params[1], mid, "module id")) != 0)
        return status;
    el_buf_init(&body, EL_BODY_MAX);
    if ((status = el_request_body_or_reply(req, res, &body)) != 0)
        goto out;
    if (el_module_patch_parse(body.data ? body.data : "", body.len, &patch, &err) != EL_OK) {
        status = el_response_error(res, 422, err.msg);
        goto out;
    }
    if ((status = el_course_may_edit(req, res, &p, id, NULL)) == 0) {
        rc = el_store_module_update(req->app->store, id, mid, &patch, el_wall_ms(), &c);
        if (rc == EL_OK) {
            /* Only a module's duration reaches a list order (the course's
             * duration_minutes is their sum); its summary is rewritten in
             * el_course_respond. */
            status = el_course_written(req, res, &c, 200,
                                       patch.fields & EL_MF_DURATION ? EL_LISTS_DURATION : 0);
            el_course_cleanup(&c);
        } else {
            status = el_course_write_failed(res, rc, "Course or module not found");
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
    if ((status = el_course_id_param(res, req->params[0], id, "course id")) != 0)
        return status;
    rc = el_store_course_delete(req->app->store, id);
    if (rc != EL_OK)
        return el_course_write_failed(res, rc, "Course not found");
    /* A tombstone, not a DEL: a read that fetched the course before the
     * delete cannot bring it back into any cache (version guard). */
    el_key_course(key, sizeof(key), id);
    el_bus_batch_begin(req->app->bus);
    if (el_tiered_set_deleted(req->app->courses, key) != EL_OK)
        el_tiered_invalidate(req->app->courses, key);
    el_app_summary_deleted(req->app, id);
    el_app_lists_changed(req->app, EL_LISTS_MEMBERS);
    el_app_announced(req->app);
    return 204;
}

int el_course_written(const struct el_request *req, struct el_response *res,
                      const struct el_course *c, int status, unsigned lists)
{
    el_bus_batch_begin(req->app->bus); /* one announcement per write */
    el_app_lists_changed(req->app, lists);
    status = el_course_respond(req, res, c, status);
    el_app_announced(req->app);
    return status;
}

void el_course_recache(struct el_app *app, const char *id)
{
    char key[EL_KEY_MAX];
    struct el_course c;
    struct el_buf b;

    el_key_course(key, sizeof(key), id);
    el_buf_init(&b, EL_RESPONSE_MAX);
    if (el_store_course_get(app->store, id, &c) == EL_OK) {
        if (!c.published ? el_tiered_set_not_found(app->courses, key, c.rev) != EL_OK
                         : el_course_to_json(&c, &b) != EL_OK ||
                               el_tiered_set(app->courses, key, b.data, b.len, c.rev) != EL_OK)
            el_tiered_invalidate(app->courses, key);
        el_app_summary_written(app, &c);
        el_course_cleanup(&c);
    } else {
        el_tiered_invalidate(app->courses, key);
        el_app_summary_invalidate(app, id);
    }
    el_buf_cleanup(&b);
}

int el_course_require_public(const struct el_request *req, struct el_response *res, const char *id)
{
    struct el_blob *blob;
    enum el_layer layer;
    int rc = el_app_course_read(req->app, id, &blob, &layer), found;

    if (rc != EL_OK)
        return el_course_unavailable(res, rc);
    found = blob->status == 200;
    el_blob_unref(blob);
    return found ? 0 : el_response_error(res, 404, "Course not found");
}

int handle_course_enroll(const struct el_request *req, struct el_response *res)
{
    struct el_principal p;
    char id[EL_OID_HEX];
    int64_t count = 0;
    int status, rc;

    if ((status = el_require_auth(req, res, &p)) != 0)
        return status;
    if ((status = el_course_id_param(res, req->params[0], id, "course id")) != 0)
        return status;
    if ((status = el_course_require_public(req, res, id)) != 0)
        return status;
    rc = el_store_enroll(req->app->store, id, p.id, &count);
    if (rc == EL_ECONFLICT)
        return el_response_error(res, 409, "Already enrolled in this course");
    if (rc != EL_OK)
        return el_course_write_failed(res, rc, "Course not found");
    /* enrollment_count is part of the course and of the popular order:
     * cache the course as it is now, move the popular lists on. */
    el_bus_batch_begin(req->app->bus);
    el_course_recache(req->app, id);
    el_app_lists_changed(req->app, EL_LISTS_POPULAR);
    el_app_announced(req->app);
    if (el_buf_addf(&res->body, "{\"enrollment_count\":%lld}", (long long)count) != EL_OK)
        return el_response_error(res, 503, "Server out of memory, try again");
    return 200;
}
