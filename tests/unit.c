/* unit.c -- the CUnit runner: every suite, declared once here. Exits
 * non-zero when any test fails or the registry cannot be built. A single
 * suite can be picked with EL_TEST_SUITE=<name> while debugging. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <hiredis/hiredis.h>

#include "core/el.h"
#include "unit.h"

const char *unit_env(const char *name)
{
    const char *v = getenv(name);

    if (v == NULL || *v == '\0') {
        fprintf(stderr, "unit: %s is not set (run through tests/run-unit.sh)\n", name);
        CU_FAIL_FATAL("required test environment variable missing");
        return "";
    }
    return v;
}

const char *unit_redis_url(int db)
{
    static char url[128];

    snprintf(url, sizeof(url), "redis://127.0.0.1:%s/%d", unit_env("EL_TEST_REDIS_PORT"), db);
    return url;
}

int unit_redis_port(void)
{
    const char *s = unit_env("EL_TEST_REDIS_PORT");
    char *end;
    long port = strtol(s, &end, 10);

    if (end == s || *end != '\0' || port <= 0 || port > 65535) {
        CU_FAIL_FATAL("EL_TEST_REDIS_PORT is not a port number");
        return 0;
    }
    return (int)port;
}

struct redisContext *unit_redis_raw(int db)
{
    redisContext *c = redisConnect("127.0.0.1", unit_redis_port());

    CU_ASSERT_FATAL(c != NULL && c->err == 0);
    freeReplyObject(redisCommand(c, "SELECT %d", db));
    return c;
}

char *unit_strdup(const char *s)
{
    char *p = strdup(s);

    if (p == NULL)
        abort();
    return p;
}

void *unit_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);

    if (p == NULL)
        abort();
    return p;
}

const char *unit_tmp_path(const char *name)
{
    static __thread char path[512];

    snprintf(path, sizeof(path), "%s/%s", unit_env("EL_TEST_TMPDIR"), name);
    return path;
}

const char *unit_table_getenv(const char *name, void *arg)
{
    for (const struct unit_var *v = arg; v->name != NULL; v++)
        if (strcmp(v->name, name) == 0)
            return v->value;
    return NULL;
}

void unit_check_config_msg(const struct el_err *err, const char *name, const char *want)
{
    size_t n = strlen(name);

    CU_ASSERT_EQUAL(err->code, EL_EINVAL);
    CU_ASSERT(strncmp(err->msg, name, n) == 0 && err->msg[n] == ':');
    CU_ASSERT_PTR_NULL(strchr(err->msg, '\n'));
    if (want && strstr(err->msg, want) == NULL) {
        fprintf(stderr, "message \"%s\" lacks \"%s\"\n", err->msg, want);
        CU_FAIL("error message");
    }
}

static void (*const suites[])(void) = {
    test_buf_register,       test_key_register,          test_blob_register,
    test_l1_register,        test_config_register,       test_course_register,
    test_store_register,     test_store_mongo_register,  test_redis_register,
    test_tiered_register,    test_jwt_register,          test_password_register,
    test_user_register,      test_course_input_register, test_auth_register,
    test_bus_register,       test_json_register,         test_form_register,
    test_stats_register,     test_fcgi_register,         test_log_register,
    test_forwarded_register, test_oid_register,          test_hash_register,
    test_text_register,      test_config_check_register,
};

int main(void)
{
    unsigned failed;

    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
        if (suites[i] != NULL)
            suites[i]();
        else if (getenv("EL_TEST_PARTIAL") == NULL) {
            fprintf(stderr, "unit: suite %zu is not linked in\n", i);
            return 2;
        }
    }
    if (CU_get_error() != CUE_SUCCESS) {
        fprintf(stderr, "unit: registry error: %s\n", CU_get_error_msg());
        return 2;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    if (getenv("EL_TEST_SUITE")) {
        CU_pSuite s = CU_get_suite(getenv("EL_TEST_SUITE"));
        if (s == NULL)
            return 2;
        CU_basic_run_suite(s);
    } else {
        CU_basic_run_tests();
    }
    failed = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
