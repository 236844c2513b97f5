/* donothing.c -- the architecture's ceiling: a libfcgi responder that does
 * no work at all.
 *
 *   donothing-fcgi BODY_FILE [THREADS]     (THREADS also from $WORKERS)
 *
 * Started like the real responder (spawn-fcgi -n ... -- donothing-fcgi F),
 * it answers every request with the bytes of BODY_FILE as application/json.
 * Benchmarked behind the same nginx config, it measures what nginx +
 * FastCGI + libfcgi cost before elearn does anything, so the real
 * responder's numbers can be read as a ratio to it.
 *
 * Design: THREADS threads each loop on FCGX_Accept_r on the inherited
 * listening socket (fd 0) with no accept mutex -- accept(2) is thread-safe
 * on Linux. libfcgi binds a kept-alive connection to the thread that
 * accepted it, so THREADS must be at least the number of upstream
 * connections nginx may hold (wrk -c64 -> 64); the default is 128. (The real
 * responder avoids that limit with its epoll front.) SIGTERM or SIGINT ends
 * it at once. */
#include <fcgiapp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *body;
static size_t body_len;
static char header[128];
static int header_len;

static void *serve(void *arg)
{
    FCGX_Request req;
    char sink[4096];

    (void)arg;
    if (FCGX_InitRequest(&req, 0, 0) != 0)
        return NULL;
    while (FCGX_Accept_r(&req) >= 0) {
        /* Drain any request body: on a kept-alive connection unread stdin
         * records would be taken for the next request's. */
        while (FCGX_GetStr(sink, sizeof(sink), req.in) > 0)
            ;
        FCGX_PutStr(header, header_len, req.out);
        FCGX_PutStr(body, (int)body_len, req.out);
        FCGX_Finish_r(&req);
    }
    return NULL;
}

static int read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    long n;

    if (!f)
        return -1;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
        goto fail;
    body = malloc((size_t)n + 1);
    if (!body || fread(body, 1, (size_t)n, f) != (size_t)n)
        goto fail;
    body_len = (size_t)n;
    fclose(f);
    return 0;
fail:
    fclose(f);
    return -1;
}

int main(int argc, char **argv)
{
    const char *nstr = argc > 2 ? argv[2] : getenv("WORKERS");
    int n = nstr ? atoi(nstr) : 128;
    pthread_t *tids;
    sigset_t stop;
    int sig;

    if (argc < 2) {
        fprintf(stderr, "usage: %s BODY_FILE [THREADS]\n", argv[0]);
        return 2;
    }
    if (read_file(argv[1]) != 0) {
        fprintf(stderr, "donothing-fcgi: cannot read %s\n", argv[1]);
        return 2;
    }
    if (n < 1 || n > 4096)
        n = 128;
    header_len = snprintf(header, sizeof(header),
                          "Status: 200 OK\r\nContent-Type: application/json\r\n"
                          "Content-Length: %zu\r\n\r\n",
                          body_len);
    if (FCGX_Init() != 0)
        return 1;
    /* SIGTERM/SIGINT are blocked in every thread and taken by main with
     * sigwait, which then ends the process: the threads sit in accept(2) or
     * read(2) and have nothing to finish. */
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    tids = calloc((size_t)n, sizeof(*tids));
    if (!tids)
        return 1;
    for (int i = 0; i < n; i++)
        if (pthread_create(&tids[i], NULL, serve, NULL) != 0) {
            fprintf(stderr, "donothing-fcgi: pthread_create failed\n");
            return 1;
        }
    fprintf(stderr, "donothing-fcgi: %d threads, %zu-byte body\n", n, body_len);
    sigwait(&stop, &sig);
    fprintf(stderr, "donothing-fcgi: signal %d, exiting\n", sig);
    return 0;
}
