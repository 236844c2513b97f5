/* redis.c -- Redis (L2) client: per-thread hiredis connections, bounded
 * waits and a lock-free circuit breaker (see redis.h for the contract).
 *
 * Key decision: the whole breaker is one atomic word, `state`, holding an
 * epoch counter and a "down" bit (state = epoch << 1 | down). Every
 * connection remembers the epoch it was made in. Opening the breaker is a
 * compare-and-swap from "up at epoch E" to "down at epoch E+1", so
 *   - only the first of many threads failing at once opens it (one log line,
 *     one interval reset), and a late failure on a connection from an older
 *     epoch cannot reopen a breaker that a probe has just closed;
 *   - once it closes again, every thread's connection from before the outage
 *     is seen to be stale (wrong epoch) and is remade on its next use instead
 *     of failing, so a restarted Redis does not make the breaker flap once per
 *     worker thread.
 * While down, `next_try_ms` says when a probe is due; a caller claims the
 * probe by swapping it to UINT64_MAX ("probe in flight"), so exactly one
 * thread touches a socket per interval. While up it is UINT64_MAX too.
 *
 * Time bound: hiredis' blocking API only offers socket timeouts
 * (SO_RCVTIMEO/SO_SNDTIMEO) and a connect timeout. A call on an established
 * connection is one write and one read, each bounded by timeout_ms. A call
 * that must connect first spends one budget of timeout_ms over connect,
 * AUTH/SELECT and the command: the socket timeout is lowered to what is left
 * before each step (and restored on the next call). Two limits remain and are
 * the caller's to avoid: host names are resolved with getaddrinfo(), which
 * has no timeout (use an address or an /etc/hosts name), and a server that
 * trickles a reply byte by byte resets the read timeout on every byte.
 *
 * hiredis writes with write(2), so the process must ignore SIGPIPE (the
 * responder does; a FastCGI program has to anyway). */
#include "cache/redis.h"
#include "cache/sentinel.h"
#include "core/text.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#define DEFAULT_PORT 6379
#define DEFAULT_TIMEOUT_MS 100
#define DEFAULT_RETRY_MIN_MS 250
#define DEFAULT_RETRY_MAX_MS 2000
#define PROBE_IN_FLIGHT UINT64_MAX

/* One per thread per handle, owned by the thread through r->key and listed
 * in r->conns so el_redis_free() can close connections of threads that are
 * still alive. */
struct conn {
    struct el_redis *r;
    redisContext *c;              /* NULL until connected, and after any failure */
    uint64_t epoch;               /* breaker epoch c was made in */
    long timeout_us;              /* socket timeout currently set on c */
    char run_id[EL_REDIS_ID_MAX]; /* the server's INFO run_id, read at connect */
    int replicas;                 /* replicas ROLE listed at connect */
    struct conn *prev, *next;
};

struct el_redis {
    /* With Sentinel the master's address changes: host and port are then
     * read and written under addr_mu (connects and the watcher only). */
    char host[256];
    int port;
    int db;
    struct el_sentinel *sentinel; /* redis-sentinel:// URLs, else NULL */
    pthread_mutex_t addr_mu;
    char run_id[EL_REDIS_ID_MAX]; /* under addr_mu: last server connected to */
    int replicas;                 /* under addr_mu: its replicas then */
    _Atomic uint64_t switches;    /* master changes seen (Sentinel) */
    char user[256];               /* ACL user name; "" for password-only AUTH */
    char pass[256];               /* "" for no AUTH */
    size_t user_len, pass_len;
    int timeout_ms, retry_min_ms, retry_max_ms;

    pthread_key_t key;  /* -> struct conn of the calling thread */
    pthread_mutex_t mu; /* guards conns; taken only when a thread first
                           * uses the handle and when it exits */
    struct conn *conns;

    _Atomic uint64_t state;       /* epoch << 1 | down */
    _Atomic uint64_t next_try_ms; /* while down: when a probe is due */
    atomic_int interval_ms;       /* current breaker interval */
};

/* ---- URL parsing ------------------------------------------------------ */

static int parse_uint(const char *s, size_t n, long max, long *out)
{
    long v = 0;

    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
        if (v > max)
            return -1;
    }
    *out = v;
    return 0;
}

/* Percent-decode one part of the user information into dst (cap bytes
 * incl. NUL): a password with '@' or ':' in it must be written %40 / %3A;
 * '+' is itself. Too long, a bad escape or a NUL: -1. */
static int userinfo_decode(const char *s, size_t n, char *dst, size_t cap, size_t *len)
{
    return el_pct_decode_url(s, n, dst, cap - 1, len) == EL_PCT_OK ? 0 : -1;
}

static int host_char_ok(char c, int bracketed)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    if (c == '.' || c == '-' || c == '_')
        return 1;
    return bracketed && (c == ':' || c == '%');
}

/* The part of redis-sentinel://[[user]:password@]h1:p1[,h2:p2...]/name[/db]
 * after the user information. */
static int parse_sentinel_rest(struct el_redis *r, const char *p, struct el_err *err)
{
    const char *slash = strchr(p, '/'), *name, *name_end;
    char nm[128];
    long v;
    int rc;

    if (slash == NULL || slash[1] == '\0' || slash[1] == '/')
        return el_err_set(err, EL_EINVAL, "missing master name (redis-sentinel://h:p,.../name)");
    name = slash + 1;
    name_end = strchr(name, '/');
    if (name_end == NULL)
        name_end = name + strlen(name);
    if ((size_t)(name_end - name) >= sizeof(nm))
        return el_err_set(err, EL_EINVAL, "master name too long");
    memcpy(nm, name, (size_t)(name_end - name));
    nm[name_end - name] = '\0';
    r->db = 0;
    if (*name_end == '/' && name_end[1] != '\0') {
        if (parse_uint(name_end + 1, strlen(name_end + 1), INT_MAX, &v) < 0)
            return el_err_set(err, EL_EINVAL, "db must be a non-negative decimal integer");
        r->db = (int)v;
    }
    rc = el_sentinel_new(p, (size_t)(slash - p), nm, r->timeout_ms, &r->sentinel, err);
    if (rc != EL_OK)
        return rc;
    r->host[0] = '\0'; /* unknown until a sentinel answers */
    r->port = 0;
    return EL_OK;
}

/* redis://[[user]:password@]host[:port][/db]. Messages quote nothing from
 * the URL: the user information holds the password, and any other part may
 * hold control characters. Callers that want to show the URL mask it. */
static int parse_url(struct el_redis *r, const char *url, struct el_err *err)
{
    const char *p, *at, *hs, *he, *s;
    int bracketed;
    long v;

    if (strncmp(url, "rediss://", 9) == 0)
        return el_err_set(err, EL_EINVAL, "TLS (rediss://) is not supported");
    if (strncmp(url, "redis-sentinel://", 17) == 0)
        p = url + 17;
    else if (strncmp(url, "redis://", 8) == 0)
        p = url + 8;
    else
        return el_err_set(err, EL_EINVAL, "must start with redis:// or redis-sentinel://");

    /* The last '@' ends the user information: the host, port and db cannot
     * contain one, a raw password might. */
    at = strrchr(p, '@');
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));

        if (colon == NULL)
            return el_err_set(err, EL_EINVAL,
                              "user name without password (write redis://:password@host "
                              "or redis://user:password@host)");
        if (userinfo_decode(p, (size_t)(colon - p), r->user, sizeof(r->user), &r->user_len) < 0)
            return el_err_set(err, EL_EINVAL, "bad user name (too long or a bad %%-escape)");
        if (userinfo_decode(colon + 1, (size_t)(at - colon - 1), r->pass, sizeof(r->pass),
                            &r->pass_len) < 0)
            return el_err_set(err, EL_EINVAL, "bad password (too long or a bad %%-escape)");
        p = at + 1;
    }
    if (url[5] == '-')
        return parse_sentinel_rest(r, p, err);

    bracketed = *p == '[';
    if (bracketed) {
        hs = p + 1;
        he = strchr(hs, ']');
        if (he == NULL)
            return el_err_set(err, EL_EINVAL, "unterminated '[' in IPv6 host");
        p = he + 1;
    } else {
        hs = p;
        p += strcspn(p, ":/");
        he = p;
    }
    if (he == hs)
        return el_err_set(err, EL_EINVAL, "missing host");
    if ((size_t)(he - hs) >= sizeof(r->host))
        return el_err_set(err, EL_EINVAL, "host name too long");
    for (s = hs; s < he; s++)
        if (!host_char_ok(*s, bracketed))
            return el_err_set(err, EL_EINVAL, "bad character in host name");
    memcpy(r->host, hs, (size_t)(he - hs));
    r->host[he - hs] = '\0';

    r->port = DEFAULT_PORT;
    if (*p == ':') {
        size_t n = strcspn(p + 1, "/");

        if (parse_uint(p + 1, n, 65535, &v) < 0 || v == 0)
            return el_err_set(err, EL_EINVAL, "port must be an integer between 1 and 65535");
        r->port = (int)v;
        p += 1 + n;
    } else if (*p != '\0' && *p != '/') {
        return el_err_set(err, EL_EINVAL, "unexpected text after the host");
    }

    r->db = 0;
    if (*p == '/' && p[1] != '\0') {
        if (parse_uint(p + 1, strlen(p + 1), INT_MAX, &v) < 0)
            return el_err_set(err, EL_EINVAL, "db must be a non-negative decimal integer");
        r->db = (int)v;
    }
    return EL_OK;
}

/* ---- connections ------------------------------------------------------ */

static struct timeval us_tv(long us)
{
    struct timeval tv;

    tv.tv_sec = us / 1000000;
    tv.tv_usec = us % 1000000;
    return tv;
}

/* Status for a context that failed. errno is the one saved right after the
 * failing hiredis call: a socket timeout shows as EAGAIN on read/write and a
 * connect timeout as ETIMEDOUT. */
static int ctx_status(const redisContext *c, int saved_errno)
{
    if (c->err == REDIS_ERR_IO && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK ||
                                   saved_errno == ETIMEDOUT || saved_errno == EINPROGRESS))
        return EL_ETIMEOUT;
    if (c->err == REDIS_ERR_OOM)
        return EL_ENOMEM;
    return EL_EUNAVAIL;
}

/* One-line reason for the "redis: down" message: hiredis reports a socket
 * timeout as strerror(EAGAIN), which reads like something else. */
static void ctx_reason(const redisContext *c, int rc, int timeout_ms, char *why, size_t whylen)
{
    if (rc == EL_ETIMEOUT)
        snprintf(why, whylen, "no answer within %d ms", timeout_ms);
    else
        snprintf(why, whylen, "%s", c->errstr);
}

/* Error replies that mean "this Redis cannot serve now" rather than "this
 * command was wrong": they count as failures for the breaker. NOAUTH is here
 * so that a missing password shows up as one "redis: down" line. */
static int reply_is_unavailable(const redisReply *rep)
{
    /* READONLY: the server was demoted to a replica under us (failover);
     * NOREPLICAS: a master that min-replicas-to-write isolates. Either way
     * the master is elsewhere: reconnect (and, with Sentinel, ask). */
    static const char *const prefixes[] = {"LOADING", "BUSY",     "MASTERDOWN",
                                           "NOAUTH",  "READONLY", "NOREPLICAS"};

    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (rep->len >= strlen(prefixes[i]) &&
            strncmp(rep->str, prefixes[i], strlen(prefixes[i])) == 0)
            return 1;
    return 0;
}

static void conn_drop(struct conn *cn)
{
    if (cn->c != NULL) {
        redisFree(cn->c);
        cn->c = NULL;
    }
}

static void conn_unlink(struct el_redis *r, struct conn *cn)
{
    pthread_mutex_lock(&r->mu);
    if (cn->prev)
        cn->prev->next = cn->next;
    else
        r->conns = cn->next;
    if (cn->next)
        cn->next->prev = cn->prev;
    pthread_mutex_unlock(&r->mu);
}

/* pthread key destructor: a thread that used the handle is exiting. */
static void conn_destroy(void *arg)
{
    struct conn *cn = arg;

    conn_unlink(cn->r, cn);
    conn_drop(cn);
    free(cn);
}

/* The calling thread's conn slot (possibly unconnected), made on first use. */
static struct conn *conn_slot(struct el_redis *r)
{
    struct conn *cn = pthread_getspecific(r->key);

    if (cn != NULL)
        return cn;
    cn = calloc(1, sizeof(*cn));
    if (cn == NULL)
        return NULL;
    cn->r = r;
    if (pthread_setspecific(r->key, cn) != 0) {
        free(cn);
        return NULL;
    }
    pthread_mutex_lock(&r->mu);
    cn->next = r->conns;
    if (r->conns)
        r->conns->prev = cn;
    r->conns = cn;
    pthread_mutex_unlock(&r->mu);
    return cn;
}

/* Set the socket timeout to us microseconds (at least 1 ms): lowered to
 * what is left of the budget while connecting, restored to the full timeout
 * on the next call. Skips the two setsockopt calls when nothing changes. */
static int conn_budget(struct conn *cn, long us)
{
    if (us < 1000)
        us = 1000;
    if (us == cn->timeout_us)
        return EL_OK;
    if (redisSetTimeout(cn->c, us_tv(us)) != REDIS_OK)
        return EL_EUNAVAIL;
    cn->timeout_us = us;
    return EL_OK;
}

static long us_left(uint64_t deadline_us)
{
    uint64_t now = el_now_us();

    return now >= deadline_us ? 0 : (long)(deadline_us - now);
}

static void set_master(struct el_redis *r, const char *host, int port);

/* Where to connect: the fixed address, or (Sentinel) the master's address
 * as a sentinel says now -- asked on every connect, so a thread never
 * reconnects to a master that a failover has replaced. With every sentinel
 * unreachable the last known address is used; ROLE still has to say
 * "master" there. */
static int conn_target(struct el_redis *r, char *host, size_t hostlen, int *port, char *why,
                       size_t whylen)
{
    if (r->sentinel != NULL) {
        char h[256];
        int p, rc;

        rc = el_sentinel_get_master(r->sentinel, h, sizeof(h), &p, why, whylen);
        if (rc == EL_OK)
            set_master(r, h, p);
        pthread_mutex_lock(&r->addr_mu);
        snprintf(host, hostlen, "%s", r->host);
        *port = r->port;
        pthread_mutex_unlock(&r->addr_mu);
        return host[0] ? EL_OK : rc;
    }
    snprintf(host, hostlen, "%s", r->host);
    *port = r->port;
    return EL_OK;
}

/* ROLE's answer: EL_OK for a master (replica count in *replicas). */
static int role_check(const redisReply *rep, int *replicas, char *why, size_t whylen)
{
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 &&
        rep->element[0]->type == REDIS_REPLY_STRING) {
        if (strcmp(rep->element[0]->str, "master") == 0) {
            *replicas = rep->elements >= 3 && rep->element[2]->type == REDIS_REPLY_ARRAY
                            ? (int)rep->element[2]->elements
                            : 0;
            return EL_OK;
        }
        snprintf(why, whylen, "the server is a %s, not the master (ROLE)", rep->element[0]->str);
        return EL_EUNAVAIL;
    }
    if (rep->type == REDIS_REPLY_ERROR)
        snprintf(why, whylen, "ROLE: %.*s", (int)rep->len, rep->str);
    else
        snprintf(why, whylen, "unexpected answer to ROLE");
    return EL_EUNAVAIL;
}

/* run_id from INFO server's text, "" when absent. */
static void run_id_parse(const redisReply *rep, char out[EL_REDIS_ID_MAX])
{
    const char *p;
    size_t n = 0;

    out[0] = '\0';
    if (rep->type != REDIS_REPLY_STRING)
        return;
    p = strstr(rep->str, "\nrun_id:");
    if (p == NULL)
        return;
    p += 8;
    while (n + 1 < EL_REDIS_ID_MAX && p[n] && p[n] != '\r' && p[n] != '\n')
        n++;
    memcpy(out, p, n);
    out[n] = '\0';
}

/* Connect, then AUTH, SELECT, ROLE and INFO server in one round trip,
 * within the budget ending at deadline_us. ROLE must say "master": writes
 * never go to a replica, and a demoted master is refused at once. INFO's
 * run_id names the server (auth.c compares it with its revocation
 * markers). On failure why holds a one-line reason and cn->c stays NULL. */
static int conn_open(struct el_redis *r, struct conn *cn, uint64_t epoch, uint64_t deadline_us,
                     char *why, size_t whylen)
{
    redisContext *c;
    redisReply *rep;
    char host[256];
    int rc, e, port = 0, nreplies = 0, appended = REDIS_OK, i_auth = -1, i_select = -1;

    rc = conn_target(r, host, sizeof(host), &port, why, whylen);
    if (rc != EL_OK)
        return rc;
    c = redisConnectWithTimeout(host, port, us_tv((long)r->timeout_ms * 1000));
    if (c == NULL) {
        snprintf(why, whylen, "out of memory");
        return EL_ENOMEM;
    }
    e = errno;
    if (c->err) {
        rc = ctx_status(c, e);
        ctx_reason(c, rc, r->timeout_ms, why, whylen);
        redisFree(c);
        return rc;
    }
    cn->c = c;
    cn->epoch = epoch;
    cn->timeout_us = 0;
    cn->run_id[0] = '\0';
    cn->replicas = 0;

    rc = conn_budget(cn, us_left(deadline_us));
    if (rc != EL_OK) {
        snprintf(why, whylen, "setsockopt failed");
        goto fail;
    }
    if (r->pass_len > 0) {
        const char *argv[3] = {"AUTH", r->user, r->pass};
        size_t lens[3] = {4, r->user_len, r->pass_len};

        if (r->user_len > 0) {
            appended |= redisAppendCommandArgv(c, 3, argv, lens);
        } else {
            argv[1] = r->pass;
            lens[1] = r->pass_len;
            appended |= redisAppendCommandArgv(c, 2, argv, lens);
        }
        i_auth = nreplies++;
    }
    if (r->db != 0) {
        char dbs[16];
        const char *argv[2] = {"SELECT", dbs};
        size_t lens[2] = {6, 0};

        lens[1] = (size_t)snprintf(dbs, sizeof(dbs), "%d", r->db);
        appended |= redisAppendCommandArgv(c, 2, argv, lens);
        i_select = nreplies++;
    }
    appended |= redisAppendCommand(c, "ROLE");
    appended |= redisAppendCommand(c, "INFO server");
    nreplies += 2;
    if (appended != REDIS_OK) { /* only fails to allocate */
        snprintf(why, whylen, "out of memory");
        rc = EL_ENOMEM;
        goto fail;
    }
    for (int i = 0; i < nreplies; i++) {
        void *v = NULL;

        if (redisGetReply(c, &v) != REDIS_OK) {
            e = errno;
            rc = ctx_status(c, e);
            ctx_reason(c, rc, r->timeout_ms, why, whylen);
            break;
        }
        rep = v;
        if (rc == EL_OK && (i == i_auth || i == i_select) && rep->type == REDIS_REPLY_ERROR) {
            /* Read the remaining replies anyway; the context is dropped. */
            snprintf(why, whylen, "%s: %.*s", i == i_auth ? "AUTH" : "SELECT", (int)rep->len,
                     rep->str);
            rc = EL_EUNAVAIL;
        } else if (rc == EL_OK && i == nreplies - 2) {
            rc = role_check(rep, &cn->replicas, why, whylen);
        } else if (rc == EL_OK && i == nreplies - 1) {
            run_id_parse(rep, cn->run_id);
        }
        freeReplyObject(rep);
    }
    if (rc == EL_OK) {
        pthread_mutex_lock(&r->addr_mu);
        memcpy(r->run_id, cn->run_id, sizeof(r->run_id));
        r->replicas = cn->replicas;
        pthread_mutex_unlock(&r->addr_mu);
        return EL_OK;
    }
fail:
    conn_drop(cn);
    return rc;
}

/* ---- breaker ---------------------------------------------------------- */

/* A call on a connection of `epoch` failed. A prober reschedules with a
 * doubled interval; anyone else tries to open the breaker, which succeeds
 * only if it is still up at that same epoch. */
static void breaker_fail(struct el_redis *r, uint64_t epoch, int probing, const char *why)
{
    uint64_t now = el_now_ms();

    if (probing) {
        int iv = atomic_load(&r->interval_ms);

        iv = iv > r->retry_max_ms / 2 ? r->retry_max_ms : iv * 2;
        atomic_store(&r->interval_ms, iv);
        atomic_store(&r->next_try_ms, now + (uint64_t)iv);
        return;
    }
    uint64_t up = epoch << 1;
    if (atomic_compare_exchange_strong(&r->state, &up, ((epoch + 1) << 1) | 1u)) {
        atomic_store(&r->interval_ms, r->retry_min_ms);
        atomic_store(&r->next_try_ms, now + (uint64_t)r->retry_min_ms);
        fprintf(stderr, "redis: down (%s); retrying in %d ms\n", why, r->retry_min_ms);
    }
}

/* The probe got an answer: close the breaker. next_try_ms stays at
 * PROBE_IN_FLIGHT, which is its value while up. */
static void breaker_close(struct el_redis *r, uint64_t epoch)
{
    atomic_store(&r->interval_ms, r->retry_min_ms);
    atomic_store(&r->state, epoch << 1);
    fprintf(stderr, "redis: up\n");
}

/* ---- commands --------------------------------------------------------- */

/* Turns a non-error reply into the caller's result. */
typedef int (*reply_fn)(const redisReply *rep, void *arg);

/* One command of a pipeline: its arguments, what to do with its reply, and
 * (after the call) its own result. */
struct cmd {
    int argc;
    const char **argv;
    const size_t *lens;
    reply_fn fn;
    void *arg;
    int rc;
};

#define PIPELINE_MAX 8

/* Run n commands on the calling thread's connection in one round trip,
 * through the breaker. Returns EL_OK when every reply arrived (each
 * command's own result in cmds[i].rc: error replies become EL_EPROTO
 * without calling fn) or the failure that stopped them all. When server
 * is not NULL it gets the run_id of the server that answered. Replies are
 * freed here. */
static int pipeline(struct el_redis *r, int n, struct cmd *cmds, char *server)
{
    redisReply *reps[PIPELINE_MAX];
    struct conn *cn;
    uint64_t st, epoch, deadline_us;
    long budget_us;
    int probing = 0, rc = EL_OK, e, got = 0;
    char why[192];

    if (r == NULL)
        return EL_EDISABLED;
    if (n < 1 || n > PIPELINE_MAX)
        return EL_EINVAL;
    budget_us = (long)r->timeout_ms * 1000;
    st = atomic_load(&r->state);
    if (st & 1u) {
        uint64_t due = atomic_load(&r->next_try_ms);

        if (el_now_ms() < due ||
            !atomic_compare_exchange_strong(&r->next_try_ms, &due, PROBE_IN_FLIGHT))
            return EL_EUNAVAIL;
        probing = 1;
    }
    epoch = st >> 1;

    cn = conn_slot(r);
    if (cn == NULL) {
        if (probing)
            breaker_fail(r, epoch, 1, "out of memory");
        return EL_ENOMEM;
    }
    if (cn->c != NULL && cn->epoch != epoch)
        conn_drop(cn); /* made before the last outage or master switch */

    for (int attempt = 0;; attempt++) {
        int reused = cn->c != NULL;

        if (cn->c == NULL) {
            deadline_us = el_now_us() + (uint64_t)budget_us;
            rc = conn_open(r, cn, epoch, deadline_us, why, sizeof(why));
            if (rc != EL_OK)
                goto fail;
            budget_us = us_left(deadline_us); /* the commands get what is left */
        }
        rc = conn_budget(cn, budget_us);
        if (rc != EL_OK) {
            snprintf(why, sizeof(why), "setsockopt failed");
            goto fail;
        }
        for (int i = 0; i < n; i++)
            if (redisAppendCommandArgv(cn->c, cmds[i].argc, cmds[i].argv, cmds[i].lens) !=
                REDIS_OK) {
                snprintf(why, sizeof(why), "out of memory");
                rc = EL_ENOMEM;
                goto fail;
            }
        for (got = 0; got < n; got++) {
            void *v = NULL;

            if (redisGetReply(cn->c, &v) != REDIS_OK)
                break;
            reps[got] = v;
        }
        if (got == n)
            break;
        e = errno;
        rc = ctx_status(cn->c, e);
        ctx_reason(cn->c, rc, r->timeout_ms, why, sizeof(why));
        /* A kept connection the server closed (Redis restarted since we
         * last used it): not an outage. One fresh connection, one more
         * try, before the breaker is told -- else every restart would turn
         * writes away for a whole retry interval. Nothing was answered, so
         * nothing ran twice that the server told us about. */
        int retry = reused && attempt == 0 && got == 0 && rc == EL_EUNAVAIL &&
                    (cn->c->err == REDIS_ERR_EOF ||
                     (cn->c->err == REDIS_ERR_IO && (e == EPIPE || e == ECONNRESET)));
        for (int i = 0; i < got; i++)
            freeReplyObject(reps[i]);
        if (!retry)
            goto fail;
        conn_drop(cn);
    }
    for (int i = 0; i < n; i++) {
        if (reps[i]->type == REDIS_REPLY_ERROR && reply_is_unavailable(reps[i])) {
            snprintf(why, sizeof(why), "%.*s", (int)reps[i]->len, reps[i]->str);
            rc = EL_EUNAVAIL;
        }
    }
    for (int i = 0; i < n; i++) {
        if (rc == EL_OK)
            cmds[i].rc =
                reps[i]->type == REDIS_REPLY_ERROR ? EL_EPROTO : cmds[i].fn(reps[i], cmds[i].arg);
        freeReplyObject(reps[i]);
    }
    if (rc != EL_OK)
        goto fail;
    if (server != NULL)
        memcpy(server, cn->run_id, EL_REDIS_ID_MAX);
    if (probing)
        breaker_close(r, epoch);
    return EL_OK;

fail:
    conn_drop(cn);
    breaker_fail(r, epoch, probing, why);
    return rc;
}

/* Run one command (see pipeline). */
static int command(struct el_redis *r, int argc, const char **argv, const size_t *lens, reply_fn fn,
                   void *arg)
{
    struct cmd c = {argc, argv, lens, fn, arg, EL_OK};
    int rc = pipeline(r, 1, &c, NULL);

    return rc == EL_OK ? c.rc : rc;
}

static int on_string(const redisReply *rep, void *arg)
{
    struct el_buf *out = arg;

    if (rep->type == REDIS_REPLY_NIL)
        return EL_ENOTFOUND;
    if (rep->type != REDIS_REPLY_STRING)
        return EL_EPROTO;
    return el_buf_add(out, rep->str, rep->len);
}

static int on_ok(const redisReply *rep, void *arg)
{
    EL_UNUSED(arg);
    return rep->type == REDIS_REPLY_STATUS ? EL_OK : EL_EPROTO;
}

static int on_integer(const redisReply *rep, void *arg)
{
    int64_t *out = arg;

    if (rep->type != REDIS_REPLY_INTEGER)
        return EL_EPROTO;
    if (out)
        *out = rep->integer;
    return EL_OK;
}

/* Strict decimal int64: optional '-', digits only, no overflow. */
static int on_decimal(const redisReply *rep, void *arg)
{
    int64_t *out = arg;
    uint64_t v = 0, lim;
    size_t i = 0;
    int neg = 0;

    if (rep->type == REDIS_REPLY_NIL)
        return EL_ENOTFOUND;
    if (rep->type != REDIS_REPLY_STRING)
        return EL_EPROTO;
    if (rep->len > 0 && rep->str[0] == '-') {
        neg = 1;
        i = 1;
    }
    if (i == rep->len)
        return EL_EPROTO;
    lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < rep->len; i++) {
        unsigned d = (unsigned)(rep->str[i] - '0');

        if (d > 9 || v > (lim - d) / 10)
            return EL_EPROTO;
        v = v * 10 + d;
    }
    if (out)
        *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return EL_OK;
}

/* One command whose one argument is a key (GET, DEL, INCR, PTTL). */
static int key_command(struct el_redis *r, const char *cmd, const char *key, reply_fn fn, void *arg)
{
    const char *argv[2] = {cmd, key};
    size_t lens[2];

    if (r == NULL)
        return EL_EDISABLED;
    if (key == NULL)
        return EL_EINVAL;
    lens[0] = strlen(cmd);
    lens[1] = strlen(key);
    return command(r, 2, argv, lens, fn, arg);
}

/* ---- Sentinel: following the master ------------------------------------- */

/* The master is at host:port (the watcher heard, or a connect asked a
 * sentinel). A move starts a new epoch, like an outage does: every
 * thread's connection to the old master is dropped on its next use instead
 * of writing there, and callers that remember the epoch (auth.c, bus.c)
 * see that Redis may not hold what they wrote. The down bit is left as it
 * is. */
static void set_master(struct el_redis *r, const char *host, int port)
{
    int moved;

    pthread_mutex_lock(&r->addr_mu);
    moved = r->host[0] != '\0' && (strcmp(r->host, host) != 0 || r->port != port);
    if (moved || r->host[0] == '\0') {
        snprintf(r->host, sizeof(r->host), "%s", host);
        r->port = port;
    }
    pthread_mutex_unlock(&r->addr_mu);
    if (!moved)
        return;
    uint64_t st = atomic_load(&r->state);
    while (!atomic_compare_exchange_weak(&r->state, &st, st + 2))
        ;
    atomic_fetch_add(&r->switches, 1);
    fprintf(stderr, "redis: master %s is now at %s:%d; reconnecting\n",
            el_sentinel_master_name(r->sentinel), host, port);
}

static void on_master_switch(void *arg, const char *host, int port)
{
    set_master(arg, host, port);
}

/* ---- public API ------------------------------------------------------- */

int el_redis_new(const char *url, const struct el_redis_opts *opts, struct el_redis **out,
                 struct el_err *err)
{
    struct el_redis *r;
    int rc;

    *out = NULL;
    if (url == NULL || *url == '\0')
        return EL_EDISABLED;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return el_err_set(err, EL_ENOMEM, "out of memory");
    r->timeout_ms = DEFAULT_TIMEOUT_MS;
    r->retry_min_ms = DEFAULT_RETRY_MIN_MS;
    r->retry_max_ms = DEFAULT_RETRY_MAX_MS;
    if (opts != NULL) {
        if (opts->timeout_ms < 0 || opts->retry_min_ms < 0 || opts->retry_max_ms < 0) {
            rc = el_err_set(err, EL_EINVAL, "redis timeouts must not be negative");
            goto fail;
        }
        if (opts->timeout_ms > 0)
            r->timeout_ms = opts->timeout_ms;
        if (opts->retry_min_ms > 0)
            r->retry_min_ms = opts->retry_min_ms;
        if (opts->retry_max_ms > 0)
            r->retry_max_ms = opts->retry_max_ms;
        if (r->retry_max_ms < r->retry_min_ms) {
            rc = el_err_set(err, EL_EINVAL, "redis retry_max_ms (%d) is below retry_min_ms (%d)",
                            r->retry_max_ms, r->retry_min_ms);
            goto fail;
        }
    }
    rc = parse_url(r, url, err);
    if (rc != EL_OK)
        goto fail;
    if (pthread_key_create(&r->key, conn_destroy) != 0) {
        rc = el_err_set(err, EL_ENOMEM, "out of thread-specific keys");
        goto fail;
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->addr_mu, NULL);
    atomic_init(&r->state, 0);
    atomic_init(&r->next_try_ms, PROBE_IN_FLIGHT);
    atomic_init(&r->interval_ms, r->retry_min_ms);
    if (r->sentinel != NULL && el_sentinel_watch(r->sentinel, on_master_switch, r) != EL_OK) {
        pthread_key_delete(r->key);
        pthread_mutex_destroy(&r->mu);
        pthread_mutex_destroy(&r->addr_mu);
        rc = el_err_set(err, EL_ENOMEM, "cannot start the sentinel watcher");
        goto fail;
    }
    *out = r;
    return EL_OK;

fail:
    el_sentinel_free(r->sentinel);
    free(r);
    return rc;
}

void el_redis_free(struct el_redis *r)
{
    struct conn *cn, *next;

    if (r == NULL)
        return;
    el_sentinel_free(r->sentinel); /* first: its watcher calls into r */
    /* Deleting the key first means no destructor runs for it any more;
     * every connection still open is on the list. */
    pthread_key_delete(r->key);
    for (cn = r->conns; cn != NULL; cn = next) {
        next = cn->next;
        conn_drop(cn);
        free(cn);
    }
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->addr_mu);
    free(r);
}

void el_redis_thread_cleanup(struct el_redis *r)
{
    struct conn *cn;

    if (r == NULL)
        return;
    cn = pthread_getspecific(r->key);
    if (cn == NULL)
        return;
    pthread_setspecific(r->key, NULL);
    conn_destroy(cn);
}

int el_redis_is_up(struct el_redis *r)
{
    return r != NULL && (atomic_load(&r->state) & 1u) == 0;
}

uint64_t el_redis_epoch(struct el_redis *r)
{
    return r ? atomic_load(&r->state) >> 1 : 0;
}

int el_redis_get(struct el_redis *r, const char *key, struct el_buf *out)
{
    if (out == NULL)
        return r == NULL ? EL_EDISABLED : EL_EINVAL;
    return key_command(r, "GET", key, on_string, out);
}

int el_redis_set(struct el_redis *r, const char *key, const void *val, size_t len, int64_t ttl_ms)
{
    char ttl[24];
    const char *argv[5] = {"SET", key, val ? (const char *)val : "", "PX", ttl};
    size_t lens[5] = {3, 0, len, 2, 0};

    if (r == NULL)
        return EL_EDISABLED;
    if (key == NULL || (val == NULL && len > 0))
        return EL_EINVAL;
    lens[1] = strlen(key);
    if (ttl_ms <= 0)
        return command(r, 3, argv, lens, on_ok, NULL);
    lens[4] = (size_t)snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_ms);
    return command(r, 5, argv, lens, on_ok, NULL);
}

int el_redis_del(struct el_redis *r, const char *key)
{
    return key_command(r, "DEL", key, on_integer, NULL);
}

int el_redis_incr(struct el_redis *r, const char *key, int64_t *out)
{
    return key_command(r, "INCR", key, on_integer, out);
}

int el_redis_get_int(struct el_redis *r, const char *key, int64_t *out)
{
    return key_command(r, "GET", key, on_decimal, out);
}

int el_redis_ping(struct el_redis *r)
{
    const char *argv[1] = {"PING"};
    size_t lens[1] = {4};

    if (r == NULL)
        return EL_EDISABLED;
    return command(r, 1, argv, lens, on_ok, NULL);
}

/* ---- counters (auth) -------------------------------------------------- */

int el_redis_get_each(struct el_redis *r, int n, const char *const *keys, struct el_buf *vals,
                      int *found)
{
    const char *argv[EL_REDIS_GET_EACH_MAX][2];
    size_t lens[EL_REDIS_GET_EACH_MAX][2];
    struct cmd cmds[EL_REDIS_GET_EACH_MAX];
    int rc;

    if (r == NULL)
        return EL_EDISABLED;
    _Static_assert(EL_REDIS_GET_EACH_MAX <= PIPELINE_MAX, "one pipeline holds them");
    if (n < 1 || n > EL_REDIS_GET_EACH_MAX)
        return EL_EINVAL;
    for (int i = 0; i < n; i++) {
        argv[i][0] = "GET";
        argv[i][1] = keys[i];
        lens[i][0] = 3;
        lens[i][1] = strlen(keys[i]);
        cmds[i] = (struct cmd){2, argv[i], lens[i], on_string, &vals[i], EL_OK};
    }
    rc = pipeline(r, n, cmds, NULL);
    for (int i = 0; i < n && rc == EL_OK; i++) {
        found[i] = cmds[i].rc == EL_OK;
        if (cmds[i].rc != EL_OK && cmds[i].rc != EL_ENOTFOUND)
            rc = cmds[i].rc;
    }
    return rc;
}

/* INCR and, on the first increment, PEXPIRE -- atomically, in one round
 * trip, so a window can never be left without an expiry. */
int el_redis_incr_window(struct el_redis *r, const char *key, int64_t window_ms, int64_t *count)
{
    static const char script[] = "local c = redis.call('INCR', KEYS[1]) "
                                 "if c == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end "
                                 "return c";
    char ms[24];
    const char *argv[5] = {"EVAL", script, "1", key, ms};
    size_t lens[5];

    if (r == NULL)
        return EL_EDISABLED;
    snprintf(ms, sizeof(ms), "%lld", (long long)window_ms);
    for (int i = 0; i < 5; i++)
        lens[i] = strlen(argv[i]);
    return command(r, 5, argv, lens, on_integer, count);
}

int el_redis_decr_positive(struct el_redis *r, const char *key)
{
    static const char script[] = "local c = tonumber(redis.call('GET', KEYS[1])) "
                                 "if c and c > 0 then return redis.call('DECR', KEYS[1]) end "
                                 "return 0";
    const char *argv[4] = {"EVAL", script, "1", key};
    size_t lens[4];

    if (r == NULL)
        return EL_EDISABLED;
    if (key == NULL)
        return EL_EINVAL;
    for (int i = 0; i < 4; i++)
        lens[i] = strlen(argv[i]);
    return command(r, 4, argv, lens, on_integer, NULL);
}

int el_redis_pttl(struct el_redis *r, const char *key, int64_t *ms)
{
    return key_command(r, "PTTL", key, on_integer, ms);
}

/* ---- pub/sub (bus.c) ---------------------------------------------------- */

int el_redis_publish(struct el_redis *r, const char *channel, const char *msg, size_t len)
{
    const char *argv[3] = {"PUBLISH", channel, msg};
    size_t lens[3] = {7, 0, len};

    if (r == NULL)
        return EL_EDISABLED;
    lens[1] = strlen(channel);
    return command(r, 3, argv, lens, on_integer, NULL);
}

/* A subscription has a connection of its own, outside the per-thread table
 * and the breaker: it lives as long as the subscriber thread keeps it. */
struct el_redis_sub {
    struct conn cn;
};

void el_redis_sub_close(struct el_redis_sub *s)
{
    if (s) {
        if (s->cn.c)
            redisFree(s->cn.c);
        free(s);
    }
}

int el_redis_sub_open(struct el_redis *r, const char *channel, struct el_redis_sub **out, char *why,
                      size_t whylen)
{
    struct el_redis_sub *s;
    redisReply *rep;
    int rc;

    *out = NULL;
    if (r == NULL)
        return EL_EDISABLED;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return EL_ENOMEM;
    s->cn.r = r;
    rc = conn_open(r, &s->cn, 0, el_now_us() + (uint64_t)r->timeout_ms * 1000, why, whylen);
    if (rc != EL_OK) {
        free(s);
        return rc;
    }
    if (conn_budget(&s->cn, (long)r->timeout_ms * 1000) != EL_OK ||
        (rep = redisCommand(s->cn.c, "SUBSCRIBE %s", channel)) == NULL) {
        snprintf(why, whylen, "SUBSCRIBE failed: %s", s->cn.c->errstr);
        el_redis_sub_close(s);
        return EL_EUNAVAIL;
    }
    rc = rep->type == REDIS_REPLY_ARRAY ? EL_OK : EL_EPROTO;
    if (rc != EL_OK)
        snprintf(why, whylen, "unexpected reply to SUBSCRIBE");
    freeReplyObject(rep);
    if (rc != EL_OK) {
        el_redis_sub_close(s);
        return rc;
    }
    *out = s;
    return EL_OK;
}

/* Hand every complete message already read to fn. */
static int sub_drain(struct el_redis_sub *s, el_redis_sub_fn fn, void *arg)
{
    void *v;

    for (;;) {
        redisReply *rep;

        v = NULL;
        if (redisGetReplyFromReader(s->cn.c, &v) != REDIS_OK)
            return EL_EUNAVAIL;
        if (v == NULL)
            return EL_OK;
        rep = v;
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
            rep->element[0]->type == REDIS_REPLY_STRING &&
            strcmp(rep->element[0]->str, "message") == 0 &&
            rep->element[2]->type == REDIS_REPLY_STRING)
            fn(rep->element[2]->str, rep->element[2]->len, arg);
        freeReplyObject(rep);
    }
}

int el_redis_sub_poll(struct el_redis_sub *s, int wait_ms, el_redis_sub_fn fn, void *arg)
{
    struct pollfd pfd = {.fd = s->cn.c->fd, .events = POLLIN};
    int n;

    if (sub_drain(s, fn, arg) != EL_OK)
        return EL_EUNAVAIL;
    n = poll(&pfd, 1, wait_ms);
    if (n < 0)
        return errno == EINTR ? EL_OK : EL_EUNAVAIL;
    if (n == 0)
        return EL_OK;
    if (redisBufferRead(s->cn.c) != REDIS_OK)
        return EL_EUNAVAIL;
    return sub_drain(s, fn, arg);
}

/* ---- hashes (stats.c) ---------------------------------------------------- */

int el_redis_hadd_totals(struct el_redis *r, const char *sum_key, const char *own_key, int n,
                         const char *const *fields, const uint64_t *totals)
{
    /* One EVAL: every field in one round trip, applied atomically. Each
     * step is small (a second's worth), so Lua's doubles carry it exactly. */
    static const char script[] =
        "for i = 1, #ARGV, 2 do "
        "local old = tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or '0') "
        "local new = tonumber(ARGV[i + 1]) "
        "if new > old then "
        "redis.call('HINCRBY', KEYS[1], ARGV[i], new - old) "
        "redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end end "
        "redis.call('PEXPIRE', KEYS[2], 604800000) "
        "return #ARGV / 2";
    const char **argv;
    size_t *lens;
    char(*num)[24];
    int rc, argc = 5 + 2 * n;

    if (r == NULL)
        return EL_EDISABLED;
    if (n <= 0)
        return EL_OK;
    argv = calloc((size_t)argc, sizeof(*argv));
    lens = calloc((size_t)argc, sizeof(*lens));
    num = calloc((size_t)n, sizeof(*num));
    if (argv == NULL || lens == NULL || num == NULL) {
        rc = EL_ENOMEM;
        goto out;
    }
    argv[0] = "EVAL";
    argv[1] = script;
    argv[2] = "2";
    argv[3] = sum_key;
    argv[4] = own_key;
    for (int i = 0; i < n; i++) {
        snprintf(num[i], sizeof(num[i]), "%llu", (unsigned long long)totals[i]);
        argv[5 + 2 * i] = fields[i];
        argv[6 + 2 * i] = num[i];
    }
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    rc = command(r, argc, argv, lens, on_integer, NULL);
out:
    free(argv);
    free(lens);
    free(num);
    return rc;
}

struct hgetall_out {
    el_redis_field_fn fn;
    void *arg;
};

static int on_hgetall(const redisReply *rep, void *arg)
{
    struct hgetall_out *h = arg;

    if (rep->type != REDIS_REPLY_ARRAY || rep->elements % 2)
        return EL_EPROTO;
    for (size_t i = 0; i + 1 < rep->elements; i += 2) {
        const redisReply *k = rep->element[i], *v = rep->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            return EL_EPROTO;
        h->fn(k->str, strtoll(v->str, NULL, 10), h->arg);
    }
    return EL_OK;
}

int el_redis_hgetall_int(struct el_redis *r, const char *key, el_redis_field_fn fn, void *arg)
{
    const char *argv[2] = {"HGETALL", key};
    size_t lens[2] = {7, 0};
    struct hgetall_out h = {fn, arg};

    if (r == NULL)
        return EL_EDISABLED;
    lens[1] = strlen(key);
    return command(r, 2, argv, lens, on_hgetall, &h);
}

/* ---- INFO / DBSIZE (stats) ------------------------------------------------ */

int el_redis_info(struct el_redis *r, const char *section, struct el_buf *out)
{
    const char *argv[2] = {"INFO", section};
    size_t lens[2] = {4, 0};

    if (r == NULL)
        return EL_EDISABLED;
    lens[1] = strlen(section);
    return command(r, 2, argv, lens, on_string, out);
}

int el_redis_dbsize(struct el_redis *r, int64_t *n)
{
    const char *argv[1] = {"DBSIZE"};
    size_t lens[1] = {6};

    if (r == NULL)
        return EL_EDISABLED;
    return command(r, 1, argv, lens, on_integer, n);
}

/* ---- conditional writes (fills and leases) ---------------------------- */

static int on_set_nx(const redisReply *rep, void *arg)
{
    EL_UNUSED(arg);
    if (rep->type == REDIS_REPLY_NIL)
        return EL_ECONFLICT;
    return rep->type == REDIS_REPLY_STATUS ? EL_OK : EL_EPROTO;
}

int el_redis_set_nx(struct el_redis *r, const char *key, const void *val, size_t len,
                    int64_t ttl_ms)
{
    char ms[24];
    const char *argv[6] = {"SET", key, val, "NX", "PX", ms};
    size_t lens[6] = {3, 0, len, 2, 2, 0};

    if (r == NULL)
        return EL_EDISABLED;
    lens[1] = strlen(key);
    lens[5] = (size_t)snprintf(ms, sizeof(ms), "%lld", (long long)(ttl_ms > 0 ? ttl_ms : 1));
    return command(r, 6, argv, lens, on_set_nx, NULL);
}

int el_redis_del_if(struct el_redis *r, const char *key, const char *val)
{
    static const char script[] =
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
        "return 0";
    const char *argv[5] = {"EVAL", script, "1", key, val};
    size_t lens[5];

    if (r == NULL)
        return EL_EDISABLED;
    for (int i = 0; i < 5; i++)
        lens[i] = strlen(argv[i]);
    return command(r, 5, argv, lens, on_integer, NULL);
}

/* ---- topology and hashes (auth) ------------------------------------------- */

void el_redis_topology(struct el_redis *r, struct el_redis_topology *out)
{
    memset(out, 0, sizeof(*out));
    if (r == NULL)
        return;
    out->sentinel = r->sentinel != NULL;
    if (r->sentinel)
        snprintf(out->master_name, sizeof(out->master_name), "%s",
                 el_sentinel_master_name(r->sentinel));
    pthread_mutex_lock(&r->addr_mu);
    snprintf(out->host, sizeof(out->host), "%s", r->host);
    out->port = r->port;
    memcpy(out->run_id, r->run_id, sizeof(out->run_id));
    out->replicas = r->replicas;
    pthread_mutex_unlock(&r->addr_mu);
    out->switches = atomic_load(&r->switches);
}

static int on_hmget(const redisReply *rep, void *arg)
{
    struct el_redis_hmget *q = arg;

    if (rep->type != REDIS_REPLY_ARRAY || (int)rep->elements != q->n)
        return EL_EPROTO;
    for (int i = 0; i < q->n; i++) {
        const redisReply *e = rep->element[i];

        q->found[i] = 0;
        if (e->type == REDIS_REPLY_NIL)
            continue;
        if (e->type != REDIS_REPLY_STRING)
            return EL_EPROTO;
        if (el_buf_add(&q->vals[i], e->str, e->len) != EL_OK)
            return EL_ENOMEM;
        q->found[i] = 1;
    }
    return EL_OK;
}

int el_redis_hmget_batch(struct el_redis *r, int n, struct el_redis_hmget *q, char *server)
{
    const char *argv[EL_REDIS_BATCH_MAX][2 + EL_REDIS_HMGET_FIELDS];
    size_t lens[EL_REDIS_BATCH_MAX][2 + EL_REDIS_HMGET_FIELDS];
    struct cmd cmds[EL_REDIS_BATCH_MAX];
    int rc;

    if (r == NULL)
        return EL_EDISABLED;
    if (n < 1 || n > EL_REDIS_BATCH_MAX)
        return EL_EINVAL;
    for (int i = 0; i < n; i++) {
        if (q[i].n < 1 || q[i].n > EL_REDIS_HMGET_FIELDS)
            return EL_EINVAL;
        argv[i][0] = "HMGET";
        lens[i][0] = 5;
        argv[i][1] = q[i].key;
        lens[i][1] = strlen(q[i].key);
        for (int f = 0; f < q[i].n; f++) {
            argv[i][2 + f] = q[i].fields[f];
            lens[i][2 + f] = strlen(q[i].fields[f]);
        }
        cmds[i] = (struct cmd){2 + q[i].n, argv[i], lens[i], on_hmget, &q[i], EL_OK};
    }
    rc = pipeline(r, n, cmds, server);
    for (int i = 0; rc == EL_OK && i < n; i++)
        rc = cmds[i].rc;
    return rc;
}

int el_redis_hset(struct el_redis *r, const char *key, int n, const char *const *fields,
                  const char *const *vals, const size_t *lens)
{
    const char **argv;
    size_t *alens;
    int rc, argc = 2 + 2 * n;

    if (r == NULL)
        return EL_EDISABLED;
    if (n < 1)
        return EL_EINVAL;
    argv = calloc((size_t)argc, sizeof(*argv));
    alens = calloc((size_t)argc, sizeof(*alens));
    if (argv == NULL || alens == NULL) {
        rc = EL_ENOMEM;
        goto out;
    }
    argv[0] = "HSET";
    alens[0] = 4;
    argv[1] = key;
    alens[1] = strlen(key);
    for (int i = 0; i < n; i++) {
        argv[2 + 2 * i] = fields[i];
        alens[2 + 2 * i] = strlen(fields[i]);
        argv[3 + 2 * i] = vals[i];
        alens[3 + 2 * i] = lens[i];
    }
    rc = command(r, argc, argv, alens, on_integer, NULL);
out:
    free(argv);
    free(alens);
    return rc;
}

static int on_role_replicas(const redisReply *rep, void *arg)
{
    char why[64];

    return role_check(rep, arg, why, sizeof(why)) == EL_OK ? EL_OK : EL_EUNAVAIL;
}

int el_redis_hset_replicated(struct el_redis *r, const char *key, const char *field,
                             const void *val, size_t len, int *acked, char *server)
{
    const char *a_hset[4] = {"HSET", key, field, val};
    size_t l_hset[4] = {4, 0, 0, len};
    const char *a_role[1] = {"ROLE"};
    size_t l_role[1] = {4};
    struct cmd cmds[2];
    int replicas = 0, rc;
    int64_t n = 0;

    *acked = -1;
    if (r == NULL)
        return EL_EDISABLED;
    if (key == NULL || field == NULL || val == NULL)
        return EL_EINVAL;
    l_hset[1] = strlen(key);
    l_hset[2] = strlen(field);
    cmds[0] = (struct cmd){4, a_hset, l_hset, on_integer, NULL, EL_OK};
    cmds[1] = (struct cmd){1, a_role, l_role, on_role_replicas, &replicas, EL_OK};
    rc = pipeline(r, 2, cmds, server);
    if (rc == EL_OK)
        rc = cmds[0].rc;
    if (rc != EL_OK)
        return rc;
    if (cmds[1].rc != EL_OK) /* answered, but no longer a master */
        return EL_EUNAVAIL;
    if (replicas == 0)
        return EL_OK;
    /* WAIT blocks only this connection; its own timeout stays inside the
     * socket's, so a slow replica is an answer ("0 acknowledged"), not a
     * dropped connection. */
    char ms[24];
    int wait_ms = r->timeout_ms * 3 / 4 > 1 ? r->timeout_ms * 3 / 4 : 1;
    const char *a_wait[3] = {"WAIT", "1", ms};
    size_t l_wait[3] = {4, 1, 0};

    l_wait[2] = (size_t)snprintf(ms, sizeof(ms), "%d", wait_ms);
    rc = command(r, 3, a_wait, l_wait, on_integer, &n);
    if (rc == EL_OK)
        *acked = (int)n;
    return rc;
}

int el_redis_hdel(struct el_redis *r, const char *key, const char *field)
{
    const char *argv[3] = {"HDEL", key, field};
    size_t lens[3] = {4, 0, 0};

    if (r == NULL)
        return EL_EDISABLED;
    if (key == NULL || field == NULL)
        return EL_EINVAL;
    lens[1] = strlen(key);
    lens[2] = strlen(field);
    return command(r, 3, argv, lens, on_integer, NULL);
}

int el_redis_eval_int(struct el_redis *r, const char *script, const char *key, int nargs,
                      const char *const *args, int64_t *out, char *server)
{
    const char *argv[4 + 8];
    size_t lens[4 + 8];

    if (r == NULL)
        return EL_EDISABLED;
    if (nargs < 0 || nargs > 8)
        return EL_EINVAL;
    argv[0] = "EVAL";
    argv[1] = script;
    argv[2] = "1";
    argv[3] = key;
    for (int i = 0; i < nargs; i++)
        argv[4 + i] = args[i];
    for (int i = 0; i < 4 + nargs; i++)
        lens[i] = strlen(argv[i]);
    struct cmd c = {4 + nargs, argv, lens, on_integer, out, EL_OK};
    int rc = pipeline(r, 1, &c, server);

    return rc == EL_OK ? c.rc : rc;
}

/* The guard reads only the value's first bytes (GETRANGE), never a whole
 * 1 MiB course, and compares numbers: versions stay below 2^53, exact in
 * Lua's doubles. */
int el_redis_set_versioned(struct el_redis *r, const char *key, uint64_t version, const void *val,
                           size_t len, int64_t ttl_ms)
{
    static const char script[] =
        "local h = redis.call('GETRANGE', KEYS[1], 0, 24) "
        "local v = tonumber(string.match(h, '^#(%d+):')) "
        "if v and v > tonumber(ARGV[2]) then return 0 end "
        "redis.call('SET', KEYS[1], '#' .. ARGV[2] .. ':' .. ARGV[1], 'PX', ARGV[3]) "
        "return 1";
    char ver[24], ms[24];
    const char *argv[7] = {"EVAL", script, "1", key, val ? (const char *)val : "", ver, ms};
    size_t lens[7];
    int64_t set = 0;
    int rc;

    if (r == NULL)
        return EL_EDISABLED;
    if (key == NULL || (val == NULL && len > 0) || version >= (1ULL << 53))
        return EL_EINVAL;
    lens[0] = 4;
    lens[1] = sizeof(script) - 1;
    lens[2] = 1;
    lens[3] = strlen(key);
    lens[4] = len;
    lens[5] = (size_t)snprintf(ver, sizeof(ver), "%llu", (unsigned long long)version);
    lens[6] = (size_t)snprintf(ms, sizeof(ms), "%lld", (long long)(ttl_ms > 0 ? ttl_ms : 1));
    rc = command(r, 7, argv, lens, on_integer, &set);
    if (rc == EL_OK && set == 0)
        rc = EL_ECONFLICT;
    return rc;
}

int el_redis_get_versioned(struct el_redis *r, const char *key, struct el_buf *out,
                           uint64_t *version)
{
    size_t start = out ? out->len : 0, i;
    uint64_t v = 0;
    int rc = el_redis_get(r, key, out);

    *version = 0;
    if (rc != EL_OK || out->len == start || out->data[start] != '#')
        return rc;
    for (i = start + 1; i < out->len && i < start + 21; i++) {
        if (out->data[i] < '0' || out->data[i] > '9')
            break;
        v = v * 10 + (uint64_t)(out->data[i] - '0');
    }
    if (i == start + 1 || i >= out->len || out->data[i] != ':')
        return EL_EPROTO; /* not a header we wrote */
    i++;
    memmove(out->data + start, out->data + i, out->len - i);
    out->len -= i - start;
    out->data[out->len] = '\0';
    *version = v;
    return EL_OK;
}

int el_redis_lease(struct el_redis *r, const char *key, const char *owner, int64_t ttl_ms)
{
    static const char script[] = "local v = redis.call('GET', KEYS[1]) "
                                 "if v == false or v == ARGV[1] then "
                                 "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end "
                                 "return 0";
    char ms[24];
    const char *argv[6] = {"EVAL", script, "1", key, owner, ms};
    size_t lens[6];
    int64_t held = 0;
    int rc;

    if (r == NULL)
        return EL_EDISABLED;
    if (key == NULL || owner == NULL)
        return EL_EINVAL;
    snprintf(ms, sizeof(ms), "%lld", (long long)(ttl_ms > 0 ? ttl_ms : 1));
    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    rc = command(r, 6, argv, lens, on_integer, &held);
    return rc == EL_OK && held == 0 ? EL_ECONFLICT : rc;
}
