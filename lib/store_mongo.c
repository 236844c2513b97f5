/* store_mongo.c -- the store (see store.h) in MongoDB, through libmongoc.
 *
 * Key decision: one mongoc_client_pool_t shared by every thread; each call
 * pops a client, runs its commands and pushes the client back, so no
 * libmongoc object outlives a call or is shared between threads, and
 * cursor documents are converted into struct el_course at once (no bson_t
 * crosses store.h). Every wait is bounded by URI options we add when the
 * URI does not set them: server selection and socket timeouts of
 * DB_TIMEOUT_MS (default 1500 ms), a connect timeout of at most 1000 ms.
 *
 * The pool connects lazily, so opening never needs the server: the
 * responder starts while MongoDB is down and every call fails with
 * EL_EUNAVAIL until it is back. The list indexes are created at open when
 * the server answers, else after the first call that reaches it.
 *
 * Search text never becomes query syntax: it is a string value of $regex in
 * which every regex metacharacter is escaped and every ASCII letter becomes
 * a two-letter class ([aA]). The class, rather than the "i" option, makes
 * case folding ASCII-only, exactly as in the SQLite backend, so both stores
 * match the same documents (PCRE would also fold non-ASCII letters).
 *
 * libbson aborts when it cannot allocate; only our own allocations can
 * return EL_ENOMEM. */
#include "store_int.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mongoc/mongoc.h>

#include "key.h"

#define COLLECTION "courses"
#define DEFAULT_DB "elearn"
#define CONNECT_TIMEOUT_MS 1000

/* Where index creation stands; see ensure_indexes(). */
enum { IDX_NEEDED, IDX_BUSY, IDX_DONE };

struct mongo_store {
    struct el_store base;
    mongoc_client_pool_t *pool; /* thread-safe; owns a copy of the URI */
    char *db;                   /* database name */
    atomic_int indexes;         /* IDX_* */
};

static const struct el_store_ops mongo_ops;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* libmongoc's own messages: warnings and worse go to stderr like ours.
 * Its debug lines are dropped -- while the server is down, its monitor
 * would print one every half second in every process. */
static void log_handler(mongoc_log_level_t level, const char *domain, const char *message,
                        void *arg)
{
    EL_UNUSED(arg);
    if (level <= MONGOC_LOG_LEVEL_WARNING)
        fprintf(stderr, "store: mongo: %s: %s: %s\n", mongoc_log_level_str(level), domain, message);
}

/* mongoc_init() must run once per process before any other libmongoc
 * call; mongoc_cleanup() is never called, as other stores may be open. */
static void mongo_init(void)
{
    mongoc_log_set_handler(log_handler, NULL);
    mongoc_init();
}

static struct mongo_store *from(struct el_store *s)
{
    return (struct mongo_store *)s;
}

/* ---- errors ------------------------------------------------------------ */

/* Server error codes that mean "cannot serve now" rather than "bad
 * request": network trouble reported by a mongos, shutdown, failover,
 * time limits. */
static bool unavailable_code(uint32_t code)
{
    switch (code) {
    case 6:     /* HostUnreachable */
    case 7:     /* HostNotFound */
    case 50:    /* MaxTimeMSExpired */
    case 89:    /* NetworkTimeout */
    case 91:    /* ShutdownInProgress */
    case 189:   /* PrimarySteppedDown */
    case 262:   /* ExceededTimeLimit */
    case 9001:  /* SocketException */
    case 10107: /* NotWritablePrimary */
    case 11600: /* InterruptedAtShutdown */
    case 11602: /* InterruptedDueToReplStateChange */
    case 13435: /* NotPrimaryNoSecondaryOk */
    case 13436: /* NotPrimaryOrSecondary */
        return true;
    default:
        return false;
    }
}

/* A libmongoc error (error API version 2) as an elearn status. Failures
 * that are neither the database being away nor the caller's fault are
 * unexpected, so they are logged: their detail would be lost otherwise. */
static int map_error(const bson_error_t *e, const char *what)
{
    switch (e->domain) {
    case MONGOC_ERROR_STREAM:
    case MONGOC_ERROR_SERVER_SELECTION:
    case MONGOC_ERROR_SASL:
    case MONGOC_ERROR_SCRAM:
        return EL_EUNAVAIL;
    case MONGOC_ERROR_CLIENT:
        if (e->code == MONGOC_ERROR_CLIENT_AUTHENTICATE)
            return EL_EUNAVAIL;
        if (e->code == MONGOC_ERROR_CLIENT_TOO_BIG)
            return EL_ETOOBIG;
        break;
    case MONGOC_ERROR_COMMAND:
        if (e->code == MONGOC_ERROR_COMMAND_INVALID_ARG)
            return EL_EINVAL; /* e.g. a string that is not valid UTF-8 */
        break;
    case MONGOC_ERROR_SERVER:
    case MONGOC_ERROR_WRITE_CONCERN:
        if (e->code == MONGOC_ERROR_DUPLICATE_KEY)
            return EL_ECONFLICT;
        if (unavailable_code(e->code))
            return EL_EUNAVAIL;
        break;
    default:
        break;
    }
    fprintf(stderr, "store: mongo: %s failed: %s (domain %u, code %u)\n", what, e->message,
            e->domain, e->code);
    return EL_EIO;
}

/* ---- indexes ----------------------------------------------------------- */

static const struct {
    const char *name;
    const char *field;
    int dir;
    bool by_id; /* _id ascending as the second key: the tie-breaker */
} indexes[] = {
    {"category_1", "category", 1, false},
    {"difficulty_1", "difficulty", 1, false},
    {"created_at_-1__id_1", "created_at", -1, true},
    {"enrollment_count_-1__id_1", "enrollment_count", -1, true},
    {"rating_-1__id_1", "rating", -1, true},
    {"duration_minutes_1__id_1", "duration_minutes", 1, true},
};

/* createIndexes for the filter and sort keys. Idempotent: existing
 * indexes with the same keys and names are left alone. */
static int create_indexes(mongoc_collection_t *coll, bson_error_t *error)
{
    bson_t cmd = BSON_INITIALIZER, list, spec, key;
    char idx[16];
    const char *k;
    bool ok;

    BSON_APPEND_UTF8(&cmd, "createIndexes", COLLECTION);
    BSON_APPEND_ARRAY_BEGIN(&cmd, "indexes", &list);
    for (uint32_t i = 0; i < sizeof(indexes) / sizeof(indexes[0]); i++) {
        bson_uint32_to_string(i, &k, idx, sizeof(idx));
        BSON_APPEND_DOCUMENT_BEGIN(&list, k, &spec);
        BSON_APPEND_DOCUMENT_BEGIN(&spec, "key", &key);
        BSON_APPEND_INT32(&key, indexes[i].field, indexes[i].dir);
        if (indexes[i].by_id)
            BSON_APPEND_INT32(&key, "_id", 1);
        bson_append_document_end(&spec, &key);
        BSON_APPEND_UTF8(&spec, "name", indexes[i].name);
        bson_append_document_end(&list, &spec);
    }
    bson_append_array_end(&cmd, &list);
    ok = mongoc_collection_write_command_with_opts(coll, &cmd, NULL, NULL, error);
    bson_destroy(&cmd);
    return ok ? EL_OK : map_error(error, "createIndexes");
}

/* Create the indexes unless done already. Called at open and after any
 * call that reached the server, never before one: an unreachable server
 * must cost a call one timeout, not two. Only one thread tries at a time;
 * the others go on without waiting (indexes only make queries faster).
 * Availability failures leave the work for a later call; any other failure
 * (an index of that name with other keys) is logged once and given up. */
static void ensure_indexes(struct mongo_store *s, mongoc_client_t *client)
{
    int expected = IDX_NEEDED;
    mongoc_collection_t *coll;
    bson_error_t error;
    int rc;

    if (atomic_load_explicit(&s->indexes, memory_order_acquire) != IDX_NEEDED ||
        !atomic_compare_exchange_strong(&s->indexes, &expected, IDX_BUSY))
        return;
    coll = mongoc_client_get_collection(client, s->db, COLLECTION);
    rc = create_indexes(coll, &error);
    mongoc_collection_destroy(coll);
    if (rc == EL_EUNAVAIL) {
        fprintf(stderr, "store: mongo: cannot create indexes now (%s); will retry on first use\n",
                error.message);
        atomic_store_explicit(&s->indexes, IDX_NEEDED, memory_order_release);
        return;
    }
    if (rc != EL_OK)
        fprintf(stderr, "store: mongo: giving up on creating indexes: %s\n", error.message);
    atomic_store_explicit(&s->indexes, IDX_DONE, memory_order_release);
}

/* ---- one call's client ------------------------------------------------- */

/* Borrow a client for one call. Never fails: the pool blocks while all
 * maxPoolSize clients are in use. */
static mongoc_client_t *client_pop(struct mongo_store *s, mongoc_collection_t **coll)
{
    mongoc_client_t *client = mongoc_client_pool_pop(s->pool);

    *coll = mongoc_client_get_collection(client, s->db, COLLECTION);
    return client;
}

/* Return the client; rc is the call's status. A status only a server can
 * give proves it reachable, which is when missing indexes get created. */
static int client_push(struct mongo_store *s, mongoc_client_t *client, mongoc_collection_t *coll,
                       int rc)
{
    mongoc_collection_destroy(coll);
    if (rc == EL_OK || rc == EL_ENOTFOUND || rc == EL_ECONFLICT)
        ensure_indexes(s, client);
    mongoc_client_pool_push(s->pool, client);
    return rc;
}

/* ---- documents -> structs ---------------------------------------------- */

/* Heap copy of a UTF-8 value (up to its first NUL, as a C string). */
static int dup_utf8(const bson_iter_t *it, char **out)
{
    uint32_t len;
    const char *v = bson_iter_utf8(it, &len);

    free(*out); /* a repeated key: the last one wins */
    *out = strndup(v, len);
    return *out ? EL_OK : EL_ENOMEM;
}

/* Strings missing from a document read as "", as SQLite gives them. */
static int fill_empty(char **s)
{
    if (*s == NULL)
        *s = strdup("");
    return *s ? EL_OK : EL_ENOMEM;
}

/* Numbers are written as int32, but documents from other writers may hold
 * int64 or double; out-of-range values are clamped. */
static int iter_int(const bson_iter_t *it)
{
    double d;
    int64_t v;

    switch (bson_iter_type(it)) {
    case BSON_TYPE_INT32:
        return bson_iter_int32(it);
    case BSON_TYPE_INT64:
        v = bson_iter_int64(it);
        return v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int)v;
    case BSON_TYPE_DOUBLE:
        d = bson_iter_double(it);
        if (isnan(d))
            return 0;
        return d >= 2147483647.0 ? INT32_MAX : d <= -2147483648.0 ? INT32_MIN : (int)d;
    case BSON_TYPE_BOOL:
        return bson_iter_bool(it);
    default:
        return 0;
    }
}

static double iter_double(const bson_iter_t *it)
{
    switch (bson_iter_type(it)) {
    case BSON_TYPE_DOUBLE:
        return bson_iter_double(it);
    case BSON_TYPE_INT32:
        return bson_iter_int32(it);
    case BSON_TYPE_INT64:
        return (double)bson_iter_int64(it);
    default:
        return 0.0;
    }
}

/* Dates are BSON datetimes; plain integers are taken as ms too. */
static int64_t iter_ms(const bson_iter_t *it)
{
    switch (bson_iter_type(it)) {
    case BSON_TYPE_DATE_TIME:
        return bson_iter_date_time(it);
    case BSON_TYPE_INT64:
        return bson_iter_int64(it);
    case BSON_TYPE_INT32:
        return bson_iter_int32(it);
    case BSON_TYPE_DOUBLE:
        return (int64_t)bson_iter_double(it);
    default:
        return 0;
    }
}

/* An id as lowercase hex: an ObjectId, or a string that is a valid one.
 * Anything else reads as "". */
static void iter_id(const bson_iter_t *it, char dst[EL_OID_HEX])
{
    dst[0] = '\0';
    if (BSON_ITER_HOLDS_OID(it)) {
        bson_oid_to_string(bson_iter_oid(it), dst);
    } else if (BSON_ITER_HOLDS_UTF8(it)) {
        uint32_t len;
        const char *v = bson_iter_utf8(it, &len);

        if (len == 24 && el_oid_valid(v)) {
            for (int i = 0; i < 24; i++)
                dst[i] = (v[i] >= 'A' && v[i] <= 'F') ? (char)(v[i] - 'A' + 'a') : v[i];
            dst[24] = '\0';
        }
    }
}

static int read_tags(const bson_iter_t *field, struct el_course *c)
{
    bson_iter_t it;
    size_t n = 0;
    int rc;

    if (!BSON_ITER_HOLDS_ARRAY(field) || !bson_iter_recurse(field, &it))
        return EL_OK;
    while (bson_iter_next(&it))
        n += BSON_ITER_HOLDS_UTF8(&it);
    if (n == 0)
        return EL_OK;
    c->tags = calloc(n, sizeof(*c->tags));
    if (c->tags == NULL)
        return EL_ENOMEM;
    bson_iter_recurse(field, &it);
    while (bson_iter_next(&it) && c->ntags < n) {
        if (!BSON_ITER_HOLDS_UTF8(&it))
            continue; /* not ours: skipped rather than failing the read */
        if ((rc = dup_utf8(&it, &c->tags[c->ntags])) != EL_OK)
            return rc;
        c->ntags++;
    }
    return EL_OK;
}

static int read_module(const bson_iter_t *field, struct el_module *m)
{
    bson_iter_t it;
    int rc = EL_OK;

    if (!BSON_ITER_HOLDS_DOCUMENT(field) || !bson_iter_recurse(field, &it))
        return EL_OK;
    while (rc == EL_OK && bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);

        if (strcmp(k, "_id") == 0)
            iter_id(&it, m->id);
        else if (strcmp(k, "title") == 0 && BSON_ITER_HOLDS_UTF8(&it))
            rc = dup_utf8(&it, &m->title);
        else if (strcmp(k, "content") == 0 && BSON_ITER_HOLDS_UTF8(&it))
            rc = dup_utf8(&it, &m->content);
        else if (strcmp(k, "duration_minutes") == 0)
            m->duration_minutes = iter_int(&it);
        else if (strcmp(k, "order") == 0)
            m->order = iter_int(&it);
    }
    return rc;
}

/* The store's module order: "order", then id. */
static int cmp_module(const void *pa, const void *pb)
{
    const struct el_module *a = pa, *b = pb;

    if (a->order != b->order)
        return a->order < b->order ? -1 : 1;
    return strcmp(a->id, b->id);
}

static int read_modules(const bson_iter_t *field, struct el_course *c)
{
    bson_iter_t it;
    size_t n = 0;
    int rc = EL_OK;

    if (!BSON_ITER_HOLDS_ARRAY(field) || !bson_iter_recurse(field, &it))
        return EL_OK;
    while (bson_iter_next(&it))
        n += BSON_ITER_HOLDS_DOCUMENT(&it);
    if (n == 0)
        return EL_OK;
    c->modules = calloc(n, sizeof(*c->modules));
    if (c->modules == NULL)
        return EL_ENOMEM;
    c->nmodules = n; /* zeroed, so a cleanup half-way frees what is there */
    bson_iter_recurse(field, &it);
    for (size_t i = 0; rc == EL_OK && i < n && bson_iter_next(&it);) {
        if (!BSON_ITER_HOLDS_DOCUMENT(&it))
            continue;
        rc = read_module(&it, &c->modules[i]);
        if (rc == EL_OK && (rc = fill_empty(&c->modules[i].title)) == EL_OK)
            rc = fill_empty(&c->modules[i].content);
        i++;
    }
    if (rc == EL_OK)
        qsort(c->modules, c->nmodules, sizeof(*c->modules), cmp_module);
    return rc;
}

/* Fill c (zeroed by the caller) from a course document. Documents other
 * tools wrote are read leniently: missing fields read as "" or 0, numbers
 * of any numeric type are accepted. Only an _id that is not an ObjectId is
 * refused (EL_EIO): such a document cannot be addressed through the API.
 * On failure c holds what was copied so far; the caller cleans it up. */
static int doc_to_course(const bson_t *doc, struct el_course *c)
{
    bson_iter_t it;
    bool have_id = false;
    int rc = EL_OK;

    if (!bson_iter_init(&it, doc))
        return EL_EPROTO;
    while (rc == EL_OK && bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);

        if (strcmp(k, "_id") == 0) {
            if (!BSON_ITER_HOLDS_OID(&it))
                return EL_EIO;
            bson_oid_to_string(bson_iter_oid(&it), c->id);
            have_id = true;
        } else if (BSON_ITER_HOLDS_UTF8(&it) && strcmp(k, "title") == 0) {
            rc = dup_utf8(&it, &c->title);
        } else if (BSON_ITER_HOLDS_UTF8(&it) && strcmp(k, "description") == 0) {
            rc = dup_utf8(&it, &c->description);
        } else if (BSON_ITER_HOLDS_UTF8(&it) && strcmp(k, "category") == 0) {
            rc = dup_utf8(&it, &c->category);
        } else if (BSON_ITER_HOLDS_UTF8(&it) && strcmp(k, "difficulty") == 0) {
            rc = dup_utf8(&it, &c->difficulty);
        } else if (strcmp(k, "tags") == 0 && c->tags == NULL) {
            rc = read_tags(&it, c);
        } else if (strcmp(k, "instructor_id") == 0) {
            iter_id(&it, c->instructor_id);
        } else if (strcmp(k, "duration_minutes") == 0) {
            c->duration_minutes = iter_int(&it);
        } else if (strcmp(k, "rating") == 0) {
            c->rating = iter_double(&it);
        } else if (strcmp(k, "rating_count") == 0) {
            c->rating_count = iter_int(&it);
        } else if (strcmp(k, "enrollment_count") == 0) {
            c->enrollment_count = iter_int(&it);
        } else if (strcmp(k, "published") == 0) {
            c->published = iter_int(&it) != 0;
        } else if (strcmp(k, "created_at") == 0) {
            c->created_at = iter_ms(&it);
        } else if (strcmp(k, "updated_at") == 0) {
            c->updated_at = iter_ms(&it);
        } else if (strcmp(k, "modules") == 0 && c->modules == NULL) {
            rc = read_modules(&it, c);
        }
    }
    if (rc != EL_OK)
        return rc;
    if (!have_id)
        return EL_EIO;
    if ((rc = fill_empty(&c->title)) != EL_OK || (rc = fill_empty(&c->description)) != EL_OK ||
        (rc = fill_empty(&c->category)) != EL_OK || (rc = fill_empty(&c->difficulty)) != EL_OK)
        return rc;
    return EL_OK;
}

/* ---- structs -> documents ---------------------------------------------- */

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

/* The document for c, whose ids are final and valid. bson_append_*
 * fails only past the 2 GiB BSON limit; the server's 16 MiB limit is
 * checked by libmongoc on insert. */
static int course_to_doc(const struct el_course *c, bson_t *doc)
{
    bson_t arr, sub;
    bson_oid_t oid;
    char idx[16];
    const char *k;
    bool ok;

    bson_oid_init_from_string(&oid, c->id);
    ok = BSON_APPEND_OID(doc, "_id", &oid);
    ok = ok && BSON_APPEND_UTF8(doc, "title", or_empty(c->title));
    ok = ok && BSON_APPEND_UTF8(doc, "description", or_empty(c->description));
    ok = ok && BSON_APPEND_UTF8(doc, "category", or_empty(c->category));
    ok = ok && BSON_APPEND_UTF8(doc, "difficulty", or_empty(c->difficulty));
    ok = ok && BSON_APPEND_ARRAY_BEGIN(doc, "tags", &arr);
    for (uint32_t i = 0; ok && i < c->ntags; i++) {
        bson_uint32_to_string(i, &k, idx, sizeof(idx));
        ok = BSON_APPEND_UTF8(&arr, k, or_empty(c->tags[i]));
    }
    ok = ok && bson_append_array_end(doc, &arr);
    if (ok && c->instructor_id[0]) {
        bson_oid_init_from_string(&oid, c->instructor_id);
        ok = BSON_APPEND_OID(doc, "instructor_id", &oid);
    } else {
        ok = ok && BSON_APPEND_NULL(doc, "instructor_id");
    }
    ok = ok && BSON_APPEND_INT32(doc, "duration_minutes", c->duration_minutes);
    ok = ok && BSON_APPEND_DOUBLE(doc, "rating", c->rating);
    ok = ok && BSON_APPEND_INT32(doc, "rating_count", c->rating_count);
    ok = ok && BSON_APPEND_INT32(doc, "enrollment_count", c->enrollment_count);
    ok = ok && BSON_APPEND_BOOL(doc, "published", c->published);
    ok = ok && BSON_APPEND_DATE_TIME(doc, "created_at", c->created_at);
    ok = ok && BSON_APPEND_DATE_TIME(doc, "updated_at", c->updated_at);
    ok = ok && BSON_APPEND_ARRAY_BEGIN(doc, "modules", &arr);
    for (uint32_t i = 0; ok && i < c->nmodules; i++) {
        const struct el_module *m = &c->modules[i];

        bson_uint32_to_string(i, &k, idx, sizeof(idx));
        ok = BSON_APPEND_DOCUMENT_BEGIN(&arr, k, &sub);
        bson_oid_init_from_string(&oid, m->id);
        ok = ok && BSON_APPEND_OID(&sub, "_id", &oid);
        ok = ok && BSON_APPEND_UTF8(&sub, "title", or_empty(m->title));
        ok = ok && BSON_APPEND_UTF8(&sub, "content", or_empty(m->content));
        ok = ok && BSON_APPEND_INT32(&sub, "duration_minutes", m->duration_minutes);
        ok = ok && BSON_APPEND_INT32(&sub, "order", m->order);
        ok = ok && bson_append_document_end(&arr, &sub);
    }
    ok = ok && bson_append_array_end(doc, &arr);
    return ok ? EL_OK : EL_ETOOBIG;
}

/* ---- list filter ------------------------------------------------------- */

/* The regex matching s literally with ASCII-only case folding (see the
 * file header). out needs 4 * strlen(s) + 1 bytes: "[aA]" is the longest
 * expansion of a byte. */
static void search_regex(const char *s, char *out)
{
    static const char meta[] = "\\^$.|?*+()[]{}-/#";

    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;

        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')) {
            *out++ = '[';
            *out++ = (char)(ch | 0x20);
            *out++ = (char)(ch & ~0x20);
            *out++ = ']';
        } else {
            if (strchr(meta, ch) != NULL)
                *out++ = '\\';
            *out++ = (char)ch;
        }
    }
    *out = '\0';
}

/* {category, difficulty, $or: [{title|description|tags: {$regex}}]}, each
 * part only when q asks for it. Every piece of user input is a string
 * value, never a key, so it cannot become an operator. */
static void list_filter(const struct el_course_query *q, bson_t *filter)
{
    static const char *const fields[] = {"title", "description", "tags"};
    char re[4 * EL_COURSE_SEARCH_MAX + 1];
    bson_t any, alt, cond;
    char idx[16];
    const char *k;

    if (q->category[0])
        BSON_APPEND_UTF8(filter, "category", q->category);
    if (q->difficulty[0])
        BSON_APPEND_UTF8(filter, "difficulty", q->difficulty);
    if (q->search[0] == '\0')
        return;
    search_regex(q->search, re);
    BSON_APPEND_ARRAY_BEGIN(filter, "$or", &any);
    for (uint32_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        bson_uint32_to_string(i, &k, idx, sizeof(idx));
        BSON_APPEND_DOCUMENT_BEGIN(&any, k, &alt);
        BSON_APPEND_DOCUMENT_BEGIN(&alt, fields[i], &cond);
        BSON_APPEND_UTF8(&cond, "$regex", re);
        bson_append_document_end(&alt, &cond);
        bson_append_document_end(&any, &alt);
    }
    bson_append_array_end(filter, &any);
}

/* find options: the sort with _id ascending as the tie-breaker, then
 * skip and limit for the page. */
static void list_opts(const struct el_course_query *q, int64_t skip, bson_t *opts)
{
    static const struct {
        const char *field;
        int dir;
    } sorts[] = {
        [EL_SORT_RECENT] = {"created_at", -1},
        [EL_SORT_POPULAR] = {"enrollment_count", -1},
        [EL_SORT_TOP_RATED] = {"rating", -1},
        [EL_SORT_DURATION] = {"duration_minutes", 1},
    };
    bson_t sort;

    BSON_APPEND_DOCUMENT_BEGIN(opts, "sort", &sort);
    BSON_APPEND_INT32(&sort, sorts[q->sort].field, sorts[q->sort].dir);
    BSON_APPEND_INT32(&sort, "_id", 1);
    bson_append_document_end(opts, &sort);
    if (skip > 0)
        BSON_APPEND_INT64(opts, "skip", skip);
    BSON_APPEND_INT64(opts, "limit", q->page_size);
}

/* ---- operations -------------------------------------------------------- */

static int mongo_ping(struct el_store *base)
{
    struct mongo_store *s = from(base);
    mongoc_collection_t *coll;
    mongoc_client_t *client = client_pop(s, &coll);
    bson_t cmd = BSON_INITIALIZER;
    bson_error_t error;
    int rc = EL_OK;

    BSON_APPEND_INT32(&cmd, "ping", 1);
    if (!mongoc_client_command_simple(client, "admin", &cmd, NULL, NULL, &error))
        rc = map_error(&error, "ping");
    bson_destroy(&cmd);
    return client_push(s, client, coll, rc);
}

static int mongo_course_get(struct el_store *base, const char *id, struct el_course *out)
{
    struct mongo_store *s = from(base);
    mongoc_collection_t *coll;
    mongoc_client_t *client;
    mongoc_cursor_t *cursor;
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    const bson_t *doc;
    bson_error_t error;
    bson_oid_t oid;
    int rc;

    if (!el_oid_valid(id))
        return EL_EINVAL; /* never becomes part of a query */
    bson_oid_init_from_string(&oid, id);
    BSON_APPEND_OID(&filter, "_id", &oid);
    /* One find, one batch: the server closes the cursor at once, so no
     * getMore or killCursors follows. */
    BSON_APPEND_INT64(&opts, "limit", 1);
    BSON_APPEND_BOOL(&opts, "singleBatch", true);
    client = client_pop(s, &coll);
    cursor = mongoc_collection_find_with_opts(coll, &filter, &opts, NULL);
    if (mongoc_cursor_next(cursor, &doc))
        rc = doc_to_course(doc, out);
    else if (mongoc_cursor_error(cursor, &error))
        rc = map_error(&error, "find");
    else
        rc = EL_ENOTFOUND;
    mongoc_cursor_destroy(cursor);
    bson_destroy(&filter);
    bson_destroy(&opts);
    if (rc != EL_OK)
        el_course_cleanup(out);
    return client_push(s, client, coll, rc);
}

/* Count, then read the page unless it lies past the end. The two are
 * separate queries, not one snapshot: a write in between can make total
 * and items disagree by that write, as with any paged MongoDB listing. */
static int fetch_page(mongoc_collection_t *coll, const struct el_course_query *q,
                      struct el_course_page *out)
{
    int64_t skip = (int64_t)(q->page - 1) * q->page_size, total;
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    mongoc_cursor_t *cursor = NULL;
    const bson_t *doc;
    bson_error_t error;
    int rc = EL_OK;

    list_filter(q, &filter);
    total = mongoc_collection_count_documents(coll, &filter, NULL, NULL, NULL, &error);
    if (total < 0) {
        rc = map_error(&error, "count");
        goto out;
    }
    out->total = total;
    if (total <= skip)
        goto out;
    out->items = calloc((size_t)q->page_size, sizeof(*out->items));
    if (out->items == NULL) {
        rc = EL_ENOMEM;
        goto out;
    }
    list_opts(q, skip, &opts);
    cursor = mongoc_collection_find_with_opts(coll, &filter, &opts, NULL);
    while (rc == EL_OK && mongoc_cursor_next(cursor, &doc)) {
        if (out->nitems == (size_t)q->page_size) {
            rc = EL_EPROTO; /* more than the limit: a broken server */
            break;
        }
        rc = doc_to_course(doc, &out->items[out->nitems++]);
    }
    if (rc == EL_OK && mongoc_cursor_error(cursor, &error))
        rc = map_error(&error, "find");
out:
    mongoc_cursor_destroy(cursor);
    bson_destroy(&filter);
    bson_destroy(&opts);
    return rc;
}

/* s, in a field of n bytes, is NUL-terminated valid UTF-8. */
static bool valid_text(const char *s, size_t n)
{
    size_t len = strnlen(s, n);

    return len < n && bson_utf8_validate(s, len, false);
}

static int mongo_course_list(struct el_store *base, const struct el_course_query *q,
                             struct el_course_page *out)
{
    struct mongo_store *s = from(base);
    mongoc_collection_t *coll;
    mongoc_client_t *client;
    int rc;

    /* A query that did not come through el_course_query_parse is checked
     * as it would have been: the server would refuse invalid UTF-8 only
     * with an error that says nothing about the caller. */
    if (q->page < 1 || q->page_size < 1 || q->page_size > EL_COURSE_PAGE_SIZE_MAX ||
        (unsigned)q->sort > EL_SORT_DURATION || !valid_text(q->search, sizeof(q->search)) ||
        !valid_text(q->category, sizeof(q->category)) ||
        !valid_text(q->difficulty, sizeof(q->difficulty)))
        return EL_EINVAL;
    client = client_pop(s, &coll);
    rc = fetch_page(coll, q, out);
    if (rc != EL_OK)
        el_course_page_cleanup(out);
    return client_push(s, client, coll, rc);
}

/* NULL (stored as "") or valid UTF-8, as BSON strings must be. */
static bool utf8_ok(const char *s)
{
    return s == NULL || bson_utf8_validate(s, strlen(s), false);
}

static bool course_text_valid(const struct el_course *c)
{
    bool ok = utf8_ok(c->title) && utf8_ok(c->description) && utf8_ok(c->category) &&
              utf8_ok(c->difficulty);

    for (size_t i = 0; ok && i < c->ntags; i++)
        ok = utf8_ok(c->tags[i]);
    for (size_t i = 0; ok && i < c->nmodules; i++)
        ok = utf8_ok(c->modules[i].title) && utf8_ok(c->modules[i].content);
    return ok;
}

/* Ids the caller left empty are generated and written back into c
 * (store.h), even if the insert then fails, so a retry after EL_EUNAVAIL
 * cannot create the course twice. Given ids must be valid. */
static int mongo_course_insert(struct el_store *base, struct el_course *c)
{
    struct mongo_store *s = from(base);
    mongoc_collection_t *coll;
    mongoc_client_t *client;
    bson_t doc = BSON_INITIALIZER;
    bson_error_t error;
    int rc;

    if ((c->ntags > 0 && c->tags == NULL) || (c->nmodules > 0 && c->modules == NULL))
        return EL_EINVAL;
    if (c->id[0] == '\0')
        el_oid_new(c->id);
    if (!el_oid_valid(c->id) || (c->instructor_id[0] && !el_oid_valid(c->instructor_id)))
        return EL_EINVAL;
    for (size_t i = 0; i < c->nmodules; i++) {
        if (c->modules[i].id[0] == '\0')
            el_oid_new(c->modules[i].id);
        if (!el_oid_valid(c->modules[i].id))
            return EL_EINVAL;
    }
    if (!course_text_valid(c))
        return EL_EINVAL;
    if ((rc = course_to_doc(c, &doc)) != EL_OK)
        goto out;
    client = client_pop(s, &coll);
    if (!mongoc_collection_insert_one(coll, &doc, NULL, NULL, &error))
        rc = map_error(&error, "insert");
    rc = client_push(s, client, coll, rc);
out:
    bson_destroy(&doc);
    return rc;
}

static int mongo_course_count(struct el_store *base, int64_t *n)
{
    struct mongo_store *s = from(base);
    mongoc_collection_t *coll;
    mongoc_client_t *client = client_pop(s, &coll);
    bson_t filter = BSON_INITIALIZER;
    bson_error_t error;
    int64_t total;
    int rc = EL_OK;

    /* An exact count (aggregate), not the collection metadata's estimate. */
    total = mongoc_collection_count_documents(coll, &filter, NULL, NULL, NULL, &error);
    if (total < 0)
        rc = map_error(&error, "count");
    else
        *n = total;
    bson_destroy(&filter);
    return client_push(s, client, coll, rc);
}

/* delete_many rather than drop: the indexes stay. */
static int mongo_reset(struct el_store *base)
{
    struct mongo_store *s = from(base);
    mongoc_collection_t *coll;
    mongoc_client_t *client = client_pop(s, &coll);
    bson_t filter = BSON_INITIALIZER;
    bson_error_t error;
    int rc = EL_OK;

    if (!mongoc_collection_delete_many(coll, &filter, NULL, NULL, &error))
        rc = map_error(&error, "delete");
    bson_destroy(&filter);
    return client_push(s, client, coll, rc);
}

static void mongo_close(struct el_store *base)
{
    struct mongo_store *s = from(base);

    mongoc_client_pool_destroy(s->pool);
    free(s->db);
    free(s);
}

/* ---- open -------------------------------------------------------------- */

/* The process's store timeout (DB_TIMEOUT_MS, set by the app through
 * el_store_set_timeout_ms before opening). */
static int32_t db_timeout_ms(void)
{
    return (int32_t)el_store_timeout_ms();
}

/* Our timeouts and app name, each only where the URI sets none: an
 * operator's explicit choice wins. */
static int uri_defaults(mongoc_uri_t *uri, struct el_err *err)
{
    int32_t ms = db_timeout_ms(), connect_ms = ms < CONNECT_TIMEOUT_MS ? ms : CONNECT_TIMEOUT_MS;
    bool ok = true;

    if (!mongoc_uri_has_option(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
        ok = ok && mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, ms);
    if (!mongoc_uri_has_option(uri, MONGOC_URI_CONNECTTIMEOUTMS))
        ok = ok && mongoc_uri_set_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, connect_ms);
    if (!mongoc_uri_has_option(uri, MONGOC_URI_SOCKETTIMEOUTMS))
        ok = ok && mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS, ms);
    /* Pools ignore it, but say it: a pool keeps trying for the whole
     * server selection timeout. */
    if (!mongoc_uri_has_option(uri, MONGOC_URI_SERVERSELECTIONTRYONCE))
        ok = ok && mongoc_uri_set_option_as_bool(uri, MONGOC_URI_SERVERSELECTIONTRYONCE, false);
    /* A read that timed out is not retried: a retry would double the time a
     * request waits on a hung server (DB_TIMEOUT_MS is the bound we
     * promise). */
    if (!mongoc_uri_has_option(uri, MONGOC_URI_RETRYREADS))
        ok = ok && mongoc_uri_set_option_as_bool(uri, MONGOC_URI_RETRYREADS, false);
    if (mongoc_uri_get_appname(uri) == NULL)
        ok = ok && mongoc_uri_set_appname(uri, "elearn");
    return ok ? EL_OK : el_err_set(err, EL_EINVAL, "mongo: cannot set the URI's timeouts");
}

int el_store_mongo_open(const char *uri_string, struct el_store **out, struct el_err *err)
{
    struct mongo_store *s = NULL;
    mongoc_collection_t *coll;
    mongoc_client_t *client;
    mongoc_uri_t *uri = NULL;
    bson_error_t error;
    const char *db;
    int rc;

    *out = NULL;
    pthread_once(&init_once, mongo_init);
    uri = mongoc_uri_new_with_error(uri_string, &error);
    if (uri == NULL)
        return el_err_set(err, EL_EINVAL, "mongo: bad URI: %s", error.message);
    if ((rc = uri_defaults(uri, err)) != EL_OK)
        goto fail;
    s = calloc(1, sizeof(*s));
    db = mongoc_uri_get_database(uri);
    if (s == NULL || (s->db = strdup(db && *db ? db : DEFAULT_DB)) == NULL) {
        rc = el_err_set(err, EL_ENOMEM, "mongo: out of memory");
        goto fail;
    }
    s->base.ops = &mongo_ops;
    atomic_init(&s->indexes, IDX_NEEDED);
    s->pool = mongoc_client_pool_new_with_error(uri, &error); /* copies uri */
    if (s->pool == NULL) {
        /* e.g. TLS options this libmongoc cannot honour */
        rc = el_err_set(err, EL_EINVAL, "mongo: cannot use this URI: %s", error.message);
        goto fail;
    }
    mongoc_client_pool_set_error_api(s->pool, MONGOC_ERROR_API_VERSION_2);
    mongoc_uri_destroy(uri);
    /* Indexes now if the server answers; if not, a warning and the first
     * call that reaches it creates them. */
    client = client_pop(s, &coll);
    ensure_indexes(s, client);
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(s->pool, client);
    *out = &s->base;
    return EL_OK;
fail:
    if (s)
        free(s->db);
    free(s);
    mongoc_uri_destroy(uri);
    return rc;
}

static const struct el_store_ops mongo_ops = {
    .kind = "mongodb",
    .close = mongo_close,
    .thread_cleanup = NULL, /* nothing per thread: clients go back to the pool */
    .ping = mongo_ping,
    .course_get = mongo_course_get,
    .course_list = mongo_course_list,
    .course_insert = mongo_course_insert,
    .course_count = mongo_course_count,
    .reset = mongo_reset,
};
