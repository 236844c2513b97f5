/* router.c -- the routing table (see router.h). A linear scan: the table is
 * a handful of entries, and matching is a segment compare with no
 * allocation. */
#include "router.h"

#include <stdio.h>
#include <string.h>

#include "handlers.h"

struct route {
    const char *method;
    const char *pattern;
    el_handler_fn handler;
};

static const struct route routes[] = {
    {"GET", "/courses", handle_course_list},
    {"POST", "/courses", handle_course_create},
    {"GET", "/courses/{id}", handle_course_get},
    {"PATCH", "/courses/{id}", handle_course_patch},
    {"DELETE", "/courses/{id}", handle_course_delete},
    {"POST", "/courses/{id}/modules", handle_module_add},
    {"PATCH", "/courses/{id}/modules/{module_id}", handle_module_patch},
    {"DELETE", "/courses/{id}/modules/{module_id}", handle_module_delete},
    {"POST", "/courses/{id}/enroll", handle_course_enroll},
    {"DELETE", "/courses/{id}/enroll", handle_course_unenroll},
    {"PUT", "/courses/{id}/rating", handle_course_rate},
    {"GET", "/users/me/enrollments", handle_my_enrollments},
    {"GET", "/openapi.json", handle_openapi},
    {"POST", "/auth/register", handle_auth_register},
    {"POST", "/auth/login", handle_auth_login},
    {"POST", "/auth/refresh", handle_auth_refresh},
    {"DELETE", "/auth/logout", handle_auth_logout},
    {"GET", "/auth/me", handle_auth_me},
    {"GET", "/cache/stats", handle_cache_stats},
    {"DELETE", "/cache/invalidate/{course_id}", handle_cache_invalidate},
    {"GET", "/health", handle_health},
    {"GET", "/metrics", handle_metrics},
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

/* The routes that may be answered on an event thread, with their try-fast
 * handlers (router.h); every other route always goes to a worker. */
static const struct route fast_routes[] = {
    {"GET", "/courses", fast_course_list},
    {"GET", "/courses/{id}", fast_course_get},
    {"GET", "/auth/me", fast_auth_me},
};

/* Match path against pattern segment by segment; on success store the
 * {capture} segments in req->params. Captures point into a per-request copy
 * of the path (NUL-terminated segments) kept in scratch. */
static int match(const char *pattern, const char *path, struct el_request *req, char *scratch,
                 size_t scratch_len)
{
    const char *p = pattern, *s = path;
    int n = 0;
    size_t used = 0;

    while (*p && *s) {
        if (*p != '/' || *s != '/')
            return 0;
        p++;
        s++;
        if (*p == '{') {
            size_t len = strcspn(s, "/");
            if (len == 0 || n == EL_MAX_PARAMS || used + len + 1 > scratch_len)
                return 0;
            memcpy(scratch + used, s, len);
            scratch[used + len] = '\0';
            req->params[n++] = scratch + used;
            used += len + 1;
            s += len;
            p += strcspn(p, "/");
        } else {
            size_t plen = strcspn(p, "/"), slen = strcspn(s, "/");
            if (plen != slen || strncmp(p, s, plen) != 0)
                return 0;
            p += plen;
            s += slen;
        }
    }
    /* Tolerate one trailing slash on the request path. */
    if (*p == '\0' && s[0] == '/' && s[1] == '\0')
        s++;
    if (*p || *s)
        return 0;
    req->nparams = n;
    return 1;
}

/* Find req's route: its index, or -1 with the 404/405 set on res. */
static int route_of(struct el_request *req, struct el_response *res)
{
    static __thread char scratch[1024];
    char allow[64] = "";
    size_t i;

    for (i = 0; i < NROUTES; i++) {
        if (!match(routes[i].pattern, req->path, req, scratch, sizeof(scratch)))
            continue;
        if (strcmp(routes[i].method, req->method) == 0 ||
            (strcmp(req->method, "HEAD") == 0 && strcmp(routes[i].method, "GET") == 0)) {
            req->route = routes[i].pattern;
            return (int)i;
        }
        if (strstr(allow, routes[i].method) == NULL) {
            size_t used = strlen(allow);
            snprintf(allow + used, sizeof(allow) - used, "%s%s", used ? ", " : "",
                     routes[i].method);
        }
    }
    if (allow[0]) {
        memcpy(res->allow, allow, sizeof(res->allow));
        el_response_error(res, 405, "Method Not Allowed");
    } else {
        el_response_error(res, 404, "Not Found");
    }
    return -1;
}

int el_router_dispatch(struct el_request *req, struct el_response *res)
{
    int r = route_of(req, res);

    return r < 0 ? res->status : routes[r].handler(req, res);
}

int el_router_try_fast(struct el_request *req, struct el_response *res)
{
    int r = route_of(req, res);

    if (r < 0)
        return res->status;
    for (size_t i = 0; i < sizeof(fast_routes) / sizeof(fast_routes[0]); i++)
        if (strcmp(fast_routes[i].pattern, routes[r].pattern) == 0 &&
            strcmp(fast_routes[i].method, routes[r].method) == 0)
            return fast_routes[i].handler(req, res);
    return 0;
}
