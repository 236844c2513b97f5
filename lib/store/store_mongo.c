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
 * EL_EUNAVAIL until it is back. The indexes are created at open when the
 * server answers, else after the first call that reaches it.
 *
 * Search text never becomes query syntax: it is a string value of $regex in
 * which every regex metacharacter is escaped and every ASCII letter becomes
 * a two-letter class ([aA]). The class, rather than the "i" option, makes
 * case folding ASCII-only, exactly as in the SQLite backend, so both stores
 * match the same documents (PCRE would also fold non-ASCII letters).
 *
 * Collections: courses (modules embedded), users (unique email),
 * enrollments (unique {course_id, user_id}), refresh_tokens and
 * revocations (_id = the token id; a TTL index on expires_at lets MongoDB
 * delete what expired, as SQLite's housekeeping does). No operation needs
 * a multi-document transaction, which a standalone mongod cannot run:
 * every exactly-once rule rests on one document's atomicity -- a unique
 * index, a guard in an update's filter, $inc, $max (see "shared pieces of the writes" below).
 * Because correctness depends on the unique indexes, the writes they guard
 * make sure of them first (require_indexes); the other indexes stay
 * best-effort.
 *
 * libbson aborts when it cannot allocate; only our own allocations can
 * return EL_ENOMEM. */
#include "store/store_int.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mongoc/mongoc.h>

#include "model/oid.h"
#include "core/text.h"

#define COLLECTION "courses"
#define COLL_USERS "users"
#define COLL_ENROLLMENTS "enrollments"
#define COLL_REFRESH "refresh_tokens"
#define COLL_REVOCATIONS "revocations"
#define COLL_RATINGS "ratings"
#define REWRITE_TRIES 16 /* guarded module rewrites before giving up (EL_ECONFLICT) */
#define DEFAULT_DB "elearn"
#define CONNECT_TIMEOUT_MS 1000

/* Where index creation stands; see ensure_indexes(). */
enum { IDX_NEEDED, IDX_BUSY, IDX_DONE };

struct mongo_store {
    struct el_store base;
    mongoc_client_pool_t *pool;       /* thread-safe; owns a copy of the URI */
    char *db;                         /* database name */
    atomic_int indexes;               /* IDX_* */
    atomic_uint sets_ready;           /* bit i: index_sets[i] exists */
    mongoc_write_concern_t *majority; /* auth-critical writes (auth_critical) */
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
    case 64:    /* WriteConcernFailed: no majority within wtimeout */
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

/* Index flags. IX_UNIQUE: a constraint, writes rely on it (see
 * require_indexes). IX_TTL: expireAfterSeconds 0, the server deletes a
 * document once the date in the field has passed. */
#define IX_UNIQUE 1u
#define IX_TTL 2u

struct index_def {
    const char *name;
    const char *field[2]; /* the second key may be NULL */
    int dir[2];
    unsigned flags; /* IX_* */
};

/* courses: the list filters, and each sort with _id ascending as the
 * tie-breaker. */
static const struct index_def course_indexes[] = {
    {"category_1", {"category", NULL}, {1, 0}, 0},
    {"difficulty_1", {"difficulty", NULL}, {1, 0}, 0},
    {"created_at_-1__id_1", {"created_at", "_id"}, {-1, 1}, 0},
    {"enrollment_count_-1__id_1", {"enrollment_count", "_id"}, {-1, 1}, 0},
    {"rating_-1__id_1", {"rating", "_id"}, {-1, 1}, 0},
    {"duration_minutes_1__id_1", {"duration_minutes", "_id"}, {1, 1}, 0},
    {"instructor_id_1_created_at_-1", {"instructor_id", "created_at"}, {1, -1}, 0},
};
/* One account per email. */
static const struct index_def user_indexes[] = {
    {"email_1", {"email", NULL}, {1, 0}, IX_UNIQUE},
};
/* One enrollment per student and course; also serves the course delete. */
static const struct index_def enrollment_indexes[] = {
    {"course_id_1_user_id_1", {"course_id", "user_id"}, {1, 1}, IX_UNIQUE},
    {"user_id_1_created_at_-1", {"user_id", "created_at"}, {1, -1}, 0},
};
/* One rating per student and course. */
static const struct index_def rating_indexes[] = {
    {"course_id_1_user_id_1", {"course_id", "user_id"}, {1, 1}, IX_UNIQUE},
};
/* A user's tokens (user delete); expired ones go by themselves. */
static const struct index_def refresh_indexes[] = {
    {"user_id_1", {"user_id", NULL}, {1, 0}, 0},
    {"expires_at_1", {"expires_at", NULL}, {1, 0}, IX_TTL},
};
static const struct index_def revocation_indexes[] = {
    {"expires_at_1", {"expires_at", NULL}, {1, 0}, IX_TTL},
};

#define DEFS(a) a, sizeof(a) / sizeof((a)[0])

/* The indexes of each collection, one createIndexes command each. Sets with
 * a unique index come first: they are what writes wait for. */
enum { SET_USERS, SET_ENROLLMENTS, SET_RATINGS, SET_COURSES, SET_REFRESH, SET_REVOCATIONS, NSETS };
static const struct {
    const char *coll;
    const struct index_def *defs;
    size_t n;
} index_sets[NSETS] = {
    [SET_USERS] = {COLL_USERS, DEFS(user_indexes)},
    [SET_ENROLLMENTS] = {COLL_ENROLLMENTS, DEFS(enrollment_indexes)},
    [SET_RATINGS] = {COLL_RATINGS, DEFS(rating_indexes)},
    [SET_COURSES] = {COLLECTION, DEFS(course_indexes)},
    [SET_REFRESH] = {COLL_REFRESH, DEFS(refresh_indexes)},
    [SET_REVOCATIONS] = {COLL_REVOCATIONS, DEFS(revocation_indexes)},
};

/* createIndexes for one set. Idempotent: existing indexes with the same
 * keys, options and names are left alone. */
static int create_indexes(struct mongo_store *s, mongoc_client_t *client, int set,
                          bson_error_t *error)
{
    mongoc_collection_t *coll = mongoc_client_get_collection(client, s->db, index_sets[set].coll);
    bson_t cmd = BSON_INITIALIZER, list, spec, key;
    char idx[16];
    const char *k;
    bool ok;

    BSON_APPEND_UTF8(&cmd, "createIndexes", index_sets[set].coll);
    BSON_APPEND_ARRAY_BEGIN(&cmd, "indexes", &list);
    for (uint32_t i = 0; i < index_sets[set].n; i++) {
        const struct index_def *d = &index_sets[set].defs[i];

        bson_uint32_to_string(i, &k, idx, sizeof(idx));
        BSON_APPEND_DOCUMENT_BEGIN(&list, k, &spec);
        BSON_APPEND_DOCUMENT_BEGIN(&spec, "key", &key);
        for (int j = 0; j < 2 && d->field[j]; j++)
            BSON_APPEND_INT32(&key, d->field[j], d->dir[j]);
        bson_append_document_end(&spec, &key);
        BSON_APPEND_UTF8(&spec, "name", d->name);
        if (d->flags & IX_UNIQUE)
            BSON_APPEND_BOOL(&spec, "unique", true);
        if (d->flags & IX_TTL)
            BSON_APPEND_INT32(&spec, "expireAfterSeconds", 0);
        bson_append_document_end(&list, &spec);
    }
    bson_append_array_end(&cmd, &list);
    ok = mongoc_collection_write_command_with_opts(coll, &cmd, NULL, NULL, error);
    bson_destroy(&cmd);
    mongoc_collection_destroy(coll);
    return ok ? EL_OK : map_error(error, "createIndexes");
}

/* Create the indexes unless done already. Called at open and after any
 * call that reached the server, never before one: an unreachable server
 * must cost a call one timeout, not two. Only one thread tries at a time;
 * the others go on without waiting -- except writes that rely on a unique
 * index, which make sure of theirs first (require_indexes).
 * Availability failures leave the work for a later call; any other failure
 * (an index of that name with other keys, duplicates that a unique index
 * cannot be built over) is logged and that set given up. */
static void ensure_indexes(struct mongo_store *s, mongoc_client_t *client)
{
    int expected = IDX_NEEDED;
    bson_error_t error;
    int rc;

    if (atomic_load_explicit(&s->indexes, memory_order_acquire) != IDX_NEEDED ||
        !atomic_compare_exchange_strong(&s->indexes, &expected, IDX_BUSY))
        return;
    for (int set = 0; set < NSETS; set++) {
        rc = create_indexes(s, client, set, &error);
        if (rc == EL_EUNAVAIL) {
            fprintf(stderr,
                    "store: mongo: cannot create indexes now (%s); will retry on first use\n",
                    error.message);
            atomic_store_explicit(&s->indexes, IDX_NEEDED, memory_order_release);
            return;
        }
        if (rc == EL_OK)
            atomic_fetch_or(&s->sets_ready, 1u << set);
        else
            fprintf(stderr, "store: mongo: giving up on creating the %s indexes: %s\n",
                    index_sets[set].coll, error.message);
    }
    atomic_store_explicit(&s->indexes, IDX_DONE, memory_order_release);
}

/* Before a write that a unique index guards (a new user, an enrollment):
 * the index must exist, or two concurrent writes could both get in (and
 * then stop the index from ever being built). Usually it is there since
 * open; else it is created now -- by every thread that gets here, which is
 * harmless, as createIndexes is idempotent. If it cannot be built (say,
 * duplicates are already stored: code 11000, which must not read as the
 * caller's conflict) the write is refused with EL_EIO, logged, and the
 * index tried again by the next such write, rather than done unguarded. */
static int require_indexes(struct mongo_store *s, mongoc_client_t *client, int set)
{
    bson_error_t error;
    int rc;

    if (atomic_load(&s->sets_ready) & (1u << set))
        return EL_OK;
    rc = create_indexes(s, client, set, &error);
    if (rc == EL_OK) {
        atomic_fetch_or(&s->sets_ready, 1u << set);
    } else if (rc != EL_EUNAVAIL) {
        fprintf(stderr, "store: mongo: cannot create the %s indexes (%s); write refused\n",
                index_sets[set].coll, error.message);
        rc = EL_EIO;
    }
    return rc;
}

/* ---- one call's client ------------------------------------------------- */

/* Borrow a client for one call, with a handle on collection name. Never
 * fails: the pool blocks while all maxPoolSize clients are in use. */
/* Auth-critical collections -- users (role changes, deletions),
 * refresh_tokens (issue, claim), revocations -- are written with
 * w: "majority" and a wtimeout inside DB_TIMEOUT_MS: on a replica set a w:1
 * write can be rolled back in an election, and a revocation or a claim
 * that is rolled back would let a token live again. A write that is not
 * acknowledged by a majority in time fails (WriteConcernFailed, EL_EUNAVAIL:
 * 503 with Retry-After) although it may still apply later; every one of
 * these writes is idempotent or guarded, so the client's retry is safe,
 * and libmongoc's retryable writes (retryWrites, on by default) make its
 * own one retry exactly-once on the server. Course writes keep the URI's
 * write concern (a lost course edit is not a security matter). On a
 * standalone server "majority" is the server itself. */
static int auth_critical(const char *name)
{
    return strcmp(name, COLL_USERS) == 0 || strcmp(name, COLL_REFRESH) == 0 ||
           strcmp(name, COLL_REVOCATIONS) == 0;
}

static mongoc_client_t *client_pop_coll(struct mongo_store *s, const char *name,
                                        mongoc_collection_t **coll)
{
    mongoc_client_t *client = mongoc_client_pool_pop(s->pool);

    *coll = mongoc_client_get_collection(client, s->db, name);
    if (auth_critical(name))
        mongoc_collection_set_write_concern(*coll, s->majority);
    return client;
}

/* The same, for courses. */
static mongoc_client_t *client_pop(struct mongo_store *s, mongoc_collection_t **coll)
{
    return client_pop_coll(s, COLLECTION, coll);
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
            el_ascii_lower(dst, v, 24);
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

/* Walk a document read back from the server: its _id, which must be an
 * ObjectId (EL_EIO when it is not, or is missing: such a document cannot be
 * addressed through the API), goes to id; every other field to field(),
 * until it returns an error. */
static int walk_doc(const bson_t *doc, char id[EL_OID_HEX],
                    int (*field)(const bson_iter_t *it, const char *k, void *arg), void *arg)
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
            bson_oid_to_string(bson_iter_oid(&it), id);
            have_id = true;
        } else {
            rc = field(&it, k, arg);
        }
    }
    return rc != EL_OK ? rc : have_id ? EL_OK : EL_EIO;
}

static int course_field(const bson_iter_t *it, const char *k, void *arg)
{
    struct el_course *c = arg;

    if (BSON_ITER_HOLDS_UTF8(it) && strcmp(k, "title") == 0)
        return dup_utf8(it, &c->title);
    if (BSON_ITER_HOLDS_UTF8(it) && strcmp(k, "description") == 0)
        return dup_utf8(it, &c->description);
    if (BSON_ITER_HOLDS_UTF8(it) && strcmp(k, "category") == 0)
        return dup_utf8(it, &c->category);
    if (BSON_ITER_HOLDS_UTF8(it) && strcmp(k, "difficulty") == 0)
        return dup_utf8(it, &c->difficulty);
    if (strcmp(k, "tags") == 0 && c->tags == NULL)
        return read_tags(it, c);
    if (strcmp(k, "modules") == 0 && c->modules == NULL)
        return read_modules(it, c);
    if (strcmp(k, "instructor_id") == 0) {
        iter_id(it, c->instructor_id);
    } else if (strcmp(k, "duration_minutes") == 0) {
        c->duration_minutes = iter_int(it);
    } else if (strcmp(k, "rating") == 0) {
        c->rating = iter_double(it);
    } else if (strcmp(k, "rating_count") == 0) {
        c->rating_count = iter_int(it);
    } else if (strcmp(k, "enrollment_count") == 0) {
        c->enrollment_count = iter_int(it);
    } else if (strcmp(k, "published") == 0) {
        c->published = iter_int(it) != 0;
    } else if (strcmp(k, "created_at") == 0) {
        c->created_at = iter_ms(it);
    } else if (strcmp(k, "updated_at") == 0) {
        c->updated_at = iter_ms(it);
    } else if (strcmp(k, "rev") == 0 && BSON_ITER_HOLDS_NUMBER(it)) {
        int64_t r = bson_iter_as_int64(it);
        c->rev = r > 0 ? (uint64_t)r : 0;
    }
    return EL_OK;
}

/* Fill c (zeroed by the caller) from a course document. Documents other
 * tools wrote are read leniently: missing fields read as "" or 0, numbers
 * of any numeric type are accepted; only the _id is strict (walk_doc).
 * On failure c holds what was copied so far; the caller cleans it up. */
static int doc_to_course(const bson_t *doc, struct el_course *c)
{
    int rc = walk_doc(doc, c->id, course_field, c);

    if (rc == EL_OK && (rc = fill_empty(&c->title)) == EL_OK &&
        (rc = fill_empty(&c->description)) == EL_OK && (rc = fill_empty(&c->category)) == EL_OK)
        rc = fill_empty(&c->difficulty);
    return rc;
}

/* ---- structs -> documents ---------------------------------------------- */

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

/* "modules": c's modules, in c's order. */
static bool append_modules(bson_t *doc, const struct el_course *c)
{
    bson_t arr, sub;
    bson_oid_t oid;
    char idx[16];
    const char *k;
    bool ok = BSON_APPEND_ARRAY_BEGIN(doc, "modules", &arr);

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
    return ok && bson_append_array_end(doc, &arr);
}

/* The document for c, whose ids are final and valid. bson_append_*
 * fails only past the 2 GiB BSON limit; the server's 16 MiB limit is
 * checked by libmongoc on insert. */
static int course_to_doc(const struct el_course *c, bson_t *doc)
{
    bson_t arr;
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
    ok = ok && BSON_APPEND_INT64(doc, "rev", c->rev > 0 ? (int64_t)c->rev : 1);
    ok = ok && append_modules(doc, c);
    /* The stars behind rating (issue 12): what rating and rating_count
     * imply for a course inserted with them (seed data). */
    ok = ok && BSON_APPEND_INT64(doc, "rating_sum", llround(c->rating * c->rating_count));
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
    if (q->published_only)
        BSON_APPEND_BOOL(filter, "published", true);
    if (q->instructor_id[0]) {
        bson_oid_t oid;

        bson_oid_init_from_string(&oid, q->instructor_id); /* validated by the caller */
        BSON_APPEND_OID(filter, "instructor_id", &oid);
    }
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
    /* List items are summaries (course.h): the modules' content, nearly all
     * of a large course, stays in the database. */
    BSON_APPEND_DOCUMENT_BEGIN(opts, "projection", &sort);
    BSON_APPEND_INT32(&sort, "modules.content", 0);
    bson_append_document_end(opts, &sort);
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

static int mongo_version(struct el_store *base, char *out, size_t n)
{
    struct mongo_store *s = from(base);
    mongoc_collection_t *coll;
    mongoc_client_t *client = client_pop(s, &coll);
    bson_t cmd = BSON_INITIALIZER, reply;
    bson_iter_t it;
    bson_error_t error;
    int rc = EL_OK;

    BSON_APPEND_INT32(&cmd, "buildInfo", 1);
    if (!mongoc_client_command_simple(client, "admin", &cmd, NULL, &reply, &error))
        rc = map_error(&error, "buildInfo");
    else if (bson_iter_init_find(&it, &reply, "version") && BSON_ITER_HOLDS_UTF8(&it))
        snprintf(out, n, "%s", bson_iter_utf8(&it, NULL));
    else
        rc = EL_EPROTO;
    bson_destroy(&reply);
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
        !valid_text(q->difficulty, sizeof(q->difficulty)) ||
        (q->instructor_id[0] && !el_oid_valid(q->instructor_id)))
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
    c->rev = 1; /* a new document's first revision, as in the SQLite store */
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

/* delete_many rather than drop: the indexes stay. Every collection, in
 * turn; the first failure ends it (one timeout when the server is away). */
static int mongo_reset(struct el_store *base)
{
    static const char *const names[] = {COLLECTION,   COLL_ENROLLMENTS, COLL_USERS,
                                        COLL_REFRESH, COLL_REVOCATIONS, COLL_RATINGS};
    struct mongo_store *s = from(base);
    mongoc_collection_t *coll;
    mongoc_client_t *client = client_pop(s, &coll);
    bson_t filter = BSON_INITIALIZER;
    bson_error_t error;
    int rc = EL_OK;

    for (size_t i = 0; rc == EL_OK && i < sizeof(names) / sizeof(names[0]); i++) {
        mongoc_collection_t *c = mongoc_client_get_collection(client, s->db, names[i]);

        if (!mongoc_collection_delete_many(c, &filter, NULL, NULL, &error))
            rc = map_error(&error, "delete");
        mongoc_collection_destroy(c);
    }
    bson_destroy(&filter);
    return client_push(s, client, coll, rc);
}

/* ---- shared pieces of the writes --------------------------------------------- *
 *
 * Course writes, enrollments, users, refresh tokens, revocations. Each
 * exactly-once rule is one document's (file header); where an operation
 * writes two documents (enroll, the deletes) their order is chosen so a
 * failure in between leaves nothing a caller can see wrong -- see each. */

#define COURSE_PATCH_FIELDS                                                                        \
    (EL_CF_TITLE | EL_CF_DESCRIPTION | EL_CF_CATEGORY | EL_CF_DIFFICULTY | EL_CF_TAGS |            \
     EL_CF_DURATION | EL_CF_PUBLISHED)
#define MODULE_PATCH_FIELDS (EL_MF_TITLE | EL_MF_CONTENT | EL_MF_DURATION | EL_MF_ORDER)
#define TOKEN_ID_MAX 64 /* bytes of a jti, sid or revoked id, as in the SQLite store */

/* A caller's ObjectId in hex (either case), checked before it can reach a
 * query. */
static int take_oid(const char *hex, bson_oid_t *oid)
{
    if (hex == NULL || !el_oid_valid(hex))
        return EL_EINVAL;
    bson_oid_init_from_string(oid, hex);
    return EL_OK;
}

/* A jti, sid or revoked id: 1 to TOKEN_ID_MAX printable ASCII bytes. */
static bool token_id_ok(const char *s)
{
    size_t n;

    if (s == NULL)
        return false;
    n = strnlen(s, TOKEN_ID_MAX + 1);
    if (n == 0 || n > TOKEN_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return false;
    return true;
}

/* A role fits struct el_user's field. */
static bool role_ok(const char *role)
{
    size_t n = strnlen(role, EL_ROLE_MAX);

    return n > 0 && n < EL_ROLE_MAX && bson_utf8_validate(role, n, false);
}

/* A count from a write's reply (matchedCount, deletedCount); 0 if absent. */
static int64_t reply_count(const bson_t *reply, const char *key)
{
    bson_iter_t it;

    return bson_iter_init_find(&it, reply, key) ? bson_iter_as_int64(&it) : 0;
}

/* The first document filter selects in coll, by one find of one batch (as
 * course_get), handed to conv(doc, arg) to be converted at once; conv may
 * be NULL when only existence matters. EL_ENOTFOUND when there is none. */
static int find_one(mongoc_collection_t *coll, const bson_t *filter, const bson_t *projection,
                    int (*conv)(const bson_t *doc, void *arg), void *arg)
{
    bson_t opts = BSON_INITIALIZER;
    mongoc_cursor_t *cursor;
    const bson_t *doc;
    bson_error_t error;
    int rc;

    BSON_APPEND_INT64(&opts, "limit", 1);
    BSON_APPEND_BOOL(&opts, "singleBatch", true);
    if (projection)
        BSON_APPEND_DOCUMENT(&opts, "projection", projection);
    cursor = mongoc_collection_find_with_opts(coll, filter, &opts, NULL);
    if (mongoc_cursor_next(cursor, &doc))
        rc = conv ? conv(doc, arg) : EL_OK;
    else if (mongoc_cursor_error(cursor, &error))
        rc = map_error(&error, "find");
    else
        rc = EL_ENOTFOUND;
    mongoc_cursor_destroy(cursor);
    bson_destroy(&opts);
    return rc;
}

/* findAndModify: apply update to the one document query selects and point
 * *after at that document as it is after the update (only the fields named
 * in fields, when not NULL). *after lives inside *reply, which is always
 * initialised and which the caller destroys. EL_ENOTFOUND when nothing
 * matched. */
static int modify_one(mongoc_collection_t *coll, const bson_t *query, const bson_t *update,
                      const bson_t *fields, bson_t *reply, bson_t *after)
{
    mongoc_find_and_modify_opts_t *opts = mongoc_find_and_modify_opts_new();
    bson_error_t error;
    const uint8_t *data;
    uint32_t len;
    bson_iter_t it;
    int rc = EL_OK;

    if (!mongoc_find_and_modify_opts_set_update(opts, update) ||
        !mongoc_find_and_modify_opts_set_flags(opts, MONGOC_FIND_AND_MODIFY_RETURN_NEW) ||
        (fields && !mongoc_find_and_modify_opts_set_fields(opts, fields))) {
        bson_init(reply);
        rc = EL_EINVAL;
    } else if (!mongoc_collection_find_and_modify_with_opts(coll, query, opts, reply, &error)) {
        rc = map_error(&error, "findAndModify");
    } else if (!bson_iter_init_find(&it, reply, "value") || !BSON_ITER_HOLDS_DOCUMENT(&it)) {
        rc = EL_ENOTFOUND; /* value: null */
    } else {
        bson_iter_document(&it, &len, &data);
        if (!bson_init_static(after, data, len))
            rc = EL_EPROTO;
    }
    mongoc_find_and_modify_opts_destroy(opts);
    return rc;
}

/* updateOne (an upsert when upsert is set); *matched gets the documents
 * the filter matched, an upserted one included. */
static int update_one(mongoc_collection_t *coll, const bson_t *filter, const bson_t *update,
                      bool upsert, int64_t *matched)
{
    bson_t opts = BSON_INITIALIZER, reply;
    bson_error_t error;
    int rc = EL_OK;

    if (upsert)
        BSON_APPEND_BOOL(&opts, "upsert", true);
    if (!mongoc_collection_update_one(coll, filter, update, &opts, &reply, &error))
        rc = map_error(&error, "update");
    else
        *matched = reply_count(&reply, "matchedCount") + reply_count(&reply, "upsertedCount");
    bson_destroy(&reply);
    bson_destroy(&opts);
    return rc;
}

/* deleteOne or deleteMany; *deleted (if not NULL) gets how many went. */
static int delete_docs(mongoc_collection_t *coll, const bson_t *filter, bool many, int64_t *deleted)
{
    bson_t reply;
    bson_error_t error;
    bool ok = many ? mongoc_collection_delete_many(coll, filter, NULL, &reply, &error)
                   : mongoc_collection_delete_one(coll, filter, NULL, &reply, &error);
    int rc = ok ? EL_OK : map_error(&error, "delete");

    if (rc == EL_OK && deleted)
        *deleted = reply_count(&reply, "deletedCount");
    bson_destroy(&reply);
    return rc;
}

/* ---- course writes ------------------------------------------------------ */

static bool append_tags(bson_t *doc, const char *key, char *const *tags, size_t n)
{
    bson_t arr;
    char idx[16];
    const char *k;
    bool ok = bson_append_array_begin(doc, key, -1, &arr);

    for (uint32_t i = 0; ok && i < n; i++) {
        bson_uint32_to_string(i, &k, idx, sizeof(idx));
        ok = BSON_APPEND_UTF8(&arr, k, or_empty(tags[i]));
    }
    return ok && bson_append_array_end(doc, &arr);
}

/* {$inc: {rev: 1}}: every update of a course moves its revision in the same
 * atomic update (el_course.rev). */
static bool append_rev_inc(bson_t *update)
{
    bson_t inc;

    return BSON_APPEND_DOCUMENT_BEGIN(update, "$inc", &inc) && BSON_APPEND_INT64(&inc, "rev", 1) &&
           bson_append_document_end(update, &inc);
}

/* {$set: {the flagged fields, updated_at}}. Only the flagged fields are
 * named, so a concurrent update of other fields is never overwritten with
 * stale values (no read-modify-write). */
static int course_patch_update(const struct el_course_patch *p, int64_t now_ms, bson_t *update)
{
    const struct el_course *v = &p->c;
    bson_t set;
    bool ok = BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);

    if (ok && (p->fields & EL_CF_TITLE))
        ok = BSON_APPEND_UTF8(&set, "title", or_empty(v->title));
    if (ok && (p->fields & EL_CF_DESCRIPTION))
        ok = BSON_APPEND_UTF8(&set, "description", or_empty(v->description));
    if (ok && (p->fields & EL_CF_CATEGORY))
        ok = BSON_APPEND_UTF8(&set, "category", or_empty(v->category));
    if (ok && (p->fields & EL_CF_DIFFICULTY))
        ok = BSON_APPEND_UTF8(&set, "difficulty", or_empty(v->difficulty));
    if (ok && (p->fields & EL_CF_TAGS))
        ok = append_tags(&set, "tags", v->tags, v->ntags);
    if (ok && (p->fields & EL_CF_DURATION))
        ok = BSON_APPEND_INT32(&set, "duration_minutes", v->duration_minutes);
    if (ok && (p->fields & EL_CF_PUBLISHED))
        ok = BSON_APPEND_BOOL(&set, "published", v->published);
    ok = ok && BSON_APPEND_DATE_TIME(&set, "updated_at", now_ms);
    ok = ok && bson_append_document_end(update, &set);
    ok = ok && append_rev_inc(update);
    return ok ? EL_OK : EL_ETOOBIG;
}

/* The module's flagged fields through the positional operator: "$" is the
 * element the filter's "modules._id" matched. */
static int module_patch_update(const struct el_module_patch *p, int64_t now_ms, bson_t *update)
{
    const struct el_module *m = &p->m;
    bson_t set;
    bool ok = BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);

    if (ok && (p->fields & EL_MF_TITLE))
        ok = BSON_APPEND_UTF8(&set, "modules.$.title", or_empty(m->title));
    if (ok && (p->fields & EL_MF_CONTENT))
        ok = BSON_APPEND_UTF8(&set, "modules.$.content", or_empty(m->content));
    if (ok && (p->fields & EL_MF_DURATION))
        ok = BSON_APPEND_INT32(&set, "modules.$.duration_minutes", m->duration_minutes);
    if (ok && (p->fields & EL_MF_ORDER))
        ok = BSON_APPEND_INT32(&set, "modules.$.order", m->order);
    ok = ok && BSON_APPEND_DATE_TIME(&set, "updated_at", now_ms);
    ok = ok && bson_append_document_end(update, &set);
    ok = ok && append_rev_inc(update);
    return ok ? EL_OK : EL_ETOOBIG;
}

/* Update one course document with query and update (findAndModify) and
 * convert the document after the update into *out. */
static int modify_course(struct mongo_store *s, const bson_t *query, const bson_t *update,
                         struct el_course *out)
{
    mongoc_collection_t *coll;
    mongoc_client_t *client = client_pop(s, &coll);
    bson_t reply, after;
    int rc = modify_one(coll, query, update, NULL, &reply, &after);

    if (rc == EL_OK)
        rc = doc_to_course(&after, out);
    bson_destroy(&reply);
    if (rc != EL_OK)
        el_course_cleanup(out);
    return client_push(s, client, coll, rc);
}

static bool course_patch_valid(const struct el_course_patch *p)
{
    const struct el_course *v = &p->c;
    bool ok = true;

    if (p->fields & ~(unsigned)COURSE_PATCH_FIELDS)
        return false; /* the module list is set on create only (course.h) */
    if (p->fields & EL_CF_TITLE)
        ok = ok && utf8_ok(v->title);
    if (p->fields & EL_CF_DESCRIPTION)
        ok = ok && utf8_ok(v->description);
    if (p->fields & EL_CF_CATEGORY)
        ok = ok && utf8_ok(v->category);
    if (p->fields & EL_CF_DIFFICULTY)
        ok = ok && utf8_ok(v->difficulty);
    if (p->fields & EL_CF_TAGS) {
        ok = ok && (v->ntags == 0 || v->tags != NULL);
        for (size_t i = 0; ok && i < v->ntags; i++)
            ok = utf8_ok(v->tags[i]);
    }
    return ok;
}

/* One findAndModify: the patch and updated_at are applied atomically and
 * the document comes back as it is after them. Search needs nothing more:
 * it matches title, description and tags as they are. */
static int mongo_course_update(struct el_store *base, const char *id,
                               const struct el_course_patch *p, int64_t now_ms,
                               struct el_course *out)
{
    bson_t query = BSON_INITIALIZER, update = BSON_INITIALIZER;
    bson_oid_t oid;
    int rc;

    if ((rc = take_oid(id, &oid)) != EL_OK)
        return rc;
    if (!course_patch_valid(p))
        return EL_EINVAL;
    BSON_APPEND_OID(&query, "_id", &oid);
    if ((rc = course_patch_update(p, now_ms, &update)) == EL_OK)
        rc = modify_course(from(base), &query, &update, out);
    bson_destroy(&query);
    bson_destroy(&update);
    return rc;
}

/* ---- issue 12: module writes that change the course's duration --------- *
 *
 * The module rule (store.h) needs the sum of every module's duration,
 * which no single update operator can compute (and pipeline updates are
 * not for every server). So: read the course, edit its module list in C,
 * and write the list and the sum back with findAndModify guarded by the
 * module array exactly as it was read (raw BSON, so equality is exact).
 * If another writer changed the modules in between, the guard fails and
 * the whole step is retried on the new state; other fields are never
 * written, so concurrent course PATCHes are not lost. */

typedef int (*module_edit_fn)(struct el_course *c, void *arg);

/* What find_one hands over: the course and its raw "modules" value. */
struct snapshot {
    struct el_course *c;
    bson_t modules;
    bool has_modules;
};

static int snapshot_conv(const bson_t *doc, void *arg)
{
    struct snapshot *sn = arg;
    bson_iter_t it;
    const uint8_t *data;
    uint32_t len;
    bson_t tmp;
    int rc = doc_to_course(doc, sn->c);

    if (rc != EL_OK)
        return rc;
    if (bson_iter_init_find(&it, doc, "modules") && BSON_ITER_HOLDS_ARRAY(&it)) {
        bson_iter_array(&it, &len, &data);
        if (!bson_init_static(&tmp, data, len))
            return EL_EPROTO;
        bson_copy_to(&tmp, &sn->modules);
        sn->has_modules = true;
    }
    return EL_OK;
}

static int modules_rewrite(struct mongo_store *s, const char *course_id, module_edit_fn edit,
                           void *arg, int64_t now_ms, struct el_course *out)
{
    mongoc_collection_t *coll;
    mongoc_client_t *client;
    bson_oid_t oid;
    int rc = EL_ECONFLICT;

    if (take_oid(course_id, &oid) != EL_OK)
        return EL_EINVAL;
    client = client_pop(s, &coll);
    for (int attempt = 0; attempt < REWRITE_TRIES; attempt++) {
        struct el_course cur = {0};
        struct snapshot sn = {&cur, BSON_INITIALIZER, false};
        bson_t query = BSON_INITIALIZER, update = BSON_INITIALIZER, set, exists, reply, after;
        int64_t sum = 0;

        BSON_APPEND_OID(&query, "_id", &oid);
        rc = find_one(coll, &query, NULL, snapshot_conv, &sn);
        if (rc == EL_OK)
            rc = edit(&cur, arg);
        if (rc == EL_OK) {
            for (size_t i = 0; i < cur.nmodules; i++)
                sum += cur.modules[i].duration_minutes;
            qsort(cur.modules, cur.nmodules, sizeof(*cur.modules), cmp_module);
            if (sn.has_modules) {
                BSON_APPEND_ARRAY(&query, "modules", &sn.modules);
            } else {
                BSON_APPEND_DOCUMENT_BEGIN(&query, "modules", &exists);
                BSON_APPEND_BOOL(&exists, "$exists", false);
                bson_append_document_end(&query, &exists);
            }
            BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
            if (!append_modules(&set, &cur))
                rc = EL_ETOOBIG;
            BSON_APPEND_INT32(&set, "duration_minutes", (int32_t)sum);
            BSON_APPEND_DATE_TIME(&set, "updated_at", now_ms);
            bson_append_document_end(&update, &set);
            append_rev_inc(&update);
        }
        if (rc == EL_OK) {
            rc = modify_one(coll, &query, &update, NULL, &reply, &after);
            if (rc == EL_OK)
                rc = doc_to_course(&after, out);
            bson_destroy(&reply);
            if (rc == EL_ENOTFOUND)
                rc = EL_ECONFLICT; /* the guard failed: changed meanwhile, go again */
        }
        el_course_cleanup(&cur);
        bson_destroy(&sn.modules);
        bson_destroy(&query);
        bson_destroy(&update);
        if (rc != EL_ECONFLICT)
            break;
        el_course_cleanup(out);
    }
    if (rc != EL_OK)
        el_course_cleanup(out);
    return client_push(s, client, coll, rc);
}

struct patch_arg {
    const char *module_id;
    const struct el_module_patch *p;
};

/* The module of c with id (either case); NULL when none. */
static struct el_module *find_module(struct el_course *c, const char *id)
{
    for (size_t i = 0; i < c->nmodules; i++)
        if (strcasecmp(c->modules[i].id, id) == 0)
            return &c->modules[i];
    return NULL;
}

static int edit_patch(struct el_course *c, void *arg)
{
    const struct patch_arg *a = arg;
    const struct el_module *v = &a->p->m;
    struct el_module *m = find_module(c, a->module_id);
    char *t;

    if (m == NULL)
        return EL_ENOTFOUND;
    if (a->p->fields & EL_MF_TITLE) {
        if ((t = strdup(or_empty(v->title))) == NULL)
            return EL_ENOMEM;
        free(m->title);
        m->title = t;
    }
    if (a->p->fields & EL_MF_CONTENT) {
        if ((t = strdup(or_empty(v->content))) == NULL)
            return EL_ENOMEM;
        free(m->content);
        m->content = t;
    }
    if (a->p->fields & EL_MF_DURATION)
        m->duration_minutes = v->duration_minutes;
    if (a->p->fields & EL_MF_ORDER)
        m->order = v->order;
    return EL_OK;
}

static int edit_add(struct el_course *c, void *arg)
{
    const struct el_module *v = arg;
    struct el_module *mods, *m;
    int max = 0;

    if (c->nmodules >= EL_COURSE_MODULES_MAX)
        return EL_ETOOBIG;
    for (size_t i = 0; i < c->nmodules; i++)
        if (c->modules[i].order > max)
            max = c->modules[i].order;
    mods = realloc(c->modules, (c->nmodules + 1) * sizeof(*mods));
    if (mods == NULL)
        return EL_ENOMEM;
    c->modules = mods;
    m = &mods[c->nmodules];
    memset(m, 0, sizeof(*m));
    c->nmodules++;
    memcpy(m->id, v->id, sizeof(m->id));
    m->duration_minutes = v->duration_minutes;
    m->order = v->order > 0 ? v->order : max + 1;
    if ((m->title = strdup(or_empty(v->title))) == NULL ||
        (m->content = strdup(or_empty(v->content))) == NULL)
        return EL_ENOMEM;
    return EL_OK;
}

static int edit_delete(struct el_course *c, void *arg)
{
    struct el_module *m = find_module(c, arg);
    size_t i;

    if (m == NULL)
        return EL_ENOTFOUND;
    i = (size_t)(m - c->modules);
    free(m->title);
    free(m->content);
    memmove(m, m + 1, (c->nmodules - i - 1) * sizeof(*m));
    c->nmodules--;
    return EL_OK;
}

/* The filter names the module too, so a missing module is "no match"
 * (EL_ENOTFOUND) and the positional update changes exactly that element.
 * Modules come back ordered by order, then id, as doc_to_course sorts. */
static int mongo_module_update(struct el_store *base, const char *course_id, const char *module_id,
                               const struct el_module_patch *p, int64_t now_ms,
                               struct el_course *out)
{
    bson_t query = BSON_INITIALIZER, update = BSON_INITIALIZER;
    bson_oid_t cid, mid;
    int rc;

    if ((rc = take_oid(course_id, &cid)) != EL_OK || (rc = take_oid(module_id, &mid)) != EL_OK)
        return rc;
    if ((p->fields & ~(unsigned)MODULE_PATCH_FIELDS) ||
        ((p->fields & EL_MF_TITLE) && !utf8_ok(p->m.title)) ||
        ((p->fields & EL_MF_CONTENT) && !utf8_ok(p->m.content)))
        return EL_EINVAL;
    if (p->fields & EL_MF_DURATION) /* the module rule: the course's sum changes too */
    {
        struct patch_arg a = {module_id, p};

        return modules_rewrite(from(base), course_id, edit_patch, &a, now_ms, out);
    }
    BSON_APPEND_OID(&query, "_id", &cid);
    BSON_APPEND_OID(&query, "modules._id", &mid);
    if ((rc = module_patch_update(p, now_ms, &update)) == EL_OK)
        rc = modify_course(from(base), &query, &update, out);
    bson_destroy(&query);
    bson_destroy(&update);
    return rc;
}

/* Delete document id from parent and -- even when it was not there, so a
 * retry after a half-done delete finishes the job -- the documents of child
 * whose field refers to it. EL_ENOTFOUND when parent had no such document. */
static int delete_with_dependents(struct mongo_store *s, const char *parent, const char *id,
                                  const char *child, const char *field)
{
    mongoc_collection_t *pc, *cc;
    mongoc_client_t *client;
    bson_t filter = BSON_INITIALIZER;
    bson_oid_t oid;
    int64_t n = 0;
    int rc;

    if ((rc = take_oid(id, &oid)) != EL_OK)
        return rc;
    client = client_pop_coll(s, parent, &pc);
    BSON_APPEND_OID(&filter, "_id", &oid);
    rc = delete_docs(pc, &filter, false, &n);
    if (rc == EL_OK) {
        bson_reinit(&filter);
        BSON_APPEND_OID(&filter, field, &oid);
        cc = mongoc_client_get_collection(client, s->db, child);
        if (auth_critical(child))
            mongoc_collection_set_write_concern(cc, s->majority);
        rc = delete_docs(cc, &filter, true, NULL);
        mongoc_collection_destroy(cc);
    }
    if (rc == EL_OK && n == 0)
        rc = EL_ENOTFOUND;
    bson_destroy(&filter);
    return client_push(s, client, pc, rc);
}

/* The course (its modules are inside it), then its enrollments. The
 * enrollments are deleted even when the course was not found: a delete
 * whose second step failed (EL_EUNAVAIL) leaves them behind, and the
 * caller's retry, which finds no course, removes them. An enroll racing
 * with the delete cannot leave one either: it finds no course to count
 * and takes its enrollment back. */
static int mongo_course_delete(struct el_store *base, const char *id)
{
    return delete_with_dependents(from(base), COLLECTION, id, COLL_ENROLLMENTS, "course_id");
}

/* $inc the course's enrollment_count by delta (and its rev) and read the
 * new count into *count (when not NULL): findAndModify, so each caller gets
 * the count its own increment made. *applied (when not NULL) is 1 once the
 * server applied the increment; EL_EPROTO after that means counted, but the
 * server did not say to what. */
static int count_enrollment(mongoc_collection_t *courses, const bson_oid_t *cid, int delta,
                            int64_t *count, int *applied)
{
    bson_t query = BSON_INITIALIZER, update = BSON_INITIALIZER, fields = BSON_INITIALIZER;
    bson_t reply, after, inc;
    bson_iter_t it;
    int rc;

    BSON_APPEND_OID(&query, "_id", cid);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$inc", &inc);
    BSON_APPEND_INT32(&inc, "enrollment_count", delta);
    BSON_APPEND_INT64(&inc, "rev", 1);
    bson_append_document_end(&update, &inc);
    BSON_APPEND_INT32(&fields, "enrollment_count", 1);
    rc = modify_one(courses, &query, &update, &fields, &reply, &after);
    if (applied != NULL)
        *applied = rc == EL_OK;
    if (rc == EL_OK) {
        if (!bson_iter_init_find(&it, &after, "enrollment_count"))
            rc = EL_EPROTO;
        else if (count)
            *count = bson_iter_as_int64(&it);
    }
    bson_destroy(&reply);
    bson_destroy(&query);
    bson_destroy(&update);
    bson_destroy(&fields);
    return rc;
}

/* The enrollment document first: the unique index on (course_id, user_id)
 * lets in exactly one of any number of concurrent enrollments of a student
 * in a course, from any process, and refuses the rest before they touch the
 * count.
 * Then $inc on the course returns the new count (findAndModify), so each
 * caller gets the count its own increment made. The course is looked up
 * first so an enrollment in a missing course is not even written; if the
 * course disappears between the two writes, the enrollment is taken back.
 * If the $inc fails because the server is unreachable, its outcome is
 * unknown and the enrollment stays (a retry answers EL_ECONFLICT; the
 * count may be one short); any other failure takes it back. */
static int mongo_enroll(struct el_store *base, const char *course_id, const char *user_id,
                        int64_t *count)
{
    struct mongo_store *s = from(base);
    mongoc_collection_t *courses, *enrollments;
    mongoc_client_t *client;
    bson_t query = BSON_INITIALIZER, doc = BSON_INITIALIZER, fields = BSON_INITIALIZER;
    bson_error_t error;
    bson_oid_t cid, uid, eid;
    int rc, applied = 0;

    if ((rc = take_oid(course_id, &cid)) != EL_OK || (rc = take_oid(user_id, &uid)) != EL_OK)
        return rc;
    bson_oid_init(&eid, NULL);
    BSON_APPEND_OID(&query, "_id", &cid);
    BSON_APPEND_OID(&doc, "_id", &eid);
    BSON_APPEND_OID(&doc, "course_id", &cid);
    BSON_APPEND_OID(&doc, "user_id", &uid);
    BSON_APPEND_DATE_TIME(&doc, "created_at", el_wall_ms());
    BSON_APPEND_INT32(&fields, "enrollment_count", 1);

    client = client_pop(s, &courses);
    enrollments = mongoc_client_get_collection(client, s->db, COLL_ENROLLMENTS);
    if ((rc = require_indexes(s, client, SET_ENROLLMENTS)) != EL_OK ||
        (rc = find_one(courses, &query, &fields, NULL, NULL)) != EL_OK)
        goto out;
    if (!mongoc_collection_insert_one(enrollments, &doc, NULL, NULL, &error)) {
        rc = map_error(&error, "insert"); /* a second enrollment: EL_ECONFLICT */
        goto out;
    }
    rc = count_enrollment(courses, &cid, 1, count, &applied);
    if (!applied && rc != EL_EUNAVAIL) { /* certainly not counted: take it back */
        bson_reinit(&query);
        BSON_APPEND_OID(&query, "_id", &eid);
        if (delete_docs(enrollments, &query, false, NULL) != EL_OK)
            fprintf(stderr, "store: mongo: an uncounted enrollment could not be taken back\n");
    }
out:
    mongoc_collection_destroy(enrollments);
    bson_destroy(&query);
    bson_destroy(&doc);
    bson_destroy(&fields);
    return client_push(s, client, courses, rc);
}

/* ---- users -------------------------------------------------------------- */

static int user_field(const bson_iter_t *it, const char *k, void *arg)
{
    struct el_user *u = arg;

    if (BSON_ITER_HOLDS_UTF8(it) && strcmp(k, "email") == 0)
        return dup_utf8(it, &u->email);
    if (BSON_ITER_HOLDS_UTF8(it) && strcmp(k, "name") == 0)
        return dup_utf8(it, &u->name);
    if (BSON_ITER_HOLDS_UTF8(it) && strcmp(k, "password_hash") == 0)
        return dup_utf8(it, &u->password_hash);
    if (BSON_ITER_HOLDS_UTF8(it) && strcmp(k, "role") == 0)
        snprintf(u->role, sizeof(u->role), "%s", bson_iter_utf8(it, NULL));
    else if (strcmp(k, "created_at") == 0)
        u->created_at = iter_ms(it);
    return EL_OK;
}

/* Fill u (zeroed) from a user document; on failure u holds what was copied
 * so far, for the caller to clean up. As with courses, only the _id is
 * strict (walk_doc). */
static int doc_to_user(const bson_t *doc, void *arg)
{
    struct el_user *u = arg;
    int rc = walk_doc(doc, u->id, user_field, u);

    if (rc == EL_OK && (rc = fill_empty(&u->email)) == EL_OK &&
        (rc = fill_empty(&u->name)) == EL_OK)
        rc = fill_empty(&u->password_hash);
    return rc;
}

/* One user by filter (an _id or an email value). */
static int fetch_user(struct mongo_store *s, const bson_t *filter, struct el_user *out)
{
    mongoc_collection_t *coll;
    mongoc_client_t *client = client_pop_coll(s, COLL_USERS, &coll);
    int rc = find_one(coll, filter, NULL, doc_to_user, out);

    if (rc != EL_OK)
        el_user_cleanup(out);
    return client_push(s, client, coll, rc);
}

/* A given id is validated (and read back lowercase, as every ObjectId); an
 * empty one is generated and written back, as for courses. The unique
 * index on email makes a taken email EL_ECONFLICT, as a taken _id is. */
static int mongo_user_insert(struct el_store *base, struct el_user *u)
{
    struct mongo_store *s = from(base);
    mongoc_collection_t *coll;
    mongoc_client_t *client;
    bson_t doc = BSON_INITIALIZER;
    bson_error_t error;
    bson_oid_t oid;
    int rc;

    if (u->email == NULL || u->email[0] == '\0' || strlen(u->email) > EL_EMAIL_MAX ||
        u->password_hash == NULL || !role_ok(u->role) || !utf8_ok(u->email) || !utf8_ok(u->name) ||
        !utf8_ok(u->password_hash))
        return EL_EINVAL;
    if (u->id[0] == '\0')
        el_oid_new(u->id);
    if ((rc = take_oid(u->id, &oid)) != EL_OK)
        return rc;
    if (u->created_at == 0)
        u->created_at = el_wall_ms();
    BSON_APPEND_OID(&doc, "_id", &oid);
    BSON_APPEND_UTF8(&doc, "email", u->email);
    BSON_APPEND_UTF8(&doc, "name", or_empty(u->name));
    BSON_APPEND_UTF8(&doc, "role", u->role);
    BSON_APPEND_UTF8(&doc, "password_hash", u->password_hash);
    BSON_APPEND_DATE_TIME(&doc, "created_at", u->created_at);
    client = client_pop_coll(s, COLL_USERS, &coll);
    if ((rc = require_indexes(s, client, SET_USERS)) == EL_OK &&
        !mongoc_collection_insert_one(coll, &doc, NULL, NULL, &error))
        rc = map_error(&error, "insert");
    bson_destroy(&doc);
    return client_push(s, client, coll, rc);
}

static int mongo_user_get(struct el_store *base, const char *id, struct el_user *out)
{
    bson_t filter = BSON_INITIALIZER;
    bson_oid_t oid;
    int rc;

    if ((rc = take_oid(id, &oid)) != EL_OK)
        return rc;
    BSON_APPEND_OID(&filter, "_id", &oid);
    rc = fetch_user(from(base), &filter, out);
    bson_destroy(&filter);
    return rc;
}

/* An exact match on the normalised email: a string value, never an
 * operator, compared byte for byte. */
static int mongo_user_get_by_email(struct el_store *base, const char *email, struct el_user *out)
{
    bson_t filter = BSON_INITIALIZER;
    int rc;

    if (email == NULL || !utf8_ok(email))
        return EL_EINVAL;
    BSON_APPEND_UTF8(&filter, "email", email);
    rc = fetch_user(from(base), &filter, out);
    bson_destroy(&filter);
    return rc;
}

/* $set of what is given. With nothing to set (both NULL), the user's
 * existence is still the answer, as in the SQLite store. */
static int mongo_user_update(struct el_store *base, const char *id, const char *role,
                             const char *password_hash)
{
    struct mongo_store *s = from(base);
    mongoc_collection_t *coll;
    mongoc_client_t *client;
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
    bson_oid_t oid;
    int64_t matched = 0;
    int rc;

    if ((rc = take_oid(id, &oid)) != EL_OK)
        return rc;
    if ((role != NULL && !role_ok(role)) || !utf8_ok(password_hash))
        return EL_EINVAL;
    BSON_APPEND_OID(&filter, "_id", &oid);
    if (role == NULL && password_hash == NULL) {
        BSON_APPEND_INT32(&update, "_id", 1); /* a projection */
    } else {
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        if (role)
            BSON_APPEND_UTF8(&set, "role", role);
        if (password_hash)
            BSON_APPEND_UTF8(&set, "password_hash", password_hash);
        bson_append_document_end(&update, &set);
    }
    client = client_pop_coll(s, COLL_USERS, &coll);
    if (role == NULL && password_hash == NULL) {
        rc = find_one(coll, &filter, &update, NULL, NULL);
    } else {
        rc = update_one(coll, &filter, &update, false, &matched);
        if (rc == EL_OK && matched == 0)
            rc = EL_ENOTFOUND;
    }
    bson_destroy(&filter);
    bson_destroy(&update);
    return client_push(s, client, coll, rc);
}

/* The account, then its refresh tokens: a deleted account cannot renew its
 * access. The tokens are deleted even when no account was found, so a
 * retry after a failure between the two steps finishes the job. Its
 * enrollments stay counted (store.h). */
static int mongo_user_delete(struct el_store *base, const char *id)
{
    return delete_with_dependents(from(base), COLL_USERS, id, COLL_REFRESH, "user_id");
}

/* ---- refresh tokens and revocations -------------------------------------- *
 *
 * Both have their id as _id (a string) and expires_at as a BSON date, which
 * their TTL index needs: MongoDB deletes what has expired by the wall
 * clock, as the SQLite store's housekeeping does, so neither collection
 * grows with time. Expiry as the contract defines it (expires_at <= now is
 * expired) is checked in every query against the caller's now_ms. */

static int mongo_refresh_insert(struct el_store *base, const char *jti, const char *user_id,
                                const char *sid, int64_t expires_ms)
{
    struct mongo_store *s = from(base);
    mongoc_collection_t *coll;
    mongoc_client_t *client;
    bson_t doc = BSON_INITIALIZER;
    bson_error_t error;
    bson_oid_t uid;
    int rc = EL_OK;

    if (!token_id_ok(jti) || !token_id_ok(sid) || take_oid(user_id, &uid) != EL_OK)
        return EL_EINVAL;
    BSON_APPEND_UTF8(&doc, "_id", jti);
    BSON_APPEND_OID(&doc, "user_id", &uid);
    BSON_APPEND_UTF8(&doc, "sid", sid);
    BSON_APPEND_DATE_TIME(&doc, "expires_at", expires_ms);
    BSON_APPEND_BOOL(&doc, "used", false);
    client = client_pop_coll(s, COLL_REFRESH, &coll);
    if (!mongoc_collection_insert_one(coll, &doc, NULL, NULL, &error))
        rc = map_error(&error, "insert");
    bson_destroy(&doc);
    return client_push(s, client, coll, rc);
}

static int read_used(const bson_t *doc, void *arg)
{
    bson_iter_t it;

    *(bool *)arg = bson_iter_init_find(&it, doc, "used") && bson_iter_as_bool(&it);
    return EL_OK;
}

/* The claim is one update whose filter is the guard (unused, unexpired):
 * MongoDB applies an update to a document atomically and re-checks the
 * filter under the write, so of any number of concurrent claims -- from
 * any thread or process -- exactly one matches. The others then look the
 * token up to say why: used is a reuse (EL_ECONFLICT, even after its
 * expiry), anything else is unknown or expired. */
static int mongo_refresh_claim(struct el_store *base, const char *jti, int64_t now_ms)
{
    struct mongo_store *s = from(base);
    mongoc_collection_t *coll;
    mongoc_client_t *client;
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, sub;
    int64_t matched = 0;
    bool used = false;
    int rc;

    if (!token_id_ok(jti))
        return EL_EINVAL;
    BSON_APPEND_UTF8(&filter, "_id", jti);
    BSON_APPEND_BOOL(&filter, "used", false);
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "expires_at", &sub);
    BSON_APPEND_DATE_TIME(&sub, "$gt", now_ms);
    bson_append_document_end(&filter, &sub);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &sub);
    BSON_APPEND_BOOL(&sub, "used", true);
    bson_append_document_end(&update, &sub);
    client = client_pop_coll(s, COLL_REFRESH, &coll);
    rc = update_one(coll, &filter, &update, false, &matched);
    if (rc == EL_OK && matched == 0) {
        bson_reinit(&filter);
        BSON_APPEND_UTF8(&filter, "_id", jti);
        bson_reinit(&update); /* now the projection */
        BSON_APPEND_INT32(&update, "used", 1);
        rc = find_one(coll, &filter, &update, read_used, &used);
        if (rc == EL_OK)
            rc = used ? EL_ECONFLICT : EL_ENOTFOUND;
    }
    bson_destroy(&filter);
    bson_destroy(&update);
    return client_push(s, client, coll, rc);
}

/* An upsert with $max: a new revocation, or a later expiry for an existing
 * one, never an earlier one -- in one atomic update. Two first revocations
 * of one id at once can both try to insert; the loser's duplicate key is
 * answered by trying again, when the document exists. */
static int mongo_revoke(struct el_store *base, const char *id, int64_t expires_ms)
{
    struct mongo_store *s = from(base);
    mongoc_collection_t *coll;
    mongoc_client_t *client;
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, max;
    int64_t matched = 0;
    int rc;

    if (!token_id_ok(id))
        return EL_EINVAL;
    BSON_APPEND_UTF8(&filter, "_id", id);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$max", &max);
    BSON_APPEND_DATE_TIME(&max, "expires_at", expires_ms);
    bson_append_document_end(&update, &max);
    client = client_pop_coll(s, COLL_REVOCATIONS, &coll);
    rc = update_one(coll, &filter, &update, true, &matched);
    if (rc == EL_ECONFLICT)
        rc = update_one(coll, &filter, &update, true, &matched);
    bson_destroy(&filter);
    bson_destroy(&update);
    return client_push(s, client, coll, rc);
}

/* One find: {_id: {$in: [jti, sid]}, expires_at: {$gt: now}}. */
static int mongo_revoked(struct el_store *base, const char *jti, const char *sid, int64_t now_ms,
                         int *revoked)
{
    struct mongo_store *s = from(base);
    mongoc_collection_t *coll;
    mongoc_client_t *client;
    bson_t filter = BSON_INITIALIZER, projection = BSON_INITIALIZER, sub, in;
    int rc;

    *revoked = 0;
    if ((jti != NULL && !token_id_ok(jti)) || (sid != NULL && !token_id_ok(sid)))
        return EL_EINVAL;
    if (jti == NULL && sid == NULL)
        return EL_OK;
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &sub);
    BSON_APPEND_ARRAY_BEGIN(&sub, "$in", &in);
    if (jti)
        BSON_APPEND_UTF8(&in, "0", jti);
    if (sid)
        BSON_APPEND_UTF8(&in, jti ? "1" : "0", sid);
    bson_append_array_end(&sub, &in);
    bson_append_document_end(&filter, &sub);
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "expires_at", &sub);
    BSON_APPEND_DATE_TIME(&sub, "$gt", now_ms);
    bson_append_document_end(&filter, &sub);
    BSON_APPEND_INT32(&projection, "_id", 1);
    client = client_pop_coll(s, COLL_REVOCATIONS, &coll);
    rc = find_one(coll, &filter, &projection, NULL, NULL);
    if (rc == EL_OK)
        *revoked = 1;
    else if (rc == EL_ENOTFOUND)
        rc = EL_OK;
    bson_destroy(&filter);
    bson_destroy(&projection);
    return client_push(s, client, coll, rc);
}

struct revocation {
    char id[TOKEN_ID_MAX + 1];
    int64_t expires_ms;
};

/* Copy the live revocations, in _id order, into a heap array (*out, *n).
 * Documents that are not ours (an _id that is not a token id) are
 * skipped. */
static int read_live(mongoc_collection_t *coll, int64_t now_ms, struct revocation **out, size_t *n)
{
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, sub;
    mongoc_cursor_t *cursor;
    const bson_t *doc;
    bson_error_t error;
    size_t cap = 0;
    int rc = EL_OK;

    BSON_APPEND_DOCUMENT_BEGIN(&filter, "expires_at", &sub);
    BSON_APPEND_DATE_TIME(&sub, "$gt", now_ms);
    bson_append_document_end(&filter, &sub);
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sub);
    BSON_APPEND_INT32(&sub, "_id", 1);
    bson_append_document_end(&opts, &sub);
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &sub);
    BSON_APPEND_INT32(&sub, "expires_at", 1);
    bson_append_document_end(&opts, &sub);
    cursor = mongoc_collection_find_with_opts(coll, &filter, &opts, NULL);
    while (rc == EL_OK && mongoc_cursor_next(cursor, &doc)) {
        bson_iter_t id, exp;
        const char *v;

        if (!bson_iter_init_find(&id, doc, "_id") || !BSON_ITER_HOLDS_UTF8(&id) ||
            !token_id_ok(v = bson_iter_utf8(&id, NULL)) ||
            !bson_iter_init_find(&exp, doc, "expires_at"))
            continue;
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 32;
            struct revocation *p = realloc(*out, ncap * sizeof(*p));

            if (p == NULL) {
                rc = EL_ENOMEM;
                break;
            }
            *out = p;
            cap = ncap;
        }
        snprintf((*out)[*n].id, sizeof((*out)[*n].id), "%s", v);
        (*out)[*n].expires_ms = iter_ms(&exp);
        (*n)++;
    }
    if (rc == EL_OK && mongoc_cursor_error(cursor, &error))
        rc = map_error(&error, "find");
    mongoc_cursor_destroy(cursor);
    bson_destroy(&filter);
    bson_destroy(&opts);
    return rc;
}

/* The revocations are copied out and the client returned to the pool
 * before fn runs: fn may take its time (it writes to Redis) or call the
 * store itself without holding a pooled client meanwhile. */
static int mongo_revocations_live(struct el_store *base, int64_t now_ms,
                                  int (*fn)(const char *id, int64_t expires_ms, void *arg),
                                  void *arg)
{
    struct mongo_store *s = from(base);
    mongoc_collection_t *coll;
    mongoc_client_t *client;
    struct revocation *live = NULL;
    size_t n = 0;
    int rc;

    if (fn == NULL)
        return EL_EINVAL;
    client = client_pop_coll(s, COLL_REVOCATIONS, &coll);
    rc = client_push(s, client, coll, read_live(coll, now_ms, &live, &n));
    for (size_t i = 0; rc == EL_OK && i < n; i++)
        rc = fn(live[i].id, live[i].expires_ms, arg);
    free(live);
    return rc;
}

static void mongo_close(struct el_store *base)
{
    struct mongo_store *s = from(base);

    mongoc_client_pool_destroy(s->pool);
    mongoc_write_concern_destroy(s->majority);
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
    /* Every read goes to the primary, whatever the URI asks: a cache fill
     * from a lagging secondary would be served for its whole TTL (and a
     * revocation or refresh token read there may not be there yet). */
    const mongoc_read_prefs_t *rp = mongoc_uri_get_read_prefs_t(uri);
    if (rp == NULL || mongoc_read_prefs_get_mode(rp) != MONGOC_READ_PRIMARY) {
        mongoc_read_prefs_t *primary = mongoc_read_prefs_new(MONGOC_READ_PRIMARY);

        if (rp != NULL)
            fprintf(stderr, "store: mongo: readPreference in DB_URI overridden: elearn reads "
                            "from the primary\n");
        mongoc_uri_set_read_prefs_t(uri, primary);
        mongoc_read_prefs_destroy(primary);
    }
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
    /* wtimeout: two thirds of DB_TIMEOUT_MS, so the answer (even "not
     * acknowledged") arrives before the socket timeout gives up on it. */
    s->majority = mongoc_write_concern_new();
    mongoc_write_concern_set_wmajority(s->majority, db_timeout_ms() * 2 / 3);
    atomic_init(&s->indexes, IDX_NEEDED);
    atomic_init(&s->sets_ready, 0u);
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
    if (s) {
        free(s->db);
        mongoc_write_concern_destroy(s->majority);
    }
    free(s);
    mongoc_uri_destroy(uri);
    return rc;
}

/* ---- issue 12: unenroll, my learning, module add/delete, ratings -------- */

/* The enrollment first, then the count: a failure in between leaves the
 * count one high until the course is next counted -- never an enrollment
 * counted twice. */
static int mongo_unenroll(struct el_store *base, const char *course_id, const char *user_id,
                          int64_t *count)
{
    struct mongo_store *s = from(base);
    mongoc_collection_t *courses, *enrollments;
    mongoc_client_t *client;
    bson_t query = BSON_INITIALIZER;
    bson_oid_t cid, uid;
    int64_t n = 0;
    int rc;

    if ((rc = take_oid(course_id, &cid)) != EL_OK || (rc = take_oid(user_id, &uid)) != EL_OK)
        return rc;
    BSON_APPEND_OID(&query, "course_id", &cid);
    BSON_APPEND_OID(&query, "user_id", &uid);
    client = client_pop(s, &courses);
    enrollments = mongoc_client_get_collection(client, s->db, COLL_ENROLLMENTS);
    rc = delete_docs(enrollments, &query, false, &n);
    if (rc == EL_OK && n == 0)
        rc = EL_ENOTFOUND;
    if (rc == EL_OK)
        rc = count_enrollment(courses, &cid, -1, count, NULL);
    mongoc_collection_destroy(enrollments);
    bson_destroy(&query);
    return client_push(s, client, courses, rc);
}

struct my_row {
    struct el_enrollment_page *page;
    bson_oid_t ids[EL_COURSE_PAGE_SIZE_MAX];
};

/* One enrollment document: remember its course and date. */
static int enrollment_conv(const bson_t *doc, struct my_row *r)
{
    struct el_enrollment_page *p = r->page;
    bson_iter_t it;

    if (!bson_iter_init_find(&it, doc, "course_id") || !BSON_ITER_HOLDS_OID(&it))
        return EL_EIO;
    bson_oid_copy(bson_iter_oid(&it), &r->ids[p->nitems]);
    p->enrolled_at[p->nitems] = bson_iter_init_find(&it, doc, "created_at") ? iter_ms(&it) : 0;
    p->nitems++;
    return EL_OK;
}

/* The page of enrollments, then their courses in one find ($in), placed
 * in enrollment order. A course deleted in between leaves its row out. */
static int my_page(struct mongo_store *s, mongoc_client_t *client, mongoc_collection_t *courses,
                   const bson_oid_t *uid, int page, int page_size, struct my_row *r)
{
    struct el_enrollment_page *p = r->page;
    mongoc_collection_t *enr = mongoc_client_get_collection(client, s->db, COLL_ENROLLMENTS);
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, sort, in, arr, proj;
    mongoc_cursor_t *cursor = NULL;
    const bson_t *doc;
    bson_error_t error;
    int64_t skip = (int64_t)(page - 1) * page_size;
    struct el_course *found = NULL;
    size_t nfound = 0;
    char idx[16];
    const char *k;
    int rc = EL_OK;

    BSON_APPEND_OID(&filter, "user_id", uid);
    p->total = mongoc_collection_count_documents(enr, &filter, NULL, NULL, NULL, &error);
    if (p->total < 0) {
        rc = map_error(&error, "count");
        p->total = 0;
        goto out;
    }
    if (p->total <= skip)
        goto out;
    p->items = calloc((size_t)page_size, sizeof(*p->items));
    p->enrolled_at = calloc((size_t)page_size, sizeof(*p->enrolled_at));
    found = calloc((size_t)page_size, sizeof(*found));
    if (p->items == NULL || p->enrolled_at == NULL || found == NULL) {
        rc = EL_ENOMEM;
        goto out;
    }
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
    BSON_APPEND_INT32(&sort, "created_at", -1);
    BSON_APPEND_INT32(&sort, "course_id", 1);
    bson_append_document_end(&opts, &sort);
    if (skip > 0)
        BSON_APPEND_INT64(&opts, "skip", skip);
    BSON_APPEND_INT64(&opts, "limit", page_size);
    cursor = mongoc_collection_find_with_opts(enr, &filter, &opts, NULL);
    while (rc == EL_OK && mongoc_cursor_next(cursor, &doc)) {
        if (p->nitems == (size_t)page_size) {
            rc = EL_EPROTO;
            break;
        }
        rc = enrollment_conv(doc, r);
    }
    if (rc == EL_OK && mongoc_cursor_error(cursor, &error))
        rc = map_error(&error, "find");
    mongoc_cursor_destroy(cursor);
    cursor = NULL;
    if (rc != EL_OK || p->nitems == 0)
        goto out;

    bson_reinit(&filter);
    bson_reinit(&opts);
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &in);
    BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
    for (uint32_t i = 0; i < p->nitems; i++) {
        bson_uint32_to_string(i, &k, idx, sizeof(idx));
        BSON_APPEND_OID(&arr, k, &r->ids[i]);
    }
    bson_append_array_end(&in, &arr);
    bson_append_document_end(&filter, &in);
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
    BSON_APPEND_INT32(&proj, "modules", 0);
    bson_append_document_end(&opts, &proj);
    cursor = mongoc_collection_find_with_opts(courses, &filter, &opts, NULL);
    while (rc == EL_OK && mongoc_cursor_next(cursor, &doc) && nfound < p->nitems)
        rc = doc_to_course(doc, &found[nfound++]);
    if (rc == EL_OK && mongoc_cursor_error(cursor, &error))
        rc = map_error(&error, "find");
    if (rc == EL_OK) {
        size_t n = 0;

        for (size_t i = 0; i < p->nitems; i++) {
            char hex[EL_OID_HEX];

            bson_oid_to_string(&r->ids[i], hex);
            for (size_t j = 0; j < nfound; j++) {
                if (found[j].id[0] && strcmp(found[j].id, hex) == 0) {
                    p->items[n] = found[j];
                    p->enrolled_at[n] = p->enrolled_at[i];
                    memset(&found[j], 0, sizeof(found[j]));
                    n++;
                    break;
                }
            }
        }
        p->nitems = n;
    }
out:
    for (size_t j = 0; found && j < nfound; j++)
        el_course_cleanup(&found[j]);
    free(found);
    mongoc_cursor_destroy(cursor);
    mongoc_collection_destroy(enr);
    bson_destroy(&filter);
    bson_destroy(&opts);
    return rc;
}

static int mongo_enrollments(struct el_store *base, const char *user_id, int page, int page_size,
                             struct el_enrollment_page *out)
{
    struct mongo_store *s = from(base);
    mongoc_collection_t *courses;
    mongoc_client_t *client;
    struct my_row *r;
    bson_oid_t uid;
    int rc;

    if ((rc = take_oid(user_id, &uid)) != EL_OK)
        return rc;
    if ((r = calloc(1, sizeof(*r))) == NULL)
        return EL_ENOMEM;
    r->page = out;
    client = client_pop(s, &courses);
    rc = my_page(s, client, courses, &uid, page, page_size, r);
    free(r);
    if (rc != EL_OK)
        el_enrollment_page_cleanup(out);
    return client_push(s, client, courses, rc);
}

static int mongo_module_add(struct el_store *base, const char *course_id, struct el_module *m,
                            int64_t now_ms, struct el_course *out)
{
    if (m->id[0] == '\0')
        el_oid_new(m->id);
    if (!el_oid_valid(m->id) || !utf8_ok(m->title) || !utf8_ok(m->content))
        return EL_EINVAL;
    return modules_rewrite(from(base), course_id, edit_add, m, now_ms, out);
}

static int mongo_module_delete(struct el_store *base, const char *course_id, const char *module_id,
                               int64_t now_ms, struct el_course *out)
{
    if (module_id == NULL || !el_oid_valid(module_id))
        return EL_EINVAL;
    return modules_rewrite(from(base), course_id, edit_delete, (void *)module_id, now_ms, out);
}

/* The rater's own document first (the unique index makes it one per
 * rater, and findAndModify hands back the stars it replaced), then $inc of
 * the course's rating_sum and rating_count by the difference -- atomic on
 * one document, so concurrent raters all count. Last, rating is set from
 * the sum and count the $inc returned, guarded by those two values: a
 * guard that no longer matches means a later rater moved them and sets
 * rating itself, and any write that does match writes the average of
 * exactly the sum and count it names. A failure after the first step
 * leaves the rating recorded but not yet counted (as with enroll). */
static int rate_apply(struct mongo_store *s, mongoc_client_t *client, mongoc_collection_t *courses,
                      const bson_oid_t *cid, const bson_oid_t *uid, int stars, int64_t now_ms)
{
    mongoc_collection_t *ratings = mongoc_client_get_collection(client, s->db, COLL_RATINGS);
    mongoc_find_and_modify_opts_t *fam = NULL;
    bson_t query = BSON_INITIALIZER, update = BSON_INITIALIZER, fields = BSON_INITIALIZER;
    bson_t reply = BSON_INITIALIZER, after, set, inc;
    bson_error_t error;
    bson_iter_t it, v;
    int64_t old = 0, sum, count, matched;
    bool had = false;
    int rc = EL_OK;

    BSON_APPEND_OID(&query, "course_id", cid);
    BSON_APPEND_OID(&query, "user_id", uid);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_INT32(&set, "stars", stars);
    BSON_APPEND_DATE_TIME(&set, "updated_at", now_ms);
    bson_append_document_end(&update, &set);
    fam = mongoc_find_and_modify_opts_new();
    mongoc_find_and_modify_opts_set_update(fam, &update);
    mongoc_find_and_modify_opts_set_flags(fam, MONGOC_FIND_AND_MODIFY_UPSERT);
    /* Two first ratings by one rater at once: the unique index lets one
     * upsert in and fails the other, which then finds the document. */
    for (int attempt = 0; attempt < 2; attempt++) {
        bson_destroy(&reply);
        if (mongoc_collection_find_and_modify_with_opts(ratings, &query, fam, &reply, &error)) {
            rc = EL_OK;
            break;
        }
        bson_init(&reply);
        rc = map_error(&error, "findAndModify");
        if (rc != EL_ECONFLICT)
            break;
    }
    if (rc == EL_OK && bson_iter_init_find(&it, &reply, "value") && BSON_ITER_HOLDS_DOCUMENT(&it) &&
        bson_iter_recurse(&it, &v) && bson_iter_find(&v, "stars")) {
        old = bson_iter_as_int64(&v);
        had = true;
    }
    bson_destroy(&reply);
    if (rc != EL_OK)
        goto out;

    bson_reinit(&query);
    bson_reinit(&update);
    BSON_APPEND_OID(&query, "_id", cid);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$inc", &inc);
    BSON_APPEND_INT64(&inc, "rating_sum", stars - (had ? old : 0));
    BSON_APPEND_INT32(&inc, "rating_count", had ? 0 : 1);
    BSON_APPEND_INT64(&inc, "rev", 1);
    bson_append_document_end(&update, &inc);
    BSON_APPEND_INT32(&fields, "rating_sum", 1);
    BSON_APPEND_INT32(&fields, "rating_count", 1);
    rc = modify_one(courses, &query, &update, &fields, &reply, &after);
    if (rc == EL_OK) {
        if (!bson_iter_init_find(&it, &after, "rating_sum"))
            rc = EL_EPROTO;
        sum = rc == EL_OK ? bson_iter_as_int64(&it) : 0;
        if (rc == EL_OK && !bson_iter_init_find(&it, &after, "rating_count"))
            rc = EL_EPROTO;
        count = rc == EL_OK ? bson_iter_as_int64(&it) : 0;
    }
    bson_destroy(&reply);
    if (rc != EL_OK)
        goto out;
    bson_reinit(&query);
    bson_reinit(&update);
    BSON_APPEND_OID(&query, "_id", cid);
    BSON_APPEND_INT64(&query, "rating_sum", sum);
    BSON_APPEND_INT64(&query, "rating_count", count);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_DOUBLE(&set, "rating", el_rating_average(sum, count));
    bson_append_document_end(&update, &set);
    append_rev_inc(&update);
    rc = update_one(courses, &query, &update, false, &matched);
out:
    mongoc_find_and_modify_opts_destroy(fam);
    mongoc_collection_destroy(ratings);
    bson_destroy(&query);
    bson_destroy(&update);
    bson_destroy(&fields);
    return rc;
}

static int course_conv(const bson_t *doc, void *arg)
{
    return doc_to_course(doc, arg);
}

static int mongo_rate(struct el_store *base, const char *course_id, const char *user_id, int stars,
                      int64_t now_ms, struct el_course *out)
{
    struct mongo_store *s = from(base);
    mongoc_collection_t *courses, *enrollments;
    mongoc_client_t *client;
    bson_t query = BSON_INITIALIZER;
    bson_oid_t cid, uid;
    int rc;

    if ((rc = take_oid(course_id, &cid)) != EL_OK || (rc = take_oid(user_id, &uid)) != EL_OK)
        return rc;
    client = client_pop(s, &courses);
    enrollments = mongoc_client_get_collection(client, s->db, COLL_ENROLLMENTS);
    BSON_APPEND_OID(&query, "_id", &cid);
    rc = require_indexes(s, client, SET_RATINGS);
    if (rc == EL_OK)
        rc = find_one(courses, &query, NULL, NULL, NULL);
    if (rc == EL_OK) {
        bson_reinit(&query);
        BSON_APPEND_OID(&query, "course_id", &cid);
        BSON_APPEND_OID(&query, "user_id", &uid);
        rc = find_one(enrollments, &query, NULL, NULL, NULL);
        if (rc == EL_ENOTFOUND)
            rc = EL_EFORBIDDEN;
    }
    if (rc == EL_OK)
        rc = rate_apply(s, client, courses, &cid, &uid, stars, now_ms);
    if (rc == EL_OK) {
        bson_reinit(&query);
        BSON_APPEND_OID(&query, "_id", &cid);
        rc = find_one(courses, &query, NULL, course_conv, out);
        if (rc != EL_OK)
            el_course_cleanup(out);
    }
    mongoc_collection_destroy(enrollments);
    bson_destroy(&query);
    return client_push(s, client, courses, rc);
}

static const struct el_store_ops mongo_ops = {
    .kind = "mongodb",
    .close = mongo_close,
    .thread_cleanup = NULL, /* nothing per thread: clients go back to the pool */
    .ping = mongo_ping,
    .version = mongo_version,
    .course_get = mongo_course_get,
    .course_list = mongo_course_list,
    .course_insert = mongo_course_insert,
    .course_count = mongo_course_count,
    .reset = mongo_reset,
    .course_update = mongo_course_update,
    .module_update = mongo_module_update,
    .course_delete = mongo_course_delete,
    .enroll = mongo_enroll,
    .user_insert = mongo_user_insert,
    .user_get = mongo_user_get,
    .user_get_by_email = mongo_user_get_by_email,
    .user_update = mongo_user_update,
    .user_delete = mongo_user_delete,
    .refresh_insert = mongo_refresh_insert,
    .refresh_claim = mongo_refresh_claim,
    .revoke = mongo_revoke,
    .revoked = mongo_revoked,
    .revocations_live = mongo_revocations_live,
    .unenroll = mongo_unenroll,
    .enrollments = mongo_enrollments,
    .module_add = mongo_module_add,
    .module_delete = mongo_module_delete,
    .rate = mongo_rate,
};
