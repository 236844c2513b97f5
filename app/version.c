/* version.c -- the build's identity (VERSION file and git commit, from the
 * generated buildinfo.h; see the Makefile) handed to /metrics. Kept out of
 * main.c so only this file is rebuilt when the commit changes. */
#include "version.h"

#include "buildinfo.h"
#include "obs/stats.h"

void el_app_identity(const char *instance)
{
    el_stats_set_identity(instance, EL_BUILD_VERSION, EL_BUILD_COMMIT);
}

const char *el_app_version(void)
{
    return EL_BUILD_VERSION;
}
