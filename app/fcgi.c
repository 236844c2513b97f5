/* fcgi.c -- FastCGI 1.0 records in, requests out; responses in, records out
 * (see fcgi.h for the rules it enforces).
 *
 * The parser is a byte-level state machine over records: an 8-byte header,
 * the content, the padding. Content is handled as it streams in, so no
 * record is ever buffered whole: PARAMS bytes go to the request's params
 * buffer (capped), STDIN bytes to its body (capped) or nowhere, the 8 bytes
 * of a BEGIN_REQUEST and a GET_VALUES body (at most GV_MAX bytes) to a small
 * fixed buffer, everything else nowhere. Every length is checked against
 * what remains before it is used, in size_t, so no sum can overflow (the
 * libfcgi defect: two 0x7ffffffe lengths added in int). */
#include "fcgi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fastcgi.h>

#include "core/el.h"

#define GV_MAX 4096 /* GET_VALUES content we read; longer closes */

struct el_fcgi_req {
    unsigned id;
    int keep;
    int status;           /* decided by the framing: 400, 413, 431 */
    struct el_buf params; /* raw PARAMS, then decoded name\0value\0... */
    size_t nparams;
    size_t cl_off; /* CONTENT_LENGTH's value in params, when has_cl */
    int has_cl;
    struct el_buf body;
    size_t stdin_seen; /* STDIN bytes received, kept or not */
};

enum state { ST_HEADER, ST_CONTENT, ST_PADDING };

struct el_fcgi {
    struct el_fcgi_limits lim;
    enum state st;
    unsigned char hdr[FCGI_HEADER_LEN];
    size_t hdr_have;
    /* the record being read */
    int type;
    unsigned id;
    size_t clen, cdone, plen, pdone;
    unsigned char small[GV_MAX]; /* BEGIN_REQUEST body, GET_VALUES body */
    /* the request arriving (id != 0 while active) */
    struct el_fcgi_req *cur;
    int params_done;
    int ready; /* the record being finished completes the request */
    int closing;
};

struct el_fcgi *el_fcgi_new(const struct el_fcgi_limits *lim)
{
    struct el_fcgi *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return NULL;
    if (lim)
        f->lim = *lim;
    if (f->lim.params_max == 0)
        f->lim.params_max = 64u << 10;
    if (f->lim.params_count == 0)
        f->lim.params_count = 512;
    if (f->lim.body_max == 0)
        f->lim.body_max = 1u << 20;
    if (f->lim.drain_max == 0)
        f->lim.drain_max = 8u << 20;
    if (f->lim.out_high == 0)
        f->lim.out_high = 64u << 10;
    if (f->lim.max_conns == 0)
        f->lim.max_conns = 1024;
    return f;
}

void el_fcgi_req_free(struct el_fcgi_req *rq)
{
    if (rq == NULL)
        return;
    el_buf_cleanup(&rq->params);
    el_buf_cleanup(&rq->body);
    free(rq);
}

void el_fcgi_free(struct el_fcgi *f)
{
    if (f == NULL)
        return;
    el_fcgi_req_free(f->cur);
    free(f);
}

int el_fcgi_busy(const struct el_fcgi *f)
{
    return f->cur != NULL || f->st != ST_HEADER || f->hdr_have > 0;
}

/* ---- output --------------------------------------------------------------- */

static const unsigned char zeros[8];

/* Append without el_buf's wipe-on-failure: out may hold earlier replies that
 * must not be lost because this one does not fit. */
static int room(const struct el_buf *out, size_t n)
{
    return !out->failed && n <= out->max - out->len;
}

static void put_header(unsigned char h[FCGI_HEADER_LEN], int type, unsigned id, size_t clen,
                       size_t plen)
{
    h[0] = FCGI_VERSION_1;
    h[1] = (unsigned char)type;
    h[2] = (unsigned char)(id >> 8);
    h[3] = (unsigned char)id;
    h[4] = (unsigned char)(clen >> 8);
    h[5] = (unsigned char)clen;
    h[6] = (unsigned char)plen;
    h[7] = 0;
}

/* One record with content c[0..clen) (clen <= FCGI_MAX_LENGTH), padded to
 * a multiple of 8. Fails only when out cannot hold it. */
static int put_record(struct el_buf *out, int type, unsigned id, const void *c, size_t clen)
{
    unsigned char h[FCGI_HEADER_LEN];
    size_t plen = (8 - clen % 8) % 8;

    if (!room(out, FCGI_HEADER_LEN + clen + plen))
        return EL_ETOOBIG;
    put_header(h, type, id, clen, plen);
    if (el_buf_add(out, h, sizeof(h)) != EL_OK || el_buf_add(out, c, clen) != EL_OK ||
        el_buf_add(out, zeros, plen) != EL_OK)
        return EL_ENOMEM;
    return EL_OK;
}

static int put_end(struct el_buf *out, unsigned id, int protocol_status)
{
    FCGI_EndRequestBody b;

    memset(&b, 0, sizeof(b));
    b.protocolStatus = (unsigned char)protocol_status;
    return put_record(out, FCGI_END_REQUEST, id, &b, sizeof(b));
}

int el_fcgi_reply(struct el_buf *out, const struct el_fcgi_req *rq, const void *head, size_t hlen,
                  const void *body, size_t blen)
{
    /* Full records carry 65528 bytes: a multiple of 8, so no padding. */
    const size_t chunk = FCGI_MAX_LENGTH & ~(size_t)7;
    size_t total, nrec, need, off = 0, start = out->len;
    const unsigned char *h = head, *b = body;

    if (hlen > SIZE_MAX / 2 || blen > SIZE_MAX / 2)
        return EL_ETOOBIG;
    total = hlen + blen;
    nrec = total / chunk + 1;
    need = total + nrec * (FCGI_HEADER_LEN + 7) + 2 * (FCGI_HEADER_LEN + 8);
    if (!room(out, need))
        return EL_ETOOBIG;
    while (off < total) {
        size_t n = total - off < chunk ? total - off : chunk;
        size_t plen = (8 - n % 8) % 8;
        unsigned char rh[FCGI_HEADER_LEN];
        int rc = EL_OK;

        put_header(rh, FCGI_STDOUT, rq->id, n, plen);
        rc |= el_buf_add(out, rh, sizeof(rh));
        /* the record may straddle the head and the body */
        if (off < hlen) {
            size_t nh = hlen - off < n ? hlen - off : n;
            rc |= el_buf_add(out, h + off, nh);
            rc |= el_buf_add(out, b, n - nh);
        } else {
            rc |= el_buf_add(out, b + (off - hlen), n);
        }
        rc |= el_buf_add(out, zeros, plen);
        if (rc != EL_OK)
            goto fail;
        off += n;
    }
    if (put_record(out, FCGI_STDOUT, rq->id, NULL, 0) != EL_OK ||
        put_end(out, rq->id, FCGI_REQUEST_COMPLETE) != EL_OK)
        goto fail;
    return EL_OK;
fail:
    /* Only out of memory gets here (room() was checked): el_buf dropped
     * everything, and the connection cannot go on. */
    if (!out->failed)
        out->len = start;
    return EL_ENOMEM;
}

/* ---- name-value pairs ----------------------------------------------------- */

/* Read one length (1 byte, or 4 with the top bit set) from p[*off..n).
 * Returns 0, or -1 when the bytes end first. */
static int nv_len(const unsigned char *p, size_t n, size_t *off, size_t *out)
{
    if (*off >= n)
        return -1;
    if (p[*off] < 0x80) {
        *out = p[(*off)++];
        return 0;
    }
    if (n - *off < 4)
        return -1;
    *out = ((size_t)(p[*off] & 0x7f) << 24) | ((size_t)p[*off + 1] << 16) |
           ((size_t)p[*off + 2] << 8) | p[*off + 3];
    *off += 4;
    return 0;
}

/* One pair at p[*off..n): name at *name (nlen bytes), value at *value
 * (vlen bytes). Returns 0, or -1 when malformed (a length past the end). */
static int nv_next(const unsigned char *p, size_t n, size_t *off, size_t *name, size_t *nlen,
                   size_t *value, size_t *vlen)
{
    if (nv_len(p, n, off, nlen) != 0 || nv_len(p, n, off, vlen) != 0)
        return -1;
    if (*nlen > n - *off || *vlen > n - *off - *nlen)
        return -1;
    *name = *off;
    *value = *off + *nlen;
    *off += *nlen + *vlen;
    return 0;
}

/* Decode the request's raw PARAMS in place into name\0value\0 pairs: each
 * pair is preceded by at least two length bytes, and becomes two NULs
 * longer, so the write position never passes the read position. Returns
 * 0, or -1 on a malformed stream (closes the connection). Sets rq->status
 * for too many pairs (431) or a NUL inside a name or value (400). */
static int decode_params(struct el_fcgi *f, struct el_fcgi_req *rq)
{
    unsigned char *p = (unsigned char *)rq->params.data;
    size_t n = rq->params.len, off = 0, w = 0, name, nlen, value, vlen;

    if (rq->status) {
        rq->params.len = 0; /* overflowed: nothing to decode */
        return 0;
    }
    while (off < n) {
        if (nv_next(p, n, &off, &name, &nlen, &value, &vlen) != 0)
            return -1;
        if (nlen == 0)
            return -1;
        if (rq->nparams == f->lim.params_count) {
            rq->status = 431;
            break;
        }
        if (memchr(p + name, 0, nlen) || memchr(p + value, 0, vlen)) {
            rq->status = 400;
            break;
        }
        memmove(p + w, p + name, nlen);
        if (!rq->has_cl && nlen == 14 && memcmp(p + w, "CONTENT_LENGTH", 14) == 0) {
            rq->has_cl = 1; /* looked at twice per request: remember it */
            rq->cl_off = w + nlen + 1;
        }
        w += nlen;
        p[w++] = 0;
        memmove(p + w, p + value, vlen);
        w += vlen;
        p[w++] = 0;
        rq->nparams++;
    }
    if (rq->status) {
        rq->nparams = 0;
        rq->has_cl = 0;
        w = 0;
    }
    rq->params.len = w;
    return 0;
}

static const char *content_length(const struct el_fcgi_req *rq)
{
    return rq->has_cl ? rq->params.data + rq->cl_off : NULL;
}

const char *el_fcgi_param(const struct el_fcgi_req *rq, const char *name)
{
    const char *p = rq->params.data, *end;

    if (p == NULL)
        return NULL;
    end = p + rq->params.len;
    while (p < end) {
        const char *v = p + strlen(p) + 1;
        if (strcmp(p, name) == 0)
            return v;
        p = v + strlen(v) + 1;
    }
    return NULL;
}

void el_fcgi_params(const struct el_fcgi_req *rq,
                    void (*fn)(void *arg, const char *name, const char *value), void *arg)
{
    const char *p = rq->params.data, *end;

    if (p == NULL)
        return;
    end = p + rq->params.len;
    while (p < end) {
        const char *v = p + strlen(p) + 1;
        fn(arg, p, v);
        p = v + strlen(v) + 1;
    }
}

const char *el_fcgi_body(const struct el_fcgi_req *rq, size_t *len)
{
    *len = rq->body.len;
    return rq->body.data ? rq->body.data : "";
}

int el_fcgi_status(const struct el_fcgi_req *rq)
{
    return rq->status;
}

int el_fcgi_keep(const struct el_fcgi_req *rq)
{
    return rq->keep;
}

/* ---- management records --------------------------------------------------- */

/* GET_VALUES: answer with each variable we know that was asked for, once
 * each, in a fixed order. -1 on a malformed body. */
static int get_values(struct el_fcgi *f, struct el_buf *out)
{
    static const char *const known[] = {FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS};
    unsigned char reply[128];
    size_t off = 0, rlen = 0, name, nlen, value, vlen, i;
    int asked[3] = {0, 0, 0};
    char num[16];

    while (off < f->clen) {
        if (nv_next(f->small, f->clen, &off, &name, &nlen, &value, &vlen) != 0)
            return -1;
        for (i = 0; i < 3; i++)
            if (nlen == strlen(known[i]) && memcmp(f->small + name, known[i], nlen) == 0)
                asked[i] = 1;
    }
    for (i = 0; i < 3; i++) {
        size_t kl = strlen(known[i]), vl;
        if (!asked[i])
            continue;
        vl = (size_t)snprintf(num, sizeof(num), "%u", i == 2 ? 0u : f->lim.max_conns);
        /* known names and our numbers are short: 1-byte lengths */
        reply[rlen++] = (unsigned char)kl;
        reply[rlen++] = (unsigned char)vl;
        memcpy(reply + rlen, known[i], kl);
        rlen += kl;
        memcpy(reply + rlen, num, vl);
        rlen += vl;
    }
    return put_record(out, FCGI_GET_VALUES_RESULT, 0, reply, rlen) == EL_OK ? 0 : -1;
}

static int unknown_type(struct el_buf *out, int type)
{
    FCGI_UnknownTypeBody b;

    memset(&b, 0, sizeof(b));
    b.type = (unsigned char)type;
    return put_record(out, FCGI_UNKNOWN_TYPE, 0, &b, sizeof(b)) == EL_OK ? 0 : -1;
}

/* ---- the record state machine --------------------------------------------- */

/* What to do with a record whose header just arrived. Returns 0, or -1 for
 * a violation. Sets f->type to -1 for content to skip. */
static int on_header(struct el_fcgi *f, struct el_buf *out)
{
    const unsigned char *h = f->hdr;
    int active;

    if (h[0] != FCGI_VERSION_1)
        return -1;
    f->type = h[1];
    f->id = ((unsigned)h[2] << 8) | h[3];
    f->clen = ((size_t)h[4] << 8) | h[5];
    f->plen = h[6];
    f->cdone = f->pdone = 0;
    active = f->cur != NULL && f->id == f->cur->id;

    if (f->id == FCGI_NULL_REQUEST_ID) {
        if (f->type == FCGI_GET_VALUES)
            return f->clen <= GV_MAX ? 0 : -1;
        if (f->type == FCGI_BEGIN_REQUEST || f->type == FCGI_ABORT_REQUEST ||
            f->type == FCGI_PARAMS || f->type == FCGI_STDIN || f->type == FCGI_DATA)
            return -1; /* application records need a request id */
        f->type = -1;
        return unknown_type(out, h[1]);
    }
    switch (f->type) {
    case FCGI_BEGIN_REQUEST:
        if (f->clen != sizeof(FCGI_BeginRequestBody) || active)
            return -1;
        return 0;
    case FCGI_ABORT_REQUEST:
        return f->clen == 0 ? 0 : -1;
    case FCGI_PARAMS:
        if (!active) {
            f->type = -1; /* not a request we serve: ignored, per the spec */
            return 0;
        }
        return f->params_done ? -1 : 0;
    case FCGI_STDIN:
        if (!active) {
            f->type = -1;
            return 0;
        }
        return f->params_done ? 0 : -1;
    case FCGI_DATA:
        if (active)
            return -1; /* FILTER only, and we refuse that role */
        f->type = -1;
        return 0;
    default:
        return -1; /* records only an application sends, or no type at all */
    }
}

static void stdin_bytes(struct el_fcgi *f, const unsigned char *p, size_t n)
{
    struct el_fcgi_req *rq = f->cur;

    rq->stdin_seen += n;
    if (rq->status == 0 && rq->body.len + n > f->lim.body_max) {
        rq->status = 413;
        el_buf_cleanup(&rq->body);
    }
    if (rq->status == 0 && el_buf_add(&rq->body, p, n) != EL_OK)
        rq->status = 413; /* cannot happen under body_max but out of memory */
}

static void params_bytes(struct el_fcgi *f, const unsigned char *p, size_t n)
{
    struct el_fcgi_req *rq = f->cur;

    if (rq->status == 0 && rq->params.len + n > f->lim.params_max) {
        rq->status = 431;
        el_buf_cleanup(&rq->params);
    }
    if (rq->status == 0 && el_buf_add(&rq->params, p, n) != EL_OK)
        rq->status = 431;
}

/* Parameters complete: check CONTENT_LENGTH against the body limit early,
 * so a large upload is known to be a 413 before it streams in. */
static int params_end(struct el_fcgi *f)
{
    struct el_fcgi_req *rq = f->cur;
    const char *cl;

    f->params_done = 1;
    if (decode_params(f, rq) != 0)
        return -1;
    cl = content_length(rq);
    if (rq->status == 0 && cl && *cl) {
        char *end;
        unsigned long long v = strtoull(cl, &end, 10);
        if (*end || *cl == '-' || *cl == '+')
            rq->status = 400;
        else if (v > f->lim.body_max)
            rq->status = 413;
    }
    return 0;
}

/* The record's content is complete. Returns 1 when a request is complete,
 * 0 to go on, -1 for a violation. */
static int on_content_end(struct el_fcgi *f, struct el_buf *out)
{
    switch (f->type) {
    case FCGI_GET_VALUES:
        return get_values(f, out);
    case FCGI_BEGIN_REQUEST: {
        const FCGI_BeginRequestBody *b = (const FCGI_BeginRequestBody *)f->small;
        int role = (b->roleB1 << 8) | b->roleB0;

        if (f->cur)
            return put_end(out, f->id, FCGI_CANT_MPX_CONN) == EL_OK ? 0 : -1;
        if (role != FCGI_RESPONDER)
            return put_end(out, f->id, FCGI_UNKNOWN_ROLE) == EL_OK ? 0 : -1;
        f->cur = calloc(1, sizeof(*f->cur));
        if (f->cur == NULL)
            return -1;
        f->cur->id = f->id;
        f->cur->keep = (b->flags & FCGI_KEEP_CONN) != 0;
        /* The caps are the limits; the buffers' own max only backs them. */
        el_buf_init(&f->cur->params, f->lim.params_max);
        el_buf_init(&f->cur->body, f->lim.body_max);
        f->params_done = 0;
        return 0;
    }
    case FCGI_ABORT_REQUEST:
        if (f->cur && f->id == f->cur->id) {
            int keep = f->cur->keep;
            el_fcgi_req_free(f->cur);
            f->cur = NULL;
            if (put_end(out, f->id, FCGI_REQUEST_COMPLETE) != EL_OK || !keep)
                return -1;
        }
        return 0;
    case FCGI_PARAMS:
        return f->clen == 0 ? params_end(f) : 0;
    case FCGI_STDIN:
        if (f->clen == 0)
            return 1;
        if (f->cur->stdin_seen > f->lim.drain_max) {
            /* Enough dropped: answer the 413 now and close after it. */
            f->cur->keep = 0;
            return 1;
        }
        return 0;
    default:
        return 0;
    }
}

/* Hand the complete request over, checking the body against the length
 * announced. */
static struct el_fcgi_req *take_request(struct el_fcgi *f)
{
    struct el_fcgi_req *rq = f->cur;
    const char *cl = content_length(rq);

    f->cur = NULL;
    f->params_done = 0;
    if (rq->status == 0 && cl && *cl && strtoull(cl, NULL, 10) != rq->stdin_seen)
        rq->status = 400;
    if (!rq->keep)
        f->closing = 1;
    return rq;
}

int el_fcgi_feed(struct el_fcgi *f, const void *in, size_t len, size_t *used, struct el_buf *out,
                 struct el_fcgi_req **req)
{
    const unsigned char *p = in;
    size_t off = 0, n;
    int rc;

    *req = NULL;
    if (f->closing) {
        *used = 0;
        return EL_FCGI_CLOSE;
    }
    for (;;) {
        if (f->st == ST_HEADER) {
            if (f->hdr_have == 0 && out->len >= f->lim.out_high)
                break; /* let the peer read its replies first */
            if (off == len)
                break;
            n = FCGI_HEADER_LEN - f->hdr_have;
            if (n > len - off)
                n = len - off;
            memcpy(f->hdr + f->hdr_have, p + off, n);
            f->hdr_have += n;
            off += n;
            if (f->hdr_have < FCGI_HEADER_LEN)
                break;
            f->hdr_have = 0;
            if (on_header(f, out) != 0)
                goto violation;
            f->st = ST_CONTENT;
        } else if (f->st == ST_CONTENT) {
            n = f->clen - f->cdone;
            if (n > len - off)
                n = len - off;
            switch (f->type) {
            case FCGI_BEGIN_REQUEST:
            case FCGI_GET_VALUES:
                memcpy(f->small + f->cdone, p + off, n);
                break;
            case FCGI_PARAMS:
                params_bytes(f, p + off, n);
                break;
            case FCGI_STDIN:
                stdin_bytes(f, p + off, n);
                break;
            default:
                break; /* skipped */
            }
            f->cdone += n;
            off += n;
            if (f->cdone < f->clen)
                break;
            rc = on_content_end(f, out);
            if (rc < 0)
                goto violation;
            f->ready = rc == 1;
            f->st = ST_PADDING;
        } else {
            n = f->plen - f->pdone;
            if (n > len - off)
                n = len - off;
            f->pdone += n;
            off += n;
            if (f->pdone < f->plen)
                break;
            f->st = ST_HEADER;
            if (f->ready) {
                f->ready = 0;
                *req = take_request(f);
                *used = off;
                return EL_FCGI_REQUEST;
            }
        }
    }
    *used = off;
    return EL_FCGI_MORE;
violation:
    *used = off;
    f->closing = 1;
    return EL_FCGI_CLOSE;
}
