/* user.c -- the user model (see user.h): its public JSON and email
 * normalisation.
 *
 * Key decision: an email address is checked by a short list of plain rules
 * (one '@', a local part of 1-64 bytes, a dotted domain, no empty labels,
 * printable characters only, at most 254 bytes, valid UTF-8) rather than by
 * RFC 5322's grammar. The grammar admits quoted strings, comments and
 * spaces that no mail provider hands out and that would make two spellings
 * of one mailbox; the rules admit every address people actually type,
 * internationalised ones included, and whether the mailbox exists is not
 * something a syntax check can know anyway. Normalisation is trimming and
 * ASCII lowercasing only: non-ASCII case folding is locale business and the
 * domain's IDNA form is the mail system's. */
#include "model/user.h"

#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/text.h"

#define LOCAL_MAX 64 /* RFC 5321, 4.5.3.1.1 */

void el_user_cleanup(struct el_user *u)
{
    if (u == NULL)
        return;
    free(u->email);
    free(u->name);
    free(u->password_hash);
    memset(u, 0, sizeof(*u));
}

/* ---- JSON --------------------------------------------------------------- */

/* Add key -> val to obj, taking val; a NULL val (failed allocation) fails
 * the object. Keys are literals, each added once. */
static int put(struct json_object *obj, const char *key, struct json_object *val)
{
    if (val == NULL)
        return -1;
    if (json_object_object_add_ex(
            obj, key, val, JSON_C_OBJECT_ADD_KEY_IS_NEW | JSON_C_OBJECT_ADD_CONSTANT_KEY) != 0) {
        json_object_put(val);
        return -1;
    }
    return 0;
}

/* A NULL string field is sent as "" so the document keeps one shape. */
static struct json_object *jstr(const char *s)
{
    return json_object_new_string(s ? s : "");
}

/* The password hash and created_at stay on the server: this is the only
 * serializer, and it does not know them. */
int el_user_to_json(const struct el_user *u, struct el_buf *out)
{
    struct json_object *o = json_object_new_object();
    const char *s;
    size_t len = 0;
    int rc = EL_ENOMEM;

    if (o == NULL)
        return EL_ENOMEM;
    if (put(o, "_id", jstr(u->id)) || put(o, "email", jstr(u->email)) ||
        put(o, "name", jstr(u->name)) || put(o, "role", jstr(u->role)))
        goto out;
    s = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    if (s != NULL)
        rc = el_buf_add(out, s, len);
out:
    json_object_put(o);
    return rc;
}

/* ---- email -------------------------------------------------------------- */

static int ascii_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Code points that print nothing visible or look like a space: C1
 * controls, Unicode White_Space, zero-width characters, bidirectional
 * controls and the BOM. An address holding one could be told apart from
 * its lookalike only by a machine. */
static int invisible(uint32_t cp)
{
    return (cp >= 0x80 && cp <= 0xA0) || cp == 0xAD || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202F) ||
           (cp >= 0x205F && cp <= 0x206F) || cp == 0x3000 || cp == 0xFEFF;
}

int el_email_normalize(const char *in, char *out, size_t n)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t len, i, at = 0, ats = 0, step;
    const unsigned char *dom;
    size_t dlen;

    if (in == NULL || out == NULL)
        return EL_EINVAL;
    while (ascii_space(*s))
        s++;
    len = strlen((const char *)s);
    while (len > 0 && ascii_space(s[len - 1]))
        len--;
    if (len == 0 || len > EL_EMAIL_MAX)
        return EL_EINVAL;

    for (i = 0; i < len; i += step) {
        uint32_t cp;

        step = el_utf8_next((const char *)s + i, len - i, &cp);
        if (step == 0 || cp <= 0x20 || cp == 0x7F || invisible(cp))
            return EL_EINVAL;
        if (cp == '@') {
            at = i;
            ats++;
        }
        if (cp == '.' && i + 1 < len && s[i + 1] == '.')
            return EL_EINVAL;
    }
    if (ats != 1 || at == 0 || at > LOCAL_MAX)
        return EL_EINVAL;
    dom = s + at + 1;
    dlen = len - at - 1;
    if (dlen < 3 || dom[0] == '.' || dom[dlen - 1] == '.' || memchr(dom, '.', dlen) == NULL)
        return EL_EINVAL;

    if (n < len + 1)
        return EL_ETOOBIG; /* a buffer smaller than EL_EMAIL_MAX + 1 */
    el_ascii_lower(out, (const char *)s, len);
    out[len] = '\0';
    return EL_OK;
}
