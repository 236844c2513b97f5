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

/* The event thread's attempt: route req and run the route's try-fast
 * handler, if it has one. A try-fast handler runs on an event thread, so it
 * must not block (no Redis, no store, no argon2, no waiting on a lock held
 * across I/O): it answers when everything it needs is local (an L1 hit, a
 * validation error) and returns the status, or returns 0 -- "needs a
 * worker" -- having set nothing on res, and the request goes to a worker,
 * which runs the ordinary handler from the start. 404 and 405 are answered
 * here. Returns the status, or 0. */
int el_router_try_fast(struct el_request *req, struct el_response *res);

#endif /* EL_ROUTER_H */
