/* json.c -- request-body helpers (see json.h). */
#include "http/json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/text.h"

#define DEPTH_MAX 8

struct el_json {
    struct json_object *root;
};

int el_json_strings(const char *body, size_t len, const struct el_json_field *fields, size_t n,
                    struct el_json **doc, struct el_err *err)
{
    struct json_tokener *tok;
    struct json_object *root;
    size_t i;

    *doc = NULL;
    for (i = 0; i < n; i++)
        *fields[i].out = NULL;
    if (body == NULL)
        len = 0; /* no body: "" (parsing len bytes of "" would read past it) */
    if (len > (size_t)INT32_MAX)
        return el_err_set(err, EL_EINVAL, "body: must be a JSON object");
    if ((tok = json_tokener_new_ex(DEPTH_MAX)) == NULL)
        return el_err_set(err, EL_ENOMEM, "out of memory");
    root = json_tokener_parse_ex(tok, body != NULL ? body : "", (int)len);
    /* The whole body must be one value: no trailing bytes but whitespace. */
    if (root && json_tokener_get_error(tok) == json_tokener_success) {
        size_t off = json_tokener_get_parse_end(tok);
        while (off < len && strchr(" \t\r\n", body[off]))
            off++;
        if (off != len) {
            json_object_put(root);
            root = NULL;
        }
    } else {
        json_object_put(root);
        root = NULL;
    }
    json_tokener_free(tok);
    if (root == NULL || !json_object_is_type(root, json_type_object)) {
        json_object_put(root);
        return el_err_set(err, EL_EINVAL, "body: must be a JSON object");
    }
    json_object_object_foreach(root, key, val)
    {
        for (i = 0; i < n; i++)
            if (strcmp(key, fields[i].name) == 0)
                break;
        if (i == n) {
            el_err_set(err, EL_EINVAL, "unknown field: %.64s", key);
            json_object_put(root);
            return EL_EINVAL;
        }
        if (!json_object_is_type(val, json_type_string)) {
            el_err_set(err, EL_EINVAL, "%s: must be a string", fields[i].name);
            json_object_put(root);
            return EL_EINVAL;
        }
        /* The same rule as course bodies: a NUL would silently cut a
         * password or name short in every C string downstream, and bytes
         * that are not UTF-8 would be stored and served as invalid JSON. */
        const char *sv = json_object_get_string(val);
        size_t sl = (size_t)json_object_get_string_len(val);
        if (memchr(sv, '\0', sl) != NULL || !el_utf8_valid(sv, sl)) {
            el_err_set(err, EL_EINVAL, "%s: must be valid UTF-8 without NUL characters",
                       fields[i].name);
            json_object_put(root);
            return EL_EINVAL;
        }
        *fields[i].out = sv;
    }
    for (i = 0; i < n; i++) {
        if (fields[i].required && *fields[i].out == NULL) {
            el_err_set(err, EL_EINVAL, "%s: field required", fields[i].name);
            json_object_put(root);
            return EL_EINVAL;
        }
    }
    *doc = malloc(sizeof(**doc));
    if (*doc == NULL) {
        json_object_put(root);
        return el_err_set(err, EL_ENOMEM, "out of memory");
    }
    (*doc)->root = root;
    return EL_OK;
}

void el_json_free(struct el_json *doc)
{
    if (doc) {
        json_object_put(doc->root);
        free(doc);
    }
}

int el_json_add_string(struct el_buf *out, const char *s)
{
    int rc = el_buf_adds(out, "\"");

    for (const unsigned char *p = (const unsigned char *)s; *p && rc == EL_OK; p++) {
        if (*p == '"' || *p == '\\')
            rc = el_buf_addf(out, "\\%c", *p);
        else if (*p < 0x20)
            rc = el_buf_addf(out, "\\u%04x", *p);
        else
            rc = el_buf_add(out, p, 1);
    }
    return rc == EL_OK ? el_buf_adds(out, "\"") : rc;
}
