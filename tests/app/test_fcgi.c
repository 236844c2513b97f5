/* test_fcgi.c -- app/fcgi.c: the FastCGI parser and writer, fed the byte
 * sequences the issue-8 attacks used, split at every boundary. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fastcgi.h>

#include "fcgi.h"
#include "core/el.h"
#include "unit.h"

/* ---- building records ---- */

struct wire {
    unsigned char b[1 << 16];
    size_t n;
};

static void rec(struct wire *w, int type, unsigned id, const void *c, size_t clen, size_t plen)
{
    unsigned char *h = w->b + w->n;

    h[0] = 1;
    h[1] = (unsigned char)type;
    h[2] = (unsigned char)(id >> 8);
    h[3] = (unsigned char)id;
    h[4] = (unsigned char)(clen >> 8);
    h[5] = (unsigned char)clen;
    h[6] = (unsigned char)plen;
    h[7] = 0;
    w->n += 8;
    memcpy(w->b + w->n, c, clen);
    w->n += clen;
    memset(w->b + w->n, 0, plen);
    w->n += plen;
}

static void begin(struct wire *w, unsigned id, int role, int keep)
{
    unsigned char b[8] = {0, (unsigned char)role, (unsigned char)(keep ? 1 : 0), 0, 0, 0, 0, 0};
    rec(w, FCGI_BEGIN_REQUEST, id, b, 8, 0);
}

static size_t nv(unsigned char *p, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value), o = 0;

    p[o++] = (unsigned char)nl;
    p[o++] = (unsigned char)vl;
    memcpy(p + o, name, nl);
    o += nl;
    memcpy(p + o, value, vl);
    return o + vl;
}

/* A whole GET request with id, optional body (and CONTENT_LENGTH if cl). */
static void request(struct wire *w, unsigned id, const char *path, const char *body, int cl)
{
    unsigned char p[512];
    size_t n = 0;
    char len[24];

    begin(w, id, FCGI_RESPONDER, 1);
    n += nv(p + n, "REQUEST_METHOD", body ? "POST" : "GET");
    n += nv(p + n, "PATH_INFO", path);
    if (body && cl) {
        snprintf(len, sizeof(len), "%zu", strlen(body));
        n += nv(p + n, "CONTENT_LENGTH", len);
    }
    rec(w, FCGI_PARAMS, id, p, n, (8 - n % 8) % 8);
    rec(w, FCGI_PARAMS, id, "", 0, 0);
    if (body && *body)
        rec(w, FCGI_STDIN, id, body, strlen(body), 3);
    rec(w, FCGI_STDIN, id, "", 0, 0);
}

/* Feed w in pieces of `step` bytes (0: all at once) until a request or a
 * close; returns the code, *used the bytes consumed in total. */
static int feed(struct el_fcgi *f, const struct wire *w, size_t step, struct el_buf *out,
                struct el_fcgi_req **rq, size_t *used)
{
    size_t off = 0;
    int rc = EL_FCGI_MORE;

    *rq = NULL;
    while (off < w->n) {
        size_t n = step && w->n - off > step ? step : w->n - off, u;
        rc = el_fcgi_feed(f, w->b + off, n, &u, out, rq);
        off += u;
        if (rc != EL_FCGI_MORE || u < n)
            break;
    }
    *used = off;
    return rc;
}

static void test_request_any_split(void)
{
    struct wire w = {0};

    request(&w, 1, "/health", NULL, 0);
    for (size_t step = 0; step <= 9; step++) {
        struct el_fcgi *f = el_fcgi_new(NULL);
        struct el_buf out;
        struct el_fcgi_req *rq;
        size_t used, blen;
        el_buf_init(&out, 1 << 20);
        CU_ASSERT_EQUAL_FATAL(feed(f, &w, step, &out, &rq, &used), EL_FCGI_REQUEST);
        CU_ASSERT_EQUAL(used, w.n);
        CU_ASSERT_STRING_EQUAL(el_fcgi_param(rq, "PATH_INFO"), "/health");
        CU_ASSERT_STRING_EQUAL(el_fcgi_param(rq, "REQUEST_METHOD"), "GET");
        CU_ASSERT_PTR_NULL(el_fcgi_param(rq, "CONTENT_LENGTH"));
        CU_ASSERT_EQUAL(el_fcgi_status(rq), 0);
        CU_ASSERT_EQUAL(el_fcgi_keep(rq), 1);
        el_fcgi_body(rq, &blen);
        CU_ASSERT_EQUAL(blen, 0);
        CU_ASSERT_EQUAL(out.len, 0);
        CU_ASSERT_EQUAL(el_fcgi_busy(f), 0);
        el_fcgi_req_free(rq);
        el_buf_cleanup(&out);
        el_fcgi_free(f);
    }
}

/* The request is not complete before its empty STDIN record, even when the
 * params say there is no body (Apache sends that record separately). */
static void test_waits_for_empty_stdin(void)
{
    struct wire w = {0};
    struct el_fcgi *f = el_fcgi_new(NULL);
    struct el_buf out;
    struct el_fcgi_req *rq;
    size_t used;

    el_buf_init(&out, 1 << 20);
    request(&w, 1, "/x", NULL, 0);
    CU_ASSERT_EQUAL(el_fcgi_feed(f, w.b, w.n - 8, &used, &out, &rq), EL_FCGI_MORE);
    CU_ASSERT_EQUAL(used, w.n - 8);
    CU_ASSERT_EQUAL(el_fcgi_busy(f), 1);
    CU_ASSERT_EQUAL(el_fcgi_feed(f, w.b + w.n - 8, 8, &used, &out, &rq), EL_FCGI_REQUEST);
    el_fcgi_req_free(rq);
    el_buf_cleanup(&out);
    el_fcgi_free(f);
}

static void test_body_with_and_without_length(void)
{
    for (int cl = 0; cl < 2; cl++) {
        struct wire w = {0};
        struct el_fcgi *f = el_fcgi_new(NULL);
        struct el_buf out;
        struct el_fcgi_req *rq;
        size_t used, blen;
        const char *b;

        el_buf_init(&out, 1 << 20);
        request(&w, 7, "/auth/login", "{\"email\":\"a@b.c\"}", cl);
        CU_ASSERT_EQUAL_FATAL(feed(f, &w, 3, &out, &rq, &used), EL_FCGI_REQUEST);
        b = el_fcgi_body(rq, &blen);
        CU_ASSERT_EQUAL(blen, 17);
        CU_ASSERT_STRING_EQUAL(b, "{\"email\":\"a@b.c\"}");
        CU_ASSERT_EQUAL(el_fcgi_status(rq), 0);
        el_fcgi_req_free(rq);
        el_buf_cleanup(&out);
        el_fcgi_free(f);
    }
}

static void test_pipelined_in_order(void)
{
    struct wire w = {0};
    struct el_fcgi *f = el_fcgi_new(NULL);
    struct el_buf out;
    struct el_fcgi_req *rq;
    size_t used, off = 0;
    char path[16];

    el_buf_init(&out, 1 << 20);
    for (int i = 0; i < 20; i++) {
        snprintf(path, sizeof(path), "/p%d", i);
        request(&w, 1, path, NULL, 0);
    }
    for (int i = 0; i < 20; i++) {
        CU_ASSERT_EQUAL_FATAL(el_fcgi_feed(f, w.b + off, w.n - off, &used, &out, &rq),
                              EL_FCGI_REQUEST);
        off += used;
        snprintf(path, sizeof(path), "/p%d", i);
        CU_ASSERT_STRING_EQUAL(el_fcgi_param(rq, "PATH_INFO"), path);
        el_fcgi_req_free(rq);
    }
    CU_ASSERT_EQUAL(off, w.n);
    el_buf_cleanup(&out);
    el_fcgi_free(f);
}

/* The libfcgi crash: name and value lengths of 0x7ffffffe. */
static void test_huge_lengths_close(void)
{
    static const unsigned char pair[8] = {0xff, 0xff, 0xff, 0xfe, 0xff, 0xff, 0xff, 0xfe};
    struct wire w = {0};
    struct el_fcgi *f = el_fcgi_new(NULL);
    struct el_buf out;
    struct el_fcgi_req *rq;
    size_t used;

    el_buf_init(&out, 1 << 20);
    begin(&w, 1, FCGI_RESPONDER, 1);
    rec(&w, FCGI_PARAMS, 1, pair, 8, 0);
    rec(&w, FCGI_PARAMS, 1, "", 0, 0);
    CU_ASSERT_EQUAL(feed(f, &w, 0, &out, &rq, &used), EL_FCGI_CLOSE);
    CU_ASSERT_PTR_NULL(rq);
    CU_ASSERT_EQUAL(el_fcgi_feed(f, "x", 1, &used, &out, &rq), EL_FCGI_CLOSE);
    el_buf_cleanup(&out);
    el_fcgi_free(f);
}

/* GET_VALUES naming FCGI_MPXS_CONNS four times: one answer, exactly. */
static void test_get_values_exact(void)
{
    static const unsigned char want[] = {1,   FCGI_GET_VALUES_RESULT,
                                         0,   0,
                                         0,   18,
                                         6,   0, /* header */
                                         15,  1,
                                         'F', 'C',
                                         'G', 'I',
                                         '_', 'M',
                                         'P', 'X',
                                         'S', '_',
                                         'C', 'O',
                                         'N', 'N',
                                         'S', '0',
                                         0,   0,
                                         0,   0,
                                         0,   0};
    unsigned char body[128];
    size_t n = 0, used;
    struct wire w = {0};
    struct el_fcgi *f = el_fcgi_new(NULL);
    struct el_buf out;
    struct el_fcgi_req *rq;

    el_buf_init(&out, 1 << 20);
    for (int i = 0; i < 4; i++)
        n += nv(body + n, "FCGI_MPXS_CONNS", "");
    rec(&w, FCGI_GET_VALUES, 0, body, n, 0);
    CU_ASSERT_EQUAL(feed(f, &w, 0, &out, &rq, &used), EL_FCGI_MORE);
    CU_ASSERT_EQUAL(used, w.n);
    CU_ASSERT_EQUAL_FATAL(out.len, sizeof(want));
    CU_ASSERT(memcmp(out.data, want, sizeof(want)) == 0);
    el_buf_cleanup(&out);
    el_fcgi_free(f);
}

static void test_management_and_roles(void)
{
    struct wire w = {0};
    struct el_fcgi *f = el_fcgi_new(NULL);
    struct el_buf out;
    struct el_fcgi_req *rq;
    size_t used;
    const unsigned char *o;

    el_buf_init(&out, 1 << 20);
    rec(&w, 42, 0, "abc", 3, 5);       /* unknown management type */
    begin(&w, 3, FCGI_AUTHORIZER, 1);  /* refused role */
    rec(&w, FCGI_PARAMS, 3, "", 0, 0); /* ignored: not active */
    CU_ASSERT_EQUAL(feed(f, &w, 1, &out, &rq, &used), EL_FCGI_MORE);
    CU_ASSERT_EQUAL_FATAL(out.len, 32);
    o = (const unsigned char *)out.data;
    CU_ASSERT_EQUAL(o[1], FCGI_UNKNOWN_TYPE);
    CU_ASSERT_EQUAL(o[8], 42);
    CU_ASSERT_EQUAL(o[16 + 1], FCGI_END_REQUEST);
    CU_ASSERT_EQUAL(o[16 + 3], 3);
    CU_ASSERT_EQUAL(o[16 + 8 + 4], FCGI_UNKNOWN_ROLE);
    el_buf_cleanup(&out);
    el_fcgi_free(f);
}

static void test_multiplexing_and_abort(void)
{
    struct wire w = {0};
    struct el_fcgi *f = el_fcgi_new(NULL);
    struct el_buf out;
    struct el_fcgi_req *rq;
    size_t used;
    const unsigned char *o;

    el_buf_init(&out, 1 << 20);
    begin(&w, 1, FCGI_RESPONDER, 1);
    begin(&w, 2, FCGI_RESPONDER, 1);          /* while 1 arrives: CANT_MPX_CONN */
    rec(&w, FCGI_ABORT_REQUEST, 1, "", 0, 0); /* 1 ends */
    request(&w, 4, "/after", NULL, 0);
    CU_ASSERT_EQUAL_FATAL(feed(f, &w, 0, &out, &rq, &used), EL_FCGI_REQUEST);
    CU_ASSERT_STRING_EQUAL(el_fcgi_param(rq, "PATH_INFO"), "/after");
    CU_ASSERT_EQUAL_FATAL(out.len, 32);
    o = (const unsigned char *)out.data;
    CU_ASSERT_EQUAL(o[3], 2);
    CU_ASSERT_EQUAL(o[12], FCGI_CANT_MPX_CONN);
    CU_ASSERT_EQUAL(o[16 + 3], 1);
    CU_ASSERT_EQUAL(o[16 + 12], FCGI_REQUEST_COMPLETE);
    el_fcgi_req_free(rq);
    el_buf_cleanup(&out);
    el_fcgi_free(f);
}

static void test_violations_close(void)
{
    static const int cases = 5;
    for (int k = 0; k < cases; k++) {
        struct wire w = {0};
        struct el_fcgi *f = el_fcgi_new(NULL);
        struct el_buf out;
        struct el_fcgi_req *rq;
        size_t used;

        el_buf_init(&out, 1 << 20);
        switch (k) {
        case 0: /* version 2 */
            begin(&w, 1, FCGI_RESPONDER, 1);
            w.b[0] = 2;
            break;
        case 1: /* STDIN before the params end */
            begin(&w, 1, FCGI_RESPONDER, 1);
            rec(&w, FCGI_STDIN, 1, "x", 1, 0);
            break;
        case 2: /* BEGIN with a null id */
            begin(&w, 0, FCGI_RESPONDER, 1);
            break;
        case 3: /* a second BEGIN for the active id */
            begin(&w, 1, FCGI_RESPONDER, 1);
            begin(&w, 1, FCGI_RESPONDER, 1);
            break;
        case 4: /* a truncated name-value pair */
            begin(&w, 1, FCGI_RESPONDER, 1);
            rec(&w, FCGI_PARAMS, 1,
                "\x05\x01"
                "ab",
                4, 0);
            rec(&w, FCGI_PARAMS, 1, "", 0, 0);
            break;
        }
        CU_ASSERT_EQUAL(feed(f, &w, 0, &out, &rq, &used), EL_FCGI_CLOSE);
        el_buf_cleanup(&out);
        el_fcgi_free(f);
    }
}

static void test_body_limit_413(void)
{
    struct el_fcgi_limits lim = {0};
    struct wire w = {0};
    struct el_fcgi *f;
    struct el_buf out;
    struct el_fcgi_req *rq;
    size_t used;

    lim.body_max = 8;
    f = el_fcgi_new(&lim);
    el_buf_init(&out, 1 << 20);
    request(&w, 1, "/courses", "0123456789", 0); /* no CONTENT_LENGTH */
    CU_ASSERT_EQUAL_FATAL(feed(f, &w, 0, &out, &rq, &used), EL_FCGI_REQUEST);
    CU_ASSERT_EQUAL(el_fcgi_status(rq), 413);
    el_fcgi_req_free(rq);
    /* announced too large: known before the body streams in */
    w.n = 0;
    request(&w, 1, "/courses", "0123456789", 1);
    CU_ASSERT_EQUAL_FATAL(feed(f, &w, 0, &out, &rq, &used), EL_FCGI_REQUEST);
    CU_ASSERT_EQUAL(el_fcgi_status(rq), 413);
    CU_ASSERT_EQUAL(el_fcgi_keep(rq), 1);
    el_fcgi_req_free(rq);
    el_buf_cleanup(&out);
    el_fcgi_free(f);
}

/* Replies pile up only to out_high: then the parser waits. */
static void test_backpressure(void)
{
    struct el_fcgi_limits lim = {0};
    struct wire w = {0};
    struct el_fcgi *f;
    struct el_buf out;
    struct el_fcgi_req *rq;
    size_t used;

    lim.out_high = 1024;
    f = el_fcgi_new(&lim);
    el_buf_init(&out, 1 << 20);
    for (int i = 0; i < 1000; i++)
        rec(&w, 99, 0, "", 0, 0);
    CU_ASSERT_EQUAL(el_fcgi_feed(f, w.b, w.n, &used, &out, &rq), EL_FCGI_MORE);
    CU_ASSERT(used < w.n);
    CU_ASSERT(out.len >= 1024 && out.len <= 1024 + 16);
    el_buf_cleanup(&out);
    el_fcgi_free(f);
}

/* A response is framed into STDOUT records of at most 65535 bytes, then
 * the empty STDOUT and END_REQUEST. */
static void test_reply_framing(void)
{
    struct wire w = {0};
    struct el_fcgi *f = el_fcgi_new(NULL);
    struct el_buf out;
    struct el_fcgi_req *rq;
    size_t used, blen = 200000, off = 0, got = 0;
    char *body = malloc(blen);
    const unsigned char *o;
    int last_type = -1;

    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    memset(body, 'b', blen);
    el_buf_init(&out, 1 << 20);
    request(&w, 258, "/x", NULL, 0);
    CU_ASSERT_EQUAL_FATAL(feed(f, &w, 0, &out, &rq, &used), EL_FCGI_REQUEST);
    CU_ASSERT_EQUAL(el_fcgi_reply(&out, rq, "Status: 200 OK\r\n\r\n", 18, body, blen), EL_OK);
    o = (const unsigned char *)out.data;
    while (off < out.len) {
        size_t clen = ((size_t)o[off + 4] << 8) | o[off + 5];
        CU_ASSERT_EQUAL(o[off + 2], 1);
        CU_ASSERT_EQUAL(o[off + 3], 2); /* id 258 */
        last_type = o[off + 1];
        if (last_type == FCGI_STDOUT)
            got += clen;
        off += 8 + clen + o[off + 6];
    }
    CU_ASSERT_EQUAL(off, out.len);
    CU_ASSERT_EQUAL(got, blen + 18);
    CU_ASSERT_EQUAL(last_type, FCGI_END_REQUEST);
    el_fcgi_req_free(rq);
    el_buf_cleanup(&out);
    el_fcgi_free(f);
    free(body);
}

void test_fcgi_register(void)
{
    CU_pSuite s = CU_add_suite("fcgi", NULL, NULL);

    CU_add_test(s, "a request split at every boundary", test_request_any_split);
    CU_add_test(s, "complete only at the empty STDIN", test_waits_for_empty_stdin);
    CU_add_test(s, "bodies with and without CONTENT_LENGTH", test_body_with_and_without_length);
    CU_add_test(s, "pipelined requests in order", test_pipelined_in_order);
    CU_add_test(s, "0x7ffffffe lengths close", test_huge_lengths_close);
    CU_add_test(s, "GET_VALUES answered exactly", test_get_values_exact);
    CU_add_test(s, "unknown types and roles", test_management_and_roles);
    CU_add_test(s, "multiplexing refused, ABORT ends", test_multiplexing_and_abort);
    CU_add_test(s, "violations close", test_violations_close);
    CU_add_test(s, "body limit 413", test_body_limit_413);
    CU_add_test(s, "replies bounded by out_high", test_backpressure);
    CU_add_test(s, "reply framing", test_reply_framing);
}
