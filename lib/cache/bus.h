/* bus.h -- cross-process cache coherence over one Redis pub/sub channel.
 *
 * Every responder process publishes what it changes -- a cache key to drop,
 * a new course-list generation, a key it has just filled in Redis -- and
 * hears everyone else's. Near caches built on pub/sub (Redisson, JetCache,
 * J2Cache) go silently stale when a message is lost; here a loss is always
 * detected:
 *
 *  - Each message carries its publisher's id and a sequence number. A
 *    publisher numbers and sends its messages under one lock, one at a time,
 *    so they reach Redis in sequence order. A subscriber that sees a
 *    publisher's sequence jump (a message lost, e.g. a PUBLISH that failed
 *    while Redis was down) drops its whole L1 at once: it cannot know which
 *    keys were affected. A publisher whose PUBLISH failed also says so in
 *    its next message that gets through ("I lost messages"), so even a
 *    subscriber that joined after the lost ones -- and so cannot see the
 *    gap -- drops its L1.
 *  - One process publishes a heartbeat every heartbeat_ms: the holder of a
 *    short Redis lease (EL_BUS_BEAT_KEY, 2 x heartbeat_ms), which every
 *    process tries to take or renew each heartbeat_ms -- so heartbeat
 *    deliveries grow with N, not N^2 (each process used to publish its own
 *    to all the others). A holder that dies is replaced within about
 *    3 x heartbeat_ms, under max_stale_ms. A process that has heard nothing
 *    -- not even the heartbeat -- for max_stale_ms knows the channel is
 *    down and must not trust its L1 unverified (el_bus_fresh).
 *  - When the subscriber connects or reconnects, L1 is dropped before it is
 *    trusted again: invalidations sent while it was away are gone.
 *  - Every silence is reported (the heard handler) when the channel is
 *    heard again: a publisher whose PUBLISH failed during a silence (Redis
 *    hung) can say so only once its own PUBLISH gets through, which may be
 *    after others' heartbeats -- state that must never miss a message
 *    (auth's local revocation set) is reloaded after a long one.
 *
 * Why pub/sub and not a Redis Stream or CLIENT TRACKING: a stream persists
 * messages (a reconnecting reader could replay), but needs trimming and a
 * read per consumer, and hiredis 0.14 speaks only RESP2, so CLIENT TRACKING
 * would need the redirect mode with its own connection and still has no
 * loss detection. Pub/sub is one PUBLISH per change, sequence numbers make
 * loss visible, and dropping L1 on a gap is cheap (L2 still holds the data).
 *
 * One subscriber thread per process owns the subscription connection (a
 * hiredis context, polled with a timeout so stop is prompt). Handlers are
 * called from that thread. */
#ifndef EL_BUS_H
#define EL_BUS_H

#include <stdint.h>

#include "core/el.h"
#include "cache/redis.h"

#define EL_BUS_CHANNEL "elearn:cache"
#define EL_BUS_BEAT_KEY "elearn:cache:beat" /* the heartbeat lease */

struct el_bus;

struct el_bus_handlers {
    void *arg;
    /* Another process changed key: drop it from L1. */
    void (*key)(void *arg, const char *key);
    /* Another process moved the course-list generation to gen. */
    void (*generation)(void *arg, uint64_t gen);
    /* A process filled key in Redis (cluster-wide single flight). */
    void (*filled)(void *arg, const char *key);
    /* Messages may have been lost (gap, reconnect): drop all of L1. */
    void (*reset)(void *arg, const char *why);
    /* Another process revoked id (a token's jti or a login's sid) until
     * expires_ms (auth's local revocation set). May be NULL. */
    void (*revoked)(void *arg, const char *id, int64_t expires_ms);
    /* Another process moved list-generation dimension dim (> 0) to gen
     * (app/lists.c). May be NULL. */
    void (*list_dim)(void *arg, int dim, uint64_t gen);
    /* The channel is heard again after silent_ms without a message; called
     * before the message is applied and before el_bus_last_heard_ms moves,
     * so state the handler resets is reset for whoever sees the channel
     * heard again. May be NULL. */
    void (*heard)(void *arg, uint64_t silent_ms);
};

struct el_bus_opts {
    int heartbeat_ms; /* default 250 */
    int max_stale_ms; /* L1_MAX_STALE; default 1000 */
    int timeout_ms;   /* connect timeout of the subscriber; default 500 */
};

/* Parse redis_url like el_redis_new and start the subscriber thread.
 * Publishing goes through pub (the process's Redis handle). The handlers
 * struct is copied. EL_EDISABLED with *out NULL when redis_url is empty. */
int el_bus_start(const char *redis_url, struct el_redis *pub, const struct el_bus_handlers *h,
                 const struct el_bus_opts *opts, struct el_bus **out, struct el_err *err) EL_WUR;

/* Stop the thread and free the bus. NULL is a no-op. */
void el_bus_stop(struct el_bus *b);

/* Publish an invalidation / a generation / a fill. Best effort: a message
 * that cannot be sent still uses up its sequence number, so the others see
 * the gap when this process is heard again. NULL bus: EL_EDISABLED. */
int el_bus_publish_key(struct el_bus *b, const char *key);
int el_bus_publish_generation(struct el_bus *b, uint64_t gen);
int el_bus_publish_filled(struct el_bus *b, const char *key);
/* A list-generation dimension (dim > 0; dimension 0 is the generation of
 * el_bus_publish_generation): "G <gen> <dim>". */
int el_bus_publish_list_dim(struct el_bus *b, int dim, uint64_t gen);

/* Batch this thread's messages on b until the matching el_bus_batch_end:
 * then they go out as one message (a write's invalidations and generation
 * announcements: one message per write, not one per key). Nests; the parts
 * are applied by the others in order, as if sent one by one. Heartbeats are
 * never batched. el_bus_batch_end returns the send's status (EL_OK when
 * there was nothing to send). */
void el_bus_batch_begin(struct el_bus *b);
int el_bus_batch_end(struct el_bus *b);
int el_bus_publish_revoked(struct el_bus *b, const char *id, int64_t expires_ms);

/* Publish one "drop key" message through r as a publisher of its own (a
 * new id, sequence 1), for a program that runs no bus (elearnctl). */
int el_bus_publish_key_once(struct el_redis *r, const char *key);

/* How many times this process has dropped its L1 because messages may have
 * been lost (gaps, reconnects, lost publishes) -- one atomic load. State
 * kept current by the bus is trustworthy only while this has not moved
 * since it was loaded (and el_bus_fresh holds). A NULL bus: 0. */
uint64_t el_bus_resets(struct el_bus *b);

/* When the channel was last heard (el_now_ms clock; 0: never), and 1 while
 * the subscription is connected. One atomic load each; NULL bus: 0. */
uint64_t el_bus_last_heard_ms(struct el_bus *b);
int el_bus_connected(struct el_bus *b);

/* 1 when the channel was heard within max_stale_ms of now_ms (L1 may be
 * served unverified), else 0. A NULL bus (single process, no Redis) is
 * always fresh: there is nobody else to hear from. */
int el_bus_fresh(struct el_bus *b, uint64_t now_ms);

/* Counters for stats: messages heard, gaps detected, resets. */
struct el_bus_stats {
    uint64_t received, gaps, resets, published, publish_failures;
    uint64_t heartbeats; /* heartbeats this process published */
    int connected;
};
void el_bus_stats(struct el_bus *b, struct el_bus_stats *out);

#endif /* EL_BUS_H */
