/* config_check.c -- REDIS_URL and TRUSTED_PROXIES, checked by the modules
 * that own their syntax (see config_check.h). lib/core/config.c stores them
 * as given because it sits below the cache and HTTP layers. */
#include "config_check.h"

#include "cache/redis.h"
#include "http/forwarded.h"

static int check_redis_url(const char *v, struct el_err *err)
{
    struct el_redis *r = NULL;
    struct el_err rerr = {0, ""};
    int rc;

    if (*v == '\0')
        return EL_OK; /* L2 disabled */
    /* Parsing only: el_redis_new does not connect. */
    rc = el_redis_new(v, NULL, &r, &rerr);
    el_redis_free(r);
    if (rc == EL_EINVAL)
        return el_config_bad_url(err, "REDIS_URL", rerr.msg, v);
    if (rc != EL_OK)
        return el_err_set(err, rc, "REDIS_URL: %s", rerr.msg);
    return EL_OK;
}

int el_app_config_check(const struct el_config *cfg, struct el_err *err)
{
    struct el_err perr = {0, ""};

    if (el_forwarded_check(cfg->trusted_proxies, &perr) != EL_OK)
        return el_config_bad_value(err, "TRUSTED_PROXIES", perr.msg, cfg->trusted_proxies);
    return check_redis_url(cfg->redis_url, err);
}
