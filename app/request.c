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
#include "http/json.h"

/* What req->io points to: the body as fcgi.c received it. */
struct io {
    const char *body;
    size_t len;
};

void el_response_init(struct el_response *res)
{
    memset(res, 0, sizeof(*res));
    el_buf_init(&res->body, EL_RESPONSE_MAX);
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
    /* Details are our own sentences, but may quote client input: escaped. */
    if (el_buf_adds(&res->body, "{\"detail\":") != EL_OK ||
        el_json_add_string(&res->body, detail) != EL_OK || el_buf_adds(&res->body, "}") != EL_OK)
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

/* Copies, not snprintf: every response gets at least one header (its
 * X-Request-Id), and the format engine cost more than the rest of an L1
 * hit's own work. A line that does not fit whole is left out, never cut. */
void el_response_header(struct el_response *res, const char *name, const char *value)
{
    size_t used = strlen(res->extra), nl = strlen(name), vl = strlen(value);
    char *p = res->extra + used;

    if (nl + vl + 4 >= sizeof(res->extra) - used)
        return;
    memcpy(p, name, nl);
    memcpy(p + nl, ": ", 2);
    memcpy(p + nl + 2, value, vl);
    memcpy(p + nl + 2 + vl, "\r\n", 3); /* with the terminator */
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
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 431:
        return "Request Header Fields Too Large";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 503:
        return "Service Unavailable";
    default:
        return status < 500 ? "Client Error" : "Internal Server Error";
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

    if (now_ms - prev >= LOG_TICK_MS && atomic_compare_exchange_strong(&last, &prev, now_ms))
        el_log_flush();
}

/* What one pass over the parameters collects: the handlers' fields, and
 * what the access log and the client address need. A request carries a few
 * dozen parameters; looking each name up separately would walk them all
 * every time (most of an L1 hit's parsing cost). */
struct params {
    struct el_request *req;
    const char *rid[3]; /* REQUEST_ID, HTTP_X_REQUEST_ID, UNIQUE_ID */
    const char *forwarded_for;
};

/* First occurrence wins, as el_fcgi_param would have it. */
static void take(const char **slot, const char *value)
{
    if (*slot == NULL)
        *slot = value;
}

static void take_param(void *arg, const char *name, const char *value)
{
    struct params *pp = arg;
    struct el_request *req = pp->req;

    switch (name[0]) {
    case 'R':
        if (strcmp(name, "REQUEST_METHOD") == 0)
            take(&req->method, value);
        else if (strcmp(name, "REMOTE_ADDR") == 0)
            take(&req->remote_addr, value);
        else if (strcmp(name, "REQUEST_ID") == 0)
            take(&pp->rid[0], value);
        break;
    case 'P':
        if (strcmp(name, "PATH_INFO") == 0)
            take(&req->path, value);
        break;
    case 'Q':
        if (strcmp(name, "QUERY_STRING") == 0)
            take(&req->query, value);
        break;
    case 'H':
        if (strcmp(name, "HTTP_IF_NONE_MATCH") == 0)
            take(&req->if_none_match, value);
        else if (strcmp(name, "HTTP_AUTHORIZATION") == 0)
            take(&req->authorization, value);
        else if (strcmp(name, "HTTP_X_REQUEST_ID") == 0)
            take(&pp->rid[1], value);
        else if (strcmp(name, "HTTP_X_FORWARDED_FOR") == 0)
            take(&pp->forwarded_for, value);
        break;
    case 'C':
        if (strcmp(name, "CONTENT_TYPE") == 0)
            take(&req->content_type, value);
        break;
    case 'U':
        if (strcmp(name, "UNIQUE_ID") == 0)
            take(&pp->rid[2], value);
        break;
    default:
        break;
    }
}

/* The request id the web server passed: nginx's $request_id (REQUEST_ID in
 * the shipped conf), a balancer's X-Request-Id, Apache's mod_unique_id. */
static const char *given_request_id(const struct params *pp)
{
    for (size_t i = 0; i < sizeof(pp->rid) / sizeof(pp->rid[0]); i++)
        if (pp->rid[i] != NULL)
            return pp->rid[i];
    return NULL;
}

int el_request_serve(struct el_app *app, struct el_fcgi_req *rq, int fast, struct el_buf *out)
{
    struct el_request req;
    struct params pp = {0};
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
    pp.req = &req;
    el_fcgi_params(rq, take_param, &pp);
    if (req.method == NULL)
        req.method = "GET";
    if (req.path == NULL || *req.path == '\0')
        req.path = "/";
    if (req.query == NULL)
        req.query = "";
    /* The client: REMOTE_ADDR, or X-Forwarded-For from a trusted proxy. */
    el_forwarded_client(req.remote_addr, pp.forwarded_for, client, sizeof(client));
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
    el_log_request_id(given_request_id(&pp), rid);
    el_response_header(&res, "X-Request-Id", rid);
    status = write_response(out, rq, &req, &res, &sent);
    if (status > 0) {
        char route[96];
        const char *layer = res.has_layer ? el_layer_name(res.layer) : NULL;

        if (req.route) {
            size_t ml = strlen(req.method), rl = strlen(req.route);

            if (ml + rl + 2 > sizeof(route))
                ml = rl = 0; /* cannot happen: methods are short, routes ours */
            memcpy(route, req.method, ml);
            route[ml] = ' ';
            memcpy(route + ml + 1, req.route, rl);
            route[ml + 1 + rl] = '\0';
        }
        el_stats_response(req.route ? route : NULL, layer, status, el_now_us() - t0);
        el_log_access(&(struct el_access){wall, client, req.method, req.path, req.query, status,
                                          layer, el_now_us() - t0, sent, rid});
    }
    el_response_cleanup(&res);
    return status > 0 ? 1 : -1;
}
