/* json.h -- small JSON helpers for request bodies (json-c underneath; its
 * types do not cross this header).
 *
 * el_json_strings parses a body that must be one JSON object whose members
 * are all listed in fields and are all strings: the shape of the auth
 * endpoints' bodies. Anything else is a 422 with a detail naming the field:
 * "body: must be a JSON object", "unknown field: x", "x: must be a string",
 * "x: field required", and "x: must be valid UTF-8 without NUL characters"
 * for a string that is not well-formed UTF-8 or holds a NUL (a "\u0000"
 * escape) -- the rule course bodies follow too. EL_ENOMEM (a 503, not the
 * client's fault) when memory runs out. */
#ifndef EL_JSON_H
#define EL_JSON_H

#include <stddef.h>

#include "core/buf.h"
#include "core/el.h"

struct el_json; /* a parsed document; owns the strings handed out */

struct el_json_field {
    const char *name;
    int required;
    const char **out; /* set to the value (or NULL when absent); valid until
                       * el_json_free() */
};

int el_json_strings(const char *body, size_t len, const struct el_json_field *fields, size_t n,
                    struct el_json **doc, struct el_err *err) EL_WUR;
void el_json_free(struct el_json *doc);

/* Append s as a JSON string ("..." with '"', '\\' and control characters
 * escaped; other bytes as they are -- s is UTF-8 already) to out. The one
 * writer of JSON strings outside json-c. */
int el_json_add_string(struct el_buf *out, const char *s) EL_WUR;

#endif /* EL_JSON_H */
