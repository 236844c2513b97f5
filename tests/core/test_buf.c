/* test_buf.c -- the capped buffer. */
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "unit.h"

static void test_append_and_format(void)
{
    struct el_buf b;

    el_buf_init(&b, 1024);
    CU_ASSERT_EQUAL(el_buf_adds(&b, "abc"), EL_OK);
    CU_ASSERT_EQUAL(el_buf_addf(&b, "-%d-%s", 42, "x"), EL_OK);
    CU_ASSERT_STRING_EQUAL(b.data, "abc-42-x");
    CU_ASSERT_EQUAL(b.len, 8);
    el_buf_cleanup(&b);
}

static void test_long_format_grows(void)
{
    struct el_buf b;
    char big[1000];

    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    el_buf_init(&b, 4096);
    CU_ASSERT_EQUAL(el_buf_addf(&b, "<%s>", big), EL_OK);
    CU_ASSERT_EQUAL(b.len, 1001);
    CU_ASSERT_EQUAL(b.data[0], '<');
    CU_ASSERT_EQUAL(b.data[1000], '>');
    CU_ASSERT_EQUAL(b.data[1001], '\0');
    el_buf_cleanup(&b);
}

static void test_cap_fails_and_sticks(void)
{
    struct el_buf b;

    el_buf_init(&b, 8);
    CU_ASSERT_EQUAL(el_buf_adds(&b, "12345678"), EL_OK);
    CU_ASSERT_EQUAL(el_buf_adds(&b, "9"), EL_ETOOBIG);
    CU_ASSERT_EQUAL(b.len, 0);
    CU_ASSERT_PTR_NULL(b.data);
    /* A failed buffer stays failed until reset: no half documents. */
    CU_ASSERT_EQUAL(el_buf_adds(&b, "a"), EL_ETOOBIG);
    el_buf_reset(&b);
    CU_ASSERT_EQUAL(el_buf_adds(&b, "a"), EL_OK);
    CU_ASSERT_STRING_EQUAL(b.data, "a");
    el_buf_cleanup(&b);
}

/* An allocation that fails is EL_ENOMEM -- not EL_ETOOBIG, which says the
 * caller's cap was exceeded (a 413 rather than a 503) -- and stays so. The
 * cap here allows 2^50 bytes; no allocator hands them out (the sanitizers
 * are told to return NULL rather than abort: tests/run-unit.sh). */
static void test_out_of_memory_is_enomem(void)
{
    struct el_buf b;
    static const char byte = 'x';

    el_buf_init(&b, (size_t)1 << 52);
    CU_ASSERT_EQUAL(el_buf_adds(&b, "ok"), EL_OK);
    CU_ASSERT_EQUAL(el_buf_add(&b, &byte, (size_t)1 << 50), EL_ENOMEM);
    CU_ASSERT_EQUAL(b.len, 0);
    CU_ASSERT_PTR_NULL(b.data);
    CU_ASSERT_EQUAL(el_buf_adds(&b, "a"), EL_ENOMEM);
    CU_ASSERT_EQUAL(el_buf_addf(&b, "%0300d", 1), EL_ENOMEM); /* the long-format path */
    el_buf_reset(&b);
    CU_ASSERT_EQUAL(el_buf_adds(&b, "a"), EL_OK);
    el_buf_cleanup(&b);
}

static void test_take(void)
{
    struct el_buf b;
    size_t len;
    char *s;

    el_buf_init(&b, 64);
    CU_ASSERT_EQUAL(el_buf_add(&b, "a\0b", 3), EL_OK);
    s = el_buf_take(&b, &len);
    CU_ASSERT_EQUAL(len, 3);
    CU_ASSERT(memcmp(s, "a\0b", 3) == 0);
    CU_ASSERT_PTR_NULL(b.data);
    CU_ASSERT_EQUAL(b.len, 0);
    free(s);
}

void test_buf_register(void)
{
    CU_pSuite s = CU_add_suite("buf", NULL, NULL);

    CU_add_test(s, "append and format", test_append_and_format);
    CU_add_test(s, "long format grows", test_long_format_grows);
    CU_add_test(s, "cap fails and sticks", test_cap_fails_and_sticks);
    CU_add_test(s, "out of memory is EL_ENOMEM and sticks", test_out_of_memory_is_enomem);
    CU_add_test(s, "take hands over", test_take);
}
