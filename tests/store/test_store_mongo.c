/* test_store_mongo.c -- what only the MongoDB backend (lib/store/store_mongo.c)
 * has, beyond the shared contract in test_store.c: behaviour while the
 * server is unreachable or goes away and comes back, URI and environment
 * timeouts, query-injection attempts, the number of queries a call sends,
 * the BSON shape of stored documents, and the unique indexes that users
 * and enrollments rely on (across stores, and from the first write after
 * the server comes up).
 *
 * Most tests use the server named by EL_TEST_MONGO_URI, each in a database
 * of its own so the contract suite's data is never touched. The tests of a
 * server that comes and goes start their own tests/mongo_server.py on a
 * free port (found one folder up from this file through __FILE__, so run the binary
 * from the repository root, as tests/run-unit.sh does) and stop exactly
 * that pid. Raw libmongoc clients are used only to look at what the store
 * wrote or to count queries; the code under test never sees them. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#include "model/course.h"
#include "core/el.h"
#include "store/store.h"
#include "fixtures.h"
#include "unit.h"
#include "model/user.h"

#define UNAVAIL_BOUND_MS 2500 /* store.h: about 1.5 s, plus slack */
#define TEST_DB "elearn_mongo_specific"

/* ---- helpers ----------------------------------------------------------- */

/* EL_TEST_MONGO_URI with its database replaced by db (static buffer):
 * mongodb://HOSTS[/DB][?OPTIONS] -> mongodb://HOSTS/db[?OPTIONS]. */
static const char *test_uri(const char *db)
{
    static char buf[1024];
    const char *base = unit_env("EL_TEST_MONGO_URI");
    const char *hosts = strstr(base, "://"), *path, *query;

    CU_ASSERT_PTR_NOT_NULL_FATAL(hosts);
    hosts += 3;
    path = hosts + strcspn(hosts, "/?");
    query = strchr(path, '?');
    snprintf(buf, sizeof(buf), "%.*s/%s%s", (int)(path - base), base, db, query ? query : "");
    return buf;
}

/* A loopback TCP port nothing listens on right now. */
static int free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    CU_ASSERT_FATAL(fd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    CU_ASSERT_FATAL(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static struct el_store *open_store(const char *uri)
{
    struct el_store *s = NULL;
    struct el_err err = {0, ""};
    int rc = el_store_open(uri, &s, &err);

    if (rc != EL_OK)
        fprintf(stderr, "\n  open %s: %s\n", uri, err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, EL_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_STRING_EQUAL(el_store_kind(s), "mongodb");
    return s;
}

static struct el_course_query list_query(const char *search, const char *category)
{
    struct el_course_query q;

    memset(&q, 0, sizeof(q));
    snprintf(q.search, sizeof(q.search), "%s", search);
    snprintf(q.category, sizeof(q.category), "%s", category);
    q.sort = EL_SORT_RECENT;
    q.page = 1;
    q.page_size = EL_COURSE_PAGE_SIZE_MAX;
    return q;
}

/* Total courses the store lists for (search, category); -1 on error. */
static int64_t list_total(struct el_store *s, const char *search, const char *category)
{
    struct el_course_query q = list_query(search, category);
    struct el_course_page p;
    int64_t total;
    int rc = el_store_course_list(s, &q, &p);

    if (rc != EL_OK) {
        fprintf(stderr, "\n  list search=\"%s\": %s\n", search, el_strerror(rc));
        return -1;
    }
    total = p.total;
    CU_ASSERT_EQUAL(p.nitems, (size_t)total); /* one page holds them all here */
    el_course_page_cleanup(&p);
    return total;
}

/* Run cmd on db through a raw client of uri; the reply goes into *reply
 * (always initialised; bson_destroy it). */
static bool raw_command(const char *uri, const char *db, const bson_t *cmd, bson_t *reply,
                        bson_error_t *error)
{
    mongoc_client_t *client = mongoc_client_new(uri);
    bool ok;

    CU_ASSERT_PTR_NOT_NULL_FATAL(client);
    mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
    ok = mongoc_client_command_simple(client, db, cmd, NULL, reply, error);
    mongoc_client_destroy(client);
    return ok;
}

/* How many times the server has run command `name` ("find", "getMore",
 * "insert", "findAndModify"...): from the test server's {elearnStats: 1},
 * or, against a real mongod, from serverStatus (opcounters for reads,
 * metrics.commands for the rest). */
static int64_t server_count(const char *uri, const char *name)
{
    bson_t *cmd = BCON_NEW("elearnStats", BCON_INT32(1));
    bson_t reply;
    bson_error_t error;
    bson_iter_t it;
    int64_t n = 0;

    if (raw_command(uri, "admin", cmd, &reply, &error)) {
        if (bson_iter_init_find(&it, &reply, name))
            n = bson_iter_as_int64(&it);
    } else {
        CU_ASSERT_EQUAL_FATAL(error.code, 59); /* CommandNotFound: a real mongod */
        bson_destroy(&reply);
        bson_destroy(cmd);
        cmd = BCON_NEW("serverStatus", BCON_INT32(1));
        CU_ASSERT_FATAL(raw_command(uri, "admin", cmd, &reply, &error));
        char path[128];

        if (strcmp(name, "find") == 0)
            snprintf(path, sizeof(path), "opcounters.query");
        else if (strcmp(name, "getMore") == 0)
            snprintf(path, sizeof(path), "opcounters.getmore");
        else
            snprintf(path, sizeof(path), "metrics.commands.%s.total", name);
        CU_ASSERT_FATAL(bson_iter_init(&it, &reply) && bson_iter_find_descendant(&it, path, &it));
        n = bson_iter_as_int64(&it);
    }
    bson_destroy(&reply);
    bson_destroy(cmd);
    return n;
}

/* The first raw document filter selects in db.coll (a copy in *out, to
 * bson_destroy); false if none. */
static bool raw_find_in(const char *uri, const char *db, const char *coll_name,
                        const bson_t *filter, bson_t *out)
{
    mongoc_client_t *client = mongoc_client_new(uri);
    mongoc_collection_t *coll;
    mongoc_cursor_t *cursor;
    const bson_t *doc;
    bool found;

    CU_ASSERT_PTR_NOT_NULL_FATAL(client);
    coll = mongoc_client_get_collection(client, db, coll_name);
    cursor = mongoc_collection_find_with_opts(coll, filter, NULL, NULL);
    found = mongoc_cursor_next(cursor, &doc);
    if (found)
        bson_copy_to(doc, out);
    CU_ASSERT_FALSE(mongoc_cursor_error(cursor, NULL));
    mongoc_cursor_destroy(cursor);
    mongoc_collection_destroy(coll);
    mongoc_client_destroy(client);
    return found;
}

/* The raw document with _id hex from db.courses; false if none. */
static bool raw_find(const char *uri, const char *db, const char *hex, bson_t *out)
{
    bson_oid_t oid;
    bson_t *filter;
    bool found;

    bson_oid_init_from_string(&oid, hex);
    filter = BCON_NEW("_id", BCON_OID(&oid));
    found = raw_find_in(uri, db, "courses", filter, out);
    bson_destroy(filter);
    return found;
}

/* Insert doc into db.coll, or delete what filter selects there, behind the
 * store's back. */
static void raw_write_in(const char *uri, const char *db, const char *coll_name, const bson_t *doc,
                         const bson_t *delete_filter)
{
    mongoc_client_t *client = mongoc_client_new(uri);
    mongoc_collection_t *coll;
    bson_error_t error;
    bool ok;

    CU_ASSERT_PTR_NOT_NULL_FATAL(client);
    coll = mongoc_client_get_collection(client, db, coll_name);
    ok = doc ? mongoc_collection_insert_one(coll, doc, NULL, NULL, &error)
             : mongoc_collection_delete_many(coll, delete_filter, NULL, NULL, &error);
    if (!ok)
        fprintf(stderr, "\n  raw write: %s\n", error.message);
    CU_ASSERT_TRUE(ok);
    mongoc_collection_destroy(coll);
    mongoc_client_destroy(client);
}

static void raw_insert(const char *uri, const char *db, const bson_t *doc)
{
    raw_write_in(uri, db, "courses", doc, NULL);
}

/* The index called name on db.coll (its listIndexes document, copied into
 * *out); false if there is none. */
static bool raw_index(const char *uri, const char *db, const char *coll_name, const char *name,
                      bson_t *out)
{
    mongoc_client_t *client = mongoc_client_new(uri);
    mongoc_collection_t *coll;
    mongoc_cursor_t *cursor;
    const bson_t *doc;
    bson_iter_t it;
    bool found = false;

    CU_ASSERT_PTR_NOT_NULL_FATAL(client);
    coll = mongoc_client_get_collection(client, db, coll_name);
    cursor = mongoc_collection_find_indexes_with_opts(coll, NULL);
    while (!found && mongoc_cursor_next(cursor, &doc)) {
        if (bson_iter_init_find(&it, doc, "name") && BSON_ITER_HOLDS_UTF8(&it) &&
            strcmp(bson_iter_utf8(&it, NULL), name) == 0) {
            bson_copy_to(doc, out);
            found = true;
        }
    }
    mongoc_cursor_destroy(cursor);
    mongoc_collection_destroy(coll);
    mongoc_client_destroy(client);
    return found;
}

/* The number of indexes on db.courses; the first max names go into
 * names. */
static size_t raw_index_names(const char *uri, const char *db, char names[][64], size_t max)
{
    mongoc_client_t *client = mongoc_client_new(uri);
    mongoc_collection_t *coll;
    mongoc_cursor_t *cursor;
    const bson_t *doc;
    bson_iter_t it;
    size_t n = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(client);
    coll = mongoc_client_get_collection(client, db, "courses");
    cursor = mongoc_collection_find_indexes_with_opts(coll, NULL);
    while (mongoc_cursor_next(cursor, &doc)) {
        if (n < max && bson_iter_init_find(&it, doc, "name") && BSON_ITER_HOLDS_UTF8(&it))
            snprintf(names[n], 64, "%s", bson_iter_utf8(&it, NULL));
        n++;
    }
    CU_ASSERT_FALSE(mongoc_cursor_error(cursor, NULL));
    mongoc_cursor_destroy(cursor);
    mongoc_collection_destroy(coll);
    mongoc_client_destroy(client);
    return n;
}

static void check_indexes(const char *uri, const char *db)
{
    static const char *const want[] = {
        "_id_",
        "category_1",
        "difficulty_1",
        "created_at_-1__id_1",
        "enrollment_count_-1__id_1",
        "rating_-1__id_1",
        "duration_minutes_1__id_1",
        "instructor_id_1_created_at_-1",
    };
    char names[16][64];
    size_t n = raw_index_names(uri, db, names, 16);

    CU_ASSERT_EQUAL_FATAL(n, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        size_t j;
        for (j = 0; j < n && strcmp(names[j], want[i]) != 0; j++)
            ;
        if (j == n)
            fprintf(stderr, "\n  index %s missing\n", want[i]);
        CU_ASSERT(j < n);
    }
}

static void drop_db(const char *uri, const char *db)
{
    bson_t *cmd = BCON_NEW("dropDatabase", BCON_INT32(1));
    bson_t reply;

    CU_ASSERT(raw_command(uri, db, cmd, &reply, NULL));
    bson_destroy(&reply);
    bson_destroy(cmd);
}

/* ---- a private test server --------------------------------------------- */

struct mock {
    pid_t pid;
    int err_fd; /* its stderr */
    int port;
    char uri[128];
};

/* tests/mongo_server.py, one folder up from this file. */
static const char *server_script(void)
{
    static char path[1024];
    const char *slash = strrchr(__FILE__, '/');

    if (slash == NULL)
        snprintf(path, sizeof(path), "mongo_server.py");
    else
        snprintf(path, sizeof(path), "%.*s/../mongo_server.py", (int)(slash - __FILE__), __FILE__);
    if (access(path, R_OK) != 0)
        fprintf(stderr, "\n  %s not found: run from the repository root\n", path);
    CU_ASSERT_EQUAL_FATAL(access(path, R_OK), 0);
    return path;
}

/* The server a test started and has not stopped yet: the per-test
 * teardown stops it when a fatal assertion ends the test early. */
static struct mock *live_mock;

/* In the child between fork and exec: only async-signal-safe calls. The
 * server gets the pipe as stdout and stderr (never the harness's output,
 * which it would hold open), default SIGTERM/SIGINT handling and an empty
 * signal mask, and SIGTERM should this process die first -- a crashed or
 * killed test binary leaves no server behind. */
static void child_exec(char *const argv[], int out_fd, pid_t parent)
{
    sigset_t none;

    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
        _exit(126); /* the parent is already gone */
    if (dup2(out_fd, STDOUT_FILENO) < 0 || dup2(out_fd, STDERR_FILENO) < 0)
        _exit(126);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execv(argv[0], argv);
    _exit(127);
}

/* Start tests/mongo_server.py on m->port (as the primary of replica set
 * replset when not NULL) and return once it has printed "ready" (it then
 * accepts connections), or fail the test after 20 s. */
static void mock_start_args(struct mock *m, char *const *extra)
{
    static char python[] = "/usr/bin/python3", opt[] = "--port";
    char port[16], buf[512];
    char *argv[16] = {python, (char *)server_script(), opt, port, NULL};
    uint64_t deadline = el_now_ms() + 20000;
    pid_t parent = getpid();
    size_t len = 0;
    int fds[2];

    snprintf(port, sizeof(port), "%d", m->port);
    for (int i = 0; extra && extra[i] && i < 10; i++)
        argv[4 + i] = extra[i];
    snprintf(m->uri, sizeof(m->uri), "mongodb://127.0.0.1:%d/%s", m->port, TEST_DB);
    CU_ASSERT_EQUAL_FATAL(pipe2(fds, O_CLOEXEC), 0);
    fflush(NULL);
    m->pid = fork();
    if (m->pid == 0)
        child_exec(argv, fds[1], parent);
    close(fds[1]);
    m->err_fd = fds[0];
    CU_ASSERT_FATAL(m->pid > 0);
    live_mock = m;
    for (;;) {
        struct pollfd p = {m->err_fd, POLLIN, 0};
        int64_t left = (int64_t)(deadline - el_now_ms());
        ssize_t n;

        buf[len] = '\0';
        if (strstr(buf, "ready\n") != NULL)
            return;
        if (left <= 0 || len == sizeof(buf) - 1 || poll(&p, 1, (int)left) <= 0)
            break;
        n = read(m->err_fd, buf + len, sizeof(buf) - 1 - len);
        if (n <= 0)
            break; /* it exited */
        len += (size_t)n;
    }
    fprintf(stderr, "\n  mongo_server.py did not start: %s\n", buf);
    CU_FAIL_FATAL("mongo_server.py did not start"); /* the teardown stops it */
}

static void mock_start(struct mock *m)
{
    mock_start_args(m, NULL);
}

static void mock_start_set(struct mock *m, const char *replset)
{
    char set[64], opt[] = "--replset";
    char *extra[] = {opt, set, NULL};

    snprintf(set, sizeof(set), "%s", replset);
    mock_start_args(m, extra);
}

/* SIGTERM exactly our server and reap it; returns its wait status. What
 * it wrote to stderr after "ready" is passed on (there should be none). */
static int mock_stop(struct mock *m)
{
    char buf[4096];
    ssize_t n;
    int status = -1;

    live_mock = NULL;
    CU_ASSERT_EQUAL(kill(m->pid, SIGTERM), 0);
    while (waitpid(m->pid, &status, 0) < 0 && errno == EINTR)
        ;
    while ((n = read(m->err_fd, buf, sizeof(buf))) > 0)
        fwrite(buf, 1, (size_t)n, stderr);
    close(m->err_fd);
    return status;
}

/* ---- tests ------------------------------------------------------------- */

/* Nothing listens: open succeeds (the responder must start and serve its
 * caches), and every call fails with EL_EUNAVAIL after about the server
 * selection timeout -- never libmongoc's default of 30 s. */
static void test_unreachable(void)
{
    char uri[128];
    struct el_store *s;
    struct el_course got;
    uint64_t t0, ms;

    snprintf(uri, sizeof(uri), "mongodb://127.0.0.1:%d/elearn_down", free_port());
    t0 = el_now_ms();
    s = open_store(uri);
    CU_ASSERT(el_now_ms() - t0 < UNAVAIL_BOUND_MS);

    t0 = el_now_ms();
    CU_ASSERT_EQUAL(el_store_course_get(s, "5f00000000000000000000aa", &got), EL_EUNAVAIL);
    ms = el_now_ms() - t0;
    if (ms < 1000 || ms >= UNAVAIL_BOUND_MS)
        fprintf(stderr, "\n  get took %llu ms\n", (unsigned long long)ms);
    CU_ASSERT(ms >= 1000);            /* the default 1.5 s applies ... */
    CU_ASSERT(ms < UNAVAIL_BOUND_MS); /* ... and bounds the call */
    CU_ASSERT_PTR_NULL(got.title);

    t0 = el_now_ms();
    CU_ASSERT_EQUAL(el_store_ping(s), EL_EUNAVAIL);
    CU_ASSERT(el_now_ms() - t0 < UNAVAIL_BOUND_MS);
    el_store_close(s);
}

/* A timeout the operator put in the URI wins over ours. With it short,
 * every other call is checked too: each fails with EL_EUNAVAIL within it
 * and leaves nothing to clean up. */
static void test_uri_timeout_wins(void)
{
    char uri[160];
    struct el_store *s;
    struct el_course c, got;
    struct el_course_query q = list_query("", "");
    struct el_course_page p;
    uint64_t t0, ms;
    int64_t n = -1;

    snprintf(uri, sizeof(uri), "mongodb://127.0.0.1:%d/elearn_down?serverSelectionTimeoutMS=300",
             free_port());
    s = open_store(uri);
    t0 = el_now_ms();
    CU_ASSERT_EQUAL(el_store_course_get(s, "5f00000000000000000000aa", &got), EL_EUNAVAIL);
    ms = el_now_ms() - t0;
    CU_ASSERT(ms >= 250 && ms < 1000);

    t0 = el_now_ms();
    CU_ASSERT_EQUAL(el_store_course_list(s, &q, &p), EL_EUNAVAIL);
    CU_ASSERT_EQUAL(p.nitems, 0);
    CU_ASSERT_PTR_NULL(p.items);
    CU_ASSERT_EQUAL(el_store_course_count(s, &n), EL_EUNAVAIL);
    CU_ASSERT_EQUAL(n, -1);
    fx_course(&c, "Offline", "Never stored.", "x");
    CU_ASSERT_EQUAL(el_store_course_insert(s, &c), EL_EUNAVAIL);
    CU_ASSERT_EQUAL(strlen(c.id), 24); /* generated and kept for a retry */
    CU_ASSERT_EQUAL(strlen(c.modules[1].id), 24);
    CU_ASSERT_EQUAL(el_store_reset(s), EL_EUNAVAIL);
    CU_ASSERT(el_now_ms() - t0 < 4 * 1000);
    el_course_cleanup(&c);
    el_store_close(s);
}

/* The store timeout (DB_TIMEOUT_MS, el_store_set_timeout_ms) sets the
 * timeouts the URI leaves open. It is read once, at open. */
static void test_db_timeout_env(void)
{
    char uri[128];
    struct el_store *s;
    struct el_course got;
    uint64_t t0, ms;

    snprintf(uri, sizeof(uri), "mongodb://127.0.0.1:%d/elearn_down", free_port());
    el_store_set_timeout_ms(400);
    s = open_store(uri);
    el_store_set_timeout_ms(1500);
    t0 = el_now_ms();
    CU_ASSERT_EQUAL(el_store_course_get(s, "5f00000000000000000000aa", &got), EL_EUNAVAIL);
    ms = el_now_ms() - t0;
    CU_ASSERT(ms >= 300 && ms < 1000);
    el_store_close(s);
}

/* The server is down at open, comes up, goes away, comes back: calls fail
 * and recover with it, and the indexes skipped at open are created by the
 * first call that reaches the server. */
static void test_server_comes_and_goes(void)
{
    static struct mock m; /* static: the teardown may still need it */
    struct el_store *s;
    struct el_course c, got;
    uint64_t t0, ms;
    int64_t n = -1;
    int status;

    memset(&m, 0, sizeof(m));
    m.port = free_port();
    snprintf(m.uri, sizeof(m.uri), "mongodb://127.0.0.1:%d/%s", m.port, TEST_DB);
    s = open_store(m.uri); /* down: logs a warning, no indexes yet */
    CU_ASSERT_EQUAL(el_store_course_count(s, &n), EL_EUNAVAIL);

    mock_start(&m);
    CU_ASSERT_EQUAL(raw_index_names(m.uri, TEST_DB, NULL, 0), 0); /* none yet */
    CU_ASSERT_EQUAL(el_store_course_count(s, &n), EL_OK);
    CU_ASSERT_EQUAL(n, 0);
    check_indexes(m.uri, TEST_DB);
    fx_course(&c, "Survivor", "Inserted while up.", "x");
    CU_ASSERT_EQUAL(el_store_course_insert(s, &c), EL_OK);
    CU_ASSERT_EQUAL(el_store_course_get(s, c.id, &got), EL_OK);
    el_course_cleanup(&got);

    status = mock_stop(&m);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0); /* SIGTERM: a clean exit */
    t0 = el_now_ms();
    CU_ASSERT_EQUAL(el_store_course_get(s, c.id, &got), EL_EUNAVAIL);
    ms = el_now_ms() - t0;
    if (ms >= UNAVAIL_BOUND_MS)
        fprintf(stderr, "\n  get after the server left took %llu ms\n", (unsigned long long)ms);
    CU_ASSERT(ms < UNAVAIL_BOUND_MS);

    mock_start(&m); /* a new, empty server on the same port */
    CU_ASSERT_EQUAL(el_store_course_get(s, c.id, &got), EL_ENOTFOUND);
    CU_ASSERT_EQUAL(el_store_ping(s), EL_OK);
    el_store_close(s);
    status = mock_stop(&m);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    el_course_cleanup(&c);
}

/* Indexes are there as soon as open returns when the server is up. */
static void test_indexes_at_open(void)
{
    const char *uri = unit_strdup(test_uri(TEST_DB));
    struct el_store *s;

    drop_db(uri, TEST_DB);
    s = open_store(uri);
    check_indexes(uri, TEST_DB);
    el_store_close(s);
    s = open_store(uri); /* again: the same indexes are fine */
    check_indexes(uri, TEST_DB);
    el_store_close(s);
    drop_db(uri, TEST_DB);
    free((void *)uri);
}

/* Search text, category and ids are values, never query syntax: regex
 * syntax and MongoDB operators in them match nothing here, because no
 * stored text holds them literally. */
static void test_injection(void)
{
    static const char *const searches[] = {
        ".*",    "^",      "$",           ".",         "^.*$",
        "\\w+",  "[a-z]",  "a|b",         "(?i)plain", "{\"$ne\":null}",
        "/.*/i", "$where", "plain|other", "p.ain",     "p[l]ain",
        "\\",    "*",      "x{0}",
    };
    const char *uri = unit_strdup(test_uri(TEST_DB));
    struct el_store *s = open_store(uri);
    struct el_course a, b, got;

    CU_ASSERT_EQUAL_FATAL(el_store_reset(s), EL_OK);
    fx_course(&a, "Plain words", "Nothing special here", "simple");
    fx_course(&b, "Other course", "More of the same", "common");
    CU_ASSERT_EQUAL_FATAL(el_store_course_insert(s, &a), EL_OK);
    CU_ASSERT_EQUAL_FATAL(el_store_course_insert(s, &b), EL_OK);

    /* Controls: the data is there and findable. */
    CU_ASSERT_EQUAL(list_total(s, "", ""), 2);
    CU_ASSERT_EQUAL(list_total(s, "PLAIN", ""), 1);
    CU_ASSERT_EQUAL(list_total(s, "o", ""), 2);
    CU_ASSERT_EQUAL(list_total(s, "", "testing"), 2);
    for (size_t i = 0; i < sizeof(searches) / sizeof(searches[0]); i++) {
        int64_t total = list_total(s, searches[i], "");
        if (total != 0)
            fprintf(stderr, "\n  search \"%s\" matched %lld\n", searches[i], (long long)total);
        CU_ASSERT_EQUAL(total, 0);
    }
    CU_ASSERT_EQUAL(list_total(s, "", "{\"$ne\":\"\"}"), 0);
    CU_ASSERT_EQUAL(list_total(s, "", "{\"$gt\":\"\"}"), 0);
    CU_ASSERT_EQUAL(list_total(s, "", ".*"), 0);
    CU_ASSERT_EQUAL(el_store_course_get(s, "{\"$gt\":\"\"}", &got), EL_EINVAL);
    CU_ASSERT_EQUAL(el_store_course_get(s, "000000000000000000000000", &got), EL_ENOTFOUND);
    el_course_cleanup(&a);
    el_course_cleanup(&b);
    CU_ASSERT_EQUAL(el_store_reset(s), EL_OK);
    el_store_close(s);
    free((void *)uri);
}

/* A get is exactly one find (no getMore, no killCursors); a list page is
 * one find, and a page past the end none. Counted by the server. */
static void test_queries_per_call(void)
{
    const char *uri = unit_strdup(test_uri(TEST_DB));
    struct el_store *s = open_store(uri);
    struct el_course a, b, got;
    struct el_course_query q = list_query("", "");
    struct el_course_page p;
    int64_t finds, getmores;

    CU_ASSERT_EQUAL_FATAL(el_store_reset(s), EL_OK);
    fx_course(&a, "Counted one", "x", "t");
    fx_course(&b, "Counted two", "y", "t");
    CU_ASSERT_EQUAL_FATAL(el_store_course_insert(s, &a), EL_OK);
    CU_ASSERT_EQUAL_FATAL(el_store_course_insert(s, &b), EL_OK);

    finds = server_count(uri, "find");
    getmores = server_count(uri, "getMore");
    CU_ASSERT_EQUAL(el_store_course_get(s, a.id, &got), EL_OK);
    el_course_cleanup(&got);
    CU_ASSERT_EQUAL(server_count(uri, "find"), finds + 1);
    CU_ASSERT_EQUAL(el_store_course_get(s, b.id, &got), EL_OK);
    el_course_cleanup(&got);
    CU_ASSERT_EQUAL(el_store_course_get(s, "000000000000000000000000", &got), EL_ENOTFOUND);
    CU_ASSERT_EQUAL(server_count(uri, "find"), finds + 3);

    q.page_size = 1; /* two pages of one */
    CU_ASSERT_EQUAL(el_store_course_list(s, &q, &p), EL_OK);
    CU_ASSERT_EQUAL(p.total, 2);
    CU_ASSERT_EQUAL(p.nitems, 1);
    el_course_page_cleanup(&p);
    CU_ASSERT_EQUAL(server_count(uri, "find"), finds + 4);
    q.page = 3;
    CU_ASSERT_EQUAL(el_store_course_list(s, &q, &p), EL_OK);
    CU_ASSERT_EQUAL(p.total, 2);
    CU_ASSERT_EQUAL(p.nitems, 0);
    el_course_page_cleanup(&p);
    CU_ASSERT_EQUAL(server_count(uri, "find"), finds + 4);
    CU_ASSERT_EQUAL(server_count(uri, "getMore"), getmores);

    el_course_cleanup(&a);
    el_course_cleanup(&b);
    CU_ASSERT_EQUAL(el_store_reset(s), EL_OK);
    el_store_close(s);
    free((void *)uri);
}

/* What other tools see: ObjectIds, BSON dates, a double rating, int32
 * counts, a bool, arrays of strings and of module documents. */
static void test_stored_bson_types(void)
{
    const char *uri = unit_strdup(test_uri(TEST_DB));
    struct el_store *s = open_store(uri);
    struct el_course c;
    bson_t doc;
    bson_iter_t it;

    CU_ASSERT_EQUAL_FATAL(el_store_reset(s), EL_OK);
    fx_course(&c, "Typed", "Check the BSON.", "bson");
    c.rating = 4.0; /* integral: must still be stored as a double */
    CU_ASSERT_EQUAL_FATAL(el_store_course_insert(s, &c), EL_OK);
    CU_ASSERT_FATAL(raw_find(uri, TEST_DB, c.id, &doc));
#define TYPE_OF(path, type)                                                                        \
    CU_ASSERT(bson_iter_init(&it, &doc) && bson_iter_find_descendant(&it, path, &it) &&            \
              bson_iter_type(&it) == (type))
    TYPE_OF("_id", BSON_TYPE_OID);
    TYPE_OF("title", BSON_TYPE_UTF8);
    TYPE_OF("instructor_id", BSON_TYPE_OID);
    TYPE_OF("rating", BSON_TYPE_DOUBLE);
    TYPE_OF("duration_minutes", BSON_TYPE_INT32);
    TYPE_OF("rating_count", BSON_TYPE_INT32);
    TYPE_OF("enrollment_count", BSON_TYPE_INT32);
    TYPE_OF("published", BSON_TYPE_BOOL);
    TYPE_OF("created_at", BSON_TYPE_DATE_TIME);
    TYPE_OF("updated_at", BSON_TYPE_DATE_TIME);
    TYPE_OF("tags", BSON_TYPE_ARRAY);
    TYPE_OF("tags.0", BSON_TYPE_UTF8);
    TYPE_OF("modules.1", BSON_TYPE_DOCUMENT);
    TYPE_OF("modules.1._id", BSON_TYPE_OID);
    TYPE_OF("modules.1.order", BSON_TYPE_INT32);
#undef TYPE_OF
    CU_ASSERT(bson_iter_init_find(&it, &doc, "created_at") &&
              bson_iter_date_time(&it) == 1735689600123LL);
    bson_destroy(&doc);
    el_course_cleanup(&c);
    CU_ASSERT_EQUAL(el_store_reset(s), EL_OK);
    el_store_close(s);
    free((void *)uri);
}

/* Documents other writers made (a seed script, the old service) read
 * leniently: numbers of any numeric type, a string instructor id, missing
 * strings as "", modules put in order (then id) whatever their array order,
 * non-string tags skipped. */
static void test_reads_foreign_documents(void)
{
    const char *uri = unit_strdup(test_uri(TEST_DB));
    struct el_store *s = open_store(uri);
    struct el_course got;
    bson_oid_t id, m1, m2, m3;
    bson_t *doc;

    CU_ASSERT_EQUAL_FATAL(el_store_reset(s), EL_OK);
    bson_oid_init_from_string(&id, "6700000000000000000000f1");
    bson_oid_init_from_string(&m1, "6700000000000000000000a1");
    bson_oid_init_from_string(&m2, "6700000000000000000000a2");
    bson_oid_init_from_string(&m3, "6700000000000000000000a3");
    doc =
        BCON_NEW("_id", BCON_OID(&id), "title", BCON_UTF8("Foreign"), "category", BCON_UTF8("misc"),
                 "tags", "[", BCON_UTF8("a"), BCON_INT32(5), BCON_UTF8("b"), "]", "instructor_id",
                 BCON_UTF8("5F00000000000000000000AB"), "duration_minutes", BCON_INT64(125),
                 "rating", BCON_INT32(4), "rating_count", BCON_DOUBLE(12.0), "enrollment_count",
                 BCON_INT64(99999999999LL), "published", BCON_BOOL(true), "created_at",
                 BCON_DATE_TIME(1700000000000LL), "modules", "[", "{", "_id", BCON_OID(&m3),
                 "title", BCON_UTF8("Third"), "order", BCON_INT32(2), "}", "{", "_id",
                 BCON_OID(&m2), "title", BCON_UTF8("Second"), "order", BCON_INT64(1), "}", "{",
                 "_id", BCON_OID(&m1), "title", BCON_UTF8("First"), "content", BCON_UTF8("c"),
                 "duration_minutes", BCON_DOUBLE(10.0), "order", BCON_INT32(1), "}", "]");
    raw_insert(uri, TEST_DB, doc);
    bson_destroy(doc);

    CU_ASSERT_EQUAL_FATAL(el_store_course_get(s, "6700000000000000000000F1", &got), EL_OK);
    CU_ASSERT_STRING_EQUAL(got.id, "6700000000000000000000f1");
    CU_ASSERT_STRING_EQUAL(got.title, "Foreign");
    CU_ASSERT_STRING_EQUAL(got.description, "");
    CU_ASSERT_STRING_EQUAL(got.difficulty, "");
    CU_ASSERT_EQUAL_FATAL(got.ntags, 2);
    CU_ASSERT_STRING_EQUAL(got.tags[0], "a");
    CU_ASSERT_STRING_EQUAL(got.tags[1], "b");
    CU_ASSERT_STRING_EQUAL(got.instructor_id, "5f00000000000000000000ab");
    CU_ASSERT_EQUAL(got.duration_minutes, 125);
    CU_ASSERT_DOUBLE_EQUAL(got.rating, 4.0, 1e-12);
    CU_ASSERT_EQUAL(got.rating_count, 12);
    CU_ASSERT_EQUAL(got.enrollment_count, INT32_MAX); /* clamped */
    CU_ASSERT_TRUE(got.published);
    CU_ASSERT_EQUAL(got.created_at, 1700000000000LL);
    CU_ASSERT_EQUAL(got.updated_at, 0);
    CU_ASSERT_EQUAL_FATAL(got.nmodules, 3);
    CU_ASSERT_STRING_EQUAL(got.modules[0].id, "6700000000000000000000a1");
    CU_ASSERT_STRING_EQUAL(got.modules[0].title, "First");
    CU_ASSERT_STRING_EQUAL(got.modules[0].content, "c");
    CU_ASSERT_EQUAL(got.modules[0].duration_minutes, 10);
    CU_ASSERT_STRING_EQUAL(got.modules[1].id, "6700000000000000000000a2");
    CU_ASSERT_STRING_EQUAL(got.modules[1].content, "");
    CU_ASSERT_STRING_EQUAL(got.modules[2].id, "6700000000000000000000a3");
    CU_ASSERT_EQUAL(got.modules[2].order, 2);
    el_course_cleanup(&got);
    CU_ASSERT_EQUAL(el_store_reset(s), EL_OK);
    el_store_close(s);
    free((void *)uri);
}

/* The same course through both stores reads back as the same struct, field
 * for field -- including what the JSON would hide (a rating's second
 * decimal) and the edge cases: NULL strings, an empty instructor id,
 * uppercase ids, a date before 1970, module orders with ties. */
static void test_same_struct_as_sqlite(void)
{
    char lite_uri[600];
    const char *uri = unit_strdup(test_uri(TEST_DB));
    struct el_store *mongo = open_store(uri), *lite = NULL;
    struct el_course in[2], got[2];

    snprintf(lite_uri, sizeof(lite_uri), "sqlite:%s", unit_tmp_path("mongo_vs_sqlite.db"));
    CU_ASSERT_EQUAL_FATAL(el_store_open(lite_uri, &lite, NULL), EL_OK);
    CU_ASSERT_EQUAL_FATAL(el_store_reset(mongo), EL_OK);
    CU_ASSERT_EQUAL_FATAL(el_store_reset(lite), EL_OK);
    for (int k = 0; k < 2; k++) {
        struct el_course *c = &in[k];

        fx_course(c, "Twin \xe2\x98\x83", "", "");
        free(c->description);
        c->description = NULL;
        free(c->tags[0]);
        c->tags[0] = NULL;
        strcpy(c->id, "6A00000000000000000000BC");
        c->instructor_id[0] = '\0';
        c->rating = 4.25;
        c->created_at = -86400000LL * 365 + 7;
        c->enrollment_count = INT32_MAX;
        c->published = false;
        strcpy(c->modules[0].id, "6A00000000000000000000B2");
        strcpy(c->modules[1].id, "6a00000000000000000000b1");
        c->modules[0].order = c->modules[1].order = 3; /* a tie: by id */
        CU_ASSERT_EQUAL_FATAL(el_store_course_insert(k ? lite : mongo, c), EL_OK);
        CU_ASSERT_EQUAL_FATAL(
            el_store_course_get(k ? lite : mongo, "6a00000000000000000000bc", &got[k]), EL_OK);
    }
    CU_ASSERT_STRING_EQUAL(got[0].id, got[1].id);
    CU_ASSERT_STRING_EQUAL(got[0].id, "6a00000000000000000000bc");
    CU_ASSERT_STRING_EQUAL(got[0].title, got[1].title);
    CU_ASSERT_STRING_EQUAL(got[0].description, got[1].description);
    CU_ASSERT_STRING_EQUAL(got[0].category, got[1].category);
    CU_ASSERT_STRING_EQUAL(got[0].difficulty, got[1].difficulty);
    CU_ASSERT_EQUAL_FATAL(got[0].ntags, got[1].ntags);
    for (size_t i = 0; i < got[0].ntags; i++)
        CU_ASSERT_STRING_EQUAL(got[0].tags[i], got[1].tags[i]);
    CU_ASSERT_STRING_EQUAL(got[0].instructor_id, got[1].instructor_id);
    CU_ASSERT_EQUAL(got[0].duration_minutes, got[1].duration_minutes);
    CU_ASSERT_EQUAL(memcmp(&got[0].rating, &got[1].rating, sizeof(double)), 0);
    CU_ASSERT_EQUAL(got[0].rating_count, got[1].rating_count);
    CU_ASSERT_EQUAL(got[0].enrollment_count, got[1].enrollment_count);
    CU_ASSERT_EQUAL(got[0].published, got[1].published);
    CU_ASSERT_EQUAL(got[0].created_at, got[1].created_at);
    CU_ASSERT_EQUAL(got[0].updated_at, got[1].updated_at);
    CU_ASSERT_EQUAL_FATAL(got[0].nmodules, got[1].nmodules);
    for (size_t i = 0; i < got[0].nmodules; i++) {
        CU_ASSERT_STRING_EQUAL(got[0].modules[i].id, got[1].modules[i].id);
        CU_ASSERT_STRING_EQUAL(got[0].modules[i].title, got[1].modules[i].title);
        CU_ASSERT_STRING_EQUAL(got[0].modules[i].content, got[1].modules[i].content);
        CU_ASSERT_EQUAL(got[0].modules[i].duration_minutes, got[1].modules[i].duration_minutes);
        CU_ASSERT_EQUAL(got[0].modules[i].order, got[1].modules[i].order);
    }
    CU_ASSERT_STRING_EQUAL(got[0].modules[0].id, "6a00000000000000000000b1");
    for (int k = 0; k < 2; k++) {
        el_course_cleanup(&in[k]);
        el_course_cleanup(&got[k]);
    }
    CU_ASSERT_EQUAL(el_store_reset(mongo), EL_OK);
    el_store_close(lite);
    el_store_close(mongo);
    free((void *)uri);
}

/* Case folding is ASCII-only in both stores: a non-ASCII letter matches
 * only itself (MongoDB's "i" option would fold it, SQLite cannot). */
static void test_search_folds_ascii_only(void)
{
    static const struct {
        const char *search;
        int64_t total;
    } cases[] = {
        {"CR\xc3\xa8ME", 1},      /* CRèME: ASCII letters fold */
        {"cr\xc3\x88me", 0},      /* crÈme: È is not è */
        {"\xc3\xa9T\xc3\xa9", 1}, /* éTé */
        {"\xc3\x89T\xc3\x89", 0}, /* ÉTÉ */
    };
    char lite_uri[600];
    const char *uri = unit_strdup(test_uri(TEST_DB));
    struct el_store *mongo = open_store(uri), *lite = NULL;

    snprintf(lite_uri, sizeof(lite_uri), "sqlite:%s", unit_tmp_path("mongo_fold.db"));
    CU_ASSERT_EQUAL_FATAL(el_store_open(lite_uri, &lite, NULL), EL_OK);
    CU_ASSERT_EQUAL_FATAL(el_store_reset(mongo), EL_OK);
    CU_ASSERT_EQUAL_FATAL(el_store_reset(lite), EL_OK);
    for (int k = 0; k < 2; k++) {
        struct el_course c;

        fx_course(&c, "Cr\xc3\xa8me", "Dessert", "\xc3\xa9t\xc3\xa9");
        CU_ASSERT_EQUAL_FATAL(el_store_course_insert(k ? lite : mongo, &c), EL_OK);
        el_course_cleanup(&c);
    }
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CU_ASSERT_EQUAL(list_total(mongo, cases[i].search, ""), cases[i].total);
        CU_ASSERT_EQUAL(list_total(lite, cases[i].search, ""), cases[i].total);
    }
    CU_ASSERT_EQUAL(el_store_reset(mongo), EL_OK);
    el_store_close(lite);
    el_store_close(mongo);
    free((void *)uri);
}

/* More threads than pooled clients: callers wait for a free client and
 * every call still succeeds. */
#define POOL_THREADS 12
#define POOL_ROUNDS 10

struct pool_worker {
    struct el_store *s;
    int errors;
};

static void *pool_worker_main(void *arg)
{
    struct pool_worker *w = arg;

    for (int r = 0; r < POOL_ROUNDS; r++) {
        struct el_course c, got;
        int64_t n;

        fx_course(&c, "Pooled", "Concurrent insert and read.", "pool");
        if (el_store_course_insert(w->s, &c) != EL_OK ||
            el_store_course_get(w->s, c.id, &got) != EL_OK || strcmp(got.id, c.id) != 0 ||
            el_store_course_count(w->s, &n) != EL_OK || n < 1)
            w->errors++;
        el_course_cleanup(&got);
        el_course_cleanup(&c);
    }
    el_store_thread_cleanup(w->s);
    return NULL;
}

static void test_pool_contention(void)
{
    char uri[1100];
    struct el_store *s;
    struct pool_worker w[POOL_THREADS];
    pthread_t t[POOL_THREADS];
    int64_t n = -1;

    snprintf(uri, sizeof(uri), "%s%smaxPoolSize=3", test_uri(TEST_DB),
             strchr(test_uri(TEST_DB), '?') ? "&" : "?");
    s = open_store(uri);
    CU_ASSERT_EQUAL_FATAL(el_store_reset(s), EL_OK);
    for (int i = 0; i < POOL_THREADS; i++) {
        w[i].s = s;
        w[i].errors = 0;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, pool_worker_main, &w[i]), 0);
    }
    for (int i = 0; i < POOL_THREADS; i++) {
        pthread_join(t[i], NULL);
        CU_ASSERT_EQUAL(w[i].errors, 0);
    }
    CU_ASSERT_EQUAL(el_store_course_count(s, &n), EL_OK);
    CU_ASSERT_EQUAL(n, POOL_THREADS * POOL_ROUNDS);
    CU_ASSERT_EQUAL(el_store_reset(s), EL_OK);
    el_store_close(s);
}

/* Queries and courses that did not come through the parsers are refused
 * before any query, as by the SQLite store. */
static void test_bad_input(void)
{
    const char *uri = unit_strdup(test_uri(TEST_DB));
    struct el_store *s = open_store(uri);
    struct el_course_query q;
    struct el_course_page p;
    struct el_course c;
    int64_t n = -1;

    CU_ASSERT_EQUAL_FATAL(el_store_reset(s), EL_OK);
    q = list_query("", "");
    q.page_size = 0;
    CU_ASSERT_EQUAL(el_store_course_list(s, &q, &p), EL_EINVAL);
    q.page_size = EL_COURSE_PAGE_SIZE_MAX + 1;
    CU_ASSERT_EQUAL(el_store_course_list(s, &q, &p), EL_EINVAL);
    q = list_query("", "");
    q.page = 0;
    CU_ASSERT_EQUAL(el_store_course_list(s, &q, &p), EL_EINVAL);
    q = list_query("", "");
    q.sort = (enum el_sort)4;
    CU_ASSERT_EQUAL(el_store_course_list(s, &q, &p), EL_EINVAL);
    q = list_query("c\xff", "");
    CU_ASSERT_EQUAL(el_store_course_list(s, &q, &p), EL_EINVAL);
    CU_ASSERT_PTR_NULL(p.items);
    q = list_query("", "\xc3");
    CU_ASSERT_EQUAL(el_store_course_list(s, &q, &p), EL_EINVAL);
    q = list_query("", "");
    memset(q.difficulty, 'a', sizeof(q.difficulty)); /* no terminating NUL */
    CU_ASSERT_EQUAL(el_store_course_list(s, &q, &p), EL_EINVAL);

    fx_course(&c, "Bad \xff text", "x", "t");
    CU_ASSERT_EQUAL(el_store_course_insert(s, &c), EL_EINVAL);
    el_course_cleanup(&c);
    fx_course(&c, "Fine", "x", "t");
    strcpy(c.instructor_id, "not-an-object-id-at-all!");
    CU_ASSERT_EQUAL(el_store_course_insert(s, &c), EL_EINVAL);
    strcpy(c.instructor_id, "5f00000000000000000000aa");
    strcpy(c.modules[0].id, "zz0000000000000000000000");
    CU_ASSERT_EQUAL(el_store_course_insert(s, &c), EL_EINVAL);
    el_course_cleanup(&c);
    CU_ASSERT_EQUAL(el_store_course_count(s, &n), EL_OK);
    CU_ASSERT_EQUAL(n, 0); /* nothing half-inserted */
    el_store_close(s);
    free((void *)uri);
}

static void test_bad_uris(void)
{
    struct el_store *s = (struct el_store *)&s;
    struct el_err err = {0, ""};

    CU_ASSERT_EQUAL(el_store_open("mongodb://", &s, &err), EL_EINVAL);
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT_EQUAL(err.code, EL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "mongo"));
    CU_ASSERT_EQUAL(el_store_open("mongodb://127.0.0.1:notaport/x", &s, &err), EL_EINVAL);
    CU_ASSERT_EQUAL(el_store_open("mongodb://h/db?serverSelectionTimeoutMS=abc&w=zz", &s, NULL),
                    EL_EINVAL);
}

/* ---- users, enrollments, tokens ------------------------------- */

/* Insert one course through the store; its id goes into id. */
static void insert_course(struct el_store *s, const char *title, char id[EL_OID_HEX])
{
    struct el_course c;

    fx_course(&c, title, "x", "t");
    CU_ASSERT_EQUAL_FATAL(el_store_course_insert(s, &c), EL_OK);
    memcpy(id, c.id, EL_OID_HEX);
    el_course_cleanup(&c);
}

/* The new collections' indexes, with the options the store relies on: the
 * unique ones are the exactly-once guards, and the TTL ones (expiring at
 * the date in expires_at) keep tokens and revocations from piling up. */
static void test_user_token_indexes(void)
{
    static const struct {
        const char *coll, *name, *key0, *key1;
        bool unique, ttl;
    } want[] = {
        {"users", "email_1", "email", NULL, true, false},
        {"enrollments", "course_id_1_user_id_1", "course_id", "user_id", true, false},
        {"refresh_tokens", "user_id_1", "user_id", NULL, false, false},
        {"refresh_tokens", "expires_at_1", "expires_at", NULL, false, true},
        {"revocations", "expires_at_1", "expires_at", NULL, false, true},
    };
    const char *uri = unit_strdup(test_uri(TEST_DB));
    struct el_store *s;

    drop_db(uri, TEST_DB);
    s = open_store(uri);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        bson_t idx;
        bson_iter_t it, key;
        bool found = raw_index(uri, TEST_DB, want[i].coll, want[i].name, &idx);

        if (!found)
            fprintf(stderr, "\n  index %s.%s missing\n", want[i].coll, want[i].name);
        CU_ASSERT_TRUE(found);
        if (!found)
            continue;
        CU_ASSERT(bson_iter_init_find(&it, &idx, "key") && bson_iter_recurse(&it, &key) &&
                  bson_iter_next(&key) && strcmp(bson_iter_key(&key), want[i].key0) == 0);
        if (want[i].key1)
            CU_ASSERT(bson_iter_next(&key) && strcmp(bson_iter_key(&key), want[i].key1) == 0);
        CU_ASSERT_EQUAL(bson_iter_init_find(&it, &idx, "unique") && bson_iter_as_bool(&it),
                        want[i].unique);
        CU_ASSERT_EQUAL(bson_iter_init_find(&it, &idx, "expireAfterSeconds"), want[i].ttl);
        if (want[i].ttl)
            CU_ASSERT_EQUAL(bson_iter_as_int64(&it), 0);
        bson_destroy(&idx);
    }
    el_store_close(s);
    drop_db(uri, TEST_DB);
    free((void *)uri);
}

/* What other tools (and the TTL monitor, which only expires BSON dates)
 * see: ObjectIds for user and course ids, dates for times, token ids as
 * string _ids, a bool for used. */
static void test_user_token_bson_types(void)
{
    const char *uri = unit_strdup(test_uri(TEST_DB));
    struct el_store *s = open_store(uri);
    int64_t now = el_wall_ms(), count = 0;
    char course[EL_OID_HEX];
    struct el_user u;
    bson_oid_t oid;
    bson_iter_t it;
    bson_t *filter, doc;

    CU_ASSERT_EQUAL_FATAL(el_store_reset(s), EL_OK);
    fx_user(&u, "typed@example.com", "student");
    CU_ASSERT_EQUAL_FATAL(el_store_user_insert(s, &u), EL_OK);
    insert_course(s, "Typed", course);
    CU_ASSERT_EQUAL_FATAL(el_store_enroll(s, course, u.id, &count), EL_OK);
    CU_ASSERT_EQUAL_FATAL(el_store_refresh_insert(s, "typed-jti", u.id, "typed-sid", now + 60000),
                          EL_OK);
    CU_ASSERT_EQUAL_FATAL(el_store_revoke(s, "typed-sid", now + 60000), EL_OK);
#define TYPE_OF(path, type)                                                                        \
    CU_ASSERT(bson_iter_init(&it, &doc) && bson_iter_find_descendant(&it, path, &it) &&            \
              bson_iter_type(&it) == (type))

    bson_oid_init_from_string(&oid, u.id);
    filter = BCON_NEW("_id", BCON_OID(&oid));
    CU_ASSERT_FATAL(raw_find_in(uri, TEST_DB, "users", filter, &doc));
    TYPE_OF("_id", BSON_TYPE_OID);
    TYPE_OF("email", BSON_TYPE_UTF8);
    TYPE_OF("role", BSON_TYPE_UTF8);
    TYPE_OF("created_at", BSON_TYPE_DATE_TIME);
    bson_destroy(&doc);
    bson_destroy(filter);

    filter = BCON_NEW("user_id", BCON_OID(&oid));
    CU_ASSERT_FATAL(raw_find_in(uri, TEST_DB, "enrollments", filter, &doc));
    TYPE_OF("course_id", BSON_TYPE_OID);
    TYPE_OF("user_id", BSON_TYPE_OID);
    TYPE_OF("created_at", BSON_TYPE_DATE_TIME);
    bson_destroy(&doc);
    bson_destroy(filter);

    filter = BCON_NEW("_id", BCON_UTF8("typed-jti"));
    CU_ASSERT_FATAL(raw_find_in(uri, TEST_DB, "refresh_tokens", filter, &doc));
    TYPE_OF("user_id", BSON_TYPE_OID);
    TYPE_OF("sid", BSON_TYPE_UTF8);
    TYPE_OF("expires_at", BSON_TYPE_DATE_TIME);
    TYPE_OF("used", BSON_TYPE_BOOL);
    CU_ASSERT(bson_iter_init_find(&it, &doc, "expires_at") &&
              bson_iter_date_time(&it) == now + 60000);
    bson_destroy(&doc);
    bson_destroy(filter);

    filter = BCON_NEW("_id", BCON_UTF8("typed-sid"));
    CU_ASSERT_FATAL(raw_find_in(uri, TEST_DB, "revocations", filter, &doc));
    TYPE_OF("expires_at", BSON_TYPE_DATE_TIME);
    bson_destroy(&doc);
    bson_destroy(filter);
#undef TYPE_OF
    el_user_cleanup(&u);
    CU_ASSERT_EQUAL(el_store_reset(s), EL_OK);
    el_store_close(s);
    free((void *)uri);
}

#define GUARD_THREADS 8

struct guard_worker {
    struct el_store *s;
    pthread_barrier_t *start;
    int op; /* 0: insert the user, 1: enroll, 2: claim */
    const char *course;
    int64_t now, count;
    int rc;
};

static void *guard_worker_main(void *arg)
{
    struct guard_worker *w = arg;
    struct el_user u;

    fx_user(&u, "only-once@example.com", "student");
    pthread_barrier_wait(w->start); /* all at once */
    if (w->op == 0)
        w->rc = el_store_user_insert(w->s, &u);
    else if (w->op == 1)
        w->rc = el_store_enroll(w->s, w->course, "5a0000000000000000000077", &w->count);
    else
        w->rc = el_store_refresh_claim(w->s, "guard-jti", w->now);
    el_user_cleanup(&u);
    el_store_thread_cleanup(w->s);
    return NULL;
}

/* Run op in GUARD_THREADS threads at once, alternately through the stores
 * in s[0..1]; the number that succeeded goes into *ok, the number refused
 * with EL_ECONFLICT into *conflict, the successful count into *count. */
static void race(struct el_store *const s[2], int op, const char *course, int64_t now, int *ok,
                 int *conflict, int64_t *count)
{
    struct guard_worker w[GUARD_THREADS];
    pthread_t t[GUARD_THREADS];
    pthread_barrier_t start;

    *ok = *conflict = 0;
    CU_ASSERT_EQUAL_FATAL(pthread_barrier_init(&start, NULL, GUARD_THREADS), 0);
    for (int i = 0; i < GUARD_THREADS; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].s = s[i % 2];
        w[i].start = &start;
        w[i].op = op;
        w[i].course = course;
        w[i].now = now;
        w[i].rc = 1;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, guard_worker_main, &w[i]), 0);
    }
    for (int i = 0; i < GUARD_THREADS; i++) {
        pthread_join(t[i], NULL);
        if (w[i].rc == EL_OK) {
            (*ok)++;
            *count = w[i].count;
        }
        *conflict += w[i].rc == EL_ECONFLICT;
        if (w[i].rc != EL_OK && w[i].rc != EL_ECONFLICT)
            fprintf(stderr, "\n  op %d: %s\n", op, el_strerror(w[i].rc));
    }
    pthread_barrier_destroy(&start);
}

/* Two stores -- two client pools, as two responder processes have -- race
 * for one email, one enrollment and one refresh token: the guards are in
 * the database (unique indexes, the claim's filter), not in a process, so
 * exactly one of each wins. */
static void test_guards_across_stores(void)
{
    const char *uri = unit_strdup(test_uri(TEST_DB));
    struct el_store *s[2] = {open_store(uri), open_store(uri)};
    char course[EL_OID_HEX];
    struct el_course got;
    int64_t now = el_wall_ms(), count = -1;
    int ok, conflict;

    CU_ASSERT_EQUAL_FATAL(el_store_reset(s[0]), EL_OK);
    insert_course(s[0], "Raced", course); /* 21 enrolled */
    CU_ASSERT_EQUAL_FATAL(el_store_refresh_insert(s[1], "guard-jti", "5b0000000000000000000001",
                                                  "guard-sid", now + 60000),
                          EL_OK);

    race(s, 0, course, now, &ok, &conflict, &count);
    CU_ASSERT_EQUAL(ok, 1);
    CU_ASSERT_EQUAL(conflict, GUARD_THREADS - 1);
    race(s, 1, course, now, &ok, &conflict, &count);
    CU_ASSERT_EQUAL(ok, 1);
    CU_ASSERT_EQUAL(conflict, GUARD_THREADS - 1);
    CU_ASSERT_EQUAL(count, 22);
    CU_ASSERT_EQUAL_FATAL(el_store_course_get(s[1], course, &got), EL_OK);
    CU_ASSERT_EQUAL(got.enrollment_count, 22); /* the refused ones never counted */
    el_course_cleanup(&got);
    race(s, 2, course, now, &ok, &conflict, &count);
    CU_ASSERT_EQUAL(ok, 1);
    CU_ASSERT_EQUAL(conflict, GUARD_THREADS - 1);

    CU_ASSERT_EQUAL(el_store_reset(s[0]), EL_OK);
    el_store_close(s[0]);
    el_store_close(s[1]);
    free((void *)uri);
}

/* The server is down at open, so no index exists yet when it comes up.
 * The very first calls are racing signups with one email and enrollments
 * of one student: the unique indexes must be in place before any of those
 * writes, not after the first call as the list indexes are. */
static void test_guarded_from_first_write(void)
{
    static struct mock m; /* static: the teardown may still need it */
    struct el_store *s[2];
    bson_oid_t cid;
    bson_t *course, idx;
    int64_t count = -1;
    int ok, conflict;

    memset(&m, 0, sizeof(m));
    m.port = free_port();
    /* The default timeout: a shorter one than the monitor's 500 ms between
     * checks of a server it saw down could expire before it sees it up. */
    snprintf(m.uri, sizeof(m.uri), "mongodb://127.0.0.1:%d/%s", m.port, TEST_DB);
    s[0] = s[1] = open_store(m.uri); /* down: a warning, no indexes */
    mock_start(&m);
    bson_oid_init_from_string(&cid, "6b0000000000000000000001");
    course = BCON_NEW("_id", BCON_OID(&cid), "title", BCON_UTF8("Fresh"), "enrollment_count",
                      BCON_INT32(0));
    raw_insert(m.uri, TEST_DB, course); /* behind the store's back */
    bson_destroy(course);

    race(s, 0, NULL, 0, &ok, &conflict, &count);
    CU_ASSERT_EQUAL(ok, 1);
    CU_ASSERT_EQUAL(conflict, GUARD_THREADS - 1);
    if (raw_index(m.uri, TEST_DB, "users", "email_1", &idx))
        bson_destroy(&idx);
    else
        CU_FAIL("no unique index on users.email");
    race(s, 1, "6b0000000000000000000001", 0, &ok, &conflict, &count);
    CU_ASSERT_EQUAL(ok, 1);
    CU_ASSERT_EQUAL(conflict, GUARD_THREADS - 1);
    CU_ASSERT_EQUAL(count, 1);
    el_store_close(s[0]);
    CU_ASSERT_EQUAL(mock_stop(&m), 0);
}

/* Duplicates stored by someone else stop the unique index on users from
 * being built: a signup is then refused (EL_EIO, logged) rather than done
 * unguarded -- and not reported as the caller's conflict -- while other
 * writes go on. Once the duplicate is gone the next signup builds the
 * index, without a restart. */
static void test_unbuildable_unique_index(void)
{
    const char *uri = unit_strdup(test_uri(TEST_DB));
    struct el_store *s;
    struct el_user u;
    char course[EL_OID_HEX];
    bson_oid_t a, b;
    bson_t *doc, idx;
    int64_t count = -1;

    drop_db(uri, TEST_DB);
    bson_oid_init_from_string(&a, "5c0000000000000000000001");
    bson_oid_init_from_string(&b, "5c0000000000000000000002");
    doc = BCON_NEW("_id", BCON_OID(&a), "email", BCON_UTF8("twin@example.com"));
    raw_write_in(uri, TEST_DB, "users", doc, NULL);
    bson_destroy(doc);
    doc = BCON_NEW("_id", BCON_OID(&b), "email", BCON_UTF8("twin@example.com"));
    raw_write_in(uri, TEST_DB, "users", doc, NULL);
    bson_destroy(doc);

    s = open_store(uri); /* logs: giving up on the users indexes */
    if (raw_index(uri, TEST_DB, "users", "email_1", &idx)) {
        bson_destroy(&idx);
        CU_FAIL("a unique index over duplicates");
    }
    fx_user(&u, "new@example.com", "student");
    CU_ASSERT_EQUAL(el_store_user_insert(s, &u), EL_EIO);
    el_user_cleanup(&u);
    insert_course(s, "Unaffected", course);
    CU_ASSERT_EQUAL(el_store_enroll(s, course, "5a0000000000000000000001", &count), EL_OK);
    CU_ASSERT_EQUAL(count, 22);

    doc = BCON_NEW("_id", BCON_OID(&b));
    raw_write_in(uri, TEST_DB, "users", NULL, doc);
    bson_destroy(doc);
    fx_user(&u, "new@example.com", "student");
    CU_ASSERT_EQUAL(el_store_user_insert(s, &u), EL_OK);
    el_user_cleanup(&u);
    if (raw_index(uri, TEST_DB, "users", "email_1", &idx))
        bson_destroy(&idx);
    else
        CU_FAIL("no unique index on users.email");
    fx_user(&u, "twin@example.com", "student");
    CU_ASSERT_EQUAL(el_store_user_insert(s, &u), EL_ECONFLICT);
    el_user_cleanup(&u);
    el_store_close(s);
    drop_db(uri, TEST_DB);
    free((void *)uri);
}

/* Each delete is two writes without a transaction (the account, then its
 * refresh tokens; the course, then its enrollments), so a failure between
 * them can leave dependents of an id that is already gone: the retry,
 * which finds no user or course, still removes them. (That a delete takes
 * its dependents is in the contract suite, test_store.c.) */
static void test_deletes_take_dependents(void)
{
    const char *uri = unit_strdup(test_uri(TEST_DB));
    struct el_store *s = open_store(uri);
    int64_t now = el_wall_ms(), count = -1;
    struct el_user a, b;
    bson_oid_t cid, uid;
    bson_t *doc, found;

    CU_ASSERT_EQUAL_FATAL(el_store_reset(s), EL_OK);
    fx_user(&a, "a@example.com", "student");
    fx_user(&b, "b@example.com", "student");
    CU_ASSERT_EQUAL_FATAL(el_store_user_insert(s, &a), EL_OK);
    CU_ASSERT_EQUAL_FATAL(el_store_user_insert(s, &b), EL_OK);
    CU_ASSERT_EQUAL(el_store_refresh_insert(s, "tb", b.id, "sb", now + 60000), EL_OK);
    CU_ASSERT_EQUAL(el_store_user_delete(s, a.id), EL_OK);

    /* What a half-done user delete leaves: a token of a deleted account. */
    CU_ASSERT_EQUAL(el_store_refresh_insert(s, "left", a.id, "sa", now + 60000), EL_OK);
    CU_ASSERT_EQUAL(el_store_user_delete(s, a.id), EL_ENOTFOUND);
    CU_ASSERT_EQUAL(el_store_refresh_claim(s, "left", now), EL_ENOTFOUND);
    CU_ASSERT_EQUAL(el_store_refresh_claim(s, "tb", now), EL_OK); /* not b's */

    /* ... and of a course delete: an enrollment in a deleted course. */
    bson_oid_init_from_string(&cid, "6c0000000000000000000001");
    bson_oid_init_from_string(&uid, "5a0000000000000000000001");
    doc = BCON_NEW("course_id", BCON_OID(&cid), "user_id", BCON_OID(&uid));
    raw_write_in(uri, TEST_DB, "enrollments", doc, NULL);
    bson_destroy(doc);
    CU_ASSERT_EQUAL(el_store_course_delete(s, "6c0000000000000000000001"), EL_ENOTFOUND);
    doc = BCON_NEW("course_id", BCON_OID(&cid));
    if (raw_find_in(uri, TEST_DB, "enrollments", doc, &found)) {
        bson_destroy(&found);
        CU_FAIL("the enrollment of a deleted course is still there");
    }
    bson_destroy(doc);
    {
        struct el_course c;

        fx_course(&c, "Back again", "x", "t"); /* 21 enrolled */
        strcpy(c.id, "6c0000000000000000000001");
        CU_ASSERT_EQUAL_FATAL(el_store_course_insert(s, &c), EL_OK);
        el_course_cleanup(&c);
    }
    CU_ASSERT_EQUAL(
        el_store_enroll(s, "6c0000000000000000000001", "5a0000000000000000000001", &count), EL_OK);
    CU_ASSERT_EQUAL(count, 22);
    el_user_cleanup(&a);
    el_user_cleanup(&b);
    CU_ASSERT_EQUAL(el_store_reset(s), EL_OK);
    el_store_close(s);
    free((void *)uri);
}

static int never_called(const char *id, int64_t expires_ms, void *arg)
{
    EL_UNUSED(id);
    EL_UNUSED(expires_ms);
    (*(int *)arg)++;
    return 0;
}

/* Nothing listens: every new operation fails with EL_EUNAVAIL after one
 * server selection timeout (500 ms here) -- not two, though several of
 * them write more than one document -- and leaves nothing to clean up. */
static void test_user_token_ops_unreachable(void)
{
    char uri[160];
    struct el_store *s;
    struct el_course_patch cp;
    struct el_module_patch mp;
    struct el_course out;
    struct el_user u, got;
    const char *c = "5f00000000000000000000aa", *m = "5f00000000000000000000ab";
    int64_t count = -1, now = el_wall_ms();
    int r = -1, calls = 0, rc[14], i = 0;
    uint64_t t[15];

    snprintf(uri, sizeof(uri), "mongodb://127.0.0.1:%d/elearn_down?serverSelectionTimeoutMS=500",
             free_port());
    s = open_store(uri);
    memset(&cp, 0, sizeof(cp));
    cp.fields = EL_CF_DURATION;
    memset(&mp, 0, sizeof(mp));
    mp.fields = EL_MF_ORDER;
    fx_user(&u, "down@example.com", "student");

    t[0] = el_now_ms();
    rc[i++] = el_store_course_update(s, c, &cp, now, &out);
    CU_ASSERT_PTR_NULL(out.title);
    t[i] = el_now_ms();
    rc[i++] = el_store_module_update(s, c, m, &mp, now, &out);
    CU_ASSERT_PTR_NULL(out.title);
    t[i] = el_now_ms();
    rc[i++] = el_store_course_delete(s, c);
    t[i] = el_now_ms();
    rc[i++] = el_store_enroll(s, c, m, &count);
    CU_ASSERT_EQUAL(count, -1);
    t[i] = el_now_ms();
    rc[i++] = el_store_user_insert(s, &u);
    t[i] = el_now_ms();
    rc[i++] = el_store_user_get(s, c, &got);
    CU_ASSERT_PTR_NULL(got.email);
    t[i] = el_now_ms();
    rc[i++] = el_store_user_get_by_email(s, "down@example.com", &got);
    CU_ASSERT_PTR_NULL(got.email);
    t[i] = el_now_ms();
    rc[i++] = el_store_user_update(s, c, "admin", NULL);
    t[i] = el_now_ms();
    rc[i++] = el_store_user_delete(s, c);
    t[i] = el_now_ms();
    rc[i++] = el_store_refresh_insert(s, "down-jti", c, "down-sid", now + 60000);
    t[i] = el_now_ms();
    rc[i++] = el_store_refresh_claim(s, "down-jti", now);
    t[i] = el_now_ms();
    rc[i++] = el_store_revoke(s, "down-sid", now + 60000);
    t[i] = el_now_ms();
    rc[i++] = el_store_revoked(s, "down-jti", "down-sid", now, &r);
    CU_ASSERT_EQUAL(r, 0);
    t[i] = el_now_ms();
    rc[i++] = el_store_revocations_live(s, now, never_called, &calls);
    CU_ASSERT_EQUAL(calls, 0);
    t[i] = el_now_ms();
    for (int k = 0; k < i; k++) {
        uint64_t ms = t[k + 1] - t[k];

        if (rc[k] != EL_EUNAVAIL || ms < 450 || ms >= 900)
            fprintf(stderr, "\n  operation %d: %s after %llu ms\n", k, el_strerror(rc[k]),
                    (unsigned long long)ms);
        CU_ASSERT_EQUAL(rc[k], EL_EUNAVAIL);
        CU_ASSERT(ms >= 450 && ms < 900); /* one timeout of 500 ms (and slack), not two */
    }
    el_user_cleanup(&u);
    el_store_close(s);
}

/* Token ids and emails are string values, never query syntax. */
static void test_user_token_ops_injection(void)
{
    static const char *const ids[] = {"{\"$ne\":null}", "{\"$gt\":\"\"}", ".*", "$where", "/.*/"};
    const char *uri = unit_strdup(test_uri(TEST_DB));
    struct el_store *s = open_store(uri);
    int64_t now = el_wall_ms();
    struct el_user u, got;

    CU_ASSERT_EQUAL_FATAL(el_store_reset(s), EL_OK);
    fx_user(&u, "real@example.com", "student");
    CU_ASSERT_EQUAL_FATAL(el_store_user_insert(s, &u), EL_OK);
    CU_ASSERT_EQUAL_FATAL(el_store_refresh_insert(s, "real-jti", u.id, "real-sid", now + 60000),
                          EL_OK);
    CU_ASSERT_EQUAL_FATAL(el_store_revoke(s, "real-sid", now + 60000), EL_OK);
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        int r = -1;

        CU_ASSERT_EQUAL(el_store_user_get_by_email(s, ids[i], &got), EL_ENOTFOUND);
        CU_ASSERT_EQUAL(el_store_refresh_claim(s, ids[i], now), EL_ENOTFOUND);
        CU_ASSERT_EQUAL(el_store_revoked(s, ids[i], ids[i], now, &r), EL_OK);
        CU_ASSERT_EQUAL(r, 0);
    }
    CU_ASSERT_EQUAL(el_store_refresh_claim(s, "real-jti", now), EL_OK); /* still unused */
    CU_ASSERT_EQUAL(el_store_user_get_by_email(s, "real@example.com", &got), EL_OK);
    el_user_cleanup(&got);
    el_user_cleanup(&u);
    CU_ASSERT_EQUAL(el_store_reset(s), EL_OK);
    el_store_close(s);
    free((void *)uri);
}

/* The commands behind the guards, counted by the server: a claim is one
 * update (a second look only when it fails); an enrollment is a find, an
 * insert and one findAndModify for the count, and a duplicate is refused
 * at the insert and never reaches the count. */
static void test_user_token_ops_queries(void)
{
    const char *uri = unit_strdup(test_uri(TEST_DB));
    struct el_store *s = open_store(uri);
    int64_t now = el_wall_ms(), count = -1;
    int64_t find, update, insert, fam;
    char course[EL_OID_HEX];

    CU_ASSERT_EQUAL_FATAL(el_store_reset(s), EL_OK);
    insert_course(s, "Counted", course);
    CU_ASSERT_EQUAL_FATAL(el_store_refresh_insert(s, "count-jti", "5b0000000000000000000001",
                                                  "count-sid", now + 60000),
                          EL_OK);
#define SNAP()                                                                                     \
    (find = server_count(uri, "find"), update = server_count(uri, "update"),                       \
     insert = server_count(uri, "insert"), fam = server_count(uri, "findAndModify"))
#define DELTA(f, u, i, a)                                                                          \
    do {                                                                                           \
        CU_ASSERT_EQUAL(server_count(uri, "find") - find, f);                                      \
        CU_ASSERT_EQUAL(server_count(uri, "update") - update, u);                                  \
        CU_ASSERT_EQUAL(server_count(uri, "insert") - insert, i);                                  \
        CU_ASSERT_EQUAL(server_count(uri, "findAndModify") - fam, a);                              \
    } while (0)
    SNAP();
    CU_ASSERT_EQUAL(el_store_refresh_claim(s, "count-jti", now), EL_OK);
    DELTA(0, 1, 0, 0);
    SNAP();
    CU_ASSERT_EQUAL(el_store_refresh_claim(s, "count-jti", now), EL_ECONFLICT);
    DELTA(1, 1, 0, 0);
    SNAP();
    CU_ASSERT_EQUAL(el_store_enroll(s, course, "5a0000000000000000000001", &count), EL_OK);
    CU_ASSERT_EQUAL(count, 22);
    DELTA(1, 0, 1, 1);
    SNAP();
    CU_ASSERT_EQUAL(el_store_enroll(s, course, "5a0000000000000000000001", &count), EL_ECONFLICT);
    DELTA(1, 0, 1, 0);
    SNAP();
    CU_ASSERT_EQUAL(
        el_store_enroll(s, "6b00000000000000000000ff", "5a0000000000000000000001", &count),
        EL_ENOTFOUND);
    DELTA(1, 0, 0, 0); /* no orphan enrollment written for a missing course */
#undef SNAP
#undef DELTA
    CU_ASSERT_EQUAL(el_store_reset(s), EL_OK);
    el_store_close(s);
    free((void *)uri);
}

/* The raw clients need libmongoc initialised even before the first store
 * is opened (mongoc_init is idempotent). */
static int suite_init(void)
{
    mongoc_init();
    return 0;
}

/* After every test, even one a fatal assertion ended: no server of ours
 * outlives its test. */
static void teardown(void)
{
    if (live_mock != NULL)
        (void)mock_stop(live_mock);
}

/* ---- replica sets (issue 9) ---------------------------------------------- */

struct wire_entry {
    char cmd[32], coll[64], w[16], read_pref[32];
    int64_t wtimeout;
};

/* The test server's command log (elearnLog), oldest first; returns n. */
static int wire_log(const char *uri, struct wire_entry *out, int max)
{
    bson_t *cmd = BCON_NEW("elearnLog", BCON_INT32(1));
    bson_t reply;
    bson_error_t error;
    bson_iter_t it, arr, doc, sub;
    int n = 0;

    CU_ASSERT_FATAL(raw_command(uri, "admin", cmd, &reply, &error));
    if (bson_iter_init_find(&it, &reply, "log") && bson_iter_recurse(&it, &arr)) {
        while (n < max && bson_iter_next(&arr) && bson_iter_recurse(&arr, &doc)) {
            struct wire_entry *e = &out[n++];

            memset(e, 0, sizeof(*e));
            while (bson_iter_next(&doc)) {
                const char *k = bson_iter_key(&doc);

                if (strcmp(k, "cmd") == 0 && BSON_ITER_HOLDS_UTF8(&doc))
                    snprintf(e->cmd, sizeof(e->cmd), "%s", bson_iter_utf8(&doc, NULL));
                else if (strcmp(k, "coll") == 0 && BSON_ITER_HOLDS_UTF8(&doc))
                    snprintf(e->coll, sizeof(e->coll), "%s", bson_iter_utf8(&doc, NULL));
                else if (strcmp(k, "readPreference") == 0 && BSON_ITER_HOLDS_UTF8(&doc))
                    snprintf(e->read_pref, sizeof(e->read_pref), "%s", bson_iter_utf8(&doc, NULL));
                else if (strcmp(k, "writeConcern") == 0 && BSON_ITER_HOLDS_DOCUMENT(&doc) &&
                         bson_iter_recurse(&doc, &sub)) {
                    while (bson_iter_next(&sub)) {
                        if (strcmp(bson_iter_key(&sub), "w") == 0 && BSON_ITER_HOLDS_UTF8(&sub))
                            snprintf(e->w, sizeof(e->w), "%s", bson_iter_utf8(&sub, NULL));
                        else if (strcmp(bson_iter_key(&sub), "w") == 0)
                            snprintf(e->w, sizeof(e->w), "%d", (int)bson_iter_as_int64(&sub));
                        else if (strcmp(bson_iter_key(&sub), "wtimeout") == 0)
                            e->wtimeout = bson_iter_as_int64(&sub);
                    }
                }
            }
        }
    }
    bson_destroy(&reply);
    bson_destroy(cmd);
    return n;
}

static void simple(const char *uri, bson_t *cmd)
{
    bson_t reply;
    bson_error_t error;

    CU_ASSERT(raw_command(uri, "admin", cmd, &reply, &error));
    bson_destroy(&reply);
    bson_destroy(cmd);
}

/* Against a replica-set member: auth-critical writes carry w: "majority"
 * and a wtimeout inside DB_TIMEOUT_MS, course writes do not; every read is
 * a primary read even though the URI asks for secondaryPreferred; a
 * NotWritablePrimary (an election) is retried once by the driver and then
 * answered EL_EUNAVAIL, never a wrong success; a majority that does not
 * acknowledge in time is EL_EUNAVAIL (503). */
static void test_replica_set_member(void)
{
    struct mock m = {0};
    struct wire_entry log[64];
    char uri[256], course[EL_OID_HEX];
    struct el_course got;
    struct el_store *s;
    int64_t now = el_wall_ms();
    int revoked = -1, n, critical = 0, course_writes = 0, reads = 0;

    m.port = free_port();
    mock_start_set(&m, "rs0");
    snprintf(uri, sizeof(uri),
             "mongodb://127.0.0.1:%d/%s?replicaSet=rs0&readPreference=secondaryPreferred", m.port,
             TEST_DB);
    s = open_store(uri);
    CU_ASSERT_EQUAL_FATAL(el_store_reset(s), EL_OK);
    insert_course(s, "Replicated", course);
    simple(m.uri, BCON_NEW("elearnReset", BCON_INT32(1)));

    CU_ASSERT_EQUAL(el_store_course_get(s, course, &got), EL_OK);
    el_course_cleanup(&got);
    CU_ASSERT_EQUAL(el_store_revoke(s, "rs-jti", now + 60000), EL_OK);
    CU_ASSERT_EQUAL(el_store_revoked(s, "rs-jti", NULL, now, &revoked), EL_OK);
    CU_ASSERT_EQUAL(revoked, 1);
    CU_ASSERT_EQUAL(
        el_store_refresh_insert(s, "rs-r", "5b0000000000000000000001", "rs-sid", now + 60000),
        EL_OK);
    CU_ASSERT_EQUAL(el_store_refresh_claim(s, "rs-r", now), EL_OK);
    insert_course(s, "Not critical", course);
    n = wire_log(m.uri, log, 64);
    for (int i = 0; i < n; i++) {
        int write = strcmp(log[i].cmd, "insert") == 0 || strcmp(log[i].cmd, "update") == 0 ||
                    strcmp(log[i].cmd, "delete") == 0 || strcmp(log[i].cmd, "findAndModify") == 0;

        if (write && (strcmp(log[i].coll, "revocations") == 0 ||
                      strcmp(log[i].coll, "refresh_tokens") == 0)) {
            CU_ASSERT_STRING_EQUAL(log[i].w, "majority");
            CU_ASSERT(log[i].wtimeout > 0 && log[i].wtimeout < el_store_timeout_ms());
            critical++;
        } else if (write && strcmp(log[i].coll, "courses") == 0) {
            CU_ASSERT_STRING_NOT_EQUAL(log[i].w, "majority");
            course_writes++;
        } else if (strcmp(log[i].cmd, "find") == 0 || strcmp(log[i].cmd, "aggregate") == 0) {
            /* A primary read carries no $readPreference, or "primary". */
            CU_ASSERT(log[i].read_pref[0] == '\0' || strcmp(log[i].read_pref, "primary") == 0);
            reads++;
        }
    }
    CU_ASSERT_EQUAL(critical, 3);
    CU_ASSERT(course_writes >= 1);
    CU_ASSERT(reads >= 2);

    /* One NotWritablePrimary: the driver's retryable write goes again. */
    simple(m.uri, BCON_NEW("elearnFailWrites", BCON_INT32(1), "code", BCON_INT32(10107)));
    CU_ASSERT_EQUAL(el_store_revoke(s, "rs-jti2", now + 60000), EL_OK);
    CU_ASSERT_EQUAL(el_store_revoked(s, "rs-jti2", NULL, now, &revoked), EL_OK);
    CU_ASSERT_EQUAL(revoked, 1);
    /* An election that outlasts the retry: unavailable, not a success. */
    simple(m.uri, BCON_NEW("elearnFailWrites", BCON_INT32(5), "code", BCON_INT32(10107)));
    CU_ASSERT_EQUAL(el_store_revoke(s, "rs-jti3", now + 60000), EL_EUNAVAIL);
    simple(m.uri, BCON_NEW("elearnFailWrites", BCON_INT32(0)));
    /* No majority within wtimeout: EL_EUNAVAIL (the app answers 503). */
    simple(m.uri, BCON_NEW("elearnFailWrites", BCON_INT32(1), "code", BCON_INT32(64),
                           "writeConcernError", BCON_BOOL(true)));
    CU_ASSERT_EQUAL(
        el_store_refresh_insert(s, "rs-r2", "5b0000000000000000000001", "rs-sid", now + 60000),
        EL_EUNAVAIL);
    simple(m.uri, BCON_NEW("elearnFailWrites", BCON_INT32(0)));
    el_store_close(s);
    mock_stop(&m);
}

/* Two test servers, one replica set: the store follows an election. The
 * old primary refuses writes (NotWritablePrimary); the driver's retryable
 * write rediscovers the set and goes to the new primary -- never a write
 * taken by a non-primary, never a wrong success. */
static void test_replica_set_switch(void)
{
    struct mock a = {0}, b = {0};
    char members[64], primary[32], uri[256];
    char o_rs[] = "--replset", o_m[] = "--members", o_p[] = "--primary", rs[] = "rs0";
    char *extra[] = {o_rs, rs, o_m, members, o_p, primary, NULL};
    struct wire_entry log[64];
    struct el_store *s;
    int64_t now = el_wall_ms();
    int revoked = -1, n, on_b = 0;

    a.port = free_port();
    b.port = free_port();
    snprintf(members, sizeof(members), "127.0.0.1:%d,127.0.0.1:%d", a.port, b.port);
    snprintf(primary, sizeof(primary), "127.0.0.1:%d", a.port);
    mock_start_args(&a, extra);
    mock_start_args(&b, extra);
    snprintf(uri, sizeof(uri), "mongodb://127.0.0.1:%d,127.0.0.1:%d/%s?replicaSet=rs0", a.port,
             b.port, TEST_DB);
    s = open_store(uri);
    CU_ASSERT_EQUAL(el_store_revoke(s, "sw-1", now + 60000), EL_OK);
    CU_ASSERT_EQUAL(el_store_revoked(s, "sw-1", NULL, now, &revoked), EL_OK);
    CU_ASSERT_EQUAL(revoked, 1);

    /* The election: b is the primary now. */
    snprintf(primary, sizeof(primary), "127.0.0.1:%d", b.port);
    simple(a.uri, BCON_NEW("elearnSetPrimary", BCON_UTF8(primary)));
    simple(b.uri, BCON_NEW("elearnSetPrimary", BCON_UTF8(primary)));
    CU_ASSERT_EQUAL(el_store_revoke(s, "sw-2", now + 60000), EL_OK);
    CU_ASSERT_EQUAL(el_store_revoked(s, "sw-2", NULL, now, &revoked), EL_OK);
    CU_ASSERT_EQUAL(revoked, 1); /* read back from b, where it was written */
    n = wire_log(b.uri, log, 64);
    for (int i = 0; i < n; i++)
        on_b += strcmp(log[i].cmd, "update") == 0 && strcmp(log[i].coll, "revocations") == 0;
    CU_ASSERT_EQUAL(on_b, 1);
    el_store_close(s);
    mock_stop(&a);
    mock_stop(&b);
}

void test_store_mongo_register(void)
{
    CU_pSuite s = CU_add_suite_with_setup_and_teardown("store_mongo_specific", suite_init, NULL,
                                                       NULL, teardown);

    CU_add_test(s, "unreachable: open works, calls fail fast", test_unreachable);
    CU_add_test(s, "a timeout in the URI wins", test_uri_timeout_wins);
    CU_add_test(s, "the store timeout sets the timeouts", test_db_timeout_env);
    CU_add_test(s, "server down, up, gone, back", test_server_comes_and_goes);
    CU_add_test(s, "indexes exist when open returns", test_indexes_at_open);
    CU_add_test(s, "search and filters are never operators", test_injection);
    CU_add_test(s, "one find per get, none past the last page", test_queries_per_call);
    CU_add_test(s, "stored BSON types", test_stored_bson_types);
    CU_add_test(s, "documents from other writers", test_reads_foreign_documents);
    CU_add_test(s, "same course, same struct as SQLite", test_same_struct_as_sqlite);
    CU_add_test(s, "search folds ASCII letters only, as SQLite", test_search_folds_ascii_only);
    CU_add_test(s, "more threads than pooled clients", test_pool_contention);
    CU_add_test(s, "hand-built bad queries and courses are refused", test_bad_input);
    CU_add_test(s, "bad URIs are EL_EINVAL", test_bad_uris);
    CU_add_test(s, "users, enrollments, tokens: unique and TTL indexes", test_user_token_indexes);
    CU_add_test(s, "users, enrollments, tokens: stored BSON types", test_user_token_bson_types);
    CU_add_test(s, "two stores race: one email, one enrollment, one claim",
                test_guards_across_stores);
    CU_add_test(s, "unique indexes guard the first writes after the server comes up",
                test_guarded_from_first_write);
    CU_add_test(s, "an unbuildable unique index refuses the writes it guards",
                test_unbuildable_unique_index);
    CU_add_test(s, "deletes take tokens and enrollments, also on a retry",
                test_deletes_take_dependents);
    CU_add_test(s, "new operations: unreachable fails fast, one timeout",
                test_user_token_ops_unreachable);
    CU_add_test(s, "token ids and emails are never operators", test_user_token_ops_injection);
    CU_add_test(s, "claim and enroll: the commands sent", test_user_token_ops_queries);
    CU_add_test(s, "replica set: write concern, primary reads, elections", test_replica_set_member);
    CU_add_test(s, "replica set: an election between two servers is followed",
                test_replica_set_switch);
}
