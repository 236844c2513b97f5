/* config.c -- start-up configuration from the environment and an optional
 * env file (see config.h for the contract).
 *
 * Key decision: validation is strict and happens once, here. A value is
 * either exactly right or the start-up fails with one line naming the
 * variable, what it must be and what it was -- "15 " or "1e3" is an error,
 * never silently 15 or 1. Messages echo values with control characters
 * escaped and long values cut, never echo the JWT secret (only its length),
 * and mask the password in URLs, because these lines end up in logs.
 * Two values have a syntax owned by a higher layer -- REDIS_URL (the Redis
 * module) and TRUSTED_PROXIES (the HTTP layer) -- so they are stored as
 * given here and the program checks them at once with those modules
 * (app/config_check.c), in messages of the same shape (el_config_bad_value).
 *
 * A variable is "set" when a lookup returns non-NULL, even if empty: an
 * empty REDIS_URL disables L2, an empty number is an error. The env file is
 * read whole before any lookup, and a later line wins over an earlier one.
 * A key in the file that is no variable of ours is an error naming the key
 * and the closest known one: "WORKER=8" silently ignored would leave an
 * operator believing the pool has 8 threads. (The process environment is
 * not checked that way: it holds everything else on the machine.) */
#include "core/config.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* Every variable that is not an integer; with int_vars, the known keys. */
static const char *const str_vars[] = {
    "DB_URI",   "MONGO_URI", "REDIS_URL",  "JWT_SECRET",      "L1_MAX_BYTES",
    "DATA_DIR", "LOG_FILE",  "ACCESS_LOG", "TRUSTED_PROXIES", "INSTANCE",
};

struct kv {
    char *key, *val;
    unsigned lineno;
};

/* Where values come from: the lookup function first, then the file. */
struct source {
    el_config_getenv_fn getenv_fn;
    void *arg;
    struct kv *kv; /* env file entries in file order; owned */
    size_t n, cap;
    const char *path; /* the env file, for messages */
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

int el_config_bad_value(struct el_err *err, const char *name, const char *what, const char *v)
{
    char s[SHOWN_MAX];

    shown(s, sizeof(s), v);
    return el_err_set(err, EL_EINVAL, "%s: %s (got \"%s\")", name, what, s);
}

int el_config_bad_url(struct el_err *err, const char *name, const char *what, const char *v)
{
    char m[EL_CONFIG_STR];

    masked_url(m, sizeof(m), v);
    return el_config_bad_value(err, name, what, m);
}

/* ---- the env file ----------------------------------------------------- */

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

static int add_kv(struct source *src, const char *key, size_t klen, const char *val, size_t vlen,
                  unsigned lineno)
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
    src->kv[src->n++] = (struct kv){k, v, lineno};
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
    if (add_kv(src, key, klen, val, (size_t)(end - val), lineno) != EL_OK)
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

/* ---- unknown keys ----------------------------------------------------- */

static int known_key(const char *k)
{
    for (size_t i = 0; i < sizeof(int_vars) / sizeof(int_vars[0]); i++)
        if (strcmp(int_vars[i].name, k) == 0)
            return 1;
    for (size_t i = 0; i < sizeof(str_vars) / sizeof(str_vars[0]); i++)
        if (strcmp(str_vars[i], k) == 0)
            return 1;
    return 0;
}

/* Levenshtein distance, case-insensitive (keys are short: <= 64 compared). */
static size_t distance(const char *a, const char *b)
{
    size_t la = strnlen(a, 64), lb = strnlen(b, 64), row[65];

    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];

        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], cost = (a[i - 1] | 0x20) != (b[j - 1] | 0x20);
            size_t best = diag + cost;

            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *el_config_closest_key(const char *key)
{
    const char *best = NULL;
    size_t bd = SIZE_MAX, d;

    for (size_t i = 0; i < sizeof(int_vars) / sizeof(int_vars[0]); i++)
        if ((d = distance(key, int_vars[i].name)) < bd) {
            bd = d;
            best = int_vars[i].name;
        }
    for (size_t i = 0; i < sizeof(str_vars) / sizeof(str_vars[0]); i++)
        if ((d = distance(key, str_vars[i])) < bd) {
            bd = d;
            best = str_vars[i];
        }
    /* A suggestion only when it is plausibly a typo: at most a third of the
     * key's letters wrong (and at least 2 allowed, for short keys). */
    return best != NULL && bd <= (strlen(key) / 3 > 2 ? strlen(key) / 3 : 2) ? best : NULL;
}

static int check_keys(const struct source *src, struct el_err *err)
{
    for (size_t i = 0; i < src->n; i++) {
        const char *k = src->kv[i].key, *near;
        char s[SHOWN_MAX];

        if (known_key(k))
            continue;
        shown(s, sizeof(s), k);
        near = el_config_closest_key(k);
        if (near != NULL)
            return el_err_set(err, EL_EINVAL,
                              "%s: unknown variable in %.120s:%u (did you mean %s?)", s, src->path,
                              src->kv[i].lineno, near);
        return el_err_set(err, EL_EINVAL, "%s: unknown variable in %.120s:%u", s, src->path,
                          src->kv[i].lineno);
    }
    return EL_OK;
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
    case 'K':
    case 'k':
        mult = (uint64_t)1 << 10;
        p++;
        break;
    case 'M':
    case 'm':
        mult = (uint64_t)1 << 20;
        p++;
        break;
    case 'G':
    case 'g':
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
            return el_config_bad_url(err, name, "must name a host after mongodb://", v);
    } else if (strncmp(v, "mongodb+srv://", 14) == 0) {
        if (v[14] == '\0' || v[14] == '/')
            return el_config_bad_url(err, name, "must name a host after mongodb+srv://", v);
    } else if (strncmp(v, "sqlite:", 7) == 0) {
        if (v[7] == '\0')
            return el_config_bad_url(err, name, "must name a file after sqlite:", v);
    } else {
        return el_config_bad_url(err, name, what, v);
    }
    return set_str(c->db_uri, name, v, err);
}

/* Stored as given: its syntax belongs to the Redis module, which this layer
 * does not know; the program checks it with el_app_config_check(). */
static int load_redis_url(struct el_config *c, const struct source *src, struct el_err *err)
{
    const char *v = lookup(src, "REDIS_URL");

    if (v == NULL)
        v = DEFAULT_REDIS_URL;
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
        return el_config_bad_value(
            err, "L1_MAX_BYTES",
            "must be a byte count from 0 (off) to 64G: digits with an optional "
            "K, M or G suffix",
            v);
    c->l1_max_bytes = (size_t)bytes;
    return EL_OK;
}

/* DATA_DIR: where a relative sqlite: path lives. Unset: systemd's
 * $STATE_DIRECTORY (StateDirectory=; the first when it lists several), else
 * the working directory. */
static int load_data_dir(struct el_config *c, const struct source *src, struct el_err *err)
{
    const char *v = lookup(src, "DATA_DIR");
    char cwd[PATH_MAX];

    if (v != NULL) {
        if (*v != '/')
            return el_config_bad_value(err, "DATA_DIR", "must be an absolute directory path", v);
        return set_str(c->data_dir, "DATA_DIR", v, err);
    }
    v = lookup(src, "STATE_DIRECTORY");
    if (v != NULL && *v == '/') {
        size_t n = strcspn(v, ":");

        if (n >= EL_CONFIG_STR)
            return el_err_set(err, EL_EINVAL, "STATE_DIRECTORY: too long");
        memcpy(c->data_dir, v, n);
        c->data_dir[n] = '\0';
        return EL_OK;
    }
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return el_err_set(err, EL_EIO, "DATA_DIR: unset, and the working directory is unknown: %s",
                          strerror(errno));
    return set_str(c->data_dir, "DATA_DIR", cwd, err);
}

/* store_uri: db_uri with a relative sqlite path made absolute against
 * data_dir, so the file does not move with the working directory. */
static int resolve_store_uri(struct el_config *c, struct el_err *err)
{
    int n;

    if (strncmp(c->db_uri, "sqlite:", 7) != 0 || c->db_uri[7] == '/')
        return set_str(c->store_uri, "DB_URI", c->db_uri, err);
    n = snprintf(c->store_uri, sizeof(c->store_uri), "sqlite:%s%s%s", c->data_dir,
                 c->data_dir[strlen(c->data_dir) - 1] == '/' ? "" : "/", c->db_uri + 7);
    if (n < 0 || (size_t)n >= sizeof(c->store_uri))
        return el_err_set(err, EL_EINVAL, "DB_URI: too long once resolved against DATA_DIR");
    return EL_OK;
}

/* LOG_FILE, ACCESS_LOG, TRUSTED_PROXIES, INSTANCE. */
static int load_logging(struct el_config *c, const struct source *src, struct el_err *err)
{
    const char *v;
    int rc;

    v = lookup(src, "LOG_FILE");
    if (v != NULL && *v != '\0' && *v != '/')
        return el_config_bad_value(err, "LOG_FILE",
                                   "must be an absolute file path, or empty for stderr", v);
    if (v != NULL && (rc = set_str(c->log_file, "LOG_FILE", v, err)) != EL_OK)
        return rc;

    v = lookup(src, "ACCESS_LOG");
    if (v == NULL || strcmp(v, "on") == 0)
        c->access_log = 1;
    else if (strcmp(v, "off") == 0)
        c->access_log = 0;
    else
        return el_config_bad_value(err, "ACCESS_LOG", "must be on or off", v);

    /* Its syntax is the HTTP layer's, checked by el_app_config_check(). */
    v = lookup(src, "TRUSTED_PROXIES");
    if (v != NULL && (rc = set_str(c->trusted_proxies, "TRUSTED_PROXIES", v, err)) != EL_OK)
        return rc;

    v = lookup(src, "INSTANCE");
    if (v != NULL) {
        size_t n = strlen(v);

        if (n == 0 || n >= sizeof(c->instance) ||
            strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                      "abcdefghijklmnopqrstuvwxyz"
                      "0123456789._:@/-") != n)
            return el_config_bad_value(err, "INSTANCE",
                                       "must be 1-64 characters of A-Z a-z 0-9 . _ : @ / -", v);
        memcpy(c->instance, v, n + 1);
    } else {
        char host[64] = "localhost";

        if (gethostname(host, sizeof(host)) != 0)
            snprintf(host, sizeof(host), "localhost");
        host[sizeof(host) - 1] = '\0';
        snprintf(c->instance, sizeof(c->instance), "%.40s:%d", host, (int)getpid());
    }
    return EL_OK;
}

int el_config_load(struct el_config *cfg, const char *env_file, el_config_getenv_fn getenv_fn,
                   void *arg, struct el_err *err)
{
    struct source src = {getenv_fn, arg, NULL, 0, 0, NULL};
    struct el_config c;
    int rc;

    memset(&c, 0, sizeof(c));
    if (env_file != NULL) {
        src.path = env_file;
        rc = read_env_file(&src, env_file, err);
        if (rc == EL_OK)
            rc = check_keys(&src, err);
        if (rc != EL_OK)
            goto out;
    }
    if ((rc = load_db_uri(&c, &src, err)) != EL_OK ||
        (rc = load_data_dir(&c, &src, err)) != EL_OK ||
        (rc = resolve_store_uri(&c, err)) != EL_OK || (rc = load_logging(&c, &src, err)) != EL_OK ||
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
            snprintf(what, sizeof(what), "must be an integer between %d and %d", iv->min, iv->max);
            rc = el_config_bad_value(err, iv->name, what, v);
            goto out;
        }
        *(int *)((char *)&c + iv->off) = (int)n;
    }
    *cfg = c; /* only a complete, valid configuration is handed over */
out:
    source_cleanup(&src);
    return rc;
}
