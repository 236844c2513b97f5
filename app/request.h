/* request.h -- the request and response as handlers see them.
 *
 * Handlers never touch FastCGI types: request.c (the only file that includes
 * fcgiapp.h) parses the FastCGI parameters into struct el_request, calls the
 * router, and writes struct el_response back. A handler returns the HTTP
 * status and fills the response; request.c frees everything request-scoped
 * after writing it. */
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
    const char *method;        /* REQUEST_METHOD */
    const char *path;          /* PATH_INFO, "/" when empty */
    const char *query;         /* QUERY_STRING, "" when absent */
    const char *if_none_match; /* HTTP_IF_NONE_MATCH or NULL */
    const char *authorization; /* HTTP_AUTHORIZATION or NULL */
    const char *content_type;  /* CONTENT_TYPE or NULL */
    const char *remote_addr;   /* REMOTE_ADDR or NULL */
    int64_t content_length;    /* CONTENT_LENGTH, 0 when absent */
    const char *route;         /* matched pattern (router), NULL when none */
    const char *params[EL_MAX_PARAMS]; /* {captures} of the route, in order */
    int nparams;
    struct el_app *app;
    void *io;                  /* request.c's private stream state */
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
    struct el_buf body;          /* a built body (errors, writes) ... */
    struct el_blob *blob;        /* ... or a cached one (a reference) */
    const char *content_type;    /* default application/json */
    enum el_layer layer;         /* X-Cache, when has_layer */
    int has_layer;
    char allow[64];              /* Allow header for 405, "" when none */
    char extra[256];             /* further header lines, each ending "\r\n" */
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



/* Per-thread FastCGI state (opaque; request.c owns the FastCGI types). */
struct el_worker;

struct el_worker *el_worker_new(void);
void el_worker_free(struct el_worker *w);

/* Read one request from the web-server connection fd, dispatch it and write
 * the response. Returns 1 when the connection stays open for another request
 * (the caller still owns fd and should wait for it to become readable), 0
 * when it was closed (by the peer, an error, or because the server did not
 * ask to keep it). Blocks only while the request is being read or answered. */
int el_worker_serve(struct el_worker *w, int fd, struct el_app *app);
#endif /* EL_REQUEST_H */
