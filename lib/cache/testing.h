/* testing.h -- what the cache layer exposes to its tests only. Included
 * by tests/ and by the cache modules that define these; never by the
 * program (scripts/check-layers.sh refuses it elsewhere). */
#ifndef EL_CACHE_TESTING_H
#define EL_CACHE_TESTING_H

#include "cache/l1.h"
#include "cache/tiered.h"

/* Remove every entry whose key starts with prefix (O(entries)). */
void el_l1_del_prefix(struct el_l1 *c, const char *prefix);

/* How many threads are inside the single flight for key right now (its
 * leader and waiters); 0 when no miss is in progress. The answer may be
 * stale as soon as it is returned. */
int el_tiered_inflight(struct el_tiered *t, const char *key);

#endif /* EL_CACHE_TESTING_H */
