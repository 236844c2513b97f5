/* store.c -- the store interface's dispatcher (see store.h): picks a backend
 * by URI scheme and times and counts every query in one place. */
#include "store.h"

#include <string.h>

#include "stats.h"
#include "store_int.h"

int el_store_open(const char *uri, struct el_store **out, struct el_err *err)
{
    *out = NULL;
    if (uri == NULL || *uri == '\0')
        return el_err_set(err, EL_EINVAL, "empty database URI");
    if (strncmp(uri, "mongodb://", 10) == 0 || strncmp(uri, "mongodb+srv://", 14) == 0)
        return el_store_mongo_open(uri, out, err);
    if (strncmp(uri, "sqlite:", 7) == 0) {
        if (uri[7] == '\0')
            return el_err_set(err, EL_EINVAL, "sqlite: URI needs a path, e.g. sqlite:var/elearn.db");
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
    el_stats_store_query(el_now_us() - t0, rc != EL_OK && rc != EL_ENOTFOUND && rc != EL_ECONFLICT);
    return rc;
}

int el_store_ping(struct el_store *s)
{
    return s->ops->ping(s);
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
