/* log.h -- the responder's log: where it goes, and the access line.
 *
 * Everything the responder logs goes to stderr (fd 2). With LOG_FILE set,
 * el_log_open() opens that file (append) and puts it on fd 2, so start-up
 * messages, errors and access lines all land in it; el_log_reopen() (on
 * SIGHUP, after logrotate moved the file) opens the path again and swaps it
 * onto fd 2 with dup2(), which is atomic: no line is lost or split. Access
 * lines are batched (a short mutex and a memcpy per request) and written
 * whole, at 32 KiB or by el_log_flush(), which the responder calls every
 * 250 ms: a line reaches the file within about 250 ms, and a crash loses
 * at most that much. Other messages (fprintf to stderr) go out at once.
 *
 * The access line (one per request, when ACCESS_LOG=on):
 *
 *   2026-12-02T10:08:42.123Z 192.0.2.7 GET /courses/6530...?page=2 200 L1 123us 517B 9c1e...
 *
 *   UTC time (ms) | client address | method | path?query | status | layer
 *   (X-Cache value, "-" for none) | duration in us | body bytes | request id
 *
 * Fields are separated by one space and never contain one: bytes below
 * 0x21, from 0x7f up, '\' and '"' are written as \xHH, so a client can
 * neither forge a line nor split a field. */
#ifndef EL_LOG_H
#define EL_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "core/el.h"

/* Request ids: at most this many characters (plus the terminator). */
#define EL_LOG_ID_LEN 64

/* Send fd 2 to path (append, created 0640) when path is not NULL or "";
 * access != 0 enables access lines. Once, at start-up. EL_EIO with the
 * reason in err when the file cannot be opened (fd 2 is unchanged). */
int el_log_open(const char *path, int access, struct el_err *err) EL_WUR;

/* Open the LOG_FILE again and put it on fd 2 (SIGHUP). EL_OK and nothing
 * done without a LOG_FILE; on failure the old file stays in use and a line
 * saying why is written to it. Any thread. */
int el_log_reopen(void);

/* Whether access lines are wanted (ACCESS_LOG). */
int el_log_access_enabled(void);

/* The request id into out: given when it is 1-EL_LOG_ID_LEN characters of
 * [A-Za-z0-9._:@=+/-] (the web server's $request_id, X-Request-Id,
 * Apache's UNIQUE_ID), else 32 fresh hex digits. */
void el_log_request_id(const char *given, char out[EL_LOG_ID_LEN + 1]);

struct el_access {
    int64_t wall_ms;    /* when the request arrived, ms since the epoch */
    const char *client; /* address (see http/forwarded.h) */
    const char *method;
    const char *path;  /* PATH_INFO */
    const char *query; /* QUERY_STRING; "" or NULL for none */
    int status;
    const char *layer; /* "L1", "L2", "MISS", "STALE"; NULL for none */
    uint64_t micros;   /* duration */
    uint64_t bytes;    /* response body bytes sent */
    const char *request_id;
};

/* Format a into out (n bytes) as one line ending "\n"; returns its length.
 * A line that would not fit is cut inside the target, never in another
 * field, and still ends with the newline. n must be at least 512. */
size_t el_log_format(const struct el_access *a, char *out, size_t n);

/* Add a's line to the log's batch, when access lines are enabled. */
void el_log_access(const struct el_access *a);

/* Write out the batched access lines (periodically, on SIGHUP, at exit). */
void el_log_flush(void);

#endif /* EL_LOG_H */
