/* sentinel.h -- finding and following the Redis master through Redis
 * Sentinel (the part of a redis-sentinel:// URL after the user info).
 *
 * Sentinel's client protocol is a handful of commands, spoken here with
 * hiredis' blocking API (Debian 12's hiredis 0.14 has no Sentinel support):
 *   SENTINEL get-master-addr-by-name <name>   where the master is now;
 *   SUBSCRIBE +switch-master                   told when it moves.
 * redis.c asks for the address on every (re)connect and checks the server
 * it reaches with ROLE; the watcher thread here tells it at once when a
 * failover moved the master, so connections to the old one are dropped
 * before they can write there again (a paused old master that comes back
 * still believes it is the master for a while).
 *
 * Sentinels are contacted without AUTH. Every connect and command is
 * bounded by the handle's timeout; host names are resolved with
 * getaddrinfo (use addresses, as for REDIS_URL). */
#ifndef EL_SENTINEL_H
#define EL_SENTINEL_H

#include <stddef.h>

#include "core/el.h"

#define EL_SENTINEL_MAX 8 /* sentinel addresses in one URL */

struct el_sentinel;

/* Parse "host1:port1[,host2:port2...]" (IPv6 hosts in brackets; the port
 * is required) and the master name. EL_EINVAL (detail in err) when
 * malformed. */
int el_sentinel_new(const char *hosts, size_t hosts_len, const char *master_name, int timeout_ms,
                    struct el_sentinel **out, struct el_err *err) EL_WUR;

/* Stop the watcher (if any) and free. NULL is a no-op. */
void el_sentinel_free(struct el_sentinel *s);

const char *el_sentinel_master_name(const struct el_sentinel *s);

/* Ask the sentinels in turn, starting with the last one that answered, for
 * the master's address. EL_OK with host/port set; EL_ENOTFOUND when a
 * sentinel answered that it knows no such master; EL_EUNAVAIL when none
 * answered (a one-line reason in why). Thread-safe. */
int el_sentinel_get_master(struct el_sentinel *s, char *host, size_t hostlen, int *port, char *why,
                           size_t whylen) EL_WUR;

/* Start a thread that calls fn(arg, host, port) when the master moves:
 * on a +switch-master message for our master name from the sentinel it is
 * subscribed to, and when a query (once a second) answers an address other
 * than the last one reported. The first address it learns is reported too.
 * fn runs on the watcher thread. */
typedef void (*el_sentinel_switch_fn)(void *arg, const char *host, int port);
int el_sentinel_watch(struct el_sentinel *s, el_sentinel_switch_fn fn, void *arg) EL_WUR;

#endif /* EL_SENTINEL_H */
