/* test_blob.c -- immutable reference-counted responses. */
#include <string.h>

#include "core/blob.h"
#include "unit.h"

static void test_new_copies_and_tags(void)
{
    char src[] = "{\"a\":1}";
    struct el_blob *b = el_blob_new(200, src, strlen(src));

    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    src[0] = 'X'; /* the blob owns a copy */
    CU_ASSERT_STRING_EQUAL(b->data, "{\"a\":1}");
    CU_ASSERT_EQUAL(b->len, 7);
    CU_ASSERT_EQUAL(b->status, 200);
    CU_ASSERT_EQUAL(strlen(b->etag), 18);
    CU_ASSERT_EQUAL(b->etag[0], '"');
    CU_ASSERT_EQUAL(b->etag[17], '"');
    el_blob_unref(b);
}

static void test_etag_depends_on_bytes_and_status(void)
{
    struct el_blob *a = el_blob_new(200, "x", 1), *b = el_blob_new(200, "x", 1);
    struct el_blob *c = el_blob_new(200, "y", 1), *d = el_blob_new(404, "x", 1);

    CU_ASSERT_STRING_EQUAL(a->etag, b->etag);
    CU_ASSERT(strcmp(a->etag, c->etag) != 0);
    CU_ASSERT(strcmp(a->etag, d->etag) != 0);
    el_blob_unref(a);
    el_blob_unref(b);
    el_blob_unref(c);
    el_blob_unref(d);
}

/* A blob made again from bytes kept with their tag carries that tag,
 * without hashing; a tag of another form is not trusted. */
static void test_tagged(void)
{
    struct el_blob *a = el_blob_new(200, "page", 4);
    struct el_blob *b = el_blob_new_tagged(200, "page", 4, a->etag);
    struct el_blob *c = el_blob_new_tagged(200, "page", 4, "\"0123456789abcdef\"");
    struct el_blob *d = el_blob_new_tagged(200, "page", 4, "\"not a tag\"");
    struct el_blob *e = el_blob_new_tagged(200, "page", 4, NULL);

    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_STRING_EQUAL(b->etag, a->etag);
    CU_ASSERT_STRING_EQUAL(b->data, "page");
    CU_ASSERT_STRING_EQUAL(c->etag, "\"0123456789abcdef\"");
    CU_ASSERT_STRING_EQUAL(d->etag, a->etag);
    CU_ASSERT_STRING_EQUAL(e->etag, a->etag);
    el_blob_unref(a);
    el_blob_unref(b);
    el_blob_unref(c);
    el_blob_unref(d);
    el_blob_unref(e);
}

static void test_refcount(void)
{
    struct el_blob *b = el_blob_new(200, "abc", 3);

    CU_ASSERT_PTR_EQUAL(el_blob_ref(b), b);
    CU_ASSERT_EQUAL(atomic_load(&b->refs), 2);
    el_blob_unref(b);
    CU_ASSERT_EQUAL(atomic_load(&b->refs), 1);
    CU_ASSERT_STRING_EQUAL(b->data, "abc");
    el_blob_unref(b); /* frees; ASan reports a leak or double free otherwise */
    el_blob_unref(NULL);
    CU_ASSERT_PTR_NULL(el_blob_ref(NULL));
}

void test_blob_register(void)
{
    CU_pSuite s = CU_add_suite("blob", NULL, NULL);

    CU_add_test(s, "new copies and tags", test_new_copies_and_tags);
    CU_add_test(s, "etag depends on bytes and status", test_etag_depends_on_bytes_and_status);
    CU_add_test(s, "tagged: the kept tag, or computed", test_tagged);
    CU_add_test(s, "refcount", test_refcount);
}
