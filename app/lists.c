/* lists.c -- the course-list cache: pages assembled from cached ids and
 * cached course summaries, invalidated only by the writes that can change
 * them.
 *
 * A list page is two things cached apart:
 *  - its ids page: the total and the ordered ids of the page's courses,
 *    under courses_ids:{members}.{search}.{order}:{digest of the query} in
 *    the course_lists tiered cache (L1 + Redis, unversioned);
 *  - each course's summary (course.h: the course without module content),
 *    under course_summary:{id} in the summaries tiered cache -- versioned
 *    with the course's revision, written by every write like the course
 *    itself, so the version guard keeps it current.
 * The response is assembled from them: {"total","page","page_size"} and the
 * summaries in order -- the very bytes el_course_page_to_json makes from
 * the store (the same serializer), which a test checks against uncached
 * reads after random writes.
 *
 * Which writes move which ids pages. An ids page can change only when a
 * course enters or leaves it, or its position changes. The key holds three
 * generations:
 *  - members: every list. A course created or deleted (totals and pages
 *    move), or a filter field changed (category, difficulty, published) --
 *    the existing list generation (EL_KEY_LIST_GEN, app->list_generation);
 *  - search: lists with a search term only. Title, description or tags
 *    changed;
 *  - order: the query's sort only. popular: an enrollment; top_rated: a
 *    rating; duration: duration_minutes; recent sorts by created_at, which
 *    never changes, so it has none.
 * A module edit, or a title edit for any list without a search term,
 * changes no ids page: the summary alone carries it. Each generation is a
 * Redis counter (INCR) announced on the bus ("G <gen> <dimension>"); a
 * process that hears nothing for a while re-reads them (el_app_lists_resync,
 * after a bus reset). When a bump cannot reach Redis, the members
 * generation moves instead: it has the machinery to catch Redis up
 * (el_app_share_generation).
 *
 * The assembled page is memoised per process (struct el_list_memo below):
 * the bytes assemble() made, reused -- a reference, no JSON work -- while
 * all of its inputs are provably unchanged: the same query and the same
 * generations (so the same ids page key, found without hashing the query:
 * a hit on the event thread costs one memo lock and one L1 lookup, like a
 * course hit), the very ids page blob it was built from (the L1 entry, so
 * as fresh as L1 says), the summaries cache's epoch (el_tiered_epoch: it
 * moves after any change to a summary in this L1 and after any drop of
 * any key or of all of L1, by a write here or a bus message), and no
 * older than L1_MAX_STALE (the
 * trust window of an L1 entry checked without the bus, which also bounds
 * how far a memo outlives a summary's TTL). The query's page and page_size,
 * the rest of the bytes, are in the query compared.
 *
 * Without L1 the assembled page is kept in Redis instead, stamped with its
 * ids page and a cluster-wide summaries epoch ("assembled pages in Redis"
 * below).
 *
 * New filters (published, instructor_id) are filter fields: a write that
 * changes them says EL_LISTS_MEMBERS. A new sort gets its own order
 * dimension. */
#include <pthread.h>
#include <sys/random.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "cache/key.h"
#include "core/hash.h"
#include "model/course.h"
#include "store/store.h"

#define IDS_MAX (EL_COURSE_PAGE_SIZE_MAX * 25 + 32) /* "total id id ..." */

static const char *const dim_names[EL_LIST_DIMS] = {
    [EL_LIST_DIM_SEARCH] = "search",
    [EL_LIST_DIM_POPULAR] = "popular",
    [EL_LIST_DIM_TOP_RATED] = "top_rated",
    [EL_LIST_DIM_DURATION] = "duration",
};

/* The order dimension of a sort; -1 for none (recent). */
static int sort_dim(enum el_sort s)
{
    switch (s) {
    case EL_SORT_POPULAR:
        return EL_LIST_DIM_POPULAR;
    case EL_SORT_TOP_RATED:
        return EL_LIST_DIM_TOP_RATED;
    case EL_SORT_DURATION:
        return EL_LIST_DIM_DURATION;
    default:
        return -1;
    }
}

static void gen_forward(atomic_uint_fast64_t *g, uint64_t want)
{
    uint64_t cur = atomic_load(g);

    /* Only forward: a late message must not bring old pages back. */
    while (cur < want && !atomic_compare_exchange_weak(g, &cur, want))
        ;
}

void el_app_list_dim_heard(void *arg, int dim, uint64_t gen)
{
    struct el_app *app = arg;

    if (dim >= 0 && dim < EL_LIST_DIMS && dim != EL_LIST_DIM_MEMBERS)
        gen_forward(&app->list_gens[dim], gen);
}

void el_app_lists_resync(struct el_app *app)
{
    char key[EL_KEY_MAX];
    int64_t gen;

    for (int d = 1; d < EL_LIST_DIMS; d++)
        if (el_key_list_gen(key, sizeof(key), dim_names[d]) > 0 &&
            el_redis_get_int(app->redis, key, &gen) == EL_OK && gen > 0)
            gen_forward(&app->list_gens[d], (uint64_t)gen);
}

/* Move dimension d (not members) on, in Redis and here, and announce it.
 * Returns 0, or -1 when Redis could not count it. */
static int bump_dim(struct el_app *app, int d)
{
    char key[EL_KEY_MAX];
    int64_t gen;

    if (el_key_list_gen(key, sizeof(key), dim_names[d]) < 0 ||
        el_redis_incr(app->redis, key, &gen) != EL_OK || gen <= 0) {
        atomic_fetch_add(&app->list_gens[d], 1);
        return -1;
    }
    gen_forward(&app->list_gens[d], (uint64_t)gen);
    if (el_bus_publish_list_dim(app->bus, d, (uint64_t)gen) != EL_OK && app->bus)
        return -1;
    return 0;
}

void el_app_lists_changed(struct el_app *app, unsigned what)
{
    int members = (what & EL_LISTS_MEMBERS) != 0;

    if ((what & EL_LISTS_SEARCH) && bump_dim(app, EL_LIST_DIM_SEARCH) != 0)
        members = 1;
    if ((what & EL_LISTS_POPULAR) && bump_dim(app, EL_LIST_DIM_POPULAR) != 0)
        members = 1;
    if ((what & EL_LISTS_TOP_RATED) && bump_dim(app, EL_LIST_DIM_TOP_RATED) != 0)
        members = 1;
    if ((what & EL_LISTS_DURATION) && bump_dim(app, EL_LIST_DIM_DURATION) != 0)
        members = 1;
    if (members)
        el_app_bump_lists(app);
}

/* ---- summaries ----------------------------------------------------------- */

static void summary_changed(struct el_app *app);

struct summary_load {
    struct el_store *store;
    const char *id;
};

static int load_summary(void *arg, struct el_buf *body, uint64_t *version)
{
    struct summary_load *l = arg;
    struct el_course c;
    int rc = el_store_course_get(l->store, l->id, &c);

    if (rc == EL_ENOTFOUND)
        return 404;
    if (rc != EL_OK)
        return rc;
    rc = el_course_summary_to_json(&c, body);
    *version = c.rev;
    el_course_cleanup(&c);
    return rc == EL_OK ? 200 : rc;
}

void el_app_summary_written(struct el_app *app, const struct el_course *c)
{
    char key[EL_KEY_MAX];
    struct el_buf b;

    el_key_course_summary(key, sizeof(key), c->id);
    el_buf_init(&b, EL_COURSE_SUMMARY_MAX * 2);
    if (el_course_summary_to_json(c, &b) != EL_OK ||
        el_tiered_set(app->summaries, key, b.data, b.len, c->rev) != EL_OK)
        el_tiered_invalidate(app->summaries, key);
    el_buf_cleanup(&b);
    summary_changed(app);
}

void el_app_summary_deleted(struct el_app *app, const char *id)
{
    char key[EL_KEY_MAX];

    el_key_course_summary(key, sizeof(key), id);
    if (el_tiered_set_deleted(app->summaries, key) != EL_OK)
        el_tiered_invalidate(app->summaries, key);
    summary_changed(app);
}

void el_app_summary_invalidate(struct el_app *app, const char *id)
{
    char key[EL_KEY_MAX];

    el_key_course_summary(key, sizeof(key), id);
    el_tiered_invalidate(app->summaries, key);
    summary_changed(app);
}

/* ---- ids pages ----------------------------------------------------------- */

struct ids_load {
    struct el_app *app;
    const struct el_course_query *q;
};

/* An ids page from the store: "total id id ...". The summaries the store
 * returned with it fill the summary cache on the way (versioned: never
 * over a newer one), so a cold list costs one query, not one per item. */
static int load_ids(void *arg, struct el_buf *body, uint64_t *version)
{
    struct ids_load *l = arg;
    struct el_course_page page;
    struct el_buf s;
    int rc;

    EL_UNUSED(version); /* ids pages are keyed by generations */
    rc = el_store_course_list(l->app->store, l->q, &page);
    if (rc != EL_OK)
        return rc;
    rc = el_buf_addf(body, "%lld", (long long)page.total);
    el_buf_init(&s, EL_COURSE_SUMMARY_MAX * 2);
    for (size_t i = 0; rc == EL_OK && i < page.nitems; i++) {
        char key[EL_KEY_MAX];

        rc = el_buf_addf(body, " %s", page.items[i].id);
        el_buf_reset(&s);
        if (el_key_course_summary(key, sizeof(key), page.items[i].id) > 0 &&
            el_course_summary_to_json(&page.items[i], &s) == EL_OK)
            el_tiered_fill(l->app->summaries, key, s.data, s.len, page.items[i].rev);
    }
    el_buf_cleanup(&s);
    el_course_page_cleanup(&page);
    return rc == EL_OK ? 200 : rc;
}

#define TOO_LARGE                                                                                  \
    "{\"detail\":\"This page of courses is too large to send; ask for a smaller page_size\"}"

/* The store's answer, uncached: the fallback when a page cannot be
 * assembled (a listed course deleted meanwhile). Past EL_COURSE_PAGE_MAX
 * -- impossible within the input limits (course.h), possible for documents
 * other tools wrote -- a 422 that says so. */
static int page_from_store(struct el_app *app, const struct el_course_query *q,
                           struct el_blob **out)
{
    struct el_course_page page;
    struct el_buf b;
    int rc = el_store_course_list(app->store, q, &page);

    if (rc != EL_OK)
        return rc;
    el_buf_init(&b, EL_COURSE_PAGE_MAX);
    rc = el_course_page_to_json(&page, q, &b);
    el_course_page_cleanup(&page);
    if (rc == EL_OK || rc == EL_ETOOBIG) {
        *out = rc == EL_OK ? el_blob_new(200, b.data, b.len)
                           : el_blob_new(422, TOO_LARGE, strlen(TOO_LARGE));
        rc = *out ? EL_OK : EL_ENOMEM;
    }
    el_buf_cleanup(&b);
    return rc;
}

/* The "worse" of two layers for X-Cache: MISS > L2 > L1 (STALE counts as
 * what it is). */
static enum el_layer worse(enum el_layer a, enum el_layer b)
{
    static const int rank[] = {
        [EL_LAYER_L1] = 0, [EL_LAYER_L2] = 1, [EL_LAYER_MISS] = 2, [EL_LAYER_STALE] = 3};

    return rank[b] > rank[a] ? b : a;
}

/* The generations in the ids page key of q: the members one, the search
 * one for a query with a search term, its sort's order one (0 where none
 * applies). Read once per request: the key and the memo check use the
 * same numbers. */
struct gens {
    uint64_t members, search, order;
};

static void query_gens(struct el_app *app, const struct el_course_query *q, struct gens *g)
{
    int dim = sort_dim(q->sort);

    g->members = atomic_load(&app->list_generation);
    g->search = q->search[0] ? atomic_load(&app->list_gens[EL_LIST_DIM_SEARCH]) : 0;
    g->order = dim >= 0 ? atomic_load(&app->list_gens[dim]) : 0;
}

/* The ids page key of q under generations g. */
static void ids_key(const struct el_course_query *q, const struct gens *g, char key[EL_KEY_MAX])
{
    char digest[41];

    el_course_query_digest(q, digest);
    el_key_courses_ids(key, EL_KEY_MAX, g->members, g->search, g->order, digest);
}

/* Assemble the page of ids page ids: each item's summary through the
 * summaries cache -- or, with peek, from L1 only (EL_EDISABLED when one is
 * not there). EL_ENOTFOUND / EL_EPROTO: the ids page is out of step with
 * the courses; EL_ETOOBIG: the page is too large to send. */
static int assemble(struct el_app *app, const struct el_course_query *q, const struct el_blob *ids,
                    int peek, struct el_blob **out, enum el_layer *layer)
{
    struct el_buf b;
    const char *p;
    char *end;
    long long total = strtoll(ids->data, &end, 10);
    int rc, n = 0;

    el_buf_init(&b, EL_COURSE_PAGE_MAX);
    rc = el_buf_addf(&b, "{\"total\":%lld,\"page\":%d,\"page_size\":%d,\"items\":[", total, q->page,
                     q->page_size);
    for (p = end; rc == EL_OK && *p == ' ' && n < q->page_size; n++) {
        char id[EL_OID_HEX], skey[EL_KEY_MAX];
        struct summary_load sl = {app->store, id};
        struct el_blob *s = NULL;
        enum el_layer sl_layer = EL_LAYER_L1;

        if (strlen(p + 1) < 24 || (p[25] != ' ' && p[25] != '\0')) {
            rc = EL_EPROTO; /* not an ids page we wrote */
            break;
        }
        memcpy(id, p + 1, 24);
        id[24] = '\0';
        p += 25;
        el_key_course_summary(skey, sizeof(skey), id);
        if (peek)
            rc = (s = el_tiered_peek(app->summaries, skey)) ? EL_OK : EL_EDISABLED;
        else
            rc = el_tiered_get(app->summaries, skey, load_summary, &sl, &s, &sl_layer);
        if (rc == EL_OK && s->status != 200)
            rc = EL_ENOTFOUND; /* deleted (or a draft) since the ids page was made */
        if (rc == EL_OK) {
            rc = el_buf_addf(&b, "%s%s", n ? "," : "", s->data);
            *layer = worse(*layer, sl_layer);
        }
        el_blob_unref(s);
    }
    if (rc == EL_OK)
        rc = el_buf_adds(&b, "]}");
    if (rc == EL_OK) {
        *out = el_blob_new(200, b.data, b.len);
        rc = *out ? EL_OK : EL_ENOMEM;
    } else if (rc == EL_ETOOBIG) {
        *out = el_blob_new(422, TOO_LARGE, strlen(TOO_LARGE));
        rc = *out ? EL_OK : EL_ENOMEM;
    }
    el_buf_cleanup(&b);
    return rc;
}

/* ---- the memo of assembled pages ------------------------------------- */

#define MEMO_SLOTS 256 /* direct-mapped by query; a collision rebuilds */

struct memo_slot {
    pthread_mutex_t lock;
    struct el_course_query q; /* the query it answers */
    struct gens gens;         /* the generations of its ids page key */
    char key[EL_KEY_MAX];     /* that key */
    struct el_blob *ids;      /* a reference: its identity is the check */
    struct el_blob *page;     /* what assemble() made from it */
    uint64_t epoch;           /* el_tiered_epoch(summaries) read before assembling */
    uint64_t built_ms;        /* el_now_ms() before assembling */
};

struct el_list_memo {
    struct memo_slot slots[MEMO_SLOTS];
    atomic_uint_fast64_t hits;
};

static int query_equal(const struct el_course_query *a, const struct el_course_query *b)
{
    return a->sort == b->sort && a->page == b->page && a->page_size == b->page_size &&
           a->published_only == b->published_only && a->instructor_me == b->instructor_me &&
           strcmp(a->search, b->search) == 0 && strcmp(a->category, b->category) == 0 &&
           strcmp(a->difficulty, b->difficulty) == 0 &&
           strcmp(a->instructor_id, b->instructor_id) == 0;
}

static struct memo_slot *memo_slot(struct el_app *app, const struct el_course_query *q)
{
    int nums[3] = {(int)q->sort, q->page, q->page_size};
    uint64_t h = el_fnv1a64(EL_FNV1A64_INIT, nums, sizeof(nums));

    h = el_fnv1a64(h, q->search, strlen(q->search));
    h = el_fnv1a64(h, q->category, strlen(q->category));
    h = el_fnv1a64(h, q->difficulty, strlen(q->difficulty));
    h = el_fnv1a64(h, q->instructor_id, strlen(q->instructor_id));
    return &app->list_memo->slots[h % MEMO_SLOTS];
}

/* A new reference to the memoised page of q under generations g, or NULL.
 * ids: the ids page the caller got for q, whose identity is checked; or
 * NULL to check the one L1 holds now (el_tiered_peek: the event thread's
 * path, which then needs no digest of q, no key and no allocation). Then
 * *peeked gets a reference to that L1 entry, if it was looked at, for the
 * caller to assemble from on a miss (NULL otherwise). */
static struct el_blob *memo_get(struct el_app *app, const struct el_course_query *q,
                                const struct gens *g, const struct el_blob *ids,
                                struct el_blob **peeked)
{
    struct memo_slot *m;
    struct el_blob *page = NULL, *cur = NULL;
    uint64_t now = el_now_ms(), epoch = el_tiered_epoch(app->summaries);

    if (peeked)
        *peeked = NULL;
    if (app->list_memo == NULL)
        return NULL;
    m = memo_slot(app, q);
    el_must(pthread_mutex_lock(&m->lock));
    if (m->page && memcmp(&m->gens, g, sizeof(*g)) == 0 && query_equal(&m->q, q)) {
        /* The slot's key is q's under g: look at what L1 holds under it. */
        if (ids == NULL)
            ids = cur = el_tiered_peek(app->course_lists, m->key);
        if (ids != NULL && m->ids == ids && m->epoch == epoch &&
            now - m->built_ms <= (uint64_t)app->cfg.l1_max_stale_ms)
            page = el_blob_ref(m->page);
    }
    el_must(pthread_mutex_unlock(&m->lock));
    if (peeked)
        *peeked = cur;
    else
        el_blob_unref(cur);
    if (page)
        atomic_fetch_add(&app->list_memo->hits, 1);
    return page;
}

/* Remember page as assembled for q from ids under key (q's under g), with
 * the epoch and time read before assembling (a change meanwhile has moved
 * the epoch since). */
static void memo_put(struct el_app *app, const struct el_course_query *q, const struct gens *g,
                     const char *key, struct el_blob *ids, uint64_t epoch, uint64_t built_ms,
                     struct el_blob *page)
{
    struct memo_slot *m;
    struct el_blob *old_ids, *old_page;

    if (app->list_memo == NULL || app->cfg.l1_max_bytes == 0 || strlen(key) >= sizeof(m->key))
        return; /* without L1 no ids page is ever the same blob twice */
    m = memo_slot(app, q);
    el_must(pthread_mutex_lock(&m->lock));
    old_ids = m->ids;
    old_page = m->page;
    m->q = *q;
    m->gens = *g;
    memcpy(m->key, key, strlen(key) + 1);
    m->ids = el_blob_ref(ids);
    m->page = el_blob_ref(page);
    m->epoch = epoch;
    m->built_ms = built_ms;
    el_must(pthread_mutex_unlock(&m->lock));
    el_blob_unref(old_ids);
    el_blob_unref(old_page);
}

uint64_t el_app_list_memo_hits(struct el_app *app)
{
    return app->list_memo ? atomic_load(&app->list_memo->hits) : 0;
}

/* assemble(), through the memo. */
static int assemble_memo(struct el_app *app, const struct el_course_query *q, const struct gens *g,
                         const char *key, struct el_blob *ids, int peek, struct el_blob **out,
                         enum el_layer *layer)
{
    uint64_t epoch, built_ms;
    int rc;

    if ((*out = memo_get(app, q, g, ids, NULL)) != NULL)
        return EL_OK;
    epoch = el_tiered_epoch(app->summaries);
    built_ms = el_now_ms();
    rc = assemble(app, q, ids, peek, out, layer);
    if (rc == EL_OK)
        memo_put(app, q, g, key, ids, epoch, built_ms, *out);
    return rc;
}

/* ---- assembled pages in Redis ------------------------------------------
 *
 * Without L1 (L1_MAX_BYTES=0) no ids page is the same blob twice, so the
 * memo cannot help, and assembling costs a Redis round trip per item. The
 * assembled page is therefore also kept in Redis, under course_page:{the
 * ids page key's generations and digest}, stamped with what it was built
 * from:
 *   "P1 <status> <summaries epoch> <length of the ids page> <ETag>\n" <ids page> <page>
 * A read is one round trip (three GETs in a pipeline, in this order) of
 * the summaries epoch, the ids page and the stored page; the page is
 * served only if the ids page is byte for byte the one it was built from
 * and the epoch is the one read before its summaries were. The summaries epoch (EL_KEY_SUMMARY_EPOCH) is a Redis counter that
 * every process moves after each change it makes to a summary (a write, a
 * delete, an invalidation), so it is cluster-wide: a page assembled from
 * summaries read before a write is stamped with an epoch that write has
 * moved on, whenever the page is stored -- versions, not timing. A move
 * that cannot reach Redis is owed and made by the housekeeping thread
 * once the summaries' own Redis clean-up (el_tiered_replay) is done. The
 * counter starts at a random value whenever Redis has none (a restart), so
 * a stamp from before a restart never matches a count after it. */

#define PAGE_MAGIC "P1 "

/* Move the summaries epoch on (creating it at a random start when absent).
 * Returns 0, or -1 when Redis could not be reached; *epoch (may be NULL)
 * gets the new value. */
static int epoch_move(struct el_app *app, uint64_t *epoch)
{
    static const char lua[] = "local v = redis.call('INCR', KEYS[1]) "
                              "if v == 1 then v = tonumber(ARGV[1]) "
                              "redis.call('SET', KEYS[1], ARGV[1]) end return v";
    char start[24];
    const char *args[1] = {start};
    uint64_t r = 0;
    int64_t v;

    if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
        r = el_now_ms() ^ (uint64_t)getpid() << 32;
    snprintf(start, sizeof(start), "%llu", (unsigned long long)((r >> 12) | 2)); /* < 2^52 */
    if (el_redis_eval_int(app->redis, lua, EL_KEY_SUMMARY_EPOCH, 1, args, &v, NULL) != EL_OK ||
        v <= 0)
        return -1;
    if (epoch)
        *epoch = (uint64_t)v;
    return 0;
}

/* After a change to a summary in Redis: no page assembled before it may
 * be served from Redis again. */
static void summary_changed(struct el_app *app)
{
    if (app->redis && epoch_move(app, NULL) != 0)
        atomic_store(&app->summary_epoch_owed, 1);
}

void el_app_lists_share_epoch(struct el_app *app)
{
    if (atomic_load(&app->summary_epoch_owed) && el_redis_is_up(app->redis) &&
        epoch_move(app, NULL) == 0)
        atomic_store(&app->summary_epoch_owed, 0);
}

static int parse_u64(const char **p, uint64_t *v)
{
    char *end;

    if (**p < '0' || **p > '9')
        return -1;
    *v = strtoull(*p, &end, 10);
    *p = end;
    return 0;
}

/* The stored page under page_key when it is valid; *epoch gets the
 * summaries epoch read with it (to stamp a page assembled next), *known
 * whether there is one. EL_OK with *out, or EL_ENOTFOUND (also when
 * Redis cannot answer: the caller assembles). */
static int page_from_redis(struct el_app *app, const char *ids_key, const char *page_key,
                           uint64_t *epoch, int *known, struct el_blob **out)
{
    const char *keys[3] = {EL_KEY_SUMMARY_EPOCH, ids_key, page_key};
    struct el_buf vals[3];
    int found[3] = {0, 0, 0}, rc = EL_ENOTFOUND;

    *known = 0;
    for (int i = 0; i < 3; i++)
        el_buf_init(&vals[i], EL_COURSE_PAGE_MAX + IDS_MAX + 64);
    if (el_redis_get_each(app->redis, 3, keys, vals, found) != EL_OK)
        goto out;
    if (!found[0]) {
        /* No epoch (Redis restarted): make one, and stamp with it. */
        if (epoch_move(app, epoch) == 0)
            *known = 1;
        goto out;
    }
    {
        const char *p = vals[0].data;

        if (parse_u64(&p, epoch) != 0 || *p != '\0')
            goto out;
        *known = 1;
    }
    if (found[1] && found[2] && vals[2].len > strlen(PAGE_MAGIC) &&
        memcmp(vals[2].data, PAGE_MAGIC, strlen(PAGE_MAGIC)) == 0) {
        const char *p = vals[2].data + strlen(PAGE_MAGIC), *end = vals[2].data + vals[2].len;
        uint64_t status, stamp, ids_len;
        char etag[EL_ETAG_MAX];

        if (parse_u64(&p, &status) == 0 && *p++ == ' ' && parse_u64(&p, &stamp) == 0 &&
            *p++ == ' ' && parse_u64(&p, &ids_len) == 0 && *p++ == ' ' && end - p > 19 &&
            p[18] == '\n' && stamp == *epoch && (status == 200 || status == 422) &&
            ids_len == vals[1].len && (size_t)(end - p - 19) >= ids_len &&
            memcmp(p + 19, vals[1].data, ids_len) == 0) {
            memcpy(etag, p, 18);
            etag[18] = '\0';
            p += 19 + ids_len;
            /* The tag assemble's blob had: no hashing of the page again. */
            *out = el_blob_new_tagged((int)status, p, (size_t)(end - p), etag);
            rc = *out ? EL_OK : EL_ENOMEM;
        }
    }
out:
    for (int i = 0; i < 3; i++)
        el_buf_cleanup(&vals[i]);
    return rc;
}

/* Store page, assembled from ids with summaries read after the epoch was,
 * under page_key (best effort: a failure costs the next reader an
 * assembly). */
static void page_to_redis(struct el_app *app, const char *page_key, const struct el_blob *ids,
                          uint64_t epoch, const struct el_blob *page)
{
    struct el_buf b;

    el_buf_init(&b, EL_COURSE_PAGE_MAX + IDS_MAX + 64);
    if (el_buf_addf(&b, PAGE_MAGIC "%d %llu %zu %s\n", page->status, (unsigned long long)epoch,
                    ids->len, page->etag) == EL_OK &&
        el_buf_add(&b, ids->data, ids->len) == EL_OK &&
        el_buf_add(&b, page->data, page->len) == EL_OK) {
        int rc = el_redis_set(app->redis, page_key, b.data, b.len,
                              el_tiered_jitter((int64_t)app->cfg.course_list_ttl * 1000));

        EL_UNUSED(rc); /* counted by the breaker */
    }
    el_buf_cleanup(&b);
}

int el_app_list_read(struct el_app *app, const struct el_course_query *q, struct el_blob **out,
                     enum el_layer *layer)
{
    char key[EL_KEY_MAX], page_key[EL_KEY_MAX];
    struct ids_load l = {app, q};
    struct el_blob *ids = NULL;
    struct gens g;
    uint64_t epoch = 0;
    int rc, stored = 0, known = 0;

    *out = NULL;
    if (app->cfg.l1_max_bytes == 0 && app->redis == NULL) {
        /* No cache at all: one query beats assembling from one per item. */
        *layer = EL_LAYER_MISS;
        rc = page_from_store(app, q, out);
        if (rc == EL_OK)
            el_stats_count(EL_TYPE_COURSE_LIST, EL_LAYER_MISS);
        return rc;
    }
    query_gens(app, q, &g);
    ids_key(q, &g, key);
    if (app->cfg.l1_max_bytes == 0) {
        stored = el_key_course_page(page_key, sizeof(page_key), key) > 0;
        if (stored && page_from_redis(app, key, page_key, &epoch, &known, out) == EL_OK) {
            *layer = EL_LAYER_L2;
            el_stats_count(EL_TYPE_COURSE_LIST, EL_LAYER_L2);
            return EL_OK;
        }
    }
    rc = el_tiered_get(app->course_lists, key, load_ids, &l, &ids, layer);
    if (rc != EL_OK)
        return rc;
    if (ids->status != 200) { /* an error answer, cached as it is */
        *out = ids;
        return EL_OK;
    }
    rc = assemble_memo(app, q, &g, key, ids, 0, out, layer);
    if (rc == EL_OK && stored && known)
        page_to_redis(app, page_key, ids, epoch, *out);
    if (rc == EL_ENOTFOUND || rc == EL_EPROTO) {
        /* The ids page is out of step with the courses (the write that made
         * it so has moved, or is about to move, its generation): answer
         * from the store this once. */
        rc = page_from_store(app, q, out);
        *layer = EL_LAYER_MISS;
    }
    el_blob_unref(ids);
    return rc;
}

struct el_blob *el_app_list_peek(struct el_app *app, const struct el_course_query *q)
{
    char key[EL_KEY_MAX];
    struct el_blob *ids, *out;
    enum el_layer layer = EL_LAYER_L1;
    struct gens g;

    if (app->cfg.l1_max_bytes == 0)
        return NULL; /* nothing is in L1: the worker reads Redis */
    query_gens(app, q, &g);
    /* The hit: no digest, no key, no allocation. */
    if ((out = memo_get(app, q, &g, NULL, &ids)) != NULL) {
        el_blob_unref(ids);
        return out;
    }
    ids_key(q, &g, key);
    if (ids == NULL && (ids = el_tiered_peek(app->course_lists, key)) == NULL)
        return NULL;
    if (ids->status != 200)
        return ids;
    if (assemble_memo(app, q, &g, key, ids, 1, &out, &layer) != EL_OK)
        out = NULL;
    el_blob_unref(ids);
    return out;
}

int el_app_lists_open(struct el_app *app)
{
    struct el_tiered_opts o = {0};

    o.type = EL_TYPE_COURSE_SUMMARY;
    o.ttl_ms = (int64_t)app->cfg.course_ttl * 1000;
    o.neg_ttl_ms = 30000;
    o.neg_body = "{\"detail\":\"Course not found\"}";
    o.max_stale_ms = app->cfg.l1_max_stale_ms;
    app->summaries = el_tiered_new(app->l1, app->redis, &o);
    if (app->summaries == NULL)
        return -1;
    if ((app->list_memo = calloc(1, sizeof(*app->list_memo))) == NULL)
        return -1;
    for (int i = 0; i < MEMO_SLOTS; i++)
        el_must(pthread_mutex_init(&app->list_memo->slots[i].lock, NULL));
    el_tiered_set_bus(app->summaries, app->bus);
    el_app_lists_resync(app);
    return 0;
}

void el_app_lists_close(struct el_app *app)
{
    if (app->list_memo) {
        for (int i = 0; i < MEMO_SLOTS; i++) {
            el_blob_unref(app->list_memo->slots[i].ids);
            el_blob_unref(app->list_memo->slots[i].page);
            pthread_mutex_destroy(&app->list_memo->slots[i].lock);
        }
        free(app->list_memo);
        app->list_memo = NULL;
    }
    el_tiered_free(app->summaries);
    app->summaries = NULL;
}
