/* store.c -- the store interface's dispatcher (see store.h): picks a backend
 * by URI scheme and times and counts every query in one place. */
#include "store/store.h"

#include <stdatomic.h>
#include <string.h>

#include "obs/stats.h"
#include "store/store_int.h"

static atomic_int timeout_ms = 1500;

void el_store_set_timeout_ms(int ms)
{
    atomic_store(&timeout_ms, ms < 100 ? 100 : ms > 30000 ? 30000 : ms);
}

int el_store_timeout_ms(void)
{
    return atomic_load(&timeout_ms);
}

int el_store_open(const char *uri, struct el_store **out, struct el_err *err)
{
    *out = NULL;
    if (uri == NULL || *uri == '\0')
        return el_err_set(err, EL_EINVAL, "empty database URI");
    if (strncmp(uri, "mongodb://", 10) == 0 || strncmp(uri, "mongodb+srv://", 14) == 0)
        return el_store_mongo_open(uri, out, err);
    if (strncmp(uri, "sqlite:", 7) == 0) {
        if (uri[7] == '\0')
            return el_err_set(err, EL_EINVAL,
                              "sqlite: URI needs a path, e.g. sqlite:var/elearn.db");
        return el_store_sqlite_open(uri + 7, out, err);
    }
    return el_err_set(err, EL_EINVAL, "database URI must start with mongodb:// or sqlite:");
}

void el_store_close(struct el_store *s)
{
    if (s)
        s->ops->close(s);
}

void el_store_thread_cleanup(struct el_store *s)
{
    if (s && s->ops->thread_cleanup)
        s->ops->thread_cleanup(s);
}

const char *el_store_kind(const struct el_store *s)
{
    return s->ops->kind;
}

/* Count a query: a not-found answer is a successful query. */
static int counted(int rc, uint64_t t0)
{
    el_stats_store_query(el_now_us() - t0, rc != EL_OK && rc != EL_ENOTFOUND &&
                                               rc != EL_ECONFLICT && rc != EL_EFORBIDDEN);
    return rc;
}

int el_store_ping(struct el_store *s)
{
    return s->ops->ping(s);
}

int el_store_version(struct el_store *s, char *out, size_t n)
{
    return s->ops->version(s, out, n);
}

int el_store_course_get(struct el_store *s, const char *id, struct el_course *out)
{
    uint64_t t0 = el_now_us();

    memset(out, 0, sizeof(*out));
    return counted(s->ops->course_get(s, id, out), t0);
}

int el_store_course_list(struct el_store *s, const struct el_course_query *q,
                         struct el_course_page *out)
{
    uint64_t t0 = el_now_us();

    memset(out, 0, sizeof(*out));
    return counted(s->ops->course_list(s, q, out), t0);
}

int el_store_course_insert(struct el_store *s, struct el_course *c)
{
    uint64_t t0 = el_now_us();

    return counted(s->ops->course_insert(s, c), t0);
}

int el_store_course_count(struct el_store *s, int64_t *n)
{
    uint64_t t0 = el_now_us();

    return counted(s->ops->course_count(s, n), t0);
}

int el_store_reset(struct el_store *s)
{
    return s->ops->reset(s);
}

/* ---- writes, users, tokens ------------------------------------ */

/* Run a backend op, timed and counted like every other query. A backend
 * that lacks the op (none should) answers EL_EIO rather than crash. */
#define COUNTED(op, ...)                                                                           \
    do {                                                                                           \
        uint64_t t0_ = el_now_us();                                                                \
        if (s->ops->op == NULL)                                                                    \
            return EL_EIO;                                                                         \
        return counted(s->ops->op(s, __VA_ARGS__), t0_);                                           \
    } while (0)

int el_store_course_update(struct el_store *s, const char *id, const struct el_course_patch *p,
                           int64_t now_ms, struct el_course *out)
{
    memset(out, 0, sizeof(*out));
    COUNTED(course_update, id, p, now_ms, out);
}

int el_store_module_update(struct el_store *s, const char *course_id, const char *module_id,
                           const struct el_module_patch *p, int64_t now_ms, struct el_course *out)
{
    memset(out, 0, sizeof(*out));
    COUNTED(module_update, course_id, module_id, p, now_ms, out);
}

int el_store_course_delete(struct el_store *s, const char *id)
{
    COUNTED(course_delete, id);
}

int el_store_enroll(struct el_store *s, const char *course_id, const char *user_id, int64_t *count)
{
    COUNTED(enroll, course_id, user_id, count);
}

int el_store_user_insert(struct el_store *s, struct el_user *u)
{
    COUNTED(user_insert, u);
}

int el_store_user_get(struct el_store *s, const char *id, struct el_user *out)
{
    memset(out, 0, sizeof(*out));
    COUNTED(user_get, id, out);
}

int el_store_user_get_by_email(struct el_store *s, const char *email, struct el_user *out)
{
    memset(out, 0, sizeof(*out));
    COUNTED(user_get_by_email, email, out);
}

int el_store_user_update(struct el_store *s, const char *id, const char *role,
                         const char *password_hash)
{
    COUNTED(user_update, id, role, password_hash);
}

int el_store_user_delete(struct el_store *s, const char *id)
{
    COUNTED(user_delete, id);
}

int el_store_refresh_insert(struct el_store *s, const char *jti, const char *user_id,
                            const char *sid, int64_t expires_ms)
{
    COUNTED(refresh_insert, jti, user_id, sid, expires_ms);
}

int el_store_refresh_claim(struct el_store *s, const char *jti, int64_t now_ms)
{
    COUNTED(refresh_claim, jti, now_ms);
}

int el_store_revoke(struct el_store *s, const char *id, int64_t expires_ms)
{
    COUNTED(revoke, id, expires_ms);
}

int el_store_revoked(struct el_store *s, const char *jti, const char *sid, int64_t now_ms,
                     int *revoked)
{
    *revoked = 0;
    COUNTED(revoked, jti, sid, now_ms, revoked);
}

int el_store_revocations_live(struct el_store *s, int64_t now_ms,
                              int (*fn)(const char *id, int64_t expires_ms, void *arg), void *arg)
{
    COUNTED(revocations_live, now_ms, fn, arg);
}

/* ---- issue 12 ------------------------------------------------------------ */

int el_store_unenroll(struct el_store *s, const char *course_id, const char *user_id,
                      int64_t *count)
{
    COUNTED(unenroll, course_id, user_id, count);
}

int el_store_enrollments(struct el_store *s, const char *user_id, int page, int page_size,
                         struct el_enrollment_page *out)
{
    memset(out, 0, sizeof(*out));
    if (page < 1 || page_size < 1 || page_size > EL_COURSE_PAGE_SIZE_MAX)
        return EL_EINVAL;
    COUNTED(enrollments, user_id, page, page_size, out);
}

int el_store_module_add(struct el_store *s, const char *course_id, struct el_module *m,
                        int64_t now_ms, struct el_course *out)
{
    memset(out, 0, sizeof(*out));
    COUNTED(module_add, course_id, m, now_ms, out);
}

int el_store_module_delete(struct el_store *s, const char *course_id, const char *module_id,
                           int64_t now_ms, struct el_course *out)
{
    memset(out, 0, sizeof(*out));
    COUNTED(module_delete, course_id, module_id, now_ms, out);
}

int el_store_rate(struct el_store *s, const char *course_id, const char *user_id, int stars,
                  int64_t now_ms, struct el_course *out)
{
    memset(out, 0, sizeof(*out));
    if (stars < 1 || stars > 5)
        return EL_EINVAL;
    COUNTED(rate, course_id, user_id, stars, now_ms, out);
}
