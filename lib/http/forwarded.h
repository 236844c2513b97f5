/* forwarded.h -- who the client is, when a proxy may stand in between.
 *
 * The web server passes the peer it saw as REMOTE_ADDR. Behind a load
 * balancer that peer is the balancer, and the client is in X-Forwarded-For,
 * a header any client can also write. So X-Forwarded-For is believed only
 * when REMOTE_ADDR is one of the TRUSTED_PROXIES, and then only as far as
 * the chain of trusted hops goes: the client is the rightmost address that
 * is not a trusted proxy (RFC 7239's reasoning, applied to the de-facto
 * header). With no trusted proxies (the default) the client is always
 * REMOTE_ADDR. */
#ifndef EL_FORWARDED_H
#define EL_FORWARDED_H

#include <stddef.h>

#include "core/el.h"

#define EL_FORWARDED_MAX 32 /* entries in TRUSTED_PROXIES */

/* Is list a valid TRUSTED_PROXIES value: addresses or CIDR networks (IPv4
 * or IPv6), separated by commas and/or spaces, at most EL_FORWARDED_MAX;
 * "" is valid (none)? EL_EINVAL with the offending entry in err. */
int el_forwarded_check(const char *list, struct el_err *err) EL_WUR;

/* Make list the process's trusted proxies. Once, at start-up, before any
 * thread calls el_forwarded_client. */
int el_forwarded_setup(const char *list, struct el_err *err) EL_WUR;

/* The client address into out (n bytes, always terminated): remote_addr
 * (or "-" when NULL), unless it is trusted and xff (HTTP_X_FORWARDED_FOR,
 * may be NULL) names further hops. An entry of xff that is not an address
 * stops the walk there (the last trusted hop's word is all we have). */
void el_forwarded_client(const char *remote_addr, const char *xff, char *out, size_t n);

#endif /* EL_FORWARDED_H */
