/* test_json.c -- request-body helpers. */
#include <string.h>

#include "http/json.h"
#include "unit.h"

static int parse(const char *body, const char **a, const char **b, struct el_err *err,
                 struct el_json **doc)
{
    struct el_json_field f[] = {{"a", 1, a}, {"b", 0, b}};
    return el_json_strings(body, strlen(body), f, 2, doc, err);
}

static void test_ok(void)
{
    const char *a, *b;
    struct el_json *doc;
    struct el_err err = {0};

    CU_ASSERT_EQUAL(parse(" {\"a\":\"x\\u00e9\"} \n", &a, &b, &err, &doc), EL_OK);
    CU_ASSERT_STRING_EQUAL(a, "x\xc3\xa9");
    CU_ASSERT_PTR_NULL(b);
    el_json_free(doc);
}

#define U8 "a: must be valid UTF-8 without NUL characters"

static void test_rejections(void)
{
    static const struct {
        const char *body, *msg;
    } cases[] = {
        {"", "body: must be a JSON object"},
        {"[]", "body: must be a JSON object"},
        {"{\"a\":\"x\"} trailing", "body: must be a JSON object"},
        {"{\"a\":\"x\"", "body: must be a JSON object"},
        {"{\"b\":\"x\"}", "a: field required"},
        {"{\"a\":1}", "a: must be a string"},
        {"{\"a\":\"x\",\"$where\":\"1\"}", "unknown field: $where"},
        {"{\"a\":{\"$gt\":\"\"}}", "a: must be a string"},
        /* A NUL would cut a password short in every C string after this. */
        {"{\"a\":\"Abcdefghij\\u0000long passphrase\"}", U8},
        {"{\"a\":\"ok\",\"b\":\"\\u0000\"}", "b: must be valid UTF-8 without NUL characters"},
        /* Raw bytes that are not UTF-8: a lone continuation byte, an
         * overlong '/', a surrogate, a truncated sequence. */
        {"{\"a\":\"x\x80y\"}", U8},
        {"{\"a\":\"\xc0\xaf\"}", U8},
        {"{\"a\":\"\xed\xa0\x80\"}", U8},
        {"{\"a\":\"\xe2\x82\"}", U8},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *a, *b;
        struct el_json *doc = (void *)1;
        struct el_err err = {0};
        CU_ASSERT_EQUAL(parse(cases[i].body, &a, &b, &err, &doc), EL_EINVAL);
        CU_ASSERT_PTR_NULL(doc);
        CU_ASSERT_STRING_EQUAL(err.msg, cases[i].msg);
    }
}

static void test_add_string(void)
{
    struct el_buf b;

    el_buf_init(&b, 256);
    CU_ASSERT_EQUAL(el_json_add_string(&b, "a\"b\\c\n\x01 caf\xc3\xa9"), EL_OK);
    CU_ASSERT_STRING_EQUAL(b.data, "\"a\\\"b\\\\c\\u000a\\u0001 caf\xc3\xa9\"");
    el_buf_reset(&b);
    CU_ASSERT_EQUAL(el_json_add_string(&b, ""), EL_OK);
    CU_ASSERT_STRING_EQUAL(b.data, "\"\"");
    el_buf_cleanup(&b);
}

void test_json_register(void)
{
    CU_pSuite s = CU_add_suite("json", NULL, NULL);

    CU_add_test(s, "string fields", test_ok);
    CU_add_test(s, "rejections name the field", test_rejections);
    CU_add_test(s, "JSON string writer escapes", test_add_string);
}
