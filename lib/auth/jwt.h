/* jwt.h -- access and refresh tokens: HS256 JWTs through libjwt, with every
 * claim check done here (libjwt 1.10 has no validation of its own).
 *
 * Rules, in the order they are applied to a presented token:
 *  1. at most EL_JWT_MAX bytes, three base64url parts;
 *  2. the header must name HS256 -- checked before anything else is read
 *     from the token, because jwt_decode() takes the algorithm from the token
 *     itself (alg "none" would decode unsigned);
 *  3. the signature must verify with the configured secret (never an empty
 *     key: with one, libjwt accepts unsigned tokens);
 *  4. claims: iss == "elearn", typ == the expected type, sub/jti/sid present
 *     and well-formed, iat <= now + 60 s (clock skew), exp > now, role one of
 *     student|instructor|admin.
 * The clock is a parameter, so tests can mint and check expired tokens
 * without sleeping. */
#ifndef EL_JWT_H
#define EL_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "core/el.h"
#include "model/user.h" /* EL_ROLE_MAX */

#define EL_JWT_MAX 2048 /* longest token accepted, bytes */
#define EL_JTI_LEN 33   /* 128-bit random id as 32 hex + NUL */

enum el_token_type { EL_TOKEN_ACCESS, EL_TOKEN_REFRESH };

struct el_token_claims {
    char sub[25];           /* user id (24 hex) */
    char role[EL_ROLE_MAX]; /* student | instructor | admin */
    char jti[EL_JTI_LEN];   /* this token's id */
    char sid[EL_JTI_LEN];   /* the login ("session family") it descends from */
    enum el_token_type typ;
    int64_t iat; /* seconds since the epoch */
    int64_t exp;
};

struct el_jwt;

/* secret must be at least 32 bytes (config.c enforces it); copied. */
int el_jwt_new(const char *secret, struct el_jwt **out) EL_WUR;
void el_jwt_free(struct el_jwt *j);

/* Mint a token for c (c->jti must be set; see el_jwt_new_id), valid from
 * now_s for ttl_s seconds (c->iat and c->exp are set from them). Appends the
 * compact token to a NUL-terminated string in out (size n). */
int el_jwt_issue(struct el_jwt *j, struct el_token_claims *c, int64_t now_s, int64_t ttl_s,
                 char *out, size_t n) EL_WUR;

/* Verify token as type want at time now_s. 0 and *c filled, or EL_EINVAL
 * with a short reason in err->msg fit for a 401 detail ("Token expired",
 * "Invalid token", ...). */
int el_jwt_verify(struct el_jwt *j, const char *token, enum el_token_type want, int64_t now_s,
                  struct el_token_claims *c, struct el_err *err) EL_WUR;

/* 128 random bits as 32 lowercase hex digits (getrandom). */
void el_jwt_new_id(char out[EL_JTI_LEN]);

/* 1 for student, instructor, admin. */
int el_role_valid(const char *role);

#endif /* EL_JWT_H */
