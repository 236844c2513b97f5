/* form.c -- urlencoded form fields (see form.h). */
#include "http/form.h"
#include "core/text.h"

#include <string.h>

/* '+' is a space; a bad escape or a NUL is EL_EINVAL, a value longer than
 * n - 1 bytes EL_ETOOBIG (the whole value is checked first). */
static int decode(const char *s, size_t len, char *out, size_t n)
{
    size_t o;

    switch (el_pct_decode_form(s, len, out, n - 1, &o)) {
    case EL_PCT_OK:
        return EL_OK;
    case EL_PCT_LONG:
        return EL_ETOOBIG;
    case EL_PCT_BADESC:
    case EL_PCT_NUL:
        break;
    }
    return EL_EINVAL;
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
