/* fcgi.h -- elearn's FastCGI 1.0 framing: bytes from the web server in,
 * complete requests out; responses in, records out. The only module that
 * knows FastCGI records (their wire layout and constants come from
 * libfcgi-dev's <fastcgi.h>, included by fcgi.c alone).
 *
 * The parser is pure and incremental: it owns no socket, makes no system
 * call, and accepts the byte stream of one connection split at any point
 * (one byte at a time works). Everything a peer sends is checked against the
 * FastCGI 1.0 specification and explicit bounds before anything is kept:
 *
 *  - one request at a time per connection (we answer FCGI_MPXS_CONNS=0): a
 *    BEGIN_REQUEST while another request is still arriving is refused with
 *    FCGI_CANT_MPX_CONN; roles other than RESPONDER with FCGI_UNKNOWN_ROLE;
 *  - FCGI_GET_VALUES is answered with exactly the variables we know, each
 *    once, whatever the peer asked and however often; any other management
 *    record with FCGI_UNKNOWN_TYPE. Nothing is allocated for either;
 *  - ABORT_REQUEST ends the request that is arriving (END_REQUEST sent);
 *  - a request is complete at its empty FCGI_STDIN record, never before, so
 *    a body without CONTENT_LENGTH (Apache's chunked uploads) is read to its
 *    end and a record split across writes changes nothing;
 *  - PARAMS are kept up to params_max bytes and params_count pairs (over:
 *    the request is answered 431); STDIN up to body_max bytes (over: 413),
 *    and discarded up to drain_max (past that the 413 is answered at once
 *    and the connection closed);
 *  - every other violation (bad version, records for the null id that must
 *    name a request, a second BEGIN for the active id, STDIN before the
 *    params end, a malformed name-value pair ...) closes this connection
 *    only: el_fcgi_feed returns EL_FCGI_CLOSE.
 *
 * Output (management replies, responses) is appended to a caller-owned
 * struct el_buf; the parser stops consuming once that buffer holds out_high
 * bytes, so a peer that floods management records and never reads its
 * replies costs bounded memory. */
#ifndef EL_FCGI_H
#define EL_FCGI_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

struct el_fcgi_limits {
    size_t params_max;   /* PARAMS bytes of one request (default 64 KiB) */
    size_t params_count; /* name-value pairs of one request (default 512) */
    size_t body_max;     /* STDIN bytes kept (default 1 MiB); over -> 413 */
    size_t drain_max;    /* STDIN bytes read and dropped for a 413 (default 8 MiB) */
    size_t out_high;     /* stop consuming while out holds this much (64 KiB) */
    unsigned max_conns;  /* what GET_VALUES says for FCGI_MAX_CONNS/_REQS */
};

/* One connection's parser (opaque). */
struct el_fcgi;

/* One complete request, owned by whoever el_fcgi_feed handed it to. */
struct el_fcgi_req;

enum {
    EL_FCGI_MORE = 0,    /* everything usable consumed; feed more bytes */
    EL_FCGI_REQUEST = 1, /* *req is a complete request (the caller's now) */
    EL_FCGI_CLOSE = -1   /* flush out, then close the connection */
};

/* A parser with lim (NULL, or zero fields: the defaults). NULL when out of
 * memory. el_fcgi_free(NULL) is a no-op; it frees a request still arriving. */
struct el_fcgi *el_fcgi_new(const struct el_fcgi_limits *lim);
void el_fcgi_free(struct el_fcgi *f);

/* Consume bytes from in[0..len): *used says how many. Replies to management
 * records go to out. Returns EL_FCGI_REQUEST as soon as one request is
 * complete (the bytes after it are left unconsumed: the caller answers it
 * before feeding the next one, so pipelined requests are answered in
 * order), EL_FCGI_MORE when it needs more bytes (or out is at out_high),
 * EL_FCGI_CLOSE on a protocol violation or when the connection must close
 * after what is in out; once CLOSE is returned every later call returns it
 * again. */
int el_fcgi_feed(struct el_fcgi *f, const void *in, size_t len, size_t *used, struct el_buf *out,
                 struct el_fcgi_req **req);

/* 1 while a request has begun arriving but is not complete (for the
 * caller's request deadline), else 0. */
int el_fcgi_busy(const struct el_fcgi *f);

/* The value of parameter name (first occurrence; NUL-terminated, never
 * contains a NUL), or NULL. Valid until el_fcgi_req_free. */
const char *el_fcgi_param(const struct el_fcgi_req *rq, const char *name);

/* Call fn for every parameter, in the order received. */
void el_fcgi_params(const struct el_fcgi_req *rq,
                    void (*fn)(void *arg, const char *name, const char *value), void *arg);

/* The request body (STDIN) as received: *len bytes, NUL-terminated. */
const char *el_fcgi_body(const struct el_fcgi_req *rq, size_t *len);

/* 0, or the HTTP status the framing already decided (413 body too large,
 * 431 parameters too large, 400 a parameter holding a NUL byte or a body
 * that does not match CONTENT_LENGTH): answer it without routing. */
int el_fcgi_status(const struct el_fcgi_req *rq);

/* Did the web server ask to keep the connection (FCGI_KEEP_CONN)? */
int el_fcgi_keep(const struct el_fcgi_req *rq);

void el_fcgi_req_free(struct el_fcgi_req *rq);

/* Append the response to rq -- head (CGI headers ending in a blank line)
 * then body, as FCGI_STDOUT records -- and END_REQUEST to out. EL_OK, or
 * EL_ETOOBIG / EL_ENOMEM when out cannot hold it (out is then left as it
 * was). */
int el_fcgi_reply(struct el_buf *out, const struct el_fcgi_req *rq, const void *head, size_t hlen,
                  const void *body, size_t blen);

#endif /* EL_FCGI_H */
