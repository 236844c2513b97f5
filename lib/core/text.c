/* text.c -- byte-level text checks (see text.h). */
#include "core/text.h"

size_t el_utf8_next(const char *str, size_t n, uint32_t *cp)
{
    const unsigned char *s = (const unsigned char *)str;
    unsigned char c, lo = 0x80, hi = 0xBF;
    size_t len, i;
    uint32_t v;

    if (n == 0)
        return 0;
    c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, v = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (i = 1; i < len; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return len;
}

int el_utf8_valid(const char *s, size_t len)
{
    size_t i = 0, step;
    uint32_t cp;

    while (i < len) {
        if ((unsigned char)s[i] < 0x80) { /* the common case, without a call */
            i++;
            continue;
        }
        if ((step = el_utf8_next(s + i, len - i, &cp)) == 0)
            return 0;
        i += step;
    }
    return 1;
}

int el_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

void el_ascii_lower(char *dst, const char *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        dst[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
}

static enum el_pct_status pct_decode(const char *src, size_t len, int plus_is_space, char *dst,
                                     size_t cap, size_t *outlen)
{
    size_t n = 0;
    int nul = 0, overflow = 0;

    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)src[i];

        if (c == '+' && plus_is_space) {
            c = ' ';
        } else if (c == '%') {
            int h, l;

            if (len - i < 3 || (h = el_hex_digit(src[i + 1])) < 0 ||
                (l = el_hex_digit(src[i + 2])) < 0) {
                dst[n] = '\0';
                *outlen = n;
                return EL_PCT_BADESC;
            }
            c = h * 16 + l;
            i += 2;
        }
        if (c == 0)
            nul = 1;
        if (n < cap)
            dst[n++] = (char)c;
        else
            overflow = 1;
    }
    dst[n] = '\0';
    *outlen = n;
    return nul ? EL_PCT_NUL : overflow ? EL_PCT_LONG : EL_PCT_OK;
}

enum el_pct_status el_pct_decode_form(const char *src, size_t len, char *dst, size_t cap,
                                      size_t *outlen)
{
    return pct_decode(src, len, 1, dst, cap, outlen);
}

enum el_pct_status el_pct_decode_url(const char *src, size_t len, char *dst, size_t cap,
                                     size_t *outlen)
{
    return pct_decode(src, len, 0, dst, cap, outlen);
}
