/* config.c -- start-up configuration from the environment and an optional
 * env file (see config.h for the contract).
 *
 * Key decision: validation is strict and happens once, here. A value is
 * either exactly right or the start-up fails with one line naming the
 * variable, what it must be and what it was -- "15 " or "1e3" is an error,
 * never silently 15 or 1. Messages echo values with control characters
 * escaped and long values cut, never echo the JWT secret (only its length),
 * and mask the password in URLs, because these lines end up in logs.
 *
 * A variable is "set" when a lookup returns non-NULL, even if empty: an
 * empty REDIS_URL disables L2, an empty number is an error. The env file is
 * read whole before any lookup; unknown keys in it are ignored (the same file
 * may feed other tools), and a later line wins over an earlier one. */
#include "core/config.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/redis.h"

#define DEFAULT_DB_URI "sqlite:var/elearn.db"
#define DEFAULT_REDIS_URL "redis://127.0.0.1:6379/0"
#define DEFAULT_L1_MAX_BYTES ((uint64_t)64 << 20)
#define MAX_L1_BYTES ((uint64_t)64 << 30)
#define JWT_SECRET_MIN 32
#define SHOWN_MAX 72 /* bytes of a bad value quoted in a message */

/* Integer variables: name, bounds, default and where the value goes. */
static const struct int_var {
    const char *name;
    int min, max, def;
    size_t off;
} int_vars[] = {
    {"ACCESS_TOKEN_EXPIRE_MINUTES", 1, 1440, 15,
     offsetof(struct el_config, access_token_expire_minutes)},
    {"REFRESH_TOKEN_EXPIRE_DAYS", 1, 30, 7, offsetof(struct el_config, refresh_token_expire_days)},
    {"COURSE_TTL", 1, 86400, 300, offsetof(struct el_config, course_ttl)},
    {"COURSE_LIST_TTL", 1, 86400, 120, offsetof(struct el_config, course_list_ttl)},
    {"WORKERS", 1, 1024, 16, offsetof(struct el_config, workers)},
    {"REDIS_TIMEOUT_MS", 10, 5000, 100, offsetof(struct el_config, redis_timeout_ms)},
    {"DB_TIMEOUT_MS", 100, 30000, 1500, offsetof(struct el_config, db_timeout_ms)},
    {"IDLE_TIMEOUT", 1, 3600, 60, offsetof(struct el_config, idle_timeout_s)},
    {"REQUEST_TIMEOUT", 1, 3600, 30, offsetof(struct el_config, request_timeout_s)},
    {"SEND_TIMEOUT", 1, 3600, 30, offsetof(struct el_config, send_timeout_s)},
    {"EVENT_THREADS", 1, 64, 1, offsetof(struct el_config, event_threads)},
    {"L1_MAX_STALE", 50, 60000, 1000, offsetof(struct el_config, l1_max_stale_ms)},
    {"CACHE_WARM_MS", 0, 60000, 3000, offsetof(struct el_config, cache_warm_ms)},
};

struct kv {
    char *key, *val;
};

/* Where values come from: the lookup function first, then the file. */
struct source {
    el_config_getenv_fn getenv_fn;
    void *arg;
    struct kv *kv; /* env file entries in file order; owned */
    size_t n, cap;
};

static const char *lookup(const struct source *src, const char *name)
{
    const char *v = src->getenv_fn ? src->getenv_fn(name, src->arg) : getenv(name);

    if (v != NULL)
        return v;
    for (size_t i = src->n; i-- > 0;)
        if (strcmp(src->kv[i].key, name) == 0)
            return src->kv[i].val;
    return NULL;
}

static void source_cleanup(struct source *src)
{
    for (size_t i = 0; i < src->n; i++) {
        free(src->kv[i].key);
        free(src->kv[i].val);
    }
    free(src->kv);
}

/* ---- messages --------------------------------------------------------- */

/* v as it may appear in a one-line message: printable ASCII as is; '"',
 * '\\' and everything else escaped; cut to fit dst (n bytes), marked "...".
 * The caller sizes dst so the whole message fits in struct el_err. */
static void shown(char *dst, size_t n, const char *v)
{
    size_t o = 0, i;

    for (i = 0; v[i] != '\0' && o + 4 + 3 < n; i++) {
        unsigned char c = (unsigned char)v[i];

        if (c == '"' || c == '\\')
            o += (size_t)snprintf(dst + o, n - o, "\\%c", c);
        else if (c == '\n')
            o += (size_t)snprintf(dst + o, n - o, "\\n");
        else if (c < 0x20 || c >= 0x7f)
            o += (size_t)snprintf(dst + o, n - o, "\\x%02x", c);
        else
            dst[o++] = (char)c;
    }
    if (v[i] != '\0') {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
}

/* A URL with its password replaced by "***": scheme://user:***@host... */
static void masked_url(char *dst, size_t n, const char *v)
{
    const char *u = strstr(v, "://");
    const char *at, *colon;

    if (u != NULL && (at = strrchr(u + 3, '@')) != NULL &&
        (colon = memchr(u + 3, ':', (size_t)(at - (u + 3)))) != NULL) {
        snprintf(dst, n, "%.*s***%s", (int)(colon + 1 - v), v, at);
        return;
    }
    snprintf(dst, n, "%s", v);
}

static int bad_value(struct el_err *err, const char *name, const char *what, const char *v)
{
    char s[SHOWN_MAX];

    shown(s, sizeof(s), v);
    return el_err_set(err, EL_EINVAL, "%s: %s (got \"%s\")", name, what, s);
}

static int bad_url(struct el_err *err, const char *name, const char *what, const char *v)
{
    char m[EL_CONFIG_STR];

    masked_url(m, sizeof(m), v);
    return bad_value(err, name, what, m);
}

/* ---- the env file ----------------------------------------------------- */

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

static int add_kv(struct source *src, const char *key, size_t klen, const char *val, size_t vlen)
{
    char *k, *v;

    if (src->n == src->cap) {
        size_t ncap = src->cap ? src->cap * 2 : 16;
        struct kv *p = realloc(src->kv, ncap * sizeof(*p));

        if (p == NULL)
            return EL_ENOMEM;
        src->kv = p;
        src->cap = ncap;
    }
    k = strndup(key, klen);
    v = strndup(val, vlen);
    if (k == NULL || v == NULL) {
        free(k);
        free(v);
        return EL_ENOMEM;
    }
    src->kv[src->n++] = (struct kv){k, v};
    return EL_OK;
}

/* One line of the file, without its newline. Accepts
 *   [export ]KEY=VALUE   KEY = VALUE   KEY="VALUE"   KEY='VALUE'   # comment
 * Quoted values are taken literally (no escapes). In an unquoted value a '#'
 * after whitespace starts a comment, so "a#b" keeps its '#'. Messages quote
 * no text from the line: it may hold a secret. */
static int parse_line(struct source *src, char *line, const char *path, unsigned lineno,
                      struct el_err *err)
{
    char *p = line, *key, *eq, *val, *end;
    size_t klen;

    while (is_space(*p))
        p++;
    if (*p == '\0' || *p == '#')
        return EL_OK;
    if (strncmp(p, "export", 6) == 0 && is_space(p[6])) {
        p += 6;
        while (is_space(*p))
            p++;
    }
    key = p;
    if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '_'))
        return el_err_set(err, EL_EINVAL, "%s:%u: expected KEY=VALUE", path, lineno);
    while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
           *p == '_')
        p++;
    klen = (size_t)(p - key);
    while (is_space(*p))
        p++;
    if (*p != '=')
        return el_err_set(err, EL_EINVAL, "%s:%u: expected KEY=VALUE", path, lineno);
    eq = ++p;
    while (is_space(*p))
        p++;

    if (*p == '"' || *p == '\'') {
        char q = *p;

        val = p + 1;
        end = strchr(val, q);
        if (end == NULL)
            return el_err_set(err, EL_EINVAL, "%s:%u: unterminated %s quote", path, lineno,
                              q == '"' ? "double" : "single");
        p = end + 1;
        while (is_space(*p))
            p++;
        if (*p != '\0' && *p != '#')
            return el_err_set(err, EL_EINVAL, "%s:%u: unexpected text after the closing quote",
                              path, lineno);
    } else {
        val = p;
        end = p;
        for (; *p != '\0'; p++) {
            if (*p == '#' && p > eq && is_space(p[-1]))
                break;
            if (!is_space(*p))
                end = p + 1;
        }
    }
    if (add_kv(src, key, klen, val, (size_t)(end - val)) != EL_OK)
        return el_err_set(err, EL_ENOMEM, "out of memory reading %s", path);
    return EL_OK;
}

static int read_env_file(struct source *src, const char *path, struct el_err *err)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    unsigned lineno = 0;
    int rc = EL_OK;

    if (f == NULL)
        return el_err_set(err, EL_EIO, "%s: %s", path, strerror(errno));
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (memchr(line, '\0', (size_t)len) != NULL) {
            rc = el_err_set(err, EL_EINVAL, "%s:%u: NUL byte in line", path, lineno);
            goto out;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        rc = parse_line(src, line, path, lineno, err);
        if (rc != EL_OK)
            goto out;
    }
    if (ferror(f))
        rc = el_err_set(err, EL_EIO, "%s: %s", path, strerror(errno));
out:
    free(line);
    fclose(f);
    return rc;
}

/* ---- values ----------------------------------------------------------- */

/* Strict decimal: optional '-', then digits only; no spaces, no '+', no
 * overflow (clamped past the bounds, which then fail the range check). */
static int parse_int(const char *s, long long min, long long max, long long *out)
{
    long long v = 0;
    int neg = *s == '-';

    if (neg)
        s++;
    if (*s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        if (v < 1000000000000LL)
            v = v * 10 + (*s - '0');
    }
    if (neg)
        v = -v;
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Digits with an optional K, M or G (KiB, MiB, GiB) suffix, at most
 * MAX_L1_BYTES. */
static int parse_bytes(const char *s, uint64_t *out)
{
    uint64_t v = 0, mult = 1;
    const char *p = s;

    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > MAX_L1_BYTES)
            return -1;
    }
    switch (*p) {
    case '\0':
        break;
    case 'K': case 'k':
        mult = (uint64_t)1 << 10;
        p++;
        break;
    case 'M': case 'm':
        mult = (uint64_t)1 << 20;
        p++;
        break;
    case 'G': case 'g':
        mult = (uint64_t)1 << 30;
        p++;
        break;
    default:
        return -1;
    }
    if (*p != '\0' || v > MAX_L1_BYTES / mult || v * mult > SIZE_MAX)
        return -1;
    *out = v * mult;
    return 0;
}

static int set_str(char *dst, const char *name, const char *v, struct el_err *err)
{
    size_t n = strlen(v);

    if (n >= EL_CONFIG_STR)
        return el_err_set(err, EL_EINVAL, "%s: must be at most %d characters (got %zu characters)",
                          name, EL_CONFIG_STR - 1, n);
    memcpy(dst, v, n + 1);
    return EL_OK;
}

static int load_db_uri(struct el_config *c, const struct source *src, struct el_err *err)
{
    const char *name = "DB_URI", *v = lookup(src, "DB_URI");
    const char *what = "must be mongodb://HOST[/DB] or sqlite:PATH";

    if (v == NULL && (v = lookup(src, "MONGO_URI")) != NULL)
        name = "MONGO_URI";
    if (v == NULL)
        v = DEFAULT_DB_URI;
    if (strncmp(v, "mongodb://", 10) == 0) {
        if (v[10] == '\0' || v[10] == '/')
            return bad_url(err, name, "must name a host after mongodb://", v);
    } else if (strncmp(v, "mongodb+srv://", 14) == 0) {
        if (v[14] == '\0' || v[14] == '/')
            return bad_url(err, name, "must name a host after mongodb+srv://", v);
    } else if (strncmp(v, "sqlite:", 7) == 0) {
        if (v[7] == '\0')
            return bad_url(err, name, "must name a file after sqlite:", v);
    } else {
        return bad_url(err, name, what, v);
    }
    return set_str(c->db_uri, name, v, err);
}

/* Validated by the module that will use it, so the two cannot disagree. */
static int load_redis_url(struct el_config *c, const struct source *src, struct el_err *err)
{
    const char *v = lookup(src, "REDIS_URL");
    struct el_redis *r = NULL;
    struct el_err rerr = {0, ""};
    int rc;

    if (v == NULL)
        v = DEFAULT_REDIS_URL;
    if (*v != '\0') {
        rc = el_redis_new(v, NULL, &r, &rerr);
        el_redis_free(r);
        if (rc == EL_EINVAL)
            return bad_url(err, "REDIS_URL", rerr.msg, v);
        if (rc != EL_OK)
            return el_err_set(err, rc, "REDIS_URL: %s", rerr.msg);
    }
    return set_str(c->redis_url, "REDIS_URL", v, err);
}

static int load_jwt_secret(struct el_config *c, const struct source *src, struct el_err *err)
{
    const char *v = lookup(src, "JWT_SECRET");
    size_t n;

    if (v == NULL)
        return el_err_set(err, EL_EINVAL,
                          "JWT_SECRET: required; set it to a random string of at least %d "
                          "characters",
                          JWT_SECRET_MIN);
    n = strlen(v);
    if (n < JWT_SECRET_MIN)
        return el_err_set(err, EL_EINVAL,
                          "JWT_SECRET: must be at least %d characters (got %zu characters)",
                          JWT_SECRET_MIN, n);
    return set_str(c->jwt_secret, "JWT_SECRET", v, err);
}

static int load_l1_max_bytes(struct el_config *c, const struct source *src, struct el_err *err)
{
    const char *v = lookup(src, "L1_MAX_BYTES");
    uint64_t bytes = DEFAULT_L1_MAX_BYTES;

    if (v != NULL && parse_bytes(v, &bytes) < 0)
        return bad_value(err, "L1_MAX_BYTES",
                         "must be a byte count from 0 (off) to 64G: digits with an optional "
                         "K, M or G suffix",
                         v);
    c->l1_max_bytes = (size_t)bytes;
    return EL_OK;
}

int el_config_load(struct el_config *cfg, const char *env_file, el_config_getenv_fn getenv_fn,
                   void *arg, struct el_err *err)
{
    struct source src = {getenv_fn, arg, NULL, 0, 0};
    struct el_config c;
    int rc;

    memset(&c, 0, sizeof(c));
    if (env_file != NULL) {
        rc = read_env_file(&src, env_file, err);
        if (rc != EL_OK)
            goto out;
    }
    if ((rc = load_db_uri(&c, &src, err)) != EL_OK ||
        (rc = load_redis_url(&c, &src, err)) != EL_OK ||
        (rc = load_jwt_secret(&c, &src, err)) != EL_OK ||
        (rc = load_l1_max_bytes(&c, &src, err)) != EL_OK)
        goto out;
    for (size_t i = 0; i < sizeof(int_vars) / sizeof(int_vars[0]); i++) {
        const struct int_var *iv = &int_vars[i];
        const char *v = lookup(&src, iv->name);
        long long n = iv->def;
        char what[96];

        if (v != NULL && parse_int(v, iv->min, iv->max, &n) < 0) {
            snprintf(what, sizeof(what), "must be an integer between %d and %d", iv->min,
                     iv->max);
            rc = bad_value(err, iv->name, what, v);
            goto out;
        }
        *(int *)((char *)&c + iv->off) = (int)n;
    }
    *cfg = c; /* only a complete, valid configuration is handed over */
out:
    source_cleanup(&src);
    return rc;
}
