/* store_int.h -- what a store backend implements (internal to lib/).
 *
 * A backend provides an open function and fills a struct el_store whose
 * first member is the ops table; store.c dispatches through it, timing and
 * counting every query in one place so both backends are measured alike. */
#ifndef EL_STORE_INT_H
#define EL_STORE_INT_H

#include "store/store.h"

struct el_store_ops {
    const char *kind;
    void (*close)(struct el_store *s);
    void (*thread_cleanup)(struct el_store *s);
    int (*ping)(struct el_store *s);
    int (*version)(struct el_store *s, char *out, size_t n);
    int (*course_get)(struct el_store *s, const char *id, struct el_course *out);
    int (*course_list)(struct el_store *s, const struct el_course_query *q,
                       struct el_course_page *out);
    int (*course_insert)(struct el_store *s, struct el_course *c);
    int (*course_count)(struct el_store *s, int64_t *n);
    int (*reset)(struct el_store *s);
    /* writes, users, enrollments, tokens */
    int (*course_update)(struct el_store *s, const char *id, const struct el_course_patch *p,
                         int64_t now_ms, struct el_course *out);
    int (*module_update)(struct el_store *s, const char *course_id, const char *module_id,
                         const struct el_module_patch *p, int64_t now_ms, struct el_course *out);
    int (*course_delete)(struct el_store *s, const char *id);
    int (*enroll)(struct el_store *s, const char *course_id, const char *user_id, int64_t *count);
    int (*user_insert)(struct el_store *s, struct el_user *u);
    int (*user_get)(struct el_store *s, const char *id, struct el_user *out);
    int (*user_get_by_email)(struct el_store *s, const char *email, struct el_user *out);
    int (*user_update)(struct el_store *s, const char *id, const char *role,
                       const char *password_hash);
    int (*user_delete)(struct el_store *s, const char *id);
    int (*refresh_insert)(struct el_store *s, const char *jti, const char *user_id, const char *sid,
                          int64_t expires_ms);
    int (*refresh_claim)(struct el_store *s, const char *jti, int64_t now_ms);
    int (*revoke)(struct el_store *s, const char *id, int64_t expires_ms);
    int (*revoked)(struct el_store *s, const char *jti, const char *sid, int64_t now_ms,
                   int *revoked);
    int (*revocations_live)(struct el_store *s, int64_t now_ms,
                            int (*fn)(const char *id, int64_t expires_ms, void *arg), void *arg);
    /* issue 12 */
    int (*unenroll)(struct el_store *s, const char *course_id, const char *user_id, int64_t *count);
    int (*enrollments)(struct el_store *s, const char *user_id, int page, int page_size,
                       struct el_enrollment_page *out);
    int (*module_add)(struct el_store *s, const char *course_id, struct el_module *m,
                      int64_t now_ms, struct el_course *out);
    int (*module_delete)(struct el_store *s, const char *course_id, const char *module_id,
                         int64_t now_ms, struct el_course *out);
    int (*rate)(struct el_store *s, const char *course_id, const char *user_id, int stars,
                int64_t now_ms, struct el_course *out);
};

/* Every backend's state struct begins with this. */
struct el_store {
    const struct el_store_ops *ops;
};

/* Backend constructors, called by el_store_open() with the URI. */
int el_store_sqlite_open(const char *path, struct el_store **out, struct el_err *err);
int el_store_mongo_open(const char *uri, struct el_store **out, struct el_err *err);

#endif /* EL_STORE_INT_H */
