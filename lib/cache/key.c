/* key.c -- cache-key builders (see key.h). */
#include "cache/key.h"

#include "core/hash.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/el.h"

static int key_fmt(char *dst, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

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

int el_key_courses_ids(char *dst, size_t n, uint64_t members, uint64_t search, uint64_t order,
                       const char *digest)
{
    return key_fmt(dst, n, "courses_ids:%llu.%llu.%llu:%s", (unsigned long long)members,
                   (unsigned long long)search, (unsigned long long)order, digest);
}

int el_key_course_page(char *dst, size_t n, const char *ids_key)
{
    static const char prefix[] = "courses_ids:";

    if (strncmp(ids_key, prefix, sizeof(prefix) - 1) != 0) {
        if (n)
            dst[0] = '\0';
        return EL_EINVAL;
    }
    return key_fmt(dst, n, "course_page:%s", ids_key + sizeof(prefix) - 1);
}

int el_key_course_summary(char *dst, size_t n, const char *course_id)
{
    return key_fmt(dst, n, "course_summary:%s", course_id);
}

int el_key_list_gen(char *dst, size_t n, const char *dimension)
{
    return key_fmt(dst, n, EL_KEY_LIST_GEN ":%s", dimension);
}

int el_key_refresh_tokens(char *dst, size_t n, const char *user_id)
{
    return key_fmt(dst, n, "refresh_tokens:%s", user_id);
}

unsigned el_key_auth_bucket_index(const char *id)
{
    /* FNV-1a: the same in every process */
    return (unsigned)(el_fnv1a64_str(id) % EL_KEY_AUTH_BUCKETS);
}

int el_key_auth_bucket(char *dst, size_t n, unsigned bucket)
{
    return key_fmt(dst, n, "auth:{b%02u}", bucket % EL_KEY_AUTH_BUCKETS);
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

int el_key_register_ip(char *dst, size_t n, const char *addr)
{
    return key_fmt(dst, n, "register_attempts:ip:%s", addr);
}
