/* key.c -- cache-key builders (see key.h). */
#include "cache/key.h"

#include <stdarg.h>
#include <stdio.h>

#include "core/el.h"

static int key_fmt(char *dst, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int key_fmt(char *dst, size_t n, const char *fmt, ...)
{
    va_list ap;
    int len;

    if (n == 0)
        return EL_ETOOBIG;
    va_start(ap, fmt);
    len = vsnprintf(dst, n, fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= n) {
        dst[0] = '\0';
        return EL_ETOOBIG;
    }
    return len;
}

int el_key_course(char *dst, size_t n, const char *course_id)
{
    return key_fmt(dst, n, "course:%s", course_id);
}

int el_key_courses_list(char *dst, size_t n, uint64_t generation, const char *digest)
{
    return key_fmt(dst, n, "courses_list:%llu:%s", (unsigned long long)generation, digest);
}

int el_key_user_session(char *dst, size_t n, const char *user_id)
{
    return key_fmt(dst, n, "user_session:%s", user_id);
}

int el_key_refresh_tokens(char *dst, size_t n, const char *user_id)
{
    return key_fmt(dst, n, "refresh_tokens:%s", user_id);
}

int el_key_blacklisted_token(char *dst, size_t n, const char *jti)
{
    return key_fmt(dst, n, "blacklisted_tokens:%s", jti);
}

int el_key_lease(char *dst, size_t n, const char *key)
{
    return key_fmt(dst, n, "lease:%s", key);
}

int el_key_login_failures_email(char *dst, size_t n, const char *email)
{
    return key_fmt(dst, n, "login_failures:email:%s", email);
}

int el_key_login_failures_ip(char *dst, size_t n, const char *addr)
{
    return key_fmt(dst, n, "login_failures:ip:%s", addr);
}
