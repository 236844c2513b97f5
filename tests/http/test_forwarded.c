/* test_forwarded.c -- lib/http/forwarded.c: X-Forwarded-For is believed
 * only from trusted proxies, as far as the chain of trusted hops goes. */
#include <string.h>

#include <CUnit/CUnit.h>

#include "http/forwarded.h"
#include "unit.h"

static const char *client(const char *remote, const char *xff)
{
    static char out[64];

    el_forwarded_client(remote, xff, out, sizeof(out));
    return out;
}

static void test_check(void)
{
    struct el_err err = {0, ""};

    CU_ASSERT_EQUAL(el_forwarded_check("", &err), EL_OK);
    CU_ASSERT_EQUAL(el_forwarded_check("127.0.0.1, ::1 10.0.0.0/8,fd00::/8", &err), EL_OK);
    CU_ASSERT_EQUAL(el_forwarded_check("10.0.0.0/33", &err), EL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "10.0.0.0/33"));
    CU_ASSERT_EQUAL(el_forwarded_check("::/129", &err), EL_EINVAL);
    CU_ASSERT_EQUAL(el_forwarded_check("10.0.0.1/", &err), EL_EINVAL);
    CU_ASSERT_EQUAL(el_forwarded_check("10.0.0.1/-1", &err), EL_EINVAL);
    CU_ASSERT_EQUAL(el_forwarded_check("lb.example.org", &err), EL_EINVAL);
}

static void test_untrusted(void)
{
    struct el_err err = {0, ""};

    CU_ASSERT_EQUAL_FATAL(el_forwarded_setup("", &err), EL_OK);
    /* No trusted proxies: a client's X-Forwarded-For changes nothing. */
    CU_ASSERT_STRING_EQUAL(client("192.0.2.7", "203.0.113.9"), "192.0.2.7");
    CU_ASSERT_STRING_EQUAL(client(NULL, "203.0.113.9"), "-");
}

static void test_chain(void)
{
    struct el_err err = {0, ""};

    CU_ASSERT_EQUAL_FATAL(el_forwarded_setup("10.0.0.0/8 127.0.0.1 fd00::/8", &err), EL_OK);
    /* From a trusted balancer: the address it saw. */
    CU_ASSERT_STRING_EQUAL(client("10.1.2.3", "203.0.113.9"), "203.0.113.9");
    /* A client that prepends a forged entry gets its own address logged:
     * only the rightmost untrusted entry counts. */
    CU_ASSERT_STRING_EQUAL(client("10.1.2.3", "1.1.1.1, 203.0.113.9"), "203.0.113.9");
    /* Several trusted hops are walked through. */
    CU_ASSERT_STRING_EQUAL(client("127.0.0.1", "198.51.100.4 , 10.9.9.9"), "198.51.100.4");
    CU_ASSERT_STRING_EQUAL(client("127.0.0.1", "2001:db8::1, fd00::5"), "2001:db8::1");
    /* Only trusted hops: the leftmost one is the best we know. */
    CU_ASSERT_STRING_EQUAL(client("127.0.0.1", "10.0.0.2,10.0.0.3"), "10.0.0.2");
    /* Garbage stops the walk at the last trusted hop's word. */
    CU_ASSERT_STRING_EQUAL(client("127.0.0.1", "203.0.113.9, not-an-ip"), "127.0.0.1");
    CU_ASSERT_STRING_EQUAL(client("127.0.0.1", "unknown, 10.0.0.7"), "10.0.0.7");
    /* Empty entries and an empty header. */
    CU_ASSERT_STRING_EQUAL(client("127.0.0.1", ",, 203.0.113.9,"), "203.0.113.9");
    CU_ASSERT_STRING_EQUAL(client("127.0.0.1", ""), "127.0.0.1");
    /* From an untrusted peer nothing is believed. */
    CU_ASSERT_STRING_EQUAL(client("192.0.2.1", "203.0.113.9"), "192.0.2.1");
    CU_ASSERT_STRING_EQUAL(client("11.0.0.1", "203.0.113.9"), "11.0.0.1");
    /* IPv4-mapped IPv6 peers match IPv4 networks. */
    CU_ASSERT_STRING_EQUAL(client("::ffff:10.0.0.1", "203.0.113.9"), "203.0.113.9");
    CU_ASSERT_EQUAL(el_forwarded_setup("", &err), EL_OK);
}

static void test_prefix_edges(void)
{
    struct el_err err = {0, ""};

    CU_ASSERT_EQUAL_FATAL(el_forwarded_setup("192.168.1.128/25", &err), EL_OK);
    CU_ASSERT_STRING_EQUAL(client("192.168.1.128", "203.0.113.9"), "203.0.113.9");
    CU_ASSERT_STRING_EQUAL(client("192.168.1.255", "203.0.113.9"), "203.0.113.9");
    CU_ASSERT_STRING_EQUAL(client("192.168.1.127", "203.0.113.9"), "192.168.1.127");
    CU_ASSERT_EQUAL_FATAL(el_forwarded_setup("0.0.0.0/0", &err), EL_OK);
    CU_ASSERT_STRING_EQUAL(client("8.8.8.8", "203.0.113.9"), "203.0.113.9");
    CU_ASSERT_EQUAL(el_forwarded_setup("", &err), EL_OK);
}

void test_forwarded_register(void)
{
    CU_pSuite s = CU_add_suite("forwarded", NULL, NULL);

    CU_add_test(s, "TRUSTED_PROXIES syntax", test_check);
    CU_add_test(s, "no trusted proxies: REMOTE_ADDR", test_untrusted);
    CU_add_test(s, "the chain of trusted hops", test_chain);
    CU_add_test(s, "network prefixes at their edges", test_prefix_edges);
}
