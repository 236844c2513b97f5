/* learning.c -- a learner's side of courses (issue 12): DELETE
 * /courses/{id}/enroll, GET /users/me/enrollments ("My learning") and
 * PUT /courses/{id}/rating. Enrolling is in courses.c.
 *
 * "My learning" is per user, so it is read from the store and never
 * cached (X-Cache: BYPASS, Cache-Control: private): every enroll or
 * unenroll shows on the caller's next read. The counts these writes change
 * are part of the course and of the popular and top_rated lists, so the
 * course is dropped from the caches and the list generation moved on. */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "course_int.h"
#include "handlers.h"
#include "store/store.h"

int handle_course_unenroll(const struct el_request *req, struct el_response *res)
{
    struct el_principal p;
    char id[EL_OID_HEX];
    int64_t count = 0;
    int status, rc;

    if ((status = el_require_auth(req, res, &p)) != 0)
        return status;
    if ((status = el_course_id_param(res, req->params[0], id, "course id")) != 0)
        return status;
    rc = el_store_unenroll(req->app->store, id, p.id, &count);
    if (rc == EL_ENOTFOUND)
        return el_response_error(res, 404, "Not enrolled in this course");
    if (rc != EL_OK)
        return el_course_write_failed(res, rc, "Course not found");
    el_bus_batch_begin(req->app->bus); /* one announcement per write */
    el_course_recache(req->app, id);
    el_app_lists_changed(req->app, EL_LISTS_POPULAR); /* enrollment_count */
    el_app_announced(req->app);
    if (el_buf_addf(&res->body, "{\"enrollment_count\":%lld}", (long long)count) != EL_OK)
        return el_response_error(res, 503, "Server out of memory, try again");
    return 200;
}

int handle_my_enrollments(const struct el_request *req, struct el_response *res)
{
    struct el_principal p;
    struct el_enrollment_page page;
    struct el_err err = {0};
    int status, rc, n, size;

    if ((status = el_require_auth(req, res, &p)) != 0)
        return status;
    if (el_page_query_parse(req->query, &n, &size, &err) != EL_OK)
        return el_response_error(res, 422, err.msg);
    rc = el_store_enrollments(req->app->store, p.id, n, size, &page);
    if (rc != EL_OK)
        return el_course_unavailable(res, rc);
    rc = el_enrollment_page_to_json(&page, n, size, &res->body);
    el_enrollment_page_cleanup(&page);
    if (rc != EL_OK)
        return el_response_error(res, 503, "Server out of memory, try again");
    el_response_header(res, "X-Cache", "BYPASS");
    el_response_header(res, "Cache-Control", "private, no-store");
    return 200;
}

int handle_course_rate(const struct el_request *req, struct el_response *res)
{
    struct el_principal p;
    struct el_course c;
    struct el_err err = {0};
    struct el_buf body;
    char id[EL_OID_HEX];
    int status, rc, stars = 0;

    if ((status = el_require_auth(req, res, &p)) != 0)
        return status;
    if ((status = el_course_id_param(res, req->params[0], id, "course id")) != 0)
        return status;
    el_buf_init(&body, EL_BODY_MAX);
    if ((status = el_request_body_or_reply(req, res, &body)) != 0)
        goto out;
    if (el_rating_parse(body.data ? body.data : "", body.len, &stars, &err) != EL_OK) {
        status = el_response_error(res, 422, err.msg);
        goto out;
    }
    if ((status = el_course_require_public(req, res, id)) != 0)
        goto out;
    rc = el_store_rate(req->app->store, id, p.id, stars, el_wall_ms(), &c);
    if (rc == EL_EFORBIDDEN) {
        status = el_response_error(res, 403, "Only learners enrolled in this course can rate it");
        goto out;
    }
    if (rc != EL_OK) {
        status = el_course_write_failed(res, rc, "Course not found");
        goto out;
    }
    status = el_course_written(req, res, &c, 200, EL_LISTS_TOP_RATED);
    el_course_cleanup(&c);
out:
    el_buf_cleanup(&body);
    return status;
}
