/* router.h -- one routing table, dispatch on REQUEST_METHOD and PATH_INFO.
 *
 * Patterns are literal segments and {name} captures ("/courses/{id}"). A
 * path that matches no pattern is 404; a path that matches a pattern only
 * under other methods is 405 with Allow listing them. */
#ifndef EL_ROUTER_H
#define EL_ROUTER_H

#include "request.h"

typedef int (*el_handler_fn)(const struct el_request *req, struct el_response *res);

/* Route req (fills req->params) and run the handler; returns the status. */
int el_router_dispatch(struct el_request *req, struct el_response *res);

#endif /* EL_ROUTER_H */
