/* test_oid.c -- ObjectIds in hex: validation, the format of new ones, and
 * uniqueness across threads. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/el.h"
#include "model/oid.h"
#include "unit.h"

static void test_oid_valid(void)
{
    CU_ASSERT_TRUE(el_oid_valid("65a1b2c3d4e5f60718293a4b"));
    CU_ASSERT_TRUE(el_oid_valid("65A1B2C3D4E5F60718293A4B"));
    CU_ASSERT_FALSE(el_oid_valid("65a1b2c3d4e5f60718293a4"));   /* 23 */
    CU_ASSERT_FALSE(el_oid_valid("65a1b2c3d4e5f60718293a4bc")); /* 25 */
    CU_ASSERT_FALSE(el_oid_valid("65a1b2c3d4e5f60718293a4g"));
    CU_ASSERT_FALSE(el_oid_valid("{\"$gt\":\"\"}"));
    CU_ASSERT_FALSE(el_oid_valid(""));
    CU_ASSERT_FALSE(el_oid_valid(NULL));
}

static unsigned long hexnum(const char *s, int n)
{
    char tmp[16];

    memcpy(tmp, s, (size_t)n);
    tmp[n] = '\0';
    return strtoul(tmp, NULL, 16);
}

static void test_oid_format(void)
{
    char a[EL_OID_HEX], b[EL_OID_HEX];
    int64_t before = el_wall_ms() / 1000, after;

    el_oid_new(a);
    el_oid_new(b);
    after = el_wall_ms() / 1000;
    CU_ASSERT_EQUAL(strlen(a), 24);
    CU_ASSERT_TRUE(el_oid_valid(a));
    CU_ASSERT_EQUAL(strspn(a, "0123456789abcdef"), 24); /* lowercase */
    /* 4-byte big-endian seconds. */
    CU_ASSERT((int64_t)hexnum(a, 8) >= before && (int64_t)hexnum(a, 8) <= after);
    /* The same 5 process bytes, and a counter that moved on by one. */
    CU_ASSERT(memcmp(a + 8, b + 8, 10) == 0);
    CU_ASSERT_EQUAL((hexnum(a + 18, 6) + 1) & 0xFFFFFF, hexnum(b + 18, 6));
}

#define OID_THREADS 8
#define OID_PER_THREAD 2000

static char oids[OID_THREADS * OID_PER_THREAD][EL_OID_HEX];

static void *oid_worker(void *arg)
{
    char(*mine)[EL_OID_HEX] = arg;

    for (int i = 0; i < OID_PER_THREAD; i++)
        el_oid_new(mine[i]);
    return NULL;
}

static int cmp_oid(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_oid_unique_across_threads(void)
{
    pthread_t t[OID_THREADS];
    size_t n = OID_THREADS * OID_PER_THREAD, dups = 0;

    for (int i = 0; i < OID_THREADS; i++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, oid_worker, oids[i * OID_PER_THREAD]), 0);
    for (int i = 0; i < OID_THREADS; i++)
        pthread_join(t[i], NULL);
    qsort(oids, n, sizeof(oids[0]), cmp_oid);
    for (size_t i = 1; i < n; i++)
        dups += strcmp(oids[i - 1], oids[i]) == 0;
    CU_ASSERT_EQUAL(dups, 0);
    for (size_t i = 0; i < n; i++)
        if (!el_oid_valid(oids[i]))
            CU_FAIL("invalid generated id");
}

void test_oid_register(void)
{
    CU_pSuite s = CU_add_suite("oid", NULL, NULL);

    CU_add_test(s, "validation", test_oid_valid);
    CU_add_test(s, "format, time, counter", test_oid_format);
    CU_add_test(s, "unique across threads", test_oid_unique_across_threads);
}
