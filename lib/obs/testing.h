/* testing.h -- what the obs layer exposes to its tests only: resetting to
 * a fresh process and looking at what a flush would send. Included by
 * tests/ and by the obs modules that define these; never by the program
 * (scripts/check-layers.sh refuses it elsewhere). */
#ifndef EL_OBS_TESTING_H
#define EL_OBS_TESTING_H

#include "obs/histogram.h"
#include "obs/stats.h"

/* Zero every counter, histogram and flush mark: a fresh process. */
void el_stats_reset(void);

/* What this process has counted but not yet flushed to the cluster sums. */
void el_stats_pending(struct el_stats_snapshot *out);

/* Zero h. Not atomic as a whole with concurrent observers. */
void el_histogram_reset(struct el_histogram *h);

#endif /* EL_OBS_TESTING_H */
