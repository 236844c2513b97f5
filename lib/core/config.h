/* config.h -- the responder's configuration, from the environment and an
 * optional env file, validated once at start-up.
 *
 * Precedence: a variable set in the environment wins over the env file,
 * which wins over the default. A bad value is a start-up error whose message
 * names the variable (the program prints it on one line and exits 2). */
#ifndef EL_CONFIG_H
#define EL_CONFIG_H

#include <stddef.h>

#include "core/el.h"

#define EL_CONFIG_STR 512

struct el_config {
    char db_uri[EL_CONFIG_STR];    /* DB_URI (or MONGO_URI); default sqlite:var/elearn.db */
    char redis_url[EL_CONFIG_STR]; /* REDIS_URL; "" disables L2; default redis://127.0.0.1:6379/0 */
    char jwt_secret[EL_CONFIG_STR];      /* JWT_SECRET; required, >= 32 chars */
    char data_dir[EL_CONFIG_STR];        /* DATA_DIR (absolute); default $STATE_DIRECTORY
                                    * (systemd), else the working directory */
    char store_uri[EL_CONFIG_STR];       /* db_uri with a relative sqlite: path
                                    * resolved against data_dir: what to open */
    char log_file[EL_CONFIG_STR];        /* LOG_FILE (absolute); "" = stderr */
    int access_log;                      /* ACCESS_LOG on (1, default) | off (0) */
    char trusted_proxies[EL_CONFIG_STR]; /* TRUSTED_PROXIES: addresses/CIDRs whose
                                          * X-Forwarded-For is believed; "" none */
    char instance[65];                   /* INSTANCE label; default "<hostname>:<pid>" */
    int access_token_expire_minutes;     /* 1-1440, default 15 */
    int refresh_token_expire_days;       /* 1-30, default 7 */
    int course_ttl;                      /* COURSE_TTL seconds, 1-86400, default 300 */
    int course_list_ttl;                 /* COURSE_LIST_TTL seconds, 1-86400, default 120 */
    size_t l1_max_bytes;                 /* L1_MAX_BYTES, default 64 MiB, 0 disables */
    int workers;                         /* WORKERS, 1-1024, default 16 */
    int redis_timeout_ms;                /* REDIS_TIMEOUT_MS, 10-5000, default 100 */
    int db_timeout_ms;                   /* DB_TIMEOUT_MS, 100-30000, default 1500 */
    int l1_max_stale_ms;                 /* L1_MAX_STALE, milliseconds the cache bus may be
                            * silent before L1 entries are revalidated;
                            * 50-60000, default 1000 */
    int cache_warm_ms;                   /* CACHE_WARM_MS, time budget of start-up warming;
                            * 0 disables it; 0-60000, default 3000 */
    int idle_timeout_s;                  /* IDLE_TIMEOUT, seconds a kept-alive web-server
                            * connection may idle before we close it; 1-3600,
                            * default 60 */
    int request_timeout_s;               /* REQUEST_TIMEOUT, seconds a request may take to
                            * arrive in full once its first byte has; 1-3600,
                            * default 30 */
    int send_timeout_s;                  /* SEND_TIMEOUT, seconds a response may take to
                            * drain to the web server; 1-3600, default 30 */
    int event_threads;                   /* EVENT_THREADS, threads reading and writing
                            * connections (and serving L1 hits); 1-64,
                            * default 1 */
};

/* Looks a variable up; returns NULL when unset. */
typedef const char *(*el_config_getenv_fn)(const char *name, void *arg);

/* Fill cfg from getenv_fn (NULL means the process environment) and, when
 * env_file is not NULL, from that file (KEY=VALUE lines; '#' comments; blank
 * lines; optional surrounding single or double quotes; "export " prefix
 * allowed). Returns 0, or EL_EINVAL with err->msg like
 * "COURSE_TTL: must be an integer between 1 and 86400 (got \"abc\")", or
 * EL_EIO when the env file cannot be read. Keys of the env file must all be
 * known variables (the environment may hold anything). REDIS_URL and
 * TRUSTED_PROXIES are stored as given: their syntax is checked by the
 * program with the modules that own it (el_app_config_check). */
int el_config_load(struct el_config *cfg, const char *env_file, el_config_getenv_fn getenv_fn,
                   void *arg, struct el_err *err) EL_WUR;

/* The known variable closest to key (an unknown one), or NULL when none is
 * close enough to be a plausible typo. An unknown key in the env file makes
 * el_config_load fail with "KEY: unknown variable in FILE:LINE (did you mean
 * KNOWN?)". */
const char *el_config_closest_key(const char *key);

/* Set err to EL_EINVAL with the message el_config_load gives a bad value,
 * "NAME: what (got \"v\")" -- v on one line, control characters escaped,
 * cut when long -- and return EL_EINVAL. el_config_bad_url also replaces the
 * password of a URL with "***". For the checks of values whose syntax
 * belongs to a higher layer (REDIS_URL, TRUSTED_PROXIES). */
int el_config_bad_value(struct el_err *err, const char *name, const char *what, const char *v);
int el_config_bad_url(struct el_err *err, const char *name, const char *what, const char *v);

#endif /* EL_CONFIG_H */
