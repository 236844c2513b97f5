/* pool.h -- the worker pool and its epoll front.
 *
 * With FastCGI connection reuse (nginx fastcgi_keep_conn), a thread that
 * blocks in libfcgi on a kept-alive connection is lost to every other
 * connection until the web server speaks on that one again; a pool with
 * fewer threads than idle connections stalls. So no worker ever waits on an
 * idle connection here: one dispatcher thread owns the listening socket and
 * every idle connection in an epoll set, and hands a connection to a worker
 * only when it is readable (a request is arriving). After the response the
 * worker gives the connection back. Any number of kept-alive connections
 * therefore works with any WORKERS >= 1; WORKERS bounds only how many
 * requests run at once. Idle connections are closed after idle_timeout_s.
 *
 * SIGTERM/SIGINT (read through a signalfd by the dispatcher, so no thread
 * is interrupted mid-request): stop accepting, keep serving the kept-alive
 * connections until the web server closes them (at most 4 s; then the idle
 * ones are closed), let in-flight requests finish, join the workers,
 * return. A second SIGTERM stops at once. SIGHUP reopens the log file
 * (obs/log.h). */
#ifndef EL_POOL_H
#define EL_POOL_H

struct el_app;

struct el_pool_opts {
    int listen_fd;      /* a listening socket (spawn-fcgi's fd 0, or ours) */
    int workers;        /* worker threads, >= 1 */
    int idle_timeout_s; /* close connections idle this long */
};

/* Serve until SIGTERM or SIGINT. The caller must have blocked SIGTERM,
 * SIGINT and SIGPIPE in every thread (el_pool_block_signals() before any
 * thread is made). Returns 0 after a clean stop, -1 when the pool could not
 * start (message on stderr). */
int el_pool_run(const struct el_pool_opts *opts, struct el_app *app);

/* Block the signals the pool handles, in the calling thread; threads made
 * afterwards inherit the mask. */
void el_pool_block_signals(void);

#endif /* EL_POOL_H */
