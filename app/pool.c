/* pool.c -- event threads and workers (see pool.h for the why).
 *
 * Ownership: a connection belongs to the event thread that accepted it, for
 * its whole life; only that thread reads, writes, parses, times out or frees
 * it. While a worker holds its request (c->busy), the worker touches only
 * the job (request in, framed response out), never the connection, and the
 * event thread keeps the connection alive until the job comes back through
 * its done queue, even if the peer has gone. So the two queues (jobs, one
 * shared; done, one per event thread) are the only shared state.
 *
 * Sockets are edge-triggered (EPOLLET): c->readable / c->writable remember
 * what the last edge said, and conn_run() makes all the progress it can
 * each time anything changes -- write what is pending, parse what is
 * buffered, serve or hand off a complete request, read more -- until it
 * must wait for the peer or for a worker. */
#include "pool.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
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
#include "fcgi.h"
#include "request.h"

#define IN_CAP (16u << 10)    /* per-connection input buffer */
#define OUT_HIGH (64u << 10)  /* stop reading requests past this much unsent */
#define OUT_MAX (64u << 20)   /* largest response + replies we will hold */
#define OUT_KEEP (256u << 10) /* give back output buffers larger than this */
/* Closed connections kept per event thread for the next accept, with their
 * output buffers up to SPARE_OUT_KEEP: a connection and a list page's
 * output buffer are each above glibc's mmap threshold (16 KiB, set by L1),
 * so a fresh one costs an mmap, page faults and an munmap -- paid on every
 * new connection when the web server opens more than it keeps alive. */
#define SPARE_CONNS 64
#define SPARE_OUT_KEEP (64u << 10)
#define SWEEP_MS 100        /* deadline check interval */
#define EMFILE_PAUSE_MS 250 /* listener left alone at the descriptor limit */
#define EMFILE_LOG_MS 10000 /* one log line per this much at the limit */
/* At a stop, kept-alive connections go on being served until the web
 * server closes them, for at most this long: only the web server knows it
 * will not write another request into one (a request written into a
 * connection we are just closing fails, and nginx retries no POST). The
 * shipped nginx.conf closes them within about a second (keepalive_time). */
#define STOP_DRAIN_MS 4000

struct loop;

struct conn {
    int fd;
    struct loop *loop;
    struct el_fcgi *fcgi;
    struct el_buf out; /* framed output not yet written, from out_off */
    size_t out_off;
    size_t in_off, in_len;
    int busy;    /* a worker has our request */
    int closing; /* close once out is written */
    int dead;    /* the socket failed: close when not busy */
    int readable, writable;
    int gone;                 /* closed; freed at the end of the epoll round (conn_free) */
    uint64_t req_start;       /* ms: first byte of the request arriving, or 0 */
    uint64_t out_start;       /* ms: output pending since, or 0 */
    uint64_t idle_since;      /* ms: last time it had nothing to do */
    struct conn *prev, *next; /* the loop's connections */
    unsigned char in[IN_CAP];
};

/* A request a worker serves: in from the event thread, out back to it. */
struct job {
    struct conn *c;
    struct el_fcgi_req *rq;
    struct el_buf out;
    int rc; /* el_request_serve's */
    struct job *next;
};

struct jobq {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct job *head, *tail;
    int stop;
};

struct pool;

struct loop {
    struct pool *p;
    int index;
    int epfd, evfd;
    pthread_t thread;
    pthread_mutex_t done_lock;
    struct job *done;  /* finished jobs, any order */
    struct conn conns; /* sentinel */
    int nconns;
    int listening; /* the listener is in our epoll set */
    int released;  /* stopping: we have dropped the listener for good */
    uint64_t listen_pause_until;
    uint64_t last_sweep;
    struct conn *graveyard; /* closed this round, freed after it (conn_free) */
    struct conn *spare;     /* freed connections for reuse (SPARE_CONNS) */
    int nspare;
};

struct pool {
    const struct el_pool_opts *opts;
    struct el_app *app;
    struct el_fcgi_limits lim;
    struct loop *loops;
    int nloops;
    int sigfd;
    atomic_int stopping;
    _Atomic uint64_t stop_ms; /* when the stop began */
    atomic_int hurry;         /* a second signal: close what is idle now */
    atomic_int released;      /* loops that have dropped the listener */
    int listen_closed;        /* loop 0 only */
    struct jobq jobs;
    /* descriptor exhaustion, for the log */
    atomic_uint_fast64_t emfile_last_log;
    atomic_uint_fast64_t emfile_count;
};

static char tag_listen, tag_signal, tag_event;

void el_pool_block_signals(void)
{
    sigset_t set;

    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    el_must(pthread_sigmask(SIG_BLOCK, &set, NULL));
}

/* ---- workers -------------------------------------------------------------- */

static void jobs_push(struct jobq *q, struct job *j)
{
    el_must(pthread_mutex_lock(&q->lock));
    j->next = NULL;
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    el_must(pthread_mutex_unlock(&q->lock));
    /* Signalled after the unlock: a worker woken while we still held the
     * lock would only go back to sleep on it (a second futex wait and
     * wake per request). Workers test q->head under the lock, so a signal
     * that finds none waiting loses nothing. */
    el_must(pthread_cond_signal(&q->cond));
}

/* Hand a finished job back to its event thread. The eventfd is written
 * only when the done list was empty: a non-empty list has a write on its
 * way for its first job, and the reap that write triggers takes the whole
 * list, ours included (reap_done reads the eventfd before it takes the
 * list). Under load this saves a system call per request and most of the
 * event thread's wake-ups. */
static void done_push(struct loop *l, struct job *j)
{
    uint64_t one = 1;
    int was_empty;

    el_must(pthread_mutex_lock(&l->done_lock));
    was_empty = l->done == NULL;
    j->next = l->done;
    l->done = j;
    el_must(pthread_mutex_unlock(&l->done_lock));
    if (was_empty && write(l->evfd, &one, sizeof(one)) != sizeof(one))
        abort(); /* an eventfd write fails only on overflow */
}

static void *worker_main(void *arg)
{
    struct pool *p = arg;
    struct jobq *q = &p->jobs;

    for (;;) {
        struct job *j;

        el_must(pthread_mutex_lock(&q->lock));
        while (q->head == NULL && !q->stop)
            el_must(pthread_cond_wait(&q->cond, &q->lock));
        j = q->head;
        if (j) {
            q->head = j->next;
            if (q->head == NULL)
                q->tail = NULL;
        }
        el_must(pthread_mutex_unlock(&q->lock));
        if (j == NULL)
            break; /* stopping, and nothing left */

        j->rc = el_request_serve(p->app, j->rq, 0, &j->out);
        el_request_log_tick(el_now_ms());
        done_push(j->c->loop, j);
    }
    el_redis_thread_cleanup(p->app->redis);
    el_store_thread_cleanup(p->app->store);
    return NULL;
}

/* ---- connections ---------------------------------------------------------- */

static void conn_free(struct conn *c)
{
    struct loop *l = c->loop;

    c->prev->next = c->next;
    c->next->prev = c->prev;
    l->nconns--;
    close(c->fd); /* also removes it from epoll */
    el_fcgi_free(c->fcgi);
    c->fcgi = NULL;
    if (c->out.cap > SPARE_OUT_KEEP)
        el_buf_cleanup(&c->out);
    else
        el_buf_reset(&c->out); /* kept for the next connection (bury) */
    /* Not freed yet: the epoll round being handled may still hold an event
     * for c (a finished job or the sweep can close a connection that has
     * an event later in the same batch). The loop skips gone connections
     * and frees them after the round. */
    c->gone = 1;
    c->next = l->graveyard;
    l->graveyard = c;
    /* A descriptor is free again: try the listener at once. */
    l->listen_pause_until = 0;
}

/* Free the connections closed during the round just handled, keeping up
 * to SPARE_CONNS of them for new connections. */
static void bury(struct loop *l)
{
    while (l->graveyard) {
        struct conn *c = l->graveyard;

        l->graveyard = c->next;
        if (l->nspare < SPARE_CONNS) {
            c->next = l->spare;
            l->spare = c;
            l->nspare++;
        } else {
            el_buf_cleanup(&c->out);
            free(c);
        }
    }
}

static void spares_free(struct loop *l)
{
    while (l->spare) {
        struct conn *c = l->spare;

        l->spare = c->next;
        el_buf_cleanup(&c->out);
        free(c);
    }
    l->nspare = 0;
}

/* A zeroed connection with an empty output buffer: a spare one, or new.
 * (The input buffer is not zeroed: in_len says what of it is valid.) */
static struct conn *conn_new(struct loop *l)
{
    struct conn *c = l->spare;

    if (c != NULL) {
        struct el_buf out = c->out;

        l->spare = c->next;
        l->nspare--;
        memset(c, 0, offsetof(struct conn, in));
        if (out.data == NULL) /* it was given back (larger than kept) */
            el_buf_init(&out, OUT_MAX);
        c->out = out;
        return c;
    }
    if ((c = calloc(1, sizeof(*c))) != NULL)
        el_buf_init(&c->out, OUT_MAX);
    return c;
}

static int out_pending(const struct conn *c)
{
    return c->out.len > c->out_off;
}

/* Write what is pending. 0 when all of it went (or the socket is full), -1
 * when the socket failed. */
static int conn_flush(struct conn *c)
{
    while (out_pending(c) && c->writable) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->out_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->writable = 0;
        } else {
            return -1;
        }
    }
    if (!out_pending(c)) {
        c->out_off = 0;
        c->out_start = 0;
        if (c->out.cap > OUT_KEEP)
            el_buf_cleanup(&c->out);
        else
            el_buf_reset(&c->out);
    } else if (c->out_off >= OUT_HIGH && c->out_off >= c->out.len / 2) {
        /* keep the unsent tail at the front, so replies append cheaply */
        memmove(c->out.data, c->out.data + c->out_off, c->out.len - c->out_off);
        c->out.len -= c->out_off;
        c->out_off = 0;
    }
    return 0;
}

static void note_output(struct conn *c, uint64_t now)
{
    if (out_pending(c) && c->out_start == 0)
        c->out_start = now;
}

static void submit(struct pool *p, struct conn *c, struct el_fcgi_req *rq)
{
    struct job *j = calloc(1, sizeof(*j));

    if (j == NULL) {
        el_fcgi_req_free(rq);
        c->dead = 1;
        return;
    }
    j->c = c;
    j->rq = rq;
    el_buf_init(&j->out, OUT_MAX);
    c->busy = 1;
    jobs_push(&p->jobs, j);
}

/* Make all the progress possible on c; frees it when it is finished. */
static void conn_run(struct pool *p, struct conn *c)
{
    uint64_t now = el_now_ms();

    for (;;) {
        size_t used;
        struct el_fcgi_req *rq;
        int rc;

        if (c->busy)
            return; /* the worker's result wakes us */
        if (c->dead || conn_flush(c) != 0)
            goto close;
        note_output(c, now);
        if (c->out.len - c->out_off >= OUT_HIGH)
            return; /* wait for the peer to read */
        if (c->closing) {
            if (!out_pending(c))
                goto close;
            return;
        }
        if (c->in_off < c->in_len) {
            if (c->out_off > 0) {
                /* the parser measures out from its start: compact (under
                 * OUT_HIGH bytes, and only after a partial write) */
                memmove(c->out.data, c->out.data + c->out_off, c->out.len - c->out_off);
                c->out.len -= c->out_off;
                c->out_off = 0;
            }
            rc = el_fcgi_feed(c->fcgi, c->in + c->in_off, c->in_len - c->in_off, &used, &c->out,
                              &rq);
            c->in_off += used;
            if (c->req_start == 0 && el_fcgi_busy(c->fcgi))
                c->req_start = now;
            if (rc == EL_FCGI_CLOSE) {
                c->closing = 1;
                continue;
            }
            if (rc == EL_FCGI_REQUEST) {
                c->req_start = 0;
                rc = el_request_serve(p->app, rq, 1, &c->out);
                if (rc == 0) {
                    submit(p, c, rq);
                    continue;
                }
                if (!el_fcgi_keep(rq))
                    c->closing = 1; /* the web server waits for our close */
                el_fcgi_req_free(rq);
                if (rc < 0)
                    goto close;
                continue;
            }
            if (c->in_off < c->in_len)
                continue; /* stopped at OUT_HIGH: flush first */
        }
        c->in_off = c->in_len = 0;
        if (out_pending(c) && c->writable)
            continue; /* replies the parser just made: write them first */
        if (!c->readable) {
            if (atomic_load(&p->stopping) && !el_fcgi_busy(c->fcgi) && !out_pending(c) &&
                (atomic_load(&p->hurry) || now - atomic_load(&p->stop_ms) >= STOP_DRAIN_MS))
                goto close; /* idle at a stop, past the drain */
            if (!el_fcgi_busy(c->fcgi) && !out_pending(c) && c->idle_since == 0)
                c->idle_since = now;
            return;
        }
        {
            ssize_t n = recv(c->fd, c->in, IN_CAP, MSG_DONTWAIT);
            if (n > 0) {
                c->in_len = (size_t)n;
                c->idle_since = 0;
                /* Edge-triggered: a short read drained the socket, and new
                 * bytes raise a new edge; no second recv to see EAGAIN. */
                if ((size_t)n < IN_CAP)
                    c->readable = 0;
            } else if (n < 0 && errno == EINTR) {
                continue;
            } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                c->readable = 0;
            } else {
                goto close; /* the peer is gone: nothing we send can arrive */
            }
        }
    }
close:
    conn_free(c);
}

/* ---- accepting ------------------------------------------------------------ */

static int listener_add(struct loop *l)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &tag_listen};

    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->p->opts->listen_fd, &ev) != 0)
        return -1;
    l->listening = 1;
    return 0;
}

static void listener_drop(struct loop *l)
{
    if (l->listening)
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, l->p->opts->listen_fd, NULL);
    l->listening = 0;
}

/* Out of descriptors: leave the listener alone for a while (it stays
 * readable, so polling it would spin), and say so at most once per
 * EMFILE_LOG_MS for the whole process. */
static void at_fd_limit(struct loop *l, int err)
{
    struct pool *p = l->p;
    uint64_t now = el_now_ms(), last = atomic_load(&p->emfile_last_log);
    uint64_t n = atomic_fetch_add(&p->emfile_count, 1) + 1;

    listener_drop(l);
    l->listen_pause_until = now + EMFILE_PAUSE_MS;
    if ((last == 0 || now - last >= EMFILE_LOG_MS) &&
        atomic_compare_exchange_strong(&p->emfile_last_log, &last, now)) {
        atomic_store(&p->emfile_count, 0);
        fprintf(stderr,
                "elearn-fcgi: accept: %s (%llu refusals); not accepting for %d ms at a time "
                "until descriptors free up\n",
                strerror(err), (unsigned long long)n, EMFILE_PAUSE_MS);
    }
}

static void accept_all(struct loop *l)
{
    struct pool *p = l->p;

    while (l->listening) {
        int fd = accept4(p->opts->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        struct epoll_event ev;
        struct conn *c;
        int one = 1;

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                at_fd_limit(l, errno);
            else if (errno != EAGAIN && errno != EWOULDBLOCK)
                fprintf(stderr, "elearn-fcgi: accept: %s\n", strerror(errno));
            return;
        }
        c = conn_new(l);
        if (c == NULL || (c->fcgi = el_fcgi_new(&p->lim)) == NULL) {
            if (c) {
                el_buf_cleanup(&c->out);
                free(c);
            }
            close(fd);
            continue;
        }
        /* responses leave in one write; do not let Nagle hold the tail */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->fd = fd;
        c->loop = l;
        c->idle_since = el_now_ms();
        c->prev = l->conns.prev;
        c->next = &l->conns;
        l->conns.prev->next = c;
        l->conns.prev = c;
        l->nconns++;
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
        ev.data.ptr = c;
        if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            conn_free(c);
            continue;
        }
    }
}

/* ---- the event loop ------------------------------------------------------- */

static void reap_done(struct loop *l)
{
    struct job *list, *j;
    uint64_t n;

    if (read(l->evfd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        fprintf(stderr, "elearn-fcgi: eventfd: %s\n", strerror(errno));
    el_must(pthread_mutex_lock(&l->done_lock));
    list = l->done;
    l->done = NULL;
    el_must(pthread_mutex_unlock(&l->done_lock));
    while ((j = list) != NULL) {
        struct conn *c = j->c;

        list = j->next;
        c->busy = 0;
        if (!el_fcgi_keep(j->rq))
            c->closing = 1;
        if (j->rc < 0) {
            c->dead = 1;
        } else if (!out_pending(c)) {
            /* the usual case: take the worker's buffer as it is */
            el_buf_cleanup(&c->out);
            c->out = j->out;
            c->out_off = 0;
            el_buf_init(&j->out, OUT_MAX);
        } else if (el_buf_add(&c->out, j->out.data, j->out.len) != EL_OK) {
            c->dead = 1;
        }
        el_buf_cleanup(&j->out);
        el_fcgi_req_free(j->rq);
        free(j);
        c->writable = 1; /* try; EAGAIN says otherwise */
        conn_run(l->p, c);
    }
}

/* Close connections past their deadline. */
static void sweep(struct loop *l, uint64_t now)
{
    const struct el_pool_opts *o = l->p->opts;
    struct conn *c, *next;

    for (c = l->conns.next; c != &l->conns; c = next) {
        next = c->next;
        if (c->busy)
            continue;
        if ((c->out_start && now - c->out_start >= (uint64_t)o->send_timeout_s * 1000u) ||
            (c->req_start && now - c->req_start >= (uint64_t)o->request_timeout_s * 1000u) ||
            (c->idle_since && !c->req_start && !c->out_start &&
             now - c->idle_since >= (uint64_t)o->idle_timeout_s * 1000u))
            conn_free(c);
    }
}

static void on_signal(struct loop *l)
{
    struct pool *p = l->p;
    struct signalfd_siginfo si;
    uint64_t one = 1;

    while (read(p->sigfd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            if (p->opts->on_hup)
                p->opts->on_hup();
            continue;
        }
        if (atomic_load(&p->stopping)) {
            fprintf(stderr, "elearn-fcgi: %s again, stopping at once\n",
                    si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
            atomic_store(&p->hurry, 1);
        } else {
            fprintf(stderr, "elearn-fcgi: %s received, stopping\n",
                    si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
            atomic_store(&p->stop_ms, el_now_ms());
            atomic_store(&p->stopping, 1);
        }
        for (int i = 0; i < p->nloops; i++)
            if (write(p->loops[i].evfd, &one, sizeof(one)) != sizeof(one))
                abort();
    }
}

/* At a stop: drop the listener (once); go on serving the connections the
 * web server keeps until it closes them; past STOP_DRAIN_MS (or at a second
 * signal) close every connection not waiting for a worker, and the others
 * once their answer is written. Loop 0 closes the listening socket once no
 * loop polls it, so the web server sees new connections refused at once
 * (under socket activation they wait in the held socket's backlog). */
static void stopping(struct loop *l)
{
    struct pool *p = l->p;
    struct conn *c, *next;

    if (!l->released) {
        listener_drop(l);
        l->released = 1;
        atomic_fetch_add(&p->released, 1);
    }
    if (l->index == 0 && !p->listen_closed && atomic_load(&p->released) == p->nloops) {
        close(p->opts->listen_fd);
        p->listen_closed = 1;
    }
    if (!atomic_load(&p->hurry) && el_now_ms() - atomic_load(&p->stop_ms) < STOP_DRAIN_MS)
        return; /* draining: connections are served as usual */
    for (c = l->conns.next; c != &l->conns; c = next) {
        next = c->next;
        if (c->busy)
            c->closing = 1; /* after its answer */
        else
            conn_free(c);
    }
}

static void *loop_main(void *arg)
{
    struct loop *l = arg;
    struct pool *p = l->p;

    while (!l->released || l->nconns > 0 || (l->index == 0 && !p->listen_closed)) {
        struct epoll_event evs[64];
        uint64_t now;
        int n, i;

        n = epoll_wait(l->epfd, evs, 64, SWEEP_MS);
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "elearn-fcgi: epoll_wait: %s\n", strerror(errno));
            abort(); /* only a programming error gets here */
        }
        for (i = 0; i < n; i++) {
            void *tag = evs[i].data.ptr;
            if (tag == &tag_listen) {
                accept_all(l);
            } else if (tag == &tag_signal) {
                on_signal(l);
            } else if (tag == &tag_event) {
                reap_done(l);
            } else {
                struct conn *c = tag;
                uint32_t e = evs[i].events;
                if (c->gone)
                    continue; /* closed earlier in this round */
                if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                    c->readable = 1;
                if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR))
                    c->writable = 1;
                conn_run(p, c);
            }
        }
        now = el_now_ms();
        el_request_log_tick(now);
        if (atomic_load(&p->stopping))
            stopping(l);
        else if (!l->listening && now >= l->listen_pause_until && listener_add(l) == 0)
            accept_all(l); /* level-triggered: pending ones are seen anyway */
        if (now - l->last_sweep >= SWEEP_MS) {
            l->last_sweep = now;
            sweep(l, now);
        }
        bury(l);
    }
    bury(l);
    spares_free(l);
    el_request_log_flush();
    el_redis_thread_cleanup(p->app->redis);
    el_store_thread_cleanup(p->app->store);
    return NULL;
}

static int loop_init(struct pool *p, struct loop *l, int index)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &tag_event};

    l->p = p;
    l->index = index;
    l->conns.next = l->conns.prev = &l->conns;
    el_must(pthread_mutex_init(&l->done_lock, NULL));
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->epfd < 0 || l->evfd < 0 || epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->evfd, &ev) != 0 ||
        listener_add(l) != 0)
        return -1;
    if (index == 0) {
        ev.data.ptr = &tag_signal;
        if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, p->sigfd, &ev) != 0)
            return -1;
    }
    return 0;
}

int el_pool_run(const struct el_pool_opts *opts, struct el_app *app)
{
    struct pool p;
    pthread_t *workers = NULL;
    sigset_t set;
    int i, nworkers = 0, nloops = 0, rc = -1;

    memset(&p, 0, sizeof(p));
    p.opts = opts;
    p.app = app;
    p.sigfd = -1;
    p.lim.body_max = EL_BODY_MAX;
    p.lim.out_high = OUT_HIGH;
    el_must(pthread_mutex_init(&p.jobs.lock, NULL));
    el_must(pthread_cond_init(&p.jobs.cond, NULL));
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    p.nloops = opts->event_threads > 0 ? opts->event_threads : 1;
    p.loops = calloc((size_t)p.nloops, sizeof(*p.loops));
    workers = calloc((size_t)opts->workers, sizeof(*workers));
    p.sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (p.loops == NULL || workers == NULL || p.sigfd < 0 ||
        fcntl(opts->listen_fd, F_SETFL, fcntl(opts->listen_fd, F_GETFL) | O_NONBLOCK) != 0) {
        fprintf(stderr, "elearn-fcgi: cannot start the pool: %s\n", strerror(errno));
        goto out;
    }
    for (i = 0; i < p.nloops; i++)
        p.loops[i].epfd = p.loops[i].evfd = -1;
    for (i = 0; i < p.nloops; i++) {
        if (loop_init(&p, &p.loops[i], i) != 0) {
            fprintf(stderr, "elearn-fcgi: cannot start the pool: %s\n", strerror(errno));
            goto out;
        }
    }
    for (i = 0; i < opts->workers; i++) {
        if (pthread_create(&workers[i], NULL, worker_main, &p) != 0) {
            fprintf(stderr, "elearn-fcgi: cannot start worker %d: %s\n", i, strerror(errno));
            goto out;
        }
        nworkers++;
    }
    for (i = 1; i < p.nloops; i++) {
        if (pthread_create(&p.loops[i].thread, NULL, loop_main, &p.loops[i]) != 0) {
            fprintf(stderr, "elearn-fcgi: cannot start event thread %d: %s\n", i, strerror(errno));
            goto out;
        }
        nloops++;
    }
    rc = 0;
    loop_main(&p.loops[0]);

out:
    if (rc != 0) {
        uint64_t one = 1;
        atomic_store(&p.stopping, 1);
        for (i = 1; i <= nloops; i++)
            if (write(p.loops[i].evfd, &one, sizeof(one)) != sizeof(one))
                abort();
    }
    for (i = 1; i <= nloops; i++)
        pthread_join(p.loops[i].thread, NULL);
    /* Every connection is closed, so no job is queued or running. */
    el_must(pthread_mutex_lock(&p.jobs.lock));
    p.jobs.stop = 1;
    el_must(pthread_cond_broadcast(&p.jobs.cond));
    el_must(pthread_mutex_unlock(&p.jobs.lock));
    for (i = 0; i < nworkers; i++)
        pthread_join(workers[i], NULL);
    for (i = 0; p.loops && i < p.nloops; i++) {
        if (p.loops[i].epfd >= 0)
            close(p.loops[i].epfd);
        if (p.loops[i].evfd >= 0)
            close(p.loops[i].evfd);
        pthread_mutex_destroy(&p.loops[i].done_lock);
    }
    if (!p.listen_closed)
        close(opts->listen_fd);
    free(p.loops);
    free(workers);
    if (p.sigfd >= 0)
        close(p.sigfd);
    pthread_mutex_destroy(&p.jobs.lock);
    pthread_cond_destroy(&p.jobs.cond);
    return rc;
}
