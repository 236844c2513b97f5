/* main.c -- elearn-fcgi: start-up: options, configuration, the listening
 * socket, then the process wiring (app.c) and the pool.
 *
 *   elearn-fcgi [--env-file FILE] [--listen unix:PATH | HOST:PORT]
 *               [--check-config [--connect]]
 *
 * Without --listen the listening socket is the one systemd passed (socket
 * activation, fd 3; see listen.c), else fd 0, as spawn-fcgi (and most
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

#include <netdb.h>
#include <sys/un.h>

#include "app.h"
#include "config_check.h"
#include "doctor.h"
#include "http/forwarded.h"
#include "listen.h"
#include "obs/log.h"
#include "pool.h"
#include "version.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: elearn-fcgi [--env-file FILE] [--listen unix:PATH | HOST:PORT] "
               "[--check-config [--connect]]\n"
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

/* A listening socket for --listen: "unix:PATH" (a stale socket file is
 * replaced), or "HOST:PORT" / ":PORT" (every address). */
static int listen_on(const char *spec)
{
    const char *colon = strrchr(spec, ':');
    int fd, one = 1;

    if (strncmp(spec, "unix:", 5) == 0 || colon == NULL) {
        struct sockaddr_un sa;
        const char *path = strncmp(spec, "unix:", 5) == 0 ? spec + 5 : spec;

        memset(&sa, 0, sizeof(sa));
        sa.sun_family = AF_UNIX;
        if (*path == '\0' || strlen(path) >= sizeof(sa.sun_path)) {
            errno = ENAMETOOLONG;
            return -1;
        }
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -1;
        unlink(path);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 1024) != 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        return fd;
    } else {
        struct addrinfo hints, *ai = NULL;
        char host[256];
        size_t hl = (size_t)(colon - spec);
        int rc;

        if (hl >= sizeof(host)) {
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(host, spec, hl);
        host[hl] = '\0';
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE;
        rc = getaddrinfo(hl ? host : NULL, colon + 1, &hints, &ai);
        if (rc != 0) {
            fprintf(stderr, "elearn-fcgi: %s: %s\n", spec, gai_strerror(rc));
            errno = EINVAL;
            return -1;
        }
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
            bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
            int e = errno;
            if (fd >= 0)
                close(fd);
            freeaddrinfo(ai);
            errno = e;
            return -1;
        }
        freeaddrinfo(ai);
        return fd;
    }
}

static int open_listener(const char *spec)
{
    int fd;

    if (spec == NULL && (fd = el_listen_inherited()) != -1)
        return fd < 0 ? -1 : fd;
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
    fd = listen_on(spec);
    if (fd < 0)
        fprintf(stderr, "elearn-fcgi: cannot listen on %s: %s\n", spec, strerror(errno));
    return fd;
}

/* SIGHUP (logrotate's postrotate): reopen LOG_FILE; never fatal. */
static void on_hup(void)
{
    if (el_log_reopen() == EL_OK)
        fprintf(stderr, "elearn-fcgi: SIGHUP received, log reopened\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"env-file", required_argument, NULL, 'e'}, {"listen", required_argument, NULL, 'l'},
        {"check-config", no_argument, NULL, 'c'},   {"connect", no_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    const char *env_file = NULL, *listen_spec = NULL;
    static struct el_app app;
    struct el_err err = {0};
    struct el_pool_opts popts;
    char where[EL_CONFIG_STR];
    int opt, check = 0, connect = 0, rc;

    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'e':
            env_file = optarg;
            break;
        case 'l':
            listen_spec = optarg;
            break;
        case 'c':
            check = 1;
            break;
        case 'C':
            connect = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    if (el_config_load(&app.cfg, env_file, NULL, NULL, &err) != EL_OK ||
        el_app_config_check(&app.cfg, &err) != EL_OK) {
        fprintf(stderr, "elearn-fcgi: %s\n", err.msg);
        return 2;
    }
    if (check && connect)
        return el_doctor(&app.cfg);
    if (check) {
        printf("configuration OK\n");
        return 0;
    }
    el_app_identity(app.cfg.instance);
    if (el_log_open(app.cfg.log_file, app.cfg.access_log, &err) != EL_OK ||
        el_forwarded_setup(app.cfg.trusted_proxies, &err) != EL_OK) {
        fprintf(stderr, "elearn-fcgi: %s\n", err.msg);
        return 2;
    }

    /* Before any thread exists (libmongoc starts its own): every thread
     * inherits the mask, and only the pool's signalfd sees SIGTERM. */
    el_pool_block_signals();
    popts.listen_fd = open_listener(listen_spec);
    if (popts.listen_fd < 0)
        return 1;
    if (el_app_open(&app) != 0) {
        el_app_close(&app);
        return 1;
    }
    popts.workers = app.cfg.workers;
    popts.idle_timeout_s = app.cfg.idle_timeout_s;
    popts.request_timeout_s = app.cfg.request_timeout_s;
    popts.send_timeout_s = app.cfg.send_timeout_s;
    popts.event_threads = app.cfg.event_threads;
    popts.on_hup = on_hup;
    redis_where(app.cfg.redis_url, where, sizeof(where));
    fprintf(stderr,
            "elearn-fcgi: pid %d, instance %s, %d event threads, %d workers, store %s%s%s, "
            "L1 %zu bytes, L2 %s (%s)\n",
            (int)getpid(), app.cfg.instance, popts.event_threads, popts.workers,
            el_store_kind(app.store), strncmp(app.cfg.store_uri, "sqlite:", 7) == 0 ? " " : "",
            strncmp(app.cfg.store_uri, "sqlite:", 7) == 0 ? app.cfg.store_uri + 7 : "",
            app.cfg.l1_max_bytes, where,
            app.redis ? (el_redis_is_up(app.redis) ? "up" : "down") : "off");
    if (el_app_chores_start(&app) != EL_OK) {
        fprintf(stderr, "elearn-fcgi: cannot start the housekeeping thread\n");
        el_app_close(&app);
        return 1;
    }
    /* Warming goes through the caches like any request, within its budget
     * (a stop waits for it: keep CACHE_WARM_MS + DB_TIMEOUT_MS under 5 s). */
    if (app.cfg.cache_warm_ms > 0 && el_app_warm_start(&app, app.cfg.cache_warm_ms) != EL_OK)
        fprintf(stderr, "elearn-fcgi: warming skipped (out of memory)\n");
    rc = el_pool_run(&popts, &app);
    el_app_warm_wait(&app);
    el_app_chores_stop();
    el_app_close(&app);
    el_log_flush();
    fprintf(stderr, "elearn-fcgi: stopped\n");
    return rc == 0 ? 0 : 1;
}
