/* test_jwt.c -- tokens: round trips, and every way a presented token must
 * be refused. Hostile tokens are built two ways: with libjwt itself (a
 * well-signed token whose claims are wrong) and by hand (headers and bytes
 * libjwt would never write). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jwt.h> /* libjwt: lib/ is on the quote path only (-iquote) */
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/jwt.h"
#include "unit.h"

#define SECRET "unit-test-secret-0123456789abcdef-0123456789"
#define OTHER_SECRET "another-secret-0123456789abcdef-0123456789ab"
#define NOW 1700000000
#define SUB "65a1b2c3d4e5f60718293a4b"
#define JTI "0123456789abcdef0123456789abcdef"
#define SID "fedcba9876543210fedcba9876543210"

static struct el_jwt *jwt_a;

static int suite_init(void)
{
    return el_jwt_new(SECRET, &jwt_a) == EL_OK ? 0 : -1;
}

static int suite_clean(void)
{
    el_jwt_free(jwt_a);
    jwt_a = NULL;
    return 0;
}

static void claims_for(struct el_token_claims *c, enum el_token_type typ)
{
    memset(c, 0, sizeof(*c));
    strcpy(c->sub, SUB);
    strcpy(c->role, "instructor");
    strcpy(c->jti, JTI);
    strcpy(c->sid, SID);
    c->typ = typ;
}

/* A token for the default claims, issued at now for ttl seconds. */
static void issue(enum el_token_type typ, int64_t now, int64_t ttl, char out[EL_JWT_MAX + 1])
{
    struct el_token_claims c;

    claims_for(&c, typ);
    CU_ASSERT_EQUAL_FATAL(el_jwt_issue(jwt_a, &c, now, ttl, out, EL_JWT_MAX + 1), EL_OK);
}

/* Verify token as want at NOW; returns the status and copies the message. */
static int check(const char *token, enum el_token_type want, char msg[256])
{
    struct el_token_claims c;
    struct el_err err = {0, ""};
    int rc = el_jwt_verify(jwt_a, token, want, NOW, &c, &err);

    if (msg)
        snprintf(msg, 256, "%s", err.msg);
    if (rc != EL_OK)
        CU_ASSERT_EQUAL(err.code, rc);
    return rc;
}

/* ---- token crafting ----------------------------------------------------- */

static void b64url(const void *src, size_t n, char *dst)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *s = src;
    size_t i, o = 0;

    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        dst[o++] = tab[v >> 18];
        dst[o++] = tab[(v >> 12) & 63];
        dst[o++] = tab[(v >> 6) & 63];
        dst[o++] = tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        dst[o++] = tab[v >> 18];
        dst[o++] = tab[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
        dst[o++] = tab[v >> 18];
        dst[o++] = tab[(v >> 12) & 63];
        dst[o++] = tab[(v >> 6) & 63];
    }
    dst[o] = '\0';
}

/* header.payload.signature with an HMAC computed here (md NULL: empty
 * signature), so any header and any bytes can be signed correctly. */
static void craft(const char *header, const char *payload, const EVP_MD *md, const char *secret,
                  char *out, size_t n)
{
    char h[4096], p[4096], s[256];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    char *signing;

    b64url(header, strlen(header), h);
    b64url(payload, strlen(payload), p);
    signing = malloc(strlen(h) + strlen(p) + 2);
    if (signing == NULL) {
        CU_FAIL_FATAL("out of memory");
        return;
    }
    sprintf(signing, "%s.%s", h, p);
    s[0] = '\0';
    if (md) {
        HMAC(md, secret, (int)strlen(secret), (unsigned char *)signing, strlen(signing), mac,
             &maclen);
        b64url(mac, maclen, s);
    }
    CU_ASSERT_FATAL((size_t)snprintf(out, n, "%s.%s", signing, s) < n);
    free(signing);
}

#define GOOD_HEADER "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

/* The claims JSON of a valid access token, with printf-style overrides:
 * fmt gets the members after the fixed ones. */
static void payload_json(char *out, size_t n, const char *extra)
{
    snprintf(out, n,
             "{\"iss\":\"elearn\",\"sub\":\"" SUB "\",\"role\":\"student\",\"jti\":\"" JTI
             "\",\"sid\":\"" SID "\",\"typ\":\"access\",\"iat\":%d,\"exp\":%d%s}",
             NOW - 10, NOW + 900, extra ? extra : "");
}

/* A token made by libjwt itself from a claims JSON object, signed with alg
 * and secret. */
static char *libjwt_token(jwt_alg_t alg, const char *secret, const char *claims)
{
    jwt_t *j = NULL;
    char *s;

    CU_ASSERT_EQUAL_FATAL(jwt_new(&j), 0);
    CU_ASSERT_EQUAL_FATAL(jwt_set_alg(j, alg, (const unsigned char *)secret, (int)strlen(secret)),
                          0);
    CU_ASSERT_EQUAL_FATAL(jwt_add_grants_json(j, claims), 0);
    s = jwt_encode_str(j);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    jwt_free(j);
    return s;
}

/* ---- tests -------------------------------------------------------------- */

static void test_round_trip_access(void)
{
    struct el_token_claims in, out;
    char tok[EL_JWT_MAX + 1];

    claims_for(&in, EL_TOKEN_ACCESS);
    CU_ASSERT_EQUAL_FATAL(el_jwt_issue(jwt_a, &in, NOW, 900, tok, sizeof(tok)), EL_OK);
    CU_ASSERT_EQUAL(in.iat, NOW);
    CU_ASSERT_EQUAL(in.exp, NOW + 900);
    memset(&out, 0xAA, sizeof(out));
    CU_ASSERT_EQUAL_FATAL(el_jwt_verify(jwt_a, tok, EL_TOKEN_ACCESS, NOW + 1, &out, NULL), EL_OK);
    CU_ASSERT_STRING_EQUAL(out.sub, SUB);
    CU_ASSERT_STRING_EQUAL(out.role, "instructor");
    CU_ASSERT_STRING_EQUAL(out.jti, JTI);
    CU_ASSERT_STRING_EQUAL(out.sid, SID);
    CU_ASSERT_EQUAL(out.typ, EL_TOKEN_ACCESS);
    CU_ASSERT_EQUAL(out.iat, NOW);
    CU_ASSERT_EQUAL(out.exp, NOW + 900);
    /* Valid until the last second before exp. */
    CU_ASSERT_EQUAL(el_jwt_verify(jwt_a, tok, EL_TOKEN_ACCESS, NOW + 899, &out, NULL), EL_OK);
}

static void test_round_trip_refresh(void)
{
    struct el_token_claims in, out;
    char tok[EL_JWT_MAX + 1];

    claims_for(&in, EL_TOKEN_REFRESH);
    strcpy(in.role, "admin");
    CU_ASSERT_EQUAL_FATAL(el_jwt_issue(jwt_a, &in, NOW, 7 * 86400, tok, sizeof(tok)), EL_OK);
    CU_ASSERT_EQUAL_FATAL(el_jwt_verify(jwt_a, tok, EL_TOKEN_REFRESH, NOW, &out, NULL), EL_OK);
    CU_ASSERT_EQUAL(out.typ, EL_TOKEN_REFRESH);
    CU_ASSERT_STRING_EQUAL(out.role, "admin");
    CU_ASSERT_EQUAL(out.exp, NOW + 7 * 86400);
    /* A second secret's verifier accepts its own tokens only. */
    {
        struct el_jwt *b = NULL;
        CU_ASSERT_EQUAL_FATAL(el_jwt_new(OTHER_SECRET, &b), EL_OK);
        CU_ASSERT_EQUAL(el_jwt_verify(b, tok, EL_TOKEN_REFRESH, NOW, &out, NULL), EL_EINVAL);
        el_jwt_free(b);
    }
}

/* The classic: alg "none" with the signature left off. libjwt decodes such
 * a token happily when handed no key. */
static void test_alg_none_rejected(void)
{
    static const char *const headers[] = {
        "{\"alg\":\"none\",\"typ\":\"JWT\"}", "{\"alg\":\"None\"}", "{\"alg\":\"NONE\"}",
        "{\"typ\":\"JWT\"}", /* no alg at all */
    };
    char payload[1024], tok[4096], msg[256];
    size_t i;

    payload_json(payload, sizeof(payload), NULL);
    for (i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        craft(headers[i], payload, NULL, NULL, tok, sizeof(tok));
        CU_ASSERT_EQUAL(tok[strlen(tok) - 1], '.'); /* empty signature */
        CU_ASSERT_EQUAL(check(tok, EL_TOKEN_ACCESS, msg), EL_EINVAL);
        CU_ASSERT_STRING_EQUAL(msg, "Invalid token");
        /* ... and with a valid HS256 signature over the same bytes. */
        craft(headers[i], payload, EVP_sha256(), SECRET, tok, sizeof(tok));
        CU_ASSERT_EQUAL(check(tok, EL_TOKEN_ACCESS, NULL), EL_EINVAL);
    }
    /* The crafting itself is sound: the same payload under the HS256
     * header is accepted, with or without "typ". */
    craft(GOOD_HEADER, payload, EVP_sha256(), SECRET, tok, sizeof(tok));
    CU_ASSERT_EQUAL(check(tok, EL_TOKEN_ACCESS, NULL), EL_OK);
    craft("{\"alg\":\"HS256\"}", payload, EVP_sha256(), SECRET, tok, sizeof(tok));
    CU_ASSERT_EQUAL(check(tok, EL_TOKEN_ACCESS, NULL), EL_OK);
}

static void test_other_secret_rejected(void)
{
    char payload[1024], msg[256];
    char *tok;

    payload_json(payload, sizeof(payload), NULL);
    tok = libjwt_token(JWT_ALG_HS256, OTHER_SECRET, payload);
    CU_ASSERT_EQUAL(check(tok, EL_TOKEN_ACCESS, msg), EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(msg, "Invalid token signature");
    free(tok);
    /* Same claims, right secret: accepted (so the secret was the cause). */
    tok = libjwt_token(JWT_ALG_HS256, SECRET, payload);
    CU_ASSERT_EQUAL(check(tok, EL_TOKEN_ACCESS, NULL), EL_OK);
    free(tok);
}

static void test_other_hmac_algs_rejected(void)
{
    static const jwt_alg_t algs[] = {JWT_ALG_HS384, JWT_ALG_HS512};
    char payload[1024], msg[256];
    size_t i;

    payload_json(payload, sizeof(payload), NULL);
    for (i = 0; i < 2; i++) {
        char *tok = libjwt_token(algs[i], SECRET, payload);
        CU_ASSERT_EQUAL(check(tok, EL_TOKEN_ACCESS, msg), EL_EINVAL);
        CU_ASSERT_STRING_EQUAL(msg, "Invalid token");
        free(tok);
    }
    /* An "RS256" header over an HMAC made with the secret: the algorithm
     * confusion attack. */
    {
        char tok[4096];
        craft("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", payload, EVP_sha256(), SECRET, tok,
              sizeof(tok));
        CU_ASSERT_EQUAL(check(tok, EL_TOKEN_ACCESS, NULL), EL_EINVAL);
    }
}

static void test_wrong_type_rejected(void)
{
    char acc[EL_JWT_MAX + 1], ref[EL_JWT_MAX + 1], msg[256];

    issue(EL_TOKEN_ACCESS, NOW, 900, acc);
    issue(EL_TOKEN_REFRESH, NOW, 900, ref);
    CU_ASSERT_EQUAL(check(ref, EL_TOKEN_ACCESS, msg), EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(msg, "Invalid token type");
    CU_ASSERT_EQUAL(check(acc, EL_TOKEN_REFRESH, msg), EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(msg, "Invalid token type");
    CU_ASSERT_EQUAL(check(acc, EL_TOKEN_ACCESS, NULL), EL_OK);
    CU_ASSERT_EQUAL(check(ref, EL_TOKEN_REFRESH, NULL), EL_OK);
}

static void test_expired_rejected(void)
{
    char tok[EL_JWT_MAX + 1], msg[256];
    struct el_token_claims c;

    issue(EL_TOKEN_ACCESS, NOW - 1000, 900, tok);
    CU_ASSERT_EQUAL(check(tok, EL_TOKEN_ACCESS, msg), EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(msg, "Token expired");
    /* exp is exclusive: at exp the token is dead. */
    issue(EL_TOKEN_ACCESS, NOW - 900, 900, tok);
    CU_ASSERT_EQUAL(check(tok, EL_TOKEN_ACCESS, msg), EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(msg, "Token expired");
    CU_ASSERT_EQUAL(el_jwt_verify(jwt_a, tok, EL_TOKEN_ACCESS, NOW - 1, &c, NULL), EL_OK);
}

static void test_not_yet_valid_rejected(void)
{
    char tok[EL_JWT_MAX + 1], msg[256];

    issue(EL_TOKEN_ACCESS, NOW + 3600, 900, tok);
    CU_ASSERT_EQUAL(check(tok, EL_TOKEN_ACCESS, msg), EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(msg, "Invalid token");
    /* 60 s of clock skew are tolerated, 61 are not. */
    issue(EL_TOKEN_ACCESS, NOW + 60, 900, tok);
    CU_ASSERT_EQUAL(check(tok, EL_TOKEN_ACCESS, NULL), EL_OK);
    issue(EL_TOKEN_ACCESS, NOW + 61, 900, tok);
    CU_ASSERT_EQUAL(check(tok, EL_TOKEN_ACCESS, NULL), EL_EINVAL);
}

/* Swap the payload of a genuine token for one that says admin. */
static void test_tampered_payload_rejected(void)
{
    char tok[EL_JWT_MAX + 1], forged[4096], payload[1024], p64[2048], msg[256];
    const char *dot1, *dot2;

    issue(EL_TOKEN_ACCESS, NOW, 900, tok);
    dot1 = strchr(tok, '.');
    dot2 = strchr(dot1 + 1, '.');
    snprintf(payload, sizeof(payload),
             "{\"exp\":%d,\"iat\":%d,\"iss\":\"elearn\",\"jti\":\"" JTI
             "\",\"role\":\"admin\",\"sid\":\"" SID "\",\"sub\":\"" SUB "\",\"typ\":\"access\"}",
             NOW + 900, NOW);
    b64url(payload, strlen(payload), p64);
    snprintf(forged, sizeof(forged), "%.*s.%s%s", (int)(dot1 - tok), tok, p64, dot2);
    CU_ASSERT_EQUAL(check(forged, EL_TOKEN_ACCESS, msg), EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(msg, "Invalid token signature");
    /* One flipped bit in the signature. */
    snprintf(forged, sizeof(forged), "%s", tok);
    forged[dot2 - tok + 5] = forged[dot2 - tok + 5] == 'A' ? 'B' : 'A';
    CU_ASSERT_EQUAL(check(forged, EL_TOKEN_ACCESS, msg), EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(msg, "Invalid token signature");
}

/* The last character of a 32-byte signature carries 4 bits and 2 unused
 * ones; a lenient decoder reads "…Ss" and "…St" alike. Only the canonical
 * spelling is one token. */
static void test_noncanonical_signature_rejected(void)
{
    char tok[EL_JWT_MAX + 1];
    size_t n;
    const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int v;

    issue(EL_TOKEN_ACCESS, NOW, 900, tok);
    n = strlen(tok);
    v = (int)(strchr(alphabet, tok[n - 1]) - alphabet);
    CU_ASSERT_EQUAL(v & 3, 0);
    tok[n - 1] = alphabet[v | 1];
    CU_ASSERT_EQUAL(check(tok, EL_TOKEN_ACCESS, NULL), EL_EINVAL);
    /* Padding is not base64url either. */
    tok[n - 1] = alphabet[v];
    strcat(tok, "=");
    CU_ASSERT_EQUAL(check(tok, EL_TOKEN_ACCESS, NULL), EL_EINVAL);
}

/* Well-signed tokens (libjwt, right secret) that lack or misspell one
 * claim. */
static void test_bad_claims_rejected(void)
{
    static const char *const bad[] = {
        /* each claim missing */
        "{\"sub\":\"" SUB "\",\"role\":\"student\",\"jti\":\"" JTI "\",\"sid\":\"" SID
        "\",\"typ\":\"access\",\"iat\":1699999990,\"exp\":1700000900}",
        "{\"iss\":\"elearn\",\"role\":\"student\",\"jti\":\"" JTI "\",\"sid\":\"" SID
        "\",\"typ\":\"access\",\"iat\":1699999990,\"exp\":1700000900}",
        "{\"iss\":\"elearn\",\"sub\":\"" SUB "\",\"jti\":\"" JTI "\",\"sid\":\"" SID
        "\",\"typ\":\"access\",\"iat\":1699999990,\"exp\":1700000900}",
        "{\"iss\":\"elearn\",\"sub\":\"" SUB "\",\"role\":\"student\",\"sid\":\"" SID
        "\",\"typ\":\"access\",\"iat\":1699999990,\"exp\":1700000900}",
        "{\"iss\":\"elearn\",\"sub\":\"" SUB "\",\"role\":\"student\",\"jti\":\"" JTI
        "\",\"typ\":\"access\",\"iat\":1699999990,\"exp\":1700000900}",
        "{\"iss\":\"elearn\",\"sub\":\"" SUB "\",\"role\":\"student\",\"jti\":\"" JTI
        "\",\"sid\":\"" SID "\",\"iat\":1699999990,\"exp\":1700000900}",
        "{\"iss\":\"elearn\",\"sub\":\"" SUB "\",\"role\":\"student\",\"jti\":\"" JTI
        "\",\"sid\":\"" SID "\",\"typ\":\"access\",\"exp\":1700000900}",
        "{\"iss\":\"elearn\",\"sub\":\"" SUB "\",\"role\":\"student\",\"jti\":\"" JTI
        "\",\"sid\":\"" SID "\",\"typ\":\"access\",\"iat\":1699999990}",
        /* wrong types and values */
        "{\"iss\":\"elearn\",\"sub\":\"" SUB "\",\"role\":\"student\",\"jti\":\"" JTI
        "\",\"sid\":\"" SID "\",\"typ\":\"access\",\"iat\":1699999990,\"exp\":\"1700000900\"}",
        "{\"iss\":\"elearn\",\"sub\":\"" SUB "\",\"role\":\"student\",\"jti\":\"" JTI
        "\",\"sid\":\"" SID "\",\"typ\":\"access\",\"iat\":\"1699999990\",\"exp\":1700000900}",
        "{\"iss\":\"elearn\",\"sub\":\"" SUB "\",\"role\":\"student\",\"jti\":\"" JTI
        "\",\"sid\":\"" SID "\",\"typ\":\"access\",\"iat\":1699999990,\"exp\":1700000900.0}",
        "{\"iss\":\"elearn\",\"sub\":\"" SUB "\",\"role\":\"student\",\"jti\":\"" JTI
        "\",\"sid\":\"" SID "\",\"typ\":\"access\",\"iat\":1699999990,\"exp\":true}",
        "{\"iss\":\"elearn\",\"sub\":\"" SUB "\",\"role\":\"student\",\"jti\":\"" JTI
        "\",\"sid\":\"" SID "\",\"typ\":\"access\",\"iat\":null,\"exp\":1700000900}",
        "{\"iss\":\"elearn\",\"sub\":\"" SUB "\",\"role\":\"student\",\"jti\":\"" JTI
        "\",\"sid\":\"" SID "\",\"typ\":\"access\",\"iat\":\"0\",\"exp\":1700000900}",
        "{\"iss\":\"elearn\",\"sub\":\"" SUB "\",\"role\":\"student\",\"jti\":\"" JTI
        "\",\"sid\":\"" SID "\",\"typ\":\"access\",\"iat\":false,\"exp\":1700000900}",
        "{\"iss\":\"elearn\",\"sub\":\"" SUB "\",\"role\":\"student\",\"jti\":\"" JTI
        "\",\"sid\":\"" SID "\",\"typ\":\"access\",\"iat\":-5,\"exp\":1700000900}",
        "{\"iss\":\"other\",\"sub\":\"" SUB "\",\"role\":\"student\",\"jti\":\"" JTI
        "\",\"sid\":\"" SID "\",\"typ\":\"access\",\"iat\":1699999990,\"exp\":1700000900}",
        "{\"iss\":\"elearn\",\"sub\":12,\"role\":\"student\",\"jti\":\"" JTI "\",\"sid\":\"" SID
        "\",\"typ\":\"access\",\"iat\":1699999990,\"exp\":1700000900}",
        "{\"iss\":\"elearn\",\"sub\":\"65A1B2C3D4E5F60718293A4B\",\"role\":\"student\",\"jti\":"
        "\"" JTI "\",\"sid\":\"" SID "\",\"typ\":\"access\",\"iat\":1699999990,\"exp\":1700000900}",
        "{\"iss\":\"elearn\",\"sub\":\"65a1b2c3d4e5f60718293a4\",\"role\":\"student\",\"jti\":"
        "\"" JTI "\",\"sid\":\"" SID "\",\"typ\":\"access\",\"iat\":1699999990,\"exp\":1700000900}",
        "{\"iss\":\"elearn\",\"sub\":\"65a1b2c3d4e5f60718293a4bc\",\"role\":\"student\",\"jti\":"
        "\"" JTI "\",\"sid\":\"" SID "\",\"typ\":\"access\",\"iat\":1699999990,\"exp\":1700000900}",
        "{\"iss\":\"elearn\",\"sub\":\"" SUB "\",\"role\":\"root\",\"jti\":\"" JTI
        "\",\"sid\":\"" SID "\",\"typ\":\"access\",\"iat\":1699999990,\"exp\":1700000900}",
        "{\"iss\":\"elearn\",\"sub\":\"" SUB "\",\"role\":\"student\",\"jti\":"
        "\"0123456789ABCDEF0123456789ABCDEF\",\"sid\":\"" SID
        "\",\"typ\":\"access\",\"iat\":1699999990,\"exp\":1700000900}",
        "{\"iss\":\"elearn\",\"sub\":\"" SUB "\",\"role\":\"student\",\"jti\":\"" JTI
        "\",\"sid\":\"fedcba\",\"typ\":\"access\",\"iat\":1699999990,\"exp\":1700000900}",
        "{\"iss\":\"elearn\",\"sub\":\"" SUB "\",\"role\":\"student\",\"jti\":\"" JTI
        "\",\"sid\":\"" SID "\",\"typ\":\"id\",\"iat\":1699999990,\"exp\":1700000900}",
    };
    static const char good[] =
        "{\"iss\":\"elearn\",\"sub\":\"" SUB "\",\"role\":\"student\",\"jti\":\"" JTI
        "\",\"sid\":\"" SID "\",\"typ\":\"access\",\"iat\":1699999990,\"exp\":1700000900}";
    char *tok;
    size_t i;

    /* The template itself passes, so each failure below is its one
     * change. */
    tok = libjwt_token(JWT_ALG_HS256, SECRET, good);
    CU_ASSERT_EQUAL(check(tok, EL_TOKEN_ACCESS, NULL), EL_OK);
    free(tok);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc;

        tok = libjwt_token(JWT_ALG_HS256, SECRET, bad[i]);
        rc = check(tok, EL_TOKEN_ACCESS, NULL);
        CU_ASSERT_EQUAL(rc, EL_EINVAL);
        if (rc != EL_EINVAL)
            fprintf(stderr, "\n  accepted bad claims #%zu: %s\n", i, bad[i]);
        free(tok);
    }
}

/* Headers libjwt never writes, correctly signed with the secret. */
static void test_bad_headers_rejected(void)
{
    static const char *const headers[] = {
        "{\"alg\":\"HS256\",\"typ\":\"JOSE\"}",
        "{\"alg\":\"HS256\",\"kid\":\"1\"}",
        "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}",
        "{\"alg\":\"hs256\"}",
        "{\"alg\":[\"HS256\"]}",
        "[\"HS256\"]",
        "{\"alg\":\"HS256\"}{}",
        "{\"alg\":\"HS256\"}x",
        "{\"alg\":\"HS256\"",
        "\"HS256\"",
    };
    char payload[1024], tok[4096];
    size_t i;

    payload_json(payload, sizeof(payload), NULL);
    for (i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        int rc;

        craft(headers[i], payload, EVP_sha256(), SECRET, tok, sizeof(tok));
        rc = check(tok, EL_TOKEN_ACCESS, NULL);
        CU_ASSERT_EQUAL(rc, EL_EINVAL);
        if (rc != EL_EINVAL)
            fprintf(stderr, "\n  accepted header: %s\n", headers[i]);
    }
}

/* Payload bytes that are not exactly one JSON object, correctly signed. */
static void test_bad_payload_json_rejected(void)
{
    char payload[1100], tok[4096];

    payload_json(payload, sizeof(payload), NULL);
    strcat(payload, "x");
    craft(GOOD_HEADER, payload, EVP_sha256(), SECRET, tok, sizeof(tok));
    CU_ASSERT_EQUAL(check(tok, EL_TOKEN_ACCESS, NULL), EL_EINVAL);

    payload_json(payload, sizeof(payload), NULL);
    payload[strlen(payload) - 1] = '\0'; /* no closing brace */
    craft(GOOD_HEADER, payload, EVP_sha256(), SECRET, tok, sizeof(tok));
    CU_ASSERT_EQUAL(check(tok, EL_TOKEN_ACCESS, NULL), EL_EINVAL);

    craft(GOOD_HEADER, "[1,2,3]", EVP_sha256(), SECRET, tok, sizeof(tok));
    CU_ASSERT_EQUAL(check(tok, EL_TOKEN_ACCESS, NULL), EL_EINVAL);
}

/* A correctly signed token over EL_JWT_MAX is refused for its size alone:
 * the same token with a little less padding, up to the limit, passes. */
static void test_oversized_rejected(void)
{
    char payload[4096], extra[2100], tok[8192], msg[256];
    size_t pad, len = 0, longest_ok = 0;

    for (pad = 1000; pad < 1700; pad++) {
        memcpy(extra, ",\"pad\":\"", 8);
        memset(extra + 8, 'x', pad);
        strcpy(extra + 8 + pad, "\"");
        payload_json(payload, sizeof(payload), extra);
        craft(GOOD_HEADER, payload, EVP_sha256(), SECRET, tok, sizeof(tok));
        len = strlen(tok);
        if (len > EL_JWT_MAX)
            break;
        if (check(tok, EL_TOKEN_ACCESS, NULL) == EL_OK)
            longest_ok = len;
    }
    CU_ASSERT(longest_ok > EL_JWT_MAX - 4);
    CU_ASSERT_FATAL(len > EL_JWT_MAX);
    CU_ASSERT_EQUAL(check(tok, EL_TOKEN_ACCESS, msg), EL_EINVAL);
    CU_ASSERT_STRING_EQUAL(msg, "Invalid token");
}

static void test_garbage_rejected(void)
{
    static const char *const inputs[] = {
        "",
        ".",
        "..",
        "...",
        "a",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        "!!!.@@@.###",
        "Bearer x.y.z",
        "eyJhbGciOiJIUzI1NiJ9..",
        ".eyJhbGciOiJIUzI1NiJ9.",
        "\xff\xfe.\x80.\x01",
    };
    char tok[EL_JWT_MAX + 2], msg[256];
    size_t i;

    for (i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        CU_ASSERT_EQUAL(check(inputs[i], EL_TOKEN_ACCESS, msg), EL_EINVAL);
        CU_ASSERT_STRING_EQUAL(msg, "Invalid token");
    }
    /* A genuine token with bytes around it. */
    issue(EL_TOKEN_ACCESS, NOW, 900, tok);
    strcat(tok, ".");
    CU_ASSERT_EQUAL(check(tok, EL_TOKEN_ACCESS, NULL), EL_EINVAL);
    issue(EL_TOKEN_ACCESS, NOW, 900, tok);
    strcat(tok, " ");
    CU_ASSERT_EQUAL(check(tok, EL_TOKEN_ACCESS, NULL), EL_EINVAL);
    issue(EL_TOKEN_ACCESS, NOW, 900, tok);
    tok[10] = '+'; /* standard base64, not base64url */
    CU_ASSERT_EQUAL(check(tok, EL_TOKEN_ACCESS, NULL), EL_EINVAL);
    {
        struct el_token_claims c;
        CU_ASSERT_EQUAL(el_jwt_verify(jwt_a, NULL, EL_TOKEN_ACCESS, NOW, &c, NULL), EL_EINVAL);
    }
}

static void test_new_and_issue_arguments(void)
{
    struct el_jwt *j = (struct el_jwt *)1;
    struct el_token_claims c;
    char tok[EL_JWT_MAX + 1], small[64];

    CU_ASSERT_EQUAL(el_jwt_new(NULL, &j), EL_EINVAL);
    CU_ASSERT_PTR_NULL(j);
    CU_ASSERT_EQUAL(el_jwt_new("", &j), EL_EINVAL);
    CU_ASSERT_EQUAL(el_jwt_new("0123456789abcdef0123456789abcde", &j), EL_EINVAL); /* 31 */
    CU_ASSERT_EQUAL(el_jwt_new("0123456789abcdef0123456789abcdef", &j), EL_OK);    /* 32 */
    el_jwt_free(j);
    el_jwt_free(NULL);

    claims_for(&c, EL_TOKEN_ACCESS);
    CU_ASSERT_EQUAL(el_jwt_issue(jwt_a, &c, NOW, 900, small, sizeof(small)), EL_ETOOBIG);
    CU_ASSERT_EQUAL(el_jwt_issue(jwt_a, &c, NOW, 0, tok, sizeof(tok)), EL_EINVAL);
    strcpy(c.role, "root");
    CU_ASSERT_EQUAL(el_jwt_issue(jwt_a, &c, NOW, 900, tok, sizeof(tok)), EL_EINVAL);
    claims_for(&c, EL_TOKEN_ACCESS);
    c.jti[0] = '\0';
    CU_ASSERT_EQUAL(el_jwt_issue(jwt_a, &c, NOW, 900, tok, sizeof(tok)), EL_EINVAL);
    claims_for(&c, EL_TOKEN_ACCESS);
    c.sub[3] = 'G';
    CU_ASSERT_EQUAL(el_jwt_issue(jwt_a, &c, NOW, 900, tok, sizeof(tok)), EL_EINVAL);
}

static void test_new_id_and_roles(void)
{
    char a[EL_JTI_LEN], b[EL_JTI_LEN];
    size_t i;

    el_jwt_new_id(a);
    el_jwt_new_id(b);
    CU_ASSERT_EQUAL(strlen(a), 32);
    for (i = 0; i < 32; i++)
        CU_ASSERT(strchr("0123456789abcdef", a[i]) != NULL);
    CU_ASSERT_STRING_NOT_EQUAL(a, b);

    CU_ASSERT(el_role_valid("student"));
    CU_ASSERT(el_role_valid("instructor"));
    CU_ASSERT(el_role_valid("admin"));
    CU_ASSERT(!el_role_valid("Admin"));
    CU_ASSERT(!el_role_valid("admin "));
    CU_ASSERT(!el_role_valid(""));
    CU_ASSERT(!el_role_valid(NULL));
}

/* ---- concurrency -------------------------------------------------------- */

#define THREADS 8
#define ROUNDS 2000

struct worker {
    pthread_t tid;
    const char *token;
    int ok;
};

static void *verify_loop(void *arg)
{
    struct worker *w = arg;
    int i;

    for (i = 0; i < ROUNDS; i++) {
        struct el_token_claims c;
        if (el_jwt_verify(jwt_a, w->token, EL_TOKEN_ACCESS, NOW, &c, NULL) == EL_OK &&
            strcmp(c.sub, SUB) == 0)
            w->ok++;
    }
    return NULL;
}

static void test_concurrent_verify(void)
{
    struct worker w[THREADS];
    char tok[EL_JWT_MAX + 1];
    int i, started = 0;

    issue(EL_TOKEN_ACCESS, NOW, 900, tok);
    for (i = 0; i < THREADS; i++) {
        w[i].token = tok;
        w[i].ok = 0;
        if (pthread_create(&w[i].tid, NULL, verify_loop, &w[i]) != 0)
            break;
        started++;
    }
    CU_ASSERT_EQUAL(started, THREADS);
    for (i = 0; i < started; i++) {
        pthread_join(w[i].tid, NULL);
        CU_ASSERT_EQUAL(w[i].ok, ROUNDS);
    }
}

void test_jwt_register(void)
{
    CU_pSuite s = CU_add_suite("jwt", suite_init, suite_clean);

    CU_add_test(s, "round trip: access", test_round_trip_access);
    CU_add_test(s, "round trip: refresh", test_round_trip_refresh);
    CU_add_test(s, "alg none rejected", test_alg_none_rejected);
    CU_add_test(s, "other secret rejected", test_other_secret_rejected);
    CU_add_test(s, "HS384/HS512/RS256 rejected", test_other_hmac_algs_rejected);
    CU_add_test(s, "wrong token type rejected", test_wrong_type_rejected);
    CU_add_test(s, "expired rejected", test_expired_rejected);
    CU_add_test(s, "not yet valid rejected", test_not_yet_valid_rejected);
    CU_add_test(s, "tampered payload rejected", test_tampered_payload_rejected);
    CU_add_test(s, "non-canonical signature rejected", test_noncanonical_signature_rejected);
    CU_add_test(s, "missing or bad claims rejected", test_bad_claims_rejected);
    CU_add_test(s, "bad headers rejected", test_bad_headers_rejected);
    CU_add_test(s, "bad payload JSON rejected", test_bad_payload_json_rejected);
    CU_add_test(s, "oversized rejected", test_oversized_rejected);
    CU_add_test(s, "garbage rejected", test_garbage_rejected);
    CU_add_test(s, "new and issue check arguments", test_new_and_issue_arguments);
    CU_add_test(s, "ids and roles", test_new_id_and_roles);
    CU_add_test(s, "8 threads verify concurrently", test_concurrent_verify);
}
