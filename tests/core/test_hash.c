/* test_hash.c -- FNV-1a against the published test vectors; pieces hash
 * like the whole; the string form equals the bytes form. */
#include <string.h>

#include "core/hash.h"
#include "unit.h"

static void test_vectors(void)
{
    CU_ASSERT_EQUAL(el_fnv1a64(EL_FNV1A64_INIT, "", 0), 0xcbf29ce484222325ULL);
    CU_ASSERT_EQUAL(el_fnv1a64(EL_FNV1A64_INIT, "a", 1), 0xaf63dc4c8601ec8cULL);
    CU_ASSERT_EQUAL(el_fnv1a64(EL_FNV1A64_INIT, "foobar", 6), 0x85944171f73967e8ULL);
    CU_ASSERT_EQUAL(el_fnv1a64_str("foobar"), 0x85944171f73967e8ULL);
    CU_ASSERT_EQUAL(el_fnv1a64_str(""), EL_FNV1A64_INIT);
}

static void test_pieces(void)
{
    const char *s = "course:65a1b2c3d4e5f60718293a4b";
    uint64_t h = el_fnv1a64(EL_FNV1A64_INIT, s, 7);

    CU_ASSERT_EQUAL(el_fnv1a64(h, s + 7, strlen(s) - 7), el_fnv1a64_str(s));
}

void test_hash_register(void)
{
    CU_pSuite s = CU_add_suite("hash", NULL, NULL);

    CU_add_test(s, "FNV-1a test vectors", test_vectors);
    CU_add_test(s, "in pieces, and as a string", test_pieces);
}
