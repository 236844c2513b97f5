/* app.c -- the process wiring: struct el_app made from the configuration
 * (store, Redis, L1, the tiered caches, auth, the cache bus and its
 * handlers), the housekeeping thread, and the list-generation moves every
 * process shares. main.c starts the process and the pool serves requests;
 * everything long-lived they both reach is made and torn down here. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"

#include "auth/password.h"
#include "cache/cluster_stats.h"
#include "cache/key.h"
#include "obs/log.h"

/* ---- bus handlers: what other processes tell us ---------------------- */

static void on_key(void *arg, const char *key)
{
    struct el_app *app = arg;
    el_tiered_dropped(app->l1, key);
}

static void on_generation(void *arg, uint64_t gen)
{
    struct el_app *app = arg;
    uint64_t cur = atomic_load(&app->list_generation);

    /* Only forward: a late message must not bring old lists back. */
    while (cur < gen && !atomic_compare_exchange_weak(&app->list_generation, &cur, gen))
        ;
}

static void on_filled(void *arg, const char *key)
{
    EL_UNUSED(arg);
    el_tiered_filled(key);
}

static void on_revoked(void *arg, const char *id, int64_t expires_ms)
{
    struct el_app *app = arg;
    el_auth_revoked_heard(app->auth, id, expires_ms);
}

static void on_heard(void *arg, uint64_t silent_ms)
{
    struct el_app *app = arg;
    el_auth_bus_heard(app->auth, silent_ms);
}

static void on_reset(void *arg, const char *why)
{
    struct el_app *app = arg;
    int64_t gen;

    EL_UNUSED(why);
    el_tiered_dropped_all(app->l1);
    /* Generation messages may be among the lost: read the current one. */
    if (el_redis_get_int(app->redis, EL_KEY_LIST_GEN, &gen) == EL_OK && gen > 0)
        on_generation(app, (uint64_t)gen);
    el_app_lists_resync(app);
}

int el_app_open(struct el_app *app)
{
    struct el_auth_opts aopts = {0};
    struct el_err err = {0};
    struct el_redis_opts ropts = {0};
    struct el_tiered_opts copts = {0}, lopts = {0};
    int64_t gen = 0;
    int rc;

    el_store_set_timeout_ms(app->cfg.db_timeout_ms);
    if (el_store_open(app->cfg.store_uri, &app->store, &err) != EL_OK) {
        fprintf(stderr, "elearn-fcgi: DB_URI: %s\n", err.msg);
        return -1;
    }
    ropts.timeout_ms = app->cfg.redis_timeout_ms;
    rc = el_redis_new(app->cfg.redis_url, &ropts, &app->redis, &err);
    if (rc != EL_OK && rc != EL_EDISABLED) {
        fprintf(stderr, "elearn-fcgi: REDIS_URL: %s\n", err.msg);
        return -1;
    }
    app->l1 = el_l1_new(app->cfg.l1_max_bytes);
    copts.type = EL_TYPE_COURSE;
    copts.ttl_ms = (int64_t)app->cfg.course_ttl * 1000;
    copts.neg_ttl_ms = 30000;
    copts.neg_body = "{\"detail\":\"Course not found\"}";
    copts.max_stale_ms = app->cfg.l1_max_stale_ms;
    lopts.max_stale_ms = app->cfg.l1_max_stale_ms;
    lopts.type = EL_TYPE_COURSE_LIST;
    lopts.ttl_ms = (int64_t)app->cfg.course_list_ttl * 1000;
    app->courses = el_tiered_new(app->l1, app->redis, &copts);
    app->course_lists = el_tiered_new(app->l1, app->redis, &lopts);
    if (app->l1 == NULL || app->courses == NULL || app->course_lists == NULL) {
        fprintf(stderr, "elearn-fcgi: out of memory\n");
        return -1;
    }
    el_password_setup(NULL, 0);
    if (el_jwt_new(app->cfg.jwt_secret, &app->jwt) != EL_OK) {
        fprintf(stderr, "elearn-fcgi: JWT_SECRET: cannot set up token signing\n");
        return -1;
    }
    aopts.access_ttl_s = (int64_t)app->cfg.access_token_expire_minutes * 60;
    aopts.refresh_ttl_s = (int64_t)app->cfg.refresh_token_expire_days * 86400;
    app->auth = el_auth_new(app->jwt, app->store, app->redis, app->l1, &aopts);
    if (app->auth == NULL) {
        fprintf(stderr, "elearn-fcgi: out of memory\n");
        return -1;
    }
    if (app->redis) {
        struct el_bus_handlers h = {app,      on_key,     on_generation,         on_filled,
                                    on_reset, on_revoked, el_app_list_dim_heard, on_heard};
        struct el_bus_opts bo = {0};

        bo.max_stale_ms = app->cfg.l1_max_stale_ms;
        if (el_bus_start(app->cfg.redis_url, app->redis, &h, &bo, &app->bus, &err) != EL_OK) {
            fprintf(stderr, "elearn-fcgi: cannot start the cache bus: %s\n", err.msg);
            return -1;
        }
        el_tiered_set_bus(app->courses, app->bus);
        el_tiered_set_bus(app->course_lists, app->bus);
        el_auth_set_bus(app->auth, app->bus);
    }
    el_auth_warm(app->auth, 1000);
    /* Start from the shared list generation so every process reads the same
     * list keys; 0 when Redis has none (or is down). */
    if (el_redis_get_int(app->redis, EL_KEY_LIST_GEN, &gen) != EL_OK || gen < 0)
        gen = 0;
    atomic_store(&app->list_generation, (uint64_t)gen);
    return el_app_lists_open(app);
}

void el_app_close(struct el_app *app)
{
    el_bus_stop(app->bus); /* first: its handlers use the caches */
    el_auth_free(app->auth);
    el_jwt_free(app->jwt);
    el_tiered_free(app->courses);
    el_tiered_free(app->course_lists);
    el_app_lists_close(app);
    el_l1_free(app->l1);
    el_redis_free(app->redis);
    el_store_close(app->store);
}

/* Housekeeping every 250 ms, off the request path (el_auth_tick: put Redis
 * back in step after an outage that lost a revocation write). */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stop;
} chores = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

static void *chores_main(void *arg)
{
    struct el_app *app = arg;
    struct timespec ts;
    uint64_t last_flush = el_now_ms();

    pthread_mutex_lock(&chores.lock);
    while (!chores.stop) {
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&chores.cond, &chores.lock, &ts);
        if (chores.stop)
            break;
        pthread_mutex_unlock(&chores.lock);
        el_auth_tick(app->auth);
        /* The epoch moves only after the stale summaries it stands for
         * are out of Redis: a page assembled in between is stamped old. */
        if (el_tiered_replay(app->redis, app->bus) == 0)
            el_app_lists_share_epoch(app);
        el_app_share_generation(app);
        el_log_flush(); /* access lines reach the log within 250 ms */
        /* Counters reach the cluster view once a second, never per hit. */
        if (el_now_ms() - last_flush >= 1000) {
            el_cluster_stats_flush(app->redis);
            last_flush = el_now_ms();
        }
        pthread_mutex_lock(&chores.lock);
    }
    pthread_mutex_unlock(&chores.lock);
    el_cluster_stats_flush(app->redis);
    el_redis_thread_cleanup(app->redis);
    el_store_thread_cleanup(app->store);
    return NULL;
}

static pthread_t chores_thread;

int el_app_chores_start(struct el_app *app)
{
    return pthread_create(&chores_thread, NULL, chores_main, app) == 0 ? EL_OK : EL_ENOMEM;
}

void el_app_chores_stop(void)
{
    pthread_mutex_lock(&chores.lock);
    chores.stop = 1;
    pthread_cond_signal(&chores.cond);
    pthread_mutex_unlock(&chores.lock);
    pthread_join(chores_thread, NULL);
}

/* ---- list generations and invalidation ---------------------------------
 *
 * Every write goes to the store first; only after it succeeds are the
 * affected cache entries replaced or dropped and the list generation moved
 * (app/courses.c), so a cache never holds something the store does not. */

void el_app_bump_lists(struct el_app *app)
{
    int64_t gen;
    uint64_t cur = atomic_load(&app->list_generation), want;

    /* Redis holds the shared number; without it, count locally (other
     * processes then learn nothing until they see the gap or a reset). */
    if (el_redis_incr(app->redis, EL_KEY_LIST_GEN, &gen) == EL_OK && gen > 0) {
        want = (uint64_t)gen > cur ? (uint64_t)gen : cur + 1;
    } else {
        want = cur + 1;
        if (app->redis)
            atomic_store(&app->gen_unshared, 1); /* el_app_share_generation */
    }
    /* Never move backwards: a Redis that restarted empty counts from 1. */
    while (cur < want && !atomic_compare_exchange_weak(&app->list_generation, &cur, want))
        ;
    if (el_bus_publish_generation(app->bus, want) != EL_OK && app->bus)
        fprintf(stderr, "courses: list generation %llu not announced; peers will see a gap\n",
                (unsigned long long)want);
}

void el_app_share_generation(struct el_app *app)
{
    uint64_t cur = atomic_load(&app->list_generation);
    int64_t gen;
    char v[24];
    int n;

    if (!atomic_load(&app->gen_unshared) || !el_redis_is_up(app->redis))
        return;
    /* Redis must end at least at our number, or lists cached under the
     * generations in between would be read again by other processes. */
    if (el_redis_incr(app->redis, EL_KEY_LIST_GEN, &gen) != EL_OK)
        return;
    if ((uint64_t)gen < cur) {
        n = snprintf(v, sizeof(v), "%llu", (unsigned long long)cur);
        if (el_redis_set(app->redis, EL_KEY_LIST_GEN, v, (size_t)n, 0) != EL_OK)
            return;
        gen = (int64_t)cur;
    }
    if (el_bus_publish_generation(app->bus, (uint64_t)gen) == EL_OK)
        atomic_store(&app->gen_unshared, 0);
}

void el_app_invalidate_course(struct el_app *app, const char *id)
{
    char key[EL_KEY_MAX];

    el_key_course(key, sizeof(key), id);
    el_bus_batch_begin(app->bus); /* one announcement for all of it */
    el_tiered_invalidate(app->courses, key);
    el_app_summary_invalidate(app, id);
    el_app_bump_lists(app);
    el_app_announced(app);
}

void el_app_announced(struct el_app *app)
{
    if (el_bus_batch_end(app->bus) != EL_OK && app->bus)
        fprintf(stderr, "courses: a write was not announced; peers will see a gap\n");
}
