/* unit.h -- shared by the CUnit suites in tests/.
 *
 * Each tests/<layer>/test_<module>.c mirrors lib/<layer>/<module>.c and exports one
 * registration function, listed once in tests/unit.c. Servers the tests talk
 * to are started by tests/run-unit.sh on free ports and named here through
 * the environment:
 *   EL_TEST_REDIS_PORT   a private redis-server on 127.0.0.1
 *   EL_TEST_MONGO_URI    the MongoDB wire test server (or a real mongod)
 *   EL_TEST_TMPDIR       a scratch directory removed after the run
 * A suite whose server is not named fails (it does not skip). */
#ifndef EL_TEST_UNIT_H
#define EL_TEST_UNIT_H

#include <stddef.h>

#include <CUnit/CUnit.h>

/* The value of an environment variable the harness must set; a test that
 * calls this fails (CU_FAIL) when it is missing and gets "". */
const char *unit_env(const char *name);

/* "redis://127.0.0.1:<EL_TEST_REDIS_PORT>/<db>" in a static buffer. */
const char *unit_redis_url(int db);

/* EL_TEST_REDIS_PORT as a number (fails the test when it is not one). */
int unit_redis_port(void);

/* A plain hiredis connection to the harness's redis-server, database db
 * selected: for setting up and inspecting what the code under test sees.
 * The caller redisFree()s it. */
struct redisContext *unit_redis_raw(int db);

/* strdup and calloc (n may be 0) that abort the binary when memory runs
 * out: test data is not what a test checks. */
char *unit_strdup(const char *s);
void *unit_calloc(size_t n, size_t size);

/* A path under EL_TEST_TMPDIR in a static buffer (one per thread call). */
const char *unit_tmp_path(const char *name);

/* A fake environment for el_config_load: name/value pairs ending with a
 * NULL name, and the lookup function over it (arg: the table). */
struct unit_var {
    const char *name, *value;
};
const char *unit_table_getenv(const char *name, void *arg);

/* Assert that a configuration error is EL_EINVAL with a one-line message
 * starting with "<name>: " and containing want (when not NULL). */
struct el_err;
void unit_check_config_msg(const struct el_err *err, const char *name, const char *want);

/* Weak, so a partial build (one module and its suite, EL_TEST_PARTIAL=1)
 * links while other modules are being written; a full run refuses to start
 * when any suite is missing. */
#define UNIT_SUITE __attribute__((weak))
UNIT_SUITE void test_buf_register(void);
UNIT_SUITE void test_fcgi_register(void);
UNIT_SUITE void test_key_register(void);
UNIT_SUITE void test_blob_register(void);
UNIT_SUITE void test_l1_register(void);
UNIT_SUITE void test_config_register(void);
UNIT_SUITE void test_config_check_register(void);
UNIT_SUITE void test_course_register(void);
UNIT_SUITE void test_oid_register(void);
UNIT_SUITE void test_hash_register(void);
UNIT_SUITE void test_text_register(void);
UNIT_SUITE void test_store_register(void);
UNIT_SUITE void test_store_mongo_register(void);
UNIT_SUITE void test_redis_register(void);
UNIT_SUITE void test_tiered_register(void);
UNIT_SUITE void test_jwt_register(void);
UNIT_SUITE void test_password_register(void);
UNIT_SUITE void test_user_register(void);
UNIT_SUITE void test_course_input_register(void);
UNIT_SUITE void test_auth_register(void);
UNIT_SUITE void test_bus_register(void);
UNIT_SUITE void test_json_register(void);
UNIT_SUITE void test_form_register(void);
UNIT_SUITE void test_stats_register(void);
UNIT_SUITE void test_log_register(void);
UNIT_SUITE void test_forwarded_register(void);

#endif /* EL_TEST_UNIT_H */
