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
#include "course.h"
#include "handlers.h"
#include "key.h"
#include "store.h"

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

int handle_course_get(const struct el_request *req, struct el_response *res)
{
    char id[EL_OID_HEX], key[EL_KEY_MAX];
    struct el_blob *blob;
    enum el_layer layer;
    struct course_load l;
    int rc;

    if (!el_oid_valid(req->params[0]))
        return el_response_error(res, 422, "Invalid course id: must be a 24-character hex ObjectId");
    /* One spelling per id, so upper- and lowercase share a cache entry. */
    for (int i = 0; i < 24; i++)
        id[i] = (char)tolower((unsigned char)req->params[0][i]);
    id[24] = '\0';
    el_key_course(key, sizeof(key), id);

    l.store = req->app->store;
    l.id = id;
    rc = el_tiered_get(req->app->courses, key, load_course, &l, &blob, &layer);
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
    struct list_load l;
    char digest[41], key[EL_KEY_MAX];
    struct el_blob *blob;
    enum el_layer layer;
    int rc;

    if (el_course_query_parse(req->query, &q, &err) != EL_OK)
        return el_response_error(res, 422, err.msg[0] ? err.msg : "Invalid query parameters");
    el_course_query_digest(&q, digest);
    el_key_courses_list(key, sizeof(key), atomic_load(&req->app->list_generation), digest);

    l.store = req->app->store;
    l.q = &q;
    rc = el_tiered_get(req->app->course_lists, key, load_list, &l, &blob, &layer);
    if (rc != EL_OK)
        return unavailable(res, rc);
    el_response_blob(res, blob, layer);
    el_blob_unref(blob);
    return res->status;
}
