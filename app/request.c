/* request.c -- the only file that sees FastCGI types: turns an FCGX_Request
 * into struct el_request, runs the router, writes struct el_response.
 *
 * Connections are owned by the pool (pool.c), not by libfcgi: the pool hands
 * us a connection only when it is readable, we point the worker's
 * FCGX_Request at it, let FCGX_Accept_r read the request (it skips accept()
 * when ipcFd is already set), and take the fd back after FCGX_Finish_r if
 * the web server asked to keep the connection. listen_sock is -1, so if
 * libfcgi ever falls back to accepting (after a connection error) it fails
 * at once instead of blocking a worker in accept().
 *
 * Unread request bodies are drained before FCGX_Finish_r: leftover
 * FCGI_STDIN records on a kept-alive connection would otherwise be read as
 * the start of the next request and break it. */
#include "request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <fcgiapp.h>

#include "app.h"
#include "router.h"
#include "http/json.h"

#define DRAIN_MAX (8u << 20) /* larger unread bodies: close instead */

struct el_worker {
    FCGX_Request fr;
};

struct io {
    FCGX_Request *fr;
    int64_t read;  /* body bytes consumed */
    int eof;
};

struct el_worker *el_worker_new(void)
{
    struct el_worker *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return NULL;
    if (FCGX_InitRequest(&w->fr, -1, 0) != 0) {
        free(w);
        return NULL;
    }
    return w;
}

void el_worker_free(struct el_worker *w)
{
    free(w);
}

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

void el_response_header(struct el_response *res, const char *name, const char *value)
{
    size_t used = strlen(res->extra);

    snprintf(res->extra + used, sizeof(res->extra) - used, "%s: %s\r\n", name, value);
}

int el_request_body(const struct el_request *req, struct el_buf *out)
{
    struct io *io = req->io;
    char chunk[8192];
    int n;

    if (req->content_length > (int64_t)EL_BODY_MAX)
        return EL_ETOOBIG;
    while (!io->eof && (n = FCGX_GetStr(chunk, sizeof(chunk), io->fr->in)) > 0) {
        io->read += n;
        if (io->read > (int64_t)EL_BODY_MAX)
            return EL_ETOOBIG;
        if (el_buf_add(out, chunk, (size_t)n) != EL_OK)
            return EL_ENOMEM;
    }
    io->eof = 1;
    return EL_OK;
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

/* Write status line, headers and body. Returns the status actually sent. */
static int write_response(FCGX_Request *fr, const struct el_request *req, struct el_response *res)
{
    char head[1024];
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
    n = snprintf(head, sizeof(head),
                 "Status: %d %s\r\n"
                 "%s%s%s"
                 "Content-Length: %zu\r\n"
                 "%s%s%s"
                 "%s%s%s"
                 "%s%s%s"
                 "%s\r\n",
                 status, reason(status),
                 len || status >= 400 ? "Content-Type: " : "",
                 len || status >= 400 ? res->content_type : "",
                 len || status >= 400 ? "\r\n" : "",
                 len,
                 res->has_layer ? "X-Cache: " : "", res->has_layer ? el_layer_name(res->layer) : "",
                 res->has_layer ? "\r\n" : "",
                 etag ? "ETag: " : "", etag ? etag : "", etag ? "\r\n" : "",
                 res->allow[0] ? "Allow: " : "", res->allow, res->allow[0] ? "\r\n" : "",
                 res->extra);
    if (n < 0 || (size_t)n >= sizeof(head))
        n = snprintf(head, sizeof(head), "Status: 500 Internal Server Error\r\n\r\n");
    FCGX_PutStr(head, n, fr->out);
    if (len && !head_only)
        FCGX_PutStr(body, (int)len, fr->out);
    return status;
}

static const char *param(FCGX_Request *fr, const char *name)
{
    return FCGX_GetParam(name, fr->envp);
}

/* Consume what is left of the body so the connection can carry the next
 * request; gives up (returns -1) past DRAIN_MAX. */
static int drain(struct io *io)
{
    char chunk[16384];
    int n;

    while (!io->eof) {
        n = FCGX_GetStr(chunk, sizeof(chunk), io->fr->in);
        if (n <= 0) {
            io->eof = 1;
            break;
        }
        io->read += n;
        if (io->read > (int64_t)DRAIN_MAX)
            return -1;
    }
    return FCGX_GetError(io->fr->in) ? -1 : 0;
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

int el_worker_serve(struct el_worker *w, int fd, struct el_app *app)
{
    char safe_method[32], safe_path[512];
    FCGX_Request *fr = &w->fr;
    struct el_request req;
    struct el_response res;
    struct io io;
    const char *cl;
    uint64_t t0;
    int status, keep;

    /* FCGX_Accept_r first finishes the "previous" request; with
     * keepConnection set that never closes the fd we are handing it. */
    fr->keepConnection = 1;
    fr->ipcFd = fd;
    if (FCGX_Accept_r(fr) < 0) {
        /* The peer closed or sent garbage; libfcgi closed the fd. */
        fr->ipcFd = -1;
        return 0;
    }
    t0 = el_now_us();

    memset(&req, 0, sizeof(req));
    io.fr = fr;
    io.read = 0;
    io.eof = 0;
    req.io = &io;
    req.app = app;
    req.method = param(fr, "REQUEST_METHOD");
    req.path = param(fr, "PATH_INFO");
    req.query = param(fr, "QUERY_STRING");
    req.if_none_match = param(fr, "HTTP_IF_NONE_MATCH");
    req.authorization = param(fr, "HTTP_AUTHORIZATION");
    req.content_type = param(fr, "CONTENT_TYPE");
    req.remote_addr = param(fr, "REMOTE_ADDR");
    if (req.method == NULL)
        req.method = "GET";
    if (req.path == NULL || *req.path == '\0')
        req.path = "/";
    if (req.query == NULL)
        req.query = "";
    cl = param(fr, "CONTENT_LENGTH");
    req.content_length = cl && *cl ? strtoll(cl, NULL, 10) : 0;
    if (req.content_length == 0)
        io.eof = 1; /* nothing to read; avoids a blocking read on a GET */

    el_response_init(&res);
    if (req.content_length < 0)
        status = el_response_error(&res, 400, "Invalid Content-Length");
    else if (req.content_length > (int64_t)EL_BODY_MAX)
        status = el_response_error(&res, 413, "Request body too large (limit 1 MiB)");
    else
        status = el_router_dispatch(&req, &res);
    res.status = status;
    status = write_response(fr, &req, &res);
    {
        char route[96];

        if (req.route)
            snprintf(route, sizeof(route), "%s %s", req.method, req.route);
        el_stats_request(req.route ? route : NULL,
                         res.has_layer ? el_layer_name(res.layer) : NULL, el_now_us() - t0);
    }

    log_safe(safe_method, sizeof(safe_method), req.method);
    log_safe(safe_path, sizeof(safe_path), req.path);
    fprintf(stderr, "%s %s %d %s %lluus\n", safe_method, safe_path, status,
            res.has_layer ? el_layer_name(res.layer) : "-",
            (unsigned long long)(el_now_us() - t0));

    /* Keep the connection only if the body is fully consumed. */
    if (req.content_length > (int64_t)DRAIN_MAX || drain(&io) != 0)
        fr->keepConnection = 0;
    el_response_cleanup(&res);
    FCGX_Finish_r(fr);
    keep = fr->ipcFd >= 0;
    fr->ipcFd = -1;
    return keep;
}
