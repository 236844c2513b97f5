/* test_auth.c -- logins, rotation, revocation and the validation path,
 * against a real SQLite store and the harness's redis-server (db 5). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "auth/auth.h"
#include "cache/bus.h"
#include "cache/key.h"
#include "cache/tiered.h"
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

/* redis_timeout_ms: 0 for the default (100 ms). */
static void fx_open_with(struct fx *f, const char *redis_url, int redis_timeout_ms)
{
    struct el_auth_opts o = {.access_ttl_s = 900, .refresh_ttl_s = 7 * 86400};
    struct el_redis_opts ro = {.timeout_ms = redis_timeout_ms};

    memset(f, 0, sizeof(*f));
    f->store = store;
    if (redis_url)
        CU_ASSERT_EQUAL_FATAL(el_redis_new(redis_url, &ro, &f->redis, NULL), EL_OK);
    f->l1 = el_l1_new(1 << 20);
    CU_ASSERT_EQUAL_FATAL(el_jwt_new(SECRET, &f->jwt), EL_OK);
    f->auth = el_auth_new(f->jwt, f->store, f->redis, f->l1, &o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->auth);
}

static void fx_open(struct fx *f, const char *redis_url)
{
    fx_open_with(f, redis_url, 0);
}

static int synced(struct el_auth *a)
{
    struct el_auth_sync_state st;

    el_auth_sync_state(a, &st);
    return st.synced;
}

/* The marker of the bucket holding id, or "" when it has none. */
static void marker_of(const char *id, char *out, size_t n)
{
    redisContext *c = redisConnect("127.0.0.1", unit_redis_port());
    char key[EL_KEY_MAX];
    redisReply *rep;

    CU_ASSERT_FATAL(c != NULL && c->err == 0);
    freeReplyObject(redisCommand(c, "SELECT 5"));
    el_key_auth_bucket(key, sizeof(key), el_key_auth_bucket_index(id));
    rep = redisCommand(c, "HGET %s @sync", key);
    snprintf(out, n, "%s", rep && rep->type == REDIS_REPLY_STRING ? rep->str : "");
    freeReplyObject(rep);
    redisFree(c);
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
    /* The first tick copies every bucket from the store into Redis (as the
     * responder's chores thread does at start); then Redis is trusted. */
    el_auth_tick(f->auth);
    CU_ASSERT_FATAL(synced(f->auth));
}

static void bearer(char *out, size_t n, const char *token)
{
    snprintf(out, n, "Bearer %s", token);
}

static void must_register(struct fx *f, const char *email, struct el_user *u)
{
    struct el_err err = {0};
    int retry;
    CU_ASSERT_EQUAL_FATAL(el_auth_register(f->auth, email, "correct horse battery", "Ann",
                                           "10.9.9.9", u, &retry, &err),
                          EL_OK);
}

static void must_login(struct fx *f, const char *email, struct el_token_pair *tp)
{
    struct el_err err = {0};
    int retry;
    CU_ASSERT_EQUAL_FATAL(
        el_auth_login(f->auth, email, "correct horse battery", "10.0.0.1", NOW, tp, &retry, &err),
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
    int retry;

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
    CU_ASSERT_EQUAL(el_auth_register(f.auth, "ANN@example.com", "another password", "A", "10.9.9.9",
                                     &dup, &retry, &err),
                    EL_ECONFLICT);
    /* Validation. */
    CU_ASSERT_EQUAL(el_auth_register(f.auth, "not-an-email", "long enough pw", "A", "10.9.9.9",
                                     &dup, &retry, &err),
                    EL_EINVAL);
    CU_ASSERT_EQUAL(
        el_auth_register(f.auth, "b@example.com", "short", "A", "10.9.9.9", &dup, &retry, &err),
        EL_EINVAL);
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
    CU_ASSERT_EQUAL(
        el_auth_login(f.auth, "c@example.com", "wrong password!", "1.1.1.1", NOW, &tp, &retry, &e1),
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

/* Many concurrent wrong passwords for one email: each attempt is counted
 * before its password is checked, so exactly EL_AUTH_MAX_FAIL_EMAIL of
 * them are checked and every other one is throttled. */
struct guesser {
    struct fx *f;
    const char *client;
    int rc;
};

static void *guess(void *arg)
{
    struct guesser *g = arg;
    struct el_token_pair tp;
    struct el_err err = {0};
    int retry;

    g->rc = el_auth_login(g->f->auth, "many@example.com", "bad password", g->client, NOW, &tp,
                          &retry, &err);
    return NULL;
}

static void concurrent_guesses(const char *redis_url)
{
    enum { N = 16 };
    struct fx f;
    struct el_user u;
    struct guesser g[N];
    pthread_t th[N];
    int checked = 0, limited = 0;

    CU_ASSERT_EQUAL_FATAL(el_store_reset(store), EL_OK);
    if (redis_url)
        redis_cmd("FLUSHDB");
    /* Redis gets 5 s, not 100 ms: this counts attempts, and a loaded
     * machine that made Redis miss 100 ms would open the breaker part-way
     * and count the rest locally -- the designed fallback, not this test. */
    fx_open_with(&f, redis_url, 5000);
    must_register(&f, "many@example.com", &u);
    for (int i = 0; i < N; i++) {
        g[i] = (struct guesser){&f, i % 2 ? "5.5.5.5" : "6.6.6.6", 0};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, guess, &g[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        checked += g[i].rc == EL_EINVAL;
        limited += g[i].rc == EL_ELIMIT;
    }
    CU_ASSERT_EQUAL(checked, EL_AUTH_MAX_FAIL_EMAIL);
    CU_ASSERT_EQUAL(limited, N - EL_AUTH_MAX_FAIL_EMAIL);
    el_user_cleanup(&u);
    fx_close(&f);
}

static void test_throttle_concurrent(void)
{
    concurrent_guesses(unit_redis_url(5));
}

static void test_throttle_concurrent_local(void)
{
    concurrent_guesses("redis://127.0.0.1:1/0");
}

/* A successful login gives its address attempt back: 20 good logins from
 * one address never throttle it. */
static void test_success_not_counted(void)
{
    struct fx f;
    struct el_user u;
    struct el_token_pair tp;

    fresh(&f);
    must_register(&f, "good@example.com", &u);
    for (int i = 0; i < EL_AUTH_MAX_FAIL_IP + 5; i++)
        must_login(&f, "good@example.com", &tp);
    el_user_cleanup(&u);
    fx_close(&f);
}

static void test_register_throttled(void)
{
    struct fx f;
    struct el_user u;
    struct el_err err = {0};
    char em[64];
    int retry = 0, i;

    fresh(&f);
    for (i = 0; i < EL_AUTH_MAX_REGISTER_IP; i++) {
        snprintf(em, sizeof(em), "reg%d@example.com", i);
        /* Invalid input is not an attempt: it never reaches the store. */
        CU_ASSERT_EQUAL(el_auth_register(f.auth, em, "short", "Ann", "7.7.7.7", &u, &retry, &err),
                        EL_EINVAL);
        CU_ASSERT_EQUAL(el_auth_register(f.auth, em, "correct horse battery", "Ann", "7.7.7.7", &u,
                                         &retry, &err),
                        EL_OK);
        el_user_cleanup(&u);
    }
    CU_ASSERT_EQUAL(el_auth_register(f.auth, "one-more@example.com", "correct horse battery", "Ann",
                                     "7.7.7.7", &u, &retry, &err),
                    EL_ELIMIT);
    CU_ASSERT(retry > 800 && retry <= 900);
    CU_ASSERT_EQUAL(el_auth_register(f.auth, "one-more@example.com", "correct horse battery", "Ann",
                                     "8.8.8.8", &u, &retry, &err),
                    EL_OK);
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
    el_auth_tick(b.auth);
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
    char m[64], jti[EL_JTI_LEN];

    fresh(&f);
    must_register(&f, "fl@example.com", &u);
    must_login(&f, "fl@example.com", &tp);
    CU_ASSERT_EQUAL(auth_as(&f, tp.access_token, &p, &err), EL_OK);
    CU_ASSERT_EQUAL(el_auth_logout(f.auth, &p, NOW), EL_OK);
    snprintf(jti, sizeof(jti), "%s", p.jti);
    redis_cmd("FLUSHDB"); /* Redis forgets every revocation, markers too */
    CU_ASSERT_EQUAL(auth_as(&f, tp.access_token, &p, &err), EL_EINVAL);
    CU_ASSERT_FALSE(synced(f.auth));
    /* ...and has them back, with the markers, after the next tick. */
    el_auth_tick(f.auth);
    CU_ASSERT(synced(f.auth));
    marker_of(jti, m, sizeof(m));
    CU_ASSERT_EQUAL(strlen(m), 40); /* the master's run_id */
    CU_ASSERT_EQUAL(auth_as(&f, tp.access_token, &p, &err), EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, "Token has been revoked");
    el_user_cleanup(&u);
    fx_close(&f);
}

/* Eviction takes a bucket -- revocations and marker together, as they are
 * one hash -- while every other key (and the other buckets' markers)
 * stays: the token is still refused, by the store, until the bucket is
 * copied back. */
static void test_revocation_survives_eviction(void)
{
    struct fx f;
    struct el_user u;
    struct el_token_pair tp;
    struct el_principal p;
    struct el_err err = {0};
    char key[EL_KEY_MAX], cmd[EL_KEY_MAX + 8], m[64], jti[EL_JTI_LEN];

    fresh(&f);
    must_register(&f, "ev@example.com", &u);
    must_login(&f, "ev@example.com", &tp);
    CU_ASSERT_EQUAL(auth_as(&f, tp.access_token, &p, &err), EL_OK);
    CU_ASSERT_EQUAL(el_auth_logout(f.auth, &p, NOW), EL_OK);
    snprintf(jti, sizeof(jti), "%s", p.jti);
    el_key_auth_bucket(key, sizeof(key), el_key_auth_bucket_index(p.jti));
    snprintf(cmd, sizeof(cmd), "DEL %s", key);
    redis_cmd(cmd);
    el_key_auth_bucket(key, sizeof(key), el_key_auth_bucket_index(p.sid));
    snprintf(cmd, sizeof(cmd), "DEL %s", key);
    redis_cmd(cmd);
    CU_ASSERT_EQUAL(auth_as(&f, tp.access_token, &p, &err), EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, "Token has been revoked");
    el_auth_tick(f.auth);
    marker_of(jti, m, sizeof(m));
    CU_ASSERT_EQUAL(strlen(m), 40);
    CU_ASSERT_EQUAL(auth_as(&f, tp.access_token, &p, &err), EL_EINVAL);
    el_user_cleanup(&u);
    fx_close(&f);
}

/* A bucket copied to another master (what a promoted replica holds after
 * a failover: the old master's marker, maybe without the last revocation)
 * is not trusted: the marker must name the server that answers. */
static void test_marker_of_another_master(void)
{
    struct fx f;
    struct el_user u;
    struct el_token_pair tp;
    struct el_principal p;
    struct el_err err = {0};
    char key[EL_KEY_MAX], cmd[2 * EL_KEY_MAX], m[64], jti[EL_JTI_LEN];

    fresh(&f);
    must_register(&f, "fo@example.com", &u);
    must_login(&f, "fo@example.com", &tp);
    CU_ASSERT_EQUAL(auth_as(&f, tp.access_token, &p, &err), EL_OK);
    CU_ASSERT_EQUAL(el_store_revoke(store, p.jti, (NOW + 900) * 1000LL), EL_OK);
    snprintf(jti, sizeof(jti), "%s", p.jti);
    /* The revocation reached the store only (lost with the old master);
     * the bucket says it is complete -- for another server. */
    el_key_auth_bucket(key, sizeof(key), el_key_auth_bucket_index(p.jti));
    snprintf(cmd, sizeof(cmd), "HSET %s @sync 0123456789012345678901234567890123456789", key);
    redis_cmd(cmd);
    CU_ASSERT_EQUAL(auth_as(&f, tp.access_token, &p, &err), EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, "Token has been revoked");
    el_auth_tick(f.auth);
    marker_of(jti, m, sizeof(m));
    CU_ASSERT_EQUAL(strlen(m), 40);
    CU_ASSERT_STRING_NOT_EQUAL(m, "0123456789012345678901234567890123456789");
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
    el_auth_tick(b.auth);
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

/* ---- auth without a round trip (the local path) ------------------------- */

struct bused {
    struct fx f;
    struct el_bus *bus;
};

static void revoked_to_auth(void *arg, const char *id, int64_t ms)
{
    struct bused *b = arg;
    el_auth_revoked_heard(b->f.auth, id, ms);
}

static void heard_key(void *arg, const char *key)
{
    struct bused *b = arg;
    el_tiered_dropped(b->f.l1, key);
}

static void heard_again(void *arg, uint64_t silent_ms)
{
    struct bused *b = arg;
    el_auth_bus_heard(b->f.auth, silent_ms);
}

static void heard_reset(void *arg, const char *why)
{
    struct bused *b = arg;
    EL_UNUSED(why);
    el_tiered_dropped_all(b->f.l1);
}

/* A "process": auth with its own L1, Redis handle and bus. */
static void bused_open(struct bused *b)
{
    struct el_bus_opts bo = {.heartbeat_ms = 50, .max_stale_ms = 1000};
    struct el_bus_handlers h = {b, heard_key, NULL, NULL, heard_reset, NULL, NULL, NULL};
    struct el_err err = {0};

    fx_open(&b->f, unit_redis_url(5));
    h.revoked = revoked_to_auth;
    h.heard = heard_again;
    CU_ASSERT_EQUAL_FATAL(el_bus_start(unit_redis_url(5), b->f.redis, &h, &bo, &b->bus, &err),
                          EL_OK);
    el_auth_set_bus(b->f.auth, b->bus);
}

static void bused_close(struct bused *b)
{
    el_bus_stop(b->bus);
    fx_close(&b->f);
}

static int local_ok(struct bused *b)
{
    struct el_auth_sync_state st;

    el_auth_tick(b->f.auth);
    el_auth_sync_state(b->f.auth, &st);
    return st.local_trusted && st.synced;
}

static uint64_t local_hits(struct bused *b)
{
    struct el_auth_sync_state st;

    el_auth_sync_state(b->f.auth, &st);
    return st.local_hits;
}

static void until(int (*cond)(struct bused *), struct bused *b)
{
    uint64_t deadline = el_now_ms() + 5000;

    while (!cond(b) && el_now_ms() < deadline)
        usleep(5000);
    CU_ASSERT_FATAL(cond(b));
}

/* Two "processes" on an empty store and Redis, both trusting their local
 * state, and a user of email registered and logged in (*tp) on a. */
static void two_processes(struct bused *a, struct bused *b, const char *email, struct el_user *u,
                          struct el_token_pair *tp)
{
    CU_ASSERT_EQUAL_FATAL(el_store_reset(store), EL_OK);
    redis_cmd("FLUSHDB");
    bused_open(a);
    bused_open(b);
    until(local_ok, a);
    until(local_ok, b);
    must_register(&a->f, email, u);
    must_login(&a->f, email, tp);
}

static void test_local_path(void)
{
    struct bused a, b;
    struct el_user u;
    struct el_token_pair tp, tp2;
    struct el_principal p;
    struct el_err err = {0};
    uint64_t h0, deadline;
    int rc;

    two_processes(&a, &b, "local@example.com", &u, &tp);
    must_login(&a.f, "local@example.com", &tp2);
    /* The first request on b fills its L1 session from Redis; the next
     * ones need no round trip. */
    CU_ASSERT_EQUAL(auth_as(&b.f, tp.access_token, &p, &err), EL_OK);
    h0 = local_hits(&b);
    for (int i = 0; i < 20; i++)
        CU_ASSERT_EQUAL(auth_as(&b.f, tp.access_token, &p, &err), EL_OK);
    CU_ASSERT_EQUAL(local_hits(&b) - h0, 20);
    CU_ASSERT_STRING_EQUAL(p.role, "student");

    /* A logout on a reaches b through the bus. */
    CU_ASSERT_EQUAL(auth_as(&a.f, tp.access_token, &p, &err), EL_OK);
    CU_ASSERT_EQUAL(el_auth_logout(a.f.auth, &p, NOW), EL_OK);
    CU_ASSERT_EQUAL(auth_as(&a.f, tp.access_token, &p, &err), EL_EINVAL); /* at once here */
    deadline = el_now_ms() + 2000;
    while ((rc = auth_as(&b.f, tp.access_token, &p, &err)) == EL_OK && el_now_ms() < deadline)
        usleep(1000);
    CU_ASSERT_EQUAL(rc, EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, "Token has been revoked");
    CU_ASSERT_EQUAL(auth_as(&b.f, tp2.access_token, &p, &err), EL_OK); /* the other login */

    /* A role change: a's invalidation drops b's L1 copy through the bus. */
    CU_ASSERT_EQUAL(el_store_user_update(store, u.id, "instructor", NULL), EL_OK);
    el_auth_session_invalidate(a.f.auth, u.id);
    deadline = el_now_ms() + 2000;
    while ((rc = auth_as(&b.f, tp2.access_token, &p, &err)) == EL_OK &&
           strcmp(p.role, "instructor") != 0 && el_now_ms() < deadline)
        usleep(1000);
    CU_ASSERT_EQUAL(rc, EL_OK);
    CU_ASSERT_STRING_EQUAL(p.role, "instructor");

    /* The bus stops: b no longer trusts its local state (once the
     * channel is stale) and asks Redis -- still correct. */
    el_bus_stop(b.bus);
    b.bus = NULL;
    el_auth_set_bus(b.f.auth, NULL);
    h0 = local_hits(&b);
    CU_ASSERT_EQUAL(auth_as(&b.f, tp2.access_token, &p, &err), EL_OK);
    CU_ASSERT_EQUAL(auth_as(&b.f, tp.access_token, &p, &err), EL_EINVAL);
    CU_ASSERT_EQUAL(local_hits(&b), h0);
    el_user_cleanup(&u);
    bused_close(&a);
    bused_close(&b);
}

static int local_untrusted(struct bused *b)
{
    struct el_auth_sync_state st;

    el_auth_sync_state(b->f.auth, &st); /* no tick: nothing reloads it */
    return !st.local_trusted;
}

/* Reads of auth data from Redis so far (INFO commandstats): the calls
 * el_auth_authenticate makes when the local state cannot answer -- HMGETs
 * (lib/auth/auth.c reads with nothing else; HGET for good measure). Not
 * GET: the bus's heartbeat lease runs one inside its script every 50 ms,
 * and commandstats counts a script's calls, so a GET count moves under
 * any measurement that takes longer than that (a loaded machine). */
static long long redis_reads(void)
{
    redisContext *c = redisConnect("127.0.0.1", unit_redis_port());
    static const char *const cmds[] = {"cmdstat_hmget:calls=", "cmdstat_hget:calls="};
    redisReply *rep;
    long long n = 0;

    CU_ASSERT_FATAL(c != NULL && c->err == 0);
    rep = redisCommand(c, "INFO commandstats");
    CU_ASSERT_FATAL(rep != NULL && rep->type == REDIS_REPLY_STRING);
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        const char *at = strstr(rep->str, cmds[i]);

        if (at)
            n += strtoll(at + strlen(cmds[i]), NULL, 10);
    }
    freeReplyObject(rep);
    redisFree(c);
    return n;
}

static int check_local_as(struct fx *f, const char *token, struct el_principal *p)
{
    char h[EL_JWT_MAX + 16];

    bearer(h, sizeof(h), token);
    return el_auth_check_local(f->auth, h, NOW + 1, p);
}

static uint64_t nowait_hits(struct el_auth *a)
{
    struct el_auth_sync_state st;

    el_auth_sync_state(a, &st);
    return st.nowait_hits;
}

/* el_auth_check_local answers only from local state: it refuses ("not
 * local", EL_EUNAVAIL) -- with no Redis read and no store query, i.e.
 * without anything that could block -- when the session is not in L1,
 * when the token is bad or revoked, and when the bus cannot vouch. */
/* Redis hangs (CLIENT PAUSE, 900 ms: over the local window of 600 ms, under
 * the bus's max_stale of 1000) across a logout on a: its announcement and
 * its Redis write both fail. b, which heard the channel before and hears
 * it again after, must never accept the token once the logout returned:
 * not from its local set (complete before the silence) and not from its
 * Redis buckets (whose markers still name the server). */
static void test_revocation_while_redis_hangs(void)
{
    struct bused a, b;
    struct el_user u;
    struct el_token_pair tp;
    struct el_principal p;
    struct el_err err = {0};
    uint64_t paused_until, deadline;
    int accepted = 0, asked = 0;

    two_processes(&a, &b, "hang@example.com", &u, &tp);
    CU_ASSERT_EQUAL(auth_as(&b.f, tp.access_token, &p, &err), EL_OK); /* fills b's L1 */
    CU_ASSERT_EQUAL(auth_as(&b.f, tp.access_token, &p, &err), EL_OK); /* local */
    CU_ASSERT_EQUAL(auth_as(&a.f, tp.access_token, &p, &err), EL_OK);

    paused_until = el_now_ms() + 900;
    redis_cmd("CLIENT PAUSE 900 ALL");
    CU_ASSERT_EQUAL(el_auth_logout(a.f.auth, &p, NOW), EL_OK);
    CU_ASSERT(el_now_ms() < paused_until); /* answered while Redis still hangs */
    /* From now on, through the pause and for 1.5 s after it: refused. */
    deadline = paused_until + 1500;
    while (el_now_ms() < deadline) {
        asked++;
        if (auth_as(&b.f, tp.access_token, &p, &err) != EL_EINVAL)
            accepted++;
        el_auth_tick(b.f.auth);
        usleep(2000);
    }
    CU_ASSERT(asked > 100);
    CU_ASSERT_EQUAL(accepted, 0);
    el_user_cleanup(&u);
    bused_close(&a);
    bused_close(&b);
}

/* A silence longer than the local window (600 ms), as the bus reports it:
 * the local set is not trusted until it has been read again from the
 * store; a shorter one changes nothing. */
static void test_silence_distrusts_until_reloaded(void)
{
    struct bused b;
    struct el_auth_sync_state st;

    CU_ASSERT_EQUAL_FATAL(el_store_reset(store), EL_OK);
    redis_cmd("FLUSHDB");
    bused_open(&b);
    until(local_ok, &b);
    el_auth_bus_heard(b.f.auth, 600);
    el_auth_sync_state(b.f.auth, &st);
    CU_ASSERT(st.local_trusted && st.synced);
    el_auth_bus_heard(b.f.auth, 601);
    el_auth_sync_state(b.f.auth, &st);
    CU_ASSERT_FALSE(st.local_trusted);
    until(local_ok, &b); /* ticks: loaded and copied again */
    bused_close(&b);
}

static void test_check_local_never_blocks(void)
{
    struct bused a;
    struct el_user u;
    struct el_token_pair tp, tp2;
    struct el_principal p;
    struct el_err err = {0};
    char bad[EL_JWT_MAX], skey[EL_KEY_MAX];
    uint64_t q0, q1, fails, us, n0;
    long long r0;

    CU_ASSERT_EQUAL_FATAL(el_store_reset(store), EL_OK);
    redis_cmd("FLUSHDB");
    bused_open(&a);
    /* Not loaded yet (no tick): the local state cannot vouch. */
    must_register(&a.f, "nowait@example.com", &u);
    must_login(&a.f, "nowait@example.com", &tp);
    must_login(&a.f, "nowait@example.com", &tp2);
    CU_ASSERT_EQUAL(check_local_as(&a.f, tp.access_token, &p), EL_EUNAVAIL);
    until(local_ok, &a);

    /* Trusted, but the session is not in L1: refused, nothing read. */
    snprintf(skey, sizeof(skey), "session:%s", u.id);
    el_tiered_dropped(a.f.l1, skey);
    r0 = redis_reads();
    el_stats_store_get(&q0, &fails, &us);
    n0 = nowait_hits(a.f.auth);
    CU_ASSERT_EQUAL(check_local_as(&a.f, tp.access_token, &p), EL_EUNAVAIL);
    CU_ASSERT_STRING_EQUAL(p.id, ""); /* nothing half-filled */
    el_stats_store_get(&q1, &fails, &us);
    CU_ASSERT_EQUAL(redis_reads(), r0);
    CU_ASSERT_EQUAL(q1 - q0, 0);
    /* The control: the full path does read (Redis), and fills L1. */
    CU_ASSERT_EQUAL(auth_as(&a.f, tp.access_token, &p, &err), EL_OK);
    CU_ASSERT(redis_reads() > r0);

    /* Now everything is local: answered, the same principal, no read. */
    r0 = redis_reads();
    el_stats_store_get(&q0, &fails, &us);
    memset(&p, 0, sizeof(p));
    CU_ASSERT_EQUAL(check_local_as(&a.f, tp.access_token, &p), EL_OK);
    CU_ASSERT_STRING_EQUAL(p.id, u.id);
    CU_ASSERT_STRING_EQUAL(p.role, "student");
    CU_ASSERT_STRING_EQUAL(p.email, "nowait@example.com");
    CU_ASSERT_STRING_EQUAL(p.name, "Ann");
    CU_ASSERT_EQUAL(nowait_hits(a.f.auth) - n0, 1);
    el_stats_store_get(&q1, &fails, &us);
    CU_ASSERT_EQUAL(redis_reads(), r0);
    CU_ASSERT_EQUAL(q1 - q0, 0);

    /* Bad input is the full path's to word: refused here. */
    CU_ASSERT_EQUAL(el_auth_check_local(a.f.auth, NULL, NOW + 1, &p), EL_EUNAVAIL);
    CU_ASSERT_EQUAL(el_auth_check_local(a.f.auth, "Basic abc", NOW + 1, &p), EL_EUNAVAIL);
    snprintf(bad, sizeof(bad), "%s", tp.access_token);
    bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == 'A' ? 'B' : 'A';
    CU_ASSERT_EQUAL(check_local_as(&a.f, bad, &p), EL_EUNAVAIL);
    CU_ASSERT_EQUAL(check_local_as(&a.f, tp.refresh_token, &p), EL_EUNAVAIL);
    CU_ASSERT_EQUAL(el_auth_check_local(a.f.auth, "Bearer x", NOW + 1, &p), EL_EUNAVAIL);

    /* Revoked: refused here, 401 on the full path. */
    CU_ASSERT_EQUAL(auth_as(&a.f, tp2.access_token, &p, &err), EL_OK);
    CU_ASSERT_EQUAL(el_auth_logout(a.f.auth, &p, NOW), EL_OK);
    CU_ASSERT_EQUAL(check_local_as(&a.f, tp2.access_token, &p), EL_EUNAVAIL);
    CU_ASSERT_EQUAL(auth_as(&a.f, tp2.access_token, &p, &err), EL_EINVAL);
    /* The logout dropped the user's session from L1: refilled by the full
     * path, the other login is local again. */
    CU_ASSERT_EQUAL(check_local_as(&a.f, tp.access_token, &p), EL_EUNAVAIL);
    CU_ASSERT_EQUAL(auth_as(&a.f, tp.access_token, &p, &err), EL_OK);
    CU_ASSERT_EQUAL(check_local_as(&a.f, tp.access_token, &p), EL_OK);

    /* The bus cannot vouch (none): refused though the session is in L1
     * and the token good; the full path still answers. */
    el_auth_set_bus(a.f.auth, NULL);
    r0 = redis_reads();
    CU_ASSERT_EQUAL(check_local_as(&a.f, tp.access_token, &p), EL_EUNAVAIL);
    CU_ASSERT_EQUAL(redis_reads(), r0);
    CU_ASSERT_EQUAL(auth_as(&a.f, tp.access_token, &p, &err), EL_OK);
    el_auth_set_bus(a.f.auth, a.bus);
    CU_ASSERT_EQUAL(check_local_as(&a.f, tp.access_token, &p), EL_OK);

    /* The bus loses its connection (a reset): untrusted until the tick
     * reloads the set -- refused meanwhile, whatever L1 holds. */
    redis_cmd("CLIENT KILL TYPE pubsub");
    until(local_untrusted, &a);
    CU_ASSERT_EQUAL(check_local_as(&a.f, tp.access_token, &p), EL_EUNAVAIL);
    CU_ASSERT_EQUAL(auth_as(&a.f, tp.access_token, &p, &err), EL_OK);
    el_user_cleanup(&u);
    bused_close(&a);
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
    CU_add_test(s, "concurrent guesses never pass the limit", test_throttle_concurrent);
    CU_add_test(s, "concurrent guesses, Redis down", test_throttle_concurrent_local);
    CU_add_test(s, "successful logins are not counted", test_success_not_counted);
    CU_add_test(s, "registration throttled per address", test_register_throttled);
    CU_add_test(s, "refresh rotation, reuse revokes the login", test_refresh_rotation_and_reuse);
    CU_add_test(s, "concurrent refresh: exactly one wins", test_concurrent_refresh_one_wins);
    CU_add_test(s, "logout revokes on every process", test_logout_revokes_everywhere);
    CU_add_test(s, "revocation survives FLUSHDB", test_revocation_survives_flush);
    CU_add_test(s, "revocation survives eviction of its bucket", test_revocation_survives_eviction);
    CU_add_test(s, "a marker of another master is not trusted", test_marker_of_another_master);
    CU_add_test(s, "local path: no round trip, revocations and role changes heard",
                test_local_path);
    CU_add_test(s, "a logout while Redis hangs is not undone when it resumes",
                test_revocation_while_redis_hangs);
    CU_add_test(s, "a silence on the bus: the local set is read again",
                test_silence_distrusts_until_reloaded);
    CU_add_test(s, "check_local refuses, never blocks, unless all is local",
                test_check_local_never_blocks);
    CU_add_test(s, "revocation enforced with Redis down", test_revocation_with_redis_down);
    CU_add_test(s, "role change and deletion take effect", test_role_change_and_deletion);
}
