/* main.c -- elearn-fcgi: start-up, configuration, the cache layers, and the
 * pool.
 *
 *   elearn-fcgi [--env-file FILE] [--listen unix:PATH | HOST:PORT]
 *               [--check-config]
 *
 * Without --listen the listening socket is fd 0, as spawn-fcgi (and most
 * FastCGI process managers) pass it. A configuration error is one line on
 * stderr naming the variable, and exit status 2. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "app.h"
#include "auth/password.h"
#include "cache/key.h"
#include "pool.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: elearn-fcgi [--env-file FILE] [--listen unix:PATH | HOST:PORT] "
               "[--check-config]\n"
               "\n"
               "Without --listen, fd 0 must be a listening socket (spawn-fcgi).\n"
               "Configuration comes from the environment and FILE; see README.md.\n");
}

/* Where Redis lives, without the password, for the start-up log. */
static void redis_where(const char *url, char *out, size_t n)
{
    const char *at = strchr(url, '@');

    if (*url == '\0')
        snprintf(out, n, "disabled");
    else if (at)
        snprintf(out, n, "redis://***@%s", at + 1);
    else
        snprintf(out, n, "%s", url);
}

static int open_listener(const char *spec)
{
    int fd;

    if (spec == NULL) {
        int on = 0;
        socklen_t len = sizeof(on);
        if (getsockopt(0, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) != 0 || !on) {
            fprintf(stderr, "elearn-fcgi: fd 0 is not a listening socket "
                            "(run under spawn-fcgi, or pass --listen)\n");
            return -1;
        }
        return 0;
    }
    if (strncmp(spec, "unix:", 5) == 0)
        spec += 5;
    fd = FCGX_OpenSocket(spec, 1024);
    if (fd < 0)
        fprintf(stderr, "elearn-fcgi: cannot listen on %s: %s\n", spec, strerror(errno));
    return fd;
}

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

static int app_open(struct el_app *app)
{
    struct el_auth_opts aopts = {0};
    struct el_err err = {0};
    struct el_redis_opts ropts = {0};
    struct el_tiered_opts copts = {0}, lopts = {0};
    int64_t gen = 0;
    int rc;

    el_store_set_timeout_ms(app->cfg.db_timeout_ms);
    if (el_store_open(app->cfg.db_uri, &app->store, &err) != EL_OK) {
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
        struct el_bus_handlers h = {app, on_key, on_generation, on_filled, on_reset,
                                    el_app_list_dim_heard};
        struct el_bus_opts bo = {0};

        bo.max_stale_ms = app->cfg.l1_max_stale_ms;
        if (el_bus_start(app->cfg.redis_url, app->redis, &h, &bo, &app->bus, &err) != EL_OK) {
            fprintf(stderr, "elearn-fcgi: cannot start the cache bus: %s\n", err.msg);
            return -1;
        }
        el_tiered_set_bus(app->courses, app->bus);
        el_tiered_set_bus(app->course_lists, app->bus);
    }
    /* Start from the shared list generation so every process reads the same
     * list keys; 0 when Redis has none (or is down). */
    if (el_redis_get_int(app->redis, EL_KEY_LIST_GEN, &gen) != EL_OK || gen < 0)
        gen = 0;
    atomic_store(&app->list_generation, (uint64_t)gen);
    return el_app_lists_open(app);
}

static void app_close(struct el_app *app)
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
        el_tiered_replay(app->redis, app->bus);
        el_app_share_generation(app);
        /* Counters reach the cluster view once a second, never per hit. */
        if (el_now_ms() - last_flush >= 1000) {
            el_stats_flush(app->redis);
            last_flush = el_now_ms();
        }
        pthread_mutex_lock(&chores.lock);
    }
    pthread_mutex_unlock(&chores.lock);
    el_stats_flush(app->redis);
    el_redis_thread_cleanup(app->redis);
    el_store_thread_cleanup(app->store);
    return NULL;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"env-file", required_argument, NULL, 'e'},
        {"listen", required_argument, NULL, 'l'},
        {"check-config", no_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *env_file = NULL, *listen_spec = NULL;
    static struct el_app app;
    struct el_err err = {0};
    struct el_pool_opts popts;
    char where[EL_CONFIG_STR];
    pthread_t chores_thread;
    int opt, check = 0, rc;

    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'e': env_file = optarg; break;
        case 'l': listen_spec = optarg; break;
        case 'c': check = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    if (el_config_load(&app.cfg, env_file, NULL, NULL, &err) != EL_OK) {
        fprintf(stderr, "elearn-fcgi: %s\n", err.msg);
        return 2;
    }
    if (check) {
        printf("configuration OK\n");
        return 0;
    }

    /* Before any thread exists (libmongoc starts its own): every thread
     * inherits the mask, and only the pool's signalfd sees SIGTERM. */
    el_pool_block_signals();
    if (FCGX_Init() != 0) {
        fprintf(stderr, "elearn-fcgi: FCGX_Init failed\n");
        return 1;
    }
    popts.listen_fd = open_listener(listen_spec);
    if (popts.listen_fd < 0)
        return 1;
    if (app_open(&app) != 0) {
        app_close(&app);
        return 1;
    }
    popts.workers = app.cfg.workers;
    popts.idle_timeout_s = app.cfg.idle_timeout_s;
    redis_where(app.cfg.redis_url, where, sizeof(where));
    fprintf(stderr,
            "elearn-fcgi: pid %d, %d workers, store %s, L1 %zu bytes, L2 %s (%s)\n",
            (int)getpid(), popts.workers, el_store_kind(app.store), app.cfg.l1_max_bytes, where,
            app.redis ? (el_redis_is_up(app.redis) ? "up" : "down") : "off");
    if (pthread_create(&chores_thread, NULL, chores_main, &app) != 0) {
        fprintf(stderr, "elearn-fcgi: cannot start the housekeeping thread\n");
        app_close(&app);
        return 1;
    }
    /* Warming goes through the caches like any request, within its budget
     * (a stop waits for it: keep CACHE_WARM_MS + DB_TIMEOUT_MS under 5 s). */
    if (app.cfg.cache_warm_ms > 0 && el_app_warm_start(&app, app.cfg.cache_warm_ms) != EL_OK)
        fprintf(stderr, "elearn-fcgi: warming skipped (out of memory)\n");
    rc = el_pool_run(&popts, &app);
    el_app_warm_wait(&app);
    pthread_mutex_lock(&chores.lock);
    chores.stop = 1;
    pthread_cond_signal(&chores.cond);
    pthread_mutex_unlock(&chores.lock);
    pthread_join(chores_thread, NULL);
    app_close(&app);
    fprintf(stderr, "elearn-fcgi: stopped\n");
    return rc == 0 ? 0 : 1;
}
