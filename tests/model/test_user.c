/* test_user.c -- the user's public JSON and email normalisation, one test
 * per rule. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "model/user.h"

/* el_email_normalize(in) must fail with EL_EINVAL; prints the input when
 * it does not, so a failing rule names itself. */
static void refuse(const char *in)
{
    char out[EL_EMAIL_MAX + 1];
    int rc = el_email_normalize(in, out, sizeof(out));

    CU_ASSERT_EQUAL(rc, EL_EINVAL);
    if (rc != EL_EINVAL)
        fprintf(stderr, "\n  accepted: \"%s\"\n", in);
}

/* ... must succeed and give want. */
static void accept(const char *in, const char *want)
{
    char out[EL_EMAIL_MAX + 1];
    int rc = el_email_normalize(in, out, sizeof(out));

    CU_ASSERT_EQUAL(rc, EL_OK);
    if (rc != EL_OK) {
        fprintf(stderr, "\n  refused: \"%s\"\n", in);
        return;
    }
    CU_ASSERT_STRING_EQUAL(out, want);
}

static void test_to_json(void)
{
    char email[] = "ann@example.com", name[] = "Ann \"the\" Coder / \xc3\xa9",
         hash[] = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";
    struct el_user u;
    struct el_buf b;

    memset(&u, 0, sizeof(u));
    strcpy(u.id, "65a1b2c3d4e5f60718293a4b");
    u.email = email;
    u.name = name;
    strcpy(u.role, "student");
    u.password_hash = hash;
    u.created_at = 1700000000000;
    el_buf_init(&b, 4096);
    CU_ASSERT_EQUAL_FATAL(el_user_to_json(&u, &b), EL_OK);
    CU_ASSERT_STRING_EQUAL(b.data, "{\"_id\":\"65a1b2c3d4e5f60718293a4b\",\"email\":"
                                   "\"ann@example.com\",\"name\":\"Ann \\\"the\\\" Coder / "
                                   "\xc3\xa9\",\"role\":\"student\"}");
    CU_ASSERT_PTR_NULL(strstr(b.data, "argon2"));
    el_buf_cleanup(&b);

    /* Missing strings keep the shape. */
    memset(&u, 0, sizeof(u));
    el_buf_init(&b, 4096);
    CU_ASSERT_EQUAL_FATAL(el_user_to_json(&u, &b), EL_OK);
    CU_ASSERT_STRING_EQUAL(b.data, "{\"_id\":\"\",\"email\":\"\",\"name\":\"\",\"role\":\"\"}");
    el_buf_cleanup(&b);

    /* Appends, and reports a full buffer. */
    el_buf_init(&b, 20);
    CU_ASSERT_EQUAL(el_buf_adds(&b, "["), EL_OK);
    CU_ASSERT_EQUAL(el_user_to_json(&u, &b), EL_ETOOBIG);
    el_buf_cleanup(&b);
}

static void test_cleanup(void)
{
    struct el_user u;

    memset(&u, 0, sizeof(u));
    strcpy(u.id, "65a1b2c3d4e5f60718293a4b");
    u.email = strdup("a@b.co");
    u.name = strdup("A");
    u.password_hash = strdup("$argon2id$...");
    CU_ASSERT_PTR_NOT_NULL_FATAL(u.email);
    el_user_cleanup(&u);
    CU_ASSERT_PTR_NULL(u.email);
    CU_ASSERT_PTR_NULL(u.name);
    CU_ASSERT_PTR_NULL(u.password_hash);
    CU_ASSERT_EQUAL(u.id[0], '\0');
    el_user_cleanup(&u); /* twice is harmless */
    el_user_cleanup(NULL);
}

static void test_trim_and_lowercase(void)
{
    accept("ann@example.com", "ann@example.com");
    accept("  Ann@Example.COM\t\r\n", "ann@example.com");
    accept("\v\fJOHN.SMITH+Tag@Mail.Example.ORG ", "john.smith+tag@mail.example.org");
    /* Only ASCII is folded; other letters are kept as typed. */
    accept("\xc3\x89lise@Exemple.fr", "\xc3\x89lise@exemple.fr");
    refuse("");
    refuse("   \t ");
    refuse(NULL);
}

static void test_one_at(void)
{
    refuse("annexample.com");
    refuse("ann@@example.com");
    refuse("ann@x@example.com");
    refuse("\"ann@x\"@example.com");
}

static void test_local_part(void)
{
    char addr[128];

    refuse("@example.com");
    memset(addr, 'a', 64);
    strcpy(addr + 64, "@example.com");
    accept(addr, addr); /* 64 bytes */
    memset(addr, 'a', 65);
    strcpy(addr + 65, "@example.com");
    refuse(addr);
    accept("o'brien+news@example.com", "o'brien+news@example.com");
}

static void test_domain(void)
{
    refuse("ann@");
    refuse("ann@localhost");
    refuse("ann@.example.com");
    refuse("ann@example.com.");
    refuse("ann@.");
    refuse("ann@a.");
    refuse("ann@.a");
    accept("ann@a.b", "ann@a.b");
    accept("ann@sub.example.co.uk", "ann@sub.example.co.uk");
}

static void test_consecutive_dots(void)
{
    refuse("ann@example..com");
    refuse("an..n@example.com");
    refuse("ann..@example.com");
    accept("a.n.n@example.com", "a.n.n@example.com");
}

static void test_printable_only(void)
{
    refuse("an n@example.com");
    refuse("ann@exa mple.com");
    refuse("an\tn@example.com");
    refuse("ann@example.com\x01");
    refuse("an\x7fn@example.com");
    refuse("an\x1bn@example.com");
    refuse("ann\xc2\xa0@example.com");     /* no-break space */
    refuse("ann\xc2\x85@example.com");     /* C1 NEL */
    refuse("ann\xe2\x80\x8b@example.com"); /* zero-width space */
    /* NOLINTNEXTLINE(misc-misleading-bidirectional): the point of the test */
    refuse("ann\xe2\x80\xae@example.com"); /* right-to-left override */
    refuse("ann\xe3\x80\x80@example.com"); /* ideographic space */
    refuse("\xef\xbb\xbf"
           "ann@example.com"); /* BOM */
}

static void test_total_length(void)
{
    char addr[300];
    size_t i;

    /* 64 + 1 + 189 = 254 bytes: the limit. */
    memset(addr, 'a', 64);
    addr[64] = '@';
    for (i = 65; i < 254; i++)
        addr[i] = (i % 50 == 0) ? '.' : 'b';
    addr[254] = '\0';
    CU_ASSERT_EQUAL_FATAL(strlen(addr), 254);
    accept(addr, addr);
    addr[254] = 'c';
    addr[255] = '\0';
    refuse(addr);
    /* Surrounding spaces do not count against the limit. */
    addr[254] = '\0';
    {
        char padded[400];
        snprintf(padded, sizeof(padded), "   %s        ", addr);
        accept(padded, addr);
    }
}

static void test_utf8(void)
{
    accept("\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\x85\xac\xe5\x8f\xb8",
           "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\x85\xac\xe5\x8f\xb8");
    accept("ann@m\xc3\xbcnchen.de", "ann@m\xc3\xbcnchen.de");
    refuse("ann\xff@example.com");             /* not UTF-8 */
    refuse("ann\xc3@example.com");             /* truncated sequence */
    refuse("ann\xc0\xae@example.com");         /* overlong '.' */
    refuse("ann\xed\xa0\x80@example.com");     /* surrogate */
    refuse("ann\xf4\x90\x80\x80@example.com"); /* above U+10FFFF */
    refuse("ann@example.com\xe2\x82");         /* cut at the end */
}

static void test_small_buffer(void)
{
    char out[8];

    CU_ASSERT_EQUAL(el_email_normalize("ann@example.com", out, sizeof(out)), EL_ETOOBIG);
    CU_ASSERT_EQUAL(el_email_normalize("a@b.co", out, sizeof(out)), EL_OK);
    CU_ASSERT_STRING_EQUAL(out, "a@b.co");
    /* An invalid address is invalid whatever the buffer. */
    CU_ASSERT_EQUAL(el_email_normalize("not an email", out, sizeof(out)), EL_EINVAL);
}

void test_user_register(void)
{
    CU_pSuite s = CU_add_suite("user", NULL, NULL);

    CU_add_test(s, "public JSON", test_to_json);
    CU_add_test(s, "cleanup", test_cleanup);
    CU_add_test(s, "email: trimmed and lowercased", test_trim_and_lowercase);
    CU_add_test(s, "email: exactly one @", test_one_at);
    CU_add_test(s, "email: local part 1-64 bytes", test_local_part);
    CU_add_test(s, "email: dotted domain", test_domain);
    CU_add_test(s, "email: no consecutive dots", test_consecutive_dots);
    CU_add_test(s, "email: printable, no spaces", test_printable_only);
    CU_add_test(s, "email: at most 254 bytes", test_total_length);
    CU_add_test(s, "email: valid UTF-8", test_utf8);
    CU_add_test(s, "email: buffer too small", test_small_buffer);
}
