/* minimal.c -- the limit of the architecture: the least a FastCGI responder
 * can do and still be one.
 *
 *   minimal-fcgi BODY_FILE        (listening socket on fd 0, as spawn-fcgi
 *                                  passes it)
 *
 * One thread, one epoll set, non-blocking sockets. It parses nothing: it
 * walks record headers only to find where each request ends (its empty
 * FCGI_STDIN record) and its id, and answers every complete request with
 * the same prebuilt bytes -- STDOUT with "Status: 200 OK", Content-Type,
 * Content-Length and BODY_FILE, the empty STDOUT, END_REQUEST -- in one
 * write. Benchmarked behind the same nginx config as elearn-fcgi (bench/
 * run.sh), its CPU per request and its rate are what elearn's L1 hits are
 * measured against. SIGTERM or SIGINT ends it at once.
 *
 * Deliberately not robust: no request or output limits beyond a fixed
 * buffer (an overflowing connection is closed), no management records, no
 * deadlines. It is a yardstick, never a server. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUF 65536

struct conn {
    int fd;
    size_t in_len;
    size_t skip;     /* content + padding of the current record left */
    int end_at_skip; /* the current record is an empty STDIN */
    unsigned char in[BUF];
    char *out; /* unsent answers */
    size_t out_len, out_off, out_cap;
};

static char *answer; /* one response, request id bytes patched per use */
static size_t answer_len;
static size_t id_offsets[3];

static void build_answer(const char *body, size_t blen)
{
    char head[256];
    int hl = snprintf(head, sizeof(head),
                      "Status: 200 OK\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      blen);
    size_t content = (size_t)hl + blen, o = 0, nrec = content / 65528 + 1;
    size_t off = 0;

    answer = malloc(content + nrec * 16 + 32);
    if (answer == NULL)
        exit(1);
    id_offsets[0] = 0;
    while (off < content) {
        size_t n = content - off < 65528 ? content - off : 65528, pad = (8 - n % 8) % 8;
        unsigned char h[8] = {
            1, 6, 0, 0, (unsigned char)(n >> 8), (unsigned char)n, (unsigned char)pad, 0};
        size_t left = n;

        memcpy(answer + o, h, 8);
        o += 8;
        while (left) {
            size_t from, take;
            const char *src;
            if (off < (size_t)hl) {
                src = head + off;
                take = (size_t)hl - off;
            } else {
                from = off - (size_t)hl;
                src = body + from;
                take = blen - from;
            }
            if (take > left)
                take = left;
            memcpy(answer + o, src, take);
            o += take;
            off += take;
            left -= take;
        }
        memset(answer + o, 0, pad);
        o += pad;
    }
    /* the id is patched only for single-record bodies (bench payloads) */
    {
        unsigned char e[8] = {1, 6, 0, 0, 0, 0, 0, 0};
        unsigned char end[16] = {1, 3, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        id_offsets[1] = o;
        memcpy(answer + o, e, 8);
        o += 8;
        id_offsets[2] = o;
        memcpy(answer + o, end, 16);
        o += 16;
    }
    answer_len = o;
}

static int queue_answer(struct conn *c, unsigned id)
{
    if (c->out_len + answer_len > c->out_cap) {
        size_t cap = (c->out_len + answer_len) * 2;
        char *p = realloc(c->out, cap);
        if (p == NULL || cap > (64u << 20))
            return -1;
        c->out = p;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, answer, answer_len);
    for (int i = 0; i < 3; i++) {
        c->out[c->out_len + id_offsets[i] + 2] = (char)(id >> 8);
        c->out[c->out_len + id_offsets[i] + 3] = (char)id;
    }
    c->out_len += answer_len;
    return 0;
}

static int flush(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN ? 0 : -1;
        c->out_off += (size_t)n;
    }
    c->out_off = c->out_len = 0;
    return 0;
}

/* Walk the records in c->in; queue an answer per empty STDIN. */
static int consume(struct conn *c)
{
    size_t o = 0;

    for (;;) {
        if (c->skip) {
            size_t n = c->in_len - o < c->skip ? c->in_len - o : c->skip;
            o += n;
            c->skip -= n;
            if (c->skip)
                break;
        }
        if (c->in_len - o < 8)
            break;
        {
            const unsigned char *h = c->in + o;
            unsigned id = (unsigned)h[2] << 8 | h[3];
            size_t clen = (size_t)h[4] << 8 | h[5];
            o += 8;
            c->skip = clen + h[6];
            if (h[1] == 5 && clen == 0 && queue_answer(c, id) != 0)
                return -1;
        }
    }
    memmove(c->in, c->in + o, c->in_len - o);
    c->in_len -= o;
    return 0;
}

static void conn_close(int ep, struct conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->out);
    free(c);
}

int main(int argc, char **argv)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL}, evs[64];
    struct stat st;
    char *body;
    int ep, fd;

    if (argc != 2) {
        fprintf(stderr, "usage: minimal-fcgi BODY_FILE\n");
        return 2;
    }
    fd = open(argv[1], O_RDONLY);
    if (fd < 0 || fstat(fd, &st) != 0 || (body = malloc((size_t)st.st_size + 1)) == NULL ||
        read(fd, body, (size_t)st.st_size) != st.st_size) {
        perror(argv[1]);
        return 1;
    }
    close(fd);
    build_answer(body, (size_t)st.st_size);
    ep = epoll_create1(0);
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev) != 0) {
        perror("epoll");
        return 1;
    }
    for (;;) {
        int n = epoll_wait(ep, evs, 64, -1);

        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c == NULL) {
                int cfd;
                while ((cfd = accept4(0, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLOUT | EPOLLET};
                    c = calloc(1, sizeof(*c));
                    if (c == NULL) {
                        close(cfd);
                        continue;
                    }
                    c->fd = cfd;
                    cev.data.ptr = c;
                    epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &cev);
                }
                continue;
            }
            for (;;) {
                size_t room = BUF - c->in_len;
                ssize_t r = recv(c->fd, c->in + c->in_len, room, 0);
                if (r > 0) {
                    c->in_len += (size_t)r;
                    if (consume(c) != 0 || c->in_len == BUF)
                        r = 0; /* overflow: give up on this one */
                    else if ((size_t)r == room)
                        continue;
                    else
                        break; /* a short read drained it (edge-triggered) */
                }
                if (r == 0 || (r < 0 && errno != EAGAIN)) {
                    conn_close(ep, c);
                    c = NULL;
                }
                break;
            }
            if (c && flush(c) != 0)
                conn_close(ep, c);
        }
    }
}
