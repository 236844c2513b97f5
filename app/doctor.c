/* doctor.c -- `elearn-fcgi --check-config --connect`: after the
 * configuration is valid, try what the responder will need, one line per
 * check ("ok  ..." or "FAIL ..."), so an operator sees every problem at
 * once instead of one per restart:
 *
 *   the store: reachable, writable (a revocation of a made-up id that
 *   expires in a second -- harmless by construction), a supported version;
 *   Redis (unless REDIS_URL is empty): reachable, writable (SET/GET/DEL of
 *   a probe key with a TTL), a supported version.
 *
 * Nothing else is changed. Returns 0 when every check passed. */
#include "doctor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/redis.h"
#include "obs/stats.h"
#include "store/store.h"

#define MONGO_MIN 40000  /* 4.0: the oldest server line libmongoc 1.23 is tested with */
#define SQLITE_MIN 33700 /* 3.37: the oldest we have run (Debian 12 ships 3.40) */
#define REDIS_MIN 50000  /* 5.0: SET PX NX, EVAL, UNLINK-free commands we use */

/* "7.0.2" -> 70002; -1 when not a version. */
static long version_num(const char *v)
{
    long major, minor = 0, patch = 0;
    char *end;

    major = strtol(v, &end, 10);
    if (end == v)
        return -1;
    if (*end == '.')
        minor = strtol(end + 1, &end, 10);
    if (*end == '.')
        patch = strtol(end + 1, &end, 10);
    return major * 10000 + minor * 100 + patch;
}

static int line(int ok, const char *what, const char *detail)
{
    printf("%-4s %s%s%s\n", ok ? "ok" : "FAIL", what, detail && *detail ? ": " : "",
           detail ? detail : "");
    return ok ? 0 : 1;
}

/* The URI for display: no password. */
static void display_uri(const char *uri, char *out, size_t n)
{
    const char *scheme = strstr(uri, "://"), *at = strrchr(uri, '@');

    if (scheme != NULL && at != NULL && at > scheme)
        snprintf(out, n, "%.*s***%s", (int)(scheme + 3 - uri), uri, at);
    else
        snprintf(out, n, "%s", uri);
}

static int check_store(const struct el_config *cfg)
{
    struct el_store *s = NULL;
    struct el_err err = {0, ""};
    char shown[EL_CONFIG_STR + 8], ver[64] = "", what[EL_CONFIG_STR + 32], id[64];
    int fails = 0, rc;
    long v;

    display_uri(cfg->store_uri, shown, sizeof(shown));
    snprintf(what, sizeof(what), "store %s", shown);
    el_store_set_timeout_ms(cfg->db_timeout_ms);
    if (el_store_open(cfg->store_uri, &s, &err) != EL_OK) {
        line(0, what, err.msg);
        return 1;
    }
    rc = el_store_ping(s);
    fails += line(rc == EL_OK, "store reachable", rc == EL_OK ? "" : el_strerror(rc));
    if (rc == EL_OK) {
        snprintf(id, sizeof(id), "doctor-probe-%d-%lld", (int)getpid(), (long long)el_wall_ms());
        rc = el_store_revoke(s, id, el_wall_ms() + 1000);
        fails += line(rc == EL_OK, "store writable", rc == EL_OK ? "" : el_strerror(rc));
        rc = el_store_version(s, ver, sizeof(ver));
        v = rc == EL_OK ? version_num(ver) : -1;
        if (strcmp(el_store_kind(s), "sqlite") == 0) {
            snprintf(what, sizeof(what), "SQLite %s (supported: 3.37 or later)", ver);
            fails += line(v >= SQLITE_MIN, "store version", what);
        } else {
            snprintf(what, sizeof(what), "MongoDB %s (supported: 4.0 or later)",
                     rc == EL_OK ? ver : el_strerror(rc));
            fails += line(v >= MONGO_MIN, "store version", what);
        }
    }
    el_store_thread_cleanup(s);
    el_store_close(s);
    return fails;
}

static int check_redis(const struct el_config *cfg)
{
    struct el_redis *r = NULL;
    struct el_redis_opts o = {0};
    struct el_err err = {0, ""};
    struct el_buf info, got;
    char shown[EL_CONFIG_STR + 8], ver[32] = "", what[EL_CONFIG_STR + 32], key[64];
    int fails = 0, rc;

    if (cfg->redis_url[0] == '\0')
        return line(1, "redis", "disabled (REDIS_URL is empty): L1 and the store only");
    display_uri(cfg->redis_url, shown, sizeof(shown));
    o.timeout_ms = cfg->redis_timeout_ms;
    if (el_redis_new(cfg->redis_url, &o, &r, &err) != EL_OK)
        return line(0, "redis", err.msg);
    snprintf(what, sizeof(what), "redis %s reachable", shown);
    rc = el_redis_ping(r);
    fails += line(rc == EL_OK, what, rc == EL_OK ? "" : el_strerror(rc));
    if (rc == EL_OK) {
        el_buf_init(&got, 64);
        snprintf(key, sizeof(key), "doctor:probe:%d", (int)getpid());
        rc = el_redis_set(r, key, "1", 1, 10000);
        if (rc == EL_OK)
            rc = el_redis_get(r, key, &got);
        if (rc == EL_OK && (got.len != 1 || got.data[0] != '1'))
            rc = EL_EPROTO;
        if (el_redis_del(r, key) != EL_OK && rc == EL_OK)
            rc = EL_EUNAVAIL;
        fails += line(rc == EL_OK, "redis writable", rc == EL_OK ? "" : el_strerror(rc));
        el_buf_cleanup(&got);

        el_buf_init(&info, 1 << 16);
        rc = el_redis_info(r, "server", &info);
        if (rc == EL_OK)
            rc = el_stats_info_field(info.data, "redis_version", ver, sizeof(ver));
        snprintf(what, sizeof(what), "Redis %s (supported: 5.0 or later)",
                 rc == EL_OK ? ver : el_strerror(rc));
        fails += line(rc == EL_OK && version_num(ver) >= REDIS_MIN, "redis version", what);
        el_buf_cleanup(&info);
    }
    el_redis_thread_cleanup(r);
    el_redis_free(r);
    return fails;
}

int el_doctor(const struct el_config *cfg)
{
    int fails;

    printf("ok   configuration\n");
    if (strncmp(cfg->store_uri, "sqlite:", 7) == 0 && strcmp(cfg->store_uri, cfg->db_uri) != 0)
        printf("ok   DB_URI %s is %s (relative to DATA_DIR %s)\n", cfg->db_uri, cfg->store_uri,
               cfg->data_dir);
    fails = check_store(cfg);
    fails += check_redis(cfg);
    fflush(stdout);
    return fails == 0 ? 0 : 1;
}
