/* request.h -- the request and response as handlers see them.
 *
 * Handlers never touch FastCGI: fcgi.c turns records into a complete
 * request (parameters and body), request.c makes struct el_request of it,
 * calls the router, and turns struct el_response into the CGI head and body
 * that fcgi.c frames. A handler returns the HTTP status and fills the
 * response; request.c frees everything request-scoped after writing it. */
#ifndef EL_REQUEST_H
#define EL_REQUEST_H

#include <stdint.h>

#include "core/blob.h"
#include "core/buf.h"
#include "obs/stats.h"

#define EL_MAX_PARAMS 4
#define EL_BODY_MAX (1u << 20) /* request bodies over 1 MiB get 413 */

struct el_app;

struct el_request {
    const char *method;                /* REQUEST_METHOD */
    const char *path;                  /* PATH_INFO, "/" when empty */
    const char *query;                 /* QUERY_STRING, "" when absent */
    const char *if_none_match;         /* HTTP_IF_NONE_MATCH or NULL */
    const char *authorization;         /* HTTP_AUTHORIZATION or NULL */
    const char *content_type;          /* CONTENT_TYPE or NULL */
    const char *remote_addr;           /* REMOTE_ADDR or NULL */
    int64_t content_length;            /* CONTENT_LENGTH, 0 when absent */
    const char *route;                 /* matched pattern (router), NULL when none */
    const char *params[EL_MAX_PARAMS]; /* {captures} of the route, in order */
    int nparams;
    struct el_app *app;
    void *io; /* request.c's private stream state */
};

/* Read the whole request body (at most EL_BODY_MAX bytes) into out.
 * EL_ETOOBIG when it is larger (the caller answers 413). */
int el_request_body(const struct el_request *req, struct el_buf *out);

struct el_response;

/* el_request_body, answering for the handler when it fails: returns 0, or
 * the status it set on res (413 over 1 MiB, 503 out of memory). */
int el_request_body_or_reply(const struct el_request *req, struct el_response *res,
                             struct el_buf *out);

struct el_response {
    int status;
    struct el_buf body;       /* a built body (errors, writes) ... */
    struct el_blob *blob;     /* ... or a cached one (a reference) */
    const char *content_type; /* default application/json */
    enum el_layer layer;      /* X-Cache, when has_layer */
    int has_layer;
    char allow[64];  /* Allow header for 405, "" when none */
    char extra[256]; /* further header lines, each ending "\r\n" */
};

void el_response_init(struct el_response *res);
void el_response_cleanup(struct el_response *res);

/* Set a JSON {"detail": detail} body and return status, so a handler can
 * `return el_response_error(res, 422, "...");`. */
int el_response_error(struct el_response *res, int status, const char *detail);

/* Serve a cached blob (the response takes its own reference) with its
 * status, ETag and X-Cache; returns the blob's status. */
int el_response_blob(struct el_response *res, struct el_blob *blob, enum el_layer layer);

/* Append one header line ("Name: value") to res->extra. */
void el_response_header(struct el_response *res, const char *name, const char *value);

/* The front's side (pool.c): answer one complete request from the web
 * server and append the framed response to out.
 *
 * fast != 0: on an event thread, which must never block -- only routes with
 * a try-fast handler (router.h) that can answer without a blocking call are
 * served; the function returns 0 and leaves out alone when the request
 * needs a worker. fast == 0: on a worker, anything goes.
 *
 * Returns 1 when the response is in out, 0 (fast only) when a worker must
 * serve it, -1 when out cannot take the response (close the connection).
 * Logs the request (one access-log line) and counts it. */
struct el_fcgi_req;
struct el_buf;
int el_request_serve(struct el_app *app, struct el_fcgi_req *rq, int fast, struct el_buf *out);

/* Write the batched access-log lines now (obs/log.c; at a stop). */
void el_request_log_flush(void);

/* After each epoll round and each worker request: write the batched lines
 * when the last such write (by any thread) is 100 ms old, so busy threads
 * share one write(2) among many requests. */
void el_request_log_tick(uint64_t now_ms);

#endif /* EL_REQUEST_H */
