/* fixtures.h -- the test data both store suites build from (test_store.c's
 * contract suite, run against every store, and test_store_mongo.c): one
 * place, so the two describe users and courses the same way. Everything
 * returned is heap memory owned by the caller (el_course_cleanup,
 * el_user_cleanup); allocation failure aborts the test binary. */
#ifndef EL_TEST_STORE_FIXTURES_H
#define EL_TEST_STORE_FIXTURES_H

#include <stdint.h>

struct el_course;
struct el_user;

/* One row of a test data set. */
struct fx_spec {
    const char *id; /* explicit id, or NULL to have the store make one */
    const char *title;
    const char *description; /* NULL: "plain words only" */
    const char *category;
    const char *difficulty;
    const char *tags[4]; /* NULL-terminated */
    int64_t created_at;
    int enrollment; /* also decides rating_count (a third) and published (even) */
    double rating;
    int duration; /* split over the modules */
    int nmods;
};

/* A course from s. Modules get orders 1..n and titles/contents derived
 * from the course title; when s has an id they get ids derived from it too
 * (characters 16-19 become "ff" and the module's index), so the same spec
 * makes the same document in any store. */
void fx_build(const struct fx_spec *s, struct el_course *c);

/* A small valid published course with no ids (the store makes them): one
 * tag, two modules of 45 minutes, fixed counters and times. */
void fx_course(struct el_course *c, const char *title, const char *desc, const char *tag);

/* A user with a fixed (well-formed, unusable) argon2id hash and a name
 * with non-ASCII bytes and a quote; no id (the store makes it). */
void fx_user(struct el_user *u, const char *email, const char *role);

#endif /* EL_TEST_STORE_FIXTURES_H */
