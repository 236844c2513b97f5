/* jwt.c -- access and refresh tokens (see jwt.h): HS256 through libjwt,
 * with everything libjwt 1.10 leaves to its caller done here.
 *
 * Key decision: a presented token is taken apart and checked by this file
 * before libjwt sees it, and libjwt's answer is then checked again. The
 * reasons are specific to libjwt 1.10:
 *  - jwt_decode() takes the algorithm from the token, accepts alg "none"
 *    unsigned when no key is given, and accepts any token with an empty
 *    key. So the header is decoded here first and must say HS256, and the
 *    key is never empty.
 *  - its base64 decoder (libb64 on Debian) skips characters it does not
 *    know, so "e30" and "e3!0" read alike. So all three parts are decoded
 *    strictly here (canonical base64url only: one token, one spelling) and
 *    the HMAC over exactly those bytes is computed and compared here, in
 *    constant time (CRYPTO_memcmp), before jwt_decode() runs: what this
 *    file parsed is what was signed, whatever libjwt's own splitting and
 *    decoding do. libjwt's check (also constant-time) runs after it.
 *  - jwt_get_grant_int() answers 0 with errno 0 for a claim that is not an
 *    integer ("exp":"123"), so the payload is also parsed here with json-c
 *    to check the JSON type of iat and exp, and the two parsers must agree
 *    on their values.
 * The cost of the double check is one extra HMAC and one small JSON parse
 * per request, a few microseconds.
 *
 * Every failure of a presented token is EL_EINVAL with one of four short,
 * fixed messages fit for a 401 body; what exactly was wrong is never told
 * to the client.
 *
 * Thread-safety: struct el_jwt is immutable after el_jwt_new(); each call
 * makes its own libjwt, jansson and json-c objects, and OpenSSL's one-shot
 * HMAC() keeps no shared state, so any number of threads may issue and
 * verify with one el_jwt at once. */
#include "auth/jwt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <json-c/json.h>
#include <jwt.h> /* libjwt: lib/ is on the quote path only (-iquote) */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#define SECRET_MIN 32   /* bytes; config.c refuses shorter secrets */
#define SECRET_MAX 4096 /* libjwt takes an int length; nothing sane is longer */
#define ISSUER "elearn"
#define IAT_SKEW_S 60 /* a token may be dated this far in our future */
#define SIG_LEN 32    /* HMAC-SHA256 */
#define JSON_DEPTH 8  /* header and claims are flat objects */

#define MSG_INVALID "Invalid token"
#define MSG_SIGNATURE "Invalid token signature"
#define MSG_TYPE "Invalid token type"
#define MSG_EXPIRED "Token expired"

struct el_jwt {
    size_t len;
    unsigned char secret[]; /* len bytes, not NUL-terminated */
};

int el_jwt_new(const char *secret, struct el_jwt **out)
{
    struct el_jwt *j;
    size_t len;

    *out = NULL;
    if (secret == NULL)
        return EL_EINVAL;
    len = strnlen(secret, SECRET_MAX + 1);
    if (len < SECRET_MIN || len > SECRET_MAX)
        return EL_EINVAL;
    j = malloc(sizeof(*j) + len);
    if (j == NULL)
        return EL_ENOMEM;
    j->len = len;
    memcpy(j->secret, secret, len);
    *out = j;
    return EL_OK;
}

void el_jwt_free(struct el_jwt *j)
{
    if (j == NULL)
        return;
    OPENSSL_cleanse(j->secret, j->len);
    free(j);
}

/* ---- small validators --------------------------------------------------- */

int el_role_valid(const char *role)
{
    return role != NULL && (strcmp(role, "student") == 0 || strcmp(role, "instructor") == 0 ||
                            strcmp(role, "admin") == 0);
}

/* 1 if s is exactly n lowercase hex digits. Lowercase only: ids are minted
 * lowercase, and a second spelling of the same id would be a second cache
 * key and a second revocation-list entry. */
static int lower_hex(const char *s, size_t n)
{
    size_t i;

    if (s == NULL)
        return 0;
    for (i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return s[n] == '\0';
}

static int claims_valid(const struct el_token_claims *c)
{
    return lower_hex(c->sub, sizeof(c->sub) - 1) && lower_hex(c->jti, EL_JTI_LEN - 1) &&
           lower_hex(c->sid, EL_JTI_LEN - 1) && el_role_valid(c->role) &&
           (c->typ == EL_TOKEN_ACCESS || c->typ == EL_TOKEN_REFRESH);
}

static const char *typ_name(enum el_token_type t)
{
    return t == EL_TOKEN_REFRESH ? "refresh" : "access";
}

/* ---- ids ---------------------------------------------------------------- */

/* getrandom() only fails without kernel support or under a seccomp filter;
 * OpenSSL's CSPRNG is then the fallback. Ids must not be guessable, so with
 * neither source there is nothing safe to return, and the process stops. */
void el_jwt_new_id(char out[EL_JTI_LEN])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    size_t got = 0;
    int i;

    while (got < sizeof(b)) {
        ssize_t r = getrandom(b + got, sizeof(b) - got, 0);
        if (r > 0)
            got += (size_t)r;
        else if (r < 0 && errno != EINTR)
            break;
    }
    if (got < sizeof(b) && RAND_bytes(b, (int)sizeof(b)) != 1) {
        fprintf(stderr, "elearn: no source of random bytes for token ids\n");
        abort();
    }
    for (i = 0; i < 16; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[32] = '\0';
}

/* ---- issue -------------------------------------------------------------- */

int el_jwt_issue(struct el_jwt *j, struct el_token_claims *c, int64_t now_s, int64_t ttl_s,
                 char *out, size_t n)
{
    jwt_t *jwt = NULL;
    char *tok = NULL;
    size_t len;
    int rc = EL_ENOMEM;

    if (j == NULL || c == NULL || out == NULL || n == 0 || !claims_valid(c) || now_s < 0 ||
        ttl_s <= 0 || now_s > INT64_MAX - ttl_s)
        return EL_EINVAL;
    c->iat = now_s;
    c->exp = now_s + ttl_s;
    /* libjwt reports only errno values (ENOMEM, EINVAL); with arguments
     * checked above, any failure left is an allocation. */
    if (jwt_new(&jwt) != 0)
        goto out;
    if (jwt_set_alg(jwt, JWT_ALG_HS256, j->secret, (int)j->len) != 0 ||
        jwt_add_grant(jwt, "iss", ISSUER) != 0 || jwt_add_grant(jwt, "sub", c->sub) != 0 ||
        jwt_add_grant(jwt, "role", c->role) != 0 || jwt_add_grant(jwt, "jti", c->jti) != 0 ||
        jwt_add_grant(jwt, "sid", c->sid) != 0 ||
        jwt_add_grant(jwt, "typ", typ_name(c->typ)) != 0 ||
        jwt_add_grant_int(jwt, "iat", (long)c->iat) != 0 ||
        jwt_add_grant_int(jwt, "exp", (long)c->exp) != 0)
        goto out;
    tok = jwt_encode_str(jwt);
    if (tok == NULL)
        goto out;
    len = strlen(tok);
    if (len >= n || len > EL_JWT_MAX) {
        rc = EL_ETOOBIG;
        goto out;
    }
    memcpy(out, tok, len + 1);
    rc = EL_OK;
out:
    free(tok); /* libjwt 1.10 allocates with malloc() */
    jwt_free(jwt);
    return rc;
}

/* ---- verify ------------------------------------------------------------- */

static int b64url_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '-')
        return 62;
    if (ch == '_')
        return 63;
    return -1;
}

/* Decode unpadded base64url src[0..len) into dst (at least len * 3 / 4
 * bytes) and return the decoded length, or -1. Only the canonical form is
 * accepted: no padding, no other characters, no length that leaves a lone
 * sextet, and the unused low bits of the last character zero -- otherwise
 * "...Ss" and "...St" could carry the same signature. */
static long b64url_decode(const char *src, size_t len, unsigned char *dst)
{
    size_t i, o = 0;
    uint32_t acc = 0;
    int bits = 0;

    if (len % 4 == 1)
        return -1;
    for (i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)src[i]);

        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            dst[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0)
        return -1;
    return (long)o;
}

/* Parse exactly len bytes of JSON text into an object, strictly: no
 * trailing bytes, no NUL inside, valid UTF-8. Caller puts the result. */
static struct json_object *parse_object(const unsigned char *s, size_t len)
{
    struct json_tokener *tok;
    struct json_object *o;

    if (len == 0 || memchr(s, '\0', len) != NULL)
        return NULL;
    tok = json_tokener_new_ex(JSON_DEPTH);
    if (tok == NULL)
        return NULL;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    o = json_tokener_parse_ex(tok, (const char *)s, (int)len);
    if (o != NULL &&
        (json_tokener_get_error(tok) != json_tokener_success ||
         json_tokener_get_parse_end(tok) != len || !json_object_is_type(o, json_type_object))) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

/* The header must be {"alg":"HS256"} with at most "typ":"JWT" beside it.
 * Any other member (kid, jku, crit, ...) is refused: we mint no such
 * tokens, and honouring one would be a way in. */
static int header_ok(struct json_object *h)
{
    int alg = 0;

    json_object_object_foreach(h, key, val)
    {
        if (strcmp(key, "alg") == 0 && json_object_is_type(val, json_type_string) &&
            strcmp(json_object_get_string(val), "HS256") == 0)
            alg = 1;
        else if (strcmp(key, "typ") == 0 && json_object_is_type(val, json_type_string) &&
                 strcmp(json_object_get_string(val), "JWT") == 0)
            continue;
        else
            return 0;
    }
    return alg;
}

/* Copy string claim name into dst (size n) if it is a string of fitting
 * length; 0 or -1. */
static int copy_claim(jwt_t *jwt, const char *name, char *dst, size_t n)
{
    const char *v = jwt_get_grant(jwt, name);
    size_t len;

    if (v == NULL)
        return -1;
    len = strnlen(v, n);
    if (len >= n)
        return -1;
    memcpy(dst, v, len + 1);
    return 0;
}

/* Integer claim name: libjwt's value, which json-c must see as a JSON
 * integer of the same value (libjwt alone cannot tell "exp":"123" from a
 * missing or zero claim). */
static int int_claim(jwt_t *jwt, struct json_object *payload, const char *name, int64_t *out)
{
    struct json_object *v;
    long l;

    if (!json_object_object_get_ex(payload, name, &v) || !json_object_is_type(v, json_type_int))
        return -1;
    errno = 0;
    l = jwt_get_grant_int(jwt, name);
    if (errno != 0 || (int64_t)l != json_object_get_int64(v) || l < 0)
        return -1;
    *out = (int64_t)l;
    return 0;
}

int el_jwt_verify(struct el_jwt *j, const char *token, enum el_token_type want, int64_t now_s,
                  struct el_token_claims *c, struct el_err *err)
{
    unsigned char hbuf[EL_JWT_MAX], pbuf[EL_JWT_MAX], sig[EL_JWT_MAX];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    struct json_object *hdr = NULL, *payload = NULL;
    struct el_token_claims t;
    const char *dot1, *dot2, *typ;
    size_t len;
    long hlen, plen, slen;
    jwt_t *jwt = NULL;
    int rc = EL_EINVAL;
    const char *msg = MSG_INVALID;

    if (j == NULL || token == NULL || c == NULL)
        return el_err_set(err, EL_EINVAL, MSG_INVALID);

    /* 1. size and shape. */
    len = strnlen(token, EL_JWT_MAX + 1);
    if (len > EL_JWT_MAX)
        goto out;
    dot1 = memchr(token, '.', len);
    dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL)
        goto out;
    hlen = b64url_decode(token, (size_t)(dot1 - token), hbuf);
    plen = b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), pbuf);
    slen = b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), sig);
    if (hlen <= 0 || plen <= 0 || slen != SIG_LEN)
        goto out;

    /* 2. the header names HS256, before anything else is believed. */
    hdr = parse_object(hbuf, (size_t)hlen);
    if (hdr == NULL || !header_ok(hdr))
        goto out;
    payload = parse_object(pbuf, (size_t)plen);
    if (payload == NULL)
        goto out;

    /* 3. the signature, in constant time, then libjwt's own decode. */
    msg = MSG_SIGNATURE;
    if (HMAC(EVP_sha256(), j->secret, (int)j->len, (const unsigned char *)token,
             (size_t)(dot2 - token), mac, &maclen) == NULL ||
        maclen != SIG_LEN || CRYPTO_memcmp(mac, sig, SIG_LEN) != 0)
        goto out;
    if (jwt_decode(&jwt, token, j->secret, (int)j->len) != 0)
        jwt = NULL; /* libjwt frees its object when it fails */
    if (jwt == NULL || jwt_get_alg(jwt) != JWT_ALG_HS256) {
        /* Our own check passed, so this is a token libjwt reads
         * differently from us; refuse it. */
        msg = MSG_INVALID;
        goto out;
    }

    /* 4. claims. */
    msg = MSG_INVALID;
    memset(&t, 0, sizeof(t));
    if (jwt_get_grant(jwt, "iss") == NULL || strcmp(jwt_get_grant(jwt, "iss"), ISSUER) != 0 ||
        copy_claim(jwt, "sub", t.sub, sizeof(t.sub)) != 0 ||
        copy_claim(jwt, "role", t.role, sizeof(t.role)) != 0 ||
        copy_claim(jwt, "jti", t.jti, sizeof(t.jti)) != 0 ||
        copy_claim(jwt, "sid", t.sid, sizeof(t.sid)) != 0 ||
        int_claim(jwt, payload, "iat", &t.iat) != 0 || int_claim(jwt, payload, "exp", &t.exp) != 0)
        goto out;
    typ = jwt_get_grant(jwt, "typ");
    if (typ == NULL)
        goto out;
    if (strcmp(typ, typ_name(want)) != 0) {
        msg = MSG_TYPE;
        goto out;
    }
    t.typ = want;
    if (!claims_valid(&t) || t.iat > now_s + IAT_SKEW_S)
        goto out;
    if (t.exp <= now_s) {
        msg = MSG_EXPIRED;
        goto out;
    }
    *c = t;
    rc = EL_OK;
out:
    jwt_free(jwt);
    json_object_put(hdr);
    json_object_put(payload);
    if (rc != EL_OK)
        return el_err_set(err, rc, "%s", msg);
    return EL_OK;
}
