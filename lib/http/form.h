/* form.h -- application/x-www-form-urlencoded bodies (the OAuth2 password
 * form the original FastAPI login accepted). */
#ifndef EL_FORM_H
#define EL_FORM_H

#include <stddef.h>

#include "core/el.h"

/* Find field name in body (len bytes), percent-decode it ('+' is a space)
 * into out (size n, NUL-terminated; el_pct_decode_form). EL_ENOTFOUND when
 * absent, EL_EINVAL for a bad escape or an embedded NUL (even in a value
 * too long) or a field given twice, else EL_ETOOBIG when it does not fit. */
int el_form_get(const char *body, size_t len, const char *name, char *out, size_t n) EL_WUR;

#endif /* EL_FORM_H */
