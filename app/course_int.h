/* course_int.h -- what the course handler files share (app/courses.c,
 * app/modules.c, app/learning.c): id parameters, answers for failed store
 * calls, the edit permission and caching a written course. */
#ifndef EL_COURSE_INT_H
#define EL_COURSE_INT_H

#include <stddef.h>

#include "auth/auth.h"
#include "model/course.h"
#include "request.h"

/* Lowercase a validated id parameter into out. 0, or 422 set on res. */
int el_course_id_param(struct el_response *res, const char *raw, char out[EL_OID_HEX],
                       const char *what);

/* 503 for a failed read (store down, out of memory). */
int el_course_unavailable(struct el_response *res, int rc);

/* A failed write: 404 (with detail what), 409, else 503. */
int el_course_write_failed(struct el_response *res, int rc, const char *what);

/* The caller may change course id: its instructor or an admin. 0, or the
 * status set on res (403, 404, 503). *nmodules (if not NULL) gets the
 * course's module count. */
int el_course_may_edit(const struct el_request *req, struct el_response *res,
                       const struct el_principal *p, const char *id, size_t *nmodules);

/* Serialise c into res and cache it (a draft is dropped from the caches
 * instead); returns status. */
int el_course_respond(const struct el_request *req, struct el_response *res,
                      const struct el_course *c, int status);

/* After a committed course write: el_course_respond, with the lists it
 * moves (EL_LISTS_*, 0 for none) in the same bus announcement. */
int el_course_written(const struct el_request *req, struct el_response *res,
                      const struct el_course *c, int status, unsigned lists);

/* Cache course id as the store has it now, with its revision (counts
 * changed: enroll, unenroll, rate); the version guard keeps concurrent
 * writers' copies in commit order. */
void el_course_recache(struct el_app *app, const char *id);

/* 0 when course id is published (read through the caches), else 404 (or
 * 503) set on res: drafts cannot be enrolled in or rated. */
int el_course_require_public(const struct el_request *req, struct el_response *res, const char *id);

#endif /* EL_COURSE_INT_H */
