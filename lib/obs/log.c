/* log.c -- log file handling and the access line (see log.h). */
#include "obs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 4096
#define TARGET_MAX 2048 /* escaped path?query bytes kept */

static char log_path[4096]; /* "" = stderr as inherited */
static atomic_int access_on = 1;
static pthread_mutex_t reopen_lock = PTHREAD_MUTEX_INITIALIZER;

/* Access lines are collected here and written in batches: one write(2) per
 * request cost about a fifth of L1-hit throughput (make bench). A batch is
 * written when it passes FLUSH_AT bytes, and by el_log_flush() (the
 * housekeeping thread, every 250 ms; SIGHUP; exit), so a line reaches the
 * file within about 250 ms. Each write holds whole lines only. */
#define BATCH_MAX (64u << 10)
#define FLUSH_AT (32u << 10)
static pthread_mutex_t batch_lock = PTHREAD_MUTEX_INITIALIZER;
static char batch[BATCH_MAX];
static size_t batch_len;

/* Write out the batch; batch_lock held. A failed write drops it: a log
 * write must not fail or stall a request, and there is nowhere to say so. */
static void flush_locked(void)
{
    size_t off = 0;

    while (off < batch_len) {
        ssize_t n = write(STDERR_FILENO, batch + off, batch_len - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    batch_len = 0;
}

void el_log_flush(void)
{
    pthread_mutex_lock(&batch_lock);
    flush_locked();
    pthread_mutex_unlock(&batch_lock);
}

static int open_onto_stderr(const char *path, struct el_err *err)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

    if (fd < 0)
        return el_err_set(err, EL_EIO, "LOG_FILE: cannot open %s: %s", path, strerror(errno));
    if (fd != STDERR_FILENO) {
        if (dup2(fd, STDERR_FILENO) < 0) {
            int e = errno;

            close(fd);
            return el_err_set(err, EL_EIO, "LOG_FILE: cannot use %s: %s", path, strerror(e));
        }
        close(fd);
    }
    return EL_OK;
}

int el_log_open(const char *path, int access, struct el_err *err)
{
    el_log_flush();
    atomic_store(&access_on, access != 0);
    if (path == NULL || *path == '\0') {
        log_path[0] = '\0';
        return EL_OK;
    }
    if (strlen(path) >= sizeof(log_path))
        return el_err_set(err, EL_EIO, "LOG_FILE: path too long");
    memcpy(log_path, path, strlen(path) + 1);
    /* stderr is unbuffered; keep it so, lines must reach the file whole. */
    return open_onto_stderr(log_path, err);
}

int el_log_reopen(void)
{
    struct el_err err = {0, ""};
    int rc;

    if (log_path[0] == '\0')
        return EL_OK;
    el_log_flush(); /* what was logged before the rotation goes to the old file */
    pthread_mutex_lock(&reopen_lock);
    rc = open_onto_stderr(log_path, &err);
    pthread_mutex_unlock(&reopen_lock);
    if (rc != EL_OK)
        dprintf(STDERR_FILENO, "elearn-fcgi: %s; still logging to the old file\n", err.msg);
    return rc;
}

int el_log_access_enabled(void)
{
    return atomic_load_explicit(&access_on, memory_order_relaxed);
}

/* ---- request ids -------------------------------------------------------- */

static int id_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("._:@=+/-", c) != NULL;
}

/* xorshift128+ per thread, seeded from getrandom: an id must be unique,
 * not unpredictable, and costs no system call per request. */
static uint64_t next64(void)
{
    static __thread uint64_t s[2];
    uint64_t a, b;

    if (s[0] == 0 && s[1] == 0) {
        if (getrandom(s, sizeof(s), 0) != (ssize_t)sizeof(s) || (s[0] == 0 && s[1] == 0)) {
            s[0] = el_now_us() ^ (uint64_t)(uintptr_t)&s;
            s[1] = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull | 1;
        }
    }
    a = s[0];
    b = s[1];
    s[0] = b;
    a ^= a << 23;
    s[1] = a ^ b ^ (a >> 17) ^ (b >> 26);
    return s[1] + b;
}

void el_log_request_id(const char *given, char out[EL_LOG_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;

    if (given != NULL) {
        while (n <= EL_LOG_ID_LEN && given[n] != '\0' && id_char((unsigned char)given[n]))
            n++;
        if (n >= 1 && n <= EL_LOG_ID_LEN && given[n] == '\0') {
            memcpy(out, given, n + 1);
            return;
        }
    }
    for (int half = 0; half < 2; half++) {
        uint64_t v = next64();

        for (int i = 0; i < 16; i++, v >>= 4)
            out[half * 16 + i] = hex[v & 15];
    }
    out[32] = '\0';
}

/* ---- the line ------------------------------------------------------------ */

/* Append s escaped, at most max bytes of output; returns bytes written. */
static size_t put_escaped(char *out, size_t max, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    for (; s != NULL && *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c < 0x21 || c >= 0x7f || c == '\\' || c == '"') {
            if (o + 4 > max)
                break;
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else {
            if (o + 1 > max)
                break;
            out[o++] = (char)c;
        }
    }
    return o;
}

size_t el_log_format(const struct el_access *a, char *out, size_t n)
{
    time_t secs = (time_t)(a->wall_ms / 1000);
    struct tm tm;
    size_t o;
    int k;

    gmtime_r(&secs, &tm);
    k = snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(a->wall_ms % 1000));
    o = (size_t)k;
    /* The fields after the target need at most ~200 bytes (a 64-byte id);
     * the client and method are capped so the target always gets room. */
    o += put_escaped(out + o, 64, a->client && *a->client ? a->client : "-");
    out[o++] = ' ';
    o += put_escaped(out + o, 32, a->method && *a->method ? a->method : "-");
    out[o++] = ' ';
    {
        size_t room = n - o - 256, t;

        if (room > TARGET_MAX)
            room = TARGET_MAX;
        t = put_escaped(out + o, room, a->path && *a->path ? a->path : "/");
        if (a->query != NULL && *a->query && t + 1 < room) {
            out[o + t++] = '?';
            t += put_escaped(out + o + t, room - t, a->query);
        }
        o += t;
    }
    k = snprintf(out + o, n - o, " %d %s %lluus %lluB ", a->status,
                 a->layer && *a->layer ? a->layer : "-", (unsigned long long)a->micros,
                 (unsigned long long)a->bytes);
    o += (size_t)k;
    o += put_escaped(out + o, 128, a->request_id && *a->request_id ? a->request_id : "-");
    out[o++] = '\n';
    out[o] = '\0';
    return o;
}

void el_log_access(const struct el_access *a)
{
    char line[LINE_MAX_BYTES];
    size_t len;

    if (!el_log_access_enabled())
        return;
    len = el_log_format(a, line, sizeof(line)); /* outside the lock */
    pthread_mutex_lock(&batch_lock);
    if (batch_len + len > BATCH_MAX)
        flush_locked();
    memcpy(batch + batch_len, line, len);
    batch_len += len;
    if (batch_len >= FLUSH_AT)
        flush_locked();
    pthread_mutex_unlock(&batch_lock);
}
