/* test_config.c -- lib/core/config.c: every variable's default, bounds just
 * inside and just outside, garbage, the MONGO_URI fallback, the env file
 * format and precedence, and the shape of error messages.
 *
 * Most tests pass a lookup function over a table instead of touching the
 * process environment, so they are independent of the shell that runs them;
 * one test checks the NULL (process environment) path with setenv. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "core/config.h"
#include "unit.h"

#define SECRET "0123456789abcdef0123456789abcdef" /* 32 characters */

/* Load with JWT_SECRET set plus one more variable (name may be NULL). */
static int load1(struct el_config *cfg, const char *name, const char *value, struct el_err *err)
{
    struct unit_var env[] = {{"JWT_SECRET", SECRET}, {name, value}, {NULL, NULL}};

    memset(err, 0, sizeof(*err));
    return el_config_load(cfg, NULL, unit_table_getenv, env, err);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    CU_ASSERT_FATAL(f != NULL);
    fputs(text, f);
    CU_ASSERT_FATAL(fclose(f) == 0);
}

/* ---- defaults and each variable --------------------------------------- */

static void test_defaults(void)
{
    struct el_config cfg;
    struct el_err err;

    memset(&cfg, 0xa5, sizeof(cfg));
    CU_ASSERT_EQUAL_FATAL(load1(&cfg, NULL, NULL, &err), 0);
    CU_ASSERT_STRING_EQUAL(cfg.db_uri, "sqlite:var/elearn.db");
    CU_ASSERT_STRING_EQUAL(cfg.redis_url, "redis://127.0.0.1:6379/0");
    CU_ASSERT_STRING_EQUAL(cfg.jwt_secret, SECRET);
    CU_ASSERT_EQUAL(cfg.access_token_expire_minutes, 15);
    CU_ASSERT_EQUAL(cfg.refresh_token_expire_days, 7);
    CU_ASSERT_EQUAL(cfg.course_ttl, 300);
    CU_ASSERT_EQUAL(cfg.course_list_ttl, 120);
    CU_ASSERT_EQUAL(cfg.l1_max_bytes, (size_t)67108864);
    CU_ASSERT_EQUAL(cfg.workers, 16);
    CU_ASSERT_EQUAL(cfg.redis_timeout_ms, 100);
    CU_ASSERT_EQUAL(cfg.db_timeout_ms, 1500);
    CU_ASSERT_EQUAL(cfg.idle_timeout_s, 60);
    CU_ASSERT_EQUAL(cfg.l1_max_stale_ms, 1000);
    CU_ASSERT_EQUAL(cfg.cache_warm_ms, 3000);
}

static const struct int_case {
    const char *name;
    size_t off;
    int min, max;
} int_cases[] = {
    {"ACCESS_TOKEN_EXPIRE_MINUTES", offsetof(struct el_config, access_token_expire_minutes), 1,
     1440},
    {"REFRESH_TOKEN_EXPIRE_DAYS", offsetof(struct el_config, refresh_token_expire_days), 1, 30},
    {"COURSE_TTL", offsetof(struct el_config, course_ttl), 1, 86400},
    {"COURSE_LIST_TTL", offsetof(struct el_config, course_list_ttl), 1, 86400},
    {"WORKERS", offsetof(struct el_config, workers), 1, 1024},
    {"REDIS_TIMEOUT_MS", offsetof(struct el_config, redis_timeout_ms), 10, 5000},
    {"DB_TIMEOUT_MS", offsetof(struct el_config, db_timeout_ms), 100, 30000},
    {"IDLE_TIMEOUT", offsetof(struct el_config, idle_timeout_s), 1, 3600},
    {"REQUEST_TIMEOUT", offsetof(struct el_config, request_timeout_s), 1, 3600},
    {"SEND_TIMEOUT", offsetof(struct el_config, send_timeout_s), 1, 3600},
    {"EVENT_THREADS", offsetof(struct el_config, event_threads), 1, 64},
    {"L1_MAX_STALE", offsetof(struct el_config, l1_max_stale_ms), 50, 60000},
    {"CACHE_WARM_MS", offsetof(struct el_config, cache_warm_ms), 0, 60000},
};

static void test_int_bounds(void)
{
    for (size_t i = 0; i < sizeof(int_cases) / sizeof(int_cases[0]); i++) {
        const struct int_case *ic = &int_cases[i];
        int inside[4] = {ic->min, ic->min + 1, ic->max - 1, ic->max};
        int outside[2] = {ic->min - 1, ic->max + 1};
        struct el_config cfg;
        struct el_err err;
        char v[32], want[160];

        for (int k = 0; k < 4; k++) {
            snprintf(v, sizeof(v), "%d", inside[k]);
            CU_ASSERT_EQUAL(load1(&cfg, ic->name, v, &err), 0);
            CU_ASSERT_EQUAL(*(int *)((char *)&cfg + ic->off), inside[k]);
        }
        for (int k = 0; k < 2; k++) {
            snprintf(v, sizeof(v), "%d", outside[k]);
            CU_ASSERT_EQUAL(load1(&cfg, ic->name, v, &err), EL_EINVAL);
            snprintf(want, sizeof(want), "%s: must be an integer between %d and %d (got \"%s\")",
                     ic->name, ic->min, ic->max, v);
            CU_ASSERT_STRING_EQUAL(err.msg, want);
        }
    }
}

static void test_int_garbage(void)
{
    static const char *const garbage[] = {
        "",
        "abc",
        " 15",
        "15 ",
        "+15",
        "15abc",
        "1e3",
        "0x10",
        "1.5",
        "--5",
        "-",
        "99999999999999999999999",
        "-99999999999999999999999",
        "15\n",
        "１５",
    };

    for (size_t i = 0; i < sizeof(int_cases) / sizeof(int_cases[0]); i++) {
        for (size_t k = 0; k < sizeof(garbage) / sizeof(garbage[0]); k++) {
            struct el_config cfg;
            struct el_err err;

            CU_ASSERT_EQUAL(load1(&cfg, int_cases[i].name, garbage[k], &err), EL_EINVAL);
            unit_check_config_msg(&err, int_cases[i].name, "must be an integer between");
        }
    }
}

static void test_message_shape(void)
{
    struct el_config cfg;
    struct el_err err;
    char longv[600];

    CU_ASSERT_EQUAL(load1(&cfg, "COURSE_TTL", "abc", &err), EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg,
                           "COURSE_TTL: must be an integer between 1 and 86400 (got \"abc\")");

    /* Control characters and quotes are escaped: the message stays one line. */
    CU_ASSERT_EQUAL(load1(&cfg, "WORKERS", "1\n2\t\"x\"", &err), EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, "WORKERS: must be an integer between 1 and 1024 "
                                    "(got \"1\\n2\\x09\\\"x\\\"\")");

    /* A long value is cut, and the message still ends properly. */
    memset(longv, '7', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    CU_ASSERT_EQUAL(load1(&cfg, "L1_MAX_BYTES", longv, &err), EL_EINVAL);
    unit_check_config_msg(&err, "L1_MAX_BYTES", "...\")");
    CU_ASSERT(strlen(err.msg) < sizeof(err.msg) - 1);

    /* err may be NULL. */
    {
        struct unit_var env[] = {{"JWT_SECRET", SECRET}, {"WORKERS", "0"}, {NULL, NULL}};

        CU_ASSERT_EQUAL(el_config_load(&cfg, NULL, unit_table_getenv, env, NULL), EL_EINVAL);
    }
}

static void test_failure_leaves_cfg(void)
{
    struct el_config cfg, before;
    struct el_err err;

    memset(&cfg, 0x5a, sizeof(cfg));
    before = cfg;
    CU_ASSERT_EQUAL(load1(&cfg, "IDLE_TIMEOUT", "0", &err), EL_EINVAL);
    CU_ASSERT_EQUAL(memcmp(&cfg, &before, sizeof(cfg)), 0);
}

static void test_l1_max_bytes(void)
{
    static const struct {
        const char *v;
        unsigned long long want;
    } ok[] = {
        {"0", 0},
        {"1", 1},
        {"1024", 1024},
        {"1K", 1024},
        {"1k", 1024},
        {"64M", 64ull << 20},
        {"3m", 3ull << 20},
        {"2G", 2ull << 30},
        {"64G", 64ull << 30},
        {"65536M", 64ull << 30},
        {"68719476736", 64ull << 30},
        {"007", 7},
    };
    static const char *const bad[] = {
        "",
        "-1",
        "K",
        "1KB",
        "1KiB",
        "1T",
        "1 K",
        " 1",
        "1.5G",
        "65G",
        "65537M",
        "68719476737",
        "18446744073709551616",
        "17179869184G",
        "0x10",
        "1e6",
    };
    struct el_config cfg;
    struct el_err err;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        CU_ASSERT_EQUAL(load1(&cfg, "L1_MAX_BYTES", ok[i].v, &err), 0);
        CU_ASSERT_EQUAL(cfg.l1_max_bytes, (size_t)ok[i].want);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CU_ASSERT_EQUAL(load1(&cfg, "L1_MAX_BYTES", bad[i], &err), EL_EINVAL);
        unit_check_config_msg(&err, "L1_MAX_BYTES", "(got \"");
    }
}

static void test_jwt_secret(void)
{
    struct unit_var none[] = {{NULL, NULL}};
    struct unit_var shortv[] = {{"JWT_SECRET", "0123456789abcdef0123456789abcde"}, {NULL, NULL}};
    struct unit_var empty[] = {{"JWT_SECRET", ""}, {NULL, NULL}};
    struct unit_var longv[] = {{"JWT_SECRET", NULL}, {NULL, NULL}};
    char big[EL_CONFIG_STR + 1];
    struct el_config cfg;
    struct el_err err;

    CU_ASSERT_EQUAL(el_config_load(&cfg, NULL, unit_table_getenv, none, &err), EL_EINVAL);
    unit_check_config_msg(&err, "JWT_SECRET", "required");

    CU_ASSERT_EQUAL(el_config_load(&cfg, NULL, unit_table_getenv, shortv, &err), EL_EINVAL);
    unit_check_config_msg(&err, "JWT_SECRET", "at least 32 characters (got 31 characters)");
    CU_ASSERT_PTR_NULL(strstr(err.msg, "0123456789")); /* the secret is never shown */

    CU_ASSERT_EQUAL(el_config_load(&cfg, NULL, unit_table_getenv, empty, &err), EL_EINVAL);
    unit_check_config_msg(&err, "JWT_SECRET", "(got 0 characters)");

    memset(big, 's', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0'; /* 512 characters: one too many for the field */
    longv[0].value = big;
    CU_ASSERT_EQUAL(el_config_load(&cfg, NULL, unit_table_getenv, longv, &err), EL_EINVAL);
    unit_check_config_msg(&err, "JWT_SECRET", "(got 512 characters)");
    CU_ASSERT_PTR_NULL(strstr(err.msg, "ssssssss"));
    big[EL_CONFIG_STR - 1] = '\0'; /* 511: fits */
    CU_ASSERT_EQUAL(el_config_load(&cfg, NULL, unit_table_getenv, longv, &err), 0);
    CU_ASSERT_EQUAL(strlen(cfg.jwt_secret), EL_CONFIG_STR - 1);
}

static void test_db_uri(void)
{
    static const char *const ok[] = {
        "mongodb://127.0.0.1:27017/elearn",
        "mongodb://user:pw@db1,db2/elearn?replicaSet=rs0",
        "mongodb+srv://cluster0.example.net/elearn",
        "sqlite:var/elearn.db",
        "sqlite:/tmp/x.db",
    };
    static const char *const bad[] = {
        "",        "postgres://h/db", "mongodb://",    "mongodb:///db", "mongodb+srv://",
        "sqlite:", "sqlite",          "var/elearn.db", "MONGODB://h",
    };
    struct el_config cfg;
    struct el_err err;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        CU_ASSERT_EQUAL(load1(&cfg, "DB_URI", ok[i], &err), 0);
        CU_ASSERT_STRING_EQUAL(cfg.db_uri, ok[i]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CU_ASSERT_EQUAL(load1(&cfg, "DB_URI", bad[i], &err), EL_EINVAL);
        unit_check_config_msg(&err, "DB_URI", "(got \"");
    }
    /* The password in a rejected URL is masked. */
    CU_ASSERT_EQUAL(load1(&cfg, "DB_URI", "mysql://app:hunter2@db/x", &err), EL_EINVAL);
    unit_check_config_msg(&err, "DB_URI", "(got \"mysql://app:***@db/x\")");
    CU_ASSERT_PTR_NULL(strstr(err.msg, "hunter2"));
}

static void test_mongo_uri_fallback(void)
{
    struct unit_var only_mongo[] = {
        {"JWT_SECRET", SECRET}, {"MONGO_URI", "mongodb://m:27017/a"}, {NULL, NULL}};
    struct unit_var both[] = {{"JWT_SECRET", SECRET},
                              {"MONGO_URI", "mongodb://m:27017/a"},
                              {"DB_URI", "sqlite:/tmp/b.db"},
                              {NULL, NULL}};
    struct unit_var bad_mongo[] = {
        {"JWT_SECRET", SECRET}, {"MONGO_URI", "mongo://m"}, {NULL, NULL}};
    struct el_config cfg;
    struct el_err err = {0, ""};

    CU_ASSERT_EQUAL(el_config_load(&cfg, NULL, unit_table_getenv, only_mongo, &err), 0);
    CU_ASSERT_STRING_EQUAL(cfg.db_uri, "mongodb://m:27017/a");
    CU_ASSERT_EQUAL(el_config_load(&cfg, NULL, unit_table_getenv, both, &err), 0);
    CU_ASSERT_STRING_EQUAL(cfg.db_uri, "sqlite:/tmp/b.db");
    CU_ASSERT_EQUAL(el_config_load(&cfg, NULL, unit_table_getenv, bad_mongo, &err), EL_EINVAL);
    unit_check_config_msg(&err, "MONGO_URI",
                          "(got \"mongo://m\")"); /* names the variable it came from */
}

/* Their syntax belongs to higher layers (checked by app/config_check.c):
 * here they are stored as given. */
static void test_stored_as_given(void)
{
    struct el_config cfg;
    struct el_err err;

    CU_ASSERT_EQUAL(load1(&cfg, "REDIS_URL", "redis://:pw@cache:6380/2", &err), 0);
    CU_ASSERT_STRING_EQUAL(cfg.redis_url, "redis://:pw@cache:6380/2");
    CU_ASSERT_EQUAL(load1(&cfg, "REDIS_URL", "", &err), 0); /* empty: L2 disabled */
    CU_ASSERT_STRING_EQUAL(cfg.redis_url, "");
    CU_ASSERT_EQUAL(load1(&cfg, "REDIS_URL", "http://not-redis", &err), 0);
    CU_ASSERT_STRING_EQUAL(cfg.redis_url, "http://not-redis");
    CU_ASSERT_EQUAL(load1(&cfg, "TRUSTED_PROXIES", "example.org", &err), 0);
    CU_ASSERT_STRING_EQUAL(cfg.trusted_proxies, "example.org");
}

/* ---- the env file ----------------------------------------------------- */

static void test_env_file(void)
{
    const char *path = unit_tmp_path("config-ok.env");
    struct unit_var env[] = {{"WORKERS", "3"}, {NULL, NULL}};
    struct el_config cfg;
    struct el_err err = {0, ""};

    write_file(path, "# elearn settings\n"
                     "\n"
                     "   \t\n"
                     "JWT_SECRET=\"" SECRET "\"\n"
                     "export COURSE_TTL=600\n"
                     "COURSE_LIST_TTL='90'   # single quotes, then a comment\n"
                     "  IDLE_TIMEOUT = 30\n"
                     "WORKERS=99\n" /* the environment says 3 */
                     "REDIS_URL=\n" /* set, empty: L2 off */
                     "DB_TIMEOUT_MS=2000 # inline comment\n"
                     "ACCESS_TOKEN_EXPIRE_MINUTES=20\r\n" /* CRLF */
                     "REFRESH_TOKEN_EXPIRE_DAYS=1\n"
                     "REFRESH_TOKEN_EXPIRE_DAYS=2\n" /* the later line wins */
                     "DB_URI=sqlite:/srv/db#1.db\n"  /* '#' not after a space is data */
                     "L1_MAX_BYTES=\"1M\"\n"
                     "REDIS_TIMEOUT_MS=250"); /* no final newline */
    CU_ASSERT_EQUAL_FATAL(el_config_load(&cfg, path, unit_table_getenv, env, &err), 0);
    CU_ASSERT_STRING_EQUAL(cfg.jwt_secret, SECRET);
    CU_ASSERT_EQUAL(cfg.course_ttl, 600);
    CU_ASSERT_EQUAL(cfg.course_list_ttl, 90);
    CU_ASSERT_EQUAL(cfg.idle_timeout_s, 30);
    CU_ASSERT_EQUAL(cfg.workers, 3);
    CU_ASSERT_STRING_EQUAL(cfg.redis_url, "");
    CU_ASSERT_EQUAL(cfg.db_timeout_ms, 2000);
    CU_ASSERT_EQUAL(cfg.access_token_expire_minutes, 20);
    CU_ASSERT_EQUAL(cfg.refresh_token_expire_days, 2);
    CU_ASSERT_STRING_EQUAL(cfg.db_uri, "sqlite:/srv/db#1.db");
    CU_ASSERT_EQUAL(cfg.l1_max_bytes, (size_t)1 << 20);
    CU_ASSERT_EQUAL(cfg.redis_timeout_ms, 250);
}

static void test_env_file_quotes(void)
{
    const char *path = unit_tmp_path("config-quotes.env");
    struct el_config cfg;
    struct el_err err = {0, ""};

    /* Quotes keep spaces, '#' and the other kind of quote literally. */
    write_file(path, "JWT_SECRET='  a \"b\" # c 0123456789abcdefghijklmn  '\n"
                     "DB_URI=\"sqlite:/my data/it's.db\"\n"
                     "REDIS_URL= #nothing but a comment\n");
    CU_ASSERT_EQUAL_FATAL(
        el_config_load(&cfg, path, unit_table_getenv, (struct unit_var[]){{NULL, NULL}}, &err), 0);
    CU_ASSERT_STRING_EQUAL(cfg.jwt_secret, "  a \"b\" # c 0123456789abcdefghijklmn  ");
    CU_ASSERT_STRING_EQUAL(cfg.db_uri, "sqlite:/my data/it's.db");
    CU_ASSERT_STRING_EQUAL(cfg.redis_url, "");

    /* A value in the file is validated like one from the environment. */
    write_file(path, "JWT_SECRET=" SECRET "\nCOURSE_TTL=\"0\"\n");
    CU_ASSERT_EQUAL(
        el_config_load(&cfg, path, unit_table_getenv, (struct unit_var[]){{NULL, NULL}}, &err),
        EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, "COURSE_TTL: must be an integer between 1 and 86400 "
                                    "(got \"0\")");
}

static void test_env_file_malformed(void)
{
    static const struct {
        const char *text;
        const char *where; /* "path:line:" suffix expected */
        const char *what;
    } bad[] = {
        {"JWT_SECRET=" SECRET "\nNO_EQUALS_SIGN\n", ":2:", "expected KEY=VALUE"},
        {"# c\n\n1BAD=x\n", ":3:", "expected KEY=VALUE"},
        {"=value\n", ":1:", "expected KEY=VALUE"},
        {"BAD-KEY=x\n", ":1:", "expected KEY=VALUE"},
        {"export\n", ":1:", "expected KEY=VALUE"},
        {"A=1\nB=\"unterminated\n", ":2:", "unterminated double quote"},
        {"A='x\n", ":1:", "unterminated single quote"},
        {"A='x' trailing\n", ":1:", "unexpected text after the closing quote"},
        {"A=\"x\"y\n", ":1:", "unexpected text after the closing quote"},
    };
    const char *path = unit_tmp_path("config-bad.env");

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct unit_var env[] = {{"JWT_SECRET", SECRET}, {NULL, NULL}};
        struct el_config cfg;
        struct el_err err = {0, ""};
        char want[600];

        write_file(path, bad[i].text);
        CU_ASSERT_EQUAL(el_config_load(&cfg, path, unit_table_getenv, env, &err), EL_EINVAL);
        snprintf(want, sizeof(want), "%s%s %s", path, bad[i].where, bad[i].what);
        if (strcmp(err.msg, want) != 0) {
            fprintf(stderr, "got \"%s\", want \"%s\"\n", err.msg, want);
            CU_FAIL("malformed line message");
        }
    }

    /* A malformed line's text (it may hold a secret) is not quoted. */
    {
        struct el_config cfg;
        struct el_err err = {0, ""};

        write_file(path, "JWT_SECRET 'supersecretsupersecretsupersecret'\n");
        CU_ASSERT_EQUAL(
            el_config_load(&cfg, path, unit_table_getenv, (struct unit_var[]){{NULL, NULL}}, &err),
            EL_EINVAL);
        CU_ASSERT_PTR_NULL(strstr(err.msg, "supersecret"));
    }
}

static void test_env_file_unreadable(void)
{
    const char *missing = unit_tmp_path("config-does-not-exist.env");
    const char *dir = unit_tmp_path("config-a-directory");
    struct unit_var env[] = {{"JWT_SECRET", SECRET}, {NULL, NULL}};
    struct el_config cfg;
    struct el_err err = {0, ""};

    CU_ASSERT_EQUAL(el_config_load(&cfg, missing, unit_table_getenv, env, &err), EL_EIO);
    CU_ASSERT_EQUAL(err.code, EL_EIO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, missing));

    CU_ASSERT_FATAL(mkdir(dir, 0700) == 0 || errno == EEXIST);
    CU_ASSERT_EQUAL(el_config_load(&cfg, dir, unit_table_getenv, env, &err), EL_EIO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, dir));
}

/* getenv_fn NULL reads the process environment, which still beats the
 * file. */
static void test_process_environment(void)
{
    static const char *const names[] = {"JWT_SECRET", "COURSE_TTL", "WORKERS"};
    char *saved[3];
    const char *path = unit_tmp_path("config-proc.env");
    struct el_config cfg;
    struct el_err err = {0, ""};

    for (int i = 0; i < 3; i++) {
        const char *v = getenv(names[i]);

        saved[i] = v ? strdup(v) : NULL;
    }
    setenv("JWT_SECRET", SECRET "-from-process", 1);
    setenv("COURSE_TTL", "42", 1);
    unsetenv("WORKERS");
    write_file(path, "COURSE_TTL=43\nWORKERS=5\n");
    CU_ASSERT_EQUAL(el_config_load(&cfg, path, NULL, NULL, &err), 0);
    CU_ASSERT_STRING_EQUAL(cfg.jwt_secret, SECRET "-from-process");
    CU_ASSERT_EQUAL(cfg.course_ttl, 42);
    CU_ASSERT_EQUAL(cfg.workers, 5);
    for (int i = 0; i < 3; i++) {
        if (saved[i])
            setenv(names[i], saved[i], 1);
        else
            unsetenv(names[i]);
        free(saved[i]);
    }
}

/* ---- unknown keys, DATA_DIR, logging variables ------------------------- */

static void test_unknown_key(void)
{
    const char *path = unit_tmp_path("config-typo.env");
    struct el_config cfg;
    struct el_err err = {0, ""};

    write_file(path, "JWT_SECRET=" SECRET "\n# fine\nWORKER=8\n");
    CU_ASSERT_EQUAL(
        el_config_load(&cfg, path, unit_table_getenv, (struct unit_var[]){{NULL, NULL}}, &err),
        EL_EINVAL);
    unit_check_config_msg(&err, "WORKER", "unknown variable");
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, ":3 ")); /* the line */
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "did you mean WORKERS?"));

    /* Nothing close: no suggestion, still an error. */
    write_file(path, "JWT_SECRET=" SECRET "\nPYTHONPATH=/x\n");
    CU_ASSERT_EQUAL(
        el_config_load(&cfg, path, unit_table_getenv, (struct unit_var[]){{NULL, NULL}}, &err),
        EL_EINVAL);
    unit_check_config_msg(&err, "PYTHONPATH", "unknown variable");
    CU_ASSERT_PTR_NULL(strstr(err.msg, "did you mean"));

    /* The process environment may hold anything. */
    CU_ASSERT_EQUAL(load1(&cfg, "WORKER", "8", &err), 0);

    CU_ASSERT_STRING_EQUAL(el_config_closest_key("REDIS_ULR"), "REDIS_URL");
    CU_ASSERT_STRING_EQUAL(el_config_closest_key("course_ttl"), "COURSE_TTL");
    CU_ASSERT_STRING_EQUAL(el_config_closest_key("JWT_SECRETS"), "JWT_SECRET");
    CU_ASSERT_STRING_EQUAL(el_config_closest_key("LOGFILE"), "LOG_FILE");
    CU_ASSERT_PTR_NULL(el_config_closest_key("HOME"));
}

static void test_data_dir(void)
{
    struct unit_var rel[] = {{"JWT_SECRET", SECRET},
                             {"DB_URI", "sqlite:db/e.db"},
                             {"DATA_DIR", "/srv/elearn"},
                             {NULL, NULL}};
    struct unit_var sysd[] = {
        {"JWT_SECRET", SECRET}, {"STATE_DIRECTORY", "/var/lib/elearn:/x"}, {NULL, NULL}};
    struct unit_var abs[] = {
        {"JWT_SECRET", SECRET}, {"DB_URI", "sqlite:/a/b.db"}, {"DATA_DIR", "/srv"}, {NULL, NULL}};
    struct unit_var mongo[] = {{"JWT_SECRET", SECRET}, {"DB_URI", "mongodb://h/x"}, {NULL, NULL}};
    struct el_config cfg;
    struct el_err err = {0, ""};
    char cwd[1024], want[1100];

    CU_ASSERT_EQUAL_FATAL(el_config_load(&cfg, NULL, unit_table_getenv, rel, &err), 0);
    CU_ASSERT_STRING_EQUAL(cfg.db_uri, "sqlite:db/e.db"); /* as given, for messages */
    CU_ASSERT_STRING_EQUAL(cfg.store_uri, "sqlite:/srv/elearn/db/e.db");
    CU_ASSERT_EQUAL_FATAL(el_config_load(&cfg, NULL, unit_table_getenv, sysd, &err), 0);
    CU_ASSERT_STRING_EQUAL(cfg.data_dir, "/var/lib/elearn");
    CU_ASSERT_STRING_EQUAL(cfg.store_uri, "sqlite:/var/lib/elearn/var/elearn.db");
    CU_ASSERT_EQUAL_FATAL(el_config_load(&cfg, NULL, unit_table_getenv, abs, &err), 0);
    CU_ASSERT_STRING_EQUAL(cfg.store_uri, "sqlite:/a/b.db");
    CU_ASSERT_EQUAL_FATAL(el_config_load(&cfg, NULL, unit_table_getenv, mongo, &err), 0);
    CU_ASSERT_STRING_EQUAL(cfg.store_uri, "mongodb://h/x");
    /* Default: the working directory. */
    CU_ASSERT_EQUAL_FATAL(load1(&cfg, NULL, NULL, &err), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(getcwd(cwd, sizeof(cwd)));
    snprintf(want, sizeof(want), "sqlite:%s/var/elearn.db", strcmp(cwd, "/") ? cwd : "");
    CU_ASSERT_STRING_EQUAL(cfg.store_uri, want);
    CU_ASSERT_EQUAL(load1(&cfg, "DATA_DIR", "relative/dir", &err), EL_EINVAL);
    unit_check_config_msg(&err, "DATA_DIR", "absolute");
}

static void test_logging_vars(void)
{
    struct el_config cfg;
    struct el_err err = {0, ""};

    CU_ASSERT_EQUAL_FATAL(load1(&cfg, NULL, NULL, &err), 0);
    CU_ASSERT_STRING_EQUAL(cfg.log_file, "");
    CU_ASSERT_EQUAL(cfg.access_log, 1);
    CU_ASSERT_STRING_EQUAL(cfg.trusted_proxies, "");
    CU_ASSERT(strlen(cfg.instance) > 2 && strchr(cfg.instance, ':') != NULL);

    CU_ASSERT_EQUAL(load1(&cfg, "ACCESS_LOG", "off", &err), 0);
    CU_ASSERT_EQUAL(cfg.access_log, 0);
    CU_ASSERT_EQUAL(load1(&cfg, "ACCESS_LOG", "no", &err), EL_EINVAL);
    unit_check_config_msg(&err, "ACCESS_LOG", "on or off");

    CU_ASSERT_EQUAL(load1(&cfg, "LOG_FILE", "/var/log/elearn/a.log", &err), 0);
    CU_ASSERT_STRING_EQUAL(cfg.log_file, "/var/log/elearn/a.log");
    CU_ASSERT_EQUAL(load1(&cfg, "LOG_FILE", "a.log", &err), EL_EINVAL);
    unit_check_config_msg(&err, "LOG_FILE", "absolute");

    CU_ASSERT_EQUAL(load1(&cfg, "TRUSTED_PROXIES", "10.0.0.0/8, ::1 192.0.2.1", &err), 0);
    CU_ASSERT_STRING_EQUAL(cfg.trusted_proxies, "10.0.0.0/8, ::1 192.0.2.1");

    CU_ASSERT_EQUAL(load1(&cfg, "INSTANCE", "web1/2", &err), 0);
    CU_ASSERT_STRING_EQUAL(cfg.instance, "web1/2");
    CU_ASSERT_EQUAL(load1(&cfg, "INSTANCE", "a\"b", &err), EL_EINVAL); /* a label value */
    unit_check_config_msg(&err, "INSTANCE", NULL);
    CU_ASSERT_EQUAL(load1(&cfg, "INSTANCE", "", &err), EL_EINVAL);
}

void test_config_register(void)
{
    CU_pSuite s = CU_add_suite("config", NULL, NULL);

    CU_add_test(s, "defaults", test_defaults);
    CU_add_test(s, "integer bounds: just inside and just outside", test_int_bounds);
    CU_add_test(s, "integers: strictly decimal, no garbage, no overflow", test_int_garbage);
    CU_add_test(s, "message shape: one line, names the variable", test_message_shape);
    CU_add_test(s, "a failed load leaves cfg untouched", test_failure_leaves_cfg);
    CU_add_test(s, "L1_MAX_BYTES with K/M/G suffixes", test_l1_max_bytes);
    CU_add_test(s, "JWT_SECRET required, length checked, never shown", test_jwt_secret);
    CU_add_test(s, "DB_URI schemes", test_db_uri);
    CU_add_test(s, "MONGO_URI when DB_URI is unset", test_mongo_uri_fallback);
    CU_add_test(s, "REDIS_URL and TRUSTED_PROXIES stored as given", test_stored_as_given);
    CU_add_test(s, "env file: comments, export, quotes, precedence", test_env_file);
    CU_add_test(s, "env file: quoted values are literal", test_env_file_quotes);
    CU_add_test(s, "env file: malformed lines name file:line", test_env_file_malformed);
    CU_add_test(s, "env file: unreadable is EL_EIO", test_env_file_unreadable);
    CU_add_test(s, "process environment beats the file", test_process_environment);
    CU_add_test(s, "env file: unknown keys are errors with a suggestion", test_unknown_key);
    CU_add_test(s, "DATA_DIR resolves relative sqlite paths", test_data_dir);
    CU_add_test(s, "LOG_FILE, ACCESS_LOG, TRUSTED_PROXIES, INSTANCE", test_logging_vars);
}
