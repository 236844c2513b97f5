/* bus.c -- cache coherence over Redis pub/sub (see bus.h for the design).
 *
 * Message format (one line, space-separated):
 *     E1 <publisher> <seq> H               heartbeat
 *     E1 <publisher> <seq> K <key>         drop key
 *     E1 <publisher> <seq> G <generation>  new course-list generation
 *     E1 <publisher> <seq> G <gen> <dim>   list-generation dimension dim moved
 *     E1 <publisher> <seq> F <key>         key filled in Redis
 *     E1 <publisher> <seq> L               some of my messages were lost
 *     E1 <publisher> <seq> M <kind> <arg>\n<kind> <arg>...
 *                                          several of the above in one (a
 *                                          write's keys and generations:
 *                                          el_bus_batch_begin/end)
 *     E1 <publisher> <seq> R <id> <ms>     id revoked until ms (auth)
 * <publisher> is 16 random hex digits chosen at start, so a restarted
 * process is a new publisher and never looks like a gap. */
#include "cache/bus.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/hash.h"

#define PEERS 256 /* publishers remembered (direct-mapped by id) */

struct peer {
    char id[17];
    uint64_t seq; /* last sequence heard */
};

struct el_bus {
    struct el_redis *sub_redis; /* handle for the subscription's address */
    struct el_redis *pub;       /* the process's handle, for PUBLISH */
    struct el_bus_handlers h;
    struct el_bus_opts o;
    char id[17];

    pthread_mutex_t pub_lock; /* numbering + sending, one at a time */
    uint64_t seq;             /* under pub_lock */
    int lost;                 /* under pub_lock: a publish failed since
                                 * the last 'L' went out */

    pthread_t thread;
    pthread_mutex_t stop_lock;
    pthread_cond_t stop_cond;
    int stop;

    struct peer peers[PEERS]; /* subscriber thread only */
    uint64_t done_ms;         /* subscriber thread only: when the last message
                               * was applied; 0 after (re)subscribing */
    _Atomic uint64_t last_heard_ms;
    atomic_int connected;
    _Atomic uint64_t received, gaps, resets, published, publish_failures, heartbeats;
};

/* Send one numbered message; called with pub_lock held. */
static int send_locked(struct el_bus *b, char kind, const char *arg)
{
    char msg[512];
    int n, rc;

    n = snprintf(msg, sizeof(msg), "E1 %s %" PRIu64 " %c%s%s", b->id, ++b->seq, kind,
                 arg ? " " : "", arg ? arg : "");
    if (n < 0 || (size_t)n >= sizeof(msg)) {
        /* Never happens with our keys; the number is used up either way,
         * so the others drop their L1 rather than miss this change. */
        rc = EL_ETOOBIG;
    } else {
        rc = el_redis_publish(b->pub, EL_BUS_CHANNEL, msg, (size_t)n);
    }
    if (rc == EL_OK)
        atomic_fetch_add(&b->published, 1);
    else
        atomic_fetch_add(&b->publish_failures, 1);
    return rc;
}

/* This thread's batch (el_bus_batch_begin): parts waiting to go out as one
 * 'M' message when the outermost batch ends. */
#define BATCH_MAX 440 /* leaves room for the header in send_locked's 512 */
static __thread struct {
    struct el_bus *bus;
    int depth;
    size_t len;
    char buf[BATCH_MAX + 1];
} batch;

static int publish_now(struct el_bus *b, char kind, const char *arg);

static int batch_flush(void)
{
    int rc = EL_OK;

    if (batch.len > 0)
        rc = publish_now(batch.bus, 'M', batch.buf);
    batch.len = 0;
    batch.buf[0] = '\0';
    return rc;
}

void el_bus_batch_begin(struct el_bus *b)
{
    if (b == NULL || (batch.depth > 0 && batch.bus != b))
        return; /* one bus per batch; another's messages go out at once */
    batch.bus = b;
    batch.depth++;
}

int el_bus_batch_end(struct el_bus *b)
{
    if (b == NULL || batch.bus != b || batch.depth == 0)
        return EL_OK;
    if (--batch.depth > 0)
        return EL_OK;
    return batch_flush();
}

static int publish(struct el_bus *b, char kind, const char *arg)
{
    if (b != NULL && batch.depth > 0 && batch.bus == b && kind != 'H') {
        size_t need = 2 + (arg ? 1 + strlen(arg) : 0); /* [\n]kind[ arg] */

        if (need > BATCH_MAX)
            return publish_now(b, kind, arg);
        if (batch.len + need > BATCH_MAX && batch_flush() != EL_OK) {
            /* flushed (and numbered) anyway; carry on collecting */
        }
        batch.len +=
            (size_t)snprintf(batch.buf + batch.len, sizeof(batch.buf) - batch.len, "%s%c%s%s",
                             batch.len ? "\n" : "", kind, arg ? " " : "", arg ? arg : "");
        return EL_OK;
    }
    return publish_now(b, kind, arg);
}

static int publish_now(struct el_bus *b, char kind, const char *arg)
{
    int rc;

    if (b == NULL)
        return EL_EDISABLED;
    el_must(pthread_mutex_lock(&b->pub_lock));
    /* Messages of ours were lost: say so first. A subscriber that joined
     * after them cannot see the gap in our numbers, but it must still drop
     * what those messages would have invalidated. */
    if (b->lost && send_locked(b, 'L', NULL) == EL_OK)
        b->lost = 0;
    rc = send_locked(b, kind, arg);
    if (rc != EL_OK)
        b->lost = 1;
    el_must(pthread_mutex_unlock(&b->pub_lock));
    return rc;
}

/* A publish of ours failed and nobody has been told yet. */
static int lost_pending(struct el_bus *b)
{
    int lost;

    el_must(pthread_mutex_lock(&b->pub_lock));
    lost = b->lost;
    el_must(pthread_mutex_unlock(&b->pub_lock));
    return lost;
}

int el_bus_publish_key(struct el_bus *b, const char *key)
{
    return publish(b, 'K', key);
}

int el_bus_publish_generation(struct el_bus *b, uint64_t gen)
{
    char g[24];

    snprintf(g, sizeof(g), "%" PRIu64, gen);
    return publish(b, 'G', g);
}

int el_bus_publish_list_dim(struct el_bus *b, int dim, uint64_t gen)
{
    char g[48];

    snprintf(g, sizeof(g), "%" PRIu64 " %d", gen, dim);
    return publish(b, 'G', g);
}

int el_bus_publish_filled(struct el_bus *b, const char *key)
{
    return publish(b, 'F', key);
}

int el_bus_publish_revoked(struct el_bus *b, const char *id, int64_t expires_ms)
{
    char arg[128];
    int n = snprintf(arg, sizeof(arg), "%s %" PRId64, id, expires_ms);

    if (n < 0 || (size_t)n >= sizeof(arg) || strchr(id, ' ') != NULL)
        return EL_EINVAL;
    return publish(b, 'R', arg);
}

int el_bus_publish_key_once(struct el_redis *r, const char *key)
{
    unsigned char rnd[8];
    char msg[512], id[17];
    int n;

    if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
        uint64_t t = el_now_us();
        memcpy(rnd, &t, sizeof(rnd));
    }
    for (int i = 0; i < 8; i++)
        snprintf(id + 2 * i, 3, "%02x", rnd[i]);
    n = snprintf(msg, sizeof(msg), "E1 %s 1 K %s", id, key);
    if (n < 0 || (size_t)n >= sizeof(msg))
        return EL_ETOOBIG;
    return el_redis_publish(r, EL_BUS_CHANNEL, msg, (size_t)n);
}

uint64_t el_bus_resets(struct el_bus *b)
{
    return b ? atomic_load(&b->resets) : 0;
}

uint64_t el_bus_last_heard_ms(struct el_bus *b)
{
    return b ? atomic_load_explicit(&b->last_heard_ms, memory_order_acquire) : 0;
}

int el_bus_connected(struct el_bus *b)
{
    return b ? atomic_load(&b->connected) : 0;
}

int el_bus_fresh(struct el_bus *b, uint64_t now_ms)
{
    uint64_t heard;

    if (b == NULL)
        return 1;
    heard = atomic_load_explicit(&b->last_heard_ms, memory_order_acquire);
    return heard != 0 && now_ms - heard <= (uint64_t)b->o.max_stale_ms;
}

void el_bus_stats(struct el_bus *b, struct el_bus_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (b == NULL)
        return;
    out->received = atomic_load(&b->received);
    out->gaps = atomic_load(&b->gaps);
    out->resets = atomic_load(&b->resets);
    out->published = atomic_load(&b->published);
    out->publish_failures = atomic_load(&b->publish_failures);
    out->heartbeats = atomic_load(&b->heartbeats);
    out->connected = atomic_load(&b->connected);
}

static void reset(struct el_bus *b, const char *why)
{
    atomic_fetch_add(&b->resets, 1);
    fprintf(stderr, "bus: dropping L1 (%s)\n", why);
    if (b->h.reset)
        b->h.reset(b->h.arg, why);
}

/* Track publisher id's sequence; 1 when seq is the next one expected (or
 * the publisher is new to us), 0 on a gap. */
static int in_sequence(struct el_bus *b, const char *id, uint64_t seq)
{
    uint64_t h = el_fnv1a64_str(id);
    struct peer *p;
    int ok;

    p = &b->peers[h % PEERS];
    if (strcmp(p->id, id) != 0) {
        /* New publisher (or an evicted slot): its past is before our
         * subscription, or already covered by the reset that began it. */
        snprintf(p->id, sizeof(p->id), "%s", id);
        p->seq = seq;
        return 1;
    }
    ok = seq == p->seq + 1;
    if (seq > p->seq)
        p->seq = seq;
    return ok;
}

/* Split "E1 <id> <seq> <kind>[ <rest>]" in place. -1 when malformed --
 * including a sequence that is not a decimal number in range, which
 * sscanf would convert without a word. */
static int parse_message(char *buf, char id[17], uint64_t *seq, char *kind, char **rest)
{
    char *p, *end;
    size_t n;

    if (strncmp(buf, "E1 ", 3) != 0)
        return -1;
    p = buf + 3;
    n = strcspn(p, " ");
    if (n == 0 || n > 16 || p[n] != ' ')
        return -1;
    memcpy(id, p, n);
    id[n] = '\0';
    p += n + 1;
    if (*p < '0' || *p > '9')
        return -1;
    errno = 0;
    *seq = strtoull(p, &end, 10);
    if (errno != 0 || *end != ' ' || end[1] == '\0' || end[1] == ' ')
        return -1;
    *kind = end[1];
    *rest = end + 2;
    if (**rest == ' ')
        (*rest)++;
    return 0;
}

static void apply(struct el_bus *b, const char *id, char kind, char *rest);

static void on_message_apply(struct el_bus *b, const char *msg, size_t len);

static void on_message(const char *msg, size_t len, void *arg)
{
    struct el_bus *b = arg;

    on_message_apply(b, msg, len);
    b->done_ms = el_now_ms();
}

static void on_message_apply(struct el_bus *b, const char *msg, size_t len)
{
    char buf[512], id[17], kind, *rest;
    uint64_t seq;

    uint64_t now = el_now_ms(), prev = b->done_ms;

    /* The silence first, and only then the news that the channel is heard
     * again: whoever sees last_heard move also sees what the heard handler
     * did about the silence (the store below is a release,
     * el_bus_last_heard_ms an acquire). Counted from when the last message
     * was applied, not heard: time this thread spent in a handler is not
     * the channel's. Not after (re)subscribing, which reset already. L1
     * needs nothing here: a silence makes it unfresh (verified against
     * Redis), and what a silent writer failed to announce it also failed
     * to write to Redis, which its replay cleans and announces. */
    if (prev != 0 && now > prev && b->h.heard)
        b->h.heard(b->h.arg, now - prev);
    atomic_store_explicit(&b->last_heard_ms, now, memory_order_release);
    atomic_fetch_add(&b->received, 1);
    if (len >= sizeof(buf))
        return;
    memcpy(buf, msg, len);
    buf[len] = '\0';
    if (parse_message(buf, id, &seq, &kind, &rest) != 0)
        return;
    if (!in_sequence(b, id, seq)) {
        char why[96];
        atomic_fetch_add(&b->gaps, 1);
        snprintf(why, sizeof(why), "messages from %s lost before #%" PRIu64, id, seq);
        reset(b, why);
        /* fall through: this message itself is still applied */
    }
    if (strcmp(id, b->id) == 0)
        return; /* our own change: applied locally when it was made */
    if (kind == 'M') {
        /* Parts, one a line: each applied as its own message. */
        for (char *part = rest, *nl; part && *part; part = nl ? nl + 1 : NULL) {
            nl = strchr(part, '\n');
            if (nl)
                *nl = '\0';
            apply(b, id, part[0], part[1] == ' ' ? part + 2 : part + 1);
        }
        return;
    }
    apply(b, id, kind, rest);
}

/* Apply one message (or one part of an 'M') from publisher id. */
static void apply(struct el_bus *b, const char *id, char kind, char *rest)
{
    switch (kind) {
    case 'K':
        if (b->h.key && *rest)
            b->h.key(b->h.arg, rest);
        break;
    case 'G': {
        char *end;
        uint64_t gen = strtoull(rest, &end, 10);

        if (*end == ' ') {
            if (b->h.list_dim)
                b->h.list_dim(b->h.arg, (int)strtol(end + 1, NULL, 10), gen);
        } else if (b->h.generation) {
            b->h.generation(b->h.arg, gen);
        }
        break;
    }
    case 'F':
        if (b->h.filled && *rest)
            b->h.filled(b->h.arg, rest);
        break;
    case 'R': {
        char rid[80], *end;
        size_t n = strcspn(rest, " ");
        int64_t ms;

        if (b->h.revoked == NULL || n == 0 || n >= sizeof(rid) || rest[n] != ' ')
            break;
        memcpy(rid, rest, n);
        rid[n] = '\0';
        errno = 0;
        ms = strtoll(rest + n + 1, &end, 10);
        if (errno == 0 && end != rest + n + 1)
            b->h.revoked(b->h.arg, rid, ms);
        break;
    }
    case 'L': {
        char why[64];
        snprintf(why, sizeof(why), "publisher %s lost messages", id);
        reset(b, why);
        break;
    }
    default:
        break; /* heartbeat */
    }
}

/* Wait up to ms, or until stop. Returns 1 when stopping. */
static int nap(struct el_bus *b, int ms)
{
    struct timespec ts;
    int stop;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    el_must(pthread_mutex_lock(&b->stop_lock));
    if (!b->stop)
        pthread_cond_timedwait(&b->stop_cond, &b->stop_lock, &ts);
    stop = b->stop;
    el_must(pthread_mutex_unlock(&b->stop_lock));
    return stop;
}

static int stopping(struct el_bus *b)
{
    int s;

    el_must(pthread_mutex_lock(&b->stop_lock));
    s = b->stop;
    el_must(pthread_mutex_unlock(&b->stop_lock));
    return s;
}

static void *bus_main(void *arg)
{
    struct el_bus *b = arg;
    struct el_redis_sub *sub = NULL;
    uint64_t next_beat = 0, sub_epoch = 0;
    int leader = 1; /* until Redis says otherwise: beat (see below) */
    uint64_t half_stale = (uint64_t)b->o.max_stale_ms / 2;
    char why[192];
    int down_logged = 0;

    while (!stopping(b)) {
        uint64_t now = el_now_ms();

        if (sub == NULL) {
            if (el_redis_sub_open(b->sub_redis, EL_BUS_CHANNEL, &sub, why, sizeof(why)) != EL_OK) {
                if (!down_logged)
                    fprintf(stderr, "bus: cannot subscribe (%s); retrying\n", why);
                down_logged = 1;
                atomic_store(&b->connected, 0);
                if (nap(b, 250))
                    break;
                continue;
            }
            down_logged = 0;
            sub_epoch = el_redis_epoch(b->sub_redis);
            atomic_store(&b->connected, 1);
            /* Whatever was published while we were away is lost to us. */
            memset(b->peers, 0, sizeof(b->peers));
            b->done_ms = 0;
            reset(b, "subscribed to " EL_BUS_CHANNEL);
            next_beat = 0;
        }
        if (now >= next_beat) {
            /* Only the lease holder beats. When Redis cannot say who holds
             * it (a slow answer), the last holder goes on beating: one
             * heartbeat too few would make every process distrust its L1. */
            int rc = el_redis_lease(b->pub, EL_BUS_BEAT_KEY, b->id, 2 * (int64_t)b->o.heartbeat_ms);

            if (rc == EL_OK || rc == EL_ECONFLICT)
                leader = rc == EL_OK;
            /* And anyone beats when the channel has been silent for half of
             * max_stale: a holder that is late (a loaded machine) must not
             * make every process distrust its L1. A process whose messages
             * were lost beats at once too: the heartbeat carries its "I lost
             * messages" (publish_now), which must not wait for its next
             * write while others serve what the lost messages invalidated. */
            if ((leader || lost_pending(b) || now - atomic_load(&b->last_heard_ms) >= half_stale) &&
                publish(b, 'H', NULL) == EL_OK)
                atomic_fetch_add(&b->heartbeats, 1);
            next_beat = now + (uint64_t)b->o.heartbeat_ms;
        }
        /* Sentinel moved the master: what is published there now never
         * reaches a subscription on the old one. Subscribing again drops
         * L1, as any reconnect does. */
        if (el_redis_epoch(b->sub_redis) != sub_epoch) {
            fprintf(stderr, "bus: the Redis master moved; subscribing again\n");
            el_redis_sub_close(sub);
            sub = NULL;
            atomic_store(&b->connected, 0);
            continue;
        }
        if (el_redis_sub_poll(sub, 50, on_message, b) != EL_OK) {
            fprintf(stderr, "bus: subscription lost; reconnecting\n");
            el_redis_sub_close(sub);
            sub = NULL;
            atomic_store(&b->connected, 0);
        }
    }
    el_redis_sub_close(sub);
    el_redis_thread_cleanup(b->pub);
    return NULL;
}

int el_bus_start(const char *redis_url, struct el_redis *pub, const struct el_bus_handlers *h,
                 const struct el_bus_opts *opts, struct el_bus **out, struct el_err *err)
{
    struct el_redis_opts ro = {0};
    struct el_bus *b;
    unsigned char rnd[8];
    int rc;

    *out = NULL;
    if (redis_url == NULL || *redis_url == '\0' || pub == NULL)
        return EL_EDISABLED;
    b = calloc(1, sizeof(*b));
    if (b == NULL)
        return EL_ENOMEM;
    b->o.heartbeat_ms = opts && opts->heartbeat_ms > 0 ? opts->heartbeat_ms : 250;
    b->o.max_stale_ms = opts && opts->max_stale_ms > 0 ? opts->max_stale_ms : 1000;
    b->o.timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : 500;
    ro.timeout_ms = b->o.timeout_ms;
    rc = el_redis_new(redis_url, &ro, &b->sub_redis, err);
    if (rc != EL_OK) {
        free(b);
        return rc;
    }
    b->pub = pub;
    b->h = *h;
    if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
        uint64_t t = el_now_us() ^ (uint64_t)(uintptr_t)b;
        memcpy(rnd, &t, sizeof(rnd));
    }
    for (int i = 0; i < 8; i++)
        snprintf(b->id + 2 * i, 3, "%02x", rnd[i]);
    el_must(pthread_mutex_init(&b->pub_lock, NULL));
    el_must(pthread_mutex_init(&b->stop_lock, NULL));
    el_must(pthread_cond_init(&b->stop_cond, NULL));
    if (pthread_create(&b->thread, NULL, bus_main, b) != 0) {
        el_redis_free(b->sub_redis);
        free(b);
        return el_err_set(err, EL_ENOMEM, "cannot start the bus thread");
    }
    *out = b;
    return EL_OK;
}

void el_bus_stop(struct el_bus *b)
{
    if (b == NULL)
        return;
    el_must(pthread_mutex_lock(&b->stop_lock));
    b->stop = 1;
    el_must(pthread_cond_signal(&b->stop_cond));
    el_must(pthread_mutex_unlock(&b->stop_lock));
    pthread_join(b->thread, NULL);
    el_redis_free(b->sub_redis);
    pthread_mutex_destroy(&b->pub_lock);
    pthread_mutex_destroy(&b->stop_lock);
    pthread_cond_destroy(&b->stop_cond);
    free(b);
}
