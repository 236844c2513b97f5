/* fuzz/env.c -- the env file (--env-file), read through a memfd so the
 * real file path of el_config_load is what is fuzzed; the environment is
 * left out (every lookup says unset). */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *no_env(const char *name, void *arg)
{
    (void)name;
    (void)arg;
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct el_config cfg;
    struct el_err err = {0};
    char path[64];
    int fd = memfd_create("env", MFD_CLOEXEC);

    if (fd < 0)
        return 0;
    if (write(fd, data, size) == (ssize_t)size) {
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        (void)el_config_load(&cfg, path, no_env, NULL, &err);
    }
    close(fd);
    return 0;
}
