/* text.h -- byte-level text checks shared by the parsers (query strings,
 * forms, URLs, JSON bodies), and the one percent-decoder. */
#ifndef EL_TEXT_H
#define EL_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* 1 when s[0..len) is well-formed UTF-8 (RFC 3629): no overlong forms, no
 * surrogates, nothing above U+10FFFF -- so bytes that pass can go into JSON
 * and BSON unchanged. NUL bytes are valid UTF-8; callers that refuse them
 * check separately. */
int el_utf8_valid(const char *s, size_t len);

/* Decode the UTF-8 sequence at s (n bytes left) into *cp and return its
 * length (1-4), or 0 when it is not well-formed by the same rules. */
size_t el_utf8_next(const char *s, size_t n, uint32_t *cp);

/* The value of one hex digit (either case), or -1. */
int el_hex_digit(char c);

/* Copy n bytes of src to dst with A-Z lowercased and every other byte
 * unchanged (no locale, no UTF-8 folding); dst may be src. */
void el_ascii_lower(char *dst, const char *src, size_t n);

/* ---- percent-decoding ---------------------------------------------------
 *
 * One decoder for every percent-encoded input. The rule that differs per
 * use is what '+' means, hence two entry points:
 *   el_pct_decode_form  query strings and form bodies
 *                       (application/x-www-form-urlencoded): '+' is a space
 *   el_pct_decode_url   URL components such as REDIS_URL's user and
 *                       password (RFC 3986): '+' is itself
 * The rest is common. A '%' must be followed by two hex digits (either
 * case). src[0..len) is decoded into dst, which holds cap bytes plus the
 * terminating NUL (always written); *outlen receives the bytes written. The
 * whole input is scanned even after dst is full, so "too long" never hides
 * a malformed input; on EL_PCT_LONG dst holds the first cap bytes (callers
 * may quote them). The status is the first that applies of: */
enum el_pct_status {
    EL_PCT_OK,
    EL_PCT_BADESC, /* a '%' not followed by two hex digits (decoding stops) */
    EL_PCT_NUL,    /* some byte decodes to NUL (%00): refused by every caller */
    EL_PCT_LONG,   /* more than cap bytes once decoded */
};
enum el_pct_status el_pct_decode_form(const char *src, size_t len, char *dst, size_t cap,
                                      size_t *outlen);
enum el_pct_status el_pct_decode_url(const char *src, size_t len, char *dst, size_t cap,
                                     size_t *outlen);

#endif /* EL_TEXT_H */
