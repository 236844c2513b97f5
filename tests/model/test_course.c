/* test_course.c -- the course model: query parsing and its digest, the JSON
 * serializer, dates. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/course.h"
#include "core/el.h"
#include "unit.h"

/* Parse qs, which must succeed; failures print the query string. */
static struct el_course_query parse_ok(const char *qs)
{
    struct el_course_query q;
    struct el_err err = {0, ""};
    int rc;

    memset(&q, 0x55, sizeof(q));
    rc = el_course_query_parse(qs, &q, &err);
    if (rc != EL_OK)
        fprintf(stderr, "\n  unexpected rejection of \"%s\": %s\n", qs ? qs : "(null)", err.msg);
    CU_ASSERT_EQUAL(rc, EL_OK);
    return q;
}

/* qs must be rejected with exactly msg, leaving q untouched. */
static void parse_bad(const char *qs, const char *msg)
{
    struct el_course_query q, before;
    struct el_err err = {0, ""};
    int rc;

    memset(&q, 0x55, sizeof(q));
    before = q;
    rc = el_course_query_parse(qs, &q, &err);
    if (rc != EL_EINVAL || strcmp(err.msg, msg) != 0)
        fprintf(stderr, "\n  \"%s\": rc %d, msg \"%s\", wanted \"%s\"\n", qs, rc, err.msg, msg);
    CU_ASSERT_EQUAL(rc, EL_EINVAL);
    CU_ASSERT_EQUAL(err.code, EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, msg);
    CU_ASSERT(memcmp(&q, &before, sizeof(q)) == 0);
}

static void test_query_defaults(void)
{
    const char *empties[] = {NULL, "", "&", "&&"};

    for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
        struct el_course_query q = parse_ok(empties[i]);

        CU_ASSERT_STRING_EQUAL(q.search, "");
        CU_ASSERT_STRING_EQUAL(q.category, "");
        CU_ASSERT_STRING_EQUAL(q.difficulty, "");
        CU_ASSERT_EQUAL(q.sort, EL_SORT_RECENT);
        CU_ASSERT_EQUAL(q.page, 1);
        CU_ASSERT_EQUAL(q.page_size, EL_COURSE_PAGE_SIZE_DEFAULT);
    }
    /* A NULL err is allowed on failure too. */
    struct el_course_query q;
    CU_ASSERT_EQUAL(el_course_query_parse("page=0", &q, NULL), EL_EINVAL);
}

static void test_query_all_params(void)
{
    struct el_course_query q = parse_ok(
        "search=Intro+to%20C%2B%2B&category=programming&difficulty=advanced&sort_by=top_rated"
        "&page=7&page_size=100");

    CU_ASSERT_STRING_EQUAL(q.search, "Intro to C++");
    CU_ASSERT_STRING_EQUAL(q.category, "programming");
    CU_ASSERT_STRING_EQUAL(q.difficulty, "advanced");
    CU_ASSERT_EQUAL(q.sort, EL_SORT_TOP_RATED);
    CU_ASSERT_EQUAL(q.page, 7);
    CU_ASSERT_EQUAL(q.page_size, 100);
}

static void test_query_decoding(void)
{
    struct el_course_query q;

    q = parse_ok("search=caf%C3%A9%2b%2Fx%25");
    CU_ASSERT_STRING_EQUAL(q.search, "caf\xc3\xa9+/x%");
    q = parse_ok("search=%20%20spaced+out%20%20");
    CU_ASSERT_STRING_EQUAL(q.search, "  spaced out  "); /* nothing trimmed */
    q = parse_ok("search=a=b");                         /* '=' inside a value */
    CU_ASSERT_STRING_EQUAL(q.search, "a=b");
    q = parse_ok("%73earch=x&page%5Fsize=5"); /* names are decoded too */
    CU_ASSERT_STRING_EQUAL(q.search, "x");
    CU_ASSERT_EQUAL(q.page_size, 5);
    q = parse_ok("search=\xf0\x9f\x8e\x93"); /* raw UTF-8 passes */
    CU_ASSERT_STRING_EQUAL(q.search, "\xf0\x9f\x8e\x93");
    q = parse_ok("search=.*%5B(%24where");
    CU_ASSERT_STRING_EQUAL(q.search, ".*[($where");
}

static void test_query_empty_means_no_filter(void)
{
    struct el_course_query q = parse_ok("search=&category=&difficulty=");

    CU_ASSERT_STRING_EQUAL(q.search, "");
    CU_ASSERT_STRING_EQUAL(q.category, "");
    CU_ASSERT_STRING_EQUAL(q.difficulty, "");
    q = parse_ok("search&difficulty"); /* no '=' at all */
    CU_ASSERT_STRING_EQUAL(q.search, "");
    CU_ASSERT_STRING_EQUAL(q.difficulty, "");
}

static void test_query_enums(void)
{
    static const char *const diffs[] = {"beginner", "intermediate", "advanced"};
    static const char *const sorts[] = {"recent", "popular", "top_rated", "duration"};
    char qs[64];

    for (size_t i = 0; i < 3; i++) {
        snprintf(qs, sizeof(qs), "difficulty=%s", diffs[i]);
        CU_ASSERT_STRING_EQUAL(parse_ok(qs).difficulty, diffs[i]);
    }
    for (size_t i = 0; i < 4; i++) {
        snprintf(qs, sizeof(qs), "sort_by=%s", sorts[i]);
        CU_ASSERT_EQUAL(parse_ok(qs).sort, (enum el_sort)i);
        CU_ASSERT_STRING_EQUAL(el_sort_name((enum el_sort)i), sorts[i]);
    }
    CU_ASSERT_STRING_EQUAL(el_sort_name((enum el_sort)99), "unknown");

    const char *dmsg = "difficulty: must be one of beginner, intermediate, advanced";
    parse_bad("difficulty=expert", dmsg);
    parse_bad("difficulty=Beginner", dmsg);
    parse_bad("difficulty=beginner+", dmsg);
    parse_bad("difficulty=%FF", dmsg);
    parse_bad("difficulty=intermediateintermediate", dmsg);
    const char *smsg = "sort_by: must be one of recent, popular, top_rated, duration";
    parse_bad("sort_by=", smsg);
    parse_bad("sort_by=newest", smsg);
    parse_bad("sort_by=RECENT", smsg);
}

static void test_query_integers(void)
{
    const char *pmsg = "page: must be an integer between 1 and 1000000";
    const char *smsg = "page_size: must be an integer between 1 and 100";

    CU_ASSERT_EQUAL(parse_ok("page=1").page, 1);
    CU_ASSERT_EQUAL(parse_ok("page=1000000").page, 1000000);
    CU_ASSERT_EQUAL(parse_ok("page=0002").page, 2);
    CU_ASSERT_EQUAL(parse_ok("page_size=1").page_size, 1);
    CU_ASSERT_EQUAL(parse_ok("page_size=100").page_size, 100);
    parse_bad("page=0", pmsg);
    parse_bad("page=1000001", pmsg);
    parse_bad("page=-1", pmsg);
    parse_bad("page=%2B1", pmsg);
    parse_bad("page=+1", pmsg);
    parse_bad("page=1.5", pmsg);
    parse_bad("page=1e3", pmsg);
    parse_bad("page=abc", pmsg);
    parse_bad("page=", pmsg);
    parse_bad("page", pmsg);
    parse_bad("page=99999999999999999999999", pmsg);
    parse_bad("page=0x10", pmsg);
    parse_bad("page_size=0", smsg);
    parse_bad("page_size=101", smsg);
    parse_bad("page_size=12abc", smsg);
    parse_bad("page_size=%00", "page_size: must not contain NUL bytes");
}

static void test_query_lengths(void)
{
    char qs[1024], want[EL_COURSE_SEARCH_MAX + 1];
    struct el_course_query q;

    /* Exactly 200 bytes after decoding, from 600 bytes of escapes. */
    strcpy(qs, "search=");
    for (int i = 0; i < EL_COURSE_SEARCH_MAX; i++)
        strcat(qs, "%41");
    memset(want, 'A', EL_COURSE_SEARCH_MAX);
    want[EL_COURSE_SEARCH_MAX] = '\0';
    q = parse_ok(qs);
    CU_ASSERT_STRING_EQUAL(q.search, want);
    strcat(qs, "B");
    parse_bad(qs, "search: must be at most 200 bytes");

    /* 100 two-byte characters = 200 bytes; one more is 202. */
    strcpy(qs, "search=");
    for (int i = 0; i < 100; i++)
        strcat(qs, "%C3%A9");
    CU_ASSERT_EQUAL(strlen(parse_ok(qs).search), 200);
    strcat(qs, "%C3%A9");
    parse_bad(qs, "search: must be at most 200 bytes");

    strcpy(qs, "category=");
    for (int i = 0; i < EL_COURSE_CATEGORY_MAX; i++)
        strcat(qs, "c");
    CU_ASSERT_EQUAL(strlen(parse_ok(qs).category), EL_COURSE_CATEGORY_MAX);
    strcat(qs, "c");
    parse_bad(qs, "category: must be at most 64 bytes");
}

static void test_query_bad_encoding(void)
{
    parse_bad("search=%", "search: invalid percent-encoding");
    parse_bad("search=%4", "search: invalid percent-encoding");
    parse_bad("search=%zz", "search: invalid percent-encoding");
    parse_bad("search=ok%4g", "search: invalid percent-encoding");
    parse_bad("category=%G1", "category: invalid percent-encoding");
    parse_bad("search=a%00b", "search: must not contain NUL bytes");
    parse_bad("category=%00", "category: must not contain NUL bytes");
    /* Invalid UTF-8: a lone continuation byte, a truncated sequence, an
     * overlong '/', a UTF-16 surrogate, a code point above U+10FFFF, 0xFF. */
    parse_bad("search=%80", "search: must be valid UTF-8");
    parse_bad("search=%C3", "search: must be valid UTF-8");
    parse_bad("search=%C3x", "search: must be valid UTF-8");
    parse_bad("search=%C0%AF", "search: must be valid UTF-8");
    parse_bad("search=%E0%80%AF", "search: must be valid UTF-8");
    parse_bad("search=%ED%A0%80", "search: must be valid UTF-8");
    parse_bad("search=%F4%90%80%80", "search: must be valid UTF-8");
    parse_bad("search=%FF", "search: must be valid UTF-8");
    parse_bad("category=\xc3", "category: must be valid UTF-8");
    /* The longest valid forms still pass. */
    CU_ASSERT_STRING_EQUAL(parse_ok("search=%F4%8F%BF%BF").search, "\xf4\x8f\xbf\xbf");
    CU_ASSERT_STRING_EQUAL(parse_ok("search=%ED%9F%BF").search, "\xed\x9f\xbf");
    /* Bad names. */
    parse_bad("%zz=1", "invalid percent-encoding in a query parameter name");
    parse_bad("%FF=1", "a query parameter name is not valid UTF-8 text");
    parse_bad("a%00=1", "a query parameter name is not valid UTF-8 text");
    parse_bad("=1", "a query parameter has an empty name");
}

static void test_query_unknown_and_repeated(void)
{
    char qs[256], want[128];

    parse_bad("foo=1", "unknown query parameter: foo");
    parse_bad("q=python", "unknown query parameter: q");
    parse_bad("Search=x", "unknown query parameter: Search");
    parse_bad("page=1&foo", "unknown query parameter: foo");
    parse_bad("sort=recent", "unknown query parameter: sort");
    parse_bad("a%0Ab=1", "unknown query parameter: a?b"); /* control chars masked */
    parse_bad("page=1&page=1", "page: given more than once");
    parse_bad("search=a&category=b&search=", "search: given more than once");
    parse_bad("page_size=10&%70age_size=10", "page_size: given more than once");
    /* A long unknown name is quoted in part, cut on a character boundary. */
    strcpy(qs, "");
    for (int i = 0; i < 40; i++)
        strcat(qs, "\xc3\xa9"); /* 80 bytes */
    strcat(qs, "=1");
    strcpy(want, "unknown query parameter: ");
    for (int i = 0; i < 32; i++)
        strcat(want, "\xc3\xa9");
    strcat(want, "...");
    parse_bad(qs, want);
    /* The first error wins, left to right. */
    parse_bad("page=0&foo=1", "page: must be an integer between 1 and 1000000");
}

static void test_digest(void)
{
    char a[41], b[41];
    struct el_course_query q;

    /* Known vectors: SHA-1 of the documented canonical form. */
    q = parse_ok("");
    el_course_query_digest(&q, a);
    CU_ASSERT_STRING_EQUAL(a, "61969a389c74046859b8145b08023e2479c13418");
    q = parse_ok("search=PyThOn&category=programming&difficulty=beginner&sort_by=top_rated"
                 "&page=3&page_size=24");
    el_course_query_digest(&q, a);
    CU_ASSERT_STRING_EQUAL(a, "166521de9b704e0783c799564a6b86aa52a8c13c");

    /* Order, spelling and explicit defaults do not matter. */
    q = parse_ok("page_size=24&page=03&sort_by=top_rated&difficulty=beginner&category=programming"
                 "&%73earch=python");
    el_course_query_digest(&q, b);
    CU_ASSERT_STRING_EQUAL(a, b);
    q = parse_ok("sort_by=recent&page=1&page_size=12&search=&category=");
    el_course_query_digest(&q, b);
    CU_ASSERT_STRING_EQUAL(b, "61969a389c74046859b8145b08023e2479c13418");

    /* Each field changes it. */
    const char *variants[] = {
        "search=python",
        "category=python",
        "difficulty=advanced",
        "sort_by=duration",
        "page=2",
        "page_size=13",
        "search=PYTHON+",
        "category=Programming",
        "instructor_id=me",
        "instructor_id=5b00000000000000000000bb",
    };
    char seen[sizeof(variants) / sizeof(variants[0])][41];
    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        q = parse_ok(variants[i]);
        el_course_query_digest(&q, seen[i]);
        CU_ASSERT_STRING_NOT_EQUAL(seen[i], "61969a389c74046859b8145b08023e2479c13418");
        for (size_t j = 0; j < i; j++)
            CU_ASSERT_STRING_NOT_EQUAL(seen[i], seen[j]);
    }
    /* Category is case-sensitive (matched exactly), search is not. */
    struct el_course_query c1 = parse_ok("category=Music"), c2 = parse_ok("category=music");
    el_course_query_digest(&c1, a);
    el_course_query_digest(&c2, b);
    CU_ASSERT_STRING_NOT_EQUAL(a, b);

    /* Length prefixes: a search that spells the next field is not it. */
    struct el_course_query x = parse_ok("search=a%7Ccategory%3D1%3Ab");
    struct el_course_query y = parse_ok("search=a&category=b");
    el_course_query_digest(&x, a);
    el_course_query_digest(&y, b);
    CU_ASSERT_STRING_NOT_EQUAL(a, b);
}

static void test_iso8601(void)
{
    char s[32];

    el_iso8601(0, s);
    CU_ASSERT_STRING_EQUAL(s, "1970-01-01T00:00:00.000Z");
    el_iso8601(1795693075123LL, s);
    CU_ASSERT_STRING_EQUAL(s, "2026-11-26T11:37:55.123Z");
    el_iso8601(951782400999LL, s); /* a leap day */
    CU_ASSERT_STRING_EQUAL(s, "2000-02-29T00:00:00.999Z");
    el_iso8601(-1, s);
    CU_ASSERT_STRING_EQUAL(s, "1969-12-31T23:59:59.999Z");
    el_iso8601(INT64_MAX, s); /* clamped, never longer than 24 characters */
    CU_ASSERT_STRING_EQUAL(s, "9999-12-31T23:59:59.999Z");
    el_iso8601(INT64_MIN, s);
    CU_ASSERT_STRING_EQUAL(s, "0000-01-01T00:00:00.000Z");
}

/* A course with text that needs escaping in JSON. */
static void sample_course(struct el_course *c, struct el_module mods[2], char *tags[2])
{
    memset(c, 0, sizeof(*c));
    strcpy(c->id, "65a1b2c3d4e5f60718293a4b");
    c->title = (char *)"Caf\xc3\xa9 \"quoted\" / slash";
    c->description = (char *)"line1\nline2\ttab \\ back";
    c->category = (char *)"programming";
    c->difficulty = (char *)"beginner";
    tags[0] = (char *)"c";
    tags[1] = (char *)"\xf0\x9f\x8e\x93";
    c->tags = tags;
    c->ntags = 2;
    strcpy(c->instructor_id, "000000000000000000000001");
    c->duration_minutes = 95;
    c->rating = 4.0;
    c->rating_count = 10;
    c->enrollment_count = 1234;
    c->published = true;
    c->created_at = 1795693075123LL;
    c->updated_at = 1795693075124LL;
    memset(mods, 0, 2 * sizeof(*mods));
    strcpy(mods[0].id, "65a1b2c3d4e5f60718293a4c");
    mods[0].title = (char *)"One";
    mods[0].content = (char *)"x";
    mods[0].duration_minutes = 45;
    mods[0].order = 1;
    strcpy(mods[1].id, "65a1b2c3d4e5f60718293a4d");
    mods[1].title = (char *)"Two";
    mods[1].content = (char *)"<b>&</b>";
    mods[1].duration_minutes = 50;
    mods[1].order = 2;
    c->modules = mods;
    c->nmodules = 2;
}

static const char sample_json[] =
    "{\"_id\":\"65a1b2c3d4e5f60718293a4b\",\"title\":\"Caf\xc3\xa9 \\\"quoted\\\" / slash\","
    "\"description\":\"line1\\nline2\\ttab \\\\ back\",\"category\":\"programming\","
    "\"difficulty\":\"beginner\",\"tags\":[\"c\",\"\xf0\x9f\x8e\x93\"],"
    "\"instructor_id\":\"000000000000000000000001\",\"duration_minutes\":95,\"rating\":4.0,"
    "\"rating_count\":10,\"enrollment_count\":1234,\"published\":true,"
    "\"created_at\":\"2026-11-26T11:37:55.123Z\",\"updated_at\":\"2026-11-26T11:37:55.124Z\","
    "\"modules\":[{\"_id\":\"65a1b2c3d4e5f60718293a4c\",\"title\":\"One\",\"content\":\"x\","
    "\"duration_minutes\":45,\"order\":1},{\"_id\":\"65a1b2c3d4e5f60718293a4d\",\"title\":\"Two\","
    "\"content\":\"<b>&</b>\",\"duration_minutes\":50,\"order\":2}]}";

/* sample_json as a summary: the modules without their content. */
static const char sample_summary_json[] =
    "{\"_id\":\"65a1b2c3d4e5f60718293a4b\",\"title\":\"Caf\xc3\xa9 \\\"quoted\\\" / slash\","
    "\"description\":\"line1\\nline2\\ttab \\\\ back\",\"category\":\"programming\","
    "\"difficulty\":\"beginner\",\"tags\":[\"c\",\"\xf0\x9f\x8e\x93\"],"
    "\"instructor_id\":\"000000000000000000000001\",\"duration_minutes\":95,\"rating\":4.0,"
    "\"rating_count\":10,\"enrollment_count\":1234,\"published\":true,"
    "\"created_at\":\"2026-11-26T11:37:55.123Z\",\"updated_at\":\"2026-11-26T11:37:55.124Z\","
    "\"modules\":[{\"_id\":\"65a1b2c3d4e5f60718293a4c\",\"title\":\"One\","
    "\"duration_minutes\":45,\"order\":1},{\"_id\":\"65a1b2c3d4e5f60718293a4d\",\"title\":\"Two\","
    "\"duration_minutes\":50,\"order\":2}]}";

static void test_course_json(void)
{
    struct el_course c;
    struct el_module mods[2];
    char *tags[2];
    struct el_buf b;

    sample_course(&c, mods, tags);
    el_buf_init(&b, 1 << 16);
    CU_ASSERT_EQUAL_FATAL(el_course_to_json(&c, &b), EL_OK);
    CU_ASSERT_STRING_EQUAL(b.data, sample_json);
    CU_ASSERT_EQUAL(b.len, strlen(sample_json));

    /* Appends: a second course follows the first byte for byte. */
    CU_ASSERT_EQUAL(el_course_to_json(&c, &b), EL_OK);
    CU_ASSERT_EQUAL(b.len, 2 * strlen(sample_json));
    CU_ASSERT(memcmp(b.data + strlen(sample_json), sample_json, strlen(sample_json)) == 0);

    /* A buffer too small fails whole, leaving nothing behind. */
    struct el_buf small;
    el_buf_init(&small, 100);
    CU_ASSERT_EQUAL(el_course_to_json(&c, &small), EL_ETOOBIG);
    CU_ASSERT_EQUAL(small.len, 0);
    el_buf_cleanup(&small);
    el_buf_cleanup(&b);
}

static void test_course_json_edges(void)
{
    static const struct {
        double r;
        const char *s;
    } ratings[] = {{4.5, "4.5"}, {4.0, "4.0"},  {1.0, "1.0"}, {5.0, "5.0"},
                   {0.0, "0.0"}, {3.25, "3.2"}, {3.96, "4.0"}};
    struct el_course c;
    struct el_buf b;
    char want[64];

    /* NULL strings and empty arrays keep the document's shape. */
    memset(&c, 0, sizeof(c));
    el_buf_init(&b, 1 << 16);
    CU_ASSERT_EQUAL_FATAL(el_course_to_json(&c, &b), EL_OK);
    CU_ASSERT_STRING_EQUAL(b.data,
                           "{\"_id\":\"\",\"title\":\"\",\"description\":\"\",\"category\":\"\","
                           "\"difficulty\":\"\",\"tags\":[],\"instructor_id\":\"\","
                           "\"duration_minutes\":0,\"rating\":0.0,\"rating_count\":0,"
                           "\"enrollment_count\":0,\"published\":false,"
                           "\"created_at\":\"1970-01-01T00:00:00.000Z\","
                           "\"updated_at\":\"1970-01-01T00:00:00.000Z\",\"modules\":[]}");
    for (size_t i = 0; i < sizeof(ratings) / sizeof(ratings[0]); i++) {
        el_buf_reset(&b);
        c.rating = ratings[i].r;
        CU_ASSERT_EQUAL(el_course_to_json(&c, &b), EL_OK);
        snprintf(want, sizeof(want), "\"rating\":%s,", ratings[i].s);
        if (strstr(b.data, want) == NULL)
            fprintf(stderr, "\n  rating %g: wanted %s in %s\n", ratings[i].r, want, b.data);
        CU_ASSERT_PTR_NOT_NULL(strstr(b.data, want));
    }
    /* Control characters are escaped, never sent raw. */
    el_buf_reset(&b);
    c.title = (char *)"a\x01z\x1f";
    CU_ASSERT_EQUAL(el_course_to_json(&c, &b), EL_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "\"title\":\"a\\u0001z\\u001f\""));
    el_buf_cleanup(&b);
}

static void test_summary_json(void)
{
    struct el_course c;
    struct el_module mods[2];
    char *tags[2];
    struct el_buf b;

    sample_course(&c, mods, tags);
    el_buf_init(&b, 1 << 16);
    CU_ASSERT_EQUAL_FATAL(el_course_summary_to_json(&c, &b), EL_OK);
    CU_ASSERT_STRING_EQUAL(b.data, sample_summary_json);
    el_buf_cleanup(&b);
}

/* The largest summary the input limits allow -- every text field at its
 * maximum of characters that each escape to six bytes ("\u0001"), whose
 * modules' content (not in a summary) at its maximum too -- stays within
 * EL_COURSE_SUMMARY_MAX, and a full page of them within EL_COURSE_PAGE_MAX,
 * under the 16 MiB a cached response may have. The limits are the ones the
 * input parser enforces: a body one character over is refused. */
static void test_summary_bound(void)
{
    static struct el_module mods[50];
    static char *tags[20];
    static struct el_course items[EL_COURSE_PAGE_SIZE_MAX];
    char *title = malloc(201), *desc = malloc(5001), *tag = malloc(33), *content = malloc(20001);
    struct el_course c;
    struct el_course_page p;
    struct el_course_query q = parse_ok("page_size=100");
    struct el_buf b;

    CU_ASSERT_FATAL(title && desc && tag && content);
    memset(title, 1, 200);
    title[200] = '\0';
    memset(desc, 1, 5000);
    desc[5000] = '\0';
    memset(tag, 1, 32);
    tag[32] = '\0';
    memset(content, 1, 20000);
    content[20000] = '\0';
    memset(&c, 0, sizeof(c));
    memcpy(c.id, "65a1b2c3d4e5f60718293a4b", 25);
    memcpy(c.instructor_id, "65a1b2c3d4e5f60718293a4b", 25);
    c.title = title;
    c.description = desc;
    c.category = (char *)"cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
    c.difficulty = (char *)"intermediate";
    for (int i = 0; i < 20; i++)
        tags[i] = tag;
    c.tags = tags;
    c.ntags = 20;
    for (int i = 0; i < 50; i++) {
        memcpy(mods[i].id, "65a1b2c3d4e5f60718293a4c", 25);
        mods[i].title = title;
        mods[i].content = content;
        mods[i].duration_minutes = 1000;
        mods[i].order = 1000;
    }
    c.modules = mods;
    c.nmodules = 50;
    c.duration_minutes = 10000;
    c.rating = 5.0;
    c.rating_count = c.enrollment_count = 2147483647;
    c.created_at = c.updated_at = 253402300799999LL; /* 9999-12-31 */
    el_buf_init(&b, 64u << 20);
    CU_ASSERT_EQUAL_FATAL(el_course_summary_to_json(&c, &b), EL_OK);
    CU_ASSERT(b.len <= EL_COURSE_SUMMARY_MAX);
    CU_ASSERT(b.len > EL_COURSE_SUMMARY_MAX * 8 / 10); /* the bound is not loose */
    el_buf_reset(&b);
    for (int i = 0; i < EL_COURSE_PAGE_SIZE_MAX; i++)
        items[i] = c;
    p.total = 1000000;
    p.items = items;
    p.nitems = EL_COURSE_PAGE_SIZE_MAX;
    CU_ASSERT_EQUAL_FATAL(el_course_page_to_json(&p, &q, &b), EL_OK);
    CU_ASSERT(b.len <= EL_COURSE_PAGE_MAX);
    CU_ASSERT(EL_COURSE_PAGE_MAX < (16u << 20));
    el_buf_cleanup(&b);
    free(title);
    free(desc);
    free(tag);
    free(content);
}

static void test_page_json(void)
{
    struct el_course items[2];
    struct el_module mods[2];
    char *tags[2];
    struct el_course_page p;
    struct el_course_query q = parse_ok("page=3&page_size=2");
    struct el_buf b, want;

    sample_course(&items[0], mods, tags);
    items[1] = items[0];
    p.total = 5000000000LL; /* beyond 32 bits */
    p.items = items;
    p.nitems = 2;
    el_buf_init(&b, 1 << 16);
    el_buf_init(&want, 1 << 16);
    CU_ASSERT_EQUAL_FATAL(el_course_page_to_json(&p, &q, &b), EL_OK);
    CU_ASSERT_EQUAL(el_buf_addf(&want,
                                "{\"total\":5000000000,\"page\":3,\"page_size\":2,"
                                "\"items\":[%s,%s]}",
                                sample_summary_json, sample_summary_json),
                    EL_OK);
    CU_ASSERT_STRING_EQUAL(b.data, want.data);

    el_buf_reset(&b);
    p.total = 4;
    p.items = NULL;
    p.nitems = 0;
    CU_ASSERT_EQUAL(el_course_page_to_json(&p, &q, &b), EL_OK);
    CU_ASSERT_STRING_EQUAL(b.data, "{\"total\":4,\"page\":3,\"page_size\":2,\"items\":[]}");
    el_buf_cleanup(&b);
    el_buf_cleanup(&want);
}

static void test_cleanup(void)
{
    struct el_course c;
    struct el_course_page p;
    static const struct el_course zero;

    el_course_cleanup(NULL);
    el_course_page_cleanup(NULL);

    /* Everything owned is freed (the sanitizer run checks for leaks) and
     * the struct is zeroed. */
    memset(&c, 0, sizeof(c));
    strcpy(c.id, "65a1b2c3d4e5f60718293a4b");
    c.title = unit_strdup("t");
    c.description = unit_strdup("d");
    c.category = unit_strdup("c");
    c.difficulty = unit_strdup("beginner");
    c.tags = calloc(2, sizeof(char *));
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.tags);
    c.tags[0] = unit_strdup("a");
    c.tags[1] = unit_strdup("b");
    c.ntags = 2;
    c.modules = calloc(1, sizeof(*c.modules));
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.modules);
    c.modules[0].title = unit_strdup("m");
    c.modules[0].content = unit_strdup("x");
    c.nmodules = 1;
    el_course_cleanup(&c);
    CU_ASSERT(memcmp(&c, &zero, sizeof(c)) == 0);

    p.items = calloc(2, sizeof(*p.items));
    CU_ASSERT_PTR_NOT_NULL_FATAL(p.items);
    p.items[0].title = unit_strdup("one");
    p.items[1].description = unit_strdup("two");
    p.nitems = 2;
    p.total = 2;
    el_course_page_cleanup(&p);
    CU_ASSERT_PTR_NULL(p.items);
    CU_ASSERT_EQUAL(p.nitems, 0);
    CU_ASSERT_EQUAL(p.total, 0);
}

/* instructor_id, the visibility default, page-only queries,
 * the rating average. */
static void test_query_visibility(void)
{
    struct el_course_query q;
    struct el_err err = {0, ""};
    int page = 0, size = 0;

    q = parse_ok("");
    CU_ASSERT_TRUE(q.published_only); /* the public catalogue by default */
    CU_ASSERT_FALSE(q.instructor_me);
    CU_ASSERT_STRING_EQUAL(q.instructor_id, "");
    q = parse_ok("instructor_id=me");
    CU_ASSERT_TRUE(q.instructor_me);
    CU_ASSERT_STRING_EQUAL(q.instructor_id, "");
    q = parse_ok("instructor_id=5B00000000000000000000BB");
    CU_ASSERT_STRING_EQUAL(q.instructor_id, "5b00000000000000000000bb"); /* lowercased */
    CU_ASSERT_FALSE(q.instructor_me);
    parse_bad("instructor_id=", "instructor_id: must be \"me\" or a 24-character hex ObjectId");
    parse_bad("instructor_id=ME", "instructor_id: must be \"me\" or a 24-character hex ObjectId");
    parse_bad("instructor_id=5b00000000000000000000b",
              "instructor_id: must be \"me\" or a 24-character hex ObjectId");
    parse_bad("instructor_id=5b00000000000000000000bbb",
              "instructor_id: must be \"me\" or a 24-character hex ObjectId");
    parse_bad("instructor_id=%7B%22%24ne%22%3A1%7D",
              "instructor_id: must be \"me\" or a 24-character hex ObjectId");
    parse_bad("instructor_id=me&instructor_id=me", "instructor_id: given more than once");

    CU_ASSERT_EQUAL(el_page_query_parse("page=2&page_size=5", &page, &size, &err), EL_OK);
    CU_ASSERT_EQUAL(page, 2);
    CU_ASSERT_EQUAL(size, 5);
    CU_ASSERT_EQUAL(el_page_query_parse("", &page, &size, &err), EL_OK);
    CU_ASSERT_EQUAL(page, 1);
    CU_ASSERT_EQUAL(size, EL_COURSE_PAGE_SIZE_DEFAULT);
    CU_ASSERT_EQUAL(el_page_query_parse("sort_by=recent", &page, &size, &err), EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, "unknown query parameter: sort_by");
    CU_ASSERT_EQUAL(el_page_query_parse("page_size=0", &page, &size, &err), EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, "page_size: must be an integer between 1 and 100");

    CU_ASSERT_DOUBLE_EQUAL(el_rating_average(0, 0), 0.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(el_rating_average(9, 2), 4.5, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(el_rating_average(10, 3), 3.3, 1e-12);  /* 3.333 */
    CU_ASSERT_DOUBLE_EQUAL(el_rating_average(67, 20), 3.4, 1e-12); /* 3.35: half up */
    CU_ASSERT_DOUBLE_EQUAL(el_rating_average(5, 1), 5.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(el_rating_average(149, 33), 4.5, 1e-12);
}

void test_course_register(void)
{
    CU_pSuite s = CU_add_suite("course", NULL, NULL);

    CU_add_test(s, "query: defaults", test_query_defaults);
    CU_add_test(s, "query: every parameter", test_query_all_params);
    CU_add_test(s, "query: percent-decoding", test_query_decoding);
    CU_add_test(s, "query: empty value is no filter", test_query_empty_means_no_filter);
    CU_add_test(s, "query: difficulty and sort_by", test_query_enums);
    CU_add_test(s, "query: page and page_size bounds", test_query_integers);
    CU_add_test(s, "query: length limits", test_query_lengths);
    CU_add_test(s, "query: bad escapes, NUL, invalid UTF-8", test_query_bad_encoding);
    CU_add_test(s, "query: unknown and repeated parameters", test_query_unknown_and_repeated);
    CU_add_test(s, "query digest: canonical and unambiguous", test_digest);
    CU_add_test(s, "query: instructor_id, drafts hidden by default, page-only",
                test_query_visibility);
    CU_add_test(s, "iso8601 dates", test_iso8601);
    CU_add_test(s, "course JSON: field order and escaping", test_course_json);
    CU_add_test(s, "course JSON: empty fields and ratings", test_course_json_edges);
    CU_add_test(s, "summary JSON: no module content", test_summary_json);
    CU_add_test(s, "the largest summary and page fit their bounds", test_summary_bound);
    CU_add_test(s, "page JSON", test_page_json);
    CU_add_test(s, "cleanup frees and zeroes", test_cleanup);
}
