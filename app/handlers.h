/* handlers.h -- every request handler, one file per resource. Each returns
 * the HTTP status and fills res; none sees FastCGI, hiredis or libmongoc. */
#ifndef EL_HANDLERS_H
#define EL_HANDLERS_H

#include "auth/auth.h"
#include "request.h"

/* app/courses.c */
int handle_course_get(const struct el_request *req, struct el_response *res);
int handle_course_list(const struct el_request *req, struct el_response *res);
int handle_course_create(const struct el_request *req, struct el_response *res);
int handle_course_patch(const struct el_request *req, struct el_response *res);
int handle_module_patch(const struct el_request *req, struct el_response *res);
int handle_course_delete(const struct el_request *req, struct el_response *res);
int handle_course_enroll(const struct el_request *req, struct el_response *res);
/* try-fast handlers (router.h): L1 hits on the event thread */
int fast_course_get(const struct el_request *req, struct el_response *res);
int fast_course_list(const struct el_request *req, struct el_response *res);
int fast_auth_me(const struct el_request *req, struct el_response *res);

/* app/modules.c */
int handle_module_add(const struct el_request *req, struct el_response *res);
int handle_module_delete(const struct el_request *req, struct el_response *res);

/* app/learning.c */
int handle_course_unenroll(const struct el_request *req, struct el_response *res);
int handle_my_enrollments(const struct el_request *req, struct el_response *res);
int handle_course_rate(const struct el_request *req, struct el_response *res);

/* app/openapi.c */
int handle_openapi(const struct el_request *req, struct el_response *res);

/* app/auth.c */
int handle_auth_register(const struct el_request *req, struct el_response *res);
int handle_auth_login(const struct el_request *req, struct el_response *res);
int handle_auth_refresh(const struct el_request *req, struct el_response *res);
int handle_auth_logout(const struct el_request *req, struct el_response *res);
int handle_auth_me(const struct el_request *req, struct el_response *res);

/* app/cache_admin.c (admin only) */
int handle_cache_stats(const struct el_request *req, struct el_response *res);
int handle_cache_invalidate(const struct el_request *req, struct el_response *res);

/* app/health.c (no authentication) */
int handle_health(const struct el_request *req, struct el_response *res);
/* Append ",\"redis_topology\":{...},\"revocations\":{...}" (health.c). */
int el_app_auth_state_json(struct el_app *app, struct el_buf *b);
int handle_metrics(const struct el_request *req, struct el_response *res);

/* Authenticate the request's bearer token into *p. Returns 0, or the status
 * already set on res: 401 (with WWW-Authenticate: Bearer) or 503. */
int el_require_auth(const struct el_request *req, struct el_response *res, struct el_principal *p);

#endif /* EL_HANDLERS_H */
