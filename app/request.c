/* request.c -- from a complete FastCGI request (fcgi.c) to struct
 * el_request, through the router, to the CGI head and body of struct
 * el_response, framed by fcgi.c into the connection's output buffer.
 *
 * The same function serves on an event thread (fast: only what needs no
 * blocking call, e.g. an L1 hit) and on a worker (everything): a request the
 * event thread cannot answer is handed to a worker untouched, and the worker
 * starts over, so a half-served request never crosses threads. */
#include "request.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "app.h"
#include "fcgi.h"
#include "http/forwarded.h"
#include "obs/log.h"
#include "router.h"

/* What req->io points to: the body as fcgi.c received it. */
struct io {
    const char *body;
    size_t len;
};

void el_response_init(struct el_response *res)
{
    memset(res, 0, sizeof(*res));
    el_buf_init(&res->body, 4u << 20);
    res->content_type = "application/json";
}

void el_response_cleanup(struct el_response *res)
{
    el_buf_cleanup(&res->body);
    el_blob_unref(res->blob);
    res->blob = NULL;
}

int el_response_error(struct el_response *res, int status, const char *detail)
{
    el_buf_reset(&res->body);
    if (el_buf_adds(&res->body, "{\"detail\":\"") != EL_OK)
        goto fail;
    /* Details are our own sentences, but may quote client input: escape. */
    for (const unsigned char *p = (const unsigned char *)detail; *p; p++) {
        int rc;
        if (*p == '"' || *p == '\\')
            rc = el_buf_addf(&res->body, "\\%c", *p);
        else if (*p < 0x20)
            rc = el_buf_addf(&res->body, "\\u%04x", *p);
        else
            rc = el_buf_add(&res->body, p, 1);
        if (rc != EL_OK)
            goto fail;
    }
    if (el_buf_adds(&res->body, "\"}") != EL_OK)
        goto fail;
    res->status = status;
    return status;
fail:
    el_buf_reset(&res->body);
    res->status = 500;
    return 500;
}

int el_response_blob(struct el_response *res, struct el_blob *blob, enum el_layer layer)
{
    el_blob_unref(res->blob);
    res->blob = el_blob_ref(blob);
    res->layer = layer;
    res->has_layer = 1;
    res->status = blob->status;
    return blob->status;
}

void el_response_header(struct el_response *res, const char *name, const char *value)
{
    size_t used = strlen(res->extra);

    snprintf(res->extra + used, sizeof(res->extra) - used, "%s: %s\r\n", name, value);
}

int el_request_body(const struct el_request *req, struct el_buf *out)
{
    const struct io *io = req->io;

    if (io->len > EL_BODY_MAX)
        return EL_ETOOBIG;
    return el_buf_add(out, io->body, io->len);
}

int el_request_body_or_reply(const struct el_request *req, struct el_response *res,
                             struct el_buf *out)
{
    int rc = el_request_body(req, out);

    if (rc == EL_ETOOBIG)
        return el_response_error(res, 413, "Request body too large (limit 1 MiB)");
    if (rc != EL_OK)
        return el_response_error(res, 503, "Server out of memory, try again");
    return 0;
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 503: return "Service Unavailable";
    default: return status < 500 ? "Client Error" : "Internal Server Error";
    }
}

/* Does an If-None-Match value (a list of tags, or "*") match etag? Weak
 * comparison, as RFC 9110 asks for If-None-Match. */
static int etag_matches(const char *inm, const char *etag)
{
    size_t elen = strlen(etag);
    const char *p = inm;

    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        if (*p == '*')
            return 1;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        if (strncmp(p, etag, elen) == 0 && (p[elen] == '\0' || p[elen] == ',' || p[elen] == ' '))
            return 1;
        while (*p && *p != ',')
            p++;
    }
    return 0;
}

#define HEAD_MAX 1024

/* The CGI head being built: appends past HEAD_MAX are counted, not written,
 * so an overflow is seen once at the end. */
struct head {
    char *buf;
    size_t len;
};

static void head_add(struct head *h, const char *s)
{
    size_t n = strlen(s);

    if (h->len < HEAD_MAX && n < HEAD_MAX - h->len)
        memcpy(h->buf + h->len, s, n);
    h->len += n;
}

/* v in decimal, in buf (at least 21 bytes); returns buf. */
static const char *utoa(unsigned long long v, char *buf)
{
    char tmp[24];
    size_t n = 0, i;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
    return buf;
}

/* Frame status line, headers and body into out. Returns the status actually
 * sent, or -1 when out cannot take it. */
static int write_response(struct el_buf *out, const struct el_fcgi_req *rq,
                          const struct el_request *req, struct el_response *res, uint64_t *sent)
{
    char head[HEAD_MAX];
    const char *body = res->blob ? res->blob->data : res->body.data;
    size_t len = res->blob ? res->blob->len : res->body.len;
    const char *etag = res->blob ? res->blob->etag : NULL;
    int status = res->status ? res->status : 500;
    int n, head_only;

    if (status == 500 && !res->blob && res->body.len == 0) {
        el_response_error(res, 500, "Internal server error");
        body = res->body.data;
        len = res->body.len;
    }
    if (etag && status == 200 && req->if_none_match && etag_matches(req->if_none_match, etag)) {
        status = 304;
        len = 0;
    }
    if (status == 204 || status == 304)
        len = 0;
    /* HEAD: the headers GET would send, Content-Length included, no body. */
    head_only = strcmp(req->method, "HEAD") == 0;
    /* Appended piece by piece rather than by one snprintf: this runs for
     * every response, and the format engine was most of its cost. */
    {
        struct head h = {head, 0};
        char num[24];

        head_add(&h, "Status: ");
        head_add(&h, utoa((unsigned long long)status, num));
        head_add(&h, " ");
        head_add(&h, reason(status));
        head_add(&h, "\r\n");
        if (len || status >= 400) {
            head_add(&h, "Content-Type: ");
            head_add(&h, res->content_type);
            head_add(&h, "\r\n");
        }
        head_add(&h, "Content-Length: ");
        head_add(&h, utoa(len, num));
        head_add(&h, "\r\n");
        if (res->has_layer) {
            head_add(&h, "X-Cache: ");
            head_add(&h, el_layer_name(res->layer));
            head_add(&h, "\r\n");
        }
        if (etag) {
            head_add(&h, "ETag: ");
            head_add(&h, etag);
            head_add(&h, "\r\n");
        }
        if (res->allow[0]) {
            head_add(&h, "Allow: ");
            head_add(&h, res->allow);
            head_add(&h, "\r\n");
        }
        head_add(&h, res->extra);
        head_add(&h, "\r\n");
        if (h.len >= HEAD_MAX) {
            h.len = 0;
            head_add(&h, "Status: 500 Internal Server Error\r\n\r\n");
        }
        n = (int)h.len;
    }
    *sent = len && !head_only ? len : 0;
    if (el_fcgi_reply(out, rq, head, (size_t)n, body, (size_t)*sent) != EL_OK)
        return -1;
    return status;
}

/* Access lines are formatted and batched by obs/log.c (one line per
 * request: time, client, method, target, status, layer, duration, bytes,
 * request id). The batch is written at 32 KiB, by the housekeeping thread
 * every 250 ms, and by el_request_log_tick() at most every LOG_TICK_MS:
 * on the L1-hit path a write(2) costs about as much as the rest of the
 * request, so many requests share one. */
#define LOG_TICK_MS 100

void el_request_log_flush(void)
{
    el_log_flush();
}

void el_request_log_tick(uint64_t now_ms)
{
    static _Atomic uint64_t last;
    uint64_t prev = atomic_load_explicit(&last, memory_order_relaxed);

    if (now_ms - prev >= LOG_TICK_MS &&
        atomic_compare_exchange_strong(&last, &prev, now_ms))
        el_log_flush();
}

/* The request id the web server passed: nginx's $request_id (REQUEST_ID in
 * the shipped conf), a balancer's X-Request-Id, Apache's mod_unique_id. */
static const char *given_request_id(const struct el_fcgi_req *rq)
{
    static const char *const names[] = {"REQUEST_ID", "HTTP_X_REQUEST_ID", "UNIQUE_ID"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *v = el_fcgi_param(rq, names[i]);

        if (v != NULL)
            return v;
    }
    return NULL;
}

/* One pass over the parameters for the ones handlers see (the first
 * occurrence of each wins): a request carries a few dozen, and looking each
 * name up separately would walk them all every time. */
static void take_param(void *arg, const char *name, const char *value)
{
    struct el_request *req = arg;
    const char **slot = NULL;

    switch (name[0]) {
    case 'R':
        if (strcmp(name, "REQUEST_METHOD") == 0)
            slot = &req->method;
        else if (strcmp(name, "REMOTE_ADDR") == 0)
            slot = &req->remote_addr;
        break;
    case 'P':
        if (strcmp(name, "PATH_INFO") == 0)
            slot = &req->path;
        break;
    case 'Q':
        if (strcmp(name, "QUERY_STRING") == 0)
            slot = &req->query;
        break;
    case 'H':
        if (strcmp(name, "HTTP_IF_NONE_MATCH") == 0)
            slot = &req->if_none_match;
        else if (strcmp(name, "HTTP_AUTHORIZATION") == 0)
            slot = &req->authorization;
        break;
    case 'C':
        if (strcmp(name, "CONTENT_TYPE") == 0)
            slot = &req->content_type;
        break;
    default:
        break;
    }
    if (slot && *slot == NULL)
        *slot = value;
}

int el_request_serve(struct el_app *app, struct el_fcgi_req *rq, int fast, struct el_buf *out)
{
    struct el_request req;
    struct el_response res;
    struct io io;
    uint64_t t0 = el_now_us(), sent = 0;
    int64_t wall = el_wall_ms();
    char client[64], rid[EL_LOG_ID_LEN + 1];
    int status, framing = el_fcgi_status(rq);

    memset(&req, 0, sizeof(req));
    io.body = el_fcgi_body(rq, &io.len);
    req.io = &io;
    req.app = app;
    el_fcgi_params(rq, take_param, &req);
    if (req.method == NULL)
        req.method = "GET";
    if (req.path == NULL || *req.path == '\0')
        req.path = "/";
    if (req.query == NULL)
        req.query = "";
    /* The client: REMOTE_ADDR, or X-Forwarded-For from a trusted proxy. */
    el_forwarded_client(req.remote_addr, el_fcgi_param(rq, "HTTP_X_FORWARDED_FOR"), client,
                        sizeof(client));
    req.remote_addr = client;
    /* fcgi.c checked CONTENT_LENGTH against the body (400 otherwise); a body
     * without one (Apache's chunked uploads) counts as its length. */
    req.content_length = (int64_t)io.len;

    el_response_init(&res);
    if (framing == 413)
        status = el_response_error(&res, 413, "Request body too large (limit 1 MiB)");
    else if (framing == 431)
        status = el_response_error(&res, 431, "Request header fields too large");
    else if (framing)
        status = el_response_error(&res, 400, "Malformed request");
    else if (fast)
        status = el_router_try_fast(&req, &res);
    else
        status = el_router_dispatch(&req, &res);
    if (status == 0) {
        el_response_cleanup(&res);
        return 0; /* a worker's job */
    }
    res.status = status;
    el_log_request_id(given_request_id(rq), rid);
    el_response_header(&res, "X-Request-Id", rid);
    status = write_response(out, rq, &req, &res, &sent);
    if (status > 0) {
        char route[96];
        const char *layer = res.has_layer ? el_layer_name(res.layer) : NULL;

        if (req.route)
            snprintf(route, sizeof(route), "%s %s", req.method, req.route);
        el_stats_response(req.route ? route : NULL, layer, status, el_now_us() - t0);
        el_log_access(&(struct el_access){wall, client, req.method, req.path, req.query, status,
                                          layer, el_now_us() - t0, sent, rid});
    }
    el_response_cleanup(&res);
    return status > 0 ? 1 : -1;
}
