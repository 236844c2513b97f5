/* handlers.h -- every request handler, one file per resource. Each returns
 * the HTTP status and fills res; none sees FastCGI, hiredis or libmongoc. */
#ifndef EL_HANDLERS_H
#define EL_HANDLERS_H

#include "request.h"

/* app/courses.c */
int handle_course_get(const struct el_request *req, struct el_response *res);
int handle_course_list(const struct el_request *req, struct el_response *res);

#endif /* EL_HANDLERS_H */
