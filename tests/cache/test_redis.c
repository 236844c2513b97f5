/* test_redis.c -- lib/cache/redis.c against real servers: the harness's redis on
 * EL_TEST_REDIS_PORT, private redis-servers this suite starts and kills
 * itself (outage, restart, AUTH), and bare listening sockets that accept but
 * never answer (timeouts, the breaker's single probe).
 *
 * CUnit is not thread-safe, so worker threads count their failures in
 * atomics and the main thread asserts on the counts. Timing assertions use
 * one slack constant that is generous enough for the sanitizer builds; lower
 * bounds come from the breaker's schedule and cannot be met early. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/CUnit.h>
#include <hiredis/hiredis.h>

#include "cache/redis.h"
#include "unit.h"

extern char **environ;

#define TEST_DB 9    /* this suite's database on the shared test redis */
#define SLACK_MS 150 /* scheduling slack above a time bound (TSan, 2 cores) */
#define PREFIX "t_redis:"

/* ---- helpers ---------------------------------------------------------- */

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static int test_port(void)
{
    return unit_redis_port();
}

static struct el_redis *open_url(const char *url, int timeout_ms, int rmin, int rmax)
{
    struct el_redis_opts o = {timeout_ms, rmin, rmax};
    struct el_redis *r = NULL;
    struct el_err err = {0, ""};
    int rc = el_redis_new(url, &o, &r, &err);

    if (rc != 0)
        fprintf(stderr, "el_redis_new(%s): %s\n", url, err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    return r;
}

static struct el_redis *open_port(int port, int db, int timeout_ms, int rmin, int rmax)
{
    char url[96];

    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/%d", port, db);
    return open_url(url, timeout_ms, rmin, rmax);
}

/* A TCP listener on 127.0.0.1 with the given backlog; its port in *port. */
static int listener(int backlog, int *port)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    CU_ASSERT_FATAL(fd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    CU_ASSERT_FATAL(listen(fd, backlog) == 0);
    CU_ASSERT_FATAL(getsockname(fd, (struct sockaddr *)&a, &alen) == 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* A port nothing listens on (bound, then released). */
static int free_port(void)
{
    int port, fd = listener(1, &port);

    close(fd);
    return port;
}

/* A direct hiredis connection to check what the module did. */
static redisContext *raw_open(int port, const char *password, int db)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    redisReply *rep;

    CU_ASSERT_FATAL(c != NULL && c->err == 0);
    redisSetTimeout(c, tv);
    if (password) {
        rep = redisCommand(c, "AUTH %s", password);
        CU_ASSERT_FATAL(rep != NULL && rep->type == REDIS_REPLY_STATUS);
        freeReplyObject(rep);
    }
    rep = redisCommand(c, "SELECT %d", db);
    CU_ASSERT_FATAL(rep != NULL && rep->type == REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    return c;
}

/* Run a command that must answer with an integer (PTTL, DEL, ...). */
static long long raw_int(redisContext *c, const char *cmd, const char *key)
{
    redisReply *rep = redisCommand(c, "%s %s", cmd, key);
    long long v;

    CU_ASSERT_FATAL(rep != NULL && rep->type == REDIS_REPLY_INTEGER);
    v = rep->integer;
    freeReplyObject(rep);
    return v;
}

/* INFO clients -> connected_clients, or -1. */
static int raw_clients(redisContext *c)
{
    redisReply *rep = redisCommand(c, "INFO clients");
    const char *p;
    int n = -1;

    if (rep && rep->type == REDIS_REPLY_STRING && (p = strstr(rep->str, "connected_clients:")))
        n = (int)strtol(p + strlen("connected_clients:"), NULL, 10);
    freeReplyObject(rep);
    return n;
}

/* Poll INFO until connected_clients == want or 3 s pass: the server notices
 * a closed socket on its next event loop turn, not synchronously. */
static int await_clients(redisContext *c, int want)
{
    uint64_t deadline = el_now_ms() + 3000;
    int n;

    while ((n = raw_clients(c)) != want && el_now_ms() < deadline)
        pause_ms(5);
    return n;
}

/* A private redis-server, started and killed by this suite. */
struct srv {
    pid_t pid;
    int port;
};

/* Start redis-server on port with extra config arguments (NULL-ended) and
 * wait until it answers (any reply, NOAUTH included). */
static void srv_start(struct srv *s, int port, const char *const *extra)
{
    char portstr[16], logf[600];
    const char *argv[40] = {"redis-server",
                            "--port",
                            portstr,
                            "--bind",
                            "127.0.0.1",
                            "--save",
                            "",
                            "--appendonly",
                            "no",
                            "--daemonize",
                            "no",
                            "--dir",
                            unit_env("EL_TEST_TMPDIR"),
                            "--logfile",
                            logf};
    int n = 15, ready = 0;
    uint64_t deadline;

    snprintf(portstr, sizeof(portstr), "%d", port);
    snprintf(logf, sizeof(logf), "%s", unit_tmp_path("redis-extra.log"));
    for (; extra && *extra && n < 39; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    s->port = port;
    CU_ASSERT_FATAL(
        posix_spawnp(&s->pid, "redis-server", NULL, NULL, (char *const *)argv, environ) == 0);
    deadline = el_now_ms() + 10000;
    while (!ready && el_now_ms() < deadline) {
        struct timeval tv = {0, 200000};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);

        if (c && !c->err) {
            redisReply *rep;

            redisSetTimeout(c, tv);
            rep = redisCommand(c, "PING");
            ready = rep != NULL;
            freeReplyObject(rep);
        }
        redisFree(c);
        if (!ready) {
            CU_ASSERT_FATAL(waitpid(s->pid, NULL, WNOHANG) == 0); /* still running */
            pause_ms(10);
        }
    }
    CU_ASSERT_FATAL(ready);
}

static void srv_kill(struct srv *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

/* A thread that runs jobs handed to it one at a time, so a test can use a
 * handle from a second thread that keeps its connection between jobs. */
struct helper {
    pthread_t tid;
    sem_t go, done;
    int (*job)(struct el_redis *, void *);
    struct el_redis *r;
    void *arg;
    int rc;
    int quit;
};

static void *helper_main(void *arg)
{
    struct helper *h = arg;

    for (;;) {
        sem_wait(&h->go);
        if (h->quit)
            return NULL;
        h->rc = h->job(h->r, h->arg);
        sem_post(&h->done);
    }
}

static void helper_start(struct helper *h, struct el_redis *r)
{
    memset(h, 0, sizeof(*h));
    h->r = r;
    sem_init(&h->go, 0, 0);
    sem_init(&h->done, 0, 0);
    CU_ASSERT_FATAL(pthread_create(&h->tid, NULL, helper_main, h) == 0);
}

static int helper_run(struct helper *h, int (*job)(struct el_redis *, void *), void *arg)
{
    h->job = job;
    h->arg = arg;
    sem_post(&h->go);
    sem_wait(&h->done);
    return h->rc;
}

static void helper_stop(struct helper *h)
{
    h->quit = 1;
    sem_post(&h->go);
    pthread_join(h->tid, NULL);
    sem_destroy(&h->go);
    sem_destroy(&h->done);
}

/* ---- contract basics -------------------------------------------------- */

static void test_disabled(void)
{
    struct el_redis *r = (struct el_redis *)&r;
    struct el_buf b;
    int64_t v = 7;

    CU_ASSERT_EQUAL(el_redis_new("", NULL, &r, NULL), EL_EDISABLED);
    CU_ASSERT_PTR_NULL(r);
    r = (struct el_redis *)&r;
    CU_ASSERT_EQUAL(el_redis_new(NULL, NULL, &r, NULL), EL_EDISABLED);
    CU_ASSERT_PTR_NULL(r);

    el_buf_init(&b, 64);
    CU_ASSERT_EQUAL(el_redis_get(NULL, "k", &b), EL_EDISABLED);
    CU_ASSERT_EQUAL(b.len, 0);
    CU_ASSERT_EQUAL(el_redis_set(NULL, "k", "v", 1, 0), EL_EDISABLED);
    CU_ASSERT_EQUAL(el_redis_del(NULL, "k"), EL_EDISABLED);
    CU_ASSERT_EQUAL(el_redis_incr(NULL, "k", &v), EL_EDISABLED);
    CU_ASSERT_EQUAL(el_redis_get_int(NULL, "k", &v), EL_EDISABLED);
    CU_ASSERT_EQUAL(v, 7);
    CU_ASSERT_EQUAL(el_redis_ping(NULL), EL_EDISABLED);
    CU_ASSERT_EQUAL(el_redis_is_up(NULL), 0);
    el_redis_thread_cleanup(NULL);
    el_redis_free(NULL);
    el_buf_cleanup(&b);
}

static void test_url_valid(void)
{
    static const char *const ok[] = {
        "redis://localhost",
        "redis://127.0.0.1:6380/2",
        "redis://127.0.0.1:6379/",
        "redis://:secret@cache.internal:6379/0",
        "redis://alice:secret@cache-1.example.com",
        "redis://:p@ss@h:1/15", /* raw '@' in the password: the last '@' ends it */
        "redis://:p%40ss%3A@h:65535",
        "redis://[::1]:6379/3",
        "redis://my_host/2147483647",
        "redis-sentinel://127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381/mymaster",
        "redis-sentinel://:p%40ss@[::1]:26379/mymaster/3",
        "redis-sentinel://alice:pw@s1:1/cache-master/",
    };

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct el_redis *r = NULL;
        struct el_err err = {0, ""};
        int rc = el_redis_new(ok[i], NULL, &r, &err);

        if (rc != 0)
            fprintf(stderr, "rejected %s: %s\n", ok[i], err.msg);
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_PTR_NOT_NULL(r);
        CU_ASSERT_EQUAL(el_redis_is_up(r), 1); /* no connection attempted yet */
        el_redis_free(r);
    }
}

static void test_url_invalid(void)
{
    static const struct {
        const char *url, *needle;
    } bad[] = {
        {"http://127.0.0.1:6379", "redis://"},
        {"127.0.0.1:6379", "redis://"},
        {"rediss://h:6380", "TLS"},
        {"redis://", "missing host"},
        {"redis://:6379/0", "missing host"},
        {"redis://h:", "port"},
        {"redis://h:0", "port"},
        {"redis://h:65536", "port"},
        {"redis://h:63a9", "port"},
        {"redis://h:-1", "port"},
        {"redis://h:99999999999999999999", "port"},
        {"redis://h:6379/x", "db"},
        {"redis://h:6379/-1", "db"},
        {"redis://h:6379/2147483648", "db"},
        {"redis://h:6379/1/2", "db"},
        {"redis://h:6379/1?timeout=1", "db"},
        {"redis://alice@h", "password"},
        {"redis://:pw%4@h", "password"},
        {"redis://:pw%zz@h", "password"},
        {"redis://:pw%00x@h", "password"},
        {"redis://[::1", "IPv6"},
        {"redis://[::1]x", "unexpected"},
        {"redis://h st", "host"},
        {"redis://h?x=1", "host"},
        {"redis-sentinel://h1:26379", "master name"},
        {"redis-sentinel://h1:26379/", "master name"},
        {"redis-sentinel://h1/mymaster", "sentinel 1"},
        {"redis-sentinel://h1:1,,h2:2/m", "sentinel 2"},
        {"redis-sentinel://h1:1,h2:0/m", "sentinel 2"},
        {"redis-sentinel://h 1:1/m", "sentinel 1"},
        {"redis-sentinel:///m", "no sentinel"},
        {"redis-sentinel://h:1/m/x", "db"},
        {"redis-sentinel://h:1/m a", "master name"},
        {"redis-sentinel://a:1,b:1,c:1,d:1,e:1,f:1,g:1,h:1,i:1/m", "more than 8"},
        {"redis-sentinel://alice@h:1/m", "password"},
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct el_redis *r = (struct el_redis *)&r;
        struct el_err err = {0, ""};

        CU_ASSERT_EQUAL(el_redis_new(bad[i].url, NULL, &r, &err), EL_EINVAL);
        CU_ASSERT_PTR_NULL(r);
        CU_ASSERT_EQUAL(err.code, EL_EINVAL);
        if (strstr(err.msg, bad[i].needle) == NULL) {
            fprintf(stderr, "%s: message \"%s\" lacks \"%s\"\n", bad[i].url, err.msg,
                    bad[i].needle);
            CU_FAIL("error message does not say what is wrong");
        }
    }

    /* A bad URL's message never quotes the password. */
    {
        struct el_redis *r = NULL;
        struct el_err err = {0, ""};

        CU_ASSERT_EQUAL(el_redis_new("redis://:topsecret@h:99999", NULL, &r, &err), EL_EINVAL);
        CU_ASSERT_PTR_NULL(strstr(err.msg, "topsecret"));
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "port"));
    }
}

static void test_opts(void)
{
    struct el_redis *r = NULL;
    struct el_redis_opts neg = {-1, 0, 0}, inverted = {0, 500, 100}, zero = {0, 0, 0};
    struct el_err err = {0, ""};

    CU_ASSERT_EQUAL(el_redis_new("redis://h", &neg, &r, &err), EL_EINVAL);
    CU_ASSERT_PTR_NULL(r);
    CU_ASSERT_EQUAL(el_redis_new("redis://h", &inverted, &r, &err), EL_EINVAL);
    CU_ASSERT_PTR_NULL(r);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "retry_max_ms"));
    CU_ASSERT_EQUAL(el_redis_new("redis://h", &zero, &r, &err), 0); /* zeros: defaults */
    el_redis_free(r);
}

/* ---- commands against the shared test redis --------------------------- */

static void test_get_set_binary(void)
{
    struct el_redis *r = open_port(test_port(), TEST_DB, 1000, 0, 0);
    const char val[] = {'a', '\0', 'b', '\0', '\0', 'c'};
    size_t big_len = 1u << 20;
    char *big = malloc(big_len);
    struct el_buf b;

    CU_ASSERT_FATAL(big != NULL);
    el_buf_init(&b, 4u << 20);

    /* NULs survive, and the value is appended after what the buffer holds. */
    CU_ASSERT_EQUAL(el_redis_set(r, PREFIX "bin", val, sizeof(val), 0), 0);
    CU_ASSERT_EQUAL(el_buf_add(&b, "xy", 2), 0);
    CU_ASSERT_EQUAL(el_redis_get(r, PREFIX "bin", &b), 0);
    CU_ASSERT_EQUAL_FATAL(b.len, 2 + sizeof(val));
    CU_ASSERT_EQUAL(memcmp(b.data, "xy", 2), 0);
    CU_ASSERT_EQUAL(memcmp(b.data + 2, val, sizeof(val)), 0);

    /* An empty value is found, with nothing appended (a cached not-found). */
    CU_ASSERT_EQUAL(el_redis_set(r, PREFIX "empty", NULL, 0, 0), 0);
    el_buf_reset(&b);
    CU_ASSERT_EQUAL(el_buf_add(&b, "xy", 2), 0);
    CU_ASSERT_EQUAL(el_redis_get(r, PREFIX "empty", &b), 0);
    CU_ASSERT_EQUAL(b.len, 2);

    /* Missing: EL_ENOTFOUND and the buffer untouched. */
    CU_ASSERT_EQUAL(el_redis_del(r, PREFIX "missing"), 0);
    CU_ASSERT_EQUAL(el_redis_get(r, PREFIX "missing", &b), EL_ENOTFOUND);
    CU_ASSERT_EQUAL(b.len, 2);

    /* A 1 MiB binary value takes many reads and writes. */
    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)(i * 131 + (i >> 7));
    CU_ASSERT_EQUAL(el_redis_set(r, PREFIX "big", big, big_len, 0), 0);
    el_buf_reset(&b);
    CU_ASSERT_EQUAL(el_redis_get(r, PREFIX "big", &b), 0);
    CU_ASSERT_EQUAL_FATAL(b.len, big_len);
    CU_ASSERT_EQUAL(memcmp(b.data, big, big_len), 0);

    /* Overwriting replaces; DEL removes; DEL of a missing key is fine. */
    CU_ASSERT_EQUAL(el_redis_set(r, PREFIX "bin", "new", 3, 0), 0);
    el_buf_reset(&b);
    CU_ASSERT_EQUAL(el_redis_get(r, PREFIX "bin", &b), 0);
    CU_ASSERT_EQUAL(b.len, 3);
    CU_ASSERT_EQUAL(el_redis_del(r, PREFIX "bin"), 0);
    CU_ASSERT_EQUAL(el_redis_get(r, PREFIX "bin", &b), EL_ENOTFOUND);
    CU_ASSERT_EQUAL(el_redis_del(r, PREFIX "bin"), 0);
    CU_ASSERT_EQUAL(el_redis_ping(r), 0);
    CU_ASSERT_EQUAL(el_redis_is_up(r), 1);

    el_buf_cleanup(&b);
    free(big);
    el_redis_free(r);
}

/* Several single-key GETs in one round trip: found and missing keys, each
 * value into its own buffer, in the order given. */
static void test_get_each(void)
{
    struct el_redis *r = open_port(test_port(), TEST_DB, 1000, 0, 0);
    const char *keys[3] = {PREFIX "each1", PREFIX "each-missing", PREFIX "each2"};
    struct el_buf v[3];
    int found[3] = {-1, -1, -1};

    for (int i = 0; i < 3; i++)
        el_buf_init(&v[i], 1024);
    CU_ASSERT_EQUAL(el_redis_set(r, keys[0], "one", 3, 0), 0);
    CU_ASSERT_EQUAL(el_redis_del(r, keys[1]), 0);
    CU_ASSERT_EQUAL(el_redis_set(r, keys[2], "", 0, 0), 0);
    CU_ASSERT_EQUAL(el_redis_get_each(r, 3, keys, v, found), 0);
    CU_ASSERT_EQUAL(found[0], 1);
    CU_ASSERT_EQUAL(found[1], 0);
    CU_ASSERT_EQUAL(found[2], 1);
    CU_ASSERT_EQUAL(v[0].len, 3);
    CU_ASSERT(v[0].data && memcmp(v[0].data, "one", 3) == 0);
    CU_ASSERT_EQUAL(v[1].len, 0);
    CU_ASSERT_EQUAL(v[2].len, 0);
    CU_ASSERT_EQUAL(el_redis_get_each(r, 0, keys, v, found), EL_EINVAL);
    CU_ASSERT_EQUAL(el_redis_get_each(NULL, 3, keys, v, found), EL_EDISABLED);
    for (int i = 0; i < 3; i++)
        el_buf_cleanup(&v[i]);
    CU_ASSERT_EQUAL(el_redis_del(r, keys[0]), 0);
    CU_ASSERT_EQUAL(el_redis_del(r, keys[2]), 0);
    el_redis_free(r);
}

static void test_set_ttl(void)
{
    struct el_redis *r = open_port(test_port(), TEST_DB, 1000, 0, 0);
    redisContext *c = raw_open(test_port(), NULL, TEST_DB);
    uint64_t deadline;
    long long pttl;
    struct el_buf b;
    int rc;

    el_buf_init(&b, 64);
    CU_ASSERT_EQUAL(el_redis_set(r, PREFIX "ttl", "v", 1, 5000), 0);
    pttl = raw_int(c, "PTTL", PREFIX "ttl");
    CU_ASSERT(pttl > 4000 && pttl <= 5000); /* milliseconds (PX), not seconds */

    CU_ASSERT_EQUAL(el_redis_set(r, PREFIX "ttl", "v", 1, 0), 0);
    CU_ASSERT_EQUAL(raw_int(c, "PTTL", PREFIX "ttl"), -1); /* no TTL, and the old one cleared */
    CU_ASSERT_EQUAL(el_redis_set(r, PREFIX "ttl", "v", 1, -5), 0);
    CU_ASSERT_EQUAL(raw_int(c, "PTTL", PREFIX "ttl"), -1);

    /* A 30 ms TTL expires in about 30 ms. */
    CU_ASSERT_EQUAL(el_redis_set(r, PREFIX "ttl", "v", 1, 30), 0);
    deadline = el_now_ms() + 2000;
    while ((rc = el_redis_get(r, PREFIX "ttl", &b)) == 0 && el_now_ms() < deadline) {
        el_buf_reset(&b);
        pause_ms(5);
    }
    CU_ASSERT_EQUAL(rc, EL_ENOTFOUND);

    el_buf_cleanup(&b);
    redisFree(c);
    el_redis_free(r);
}

static void test_counters(void)
{
    static const struct {
        const char *stored;
        int rc;
        int64_t want;
    } ints[] = {
        {"0", 0, 0},
        {"-42", 0, -42},
        {"9223372036854775807", 0, INT64_MAX},
        {"-9223372036854775808", 0, INT64_MIN},
        {"9223372036854775808", EL_EPROTO, 0},
        {"abc", EL_EPROTO, 0},
        {"12x", EL_EPROTO, 0},
        {" 1", EL_EPROTO, 0},
        {"-", EL_EPROTO, 0},
        {"", EL_EPROTO, 0},
    };
    struct el_redis *r = open_port(test_port(), TEST_DB, 1000, 0, 0);
    int64_t v = -1;

    CU_ASSERT_EQUAL(el_redis_del(r, PREFIX "n"), 0);
    CU_ASSERT_EQUAL(el_redis_get_int(r, PREFIX "n", &v), EL_ENOTFOUND);
    CU_ASSERT_EQUAL(el_redis_incr(r, PREFIX "n", &v), 0);
    CU_ASSERT_EQUAL(v, 1);
    CU_ASSERT_EQUAL(el_redis_incr(r, PREFIX "n", NULL), 0);
    CU_ASSERT_EQUAL(el_redis_incr(r, PREFIX "n", &v), 0);
    CU_ASSERT_EQUAL(v, 3);
    v = 0;
    CU_ASSERT_EQUAL(el_redis_get_int(r, PREFIX "n", &v), 0);
    CU_ASSERT_EQUAL(v, 3);

    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        CU_ASSERT_EQUAL(el_redis_set(r, PREFIX "n", ints[i].stored, strlen(ints[i].stored), 0), 0);
        v = 12345;
        CU_ASSERT_EQUAL(el_redis_get_int(r, PREFIX "n", &v), ints[i].rc);
        CU_ASSERT_EQUAL(v, ints[i].rc == 0 ? ints[i].want : 12345);
    }

    /* An error reply is the command's problem, not Redis being down. */
    CU_ASSERT_EQUAL(el_redis_set(r, PREFIX "n", "abc", 3, 0), 0);
    CU_ASSERT_EQUAL(el_redis_incr(r, PREFIX "n", &v), EL_EPROTO);
    CU_ASSERT_EQUAL(el_redis_is_up(r), 1);
    CU_ASSERT_EQUAL(el_redis_get_int(r, PREFIX "n", &v), EL_EPROTO);
    CU_ASSERT_EQUAL(el_redis_is_up(r), 1);
    CU_ASSERT_EQUAL(el_redis_del(r, PREFIX "n"), 0);
    el_redis_free(r);
}

static void test_value_too_big(void)
{
    struct el_redis *r = open_port(test_port(), TEST_DB, 1000, 0, 0);
    struct el_buf small, large;

    el_buf_init(&small, 4);
    el_buf_init(&large, 64);
    CU_ASSERT_EQUAL(el_redis_set(r, PREFIX "big10", "0123456789", 10, 0), 0);
    CU_ASSERT_EQUAL(el_redis_get(r, PREFIX "big10", &small), EL_ETOOBIG);
    CU_ASSERT_EQUAL(el_redis_is_up(r), 1);
    CU_ASSERT_EQUAL(el_redis_get(r, PREFIX "big10", &large), 0); /* connection still good */
    CU_ASSERT_EQUAL(large.len, 10);
    CU_ASSERT_EQUAL(el_redis_get(r, NULL, &large), EL_EINVAL);
    CU_ASSERT_EQUAL(el_redis_get(r, PREFIX "big10", NULL), EL_EINVAL);
    CU_ASSERT_EQUAL(el_redis_set(r, PREFIX "big10", NULL, 3, 0), EL_EINVAL);
    el_buf_cleanup(&small);
    el_buf_cleanup(&large);
    el_redis_free(r);
}

static void test_select_db(void)
{
    struct el_redis *r = open_port(test_port(), TEST_DB + 1, 1000, 0, 0);
    redisContext *in = raw_open(test_port(), NULL, TEST_DB + 1);
    redisContext *other = raw_open(test_port(), NULL, TEST_DB);
    redisReply *rep;

    raw_int(other, "DEL", PREFIX "where");
    CU_ASSERT_EQUAL(el_redis_set(r, PREFIX "where", "ten", 3, 0), 0);
    rep = redisCommand(in, "GET %s", PREFIX "where");
    CU_ASSERT(rep && rep->type == REDIS_REPLY_STRING && strcmp(rep->str, "ten") == 0);
    freeReplyObject(rep);
    CU_ASSERT_EQUAL(raw_int(other, "EXISTS", PREFIX "where"), 0);
    CU_ASSERT_EQUAL(raw_int(in, "DEL", PREFIX "where"), 1);
    redisFree(in);
    redisFree(other);
    el_redis_free(r);
}

/* ---- bounded waits ---------------------------------------------------- */

static void test_refused_fails_fast(void)
{
    struct el_redis *r = open_port(free_port(), 0, 100, 10000, 10000);
    struct el_buf b;
    uint64_t t0, worst = 0;
    int bad = 0;

    el_buf_init(&b, 64);
    t0 = el_now_ms();
    CU_ASSERT_EQUAL(el_redis_get(r, PREFIX "k", &b), EL_EUNAVAIL);
    CU_ASSERT(el_now_ms() - t0 < 100); /* refused at once: no waiting for the timeout */
    CU_ASSERT_EQUAL(el_redis_is_up(r), 0);

    /* While the breaker is open, no call waits at all. */
    for (int i = 0; i < 1000; i++) {
        uint64_t t = el_now_us();

        bad += el_redis_set(r, PREFIX "k", "v", 1, 0) != EL_EUNAVAIL;
        if (el_now_us() - t > worst)
            worst = el_now_us() - t;
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(worst < 20000);
    el_buf_cleanup(&b);
    el_redis_free(r);
}

/* The server's kernel completes the handshake (backlog) but nobody reads:
 * the command's read must give up after timeout_ms. */
static void test_read_timeout(void)
{
    int port, lfd = listener(16, &port);
    struct el_redis *r = open_port(port, 0, 100, 10000, 10000);
    struct el_buf b;
    uint64_t t0, dt;

    el_buf_init(&b, 64);
    t0 = el_now_ms();
    CU_ASSERT_EQUAL(el_redis_get(r, PREFIX "k", &b), EL_ETIMEOUT);
    dt = el_now_ms() - t0;
    CU_ASSERT(dt >= 80 && dt <= 100 + SLACK_MS);
    CU_ASSERT_EQUAL(el_redis_is_up(r), 0);
    t0 = el_now_ms();
    CU_ASSERT_EQUAL(el_redis_get(r, PREFIX "k", &b), EL_EUNAVAIL);
    CU_ASSERT(el_now_ms() - t0 < 20);

    /* With a password the budget is shared: connect + AUTH + command still
     * end within one timeout. */
    el_redis_free(r);
    {
        char url[96];

        snprintf(url, sizeof(url), "redis://:pw@127.0.0.1:%d/3", port);
        r = open_url(url, 100, 10000, 10000);
        t0 = el_now_ms();
        CU_ASSERT_EQUAL(el_redis_set(r, PREFIX "k", "v", 1, 1000), EL_ETIMEOUT);
        dt = el_now_ms() - t0;
        CU_ASSERT(dt >= 80 && dt <= 100 + SLACK_MS);
    }
    el_buf_cleanup(&b);
    el_redis_free(r);
    close(lfd);
}

/* A full accept queue makes the kernel drop further SYNs, so connect()
 * itself hangs: the connect timeout must end it. */
static void test_connect_timeout(void)
{
    int port, lfd = listener(0, &port);
    int filler = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a;
    struct pollfd pfd;
    struct el_redis *r;
    uint64_t t0, dt;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    CU_ASSERT_FATAL(filler >= 0);
    (void)connect(filler, (struct sockaddr *)&a, sizeof(a)); /* non-blocking: in progress */
    pfd.fd = filler;
    pfd.events = POLLOUT;
    CU_ASSERT_FATAL(poll(&pfd, 1, 2000) == 1); /* the one queue slot is taken */

    r = open_port(port, 0, 100, 10000, 10000);
    t0 = el_now_ms();
    CU_ASSERT_EQUAL(el_redis_ping(r), EL_ETIMEOUT);
    dt = el_now_ms() - t0;
    CU_ASSERT(dt >= 80 && dt <= 100 + SLACK_MS);
    CU_ASSERT_EQUAL(el_redis_is_up(r), 0);
    el_redis_free(r);
    close(filler);
    close(lfd);
}

/* ---- breaker: one probe per interval, doubling to the ceiling ---------- */

#define MAX_ACCEPTS 16

struct blackhole {
    int lfd;
    atomic_int stop;
    atomic_int accepted;
    uint64_t at_ms[MAX_ACCEPTS]; /* written by the server thread only */
    int fds[MAX_ACCEPTS];
};

/* Accepts and holds connections without ever answering; records when each
 * arrived. After stop, drains connections already queued, so the count
 * matches the clients' attempts. */
static void *blackhole_main(void *arg)
{
    struct blackhole *bh = arg;
    struct pollfd pfd = {bh->lfd, POLLIN, 0};

    for (;;) {
        int stopping = atomic_load(&bh->stop);
        int n = poll(&pfd, 1, stopping ? 0 : 5);

        if (n == 1) {
            int fd = accept(bh->lfd, NULL, NULL);
            int i = atomic_load(&bh->accepted);

            if (fd >= 0 && i < MAX_ACCEPTS) {
                bh->at_ms[i] = el_now_ms();
                bh->fds[i] = fd;
                atomic_store(&bh->accepted, i + 1);
            } else if (fd >= 0) {
                close(fd);
            }
        } else if (stopping) {
            return NULL;
        }
    }
}

/* Every call that timed out was a probe (the breaker lets nobody else
 * through): when it began and ended, as the caller saw it. */
struct probe_log {
    atomic_int n;
    uint64_t start[MAX_ACCEPTS], end[MAX_ACCEPTS];
};

static void probe_log_add(struct probe_log *pl, uint64_t start, uint64_t end)
{
    int i = atomic_fetch_add(&pl->n, 1);

    if (i < MAX_ACCEPTS) {
        pl->start[i] = start;
        pl->end[i] = end;
    }
}

struct hammer {
    struct el_redis *r;
    atomic_int *stop;
    struct probe_log *probes;
    atomic_int timeouts, unavail, other;
};

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;
    struct el_buf b;

    el_buf_init(&b, 64);
    while (!atomic_load(h->stop)) {
        uint64_t t0 = el_now_ms();
        int rc = el_redis_get(h->r, PREFIX "k", &b);

        if (rc == EL_ETIMEOUT) {
            probe_log_add(h->probes, t0, el_now_ms());
            atomic_fetch_add(&h->timeouts, 1);
        } else if (rc == EL_EUNAVAIL) {
            atomic_fetch_add(&h->unavail, 1);
        } else {
            atomic_fetch_add(&h->other, 1);
        }
        pause_ms(1); /* pacing only; the breaker decides who probes */
    }
    el_buf_cleanup(&b);
    el_redis_thread_cleanup(h->r);
    return NULL;
}

static void test_breaker_single_probe_backoff(void)
{
    enum { T = 50, RMIN = 100, RMAX = 400, NTHREADS = 4, WANT = 6 };
    static const int interval[WANT - 1] = {RMIN, 2 * RMIN, RMAX, RMAX, RMAX};
    struct blackhole bh;
    struct hammer hs[NTHREADS];
    struct probe_log pl;
    pthread_t server, tids[NTHREADS];
    atomic_int stop;
    struct el_redis *r;
    struct el_buf b;
    int port, timeouts = 0, unavail = 0, other = 0;
    uint64_t deadline;

    memset(&bh, 0, sizeof(bh));
    memset(&pl, 0, sizeof(pl));
    atomic_init(&pl.n, 0);
    bh.lfd = listener(64, &port);
    atomic_init(&bh.stop, 0);
    atomic_init(&bh.accepted, 0);
    atomic_init(&stop, 0);
    CU_ASSERT_FATAL(pthread_create(&server, NULL, blackhole_main, &bh) == 0);
    r = open_port(port, 0, T, RMIN, RMAX);

    /* The first failure, from one thread, opens the breaker. */
    el_buf_init(&b, 64);
    {
        uint64_t t0 = el_now_ms();

        CU_ASSERT_EQUAL(el_redis_get(r, PREFIX "k", &b), EL_ETIMEOUT);
        probe_log_add(&pl, t0, el_now_ms());
    }
    CU_ASSERT_EQUAL(el_redis_is_up(r), 0);

    for (int i = 0; i < NTHREADS; i++) {
        hs[i].r = r;
        hs[i].stop = &stop;
        hs[i].probes = &pl;
        atomic_init(&hs[i].timeouts, 0);
        atomic_init(&hs[i].unavail, 0);
        atomic_init(&hs[i].other, 0);
        CU_ASSERT_FATAL(pthread_create(&tids[i], NULL, hammer_main, &hs[i]) == 0);
    }
    deadline = el_now_ms() + 6000;
    while (atomic_load(&bh.accepted) < WANT && el_now_ms() < deadline)
        pause_ms(5);
    atomic_store(&stop, 1);
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(tids[i], NULL);
        timeouts += atomic_load(&hs[i].timeouts);
        unavail += atomic_load(&hs[i].unavail);
        other += atomic_load(&hs[i].other);
    }
    atomic_store(&bh.stop, 1);
    pthread_join(server, NULL);

    CU_ASSERT_FATAL(atomic_load(&bh.accepted) >= WANT);
    /* Every connection was a probe that timed out, and every probe made
     * exactly one connection; everyone else was turned away. */
    CU_ASSERT_EQUAL(other, 0);
    CU_ASSERT_EQUAL(timeouts + 1, atomic_load(&bh.accepted));
    CU_ASSERT(unavail > 100);
    CU_ASSERT_FATAL(atomic_load(&pl.n) >= WANT && atomic_load(&pl.n) <= MAX_ACCEPTS);
    /* The schedule, from the callers' clocks (the server's accept times lag
     * the connects by tens of ms on a loaded machine). Probes are one at a
     * time, so in order. Probe k cannot begin before probe k-1 failed
     * (>= its start + T) plus interval k-1, and it then waits T itself: its
     * end is at least 2T + interval after the previous start, whatever the
     * machine's load -- that bound is what shows the doubling and the
     * ceiling were kept (a missed doubling comes 100 ms early). And someone
     * is always asking, so it begins soon after that interval: a bound
     * loose enough for a loaded machine, tight enough to catch an interval
     * that passed the 400 ms ceiling. */
    for (int k = 1; k < WANT; k++) {
        uint64_t lo = (uint64_t)(2 * T + interval[k - 1]) - 2; /* ms rounding of two timeouts */
        uint64_t since_start = pl.end[k] - pl.start[k - 1];
        uint64_t waited = pl.start[k] > pl.end[k - 1] ? pl.start[k] - pl.end[k - 1] : 0;

        CU_ASSERT(pl.start[k] >= pl.end[k - 1] - 1); /* never two at once */
        if (since_start < lo || waited > (uint64_t)interval[k - 1] + 300) {
            fprintf(stderr,
                    "probe %d: ended %llu ms after probe %d began (want >= %llu), began %llu ms "
                    "after it ended (want <= %d)\n",
                    k, (unsigned long long)since_start, k - 1, (unsigned long long)lo,
                    (unsigned long long)waited, interval[k - 1] + 300);
            CU_FAIL("probe schedule");
        }
    }
    for (int i = 0; i < atomic_load(&bh.accepted); i++)
        close(bh.fds[i]);
    close(bh.lfd);
    el_buf_cleanup(&b);
    el_redis_free(r);
}

/* ---- outage and recovery with a real server --------------------------- */

static int job_set_h(struct el_redis *r, void *arg)
{
    EL_UNUSED(arg);
    return el_redis_set(r, PREFIX "h", "h", 1, 0);
}

static int job_get_k(struct el_redis *r, void *arg)
{
    struct el_buf *b = arg;

    el_buf_reset(b);
    return el_redis_get(r, PREFIX "k", b);
}

static int job_cleanup(struct el_redis *r, void *arg)
{
    EL_UNUSED(arg);
    el_redis_thread_cleanup(r);
    return 0;
}

static void test_outage_and_recovery(void)
{
    enum { T = 100, RMIN = 100, RMAX = 400 };
    struct srv s;
    struct helper h;
    struct el_redis *r;
    struct el_buf b, hb;
    uint64_t t0, ready, worst = 0;
    int rc, port = free_port(), bad = 0;

    srv_start(&s, port, NULL);
    r = open_port(port, 0, T, RMIN, RMAX);
    el_buf_init(&b, 64);
    el_buf_init(&hb, 64);
    CU_ASSERT_EQUAL(el_redis_set(r, PREFIX "k", "v1", 2, 0), 0);
    helper_start(&h, r);
    CU_ASSERT_EQUAL(helper_run(&h, job_set_h, NULL), 0); /* the helper holds a connection */

    srv_kill(&s);
    t0 = el_now_ms();
    rc = el_redis_get(r, PREFIX "k", &b);
    CU_ASSERT(rc == EL_EUNAVAIL || rc == EL_ETIMEOUT);
    CU_ASSERT(el_now_ms() - t0 <= T + SLACK_MS);
    CU_ASSERT_EQUAL(el_redis_is_up(r), 0);

    /* Down: every call fails at once (probes meet a refused port). */
    for (int i = 0; i < 500; i++) {
        uint64_t t = el_now_us();

        bad += el_redis_get(r, PREFIX "k", &b) != EL_EUNAVAIL;
        if (el_now_us() - t > worst)
            worst = el_now_us() - t;
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(worst < 50000);
    CU_ASSERT_EQUAL(el_redis_is_up(r), 0);

    /* Back on the same port: service resumes by itself within the longest
     * retry interval. */
    srv_start(&s, port, NULL);
    ready = el_now_ms();
    while ((rc = el_redis_set(r, PREFIX "k", "v2", 2, 0)) != 0 && el_now_ms() < ready + 5000)
        pause_ms(2);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT(el_now_ms() - ready <= RMAX + T + SLACK_MS);
    CU_ASSERT_EQUAL(el_redis_is_up(r), 1);

    /* The helper's connection died with the old server; it is remade, not
     * reported as a new outage. */
    CU_ASSERT_EQUAL(helper_run(&h, job_get_k, &hb), 0);
    CU_ASSERT(hb.len == 2 && memcmp(hb.data, "v2", 2) == 0);
    CU_ASSERT_EQUAL(el_redis_is_up(r), 1);
    CU_ASSERT_EQUAL(helper_run(&h, job_cleanup, NULL), 0);
    helper_stop(&h);

    el_buf_cleanup(&b);
    el_buf_cleanup(&hb);
    el_redis_free(r);
    srv_kill(&s);
}

/* A fake Redis for the stale-failure test. Connection 0 is mute (its
 * client waits out its timeout), connection 1 is closed at once (its client
 * opens the breaker), later ones answer every request with a nil. */
struct fake {
    int lfd;
    atomic_int stop;
    atomic_int conns;      /* accepted so far */
    atomic_int mute_asked; /* connection 0 has sent its request */
};

/* Answer each command in buf[0..n) (whole RESP arrays, as hiredis sends
 * them): ROLE as a master without replicas, INFO with an empty text, and
 * anything else with a nil. */
static int fake_answer(int fd, const char *buf, size_t n)
{
    const char *p = buf, *end = buf + n;

    while (p < end && *p == '*') {
        long argc = strtol(p + 1, NULL, 10);
        const char *ans = "$-1\r\n";

        p = strstr(p, "\r\n");
        for (long a = 0; p && a < argc; a++) {
            long len = strtol(p + 3, NULL, 10); /* "\r\n$<len>\r\n<arg>" */
            const char *arg = strstr(p + 3, "\r\n");

            if (arg == NULL)
                return -1;
            arg += 2;
            if (a == 0 && len == 4 && strncmp(arg, "ROLE", 4) == 0)
                ans = "*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n";
            else if (a == 0 && len == 4 && strncmp(arg, "INFO", 4) == 0)
                ans = "$0\r\n\r\n";
            p = arg + len;
        }
        if (p == NULL)
            return -1;
        p += 2;
        if (write(fd, ans, strlen(ans)) != (ssize_t)strlen(ans))
            return -1;
    }
    return 0;
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    struct pollfd pfds[16];
    int n = 1, mute = -1;

    pfds[0] = (struct pollfd){f->lfd, POLLIN, 0};
    while (!atomic_load(&f->stop)) {
        if (poll(pfds, (nfds_t)n, 5) <= 0)
            continue;
        if (pfds[0].revents & POLLIN) {
            int fd = accept(f->lfd, NULL, NULL);
            int k = atomic_fetch_add(&f->conns, 1);

            if (fd < 0)
                continue;
            if (k == 1 || n == 16) {
                close(fd);
                continue;
            }
            if (k == 0)
                mute = fd;
            pfds[n++] = (struct pollfd){fd, POLLIN, 0};
        }
        for (int i = 1; i < n; i++) {
            char buf[512];
            ssize_t got;

            if (!(pfds[i].revents & (POLLIN | POLLHUP)))
                continue;
            got = read(pfds[i].fd, buf, sizeof(buf));
            if (got <= 0) {
                close(pfds[i].fd);
                if (pfds[i].fd == mute)
                    mute = -1;
                pfds[i--] = pfds[--n];
            } else if (pfds[i].fd == mute) {
                atomic_store(&f->mute_asked, 1);
            } else if (fake_answer(pfds[i].fd, buf, (size_t)got) < 0) {
                close(pfds[i].fd);
                pfds[i--] = pfds[--n];
            }
        }
    }
    for (int i = 1; i < n; i++)
        close(pfds[i].fd);
    return NULL;
}

static int job_get_nowait(struct el_redis *r, void *arg)
{
    struct el_buf b;
    int rc;

    EL_UNUSED(arg);
    el_buf_init(&b, 64);
    rc = el_redis_get(r, PREFIX "k", &b);
    el_buf_cleanup(&b);
    return rc;
}

/* A call that started before an outage and fails after the breaker has
 * closed again must not reopen it: its connection is from an old epoch. */
static void test_stale_failure_does_not_reopen(void)
{
    enum { T = 400, RMIN = 20, RMAX = 20 };
    struct fake f;
    struct helper h;
    pthread_t server;
    struct el_redis *r;
    struct el_buf b;
    uint64_t deadline;
    int port, rc;

    memset(&f, 0, sizeof(f));
    f.lfd = listener(16, &port);
    atomic_init(&f.stop, 0);
    atomic_init(&f.conns, 0);
    atomic_init(&f.mute_asked, 0);
    CU_ASSERT_FATAL(pthread_create(&server, NULL, fake_main, &f) == 0);
    r = open_port(port, 0, T, RMIN, RMAX);
    el_buf_init(&b, 64);

    /* The helper's call goes out on connection 0 and hangs there. */
    helper_start(&h, r);
    h.job = job_get_nowait;
    sem_post(&h.go);
    deadline = el_now_ms() + 2000;
    while (!atomic_load(&f.mute_asked) && el_now_ms() < deadline)
        pause_ms(1);
    CU_ASSERT_FATAL(atomic_load(&f.mute_asked));

    /* Connection 1 is dropped: the breaker opens... */
    CU_ASSERT_EQUAL(el_redis_get(r, PREFIX "k", &b), EL_EUNAVAIL);
    CU_ASSERT_EQUAL(el_redis_is_up(r), 0);
    /* ...and a probe on connection 2 closes it again. */
    deadline = el_now_ms() + 2000;
    while ((rc = el_redis_get(r, PREFIX "k", &b)) == EL_EUNAVAIL && el_now_ms() < deadline)
        pause_ms(1);
    CU_ASSERT_EQUAL(rc, EL_ENOTFOUND);
    CU_ASSERT_EQUAL(el_redis_is_up(r), 1);

    /* Now the helper's old call times out; the breaker stays closed. */
    sem_wait(&h.done);
    CU_ASSERT_EQUAL(h.rc, EL_ETIMEOUT);
    CU_ASSERT_EQUAL(el_redis_is_up(r), 1);
    CU_ASSERT_EQUAL(el_redis_get(r, PREFIX "k", &b), EL_ENOTFOUND);
    CU_ASSERT_EQUAL(helper_run(&h, job_cleanup, NULL), 0);
    helper_stop(&h);

    atomic_store(&f.stop, 1);
    pthread_join(server, NULL);
    close(f.lfd);
    el_buf_cleanup(&b);
    el_redis_free(r);
}

static void test_auth(void)
{
    static const char *const extra[] = {"--requirepass", "p@ss:w/rd", "--user", "alice", "on",
                                        ">alicepw",      "~*",        "&*",     "+@all", NULL};
    static const char *const good[] = {
        "redis://:p%%40ss%%3Aw%%2Frd@127.0.0.1:%d/3", /* percent-encoded */
        "redis://:p@ss:w/rd@127.0.0.1:%d/3",          /* raw: the last '@' ends it */
        "redis://alice:alicepw@127.0.0.1:%d/3",       /* ACL user */
    };
    static const char *const bad[] = {
        "redis://:wrong@127.0.0.1:%d/3", "redis://alice:p@ss:w/rd@127.0.0.1:%d/3",
        "redis://127.0.0.1:%d/3", /* no password: SELECT gets NOAUTH */
        "redis://127.0.0.1:%d",   /* no password, db 0: the command gets NOAUTH */
    };
    struct srv s;
    int port = free_port();
    char url[128];
    redisContext *c;
    redisReply *rep;

    srv_start(&s, port, extra);
    c = raw_open(port, "p@ss:w/rd", 3);
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct el_redis *r;
        char val[8];

        snprintf(url, sizeof(url), good[i], port);
        r = open_url(url, 1000, 0, 0);
        snprintf(val, sizeof(val), "v%zu", i);
        CU_ASSERT_EQUAL(el_redis_set(r, PREFIX "auth", val, strlen(val), 0), 0);
        rep = redisCommand(c, "GET %s", PREFIX "auth"); /* landed in db 3 */
        CU_ASSERT(rep && rep->type == REDIS_REPLY_STRING && strcmp(rep->str, val) == 0);
        freeReplyObject(rep);
        el_redis_free(r);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct el_redis *r;

        snprintf(url, sizeof(url), bad[i], port);
        r = open_url(url, 1000, 10000, 10000);
        CU_ASSERT_EQUAL(el_redis_set(r, PREFIX "auth", "x", 1, 0), EL_EUNAVAIL);
        CU_ASSERT_EQUAL(el_redis_is_up(r), 0);
        el_redis_free(r);
    }
    rep = redisCommand(c, "GET %s", PREFIX "auth");
    CU_ASSERT(rep && rep->type == REDIS_REPLY_STRING && strcmp(rep->str, "v2") == 0);
    freeReplyObject(rep);
    redisFree(c);
    srv_kill(&s);
}

/* ---- threads ---------------------------------------------------------- */

#define NWORKERS 8

struct worker {
    struct el_redis *r;
    pthread_barrier_t *bar;
    int id;
    atomic_int *failures;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char key[64], val[64];
    struct el_buf b;

    el_buf_init(&b, 128);
    for (int i = 0; i < 200; i++) {
        int n = snprintf(val, sizeof(val), "w%d-%d", w->id, i);

        snprintf(key, sizeof(key), PREFIX "w%d", w->id);
        el_buf_reset(&b);
        if (el_redis_set(w->r, key, val, (size_t)n, 10000) != 0 ||
            el_redis_get(w->r, key, &b) != 0 || b.len != (size_t)n ||
            memcmp(b.data, val, (size_t)n) != 0)
            atomic_fetch_add(w->failures, 1);
    }
    el_buf_cleanup(&b);
    pthread_barrier_wait(w->bar); /* all connections open: main counts */
    pthread_barrier_wait(w->bar); /* counted */
    if (w->id % 2)
        el_redis_thread_cleanup(w->r); /* odd: explicit; even: at thread exit */
    return NULL;
}

static void test_thread_connections(void)
{
    struct el_redis *r = open_port(test_port(), TEST_DB, 1000, 0, 0);
    redisContext *c = raw_open(test_port(), NULL, TEST_DB);
    struct worker ws[NWORKERS];
    pthread_t tids[NWORKERS];
    pthread_barrier_t bar;
    atomic_int failures;
    int base = raw_clients(c);

    CU_ASSERT_FATAL(base >= 1);
    atomic_init(&failures, 0);
    pthread_barrier_init(&bar, NULL, NWORKERS + 1);
    for (int i = 0; i < NWORKERS; i++) {
        ws[i] = (struct worker){r, &bar, i, &failures};
        CU_ASSERT_FATAL(pthread_create(&tids[i], NULL, worker_main, &ws[i]) == 0);
    }
    pthread_barrier_wait(&bar);
    CU_ASSERT_EQUAL(await_clients(c, base + NWORKERS), base + NWORKERS); /* one per thread */
    pthread_barrier_wait(&bar);
    for (int i = 0; i < NWORKERS; i++)
        pthread_join(tids[i], NULL);
    CU_ASSERT_EQUAL(atomic_load(&failures), 0);
    /* Both el_redis_thread_cleanup and thread exit closed theirs. */
    CU_ASSERT_EQUAL(await_clients(c, base), base);

    /* The main thread's connection is closed by el_redis_free. */
    CU_ASSERT_EQUAL(el_redis_ping(r), 0);
    CU_ASSERT_EQUAL(await_clients(c, base + 1), base + 1);
    el_redis_free(r);
    CU_ASSERT_EQUAL(await_clients(c, base), base);

    pthread_barrier_destroy(&bar);
    redisFree(c);
}

static int suite_init(void)
{
    /* hiredis writes with write(2); like the responder, ignore SIGPIPE so a
     * server that dies mid-write is an error status, not a dead process. */
    signal(SIGPIPE, SIG_IGN);
    /* Watchdog: this suite tests that nothing blocks. If a regression makes
     * a call hang, SIGALRM ends the run with a failure instead of a stuck
     * CI job. The suite needs about 3 s, even under TSan. */
    alarm(60);
    return 0;
}

static int suite_cleanup(void)
{
    alarm(0);
    return 0;
}

/* The version guard's SET: never over a higher version, an equal one
 * rewritten, an unversioned value replaced, binary bytes and the empty
 * value (a cached not-found) kept exact, the header stripped on read. */
static void test_versioned(void)
{
    struct el_redis *r = open_port(test_port(), TEST_DB, 1000, 0, 0);
    const char bin[] = {'{', '\0', '#', '7', ':', '}'};
    struct el_buf b;
    uint64_t ver = 99;

    el_buf_init(&b, 1u << 20);
    CU_ASSERT_EQUAL(el_redis_del(r, PREFIX "ver"), 0);
    CU_ASSERT_EQUAL(el_redis_set_versioned(r, PREFIX "ver", 5, "{\"v\":5}", 7, 60000), EL_OK);
    CU_ASSERT_EQUAL(el_redis_set_versioned(r, PREFIX "ver", 4, "{\"v\":4}", 7, 60000),
                    EL_ECONFLICT);
    CU_ASSERT_EQUAL(el_redis_get_versioned(r, PREFIX "ver", &b, &ver), EL_OK);
    CU_ASSERT_EQUAL(ver, 5);
    CU_ASSERT_STRING_EQUAL(b.data, "{\"v\":5}");
    CU_ASSERT_EQUAL(el_redis_set_versioned(r, PREFIX "ver", 5, "{\"v\":5}", 7, 60000), EL_OK);
    CU_ASSERT_EQUAL(el_redis_set_versioned(r, PREFIX "ver", 12, bin, sizeof(bin), 60000), EL_OK);
    el_buf_reset(&b);
    CU_ASSERT_EQUAL(el_buf_add(&b, "xy", 2), 0); /* appended after what is there */
    CU_ASSERT_EQUAL(el_redis_get_versioned(r, PREFIX "ver", &b, &ver), EL_OK);
    CU_ASSERT_EQUAL(ver, 12);
    CU_ASSERT_EQUAL_FATAL(b.len, 2 + sizeof(bin));
    CU_ASSERT_EQUAL(memcmp(b.data + 2, bin, sizeof(bin)), 0);
    /* 12 > 9 as numbers, though "12" < "9" as strings. */
    CU_ASSERT_EQUAL(el_redis_set_versioned(r, PREFIX "ver", 9, "{}", 2, 60000), EL_ECONFLICT);
    /* The TTL is set in milliseconds. */
    {
        int64_t ms = 0;
        CU_ASSERT_EQUAL(el_redis_pttl(r, PREFIX "ver", &ms), 0);
        CU_ASSERT(ms > 50000 && ms <= 60000);
    }
    /* Empty value: a not-found with a version. */
    CU_ASSERT_EQUAL(el_redis_set_versioned(r, PREFIX "ver", 13, NULL, 0, 60000), EL_OK);
    el_buf_reset(&b);
    CU_ASSERT_EQUAL(el_redis_get_versioned(r, PREFIX "ver", &b, &ver), EL_OK);
    CU_ASSERT_EQUAL(ver, 13);
    CU_ASSERT_EQUAL(b.len, 0);
    /* An unversioned value is version 0: replaced, and read as is. */
    CU_ASSERT_EQUAL(el_redis_set(r, PREFIX "ver", "{\"old\":1}", 9, 0), 0);
    el_buf_reset(&b);
    CU_ASSERT_EQUAL(el_redis_get_versioned(r, PREFIX "ver", &b, &ver), EL_OK);
    CU_ASSERT_EQUAL(ver, 0);
    CU_ASSERT_STRING_EQUAL(b.data, "{\"old\":1}");
    CU_ASSERT_EQUAL(el_redis_set_versioned(r, PREFIX "ver", 1, "{}", 2, 60000), EL_OK);
    /* Versions past 2^53 cannot be compared exactly by the script. */
    CU_ASSERT_EQUAL(el_redis_set_versioned(r, PREFIX "ver", 1ULL << 53, "{}", 2, 60000), EL_EINVAL);
    /* A value with a broken header is not ours: EL_EPROTO. */
    CU_ASSERT_EQUAL(el_redis_set(r, PREFIX "ver", "#12x{}", 6, 0), 0);
    el_buf_reset(&b);
    CU_ASSERT_EQUAL(el_redis_get_versioned(r, PREFIX "ver", &b, &ver), EL_EPROTO);
    el_buf_cleanup(&b);
    el_redis_free(r);
}

void test_redis_register(void)
{
    CU_pSuite s = CU_add_suite("redis", suite_init, suite_cleanup);

    CU_add_test(s, "NULL handle and empty URL are disabled", test_disabled);
    CU_add_test(s, "valid URLs parse without connecting", test_url_valid);
    CU_add_test(s, "malformed URLs: EL_EINVAL naming the part", test_url_invalid);
    CU_add_test(s, "options: defaults and validation", test_opts);
    CU_add_test(s, "GET/SET/DEL binary-safe, empty value, missing key", test_get_set_binary);
    CU_add_test(s, "SET with TTL uses milliseconds", test_set_ttl);
    CU_add_test(s, "GET of several keys in one round trip", test_get_each);
    CU_add_test(s, "versioned SET never goes backwards", test_versioned);
    CU_add_test(s, "INCR and strict integer GET", test_counters);
    CU_add_test(s, "value larger than the buffer", test_value_too_big);
    CU_add_test(s, "SELECT db from the URL", test_select_db);
    CU_add_test(s, "refused connection fails fast and opens the breaker", test_refused_fails_fast);
    CU_add_test(s, "server that never answers: bounded by the timeout", test_read_timeout);
    CU_add_test(s, "connect that hangs: bounded by the timeout", test_connect_timeout);
    CU_add_test(s, "breaker: one probe per interval, doubling to the ceiling",
                test_breaker_single_probe_backoff);
    CU_add_test(s, "outage then restart: fail fast, recover, no flap", test_outage_and_recovery);
    CU_add_test(s, "a late failure on an old connection does not reopen the breaker",
                test_stale_failure_does_not_reopen);
    CU_add_test(s, "AUTH password, ACL user and wrong credentials", test_auth);
    CU_add_test(s, "one connection per thread, closed at thread exit", test_thread_connections);
}
