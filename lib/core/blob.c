/* blob.c -- immutable reference-counted responses (see blob.h).
 *
 * The ETag is a 64-bit FNV-1a of status and body: cheap to compute once per
 * fill, and the same bytes always give the same tag in every process, so a
 * client's If-None-Match works whichever responder answers. */
#include "core/blob.h"

#include "core/el.h"
#include "core/hash.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct el_blob *blob_make(int status, const void *data, size_t len, const char *etag)
{
    struct el_blob *b = malloc(sizeof(*b) + len + 1);
    uint64_t h;

    if (b == NULL)
        return NULL;
    atomic_init(&b->refs, 1);
    atomic_init(&b->checked_ms, el_now_ms());
    b->version = 0;
    b->status = status;
    b->len = len;
    if (len)
        memcpy(b->data, data, len);
    b->data[len] = '\0';
    if (etag) {
        memcpy(b->etag, etag, strlen(etag) + 1);
        return b;
    }
    h = el_fnv1a64(EL_FNV1A64_INIT, &status, sizeof(status));
    h = el_fnv1a64(h, data, len);
    snprintf(b->etag, sizeof(b->etag), "\"%016llx\"", (unsigned long long)h);
    return b;
}

struct el_blob *el_blob_new(int status, const void *data, size_t len)
{
    return blob_make(status, data, len, NULL);
}

/* What el_blob_new writes: '"', 16 lowercase hex digits, '"'. */
static int etag_valid(const char *etag)
{
    if (etag == NULL || strlen(etag) != 18 || etag[0] != '"' || etag[17] != '"')
        return 0;
    for (int i = 1; i < 17; i++)
        if (!((etag[i] >= '0' && etag[i] <= '9') || (etag[i] >= 'a' && etag[i] <= 'f')))
            return 0;
    return 1;
}

struct el_blob *el_blob_new_tagged(int status, const void *data, size_t len, const char *etag)
{
    return blob_make(status, data, len, etag_valid(etag) ? etag : NULL);
}

struct el_blob *el_blob_ref(struct el_blob *b)
{
    if (b)
        atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void el_blob_unref(struct el_blob *b)
{
    if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        free(b);
}

/* What the allocator really set aside for the blob (its size class), not
 * just what was asked for: the L1 budget is a bound on memory. */
size_t el_blob_footprint(const struct el_blob *b)
{
    return malloc_usable_size((void *)b);
}
