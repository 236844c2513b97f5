/* test_form.c -- urlencoded form fields. */
#include <string.h>

#include "http/form.h"
#include "unit.h"

static void test_get(void)
{
    const char *body = "username=ann%40example.com&password=a+b%2Bc&empty=&flag";
    char out[64];

    CU_ASSERT_EQUAL(el_form_get(body, strlen(body), "username", out, sizeof(out)), EL_OK);
    CU_ASSERT_STRING_EQUAL(out, "ann@example.com");
    CU_ASSERT_EQUAL(el_form_get(body, strlen(body), "password", out, sizeof(out)), EL_OK);
    CU_ASSERT_STRING_EQUAL(out, "a b+c");
    CU_ASSERT_EQUAL(el_form_get(body, strlen(body), "empty", out, sizeof(out)), EL_OK);
    CU_ASSERT_STRING_EQUAL(out, "");
    CU_ASSERT_EQUAL(el_form_get(body, strlen(body), "flag", out, sizeof(out)), EL_OK);
    CU_ASSERT_EQUAL(el_form_get(body, strlen(body), "user", out, sizeof(out)), EL_ENOTFOUND);
}

static void test_errors(void)
{
    char out[4];
    const char *twice = "a=1&a=2", *bad = "a=%zz", *cut = "a=%4", *nul = "a=%00", *big = "a=12345";

    CU_ASSERT_EQUAL(el_form_get(twice, strlen(twice), "a", out, sizeof(out)), EL_EINVAL);
    CU_ASSERT_EQUAL(el_form_get(bad, strlen(bad), "a", out, sizeof(out)), EL_EINVAL);
    CU_ASSERT_EQUAL(el_form_get(cut, strlen(cut), "a", out, sizeof(out)), EL_EINVAL);
    CU_ASSERT_EQUAL(el_form_get(nul, strlen(nul), "a", out, sizeof(out)), EL_EINVAL);
    CU_ASSERT_EQUAL(el_form_get(big, strlen(big), "a", out, sizeof(out)), EL_ETOOBIG);
}

void test_form_register(void)
{
    CU_pSuite s = CU_add_suite("form", NULL, NULL);

    CU_add_test(s, "fields decoded", test_get);
    CU_add_test(s, "errors", test_errors);
}
