/* app.h -- the process-wide state every handler reaches through req->app:
 * configuration and the cache layers, made once at start-up in app.c and
 * shared read-only by the worker threads (each layer is thread-safe). */
#ifndef EL_APP_H
#define EL_APP_H

#include <stdatomic.h>
#include <stdint.h>

#include "auth/auth.h"
#include "cache/bus.h"
#include "core/config.h"
#include "auth/jwt.h"
#include "cache/l1.h"
#include "cache/redis.h"
#include "store/store.h"
#include "cache/tiered.h"

/* List-generation dimensions; members is app->list_generation. */
enum {
    EL_LIST_DIM_MEMBERS,
    EL_LIST_DIM_SEARCH,
    EL_LIST_DIM_POPULAR,
    EL_LIST_DIM_TOP_RATED,
    EL_LIST_DIM_DURATION,
    EL_LIST_DIMS
};

struct el_list_memo;

struct el_app {
    struct el_config cfg;
    struct el_store *store;
    struct el_redis *redis;                       /* NULL when L2 is disabled */
    struct el_l1 *l1;                             /* disabled (not NULL) when L1_MAX_BYTES=0 */
    struct el_tiered *courses;                    /* course:{id} */
    struct el_tiered *course_lists;               /* courses_ids:{gens}:{digest} (app/lists.c) */
    struct el_tiered *summaries;                  /* course_summary:{id} (app/lists.c) */
    struct el_list_memo *list_memo;               /* assembled pages (app/lists.c) */
    atomic_uint_fast64_t list_generation;         /* see EL_KEY_LIST_GEN: the members dimension */
    atomic_uint_fast64_t list_gens[EL_LIST_DIMS]; /* the others (EL_LIST_DIM_*) */
    struct el_jwt *jwt;
    struct el_auth *auth;
    struct el_bus *bus;            /* NULL when L2 is disabled */
    void *warm;                    /* app/warm.c's thread, while it runs */
    atomic_int gen_unshared;       /* a generation bump missed Redis */
    atomic_int summary_epoch_owed; /* a summaries epoch move missed Redis (lists.c) */
};

/* Make every layer from app->cfg (app.c): store, Redis, L1, the tiered
 * caches, auth, and the cache bus with its handlers. Returns 0, or -1 with
 * one line on stderr; el_app_close() then frees what was made. */
int el_app_open(struct el_app *app);
void el_app_close(struct el_app *app);

/* The housekeeping thread (every 250 ms: auth tick, Redis replays, list
 * generation sharing, counters to the cluster view once a second). */
int el_app_chores_start(struct el_app *app);
void el_app_chores_stop(void);

/* Read one course / one list page through the cache layers (what the GET
 * handlers and warming use). 0 with *out a reference, or a store error. */
int el_app_course_read(struct el_app *app, const char *id, struct el_blob **out,
                       enum el_layer *layer);
int el_app_list_read(struct el_app *app, const struct el_course_query *q, struct el_blob **out,
                     enum el_layer *layer);

/* ---- the list cache (app/lists.c) ---- */

/* What a write changed, as far as lists can tell (el_app_lists_changed). */
enum {
    EL_LISTS_MEMBERS = 1 << 0,   /* a course created or deleted; a filter field */
    EL_LISTS_SEARCH = 1 << 1,    /* title, description, tags */
    EL_LISTS_POPULAR = 1 << 2,   /* enrollment_count */
    EL_LISTS_TOP_RATED = 1 << 3, /* rating */
    EL_LISTS_DURATION = 1 << 4,  /* duration_minutes */
};

/* After a write: move the list generations it can affect (see lists.c). */
void el_app_lists_changed(struct el_app *app, unsigned what);
/* After a write: cache course c's summary as written (its revision) / a
 * deleted course's tombstone / drop it (admin invalidation). */
void el_app_summary_written(struct el_app *app, const struct el_course *c);
void el_app_summary_deleted(struct el_app *app, const char *id);
void el_app_summary_invalidate(struct el_app *app, const char *id);
/* Start-up (after the bus), shutdown, and after a bus reset: re-read the
 * dimensions' generations from Redis. */
int el_app_lists_open(struct el_app *app);
void el_app_lists_close(struct el_app *app);
void el_app_lists_resync(struct el_app *app);
/* A list page from L1 alone, without blocking (the try-fast path on an
 * event thread): its ids page and every item's summary in L1 and trusted,
 * or NULL. Counted as an L1 hit. */
struct el_blob *el_app_list_peek(struct el_app *app, const struct el_course_query *q);

/* How many list answers came from the memo of assembled pages (lists.c). */
uint64_t el_app_list_memo_hits(struct el_app *app);
/* End a write's batch of bus announcements (el_bus_batch_begin): they go
 * out as one message; a failure is logged (the others see the gap). */
void el_app_announced(struct el_app *app);
/* Bus handler (el_bus_handlers.list_dim); arg is the app. */
void el_app_list_dim_heard(void *arg, int dim, uint64_t gen);

/* Warm the caches in the background (app/warm.c): the first page of the
 * recent, popular and top_rated lists and every course on them, within
 * budget_ms; logs what it did. Returns at once; el_app_warm_wait joins. */
int el_app_warm_start(struct el_app *app, int budget_ms);
void el_app_warm_wait(struct el_app *app);

/* After a write that changes what course lists show: move to a new list
 * generation (shared through Redis when it is up), so every cached list is
 * bypassed at once -- O(1), no SCAN (app/app.c). */
void el_app_bump_lists(struct el_app *app);

/* Housekeeping: a list-generation bump that could not reach Redis is
 * pushed there (and announced) once Redis answers. */
void el_app_share_generation(struct el_app *app);
/* Housekeeping, once el_tiered_replay has nothing left: a move of the
 * summaries epoch that could not reach Redis is made (app/lists.c). */
void el_app_lists_share_epoch(struct el_app *app);

/* Drop course id from every layer of every process (L1 here and, through
 * the bus, everywhere; Redis) and move the list generation
 * (DELETE /cache/invalidate/{id}; app/app.c). id is validated hex. */
void el_app_invalidate_course(struct el_app *app, const char *id);

#endif /* EL_APP_H */
