/* el.h -- what every elearn module shares: status codes, the error-detail
 * struct, attributes and the clock.
 *
 * Library functions return 0 (EL_OK) or one negative code from the table
 * below; el_strerror() names it. A cache miss or a missing document is a
 * status (EL_ENOTFOUND), never a logged error. Detail, when a caller wants
 * it, goes into a caller-owned struct el_err -- never into a global, because
 * every module is called from many worker threads at once. */
#ifndef EL_H
#define EL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define EL_ERRNO_MAP(X)                                                                            \
    X(OK, 0, "success")                                                                            \
    X(ENOMEM, -1, "out of memory")                                                                 \
    X(ENOTFOUND, -2, "not found")                                                                  \
    X(EUNAVAIL, -3, "backend unavailable")                                                         \
    X(ETIMEOUT, -4, "timed out")                                                                   \
    X(EINVAL, -5, "invalid argument")                                                              \
    X(ETOOBIG, -6, "too large")                                                                    \
    X(ECONFLICT, -7, "conflict")                                                                   \
    X(EIO, -8, "input/output error")                                                               \
    X(EPROTO, -9, "protocol error")                                                                \
    X(EDISABLED, -10, "disabled by configuration")                                                 \
    X(ELIMIT, -11, "rate limited")                                                                 \
    X(EFORBIDDEN, -12, "not permitted")

enum el_errno {
#define EL_ERRNO_ENUM(name, val, msg) EL_##name = (val),
    EL_ERRNO_MAP(EL_ERRNO_ENUM)
#undef EL_ERRNO_ENUM
};

/* Static string naming a status code; never NULL. */
const char *el_strerror(int code);

/* Optional, caller-owned error detail. Functions that take one fill it only
 * when they fail; passing NULL is always allowed. */
struct el_err {
    int code;
    char msg[256];
};

/* Record a failure in err (if not NULL) and return code, so a failing path
 * can say `return el_err_set(err, EL_EINVAL, "bad %s", what);`. */
int el_err_set(struct el_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#ifdef __clang_analyzer__
/* The analyzer reads one file at a time: show it that el_err_set returns
 * its code, or every `return el_err_set(err, EL_EINVAL, ...)` looks like it
 * might return EL_OK with the outputs unset. (code is evaluated twice here;
 * only the analyzer sees this.) */
#define el_err_set(err, code, ...) (el_err_set((err), (code), __VA_ARGS__), (code))
#endif

/* The largest response body, in one place: what a handler builds and what
 * the cache keeps (a cached document is served as it is, so a larger one
 * could be cached but never served). */
#define EL_RESPONSE_MAX (4u << 20)

/* For pthread calls that cannot fail in a correct program (locking a mutex
 * we initialised, signalling a condition we own): abort if one does, rather
 * than go on unsynchronised. The one copy of that rule. */
static inline void el_must(int rc)
{
    if (rc != 0)
        abort();
}

#define EL_WUR __attribute__((warn_unused_result))
#define EL_UNUSED(x) ((void)(x))

/* Monotonic clock in milliseconds / microseconds: what every TTL and latency
 * is measured with. Caches take "now" as a parameter so tests can drive
 * expiry without sleeping; production callers pass el_now_ms(). */
uint64_t el_now_ms(void);
uint64_t el_now_us(void);

/* Wall-clock time in milliseconds since the Unix epoch (document dates). */
int64_t el_wall_ms(void);

#endif /* EL_H */
