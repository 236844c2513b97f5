/* store_sqlite.c -- the store (see store.h) in one embedded SQLite file.
 *
 * Key decision: one connection per thread, opened on the thread's first
 * call and kept in a pthread key, each with its own cache of prepared
 * statements. Connections are opened SQLITE_OPEN_NOMUTEX, so a call never
 * takes a lock shared with another thread; WAL mode lets those readers run
 * beside one writer, and a busy timeout of about 1.5 s bounds every wait.
 * A thread's connection is closed by el_store_thread_cleanup(), by the key's
 * destructor when the thread exits, or by el_store_close().
 *
 * Search, our FTS-equivalent: each course row carries a search_text BLOB,
 * the ASCII-lowercased title, description and tags joined by 0xFF bytes,
 * and a search is instr(search_text, needle) with the needle lowercased the
 * same way and bound as a BLOB. instr() on BLOBs is a plain byte search,
 * so the needle is matched literally -- no character is special, unlike
 * LIKE or GLOB -- and because 0xFF never occurs in UTF-8 a needle can never
 * match across two fields. That is the semantics of the MongoDB backend's
 * escaped, case-insensitive regex over title, description and each tag.
 * Case folding is ASCII-only (like SQLite's own lower()).
 *
 * Writes that touch more than one row run in BEGIN IMMEDIATE transactions:
 * the write lock is taken (waiting up to the busy timeout) before anything
 * is read, so two writers serialize instead of one failing when it tries
 * to upgrade a read snapshot that went stale. Single-statement writes are
 * atomic on their own. Where a contract needs exactly-once semantics --
 * claiming a refresh token, enrolling -- the guard is inside one statement
 * (UPDATE ... WHERE used = 0, a primary key) so it holds across processes
 * sharing the file, not only across this process's threads.
 *
 * Expired refresh tokens and revocations are deleted a few at a time (see
 * HOUSEKEEP_BATCH) by the calls that add new ones, so the tables stay
 * about as large as what is live without a sweeper thread. */
#include "store/store_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>
#include <sqlite3.h>

#include "model/oid.h"
#include "core/text.h"

#define SCHEMA_VERSION                                                                             \
    4                      /* 2: users, enrollments, refresh tokens, revocations;
                            * 3: ratings, courses.rating_sum (issue 12);
                            * 4: courses.rev (the caches' version guard) */
#define SEP 0xFF           /* search_text field separator: a byte UTF-8 never uses */
#define TOKEN_ID_MAX 64    /* bytes of a refresh token's jti/sid or a revoked id */
#define HOUSEKEEP_BATCH 64 /* expired rows deleted per call that adds one */

#define COURSE_COLS                                                                                \
    "id, title, description, category, difficulty, tags, instructor_id, duration_minutes, "        \
    "rating, rating_count, enrollment_count, published, created_at, updated_at"
/* What a course read selects: the columns and the revision (column 14). */
#define COURSE_READ_COLS COURSE_COLS ", rev"
#define USER_COLS "id, email, name, role, password_hash, created_at"

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS courses ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " title TEXT NOT NULL,"
    " description TEXT NOT NULL,"
    " category TEXT NOT NULL,"
    " difficulty TEXT NOT NULL,"
    " tags TEXT NOT NULL DEFAULT '[]'," /* JSON array of strings */
    " instructor_id TEXT NOT NULL,"
    " duration_minutes INTEGER NOT NULL,"
    " rating REAL NOT NULL,"
    " rating_count INTEGER NOT NULL,"
    " enrollment_count INTEGER NOT NULL,"
    " published INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL," /* ms since the epoch, UTC */
    " updated_at INTEGER NOT NULL,"
    " search_text BLOB NOT NULL,"
    " rating_sum INTEGER NOT NULL DEFAULT 0," /* version 3; see add_rating_sum */
    " rev INTEGER NOT NULL DEFAULT 1);"       /* version 4; see el_course.rev */
    "CREATE TABLE IF NOT EXISTS modules ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " course_id TEXT NOT NULL REFERENCES courses(id) ON DELETE CASCADE,"
    " title TEXT NOT NULL,"
    " content TEXT NOT NULL,"
    " duration_minutes INTEGER NOT NULL,"
    " ord INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS modules_course ON modules(course_id, ord, id);"
    "CREATE INDEX IF NOT EXISTS courses_category ON courses(category);"
    "CREATE INDEX IF NOT EXISTS courses_difficulty ON courses(difficulty);"
    "CREATE INDEX IF NOT EXISTS courses_recent ON courses(created_at DESC, id);"
    "CREATE INDEX IF NOT EXISTS courses_popular ON courses(enrollment_count DESC, id);"
    "CREATE INDEX IF NOT EXISTS courses_top_rated ON courses(rating DESC, id);"
    "CREATE INDEX IF NOT EXISTS courses_duration ON courses(duration_minutes, id);"
    /* version 2 */
    "CREATE TABLE IF NOT EXISTS users ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " email TEXT NOT NULL UNIQUE," /* normalised by the caller */
    " name TEXT NOT NULL,"
    " role TEXT NOT NULL,"
    " password_hash TEXT NOT NULL,"
    " created_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS enrollments ("
    " course_id TEXT NOT NULL REFERENCES courses(id) ON DELETE CASCADE,"
    " user_id TEXT NOT NULL," /* no reference: a deleted user's enrollments stay */
    " created_at INTEGER NOT NULL,"
    " PRIMARY KEY (course_id, user_id)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS refresh_tokens ("
    " jti TEXT PRIMARY KEY NOT NULL,"
    " user_id TEXT NOT NULL,"
    " sid TEXT NOT NULL,"
    " expires_at INTEGER NOT NULL," /* ms since the epoch */
    " used INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS refresh_tokens_expiry ON refresh_tokens(expires_at);"
    "CREATE INDEX IF NOT EXISTS refresh_tokens_user ON refresh_tokens(user_id);"
    "CREATE TABLE IF NOT EXISTS revocations ("
    " id TEXT PRIMARY KEY NOT NULL," /* a token's jti or a login's sid */
    " expires_at INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS revocations_expiry ON revocations(expires_at);"
    /* version 3 */
    "CREATE TABLE IF NOT EXISTS ratings ("
    " course_id TEXT NOT NULL REFERENCES courses(id) ON DELETE CASCADE,"
    " user_id TEXT NOT NULL,"
    " stars INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL,"
    " PRIMARY KEY (course_id, user_id)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS enrollments_user ON enrollments(user_id, created_at DESC, "
    "course_id);"
    "CREATE INDEX IF NOT EXISTS courses_instructor ON courses(instructor_id, created_at DESC);";

enum stmt_id {
    ST_BEGIN,
    ST_BEGIN_WRITE,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_PING,
    ST_GET,
    ST_MODULES,
    ST_MODULES_SUMMARY,
    ST_INSERT_COURSE,
    ST_INSERT_MODULE,
    ST_COUNT_ALL,
    ST_RESET_MODULES,
    ST_RESET_COURSES,
    ST_UPDATE_COURSE,
    ST_UPDATE_MODULE,
    ST_TOUCH_COURSE,
    ST_DELETE_COURSE,
    ST_ENROLL_COUNT,
    ST_ENROLL,
    ST_USER_INSERT,
    ST_USER_GET,
    ST_USER_BY_EMAIL,
    ST_USER_UPDATE,
    ST_USER_DELETE,
    ST_USER_TOKENS_DELETE,
    ST_REFRESH_INSERT,
    ST_REFRESH_CLAIM,
    ST_REFRESH_USED,
    ST_REFRESH_EXPIRE,
    ST_REVOKE,
    ST_REVOKED,
    ST_REVOCATIONS_LIVE,
    ST_REVOKE_EXPIRE,
    ST_RESET_ENROLLMENTS,
    ST_RESET_USERS,
    ST_RESET_REFRESH,
    ST_RESET_REVOCATIONS,
    /* issue 12 */
    ST_UNENROLL,
    ST_UNENROLL_COUNT,
    ST_MY_COUNT,
    ST_MY_PAGE,
    ST_COURSE_EXISTS,
    ST_MODULE_STATS,
    ST_MODULE_DELETE,
    ST_DURATION_SUM,
    ST_ENROLLED,
    ST_RATING_GET,
    ST_RATING_PUT,
    ST_RATING_APPLY,
    ST_RESET_RATINGS,
    ST__COUNT
};

static const char *const stmt_sql[ST__COUNT] = {
    [ST_BEGIN] = "BEGIN",
    [ST_BEGIN_WRITE] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_PING] = "SELECT count(*) FROM sqlite_schema",
    [ST_GET] = "SELECT " COURSE_READ_COLS " FROM courses WHERE id = ?1",
    [ST_MODULES] = "SELECT id, title, content, duration_minutes, ord FROM modules"
                   " WHERE course_id = ?1 ORDER BY ord, id",
    /* For list items, which are summaries (course.h): no content. */
    [ST_MODULES_SUMMARY] = "SELECT id, title, '', duration_minutes, ord FROM modules"
                           " WHERE course_id = ?1 ORDER BY ord, id",
    /* rating_sum: the stars behind rating, as near as a given rating and
     * count say (seeded courses have no ratings rows). */
    [ST_INSERT_COURSE] = "INSERT INTO courses (" COURSE_COLS ", search_text, rating_sum) VALUES"
                         " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
                         " CAST(round(?9 * ?10) AS INTEGER))",
    [ST_INSERT_MODULE] =
        "INSERT INTO modules (id, course_id, title, content, duration_minutes, ord)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_COUNT_ALL] = "SELECT count(*) FROM courses",
    [ST_RESET_MODULES] = "DELETE FROM modules",
    [ST_RESET_COURSES] = "DELETE FROM courses",
    [ST_UPDATE_COURSE] = "UPDATE courses SET title = ?2, description = ?3, category = ?4,"
                         " difficulty = ?5, tags = ?6, duration_minutes = ?7, published = ?8,"
                         " updated_at = ?9, search_text = ?10, rev = rev + 1 WHERE id = ?1",
    /* NULL keeps a column as it is: the caller binds only flagged fields. */
    [ST_UPDATE_MODULE] = "UPDATE modules SET title = coalesce(?3, title),"
                         " content = coalesce(?4, content),"
                         " duration_minutes = coalesce(?5, duration_minutes),"
                         " ord = coalesce(?6, ord) WHERE id = ?1 AND course_id = ?2",
    [ST_TOUCH_COURSE] = "UPDATE courses SET updated_at = ?2, rev = rev + 1 WHERE id = ?1",
    [ST_DELETE_COURSE] = "DELETE FROM courses WHERE id = ?1", /* modules, enrollments cascade */
    [ST_ENROLL_COUNT] = "UPDATE courses SET enrollment_count = enrollment_count + 1,"
                        " rev = rev + 1 WHERE id = ?1 RETURNING enrollment_count",
    [ST_ENROLL] = "INSERT INTO enrollments (course_id, user_id, created_at) VALUES (?1, ?2, ?3)",
    [ST_USER_INSERT] = "INSERT INTO users (" USER_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_USER_GET] = "SELECT " USER_COLS " FROM users WHERE id = ?1",
    [ST_USER_BY_EMAIL] = "SELECT " USER_COLS " FROM users WHERE email = ?1",
    [ST_USER_UPDATE] = "UPDATE users SET role = coalesce(?2, role),"
                       " password_hash = coalesce(?3, password_hash) WHERE id = ?1",
    [ST_USER_DELETE] = "DELETE FROM users WHERE id = ?1",
    [ST_USER_TOKENS_DELETE] = "DELETE FROM refresh_tokens WHERE user_id = ?1",
    [ST_REFRESH_INSERT] = "INSERT INTO refresh_tokens (jti, user_id, sid, expires_at, used)"
                          " VALUES (?1, ?2, ?3, ?4, 0)",
    [ST_REFRESH_CLAIM] = "UPDATE refresh_tokens SET used = 1"
                         " WHERE jti = ?1 AND used = 0 AND expires_at > ?2",
    [ST_REFRESH_USED] = "SELECT used FROM refresh_tokens WHERE jti = ?1",
    [ST_REFRESH_EXPIRE] = "DELETE FROM refresh_tokens WHERE jti IN (SELECT jti FROM refresh_tokens"
                          " WHERE expires_at <= ?1 LIMIT ?2)",
    [ST_REVOKE] =
        "INSERT INTO revocations (id, expires_at) VALUES (?1, ?2)"
        " ON CONFLICT(id) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)",
    [ST_REVOKED] = "SELECT 1 FROM revocations WHERE id IN (?1, ?2) AND expires_at > ?3 LIMIT 1",
    [ST_REVOCATIONS_LIVE] = "SELECT id, expires_at FROM revocations WHERE expires_at > ?1"
                            " ORDER BY id",
    [ST_REVOKE_EXPIRE] = "DELETE FROM revocations WHERE id IN (SELECT id FROM revocations"
                         " WHERE expires_at <= ?1 LIMIT ?2)",
    [ST_RESET_ENROLLMENTS] = "DELETE FROM enrollments",
    [ST_RESET_USERS] = "DELETE FROM users",
    [ST_RESET_REFRESH] = "DELETE FROM refresh_tokens",
    [ST_RESET_REVOCATIONS] = "DELETE FROM revocations",
    [ST_UNENROLL] = "DELETE FROM enrollments WHERE course_id = ?1 AND user_id = ?2",
    [ST_UNENROLL_COUNT] = "UPDATE courses SET enrollment_count = max(enrollment_count - 1, 0),"
                          " rev = rev + 1 WHERE id = ?1 RETURNING enrollment_count",
    [ST_MY_COUNT] = "SELECT count(*) FROM enrollments WHERE user_id = ?1",
    [ST_MY_PAGE] = "SELECT c.id, c.title, c.description, c.category, c.difficulty, c.tags,"
                   " c.instructor_id, c.duration_minutes, c.rating, c.rating_count,"
                   " c.enrollment_count, c.published, c.created_at, c.updated_at, e.created_at"
                   " FROM enrollments e JOIN courses c ON c.id = e.course_id"
                   " WHERE e.user_id = ?1 ORDER BY e.created_at DESC, e.course_id"
                   " LIMIT ?2 OFFSET ?3",
    [ST_COURSE_EXISTS] = "SELECT 1 FROM courses WHERE id = ?1",
    [ST_MODULE_STATS] = "SELECT count(*), coalesce(max(ord), 0) FROM modules WHERE course_id = ?1",
    [ST_MODULE_DELETE] = "DELETE FROM modules WHERE id = ?1 AND course_id = ?2",
    [ST_DURATION_SUM] = "UPDATE courses SET duration_minutes = (SELECT coalesce(sum("
                        "duration_minutes), 0) FROM modules WHERE course_id = ?1),"
                        " updated_at = ?2, rev = rev + 1 WHERE id = ?1",
    [ST_ENROLLED] = "SELECT 1 FROM enrollments WHERE course_id = ?1 AND user_id = ?2",
    [ST_RATING_GET] = "SELECT stars FROM ratings WHERE course_id = ?1 AND user_id = ?2",
    [ST_RATING_PUT] = "INSERT INTO ratings (course_id, user_id, stars, updated_at)"
                      " VALUES (?1, ?2, ?3, ?4) ON CONFLICT(course_id, user_id) DO UPDATE"
                      " SET stars = excluded.stars, updated_at = excluded.updated_at",
    /* The average in integers, rounded half up as el_rating_average does
     * (the right-hand sides all see the row as it was). */
    [ST_RATING_APPLY] = "UPDATE courses SET rating_sum = rating_sum + ?2,"
                        " rating_count = rating_count + ?3,"
                        " rating = ((rating_sum + ?2) * 20 + (rating_count + ?3))"
                        " / (2 * (rating_count + ?3)) / 10.0, rev = rev + 1 WHERE id = ?1",
    [ST_RESET_RATINGS] = "DELETE FROM ratings",
};

/* List filters: a bit each, so every combination has its own statement
 * (and its own query plan) instead of "(?1 = '' OR category = ?1)", which
 * no index can serve. */
#define F_CATEGORY 1
#define F_DIFFICULTY 2
#define F_SEARCH 4
#define F_PUBLISHED 8
#define F_INSTRUCTOR 16
#define NFILTERS 32
#define NSORTS 4

static const char *const order_sql[NSORTS] = {
    [EL_SORT_RECENT] = "created_at DESC, id",
    [EL_SORT_POPULAR] = "enrollment_count DESC, id",
    [EL_SORT_TOP_RATED] = "rating DESC, id",
    [EL_SORT_DURATION] = "duration_minutes, id",
};

/* One thread's connection. Only that thread touches it, except
 * el_store_close(), which runs when no call is in flight. */
struct conn {
    sqlite3 *db;
    bool writing; /* inside a BEGIN IMMEDIATE transaction */
    sqlite3_stmt *st[ST__COUNT];
    sqlite3_stmt *list[NSORTS][NFILTERS];
    sqlite3_stmt *count[NFILTERS];
    struct sqlite_store *owner;
    struct conn *prev, *next; /* owner->conns, under owner->lock */
};

struct sqlite_store {
    struct el_store base;
    char *path;
    /* The file we opened (see file_check): a write is acknowledged only
     * while path still names it. */
    dev_t dev;
    ino_t ino;
    atomic_int file_gone; /* 1 while path does not name it (logged once) */
    pthread_key_t key;    /* this thread's struct conn */
    pthread_mutex_t lock; /* guards conns only; never held during a query */
    struct conn *conns;
};

static const struct el_store_ops sqlite_ops;

/* SQLite result code -> elearn status. Whatever is not the caller's fault
 * (busy, locked, I/O, full disk, a file gone read-only or corrupt) means
 * the store cannot serve now: EL_EUNAVAIL, which the API answers with 503
 * or a stale cached copy. */
static int map_rc(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return EL_OK;
    case SQLITE_NOMEM:
        return EL_ENOMEM;
    case SQLITE_TOOBIG:
        return EL_ETOOBIG;
    case SQLITE_CONSTRAINT:
        if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
            return EL_ECONFLICT;
        return EL_EINVAL;
    default:
        return EL_EUNAVAIL;
    }
}

/* ---- connections ------------------------------------------------------- */

static void conn_close(struct conn *c)
{
    size_t i, j;

    if (c == NULL)
        return;
    for (i = 0; i < ST__COUNT; i++)
        sqlite3_finalize(c->st[i]);
    for (i = 0; i < NSORTS; i++)
        for (j = 0; j < NFILTERS; j++)
            sqlite3_finalize(c->list[i][j]);
    for (j = 0; j < NFILTERS; j++)
        sqlite3_finalize(c->count[j]);
    sqlite3_close(c->db); /* every statement is finalized: cannot be busy */
    free(c);
}

static void conn_unlink(struct conn *c)
{
    struct sqlite_store *s = c->owner;

    el_must(pthread_mutex_lock(&s->lock));
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    el_must(pthread_mutex_unlock(&s->lock));
}

/* pthread key destructor: the thread is exiting with a connection. */
static void conn_destructor(void *arg)
{
    struct conn *c = arg;

    conn_unlink(c);
    conn_close(c);
}

/* Open a connection to s->path with our per-connection settings. */
static int conn_open(struct sqlite_store *s, struct conn **out, struct el_err *err)
{
    struct conn *c;
    int rc;

    *out = NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return el_err_set(err, EL_ENOMEM, "sqlite: out of memory");
    c->owner = s;
    rc = sqlite3_open_v2(s->path, &c->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rc = el_err_set(err, rc == SQLITE_NOMEM ? EL_ENOMEM : EL_EUNAVAIL,
                        "sqlite: cannot open '%s': %s", s->path,
                        c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, el_store_timeout_ms());
    /* An existing file we may not write is opened read-only without a
     * word; say so now rather than fail every insert later. */
    if (sqlite3_db_readonly(c->db, "main") == 1) {
        rc = el_err_set(err, EL_EUNAVAIL, "sqlite: '%s' is not writable", s->path);
        goto fail;
    }
    rc = sqlite3_exec(c->db, "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;", NULL, NULL,
                      NULL);
    if (rc != SQLITE_OK) {
        /* (map_rc says EL_OK for SQLITE_ROW/DONE: never a failure here.) */
        rc = el_err_set(err, map_rc(rc) != EL_OK ? map_rc(rc) : EL_EUNAVAIL,
                        "sqlite: cannot configure '%s': %s", s->path, sqlite3_errmsg(c->db));
        goto fail;
    }
    *out = c;
    return EL_OK;
fail:
    sqlite3_close(c->db);
    free(c);
    return rc;
}

/* The calling thread's connection, opened on first use. */
static int conn_get(struct sqlite_store *s, struct conn **out, struct el_err *err)
{
    struct conn *c = pthread_getspecific(s->key);
    int rc;

    if (c != NULL) {
        *out = c;
        return EL_OK;
    }
    rc = conn_open(s, &c, err);
    if (rc != EL_OK)
        return rc;
    if (pthread_setspecific(s->key, c) != 0) {
        conn_close(c);
        return el_err_set(err, EL_ENOMEM, "sqlite: out of memory");
    }
    el_must(pthread_mutex_lock(&s->lock));
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    el_must(pthread_mutex_unlock(&s->lock));
    *out = c;
    return EL_OK;
}

/* Prepare *slot once per connection; later calls reuse it. */
static int prepare(struct conn *c, sqlite3_stmt **slot, const char *sql)
{
    if (*slot == NULL) {
        int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL);
        if (rc != SQLITE_OK) {
            sqlite3_finalize(*slot);
            *slot = NULL;
            return map_rc(rc);
        }
    }
    return EL_OK;
}

static int stmt(struct conn *c, enum stmt_id id, sqlite3_stmt **out)
{
    int rc = prepare(c, &c->st[id], stmt_sql[id]);

    *out = c->st[id];
    return rc;
}

/* The store refuses to lie: SQLite keeps writing to the file it opened
 * even when that file has been deleted, replaced or moved -- data nobody
 * will find after a restart. So a write is begun, and acknowledged, only
 * while the path still names the file we opened (same device and inode,
 * one stat(2): about a microsecond next to a write's milliseconds); health
 * pings check the same. Back to normal once the file is back at its path.
 * Reads go on from the open file meanwhile: what they return was true. */
static int file_check(struct sqlite_store *s)
{
    struct stat st;
    int gone = stat(s->path, &st) != 0 || st.st_dev != s->dev || st.st_ino != s->ino;

    if (gone != atomic_exchange(&s->file_gone, gone))
        fprintf(stderr,
                gone ? "store: sqlite: '%s' is no longer the file we opened (deleted, "
                       "moved or replaced): refusing writes until it is back\n"
                     : "store: sqlite: '%s' is back: accepting writes\n",
                s->path);
    return gone ? EL_EUNAVAIL : EL_OK;
}

/* Run a statement that returns no rows we need, and reset it. */
static int exec_stmt(struct conn *c, enum stmt_id id)
{
    sqlite3_stmt *st;
    int rc;

    if (id == ST_BEGIN_WRITE) {
        if ((rc = file_check(c->owner)) != EL_OK)
            return rc;
        c->writing = true;
    }
    rc = stmt(c, id, &st);

    if (rc != EL_OK)
        return rc;
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? EL_OK : map_rc(rc);
}

/* Finish a transaction: commit when rc is EL_OK, else roll back (if SQLite
 * has not already done so after the error). Returns the final status. */
static int tx_end(struct conn *c, int rc)
{
    bool wrote = c->writing;

    c->writing = false;
    if (rc == EL_OK) {
        rc = exec_stmt(c, ST_COMMIT);
        /* Committed into a file that is no longer at its path: lost on the
         * next start, so not acknowledged (see file_check). */
        if (rc == EL_OK)
            return wrote ? file_check(c->owner) : EL_OK;
    }
    if (!sqlite3_get_autocommit(c->db))
        (void)exec_stmt(c, ST_ROLLBACK);
    return rc;
}

/* ---- rows <-> structs -------------------------------------------------- */

/* Heap copy of a text column; a NULL column becomes "". */
static int col_strdup(sqlite3_stmt *st, int i, char **out)
{
    const unsigned char *t;
    int n;

    if (sqlite3_column_type(st, i) == SQLITE_NULL) {
        *out = strdup("");
        return *out ? EL_OK : EL_ENOMEM;
    }
    t = sqlite3_column_text(st, i);
    if (t == NULL)
        return EL_ENOMEM;
    n = sqlite3_column_bytes(st, i);
    *out = malloc((size_t)n + 1);
    if (*out == NULL)
        return EL_ENOMEM;
    memcpy(*out, t, (size_t)n);
    (*out)[n] = '\0';
    return EL_OK;
}

static void col_id(sqlite3_stmt *st, int i, char dst[EL_OID_HEX])
{
    const unsigned char *t = sqlite3_column_text(st, i);

    dst[0] = '\0';
    if (t != NULL && sqlite3_column_bytes(st, i) < EL_OID_HEX)
        memcpy(dst, t, (size_t)sqlite3_column_bytes(st, i) + 1);
}

/* Decode the tags column (a JSON array of strings we wrote). Anything
 * else means the file was edited behind our back: EL_EIO. */
static int tags_decode(const char *json, struct el_course *c)
{
    struct json_object *arr = json_tokener_parse(json);
    size_t i, n;
    int rc = EL_OK;

    if (arr == NULL || !json_object_is_type(arr, json_type_array)) {
        rc = EL_EIO;
        goto out;
    }
    n = json_object_array_length(arr);
    if (n == 0)
        goto out;
    c->tags = calloc(n, sizeof(*c->tags));
    if (c->tags == NULL) {
        rc = EL_ENOMEM;
        goto out;
    }
    for (i = 0; i < n; i++) {
        struct json_object *t = json_object_array_get_idx(arr, i);

        if (!json_object_is_type(t, json_type_string)) {
            rc = EL_EIO;
            goto out;
        }
        c->tags[i] = strdup(json_object_get_string(t));
        if (c->tags[i] == NULL) {
            rc = EL_ENOMEM;
            goto out;
        }
        c->ntags = i + 1;
    }
out:
    json_object_put(arr);
    return rc;
}

/* Fill c from a row of COURSE_COLS. On failure c holds what was copied so
 * far; the caller cleans it up. */
static int row_to_course(sqlite3_stmt *st, struct el_course *c)
{
    const char *tags;
    int rc;

    col_id(st, 0, c->id);
    if ((rc = col_strdup(st, 1, &c->title)) != EL_OK ||
        (rc = col_strdup(st, 2, &c->description)) != EL_OK ||
        (rc = col_strdup(st, 3, &c->category)) != EL_OK ||
        (rc = col_strdup(st, 4, &c->difficulty)) != EL_OK)
        return rc;
    tags = (const char *)sqlite3_column_text(st, 5);
    if ((rc = tags_decode(tags ? tags : "[]", c)) != EL_OK)
        return rc;
    col_id(st, 6, c->instructor_id);
    c->duration_minutes = sqlite3_column_int(st, 7);
    c->rating = sqlite3_column_double(st, 8);
    c->rating_count = sqlite3_column_int(st, 9);
    c->enrollment_count = sqlite3_column_int(st, 10);
    c->published = sqlite3_column_int(st, 11) != 0;
    c->created_at = sqlite3_column_int64(st, 12);
    c->updated_at = sqlite3_column_int64(st, 13);
    c->rev = (uint64_t)sqlite3_column_int64(st, 14);
    return EL_OK;
}

/* Read c's modules (ordered by ord, then id) into c; for a summary with
 * every content "". */
static int load_modules(struct conn *c, struct el_course *course, bool summary)
{
    sqlite3_stmt *st;
    size_t cap = 0;
    int rc = stmt(c, summary ? ST_MODULES_SUMMARY : ST_MODULES, &st);

    if (rc != EL_OK)
        return rc;
    if ((rc = map_rc(sqlite3_bind_text(st, 1, course->id, -1, SQLITE_STATIC))) != EL_OK)
        goto out;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct el_module *m;

        if (course->nmodules == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            struct el_module *p = realloc(course->modules, ncap * sizeof(*p));
            if (p == NULL) {
                rc = EL_ENOMEM;
                goto out;
            }
            course->modules = p;
            cap = ncap;
        }
        m = &course->modules[course->nmodules];
        memset(m, 0, sizeof(*m));
        course->nmodules++; /* counted now so cleanup frees a half-filled one */
        col_id(st, 0, m->id);
        if ((rc = col_strdup(st, 1, &m->title)) != EL_OK ||
            (rc = col_strdup(st, 2, &m->content)) != EL_OK)
            goto out;
        m->duration_minutes = sqlite3_column_int(st, 3);
        m->order = sqlite3_column_int(st, 4);
    }
    rc = map_rc(rc);
out:
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

/* ASCII-lowercase copy of s into dst (n bytes), the fold both search_text
 * and the needle get. */
static void fold(char *dst, const char *s, size_t n)
{
    el_ascii_lower(dst, s, n);
}

/* Build search_text for c (see the file header). Caller frees *out. */
static int search_text(const struct el_course *c, char **out, size_t *outlen)
{
    const char *title = c->title ? c->title : "";
    const char *desc = c->description ? c->description : "";
    size_t n = strlen(title) + 1 + strlen(desc), i, off;
    char *p;

    for (i = 0; i < c->ntags; i++)
        n += 1 + (c->tags[i] ? strlen(c->tags[i]) : 0);
    p = malloc(n);
    if (p == NULL)
        return EL_ENOMEM;
    off = strlen(title);
    fold(p, title, off);
    p[off++] = (char)SEP;
    fold(p + off, desc, strlen(desc));
    off += strlen(desc);
    for (i = 0; i < c->ntags; i++) {
        size_t tl = c->tags[i] ? strlen(c->tags[i]) : 0;
        p[off++] = (char)SEP;
        fold(p + off, c->tags[i], tl);
        off += tl;
    }
    *out = p;
    *outlen = n;
    return EL_OK;
}

/* The tags as a JSON array string; caller frees. */
static int tags_encode(const struct el_course *c, char **out)
{
    struct json_object *arr = json_object_new_array_ext((int)c->ntags);
    const char *s;
    int rc = EL_ENOMEM;

    *out = NULL;
    if (arr == NULL)
        return EL_ENOMEM;
    for (size_t i = 0; i < c->ntags; i++) {
        struct json_object *t = json_object_new_string(c->tags[i] ? c->tags[i] : "");
        if (t == NULL || json_object_array_add(arr, t) != 0) {
            json_object_put(t);
            goto out;
        }
    }
    s = json_object_to_json_string_ext(arr,
                                       JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    if (s != NULL && (*out = strdup(s)) != NULL)
        rc = EL_OK;
out:
    json_object_put(arr);
    return rc;
}

/* Lowercase copy of a caller's id into dst: ids are stored lowercase, as
 * MongoDB prints ObjectIds, so sorting by id agrees between the stores. */
static void id_lower(char dst[EL_OID_HEX], const char *id)
{
    fold(dst, id, 24);
    dst[24] = '\0';
}

/* ---- operations -------------------------------------------------------- */

static struct sqlite_store *from(struct el_store *s)
{
    return (struct sqlite_store *)s;
}

/* A write transaction on this thread's connection (IMMEDIATE: it takes
 * the write lock now, waiting up to the busy timeout, instead of failing at
 * the first write of a deferred transaction); end it with tx_end. */
static int write_begin(struct el_store *base, struct conn **c)
{
    int rc = conn_get(from(base), c, NULL);

    return rc == EL_OK ? exec_stmt(*c, ST_BEGIN_WRITE) : rc;
}

static int sqlite_ping(struct el_store *base)
{
    struct conn *c;
    int rc = file_check(from(base));

    if (rc == EL_OK)
        rc = conn_get(from(base), &c, NULL);
    if (rc != EL_OK)
        return rc;
    return exec_stmt(c, ST_PING);
}

static int sqlite_version(struct el_store *base, char *out, size_t n)
{
    EL_UNUSED(base);
    snprintf(out, n, "%s", sqlite3_libversion());
    return EL_OK;
}

/* Fetch course id (lowercase hex) and its modules inside the caller's
 * read transaction. */
static int fetch_course(struct conn *c, const char *id, struct el_course *out)
{
    sqlite3_stmt *st;
    int rc = stmt(c, ST_GET, &st);

    if (rc != EL_OK)
        return rc;
    if ((rc = map_rc(sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC))) != EL_OK)
        goto out;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        rc = row_to_course(st, out);
    else
        rc = rc == SQLITE_DONE ? EL_ENOTFOUND : map_rc(rc);
out:
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == EL_OK)
        rc = load_modules(c, out, false);
    return rc;
}

/* End a write transaction that changed course cid: on success read the
 * course back into out (within the transaction, so what was committed),
 * then commit; on any failure roll back and leave out empty. */
static int course_tx_end(struct conn *c, const char *cid, int rc, struct el_course *out)
{
    if (rc == EL_OK)
        rc = fetch_course(c, cid, out);
    rc = tx_end(c, rc);
    if (rc != EL_OK)
        el_course_cleanup(out);
    return rc;
}

static int sqlite_course_get(struct el_store *base, const char *id, struct el_course *out)
{
    char lid[EL_OID_HEX];
    struct conn *c;
    int rc;

    if (!el_oid_valid(id))
        return EL_EINVAL;
    id_lower(lid, id);
    if ((rc = conn_get(from(base), &c, NULL)) != EL_OK)
        return rc;
    /* One read transaction, so a concurrent reset or insert is seen
     * entirely or not at all (never a course without its modules). */
    if ((rc = exec_stmt(c, ST_BEGIN)) != EL_OK)
        return rc;
    rc = tx_end(c, fetch_course(c, lid, out));
    if (rc != EL_OK)
        el_course_cleanup(out);
    return rc;
}

/* The list or count statement for this filter combination and sort,
 * built and prepared on first use. */
static int list_stmt(struct conn *c, int filters, enum el_sort sort, bool count, sqlite3_stmt **out)
{
    sqlite3_stmt **slot = count ? &c->count[filters] : &c->list[sort][filters];
    char sql[768];
    int n, rc;

    *out = NULL;
    if (*slot == NULL) {
        n = snprintf(
            sql, sizeof(sql), "SELECT %s FROM courses WHERE 1%s%s%s%s%s%s%s%s",
            count ? "count(*)" : COURSE_READ_COLS, filters & F_CATEGORY ? " AND category = ?1" : "",
            filters & F_DIFFICULTY ? " AND difficulty = ?2" : "",
            filters & F_SEARCH ? " AND instr(search_text, ?3) > 0" : "",
            filters & F_PUBLISHED ? " AND published = 1" : "",
            filters & F_INSTRUCTOR ? " AND instructor_id = ?6" : "", count ? "" : " ORDER BY ",
            count ? "" : order_sql[sort], count ? "" : " LIMIT ?4 OFFSET ?5");
        if (n < 0 || (size_t)n >= sizeof(sql))
            return EL_EINVAL; /* cannot happen: the longest form fits */
        if ((rc = prepare(c, slot, sql)) != EL_OK)
            return rc;
    }
    *out = *slot;
    return EL_OK;
}

static int bind_filters(sqlite3_stmt *st, int filters, const struct el_course_query *q,
                        const char *needle, size_t needle_len)
{
    int rc = SQLITE_OK;

    if (filters & F_CATEGORY)
        rc = sqlite3_bind_text(st, 1, q->category, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && (filters & F_DIFFICULTY))
        rc = sqlite3_bind_text(st, 2, q->difficulty, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && (filters & F_SEARCH))
        rc = sqlite3_bind_blob(st, 3, needle, (int)needle_len, SQLITE_STATIC);
    if (rc == SQLITE_OK && (filters & F_INSTRUCTOR))
        rc = sqlite3_bind_text(st, 6, q->instructor_id, -1, SQLITE_STATIC);
    return map_rc(rc);
}

/* Count and read one page inside the caller's read transaction, so total
 * and items describe the same snapshot. */
static int fetch_page(struct conn *c, const struct el_course_query *q, int filters,
                      const char *needle, size_t needle_len, struct el_course_page *out)
{
    sqlite3_stmt *st;
    int rc;

    if ((rc = list_stmt(c, filters, q->sort, true, &st)) != EL_OK)
        return rc;
    rc = bind_filters(st, filters, q, needle, needle_len);
    if (rc == EL_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            out->total = sqlite3_column_int64(st, 0);
            rc = EL_OK;
        } else {
            rc = map_rc(rc == SQLITE_DONE ? SQLITE_CORRUPT : rc);
        }
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != EL_OK)
        return rc;
    if (out->total <= (int64_t)(q->page - 1) * q->page_size)
        return EL_OK; /* past the end: nothing to read */

    if ((rc = list_stmt(c, filters, q->sort, false, &st)) != EL_OK)
        return rc;
    out->items = calloc((size_t)q->page_size, sizeof(*out->items));
    if (out->items == NULL)
        return EL_ENOMEM;
    rc = bind_filters(st, filters, q, needle, needle_len);
    if (rc == EL_OK)
        rc = map_rc(sqlite3_bind_int(st, 4, q->page_size));
    if (rc == EL_OK)
        rc = map_rc(sqlite3_bind_int64(st, 5, (int64_t)(q->page - 1) * q->page_size));
    while (rc == EL_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (out->nitems == (size_t)q->page_size) {
            rc = EL_EIO; /* LIMIT broken: cannot happen */
            break;
        }
        rc = row_to_course(st, &out->items[out->nitems++]);
    }
    if (rc == SQLITE_DONE)
        rc = EL_OK;
    else if (rc > 0)
        rc = map_rc(rc);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    for (size_t i = 0; rc == EL_OK && i < out->nitems; i++)
        rc = load_modules(c, &out->items[i], true);
    return rc;
}

static int sqlite_course_list(struct el_store *base, const struct el_course_query *q,
                              struct el_course_page *out)
{
    char needle[EL_COURSE_SEARCH_MAX + 1];
    size_t needle_len = strnlen(q->search, EL_COURSE_SEARCH_MAX);
    int filters = 0, rc;
    struct conn *c;

    if (q->page < 1 || q->page_size < 1 || q->page_size > EL_COURSE_PAGE_SIZE_MAX ||
        (unsigned)q->sort >= NSORTS)
        return EL_EINVAL;
    if (q->category[0])
        filters |= F_CATEGORY;
    if (q->difficulty[0])
        filters |= F_DIFFICULTY;
    if (q->published_only)
        filters |= F_PUBLISHED;
    if (q->instructor_id[0]) {
        /* Stored lowercase (id_lower); a hand-built query may not be. */
        if (strnlen(q->instructor_id, EL_OID_HEX) != 24 || !el_oid_valid(q->instructor_id))
            return EL_EINVAL;
        for (int i = 0; i < 24; i++)
            if (q->instructor_id[i] >= 'A' && q->instructor_id[i] <= 'F')
                return EL_EINVAL;
        filters |= F_INSTRUCTOR;
    }
    if (needle_len > 0) {
        /* A needle holding the separator could match across fields; valid
         * UTF-8 (all el_course_query_parse lets through) never does. */
        if (memchr(q->search, SEP, needle_len) != NULL)
            return EL_EINVAL;
        fold(needle, q->search, needle_len);
        filters |= F_SEARCH;
    }
    if ((rc = conn_get(from(base), &c, NULL)) != EL_OK)
        return rc;
    if ((rc = exec_stmt(c, ST_BEGIN)) != EL_OK)
        return rc;
    rc = tx_end(c, fetch_page(c, q, filters, needle, needle_len, out));
    if (rc != EL_OK)
        el_course_page_cleanup(out);
    return rc;
}

/* A NULL string field is stored as "" (the JSON shows "" for both). */
static const char *or_empty(const char *s)
{
    return s ? s : "";
}

/* The status of a failed bind, from the connection's last error. */
static int bind_error(struct conn *c)
{
    int rc = map_rc(sqlite3_errcode(c->db));

    return rc == EL_OK ? EL_EINVAL : rc;
}

/* Insert one course row and its modules inside the caller's write
 * transaction. ids are final (generated or lowercased) by now. */
static int insert_rows(struct conn *c, const struct el_course *course, const char *id,
                       const char *instructor, char (*mod_ids)[EL_OID_HEX])
{
    sqlite3_stmt *st;
    char *tags = NULL, *text = NULL;
    size_t text_len = 0;
    int rc, bad;

    if ((rc = tags_encode(course, &tags)) != EL_OK ||
        (rc = search_text(course, &text, &text_len)) != EL_OK)
        goto out;
    if ((rc = stmt(c, ST_INSERT_COURSE, &st)) != EL_OK)
        goto out;
    /* Bind failures (out of memory, too big) are rare; each bind's status
     * is OR-ed in and the connection's error code says which it was. */
    bad = sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    bad |= sqlite3_bind_text(st, 2, or_empty(course->title), -1, SQLITE_STATIC);
    bad |= sqlite3_bind_text(st, 3, or_empty(course->description), -1, SQLITE_STATIC);
    bad |= sqlite3_bind_text(st, 4, or_empty(course->category), -1, SQLITE_STATIC);
    bad |= sqlite3_bind_text(st, 5, or_empty(course->difficulty), -1, SQLITE_STATIC);
    bad |= sqlite3_bind_text(st, 6, tags, -1, SQLITE_STATIC);
    bad |= sqlite3_bind_text(st, 7, instructor, -1, SQLITE_STATIC);
    bad |= sqlite3_bind_int(st, 8, course->duration_minutes);
    bad |= sqlite3_bind_double(st, 9, course->rating);
    bad |= sqlite3_bind_int(st, 10, course->rating_count);
    bad |= sqlite3_bind_int(st, 11, course->enrollment_count);
    bad |= sqlite3_bind_int(st, 12, course->published ? 1 : 0);
    bad |= sqlite3_bind_int64(st, 13, course->created_at);
    bad |= sqlite3_bind_int64(st, 14, course->updated_at);
    bad |= sqlite3_bind_blob64(st, 15, text, text_len, SQLITE_STATIC);
    rc = bad ? bind_error(c) : map_rc(sqlite3_step(st));
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != EL_OK || (rc = stmt(c, ST_INSERT_MODULE, &st)) != EL_OK)
        goto out;
    for (size_t i = 0; rc == EL_OK && i < course->nmodules; i++) {
        const struct el_module *m = &course->modules[i];

        bad = sqlite3_bind_text(st, 1, mod_ids[i], -1, SQLITE_STATIC);
        bad |= sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
        bad |= sqlite3_bind_text(st, 3, or_empty(m->title), -1, SQLITE_STATIC);
        bad |= sqlite3_bind_text(st, 4, or_empty(m->content), -1, SQLITE_STATIC);
        bad |= sqlite3_bind_int(st, 5, m->duration_minutes);
        bad |= sqlite3_bind_int(st, 6, m->order);
        rc = bad ? bind_error(c) : map_rc(sqlite3_step(st));
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
out:
    free(tags);
    free(text);
    return rc;
}

/* Ids the caller gave are validated and stored lowercase; empty ones are
 * generated and written back into the caller's struct (store.h). They are
 * written back even if the insert then fails, so a retry after
 * EL_EUNAVAIL cannot create the course twice. */
static int sqlite_course_insert(struct el_store *base, struct el_course *course)
{
    char id[EL_OID_HEX], instructor[EL_OID_HEX];
    char(*mod_ids)[EL_OID_HEX] = NULL;
    struct conn *c;
    int rc;

    if (course->nmodules > 0 && course->modules == NULL)
        return EL_EINVAL;
    if (course->ntags > 0 && course->tags == NULL)
        return EL_EINVAL;
    if (course->id[0] == '\0')
        el_oid_new(course->id);
    if (!el_oid_valid(course->id))
        return EL_EINVAL;
    id_lower(id, course->id);
    instructor[0] = '\0';
    if (course->instructor_id[0] != '\0') {
        if (!el_oid_valid(course->instructor_id))
            return EL_EINVAL;
        id_lower(instructor, course->instructor_id);
    }
    if (course->nmodules > 0) {
        mod_ids = calloc(course->nmodules, sizeof(*mod_ids));
        if (mod_ids == NULL)
            return EL_ENOMEM;
    }
    for (size_t i = 0; i < course->nmodules; i++) {
        struct el_module *m = &course->modules[i];

        if (m->id[0] == '\0')
            el_oid_new(m->id);
        if (!el_oid_valid(m->id)) {
            rc = EL_EINVAL;
            goto out;
        }
        id_lower(mod_ids[i], m->id);
    }
    if ((rc = write_begin(base, &c)) != EL_OK)
        goto out;
    rc = tx_end(c, insert_rows(c, course, id, instructor, mod_ids));
    if (rc == EL_OK)
        course->rev = 1; /* the column's default */
out:
    free(mod_ids);
    return rc;
}

static int sqlite_course_count(struct el_store *base, int64_t *n)
{
    sqlite3_stmt *st;
    struct conn *c;
    int rc;

    if ((rc = conn_get(from(base), &c, NULL)) != EL_OK ||
        (rc = stmt(c, ST_COUNT_ALL, &st)) != EL_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *n = sqlite3_column_int64(st, 0);
        rc = EL_OK;
    } else {
        rc = map_rc(rc == SQLITE_DONE ? SQLITE_CORRUPT : rc);
    }
    sqlite3_reset(st);
    return rc;
}

static int sqlite_reset(struct el_store *base)
{
    struct conn *c;
    int rc;

    if ((rc = write_begin(base, &c)) != EL_OK)
        return rc;
    rc = exec_stmt(c, ST_RESET_RATINGS);
    if (rc == EL_OK)
        rc = exec_stmt(c, ST_RESET_ENROLLMENTS);
    if (rc == EL_OK)
        rc = exec_stmt(c, ST_RESET_MODULES);
    if (rc == EL_OK)
        rc = exec_stmt(c, ST_RESET_COURSES);
    if (rc == EL_OK)
        rc = exec_stmt(c, ST_RESET_USERS);
    if (rc == EL_OK)
        rc = exec_stmt(c, ST_RESET_REFRESH);
    if (rc == EL_OK)
        rc = exec_stmt(c, ST_RESET_REVOCATIONS);
    return tx_end(c, rc);
}

/* ---- course writes --------------------------------------------- */

/* Finish a statement that returns no row we need: step it unless a bind
 * failed (bad is the OR of the binds' results), then reset it. */
static int step_once(struct conn *c, sqlite3_stmt *st, int bad)
{
    /* A write outside a transaction is checked like a transaction's
     * (see file_check). */
    bool alone = sqlite3_get_autocommit(c->db) && !sqlite3_stmt_readonly(st);
    int rc = alone && !bad ? file_check(c->owner) : EL_OK;

    if (rc == EL_OK)
        rc = bad ? bind_error(c) : map_rc(sqlite3_step(st));
    if (rc == EL_OK && alone)
        rc = file_check(c->owner);

    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

/* Validate a caller's ObjectId and lowercase it into dst. */
static int take_id(char dst[EL_OID_HEX], const char *id)
{
    if (id == NULL || !el_oid_valid(id))
        return EL_EINVAL;
    id_lower(dst, id);
    return EL_OK;
}

/* Replace *dst with a heap copy of src ("" for NULL). */
static int replace_str(char **dst, const char *src)
{
    char *p = strdup(or_empty(src));

    if (p == NULL)
        return EL_ENOMEM;
    free(*dst);
    *dst = p;
    return EL_OK;
}

#define COURSE_PATCH_FIELDS                                                                        \
    (EL_CF_TITLE | EL_CF_DESCRIPTION | EL_CF_CATEGORY | EL_CF_DIFFICULTY | EL_CF_TAGS |            \
     EL_CF_DURATION | EL_CF_PUBLISHED)
#define MODULE_PATCH_FIELDS (EL_MF_TITLE | EL_MF_CONTENT | EL_MF_DURATION | EL_MF_ORDER)

/* Apply the flagged fields of p to c in memory. */
static int patch_course(struct el_course *c, const struct el_course_patch *p)
{
    const struct el_course *v = &p->c;
    int rc = EL_OK;

    if ((p->fields & EL_CF_TITLE) && (rc = replace_str(&c->title, v->title)) != EL_OK)
        return rc;
    if ((p->fields & EL_CF_DESCRIPTION) &&
        (rc = replace_str(&c->description, v->description)) != EL_OK)
        return rc;
    if ((p->fields & EL_CF_CATEGORY) && (rc = replace_str(&c->category, v->category)) != EL_OK)
        return rc;
    if ((p->fields & EL_CF_DIFFICULTY) &&
        (rc = replace_str(&c->difficulty, v->difficulty)) != EL_OK)
        return rc;
    if (p->fields & EL_CF_TAGS) {
        char **tags = v->ntags ? calloc(v->ntags, sizeof(*tags)) : NULL;
        size_t i;

        if (v->ntags && tags == NULL)
            return EL_ENOMEM;
        for (i = 0; i < v->ntags; i++) {
            if ((tags[i] = strdup(or_empty(v->tags[i]))) == NULL) {
                while (i > 0)
                    free(tags[--i]);
                free(tags);
                return EL_ENOMEM;
            }
        }
        for (i = 0; i < c->ntags; i++)
            free(c->tags[i]);
        free(c->tags);
        c->tags = tags;
        c->ntags = v->ntags;
    }
    if (p->fields & EL_CF_DURATION)
        c->duration_minutes = v->duration_minutes;
    if (p->fields & EL_CF_PUBLISHED)
        c->published = v->published;
    return EL_OK;
}

/* Write c's mutable columns (and search_text, which derives from them)
 * inside the caller's write transaction. */
static int write_course(struct conn *c, const struct el_course *course, int64_t now_ms)
{
    sqlite3_stmt *st;
    char *tags = NULL, *text = NULL;
    size_t text_len = 0;
    int rc, bad;

    if ((rc = tags_encode(course, &tags)) != EL_OK ||
        (rc = search_text(course, &text, &text_len)) != EL_OK ||
        (rc = stmt(c, ST_UPDATE_COURSE, &st)) != EL_OK)
        goto out;
    bad = sqlite3_bind_text(st, 1, course->id, -1, SQLITE_STATIC);
    bad |= sqlite3_bind_text(st, 2, or_empty(course->title), -1, SQLITE_STATIC);
    bad |= sqlite3_bind_text(st, 3, or_empty(course->description), -1, SQLITE_STATIC);
    bad |= sqlite3_bind_text(st, 4, or_empty(course->category), -1, SQLITE_STATIC);
    bad |= sqlite3_bind_text(st, 5, or_empty(course->difficulty), -1, SQLITE_STATIC);
    bad |= sqlite3_bind_text(st, 6, tags, -1, SQLITE_STATIC);
    bad |= sqlite3_bind_int(st, 7, course->duration_minutes);
    bad |= sqlite3_bind_int(st, 8, course->published ? 1 : 0);
    bad |= sqlite3_bind_int64(st, 9, now_ms);
    bad |= sqlite3_bind_blob64(st, 10, text, text_len, SQLITE_STATIC);
    rc = step_once(c, st, bad);
    if (rc == EL_OK && sqlite3_changes(c->db) != 1)
        rc = EL_ENOTFOUND; /* cannot happen: the row was read in this transaction */
out:
    free(tags);
    free(text);
    return rc;
}

/* Read, patch and write back in one write transaction, then read the
 * result again so *out is exactly what is stored. */
static int sqlite_course_update(struct el_store *base, const char *id,
                                const struct el_course_patch *p, int64_t now_ms,
                                struct el_course *out)
{
    char lid[EL_OID_HEX];
    struct conn *c;
    int rc;

    if ((rc = take_id(lid, id)) != EL_OK)
        return rc;
    /* The module list is set on create only (course.h). */
    if (p->fields & ~(unsigned)COURSE_PATCH_FIELDS)
        return EL_EINVAL;
    if ((p->fields & EL_CF_TAGS) && p->c.ntags > 0 && p->c.tags == NULL)
        return EL_EINVAL;
    if ((rc = write_begin(base, &c)) != EL_OK)
        return rc;
    rc = fetch_course(c, lid, out);
    if (rc == EL_OK)
        rc = patch_course(out, p);
    if (rc == EL_OK)
        rc = write_course(c, out, now_ms);
    if (rc == EL_OK)
        el_course_cleanup(out); /* the patched copy: read back what was committed */
    return course_tx_end(c, lid, rc, out);
}

/* The module rule (store.h): the course's duration_minutes becomes the sum
 * of its modules', and updated_at now_ms, in the caller's transaction. */
static int sum_duration(struct conn *c, const char *cid, int64_t now_ms)
{
    sqlite3_stmt *st;
    int rc = stmt(c, ST_DURATION_SUM, &st), bad;

    if (rc != EL_OK)
        return rc;
    bad = sqlite3_bind_text(st, 1, cid, -1, SQLITE_STATIC);
    bad |= sqlite3_bind_int64(st, 2, now_ms);
    return step_once(c, st, bad);
}

/* Update one module's flagged columns and the course's updated_at. */
static int update_module(struct conn *c, const char *cid, const char *mid,
                         const struct el_module_patch *p, int64_t now_ms)
{
    const struct el_module *m = &p->m;
    sqlite3_stmt *st;
    int rc, bad;

    if ((rc = stmt(c, ST_UPDATE_MODULE, &st)) != EL_OK)
        return rc;
    bad = sqlite3_bind_text(st, 1, mid, -1, SQLITE_STATIC);
    bad |= sqlite3_bind_text(st, 2, cid, -1, SQLITE_STATIC);
    bad |= (p->fields & EL_MF_TITLE)
               ? sqlite3_bind_text(st, 3, or_empty(m->title), -1, SQLITE_STATIC)
               : sqlite3_bind_null(st, 3);
    bad |= (p->fields & EL_MF_CONTENT)
               ? sqlite3_bind_text(st, 4, or_empty(m->content), -1, SQLITE_STATIC)
               : sqlite3_bind_null(st, 4);
    bad |= (p->fields & EL_MF_DURATION) ? sqlite3_bind_int(st, 5, m->duration_minutes)
                                        : sqlite3_bind_null(st, 5);
    bad |= (p->fields & EL_MF_ORDER) ? sqlite3_bind_int(st, 6, m->order) : sqlite3_bind_null(st, 6);
    rc = step_once(c, st, bad);
    /* A row counts as changed when it matched, even if no value differs;
     * none means no such module in that course (or no such course). */
    if (rc == EL_OK && sqlite3_changes(c->db) == 0)
        return EL_ENOTFOUND;
    if (rc != EL_OK)
        return rc;
    if (p->fields & EL_MF_DURATION)
        return sum_duration(c, cid, now_ms); /* the module rule (store.h) */
    if ((rc = stmt(c, ST_TOUCH_COURSE, &st)) != EL_OK)
        return rc;
    bad = sqlite3_bind_text(st, 1, cid, -1, SQLITE_STATIC);
    bad |= sqlite3_bind_int64(st, 2, now_ms);
    return step_once(c, st, bad);
}

static int sqlite_module_update(struct el_store *base, const char *course_id, const char *module_id,
                                const struct el_module_patch *p, int64_t now_ms,
                                struct el_course *out)
{
    char cid[EL_OID_HEX], mid[EL_OID_HEX];
    struct conn *c;
    int rc;

    if ((rc = take_id(cid, course_id)) != EL_OK || (rc = take_id(mid, module_id)) != EL_OK)
        return rc;
    if (p->fields & ~(unsigned)MODULE_PATCH_FIELDS)
        return EL_EINVAL;
    if ((rc = write_begin(base, &c)) != EL_OK)
        return rc;
    rc = update_module(c, cid, mid, p, now_ms);
    return course_tx_end(c, cid, rc, out);
}

/* One statement: its modules and enrollments go with it (ON DELETE
 * CASCADE, foreign_keys is on for every connection). */
static int sqlite_course_delete(struct el_store *base, const char *id)
{
    char lid[EL_OID_HEX];
    sqlite3_stmt *st;
    struct conn *c;
    int rc;

    if ((rc = take_id(lid, id)) != EL_OK)
        return rc;
    if ((rc = conn_get(from(base), &c, NULL)) != EL_OK ||
        (rc = stmt(c, ST_DELETE_COURSE, &st)) != EL_OK)
        return rc;
    rc = step_once(c, st, sqlite3_bind_text(st, 1, lid, -1, SQLITE_STATIC));
    if (rc == EL_OK && sqlite3_changes(c->db) == 0)
        rc = EL_ENOTFOUND;
    return rc;
}

/* Count first (which also proves the course exists), then record the
 * enrollment: its primary key refuses a second one, and the rollback takes
 * the increment back. */
static int enroll_rows(struct conn *c, const char *cid, const char *uid, int64_t *count)
{
    sqlite3_stmt *st;
    int rc, bad;

    if ((rc = stmt(c, ST_ENROLL_COUNT, &st)) != EL_OK)
        return rc;
    if (sqlite3_bind_text(st, 1, cid, -1, SQLITE_STATIC) != SQLITE_OK) {
        rc = bind_error(c);
    } else {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *count = sqlite3_column_int64(st, 0);
            rc = EL_OK;
        } else {
            rc = rc == SQLITE_DONE ? EL_ENOTFOUND : map_rc(rc);
        }
    }
    sqlite3_reset(st); /* completes the UPDATE ... RETURNING */
    sqlite3_clear_bindings(st);
    if (rc != EL_OK || (rc = stmt(c, ST_ENROLL, &st)) != EL_OK)
        return rc;
    bad = sqlite3_bind_text(st, 1, cid, -1, SQLITE_STATIC);
    bad |= sqlite3_bind_text(st, 2, uid, -1, SQLITE_STATIC);
    bad |= sqlite3_bind_int64(st, 3, el_wall_ms());
    return step_once(c, st, bad);
}

/* rows (enroll_rows, unenroll_rows) for one student and one course in a
 * write transaction of its own; the course's new count into *count (when
 * not NULL) once committed. */
static int enrollment_write(struct el_store *base, const char *course_id, const char *user_id,
                            int (*rows)(struct conn *, const char *, const char *, int64_t *),
                            int64_t *count)
{
    char cid[EL_OID_HEX], uid[EL_OID_HEX];
    int64_t n = 0;
    struct conn *c;
    int rc;

    if ((rc = take_id(cid, course_id)) != EL_OK || (rc = take_id(uid, user_id)) != EL_OK)
        return rc;
    if ((rc = write_begin(base, &c)) != EL_OK)
        return rc;
    rc = tx_end(c, rows(c, cid, uid, &n));
    if (rc == EL_OK && count)
        *count = n;
    return rc;
}

static int sqlite_enroll(struct el_store *base, const char *course_id, const char *user_id,
                         int64_t *count)
{
    return enrollment_write(base, course_id, user_id, enroll_rows, count);
}

/* ---- users --------------------------------------------------------------- */

static int row_to_user(sqlite3_stmt *st, struct el_user *u)
{
    const unsigned char *role;
    int rc;

    col_id(st, 0, u->id);
    if ((rc = col_strdup(st, 1, &u->email)) != EL_OK ||
        (rc = col_strdup(st, 2, &u->name)) != EL_OK ||
        (rc = col_strdup(st, 4, &u->password_hash)) != EL_OK)
        return rc;
    role = sqlite3_column_text(st, 3);
    snprintf(u->role, sizeof(u->role), "%s", role ? (const char *)role : "");
    u->created_at = sqlite3_column_int64(st, 5);
    return EL_OK;
}

/* One user by the key statement `which` selects on. */
static int fetch_user(struct el_store *base, enum stmt_id which, const char *key,
                      struct el_user *out)
{
    sqlite3_stmt *st;
    struct conn *c;
    int rc;

    if ((rc = conn_get(from(base), &c, NULL)) != EL_OK || (rc = stmt(c, which, &st)) != EL_OK)
        return rc;
    if (sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC) != SQLITE_OK) {
        rc = bind_error(c);
    } else {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            rc = row_to_user(st, out);
        else
            rc = rc == SQLITE_DONE ? EL_ENOTFOUND : map_rc(rc);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != EL_OK)
        el_user_cleanup(out);
    return rc;
}

static int role_ok(const char *role)
{
    size_t n = strnlen(role, EL_ROLE_MAX);

    return n > 0 && n < EL_ROLE_MAX;
}

/* Like a course id, a user id given by the caller is validated and stored
 * lowercase, and a generated one is written back. */
static int sqlite_user_insert(struct el_store *base, struct el_user *u)
{
    char id[EL_OID_HEX];
    sqlite3_stmt *st;
    struct conn *c;
    int rc, bad;

    if (u->email == NULL || u->email[0] == '\0' || strlen(u->email) > EL_EMAIL_MAX ||
        u->password_hash == NULL || !role_ok(u->role))
        return EL_EINVAL;
    if (u->id[0] == '\0')
        el_oid_new(u->id);
    if ((rc = take_id(id, u->id)) != EL_OK)
        return rc;
    if (u->created_at == 0)
        u->created_at = el_wall_ms();
    if ((rc = conn_get(from(base), &c, NULL)) != EL_OK ||
        (rc = stmt(c, ST_USER_INSERT, &st)) != EL_OK)
        return rc;
    bad = sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    bad |= sqlite3_bind_text(st, 2, u->email, -1, SQLITE_STATIC);
    bad |= sqlite3_bind_text(st, 3, or_empty(u->name), -1, SQLITE_STATIC);
    bad |= sqlite3_bind_text(st, 4, u->role, -1, SQLITE_STATIC);
    bad |= sqlite3_bind_text(st, 5, u->password_hash, -1, SQLITE_STATIC);
    bad |= sqlite3_bind_int64(st, 6, u->created_at);
    return step_once(c, st, bad); /* a taken id or email: EL_ECONFLICT */
}

static int sqlite_user_get(struct el_store *base, const char *id, struct el_user *out)
{
    char lid[EL_OID_HEX];
    int rc;

    if ((rc = take_id(lid, id)) != EL_OK)
        return rc;
    return fetch_user(base, ST_USER_GET, lid, out);
}

static int sqlite_user_get_by_email(struct el_store *base, const char *email, struct el_user *out)
{
    if (email == NULL)
        return EL_EINVAL;
    return fetch_user(base, ST_USER_BY_EMAIL, email, out);
}

static int sqlite_user_update(struct el_store *base, const char *id, const char *role,
                              const char *password_hash)
{
    char lid[EL_OID_HEX];
    sqlite3_stmt *st;
    struct conn *c;
    int rc, bad;

    if ((rc = take_id(lid, id)) != EL_OK)
        return rc;
    if (role != NULL && !role_ok(role))
        return EL_EINVAL;
    if ((rc = conn_get(from(base), &c, NULL)) != EL_OK ||
        (rc = stmt(c, ST_USER_UPDATE, &st)) != EL_OK)
        return rc;
    bad = sqlite3_bind_text(st, 1, lid, -1, SQLITE_STATIC);
    bad |= role ? sqlite3_bind_text(st, 2, role, -1, SQLITE_STATIC) : sqlite3_bind_null(st, 2);
    bad |= password_hash ? sqlite3_bind_text(st, 3, password_hash, -1, SQLITE_STATIC)
                         : sqlite3_bind_null(st, 3);
    rc = step_once(c, st, bad);
    if (rc == EL_OK && sqlite3_changes(c->db) == 0)
        rc = EL_ENOTFOUND;
    return rc;
}

/* Run statement which with one text parameter; *changes gets the rows it
 * changed. */
static int exec_with_id(struct conn *c, enum stmt_id which, const char *id, int *changes)
{
    sqlite3_stmt *st;
    int rc = stmt(c, which, &st);

    if (rc != EL_OK)
        return rc;
    rc = step_once(c, st, sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC));
    if (changes)
        *changes = rc == EL_OK ? sqlite3_changes(c->db) : 0;
    return rc;
}

/* The user's refresh tokens go too: a deleted account cannot renew its
 * access, whatever the caller does next. */
static int sqlite_user_delete(struct el_store *base, const char *id)
{
    char lid[EL_OID_HEX];
    struct conn *c;
    int rc, n = 0;

    if ((rc = take_id(lid, id)) != EL_OK)
        return rc;
    if ((rc = write_begin(base, &c)) != EL_OK)
        return rc;
    rc = exec_with_id(c, ST_USER_DELETE, lid, &n);
    if (rc == EL_OK && n == 0)
        rc = EL_ENOTFOUND;
    if (rc == EL_OK)
        rc = exec_with_id(c, ST_USER_TOKENS_DELETE, lid, NULL);
    return tx_end(c, rc);
}

/* ---- refresh tokens and revocations -------------------------------------- */

/* A jti, sid or revoked id: 1 to TOKEN_ID_MAX printable ASCII bytes. */
static int token_id_ok(const char *s)
{
    size_t n;

    if (s == NULL)
        return 0;
    n = strnlen(s, TOKEN_ID_MAX + 1);
    if (n == 0 || n > TOKEN_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return 0;
    return 1;
}

/* Delete up to HOUSEKEEP_BATCH rows that expired by the wall clock, with
 * statement which (inside the caller's write transaction). Bounded, so a
 * backlog costs each call a little, never one call a lot. */
static int housekeep(struct conn *c, enum stmt_id which)
{
    sqlite3_stmt *st;
    int rc = stmt(c, which, &st), bad;

    if (rc != EL_OK)
        return rc;
    bad = sqlite3_bind_int64(st, 1, el_wall_ms());
    bad |= sqlite3_bind_int(st, 2, HOUSEKEEP_BATCH);
    return step_once(c, st, bad);
}

static int sqlite_refresh_insert(struct el_store *base, const char *jti, const char *user_id,
                                 const char *sid, int64_t expires_ms)
{
    char uid[EL_OID_HEX];
    sqlite3_stmt *st;
    struct conn *c;
    int rc, bad;

    if (!token_id_ok(jti) || !token_id_ok(sid) || take_id(uid, user_id) != EL_OK)
        return EL_EINVAL;
    if ((rc = write_begin(base, &c)) != EL_OK)
        return rc;
    if ((rc = stmt(c, ST_REFRESH_INSERT, &st)) == EL_OK) {
        bad = sqlite3_bind_text(st, 1, jti, -1, SQLITE_STATIC);
        bad |= sqlite3_bind_text(st, 2, uid, -1, SQLITE_STATIC);
        bad |= sqlite3_bind_text(st, 3, sid, -1, SQLITE_STATIC);
        bad |= sqlite3_bind_int64(st, 4, expires_ms);
        rc = step_once(c, st, bad);
    }
    if (rc == EL_OK)
        rc = housekeep(c, ST_REFRESH_EXPIRE);
    return tx_end(c, rc);
}

/* The claim is one UPDATE guarded by used = 0, so of any number of
 * concurrent claims -- from any thread or process -- exactly one changes
 * the row. The others then find out why theirs did not. */
static int sqlite_refresh_claim(struct el_store *base, const char *jti, int64_t now_ms)
{
    sqlite3_stmt *st;
    struct conn *c;
    int rc, bad;

    if (!token_id_ok(jti))
        return EL_EINVAL;
    if ((rc = conn_get(from(base), &c, NULL)) != EL_OK ||
        (rc = stmt(c, ST_REFRESH_CLAIM, &st)) != EL_OK)
        return rc;
    bad = sqlite3_bind_text(st, 1, jti, -1, SQLITE_STATIC);
    bad |= sqlite3_bind_int64(st, 2, now_ms);
    if ((rc = step_once(c, st, bad)) != EL_OK)
        return rc;
    if (sqlite3_changes(c->db) == 1)
        return EL_OK;
    if ((rc = stmt(c, ST_REFRESH_USED, &st)) != EL_OK)
        return rc;
    if (sqlite3_bind_text(st, 1, jti, -1, SQLITE_STATIC) != SQLITE_OK) {
        rc = bind_error(c);
    } else {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) /* used: reuse; unused: expired */
            rc = sqlite3_column_int(st, 0) ? EL_ECONFLICT : EL_ENOTFOUND;
        else
            rc = rc == SQLITE_DONE ? EL_ENOTFOUND : map_rc(rc);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static int sqlite_revoke(struct el_store *base, const char *id, int64_t expires_ms)
{
    sqlite3_stmt *st;
    struct conn *c;
    int rc, bad;

    if (!token_id_ok(id))
        return EL_EINVAL;
    if ((rc = write_begin(base, &c)) != EL_OK)
        return rc;
    if ((rc = stmt(c, ST_REVOKE, &st)) == EL_OK) {
        bad = sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        bad |= sqlite3_bind_int64(st, 2, expires_ms);
        rc = step_once(c, st, bad);
    }
    if (rc == EL_OK)
        rc = housekeep(c, ST_REVOKE_EXPIRE);
    return tx_end(c, rc);
}

static int sqlite_revoked(struct el_store *base, const char *jti, const char *sid, int64_t now_ms,
                          int *revoked)
{
    sqlite3_stmt *st;
    struct conn *c;
    int rc, bad;

    *revoked = 0;
    if ((jti != NULL && !token_id_ok(jti)) || (sid != NULL && !token_id_ok(sid)))
        return EL_EINVAL;
    if (jti == NULL && sid == NULL)
        return EL_OK;
    if ((rc = conn_get(from(base), &c, NULL)) != EL_OK || (rc = stmt(c, ST_REVOKED, &st)) != EL_OK)
        return rc;
    /* A NULL parameter matches nothing in "id IN (?1, ?2)". */
    bad = jti ? sqlite3_bind_text(st, 1, jti, -1, SQLITE_STATIC) : sqlite3_bind_null(st, 1);
    bad |= sid ? sqlite3_bind_text(st, 2, sid, -1, SQLITE_STATIC) : sqlite3_bind_null(st, 2);
    bad |= sqlite3_bind_int64(st, 3, now_ms);
    if (bad) {
        rc = bind_error(c);
    } else {
        rc = sqlite3_step(st);
        *revoked = rc == SQLITE_ROW;
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? EL_OK : map_rc(rc);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

struct revocation {
    char id[TOKEN_ID_MAX + 1];
    int64_t expires_ms;
};

/* Read the live revocations into a heap array (*out, *n). */
static int read_live(struct conn *c, int64_t now_ms, struct revocation **out, size_t *n)
{
    sqlite3_stmt *st;
    size_t cap = 0;
    int rc = stmt(c, ST_REVOCATIONS_LIVE, &st);

    if (rc != EL_OK)
        return rc;
    if (sqlite3_bind_int64(st, 1, now_ms) != SQLITE_OK) {
        rc = bind_error(c);
        goto out;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *id = sqlite3_column_text(st, 0);

        if (id == NULL) {
            rc = EL_ENOMEM;
            goto out;
        }
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 32;
            struct revocation *p = realloc(*out, ncap * sizeof(*p));

            if (p == NULL) {
                rc = EL_ENOMEM;
                goto out;
            }
            *out = p;
            cap = ncap;
        }
        snprintf((*out)[*n].id, sizeof((*out)[*n].id), "%s", (const char *)id);
        (*out)[*n].expires_ms = sqlite3_column_int64(st, 1);
        (*n)++;
    }
    rc = map_rc(rc);
out:
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

/* The rows are copied out and the read transaction ended before fn runs:
 * fn may take its time (it writes to Redis) or call the store itself
 * without holding a snapshot or a statement open meanwhile. */
static int sqlite_revocations_live(struct el_store *base, int64_t now_ms,
                                   int (*fn)(const char *id, int64_t expires_ms, void *arg),
                                   void *arg)
{
    struct revocation *live = NULL;
    size_t n = 0;
    struct conn *c;
    int rc;

    if (fn == NULL)
        return EL_EINVAL;
    if ((rc = conn_get(from(base), &c, NULL)) != EL_OK)
        return rc;
    if ((rc = exec_stmt(c, ST_BEGIN)) != EL_OK)
        return rc;
    rc = tx_end(c, read_live(c, now_ms, &live, &n));
    for (size_t i = 0; rc == EL_OK && i < n; i++)
        rc = fn(live[i].id, live[i].expires_ms, arg);
    free(live);
    return rc;
}

/* ---- issue 12: unenroll, my learning, modules, ratings ------------------- */

/* Step a statement expected to return at most one row whose first column
 * is an integer: *v gets it and *found 1, or *found 0 when there is none. */
static int step_int(struct conn *c, sqlite3_stmt *st, int bad, int64_t *v, int *found)
{
    int rc;

    *found = 0;
    if (bad) {
        rc = bind_error(c);
    } else {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *v = sqlite3_column_int64(st, 0);
            *found = 1;
            rc = EL_OK;
        } else {
            rc = rc == SQLITE_DONE ? EL_OK : map_rc(rc);
        }
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

/* Bind (?1, ?2) = (a, b) to statement which and step it for one integer. */
static int pair_int(struct conn *c, enum stmt_id which, const char *a, const char *b, int64_t *v,
                    int *found)
{
    sqlite3_stmt *st;
    int rc = stmt(c, which, &st), bad;

    if (rc != EL_OK)
        return rc;
    bad = sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    if (b)
        bad |= sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    return step_int(c, st, bad, v, found);
}

static int unenroll_rows(struct conn *c, const char *cid, const char *uid, int64_t *count)
{
    sqlite3_stmt *st;
    int rc, found, bad;

    if ((rc = stmt(c, ST_UNENROLL, &st)) != EL_OK)
        return rc;
    bad = sqlite3_bind_text(st, 1, cid, -1, SQLITE_STATIC);
    bad |= sqlite3_bind_text(st, 2, uid, -1, SQLITE_STATIC);
    if ((rc = step_once(c, st, bad)) != EL_OK)
        return rc;
    if (sqlite3_changes(c->db) == 0)
        return EL_ENOTFOUND;
    if ((rc = pair_int(c, ST_UNENROLL_COUNT, cid, NULL, count, &found)) != EL_OK)
        return rc;
    return found ? EL_OK : EL_ENOTFOUND;
}

static int sqlite_unenroll(struct el_store *base, const char *course_id, const char *user_id,
                           int64_t *count)
{
    return enrollment_write(base, course_id, user_id, unenroll_rows, count);
}

static int my_page(struct conn *c, const char *uid, int page, int page_size,
                   struct el_enrollment_page *out)
{
    sqlite3_stmt *st;
    int rc, found, bad;

    if ((rc = pair_int(c, ST_MY_COUNT, uid, NULL, &out->total, &found)) != EL_OK)
        return rc;
    if (out->total <= (int64_t)(page - 1) * page_size)
        return EL_OK;
    out->items = calloc((size_t)page_size, sizeof(*out->items));
    out->enrolled_at = calloc((size_t)page_size, sizeof(*out->enrolled_at));
    if (out->items == NULL || out->enrolled_at == NULL)
        return EL_ENOMEM;
    if ((rc = stmt(c, ST_MY_PAGE, &st)) != EL_OK)
        return rc;
    bad = sqlite3_bind_text(st, 1, uid, -1, SQLITE_STATIC);
    bad |= sqlite3_bind_int(st, 2, page_size);
    bad |= sqlite3_bind_int64(st, 3, (int64_t)(page - 1) * page_size);
    rc = bad ? bind_error(c) : EL_OK;
    while (rc == EL_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (out->nitems == (size_t)page_size) {
            rc = EL_EIO; /* LIMIT broken: cannot happen */
            break;
        }
        out->enrolled_at[out->nitems] = sqlite3_column_int64(st, 14);
        rc = row_to_course(st, &out->items[out->nitems++]);
    }
    if (rc == SQLITE_DONE)
        rc = EL_OK;
    else if (rc > 0)
        rc = map_rc(rc);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static int sqlite_enrollments(struct el_store *base, const char *user_id, int page, int page_size,
                              struct el_enrollment_page *out)
{
    char uid[EL_OID_HEX];
    struct conn *c;
    int rc;

    if ((rc = take_id(uid, user_id)) != EL_OK)
        return rc;
    if ((rc = conn_get(from(base), &c, NULL)) != EL_OK)
        return rc;
    if ((rc = exec_stmt(c, ST_BEGIN)) != EL_OK)
        return rc;
    rc = tx_end(c, my_page(c, uid, page, page_size, out));
    if (rc != EL_OK)
        el_enrollment_page_cleanup(out);
    return rc;
}

/* Insert m as the course's last module (or at m->order) and apply the
 * module rule, inside the caller's write transaction. */
static int add_module_rows(struct conn *c, const char *cid, struct el_module *m, int64_t now_ms)
{
    sqlite3_stmt *st;
    int64_t n = 0;
    int rc, found, bad;

    if ((rc = pair_int(c, ST_COURSE_EXISTS, cid, NULL, &n, &found)) != EL_OK)
        return rc;
    if (!found)
        return EL_ENOTFOUND;
    if ((rc = stmt(c, ST_MODULE_STATS, &st)) != EL_OK)
        return rc;
    if (sqlite3_bind_text(st, 1, cid, -1, SQLITE_STATIC) != SQLITE_OK)
        return bind_error(c);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        n = sqlite3_column_int64(st, 0);
        if (m->order <= 0)
            m->order = sqlite3_column_int(st, 1) + 1;
        rc = EL_OK;
    } else {
        rc = map_rc(rc == SQLITE_DONE ? SQLITE_CORRUPT : rc);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != EL_OK)
        return rc;
    if (n >= EL_COURSE_MODULES_MAX)
        return EL_ETOOBIG;
    if ((rc = stmt(c, ST_INSERT_MODULE, &st)) != EL_OK)
        return rc;
    bad = sqlite3_bind_text(st, 1, m->id, -1, SQLITE_STATIC);
    bad |= sqlite3_bind_text(st, 2, cid, -1, SQLITE_STATIC);
    bad |= sqlite3_bind_text(st, 3, or_empty(m->title), -1, SQLITE_STATIC);
    bad |= sqlite3_bind_text(st, 4, or_empty(m->content), -1, SQLITE_STATIC);
    bad |= sqlite3_bind_int(st, 5, m->duration_minutes);
    bad |= sqlite3_bind_int(st, 6, m->order);
    if ((rc = step_once(c, st, bad)) != EL_OK)
        return rc;
    return sum_duration(c, cid, now_ms);
}

static int sqlite_module_add(struct el_store *base, const char *course_id, struct el_module *m,
                             int64_t now_ms, struct el_course *out)
{
    char cid[EL_OID_HEX];
    struct conn *c;
    int rc;

    if ((rc = take_id(cid, course_id)) != EL_OK)
        return rc;
    if (m->id[0] == '\0')
        el_oid_new(m->id);
    if (!el_oid_valid(m->id))
        return EL_EINVAL;
    id_lower(m->id, m->id);
    if ((rc = write_begin(base, &c)) != EL_OK)
        return rc;
    rc = add_module_rows(c, cid, m, now_ms);
    return course_tx_end(c, cid, rc, out);
}

static int sqlite_module_delete(struct el_store *base, const char *course_id, const char *module_id,
                                int64_t now_ms, struct el_course *out)
{
    char cid[EL_OID_HEX], mid[EL_OID_HEX];
    sqlite3_stmt *st;
    struct conn *c;
    int rc, bad;

    if ((rc = take_id(cid, course_id)) != EL_OK || (rc = take_id(mid, module_id)) != EL_OK)
        return rc;
    if ((rc = write_begin(base, &c)) != EL_OK)
        return rc;
    if ((rc = stmt(c, ST_MODULE_DELETE, &st)) == EL_OK) {
        bad = sqlite3_bind_text(st, 1, mid, -1, SQLITE_STATIC);
        bad |= sqlite3_bind_text(st, 2, cid, -1, SQLITE_STATIC);
        rc = step_once(c, st, bad);
        if (rc == EL_OK && sqlite3_changes(c->db) == 0)
            rc = EL_ENOTFOUND;
    }
    if (rc == EL_OK)
        rc = sum_duration(c, cid, now_ms);
    return course_tx_end(c, cid, rc, out);
}

/* Course, enrollment, the rater's previous stars, then the new rating and
 * the course's sum and count -- one write transaction, so concurrent
 * raters (threads or processes) take turns and the average is exact. */
static int rate_rows(struct conn *c, const char *cid, const char *uid, int stars, int64_t now_ms)
{
    sqlite3_stmt *st;
    int64_t v = 0, old = 0;
    int rc, found, had, bad;

    if ((rc = pair_int(c, ST_COURSE_EXISTS, cid, NULL, &v, &found)) != EL_OK)
        return rc;
    if (!found)
        return EL_ENOTFOUND;
    if ((rc = pair_int(c, ST_ENROLLED, cid, uid, &v, &found)) != EL_OK)
        return rc;
    if (!found)
        return EL_EFORBIDDEN;
    if ((rc = pair_int(c, ST_RATING_GET, cid, uid, &old, &had)) != EL_OK)
        return rc;
    if ((rc = stmt(c, ST_RATING_PUT, &st)) != EL_OK)
        return rc;
    bad = sqlite3_bind_text(st, 1, cid, -1, SQLITE_STATIC);
    bad |= sqlite3_bind_text(st, 2, uid, -1, SQLITE_STATIC);
    bad |= sqlite3_bind_int(st, 3, stars);
    bad |= sqlite3_bind_int64(st, 4, now_ms);
    if ((rc = step_once(c, st, bad)) != EL_OK)
        return rc;
    if ((rc = stmt(c, ST_RATING_APPLY, &st)) != EL_OK)
        return rc;
    bad = sqlite3_bind_text(st, 1, cid, -1, SQLITE_STATIC);
    bad |= sqlite3_bind_int64(st, 2, stars - (had ? old : 0));
    bad |= sqlite3_bind_int(st, 3, had ? 0 : 1);
    return step_once(c, st, bad);
}

static int sqlite_rate(struct el_store *base, const char *course_id, const char *user_id, int stars,
                       int64_t now_ms, struct el_course *out)
{
    char cid[EL_OID_HEX], uid[EL_OID_HEX];
    struct conn *c;
    int rc;

    if ((rc = take_id(cid, course_id)) != EL_OK || (rc = take_id(uid, user_id)) != EL_OK)
        return rc;
    if ((rc = write_begin(base, &c)) != EL_OK)
        return rc;
    rc = rate_rows(c, cid, uid, stars, now_ms);
    return course_tx_end(c, cid, rc, out);
}

static void sqlite_thread_cleanup(struct el_store *base)
{
    struct sqlite_store *s = from(base);
    struct conn *c = pthread_getspecific(s->key);

    if (c == NULL)
        return;
    (void)pthread_setspecific(s->key, NULL); /* cannot fail: the slot exists */
    conn_unlink(c);
    conn_close(c);
}

/* No call may be in flight, and threads that used the store must not be
 * exiting concurrently (their key destructor would race with this). */
static void sqlite_close(struct el_store *base)
{
    struct sqlite_store *s = from(base);
    struct conn *c, *next;

    pthread_key_delete(s->key); /* no destructor runs for it any more */
    for (c = s->conns; c != NULL; c = next) {
        next = c->next;
        conn_close(c);
    }
    pthread_mutex_destroy(&s->lock);
    free(s->path);
    free(s);
}

/* ---- open -------------------------------------------------------------- */

/* mkdir -p for the directory holding path. */
static int make_parent_dirs(const char *path, struct el_err *err)
{
    char *dir = strdup(path), *slash, *p;
    struct stat sb;
    int rc = EL_OK;

    if (dir == NULL)
        return el_err_set(err, EL_ENOMEM, "sqlite: out of memory");
    slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        goto out; /* the current or the root directory */
    *slash = '\0';
    for (p = dir + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char save = *p;

            *p = '\0';
            if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
                rc = el_err_set(err, EL_EUNAVAIL, "sqlite: cannot create directory '%s': %s", dir,
                                strerror(errno));
                goto out;
            }
            *p = save;
            if (save == '\0')
                break;
        }
    }
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        rc = el_err_set(err, EL_EUNAVAIL, "sqlite: '%s' is not a directory", dir);
out:
    free(dir);
    return rc;
}

/* Version 3 added courses.rating_sum; a courses table made by an older
 * version lacks it. It is added, and filled with the sum the course's
 * rating and rating_count imply, inside the schema transaction. */
static int add_rating_sum(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT 1 FROM pragma_table_info('courses')"
                                " WHERE name = 'rating_sum'",
                                -1, &st, NULL);

    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return SQLITE_OK; /* there already */
    if (rc != SQLITE_DONE)
        return rc;
    return sqlite3_exec(db,
                        "ALTER TABLE courses ADD COLUMN rating_sum INTEGER NOT NULL DEFAULT 0;"
                        "UPDATE courses SET rating_sum = CAST(round(rating * rating_count)"
                        " AS INTEGER);",
                        NULL, NULL, NULL);
}

/* WAL mode (persistent in the file) and the schema, in the opening
 * thread's connection. Several responders may open the file at once:
 * BEGIN IMMEDIATE makes them take turns, and every statement is
 * idempotent. */
static int create_schema(struct conn *c, const char *path, struct el_err *err)
{
    sqlite3_stmt *st = NULL;
    const char *mode;
    int rc, version = 0;

    /* The first statement to read the file: a file that is not a
     * database fails here. */
    rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        rc = el_err_set(err, EL_EUNAVAIL, "sqlite: cannot use '%s': %s", path,
                        sqlite3_errmsg(c->db));
        goto out;
    }
    mode = (const char *)sqlite3_column_text(st, 0);
    if (mode == NULL || strcmp(mode, "wal") != 0) {
        rc = el_err_set(err, EL_EUNAVAIL, "sqlite: cannot switch '%s' to WAL mode", path);
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    rc = sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(c->db, schema_sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        version = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
        if (rc == SQLITE_ROW)
            rc = SQLITE_OK;
        else if (rc == SQLITE_DONE)
            rc = SQLITE_CORRUPT; /* the pragma always returns a row */
    }
    if (rc == SQLITE_OK && version > SCHEMA_VERSION) {
        rc = el_err_set(err, EL_EUNAVAIL,
                        "sqlite: '%s' has schema version %d, newer than this build's %d", path,
                        version, SCHEMA_VERSION);
        goto out;
    }
    if (rc == SQLITE_OK && version < SCHEMA_VERSION)
        rc = add_rating_sum(c->db);
    if (rc == SQLITE_OK && version < SCHEMA_VERSION) {
        /* Version 4 adds courses.rev to a table that may predate it (a
         * fresh file has it already); every other version only adds tables
         * and indexes, which schema_sql has just created. */
        sqlite3_stmt *probe = NULL;

        if (sqlite3_prepare_v2(c->db, "SELECT rev FROM courses LIMIT 0", -1, &probe, NULL) !=
            SQLITE_OK)
            rc =
                sqlite3_exec(c->db, "ALTER TABLE courses ADD COLUMN rev INTEGER NOT NULL DEFAULT 1",
                             NULL, NULL, NULL);
        sqlite3_finalize(probe);
    }
    if (rc == SQLITE_OK && version < SCHEMA_VERSION) {
        char sql[64];

        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", SCHEMA_VERSION);
        rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        int code = map_rc(rc);

        rc =
            el_err_set(err, code == EL_OK ? EL_EUNAVAIL : code,
                       "sqlite: cannot create the schema in '%s': %s", path, sqlite3_errmsg(c->db));
    }
out:
    sqlite3_finalize(st);
    if (rc != EL_OK && !sqlite3_get_autocommit(c->db))
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

int el_store_sqlite_open(const char *path, struct el_store **out, struct el_err *err)
{
    struct sqlite_store *s;
    struct conn *c;
    int rc;

    *out = NULL;
    if (path == NULL || *path == '\0')
        return el_err_set(err, EL_EINVAL, "sqlite: empty database path");
    /* Each thread opens its own connection, and every ":memory:"
     * connection is a separate, empty database. */
    if (strcmp(path, ":memory:") == 0)
        return el_err_set(err, EL_EINVAL,
                          "sqlite: an in-memory database cannot be shared by "
                          "threads; give a file path");
    if ((rc = make_parent_dirs(path, err)) != EL_OK)
        return rc;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return el_err_set(err, EL_ENOMEM, "sqlite: out of memory");
    s->base.ops = &sqlite_ops;
    s->path = strdup(path);
    if (s->path == NULL) {
        free(s);
        return el_err_set(err, EL_ENOMEM, "sqlite: out of memory");
    }
    if (pthread_key_create(&s->key, conn_destructor) != 0) {
        free(s->path);
        free(s);
        return el_err_set(err, EL_ENOMEM, "sqlite: no thread-specific key left");
    }
    el_must(pthread_mutex_init(&s->lock, NULL));
    rc = conn_get(s, &c, err);
    if (rc == EL_OK)
        rc = create_schema(c, path, err);
    if (rc == EL_OK) {
        struct stat st;

        if (stat(path, &st) == 0) {
            s->dev = st.st_dev;
            s->ino = st.st_ino;
        } else {
            rc =
                el_err_set(err, EL_EUNAVAIL, "sqlite: cannot stat '%s': %s", path, strerror(errno));
        }
    }
    if (rc != EL_OK) {
        sqlite_close(&s->base);
        return rc;
    }
    *out = &s->base;
    return EL_OK;
}

static const struct el_store_ops sqlite_ops = {
    .kind = "sqlite",
    .close = sqlite_close,
    .thread_cleanup = sqlite_thread_cleanup,
    .ping = sqlite_ping,
    .version = sqlite_version,
    .course_get = sqlite_course_get,
    .course_list = sqlite_course_list,
    .course_insert = sqlite_course_insert,
    .course_count = sqlite_course_count,
    .reset = sqlite_reset,
    .course_update = sqlite_course_update,
    .module_update = sqlite_module_update,
    .course_delete = sqlite_course_delete,
    .enroll = sqlite_enroll,
    .user_insert = sqlite_user_insert,
    .user_get = sqlite_user_get,
    .user_get_by_email = sqlite_user_get_by_email,
    .user_update = sqlite_user_update,
    .user_delete = sqlite_user_delete,
    .refresh_insert = sqlite_refresh_insert,
    .refresh_claim = sqlite_refresh_claim,
    .revoke = sqlite_revoke,
    .revoked = sqlite_revoked,
    .revocations_live = sqlite_revocations_live,
    .unenroll = sqlite_unenroll,
    .enrollments = sqlite_enrollments,
    .module_add = sqlite_module_add,
    .module_delete = sqlite_module_delete,
    .rate = sqlite_rate,
};
