/* el.c -- status codes, error detail and clocks (see el.h). */
#include "core/el.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

const char *el_strerror(int code)
{
    switch (code) {
#define EL_ERRNO_STR(name, val, msg)                                                               \
    case (val):                                                                                    \
        return (msg);
        EL_ERRNO_MAP(EL_ERRNO_STR)
#undef EL_ERRNO_STR
    }
    return "unknown error";
}

int(el_err_set)(struct el_err *err, int code, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return code;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

uint64_t el_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t el_now_ms(void)
{
    return el_now_us() / 1000u;
}

int64_t el_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
