/* auth.c -- logins, rotation, revocation and the validation path (see
 * auth.h for the design and why it costs one Redis round trip).
 *
 * Cached sessions are the bytes "role \x1f email \x1f name": splitting three
 * fields is all a request does with them, and the same bytes live in L1
 * and in Redis. */
#include "auth/auth.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/password.h"
#include "core/blob.h"
#include "core/hash.h"
#include "core/buf.h"
#include "cache/key.h"
#include "obs/stats.h"

#define SEP '\x1f'
#define LOCAL_FAILS 512 /* process-local throttle slots (Redis down) */

struct local_fail {
    char key[EL_KEY_MAX];
    int64_t count;
    uint64_t window_end; /* ms, monotonic */
};

/* Access tokens already verified (signature and claims), so a token used
 * for many requests pays for HMAC and JSON decoding once. Direct-mapped by
 * a hash of the token; a slot holds the whole token, compared in full, so a
 * collision can only miss. Revocation is still checked on every request. */
#define VERIFIED_SLOTS 4096
#define VERIFIED_LOCKS 64

struct verified {
    char token[EL_JWT_MAX];
    size_t len;
    struct el_token_claims claims;
};

struct el_auth {
    struct el_jwt *jwt;
    struct el_store *store;
    struct el_redis *redis;
    struct el_l1 *l1;
    struct el_auth_opts opts;
    atomic_int redis_dirty;   /* a revocation write to Redis failed */
    _Atomic uint64_t synced_epoch; /* Redis breaker epoch of the last
                                    * copy of revocations into Redis */
    pthread_mutex_t sync_lock;
    pthread_mutex_t fail_lock;
    struct local_fail fails[LOCAL_FAILS];
    pthread_mutex_t vlock[VERIFIED_LOCKS];
    struct verified *verified; /* VERIFIED_SLOTS */
};

/* Best-effort cache writes: the store already holds the truth. */
static void best_effort(int rc)
{
    EL_UNUSED(rc);
}

struct el_auth *el_auth_new(struct el_jwt *jwt, struct el_store *store, struct el_redis *redis,
                            struct el_l1 *l1, const struct el_auth_opts *opts)
{
    struct el_auth *a = calloc(1, sizeof(*a));

    if (a == NULL)
        return NULL;
    a->jwt = jwt;
    a->store = store;
    a->redis = redis;
    a->l1 = l1;
    a->opts = *opts;
    if (a->opts.session_ttl_s <= 0)
        a->opts.session_ttl_s = 3600;
    if (a->opts.session_l1_ms <= 0)
        a->opts.session_l1_ms = 5000;
    atomic_init(&a->synced_epoch, el_redis_epoch(redis));
    el_must(pthread_mutex_init(&a->sync_lock, NULL));
    el_must(pthread_mutex_init(&a->fail_lock, NULL));
    for (int i = 0; i < VERIFIED_LOCKS; i++)
        el_must(pthread_mutex_init(&a->vlock[i], NULL));
    a->verified = calloc(VERIFIED_SLOTS, sizeof(*a->verified)); /* NULL: no cache */
    return a;
}

void el_auth_free(struct el_auth *a)
{
    if (a == NULL)
        return;
    pthread_mutex_destroy(&a->sync_lock);
    pthread_mutex_destroy(&a->fail_lock);
    for (int i = 0; i < VERIFIED_LOCKS; i++)
        pthread_mutex_destroy(&a->vlock[i]);
    free(a->verified);
    free(a);
}

/* ---- sessions ------------------------------------------------------------ */

static int session_encode(const struct el_user *u, struct el_buf *out)
{
    return el_buf_addf(out, "%s%c%s%c%s", u->role, SEP, u->email, SEP, u->name ? u->name : "");
}

/* Fill role, email and name of p from session bytes; EL_EPROTO if malformed. */
static int session_decode(const char *s, size_t len, struct el_principal *p)
{
    const char *end = s + len, *a, *b;

    a = memchr(s, SEP, len);
    if (a == NULL)
        return EL_EPROTO;
    b = memchr(a + 1, SEP, (size_t)(end - a - 1));
    if (b == NULL || (size_t)(a - s) >= sizeof(p->role) ||
        (size_t)(b - a - 1) >= sizeof(p->email) || (size_t)(end - b - 1) >= sizeof(p->name))
        return EL_EPROTO;
    memcpy(p->role, s, (size_t)(a - s));
    p->role[a - s] = '\0';
    memcpy(p->email, a + 1, (size_t)(b - a - 1));
    p->email[b - a - 1] = '\0';
    memcpy(p->name, b + 1, (size_t)(end - b - 1));
    p->name[end - b - 1] = '\0';
    return el_role_valid(p->role) ? EL_OK : EL_EPROTO;
}

/* Load user_id's session from the store, cache it (Redis when redis_too,
 * and L1), and fill p. EL_ENOTFOUND when the user no longer exists. */
static int session_load(struct el_auth *a, const char *user_id, int redis_too,
                        struct el_principal *p)
{
    struct el_user u;
    struct el_buf b;
    char key[EL_KEY_MAX];
    int rc;

    rc = el_store_user_get(a->store, user_id, &u);
    if (rc != EL_OK)
        return rc;
    el_buf_init(&b, 2048);
    rc = session_encode(&u, &b);
    if (rc == EL_OK)
        rc = session_decode(b.data, b.len, p);
    if (rc == EL_OK) {
        struct el_blob *blob = el_blob_new(200, b.data, b.len);
        el_key_user_session(key, sizeof(key), user_id);
        if (redis_too)
            best_effort(el_redis_set(a->redis, key, b.data, b.len, a->opts.session_ttl_s * 1000));
        if (blob)
            best_effort(el_l1_put(a->l1, key, blob, el_now_ms() + (uint64_t)a->opts.session_l1_ms,
                                  el_now_ms()));
        el_blob_unref(blob);
    }
    el_buf_cleanup(&b);
    el_user_cleanup(&u);
    return rc;
}

void el_auth_session_invalidate(struct el_auth *a, const char *user_id)
{
    char key[EL_KEY_MAX];

    el_key_user_session(key, sizeof(key), user_id);
    el_l1_del(a->l1, key);
    best_effort(el_redis_del(a->redis, key));
}

/* ---- revocations ----------------------------------------------------------- */

struct sync_ctx {
    struct el_auth *a;
    int64_t now_ms;
    int n;
};

static int sync_one(const char *id, int64_t expires_ms, void *arg)
{
    struct sync_ctx *s = arg;
    char key[EL_KEY_MAX];

    if (expires_ms <= s->now_ms)
        return 0;
    el_key_blacklisted_token(key, sizeof(key), id);
    if (el_redis_set(s->a->redis, key, "1", 1, expires_ms - s->now_ms) != EL_OK)
        return EL_EUNAVAIL;
    s->n++;
    return 0;
}

/* Copy every live revocation from the store into Redis, then mark Redis as
 * complete. One thread at a time; others carry on through the store. */
static void revocations_sync(struct el_auth *a, const char *why)
{
    struct sync_ctx s = {a, el_wall_ms(), 0};
    uint64_t epoch = el_redis_epoch(a->redis);

    if (pthread_mutex_trylock(&a->sync_lock) != 0)
        return;
    if (el_store_revocations_live(a->store, s.now_ms, sync_one, &s) == EL_OK &&
        el_redis_set(a->redis, EL_KEY_REVOCATIONS_SYNCED, "1", 1, 0) == EL_OK) {
        atomic_store(&a->synced_epoch, epoch);
        fprintf(stderr, "auth: %s; copied %d revocations from the store into Redis\n", why, s.n);
    }
    el_must(pthread_mutex_unlock(&a->sync_lock));
}

/* Revoke id until expires_ms: the store first (the truth), then Redis. */
static int revoke(struct el_auth *a, const char *id, int64_t expires_ms, int64_t now_ms)
{
    char key[EL_KEY_MAX];
    int rc;

    rc = el_store_revoke(a->store, id, expires_ms);
    if (rc != EL_OK)
        return rc;
    if (a->redis == NULL)
        return EL_OK;
    el_key_blacklisted_token(key, sizeof(key), id);
    if (el_redis_set(a->redis, key, "1", 1, expires_ms - now_ms > 0 ? expires_ms - now_ms : 1) !=
        EL_OK)
        atomic_store(&a->redis_dirty, 1); /* el_auth_tick clears the sentinel */
    return EL_OK;
}

void el_auth_tick(struct el_auth *a)
{
    if (a->redis == NULL)
        return;
    if (atomic_load(&a->redis_dirty) &&
        el_redis_del(a->redis, EL_KEY_REVOCATIONS_SYNCED) == EL_OK) {
        fprintf(stderr, "auth: a revocation missed Redis; all processes check the store until "
                        "Redis is re-synced\n");
        atomic_store(&a->redis_dirty, 0);
        revocations_sync(a, "a revocation had missed Redis");
    }
}

/* ---- validation ------------------------------------------------------------ */

static void principal_ids(struct el_principal *p, const struct el_token_claims *c)
{
    memcpy(p->id, c->sub, sizeof(p->id));
    memcpy(p->jti, c->jti, sizeof(p->jti));
    memcpy(p->sid, c->sid, sizeof(p->sid));
    p->exp = c->exp;
}

/* The one-round-trip path. EL_EUNAVAIL means "ask the store instead". */
static int check_redis(struct el_auth *a, const struct el_token_claims *c, struct el_principal *p,
                       struct el_err *err)
{
    char k_jti[EL_KEY_MAX], k_sid[EL_KEY_MAX], k_sess[EL_KEY_MAX];
    const char *keys[4] = {EL_KEY_REVOCATIONS_SYNCED, k_jti, k_sid, k_sess};
    struct el_buf vals[4];
    int found[4], rc, i;

    if (a->redis == NULL || atomic_load(&a->redis_dirty))
        return EL_EUNAVAIL;
    /* Redis went down since our last copy: revocations written to the store
     * meanwhile (by any process) may be missing there. Copy them before
     * trusting it again; this request asks the store. */
    if (el_redis_epoch(a->redis) != atomic_load(&a->synced_epoch)) {
        if (el_redis_is_up(a->redis))
            revocations_sync(a, "Redis is back after an outage");
        return EL_EUNAVAIL;
    }
    el_key_blacklisted_token(k_jti, sizeof(k_jti), c->jti);
    el_key_blacklisted_token(k_sid, sizeof(k_sid), c->sid);
    el_key_user_session(k_sess, sizeof(k_sess), c->sub);
    for (i = 0; i < 4; i++)
        el_buf_init(&vals[i], 2048);
    rc = el_redis_mget(a->redis, 4, keys, vals, found);
    if (rc != EL_OK) {
        rc = EL_EUNAVAIL;
    } else if (!found[0]) {
        revocations_sync(a, "Redis had lost its revocations");
        rc = EL_EUNAVAIL; /* this request: the store decides */
    } else if (found[1] || found[2]) {
        rc = el_err_set(err, EL_EINVAL, "Token has been revoked");
    } else if (found[3] && session_decode(vals[3].data, vals[3].len, p) == EL_OK) {
        principal_ids(p, c);
        el_stats_count(EL_TYPE_SESSION, EL_LAYER_L2);
        rc = EL_OK;
    } else {
        el_stats_count(EL_TYPE_SESSION, EL_LAYER_MISS);
        rc = session_load(a, c->sub, 1, p);
        if (rc == EL_ENOTFOUND)
            rc = el_err_set(err, EL_EINVAL, "User not found");
        else if (rc == EL_OK)
            principal_ids(p, c);
        else
            rc = EL_EUNAVAIL;
    }
    for (i = 0; i < 4; i++)
        el_buf_cleanup(&vals[i]);
    return rc;
}

/* Redis cannot vouch: revocations from the store, the session from L1 or
 * the store. */
static int check_store(struct el_auth *a, const struct el_token_claims *c, struct el_principal *p,
                       struct el_err *err)
{
    char key[EL_KEY_MAX];
    struct el_blob *blob;
    int revoked = 0, rc;

    rc = el_store_revoked(a->store, c->jti, c->sid, el_wall_ms(), &revoked);
    if (rc != EL_OK)
        return el_err_set(err, EL_EUNAVAIL, "Authentication temporarily unavailable");
    if (revoked)
        return el_err_set(err, EL_EINVAL, "Token has been revoked");
    el_key_user_session(key, sizeof(key), c->sub);
    blob = el_l1_get(a->l1, key, el_now_ms(), NULL);
    if (blob) {
        rc = session_decode(blob->data, blob->len, p);
        el_blob_unref(blob);
        if (rc == EL_OK) {
            principal_ids(p, c);
            el_stats_count(EL_TYPE_SESSION, EL_LAYER_L1);
            return EL_OK;
        }
    }
    el_stats_count(EL_TYPE_SESSION, EL_LAYER_MISS);
    rc = session_load(a, c->sub, 0, p);
    if (rc == EL_ENOTFOUND)
        return el_err_set(err, EL_EINVAL, "User not found");
    if (rc != EL_OK)
        return el_err_set(err, EL_EUNAVAIL, "Authentication temporarily unavailable");
    principal_ids(p, c);
    return EL_OK;
}

/* el_jwt_verify for access tokens, remembering successes. A remembered
 * token is still checked for expiry against now_s. */
static int verify_access(struct el_auth *a, const char *tok, int64_t now_s,
                         struct el_token_claims *c, struct el_err *err)
{
    size_t len = strnlen(tok, EL_JWT_MAX);
    uint64_t h;
    struct verified *v;
    pthread_mutex_t *lk;
    int hit = 0;

    if (a->verified == NULL || len >= EL_JWT_MAX)
        return el_jwt_verify(a->jwt, tok, EL_TOKEN_ACCESS, now_s, c, err);
    h = el_fnv1a64(EL_FNV1A64_INIT, tok, len);
    v = &a->verified[h % VERIFIED_SLOTS];
    lk = &a->vlock[h % VERIFIED_LOCKS];
    el_must(pthread_mutex_lock(lk));
    if (v->len == len && memcmp(v->token, tok, len) == 0) {
        *c = v->claims;
        hit = 1;
    }
    el_must(pthread_mutex_unlock(lk));
    if (hit) {
        if (c->exp > now_s && c->iat <= now_s + 60)
            return EL_OK;
        return el_err_set(err, EL_EINVAL, "Token expired");
    }
    if (el_jwt_verify(a->jwt, tok, EL_TOKEN_ACCESS, now_s, c, err) != EL_OK)
        return EL_EINVAL;
    el_must(pthread_mutex_lock(lk));
    memcpy(v->token, tok, len);
    v->len = len;
    v->claims = *c;
    el_must(pthread_mutex_unlock(lk));
    return EL_OK;
}

int el_auth_authenticate(struct el_auth *a, const char *authorization, int64_t now_s,
                         struct el_principal *p, struct el_err *err)
{
    struct el_token_claims c;
    const char *tok;
    int rc;

    memset(p, 0, sizeof(*p));
    if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
        return el_err_set(err, EL_EINVAL, "Not authenticated");
    tok = authorization + 7;
    while (*tok == ' ')
        tok++;
    if (verify_access(a, tok, now_s, &c, err) != EL_OK)
        return EL_EINVAL;
    rc = check_redis(a, &c, p, err);
    if (rc != EL_EUNAVAIL)
        return rc;
    return check_store(a, &c, p, err);
}

/* ---- throttling ------------------------------------------------------------ */

/* The local slot for key (Redis down): a small direct-mapped table; a
 * collision resets the slot, which can only make throttling more lenient
 * for the colliding key, never block an innocent one. */
static struct local_fail *local_slot(struct el_auth *a, const char *key, uint64_t now)
{
    uint64_t h = el_fnv1a64_str(key);
    struct local_fail *f;

    f = &a->fails[h % LOCAL_FAILS];
    if (strcmp(f->key, key) != 0 || now >= f->window_end) {
        snprintf(f->key, sizeof(f->key), "%s", key);
        f->count = 0;
        f->window_end = now + EL_AUTH_FAIL_WINDOW_MS;
    }
    return f;
}

/* Current failure count and remaining window of key. */
static void fail_count(struct el_auth *a, const char *key, int64_t *count, int64_t *left_ms)
{
    struct el_buf v;
    int64_t ttl = -2;
    int rc = EL_EDISABLED;

    *count = 0;
    *left_ms = 0;
    el_buf_init(&v, 32);
    if (a->redis)
        rc = el_redis_get(a->redis, key, &v);
    if (rc == EL_OK || rc == EL_ENOTFOUND) {
        if (rc == EL_OK && v.len)
            *count = strtoll(v.data, NULL, 10);
        if (*count > 0 && el_redis_pttl(a->redis, key, &ttl) == EL_OK && ttl > 0)
            *left_ms = ttl;
    } else {
        /* Redis off or down: this process's own count. */
        uint64_t now = el_now_ms();
        struct local_fail *f;

        el_must(pthread_mutex_lock(&a->fail_lock));
        f = local_slot(a, key, now);
        *count = f->count;
        *left_ms = (int64_t)(f->window_end - now);
        el_must(pthread_mutex_unlock(&a->fail_lock));
    }
    el_buf_cleanup(&v);
}

static void fail_record(struct el_auth *a, const char *key)
{
    int64_t n;

    if (a->redis && el_redis_incr_window(a->redis, key, EL_AUTH_FAIL_WINDOW_MS, &n) == EL_OK)
        return;
    el_must(pthread_mutex_lock(&a->fail_lock));
    local_slot(a, key, el_now_ms())->count++;
    el_must(pthread_mutex_unlock(&a->fail_lock));
}

static void fail_reset(struct el_auth *a, const char *key)
{
    if (a->redis)
        best_effort(el_redis_del(a->redis, key));
    el_must(pthread_mutex_lock(&a->fail_lock));
    local_slot(a, key, el_now_ms())->count = 0;
    el_must(pthread_mutex_unlock(&a->fail_lock));
}

/* ---- logins and tokens ------------------------------------------------------- */

static int issue_pair(struct el_auth *a, const char *user_id, const char *role, const char *sid,
                      int64_t now_s, struct el_token_pair *out)
{
    struct el_token_claims c;
    int rc;

    memset(&c, 0, sizeof(c));
    snprintf(c.sub, sizeof(c.sub), "%s", user_id);
    snprintf(c.role, sizeof(c.role), "%s", role);
    snprintf(c.sid, sizeof(c.sid), "%s", sid);
    c.typ = EL_TOKEN_ACCESS;
    el_jwt_new_id(c.jti);
    rc = el_jwt_issue(a->jwt, &c, now_s, a->opts.access_ttl_s, out->access_token,
                      sizeof(out->access_token));
    if (rc != EL_OK)
        return rc;
    c.typ = EL_TOKEN_REFRESH;
    el_jwt_new_id(c.jti);
    rc = el_jwt_issue(a->jwt, &c, now_s, a->opts.refresh_ttl_s, out->refresh_token,
                      sizeof(out->refresh_token));
    if (rc != EL_OK)
        return rc;
    out->expires_in = a->opts.access_ttl_s;
    /* The refresh token is usable once: recorded unused in the store. */
    return el_store_refresh_insert(a->store, c.jti, user_id, sid,
                                   (now_s + a->opts.refresh_ttl_s) * 1000);
}

int el_auth_register(struct el_auth *a, const char *email, const char *password,
                     const char *name, struct el_user *out, struct el_err *err)
{
    char norm[EL_EMAIL_MAX + 1], hash[EL_PASSWORD_HASH_MAX];
    size_t plen = strlen(password), nlen = strlen(name);
    int rc;

    memset(out, 0, sizeof(*out));
    if (el_email_normalize(email, norm, sizeof(norm)) != EL_OK)
        return el_err_set(err, EL_EINVAL, "email: not a valid email address");
    if (plen < EL_PASSWORD_MIN || plen > EL_PASSWORD_MAX)
        return el_err_set(err, EL_EINVAL, "password: must be %d to %d characters", EL_PASSWORD_MIN,
                          EL_PASSWORD_MAX);
    if (nlen < 1 || nlen > EL_NAME_MAX)
        return el_err_set(err, EL_EINVAL, "name: must be 1 to %d characters", EL_NAME_MAX);
    rc = el_password_hash(password, hash);
    if (rc != EL_OK)
        return el_err_set(err, EL_EUNAVAIL, "Server busy, try again");
    out->email = strdup(norm);
    out->name = strdup(name);
    out->password_hash = strdup(hash);
    snprintf(out->role, sizeof(out->role), "student");
    if (!out->email || !out->name || !out->password_hash)
        rc = EL_ENOMEM;
    else
        rc = el_store_user_insert(a->store, out);
    if (rc == EL_ECONFLICT)
        el_err_set(err, rc, "Email already registered");
    else if (rc != EL_OK)
        el_err_set(err, EL_EUNAVAIL, "Database unavailable, try again shortly");
    if (rc != EL_OK) {
        el_user_cleanup(out);
        return rc == EL_ECONFLICT ? rc : EL_EUNAVAIL;
    }
    return EL_OK;
}

int el_auth_login(struct el_auth *a, const char *email, const char *password, const char *client,
                  int64_t now_s, struct el_token_pair *out, int *retry_after_s,
                  struct el_err *err)
{
    char norm[EL_EMAIL_MAX + 1], k_email[EL_KEY_MAX], k_ip[EL_KEY_MAX], sid[EL_JTI_LEN];
    struct el_user u;
    int64_t n_email, n_ip, left_email, left_ip;
    int rc, known;

    *retry_after_s = 0;
    if (el_email_normalize(email, norm, sizeof(norm)) != EL_OK)
        snprintf(norm, sizeof(norm), "invalid");
    el_key_login_failures_email(k_email, sizeof(k_email), norm);
    el_key_login_failures_ip(k_ip, sizeof(k_ip), client && *client ? client : "unknown");
    fail_count(a, k_email, &n_email, &left_email);
    fail_count(a, k_ip, &n_ip, &left_ip);
    if (n_email >= EL_AUTH_MAX_FAIL_EMAIL || n_ip >= EL_AUTH_MAX_FAIL_IP) {
        int64_t left = n_email >= EL_AUTH_MAX_FAIL_EMAIL ? left_email : left_ip;
        if (n_ip >= EL_AUTH_MAX_FAIL_IP && left_ip > left)
            left = left_ip;
        *retry_after_s = (int)((left + 999) / 1000);
        if (*retry_after_s < 1)
            *retry_after_s = 1;
        return el_err_set(err, EL_ELIMIT, "Too many failed login attempts, try again later");
    }

    rc = el_store_user_get_by_email(a->store, norm, &u);
    if (rc != EL_OK && rc != EL_ENOTFOUND)
        return el_err_set(err, EL_EUNAVAIL, "Database unavailable, try again shortly");
    known = rc == EL_OK;
    /* The same work whether or not the email exists. */
    rc = known ? el_password_verify(u.password_hash, password) : el_password_verify_dummy(password);
    if (rc == EL_EUNAVAIL) {
        if (known)
            el_user_cleanup(&u);
        *retry_after_s = 1;
        return el_err_set(err, EL_EUNAVAIL, "Server busy, try again");
    }
    if (rc != EL_OK || !known) {
        if (known)
            el_user_cleanup(&u);
        fail_record(a, k_email);
        fail_record(a, k_ip);
        return el_err_set(err, EL_EINVAL, "Invalid credentials");
    }
    fail_reset(a, k_email);

    /* Parameters raised since this hash was made: upgrade it now. */
    if (el_password_needs_rehash(u.password_hash)) {
        char hash[EL_PASSWORD_HASH_MAX];
        if (el_password_hash(password, hash) == EL_OK)
            best_effort(el_store_user_update(a->store, u.id, NULL, hash));
    }

    el_jwt_new_id(sid);
    rc = issue_pair(a, u.id, u.role, sid, now_s, out);
    if (rc == EL_OK && a->redis) {
        char key[EL_KEY_MAX];
        struct el_buf b;
        el_buf_init(&b, 2048);
        if (session_encode(&u, &b) == EL_OK) {
            el_key_user_session(key, sizeof(key), u.id);
            best_effort(el_redis_set(a->redis, key, b.data, b.len, a->opts.session_ttl_s * 1000));
        }
        el_buf_cleanup(&b);
        el_key_refresh_tokens(key, sizeof(key), u.id);
        best_effort(el_redis_set(a->redis, key, out->refresh_token, strlen(out->refresh_token),
                                 a->opts.refresh_ttl_s * 1000));
    }
    el_user_cleanup(&u);
    if (rc != EL_OK)
        return el_err_set(err, EL_EUNAVAIL, "Database unavailable, try again shortly");
    return EL_OK;
}

int el_auth_refresh(struct el_auth *a, const char *refresh_token, int64_t now_s,
                    struct el_token_pair *out, struct el_err *err)
{
    struct el_token_claims c;
    struct el_user u;
    int revoked = 0, rc;

    if (el_jwt_verify(a->jwt, refresh_token, EL_TOKEN_REFRESH, now_s, &c, err) != EL_OK)
        return EL_EINVAL;
    if (el_store_revoked(a->store, c.jti, c.sid, now_s * 1000, &revoked) != EL_OK)
        return el_err_set(err, EL_EUNAVAIL, "Database unavailable, try again shortly");
    if (revoked)
        return el_err_set(err, EL_EINVAL, "Token has been revoked");
    rc = el_store_refresh_claim(a->store, c.jti, now_s * 1000);
    if (rc == EL_ECONFLICT) {
        /* A used refresh token came back: someone holds a copy. End the
         * whole login, every access and refresh token descended from it. */
        if (revoke(a, c.sid, (now_s + a->opts.refresh_ttl_s) * 1000, now_s * 1000) != EL_OK)
            return el_err_set(err, EL_EUNAVAIL, "Database unavailable, try again shortly");
        fprintf(stderr, "auth: refresh token reuse for user %s; login revoked\n", c.sub);
        return el_err_set(err, EL_EINVAL, "Refresh token reuse detected; login revoked");
    }
    if (rc == EL_ENOTFOUND)
        return el_err_set(err, EL_EINVAL, "Invalid refresh token");
    if (rc != EL_OK)
        return el_err_set(err, EL_EUNAVAIL, "Database unavailable, try again shortly");
    rc = el_store_user_get(a->store, c.sub, &u);
    if (rc == EL_ENOTFOUND)
        return el_err_set(err, EL_EINVAL, "User not found");
    if (rc != EL_OK)
        return el_err_set(err, EL_EUNAVAIL, "Database unavailable, try again shortly");
    rc = issue_pair(a, u.id, u.role, c.sid, now_s, out);
    el_user_cleanup(&u);
    if (rc != EL_OK)
        return el_err_set(err, EL_EUNAVAIL, "Database unavailable, try again shortly");
    return EL_OK;
}

int el_auth_logout(struct el_auth *a, const struct el_principal *p, int64_t now_s)
{
    char key[EL_KEY_MAX];
    int rc;

    rc = revoke(a, p->jti, p->exp * 1000, now_s * 1000);
    if (rc == EL_OK)
        rc = revoke(a, p->sid, (now_s + a->opts.refresh_ttl_s) * 1000, now_s * 1000);
    if (rc != EL_OK)
        return rc;
    el_auth_session_invalidate(a, p->id);
    el_key_refresh_tokens(key, sizeof(key), p->id);
    best_effort(el_redis_del(a->redis, key));
    return EL_OK;
}
