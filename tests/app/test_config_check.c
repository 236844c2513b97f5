/* test_config_check.c -- app/config_check.c: REDIS_URL and TRUSTED_PROXIES
 * loaded by el_config_load and checked with the modules that own their
 * syntax, in messages of the shape every configuration error has. */
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "config_check.h"
#include "unit.h"

#define SECRET "0123456789abcdef0123456789abcdef" /* 32 characters */

/* Load with JWT_SECRET plus name=value, then check, as main() does. */
static int load_check(struct el_config *cfg, const char *name, const char *value,
                      struct el_err *err)
{
    struct unit_var env[] = {{"JWT_SECRET", SECRET}, {name, value}, {NULL, NULL}};
    int rc;

    memset(err, 0, sizeof(*err));
    rc = el_config_load(cfg, NULL, unit_table_getenv, env, err);
    return rc != EL_OK ? rc : el_app_config_check(cfg, err);
}

static void test_redis_url(void)
{
    static const char *const ok[] = {
        "redis://127.0.0.1:6379/0",
        "redis://:pw@cache:6380/2",
        "redis://u:pw@cache",
        "redis://localhost",
    };
    static const char *const bad[] = {
        "http://127.0.0.1:6379", "redis://",     "redis://h:0",    "redis://h:65536",
        "redis://h/x",           "redis://h/-1", "redis://user@h", "rediss://h",
    };
    struct el_config cfg;
    struct el_err err;

    CU_ASSERT_EQUAL(load_check(&cfg, NULL, NULL, &err), 0); /* the default */
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        CU_ASSERT_EQUAL(load_check(&cfg, "REDIS_URL", ok[i], &err), 0);
        CU_ASSERT_STRING_EQUAL(cfg.redis_url, ok[i]);
    }
    CU_ASSERT_EQUAL(load_check(&cfg, "REDIS_URL", "", &err), 0); /* empty: L2 disabled */
    CU_ASSERT_STRING_EQUAL(cfg.redis_url, "");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CU_ASSERT_EQUAL(load_check(&cfg, "REDIS_URL", bad[i], &err), EL_EINVAL);
        unit_check_config_msg(&err, "REDIS_URL", "(got \"");
    }
    CU_ASSERT_EQUAL(load_check(&cfg, "REDIS_URL", "redis://:hunter2@cache:99999/0", &err),
                    EL_EINVAL);
    unit_check_config_msg(&err, "REDIS_URL", "port");
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "redis://:***@cache:99999/0"));
    CU_ASSERT_PTR_NULL(strstr(err.msg, "hunter2"));
    CU_ASSERT_EQUAL(load_check(&cfg, "REDIS_URL", "redis://ca\nche:1\n/0", &err), EL_EINVAL);
    unit_check_config_msg(&err, "REDIS_URL",
                          "(got \"redis://ca\\nche:1\\n/0\")"); /* still one line */
}

static void test_trusted_proxies(void)
{
    struct el_config cfg;
    struct el_err err;

    CU_ASSERT_EQUAL(load_check(&cfg, "TRUSTED_PROXIES", "10.0.0.0/8, ::1 192.0.2.1", &err), 0);
    CU_ASSERT_EQUAL(load_check(&cfg, "TRUSTED_PROXIES", "", &err), 0);
    CU_ASSERT_EQUAL(load_check(&cfg, "TRUSTED_PROXIES", "10.0.0.0/33", &err), EL_EINVAL);
    unit_check_config_msg(&err, "TRUSTED_PROXIES", "10.0.0.0/33");
    CU_ASSERT_EQUAL(load_check(&cfg, "TRUSTED_PROXIES", "example.org", &err), EL_EINVAL);
    unit_check_config_msg(&err, "TRUSTED_PROXIES", "(got \"example.org\")");
}

void test_config_check_register(void)
{
    CU_pSuite s = CU_add_suite("config_check", NULL, NULL);

    CU_add_test(s, "REDIS_URL syntax, empty disables, password masked", test_redis_url);
    CU_add_test(s, "TRUSTED_PROXIES syntax", test_trusted_proxies);
}
