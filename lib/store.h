/* store.h -- the source of truth (L3) behind one interface, with two
 * implementations chosen by URI:
 *
 *   mongodb://...   MongoDB through libmongoc (store_mongo.c): a
 *                   mongoc_client_pool_t shared by all threads, indexes for
 *                   the list filters and sorts created at open, server
 *                   selection and socket timeouts of about 1.5 s.
 *   sqlite:PATH     an embedded SQLite file (store_sqlite.c): WAL mode, one
 *                   connection per thread, busy timeout about 1.5 s.
 *
 * Both pass the same contract tests (tests/test_store.c) unchanged and give
 * field-for-field identical documents. User input never reaches a query as
 * an operator: ids are validated hex, search text is matched literally
 * (regex-escaped for MongoDB, LIKE-escaped for SQLite), case-insensitively,
 * against title, description and tags.
 *
 * Every call is thread-safe and bounded in time. Errors: EL_ENOTFOUND (no
 * such document), EL_EUNAVAIL (database unreachable or timed out),
 * EL_ENOMEM, EL_EINVAL. Each query is counted in stats (el_stats_store_query)
 * by the common wrapper in store.c. */
#ifndef EL_STORE_H
#define EL_STORE_H

#include <stdint.h>

#include "course.h"
#include "el.h"

struct el_store;

/* Open the store named by uri; creates schema/indexes if missing. On failure
 * returns EL_EINVAL (bad URI) or EL_EUNAVAIL, with detail in err. An
 * unreachable MongoDB is not an error at open: the pool connects lazily and
 * calls fail with EL_EUNAVAIL until it is reachable (so the responder can
 * start and serve cached data while the database is down). */
int el_store_open(const char *uri, struct el_store **out, struct el_err *err) EL_WUR;

/* Close the store. NULL is a no-op. No call may be in flight. */
void el_store_close(struct el_store *s);

/* Release the calling thread's per-thread resources (SQLite connection). */
void el_store_thread_cleanup(struct el_store *s);

/* "mongodb" or "sqlite". */
const char *el_store_kind(const struct el_store *s);

/* 0 when the database answers now. */
int el_store_ping(struct el_store *s) EL_WUR;

/* Fill *out with course id (24 hex). */
int el_store_course_get(struct el_store *s, const char *id, struct el_course *out) EL_WUR;

/* Fill *out with one page of courses matching q (published or not: the list
 * shows every course in this version), ordered as q->sort says with _id
 * ascending as the tie-breaker. */
int el_store_course_list(struct el_store *s, const struct el_course_query *q,
                         struct el_course_page *out) EL_WUR;

/* Insert c. When c->id is empty a new id is generated and written back into
 * c->id; module ids likewise. EL_ECONFLICT when the id exists. */
int el_store_course_insert(struct el_store *s, struct el_course *c) EL_WUR;

/* Number of courses. */
int el_store_course_count(struct el_store *s, int64_t *n) EL_WUR;

/* Delete every document (tests and `elearnctl reset` only). */
int el_store_reset(struct el_store *s) EL_WUR;

#endif /* EL_STORE_H */
