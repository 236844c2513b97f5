/* test_text.c -- UTF-8 decoding and validation, hex digits, ASCII
 * lowercasing, percent-decoding: the byte-level helpers every parser
 * shares. */
#include <string.h>

#include "core/text.h"
#include "unit.h"

static void test_utf8_next(void)
{
    uint32_t cp = 0;

    CU_ASSERT_EQUAL(el_utf8_next("a", 1, &cp), 1);
    CU_ASSERT_EQUAL(cp, 'a');
    CU_ASSERT_EQUAL(el_utf8_next("\xc3\xa9", 2, &cp), 2);
    CU_ASSERT_EQUAL(cp, 0xE9);
    /* NOLINTNEXTLINE(misc-misleading-bidirectional): U+202E is the point */
    CU_ASSERT_EQUAL(el_utf8_next("\xe2\x80\xae", 3, &cp), 3);
    CU_ASSERT_EQUAL(cp, 0x202E);
    CU_ASSERT_EQUAL(el_utf8_next("\xf0\x9f\x98\x80", 4, &cp), 4);
    CU_ASSERT_EQUAL(cp, 0x1F600);
    CU_ASSERT_EQUAL(el_utf8_next("\xc0\x80", 2, &cp), 0);         /* overlong NUL */
    CU_ASSERT_EQUAL(el_utf8_next("\xe0\x80\xaf", 3, &cp), 0);     /* overlong */
    CU_ASSERT_EQUAL(el_utf8_next("\xed\xa0\x80", 3, &cp), 0);     /* surrogate */
    CU_ASSERT_EQUAL(el_utf8_next("\xf4\x90\x80\x80", 4, &cp), 0); /* above U+10FFFF */
    CU_ASSERT_EQUAL(el_utf8_next("\xc3", 1, &cp), 0);             /* cut short */
    CU_ASSERT_EQUAL(el_utf8_next("\xc3\x28", 2, &cp), 0);         /* bad continuation */
    CU_ASSERT_EQUAL(el_utf8_next("\x80", 1, &cp), 0);             /* lone continuation */
    CU_ASSERT_EQUAL(el_utf8_next("", 0, &cp), 0);
}

static void test_utf8_valid(void)
{
    CU_ASSERT_TRUE(el_utf8_valid("", 0));
    CU_ASSERT_TRUE(el_utf8_valid("caf\xc3\xa9 \xf0\x9f\x98\x80", 10));
    CU_ASSERT_TRUE(el_utf8_valid("a\0b", 3)); /* NUL is valid UTF-8 */
    CU_ASSERT_FALSE(el_utf8_valid("caf\xc3", 4));
    CU_ASSERT_FALSE(el_utf8_valid("\xed\xbf\xbf", 3));
}

static void test_hex_and_lower(void)
{
    char out[16];

    CU_ASSERT_EQUAL(el_hex_digit('0'), 0);
    CU_ASSERT_EQUAL(el_hex_digit('f'), 15);
    CU_ASSERT_EQUAL(el_hex_digit('F'), 15);
    CU_ASSERT_EQUAL(el_hex_digit('g'), -1);
    el_ascii_lower(out, "AbZ\xc3\x89-9", 8);
    CU_ASSERT_EQUAL(memcmp(out, "abz\xc3\x89-9", 8), 0); /* only A-Z change */
}

/* Decode s with fn into a buffer of cap bytes (+ NUL); the status, and the
 * bytes in got / *n. */
typedef enum el_pct_status (*pct_fn)(const char *, size_t, char *, size_t, size_t *);

static enum el_pct_status pct(pct_fn fn, const char *s, size_t cap, char *got, size_t *n)
{
    memset(got, 'X', 64);
    return fn(s, strlen(s), got, cap, n);
}

static void test_pct_rules(void)
{
    char got[64];
    size_t n;

    /* '+': a space in forms and query strings, itself in URLs. */
    CU_ASSERT_EQUAL(pct(el_pct_decode_form, "a+b%2Bc", 32, got, &n), EL_PCT_OK);
    CU_ASSERT_STRING_EQUAL(got, "a b+c");
    CU_ASSERT_EQUAL(n, 5);
    CU_ASSERT_EQUAL(pct(el_pct_decode_url, "a+b%2bc", 32, got, &n), EL_PCT_OK);
    CU_ASSERT_STRING_EQUAL(got, "a+b+c");
    /* Either case of hex, any byte but NUL; an empty input. */
    CU_ASSERT_EQUAL(pct(el_pct_decode_url, "%40%3a%C3%a9%ff", 32, got, &n), EL_PCT_OK);
    CU_ASSERT_EQUAL(n, 5);
    CU_ASSERT_EQUAL(memcmp(got, "@:\xc3\xa9\xff", 6), 0);
    CU_ASSERT_EQUAL(pct(el_pct_decode_form, "", 0, got, &n), EL_PCT_OK);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(got[0], '\0');
}

static void test_pct_errors(void)
{
    static const char *const bad[] = {"%", "a%", "%4", "a%4", "%g0", "%0g", "%%41", "ok%zz"};
    char got[64];
    size_t n;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CU_ASSERT_EQUAL(pct(el_pct_decode_form, bad[i], 32, got, &n), EL_PCT_BADESC);
        CU_ASSERT_EQUAL(pct(el_pct_decode_url, bad[i], 32, got, &n), EL_PCT_BADESC);
        CU_ASSERT_EQUAL(strlen(got), n); /* terminated, whatever was decoded */
    }
    CU_ASSERT_EQUAL(pct(el_pct_decode_form, "a%00b", 32, got, &n), EL_PCT_NUL);
    CU_ASSERT_EQUAL(pct(el_pct_decode_url, "%00", 32, got, &n), EL_PCT_NUL);
    /* Exactly cap fits; one more is too long, with the first cap kept. */
    CU_ASSERT_EQUAL(pct(el_pct_decode_form, "ab%63", 3, got, &n), EL_PCT_OK);
    CU_ASSERT_STRING_EQUAL(got, "abc");
    CU_ASSERT_EQUAL(pct(el_pct_decode_form, "ab%63d", 3, got, &n), EL_PCT_LONG);
    CU_ASSERT_STRING_EQUAL(got, "abc");
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT_EQUAL(pct(el_pct_decode_url, "abcd", 0, got, &n), EL_PCT_LONG);
    CU_ASSERT_EQUAL(n, 0);
    /* The whole input is checked: too long never hides a bad escape or a
     * NUL, and a bad escape wins over a NUL. */
    CU_ASSERT_EQUAL(pct(el_pct_decode_form, "abcdef%4", 3, got, &n), EL_PCT_BADESC);
    CU_ASSERT_EQUAL(pct(el_pct_decode_url, "abcdef%00", 3, got, &n), EL_PCT_NUL);
    CU_ASSERT_EQUAL(pct(el_pct_decode_form, "%00%zz", 32, got, &n), EL_PCT_BADESC);
}

void test_text_register(void)
{
    CU_pSuite s = CU_add_suite("text", NULL, NULL);

    CU_add_test(s, "UTF-8: one sequence", test_utf8_next);
    CU_add_test(s, "UTF-8: whole strings", test_utf8_valid);
    CU_add_test(s, "hex digits, ASCII lowercase", test_hex_and_lower);
    CU_add_test(s, "percent-decoding: '+' per use, hex, empty", test_pct_rules);
    CU_add_test(s, "percent-decoding: bad escapes, NUL, too long", test_pct_errors);
}
