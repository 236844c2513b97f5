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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "app.h"
#include "fcgi.h"
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
                          const struct el_request *req, struct el_response *res)
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
    if (el_fcgi_reply(out, rq, head, (size_t)n, body, len && !head_only ? len : 0) != EL_OK)
        return -1;
    return status;
}

/* Copy s for the request log with control bytes, spaces and backslashes
 * escaped: a client-chosen path must not be able to forge log lines. */
static void log_safe(char *out, size_t n, const char *s)
{
    size_t o = 0;

    for (; *s && o + 5 < n; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x21 || c == 0x7f || c == '\\')
            o += (size_t)snprintf(out + o, n - o, "\\x%02x", c);
        else
            out[o++] = (char)c;
    }
    out[o] = '\0';
}

/* The access log. Each thread collects its lines here and
 * el_request_log_flush() writes them with one write(2): an event thread
 * answering L1 hits pays one system call for many lines instead of one
 * per request (on this path a write costs about as much as the rest of
 * the request). Like nginx's buffered access_log: lines reach the file
 * within LOG_FLUSH_MS. */
#define LOG_FLUSH_MS 100
#define LOG_FLUSH_BYTES 8192
static __thread char log_pending[16384];
static __thread size_t log_len;
static __thread uint64_t log_since; /* ms: the oldest pending line */

void el_request_log_tick(uint64_t now_ms)
{
    if (log_len >= LOG_FLUSH_BYTES || (log_len && now_ms - log_since >= LOG_FLUSH_MS))
        el_request_log_flush();
}

void el_request_log_flush(void)
{
    size_t off = 0;

    while (off < log_len) {
        ssize_t n = write(STDERR_FILENO, log_pending + off, log_len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* the log cannot take it: drop, never stop serving */
        off += (size_t)n;
    }
    log_len = 0;
}

/* One line per request, written here and nowhere else:
 * "<METHOD> <PATH> <STATUS> <LAYER|-> <MICROS>us" */
static void access_log(const struct el_request *req, const struct el_response *res, int status,
                       uint64_t us)
{
    char safe_method[32], safe_path[512], line[640];
    int n;

    log_safe(safe_method, sizeof(safe_method), req->method);
    log_safe(safe_path, sizeof(safe_path), req->path);
    n = snprintf(line, sizeof(line), "%s %s %d %s %lluus\n", safe_method, safe_path, status,
                 res->has_layer ? el_layer_name(res->layer) : "-", (unsigned long long)us);
    if (n <= 0)
        return;
    if ((size_t)n >= sizeof(line))
        n = (int)sizeof(line) - 1; /* cut; still one line (ends in \n below) */
    line[n - 1] = '\n';
    if (log_len + (size_t)n > sizeof(log_pending))
        el_request_log_flush();
    if (log_len == 0)
        log_since = el_now_ms();
    memcpy(log_pending + log_len, line, (size_t)n);
    log_len += (size_t)n;
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
    uint64_t t0 = el_now_us();
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
    status = write_response(out, rq, &req, &res);
    if (status > 0) {
        char route[96];

        if (req.route)
            snprintf(route, sizeof(route), "%s %s", req.method, req.route);
        el_stats_request(req.route ? route : NULL,
                         res.has_layer ? el_layer_name(res.layer) : NULL, el_now_us() - t0);
        access_log(&req, &res, status, el_now_us() - t0);
    }
    el_response_cleanup(&res);
    return status > 0 ? 1 : -1;
}
