/* test_course_input.c -- request-body validation for course writes
 * (lib/model/course_input.c): every rule is tried on both sides of its limit,
 * and every rejection is checked by its exact message, because the message
 * is the API's 422 detail. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/course.h"
#include "core/el.h"
#include "unit.h"

/* A minimal valid create body, to which a test appends one more member
 * (which must begin with ','). */
#define BASE "\"title\":\"T\",\"description\":\"\",\"category\":\"c\",\"difficulty\":\"beginner\""

/* s repeated n times into a static-free heap string (caller frees). */
static char *rep(const char *s, size_t n)
{
    size_t len = strlen(s);
    char *p = malloc(len * n + 1);

    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    for (size_t i = 0; i < n; i++)
        memcpy(p + i * len, s, len);
    p[len * n] = '\0';
    return p;
}

/* printf into a heap string (caller frees). */
static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    va_list ap;
    char *p = NULL;
    int n;

    va_start(ap, f);
    n = vasprintf(&p, f, ap);
    va_end(ap);
    CU_ASSERT_FATAL(n >= 0);
    return p;
}

static int all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

/* ---- helpers: one per entry point, ok and bad --------------------------- */

static int create_len(const char *json, size_t len, struct el_course *c, struct el_err *err)
{
    memset(c, 0x55, sizeof(*c));
    return el_course_create_parse(json, len, c, err);
}

/* json must parse; the caller cleans *c up. */
static void create_ok(const char *json, struct el_course *c)
{
    struct el_err err = {0, ""};
    int rc = create_len(json, strlen(json), c, &err);

    if (rc != EL_OK)
        fprintf(stderr, "\n  unexpected rejection of %.120s: %s\n", json, err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, EL_OK);
}

/* json (len bytes) must be refused with exactly msg, leaving c zeroed. */
static void create_bad_len(const char *json, size_t len, const char *msg)
{
    struct el_course c;
    struct el_err err = {0, ""};
    int rc = create_len(json, len, &c, &err);

    if (rc != EL_EINVAL || strcmp(err.msg, msg) != 0)
        fprintf(stderr, "\n  %.120s: rc %d, msg \"%s\", wanted \"%s\"\n", json ? json : "(null)",
                rc, err.msg, msg);
    CU_ASSERT_EQUAL(rc, EL_EINVAL);
    CU_ASSERT_EQUAL(err.code, EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, msg);
    CU_ASSERT_TRUE(all_zero(&c, sizeof(c)));
    if (rc == EL_OK)
        el_course_cleanup(&c);
}

static void create_bad(const char *json, const char *msg)
{
    create_bad_len(json, strlen(json), msg);
}

/* A create body: the four required fields with plain values, except that
 * key -- one of them, keeping its place, or any other name, added last --
 * has the raw JSON value val. With key NULL, val is raw text (beginning
 * with ',') appended after the four. Caller frees. */
static char *body_with(const char *key, const char *val)
{
    static const char *const req[][2] = {{"title", "\"T\""},
                                         {"description", "\"\""},
                                         {"category", "\"c\""},
                                         {"difficulty", "\"beginner\""}};
    char *body = fmt("{"), *next;
    int replaced = 0;

    for (size_t i = 0; i < 4; i++) {
        int mine = key != NULL && strcmp(key, req[i][0]) == 0;

        next = fmt("%s%s\"%s\":%s", body, i ? "," : "", req[i][0], mine ? val : req[i][1]);
        free(body);
        body = next;
        replaced |= mine;
    }
    if (key == NULL)
        next = fmt("%s%s}", body, val);
    else if (!replaced)
        next = fmt("%s,\"%s\":%s}", body, key, val);
    else
        next = fmt("%s}", body);
    free(body);
    return next;
}

static void with_ok(const char *key, const char *val)
{
    char *json = body_with(key, val);
    struct el_course c;

    create_ok(json, &c);
    el_course_cleanup(&c);
    free(json);
}

static void with_bad(const char *key, const char *val, const char *msg)
{
    char *json = body_with(key, val);

    create_bad(json, msg);
    free(json);
}

static void patch_ok(const char *json, struct el_course_patch *p)
{
    struct el_err err = {0, ""};
    int rc;

    memset(p, 0x55, sizeof(*p));
    rc = el_course_patch_parse(json, strlen(json), p, &err);
    if (rc != EL_OK)
        fprintf(stderr, "\n  unexpected rejection of %.120s: %s\n", json, err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, EL_OK);
}

static void patch_bad(const char *json, const char *msg)
{
    struct el_course_patch p;
    struct el_err err = {0, ""};
    int rc;

    memset(&p, 0x55, sizeof(p));
    rc = el_course_patch_parse(json, strlen(json), &p, &err);
    if (rc != EL_EINVAL || strcmp(err.msg, msg) != 0)
        fprintf(stderr, "\n  %.120s: rc %d, msg \"%s\", wanted \"%s\"\n", json, rc, err.msg, msg);
    CU_ASSERT_EQUAL(rc, EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, msg);
    CU_ASSERT_TRUE(all_zero(&p, sizeof(p)));
    if (rc == EL_OK)
        el_course_patch_cleanup(&p);
}

static void mpatch_ok(const char *json, struct el_module_patch *p)
{
    struct el_err err = {0, ""};
    int rc;

    memset(p, 0x55, sizeof(*p));
    rc = el_module_patch_parse(json, strlen(json), p, &err);
    if (rc != EL_OK)
        fprintf(stderr, "\n  unexpected rejection of %.120s: %s\n", json, err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, EL_OK);
}

static void mpatch_bad(const char *json, const char *msg)
{
    struct el_module_patch p;
    struct el_err err = {0, ""};
    int rc;

    memset(&p, 0x55, sizeof(p));
    rc = el_module_patch_parse(json, strlen(json), &p, &err);
    if (rc != EL_EINVAL || strcmp(err.msg, msg) != 0)
        fprintf(stderr, "\n  %.120s: rc %d, msg \"%s\", wanted \"%s\"\n", json, rc, err.msg, msg);
    CU_ASSERT_EQUAL(rc, EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, msg);
    CU_ASSERT_TRUE(all_zero(&p, sizeof(p)));
    if (rc == EL_OK)
        el_module_patch_cleanup(&p);
}

/* ---- course create ------------------------------------------------------ */

static void test_create_minimal_defaults(void)
{
    struct el_course c;

    create_ok("{" BASE "}", &c);
    CU_ASSERT_STRING_EQUAL(c.title, "T");
    CU_ASSERT_STRING_EQUAL(c.description, "");
    CU_ASSERT_STRING_EQUAL(c.category, "c");
    CU_ASSERT_STRING_EQUAL(c.difficulty, "beginner");
    CU_ASSERT_TRUE(c.published); /* default */
    CU_ASSERT_EQUAL(c.ntags, 0);
    CU_ASSERT_EQUAL(c.nmodules, 0);
    CU_ASSERT_EQUAL(c.duration_minutes, 0);
    /* Set by the server, never by the body. */
    CU_ASSERT_STRING_EQUAL(c.id, "");
    CU_ASSERT_STRING_EQUAL(c.instructor_id, "");
    CU_ASSERT_EQUAL(c.enrollment_count, 0);
    CU_ASSERT_EQUAL(c.rating_count, 0);
    CU_ASSERT_EQUAL(c.created_at, 0);
    el_course_cleanup(&c);

    /* Without modules, duration_minutes is the body's. */
    create_ok("{" BASE ",\"duration_minutes\":90,\"published\":false}", &c);
    CU_ASSERT_EQUAL(c.duration_minutes, 90);
    CU_ASSERT_FALSE(c.published);
    el_course_cleanup(&c);
}

static void test_create_full(void)
{
    struct el_course c;

    create_ok(" \n{\"title\":\"Caf\\u00e9 \\\"C\\\" \xf0\x9f\x8e\x93\",\"description\":\"a\\nb\","
              "\"category\":\"data-science2\",\"difficulty\":\"advanced\","
              "\"tags\":[\"x\",\"\xc3\xa9t\xc3\xa9\"],\"published\":true,\"duration_minutes\":7,"
              "\"modules\":[{\"title\":\"one\",\"content\":\"\",\"duration_minutes\":10},"
              "{\"title\":\"two\",\"content\":\"c2\",\"duration_minutes\":25,\"order\":7},"
              "{\"order\":1,\"duration_minutes\":0,\"content\":\"c3\",\"title\":\"three\"}]}\t\r\n",
              &c);
    CU_ASSERT_STRING_EQUAL(c.title, "Caf\xc3\xa9 \"C\" \xf0\x9f\x8e\x93");
    CU_ASSERT_STRING_EQUAL(c.description, "a\nb");
    CU_ASSERT_STRING_EQUAL(c.category, "data-science2");
    CU_ASSERT_STRING_EQUAL(c.difficulty, "advanced");
    CU_ASSERT_EQUAL_FATAL(c.ntags, 2);
    CU_ASSERT_STRING_EQUAL(c.tags[0], "x");
    CU_ASSERT_STRING_EQUAL(c.tags[1], "\xc3\xa9t\xc3\xa9");
    CU_ASSERT_EQUAL_FATAL(c.nmodules, 3);
    CU_ASSERT_STRING_EQUAL(c.modules[0].title, "one");
    CU_ASSERT_STRING_EQUAL(c.modules[0].content, "");
    CU_ASSERT_EQUAL(c.modules[0].order, 1); /* position + 1 */
    CU_ASSERT_EQUAL(c.modules[1].order, 7);
    CU_ASSERT_EQUAL(c.modules[1].duration_minutes, 25);
    CU_ASSERT_STRING_EQUAL(c.modules[2].title, "three");
    CU_ASSERT_EQUAL(c.modules[2].order, 1); /* given, even if it repeats */
    for (size_t i = 0; i < c.nmodules; i++)
        CU_ASSERT_STRING_EQUAL(c.modules[i].id, ""); /* the store makes them */
    /* With modules, duration is their sum and the body's 7 is overridden. */
    CU_ASSERT_EQUAL(c.duration_minutes, 35);
    el_course_cleanup(&c);

    /* An empty module list is no list: the body's duration stands. */
    create_ok("{" BASE ",\"modules\":[],\"duration_minutes\":12}", &c);
    CU_ASSERT_EQUAL(c.nmodules, 0);
    CU_ASSERT_EQUAL(c.duration_minutes, 12);
    el_course_cleanup(&c);
}

static void test_create_required(void)
{
    create_bad("{}", "title: is required");
    create_bad("{\"description\":\"\",\"category\":\"c\",\"difficulty\":\"beginner\"}",
               "title: is required");
    create_bad("{\"title\":\"T\",\"category\":\"c\",\"difficulty\":\"beginner\"}",
               "description: is required");
    create_bad("{\"title\":\"T\",\"description\":\"\",\"difficulty\":\"beginner\"}",
               "category: is required");
    create_bad("{\"title\":\"T\",\"description\":\"\",\"category\":\"c\"}",
               "difficulty: is required");
    /* null is a value of the wrong type, not an absence. */
    create_bad(
        "{\"title\":null,\"description\":\"\",\"category\":\"c\",\"difficulty\":\"beginner\"}",
        "title: must be a string of 1 to 200 characters");
}

static void test_title_and_description_lengths(void)
{
    char *s, *m;

    with_ok("title", "\"x\"");
    with_bad("title", "\"\"", "title: must be a string of 1 to 200 characters");
    /* Characters, not bytes: 200 two-byte and 200 four-byte characters fit. */
    for (int k = 0; k < 3; k++) {
        const char *ch = k == 0 ? "a" : k == 1 ? "\xc3\xa9" : "\xf0\x9f\x8e\x93";

        s = rep(ch, 200);
        m = fmt("\"%s\"", s);
        with_ok("title", m);
        free(m);
        free(s);
        s = rep(ch, 201);
        m = fmt("\"%s\"", s);
        with_bad("title", m, "title: must be a string of 1 to 200 characters");
        free(m);
        free(s);
    }
    /* An escape is one character however it is spelled. */
    s = rep("\\u00e9", 200);
    m = fmt("\"%s\"", s);
    with_ok("title", m);
    free(m);
    free(s);
    with_bad("title", "5", "title: must be a string of 1 to 200 characters");
    with_bad("title", "[\"x\"]", "title: must be a string of 1 to 200 characters");

    s = rep("d", 5000);
    m = fmt("\"%s\"", s);
    with_ok("description", m);
    free(m);
    free(s);
    s = rep("d", 5001);
    m = fmt("\"%s\"", s);
    with_bad("description", m, "description: must be a string of at most 5000 characters");
    free(m);
    free(s);
    with_bad("description", "false", "description: must be a string of at most 5000 characters");
}

static void test_category(void)
{
    static const char *const good[] = {"a", "data-science", "web3", "-", "0"};
    static const char *const bad[] = {"",    "Data",     "a_b",     "a b", "caf\xc3\xa9",
                                      "a.b", "a\\u0000", "\\u0041", "a/b"};
    const char *msg = "category: must be 1 to 64 characters of a-z, 0-9 and -";
    char *s, *m;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        m = fmt("\"%s\"", good[i]);
        with_ok("category", m);
        free(m);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        m = fmt("\"%s\"", bad[i]);
        with_bad("category", m, msg);
        free(m);
    }
    s = rep("z", 64);
    m = fmt("\"%s\"", s);
    with_ok("category", m);
    free(m);
    free(s);
    s = rep("z", 65);
    m = fmt("\"%s\"", s);
    with_bad("category", m, msg);
    free(m);
    free(s);
    with_bad("category", "1", msg);
}

static void test_difficulty(void)
{
    const char *msg = "difficulty: must be one of beginner, intermediate, advanced";
    struct el_course c;

    with_ok("difficulty", "\"intermediate\"");
    create_ok(
        "{\"title\":\"T\",\"description\":\"\",\"category\":\"c\",\"difficulty\":\"advanced\"}",
        &c);
    CU_ASSERT_STRING_EQUAL(c.difficulty, "advanced");
    el_course_cleanup(&c);
    with_bad("difficulty", "\"Beginner\"", msg);
    with_bad("difficulty", "\"expert\"", msg);
    with_bad("difficulty", "\"\"", msg);
    with_bad("difficulty", "\"beginner\\u0000\"", msg);
    with_bad("difficulty", "1", msg);
    with_bad("difficulty", "null", msg);
}

static void test_tags(void)
{
    struct el_course c;
    char *s, *m;

    create_ok("{" BASE ",\"tags\":[]}", &c);
    CU_ASSERT_EQUAL(c.ntags, 0);
    el_course_cleanup(&c);
    /* 20 tags fit, 21 do not. */
    s = rep("\"t\",", 20);
    s[strlen(s) - 1] = '\0';
    m = fmt("[%s]", s);
    with_ok("tags", m);
    free(m);
    m = fmt("[%s,\"u\"]", s);
    with_bad("tags", m, "tags: must be an array of at most 20 strings");
    free(m);
    free(s);
    /* Each tag 1 to 32 characters. */
    s = rep("\xc3\xa9", 32);
    m = fmt("[\"a\",\"%s\"]", s);
    with_ok("tags", m);
    free(m);
    free(s);
    s = rep("b", 33);
    m = fmt("[\"a\",\"%s\"]", s);
    with_bad("tags", m, "tags[1]: must be a string of 1 to 32 characters");
    free(m);
    free(s);
    with_bad("tags", "[\"a\",\"b\",\"\"]", "tags[2]: must be a string of 1 to 32 characters");
    with_bad("tags", "[1]", "tags[0]: must be a string of 1 to 32 characters");
    with_bad("tags", "[[\"a\"]]", "tags[0]: must be a string of 1 to 32 characters");
    with_bad("tags", "\"a\"", "tags: must be an array of at most 20 strings");
    with_bad("tags", "{}", "tags: must be an array of at most 20 strings");
    with_bad("tags", "null", "tags: must be an array of at most 20 strings");
}

static void test_integers(void)
{
    static const char *const not_int[] = {
        "1.5",
        "1.0",
        "1e2",
        "-0.0",
        "\"1\"",
        "true",
        "null",
        "[1]",
        "{}",
        "-1",
        "10001",
        "99999999999999999999",
        "-9223372036854775809",
    };
    const char *msg = "duration_minutes: must be an integer between 0 and 10000";
    char *m;

    with_ok("duration_minutes", "0");
    with_ok("duration_minutes", "-0");
    with_ok("duration_minutes", "10000");
    for (size_t i = 0; i < sizeof(not_int) / sizeof(not_int[0]); i++) {
        m = fmt("%s", not_int[i]);
        with_bad("duration_minutes", m, msg);
        free(m);
    }
}

static void test_published(void)
{
    const char *msg = "published: must be true or false";

    with_ok("published", "true");
    with_ok("published", "false");
    with_bad("published", "\"true\"", msg);
    with_bad("published", "1", msg);
    with_bad("published", "0", msg);
    with_bad("published", "null", msg);
}

/* A valid module object with one member replaced or added. */
#define MOD "\"title\":\"m\",\"content\":\"c\",\"duration_minutes\":5"

static void test_modules(void)
{
    char *s, *m, *body;

    /* 50 modules fit, 51 do not. */
    s = rep("{" MOD "},", 50);
    s[strlen(s) - 1] = '\0';
    m = fmt("[%s]", s);
    with_ok("modules", m);
    free(m);
    m = fmt("[%s,{" MOD "}]", s);
    with_bad("modules", m, "modules: must be an array of at most 50 modules");
    free(m);
    free(s);
    with_bad("modules", "{}", "modules: must be an array of at most 50 modules");
    with_bad("modules", "[{" MOD "},7]", "modules[1]: must be an object");
    with_bad("modules", "[null]", "modules[0]: must be an object");

    /* Required members of a module, named with their index. */
    with_bad("modules", "[{" MOD "},{\"content\":\"c\",\"duration_minutes\":5}]",
             "modules[1].title: is required");
    with_bad("modules", "[{\"title\":\"m\",\"duration_minutes\":5}]",
             "modules[0].content: is required");
    with_bad("modules", "[{\"title\":\"m\",\"content\":\"\"}]",
             "modules[0].duration_minutes: is required");

    /* Each member's rule. */
    with_bad("modules",
             "[{" MOD "},{" MOD "},{\"title\":\"\",\"content\":\"c\","
             "\"duration_minutes\":5}]",
             "modules[2].title: must be a string of 1 to 200 characters");
    s = rep("c", 20000);
    m = fmt("[{\"title\":\"m\",\"content\":\"%s\",\"duration_minutes\":1000}]", s);
    with_ok("modules", m);
    free(m);
    free(s);
    s = rep("c", 20001);
    m = fmt("[{\"title\":\"m\",\"content\":\"%s\",\"duration_minutes\":5}]", s);
    with_bad("modules", m, "modules[0].content: must be a string of at most 20000 characters");
    free(m);
    free(s);
    with_bad("modules", "[{" MOD "},{\"title\":\"m\",\"content\":\"c\",\"duration_minutes\":1001}]",
             "modules[1].duration_minutes: must be an integer between 0 and 1000");
    with_bad("modules", "[{\"title\":\"m\",\"content\":\"c\",\"duration_minutes\":2.5}]",
             "modules[0].duration_minutes: must be an integer between 0 and 1000");
    with_ok("modules", "[{" MOD ",\"order\":1},{" MOD ",\"order\":1000}]");
    with_bad("modules", "[{" MOD ",\"order\":0}]",
             "modules[0].order: must be an integer between 1 and 1000");
    with_bad("modules", "[{" MOD ",\"order\":1001}]",
             "modules[0].order: must be an integer between 1 and 1000");
    with_bad("modules", "[{" MOD ",\"order\":\"2\"}]",
             "modules[0].order: must be an integer between 1 and 1000");
    with_bad("modules", "[{" MOD ",\"order\":2.0}]",
             "modules[0].order: must be an integer between 1 and 1000");
    with_bad("modules", "[{" MOD "},{" MOD ",\"_id\":\"66000000000000000000000a\"}]",
             "unknown field: modules[1]._id");
    with_bad("modules", "[{" MOD ",\"titel\":\"x\"}]", "unknown field: modules[0].titel");

    /* The first error in document order is the one reported. */
    body = fmt("{" BASE ",\"modules\":[{\"title\":\"\",\"content\":1,\"duration_minutes\":5}]}");
    create_bad(body, "modules[0].title: must be a string of 1 to 200 characters");
    free(body);
}

static void test_unknown_fields(void)
{
    static const char *const server_set[] = {
        "_id",
        "id",
        "instructor_id",
        "rating",
        "rating_count",
        "enrollment_count",
        "created_at",
        "updated_at",
        "Title",
        "title ",
        "",
    };
    char *m, *s, *want;

    for (size_t i = 0; i < sizeof(server_set) / sizeof(server_set[0]); i++) {
        m = fmt(",\"%s\":1", server_set[i]);
        want = fmt("unknown field: %s", server_set[i]);
        with_bad(NULL, m, want);
        free(want);
        free(m);
    }
    /* Long names are cut (at a character boundary) and control characters
     * are not echoed raw. */
    s = rep("k", 100);
    m = fmt(",\"%s\":1", s);
    want = fmt("unknown field: %.64s...", s);
    with_bad(NULL, m, want);
    free(want);
    free(m);
    free(s);
    s = rep("\xc3\xa9", 40); /* 80 bytes: a cut at 64 falls between characters */
    m = fmt(",\"%s\":1", s);
    want = fmt("unknown field: %.64s...", s);
    with_bad(NULL, m, want);
    free(want);
    free(m);
    free(s);
    m = rep("\xe2\x82\xac", 30); /* 3-byte characters: 1 + 63 bytes fit in 64 */
    s = fmt("x%sy", m);
    free(m);
    m = fmt(",\"%s\":1", s);
    want = fmt("unknown field: %.64s...", s);
    with_bad(NULL, m, want);
    free(want);
    free(m);
    free(s);
    with_bad(NULL, ",\"a\\nb\\u0007\":1", "unknown field: a?b?");
}

static void test_forbidden_keys(void)
{
    const char *tail = ": field names may not start with $ or contain .";
    static const struct {
        const char *member; /* appended to BASE */
        const char *path;
    } cases[] = {
        {",\"$where\":\"1\"", "$where"},
        {",\"$\":1", "$"},
        {",\"a.b\":1", "a.b"},
        {",\".\":1", "."},
        {",\"title.x\":1", "title.x"},
        {",\"\\u0024gt\":1", "$gt"}, /* however the $ is spelled */
        {",\"tags\":[],\"meta\":{\"x\":{\"$gt\":1}}", "meta.x.$gt"},
        {",\"meta\":[1,{\"ok\":[{\"a.b\":1}]}]", "meta[1].ok[0].a.b"},
        {",\"modules\":[{" MOD "},{" MOD ",\"$set\":{}}]", "modules[1].$set"},
        {",\"modules\":[{\"title\":{\"$ne\":\"\"},\"content\":\"c\",\"duration_minutes\":5}]",
         "modules[0].title.$ne"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *want = fmt("%s%s", cases[i].path, tail);
        with_bad(NULL, cases[i].member, want);
        free(want);
    }
    /* Checked before anything else about the fields: an unknown field or a
     * bad value earlier in the body does not hide it. */
    create_bad("{\"nope\":1,\"title\":\"\",\"x\":{\"$y\":1}}", "x.$y: field names may not "
                                                               "start with $ or contain .");
    patch_bad("{\"title\":\"\",\"a.b\":1}", "a.b: field names may not start with $ or contain .");
    mpatch_bad("{\"order\":0,\"$inc\":{\"order\":1}}",
               "$inc: field names may not start with $ or contain .");
    /* In values, '$' and '.' are plain text. */
    with_ok("tags", "[\"$where\",\"a.b\"]");
    with_ok("title", "\"{\\\"$gt\\\": \\\"\\\"}.\"");
}

static void test_json_syntax(void)
{
    static const char *const not_object[] = {"",  "   \n", "[]",   "[{}]",          "\"x\"",
                                             "1", "null",  "true", "\xef\xbb\xbf{}"};
    char nul_after[] = "{" BASE "}\0{}";
    char nul_inside[] = "{\"title\":\"a\0b\"}";
    struct el_course c;

    for (size_t i = 0; i < sizeof(not_object) / sizeof(not_object[0]); i++)
        create_bad(not_object[i], "body: must be a JSON object");
    create_bad_len(NULL, 0, "body: must be a JSON object");
    create_bad("{" BASE "} x", "body: invalid JSON (unexpected character at byte 70)");
    create_bad("{" BASE "}{}", "body: invalid JSON (unexpected character at byte 69)");
    create_bad_len(nul_after, sizeof(nul_after) - 1, "body: unexpected data after the JSON object");
    create_bad_len(nul_inside, sizeof(nul_inside) - 1,
                   "body: invalid JSON (unexpected end of data at byte 12)");
    create_bad("{" BASE, "body: invalid JSON (unexpected end)");
    create_bad("{\"title\":}", "body: invalid JSON (unexpected character at byte 9)");
    create_bad("{" BASE ",}", "body: invalid JSON (unexpected character at byte 69)");
    create_bad("{title:1}", "body: invalid JSON (quoted object property name expected at byte 1)");
    create_bad("{\"a\":01}", "body: invalid JSON (number expected at byte 7)");
    /* What json-c's strict mode lets through, the raw scan refuses. */
    create_bad("{'title':'x'}", "body: invalid JSON (unexpected character at byte 9)");
    create_bad("{'title':1}", "body: invalid JSON (unexpected character at byte 1)");
    create_bad("{" BASE ",\"x\":-Infinity}", "body: invalid JSON (unexpected word at byte 74)");
    create_bad("{" BASE ",\"x\":NaN}", "body: invalid JSON (unexpected word at byte 73)");
    create_bad("{\"title\":\"a\tb\"}",
               "body: invalid JSON (control character in a string at byte 11)");
    /* Only len bytes are read: a valid body followed by junk the caller
     * did not count is fine. */
    CU_ASSERT_EQUAL(create_len("{" BASE "}junk", strlen("{" BASE "}"), &c, NULL), EL_OK);
    el_course_cleanup(&c);
    /* Surrounding JSON whitespace is fine. */
    create_ok(" \t\r\n{" BASE "} \t\r\n", &c);
    el_course_cleanup(&c);
}

static void test_depth_limit(void)
{
    /* A value may sit inside at most 7 objects and arrays (a valid body
     * needs 3). Unknown fields that deep are refused by name; deeper ones
     * as too deep, so no recursion over the tree can run away. */
    with_bad("x", "[[[[[[1]]]]]]", "unknown field: x");
    with_bad("x", "[[[[[[[]]]]]]]", "unknown field: x");
    with_bad("x", "[[[[[[[1]]]]]]]", "body: nested too deeply");
    with_bad("x", "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":1}}}}}}", "unknown field: x");
    with_bad("x", "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":1}}}}}}}",
             "body: nested too deeply");
    {
        char *open = rep("[", 100000), *body = fmt("{\"x\":%s", open);
        create_bad(body, "body: nested too deeply");
        free(body);
        free(open);
    }
}

static void test_utf8(void)
{
    const char *msg = "title: must be valid UTF-8 without NUL characters";
    struct el_course c;

    with_bad("title", "\"a\xff\"", msg);
    with_bad("title", "\"\xc0\xaf\"", msg);         /* overlong '/' */
    with_bad("title", "\"\xed\xa0\x80\"", msg);     /* a surrogate, encoded */
    with_bad("title", "\"\xf4\x90\x80\x80\"", msg); /* above U+10FFFF */
    with_bad("title", "\"\xe2\x82\"", msg);         /* truncated */
    with_bad("title", "\"a\\u0000b\"", msg);        /* NUL, escaped */
    with_bad("tags", "[\"ok\",\"\\u0000\"]", "tags[1]: must be valid UTF-8 without NUL characters");
    with_bad("modules", "[{\"title\":\"m\",\"content\":\"\x80\",\"duration_minutes\":1}]",
             "modules[0].content: must be valid UTF-8 without NUL characters");
    /* Escapes decode to UTF-8, a surrogate pair to one character. */
    create_ok("{\"title\":\"\\u00e9\\ud83c\\udf93\",\"description\":\"\\u65e5\",\"category\":\"c\","
              "\"difficulty\":\"beginner\"}",
              &c);
    CU_ASSERT_STRING_EQUAL(c.title, "\xc3\xa9\xf0\x9f\x8e\x93");
    CU_ASSERT_STRING_EQUAL(c.description, "\xe6\x97\xa5");
    el_course_cleanup(&c);
    /* Field names too. */
    with_bad(NULL, ",\"\xff\":1", "body: field names must be valid UTF-8");
    with_bad(NULL, ",\"x\\u0000\":1", "body: field names may not contain NUL characters");
    /* ... which would otherwise read as "title" to json-c. */
    create_bad("{\"title\\u0000junk\":\"T\",\"description\":\"\",\"category\":\"c\","
               "\"difficulty\":\"beginner\"}",
               "body: field names may not contain NUL characters");
}

static void test_duplicate_keys(void)
{
    const char *msg = "body: duplicate field names are not allowed";

    with_bad(NULL, ",\"title\":\"second\"", msg);
    /* However the second one is spelled. */
    with_bad(NULL, ",\"t\\u0069tle\":\"second\"", msg);
    with_bad("modules", "[{" MOD ",\"order\":1,\"order\":2}]", msg);
    with_bad("x", "{\"a\":1,\"a\":{\"b\":1}}", msg);
    patch_bad("{\"published\":true,\"published\":false}", msg);
    mpatch_bad("{\"order\":3,\"order\":4}", msg);
    /* Equal names in different objects are not duplicates. */
    with_ok("modules", "[{" MOD "},{" MOD "}]");
}

static void test_null_err_and_cleanup(void)
{
    struct el_course c;
    struct el_course_patch p;
    struct el_module_patch mp;

    CU_ASSERT_EQUAL(el_course_create_parse("{}", 2, &c, NULL), EL_EINVAL);
    CU_ASSERT_EQUAL(el_course_patch_parse("[", 1, &p, NULL), EL_EINVAL);
    CU_ASSERT_EQUAL(el_module_patch_parse("{\"$x\":1}", 8, &mp, NULL), EL_EINVAL);
    el_course_patch_cleanup(NULL);
    el_module_patch_cleanup(NULL);
    el_course_patch_cleanup(&p); /* zeroed by the failed parse: harmless */
    el_module_patch_cleanup(&mp);
}

/* Every prefix of a rich body and every one-byte corruption of it is
 * either accepted or refused with a message -- never a crash or a leak
 * (the sanitizer builds run this too). */
static void test_truncations_and_corruptions(void)
{
    const char *body =
        "{\"title\":\"Caf\\u00e9\",\"description\":\"d\",\"category\":\"c-1\","
        "\"difficulty\":\"advanced\",\"tags\":[\"a\",\"b\"],\"published\":false,"
        "\"modules\":[{\"title\":\"m\",\"content\":\"c\",\"duration_minutes\":5,\"order\":2}]}";
    static const char subst[] = {'"',  '{', '}', '[', ']', ',',  ':',
                                 '\\', '$', '.', 'x', '0', '\0', '\x80'};
    size_t len = strlen(body), accepted = 0;
    char *copy = malloc(len);
    struct el_course c;
    struct el_err err;

    CU_ASSERT_PTR_NOT_NULL_FATAL(copy);
    for (size_t n = 0; n < len; n++) {
        err.msg[0] = '\0';
        CU_ASSERT_EQUAL(create_len(body, n, &c, &err), EL_EINVAL);
        CU_ASSERT(err.msg[0] != '\0');
    }
    for (size_t i = 0; i < len; i++) {
        for (size_t k = 0; k < sizeof(subst); k++) {
            int rc;

            memcpy(copy, body, len);
            copy[i] = subst[k];
            err.msg[0] = '\0';
            rc = create_len(copy, len, &c, &err);
            CU_ASSERT(rc == EL_OK || (rc == EL_EINVAL && err.msg[0] != '\0'));
            if (rc == EL_OK) {
                accepted++;
                el_course_cleanup(&c);
            }
        }
    }
    CU_ASSERT(accepted > 0); /* e.g. 'x' inside a string */
    free(copy);
}

/* ---- course patch ------------------------------------------------------- */

static void test_patch_fields(void)
{
    struct el_course_patch p;

    patch_ok("{\"title\":\"New\"}", &p);
    CU_ASSERT_EQUAL(p.fields, EL_CF_TITLE);
    CU_ASSERT_STRING_EQUAL(p.c.title, "New");
    CU_ASSERT_PTR_NULL(p.c.description);
    el_course_patch_cleanup(&p);
    CU_ASSERT_EQUAL(p.fields, 0);
    CU_ASSERT_PTR_NULL(p.c.title);

    patch_ok("{\"published\":false}", &p);
    CU_ASSERT_EQUAL(p.fields, EL_CF_PUBLISHED);
    CU_ASSERT_FALSE(p.c.published);
    el_course_patch_cleanup(&p);

    patch_ok("{\"tags\":[]}", &p); /* clearing the tags is a change */
    CU_ASSERT_EQUAL(p.fields, EL_CF_TAGS);
    CU_ASSERT_EQUAL(p.c.ntags, 0);
    el_course_patch_cleanup(&p);

    patch_ok("{\"description\":\"\",\"category\":\"new-cat\",\"difficulty\":\"intermediate\","
             "\"tags\":[\"q\"],\"duration_minutes\":0,\"published\":true}",
             &p);
    CU_ASSERT_EQUAL(p.fields, EL_CF_DESCRIPTION | EL_CF_CATEGORY | EL_CF_DIFFICULTY | EL_CF_TAGS |
                                  EL_CF_DURATION | EL_CF_PUBLISHED);
    CU_ASSERT_STRING_EQUAL(p.c.description, "");
    CU_ASSERT_STRING_EQUAL(p.c.category, "new-cat");
    CU_ASSERT_STRING_EQUAL(p.c.difficulty, "intermediate");
    CU_ASSERT_EQUAL_FATAL(p.c.ntags, 1);
    CU_ASSERT_STRING_EQUAL(p.c.tags[0], "q");
    CU_ASSERT_EQUAL(p.c.duration_minutes, 0);
    CU_ASSERT_TRUE(p.c.published);
    el_course_patch_cleanup(&p);
}

static void test_patch_rules(void)
{
    patch_bad("{}", "body: at least one of title, description, category, difficulty, tags, "
                    "duration_minutes, published is required");
    patch_bad("{\"title\":\"\"}", "title: must be a string of 1 to 200 characters");
    patch_bad("{\"category\":\"Bad\"}", "category: must be 1 to 64 characters of a-z, 0-9 and -");
    patch_bad("{\"difficulty\":\"easy\"}",
              "difficulty: must be one of beginner, intermediate, advanced");
    patch_bad("{\"duration_minutes\":10001}",
              "duration_minutes: must be an integer between 0 and 10000");
    patch_bad("{\"published\":\"no\"}", "published: must be true or false");
    /* Modules are changed one at a time, never through the course. */
    patch_bad("{\"modules\":[]}", "unknown field: modules");
    patch_bad("{\"title\":\"x\",\"rating\":5}", "unknown field: rating");
    patch_bad("{\"title\":\"x\",\"enrollment_count\":0}", "unknown field: enrollment_count");
    patch_bad("[{\"title\":\"x\"}]", "body: must be a JSON object");
    patch_bad("{\"title\":\"x\"} {}", "body: invalid JSON (unexpected character at byte 14)");
}

/* ---- module patch ------------------------------------------------------- */

static void test_module_patch(void)
{
    struct el_module_patch p;

    mpatch_ok("{\"order\":3}", &p);
    CU_ASSERT_EQUAL(p.fields, EL_MF_ORDER);
    CU_ASSERT_EQUAL(p.m.order, 3);
    CU_ASSERT_PTR_NULL(p.m.title);
    el_module_patch_cleanup(&p);
    CU_ASSERT_EQUAL(p.fields, 0);

    mpatch_ok("{\"title\":\"t\",\"content\":\"\",\"duration_minutes\":1000,\"order\":1000}", &p);
    CU_ASSERT_EQUAL(p.fields, EL_MF_TITLE | EL_MF_CONTENT | EL_MF_DURATION | EL_MF_ORDER);
    CU_ASSERT_STRING_EQUAL(p.m.title, "t");
    CU_ASSERT_STRING_EQUAL(p.m.content, "");
    CU_ASSERT_EQUAL(p.m.duration_minutes, 1000);
    CU_ASSERT_EQUAL(p.m.order, 1000);
    CU_ASSERT_STRING_EQUAL(p.m.id, "");
    el_module_patch_cleanup(&p);

    mpatch_bad("{}", "body: at least one of title, content, duration_minutes, order is required");
    mpatch_bad("{\"title\":\"\"}", "title: must be a string of 1 to 200 characters");
    mpatch_bad("{\"content\":null}", "content: must be a string of at most 20000 characters");
    mpatch_bad("{\"duration_minutes\":-1}",
               "duration_minutes: must be an integer between 0 and 1000");
    mpatch_bad("{\"order\":0}", "order: must be an integer between 1 and 1000");
    mpatch_bad("{\"order\":true}", "order: must be an integer between 1 and 1000");
    mpatch_bad("{\"order\":1,\"_id\":\"x\"}", "unknown field: _id");
    mpatch_bad("{\"order\":1,\"category\":\"x\"}", "unknown field: category");
    mpatch_bad("{\"title\":\"\\u0000\"}", "title: must be valid UTF-8 without NUL characters");
}

static void test_module_create_and_rating(void)
{
    struct el_module m;
    struct el_err err = {0, ""};
    int stars = 0;
    static const struct {
        const char *json, *msg;
    } bad[] = {
        {"{\"title\":\"T\",\"content\":\"c\"}", "duration_minutes: is required"},
        {"{\"content\":\"c\",\"duration_minutes\":5}", "title: is required"},
        {"{\"title\":\"\",\"content\":\"c\",\"duration_minutes\":5}",
         "title: must be a string of 1 to 200 characters"},
        {"{\"title\":\"T\",\"content\":\"c\",\"duration_minutes\":5,\"order\":0}",
         "order: must be an integer between 1 and 1000"},
        {"{\"title\":\"T\",\"content\":\"c\",\"duration_minutes\":5,\"x\":1}", "unknown field: x"},
        {"[]", NULL},
    };

    const char *good = "{\"title\":\"T\",\"content\":\"c\",\"duration_minutes\":5}";

    CU_ASSERT_EQUAL_FATAL(el_module_create_parse(good, strlen(good), &m, &err), EL_OK);
    CU_ASSERT_STRING_EQUAL(m.title, "T");
    CU_ASSERT_EQUAL(m.duration_minutes, 5);
    CU_ASSERT_EQUAL(m.order, 0); /* the store puts it last */
    el_module_cleanup(&m);
    CU_ASSERT_PTR_NULL(m.title);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CU_ASSERT_EQUAL(el_module_create_parse(bad[i].json, strlen(bad[i].json), &m, &err),
                        EL_EINVAL);
        if (bad[i].msg)
            CU_ASSERT_STRING_EQUAL(err.msg, bad[i].msg);
        CU_ASSERT_TRUE(all_zero(&m, sizeof(m)));
    }

    CU_ASSERT_EQUAL(el_rating_parse("{\"stars\":4}", 11, &stars, &err), EL_OK);
    CU_ASSERT_EQUAL(stars, 4);
    CU_ASSERT_EQUAL(el_rating_parse("{\"stars\":6}", 11, &stars, &err), EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, "stars: must be an integer between 1 and 5");
    CU_ASSERT_EQUAL(el_rating_parse("{\"stars\":4.5}", 13, &stars, &err), EL_EINVAL);
    CU_ASSERT_EQUAL(el_rating_parse("{\"stars\":\"4\"}", 13, &stars, &err), EL_EINVAL);
    CU_ASSERT_EQUAL(el_rating_parse("{}", 2, &stars, &err), EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, "stars: is required");
    CU_ASSERT_EQUAL(el_rating_parse("{\"stars\":4,\"x\":1}", 17, &stars, &err), EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.msg, "unknown field: x");
    CU_ASSERT_EQUAL(el_rating_parse("{\"stars\":4,\"stars\":5}", 21, &stars, &err), EL_EINVAL);
}

void test_course_input_register(void)
{
    CU_pSuite s = CU_add_suite("course_input", NULL, NULL);

    CU_add_test(s, "create: minimal body and defaults", test_create_minimal_defaults);
    CU_add_test(s, "create: every field, modules, duration sum", test_create_full);
    CU_add_test(s, "create: required fields", test_create_required);
    CU_add_test(s, "title and description lengths in characters",
                test_title_and_description_lengths);
    CU_add_test(s, "category", test_category);
    CU_add_test(s, "difficulty", test_difficulty);
    CU_add_test(s, "tags", test_tags);
    CU_add_test(s, "integers are JSON integers in range", test_integers);
    CU_add_test(s, "published", test_published);
    CU_add_test(s, "modules", test_modules);
    CU_add_test(s, "unknown fields", test_unknown_fields);
    CU_add_test(s, "keys with $ or . are refused at any depth", test_forbidden_keys);
    CU_add_test(s, "JSON syntax, top level, trailing data", test_json_syntax);
    CU_add_test(s, "nesting limit", test_depth_limit);
    CU_add_test(s, "UTF-8 and NUL in values and names", test_utf8);
    CU_add_test(s, "duplicate keys", test_duplicate_keys);
    CU_add_test(s, "NULL err, cleanup of NULL and of a failed parse", test_null_err_and_cleanup);
    CU_add_test(s, "truncated and corrupted bodies", test_truncations_and_corruptions);
    CU_add_test(s, "patch: fields and flags", test_patch_fields);
    CU_add_test(s, "patch: rules", test_patch_rules);
    CU_add_test(s, "module patch", test_module_patch);
    CU_add_test(s, "module create and rating bodies", test_module_create_and_rating);
}
