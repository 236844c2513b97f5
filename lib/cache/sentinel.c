/* sentinel.c -- the Sentinel client: master discovery and the watcher
 * thread (see sentinel.h for the protocol and why). */
#include "cache/sentinel.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#define QUERY_EVERY_MS 1000 /* the watcher's check, besides +switch-master */

struct addr {
    char host[256];
    int port;
};

struct el_sentinel {
    struct addr sent[EL_SENTINEL_MAX];
    int n;
    char name[128];
    int timeout_ms;
    atomic_int last_good; /* index of the sentinel that answered last */

    /* watcher */
    pthread_t thread;
    int watching;
    el_sentinel_switch_fn fn;
    void *arg;
    pthread_mutex_t stop_lock;
    pthread_cond_t stop_cond;
    int stop;
    struct addr reported; /* watcher thread only */
};

static int parse_port(const char *s, size_t n, int *out)
{
    long v = 0;

    if (n == 0 || n > 5)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    *out = (int)v;
    return 0;
}

static int host_ok(const char *s, size_t n, int bracketed)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_' || (bracketed && (c == ':' || c == '%'))))
            return 0;
    }
    return n > 0;
}

/* One "host:port" or "[v6]:port" of n bytes into a. */
static int parse_addr(const char *s, size_t n, struct addr *a)
{
    const char *hs = s, *he, *colon;

    if (n > 0 && s[0] == '[') {
        hs = s + 1;
        he = memchr(hs, ']', n - 1);
        if (he == NULL || he + 1 >= s + n || he[1] != ':')
            return -1;
        colon = he + 1;
        if (!host_ok(hs, (size_t)(he - hs), 1))
            return -1;
    } else {
        colon = memchr(s, ':', n);
        if (colon == NULL)
            return -1;
        he = colon;
        if (!host_ok(hs, (size_t)(he - hs), 0))
            return -1;
    }
    if ((size_t)(he - hs) >= sizeof(a->host))
        return -1;
    memcpy(a->host, hs, (size_t)(he - hs));
    a->host[he - hs] = '\0';
    return parse_port(colon + 1, (size_t)(s + n - colon - 1), &a->port);
}

int el_sentinel_new(const char *hosts, size_t hosts_len, const char *master_name, int timeout_ms,
                    struct el_sentinel **out, struct el_err *err)
{
    struct el_sentinel *s;
    const char *p = hosts, *end = hosts + hosts_len;
    size_t nlen = strlen(master_name);

    *out = NULL;
    if (nlen == 0)
        return el_err_set(err, EL_EINVAL, "missing master name (redis-sentinel://h:p,.../name)");
    if (nlen >= sizeof(s->name))
        return el_err_set(err, EL_EINVAL, "master name too long");
    for (size_t i = 0; i < nlen; i++)
        if ((unsigned char)master_name[i] <= ' ' || master_name[i] == 0x7f)
            return el_err_set(err, EL_EINVAL, "bad character in master name");
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return el_err_set(err, EL_ENOMEM, "out of memory");
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;

        if (s->n == EL_SENTINEL_MAX) {
            free(s);
            return el_err_set(err, EL_EINVAL, "more than %d sentinels", EL_SENTINEL_MAX);
        }
        if (parse_addr(p, (size_t)(e - p), &s->sent[s->n]) < 0) {
            int k = s->n + 1;

            free(s);
            return el_err_set(err, EL_EINVAL,
                              "sentinel %d: must be host:port with a port between 1 and 65535", k);
        }
        s->n++;
        p = comma ? comma + 1 : end;
    }
    if (s->n == 0) {
        free(s);
        return el_err_set(err, EL_EINVAL, "no sentinel address");
    }
    memcpy(s->name, master_name, nlen + 1);
    s->timeout_ms = timeout_ms > 0 ? timeout_ms : 100;
    el_must(pthread_mutex_init(&s->stop_lock, NULL));
    el_must(pthread_cond_init(&s->stop_cond, NULL));
    *out = s;
    return EL_OK;
}

const char *el_sentinel_master_name(const struct el_sentinel *s)
{
    return s->name;
}

static struct timeval ms_tv(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

/* A connection to sentinel i with both timeouts set, or NULL (why set). */
static redisContext *sentinel_connect(struct el_sentinel *s, int i, char *why, size_t whylen)
{
    redisContext *c =
        redisConnectWithTimeout(s->sent[i].host, s->sent[i].port, ms_tv(s->timeout_ms));

    if (c == NULL) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    if (c->err || redisSetTimeout(c, ms_tv(s->timeout_ms)) != REDIS_OK) {
        snprintf(why, whylen, "sentinel %s:%d: %s", s->sent[i].host, s->sent[i].port,
                 c->err ? c->errstr : "setsockopt failed");
        redisFree(c);
        return NULL;
    }
    return c;
}

/* Ask sentinel i. EL_OK, EL_ENOTFOUND (no such master), EL_EUNAVAIL. */
static int ask(struct el_sentinel *s, int i, char *host, size_t hostlen, int *port, char *why,
               size_t whylen)
{
    const char *argv[3] = {"SENTINEL", "get-master-addr-by-name", s->name};
    size_t lens[3] = {8, 23, strlen(s->name)};
    redisContext *c = sentinel_connect(s, i, why, whylen);
    redisReply *rep;
    int rc = EL_EUNAVAIL;

    if (c == NULL)
        return EL_EUNAVAIL;
    rep = redisCommandArgv(c, 3, argv, lens);
    if (rep == NULL) {
        snprintf(why, whylen, "sentinel %s:%d: %s", s->sent[i].host, s->sent[i].port, c->errstr);
    } else if (rep->type == REDIS_REPLY_NIL) {
        snprintf(why, whylen, "sentinel %s:%d knows no master named %s", s->sent[i].host,
                 s->sent[i].port, s->name);
        rc = EL_ENOTFOUND;
    } else if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
               rep->element[0]->type == REDIS_REPLY_STRING &&
               rep->element[1]->type == REDIS_REPLY_STRING && rep->element[0]->len < hostlen &&
               host_ok(rep->element[0]->str, rep->element[0]->len, 1) &&
               parse_port(rep->element[1]->str, rep->element[1]->len, port) == 0) {
        memcpy(host, rep->element[0]->str, rep->element[0]->len);
        host[rep->element[0]->len] = '\0';
        rc = EL_OK;
    } else {
        snprintf(why, whylen, "sentinel %s:%d: unexpected answer to get-master-addr-by-name",
                 s->sent[i].host, s->sent[i].port);
    }
    freeReplyObject(rep);
    redisFree(c);
    return rc;
}

int el_sentinel_get_master(struct el_sentinel *s, char *host, size_t hostlen, int *port, char *why,
                           size_t whylen)
{
    int first = atomic_load(&s->last_good), rc = EL_EUNAVAIL;

    for (int k = 0; k < s->n; k++) {
        int i = (first + k) % s->n;

        rc = ask(s, i, host, hostlen, port, why, whylen);
        if (rc == EL_OK) {
            atomic_store(&s->last_good, i);
            return EL_OK;
        }
        /* A sentinel that does not know the master may be a new or
         * misconfigured one: ask the others before believing it. */
    }
    return rc;
}

/* ---- the watcher ------------------------------------------------------- */

static int stopping(struct el_sentinel *s, int wait_ms)
{
    struct timespec ts;
    int stop;

    el_must(pthread_mutex_lock(&s->stop_lock));
    if (!s->stop && wait_ms > 0) {
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += wait_ms / 1000;
        ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->stop_cond, &s->stop_lock, &ts);
    }
    stop = s->stop;
    el_must(pthread_mutex_unlock(&s->stop_lock));
    return stop;
}

static void report(struct el_sentinel *s, const char *host, int port)
{
    if (strcmp(s->reported.host, host) == 0 && s->reported.port == port)
        return;
    snprintf(s->reported.host, sizeof(s->reported.host), "%s", host);
    s->reported.port = port;
    s->fn(s->arg, host, port);
}

/* Subscribe to +switch-master on one sentinel (rotating through them). */
static redisContext *subscribe(struct el_sentinel *s, int *next)
{
    char why[192];
    redisContext *c;
    redisReply *rep;

    for (int k = 0; k < s->n; k++) {
        int i = (*next + k) % s->n;

        c = sentinel_connect(s, i, why, sizeof(why));
        if (c == NULL)
            continue;
        rep = redisCommand(c, "SUBSCRIBE +switch-master");
        if (rep != NULL && rep->type == REDIS_REPLY_ARRAY) {
            freeReplyObject(rep);
            *next = i;
            return c;
        }
        freeReplyObject(rep);
        redisFree(c);
    }
    *next = (*next + 1) % s->n;
    return NULL;
}

/* "+switch-master <name> <old-ip> <old-port> <new-ip> <new-port>" */
static void on_switch(struct el_sentinel *s, const char *msg, size_t len)
{
    char buf[600], name[128], host[256], portstr[16];
    int port;

    if (len >= sizeof(buf))
        return;
    memcpy(buf, msg, len);
    buf[len] = '\0';
    if (sscanf(buf, "%127s %*s %*s %255s %15s", name, host, portstr) == 3 &&
        parse_port(portstr, strlen(portstr), &port) == 0 && strcmp(name, s->name) == 0 &&
        host_ok(host, strlen(host), 1)) {
        fprintf(stderr, "redis: sentinel announced +switch-master %s -> %s:%d\n", name, host, port);
        report(s, host, port);
    }
}

/* Read what arrived on the subscription; -1 when it is lost. */
static int drain(struct el_sentinel *s, redisContext *c)
{
    for (;;) {
        void *v = NULL;
        redisReply *rep;

        if (redisGetReplyFromReader(c, &v) != REDIS_OK)
            return -1;
        if (v == NULL)
            return 0;
        rep = v;
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
            rep->element[0]->type == REDIS_REPLY_STRING &&
            strcmp(rep->element[0]->str, "message") == 0 &&
            rep->element[2]->type == REDIS_REPLY_STRING)
            on_switch(s, rep->element[2]->str, rep->element[2]->len);
        freeReplyObject(rep);
    }
}

static void *watch_main(void *arg)
{
    struct el_sentinel *s = arg;
    redisContext *sub = NULL;
    uint64_t next_query = 0;
    int next = 0;

    while (!stopping(s, 0)) {
        uint64_t now = el_now_ms();

        if (now >= next_query) {
            char host[256], why[192];
            int port;

            if (el_sentinel_get_master(s, host, sizeof(host), &port, why, sizeof(why)) == EL_OK)
                report(s, host, port);
            next_query = el_now_ms() + QUERY_EVERY_MS;
        }
        if (sub == NULL && (sub = subscribe(s, &next)) == NULL) {
            if (stopping(s, 250))
                break;
            continue;
        }
        struct pollfd pfd = {.fd = sub->fd, .events = POLLIN};
        int n = poll(&pfd, 1, 100);
        if (n < 0 && errno != EINTR) {
            redisFree(sub);
            sub = NULL;
        } else if (n > 0 && (redisBufferRead(sub) != REDIS_OK || drain(s, sub) < 0)) {
            redisFree(sub); /* that sentinel went away: the next one */
            sub = NULL;
            next = (next + 1) % s->n;
        }
    }
    if (sub)
        redisFree(sub);
    return NULL;
}

int el_sentinel_watch(struct el_sentinel *s, el_sentinel_switch_fn fn, void *arg)
{
    if (s->watching)
        return EL_EINVAL;
    s->fn = fn;
    s->arg = arg;
    if (pthread_create(&s->thread, NULL, watch_main, s) != 0)
        return EL_ENOMEM;
    s->watching = 1;
    return EL_OK;
}

void el_sentinel_free(struct el_sentinel *s)
{
    if (s == NULL)
        return;
    if (s->watching) {
        el_must(pthread_mutex_lock(&s->stop_lock));
        s->stop = 1;
        el_must(pthread_cond_signal(&s->stop_cond));
        el_must(pthread_mutex_unlock(&s->stop_lock));
        pthread_join(s->thread, NULL);
    }
    pthread_mutex_destroy(&s->stop_lock);
    pthread_cond_destroy(&s->stop_cond);
    free(s);
}
