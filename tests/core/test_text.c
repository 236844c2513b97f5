/* test_text.c -- UTF-8 decoding and validation, hex digits, ASCII
 * lowercasing: the byte-level helpers every parser shares. */
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

void test_text_register(void)
{
    CU_pSuite s = CU_add_suite("text", NULL, NULL);

    CU_add_test(s, "UTF-8: one sequence", test_utf8_next);
    CU_add_test(s, "UTF-8: whole strings", test_utf8_valid);
    CU_add_test(s, "hex digits, ASCII lowercase", test_hex_and_lower);
}
