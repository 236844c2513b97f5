/* fuzz/auth_body.c -- the auth endpoints' bodies: JSON objects of strings
 * (register, login, refresh) and the OAuth2 password form (login). */
#include <stdint.h>
#include <string.h>

#include "http/form.h"
#include "http/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *email, *password, *name;
    struct el_json_field f[] = {
        {"email", 1, &email}, {"password", 1, &password}, {"name", 0, &name}};
    struct el_err err = {0};
    struct el_json *doc = NULL;
    char out[256];

    if (el_json_strings((const char *)data, size, f, 3, &doc, &err) == EL_OK)
        el_json_free(doc);
    (void)el_form_get((const char *)data, size, "username", out, sizeof(out));
    (void)el_form_get((const char *)data, size, "password", out, 8);
    return 0;
}
