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
 * all of its inputs are provably unchanged: the same ids page key, the very
 * ids page blob it was built from (the L1 entry, so as fresh as L1 says),
 * the summaries cache's epoch (el_tiered_epoch: it moves after any change
 * to a summary in this L1 and after any drop of any key or of all of L1,
 * by a write here or a bus message), and no older than L1_MAX_STALE (the
 * trust window of an L1 entry checked without the bus, which also bounds
 * how far a memo outlives a summary's TTL). The query's page and page_size,
 * the rest of the bytes, are in the key's digest.
 *
 * New filters (published, instructor_id) are filter fields: a write that
 * changes them says EL_LISTS_MEMBERS. A new sort gets its own order
 * dimension. */
#include <pthread.h>
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
}

void el_app_summary_deleted(struct el_app *app, const char *id)
{
    char key[EL_KEY_MAX];

    el_key_course_summary(key, sizeof(key), id);
    if (el_tiered_set_deleted(app->summaries, key) != EL_OK)
        el_tiered_invalidate(app->summaries, key);
}

void el_app_summary_invalidate(struct el_app *app, const char *id)
{
    char key[EL_KEY_MAX];

    el_key_course_summary(key, sizeof(key), id);
    el_tiered_invalidate(app->summaries, key);
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

/* The ids page key of q. */
static void ids_key(struct el_app *app, const struct el_course_query *q, char key[EL_KEY_MAX])
{
    char digest[41];
    int dim = sort_dim(q->sort);

    el_course_query_digest(q, digest);
    el_key_courses_ids(key, EL_KEY_MAX, atomic_load(&app->list_generation),
                       q->search[0] ? atomic_load(&app->list_gens[EL_LIST_DIM_SEARCH]) : 0,
                       dim >= 0 ? atomic_load(&app->list_gens[dim]) : 0, digest);
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

#define MEMO_SLOTS 256 /* direct-mapped by ids page key; a collision rebuilds */

struct memo_slot {
    pthread_mutex_t lock;
    char key[EL_KEY_MAX];
    struct el_blob *ids;  /* a reference: its identity is the check */
    struct el_blob *page; /* what assemble() made from it */
    uint64_t epoch;       /* el_tiered_epoch(summaries) read before assembling */
    uint64_t built_ms;    /* el_now_ms() before assembling */
};

struct el_list_memo {
    struct memo_slot slots[MEMO_SLOTS];
    atomic_uint_fast64_t hits;
};

static struct memo_slot *memo_slot(struct el_app *app, const char *key)
{
    return &app->list_memo->slots[el_fnv1a64_str(key) % MEMO_SLOTS];
}

/* A new reference to the memoised page of key built from ids, or NULL. */
static struct el_blob *memo_get(struct el_app *app, const char *key, const struct el_blob *ids)
{
    struct memo_slot *m;
    struct el_blob *page = NULL;
    uint64_t now = el_now_ms(), epoch = el_tiered_epoch(app->summaries);

    if (app->list_memo == NULL)
        return NULL;
    m = memo_slot(app, key);
    el_must(pthread_mutex_lock(&m->lock));
    if (m->page && m->ids == ids && m->epoch == epoch &&
        now - m->built_ms <= (uint64_t)app->cfg.l1_max_stale_ms && strcmp(m->key, key) == 0)
        page = el_blob_ref(m->page);
    el_must(pthread_mutex_unlock(&m->lock));
    if (page)
        atomic_fetch_add(&app->list_memo->hits, 1);
    return page;
}

/* Remember page as assembled from ids under key, with the epoch and time
 * read before assembling (a change meanwhile has moved the epoch since). */
static void memo_put(struct el_app *app, const char *key, struct el_blob *ids, uint64_t epoch,
                     uint64_t built_ms, struct el_blob *page)
{
    struct memo_slot *m;
    struct el_blob *old_ids, *old_page;

    if (app->list_memo == NULL || strlen(key) >= sizeof(m->key))
        return;
    m = memo_slot(app, key);
    el_must(pthread_mutex_lock(&m->lock));
    old_ids = m->ids;
    old_page = m->page;
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
static int assemble_memo(struct el_app *app, const char *key, const struct el_course_query *q,
                         struct el_blob *ids, int peek, struct el_blob **out, enum el_layer *layer)
{
    uint64_t epoch, built_ms;
    int rc;

    if ((*out = memo_get(app, key, ids)) != NULL)
        return EL_OK;
    epoch = el_tiered_epoch(app->summaries);
    built_ms = el_now_ms();
    rc = assemble(app, q, ids, peek, out, layer);
    if (rc == EL_OK)
        memo_put(app, key, ids, epoch, built_ms, *out);
    return rc;
}

int el_app_list_read(struct el_app *app, const struct el_course_query *q, struct el_blob **out,
                     enum el_layer *layer)
{
    char key[EL_KEY_MAX];
    struct ids_load l = {app, q};
    struct el_blob *ids = NULL;
    int rc;

    *out = NULL;
    if (app->cfg.l1_max_bytes == 0 && app->redis == NULL) {
        /* No cache at all: one query beats assembling from one per item. */
        *layer = EL_LAYER_MISS;
        rc = page_from_store(app, q, out);
        if (rc == EL_OK)
            el_stats_count(EL_TYPE_COURSE_LIST, EL_LAYER_MISS);
        return rc;
    }
    ids_key(app, q, key);
    rc = el_tiered_get(app->course_lists, key, load_ids, &l, &ids, layer);
    if (rc != EL_OK)
        return rc;
    if (ids->status != 200) { /* an error answer, cached as it is */
        *out = ids;
        return EL_OK;
    }
    rc = assemble_memo(app, key, q, ids, 0, out, layer);
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
    struct el_blob *ids, *out = NULL;
    enum el_layer layer = EL_LAYER_L1;

    ids_key(app, q, key);
    if ((ids = el_tiered_peek(app->course_lists, key)) == NULL)
        return NULL;
    if (ids->status != 200)
        return ids;
    if (assemble_memo(app, key, q, ids, 1, &out, &layer) != EL_OK)
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
