/* test_key.c -- cache-key builders and id validation. */
#include <string.h>

#include "core/el.h"
#include "cache/key.h"
#include "unit.h"

static void test_spelling(void)
{
    char k[EL_KEY_MAX];

    CU_ASSERT_EQUAL(el_key_course(k, sizeof(k), "65a1b2c3d4e5f60718293a4b"), 31);
    CU_ASSERT_STRING_EQUAL(k, "course:65a1b2c3d4e5f60718293a4b");
    el_key_courses_list(k, sizeof(k), 7, "abcdef");
    CU_ASSERT_STRING_EQUAL(k, "courses_list:7:abcdef");
    el_key_user_session(k, sizeof(k), "u1");
    CU_ASSERT_STRING_EQUAL(k, "user_session:u1");
    el_key_refresh_tokens(k, sizeof(k), "u1");
    CU_ASSERT_STRING_EQUAL(k, "refresh_tokens:u1");
    el_key_blacklisted_token(k, sizeof(k), "j1");
    CU_ASSERT_STRING_EQUAL(k, "blacklisted_tokens:j1");
}

static void test_generation_changes_list_key(void)
{
    char a[EL_KEY_MAX], b[EL_KEY_MAX];

    el_key_courses_list(a, sizeof(a), 1, "d");
    el_key_courses_list(b, sizeof(b), 2, "d");
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
}
