/* test_store.c -- the store contract (store.h), run unchanged against both
 * backends: the same test functions are registered in the suites
 * "store_sqlite" (a file under EL_TEST_TMPDIR) and "store_mongo"
 * (EL_TEST_MONGO_URI). Each suite opens its store once into `store`; every
 * test starts from an empty store (el_store_reset in the per-test setup).
 *
 * Expected results are computed here from the inserted data with the
 * contract's rules (filters, sort key then _id ascending, OFFSET/LIMIT)
 * and compared id by id; documents are compared as the JSON bytes the API
 * would send. A third suite, "store_sqlite_file", covers what only the
 * SQLite backend has: its file, directory and lock handling. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "model/course.h"
#include "core/el.h"
#include "cache/key.h"
#include "store/store.h"
#include "fixtures.h"
#include "unit.h"
#include "model/user.h"

static struct el_store *store; /* the running suite's store */

/* ---- building courses -------------------------------------------------- */

/* Insert every spec; the built courses (with their final ids) are kept in
 * out[] when out is not NULL, else freed. */
static void insert_all(struct el_store *st, const struct fx_spec *specs, size_t n,
                       struct el_course *out)
{
    for (size_t i = 0; i < n; i++) {
        struct el_course c;
        int rc;

        fx_build(&specs[i], &c);
        rc = el_store_course_insert(st, &c);
        if (rc != EL_OK)
            fprintf(stderr, "\n  insert \"%s\": %s\n", specs[i].title, el_strerror(rc));
        CU_ASSERT_EQUAL_FATAL(rc, EL_OK);
        if (out)
            out[i] = c;
        else
            el_course_cleanup(&c);
    }
}

static char *course_json(const struct el_course *c)
{
    struct el_buf b;

    el_buf_init(&b, 1 << 20);
    CU_ASSERT_EQUAL(el_course_to_json(c, &b), EL_OK);
    return el_buf_take(&b, NULL);
}

static char *summary_json(const struct el_course *c)
{
    struct el_buf b;

    el_buf_init(&b, 1 << 20);
    CU_ASSERT_EQUAL(el_course_summary_to_json(c, &b), EL_OK);
    return el_buf_take(&b, NULL);
}

static char *page_json(const struct el_course_page *p, const struct el_course_query *q)
{
    struct el_buf b;

    el_buf_init(&b, 1 << 22);
    CU_ASSERT_EQUAL(el_course_page_to_json(p, q, &b), EL_OK);
    return el_buf_take(&b, NULL);
}

/* Parse qs into a query of every course, drafts included (thread-safe). */
static int parse_every(const char *qs, struct el_course_query *q)
{
    int rc = el_course_query_parse(qs, q, NULL);

    q->published_only = false;
    return rc;
}

static struct el_course_query query(const char *qs)
{
    struct el_course_query q;
    struct el_err err;

    memset(&q, 0, sizeof(q));
    if (el_course_query_parse(qs, &q, &err) != EL_OK) {
        fprintf(stderr, "\n  bad test query \"%s\": %s\n", qs, err.msg);
        CU_FAIL_FATAL("bad test query");
    }
    /* These tests list every course; drafts are test_list_visibility's. */
    q.published_only = false;
    return q;
}

/* ---- the data set for filters and sorts -------------------------------- */

#define T0 1735689600000LL /* 2025-01-01T00:00:00Z */

/* Ids are deliberately out of insertion order, and every sort key has ties,
 * so the _id tie-breaker is visible and cannot be confused with insertion
 * order. */
// clang-format off
static const struct fx_spec catalog[] = {
    {"66000000000000000000000a", "Intro to C", NULL, "programming", "beginner", {"c", "systems"}, T0 + 5000, 100, 4.5, 120, 3},
    {"660000000000000000000003", "Go Concurrency", NULL, "programming", "advanced", {"go"}, T0 + 5000, 900, 4.8, 300, 5},
    {"66000000000000000000000e", "Typography Basics", NULL, "design", "beginner", {"type"}, T0 + 1000, 100, 3.9, 60, 3},
    {"660000000000000000000001", "Color Theory", NULL, "design", "intermediate", {"color"}, T0 + 9000, 50, 4.5, 120, 4},
    {"660000000000000000000007", "Jazz Piano", NULL, "music", "advanced", {"piano", "jazz"}, T0 + 2000, 900, 4.8, 240, 6},
    {"66000000000000000000000c", "Music Theory I", NULL, "music", "beginner", {"theory"}, T0 + 9000, 20, 2.0, 45, 3},
    {"660000000000000000000005", "Rust Systems", NULL, "programming", "advanced", {"rust"}, T0 + 7000, 1500, 4.9, 600, 8},
    {"66000000000000000000000b", "UX Research", NULL, "design", "advanced", {"ux"}, T0 + 3000, 100, 4.1, 120, 4},
    {"660000000000000000000002", "Songwriting", NULL, "music", "intermediate", {"lyrics"}, T0 + 4000, 300, 3.3, 90, 3},
    {"66000000000000000000000d", "Python Data", NULL, "programming", "intermediate", {"python"}, T0 + 8000, 2500, 4.6, 200, 5},
    {"660000000000000000000006", "Logo Design", NULL, "design", "beginner", {"branding"}, T0 + 5000, 75, 3.9, 60, 3},
    {"660000000000000000000009", "Guitar Basics", NULL, "music", "beginner", {"guitar"}, T0 + 6000, 1200, 4.2, 75, 7},
    {"660000000000000000000004", "SQL Deep Dive", NULL, "programming", "advanced", {"sql"}, T0 + 1000, 600, 4.0, 180, 4},
    {"660000000000000000000008", "Figma Pro", NULL, "design", "intermediate", {"figma", "ui"}, T0 + 6000, 450, 4.4, 150, 5},
};
// clang-format on
#define NCATALOG (sizeof(catalog) / sizeof(catalog[0]))

static enum el_sort cmp_sort;

/* The contract's order: the sort key, then id ascending. */
static int cmp_spec(const void *pa, const void *pb)
{
    const struct fx_spec *a = *(const struct fx_spec *const *)pa,
                         *b = *(const struct fx_spec *const *)pb;
    int d = 0;

    switch (cmp_sort) {
    case EL_SORT_RECENT:
        d = (a->created_at < b->created_at) - (a->created_at > b->created_at);
        break;
    case EL_SORT_POPULAR:
        d = (a->enrollment < b->enrollment) - (a->enrollment > b->enrollment);
        break;
    case EL_SORT_TOP_RATED:
        d = (a->rating < b->rating) - (a->rating > b->rating);
        break;
    case EL_SORT_DURATION:
        d = (a->duration > b->duration) - (a->duration < b->duration);
        break;
    }
    return d ? d : strcmp(a->id, b->id);
}

/* The ids q should return from catalog, in order; returns the total. */
static size_t expected(const struct el_course_query *q, const char **ids, size_t *nids)
{
    const struct fx_spec *match[NCATALOG];
    size_t n = 0, off = (size_t)(q->page - 1) * (size_t)q->page_size;

    for (size_t i = 0; i < NCATALOG; i++) {
        if (q->category[0] && strcmp(q->category, catalog[i].category) != 0)
            continue;
        if (q->difficulty[0] && strcmp(q->difficulty, catalog[i].difficulty) != 0)
            continue;
        match[n++] = &catalog[i];
    }
    cmp_sort = q->sort;
    qsort(match, n, sizeof(match[0]), cmp_spec); /* NOLINT(bugprone-sizeof-expression) */
    *nids = 0;
    for (size_t i = off; i < n && *nids < (size_t)q->page_size; i++)
        ids[(*nids)++] = match[i]->id;
    return n;
}

/* List qs from the store and check total and ids against want. */
static void check_list(const char *qs, int64_t total, const char *const *want, size_t nwant)
{
    struct el_course_query q = query(qs);
    struct el_course_page p;
    int rc = el_store_course_list(store, &q, &p), ok;

    CU_ASSERT_EQUAL_FATAL(rc, EL_OK);
    ok = p.total == total && p.nitems == nwant;
    for (size_t i = 0; ok && i < nwant; i++)
        ok = strcmp(p.items[i].id, want[i]) == 0;
    if (!ok) {
        fprintf(stderr, "\n  list \"%s\": total %lld (want %lld), ids:", qs, (long long)p.total,
                (long long)total);
        for (size_t i = 0; i < p.nitems; i++)
            fprintf(stderr, " %s", p.items[i].id + 18);
        fprintf(stderr, "\n  wanted:");
        for (size_t i = 0; i < nwant; i++)
            fprintf(stderr, " %s", want[i] + 18);
        fprintf(stderr, "\n");
    }
    CU_ASSERT_TRUE(ok);
    el_course_page_cleanup(&p);
}

static void check_catalog_query(const char *qs)
{
    struct el_course_query q = query(qs);
    const char *ids[NCATALOG];
    size_t n, total = expected(&q, ids, &n);

    check_list(qs, (int64_t)total, ids, n);
}

/* ---- suites ------------------------------------------------------------ */

static int open_suite_store(const char *uri)
{
    struct el_err err = {0, ""};

    if (el_store_open(uri, &store, &err) != EL_OK) {
        fprintf(stderr, "store: cannot open %s: %s\n", uri, err.msg);
        return 1;
    }
    return 0;
}

static int init_sqlite(void)
{
    const char *dir = getenv("EL_TEST_TMPDIR");
    char uri[600];

    if (dir == NULL || *dir == '\0') {
        fprintf(stderr, "store: EL_TEST_TMPDIR is not set (run through tests/run-unit.sh)\n");
        return 1;
    }
    snprintf(uri, sizeof(uri), "sqlite:%s/contract.db", dir);
    return open_suite_store(uri);
}

static int init_mongo(void)
{
    const char *uri = getenv("EL_TEST_MONGO_URI");

    if (uri == NULL || *uri == '\0') {
        fprintf(stderr, "store: EL_TEST_MONGO_URI is not set (run through tests/run-unit.sh)\n");
        return 1;
    }
    return open_suite_store(uri);
}

static int fini(void)
{
    el_store_close(store);
    store = NULL;
    return 0;
}

/* Runs before every test: an empty store. Not fatal here (CUnit runs the
 * setup outside the test's jump buffer); the test then fails on its own. */
static void setup(void)
{
    CU_ASSERT_EQUAL(el_store_reset(store), EL_OK);
}

/* ---- contract tests ---------------------------------------------------- */

/* Text that tests every escaping layer on the way: quotes, backslashes,
 * newlines, tabs, non-ASCII (2-, 3- and 4-byte UTF-8). */
static const struct fx_spec rich = {
    NULL,
    "Caf\xc3\xa9 \"Qu\xc3\xb6tes\" & <b>tags</b> \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e "
    "\xf0\x9f\x8e\x93",
    "Line one\nLine two\twith tab, a back\\slash, a / slash and 'single' quotes.\r\nEnd.",
    "data-science",
    "intermediate",
    {"python", "\xc3\xa9t\xc3\xa9", "machine learning", "a\"b"},
    1795693075123LL,
    2147483000,
    4.7,
    367,
    6,
};

static void check_same_course(const struct el_course *a, const struct el_course *b)
{
    CU_ASSERT_STRING_EQUAL(a->id, b->id);
    CU_ASSERT_STRING_EQUAL(a->title, b->title);
    CU_ASSERT_STRING_EQUAL(a->description, b->description);
    CU_ASSERT_STRING_EQUAL(a->category, b->category);
    CU_ASSERT_STRING_EQUAL(a->difficulty, b->difficulty);
    CU_ASSERT_EQUAL_FATAL(a->ntags, b->ntags);
    for (size_t i = 0; i < a->ntags; i++)
        CU_ASSERT_STRING_EQUAL(a->tags[i], b->tags[i]);
    CU_ASSERT_STRING_EQUAL(a->instructor_id, b->instructor_id);
    CU_ASSERT_EQUAL(a->duration_minutes, b->duration_minutes);
    CU_ASSERT_DOUBLE_EQUAL(a->rating, b->rating, 1e-9);
    CU_ASSERT_EQUAL(a->rating_count, b->rating_count);
    CU_ASSERT_EQUAL(a->enrollment_count, b->enrollment_count);
    CU_ASSERT_EQUAL(a->published, b->published);
    CU_ASSERT_EQUAL(a->created_at, b->created_at);
    CU_ASSERT_EQUAL(a->updated_at, b->updated_at);
    CU_ASSERT_EQUAL_FATAL(a->nmodules, b->nmodules);
    for (size_t i = 0; i < a->nmodules; i++) {
        CU_ASSERT_STRING_EQUAL(a->modules[i].id, b->modules[i].id);
        CU_ASSERT_STRING_EQUAL(a->modules[i].title, b->modules[i].title);
        CU_ASSERT_STRING_EQUAL(a->modules[i].content, b->modules[i].content);
        CU_ASSERT_EQUAL(a->modules[i].duration_minutes, b->modules[i].duration_minutes);
        CU_ASSERT_EQUAL(a->modules[i].order, b->modules[i].order);
    }
}

static int is_lower_hex_id(const char *s)
{
    return strlen(s) == 24 && strspn(s, "0123456789abcdef") == 24;
}

static void test_roundtrip(void)
{
    struct fx_spec plain = {NULL, "Plain", "", "music", "beginner", {NULL}, T0, 1, 1.0, 3, 3};
    struct el_course in, got;
    char *a, *b;

    /* Every field, with ids generated by the store. */
    fx_build(&rich, &in);
    CU_ASSERT_EQUAL_FATAL(el_store_course_insert(store, &in), EL_OK);
    CU_ASSERT_TRUE(is_lower_hex_id(in.id));
    for (size_t i = 0; i < in.nmodules; i++) {
        CU_ASSERT_TRUE(is_lower_hex_id(in.modules[i].id));
        for (size_t j = 0; j < i; j++)
            CU_ASSERT_STRING_NOT_EQUAL(in.modules[i].id, in.modules[j].id);
        CU_ASSERT_STRING_NOT_EQUAL(in.modules[i].id, in.id);
    }
    CU_ASSERT_EQUAL_FATAL(el_store_course_get(store, in.id, &got), EL_OK);
    check_same_course(&in, &got);
    a = course_json(&in);
    b = course_json(&got);
    CU_ASSERT_STRING_EQUAL(a, b); /* the bytes the API sends */
    free(a);
    free(b);
    el_course_cleanup(&got);
    el_course_cleanup(&in);

    /* No tags, empty description, unpublished, minimum rating, 3 modules,
     * explicit ids. */
    fx_build(&plain, &in);
    strcpy(in.id, "6601234567890abcdef01234");
    strcpy(in.modules[1].id, "6601234567890abcdef0aaaa");
    CU_ASSERT_EQUAL_FATAL(el_store_course_insert(store, &in), EL_OK);
    CU_ASSERT_STRING_EQUAL(in.id, "6601234567890abcdef01234");
    CU_ASSERT_STRING_EQUAL(in.modules[1].id, "6601234567890abcdef0aaaa");
    CU_ASSERT_TRUE(is_lower_hex_id(in.modules[0].id));
    CU_ASSERT_EQUAL_FATAL(el_store_course_get(store, "6601234567890abcdef01234", &got), EL_OK);
    CU_ASSERT_FALSE(got.published);
    CU_ASSERT_EQUAL(got.ntags, 0);
    CU_ASSERT_STRING_EQUAL(got.description, "");
    check_same_course(&in, &got);
    a = course_json(&in);
    b = course_json(&got);
    CU_ASSERT_STRING_EQUAL(a, b);
    free(a);
    free(b);
    el_course_cleanup(&got);
    el_course_cleanup(&in);
}

static void test_generated_ids_distinct(void)
{
    struct fx_spec s = {NULL, "Twin", NULL, "music", "beginner", {NULL}, T0, 1, 3.0, 30, 3};
    struct el_course a, b;
    int64_t n = -1;

    fx_build(&s, &a);
    fx_build(&s, &b);
    CU_ASSERT_EQUAL_FATAL(el_store_course_insert(store, &a), EL_OK);
    CU_ASSERT_EQUAL_FATAL(el_store_course_insert(store, &b), EL_OK);
    CU_ASSERT_STRING_NOT_EQUAL(a.id, b.id);
    CU_ASSERT_STRING_NOT_EQUAL(a.modules[0].id, b.modules[0].id);
    CU_ASSERT_EQUAL(el_store_course_count(store, &n), EL_OK);
    CU_ASSERT_EQUAL(n, 2);
    el_course_cleanup(&a);
    el_course_cleanup(&b);
}

static void test_get_missing(void)
{
    char id[EL_OID_HEX];
    struct el_course got;
    int rc;

    insert_all(store, catalog, 3, NULL);
    el_oid_new(id);
    memset(&got, 0x55, sizeof(got));
    CU_ASSERT_EQUAL(el_store_course_get(store, id, &got), EL_ENOTFOUND);
    CU_ASSERT_PTR_NULL(got.title); /* nothing to clean up */
    CU_ASSERT_EQUAL(got.nmodules, 0);
    CU_ASSERT_EQUAL(el_store_course_get(store, "ffffffffffffffffffffffff", &got), EL_ENOTFOUND);
    /* Ids that are not ObjectIds never reach a query as anything else. */
    rc = el_store_course_get(store, "{\"$gt\":\"\"}", &got);
    CU_ASSERT(rc == EL_EINVAL || rc == EL_ENOTFOUND);
    rc = el_store_course_get(store, "' OR 1=1 --", &got);
    CU_ASSERT(rc == EL_EINVAL || rc == EL_ENOTFOUND);
    el_course_cleanup(&got);
}

static void test_duplicate_insert(void)
{
    struct el_course a, b, got;
    int64_t n = -1;

    fx_build(&catalog[0], &a);
    fx_build(&catalog[1], &b);
    strcpy(b.id, a.id); /* a different course under the same id */
    CU_ASSERT_EQUAL_FATAL(el_store_course_insert(store, &a), EL_OK);
    CU_ASSERT_EQUAL(el_store_course_insert(store, &b), EL_ECONFLICT);
    CU_ASSERT_EQUAL(el_store_course_insert(store, &a), EL_ECONFLICT);
    CU_ASSERT_EQUAL(el_store_course_count(store, &n), EL_OK);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL_FATAL(el_store_course_get(store, a.id, &got), EL_OK);
    check_same_course(&a, &got); /* the first one is untouched */
    el_course_cleanup(&got);
    el_course_cleanup(&a);
    el_course_cleanup(&b);
}

static void test_count(void)
{
    int64_t n = -1;

    CU_ASSERT_EQUAL(el_store_course_count(store, &n), EL_OK);
    CU_ASSERT_EQUAL(n, 0);
    insert_all(store, catalog, NCATALOG, NULL);
    CU_ASSERT_EQUAL(el_store_course_count(store, &n), EL_OK);
    CU_ASSERT_EQUAL(n, (int64_t)NCATALOG);
    CU_ASSERT_EQUAL(el_store_reset(store), EL_OK);
    CU_ASSERT_EQUAL(el_store_course_count(store, &n), EL_OK);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(el_store_ping(store), EL_OK);
}

static void test_list_filters(void)
{
    insert_all(store, catalog, NCATALOG, NULL);
    check_catalog_query("page_size=100");
    check_catalog_query("category=programming&page_size=100");
    check_catalog_query("category=design&page_size=100");
    check_catalog_query("difficulty=advanced&page_size=100");
    check_catalog_query("difficulty=beginner&sort_by=popular&page_size=100");
    check_catalog_query("category=music&difficulty=beginner&page_size=100");
    check_catalog_query("category=design&difficulty=advanced&sort_by=duration");
    /* Exact match only: no prefix, no case folding, nothing unknown. */
    check_list("category=Programming", 0, NULL, 0);
    check_list("category=prog", 0, NULL, 0);
    check_list("category=cooking", 0, NULL, 0);
    check_list("category=programming&difficulty=beginner", 1,
               (const char *[]){"66000000000000000000000a"}, 1);
}

static void test_list_sorts(void)
{
    insert_all(store, catalog, NCATALOG, NULL);
    check_catalog_query("sort_by=recent&page_size=100");
    check_catalog_query("sort_by=popular&page_size=100");
    check_catalog_query("sort_by=top_rated&page_size=100");
    check_catalog_query("sort_by=duration&page_size=100");
    /* Spelled out once, so the rule itself is on the page: created_at
     * descending, and the three courses at T0+5000 by id ascending. */
    check_list("sort_by=recent&page_size=7", 14,
               (const char *[]){"660000000000000000000001", "66000000000000000000000c",
                                "66000000000000000000000d", "660000000000000000000005",
                                "660000000000000000000008", "660000000000000000000009",
                                "660000000000000000000003"},
               7);
}

static void test_pagination(void)
{
    static const char *const sorts[] = {"recent", "popular", "top_rated", "duration"};
    char qs[128];

    insert_all(store, catalog, NCATALOG, NULL);
    for (size_t s = 0; s < 4; s++) {
        for (int page = 1; page <= 5; page++) { /* 4 + 4 + 4 + 2, then past the end */
            snprintf(qs, sizeof(qs), "sort_by=%s&page=%d&page_size=4", sorts[s], page);
            check_catalog_query(qs);
        }
    }
    check_list("page=1000000&page_size=100", 14, NULL, 0);
    check_list("page=2&page_size=14", 14, NULL, 0);
    check_catalog_query("page=14&page_size=1");
    check_catalog_query("category=music&page=2&page_size=3");
    check_list("category=music&page=3&page_size=3", 4, NULL, 0);
}

/* Courses whose only distinguishing text is a search target. */
// clang-format off
static const struct fx_spec findable[] = {
    {"670000000000000000000001", "Advanced PYTHON Patterns", "Decorators and generators.", "programming", "advanced", {"backend"}, T0 + 1, 10, 4.0, 60, 3},
    {"670000000000000000000002", "Systems Programming", "Learn rust The Hard Way, slowly.", "programming", "intermediate", {"backend"}, T0 + 2, 20, 4.1, 60, 3},
    {"670000000000000000000003", "Cluster Operations", "Containers at scale.", "devops", "advanced", {"docker", "Kubernetes"}, T0 + 3, 30, 4.2, 60, 3},
    {"670000000000000000000004", "Wordplay", "Cross field: xyz", "languages", "beginner", {"abc"}, T0 + 4, 40, 4.3, 60, 3},
    {"670000000000000000000005", "Cr\xc3\xa8me br\xc3\xbbl\xc3\xa9" "e", "Dessert.", "cooking", "beginner", {"french"}, T0 + 5, 50, 4.4, 60, 3},
};
// clang-format on

static void test_search_case_insensitive(void)
{
    static const char *const py[] = {"670000000000000000000001"};
    static const char *const rust[] = {"670000000000000000000002"};
    static const char *const kube[] = {"670000000000000000000003"};
    static const char *const backend[] = {"670000000000000000000002", "670000000000000000000001"};
    static const char *const creme[] = {"670000000000000000000005"};

    insert_all(store, findable, sizeof(findable) / sizeof(findable[0]), NULL);
    check_list("search=python", 1, py, 1);          /* title, other case */
    check_list("search=pAtTeRnS", 1, py, 1);        /* title, mixed case */
    check_list("search=RUST+the+hard", 1, rust, 1); /* description */
    check_list("search=kubernetes", 1, kube, 1);    /* a tag */
    check_list("search=UBERN", 1, kube, 1);         /* a substring of a tag */
    check_list("search=BACKEND", 2, backend, 2);    /* tags on two courses */
    check_list("search=backend&category=programming&difficulty=advanced", 1, py, 1);
    /* both last 60 minutes: the tie goes to the lower id, so page 2 is ...02 */
    check_list("search=backend&sort_by=duration&page_size=1&page=2", 2, backend, 1);
    check_list("search=no+such+words", 0, NULL, 0);
    /* Substrings never span two fields or two tags. */
    check_list("search=xyzabc", 0, NULL, 0);
    check_list("search=dockerkubernetes", 0, NULL, 0);
    check_list("search=wordplaycross", 0, NULL, 0);
    /* Non-ASCII bytes match as given; ASCII letters around them fold. */
    check_list("search=br%C3%BBl%C3%A9e", 1, creme, 1);
    check_list("search=CR%C3%A8ME", 1, creme, 1);
    /* An empty search is no filter. */
    check_list("search=", 5,
               (const char *[]){"670000000000000000000005", "670000000000000000000004",
                                "670000000000000000000003", "670000000000000000000002",
                                "670000000000000000000001"},
               5);
}

/* Each title holds one metacharacter sequence of LIKE, regex or MongoDB
 * query syntax; descriptions and tags hold none. */
// clang-format off
static const struct fx_spec metas[] = {
    {"680000000000000000000001", "Regex .* greedy", "", "x", "beginner", {NULL}, T0 + 1, 1, 1.0, 3, 3},
    {"680000000000000000000002", "A 100% course", "", "x", "beginner", {NULL}, T0 + 2, 1, 1.0, 3, 3},
    {"680000000000000000000003", "snake_case names", "", "x", "beginner", {NULL}, T0 + 3, 1, 1.0, 3, 3},
    {"680000000000000000000004", "C:\\path\\to", "", "x", "beginner", {NULL}, T0 + 4, 1, 1.0, 3, 3},
    {"680000000000000000000005", "f(x) functions", "", "x", "beginner", {NULL}, T0 + 5, 1, 1.0, 3, 3},
    {"680000000000000000000006", "[brackets] list", "", "x", "beginner", {NULL}, T0 + 6, 1, 1.0, 3, 3},
    {"680000000000000000000007", "The $where clause", "", "x", "beginner", {NULL}, T0 + 7, 1, 1.0, 3, 3},
    {"680000000000000000000008", "Query {\"$gt\":\"\"} trick", "", "x", "beginner", {NULL}, T0 + 8, 1, 1.0, 3, 3},
    {"680000000000000000000009", "abc plain", "", "x", "beginner", {NULL}, T0 + 9, 1, 1.0, 3, 3},
    {"68000000000000000000000a", "caret^ and pipe|", "", "x", "beginner", {NULL}, T0 + 10, 1, 1.0, 3, 3},
};
// clang-format on

static void test_search_literal(void)
{
    static const struct {
        const char *qs;
        const char *id; /* the one course it must find, or NULL for none */
    } cases[] = {
        {"search=.*", "680000000000000000000001"},
        {"search=.", "680000000000000000000001"},
        {"search=%25", "680000000000000000000002"},  /* % */
        {"search=_", "680000000000000000000003"},    /* _ */
        {"search=%5C", "680000000000000000000004"},  /* \ */
        {"search=%5Cp", "680000000000000000000004"}, /* \p: not a regex class */
        {"search=(", "680000000000000000000005"},
        {"search=f(x)", "680000000000000000000005"},
        {"search=%5B", "680000000000000000000006"}, /* [ */
        {"search=%5Bbrackets%5D", "680000000000000000000006"},
        {"search=%24where", "680000000000000000000007"},                   /* $where */
        {"search=%7B%22%24gt%22%3A%22%22%7D", "680000000000000000000008"}, /* {"$gt":""} */
        {"search=%5E", "68000000000000000000000a"},                        /* ^ */
        {"search=%7C", "68000000000000000000000a"},                        /* | */
        {"search=a.c", NULL},   /* would match "abc" as a regex */
        {"search=a_c", NULL},   /* would match "abc" as LIKE */
        {"search=a%25c", NULL}, /* a%c, would match "abc ... c" as LIKE */
        {"search=%5Babc%5D", NULL},
        {"search=%5Ea", NULL},    /* ^a would match "abc plain" */
        {"search=x%7Cabc", NULL}, /* x|abc would match "abc plain" */
        {"search=%5C%5C", NULL},  /* two backslashes: not in any title */
    };

    insert_all(store, metas, sizeof(metas) / sizeof(metas[0]), NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (cases[i].id)
            check_list(cases[i].qs, 1, &cases[i].id, 1);
        else
            check_list(cases[i].qs, 0, NULL, 0);
    }
}

/* Items in a list page are the same documents, byte for byte, as a get. */
static void test_list_json_matches_inserted(void)
{
    struct el_course in[NCATALOG];
    struct el_course_query q = query("sort_by=duration&page_size=100");
    struct el_course_page p;

    insert_all(store, catalog, NCATALOG, in);
    CU_ASSERT_EQUAL_FATAL(el_store_course_list(store, &q, &p), EL_OK);
    CU_ASSERT_EQUAL(p.nitems, NCATALOG);
    for (size_t i = 0; i < p.nitems; i++) {
        size_t j;
        for (j = 0; j < NCATALOG && strcmp(in[j].id, p.items[i].id) != 0; j++)
            ;
        CU_ASSERT_FATAL(j < NCATALOG);
        /* Items are summaries: every module there, its content not read. */
        char *a = summary_json(&in[j]), *b = summary_json(&p.items[i]);
        CU_ASSERT_STRING_EQUAL(a, b);
        free(a);
        free(b);
        CU_ASSERT_EQUAL(p.items[i].nmodules, in[j].nmodules);
        for (size_t m = 0; m < p.items[i].nmodules; m++)
            CU_ASSERT_STRING_EQUAL(p.items[i].modules[m].content, "");
    }
    el_course_page_cleanup(&p);
    for (size_t i = 0; i < NCATALOG; i++)
        el_course_cleanup(&in[i]);
}

/* ---- concurrency ------------------------------------------------------- */

#define NTHREADS 8
#define ROUNDS 25

static const char *const conc_queries[] = {
    "page_size=5",
    "sort_by=popular&category=design",
    "sort_by=top_rated&page=2&page_size=3",
    "search=theory&sort_by=duration",
};
#define NCONC (sizeof(conc_queries) / sizeof(conc_queries[0]))

struct conc {
    int index;
    char *get_json[NCATALOG]; /* expected, computed before the threads start */
    char *list_json[NCONC];
    int errors, mismatches;
};

static void *conc_worker(void *arg)
{
    struct conc *c = arg;
    struct el_buf b;

    el_buf_init(&b, 1 << 20);
    for (int r = 0; r < ROUNDS; r++) {
        size_t i = (size_t)(r + c->index) % NCATALOG, k = (size_t)(r + c->index) % NCONC;
        struct el_course got;
        struct el_course_page p;
        struct el_course_query q;

        el_buf_reset(&b);
        if (el_store_course_get(store, catalog[i].id, &got) != EL_OK ||
            el_course_to_json(&got, &b) != EL_OK)
            c->errors++;
        else if (strcmp(b.data, c->get_json[i]) != 0)
            c->mismatches++;
        el_course_cleanup(&got);

        el_buf_reset(&b);
        if (parse_every(conc_queries[k], &q) != EL_OK ||
            el_store_course_list(store, &q, &p) != EL_OK ||
            el_course_page_to_json(&p, &q, &b) != EL_OK)
            c->errors++;
        else if (strcmp(b.data, c->list_json[k]) != 0)
            c->mismatches++;
        el_course_page_cleanup(&p);
    }
    el_buf_cleanup(&b);
    el_store_thread_cleanup(store);
    return NULL;
}

static void test_concurrent_reads(void)
{
    static struct conc shared; /* expected JSON, read by every thread */
    struct conc w[NTHREADS];
    pthread_t t[NTHREADS];

    insert_all(store, catalog, NCATALOG, NULL);
    for (size_t i = 0; i < NCATALOG; i++) {
        struct el_course got;
        CU_ASSERT_EQUAL_FATAL(el_store_course_get(store, catalog[i].id, &got), EL_OK);
        shared.get_json[i] = course_json(&got);
        el_course_cleanup(&got);
    }
    for (size_t k = 0; k < NCONC; k++) {
        struct el_course_query q = query(conc_queries[k]);
        struct el_course_page p;
        CU_ASSERT_EQUAL_FATAL(el_store_course_list(store, &q, &p), EL_OK);
        shared.list_json[k] = page_json(&p, &q);
        el_course_page_cleanup(&p);
    }
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = shared;
        w[i].index = i;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, conc_worker, &w[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(t[i], NULL);
        CU_ASSERT_EQUAL(w[i].errors, 0);
        CU_ASSERT_EQUAL(w[i].mismatches, 0);
    }
    for (size_t i = 0; i < NCATALOG; i++)
        free(shared.get_json[i]);
    for (size_t k = 0; k < NCONC; k++)
        free(shared.list_json[k]);
    memset(&shared, 0, sizeof(shared));
}

/* ---- course writes ------------------------------------------- */

/* A patch that owns copies of what it is given (el_course_patch_cleanup). */
static void set_str(char **dst, const char *s)
{
    free(*dst);
    *dst = unit_strdup(s);
}

static void set_tags(struct el_course *c, const char *const *tags, size_t n)
{
    for (size_t i = 0; i < c->ntags; i++)
        free(c->tags[i]);
    free(c->tags);
    c->ntags = n;
    c->tags = unit_calloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        c->tags[i] = unit_strdup(tags[i]);
}

/* The ids a list query returns, space-separated (easy to compare and to
 * print). */
static void list_ids(const char *qs, char *out, size_t n)
{
    struct el_course_query q = query(qs);
    struct el_course_page p;

    out[0] = '\0';
    CU_ASSERT_EQUAL_FATAL(el_store_course_list(store, &q, &p), EL_OK);
    for (size_t i = 0; i < p.nitems; i++)
        snprintf(out + strlen(out), n - strlen(out), "%s%s", i ? " " : "", p.items[i].id);
    el_course_page_cleanup(&p);
}

static void check_stored(const struct el_course *want)
{
    struct el_course got;
    char *a, *b;

    CU_ASSERT_EQUAL_FATAL(el_store_course_get(store, want->id, &got), EL_OK);
    check_same_course(want, &got);
    a = course_json(want);
    b = course_json(&got);
    CU_ASSERT_STRING_EQUAL(a, b);
    free(a);
    free(b);
    el_course_cleanup(&got);
}

static void test_course_update(void)
{
    static const char *const new_tags[] = {"c", "embedded"};
    struct el_course in[3], out;
    struct el_course_patch p;
    char ids[256];

    insert_all(store, catalog, 3, in); /* ...0a Intro to C, ...03 Go, ...0e Typography */

    /* Title, tags and published change; nothing else does. */
    memset(&p, 0, sizeof(p));
    p.fields = EL_CF_TITLE | EL_CF_TAGS | EL_CF_PUBLISHED;
    p.c.title = unit_strdup("Intro to C, Second Edition");
    set_tags(&p.c, new_tags, 2);
    p.c.published = !in[0].published;
    p.c.description = unit_strdup("not flagged: must not be written");
    p.c.duration_minutes = 9999; /* not flagged either */
    CU_ASSERT_EQUAL_FATAL(el_store_course_update(store, in[0].id, &p, T0 + 777000, &out), EL_OK);
    set_str(&in[0].title, "Intro to C, Second Edition");
    set_tags(&in[0], new_tags, 2);
    in[0].published = !in[0].published;
    in[0].updated_at = T0 + 777000;
    check_same_course(&in[0], &out); /* the result is the document after */
    check_stored(&in[0]);            /* ... and what is stored */
    check_stored(&in[1]);            /* other courses are untouched */
    check_stored(&in[2]);
    el_course_cleanup(&out);
    el_course_patch_cleanup(&p);

    /* The rest of the fields, on another course. */
    memset(&p, 0, sizeof(p));
    p.fields = EL_CF_DESCRIPTION | EL_CF_CATEGORY | EL_CF_DIFFICULTY | EL_CF_DURATION;
    p.c.description = unit_strdup("Goroutines, channels and the scheduler.");
    p.c.category = unit_strdup("design");
    p.c.difficulty = unit_strdup("beginner");
    p.c.duration_minutes = 1;
    p.c.title = unit_strdup("not flagged");
    CU_ASSERT_EQUAL_FATAL(el_store_course_update(store, in[1].id, &p, T0 + 888000, &out), EL_OK);
    set_str(&in[1].description, "Goroutines, channels and the scheduler.");
    set_str(&in[1].category, "design");
    set_str(&in[1].difficulty, "beginner");
    in[1].duration_minutes = 1;
    in[1].updated_at = T0 + 888000;
    check_same_course(&in[1], &out);
    check_stored(&in[1]);
    el_course_cleanup(&out);
    el_course_patch_cleanup(&p);

    /* Lists and searches see the new values, and no longer the old. */
    list_ids("search=second+edition", ids, sizeof(ids));
    CU_ASSERT_STRING_EQUAL(ids, in[0].id);
    list_ids("search=EMBEDDED", ids, sizeof(ids));
    CU_ASSERT_STRING_EQUAL(ids, in[0].id);
    list_ids("search=systems", ids, sizeof(ids)); /* a dropped tag */
    CU_ASSERT_STRING_EQUAL(ids, "");
    list_ids("search=goroutines", ids, sizeof(ids));
    CU_ASSERT_STRING_EQUAL(ids, in[1].id);
    list_ids("category=design&sort_by=duration", ids, sizeof(ids)); /* 1 min, then 60 */
    CU_ASSERT_STRING_EQUAL(ids, "660000000000000000000003 66000000000000000000000e");
    list_ids("category=programming", ids, sizeof(ids));
    CU_ASSERT_STRING_EQUAL(ids, in[0].id);
    list_ids("difficulty=advanced", ids, sizeof(ids));
    CU_ASSERT_STRING_EQUAL(ids, "");
    list_ids("sort_by=duration&page_size=1", ids, sizeof(ids));
    CU_ASSERT_STRING_EQUAL(ids, in[1].id);

    /* Clearing the tags is a change too. */
    memset(&p, 0, sizeof(p));
    p.fields = EL_CF_TAGS;
    CU_ASSERT_EQUAL_FATAL(el_store_course_update(store, in[0].id, &p, T0 + 999000, &out), EL_OK);
    CU_ASSERT_EQUAL(out.ntags, 0);
    CU_ASSERT_EQUAL(out.updated_at, T0 + 999000);
    CU_ASSERT_STRING_EQUAL(out.title, "Intro to C, Second Edition");
    el_course_cleanup(&out);
    list_ids("search=embedded", ids, sizeof(ids));
    CU_ASSERT_STRING_EQUAL(ids, "");

    for (int i = 0; i < 3; i++)
        el_course_cleanup(&in[i]);
}

static void test_course_update_missing(void)
{
    struct el_course_patch p;
    struct el_course out;
    char id[EL_OID_HEX];
    int rc;

    insert_all(store, catalog, 2, NULL);
    memset(&p, 0, sizeof(p));
    p.fields = EL_CF_DURATION;
    p.c.duration_minutes = 5;
    el_oid_new(id);
    memset(&out, 0x55, sizeof(out));
    CU_ASSERT_EQUAL(el_store_course_update(store, id, &p, T0, &out), EL_ENOTFOUND);
    CU_ASSERT_PTR_NULL(out.title); /* nothing to clean up */
    CU_ASSERT_EQUAL(out.nmodules, 0);
    rc = el_store_course_update(store, "{\"$gt\":\"\"}", &p, T0, &out);
    CU_ASSERT(rc == EL_EINVAL || rc == EL_ENOTFOUND);
    el_course_cleanup(&out);
}

/* catalog[0]'s module ids: its id with characters 16-19 "ff00", "ff01"... */
static void module_id(const struct fx_spec *s, int i, char out[EL_OID_HEX])
{
    char tail[8];

    memcpy(out, s->id, EL_OID_HEX);
    snprintf(tail, sizeof(tail), "ff%02x", (unsigned)i);
    memcpy(out + 16, tail, 4);
}

static void test_module_update(void)
{
    struct el_course in[2], out;
    struct el_module_patch p;
    struct el_module m0;
    char mid[EL_OID_HEX];

    insert_all(store, catalog, 2, in); /* 3 and 5 modules */

    /* Title and content of the second module. */
    memset(&p, 0, sizeof(p));
    p.fields = EL_MF_TITLE | EL_MF_CONTENT;
    p.m.title = unit_strdup("Pointers, revisited");
    p.m.content = unit_strdup("New text.\nWith \"quotes\".");
    p.m.duration_minutes = 999; /* not flagged */
    p.m.order = 999;
    module_id(&catalog[0], 1, mid);
    CU_ASSERT_EQUAL_FATAL(el_store_module_update(store, in[0].id, mid, &p, T0 + 4242, &out), EL_OK);
    set_str(&in[0].modules[1].title, "Pointers, revisited");
    set_str(&in[0].modules[1].content, "New text.\nWith \"quotes\".");
    in[0].updated_at = T0 + 4242; /* the course's */
    check_same_course(&in[0], &out);
    check_stored(&in[0]);
    check_stored(&in[1]);
    el_course_cleanup(&out);
    el_module_patch_cleanup(&p);

    /* Duration and order of the first: it moves to the end of the list. */
    memset(&p, 0, sizeof(p));
    p.fields = EL_MF_DURATION | EL_MF_ORDER;
    p.m.duration_minutes = 77;
    p.m.order = 10;
    module_id(&catalog[0], 0, mid);
    CU_ASSERT_EQUAL_FATAL(el_store_module_update(store, in[0].id, mid, &p, T0 + 5353, &out), EL_OK);
    m0 = in[0].modules[0];
    m0.duration_minutes = 77;
    m0.order = 10;
    in[0].modules[0] = in[0].modules[1];
    in[0].modules[1] = in[0].modules[2];
    in[0].modules[2] = m0;
    in[0].updated_at = T0 + 5353;
    /* The module rule: the course lasts as long as its modules together. */
    in[0].duration_minutes =
        77 + in[0].modules[0].duration_minutes + in[0].modules[1].duration_minutes;
    check_same_course(&in[0], &out);
    check_stored(&in[0]);
    el_course_cleanup(&out);

    /* No such module; a module of another course; no such course. The
     * course is left as it was. */
    module_id(&catalog[0], 7, mid);
    CU_ASSERT_EQUAL(el_store_module_update(store, in[0].id, mid, &p, T0 + 6464, &out),
                    EL_ENOTFOUND);
    CU_ASSERT_PTR_NULL(out.title);
    module_id(&catalog[1], 0, mid);
    CU_ASSERT_EQUAL(el_store_module_update(store, in[0].id, mid, &p, T0 + 6464, &out),
                    EL_ENOTFOUND);
    CU_ASSERT_EQUAL(el_store_module_update(store, "650000000000000000000000", in[0].modules[0].id,
                                           &p, T0 + 6464, &out),
                    EL_ENOTFOUND);
    check_stored(&in[0]);
    check_stored(&in[1]);

    for (int i = 0; i < 2; i++)
        el_course_cleanup(&in[i]);
}

static void test_course_delete(void)
{
    struct el_course in[3], got;
    int64_t n = -1, count = -1;
    char ids[256];
    int rc;

    insert_all(store, catalog, 3, in);
    CU_ASSERT_EQUAL(el_store_enroll(store, in[1].id, "5a0000000000000000000001", &count), EL_OK);
    CU_ASSERT_EQUAL(el_store_course_delete(store, in[1].id), EL_OK);
    CU_ASSERT_EQUAL(el_store_course_get(store, in[1].id, &got), EL_ENOTFOUND);
    CU_ASSERT_EQUAL(el_store_course_count(store, &n), EL_OK);
    CU_ASSERT_EQUAL(n, 2);
    list_ids("sort_by=popular", ids, sizeof(ids)); /* 100 each: by id */
    CU_ASSERT_STRING_EQUAL(ids, "66000000000000000000000a 66000000000000000000000e");
    check_stored(&in[0]);
    check_stored(&in[2]);
    /* Twice, and unknown ids, are not found. */
    CU_ASSERT_EQUAL(el_store_course_delete(store, in[1].id), EL_ENOTFOUND);
    CU_ASSERT_EQUAL(el_store_course_delete(store, "650000000000000000000000"), EL_ENOTFOUND);
    rc = el_store_course_delete(store, "' OR 1=1 --");
    CU_ASSERT(rc == EL_EINVAL || rc == EL_ENOTFOUND);
    CU_ASSERT_EQUAL(el_store_course_count(store, &n), EL_OK);
    CU_ASSERT_EQUAL(n, 2);
    /* Its enrollments went with it: the same course inserted again can
     * take the same student again. */
    CU_ASSERT_EQUAL_FATAL(el_store_course_insert(store, &in[1]), EL_OK);
    CU_ASSERT_EQUAL(el_store_enroll(store, in[1].id, "5a0000000000000000000001", &count), EL_OK);
    CU_ASSERT_EQUAL(count, in[1].enrollment_count + 1);
    for (int i = 0; i < 3; i++)
        el_course_cleanup(&in[i]);
}

static void test_enroll(void)
{
    struct el_course in[2], got;
    int64_t count = -1;
    int rc;

    insert_all(store, catalog, 2, in); /* 100 and 900 enrolled */
    CU_ASSERT_EQUAL(el_store_enroll(store, in[0].id, "5a0000000000000000000001", &count), EL_OK);
    CU_ASSERT_EQUAL(count, 101);
    CU_ASSERT_EQUAL(el_store_enroll(store, in[0].id, "5a0000000000000000000002", &count), EL_OK);
    CU_ASSERT_EQUAL(count, 102);
    /* Again: a conflict, and the count stays. */
    CU_ASSERT_EQUAL(el_store_enroll(store, in[0].id, "5a0000000000000000000001", &count),
                    EL_ECONFLICT);
    CU_ASSERT_EQUAL_FATAL(el_store_course_get(store, in[0].id, &got), EL_OK);
    CU_ASSERT_EQUAL(got.enrollment_count, 102);
    el_course_cleanup(&got);
    /* The same student in another course is another enrollment. */
    CU_ASSERT_EQUAL(el_store_enroll(store, in[1].id, "5a0000000000000000000001", &count), EL_OK);
    CU_ASSERT_EQUAL(count, 901);
    /* No such course. */
    CU_ASSERT_EQUAL(
        el_store_enroll(store, "650000000000000000000000", "5a0000000000000000000001", &count),
        EL_ENOTFOUND);
    rc = el_store_enroll(store, "{\"$ne\":1}", "5a0000000000000000000001", &count);
    CU_ASSERT(rc == EL_EINVAL || rc == EL_ENOTFOUND);
    /* Only the count moved. */
    in[0].enrollment_count = 102;
    in[1].enrollment_count = 901;
    check_stored(&in[0]);
    check_stored(&in[1]);
    for (int i = 0; i < 2; i++)
        el_course_cleanup(&in[i]);
}

/* The revision: 1 on insert, + 1 with every write to the course, read back
 * by get and list, so caches can tell a newer document from an older one.
 * Concurrent enrolls each move it once. */
static void test_revision(void)
{
    struct el_course in[1], got, out;
    struct el_course_patch cp;
    struct el_module_patch mp;
    struct el_course_query q;
    struct el_course_page page;
    struct el_err err = {0, ""};
    char mid[EL_OID_HEX];
    int64_t count = 0;

    insert_all(store, catalog, 1, in);
    CU_ASSERT_EQUAL(in[0].rev, 1);
    CU_ASSERT_EQUAL_FATAL(el_store_course_get(store, in[0].id, &got), EL_OK);
    CU_ASSERT_EQUAL(got.rev, 1);
    el_course_cleanup(&got);
    memset(&cp, 0, sizeof(cp));
    cp.fields = EL_CF_TITLE;
    cp.c.title = unit_strdup("Revised");
    CU_ASSERT_EQUAL_FATAL(el_store_course_update(store, in[0].id, &cp, T0 + 1, &out), EL_OK);
    CU_ASSERT_EQUAL(out.rev, 2);
    el_course_cleanup(&out);
    el_course_patch_cleanup(&cp);
    memset(&mp, 0, sizeof(mp));
    mp.fields = EL_MF_DURATION;
    mp.m.duration_minutes = 5;
    module_id(&catalog[0], 0, mid);
    CU_ASSERT_EQUAL_FATAL(el_store_module_update(store, in[0].id, mid, &mp, T0 + 2, &out), EL_OK);
    CU_ASSERT_EQUAL(out.rev, 3);
    el_course_cleanup(&out);
    el_module_patch_cleanup(&mp);
    CU_ASSERT_EQUAL(el_store_enroll(store, in[0].id, "5a0000000000000000000001", &count), EL_OK);
    /* A refused enrollment changes nothing, the revision included. */
    CU_ASSERT_EQUAL(el_store_enroll(store, in[0].id, "5a0000000000000000000001", &count),
                    EL_ECONFLICT);
    CU_ASSERT_EQUAL_FATAL(el_store_course_get(store, in[0].id, &got), EL_OK);
    CU_ASSERT_EQUAL(got.rev, 4);
    el_course_cleanup(&got);
    CU_ASSERT_EQUAL_FATAL(el_course_query_parse("", &q, &err), EL_OK);
    CU_ASSERT_EQUAL_FATAL(el_store_course_list(store, &q, &page), EL_OK);
    CU_ASSERT_EQUAL_FATAL(page.nitems, 1);
    CU_ASSERT_EQUAL(page.items[0].rev, 4);
    el_course_page_cleanup(&page);
    el_course_cleanup(&in[0]);
}

/* ---- users -------------------------------------------------------------- */

static void check_same_user(const struct el_user *a, const struct el_user *b)
{
    CU_ASSERT_STRING_EQUAL(a->id, b->id);
    CU_ASSERT_STRING_EQUAL(a->email, b->email);
    CU_ASSERT_STRING_EQUAL(a->name, b->name);
    CU_ASSERT_STRING_EQUAL(a->role, b->role);
    CU_ASSERT_STRING_EQUAL(a->password_hash, b->password_hash);
    CU_ASSERT_EQUAL(a->created_at, b->created_at);
}

static void test_users(void)
{
    struct el_user a, b, got;
    int64_t before = el_wall_ms();
    int rc;

    /* Insert with a generated id and creation time. */
    fx_user(&a, "ann@example.com", "student");
    CU_ASSERT_EQUAL_FATAL(el_store_user_insert(store, &a), EL_OK);
    CU_ASSERT_TRUE(is_lower_hex_id(a.id));
    CU_ASSERT(a.created_at >= before && a.created_at <= el_wall_ms());
    CU_ASSERT_EQUAL_FATAL(el_store_user_get(store, a.id, &got), EL_OK);
    check_same_user(&a, &got);
    el_user_cleanup(&got);
    CU_ASSERT_EQUAL_FATAL(el_store_user_get_by_email(store, "ann@example.com", &got), EL_OK);
    check_same_user(&a, &got);
    el_user_cleanup(&got);

    /* An explicit id and time are kept. */
    fx_user(&b, "bob@example.com", "instructor");
    strcpy(b.id, "5b0000000000000000000001");
    b.created_at = T0;
    CU_ASSERT_EQUAL_FATAL(el_store_user_insert(store, &b), EL_OK);
    CU_ASSERT_STRING_EQUAL(b.id, "5b0000000000000000000001");
    CU_ASSERT_EQUAL(b.created_at, T0);
    CU_ASSERT_EQUAL_FATAL(el_store_user_get(store, b.id, &got), EL_OK);
    check_same_user(&b, &got);
    el_user_cleanup(&got);

    /* A taken email is a conflict, and the first account is untouched. */
    {
        struct el_user dup;

        fx_user(&dup, "ann@example.com", "admin");
        CU_ASSERT_EQUAL(el_store_user_insert(store, &dup), EL_ECONFLICT);
        el_user_cleanup(&dup);
        CU_ASSERT_EQUAL_FATAL(el_store_user_get_by_email(store, "ann@example.com", &got), EL_OK);
        check_same_user(&a, &got);
        el_user_cleanup(&got);
    }

    /* Lookups that find nothing leave nothing to clean up. */
    memset(&got, 0x55, sizeof(got));
    CU_ASSERT_EQUAL(el_store_user_get(store, "5b00000000000000000000ff", &got), EL_ENOTFOUND);
    CU_ASSERT_PTR_NULL(got.email);
    CU_ASSERT_EQUAL(el_store_user_get_by_email(store, "nobody@example.com", &got), EL_ENOTFOUND);
    CU_ASSERT_PTR_NULL(got.email);
    CU_ASSERT_EQUAL(el_store_user_get_by_email(store, "ANN@example.com", &got), EL_ENOTFOUND);
    rc = el_store_user_get(store, "{\"$gt\":\"\"}", &got);
    CU_ASSERT(rc == EL_EINVAL || rc == EL_ENOTFOUND);
    rc = el_store_user_get_by_email(store, "{\"$gt\":\"\"}", &got);
    CU_ASSERT(rc == EL_EINVAL || rc == EL_ENOTFOUND);

    /* Role only, hash only, both; the other user never changes. */
    CU_ASSERT_EQUAL(el_store_user_update(store, a.id, "admin", NULL), EL_OK);
    snprintf(a.role, sizeof(a.role), "admin");
    CU_ASSERT_EQUAL_FATAL(el_store_user_get(store, a.id, &got), EL_OK);
    check_same_user(&a, &got);
    el_user_cleanup(&got);
    CU_ASSERT_EQUAL(el_store_user_update(store, a.id, NULL, "$argon2id$v=19$new"), EL_OK);
    set_str(&a.password_hash, "$argon2id$v=19$new");
    CU_ASSERT_EQUAL_FATAL(el_store_user_get_by_email(store, a.email, &got), EL_OK);
    check_same_user(&a, &got);
    el_user_cleanup(&got);
    CU_ASSERT_EQUAL(el_store_user_update(store, a.id, "instructor", "$argon2id$v=19$newer"), EL_OK);
    snprintf(a.role, sizeof(a.role), "instructor");
    set_str(&a.password_hash, "$argon2id$v=19$newer");
    CU_ASSERT_EQUAL_FATAL(el_store_user_get(store, a.id, &got), EL_OK);
    check_same_user(&a, &got);
    el_user_cleanup(&got);
    CU_ASSERT_EQUAL(el_store_user_update(store, "5b00000000000000000000ff", "admin", NULL),
                    EL_ENOTFOUND);
    CU_ASSERT_EQUAL_FATAL(el_store_user_get(store, b.id, &got), EL_OK);
    check_same_user(&b, &got);
    el_user_cleanup(&got);

    /* Delete: gone by id and by email, once; the email is free again. */
    CU_ASSERT_EQUAL(el_store_user_delete(store, a.id), EL_OK);
    CU_ASSERT_EQUAL(el_store_user_get(store, a.id, &got), EL_ENOTFOUND);
    CU_ASSERT_EQUAL(el_store_user_get_by_email(store, "ann@example.com", &got), EL_ENOTFOUND);
    CU_ASSERT_EQUAL(el_store_user_delete(store, a.id), EL_ENOTFOUND);
    CU_ASSERT_EQUAL(el_store_user_update(store, a.id, "admin", NULL), EL_ENOTFOUND);
    CU_ASSERT_EQUAL_FATAL(el_store_user_get(store, b.id, &got), EL_OK);
    check_same_user(&b, &got);
    el_user_cleanup(&got);
    el_user_cleanup(&a);
    fx_user(&a, "ann@example.com", "student");
    CU_ASSERT_EQUAL(el_store_user_insert(store, &a), EL_OK);
    el_user_cleanup(&a);

    /* A taken id is a conflict too. */
    fx_user(&a, "carol@example.com", "student");
    strcpy(a.id, b.id);
    CU_ASSERT_EQUAL(el_store_user_insert(store, &a), EL_ECONFLICT);
    CU_ASSERT_EQUAL(el_store_user_get_by_email(store, "carol@example.com", &got), EL_ENOTFOUND);
    el_user_cleanup(&a);
    el_user_cleanup(&b);
}

/* ---- refresh tokens and revocations ------------------------------------- */

/* Times in these tests are near the wall clock, as in production: a store
 * may forget what expired by the wall clock (SQLite deletes such rows as it
 * goes), so expiry is tested by passing a later now_ms, never by storing a
 * time in the past. */
static void test_refresh_tokens(void)
{
    const char *user = "5b0000000000000000000001";
    const char *sid = "5e55000000000000000000000000000a";
    int64_t now = el_wall_ms();

    CU_ASSERT_EQUAL_FATAL(el_store_refresh_insert(store, "aa000000000000000000000000000001", user,
                                                  sid, now + 3600000),
                          EL_OK);
    CU_ASSERT_EQUAL_FATAL(
        el_store_refresh_insert(store, "aa000000000000000000000000000002", user, sid, now + 1000),
        EL_OK);
    /* Claimed once; every later claim is a reuse. */
    CU_ASSERT_EQUAL(el_store_refresh_claim(store, "aa000000000000000000000000000001", now), EL_OK);
    CU_ASSERT_EQUAL(el_store_refresh_claim(store, "aa000000000000000000000000000001", now),
                    EL_ECONFLICT);
    CU_ASSERT_EQUAL(el_store_refresh_claim(store, "aa000000000000000000000000000001", now + 5),
                    EL_ECONFLICT);
    /* Expired at its expiry instant: not found, and not used up by the
     * failed claim (a claim before expiry still works). */
    CU_ASSERT_EQUAL(el_store_refresh_claim(store, "aa000000000000000000000000000002", now + 1000),
                    EL_ENOTFOUND);
    CU_ASSERT_EQUAL(el_store_refresh_claim(store, "aa000000000000000000000000000002", now + 999),
                    EL_OK);
    CU_ASSERT_EQUAL(el_store_refresh_claim(store, "aa000000000000000000000000000002", now + 999),
                    EL_ECONFLICT);
    /* Unknown. */
    CU_ASSERT_EQUAL(el_store_refresh_claim(store, "aa0000000000000000000000000000ff", now),
                    EL_ENOTFOUND);
    /* Reset forgets them all. */
    CU_ASSERT_EQUAL(el_store_refresh_insert(store, "aa000000000000000000000000000003", user, sid,
                                            now + 3600000),
                    EL_OK);
    CU_ASSERT_EQUAL(el_store_reset(store), EL_OK);
    CU_ASSERT_EQUAL(el_store_refresh_claim(store, "aa000000000000000000000000000003", now),
                    EL_ENOTFOUND);
}

#define NCLAIMERS 8

struct claimer {
    pthread_barrier_t *start;
    const char *jti;       /* the token all claim */
    const char *course;    /* the course all enroll in */
    char user[EL_OID_HEX]; /* each its own student */
    int64_t now, count;
    int rc, rc_again;
};

static void *claim_worker(void *arg)
{
    struct claimer *w = arg;

    pthread_barrier_wait(w->start); /* all claim at once */
    w->rc = el_store_refresh_claim(store, w->jti, w->now);
    el_store_thread_cleanup(store);
    return NULL;
}

static void test_concurrent_claim(void)
{
    struct claimer w[NCLAIMERS];
    pthread_t t[NCLAIMERS];
    pthread_barrier_t start;
    int64_t now = el_wall_ms();
    int ok = 0, conflict = 0;

    CU_ASSERT_EQUAL_FATAL(el_store_refresh_insert(store, "bb000000000000000000000000000001",
                                                  "5b0000000000000000000001",
                                                  "5e55000000000000000000000000000b", now + 60000),
                          EL_OK);
    CU_ASSERT_EQUAL_FATAL(pthread_barrier_init(&start, NULL, NCLAIMERS), 0);
    for (int i = 0; i < NCLAIMERS; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].start = &start;
        w[i].jti = "bb000000000000000000000000000001";
        w[i].now = now;
        w[i].rc = 1;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, claim_worker, &w[i]), 0);
    }
    for (int i = 0; i < NCLAIMERS; i++) {
        pthread_join(t[i], NULL);
        ok += w[i].rc == EL_OK;
        conflict += w[i].rc == EL_ECONFLICT;
    }
    pthread_barrier_destroy(&start);
    CU_ASSERT_EQUAL(ok, 1);
    CU_ASSERT_EQUAL(conflict, NCLAIMERS - 1);
}

static void *enroll_worker(void *arg)
{
    struct claimer *w = arg;
    int64_t again = -1;

    pthread_barrier_wait(w->start);
    w->rc = el_store_enroll(store, w->course, w->user, &w->count);
    w->rc_again = el_store_enroll(store, w->course, w->user, &again);
    el_store_thread_cleanup(store);
    return NULL;
}

static void test_concurrent_enroll(void)
{
    struct claimer w[NCLAIMERS];
    pthread_t t[NCLAIMERS];
    pthread_barrier_t start;
    struct el_course in[1], got;
    unsigned seen = 0;

    insert_all(store, catalog, 1, in); /* 100 enrolled */
    CU_ASSERT_EQUAL_FATAL(pthread_barrier_init(&start, NULL, NCLAIMERS), 0);
    for (int i = 0; i < NCLAIMERS; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].start = &start;
        w[i].course = in[0].id;
        snprintf(w[i].user, sizeof(w[i].user), "5a00000000000000000000%02x", (unsigned)i);
        w[i].rc = w[i].rc_again = 1;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, enroll_worker, &w[i]), 0);
    }
    for (int i = 0; i < NCLAIMERS; i++) {
        pthread_join(t[i], NULL);
        CU_ASSERT_EQUAL(w[i].rc, EL_OK);
        CU_ASSERT_EQUAL(w[i].rc_again, EL_ECONFLICT);
        /* Each saw its own increment: the counts are 101..108, once each. */
        if (w[i].count > 100 && w[i].count <= 100 + NCLAIMERS)
            seen |= 1u << (w[i].count - 101);
    }
    pthread_barrier_destroy(&start);
    CU_ASSERT_EQUAL(seen, (1u << NCLAIMERS) - 1);
    CU_ASSERT_EQUAL_FATAL(el_store_course_get(store, in[0].id, &got), EL_OK);
    CU_ASSERT_EQUAL(got.enrollment_count, 100 + NCLAIMERS);
    CU_ASSERT_EQUAL(got.rev, 1 + NCLAIMERS); /* one revision per enrollment */
    el_course_cleanup(&got);
    el_course_cleanup(&in[0]);
}

static int is_revoked(const char *jti, const char *sid, int64_t now)
{
    int r = -1;

    CU_ASSERT_EQUAL(el_store_revoked(store, jti, sid, now, &r), EL_OK);
    return r;
}

struct live {
    int calls, stop_at;
    char ids[8][72];
    int64_t exp[8];
};

static int collect_live(const char *id, int64_t expires_ms, void *arg)
{
    struct live *l = arg;

    if (l->calls < 8) {
        snprintf(l->ids[l->calls], sizeof(l->ids[0]), "%s", id);
        l->exp[l->calls] = expires_ms;
    }
    l->calls++;
    return l->calls == l->stop_at ? 42 : 0;
}

/* The expiry recorded for id in l, or -1. */
static int64_t live_expiry(const struct live *l, const char *id)
{
    for (int i = 0; i < l->calls && i < 8; i++)
        if (strcmp(l->ids[i], id) == 0)
            return l->exp[i];
    return -1;
}

static void test_revocations(void)
{
    const char *jti = "cc000000000000000000000000000001";
    const char *sid = "5e55000000000000000000000000000c";
    const char *later = "cc000000000000000000000000000002";
    const char *other = "cc0000000000000000000000000000ff";
    int64_t now = el_wall_ms();
    struct live l;

    CU_ASSERT_EQUAL(is_revoked(jti, sid, now), 0);
    CU_ASSERT_EQUAL(is_revoked(NULL, NULL, now), 0);

    /* A token by its jti, until its expiry (exclusive). */
    CU_ASSERT_EQUAL(el_store_revoke(store, jti, now + 60000), EL_OK);
    CU_ASSERT_EQUAL(is_revoked(jti, NULL, now), 1);
    CU_ASSERT_EQUAL(is_revoked(jti, "5e5500000000000000000000000000ff", now), 1);
    CU_ASSERT_EQUAL(is_revoked(jti, NULL, now + 59999), 1);
    CU_ASSERT_EQUAL(is_revoked(jti, NULL, now + 60000), 0);
    CU_ASSERT_EQUAL(is_revoked(other, NULL, now), 0);

    /* A whole login by its sid: every token of it. */
    CU_ASSERT_EQUAL(is_revoked(other, sid, now), 0);
    CU_ASSERT_EQUAL(el_store_revoke(store, sid, now + 120000), EL_OK);
    CU_ASSERT_EQUAL(is_revoked(other, sid, now), 1);
    CU_ASSERT_EQUAL(is_revoked(NULL, sid, now + 119999), 1);
    CU_ASSERT_EQUAL(is_revoked(other, sid, now + 120000), 0);

    /* Idempotent, and the later expiry wins whichever comes first. */
    CU_ASSERT_EQUAL(el_store_revoke(store, later, now + 10000), EL_OK);
    CU_ASSERT_EQUAL(el_store_revoke(store, later, now + 50000), EL_OK);
    CU_ASSERT_EQUAL(el_store_revoke(store, later, now + 20000), EL_OK);
    CU_ASSERT_EQUAL(is_revoked(later, NULL, now + 49999), 1);
    CU_ASSERT_EQUAL(is_revoked(later, NULL, now + 50000), 0);

    /* Live at now + 55 s: jti (60 s) and sid (120 s), not later (50 s). */
    memset(&l, 0, sizeof(l));
    CU_ASSERT_EQUAL(el_store_revocations_live(store, now + 55000, collect_live, &l), EL_OK);
    CU_ASSERT_EQUAL(l.calls, 2);
    CU_ASSERT_EQUAL(live_expiry(&l, jti), now + 60000);
    CU_ASSERT_EQUAL(live_expiry(&l, sid), now + 120000);
    CU_ASSERT_EQUAL(live_expiry(&l, later), -1);
    /* All three at now. */
    memset(&l, 0, sizeof(l));
    CU_ASSERT_EQUAL(el_store_revocations_live(store, now, collect_live, &l), EL_OK);
    CU_ASSERT_EQUAL(l.calls, 3);
    CU_ASSERT_EQUAL(live_expiry(&l, later), now + 50000);
    /* None after the last expiry. */
    memset(&l, 0, sizeof(l));
    CU_ASSERT_EQUAL(el_store_revocations_live(store, now + 120000, collect_live, &l), EL_OK);
    CU_ASSERT_EQUAL(l.calls, 0);
    /* A non-zero return from fn stops the walk and is returned. */
    memset(&l, 0, sizeof(l));
    l.stop_at = 1;
    CU_ASSERT_EQUAL(el_store_revocations_live(store, now, collect_live, &l), 42);
    CU_ASSERT_EQUAL(l.calls, 1);

    /* Reset forgets them. */
    CU_ASSERT_EQUAL(el_store_reset(store), EL_OK);
    CU_ASSERT_EQUAL(is_revoked(jti, sid, now), 0);
}

/* Users and courses do not share a namespace or a reset gap: reset
 * empties users too. */
static void test_reset_clears_users(void)
{
    struct el_user u, got;

    fx_user(&u, "dora@example.com", "student");
    CU_ASSERT_EQUAL_FATAL(el_store_user_insert(store, &u), EL_OK);
    CU_ASSERT_EQUAL(el_store_reset(store), EL_OK);
    CU_ASSERT_EQUAL(el_store_user_get(store, u.id, &got), EL_ENOTFOUND);
    CU_ASSERT_EQUAL(el_store_user_get_by_email(store, "dora@example.com", &got), EL_ENOTFOUND);
    el_user_cleanup(&u);
}

/* ---- both backends, same bytes ----------------------------------------- */

/* Run in the mongo suite: the same data in a SQLite store gives the same
 * list pages and documents, byte for byte. */
static void test_same_json_as_sqlite(void)
{
    static const char *const qs[] = {
        "page_size=100",
        "sort_by=popular&page_size=100",
        "sort_by=top_rated&page_size=100",
        "sort_by=duration&page_size=100",
        "category=design&sort_by=top_rated",
        "difficulty=advanced&sort_by=duration&page=2&page_size=2",
        "search=THEORY",
        "search=o&page=2&page_size=3",
        "search=%C3%A9T%C3%A9&sort_by=popular",
        "page=9",
    };
    struct el_store *lite = NULL;
    struct el_err err = {0, ""};
    char uri[600];
    const char *dir = getenv("EL_TEST_TMPDIR");

    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    snprintf(uri, sizeof(uri), "sqlite:%s/cross.db", dir);
    if (el_store_open(uri, &lite, &err) != EL_OK)
        fprintf(stderr, "\n  %s\n", err.msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(lite);
    CU_ASSERT_EQUAL(el_store_reset(lite), EL_OK);
    insert_all(store, catalog, NCATALOG, NULL);
    insert_all(lite, catalog, NCATALOG, NULL);
    /* The rich course too, with the same ids in both. */
    for (int k = 0; k < 2; k++) {
        struct fx_spec r = rich;
        struct el_course c;

        r.id = "69000000000000000000abcd";
        fx_build(&r, &c);
        for (size_t i = 0; i < c.nmodules; i++)
            snprintf(c.modules[i].id, EL_OID_HEX, "6900000000000000000001%02x",
                     (unsigned)i & 0xffu);
        CU_ASSERT_EQUAL(el_store_course_insert(k ? lite : store, &c), EL_OK);
        el_course_cleanup(&c);
    }
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        struct el_course_query q = query(qs[i]);
        struct el_course_page pm, ps;
        char *jm, *js;

        CU_ASSERT_EQUAL_FATAL(el_store_course_list(store, &q, &pm), EL_OK);
        CU_ASSERT_EQUAL_FATAL(el_store_course_list(lite, &q, &ps), EL_OK);
        jm = page_json(&pm, &q);
        js = page_json(&ps, &q);
        if (strcmp(jm, js) != 0)
            fprintf(stderr, "\n  \"%s\":\n  mongo  %s\n  sqlite %s\n", qs[i], jm, js);
        CU_ASSERT_STRING_EQUAL(jm, js);
        free(jm);
        free(js);
        el_course_page_cleanup(&pm);
        el_course_page_cleanup(&ps);
    }
    el_store_close(lite);
}

/* ---- SQLite only: the file --------------------------------------------- */

static void test_sqlite_creates_directories(void)
{
    char uri[600];
    struct el_store *s = NULL;
    struct el_err err = {0, ""};
    struct stat sb;

    snprintf(uri, sizeof(uri), "sqlite:%s", unit_tmp_path("new/nested/dir/x.db"));
    CU_ASSERT_EQUAL_FATAL(el_store_open(uri, &s, &err), EL_OK);
    CU_ASSERT_STRING_EQUAL(el_store_kind(s), "sqlite");
    CU_ASSERT_EQUAL(stat(unit_tmp_path("new/nested/dir/x.db"), &sb), 0);
    el_store_close(s);
}

static void test_sqlite_unusable_paths(void)
{
    char uri[600];
    struct el_store *s = (struct el_store *)&s;
    struct el_err err = {0, ""};
    FILE *f = fopen(unit_tmp_path("plainfile"), "w");

    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fclose(f);
    /* A directory that cannot be made (a file is in the way). */
    snprintf(uri, sizeof(uri), "sqlite:%s", unit_tmp_path("plainfile/sub/x.db"));
    CU_ASSERT_EQUAL(el_store_open(uri, &s, &err), EL_EUNAVAIL);
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT_EQUAL(err.code, EL_EUNAVAIL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "plainfile"));
    /* A path that is a directory, not a database file. */
    snprintf(uri, sizeof(uri), "sqlite:%s", unit_tmp_path(""));
    CU_ASSERT_EQUAL(el_store_open(uri, &s, &err), EL_EUNAVAIL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "cannot open"));
    /* A file that is not a database. */
    f = fopen(unit_tmp_path("garbage.db"), "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    for (int i = 0; i < 512; i++)
        fputs("not a database ", f);
    fclose(f);
    snprintf(uri, sizeof(uri), "sqlite:%s", unit_tmp_path("garbage.db"));
    CU_ASSERT_EQUAL(el_store_open(uri, &s, &err), EL_EUNAVAIL);
    CU_ASSERT_PTR_NULL(s);

    CU_ASSERT_EQUAL(el_store_open("sqlite::memory:", &s, &err), EL_EINVAL);
    CU_ASSERT_EQUAL(el_store_open("sqlite:", &s, &err), EL_EINVAL);
    CU_ASSERT_EQUAL(el_store_open("postgres://x", &s, &err), EL_EINVAL);
    CU_ASSERT_EQUAL(el_store_open(NULL, &s, NULL), EL_EINVAL);
}

static void test_sqlite_file_persists_in_wal_mode(void)
{
    char uri[600];
    const char *path = unit_tmp_path("persist.db");
    struct el_store *s = NULL;
    struct el_course c, got;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;

    snprintf(uri, sizeof(uri), "sqlite:%s", path);
    CU_ASSERT_EQUAL_FATAL(el_store_open(uri, &s, NULL), EL_OK);
    fx_build(&catalog[3], &c);
    CU_ASSERT_EQUAL(el_store_course_insert(s, &c), EL_OK);
    el_store_close(s);
    s = NULL;

    CU_ASSERT_EQUAL_FATAL(el_store_open(uri, &s, NULL), EL_OK);
    CU_ASSERT_EQUAL(el_store_course_get(s, catalog[3].id, &got), EL_OK);
    check_same_course(&c, &got);
    el_course_cleanup(&got);
    el_course_cleanup(&c);
    el_store_close(s);

    CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &db), SQLITE_OK);
    CU_ASSERT_EQUAL(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    CU_ASSERT_EQUAL(sqlite3_step(st), SQLITE_ROW);
    CU_ASSERT_STRING_EQUAL((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_sqlite_ids_lowercased(void)
{
    struct el_course c, got;

    fx_build(&catalog[0], &c);
    strcpy(c.id, "66000000000000000000ABCD");
    CU_ASSERT_EQUAL_FATAL(el_store_course_insert(store, &c), EL_OK);
    CU_ASSERT_EQUAL_FATAL(el_store_course_get(store, "66000000000000000000abcd", &got), EL_OK);
    CU_ASSERT_STRING_EQUAL(got.id, "66000000000000000000abcd");
    el_course_cleanup(&got);
    CU_ASSERT_EQUAL(el_store_course_get(store, "66000000000000000000ABCD", &got), EL_OK);
    el_course_cleanup(&got);
    /* Not an id: refused before any query. */
    CU_ASSERT_EQUAL(el_store_course_get(store, "66000000000000000000abc", &got), EL_EINVAL);
    strcpy(c.id, "zz0000000000000000000000");
    CU_ASSERT_EQUAL(el_store_course_insert(store, &c), EL_EINVAL);
    el_course_cleanup(&c);
}

/* A query struct built by hand, not by el_course_query_parse, is still
 * checked: bad paging and a search needle holding the search_text
 * separator byte (0xFF, never valid UTF-8) are refused. */
static void test_sqlite_rejects_bad_queries(void)
{
    struct el_course_query q = query("");
    struct el_course_page p;

    insert_all(store, catalog, 2, NULL);
    q.page_size = 0;
    CU_ASSERT_EQUAL(el_store_course_list(store, &q, &p), EL_EINVAL);
    q.page_size = 101;
    CU_ASSERT_EQUAL(el_store_course_list(store, &q, &p), EL_EINVAL);
    q = query("");
    q.page = 0;
    CU_ASSERT_EQUAL(el_store_course_list(store, &q, &p), EL_EINVAL);
    q = query("");
    q.sort = (enum el_sort)4;
    CU_ASSERT_EQUAL(el_store_course_list(store, &q, &p), EL_EINVAL);
    q = query("");
    strcpy(q.search, "c\xff");
    CU_ASSERT_EQUAL(el_store_course_list(store, &q, &p), EL_EINVAL);
    CU_ASSERT_PTR_NULL(p.items);
    q = query("search=intro");
    CU_ASSERT_EQUAL(el_store_course_list(store, &q, &p), EL_OK);
    CU_ASSERT_EQUAL(p.total, 1);
    el_course_page_cleanup(&p);
}

static void *cleanup_worker(void *arg)
{
    struct el_course got;
    int *rc = arg;

    /* Twice around a thread cleanup: the connection is reopened. */
    rc[0] = el_store_course_get(store, catalog[1].id, &got);
    el_course_cleanup(&got);
    el_store_thread_cleanup(store);
    el_store_thread_cleanup(store); /* harmless when there is none */
    rc[1] = el_store_course_get(store, catalog[1].id, &got);
    el_course_cleanup(&got);
    return NULL; /* exits holding a connection: the key destructor closes it */
}

static void test_sqlite_thread_cleanup(void)
{
    pthread_t t;
    int rc[2] = {1, 1};

    insert_all(store, catalog, 2, NULL);
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, cleanup_worker, rc), 0);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(rc[0], EL_OK);
    CU_ASSERT_EQUAL(rc[1], EL_OK);
}

/* A writer that holds the lock past the busy timeout makes an insert fail
 * with EL_EUNAVAIL after about 1.5 s -- bounded, not hung. */
static void test_sqlite_busy_is_unavailable(void)
{
    const char *dir = getenv("EL_TEST_TMPDIR");
    char path[600];
    sqlite3 *db = NULL;
    struct el_course c;
    uint64_t t0, ms;

    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    snprintf(path, sizeof(path), "%s/contract.db", dir);
    CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &db), SQLITE_OK);
    CU_ASSERT_EQUAL_FATAL(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    fx_build(&catalog[0], &c);
    t0 = el_now_ms();
    CU_ASSERT_EQUAL(el_store_course_insert(store, &c), EL_EUNAVAIL);
    ms = el_now_ms() - t0;
    CU_ASSERT(ms >= 1000 && ms < 5000);
    /* Readers are not blocked by the writer (WAL). */
    int64_t n = -1;
    CU_ASSERT_EQUAL(el_store_course_count(store, &n), EL_OK);
    CU_ASSERT_EQUAL(n, 0);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db);
    CU_ASSERT_EQUAL(el_store_course_insert(store, &c), EL_OK); /* and it recovers */
    el_course_cleanup(&c);
}

/* Open the suite's database file directly, beside the store. */
static sqlite3 *open_contract_db(void)
{
    const char *dir = getenv("EL_TEST_TMPDIR");
    char path[600];
    sqlite3 *db = NULL;

    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    snprintf(path, sizeof(path), "%s/contract.db", dir);
    CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 1500);
    return db;
}

static int64_t count_rows(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t n = -1;

    CU_ASSERT_EQUAL_FATAL(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* Rows that expired by the wall clock are deleted by later writes of the
 * same kind, at most 64 per write. */
static void test_sqlite_housekeeping(void)
{
    sqlite3 *db = open_contract_db();
    int64_t now = el_wall_ms();
    char sql[256];

    CU_ASSERT_EQUAL_FATAL(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    for (int i = 0; i < 100; i++) {
        snprintf(sql, sizeof(sql),
                 "INSERT INTO revocations VALUES ('old%d', %lld);"
                 "INSERT INTO refresh_tokens VALUES ('old%d', '5b0000000000000000000001', 's',"
                 " %lld, 0);",
                 i, (long long)(now - 1000 - i), i, (long long)(now - 1000 - i));
        CU_ASSERT_EQUAL_FATAL(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    }
    CU_ASSERT_EQUAL_FATAL(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);

    CU_ASSERT_EQUAL(el_store_revoke(store, "live1", now + 3600000), EL_OK);
    CU_ASSERT_EQUAL(count_rows(db, "SELECT count(*) FROM revocations"), 100 - 64 + 1);
    CU_ASSERT_EQUAL(el_store_revoke(store, "live2", now + 3600000), EL_OK);
    CU_ASSERT_EQUAL(count_rows(db, "SELECT count(*) FROM revocations"), 2);
    CU_ASSERT_EQUAL(count_rows(db, "SELECT count(*) FROM revocations WHERE id LIKE 'live%'"), 2);
    /* Refresh tokens likewise, on insert. */
    CU_ASSERT_EQUAL(count_rows(db, "SELECT count(*) FROM refresh_tokens"), 100);
    CU_ASSERT_EQUAL(
        el_store_refresh_insert(store, "live1", "5b0000000000000000000001", "s", now + 3600000),
        EL_OK);
    CU_ASSERT_EQUAL(count_rows(db, "SELECT count(*) FROM refresh_tokens"), 100 - 64 + 1);
    CU_ASSERT_EQUAL(
        el_store_refresh_insert(store, "live2", "5b0000000000000000000001", "s", now + 3600000),
        EL_OK);
    CU_ASSERT_EQUAL(count_rows(db, "SELECT count(*) FROM refresh_tokens"), 2);
    CU_ASSERT_EQUAL(el_store_refresh_claim(store, "old99", 0), EL_ENOTFOUND);
    CU_ASSERT_EQUAL(el_store_refresh_claim(store, "live1", now), EL_OK);
    sqlite3_close(db);
}

/* Ids are validated and stored lowercase in the new operations too, and
 * token ids must be short printable ASCII. */
static void test_sqlite_new_ops_validate(void)
{
    struct el_course in[1], out;
    struct el_course_patch p;
    struct el_user u, got;
    char longid[80];
    int64_t count = 0, now = el_wall_ms();
    int r;

    insert_all(store, catalog, 1, in);
    memset(&p, 0, sizeof(p));
    p.fields = EL_CF_DURATION;
    CU_ASSERT_EQUAL(el_store_course_update(store, "66000000000000000000000A", &p, T0, &out), EL_OK);
    CU_ASSERT_STRING_EQUAL(out.id, "66000000000000000000000a");
    el_course_cleanup(&out);
    p.fields = EL_CF_MODULES; /* set on create only */
    CU_ASSERT_EQUAL(el_store_course_update(store, in[0].id, &p, T0, &out), EL_EINVAL);
    CU_ASSERT_EQUAL(
        el_store_enroll(store, "66000000000000000000000A", "5A0000000000000000000001", &count),
        EL_OK);
    CU_ASSERT_EQUAL(el_store_enroll(store, in[0].id, "5a0000000000000000000001", &count),
                    EL_ECONFLICT);
    CU_ASSERT_EQUAL(el_store_enroll(store, in[0].id, "not-an-id", &count), EL_EINVAL);

    fx_user(&u, "u@example.com", "student");
    strcpy(u.id, "5B00000000000000000000AB");
    CU_ASSERT_EQUAL_FATAL(el_store_user_insert(store, &u), EL_OK);
    CU_ASSERT_EQUAL_FATAL(el_store_user_get(store, "5b00000000000000000000ab", &got), EL_OK);
    CU_ASSERT_STRING_EQUAL(got.id, "5b00000000000000000000ab");
    el_user_cleanup(&got);
    CU_ASSERT_EQUAL(el_store_user_update(store, u.id, "", NULL), EL_EINVAL);
    CU_ASSERT_EQUAL(el_store_user_update(store, u.id, "a-role-far-too-long", NULL), EL_EINVAL);
    el_user_cleanup(&u);
    fx_user(&u, "", "student");
    CU_ASSERT_EQUAL(el_store_user_insert(store, &u), EL_EINVAL);
    el_user_cleanup(&u);

    memset(longid, 'x', 65);
    longid[65] = '\0';
    CU_ASSERT_EQUAL(el_store_revoke(store, longid, now + 1000), EL_EINVAL);
    longid[64] = '\0';
    CU_ASSERT_EQUAL(el_store_revoke(store, longid, now + 1000), EL_OK);
    CU_ASSERT_EQUAL(el_store_revoke(store, "", now + 1000), EL_EINVAL);
    CU_ASSERT_EQUAL(el_store_revoke(store, "a b", now + 1000), EL_EINVAL);
    CU_ASSERT_EQUAL(el_store_revoked(store, "a\nb", NULL, now, &r), EL_EINVAL);
    CU_ASSERT_EQUAL(el_store_refresh_insert(store, "t", "5b0000000000000000000001", "", now),
                    EL_EINVAL);
    CU_ASSERT_EQUAL(el_store_refresh_insert(store, "t", "nope", "s", now), EL_EINVAL);
    CU_ASSERT_EQUAL(el_store_refresh_claim(store, NULL, now), EL_EINVAL);
    el_course_cleanup(&in[0]);
}

/* A version 1 file (courses only) is upgraded in place at open; a file
 * from a newer version is refused. */
static void test_sqlite_schema_upgrade(void)
{
    const char *path = unit_tmp_path("v1.db");
    char uri[600];
    struct el_store *s = NULL;
    struct el_err err = {0, ""};
    struct el_course c, got;
    struct el_user u;
    sqlite3 *db = NULL;

    snprintf(uri, sizeof(uri), "sqlite:%s", path);
    CU_ASSERT_EQUAL_FATAL(el_store_open(uri, &s, NULL), EL_OK);
    fx_build(&catalog[2], &c);
    CU_ASSERT_EQUAL(el_store_course_insert(s, &c), EL_OK);
    el_store_close(s);
    /* Make it what version 1 left. */
    CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &db), SQLITE_OK);
    CU_ASSERT_EQUAL(sqlite3_exec(db,
                                 "DROP TABLE users; DROP TABLE enrollments; DROP TABLE "
                                 "refresh_tokens; DROP TABLE revocations; ALTER TABLE courses "
                                 "DROP COLUMN rev; PRAGMA user_version = 1;",
                                 NULL, NULL, NULL),
                    SQLITE_OK);
    sqlite3_close(db);

    CU_ASSERT_EQUAL_FATAL(el_store_open(uri, &s, &err), EL_OK);
    CU_ASSERT_EQUAL(el_store_course_get(s, c.id, &got), EL_OK); /* data kept */
    check_same_course(&c, &got);
    CU_ASSERT_EQUAL(got.rev, 1); /* version 4: the revision column, 1 for old rows */
    el_course_cleanup(&got);
    fx_user(&u, "v1@example.com", "admin");
    CU_ASSERT_EQUAL(el_store_user_insert(s, &u), EL_OK); /* new tables there */
    el_user_cleanup(&u);
    el_store_close(s);
    CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &db), SQLITE_OK);
    CU_ASSERT_EQUAL(count_rows(db, "PRAGMA user_version"), 4);
    CU_ASSERT_EQUAL(sqlite3_exec(db, "PRAGMA user_version = 5", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    s = NULL;
    CU_ASSERT_EQUAL(el_store_open(uri, &s, &err), EL_EUNAVAIL);
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "newer"));
    el_course_cleanup(&c);
}

/* The store refuses to lie: with its file deleted, moved or replaced under
 * it, writes (in a transaction or alone) and pings fail with EL_EUNAVAIL,
 * reads go on; with the file back, everything works again, and every write
 * that was acknowledged is in it. */
static void test_sqlite_file_gone(void)
{
    const char *path = unit_tmp_path("gone.db");
    char uri[600], moved[600], other[600];
    struct el_store *s = NULL, *o = NULL;
    struct el_course c[4], got;
    int64_t n = 0, count = 0;

    snprintf(uri, sizeof(uri), "sqlite:%s", path);
    snprintf(moved, sizeof(moved), "%s.moved", path);
    snprintf(other, sizeof(other), "sqlite:%s.other", path);
    CU_ASSERT_EQUAL_FATAL(el_store_open(uri, &s, NULL), EL_OK);
    for (int i = 0; i < 4; i++)
        fx_build(&catalog[i], &c[i]);
    CU_ASSERT_EQUAL(el_store_course_insert(s, &c[0]), EL_OK);
    CU_ASSERT_EQUAL(el_store_ping(s), EL_OK);

    /* Moved away (also what a delete looks like from here). */
    CU_ASSERT_EQUAL_FATAL(rename(path, moved), 0);
    CU_ASSERT_EQUAL(el_store_course_insert(s, &c[1]), EL_EUNAVAIL);
    CU_ASSERT_EQUAL(el_store_enroll(s, c[0].id, "5a0000000000000000000001", &count), EL_EUNAVAIL);
    CU_ASSERT_EQUAL(el_store_course_delete(s, c[0].id), EL_EUNAVAIL); /* one statement */
    CU_ASSERT_EQUAL(el_store_ping(s), EL_EUNAVAIL);
    CU_ASSERT_EQUAL(el_store_course_get(s, c[0].id, &got), EL_OK); /* reads go on */
    el_course_cleanup(&got);

    /* Back: writes again. */
    CU_ASSERT_EQUAL_FATAL(rename(moved, path), 0);
    CU_ASSERT_EQUAL(el_store_ping(s), EL_OK);
    CU_ASSERT_EQUAL(el_store_course_insert(s, &c[2]), EL_OK);

    /* Replaced by another database file at the same path. */
    CU_ASSERT_EQUAL_FATAL(rename(path, moved), 0);
    CU_ASSERT_EQUAL_FATAL(el_store_open(other, &o, NULL), EL_OK);
    el_store_close(o);
    snprintf(other, sizeof(other), "%s.other", path);
    CU_ASSERT_EQUAL_FATAL(rename(other, path), 0);
    CU_ASSERT_EQUAL(el_store_course_insert(s, &c[3]), EL_EUNAVAIL);
    CU_ASSERT_EQUAL(el_store_ping(s), EL_EUNAVAIL);
    CU_ASSERT_EQUAL_FATAL(rename(moved, path), 0);
    el_store_close(s);

    /* After a restart: exactly the acknowledged courses. */
    CU_ASSERT_EQUAL_FATAL(el_store_open(uri, &s, NULL), EL_OK);
    CU_ASSERT_EQUAL(el_store_course_count(s, &n), EL_OK);
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_EQUAL(el_store_course_get(s, c[0].id, &got), EL_OK);
    el_course_cleanup(&got);
    CU_ASSERT_EQUAL(el_store_course_get(s, c[2].id, &got), EL_OK);
    el_course_cleanup(&got);
    el_store_close(s);
    for (int i = 0; i < 4; i++)
        el_course_cleanup(&c[i]);
}

/* ---- issue 12: drafts, my learning, modules, ratings -------------------- */

#define INSTR_B "5b00000000000000000000bb"

/* A course of instructor INSTR_B, published or a draft. */
static void insert_owned(const char *title, bool published, struct el_course *out)
{
    static const struct fx_spec sp = {NULL,     "x", NULL, "owned", "beginner", {"mine"},
                                      T0 + 100, 0,   0.0,  30,      2};

    fx_build(&sp, out);
    free(out->title);
    out->title = unit_strdup(title);
    strcpy(out->instructor_id, INSTR_B);
    out->published = published;
    CU_ASSERT_EQUAL_FATAL(el_store_course_insert(store, out), EL_OK);
}

static int64_t list_total(struct el_course_query *q, const char *must_not_contain)
{
    struct el_course_page p;
    int64_t total;

    CU_ASSERT_EQUAL_FATAL(el_store_course_list(store, q, &p), EL_OK);
    total = p.total;
    for (size_t i = 0; i < p.nitems; i++) {
        if (must_not_contain)
            CU_ASSERT_STRING_NOT_EQUAL(p.items[i].title, must_not_contain);
        if (q->instructor_id[0])
            CU_ASSERT_STRING_EQUAL(p.items[i].instructor_id, q->instructor_id);
        if (q->published_only)
            CU_ASSERT_TRUE(p.items[i].published);
    }
    el_course_page_cleanup(&p);
    return total;
}

static void test_list_visibility(void)
{
    struct el_course pub, draft;
    struct el_course_query q;
    size_t drafts = 0;

    insert_all(store, catalog, NCATALOG, NULL);
    for (size_t i = 0; i < NCATALOG; i++)
        drafts += catalog[i].enrollment % 2 != 0; /* fx_build(): odd counts are drafts */
    CU_ASSERT_FATAL(drafts > 0);
    insert_owned("B published", true, &pub);
    insert_owned("B draft", false, &draft);

    /* The public catalogue: no drafts, in totals or items. */
    q = query("page_size=100");
    q.published_only = true;
    CU_ASSERT_EQUAL(list_total(&q, "B draft"), (int64_t)(NCATALOG - drafts + 1));
    q.published_only = false;
    CU_ASSERT_EQUAL(list_total(&q, NULL), (int64_t)(NCATALOG + 2));
    /* One instructor's courses, with and without drafts; with the other
     * filters and sorts too. */
    q = query("page_size=100&instructor_id=" INSTR_B);
    q.published_only = false;
    CU_ASSERT_EQUAL(list_total(&q, NULL), 2);
    q.published_only = true;
    CU_ASSERT_EQUAL(list_total(&q, "B draft"), 1);
    q = query("sort_by=top_rated&category=owned&search=mine&instructor_id=" INSTR_B);
    q.published_only = false;
    CU_ASSERT_EQUAL(list_total(&q, NULL), 2);
    q = query("instructor_id=5b00000000000000000000cc");
    q.published_only = false;
    CU_ASSERT_EQUAL(list_total(&q, NULL), 0);
    el_course_cleanup(&pub);
    el_course_cleanup(&draft);
}

static void test_unenroll(void)
{
    struct el_course in[1], got;
    const char *u1 = "5a0000000000000000000001", *u2 = "5a0000000000000000000002";
    int64_t count = -1;

    insert_all(store, catalog, 1, in); /* 100 enrolled */
    CU_ASSERT_EQUAL(el_store_enroll(store, in[0].id, u1, &count), EL_OK);
    CU_ASSERT_EQUAL(el_store_enroll(store, in[0].id, u2, &count), EL_OK);
    CU_ASSERT_EQUAL(count, 102);
    CU_ASSERT_EQUAL(el_store_unenroll(store, in[0].id, u1, &count), EL_OK);
    CU_ASSERT_EQUAL(count, 101);
    /* Twice, never enrolled, no such course: not found, count unchanged. */
    CU_ASSERT_EQUAL(el_store_unenroll(store, in[0].id, u1, &count), EL_ENOTFOUND);
    CU_ASSERT_EQUAL(el_store_unenroll(store, in[0].id, "5a0000000000000000000003", &count),
                    EL_ENOTFOUND);
    CU_ASSERT_EQUAL(el_store_unenroll(store, "650000000000000000000000", u2, &count), EL_ENOTFOUND);
    CU_ASSERT_EQUAL(el_store_unenroll(store, "{\"$ne\":1}", u2, &count), EL_EINVAL);
    CU_ASSERT_EQUAL_FATAL(el_store_course_get(store, in[0].id, &got), EL_OK);
    CU_ASSERT_EQUAL(got.enrollment_count, 101);
    el_course_cleanup(&got);
    /* Enrolling again after leaving works. */
    CU_ASSERT_EQUAL(el_store_enroll(store, in[0].id, u1, &count), EL_OK);
    CU_ASSERT_EQUAL(count, 102);
    el_course_cleanup(&in[0]);
}

/* Wait (no sleep) until the wall clock has moved past t. */
static int64_t next_ms(int64_t t)
{
    int64_t now;

    while ((now = el_wall_ms()) <= t)
        ;
    return now;
}

static void test_my_enrollments(void)
{
    struct el_course in[4];
    struct el_enrollment_page p;
    const char *me = "5a00000000000000000000a1";
    int64_t t = 0, count;
    struct el_buf b;

    insert_all(store, catalog, 4, in);
    /* Enrolled in 0, 2, 3 -- in that order, a millisecond apart at least;
     * someone else in 1. */
    for (int i = 0; i < 4; i++) {
        next_ms(t); /* after the previous enrollment's timestamp */
        CU_ASSERT_EQUAL(
            el_store_enroll(store, in[i].id, i == 1 ? "5a00000000000000000000a2" : me, &count),
            EL_OK);
        t = el_wall_ms();
    }
    CU_ASSERT_EQUAL_FATAL(el_store_enrollments(store, me, 1, 10, &p), EL_OK);
    CU_ASSERT_EQUAL(p.total, 3);
    CU_ASSERT_EQUAL_FATAL(p.nitems, 3);
    CU_ASSERT_STRING_EQUAL(p.items[0].id, in[3].id); /* newest first */
    CU_ASSERT_STRING_EQUAL(p.items[1].id, in[2].id);
    CU_ASSERT_STRING_EQUAL(p.items[2].id, in[0].id);
    CU_ASSERT(p.enrolled_at[0] > p.enrolled_at[1] && p.enrolled_at[1] > p.enrolled_at[2]);
    CU_ASSERT(p.enrolled_at[2] > T0);
    CU_ASSERT_STRING_EQUAL(p.items[0].title, in[3].title);
    CU_ASSERT_EQUAL(p.items[0].enrollment_count, in[3].enrollment_count + 1);
    CU_ASSERT_EQUAL(p.items[0].nmodules, 0); /* a summary */
    el_buf_init(&b, 1 << 20);
    CU_ASSERT_EQUAL(el_enrollment_page_to_json(&p, 1, 10, &b), EL_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "\"enrolled_at\":\""));
    CU_ASSERT_PTR_NULL(strstr(b.data, "\"modules\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "{\"total\":3,\"page\":1,\"page_size\":10,\"items\":["));
    el_buf_cleanup(&b);
    el_enrollment_page_cleanup(&p);
    /* Paging, and past the end. */
    CU_ASSERT_EQUAL_FATAL(el_store_enrollments(store, me, 2, 2, &p), EL_OK);
    CU_ASSERT_EQUAL(p.total, 3);
    CU_ASSERT_EQUAL_FATAL(p.nitems, 1);
    CU_ASSERT_STRING_EQUAL(p.items[0].id, in[0].id);
    el_enrollment_page_cleanup(&p);
    CU_ASSERT_EQUAL(el_store_enrollments(store, me, 3, 2, &p), EL_OK);
    CU_ASSERT_EQUAL(p.nitems, 0);
    el_enrollment_page_cleanup(&p);
    /* Unenrolled: gone from the list. Nobody's: empty. Bad input. */
    CU_ASSERT_EQUAL(el_store_unenroll(store, in[2].id, me, &count), EL_OK);
    CU_ASSERT_EQUAL_FATAL(el_store_enrollments(store, me, 1, 10, &p), EL_OK);
    CU_ASSERT_EQUAL(p.total, 2);
    el_enrollment_page_cleanup(&p);
    CU_ASSERT_EQUAL(el_store_enrollments(store, "5a00000000000000000000ff", 1, 10, &p), EL_OK);
    CU_ASSERT_EQUAL(p.total, 0);
    el_enrollment_page_cleanup(&p);
    CU_ASSERT_EQUAL(el_store_enrollments(store, "nope", 1, 10, &p), EL_EINVAL);
    CU_ASSERT_EQUAL(el_store_enrollments(store, me, 0, 10, &p), EL_EINVAL);
    CU_ASSERT_EQUAL(el_store_enrollments(store, me, 1, 101, &p), EL_EINVAL);
    for (int i = 0; i < 4; i++)
        el_course_cleanup(&in[i]);
}

static int module_sum(const struct el_course *c)
{
    int sum = 0;

    for (size_t i = 0; i < c->nmodules; i++)
        sum += c->modules[i].duration_minutes;
    return sum;
}

static void test_module_add_delete(void)
{
    static const struct fx_spec big = {NULL, "Fifty", NULL, "x", "beginner",           {NULL},
                                       T0,   0,       0.0,  100, EL_COURSE_MODULES_MAX};
    struct el_course in[1], out, full;
    struct el_module m;
    char mid[EL_OID_HEX], first[EL_OID_HEX];

    insert_all(store, catalog, 1, in); /* 3 modules, orders 1..3 */
    memset(&m, 0, sizeof(m));
    m.title = unit_strdup("Bonus <b>lesson</b>");
    m.content = unit_strdup("Extra.");
    m.duration_minutes = 15;
    CU_ASSERT_EQUAL_FATAL(el_store_module_add(store, in[0].id, &m, T0 + 777, &out), EL_OK);
    CU_ASSERT_EQUAL(strlen(m.id), 24); /* generated, written back */
    CU_ASSERT_EQUAL_FATAL(out.nmodules, 4);
    CU_ASSERT_STRING_EQUAL(out.modules[3].id, m.id); /* last */
    CU_ASSERT_EQUAL(out.modules[3].order, 4);
    CU_ASSERT_STRING_EQUAL(out.modules[3].title, "Bonus <b>lesson</b>");
    CU_ASSERT_EQUAL(out.duration_minutes, module_sum(&out));
    CU_ASSERT_EQUAL(out.duration_minutes, 120 + 15);
    CU_ASSERT_EQUAL(out.updated_at, T0 + 777);
    check_stored(&out);
    snprintf(first, sizeof(first), "%s", out.modules[0].id);
    el_course_cleanup(&out);
    /* A given order puts it there. */
    free(m.title);
    m.title = unit_strdup("Prelude");
    m.id[0] = '\0';
    m.order = 1;
    m.duration_minutes = 5;
    CU_ASSERT_EQUAL_FATAL(el_store_module_add(store, in[0].id, &m, T0 + 778, &out), EL_OK);
    CU_ASSERT_EQUAL(out.nmodules, 5);
    CU_ASSERT_EQUAL(out.duration_minutes, 140);
    el_course_cleanup(&out);

    /* Delete the first module: the sum follows. */
    CU_ASSERT_EQUAL_FATAL(el_store_module_delete(store, in[0].id, first, T0 + 888, &out), EL_OK);
    CU_ASSERT_EQUAL(out.nmodules, 4);
    for (size_t i = 0; i < out.nmodules; i++)
        CU_ASSERT_STRING_NOT_EQUAL(out.modules[i].id, first);
    CU_ASSERT_EQUAL(out.duration_minutes, module_sum(&out));
    CU_ASSERT_EQUAL(out.updated_at, T0 + 888);
    check_stored(&out);
    el_course_cleanup(&out);
    /* Again; a module of no course; no such course; bad ids. */
    CU_ASSERT_EQUAL(el_store_module_delete(store, in[0].id, first, T0, &out), EL_ENOTFOUND);
    module_id(&catalog[5], 0, mid);
    CU_ASSERT_EQUAL(el_store_module_delete(store, in[0].id, mid, T0, &out), EL_ENOTFOUND);
    CU_ASSERT_EQUAL(el_store_module_delete(store, "650000000000000000000000", first, T0, &out),
                    EL_ENOTFOUND);
    CU_ASSERT_EQUAL(el_store_module_delete(store, in[0].id, "x", T0, &out), EL_EINVAL);
    m.id[0] = '\0';
    CU_ASSERT_EQUAL(el_store_module_add(store, "650000000000000000000000", &m, T0, &out),
                    EL_ENOTFOUND);

    /* A course at the limit takes no more. */
    fx_build(&big, &full);
    CU_ASSERT_EQUAL_FATAL(el_store_course_insert(store, &full), EL_OK);
    m.id[0] = '\0';
    CU_ASSERT_EQUAL(el_store_module_add(store, full.id, &m, T0, &out), EL_ETOOBIG);
    CU_ASSERT_EQUAL_FATAL(el_store_module_delete(store, full.id, full.modules[0].id, T0, &out),
                          EL_OK);
    el_course_cleanup(&out);
    m.id[0] = '\0';
    CU_ASSERT_EQUAL(el_store_module_add(store, full.id, &m, T0, &out), EL_OK);
    CU_ASSERT_EQUAL(out.nmodules, EL_COURSE_MODULES_MAX);
    el_course_cleanup(&out);
    el_course_cleanup(&full);
    el_module_cleanup(&m);
    el_course_cleanup(&in[0]);
}

static void test_rate(void)
{
    static const struct fx_spec fresh = {NULL, "Unrated", NULL, "x", "beginner", {NULL},
                                         T0,   0,         0.0,  10,  1};
    struct el_course in[1], c, out;
    const char *u1 = "5a0000000000000000000001", *u2 = "5a0000000000000000000002";
    int64_t count;
    int64_t seeded_sum;

    fx_build(&fresh, &c);
    CU_ASSERT_EQUAL_FATAL(el_store_course_insert(store, &c), EL_OK);
    CU_ASSERT_EQUAL(el_store_rate(store, c.id, u1, 4, T0, &out), EL_EFORBIDDEN); /* not enrolled */
    CU_ASSERT_EQUAL(el_store_rate(store, "650000000000000000000000", u1, 4, T0, &out),
                    EL_ENOTFOUND);
    CU_ASSERT_EQUAL(el_store_rate(store, c.id, u1, 6, T0, &out), EL_EINVAL);
    CU_ASSERT_EQUAL(el_store_rate(store, c.id, u1, 0, T0, &out), EL_EINVAL);
    CU_ASSERT_EQUAL(el_store_enroll(store, c.id, u1, &count), EL_OK);
    CU_ASSERT_EQUAL(el_store_enroll(store, c.id, u2, &count), EL_OK);
    CU_ASSERT_EQUAL_FATAL(el_store_rate(store, c.id, u1, 4, T0, &out), EL_OK);
    CU_ASSERT_EQUAL(out.rating_count, 1);
    CU_ASSERT_DOUBLE_EQUAL(out.rating, 4.0, 1e-9);
    el_course_cleanup(&out);
    CU_ASSERT_EQUAL_FATAL(el_store_rate(store, c.id, u2, 5, T0, &out), EL_OK);
    CU_ASSERT_EQUAL(out.rating_count, 2);
    CU_ASSERT_DOUBLE_EQUAL(out.rating, 4.5, 1e-9);
    el_course_cleanup(&out);
    /* A second rating replaces the first. */
    CU_ASSERT_EQUAL_FATAL(el_store_rate(store, c.id, u1, 1, T0, &out), EL_OK);
    CU_ASSERT_EQUAL(out.rating_count, 2);
    CU_ASSERT_DOUBLE_EQUAL(out.rating, 3.0, 1e-9);
    el_course_cleanup(&out);
    CU_ASSERT_EQUAL_FATAL(el_store_course_get(store, c.id, &out), EL_OK);
    CU_ASSERT_DOUBLE_EQUAL(out.rating, 3.0, 1e-9);
    el_course_cleanup(&out);
    /* Leaving keeps the rating given. */
    CU_ASSERT_EQUAL(el_store_unenroll(store, c.id, u1, &count), EL_OK);
    CU_ASSERT_EQUAL(el_store_rate(store, c.id, u1, 5, T0, &out), EL_EFORBIDDEN);
    CU_ASSERT_EQUAL_FATAL(el_store_course_get(store, c.id, &out), EL_OK);
    CU_ASSERT_EQUAL(out.rating_count, 2);
    el_course_cleanup(&out);

    /* A seeded rating (4.5 from 33 raters) counts as the sum it implies. */
    insert_all(store, catalog, 1, in);
    seeded_sum = llround(in[0].rating * in[0].rating_count);
    CU_ASSERT_EQUAL(el_store_enroll(store, in[0].id, u1, &count), EL_OK);
    CU_ASSERT_EQUAL_FATAL(el_store_rate(store, in[0].id, u1, 1, T0, &out), EL_OK);
    CU_ASSERT_EQUAL(out.rating_count, in[0].rating_count + 1);
    CU_ASSERT_DOUBLE_EQUAL(out.rating, el_rating_average(seeded_sum + 1, in[0].rating_count + 1),
                           1e-9);
    el_course_cleanup(&out);
    el_course_cleanup(&in[0]);
    el_course_cleanup(&c);
}

#define NRATERS 100
#define RATER_THREADS 10

struct rater {
    pthread_barrier_t *start;
    const char *course;
    int first; /* raters first .. first + NRATERS / RATER_THREADS - 1 */
    int failures;
};

static void *rate_worker(void *arg)
{
    struct rater *w = arg;
    struct el_course out;
    char user[EL_OID_HEX];
    int64_t count;

    pthread_barrier_wait(w->start);
    for (int i = w->first; i < w->first + NRATERS / RATER_THREADS; i++) {
        snprintf(user, sizeof(user), "5a00000000000000000%05d", i);
        if (el_store_enroll(store, w->course, user, &count) != EL_OK ||
            el_store_rate(store, w->course, user, 1 + i % 5, T0, &out) != EL_OK)
            w->failures++;
        else
            el_course_cleanup(&out);
    }
    el_store_thread_cleanup(store);
    return NULL;
}

static void test_concurrent_rate(void)
{
    static const struct fx_spec fresh = {NULL, "Crowd", NULL, "x", "beginner", {NULL},
                                         T0,   0,       0.0,  10,  1};
    struct rater w[RATER_THREADS];
    pthread_t t[RATER_THREADS];
    pthread_barrier_t start;
    struct el_course c, got;
    int64_t sum = 0;

    fx_build(&fresh, &c);
    CU_ASSERT_EQUAL_FATAL(el_store_course_insert(store, &c), EL_OK);
    CU_ASSERT_EQUAL_FATAL(pthread_barrier_init(&start, NULL, RATER_THREADS), 0);
    for (int i = 0; i < RATER_THREADS; i++) {
        w[i] = (struct rater){&start, c.id, i * (NRATERS / RATER_THREADS), 0};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, rate_worker, &w[i]), 0);
    }
    for (int i = 0; i < RATER_THREADS; i++) {
        pthread_join(t[i], NULL);
        CU_ASSERT_EQUAL(w[i].failures, 0);
    }
    pthread_barrier_destroy(&start);
    for (int i = 0; i < NRATERS; i++)
        sum += 1 + i % 5;
    CU_ASSERT_EQUAL_FATAL(el_store_course_get(store, c.id, &got), EL_OK);
    CU_ASSERT_EQUAL(got.rating_count, NRATERS);
    CU_ASSERT_EQUAL(got.enrollment_count, NRATERS);
    CU_ASSERT_DOUBLE_EQUAL(got.rating, el_rating_average(sum, NRATERS), 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(got.rating, 3.0, 1e-9);
    el_course_cleanup(&got);
    el_course_cleanup(&c);
}

/* ---- registration ------------------------------------------------------ */

/* A deleted user's refresh tokens are deleted with the account. */
static void test_user_delete_drops_tokens(void)
{
    struct el_user a, b;
    int64_t now = el_wall_ms();

    fx_user(&a, "a@example.com", "student");
    fx_user(&b, "b@example.com", "student");
    CU_ASSERT_EQUAL_FATAL(el_store_user_insert(store, &a), EL_OK);
    CU_ASSERT_EQUAL_FATAL(el_store_user_insert(store, &b), EL_OK);
    CU_ASSERT_EQUAL(el_store_refresh_insert(store, "ta", a.id, "sa", now + 60000), EL_OK);
    CU_ASSERT_EQUAL(el_store_refresh_insert(store, "tb", b.id, "sb", now + 60000), EL_OK);
    CU_ASSERT_EQUAL(el_store_user_delete(store, a.id), EL_OK);
    CU_ASSERT_EQUAL(el_store_refresh_claim(store, "ta", now), EL_ENOTFOUND);
    CU_ASSERT_EQUAL(el_store_refresh_claim(store, "tb", now), EL_OK);
    el_user_cleanup(&a);
    el_user_cleanup(&b);
}

static const struct {
    const char *name;
    CU_TestFunc fn;
} contract[] = {
    {"insert + get round trip of every field", test_roundtrip},
    {"generated ids are distinct", test_generated_ids_distinct},
    {"get of a missing id", test_get_missing},
    {"duplicate insert conflicts", test_duplicate_insert},
    {"count and reset", test_count},
    {"list filters", test_list_filters},
    {"list sorts, ties by id", test_list_sorts},
    {"pagination", test_pagination},
    {"search is case-insensitive over title, description, tags", test_search_case_insensitive},
    {"search metacharacters match literally", test_search_literal},
    {"list items are the inserted courses' summaries", test_list_json_matches_inserted},
    {"8 threads reading one store", test_concurrent_reads},
    {"course update: only flagged fields; lists and search follow", test_course_update},
    {"course update of a missing course", test_course_update_missing},
    {"module update; missing module or course", test_module_update},
    {"course delete, twice; enrollments go with it", test_course_delete},
    {"enroll once, twice, missing course", test_enroll},
    {"8 threads enroll 8 students: count +8 exactly", test_concurrent_enroll},
    {"the revision grows with every write", test_revision},
    {"users: insert, get, by email, conflicts, update, delete", test_users},
    {"reset deletes users too", test_reset_clears_users},
    {"deleting a user deletes their refresh tokens", test_user_delete_drops_tokens},
    {"refresh tokens: claim once, reuse, expiry, unknown", test_refresh_tokens},
    {"8 threads claim one refresh token: exactly one wins", test_concurrent_claim},
    {"revocations: jti, sid, expiry, later wins, live list", test_revocations},
    {"drafts and one instructor's courses in lists", test_list_visibility},
    {"unenroll: count down once, not enrolled, re-enroll", test_unenroll},
    {"my enrollments: newest first, paged, summaries", test_my_enrollments},
    {"modules: add (last or at an order), delete, at most 50; durations sum",
     test_module_add_delete},
    {"ratings: enrolled only, replace, exact average, seeded sums", test_rate},
    {"100 concurrent raters: exact count and average", test_concurrent_rate},
};

static void add_contract(CU_pSuite s)
{
    for (size_t i = 0; i < sizeof(contract) / sizeof(contract[0]); i++)
        CU_add_test(s, contract[i].name, contract[i].fn);
}

void test_store_register(void)
{
    CU_pSuite s;

    s = CU_add_suite_with_setup_and_teardown("store_sqlite", init_sqlite, fini, setup, NULL);
    add_contract(s);
    CU_add_test(s, "ids are validated and stored lowercase", test_sqlite_ids_lowercased);
    CU_add_test(s, "hand-built bad queries are refused", test_sqlite_rejects_bad_queries);
    CU_add_test(s, "thread cleanup, reopen, exit with a connection", test_sqlite_thread_cleanup);
    CU_add_test(s, "a held write lock: EL_EUNAVAIL within the timeout",
                test_sqlite_busy_is_unavailable);
    CU_add_test(s, "expired revocations and refresh tokens are deleted, 64 a write",
                test_sqlite_housekeeping);
    CU_add_test(s, "new operations validate and lowercase ids", test_sqlite_new_ops_validate);

    s = CU_add_suite_with_setup_and_teardown("store_mongo", init_mongo, fini, setup, NULL);
    add_contract(s);
    CU_add_test(s, "same data, same list JSON as SQLite", test_same_json_as_sqlite);

    s = CU_add_suite("store_sqlite_file", NULL, NULL);
    CU_add_test(s, "creates missing parent directories", test_sqlite_creates_directories);
    CU_add_test(s, "unusable paths fail clearly", test_sqlite_unusable_paths);
    CU_add_test(s, "data persists; the file is in WAL mode", test_sqlite_file_persists_in_wal_mode);
    CU_add_test(s, "a version 1 file is upgraded; a newer one refused", test_sqlite_schema_upgrade);
    CU_add_test(s, "file deleted, moved or replaced: writes refused until it is back",
                test_sqlite_file_gone);
}
