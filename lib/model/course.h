/* course.h -- the course model: the document both stores return, the
 * validated list query, and the one serializer that turns them into the
 * JSON bytes the API sends (so both stores produce identical JSON).
 *
 * Ownership: struct el_course owns every string and array it points to;
 * el_course_cleanup() frees them. Strings are heap copies (malloc), never
 * borrowed from a driver's buffers. */
#ifndef EL_COURSE_H
#define EL_COURSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/el.h"
#include "model/oid.h"

#define EL_COURSE_SEARCH_MAX 200  /* bytes of the search parameter */
#define EL_COURSE_CATEGORY_MAX 64 /* bytes of the category parameter */
#define EL_COURSE_PAGE_SIZE_MAX 100
#define EL_COURSE_PAGE_SIZE_DEFAULT 12
#define EL_COURSE_MODULES_MAX 50 /* modules in one course */

struct el_module {
    char id[EL_OID_HEX];
    char *title;
    char *content;
    int duration_minutes;
    int order;
};

struct el_course {
    char id[EL_OID_HEX];
    char *title;
    char *description;
    char *category;
    char *difficulty; /* beginner | intermediate | advanced */
    char **tags;
    size_t ntags;
    char instructor_id[EL_OID_HEX];
    int duration_minutes;
    double rating; /* 0.0 - 5.0, one decimal place */
    int rating_count;
    int enrollment_count;
    bool published;
    int64_t created_at; /* ms since the Unix epoch, UTC */
    int64_t updated_at;
    /* The store's revision of this document: 1 when inserted, + 1 in the
     * same transaction / atomic update as every write to it (patch, module,
     * enroll). Never in the JSON; the caches' version guard (tiered.h). */
    uint64_t rev;
    struct el_module *modules;
    size_t nmodules;
};

/* Free everything c owns and zero it. c may be NULL. */
void el_course_cleanup(struct el_course *c);

enum el_sort {
    EL_SORT_RECENT,    /* created_at desc */
    EL_SORT_POPULAR,   /* enrollment_count desc */
    EL_SORT_TOP_RATED, /* rating desc */
    EL_SORT_DURATION,  /* duration_minutes asc */
};

/* Ties in every sort are broken by _id ascending so pages are stable and
 * both stores agree on the order. */
const char *el_sort_name(enum el_sort s);

/* A validated GET /courses query. Empty strings mean "no filter". */
struct el_course_query {
    char search[EL_COURSE_SEARCH_MAX + 1];
    char category[EL_COURSE_CATEGORY_MAX + 1];
    char difficulty[16];
    enum el_sort sort;
    int page;      /* >= 1 */
    int page_size; /* 1 - 100 */
    /* Visibility (issue 12). The parser sets published_only (the public
     * catalogue never shows drafts); only a handler that has checked the
     * caller may clear it. instructor_id: "" for any instructor, else only
     * this one's courses (24 hex, lowercase); the query string's
     * instructor_id=me sets instructor_me instead, for the handler to
     * resolve. */
    bool published_only;
    bool instructor_me;
    char instructor_id[EL_OID_HEX];
};

/* Parse and validate a raw query string (QUERY_STRING, percent-encoded,
 * may be NULL or empty). On failure returns EL_EINVAL and puts a message
 * naming the offending parameter in err->msg (the API's 422 detail).
 * Unknown and repeated parameters are rejected too. */
int el_course_query_parse(const char *qs, struct el_course_query *q, struct el_err *err) EL_WUR;

/* Hex SHA-1 (41 bytes with NUL) of the canonical form of q: two queries that
 * select the same page get the same digest whatever order or spelling the
 * client used. */
void el_course_query_digest(const struct el_course_query *q, char out[41]);

/* One page of a list: total matches and the items on this page. */
struct el_course_page {
    int64_t total;
    struct el_course *items;
    size_t nitems;
};
void el_course_page_cleanup(struct el_course_page *p);

/* One page of the courses a user is enrolled in (GET /users/me/enrollments),
 * newest enrollment first: items[i] (summary fields only, no modules) was
 * enrolled in at enrolled_at[i] (ms since the epoch). */
struct el_enrollment_page {
    int64_t total;
    struct el_course *items;
    int64_t *enrolled_at;
    size_t nitems;
};
void el_enrollment_page_cleanup(struct el_enrollment_page *p);

/* {"total","page","page_size","items":[{summary..., "enrolled_at"}]} */
int el_enrollment_page_to_json(const struct el_enrollment_page *p, int page, int page_size,
                               struct el_buf *out) EL_WUR;

/* A page of a list that is not a GET /courses query (page, page_size). */
int el_page_query_parse(const char *qs, int *page, int *page_size, struct el_err *err) EL_WUR;

/* Append the JSON of one course / one course summary / one page response
 * ({"total","page","page_size","items"}) to out.
 *
 * A summary is the course without its modules' content (modules keep _id,
 * title, duration_minutes and order, so the module count and the total
 * duration stay): what list items carry, so one course with large modules
 * cannot make a list page large. With the input limits of course_input.c
 * (title 200, description 5000, tag 32 and module title 200 characters,
 * 20 tags, 50 modules) a summary is at most EL_COURSE_SUMMARY_MAX bytes --
 * every character escaped to six bytes ("\u0001") included -- and a page
 * of EL_COURSE_PAGE_SIZE_MAX summaries at most EL_COURSE_PAGE_MAX bytes,
 * under the 16 MiB a cached response may have (tiered.c). Ordinary text
 * (one to four bytes a character) stays under a sixth of that. */
#define EL_COURSE_SUMMARY_MAX (112u * 1024)
#define EL_COURSE_PAGE_MAX (EL_COURSE_PAGE_SIZE_MAX * EL_COURSE_SUMMARY_MAX + 1024)
int el_course_to_json(const struct el_course *c, struct el_buf *out) EL_WUR;
int el_course_summary_to_json(const struct el_course *c, struct el_buf *out) EL_WUR;
int el_course_page_to_json(const struct el_course_page *p, const struct el_course_query *q,
                           struct el_buf *out) EL_WUR;

/* ---- writes ------------------------------------------------------------ */

/* Which fields a patch sets (bit flags). */
enum {
    EL_CF_TITLE = 1 << 0,
    EL_CF_DESCRIPTION = 1 << 1,
    EL_CF_CATEGORY = 1 << 2,
    EL_CF_DIFFICULTY = 1 << 3,
    EL_CF_TAGS = 1 << 4,
    EL_CF_DURATION = 1 << 5,
    EL_CF_PUBLISHED = 1 << 6,
    EL_CF_MODULES = 1 << 7, /* replace the module list (POST only) */
};
enum {
    EL_MF_TITLE = 1 << 0,
    EL_MF_CONTENT = 1 << 1,
    EL_MF_DURATION = 1 << 2,
    EL_MF_ORDER = 1 << 3,
};

/* A partial update of a course: the values in c whose EL_CF_* bit is set in
 * fields. c owns its strings as any struct el_course does. */
struct el_course_patch {
    unsigned fields;
    struct el_course c;
};

struct el_module_patch {
    unsigned fields;
    struct el_module m;
};

void el_course_patch_cleanup(struct el_course_patch *p);
void el_module_patch_cleanup(struct el_module_patch *p);

/* Parse and strictly validate a JSON request body (lib/model/course_input.c).
 * Types, lengths and enum values are checked, unknown fields are rejected,
 * and no key beginning with '$' or containing '.' is accepted anywhere. On
 * failure: EL_EINVAL with err->msg naming the field ("title: must be a
 * string of 1 to 200 characters", "unknown field: foo"), the API's 422
 * detail.
 *  - course create: title, description, category, difficulty required;
 *    tags, published (default true), modules[] ({title, content,
 *    duration_minutes, order?}) optional; duration_minutes is computed as
 *    the sum of the modules' when modules are given, else taken from the
 *    body (default 0). Ids, counts, rating, dates and instructor_id are set
 *    by the server, never by the body.
 *  - course patch: any of title, description, category, difficulty, tags,
 *    duration_minutes, published; at least one.
 *  - module patch: any of title, content, duration_minutes, order; at least
 *    one. */
int el_course_create_parse(const char *json, size_t len, struct el_course *out,
                           struct el_err *err) EL_WUR;
int el_course_patch_parse(const char *json, size_t len, struct el_course_patch *out,
                          struct el_err *err) EL_WUR;
int el_module_patch_parse(const char *json, size_t len, struct el_module_patch *out,
                          struct el_err *err) EL_WUR;

/* POST /courses/{id}/modules: title, content, duration_minutes required,
 * order optional (0 in out->order when absent: the store puts the module
 * last). */
int el_module_create_parse(const char *json, size_t len, struct el_module *out,
                           struct el_err *err) EL_WUR;
void el_module_cleanup(struct el_module *m);

/* PUT /courses/{id}/rating: {"stars": 1..5}, nothing else. */
int el_rating_parse(const char *json, size_t len, int *stars, struct el_err *err) EL_WUR;

/* The average of sum stars over count ratings, rounded half up to one
 * decimal place by integer arithmetic, so both stores agree to the bit
 * (0.0 when count is 0). */
double el_rating_average(int64_t sum, int64_t count);

/* Format ms since the epoch as ISO 8601 UTC with milliseconds,
 * e.g. "2026-11-26T11:37:55.123Z" (out needs 25 bytes). */
void el_iso8601(int64_t ms, char out[32]);

#endif /* EL_COURSE_H */
