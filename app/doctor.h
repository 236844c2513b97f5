/* doctor.h -- `elearn-fcgi --check-config --connect` (see doctor.c). */
#ifndef EL_DOCTOR_H
#define EL_DOCTOR_H

#include "core/config.h"

/* Check the store and Redis the configuration names: reachable, writable,
 * a supported version; one line per check on stdout. 0 when all pass. */
int el_doctor(const struct el_config *cfg);

#endif /* EL_DOCTOR_H */
