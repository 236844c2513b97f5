/* course.c -- the course model (see course.h): list-query validation and
 * its cache digest, the one JSON serializer, dates and ObjectIds.
 *
 * Key decision: the JSON bytes of a course are produced here and nowhere
 * else, from the C struct, with json-c in a fixed field order. Both stores
 * only fill structs, so a course read from MongoDB and the same course read
 * from SQLite serialize to identical bytes, and the caches can store and
 * compare bytes without ever parsing them.
 *
 * The query parser works on the raw QUERY_STRING without allocating: each
 * value is percent-decoded straight into its fixed-size field of struct
 * el_course_query, so an oversized value is refused as soon as it overflows
 * instead of being copied first. */
#include "model/course.h"

#include "core/text.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#define PAGE_MAX 1000000

void el_course_cleanup(struct el_course *c)
{
    size_t i;

    if (c == NULL)
        return;
    free(c->title);
    free(c->description);
    free(c->category);
    free(c->difficulty);
    for (i = 0; i < c->ntags; i++)
        free(c->tags[i]);
    free(c->tags);
    for (i = 0; i < c->nmodules; i++) {
        free(c->modules[i].title);
        free(c->modules[i].content);
    }
    free(c->modules);
    memset(c, 0, sizeof(*c));
}

void el_course_page_cleanup(struct el_course_page *p)
{
    size_t i;

    if (p == NULL)
        return;
    for (i = 0; i < p->nitems; i++)
        el_course_cleanup(&p->items[i]);
    free(p->items);
    memset(p, 0, sizeof(*p));
}

static const char *const sort_names[] = {
    [EL_SORT_RECENT] = "recent",
    [EL_SORT_POPULAR] = "popular",
    [EL_SORT_TOP_RATED] = "top_rated",
    [EL_SORT_DURATION] = "duration",
};
#define NSORTS (sizeof(sort_names) / sizeof(sort_names[0]))

const char *el_sort_name(enum el_sort s)
{
    if ((unsigned)s >= NSORTS)
        return "unknown";
    return sort_names[s];
}

/* ---- query string ------------------------------------------------------ */

static const char *const difficulties[] = {"beginner", "intermediate", "advanced"};

/* Parse a decimal integer in [1, max] with nothing around it: no sign, no
 * spaces, no fraction. Leading zeros are harmless and accepted. */
static int parse_int(const char *s, int max, int *out)
{
    long v = 0;

    if (*s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
        if (v > max)
            return -1;
    }
    if (v < 1)
        return -1;
    *out = (int)v;
    return 0;
}

/* Exactly 24 hex digits (an ObjectId). */
static int hex24(const char *s)
{
    for (int i = 0; i < 24; i++)
        if (el_hex_digit(s[i]) < 0)
            return 0;
    return s[24] == '\0';
}

enum param {
    P_SEARCH,
    P_CATEGORY,
    P_DIFFICULTY,
    P_SORT_BY,
    P_PAGE,
    P_PAGE_SIZE,
    P_INSTRUCTOR_ID,
    P__COUNT
};

static const char *const param_names[P__COUNT] = {
    [P_SEARCH] = "search",
    [P_CATEGORY] = "category",
    [P_DIFFICULTY] = "difficulty",
    [P_SORT_BY] = "sort_by",
    [P_PAGE] = "page",
    [P_PAGE_SIZE] = "page_size",
    [P_INSTRUCTOR_ID] = "instructor_id",
};

/* Make a decoded name fit to quote in a one-line message: cut it to at
 * most max bytes without splitting a UTF-8 sequence (marking the cut with
 * "...") and show control characters as '?'. Returns 0 when what is left
 * is not valid UTF-8, which the caller reports instead. s needs max + 4
 * bytes. */
static int quote_cut(char *s, size_t max)
{
    size_t i, n = strlen(s);

    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
        memcpy(s + n, "...", 4);
    }
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7F)
            s[i] = '?';
    return el_utf8_valid(s, n);
}

/* Validate one decoded value into q. name is the parameter's name for
 * messages. */
static int set_param(enum param p, const char *raw, size_t rawlen, struct el_course_query *q,
                     struct el_err *err)
{
    const char *name = param_names[p];
    char small[32];
    char *dst;
    size_t cap, n;
    enum el_pct_status st;

    switch (p) {
    case P_SEARCH:
        dst = q->search, cap = EL_COURSE_SEARCH_MAX;
        break;
    case P_CATEGORY:
        dst = q->category, cap = EL_COURSE_CATEGORY_MAX;
        break;
    default:
        /* Enum words and integers are short: anything longer than the
         * buffer is wrong anyway and reported as such below. */
        dst = small, cap = sizeof(small) - 1;
        break;
    }
    st = el_pct_decode_form(raw, rawlen, dst, cap, &n);
    if (st == EL_PCT_BADESC)
        return el_err_set(err, EL_EINVAL, "%s: invalid percent-encoding", name);
    if (st == EL_PCT_NUL)
        return el_err_set(err, EL_EINVAL, "%s: must not contain NUL bytes", name);
    /* Text values must be UTF-8; the others must match ASCII words or
     * digits below, which bytes that are not UTF-8 never do. */
    if (st == EL_PCT_OK && (p == P_SEARCH || p == P_CATEGORY) && !el_utf8_valid(dst, n))
        return el_err_set(err, EL_EINVAL, "%s: must be valid UTF-8", name);
    if (st == EL_PCT_LONG && (p == P_SEARCH || p == P_CATEGORY))
        return el_err_set(err, EL_EINVAL, "%s: must be at most %zu bytes", name, cap);

    switch (p) {
    case P_SEARCH:
    case P_CATEGORY:
        return EL_OK;
    case P_DIFFICULTY:
        if (st == EL_PCT_OK && n == 0)
            return EL_OK; /* no filter */
        for (size_t i = 0; st == EL_PCT_OK && i < sizeof(difficulties) / sizeof(difficulties[0]);
             i++) {
            if (strcmp(small, difficulties[i]) == 0) {
                memcpy(q->difficulty, small, n + 1);
                return EL_OK;
            }
        }
        return el_err_set(err, EL_EINVAL,
                          "difficulty: must be one of beginner, intermediate, advanced");
    case P_SORT_BY:
        for (size_t i = 0; st == EL_PCT_OK && i < NSORTS; i++) {
            if (strcmp(small, sort_names[i]) == 0) {
                q->sort = (enum el_sort)i;
                return EL_OK;
            }
        }
        return el_err_set(err, EL_EINVAL,
                          "sort_by: must be one of recent, popular, top_rated, duration");
    case P_PAGE:
        if (st != EL_PCT_OK || parse_int(small, PAGE_MAX, &q->page) != 0)
            return el_err_set(err, EL_EINVAL, "page: must be an integer between 1 and %d",
                              PAGE_MAX);
        return EL_OK;
    case P_PAGE_SIZE:
        if (st != EL_PCT_OK || parse_int(small, EL_COURSE_PAGE_SIZE_MAX, &q->page_size) != 0)
            return el_err_set(err, EL_EINVAL, "page_size: must be an integer between 1 and %d",
                              EL_COURSE_PAGE_SIZE_MAX);
        return EL_OK;
    case P_INSTRUCTOR_ID:
        if (st == EL_PCT_OK && strcmp(small, "me") == 0) {
            q->instructor_me = true;
            return EL_OK;
        }
        if (st != EL_PCT_OK || !hex24(small))
            return el_err_set(err, EL_EINVAL,
                              "instructor_id: must be \"me\" or a 24-character hex ObjectId");
        el_ascii_lower(q->instructor_id, small, 24);
        q->instructor_id[24] = '\0';
        return EL_OK;
    case P__COUNT:
        break;
    }
    return el_err_set(err, EL_EINVAL, "internal error: unhandled parameter");
}

/* Empty segments ("a=1&&b=2", a trailing '&') carry nothing and are
 * skipped, as every form encoder may produce them. A name without '=' has
 * an empty value. The result is written to *out only on success. */
/* Parse qs accepting only the parameters whose bit is set in allowed. */
static int parse_query(const char *qs, unsigned allowed, struct el_course_query *out,
                       struct el_err *err)
{
    struct el_course_query q;
    unsigned seen = 0;
    const char *p = qs ? qs : "";

    memset(&q, 0, sizeof(q));
    q.sort = EL_SORT_RECENT;
    q.page = 1;
    q.page_size = EL_COURSE_PAGE_SIZE_DEFAULT;
    q.published_only = true;

    while (*p) {
        const char *end = strchr(p, '&');
        const char *eq;
        size_t seglen, namelen, n;
        char name[72];
        enum el_pct_status st;
        int rc, which = -1;

        seglen = end ? (size_t)(end - p) : strlen(p);
        if (seglen == 0) {
            p++;
            continue;
        }
        eq = memchr(p, '=', seglen);
        namelen = eq ? (size_t)(eq - p) : seglen;
        st = el_pct_decode_form(p, namelen, name, sizeof(name) - 1, &n);
        if (st == EL_PCT_BADESC)
            return el_err_set(err, EL_EINVAL, "invalid percent-encoding in a query parameter name");
        if (st == EL_PCT_NUL || (st == EL_PCT_OK && !el_utf8_valid(name, n)))
            return el_err_set(err, EL_EINVAL, "a query parameter name is not valid UTF-8 text");
        if (n == 0)
            return el_err_set(err, EL_EINVAL, "a query parameter has an empty name");
        for (int i = 0; st == EL_PCT_OK && i < P__COUNT; i++)
            if ((allowed & (1u << i)) && strcmp(name, param_names[i]) == 0)
                which = i;
        if (which < 0) {
            /* A name too long for the buffer (EL_PCT_LONG) is unknown too;
             * only its first bytes are quoted. */
            if (!quote_cut(name, 64))
                return el_err_set(err, EL_EINVAL, "a query parameter name is not valid UTF-8 text");
            return el_err_set(err, EL_EINVAL, "unknown query parameter: %s", name);
        }
        if (seen & (1u << which))
            return el_err_set(err, EL_EINVAL, "%s: given more than once", param_names[which]);
        seen |= 1u << which;
        rc = eq ? set_param((enum param)which, eq + 1, seglen - namelen - 1, &q, err)
                : set_param((enum param)which, "", 0, &q, err);
        if (rc != EL_OK)
            return rc;
        p += seglen;
        if (*p == '&')
            p++;
    }
    *out = q;
    return EL_OK;
}

int el_course_query_parse(const char *qs, struct el_course_query *out, struct el_err *err)
{
    return parse_query(qs, (1u << P__COUNT) - 1, out, err);
}

/* The canonical form is "v2|search=<len>:<bytes>|category=<len>:<bytes>|
 * difficulty=<len>:<bytes>|sort=<name>|page=<n>|page_size=<n>|
 * published_only=<0|1>|instructor=<24 hex, "me" or empty>". Strings are
 * length-prefixed, so no value can imitate a separator. search is
 * lowercased (ASCII only) first: both stores match it case-insensitively,
 * so "Python" and "python" select the same page and may share a cache
 * entry. Non-ASCII letters are left alone, which can only cost a cache hit,
 * never serve a wrong page. */
void el_course_query_digest(const struct el_course_query *q, char out[41])
{
    static const char hex[] = "0123456789abcdef";
    char search[EL_COURSE_SEARCH_MAX + 1];
    char canon[256 + EL_COURSE_SEARCH_MAX + EL_COURSE_CATEGORY_MAX];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    size_t i, slen;
    int n;

    slen = strnlen(q->search, EL_COURSE_SEARCH_MAX);
    el_ascii_lower(search, q->search, slen);
    search[slen] = '\0';
    n = snprintf(
        canon, sizeof(canon),
        "v2|search=%zu:%s|category=%zu:%.*s|difficulty=%zu:%.*s|sort=%s|page=%d|page_size=%d"
        "|published_only=%d|instructor=%.24s",
        slen, search, strnlen(q->category, EL_COURSE_CATEGORY_MAX), EL_COURSE_CATEGORY_MAX,
        q->category, strnlen(q->difficulty, sizeof(q->difficulty) - 1),
        (int)sizeof(q->difficulty) - 1, q->difficulty, el_sort_name(q->sort), q->page, q->page_size,
        q->published_only ? 1 : 0, q->instructor_me ? "me" : q->instructor_id);
    /* canon is sized for the largest fields, so n always fits; EVP_Digest
     * only fails on allocation, which the one-shot API does not do for
     * SHA-1. Either way a zero digest is safer than garbage. */
    if (n < 0 || (size_t)n >= sizeof(canon) ||
        !EVP_Digest(canon, (size_t)n, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20) {
        memset(out, '0', 40);
        out[40] = '\0';
        return;
    }
    for (i = 0; i < 20; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[40] = '\0';
}

/* ---- JSON -------------------------------------------------------------- */

/* Years outside 0000-9999 have no four-digit form; such dates (never
 * written by elearn) are clamped so the output is always 24 characters. */
#define ISO_MIN_MS (-62167219200000LL) /* 0000-01-01T00:00:00.000Z */
#define ISO_MAX_MS 253402300799999LL   /* 9999-12-31T23:59:59.999Z */

void el_iso8601(int64_t ms, char out[32])
{
    int64_t secs, frac;
    struct tm tm;
    time_t t;

    if (ms < ISO_MIN_MS)
        ms = ISO_MIN_MS;
    if (ms > ISO_MAX_MS)
        ms = ISO_MAX_MS;
    secs = ms / 1000;
    frac = ms % 1000;
    if (frac < 0) { /* floor, so times before 1970 print correctly */
        frac += 1000;
        secs -= 1;
    }
    t = (time_t)secs;
    if (gmtime_r(&t, &tm) == NULL) {
        snprintf(out, 32, "1970-01-01T00:00:00.000Z");
        return;
    }
    /* The modulos only tell the compiler the widths; the values are in
     * range already. */
    snprintf(out, 32, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ", (unsigned)(tm.tm_year + 1900) % 10000u,
             (unsigned)(tm.tm_mon + 1) % 100u, (unsigned)tm.tm_mday % 100u,
             (unsigned)tm.tm_hour % 100u, (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u,
             (unsigned)frac % 1000u);
}

/* Add key -> val to obj, taking val; NULL val (a failed json-c
 * allocation) makes the whole object fail. Returns 0 or -1. Keys are
 * string literals added once each, so json-c may keep the pointer and skip
 * its duplicate lookup. */
static int put(struct json_object *obj, const char *key, struct json_object *val)
{
    if (val == NULL)
        return -1;
    if (json_object_object_add_ex(
            obj, key, val, JSON_C_OBJECT_ADD_KEY_IS_NEW | JSON_C_OBJECT_ADD_CONSTANT_KEY) != 0) {
        json_object_put(val);
        return -1;
    }
    return 0;
}

/* A NULL string field is sent as "" so the document keeps one shape. */
static struct json_object *jstr(const char *s)
{
    return json_object_new_string(s ? s : "");
}

static struct json_object *jdate(int64_t ms)
{
    char iso[32];

    el_iso8601(ms, iso);
    return json_object_new_string(iso);
}

/* The rating always prints with one decimal ("4.0", not 4), whatever the
 * store's double looks like; a non-finite value (never written by us)
 * prints as 0.0 rather than as invalid JSON. */
static struct json_object *jrating(double r)
{
    char s[32];

    if (!isfinite(r))
        r = 0.0;
    snprintf(s, sizeof(s), "%.1f", r);
    return json_object_new_double_s(r, s);
}

/* A module; in a summary without its content. */
static struct json_object *module_json(const struct el_module *m, bool summary)
{
    struct json_object *o = json_object_new_object();

    if (o == NULL)
        return NULL;
    if (put(o, "_id", json_object_new_string(m->id)) || put(o, "title", jstr(m->title)) ||
        (!summary && put(o, "content", jstr(m->content))) ||
        put(o, "duration_minutes", json_object_new_int(m->duration_minutes)) ||
        put(o, "order", json_object_new_int(m->order))) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

/* Build the json-c tree of c in the documented field order -- a summary
 * leaves out the modules' content -- or NULL when out of memory. The caller
 * owns the result (json_object_put). */
static struct json_object *course_json(const struct el_course *c, bool summary)
{
    struct json_object *o = json_object_new_object();
    struct json_object *tags = NULL, *mods = NULL;
    size_t i;

    if (o == NULL)
        return NULL;
    if (put(o, "_id", json_object_new_string(c->id)) || put(o, "title", jstr(c->title)) ||
        put(o, "description", jstr(c->description)) || put(o, "category", jstr(c->category)) ||
        put(o, "difficulty", jstr(c->difficulty)))
        goto fail;
    tags = json_object_new_array_ext((int)c->ntags);
    if (tags == NULL || put(o, "tags", tags))
        goto fail;
    for (i = 0; i < c->ntags; i++) {
        struct json_object *t = jstr(c->tags[i]);
        if (t == NULL || json_object_array_add(tags, t) != 0) {
            json_object_put(t);
            goto fail;
        }
    }
    if (put(o, "instructor_id", json_object_new_string(c->instructor_id)) ||
        put(o, "duration_minutes", json_object_new_int(c->duration_minutes)) ||
        put(o, "rating", jrating(c->rating)) ||
        put(o, "rating_count", json_object_new_int(c->rating_count)) ||
        put(o, "enrollment_count", json_object_new_int(c->enrollment_count)) ||
        put(o, "published", json_object_new_boolean(c->published)) ||
        put(o, "created_at", jdate(c->created_at)) || put(o, "updated_at", jdate(c->updated_at)))
        goto fail;
    mods = json_object_new_array_ext((int)c->nmodules);
    if (mods == NULL || put(o, "modules", mods))
        goto fail;
    for (i = 0; i < c->nmodules; i++) {
        struct json_object *m = module_json(&c->modules[i], summary);
        if (m == NULL || json_object_array_add(mods, m) != 0) {
            json_object_put(m);
            goto fail;
        }
    }
    return o;
fail:
    /* tags and mods, once put(), belong to o; put() freed them otherwise. */
    json_object_put(o);
    return NULL;
}

/* Serialize obj into out and release obj (always). */
static int emit(struct json_object *obj, struct el_buf *out)
{
    const char *s;
    size_t len = 0;
    int rc;

    if (obj == NULL)
        return EL_ENOMEM;
    s = json_object_to_json_string_length(
        obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    rc = s ? el_buf_add(out, s, len) : EL_ENOMEM;
    json_object_put(obj);
    return rc;
}

int el_course_to_json(const struct el_course *c, struct el_buf *out)
{
    return emit(course_json(c, false), out);
}

int el_course_summary_to_json(const struct el_course *c, struct el_buf *out)
{
    return emit(course_json(c, true), out);
}

int el_course_page_to_json(const struct el_course_page *p, const struct el_course_query *q,
                           struct el_buf *out)
{
    struct json_object *o = json_object_new_object();
    struct json_object *items;
    size_t i;

    if (o == NULL)
        return EL_ENOMEM;
    if (put(o, "total", json_object_new_int64(p->total)) ||
        put(o, "page", json_object_new_int(q->page)) ||
        put(o, "page_size", json_object_new_int(q->page_size)))
        goto fail;
    items = json_object_new_array_ext((int)p->nitems);
    if (items == NULL || put(o, "items", items))
        goto fail;
    for (i = 0; i < p->nitems; i++) {
        struct json_object *c = course_json(&p->items[i], true);
        if (c == NULL || json_object_array_add(items, c) != 0) {
            json_object_put(c);
            goto fail;
        }
    }
    return emit(o, out);
fail:
    json_object_put(o);
    return EL_ENOMEM;
}

void el_enrollment_page_cleanup(struct el_enrollment_page *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->nitems; i++)
        el_course_cleanup(&p->items[i]);
    free(p->items);
    free(p->enrolled_at);
    memset(p, 0, sizeof(*p));
}

/* A summary is the course without its modules (what a list of "my
 * courses" shows), plus when the caller enrolled. */
int el_enrollment_page_to_json(const struct el_enrollment_page *p, int page, int page_size,
                               struct el_buf *out)
{
    struct json_object *o = json_object_new_object();
    struct json_object *items;
    size_t i;

    if (o == NULL)
        return EL_ENOMEM;
    if (put(o, "total", json_object_new_int64(p->total)) ||
        put(o, "page", json_object_new_int(page)) ||
        put(o, "page_size", json_object_new_int(page_size)))
        goto fail;
    items = json_object_new_array_ext((int)p->nitems);
    if (items == NULL || put(o, "items", items))
        goto fail;
    for (i = 0; i < p->nitems; i++) {
        struct json_object *c = course_json(&p->items[i], true);

        if (c != NULL) {
            json_object_object_del(c, "modules");
            if (put(c, "enrolled_at", jdate(p->enrolled_at[i]))) {
                json_object_put(c);
                c = NULL;
            }
        }
        if (c == NULL || json_object_array_add(items, c) != 0) {
            json_object_put(c);
            goto fail;
        }
    }
    return emit(o, out);
fail:
    json_object_put(o);
    return EL_ENOMEM;
}

double el_rating_average(int64_t sum, int64_t count)
{
    if (count <= 0 || sum <= 0)
        return 0.0;
    /* round(10 * sum / count) half up, in integers */
    /* NOLINTNEXTLINE(bugprone-integer-division) */
    return (double)((sum * 20 + count) / (2 * count)) / 10.0;
}

int el_page_query_parse(const char *qs, int *page, int *page_size, struct el_err *err)
{
    struct el_course_query q;
    int rc;

    /* The same rules and messages as GET /courses for the two it takes. */
    if ((rc = parse_query(qs, (1u << P_PAGE) | (1u << P_PAGE_SIZE), &q, err)) != EL_OK)
        return rc;
    *page = q.page;
    *page_size = q.page_size;
    return EL_OK;
}
