/* course_input.c -- strict validation of course and module request bodies
 * (see course.h, "writes"): JSON text in, a struct el_course or a patch out,
 * or EL_EINVAL with a message naming the field -- the API's 422 detail.
 *
 * Key decision: a body is checked in three passes, each over a bounded
 * amount of work, before any field is looked at:
 *   1. json-c parses it (strict mode, a nesting limit), and nothing but
 *      whitespace may follow the one top-level object;
 *   2. a scan of the raw text refuses what json-c's strict mode still lets
 *      through (single-quoted strings, NaN and Infinity, raw control
 *      characters in strings) and counts the object members it sees. json-c
 *      keeps only the last of two equal keys, so the parsed tree holding
 *      fewer members than the text is how a duplicate key is detected;
 *   3. a walk of the whole tree refuses any key that starts with '$' or
 *      contains '.', however deep, so no operator or dotted path can reach
 *      MongoDB even through a field that would be rejected later anyway.
 * Only then are fields matched against a table per body kind; anything not
 * in the table is an unknown field.
 *
 * Lengths are counted in characters (Unicode code points), not bytes, and
 * every string must be valid UTF-8 (RFC 3629) without NUL characters. On
 * failure the output is left zeroed, so it never needs a cleanup. */
#include "model/course.h"
#include "core/text.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

/* json-c's depth counts the levels it may open plus one. A valid body has
 * three (body, modules, module); a few more leave room for unknown fields,
 * which are refused by name rather than as "too deep". */
#define JSON_DEPTH 8
#define PATH_MAX_SHOWN 150 /* bytes of a field path quoted in a message */
#define KEY_MAX_SHOWN 64   /* bytes of one key quoted in a message */
#define NAME_BUF 192       /* a field name for messages: "modules[49].<key>" */

#define TITLE_MAX 200
#define DESCRIPTION_MAX 5000
#define TAGS_MAX 20
#define TAG_MAX 32
#define COURSE_DURATION_MAX 10000
#define MODULES_MAX EL_COURSE_MODULES_MAX
#define CONTENT_MAX 20000
#define MODULE_DURATION_MAX 1000
#define ORDER_MAX 1000

/* ---- text -------------------------------------------------------------- */

/* Characters in valid UTF-8: every byte that does not continue a sequence
 * starts one. */
static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

/* Copy s (valid UTF-8) into dst (cap bytes, cap > max + 3) for quoting in a
 * one-line message: at most max bytes without splitting a character, "..."
 * marking a cut, control characters shown as '?'. */
static void show(char *dst, size_t cap, const char *s, size_t max)
{
    size_t full = strlen(s), n = full;

    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    if (n + 4 > cap)
        n = 0;          /* cannot happen with the callers' buffers */
    memmove(dst, s, n); /* dst may be s */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)dst[i] < 0x20 || dst[i] == 0x7F)
            dst[i] = '?';
    if (n < full)
        memcpy(dst + n, "...", 4);
    else
        dst[n] = '\0';
}

/* The name of a field for messages: prefix ("" or "modules[2].") and key,
 * shown with show(). */
static void field_name(char *dst, size_t cap, const char *prefix, const char *key)
{
    char k[KEY_MAX_SHOWN + 4];

    show(k, sizeof(k), key, KEY_MAX_SHOWN);
    snprintf(dst, cap, "%s%s", prefix, k);
}

/* ---- pass 1 and 2: parse, then scan the raw text ------------------------ */

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Scan the n bytes json-c accepted (see the file header). Counts object
 * members (':' outside strings) into *members. */
static int raw_scan(const char *s, size_t n, size_t *members, struct el_err *err)
{
    size_t i = 0;
    int key_nul = 0; /* the last string held an escaped NUL */

    *members = 0;
    while (i < n) {
        char c = s[i];

        if (is_ws(c) || c == '{' || c == '}' || c == '[' || c == ']' || c == ',') {
            i++;
        } else if (c == ':') {
            if (key_nul)
                return el_err_set(err, EL_EINVAL,
                                  "body: field names may not contain NUL characters");
            (*members)++;
            i++;
        } else if (c == '"') {
            key_nul = 0;
            for (i++; i < n && s[i] != '"'; i++) {
                if ((unsigned char)s[i] < 0x20)
                    return el_err_set(err, EL_EINVAL,
                                      "body: invalid JSON (control character in a string at "
                                      "byte %zu)",
                                      i);
                if (s[i] == '\\') {
                    if (n - i >= 6 && memcmp(s + i + 1, "u0000", 5) == 0)
                        key_nul = 1;
                    i++; /* the escaped character; \u's digits are plain */
                }
            }
            i++; /* the closing quote */
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            /* json-c checked the number's form; only its extent matters. */
            while (i < n && (s[i] == '-' || s[i] == '+' || s[i] == '.' || s[i] == 'e' ||
                             s[i] == 'E' || (s[i] >= '0' && s[i] <= '9')))
                i++;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
            size_t start = i, len;

            while (i < n && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
                i++;
            len = i - start;
            if (!((len == 4 && memcmp(s + start, "true", 4) == 0) ||
                  (len == 5 && memcmp(s + start, "false", 5) == 0) ||
                  (len == 4 && memcmp(s + start, "null", 4) == 0)))
                return el_err_set(err, EL_EINVAL,
                                  "body: invalid JSON (unexpected word at byte %zu)", start);
        } else {
            return el_err_set(err, EL_EINVAL,
                              "body: invalid JSON (unexpected character at byte %zu)", i);
        }
    }
    return EL_OK;
}

/* Members of every object in the tree under o. The depth is bounded by
 * the tokenizer, and so is this recursion. */
static size_t tree_members(struct json_object *o)
{
    size_t n = 0;

    if (json_object_is_type(o, json_type_object)) {
        json_object_object_foreach(o, key, val)
        {
            EL_UNUSED(key);
            n += 1 + tree_members(val);
        }
    } else if (json_object_is_type(o, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(o); i++)
            n += tree_members(json_object_array_get_idx(o, i));
    }
    return n;
}

/* Pass 3: refuse '$' and '.' in any key, and keys that are not UTF-8.
 * path holds the location of o ("" at the top), len its length. */
static int check_keys(struct json_object *o, char *path, size_t len, size_t cap, struct el_err *err)
{
    int rc;

    if (json_object_is_type(o, json_type_object)) {
        json_object_object_foreach(o, key, val)
        {
            char k[KEY_MAX_SHOWN + 4];
            size_t klen = strlen(key);

            if (!el_utf8_valid(key, klen))
                return el_err_set(err, EL_EINVAL, "body: field names must be valid UTF-8");
            show(k, sizeof(k), key, KEY_MAX_SHOWN);
            snprintf(path + len, cap - len, "%s%s", len ? "." : "", k);
            if (key[0] == '$' || strchr(key, '.') != NULL) {
                if (strlen(path) > PATH_MAX_SHOWN)
                    show(path, cap, path, PATH_MAX_SHOWN);
                return el_err_set(err, EL_EINVAL,
                                  "%s: field names may not start with $ or contain .", path);
            }
            if ((rc = check_keys(val, path, strlen(path), cap, err)) != EL_OK)
                return rc;
            path[len] = '\0';
        }
    } else if (json_object_is_type(o, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(o); i++) {
            snprintf(path + len, cap - len, "[%zu]", i);
            if ((rc = check_keys(json_object_array_get_idx(o, i), path, strlen(path), cap, err)) !=
                EL_OK)
                return rc;
            path[len] = '\0';
        }
    }
    return EL_OK;
}

/* Passes 1 to 3: *out is the body's top-level object (caller puts it). */
static int parse_body(const char *json, size_t len, struct json_object **out, struct el_err *err)
{
    struct json_tokener *tok;
    struct json_object *o = NULL;
    size_t i = 0, end, members;
    char path[1024];
    int rc;

    *out = NULL;
    if (json == NULL)
        len = 0;
    if (len > INT_MAX)
        return el_err_set(err, EL_EINVAL, "body: too large");
    while (i < len && is_ws(json[i]))
        i++;
    if (i == len || json[i] != '{')
        return el_err_set(err, EL_EINVAL, "body: must be a JSON object");
    tok = json_tokener_new_ex(JSON_DEPTH);
    if (tok == NULL)
        return el_err_set(err, EL_ENOMEM, "out of memory");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    o = json_tokener_parse_ex(tok, json, (int)len);
    end = json_tokener_get_parse_end(tok);
    if (o == NULL) {
        enum json_tokener_error e = json_tokener_get_error(tok);

        if (e == json_tokener_error_depth)
            rc = el_err_set(err, EL_EINVAL, "body: nested too deeply");
        else if (e == json_tokener_continue)
            rc = el_err_set(err, EL_EINVAL, "body: invalid JSON (unexpected end)");
        else
            rc = el_err_set(err, EL_EINVAL, "body: invalid JSON (%s at byte %zu)",
                            json_tokener_error_desc(e), end);
        json_tokener_free(tok);
        return rc;
    }
    json_tokener_free(tok);
    for (i = end; i < len; i++) {
        if (!is_ws(json[i])) {
            rc = el_err_set(err, EL_EINVAL, "body: unexpected data after the JSON object");
            goto fail;
        }
    }
    if (!json_object_is_type(o, json_type_object)) { /* cannot happen: it began with '{' */
        rc = el_err_set(err, EL_EINVAL, "body: must be a JSON object");
        goto fail;
    }
    if ((rc = raw_scan(json, end, &members, err)) != EL_OK)
        goto fail;
    if (tree_members(o) != members) {
        rc = el_err_set(err, EL_EINVAL, "body: duplicate field names are not allowed");
        goto fail;
    }
    path[0] = '\0';
    if ((rc = check_keys(o, path, 0, sizeof(path), err)) != EL_OK)
        goto fail;
    *out = o;
    return EL_OK;
fail:
    json_object_put(o);
    return rc;
}

/* ---- fields ------------------------------------------------------------ */

enum kind { K_TEXT, K_CATEGORY, K_DIFFICULTY, K_TAGS, K_INT, K_BOOL, K_MODULES };

struct field {
    const char *name;
    unsigned flag; /* EL_CF_* or EL_MF_* */
    enum kind kind;
    int min, max; /* characters for text, values for integers, items for arrays */
};

/* Table order is the order "is required" is checked in. */
static const struct field course_fields[] = {
    {"title", EL_CF_TITLE, K_TEXT, 1, TITLE_MAX},
    {"description", EL_CF_DESCRIPTION, K_TEXT, 0, DESCRIPTION_MAX},
    {"category", EL_CF_CATEGORY, K_CATEGORY, 1, EL_COURSE_CATEGORY_MAX},
    {"difficulty", EL_CF_DIFFICULTY, K_DIFFICULTY, 0, 0},
    {"tags", EL_CF_TAGS, K_TAGS, 0, TAGS_MAX},
    {"duration_minutes", EL_CF_DURATION, K_INT, 0, COURSE_DURATION_MAX},
    {"published", EL_CF_PUBLISHED, K_BOOL, 0, 0},
    {"modules", EL_CF_MODULES, K_MODULES, 0, MODULES_MAX},
};
#define NCOURSE_FIELDS (sizeof(course_fields) / sizeof(course_fields[0]))

static const struct field module_fields[] = {
    {"title", EL_MF_TITLE, K_TEXT, 1, TITLE_MAX},
    {"content", EL_MF_CONTENT, K_TEXT, 0, CONTENT_MAX},
    {"duration_minutes", EL_MF_DURATION, K_INT, 0, MODULE_DURATION_MAX},
    {"order", EL_MF_ORDER, K_INT, 1, ORDER_MAX},
};
#define NMODULE_FIELDS (sizeof(module_fields) / sizeof(module_fields[0]))

#define COURSE_CREATE_FIELDS                                                                       \
    (EL_CF_TITLE | EL_CF_DESCRIPTION | EL_CF_CATEGORY | EL_CF_DIFFICULTY | EL_CF_TAGS |            \
     EL_CF_DURATION | EL_CF_PUBLISHED | EL_CF_MODULES)
#define COURSE_CREATE_REQUIRED (EL_CF_TITLE | EL_CF_DESCRIPTION | EL_CF_CATEGORY | EL_CF_DIFFICULTY)
#define COURSE_PATCH_FIELDS (COURSE_CREATE_FIELDS & ~(unsigned)EL_CF_MODULES)
#define MODULE_ALL_FIELDS (EL_MF_TITLE | EL_MF_CONTENT | EL_MF_DURATION | EL_MF_ORDER)
#define MODULE_CREATE_REQUIRED (EL_MF_TITLE | EL_MF_CONTENT | EL_MF_DURATION)

static const char *const difficulties[] = {"beginner", "intermediate", "advanced"};

/* A heap copy of string v of min..max characters. */
static int get_text(struct json_object *v, const char *name, int min, int max, char **out,
                    struct el_err *err)
{
    const char *s;
    size_t len, chars;

    if (!json_object_is_type(v, json_type_string)) {
        if (min > 0)
            return el_err_set(err, EL_EINVAL, "%s: must be a string of %d to %d characters", name,
                              min, max);
        return el_err_set(err, EL_EINVAL, "%s: must be a string of at most %d characters", name,
                          max);
    }
    s = json_object_get_string(v);
    len = (size_t)json_object_get_string_len(v);
    if (memchr(s, '\0', len) != NULL || !el_utf8_valid(s, len))
        return el_err_set(err, EL_EINVAL, "%s: must be valid UTF-8 without NUL characters", name);
    chars = utf8_chars(s, len);
    if (chars < (size_t)min || chars > (size_t)max) {
        if (min > 0)
            return el_err_set(err, EL_EINVAL, "%s: must be a string of %d to %d characters", name,
                              min, max);
        return el_err_set(err, EL_EINVAL, "%s: must be a string of at most %d characters", name,
                          max);
    }
    *out = malloc(len + 1);
    if (*out == NULL)
        return el_err_set(err, EL_ENOMEM, "out of memory");
    memcpy(*out, s, len + 1);
    return EL_OK;
}

/* A JSON integer (not 1.5, not "1", not true) in [min, max]. */
static int get_int(struct json_object *v, const char *name, int min, int max, int *out,
                   struct el_err *err)
{
    int64_t n;

    if (!json_object_is_type(v, json_type_int))
        return el_err_set(err, EL_EINVAL, "%s: must be an integer between %d and %d", name, min,
                          max);
    n = json_object_get_int64(v); /* clamps huge values, which are out of range too */
    if (n < min || n > max)
        return el_err_set(err, EL_EINVAL, "%s: must be an integer between %d and %d", name, min,
                          max);
    *out = (int)n;
    return EL_OK;
}

static int get_category(struct json_object *v, const char *name, char **out, struct el_err *err)
{
    const char *s;
    size_t len;

    if (json_object_is_type(v, json_type_string)) {
        s = json_object_get_string(v);
        len = (size_t)json_object_get_string_len(v);
        if (len >= 1 && len <= EL_COURSE_CATEGORY_MAX &&
            strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == len) {
            *out = strdup(s);
            return *out ? EL_OK : el_err_set(err, EL_ENOMEM, "out of memory");
        }
    }
    return el_err_set(err, EL_EINVAL, "%s: must be 1 to %d characters of a-z, 0-9 and -", name,
                      EL_COURSE_CATEGORY_MAX);
}

static int get_difficulty(struct json_object *v, const char *name, char **out, struct el_err *err)
{
    if (json_object_is_type(v, json_type_string)) {
        const char *s = json_object_get_string(v);

        for (size_t i = 0; i < sizeof(difficulties) / sizeof(difficulties[0]); i++) {
            if ((size_t)json_object_get_string_len(v) == strlen(difficulties[i]) &&
                strcmp(s, difficulties[i]) == 0) {
                *out = strdup(s);
                return *out ? EL_OK : el_err_set(err, EL_ENOMEM, "out of memory");
            }
        }
    }
    return el_err_set(err, EL_EINVAL, "%s: must be one of beginner, intermediate, advanced", name);
}

/* tags: an array of 0..TAGS_MAX strings of 1..TAG_MAX characters. c->tags
 * is replaced. */
static int get_tags(struct json_object *v, const char *name, struct el_course *c,
                    struct el_err *err)
{
    size_t n;
    int rc;

    if (!json_object_is_type(v, json_type_array) || (n = json_object_array_length(v)) > TAGS_MAX)
        return el_err_set(err, EL_EINVAL, "%s: must be an array of at most %d strings", name,
                          TAGS_MAX);
    for (size_t i = 0; i < c->ntags; i++)
        free(c->tags[i]);
    free(c->tags);
    c->tags = NULL;
    c->ntags = 0;
    if (n == 0)
        return EL_OK;
    c->tags = calloc(n, sizeof(*c->tags));
    if (c->tags == NULL)
        return el_err_set(err, EL_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char item[NAME_BUF];

        snprintf(item, sizeof(item), "%s[%zu]", name, i);
        rc = get_text(json_object_array_get_idx(v, i), item, 1, TAG_MAX, &c->tags[i], err);
        if (rc != EL_OK)
            return rc;
        c->ntags = i + 1;
    }
    return EL_OK;
}

/* Look key up in tab among the allowed fields. */
static const struct field *find_field(const struct field *tab, size_t n, unsigned allowed,
                                      const char *key)
{
    for (size_t i = 0; i < n; i++)
        if ((tab[i].flag & allowed) && strcmp(tab[i].name, key) == 0)
            return &tab[i];
    return NULL;
}

/* The first field of tab in need that is not in have, or NULL. */
static const struct field *first_missing(const struct field *tab, size_t n, unsigned need,
                                         unsigned have)
{
    for (size_t i = 0; i < n; i++)
        if ((tab[i].flag & need) && !(tab[i].flag & have))
            return &tab[i];
    return NULL;
}

/* Fill m from module object o. prefix names o in messages ("" for a module
 * patch body, "modules[2]." inside a course). *set gets the EL_MF_* bits
 * of the fields present. */
static int parse_module(struct json_object *o, const char *prefix, struct el_module *m,
                        unsigned *set, struct el_err *err)
{
    *set = 0;
    json_object_object_foreach(o, key, val)
    {
        const struct field *f = find_field(module_fields, NMODULE_FIELDS, MODULE_ALL_FIELDS, key);
        char name[2 * NAME_BUF];
        int rc;

        field_name(name, sizeof(name), prefix, key);
        if (f == NULL)
            return el_err_set(err, EL_EINVAL, "unknown field: %s", name);
        switch (f->flag) {
        case EL_MF_TITLE:
            rc = get_text(val, name, f->min, f->max, &m->title, err);
            break;
        case EL_MF_CONTENT:
            rc = get_text(val, name, f->min, f->max, &m->content, err);
            break;
        case EL_MF_DURATION:
            rc = get_int(val, name, f->min, f->max, &m->duration_minutes, err);
            break;
        default: /* EL_MF_ORDER */
            rc = get_int(val, name, f->min, f->max, &m->order, err);
            break;
        }
        if (rc != EL_OK)
            return rc;
        *set |= f->flag;
    }
    return EL_OK;
}

/* modules: an array of 0..MODULES_MAX module objects, each with title,
 * content and duration_minutes; order defaults to the position + 1. */
static int get_modules(struct json_object *v, const char *name, struct el_course *c,
                       struct el_err *err)
{
    size_t n;
    int rc;

    if (!json_object_is_type(v, json_type_array) || (n = json_object_array_length(v)) > MODULES_MAX)
        return el_err_set(err, EL_EINVAL, "%s: must be an array of at most %d modules", name,
                          MODULES_MAX);
    if (n == 0)
        return EL_OK;
    c->modules = calloc(n, sizeof(*c->modules));
    if (c->modules == NULL)
        return el_err_set(err, EL_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        struct json_object *o = json_object_array_get_idx(v, i);
        struct el_module *m = &c->modules[i];
        const struct field *miss;
        char prefix[NAME_BUF];
        unsigned set;

        c->nmodules = i + 1; /* counted now so cleanup frees a half-filled one */
        snprintf(prefix, sizeof(prefix), "%s[%zu]", name, i);
        if (!json_object_is_type(o, json_type_object))
            return el_err_set(err, EL_EINVAL, "%s: must be an object", prefix);
        strcat(prefix, ".");
        if ((rc = parse_module(o, prefix, m, &set, err)) != EL_OK)
            return rc;
        miss = first_missing(module_fields, NMODULE_FIELDS, MODULE_CREATE_REQUIRED, set);
        if (miss != NULL)
            return el_err_set(err, EL_EINVAL, "%s%s: is required", prefix, miss->name);
        if (!(set & EL_MF_ORDER))
            m->order = (int)i + 1;
    }
    return EL_OK;
}

/* Fill c from the top-level object o, accepting the fields in allowed;
 * *set gets the EL_CF_* bits of the fields present. */
static int parse_course(struct json_object *o, unsigned allowed, struct el_course *c, unsigned *set,
                        struct el_err *err)
{
    *set = 0;
    json_object_object_foreach(o, key, val)
    {
        const struct field *f = find_field(course_fields, NCOURSE_FIELDS, allowed, key);
        char name[NAME_BUF];
        int rc;

        field_name(name, sizeof(name), "", key);
        if (f == NULL)
            return el_err_set(err, EL_EINVAL, "unknown field: %s", name);
        switch (f->kind) {
        case K_TEXT:
            rc = get_text(val, name, f->min, f->max,
                          f->flag == EL_CF_TITLE ? &c->title : &c->description, err);
            break;
        case K_CATEGORY:
            rc = get_category(val, name, &c->category, err);
            break;
        case K_DIFFICULTY:
            rc = get_difficulty(val, name, &c->difficulty, err);
            break;
        case K_TAGS:
            rc = get_tags(val, f->name, c, err);
            break;
        case K_INT:
            rc = get_int(val, name, f->min, f->max, &c->duration_minutes, err);
            break;
        case K_BOOL:
            if (!json_object_is_type(val, json_type_boolean))
                return el_err_set(err, EL_EINVAL, "%s: must be true or false", name);
            c->published = json_object_get_boolean(val) != 0;
            rc = EL_OK;
            break;
        default: /* K_MODULES */
            rc = get_modules(val, f->name, c, err);
            break;
        }
        if (rc != EL_OK)
            return rc;
        *set |= f->flag;
    }
    return EL_OK;
}

/* ---- entry points ------------------------------------------------------ */

int el_course_create_parse(const char *json, size_t len, struct el_course *out, struct el_err *err)
{
    struct json_object *o;
    const struct field *miss;
    unsigned set = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = parse_body(json, len, &o, err)) != EL_OK)
        return rc;
    out->published = true;
    rc = parse_course(o, COURSE_CREATE_FIELDS, out, &set, err);
    json_object_put(o);
    if (rc == EL_OK &&
        (miss = first_missing(course_fields, NCOURSE_FIELDS, COURSE_CREATE_REQUIRED, set)))
        rc = el_err_set(err, EL_EINVAL, "%s: is required", miss->name);
    if (rc != EL_OK) {
        el_course_cleanup(out);
        return rc;
    }
    /* The modules say how long the course is; without any, the body does. */
    if (out->nmodules > 0) {
        out->duration_minutes = 0;
        for (size_t i = 0; i < out->nmodules; i++)
            out->duration_minutes += out->modules[i].duration_minutes;
    }
    return EL_OK;
}

int el_course_patch_parse(const char *json, size_t len, struct el_course_patch *out,
                          struct el_err *err)
{
    struct json_object *o;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = parse_body(json, len, &o, err)) != EL_OK)
        return rc;
    rc = parse_course(o, COURSE_PATCH_FIELDS, &out->c, &out->fields, err);
    json_object_put(o);
    if (rc == EL_OK && out->fields == 0)
        rc = el_err_set(err, EL_EINVAL,
                        "body: at least one of title, description, category, difficulty, tags, "
                        "duration_minutes, published is required");
    if (rc != EL_OK)
        el_course_patch_cleanup(out);
    return rc;
}

int el_module_patch_parse(const char *json, size_t len, struct el_module_patch *out,
                          struct el_err *err)
{
    struct json_object *o;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = parse_body(json, len, &o, err)) != EL_OK)
        return rc;
    rc = parse_module(o, "", &out->m, &out->fields, err);
    json_object_put(o);
    if (rc == EL_OK && out->fields == 0)
        rc = el_err_set(err, EL_EINVAL,
                        "body: at least one of title, content, duration_minutes, order is "
                        "required");
    if (rc != EL_OK)
        el_module_patch_cleanup(out);
    return rc;
}

void el_course_patch_cleanup(struct el_course_patch *p)
{
    if (p == NULL)
        return;
    el_course_cleanup(&p->c);
    p->fields = 0;
}

void el_module_patch_cleanup(struct el_module_patch *p)
{
    if (p == NULL)
        return;
    free(p->m.title);
    free(p->m.content);
    memset(p, 0, sizeof(*p));
}

/* ---- issue 12: module create, rating ----------------------------------- */

int el_module_create_parse(const char *json, size_t len, struct el_module *out, struct el_err *err)
{
    struct json_object *o;
    const struct field *miss;
    unsigned set = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = parse_body(json, len, &o, err)) != EL_OK)
        return rc;
    rc = parse_module(o, "", out, &set, err);
    json_object_put(o);
    if (rc == EL_OK &&
        (miss = first_missing(module_fields, NMODULE_FIELDS, MODULE_CREATE_REQUIRED, set)))
        rc = el_err_set(err, EL_EINVAL, "%s: is required", miss->name);
    if (rc != EL_OK)
        el_module_cleanup(out);
    return rc;
}

void el_module_cleanup(struct el_module *m)
{
    if (m == NULL)
        return;
    free(m->title);
    free(m->content);
    memset(m, 0, sizeof(*m));
}

int el_rating_parse(const char *json, size_t len, int *stars, struct el_err *err)
{
    struct json_object *o;
    int rc = EL_OK, have = 0;

    if ((rc = parse_body(json, len, &o, err)) != EL_OK)
        return rc;
    json_object_object_foreach(o, key, val)
    {
        char name[NAME_BUF];

        field_name(name, sizeof(name), "", key);
        if (strcmp(key, "stars") != 0) {
            rc = el_err_set(err, EL_EINVAL, "unknown field: %s", name);
            break;
        }
        if ((rc = get_int(val, "stars", 1, 5, stars, err)) != EL_OK)
            break;
        have = 1;
    }
    json_object_put(o);
    if (rc == EL_OK && !have)
        rc = el_err_set(err, EL_EINVAL, "stars: is required");
    return rc;
}
