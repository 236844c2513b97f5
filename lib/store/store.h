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
 * Both pass the same contract tests (tests/store/test_store.c) unchanged and give
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

#include "model/course.h"
#include "core/el.h"
#include "model/user.h"

struct el_store;

/* The bound on every store call, in ms (DB_TIMEOUT_MS): server selection,
 * socket and busy timeouts of the stores opened afterwards. Process-wide;
 * set it once before el_store_open. Default 1500; clamped to 100-30000. */
void el_store_set_timeout_ms(int ms);
int el_store_timeout_ms(void);

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

/* The server's version into out ("7.0.2" for MongoDB's buildInfo, the
 * SQLite library's for sqlite), for `elearn-fcgi --check-config --connect`. */
int el_store_version(struct el_store *s, char *out, size_t n) EL_WUR;

/* Fill *out with course id (24 hex). */
int el_store_course_get(struct el_store *s, const char *id, struct el_course *out) EL_WUR;

/* Fill *out with one page of courses matching q, ordered as q->sort says
 * with _id ascending as the tie-breaker. Drafts (published false) are left
 * out when q->published_only; q->instructor_id, when set, keeps only that
 * instructor's courses. Items are what summaries need (course.h): every
 * module's content is "" (it is not read). */
int el_store_course_list(struct el_store *s, const struct el_course_query *q,
                         struct el_course_page *out) EL_WUR;

/* Insert c. When c->id is empty a new id is generated and written back into
 * c->id; module ids likewise. EL_ECONFLICT when the id exists. */
int el_store_course_insert(struct el_store *s, struct el_course *c) EL_WUR;

/* Number of courses. */
int el_store_course_count(struct el_store *s, int64_t *n) EL_WUR;

/* ---- course writes ------------------------------------------- */

/* Apply p to course id, set updated_at = now_ms, and fill *out with the
 * document as it is after the update. EL_ENOTFOUND when no such course. */
int el_store_course_update(struct el_store *s, const char *id, const struct el_course_patch *p,
                           int64_t now_ms, struct el_course *out) EL_WUR;

/* Apply p to module module_id of course course_id (both 24 hex), set the
 * course's updated_at, fill *out with the whole course after the update.
 * EL_ENOTFOUND when the course or the module does not exist. A change of
 * duration_minutes recomputes the course's (the module rule below). */
int el_store_module_update(struct el_store *s, const char *course_id, const char *module_id,
                           const struct el_module_patch *p, int64_t now_ms,
                           struct el_course *out) EL_WUR;

/* Delete course id and its enrollments. EL_ENOTFOUND when missing. */
int el_store_course_delete(struct el_store *s, const char *id) EL_WUR;

/* Enroll user_id in course_id once: records the enrollment and increments
 * enrollment_count, returning the new count in *count. EL_ECONFLICT when the
 * user is already enrolled (count unchanged), EL_ENOTFOUND when the course
 * does not exist. */
int el_store_enroll(struct el_store *s, const char *course_id, const char *user_id,
                    int64_t *count) EL_WUR;

/* ---- issue 12: drafts, my learning, modules, ratings ------------------- */

/* Undo user_id's enrollment in course_id and decrement enrollment_count,
 * returning the new count in *count. EL_ENOTFOUND when the user is not
 * enrolled (or there is no such course). A rating the user gave stays. */
int el_store_unenroll(struct el_store *s, const char *course_id, const char *user_id,
                      int64_t *count) EL_WUR;

/* One page (page >= 1, page_size 1-100) of the courses user_id is enrolled
 * in, newest enrollment first (ties: course id ascending); items carry no
 * modules. */
int el_store_enrollments(struct el_store *s, const char *user_id, int page, int page_size,
                         struct el_enrollment_page *out) EL_WUR;

/* The module rule: a course lasts as long as its modules together. Every
 * module write (add, delete, a module's duration_minutes) sets the course's
 * duration_minutes to the sum of its modules' (0 when none are left) in the
 * same atomic step, and bumps updated_at. As on create, where modules are
 * given their sum is the duration; a course PATCH may still set
 * duration_minutes directly (a course whose modules do not cover all of
 * it), until the next module write. */

/* Add module m to course_id. m->id is generated (written back); m->order 0
 * means "last" (one more than the largest order). *out is the course after
 * the write. EL_ENOTFOUND when no such course, EL_ETOOBIG when it already
 * has EL_COURSE_MODULES_MAX modules. */
int el_store_module_add(struct el_store *s, const char *course_id, struct el_module *m,
                        int64_t now_ms, struct el_course *out) EL_WUR;

/* Remove module module_id from course_id; *out is the course after it.
 * EL_ENOTFOUND when the course or the module does not exist. */
int el_store_module_delete(struct el_store *s, const char *course_id, const char *module_id,
                           int64_t now_ms, struct el_course *out) EL_WUR;

/* user_id gives course_id stars (1-5); a second call replaces the first.
 * rating_count counts raters and rating is the exact average (one decimal,
 * el_rating_average) under any number of concurrent raters. *out is the
 * course after the write. EL_ENOTFOUND when no such course, EL_EFORBIDDEN
 * when the user is not enrolled in it. */
int el_store_rate(struct el_store *s, const char *course_id, const char *user_id, int stars,
                  int64_t now_ms, struct el_course *out) EL_WUR;

/* ---- users ------------------------------------------------------------ */

/* Insert u (u->email already normalised). Generates u->id when empty and
 * sets created_at when 0. EL_ECONFLICT when the email exists. */
int el_store_user_insert(struct el_store *s, struct el_user *u) EL_WUR;
int el_store_user_get(struct el_store *s, const char *id, struct el_user *out) EL_WUR;
int el_store_user_get_by_email(struct el_store *s, const char *email, struct el_user *out) EL_WUR;

/* Change role and/or password hash (NULL leaves a field as it is).
 * EL_ENOTFOUND when no such user. */
int el_store_user_update(struct el_store *s, const char *id, const char *role,
                         const char *password_hash) EL_WUR;

/* Delete the user (their enrollments stay counted). EL_ENOTFOUND if none. */
int el_store_user_delete(struct el_store *s, const char *id) EL_WUR;

/* ---- refresh tokens and revocations ----------------------------------- */

/* Record refresh token jti (unused) of login sid for user_id. */
int el_store_refresh_insert(struct el_store *s, const char *jti, const char *user_id,
                            const char *sid, int64_t expires_ms) EL_WUR;

/* Atomically claim refresh token jti: of any number of concurrent claims
 * exactly one returns 0. EL_ECONFLICT when it was already used (reuse: the
 * caller revokes the login), EL_ENOTFOUND when unknown or expired at now_ms. */
int el_store_refresh_claim(struct el_store *s, const char *jti, int64_t now_ms) EL_WUR;

/* Revoke id -- a token's jti or a whole login's sid -- until expires_ms.
 * Idempotent (a later expiry wins). */
int el_store_revoke(struct el_store *s, const char *id, int64_t expires_ms) EL_WUR;

/* *revoked = 1 when jti or sid (either may be NULL) is revoked and the
 * revocation has not expired at now_ms. */
int el_store_revoked(struct el_store *s, const char *jti, const char *sid, int64_t now_ms,
                     int *revoked) EL_WUR;

/* Call fn for every revocation still live at now_ms (to write them back into
 * a Redis that lost them). Stops early and returns fn's value if non-zero. */
int el_store_revocations_live(struct el_store *s, int64_t now_ms,
                              int (*fn)(const char *id, int64_t expires_ms, void *arg),
                              void *arg) EL_WUR;

/* Delete every document (tests and `elearnctl reset` only). */
int el_store_reset(struct el_store *s) EL_WUR;

#endif /* EL_STORE_H */
