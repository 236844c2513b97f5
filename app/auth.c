/* auth.c -- /auth endpoints: register, login, refresh, logout, me. The
 * logic lives in lib/auth/auth.c; this file turns bodies into arguments and
 * statuses into answers. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "app.h"
#include "auth/password.h"
#include "http/form.h"
#include "handlers.h"
#include "http/json.h"
#include "core/text.h"

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

static int unauthorized(struct el_response *res, const char *detail)
{
    el_response_header(res, "WWW-Authenticate", "Bearer");
    return el_response_error(res, 401, detail);
}

int el_require_auth(const struct el_request *req, struct el_response *res, struct el_principal *p)
{
    struct el_err err = {0};
    int rc;

    rc = el_auth_authenticate(req->app->auth, req->authorization, now_s(), p, &err);
    if (rc == EL_OK)
        return 0;
    if (rc == EL_EINVAL)
        return unauthorized(res, err.msg[0] ? err.msg : "Not authenticated");
    el_response_header(res, "Retry-After", "1");
    return el_response_error(res, 503, err.msg[0] ? err.msg : "Authentication unavailable");
}

/* Answers that carry tokens or who the caller is: never stored by a
 * browser or an intermediary (RFC 6749 section 5.1). */
static void no_store(struct el_response *res)
{
    el_response_header(res, "Cache-Control", "no-store");
    el_response_header(res, "Pragma", "no-cache");
}

/* One field of the OAuth2 password form into out; 0, or the 422 answered.
 * el_form_get refuses a NUL; the value must also be UTF-8, as in JSON. */
static int form_field(const struct el_buf *body, struct el_response *res, const char *name,
                      char *out, size_t n)
{
    char msg[96];
    int rc;

    rc = el_form_get(body->data ? body->data : "", body->len, name, out, n);
    if (rc == EL_OK && !el_utf8_valid(out, strlen(out))) {
        snprintf(msg, sizeof(msg), "%s: must be valid UTF-8 without NUL characters", name);
        return el_response_error(res, 422, msg);
    }
    if (rc == EL_OK)
        return 0;
    snprintf(msg, sizeof(msg), "%s: %s", name,
             rc == EL_ENOTFOUND ? "field required" : "invalid value");
    return el_response_error(res, 422, msg);
}

static int is_form(const struct el_request *req)
{
    return req->content_type &&
           strncasecmp(req->content_type, "application/x-www-form-urlencoded", 33) == 0;
}

static int pair_json(struct el_response *res, const struct el_token_pair *tp)
{
    /* Tokens are base64url and dots: nothing to escape. */
    if (el_buf_addf(&res->body,
                    "{\"access_token\":\"%s\",\"refresh_token\":\"%s\",\"token_type\":\"bearer\","
                    "\"expires_in\":%lld}",
                    tp->access_token, tp->refresh_token, (long long)tp->expires_in) != EL_OK)
        return el_response_error(res, 503, "Server out of memory, try again");
    return 200;
}

static int auth_failure(struct el_response *res, int rc, const struct el_err *err, int retry)
{
    char ra[16];

    if (rc == EL_ELIMIT || rc == EL_EUNAVAIL) {
        snprintf(ra, sizeof(ra), "%d", retry > 0 ? retry : 1);
        el_response_header(res, "Retry-After", ra);
        return el_response_error(res, rc == EL_ELIMIT ? 429 : 503, err->msg);
    }
    return unauthorized(res, err->msg[0] ? err->msg : "Invalid credentials");
}

/* A body el_json_strings refused: the client's mistake (422, the detail
 * names the field), or ours (out of memory: 503). */
static int body_error(struct el_response *res, int rc, const struct el_err *err)
{
    if (rc == EL_ENOMEM)
        return el_response_error(res, 503, "Server out of memory, try again");
    return el_response_error(res, 422, err->msg);
}

int handle_auth_register(const struct el_request *req, struct el_response *res)
{
    const char *email, *password, *name;
    struct el_json_field f[] = {
        {"email", 1, &email}, {"password", 1, &password}, {"name", 1, &name}};
    struct el_err err = {0};
    struct el_json *doc;
    struct el_user u;
    struct el_buf body;
    int status, rc, retry = 0;

    el_buf_init(&body, EL_BODY_MAX);
    if ((status = el_request_body_or_reply(req, res, &body)) != 0)
        goto out;
    if ((rc = el_json_strings(body.data, body.len, f, 3, &doc, &err)) != EL_OK) {
        status = body_error(res, rc, &err);
        goto out;
    }
    rc =
        el_auth_register(req->app->auth, email, password, name, req->remote_addr, &u, &retry, &err);
    el_json_free(doc);
    if (rc == EL_EINVAL)
        status = el_response_error(res, 422, err.msg);
    else if (rc == EL_ECONFLICT)
        status = el_response_error(res, 409, err.msg);
    else if (rc == EL_ELIMIT || rc == EL_EUNAVAIL)
        status = auth_failure(res, rc, &err, retry);
    else if (rc != EL_OK)
        status = el_response_error(res, 503, err.msg[0] ? err.msg : "Service unavailable");
    else {
        status = el_user_to_json(&u, &res->body) == EL_OK
                     ? 201
                     : el_response_error(res, 503, "Server out of memory, try again");
        el_user_cleanup(&u);
    }
out:
    el_buf_cleanup(&body);
    return status;
}

int handle_auth_login(const struct el_request *req, struct el_response *res)
{
    char femail[EL_EMAIL_MAX * 3 + 1], fpass[EL_PASSWORD_MAX + 1];
    const char *email = NULL, *password = NULL;
    struct el_json_field f[] = {{"email", 1, &email}, {"password", 1, &password}};
    struct el_json *doc = NULL;
    struct el_err err = {0};
    struct el_token_pair tp;
    struct el_buf body;
    int status, rc, retry = 0;

    no_store(res);
    el_buf_init(&body, EL_BODY_MAX);
    if ((status = el_request_body_or_reply(req, res, &body)) != 0)
        goto out;
    if (is_form(req)) {
        /* The OAuth2 password form: username is the email. */
        if ((status = form_field(&body, res, "username", femail, sizeof(femail))) != 0 ||
            (status = form_field(&body, res, "password", fpass, sizeof(fpass))) != 0)
            goto out;
        email = femail;
        password = fpass;
    } else if ((rc = el_json_strings(body.data, body.len, f, 2, &doc, &err)) != EL_OK) {
        status = body_error(res, rc, &err);
        goto out;
    }
    rc = el_auth_login(req->app->auth, email, password, req->remote_addr, now_s(), &tp, &retry,
                       &err);
    status = rc == EL_OK ? pair_json(res, &tp) : auth_failure(res, rc, &err, retry);
out:
    el_json_free(doc);
    el_buf_cleanup(&body);
    return status;
}

int handle_auth_refresh(const struct el_request *req, struct el_response *res)
{
    const char *token;
    struct el_json_field f[] = {{"refresh_token", 1, &token}};
    struct el_json *doc = NULL;
    struct el_err err = {0};
    struct el_token_pair tp;
    struct el_buf body;
    int status, rc;

    no_store(res);
    el_buf_init(&body, EL_BODY_MAX);
    if ((status = el_request_body_or_reply(req, res, &body)) != 0)
        goto out;
    if ((rc = el_json_strings(body.data, body.len, f, 1, &doc, &err)) != EL_OK) {
        status = body_error(res, rc, &err);
        goto out;
    }
    rc = el_auth_refresh(req->app->auth, token, now_s(), &tp, &err);
    status = rc == EL_OK ? pair_json(res, &tp) : auth_failure(res, rc, &err, 1);
out:
    el_json_free(doc);
    el_buf_cleanup(&body);
    return status;
}

int handle_auth_logout(const struct el_request *req, struct el_response *res)
{
    struct el_principal p;
    int status;

    no_store(res);
    if ((status = el_require_auth(req, res, &p)) != 0)
        return status;
    if (el_auth_logout(req->app->auth, &p, now_s()) != EL_OK) {
        el_response_header(res, "Retry-After", "1");
        return el_response_error(res, 503, "Database unavailable, try again shortly");
    }
    if (el_buf_adds(&res->body, "{\"message\":\"Logged out successfully\"}") != EL_OK)
        return el_response_error(res, 503, "Server out of memory, try again");
    return 200;
}

/* The 200 of /auth/me for p, the same from a worker and an event thread. */
static int me_answer(struct el_response *res, struct el_principal *p)
{
    struct el_user u;

    memset(&u, 0, sizeof(u));
    memcpy(u.id, p->id, sizeof(u.id));
    memcpy(u.role, p->role, sizeof(u.role));
    u.email = p->email;
    u.name = p->name;
    /* u borrows p's strings: serialise, never el_user_cleanup. */
    if (el_user_to_json(&u, &res->body) != EL_OK)
        return el_response_error(res, 503, "Server out of memory, try again");
    return 200;
}

int handle_auth_me(const struct el_request *req, struct el_response *res)
{
    struct el_principal p;
    int status;

    no_store(res);
    if ((status = el_require_auth(req, res, &p)) != 0)
        return status;
    return me_answer(res, &p);
}

/* On an event thread: only the success the local state can vouch for (no
 * I/O, see el_auth_check_local); every refusal -- 401, 503 -- and every
 * case that needs Redis or the store is the worker's, so those answers
 * have one source. An out-of-memory 503 from me_answer is what the worker
 * would answer too. */
int fast_auth_me(const struct el_request *req, struct el_response *res)
{
    struct el_principal p;

    if (el_auth_check_local(req->app->auth, req->authorization, now_s(), &p) != EL_OK)
        return 0;
    no_store(res);
    return me_answer(res, &p);
}
