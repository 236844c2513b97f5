/* fuzz/jwt.c -- the bearer token. First byte even: the rest is a token as
 * a client sends it. Odd: the rest is a JWT payload, signed here with the
 * fuzzer's secret, so the claims parsing behind the signature check is
 * reached too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/jwt.h"

#define SECRET "fuzz-secret-0123456789abcdefghijklmnopqrstuvwxyz"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t b64url(const unsigned char *in, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i;

    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
        out[o++] = a[(v >> 6) & 63];
        out[o++] = a[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
        out[o++] = a[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct el_jwt *j;
    static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    struct el_token_claims c;
    struct el_err err = {0};
    char *tok;
    size_t o;

    if (size < 1 || size > 8192)
        return 0;
    if (j == NULL && el_jwt_new(SECRET, &j) != 0)
        abort();
    tok = malloc(2 * size + 200);
    if (tok == NULL)
        return 0;
    if ((data[0] & 1) == 0) {
        memcpy(tok, data + 1, size - 1);
        tok[size - 1] = '\0';
    } else {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int maclen = 0;

        o = b64url((const unsigned char *)hdr, strlen(hdr), tok);
        tok[o++] = '.';
        o += b64url(data + 1, size - 1, tok + o);
        HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (unsigned char *)tok, o, mac, &maclen);
        tok[o++] = '.';
        b64url(mac, maclen, tok + o);
    }
    (void)el_jwt_verify(j, tok, EL_TOKEN_ACCESS, 1700000000, &c, &err);
    (void)el_jwt_verify(j, tok, EL_TOKEN_REFRESH, 1700000000, &c, &err);
    free(tok);
    return 0;
}
