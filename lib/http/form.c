/* form.c -- urlencoded form fields (see form.h). */
#include "http/form.h"
#include "core/text.h"

#include <string.h>

static int decode(const char *s, size_t len, char *out, size_t n)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi, lo;
            if (i + 2 >= len)
                return EL_EINVAL; /* a '%' needs two hex digits after it */
            hi = el_hex_digit(s[i + 1]);
            lo = el_hex_digit(s[i + 2]);
            if (hi < 0 || lo < 0)
                return EL_EINVAL;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0')
            return EL_EINVAL;
        if (o + 1 >= n)
            return EL_ETOOBIG;
        out[o++] = c;
    }
    out[o] = '\0';
    return EL_OK;
}

int el_form_get(const char *body, size_t len, const char *name, char *out, size_t n)
{
    size_t nlen = strlen(name), i = 0;
    int rc = EL_ENOTFOUND;

    if (n == 0)
        return EL_ETOOBIG;
    out[0] = '\0';
    while (i < len) {
        const char *seg = body + i, *amp = memchr(seg, '&', len - i);
        size_t slen = amp ? (size_t)(amp - seg) : len - i;
        const char *eq = memchr(seg, '=', slen);
        size_t klen = eq ? (size_t)(eq - seg) : slen;

        if (klen == nlen && memcmp(seg, name, nlen) == 0) {
            if (rc != EL_ENOTFOUND)
                return EL_EINVAL; /* given twice */
            rc = eq ? decode(eq + 1, slen - klen - 1, out, n) : (out[0] = '\0', EL_OK);
            if (rc != EL_OK)
                return rc;
        }
        i += slen + 1;
    }
    return rc;
}
