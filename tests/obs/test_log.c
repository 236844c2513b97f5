/* test_log.c -- lib/obs/log.c: the access line's fields and escaping, its
 * bound, request ids, and LOG_FILE: lines land in the file, a reopen after
 * the file was moved away (logrotate) starts a new one, lines written by
 * many threads at once stay whole. */
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "obs/log.h"
#include "unit.h"

static struct el_access sample(void)
{
    struct el_access a = {0};

    a.wall_ms = 1764669722123; /* 2025-12-02T10:02:02.123Z */
    a.client = "192.0.2.7";
    a.method = "GET";
    a.path = "/courses/6530a1b2c3d4e5f601234567";
    a.query = "page=2&sort_by=popular";
    a.status = 200;
    a.layer = "L1";
    a.micros = 123;
    a.bytes = 517;
    a.request_id = "9c1e0f";
    return a;
}

static void test_format(void)
{
    struct el_access a = sample();
    char line[1024];
    size_t n = el_log_format(&a, line, sizeof(line));

    CU_ASSERT_STRING_EQUAL(line, "2025-12-02T10:02:02.123Z 192.0.2.7 GET "
                                 "/courses/6530a1b2c3d4e5f601234567?page=2&sort_by=popular "
                                 "200 L1 123us 517B 9c1e0f\n");
    CU_ASSERT_EQUAL(n, strlen(line));
    a.query = "";
    a.layer = NULL;
    a.client = NULL;
    a.status = 405;
    el_log_format(&a, line, sizeof(line));
    CU_ASSERT_STRING_EQUAL(line, "2025-12-02T10:02:02.123Z - GET "
                                 "/courses/6530a1b2c3d4e5f601234567 405 - 123us 517B 9c1e0f\n");
}

static void test_escaping(void)
{
    struct el_access a = sample();
    char line[1024];

    /* A client-chosen path with a newline, spaces, a quote, a backslash and
     * UTF-8 can neither end the line nor add a field. */
    a.path = "/courses/x\nGET /forged 200 L1 1us\r";
    a.query = "q=\"a b\"\\\xc3\xa9";
    el_log_format(&a, line, sizeof(line));
    CU_ASSERT_PTR_NULL(strchr(line, '\r'));
    CU_ASSERT_EQUAL(strchr(line, '\n'), line + strlen(line) - 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(line, " /courses/x\\x0aGET\\x20/forged\\x20200\\x20L1\\x201us"
                                        "\\x0d?q=\\x22a\\x20b\\x22\\x5c\\xc3\\xa9 200 "));
}

static void test_bounded(void)
{
    struct el_access a = sample();
    char *path = malloc(100000), line[512];
    size_t n;
    regex_t re;

    memset(path, '\n', 99999);
    path[99999] = '\0';
    a.path = path;
    a.query = path;
    n = el_log_format(&a, line, sizeof(line));
    CU_ASSERT(n < sizeof(line));
    CU_ASSERT_EQUAL(line[n - 1], '\n');
    /* The fields after the target survive the cut. */
    CU_ASSERT_FATAL(regcomp(&re, " 200 L1 123us 517B 9c1e0f\n$", REG_EXTENDED) == 0);
    CU_ASSERT(regexec(&re, line, 0, NULL, 0) == 0);
    regfree(&re);
    free(path);
}

static void test_request_id(void)
{
    char a[EL_LOG_ID_LEN + 1], b[EL_LOG_ID_LEN + 1], longid[100];

    el_log_request_id("f3b1c2d4e5a6978812345678abcdef01", a);
    CU_ASSERT_STRING_EQUAL(a, "f3b1c2d4e5a6978812345678abcdef01");
    el_log_request_id("Zz9-_.:@=+/", a); /* Apache UNIQUE_ID alphabet */
    CU_ASSERT_STRING_EQUAL(a, "Zz9-_.:@=+/");
    /* Unusable ids (empty, a space, a newline, too long) are replaced. */
    el_log_request_id(NULL, a);
    el_log_request_id(NULL, b);
    CU_ASSERT_EQUAL(strlen(a), 32);
    CU_ASSERT_EQUAL(strspn(a, "0123456789abcdef"), 32);
    CU_ASSERT_STRING_NOT_EQUAL(a, b);
    el_log_request_id("", a);
    CU_ASSERT_EQUAL(strlen(a), 32);
    el_log_request_id("a b", a);
    CU_ASSERT_EQUAL(strlen(a), 32);
    el_log_request_id("abc\nX", a);
    CU_ASSERT_EQUAL(strlen(a), 32);
    memset(longid, 'a', 65);
    longid[65] = '\0';
    el_log_request_id(longid, a);
    CU_ASSERT_EQUAL(strlen(a), 32);
    longid[64] = '\0';
    el_log_request_id(longid, a);
    CU_ASSERT_STRING_EQUAL(a, longid);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *s;
    long n;

    if (f == NULL)
        return strdup("");
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    s = calloc(1, (size_t)n + 1);
    if (fread(s, 1, (size_t)n, f) != (size_t)n)
        s[0] = '\0';
    fclose(f);
    return s;
}

static void *writer(void *arg)
{
    struct el_access a = sample();

    a.request_id = arg;
    for (int i = 0; i < 2000; i++)
        el_log_access(&a);
    return NULL;
}

/* fd 2 is redirected for the test and put back after. */
static void test_log_file_and_reopen(void)
{
    char path[512], moved[512], *text;
    int saved = dup(STDERR_FILENO);
    struct el_err err = {0, ""};
    struct el_access a = sample();
    pthread_t t[4];
    static char ids[4][3] = {"t0", "t1", "t2", "t3"};
    int lines = 0;

    snprintf(path, sizeof(path), "%s", unit_tmp_path("access.log"));
    snprintf(moved, sizeof(moved), "%s", unit_tmp_path("access.log.1"));
    unlink(path);
    unlink(moved);
    CU_ASSERT_FATAL(saved >= 0);
    CU_ASSERT_EQUAL_FATAL(el_log_open(path, 1, &err), EL_OK);
    a.request_id = "before-rotate";
    el_log_access(&a);
    el_log_flush();
    CU_ASSERT_EQUAL(rename(path, moved), 0);
    a.request_id = "still-old-file";
    el_log_access(&a);
    CU_ASSERT_EQUAL(el_log_reopen(), EL_OK);
    a.request_id = "after-rotate";
    el_log_access(&a);
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, writer, ids[i]);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    el_log_flush();
    /* Off: nothing more is written. */
    CU_ASSERT_EQUAL(el_log_open(path, 0, &err), EL_OK);
    CU_ASSERT_EQUAL(el_log_access_enabled(), 0);
    a.request_id = "while-off";
    el_log_access(&a);
    el_log_flush();
    dup2(saved, STDERR_FILENO);
    close(saved);
    CU_ASSERT_EQUAL(el_log_open(NULL, 1, &err), EL_OK); /* back to stderr, on */

    text = slurp(moved);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, " before-rotate\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, " still-old-file\n"));
    CU_ASSERT_PTR_NULL(strstr(text, "after-rotate"));
    free(text);
    text = slurp(path);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, " after-rotate\n"));
    CU_ASSERT_PTR_NULL(strstr(text, "while-off"));
    /* Every line from the threads is whole. */
    for (char *l = text, *nl; (nl = strchr(l, '\n')) != NULL; l = nl + 1) {
        *nl = '\0';
        if (strstr(l, " t") != NULL) {
            CU_ASSERT(strncmp(l, "2025-12-02T10:02:02.123Z 192.0.2.7 GET ", 39) == 0);
            lines++;
        }
    }
    CU_ASSERT_EQUAL(lines, 4 * 2000);
    free(text);

    /* An unopenable LOG_FILE is an error naming it. */
    CU_ASSERT_EQUAL(el_log_open("/nonexistent-dir/x.log", 1, &err), EL_EIO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "/nonexistent-dir/x.log"));
    CU_ASSERT_EQUAL(el_log_open(NULL, 1, &err), EL_OK);
}

void test_log_register(void)
{
    CU_pSuite s = CU_add_suite("log", NULL, NULL);

    CU_add_test(s, "the access line's fields", test_format);
    CU_add_test(s, "client bytes cannot forge lines or fields", test_escaping);
    CU_add_test(s, "a huge target is cut, the other fields kept", test_bounded);
    CU_add_test(s, "request ids: taken when sane, generated otherwise", test_request_id);
    CU_add_test(s, "LOG_FILE, reopen after rotation, whole lines, off", test_log_file_and_reopen);
}
