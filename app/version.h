/* version.h -- the build's identity (see version.c). */
#ifndef EL_VERSION_H
#define EL_VERSION_H

/* Publish this process's identity on /metrics: INSTANCE, version, commit,
 * start time. Once at start-up. */
void el_app_identity(const char *instance);

/* The VERSION this was built from ("1.0.0"). */
const char *el_app_version(void);

#endif /* EL_VERSION_H */
