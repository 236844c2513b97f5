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
#include <time.h>

#include "auth/password.h"
#include "core/blob.h"
#include "core/hash.h"
#include "core/buf.h"
#include "cache/bus.h"
#include "cache/key.h"
#include "cache/tiered.h"
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

/* The local revocation set: LOCAL_SHARDS chained hash tables of ids with
 * their expiry, each behind its own mutex. Entries are only added (a later
 * expiry wins) and dropped once expired, never removed otherwise: a
 * revocation cannot be undone, so a superset is always safe. */
#define LOCAL_SHARDS 16
/* How recently the bus must have been heard for the local state to vouch:
 * two heartbeats (250 ms each) and some slack. A process that hears
 * nothing for longer asks Redis or the store. */
#define LOCAL_STALE_MS 600
#define LOCAL_STALE_MARGIN_MS 50
/* How long a revocation that could not be announced is retried (see
 * announce); under the 1.5 s a logout may take. */
#define ANNOUNCE_MAX_MS 1000
#define LOCAL_CHAINS 1024

struct local_entry {
    struct local_entry *next;
    int64_t expires_ms;
    char id[];
};

struct local_rev {
    pthread_mutex_t mu;
    struct local_entry *chain[LOCAL_CHAINS];
};

struct el_auth {
    struct el_jwt *jwt;
    struct el_store *store;
    struct el_redis *redis;
    struct el_l1 *l1;
    struct el_auth_opts opts;
    /* Per bucket (see auth.h): a write to it failed or was not replicated
     * (dirty: its marker must go), or a reader found its marker missing or
     * from another master (stale: copy it from the store). Either way this
     * process does not trust the bucket until el_auth_tick has synced it. */
    atomic_uchar dirty[EL_KEY_AUTH_BUCKETS];
    atomic_uchar stale[EL_KEY_AUTH_BUCKETS];
    _Atomic uint64_t synced_epoch; /* Redis epoch of the last full sync;
                                    * UINT64_MAX: none yet */
    _Atomic uint64_t syncs, synced_revocations, lost_writes, last_sync_ms;
    _Atomic uint64_t store_reads; /* el_store_revocations_live calls */
    unsigned prune_next;          /* tick thread only */
    unsigned sweep_next;          /* tick thread only */
    pthread_mutex_t sync_lock;

    /* The local state (see auth.h, "Auth without a round trip"): every
     * live revocation, kept current by the bus; trusted while the bus has
     * not reset and Redis not changed since it was loaded. */
    struct el_bus *bus;
    struct local_rev local[LOCAL_SHARDS];
    atomic_int local_loaded;
    _Atomic uint64_t local_era; /* bus_era() when loaded */
    _Atomic uint64_t silences;  /* bus silences over LOCAL_STALE_MS */
    _Atomic uint64_t local_hits;
    _Atomic uint64_t nowait_hits; /* of them, by el_auth_check_local */
    uint64_t local_tried_ms;      /* tick thread only: last load attempt */
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
    atomic_init(&a->synced_epoch, UINT64_MAX); /* the first tick copies */
    el_must(pthread_mutex_init(&a->sync_lock, NULL));
    el_must(pthread_mutex_init(&a->fail_lock, NULL));
    for (int i = 0; i < VERIFIED_LOCKS; i++)
        el_must(pthread_mutex_init(&a->vlock[i], NULL));
    for (int i = 0; i < LOCAL_SHARDS; i++)
        el_must(pthread_mutex_init(&a->local[i].mu, NULL));
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
    for (int i = 0; i < LOCAL_SHARDS; i++) {
        for (int c = 0; c < LOCAL_CHAINS; c++) {
            struct local_entry *e = a->local[i].chain[c], *next;

            for (; e; e = next) {
                next = e->next;
                free(e);
            }
        }
        pthread_mutex_destroy(&a->local[i].mu);
    }
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

/* Hash fields carry no TTL (Redis 7.0): a field's value starts with its
 * expiry, "<ms since the epoch>" for a revocation and "<ms>|<session>" for
 * a session. The expiry in *ms, the rest after it in *rest. */
static int field_expiry(const char *v, size_t len, int64_t *ms, const char **rest)
{
    int64_t x = 0;
    size_t i = 0;

    for (; i < len && i < 18 && v[i] >= '0' && v[i] <= '9'; i++)
        x = x * 10 + (v[i] - '0');
    if (i == 0 || (i < len && v[i] != '|'))
        return EL_EPROTO;
    *ms = x;
    if (rest)
        *rest = i < len ? v + i + 1 : v + len;
    return EL_OK;
}

static void bucket_key(char key[EL_KEY_MAX], const char *id)
{
    el_key_auth_bucket(key, EL_KEY_MAX, el_key_auth_bucket_index(id));
}

/* Cache user u's session in its bucket (Redis) for session_ttl_s. Written
 * without its marker: if the bucket was evicted meanwhile, the hash this
 * makes has no "@sync" and is not trusted until it is copied again. */
static void session_store_redis(struct el_auth *a, const char *user_id, const char *bytes,
                                size_t len)
{
    char key[EL_KEY_MAX], field[EL_KEY_MAX], num[24];
    struct el_buf v;
    const char *f[1] = {field}, *vals[1];
    size_t lens[1];

    if (a->redis == NULL)
        return;
    bucket_key(key, user_id);
    snprintf(field, sizeof(field), "s:%s", user_id);
    snprintf(num, sizeof(num), "%lld",
             (long long)el_wall_ms() + (long long)a->opts.session_ttl_s * 1000);
    el_buf_init(&v, 4096);
    if (el_buf_addf(&v, "%s|", num) == EL_OK && el_buf_add(&v, bytes, len) == EL_OK) {
        vals[0] = v.data;
        lens[0] = v.len;
        best_effort(el_redis_hset(a->redis, key, 1, f, vals, lens));
    }
    el_buf_cleanup(&v);
}

/* Put a session read when the invalidation mark of its key was mark into
 * L1 -- unless a role change or deletion dropped the key since (here or
 * through the bus): then what was read may be the old session. */
static void session_l1_put(struct el_auth *a, const char *key, struct el_blob *blob, uint64_t mark)
{
    if (blob == NULL || el_tiered_mark(key) != mark)
        return;
    best_effort(
        el_l1_put(a->l1, key, blob, el_now_ms() + (uint64_t)a->opts.session_l1_ms, el_now_ms()));
}

/* Load user_id's session from the store, cache it (Redis when redis_too,
 * and L1), and fill p. EL_ENOTFOUND when the user no longer exists. */
static int session_load(struct el_auth *a, const char *user_id, int redis_too,
                        struct el_principal *p)
{
    struct el_user u;
    struct el_buf b;
    char key[EL_KEY_MAX];
    uint64_t mark;
    int rc;

    snprintf(key, sizeof(key), "session:%s", user_id);
    mark = el_tiered_mark(key);
    rc = el_store_user_get(a->store, user_id, &u);
    if (rc != EL_OK)
        return rc;
    el_buf_init(&b, 2048);
    rc = session_encode(&u, &b);
    if (rc == EL_OK)
        rc = session_decode(b.data, b.len, p);
    if (rc == EL_OK) {
        struct el_blob *blob = el_blob_new(200, b.data, b.len);
        if (redis_too)
            session_store_redis(a, user_id, b.data, b.len);
        session_l1_put(a, key, blob, mark);
        el_blob_unref(blob);
    }
    el_buf_cleanup(&b);
    el_user_cleanup(&u);
    return rc;
}

void el_auth_session_invalidate(struct el_auth *a, const char *user_id)
{
    char key[EL_KEY_MAX], field[EL_KEY_MAX];

    snprintf(key, sizeof(key), "session:%s", user_id);
    el_tiered_dropped(a->l1, key); /* and a read in flight does not cache it */
    /* Every process drops its L1 copy, the one the local path serves. */
    best_effort(el_bus_publish_key(a->bus, key));
    if (a->redis == NULL)
        return;
    bucket_key(key, user_id);
    snprintf(field, sizeof(field), "s:%s", user_id);
    /* A role change or deletion that Redis did not take: the bucket's
     * marker must go, so nobody trusts the old session. */
    if (el_redis_hdel(a->redis, key, field) != EL_OK) {
        atomic_store(&a->dirty[el_key_auth_bucket_index(user_id)], 1);
        atomic_fetch_add(&a->lost_writes, 1);
    }
}

/* ---- revocations: per-bucket copies with their own markers --------------- */

/* Begin a copy of one bucket: unless its marker already names the master
 * we talk to (ARGV[1]; not when ARGV[3] is "1": after an outage this
 * process saw, a marker may be older than a write that missed Redis) or
 * another process began a copy in the last 5 s, empty it and leave our
 * nonce (ARGV[2]) in it. 1: begun; 0: already complete; -1: someone else
 * is at it. */
static const char sync_begin_lua[] =
    "local s = redis.call('HGET', KEYS[1], '@sync') "
    "if s and s == ARGV[1] and ARGV[3] ~= '1' then return 0 end "
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "local p = tonumber(redis.call('HGET', KEYS[1], '@pending_ms')) "
    "if p and now - p < 5000 then return -1 end "
    "redis.call('DEL', KEYS[1]) "
    "redis.call('HSET', KEYS[1], '@pending', ARGV[2], '@pending_ms', now) "
    "return 1";

/* End it: only if our nonce is still there -- the hash was not evicted or
 * flushed while we copied -- set the marker to the master's run_id. */
static const char sync_end_lua[] =
    "if redis.call('HGET', KEYS[1], '@pending') ~= ARGV[1] then return 0 end "
    "redis.call('HDEL', KEYS[1], '@pending', '@pending_ms') "
    "redis.call('HSET', KEYS[1], '@sync', ARGV[2]) "
    "return 1";

/* Drop the expired fields of one bucket (fields carry no TTL). */
static const char prune_lua[] =
    "local now = tonumber(ARGV[1]) local h = redis.call('HGETALL', KEYS[1]) local n = 0 "
    "for i = 1, #h, 2 do "
    "  if string.sub(h[i], 1, 1) ~= '@' then "
    "    local e = tonumber(string.match(h[i + 1], '^%d+')) "
    "    if e == nil or e <= now then redis.call('HDEL', KEYS[1], h[i]) n = n + 1 end "
    "  end "
    "end "
    "return n";

#define SYNC_BATCH 32

struct pending_fields {
    int n;
    char field[SYNC_BATCH][4 + 65];
    char val[SYNC_BATCH][24];
};

struct sync_ctx {
    struct el_auth *a;
    int64_t now_ms;
    unsigned char *copying;    /* [EL_KEY_AUTH_BUCKETS] */
    struct pending_fields *pf; /* [EL_KEY_AUTH_BUCKETS] */
    int n, failed;
};

static int flush_bucket(struct sync_ctx *s, unsigned b)
{
    struct pending_fields *pf = &s->pf[b];
    const char *f[SYNC_BATCH], *v[SYNC_BATCH];
    size_t l[SYNC_BATCH];
    char key[EL_KEY_MAX];
    int rc;

    if (pf->n == 0)
        return EL_OK;
    for (int i = 0; i < pf->n; i++) {
        f[i] = pf->field[i];
        v[i] = pf->val[i];
        l[i] = strlen(pf->val[i]);
    }
    el_key_auth_bucket(key, sizeof(key), b);
    rc = el_redis_hset(s->a->redis, key, pf->n, f, v, l);
    pf->n = 0;
    return rc;
}

static int sync_one(const char *id, int64_t expires_ms, void *arg)
{
    struct sync_ctx *s = arg;
    unsigned b = el_key_auth_bucket_index(id);
    struct pending_fields *pf = &s->pf[b];

    if (expires_ms <= s->now_ms || !s->copying[b] || strlen(id) > 64)
        return 0;
    snprintf(pf->field[pf->n], sizeof(pf->field[0]), "r:%s", id);
    snprintf(pf->val[pf->n], sizeof(pf->val[0]), "%lld", (long long)expires_ms);
    pf->n++;
    s->n++;
    if (pf->n == SYNC_BATCH && flush_bucket(s, b) != EL_OK)
        return EL_EUNAVAIL;
    return 0;
}

/* Copy every bucket in want[] from the store into Redis: begin each (empty
 * it, leave a nonce), read the live revocations once, write them, and end
 * each (marker = the master's run_id) if its nonce survived. A revocation
 * written to the store after the read began reached Redis after the bucket
 * was emptied, so it is in the copy unless the hash was evicted -- and then
 * the nonce went with it and the bucket is not marked. Returns the number
 * of buckets now complete; clears want[b] for those. One thread at a time. */
static int sync_buckets(struct el_auth *a, unsigned char *want, int force, const char *why)
{
    struct el_redis_topology t;
    unsigned char copying[EL_KEY_AUTH_BUCKETS] = {0};
    char key[EL_KEY_MAX], nonce[EL_JTI_LEN], server[EL_REDIS_ID_MAX] = "";
    struct sync_ctx s = {a, el_wall_ms(), copying, NULL, 0, 0};
    const char *step = "begin";
    int done = 0, begun = 0, rc = EL_OK;

    if (pthread_mutex_trylock(&a->sync_lock) != 0)
        return 0;
    el_redis_topology(a->redis, &t);
    el_jwt_new_id(nonce);
    for (unsigned b = 0; b < EL_KEY_AUTH_BUCKETS; b++) {
        const char *args[3] = {t.run_id, nonce, force ? "1" : "0"};
        int64_t r = 0;

        if (!want[b])
            continue;
        el_key_auth_bucket(key, sizeof(key), b);
        rc = el_redis_eval_int(a->redis, sync_begin_lua, key, 3, args, &r,
                               server[0] ? NULL : server);
        if (rc != EL_OK)
            goto out;
        if (r == 0 && t.run_id[0]) { /* already complete for this master */
            want[b] = 0;
            done++;
        } else if (r == 1) {
            copying[b] = 1;
            begun++;
        }
    }
    if (begun == 0 || server[0] == '\0')
        goto out;
    step = "read the store";
    s.pf = calloc(EL_KEY_AUTH_BUCKETS, sizeof(*s.pf));
    if (s.pf == NULL) {
        rc = EL_ENOMEM;
        goto out;
    }
    atomic_fetch_add(&a->store_reads, 1);
    rc = el_store_revocations_live(a->store, s.now_ms, sync_one, &s);
    if (rc != EL_OK)
        goto out;
    step = "write";
    for (unsigned b = 0; b < EL_KEY_AUTH_BUCKETS; b++)
        if (copying[b] && (rc = flush_bucket(&s, b)) != EL_OK)
            goto out;
    step = "end";
    /* The marker names the server the copy began on (server, from the
     * begin step). A different master later (failover, restart) does not
     * match it, and the bucket is copied again. */
    for (unsigned b = 0; b < EL_KEY_AUTH_BUCKETS; b++) {
        const char *args[2] = {nonce, server};
        int64_t r = 0;

        if (!copying[b])
            continue;
        el_key_auth_bucket(key, sizeof(key), b);
        rc = el_redis_eval_int(a->redis, sync_end_lua, key, 2, args, &r, NULL);
        if (rc != EL_OK)
            goto out;
        if (r == 1) {
            want[b] = 0;
            done++;
        }
    }
    atomic_fetch_add(&a->syncs, 1);
    atomic_fetch_add(&a->synced_revocations, (uint64_t)s.n);
    atomic_store(&a->last_sync_ms, (uint64_t)el_wall_ms());
    fprintf(stderr, "auth: %s; copied %d revocations into %d Redis buckets\n", why, s.n, begun);
out:
    if (rc != EL_OK)
        fprintf(stderr, "auth: copying revocations into Redis failed (%s: %s); retrying\n", step,
                el_strerror(rc));
    free(s.pf);
    el_must(pthread_mutex_unlock(&a->sync_lock));
    return done;
}

/* ---- local state: auth without a round trip ------------------------------ */

static uint64_t id_hash(const char *id)
{
    return el_fnv1a64_str(id);
}

/* Add id (revoked until expires_ms) to the local set; a later expiry wins. */
static void local_add(struct el_auth *a, const char *id, int64_t expires_ms)
{
    uint64_t h = id_hash(id);
    struct local_rev *sh = &a->local[h % LOCAL_SHARDS];
    struct local_entry **slot = &sh->chain[(h / LOCAL_SHARDS) % LOCAL_CHAINS], *e;
    size_t len = strnlen(id, 65);

    if (len == 0 || len > 64)
        return;
    el_must(pthread_mutex_lock(&sh->mu));
    for (e = *slot; e; e = e->next)
        if (strcmp(e->id, id) == 0)
            break;
    if (e != NULL) {
        if (expires_ms > e->expires_ms)
            e->expires_ms = expires_ms;
    } else if ((e = malloc(sizeof(*e) + len + 1)) != NULL) {
        memcpy(e->id, id, len + 1);
        e->expires_ms = expires_ms;
        e->next = *slot;
        *slot = e;
    } else {
        /* Cannot remember it: the set is incomplete; stop trusting it. */
        atomic_store(&a->local_loaded, 0);
    }
    el_must(pthread_mutex_unlock(&sh->mu));
}

/* 1 when id is in the local set and not expired at now_ms. */
static int local_has(struct el_auth *a, const char *id, int64_t now_ms)
{
    uint64_t h = id_hash(id);
    struct local_rev *sh = &a->local[h % LOCAL_SHARDS];
    struct local_entry *e;
    int found = 0;

    el_must(pthread_mutex_lock(&sh->mu));
    for (e = sh->chain[(h / LOCAL_SHARDS) % LOCAL_CHAINS]; e; e = e->next)
        if (strcmp(e->id, id) == 0) {
            found = e->expires_ms > now_ms;
            break;
        }
    el_must(pthread_mutex_unlock(&sh->mu));
    return found;
}

/* Drop expired entries of one shard (the tick, round robin). */
static void local_prune(struct el_auth *a, unsigned shard, int64_t now_ms)
{
    struct local_rev *sh = &a->local[shard % LOCAL_SHARDS];

    el_must(pthread_mutex_lock(&sh->mu));
    for (int c = 0; c < LOCAL_CHAINS; c++) {
        struct local_entry **pp = &sh->chain[c];

        while (*pp) {
            struct local_entry *e = *pp;

            if (e->expires_ms <= now_ms) {
                *pp = e->next;
                free(e);
            } else {
                pp = &e->next;
            }
        }
    }
    el_must(pthread_mutex_unlock(&sh->mu));
}

static int local_load_one(const char *id, int64_t expires_ms, void *arg)
{
    local_add(arg, id, expires_ms);
    return 0;
}

/* Moves whenever messages on the bus may have been lost unseen: a reset
 * (gap, reconnect, a publisher's "L") or a silence longer than
 * LOCAL_STALE_MS. A revocation whose announcement failed is one of them:
 * its process waits until the channel has been silent that long before it
 * answers (announce), and those who did hear others meanwhile heard its
 * "L". Both counters only grow, so their sum moves when either does. */
static uint64_t bus_era(struct el_auth *a)
{
    return el_bus_resets(a->bus) + atomic_load(&a->silences);
}

void el_auth_bus_heard(struct el_auth *a, uint64_t silent_ms)
{
    if (silent_ms > LOCAL_STALE_MS)
        atomic_fetch_add(&a->silences, 1);
}

/* Load every live revocation from the store into the local set, and trust
 * it if neither the bus nor Redis moved meanwhile: every revocation made
 * before the read began is in the store, and every one made after it was
 * announced on the bus -- which did not lose a message, or its era would
 * have moved. */
static void local_load(struct el_auth *a)
{
    uint64_t era = bus_era(a);

    if (!el_bus_fresh(a->bus, el_now_ms()))
        return;
    atomic_fetch_add(&a->store_reads, 1);
    if (el_store_revocations_live(a->store, el_wall_ms(), local_load_one, a) != EL_OK)
        return;
    if (bus_era(a) != era)
        return;
    atomic_store(&a->local_era, era);
    atomic_store(&a->local_loaded, 1);
}

/* The local set holds every live revocation: loaded, and the bus era has
 * not moved since (no message lost). A Redis outage or a master switch
 * that lost messages shows as a reset (a reconnect, a gap, a publisher's
 * "L") or a silence; a breaker flap that lost none does not, so it costs
 * no reload. */
static int local_complete(struct el_auth *a)
{
    return atomic_load(&a->local_loaded) && bus_era(a) == atomic_load(&a->local_era);
}

/* The local state may vouch now: loaded, no bus reset since, the
 * subscription connected and heard within LOCAL_STALE_MS (and within
 * L1_MAX_STALE), and Redis (its master) the same as then. */
static int local_trusted(struct el_auth *a)
{
    uint64_t heard, now;

    if (a->bus == NULL || !atomic_load(&a->local_loaded) || !el_bus_connected(a->bus))
        return 0;
    heard = el_bus_last_heard_ms(a->bus);
    now = el_now_ms();
    return heard != 0 && now - heard <= LOCAL_STALE_MS && el_bus_fresh(a->bus, now) &&
           local_complete(a);
}

/* Announce a revocation on the bus. One that cannot be sent is retried
 * until it is, or until no other process can still be trusting its local
 * set without it: the channel silent here for LOCAL_STALE_MS plus a
 * margin, so silent for them too -- a silence they count
 * (el_auth_bus_heard) and recover from by reading the store, which has it.
 * Retrying matters when Redis comes back within that time: the others then
 * hear heartbeats again before they would notice a silence, and must hear
 * this (with its "L") before the revoking request returns. Bounded by
 * ANNOUNCE_MAX_MS: a process that hears the channel but cannot publish to
 * it is in a partition neither Redis nor the bus can see. */
static void announce(struct el_auth *a, const char *id, int64_t expires_ms)
{
    uint64_t start = el_now_ms();

    while (el_bus_publish_revoked(a->bus, id, expires_ms) != EL_OK) {
        uint64_t now = el_now_ms();
        struct timespec ts = {0, 20 * 1000000L};

        if (now >= el_bus_last_heard_ms(a->bus) + LOCAL_STALE_MS + LOCAL_STALE_MARGIN_MS)
            return;
        if (now - start >= ANNOUNCE_MAX_MS) {
            fprintf(stderr,
                    "auth: a revocation could not be announced on the bus for %d ms "
                    "while the channel was heard; others learn it from the store after "
                    "their next silence or reset\n",
                    ANNOUNCE_MAX_MS);
            return;
        }
        nanosleep(&ts, NULL);
    }
}

void el_auth_set_bus(struct el_auth *a, struct el_bus *bus)
{
    a->bus = bus;
}

void el_auth_revoked_heard(struct el_auth *a, const char *id, int64_t expires_ms)
{
    local_add(a, id, expires_ms);
}

/* Revoke id until expires_ms: the store first (the truth), then its Redis
 * bucket, replicated to at least one replica when there are any. A write
 * Redis did not take, or that no replica acknowledged, makes the bucket
 * dirty: el_auth_tick removes its marker and copies it again. */
static int revoke(struct el_auth *a, const char *id, int64_t expires_ms, int64_t now_ms)
{
    char key[EL_KEY_MAX], field[EL_KEY_MAX], val[24];
    unsigned b = el_key_auth_bucket_index(id);
    int rc, acked = -1;

    EL_UNUSED(now_ms);
    rc = el_store_revoke(a->store, id, expires_ms);
    if (rc != EL_OK)
        return rc;
    local_add(a, id, expires_ms);
    if (a->redis == NULL)
        return EL_OK;
    /* Announced before Redis is written: every process stops accepting it
     * within the bus bound, whatever Redis does. */
    if (a->bus != NULL)
        announce(a, id, expires_ms);
    el_key_auth_bucket(key, sizeof(key), b);
    snprintf(field, sizeof(field), "r:%s", id);
    snprintf(val, sizeof(val), "%lld", (long long)expires_ms);
    rc = el_redis_hset_replicated(a->redis, key, field, val, strlen(val), &acked, NULL);
    if (rc != EL_OK || acked == 0) {
        atomic_store(&a->dirty[b], 1);
        atomic_fetch_add(&a->lost_writes, 1);
        if (rc == EL_OK)
            fprintf(stderr, "auth: a revocation was not acknowledged by any replica; "
                            "its bucket is copied again\n");
    }
    return EL_OK;
}

void el_auth_tick(struct el_auth *a)
{
    unsigned char want[EL_KEY_AUTH_BUCKETS];
    uint64_t epoch;
    int any = 0, full, force;

    if (a->redis == NULL || !el_redis_is_up(a->redis))
        return;
    if (a->bus != NULL) {
        /* A load reads every live revocation from the store: only when the
         * set is incomplete (start, a reset, an outage), the bus is up to
         * keep it current, and at most once a second. */
        uint64_t now = el_now_ms();

        if (!local_complete(a) && el_bus_connected(a->bus) && el_bus_fresh(a->bus, now) &&
            now - a->local_tried_ms >= 1000) {
            a->local_tried_ms = now;
            local_load(a);
        }
        local_prune(a, a->prune_next % LOCAL_SHARDS, el_wall_ms());
    }
    /* Look at 8 buckets' markers per tick (all of them every 2 s): with the
     * local path answering, no request may read a bucket for a long time,
     * and one evicted meanwhile must be whole again when Redis is next
     * asked. */
    {
        struct el_redis_hmget q[EL_REDIS_BATCH_MAX];
        struct el_buf v[EL_REDIS_BATCH_MAX];
        char keys[EL_REDIS_BATCH_MAX][EL_KEY_MAX], server[EL_REDIS_ID_MAX] = "";
        unsigned first = (a->sweep_next++ * EL_REDIS_BATCH_MAX) % EL_KEY_AUTH_BUCKETS;

        for (int i = 0; i < EL_REDIS_BATCH_MAX; i++) {
            el_buf_init(&v[i], 64);
            el_key_auth_bucket(keys[i], sizeof(keys[i]), first + (unsigned)i);
            q[i] = (struct el_redis_hmget){keys[i], 1, {"@sync"}, &v[i], {0}};
        }
        if (el_redis_hmget_batch(a->redis, EL_REDIS_BATCH_MAX, q, server) == EL_OK &&
            server[0] != '\0')
            for (int i = 0; i < EL_REDIS_BATCH_MAX; i++)
                if (!q[i].found[0] || v[i].len != strlen(server) ||
                    memcmp(v[i].data, server, v[i].len) != 0)
                    atomic_store(&a->stale[(first + (unsigned)i) % EL_KEY_AUTH_BUCKETS], 1);
        for (int i = 0; i < EL_REDIS_BATCH_MAX; i++)
            el_buf_cleanup(&v[i]);
    }
    epoch = el_redis_epoch(a->redis);
    full = epoch != atomic_load(&a->synced_epoch);
    /* After an outage or a switch this process saw, every bucket is copied
     * whatever its marker says; at start, only those whose marker does not
     * name the master (a restart of every process costs no store scan). */
    force = full && atomic_load(&a->synced_epoch) != UINT64_MAX;
    for (unsigned b = 0; b < EL_KEY_AUTH_BUCKETS; b++) {
        char key[EL_KEY_MAX];

        if (atomic_load(&a->dirty[b])) {
            /* First take the marker away, so no process trusts the bucket;
             * only then is the copy begun. */
            el_key_auth_bucket(key, sizeof(key), b);
            if (el_redis_hdel(a->redis, key, "@sync") != EL_OK)
                return;
            atomic_store(&a->dirty[b], 0);
            atomic_store(&a->stale[b], 1);
        }
        want[b] = full || atomic_load(&a->stale[b]);
        any |= want[b];
    }
    if (any) {
        int n = 0;

        sync_buckets(a, want, force,
                     full ? "Redis is new to this process (start, outage or failover)"
                          : "Redis lacked some revocations");
        for (unsigned b = 0; b < EL_KEY_AUTH_BUCKETS; b++) {
            if (!want[b])
                atomic_store(&a->stale[b], 0);
            n += want[b];
        }
        if (full && n == 0)
            atomic_store(&a->synced_epoch, epoch);
    }
    /* One bucket's expired fields per tick: every bucket about every 16 s. */
    {
        char key[EL_KEY_MAX], now[24];
        const char *args[1] = {now};

        snprintf(now, sizeof(now), "%lld", (long long)el_wall_ms());
        el_key_auth_bucket(key, sizeof(key), a->prune_next++ % EL_KEY_AUTH_BUCKETS);
        best_effort(el_redis_eval_int(a->redis, prune_lua, key, 1, args, NULL, NULL));
    }
}

void el_auth_warm(struct el_auth *a, int wait_ms)
{
    uint64_t deadline = el_now_ms() + (uint64_t)(wait_ms > 0 ? wait_ms : 0);

    while (a->bus != NULL && el_now_ms() < deadline &&
           !(el_bus_connected(a->bus) && el_bus_fresh(a->bus, el_now_ms()))) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    el_auth_tick(a);
}

void el_auth_sync_state(struct el_auth *a, struct el_auth_sync_state *out)
{
    memset(out, 0, sizeof(*out));
    if (a == NULL)
        return;
    out->redis = a->redis != NULL;
    for (unsigned b = 0; b < EL_KEY_AUTH_BUCKETS; b++) {
        out->dirty += atomic_load(&a->dirty[b]) != 0;
        out->stale += atomic_load(&a->stale[b]) != 0;
    }
    out->buckets = EL_KEY_AUTH_BUCKETS;
    out->synced = a->redis != NULL && atomic_load(&a->synced_epoch) == el_redis_epoch(a->redis) &&
                  out->dirty == 0 && out->stale == 0;
    out->syncs = atomic_load(&a->syncs);
    out->copied = atomic_load(&a->synced_revocations);
    out->lost_writes = atomic_load(&a->lost_writes);
    out->store_reads = atomic_load(&a->store_reads);
    out->last_sync_ms = (int64_t)atomic_load(&a->last_sync_ms);
    out->local_trusted = local_trusted(a);
    out->local_hits = atomic_load(&a->local_hits);
    out->nowait_hits = atomic_load(&a->nowait_hits);
}

/* ---- validation ------------------------------------------------------------ */

static void principal_ids(struct el_principal *p, const struct el_token_claims *c)
{
    memcpy(p->id, c->sub, sizeof(p->id));
    memcpy(p->jti, c->jti, sizeof(p->jti));
    memcpy(p->sid, c->sid, sizeof(p->sid));
    p->exp = c->exp;
}

/* The one-round-trip path: three HMGETs in one pipeline, each of one
 * bucket -- the token's, its login's and its user's -- for the marker and
 * the field. Trusted only when all three markers name the server that
 * answered. EL_EUNAVAIL means "ask the store instead". */
static int check_redis(struct el_auth *a, const struct el_token_claims *c, struct el_principal *p,
                       struct el_err *err)
{
    char keys[3][EL_KEY_MAX], fields[3][EL_KEY_MAX], server[EL_REDIS_ID_MAX], skey[EL_KEY_MAX];
    uint64_t mark;
    const char *ids[3] = {c->jti, c->sid, c->sub};
    unsigned bk[3];
    struct el_buf vals[3][2];
    struct el_redis_hmget q[3];
    int64_t now = el_wall_ms(), exp;
    const char *rest;
    int rc, i;

    if (a->redis == NULL)
        return EL_EUNAVAIL;
    /* Redis went down, or the master moved, since our last full copy:
     * revocations written to the store meanwhile may be missing there. */
    if (el_redis_epoch(a->redis) != atomic_load(&a->synced_epoch))
        return EL_EUNAVAIL;
    for (i = 0; i < 3; i++) {
        bk[i] = el_key_auth_bucket_index(ids[i]);
        if (atomic_load(&a->dirty[bk[i]]) || atomic_load(&a->stale[bk[i]]))
            return EL_EUNAVAIL;
        el_key_auth_bucket(keys[i], sizeof(keys[i]), bk[i]);
        snprintf(fields[i], sizeof(fields[i]), "%c:%s", i < 2 ? 'r' : 's', ids[i]);
        el_buf_init(&vals[i][0], 64);
        el_buf_init(&vals[i][1], i < 2 ? 64 : 2048);
        q[i] = (struct el_redis_hmget){keys[i], 2, {"@sync", fields[i]}, vals[i], {0}};
    }
    snprintf(skey, sizeof(skey), "session:%s", c->sub);
    mark = el_tiered_mark(skey);
    rc = el_redis_hmget_batch(a->redis, 3, q, server);
    if (rc != EL_OK) {
        rc = EL_EUNAVAIL;
        goto out;
    }
    for (i = 0; i < 3; i++) {
        if (!q[i].found[0] || server[0] == '\0' || vals[i][0].len != strlen(server) ||
            memcmp(vals[i][0].data, server, vals[i][0].len) != 0) {
            /* Evicted, flushed, or copied to another master: this bucket
             * may lack revocations. The tick copies it again. */
            atomic_store(&a->stale[bk[i]], 1);
            rc = EL_EUNAVAIL;
        }
    }
    if (rc != EL_OK)
        goto out;
    for (i = 0; i < 2; i++) {
        if (q[i].found[1] &&
            (field_expiry(vals[i][1].data, vals[i][1].len, &exp, NULL) != EL_OK || exp > now)) {
            rc = el_err_set(err, EL_EINVAL, "Token has been revoked");
            goto out;
        }
    }
    if (q[2].found[1] && field_expiry(vals[2][1].data, vals[2][1].len, &exp, &rest) == EL_OK &&
        exp > now &&
        session_decode(rest, vals[2][1].len - (size_t)(rest - vals[2][1].data), p) == EL_OK) {
        /* Into L1 too: the next request needs no round trip (local path). */
        if (a->bus != NULL) {
            struct el_blob *blob =
                el_blob_new(200, rest, vals[2][1].len - (size_t)(rest - vals[2][1].data));
            session_l1_put(a, skey, blob, mark);
            el_blob_unref(blob);
        }
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
out:
    for (i = 0; i < 3; i++) {
        el_buf_cleanup(&vals[i][0]);
        el_buf_cleanup(&vals[i][1]);
    }
    return rc;
}

/* No round trip: the local revocation set and the session in L1, while
 * the bus vouches for both (local_trusted). EL_EUNAVAIL: ask Redis. */
static int check_local(struct el_auth *a, const struct el_token_claims *c, struct el_principal *p,
                       struct el_err *err)
{
    char key[EL_KEY_MAX];
    struct el_blob *blob;
    int64_t now = el_wall_ms();
    int rc;

    if (!local_trusted(a))
        return EL_EUNAVAIL;
    if (local_has(a, c->jti, now) || local_has(a, c->sid, now))
        return el_err_set(err, EL_EINVAL, "Token has been revoked");
    snprintf(key, sizeof(key), "session:%s", c->sub);
    blob = el_l1_get(a->l1, key, el_now_ms(), NULL);
    if (blob == NULL)
        return EL_EUNAVAIL;
    rc = session_decode(blob->data, blob->len, p);
    el_blob_unref(blob);
    if (rc != EL_OK)
        return EL_EUNAVAIL;
    principal_ids(p, c);
    el_stats_count(EL_TYPE_SESSION, EL_LAYER_L1);
    atomic_fetch_add_explicit(&a->local_hits, 1, memory_order_relaxed);
    return EL_OK;
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
    /* L1's copy of the session (up to 5 s old) stands in for Redis only
     * while Redis is down. A Redis that answers but cannot vouch for a
     * bucket may have just lost a role change there: ask the store. */
    snprintf(key, sizeof(key), "session:%s", c->sub);
    blob = a->redis != NULL && el_redis_is_up(a->redis) ? NULL
                                                        : el_l1_get(a->l1, key, el_now_ms(), NULL);
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

/* The token of "Bearer <token>", or NULL. */
static const char *bearer_token(const char *authorization)
{
    const char *tok;

    if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
        return NULL;
    tok = authorization + 7;
    while (*tok == ' ')
        tok++;
    return tok;
}

int el_auth_authenticate(struct el_auth *a, const char *authorization, int64_t now_s,
                         struct el_principal *p, struct el_err *err)
{
    struct el_token_claims c;
    const char *tok;
    int rc;

    memset(p, 0, sizeof(*p));
    if ((tok = bearer_token(authorization)) == NULL)
        return el_err_set(err, EL_EINVAL, "Not authenticated");
    if (verify_access(a, tok, now_s, &c, err) != EL_OK)
        return EL_EINVAL;
    rc = check_local(a, &c, p, err);
    if (rc != EL_EUNAVAIL)
        return rc;
    rc = check_redis(a, &c, p, err);
    if (rc != EL_EUNAVAIL)
        return rc;
    return check_store(a, &c, p, err);
}

int el_auth_check_local(struct el_auth *a, const char *authorization, int64_t now_s,
                        struct el_principal *p)
{
    struct el_token_claims c;
    struct el_err err = {0};
    const char *tok;

    memset(p, 0, sizeof(*p));
    /* Every refusal, a 401 included, is left to el_auth_authenticate: it
     * alone words the answers, and a caller then has only one to copy. */
    if ((tok = bearer_token(authorization)) == NULL ||
        verify_access(a, tok, now_s, &c, &err) != EL_OK || check_local(a, &c, p, &err) != EL_OK) {
        memset(p, 0, sizeof(*p));
        return EL_EUNAVAIL;
    }
    atomic_fetch_add_explicit(&a->nowait_hits, 1, memory_order_relaxed);
    return EL_OK;
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

/* An attempt counted before the work it guards (a password check, a
 * registration), so that concurrent attempts can never pass a limit
 * together: each takes its number first, and only numbers up to the limit
 * go on. `redis` says where it was counted, so a release goes to the same
 * place even if Redis changed state in between. */
struct reservation {
    char key[EL_KEY_MAX];
    int held;  /* counted, within the limit */
    int redis; /* counted in Redis (else in the local table) */
};

/* Count one attempt under key against max in the current window. 1 when it
 * is within the limit (r->held), 0 when over it, with the time left in the
 * window in *left_ms. An attempt over the limit is not kept counted. */
static int reserve(struct el_auth *a, struct reservation *r, const char *key, int64_t max,
                   int64_t *left_ms)
{
    int64_t n = 0, ttl = -2;

    snprintf(r->key, sizeof(r->key), "%s", key);
    r->held = 0;
    *left_ms = 0;
    r->redis = a->redis && el_redis_incr_window(a->redis, key, EL_AUTH_FAIL_WINDOW_MS, &n) == EL_OK;
    if (r->redis) {
        if (n <= max) {
            r->held = 1;
            return 1;
        }
        if (el_redis_pttl(a->redis, key, &ttl) == EL_OK && ttl > 0)
            *left_ms = ttl;
        best_effort(el_redis_decr_positive(a->redis, key));
        return 0;
    }
    /* Redis off or down: this process's own count. */
    uint64_t now = el_now_ms();
    struct local_fail *f;

    el_must(pthread_mutex_lock(&a->fail_lock));
    f = local_slot(a, key, now);
    if (f->count < max) {
        f->count++;
        r->held = 1;
    } else {
        *left_ms = (int64_t)(f->window_end - now);
    }
    el_must(pthread_mutex_unlock(&a->fail_lock));
    return r->held;
}

/* Give a held attempt back: it did not happen (the server was busy), or it
 * succeeded and counts only as a failure does. */
static void release(struct el_auth *a, struct reservation *r)
{
    if (!r->held)
        return;
    r->held = 0;
    if (r->redis) {
        best_effort(el_redis_decr_positive(a->redis, r->key));
        return;
    }
    el_must(pthread_mutex_lock(&a->fail_lock));
    struct local_fail *f = local_slot(a, r->key, el_now_ms());
    if (f->count > 0)
        f->count--;
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

static int retry_seconds(int64_t left_ms)
{
    int64_t s = (left_ms + 999) / 1000;

    return s < 1 ? 1 : s > EL_AUTH_FAIL_WINDOW_MS / 1000 ? EL_AUTH_FAIL_WINDOW_MS / 1000 : (int)s;
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

int el_auth_register(struct el_auth *a, const char *email, const char *password, const char *name,
                     const char *client, struct el_user *out, int *retry_after_s,
                     struct el_err *err)
{
    char norm[EL_EMAIL_MAX + 1], hash[EL_PASSWORD_HASH_MAX], k_ip[EL_KEY_MAX];
    size_t plen = strlen(password), nlen = strlen(name);
    struct reservation r_ip = {0};
    int64_t left = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    *retry_after_s = 0;
    if (el_email_normalize(email, norm, sizeof(norm)) != EL_OK)
        return el_err_set(err, EL_EINVAL, "email: not a valid email address");
    if (plen < EL_PASSWORD_MIN || plen > EL_PASSWORD_MAX)
        return el_err_set(err, EL_EINVAL, "password: must be %d to %d characters", EL_PASSWORD_MIN,
                          EL_PASSWORD_MAX);
    if (nlen < 1 || nlen > EL_NAME_MAX)
        return el_err_set(err, EL_EINVAL, "name: must be 1 to %d characters", EL_NAME_MAX);
    /* Every well-formed attempt counts, a taken email too (probing which
     * addresses are registered is what the limit slows down). */
    el_key_register_ip(k_ip, sizeof(k_ip), client && *client ? client : "unknown");
    if (!reserve(a, &r_ip, k_ip, EL_AUTH_MAX_REGISTER_IP, &left)) {
        *retry_after_s = retry_seconds(left);
        return el_err_set(err, EL_ELIMIT,
                          "Too many registrations from this address, try again "
                          "later");
    }
    rc = el_password_hash(password, hash);
    if (rc != EL_OK) {
        release(a, &r_ip);
        *retry_after_s = 1;
        return el_err_set(err, EL_EUNAVAIL, "Server busy, try again");
    }
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
        if (rc != EL_ECONFLICT)
            release(a, &r_ip);
        return rc == EL_ECONFLICT ? rc : EL_EUNAVAIL;
    }
    return EL_OK;
}

int el_auth_login(struct el_auth *a, const char *email, const char *password, const char *client,
                  int64_t now_s, struct el_token_pair *out, int *retry_after_s, struct el_err *err)
{
    char norm[EL_EMAIL_MAX + 1], k_email[EL_KEY_MAX], k_ip[EL_KEY_MAX], sid[EL_JTI_LEN];
    struct reservation r_ip = {0}, r_email = {0};
    struct el_user u;
    int64_t left_email = 0, left_ip = 0;
    int rc, known, ok_ip, ok_email;

    *retry_after_s = 0;
    if (el_email_normalize(email, norm, sizeof(norm)) != EL_OK)
        snprintf(norm, sizeof(norm), "invalid");
    el_key_login_failures_email(k_email, sizeof(k_email), norm);
    el_key_login_failures_ip(k_ip, sizeof(k_ip), client && *client ? client : "unknown");
    /* Both attempts are counted before the password is checked, so no
     * number of concurrent tries gets past the limits; a failure keeps
     * them counted, anything else gives them back. */
    ok_ip = reserve(a, &r_ip, k_ip, EL_AUTH_MAX_FAIL_IP, &left_ip);
    ok_email = ok_ip && reserve(a, &r_email, k_email, EL_AUTH_MAX_FAIL_EMAIL, &left_email);
    if (!ok_ip || !ok_email) {
        release(a, &r_ip);
        *retry_after_s = retry_seconds(ok_ip ? left_email : left_ip);
        return el_err_set(err, EL_ELIMIT, "Too many failed login attempts, try again later");
    }

    rc = el_store_user_get_by_email(a->store, norm, &u);
    if (rc != EL_OK && rc != EL_ENOTFOUND) {
        release(a, &r_ip);
        release(a, &r_email);
        return el_err_set(err, EL_EUNAVAIL, "Database unavailable, try again shortly");
    }
    known = rc == EL_OK;
    /* The same work whether or not the email exists. */
    rc = known ? el_password_verify(u.password_hash, password) : el_password_verify_dummy(password);
    if (rc == EL_EUNAVAIL) {
        if (known)
            el_user_cleanup(&u);
        release(a, &r_ip);
        release(a, &r_email);
        *retry_after_s = 1;
        return el_err_set(err, EL_EUNAVAIL, "Server busy, try again");
    }
    if (rc != EL_OK || !known) {
        if (known)
            el_user_cleanup(&u);
        return el_err_set(err, EL_EINVAL, "Invalid credentials"); /* both stay counted */
    }
    release(a, &r_ip);
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
        if (session_encode(&u, &b) == EL_OK)
            session_store_redis(a, u.id, b.data, b.len);
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
