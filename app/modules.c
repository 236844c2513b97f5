/* modules.c -- POST /courses/{id}/modules and DELETE
 * /courses/{id}/modules/{module_id} (issue 12); PATCH of one module is in
 * courses.c. Same rules as every course write: its instructor or an admin,
 * the store first, then the course cached as written (or dropped, for a
 * draft) and the lists moved on. The course's duration_minutes follows its
 * modules (the module rule, store.h). */
#include <string.h>

#include "app.h"
#include "course_int.h"
#include "handlers.h"
#include "store/store.h"

static int module_write_failed(struct el_response *res, int rc, const char *what)
{
    if (rc == EL_ETOOBIG)
        return el_response_error(res, 422, "modules: a course has at most 50 modules");
    return el_course_write_failed(res, rc, what);
}

int handle_module_add(const struct el_request *req, struct el_response *res)
{
    struct el_principal p;
    struct el_module m;
    struct el_course c;
    struct el_err err = {0};
    struct el_buf body;
    char id[EL_OID_HEX];
    int status, rc;

    if ((status = el_require_auth(req, res, &p)) != 0)
        return status;
    if ((status = el_course_id_param(res, req->params[0], id, "course id")) != 0)
        return status;
    el_buf_init(&body, EL_BODY_MAX);
    if ((status = el_request_body_or_reply(req, res, &body)) != 0)
        goto out;
    if (el_module_create_parse(body.data ? body.data : "", body.len, &m, &err) != EL_OK) {
        status = el_response_error(res, 422, err.msg);
        goto out;
    }
    if ((status = el_course_may_edit(req, res, &p, id, NULL)) == 0) {
        rc = el_store_module_add(req->app->store, id, &m, el_wall_ms(), &c);
        if (rc == EL_OK) {
            status = el_course_written(req, res, &c, 201, EL_LISTS_DURATION);
            el_course_cleanup(&c);
        } else {
            status = module_write_failed(res, rc, "Course not found");
        }
    }
    el_module_cleanup(&m);
out:
    el_buf_cleanup(&body);
    return status;
}

int handle_module_delete(const struct el_request *req, struct el_response *res)
{
    struct el_principal p;
    struct el_course c;
    char id[EL_OID_HEX], mid[EL_OID_HEX];
    int status, rc;

    if ((status = el_require_auth(req, res, &p)) != 0)
        return status;
    if ((status = el_course_id_param(res, req->params[0], id, "course id")) != 0 ||
        (status = el_course_id_param(res, req->params[1], mid, "module id")) != 0)
        return status;
    if ((status = el_course_may_edit(req, res, &p, id, NULL)) != 0)
        return status;
    rc = el_store_module_delete(req->app->store, id, mid, el_wall_ms(), &c);
    if (rc != EL_OK)
        return module_write_failed(res, rc, "Course or module not found");
    status = el_course_written(req, res, &c, 200, EL_LISTS_DURATION);
    el_course_cleanup(&c);
    return status;
}
