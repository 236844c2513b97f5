/* test_key.c -- cache-key builders and id validation. */
#include <stdio.h>
#include <string.h>

#include "core/el.h"
#include "cache/key.h"
#include "unit.h"

static void test_spelling(void)
{
    char k[EL_KEY_MAX];

    CU_ASSERT_EQUAL(el_key_course(k, sizeof(k), "65a1b2c3d4e5f60718293a4b"), 31);
    CU_ASSERT_STRING_EQUAL(k, "course:65a1b2c3d4e5f60718293a4b");
    el_key_courses_ids(k, sizeof(k), 7, 0, 3, "abcdef");
    CU_ASSERT_STRING_EQUAL(k, "courses_ids:7.0.3:abcdef");
    el_key_refresh_tokens(k, sizeof(k), "u1");
    CU_ASSERT_STRING_EQUAL(k, "refresh_tokens:u1");
    el_key_auth_bucket(k, sizeof(k), 7);
    CU_ASSERT_STRING_EQUAL(k, "auth:{b07}");
    CU_ASSERT_EQUAL(el_key_course_page(k, sizeof(k), "courses_ids:3.0.7:abcdef"), 24);
    CU_ASSERT_STRING_EQUAL(k, "course_page:3.0.7:abcdef");
    CU_ASSERT_EQUAL(el_key_course_page(k, sizeof(k), "course:65a1b2c3d4e5f60718293a4b"), EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(k, "");
}

/* Redis Cluster's slot of a key: CRC16 (XMODEM) of its hash tag -- the
 * text between the first '{' and the next '}' when not empty -- or of the
 * whole key, mod 16384. */
static unsigned crc16(const char *s, size_t n)
{
    unsigned crc = 0;

    for (size_t i = 0; i < n; i++) {
        crc ^= (unsigned)(unsigned char)s[i] << 8;
        for (int b = 0; b < 8; b++)
            crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    return crc;
}

static unsigned slot(const char *key)
{
    const char *o = strchr(key, '{'), *c = o ? strchr(o + 1, '}') : NULL;

    if (o && c && c > o + 1)
        return crc16(o + 1, (size_t)(c - o - 1)) % 16384;
    return crc16(key, strlen(key)) % 16384;
}

/* Every multi-key unit the code sends must live in one slot. The auth
 * path sends one HMGET per bucket and every script takes one key, so the
 * sets are single keys; what must hold is that each bucket key carries
 * its own tag (so related fields never need a second key) and that the
 * tags spread the buckets over many slots. */
static void test_cluster_slots(void)
{
    char k[EL_KEY_MAX], tag[16];
    unsigned seen[EL_KEY_AUTH_BUCKETS];
    int distinct = 0;

    CU_ASSERT_EQUAL(crc16("123456789", 9), 0x31C3); /* the spec's check value */
    CU_ASSERT_EQUAL(slot("foo"), 12182);            /* CLUSTER KEYSLOT foo */
    CU_ASSERT_EQUAL(slot("{user1000}.following"), slot("{user1000}.followers"));
    for (unsigned b = 0; b < EL_KEY_AUTH_BUCKETS; b++) {
        el_key_auth_bucket(k, sizeof(k), b);
        snprintf(tag, sizeof(tag), "{b%02u}", b);
        CU_ASSERT_PTR_NOT_NULL(strstr(k, tag));
        CU_ASSERT_EQUAL(slot(k), slot(tag));
        seen[b] = slot(k);
        int dup = 0;
        for (unsigned j = 0; j < b; j++)
            dup |= seen[j] == seen[b];
        distinct += !dup;
    }
    CU_ASSERT(distinct > EL_KEY_AUTH_BUCKETS / 2);
    /* The bucket index is a pure function of the id (every process agrees). */
    CU_ASSERT_EQUAL(el_key_auth_bucket_index("abc"), el_key_auth_bucket_index("abc"));
    CU_ASSERT(el_key_auth_bucket_index("abc") < EL_KEY_AUTH_BUCKETS);
}

static void test_generation_changes_list_key(void)
{
    char a[EL_KEY_MAX], b[EL_KEY_MAX];

    /* Each of the three generations alone moves the key. */
    el_key_courses_ids(a, sizeof(a), 1, 1, 1, "d");
    el_key_courses_ids(b, sizeof(b), 2, 1, 1, "d");
    CU_ASSERT(strcmp(a, b) != 0);
    el_key_courses_ids(b, sizeof(b), 1, 2, 1, "d");
    CU_ASSERT(strcmp(a, b) != 0);
    el_key_courses_ids(b, sizeof(b), 1, 1, 2, "d");
    CU_ASSERT(strcmp(a, b) != 0);
}

static void test_truncation(void)
{
    char k[10];

    CU_ASSERT_EQUAL(el_key_course(k, sizeof(k), "0123456789"), EL_ETOOBIG);
    CU_ASSERT_STRING_EQUAL(k, "");
}

void test_key_register(void)
{
    CU_pSuite s = CU_add_suite("key", NULL, NULL);

    CU_add_test(s, "spelling of every key", test_spelling);
    CU_add_test(s, "generation changes list key", test_generation_changes_list_key);
    CU_add_test(s, "truncation is an error", test_truncation);
    CU_add_test(s, "cluster slots of the auth buckets", test_cluster_slots);
}
