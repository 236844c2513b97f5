/* test_auth.c -- logins, rotation, revocation and the validation path,
 * against a real SQLite store and the harness's redis-server (db 5). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "auth/auth.h"
#include "cache/key.h"
#include "auth/password.h"
#include "obs/stats.h"
#include "store/store.h"
#include "unit.h"

#define SECRET "test-secret-that-is-long-enough-0123456789"
#define NOW 1900000000

struct fx {
    struct el_store *store;
    struct el_redis *redis;
    struct el_l1 *l1;
    struct el_jwt *jwt;
    struct el_auth *auth;
};

static struct el_store *store; /* shared by the suite: one file */

static int suite_init(void)
{
    struct el_password_params cheap = {1024, 1, 1};
    char uri[600];

    el_password_setup(&cheap, 4);
    snprintf(uri, sizeof(uri), "sqlite:%s", unit_tmp_path("auth.db"));
    return el_store_open(uri, &store, NULL) == EL_OK ? 0 : -1;
}

static int suite_clean(void)
{
    el_store_close(store);
    return 0;
}

static void redis_cmd(const char *cmd)
{
    redisContext *c = unit_redis_raw(5);

    freeReplyObject(redisCommand(c, cmd));
    redisFree(c);
}

static void fx_open(struct fx *f, const char *redis_url)
{
    struct el_auth_opts o = {.access_ttl_s = 900, .refresh_ttl_s = 7 * 86400};

    memset(f, 0, sizeof(*f));
    f->store = store;
    if (redis_url)
        CU_ASSERT_EQUAL_FATAL(el_redis_new(redis_url, NULL, &f->redis, NULL), EL_OK);
    f->l1 = el_l1_new(1 << 20);
    CU_ASSERT_EQUAL_FATAL(el_jwt_new(SECRET, &f->jwt), EL_OK);
    f->auth = el_auth_new(f->jwt, f->store, f->redis, f->l1, &o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->auth);
}

static void fx_close(struct fx *f)
{
    el_auth_free(f->auth);
    el_jwt_free(f->jwt);
    el_l1_free(f->l1);
    el_redis_free(f->redis);
}

static void fresh(struct fx *f)
{
    CU_ASSERT_EQUAL_FATAL(el_store_reset(store), EL_OK);
    redis_cmd("FLUSHDB");
    fx_open(f, unit_redis_url(5));
    /* A live Redis starts out trusted for revocations. */
    redis_cmd("SET " EL_KEY_REVOCATIONS_SYNCED " 1");
}

static void bearer(char *out, size_t n, const char *token)
{
    snprintf(out, n, "Bearer %s", token);
}

static void must_register(struct fx *f, const char *email, struct el_user *u)
{
    struct el_err err = {0};
    CU_ASSERT_EQUAL_FATAL(el_auth_register(f->auth, email, "correct horse battery", "Ann", u, &err),
                          EL_OK);
}

static void must_login(struct fx *f, const char *email, struct el_token_pair *tp)
{
    struct el_err err = {0};
    int retry;
    CU_ASSERT_EQUAL_FATAL(el_auth_login(f->auth, email, "correct horse battery", "10.0.0.1", NOW,
                                        tp, &retry, &err),
                          EL_OK);
}

static int auth_as(struct fx *f, const char *token, struct el_principal *p, struct el_err *err)
{
    char h[EL_JWT_MAX + 16];
    bearer(h, sizeof(h), token);
    return el_auth_authenticate(f->auth, h, NOW + 1, p, err);
}

static void test_register_login_me(void)
{
    struct fx f;
    struct el_user u;
    struct el_token_pair tp;
    struct el_principal p;
    struct el_err err = {0};

    fresh(&f);
    must_register(&f, "Ann@Example.com", &u);
    CU_ASSERT_STRING_EQUAL(u.role, "student");
    CU_ASSERT_STRING_EQUAL(u.email, "ann@example.com");
    must_login(&f, "ann@example.com", &tp);
    CU_ASSERT_EQUAL(tp.expires_in, 900);
    CU_ASSERT_EQUAL(auth_as(&f, tp.access_token, &p, &err), EL_OK);
    CU_ASSERT_STRING_EQUAL(p.id, u.id);
    CU_ASSERT_STRING_EQUAL(p.role, "student");
    CU_ASSERT_STRING_EQUAL(p.email, "ann@example.com");
    CU_ASSERT_STRING_EQUAL(p.name, "Ann");
    /* Duplicate email (any case) is a conflict. */
    struct el_user dup;
    CU_ASSERT_EQUAL(el_auth_register(f.auth, "ANN@example.com", "another password", "A", &dup, &err),
                    EL_ECONFLICT);
    /* Validation. */
    CU_ASSERT_EQUAL(el_auth_register(f.auth, "not-an-email", "long enough pw", "A", &dup, &err),
                    EL_EINVAL);
    CU_ASSERT_EQUAL(el_auth_register(f.auth, "b@example.com", "short", "A", &dup, &err), EL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "password"));
    el_user_cleanup(&u);
    fx_close(&f);
}

static void test_hit_does_not_touch_store(void)
{
    struct fx f;
    struct el_user u;
    struct el_token_pair tp;
    struct el_principal p;
    struct el_err err = {0};
    uint64_t q0, q1, fails, us;

    fresh(&f);
    must_register(&f, "hit@example.com", &u);
    must_login(&f, "hit@example.com", &tp);
    CU_ASSERT_EQUAL(auth_as(&f, tp.access_token, &p, &err), EL_OK); /* session cached */
    el_stats_store_get(&q0, &fails, &us);
    for (int i = 0; i < 100; i++)
        CU_ASSERT_EQUAL(auth_as(&f, tp.access_token, &p, &err), EL_OK);
    el_stats_store_get(&q1, &fails, &us);
    CU_ASSERT_EQUAL(q1 - q0, 0);
    el_user_cleanup(&u);
    fx_close(&f);
}

static void test_wrong_token_types_and_garbage(void)
{
    struct fx f;
    struct el_user u;
    struct el_token_pair tp, tp2;
    struct el_principal p;
    struct el_err err = {0};

    fresh(&f);
    must_register(&f, "t@example.com", &u);
    must_login(&f, "t@example.com", &tp);
    /* A refresh token is no access token, and the reverse. */
    CU_ASSERT_EQUAL(auth_as(&f, tp.refresh_token, &p, &err), EL_EINVAL);
    CU_ASSERT_EQUAL(el_auth_refresh(f.auth, tp.access_token, NOW, &tp2, &err), EL_EINVAL);
    CU_ASSERT_EQUAL(el_auth_authenticate(f.auth, NULL, NOW, &p, &err), EL_EINVAL);
    CU_ASSERT_EQUAL(el_auth_authenticate(f.auth, "Basic abc", NOW, &p, &err), EL_EINVAL);
    CU_ASSERT_EQUAL(el_auth_authenticate(f.auth, "Bearer x.y.z", NOW, &p, &err), EL_EINVAL);
    /* Expired: the access token lives 900 s -- also once it has been
     * verified and remembered. */
    char h[EL_JWT_MAX + 16];
    bearer(h, sizeof(h), tp.access_token);
    CU_ASSERT_EQUAL(el_auth_authenticate(f.auth, h, NOW + 1, &p, &err), EL_OK);
    CU_ASSERT_EQUAL(el_auth_authenticate(f.auth, h, NOW + 901, &p, &err), EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, "Token expired");
    /* A remembered token with one byte changed is a different token. */
    h[strlen(h) - 2] = h[strlen(h) - 2] == 'A' ? 'B' : 'A';
    CU_ASSERT_EQUAL(el_auth_authenticate(f.auth, h, NOW + 1, &p, &err), EL_EINVAL);
    el_user_cleanup(&u);
    fx_close(&f);
}

static void test_bad_credentials_alike(void)
{
    struct fx f;
    struct el_user u;
    struct el_token_pair tp;
    struct el_err e1 = {0}, e2 = {0};
    int retry;

    fresh(&f);
    must_register(&f, "c@example.com", &u);
    CU_ASSERT_EQUAL(el_auth_login(f.auth, "c@example.com", "wrong password!", "1.1.1.1", NOW, &tp,
                                  &retry, &e1),
                    EL_EINVAL);
    CU_ASSERT_EQUAL(el_auth_login(f.auth, "nobody@example.com", "wrong password!", "1.1.1.1", NOW,
                                  &tp, &retry, &e2),
                    EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(e1.msg, "Invalid credentials");
    CU_ASSERT_STRING_EQUAL(e1.msg, e2.msg);
    el_user_cleanup(&u);
    fx_close(&f);
}

static void test_throttling(void)
{
    struct fx f;
    struct el_user u;
    struct el_token_pair tp;
    struct el_err err = {0};
    int retry = 0;

    fresh(&f);
    must_register(&f, "th@example.com", &u);
    for (int i = 0; i < EL_AUTH_MAX_FAIL_EMAIL; i++)
        CU_ASSERT_EQUAL(el_auth_login(f.auth, "th@example.com", "bad password", "2.2.2.2", NOW, &tp,
                                      &retry, &err),
                        EL_EINVAL);
    /* Blocked now -- even with the right password. */
    CU_ASSERT_EQUAL(el_auth_login(f.auth, "th@example.com", "correct horse battery", "2.2.2.2", NOW,
                                  &tp, &retry, &err),
                    EL_ELIMIT);
    CU_ASSERT(retry > 800 && retry <= 900);
    /* Per address: 20 failures over many emails block that address. */
    for (int i = 0; i < EL_AUTH_MAX_FAIL_IP - EL_AUTH_MAX_FAIL_EMAIL; i++) {
        char em[64];
        snprintf(em, sizeof(em), "x%d@example.com", i);
        CU_ASSERT_EQUAL(
            el_auth_login(f.auth, em, "bad password", "2.2.2.2", NOW, &tp, &retry, &err),
            EL_EINVAL);
    }
    CU_ASSERT_EQUAL(el_auth_login(f.auth, "fresh@example.com", "bad password", "2.2.2.2", NOW, &tp,
                                  &retry, &err),
                    EL_ELIMIT);
    /* Another address is not affected. */
    CU_ASSERT_EQUAL(el_auth_login(f.auth, "fresh@example.com", "bad password", "3.3.3.3", NOW, &tp,
                                  &retry, &err),
                    EL_EINVAL);
    el_user_cleanup(&u);
    fx_close(&f);
}

static void test_throttling_without_redis(void)
{
    struct fx f;
    struct el_user u;
    struct el_token_pair tp;
    struct el_err err = {0};
    int retry = 0;

    CU_ASSERT_EQUAL_FATAL(el_store_reset(store), EL_OK);
    fx_open(&f, "redis://127.0.0.1:1/0"); /* refused: counted locally */
    must_register(&f, "local@example.com", &u);
    for (int i = 0; i < EL_AUTH_MAX_FAIL_EMAIL; i++)
        CU_ASSERT_EQUAL(el_auth_login(f.auth, "local@example.com", "bad password", "4.4.4.4", NOW,
                                      &tp, &retry, &err),
                        EL_EINVAL);
    CU_ASSERT_EQUAL(el_auth_login(f.auth, "local@example.com", "correct horse battery", "4.4.4.4",
                                  NOW, &tp, &retry, &err),
                    EL_ELIMIT);
    CU_ASSERT(retry > 0);
    el_user_cleanup(&u);
    fx_close(&f);
}

static void test_refresh_rotation_and_reuse(void)
{
    struct fx f;
    struct el_user u;
    struct el_token_pair tp, tp2, tp3;
    struct el_principal p;
    struct el_err err = {0};

    fresh(&f);
    must_register(&f, "r@example.com", &u);
    must_login(&f, "r@example.com", &tp);
    CU_ASSERT_EQUAL(el_auth_refresh(f.auth, tp.refresh_token, NOW, &tp2, &err), EL_OK);
    CU_ASSERT(strcmp(tp.refresh_token, tp2.refresh_token) != 0);
    CU_ASSERT_EQUAL(auth_as(&f, tp2.access_token, &p, &err), EL_OK);
    /* The old refresh token again: reuse, the whole login is revoked. */
    CU_ASSERT_EQUAL(el_auth_refresh(f.auth, tp.refresh_token, NOW, &tp3, &err), EL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "reuse"));
    CU_ASSERT_EQUAL(el_auth_refresh(f.auth, tp2.refresh_token, NOW, &tp3, &err), EL_EINVAL);
    CU_ASSERT_EQUAL(auth_as(&f, tp2.access_token, &p, &err), EL_EINVAL);
    CU_ASSERT_EQUAL(auth_as(&f, tp.access_token, &p, &err), EL_EINVAL);
    /* A new login is unaffected. */
    must_login(&f, "r@example.com", &tp3);
    CU_ASSERT_EQUAL(auth_as(&f, tp3.access_token, &p, &err), EL_OK);
    el_user_cleanup(&u);
    fx_close(&f);
}

struct racer {
    struct fx *f;
    const char *token;
    int rc;
};

static void *race_refresh(void *arg)
{
    struct racer *r = arg;
    struct el_token_pair out;
    struct el_err err = {0};

    r->rc = el_auth_refresh(r->f->auth, r->token, NOW, &out, &err);
    return NULL;
}

static void test_concurrent_refresh_one_wins(void)
{
    enum { N = 8 };
    struct fx f;
    struct el_user u;
    struct el_token_pair tp;
    struct racer r[N];
    pthread_t th[N];
    int ok = 0;

    fresh(&f);
    must_register(&f, "race@example.com", &u);
    must_login(&f, "race@example.com", &tp);
    for (int i = 0; i < N; i++) {
        r[i] = (struct racer){&f, tp.refresh_token, 1};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, race_refresh, &r[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        ok += r[i].rc == EL_OK;
    }
    CU_ASSERT_EQUAL(ok, 1);
    el_user_cleanup(&u);
    fx_close(&f);
}

static void test_logout_revokes_everywhere(void)
{
    struct fx a, b;
    struct el_user u;
    struct el_token_pair tp, tp2;
    struct el_principal p;
    struct el_err err = {0};

    fresh(&a);
    fx_open(&b, unit_redis_url(5)); /* another process: its own L1 */
    must_register(&a, "lo@example.com", &u);
    must_login(&a, "lo@example.com", &tp);
    CU_ASSERT_EQUAL(auth_as(&b, tp.access_token, &p, &err), EL_OK);
    CU_ASSERT_EQUAL(auth_as(&a, tp.access_token, &p, &err), EL_OK);
    CU_ASSERT_EQUAL(el_auth_logout(a.auth, &p, NOW), EL_OK);
    CU_ASSERT_EQUAL(auth_as(&a, tp.access_token, &p, &err), EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, "Token has been revoked");
    CU_ASSERT_EQUAL(auth_as(&b, tp.access_token, &p, &err), EL_EINVAL);
    CU_ASSERT_EQUAL(el_auth_refresh(b.auth, tp.refresh_token, NOW, &tp2, &err), EL_EINVAL);
    el_user_cleanup(&u);
    fx_close(&a);
    fx_close(&b);
}

static void test_revocation_survives_flush(void)
{
    struct fx f;
    struct el_user u;
    struct el_token_pair tp;
    struct el_principal p;
    struct el_err err = {0};
    struct el_buf v;

    fresh(&f);
    must_register(&f, "fl@example.com", &u);
    must_login(&f, "fl@example.com", &tp);
    CU_ASSERT_EQUAL(auth_as(&f, tp.access_token, &p, &err), EL_OK);
    CU_ASSERT_EQUAL(el_auth_logout(f.auth, &p, NOW), EL_OK);
    redis_cmd("FLUSHDB"); /* Redis forgets every revocation */
    CU_ASSERT_EQUAL(auth_as(&f, tp.access_token, &p, &err), EL_EINVAL);
    /* ...and has them back, with the sentinel, after that first request. */
    el_buf_init(&v, 64);
    CU_ASSERT_EQUAL(el_redis_get(f.redis, EL_KEY_REVOCATIONS_SYNCED, &v), EL_OK);
    el_buf_cleanup(&v);
    CU_ASSERT_EQUAL(auth_as(&f, tp.access_token, &p, &err), EL_EINVAL);
    el_user_cleanup(&u);
    fx_close(&f);
}

static void test_revocation_with_redis_down(void)
{
    struct fx a, b;
    struct el_user u;
    struct el_token_pair tp;
    struct el_principal p;
    struct el_err err = {0};

    CU_ASSERT_EQUAL_FATAL(el_store_reset(store), EL_OK);
    fx_open(&a, "redis://127.0.0.1:1/0");
    fx_open(&b, "redis://127.0.0.1:1/0");
    must_register(&a, "down@example.com", &u);
    must_login(&a, "down@example.com", &tp);
    CU_ASSERT_EQUAL(auth_as(&b, tp.access_token, &p, &err), EL_OK);
    CU_ASSERT_EQUAL(el_auth_logout(a.auth, &p, NOW), EL_OK);
    CU_ASSERT_EQUAL(auth_as(&b, tp.access_token, &p, &err), EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, "Token has been revoked");
    el_user_cleanup(&u);
    fx_close(&a);
    fx_close(&b);
}

static void test_role_change_and_deletion(void)
{
    struct fx a, b;
    struct el_user u;
    struct el_token_pair tp;
    struct el_principal p;
    struct el_err err = {0};

    fresh(&a);
    fx_open(&b, unit_redis_url(5));
    must_register(&a, "role@example.com", &u);
    must_login(&a, "role@example.com", &tp);
    CU_ASSERT_EQUAL(auth_as(&b, tp.access_token, &p, &err), EL_OK);
    CU_ASSERT_STRING_EQUAL(p.role, "student");
    CU_ASSERT_EQUAL(el_store_user_update(store, u.id, "instructor", NULL), EL_OK);
    el_auth_session_invalidate(a.auth, u.id);
    CU_ASSERT_EQUAL(auth_as(&b, tp.access_token, &p, &err), EL_OK);
    CU_ASSERT_STRING_EQUAL(p.role, "instructor");
    CU_ASSERT_EQUAL(el_store_user_delete(store, u.id), EL_OK);
    el_auth_session_invalidate(a.auth, u.id);
    CU_ASSERT_EQUAL(auth_as(&b, tp.access_token, &p, &err), EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, "User not found");
    el_user_cleanup(&u);
    fx_close(&a);
    fx_close(&b);
}

void test_auth_register(void)
{
    CU_pSuite s = CU_add_suite("auth", suite_init, suite_clean);

    CU_add_test(s, "register, login, authenticate", test_register_login_me);
    CU_add_test(s, "a validation hit does not query the store", test_hit_does_not_touch_store);
    CU_add_test(s, "token types, expiry and garbage", test_wrong_token_types_and_garbage);
    CU_add_test(s, "unknown email and wrong password alike", test_bad_credentials_alike);
    CU_add_test(s, "throttling per email and per address", test_throttling);
    CU_add_test(s, "throttling without Redis", test_throttling_without_redis);
    CU_add_test(s, "refresh rotation, reuse revokes the login", test_refresh_rotation_and_reuse);
    CU_add_test(s, "concurrent refresh: exactly one wins", test_concurrent_refresh_one_wins);
    CU_add_test(s, "logout revokes on every process", test_logout_revokes_everywhere);
    CU_add_test(s, "revocation survives FLUSHDB", test_revocation_survives_flush);
    CU_add_test(s, "revocation enforced with Redis down", test_revocation_with_redis_down);
    CU_add_test(s, "role change and deletion take effect", test_role_change_and_deletion);
}
