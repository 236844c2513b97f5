/* pool.h -- the front: event threads that own every connection, and the
 * worker pool that does the blocking work.
 *
 * No thread ever waits on a peer. Event threads (EVENT_THREADS, default 1)
 * share the listening socket (EPOLLEXCLUSIVE: one of them is woken per new
 * connection) and own the connections they accept: they read them
 * non-blockingly into fcgi.c's parser, and write responses from a per-
 * connection buffer whenever the socket takes more. A complete request is
 * first offered to the routes' try-fast handlers on the event thread itself
 * (an L1 hit is answered there: no handoff, no wake-up); what needs a
 * blocking call (Redis, the store, argon2, writes) goes, complete with its
 * body, to one of WORKERS worker threads, whose framed response comes back
 * to the owning event thread to be written. WORKERS therefore bounds only
 * how many blocking requests run at once, and any number of kept-alive or
 * slow connections costs memory, not threads.
 *
 * Bounds per connection: its input buffer (fixed), one request in a worker
 * at a time, pipelined requests parsed only after the previous one is
 * answered, no more reading while 64 KiB of output is unsent. Deadlines:
 * a request must arrive in full within request_timeout_s of its first byte,
 * a response drain within send_timeout_s, an idle connection is closed after
 * idle_timeout_s. At the descriptor limit (EMFILE/ENFILE) the listener is
 * left alone until a connection closes here or 250 ms pass, and the
 * condition is logged at most once per 10 s.
 *
 * SIGTERM/SIGINT (a signalfd read by the first event thread, so no thread
 * is interrupted mid-request): stop accepting and close the listener; go on
 * serving the kept-alive connections until the web server closes them (only
 * it knows it will not write another request into one), for at most 4 s;
 * then close what is left once its answer is written, and return. A second
 * SIGTERM/SIGINT ends the drain at once. SIGHUP is taken too (on_hup; it
 * must not end the process). */
#ifndef EL_POOL_H
#define EL_POOL_H

struct el_app;

struct el_pool_opts {
    int listen_fd;         /* a listening socket (spawn-fcgi's fd 0, or ours) */
    int workers;           /* worker threads for blocking work, >= 1 */
    int event_threads;     /* threads owning connections, >= 1 */
    int idle_timeout_s;    /* close connections idle this long */
    int request_timeout_s; /* a started request must arrive within this */
    int send_timeout_s;    /* a response must drain within this */
    void (*on_hup)(void);  /* called on SIGHUP by an event thread, or NULL */
};

/* Serve until SIGTERM or SIGINT. The caller must have blocked SIGTERM,
 * SIGINT, SIGHUP and SIGPIPE in every thread (el_pool_block_signals()
 * before any thread is made). Returns 0 after a clean stop, -1 when the
 * pool could not start (message on stderr). */
int el_pool_run(const struct el_pool_opts *opts, struct el_app *app);

/* Block the signals the pool handles, in the calling thread; threads made
 * afterwards inherit the mask. */
void el_pool_block_signals(void);

#endif /* EL_POOL_H */
