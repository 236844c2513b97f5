/* text.h -- byte-level text checks shared by the parsers (query strings,
 * forms, URLs, JSON bodies). */
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

#endif /* EL_TEXT_H */
