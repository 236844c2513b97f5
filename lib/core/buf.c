/* buf.c -- capped growable buffer (see buf.h). */
#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void el_buf_init(struct el_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
    b->failed = 0;
}

void el_buf_cleanup(struct el_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->failed = 0;
}

void el_buf_reset(struct el_buf *b)
{
    b->len = 0;
    b->failed = 0;
    if (b->data)
        b->data[0] = '\0';
}

static int buf_fail(struct el_buf *b, int code)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->failed = code;
    return code;
}

/* Make room for n more bytes plus the NUL. Growth doubles, so appends are
 * amortised O(1), but never past max + 1. */
static int buf_reserve(struct el_buf *b, size_t n)
{
    size_t need, ncap;
    char *p;

    if (b->failed)
        return b->failed;
    if (n > b->max - b->len)
        return buf_fail(b, EL_ETOOBIG);
    need = b->len + n + 1;
    if (need <= b->cap)
        return EL_OK;
    ncap = b->cap ? b->cap : 64;
    while (ncap < need)
        ncap *= 2;
    if (ncap > b->max + 1)
        ncap = b->max + 1;
    p = realloc(b->data, ncap);
    if (p == NULL)
        return buf_fail(b, EL_ENOMEM);
    b->data = p;
    b->cap = ncap;
    return EL_OK;
}

int el_buf_add(struct el_buf *b, const void *data, size_t len)
{
    int rc = buf_reserve(b, len);

    if (rc != EL_OK)
        return rc;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return EL_OK;
}

int el_buf_adds(struct el_buf *b, const char *s)
{
    return el_buf_add(b, s, strlen(s));
}

int el_buf_vaddf(struct el_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    char small[256];
    int n;

    va_copy(ap2, ap);
    n = vsnprintf(small, sizeof(small), fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return buf_fail(b, EL_EINVAL);
    if ((size_t)n < sizeof(small))
        return el_buf_add(b, small, (size_t)n);
    if (buf_reserve(b, (size_t)n) != EL_OK)
        return b->failed;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return EL_OK;
}

int el_buf_addf(struct el_buf *b, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = el_buf_vaddf(b, fmt, ap);
    va_end(ap);
    return rc;
}

char *el_buf_take(struct el_buf *b, size_t *len)
{
    char *p = b->data;

    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->failed = 0;
    return p;
}
