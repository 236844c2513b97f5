/* pool.c -- epoll front + worker threads (see pool.h for the why).
 *
 * Ownership of a connection moves between exactly two places: the
 * dispatcher (idle list + epoll set, EPOLLONESHOT) and one worker (work
 * queue -> el_worker_serve -> return queue). Only the dispatcher touches the
 * idle list and the epoll registrations, so they need no lock; the two
 * queues are the only shared state. Workers wake the dispatcher through an
 * eventfd when they hand a connection back. */
#include "pool.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "app.h"
#include "core/el.h"
#include "obs/log.h"
#include "request.h"

struct conn {
    int fd;
    uint64_t idle_since; /* ms, while idle */
    struct conn *prev, *next; /* idle list, dispatcher only */
    struct conn *qnext;       /* work or return queue */
};

struct queue {
    pthread_mutex_t lock;
    struct conn *head, *tail;
};

/* An idle worker waits on its own condition variable, on a stack: the
 * dispatcher wakes the worker that went idle last, whose stack and caches
 * are still warm, instead of cycling through every thread (a shared
 * condition variable wakes them in turn, which measurably slows L1 hits
 * with many workers on few cores). */
struct worker {
    pthread_cond_t cond;
    struct worker *next_idle;
    int idle;              /* on the idle stack; under work.lock */
    struct pool *pool;
};

/* After SIGTERM, how long kept-alive connections are still served while the
 * web server closes them (see el_pool_run). */
#define DRAIN_MS 4000

struct pool {
    const struct el_pool_opts *opts;
    struct el_app *app;
    int epfd, sigfd, evfd;
    struct queue work, done;
    int stopping;          /* under work.lock */
    struct worker *idle_top; /* under work.lock */
    struct conn idle;      /* sentinel of the idle list, oldest first */
    int nidle;
    int nbusy;             /* connections handed to workers; dispatcher only */
};

/* Tags for the non-connection fds in epoll_event.data.ptr. */
static char tag_listen, tag_signal, tag_event;

static void must(int rc)
{
    if (rc != 0)
        abort();
}

void el_pool_block_signals(void)
{
    sigset_t set;

    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP); /* reopen the log, never die (logrotate) */
    must(pthread_sigmask(SIG_BLOCK, &set, NULL));
}

static void queue_push(struct queue *q, struct conn *c)
{
    c->qnext = NULL;
    if (q->tail)
        q->tail->qnext = c;
    else
        q->head = c;
    q->tail = c;
}

static struct conn *queue_pop(struct queue *q)
{
    struct conn *c = q->head;

    if (c) {
        q->head = c->qnext;
        if (q->head == NULL)
            q->tail = NULL;
    }
    return c;
}

static void idle_unlink(struct pool *p, struct conn *c)
{
    c->prev->next = c->next;
    c->next->prev = c->prev;
    c->prev = c->next = NULL;
    p->nidle--;
}

static void idle_append(struct pool *p, struct conn *c)
{
    c->idle_since = el_now_ms();
    c->prev = p->idle.prev;
    c->next = &p->idle;
    p->idle.prev->next = c;
    p->idle.prev = c;
    p->nidle++;
}

static void conn_close(struct pool *p, struct conn *c)
{
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

/* Park c until it is readable. */
static int conn_arm(struct pool *p, struct conn *c, int op)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT, .data.ptr = c};

    if (epoll_ctl(p->epfd, op, c->fd, &ev) != 0)
        return -1;
    idle_append(p, c);
    return 0;
}

/* Wake the most recently idle worker, if any. Called with work.lock held. */
static void wake_one(struct pool *p)
{
    struct worker *wk = p->idle_top;

    if (wk) {
        p->idle_top = wk->next_idle;
        wk->idle = 0;
        must(pthread_cond_signal(&wk->cond));
    }
}

static void *worker_main(void *arg)
{
    struct worker *self = arg;
    struct pool *p = self->pool;
    struct el_worker *w = el_worker_new();
    struct conn *c;
    uint64_t one = 1;

    if (w == NULL) {
        fprintf(stderr, "elearn-fcgi: out of memory starting a worker\n");
        abort();
    }
    for (;;) {
        must(pthread_mutex_lock(&p->work.lock));
        while ((c = queue_pop(&p->work)) == NULL && !p->stopping) {
            if (!self->idle) {
                self->idle = 1;
                self->next_idle = p->idle_top;
                p->idle_top = self;
            }
            must(pthread_cond_wait(&self->cond, &p->work.lock));
        }
        if (c && p->work.head)
            wake_one(p); /* more queued than we take: pass it on */
        must(pthread_mutex_unlock(&p->work.lock));
        if (c == NULL)
            break; /* stopping and nothing left to serve */

        if (!el_worker_serve(w, c->fd, p->app))
            c->fd = -1;
        must(pthread_mutex_lock(&p->done.lock));
        queue_push(&p->done, c);
        must(pthread_mutex_unlock(&p->done.lock));
        if (write(p->evfd, &one, sizeof(one)) != sizeof(one))
            abort(); /* an eventfd write only fails on overflow */
    }
    el_worker_free(w);
    el_redis_thread_cleanup(p->app->redis);
    el_store_thread_cleanup(p->app->store);
    return NULL;
}

static void accept_all(struct pool *p)
{
    for (;;) {
        int fd = accept4(p->opts->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        struct conn *c;

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                fprintf(stderr, "elearn-fcgi: accept: %s\n", strerror(errno));
            return;
        }
        c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        if (conn_arm(p, c, EPOLL_CTL_ADD) != 0) {
            close(fd);
            free(c);
        }
    }
}

/* Take back the connections workers have finished with. */
static void reap_done(struct pool *p, int stopping)
{
    struct conn *c, *list;
    uint64_t n;

    if (read(p->evfd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        fprintf(stderr, "elearn-fcgi: eventfd: %s\n", strerror(errno));
    must(pthread_mutex_lock(&p->done.lock));
    list = p->done.head;
    p->done.head = p->done.tail = NULL;
    must(pthread_mutex_unlock(&p->done.lock));
    while ((c = list) != NULL) {
        list = c->qnext;
        p->nbusy--;
        if (c->fd < 0) {
            free(c);
        } else if (stopping || conn_arm(p, c, EPOLL_CTL_MOD) != 0) {
            conn_close(p, c);
        }
    }
}

static void dispatch(struct pool *p, struct conn *c, uint32_t events)
{
    char b;

    idle_unlink(p, c);
    /* A peer that closed an idle connection: tidy up here rather than wake
     * a worker for it. */
    if ((events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) &&
        recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) <= 0) {
        conn_close(p, c);
        return;
    }
    must(pthread_mutex_lock(&p->work.lock));
    queue_push(&p->work, c);
    wake_one(p);
    must(pthread_mutex_unlock(&p->work.lock));
    p->nbusy++;
}

static void sweep_idle(struct pool *p)
{
    uint64_t now = el_now_ms(), limit = (uint64_t)p->opts->idle_timeout_s * 1000u;

    while (p->idle.next != &p->idle && now - p->idle.next->idle_since >= limit) {
        struct conn *c = p->idle.next;
        idle_unlink(p, c);
        conn_close(p, c);
    }
}

static int add_fd(struct pool *p, int fd, void *tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = tag};

    return epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev);
}

int el_pool_run(const struct el_pool_opts *opts, struct el_app *app)
{
    struct pool p;
    pthread_t *threads;
    struct worker *workers;
    sigset_t set;
    int i, started = 0, rc = -1, running = 1, draining = 0, listening = 1;
    uint64_t drain_until = 0;

    memset(&p, 0, sizeof(p));
    p.opts = opts;
    p.app = app;
    p.idle.next = p.idle.prev = &p.idle;
    must(pthread_mutex_init(&p.work.lock, NULL));
    must(pthread_mutex_init(&p.done.lock, NULL));
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);

    threads = calloc((size_t)opts->workers, sizeof(*threads));
    workers = calloc((size_t)opts->workers, sizeof(*workers));
    p.epfd = epoll_create1(EPOLL_CLOEXEC);
    p.sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    p.evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (threads == NULL || workers == NULL || p.epfd < 0 || p.sigfd < 0 || p.evfd < 0 ||
        fcntl(opts->listen_fd, F_SETFL, fcntl(opts->listen_fd, F_GETFL) | O_NONBLOCK) != 0 ||
        add_fd(&p, opts->listen_fd, &tag_listen) != 0 || add_fd(&p, p.sigfd, &tag_signal) != 0 ||
        add_fd(&p, p.evfd, &tag_event) != 0) {
        fprintf(stderr, "elearn-fcgi: cannot start the pool: %s\n", strerror(errno));
        goto out;
    }
    for (i = 0; i < opts->workers; i++) {
        workers[i].pool = &p;
        must(pthread_cond_init(&workers[i].cond, NULL));
        if (pthread_create(&threads[i], NULL, worker_main, &workers[i]) != 0) {
            fprintf(stderr, "elearn-fcgi: cannot start worker %d: %s\n", i, strerror(errno));
            break;
        }
        started++;
    }
    if (started == opts->workers)
        rc = 0;
    else
        running = 0;

    while (running) {
        struct epoll_event evs[64];
        int n = epoll_wait(p.epfd, evs, 64, draining ? 50 : 1000);

        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "elearn-fcgi: epoll_wait: %s\n", strerror(errno));
            rc = -1;
            break;
        }
        for (i = 0; i < n; i++) {
            void *tag = evs[i].data.ptr;
            if (tag == &tag_listen) {
                accept_all(&p);
            } else if (tag == &tag_signal) {
                struct signalfd_siginfo si = {0};
                if (read(p.sigfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == SIGHUP) {
                    if (el_log_reopen() == EL_OK)
                        fprintf(stderr, "elearn-fcgi: SIGHUP received, log reopened\n");
                } else if ((si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) && !draining) {
                    /* Stop accepting: new connections wait in the listening
                     * socket's backlog for the next process when systemd
                     * holds it (socket activation), or are refused. Keep
                     * serving the kept-alive connections until the web
                     * server closes them (nginx: keepalive_time), because
                     * only it knows when it will not write another request
                     * into one: closing an idle connection ourselves races
                     * with a request being written into it, and nginx does
                     * not retry a POST that met a closed connection. */
                    fprintf(stderr, "elearn-fcgi: %s received, draining\n",
                            si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
                    epoll_ctl(p.epfd, EPOLL_CTL_DEL, opts->listen_fd, NULL);
                    close(opts->listen_fd);
                    listening = 0;
                    draining = 1;
                    drain_until = el_now_ms() + DRAIN_MS;
                } else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
                    running = 0; /* a second one: stop now */
                }
            } else if (tag == &tag_event) {
                reap_done(&p, 0);
            } else {
                dispatch(&p, tag, evs[i].events);
            }
        }
        sweep_idle(&p);
        /* Drained: the web server closed every connection, or time is up
         * (then the idle ones are closed below). */
        if (draining && ((p.nidle == 0 && p.nbusy == 0) || el_now_ms() >= drain_until)) {
            if (p.nidle > 0 || p.nbusy > 0)
                fprintf(stderr, "elearn-fcgi: drain time up, closing %d idle connections\n",
                        p.nidle);
            running = 0;
        }
    }

    if (listening) {
        epoll_ctl(p.epfd, EPOLL_CTL_DEL, opts->listen_fd, NULL);
        close(opts->listen_fd);
    }
    while (p.idle.next != &p.idle) {
        struct conn *c = p.idle.next;
        idle_unlink(&p, c);
        conn_close(&p, c);
    }
    must(pthread_mutex_lock(&p.work.lock));
    p.stopping = 1;
    while (p.idle_top)
        wake_one(&p);
    must(pthread_mutex_unlock(&p.work.lock));
    for (i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    reap_done(&p, 1);

out:
    for (i = 0; i < started; i++)
        pthread_cond_destroy(&workers[i].cond);
    free(workers);
    free(threads);
    if (p.epfd >= 0)
        close(p.epfd);
    if (p.sigfd >= 0)
        close(p.sigfd);
    if (p.evfd >= 0)
        close(p.evfd);
    pthread_mutex_destroy(&p.work.lock);
    pthread_mutex_destroy(&p.done.lock);
    return rc;
}
