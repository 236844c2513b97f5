/* config_check.h -- the configuration values whose syntax belongs to a
 * layer above lib/core: checked once at start-up, right after
 * el_config_load, with the modules that will use them. */
#ifndef EL_CONFIG_CHECK_H
#define EL_CONFIG_CHECK_H

#include "core/config.h"
#include "core/el.h"

/* REDIS_URL as el_redis_new parses it, TRUSTED_PROXIES as
 * el_forwarded_check does. Returns 0, or EL_EINVAL with err->msg shaped as
 * every configuration error ("REDIS_URL: port must be 1-65535 (got
 * \"redis://:***@cache:99999/0\")"; the password masked), or another code
 * (out of memory) with "REDIS_URL: <detail>". */
int el_app_config_check(const struct el_config *cfg, struct el_err *err) EL_WUR;

#endif /* EL_CONFIG_CHECK_H */
