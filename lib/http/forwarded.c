/* forwarded.c -- trusted proxies and the client address (see forwarded.h).
 *
 * The list is parsed once into a fixed array of networks; a lookup is a
 * few byte compares per entry, no allocation, so it is fine per request. */
#include "http/forwarded.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct net {
    int family; /* AF_INET or AF_INET6 */
    int prefix; /* bits */
    uint8_t addr[16];
};

struct nets {
    int n;
    struct net net[EL_FORWARDED_MAX];
};

/* Written once by el_forwarded_setup before the threads start. */
static struct nets trusted;

/* "a.b.c.d", "::1", "10.0.0.0/8", "fd00::/8"; an IPv4-mapped IPv6 address
 * is taken as the IPv4 address. */
static int parse_addr(const char *s, size_t len, struct net *out, int with_prefix)
{
    char buf[64], *slash;
    long prefix = -1;

    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    slash = strchr(buf, '/');
    if (slash != NULL) {
        char *end;

        if (!with_prefix || slash[1] < '0' || slash[1] > '9')
            return -1;
        prefix = strtol(slash + 1, &end, 10);
        if (*end != '\0')
            return -1;
        *slash = '\0';
    }
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        out->prefix = 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

        out->family = AF_INET6;
        out->prefix = 128;
        if (memcmp(out->addr, mapped, 12) == 0) {
            memmove(out->addr, out->addr + 12, 4);
            memset(out->addr + 4, 0, 12);
            out->family = AF_INET;
            out->prefix = 32;
            if (prefix >= 0)
                prefix -= 96;
        }
    } else {
        return -1;
    }
    if (prefix >= 0) {
        if (prefix > out->prefix)
            return -1;
        out->prefix = (int)prefix;
    }
    return 0;
}

static int parse_list(const char *list, struct nets *out, struct el_err *err)
{
    const char *p = list;

    out->n = 0;
    for (;;) {
        size_t len;

        p += strspn(p, ", \t");
        if (*p == '\0')
            return EL_OK;
        len = strcspn(p, ", \t");
        if (out->n == EL_FORWARDED_MAX)
            return el_err_set(err, EL_EINVAL, "at most %d entries", EL_FORWARDED_MAX);
        if (parse_addr(p, len, &out->net[out->n], 1) != 0)
            return el_err_set(err, EL_EINVAL, "not an address or network: %.*s",
                              (int)(len > 64 ? 64 : len), p);
        out->n++;
        p += len;
    }
}

int el_forwarded_check(const char *list, struct el_err *err)
{
    struct nets n;

    return parse_list(list, &n, err);
}

int el_forwarded_setup(const char *list, struct el_err *err)
{
    return parse_list(list, &trusted, err);
}

static int in_net(const struct net *net, const struct net *a)
{
    int full = net->prefix / 8, rest = net->prefix % 8;

    if (net->family != a->family || memcmp(net->addr, a->addr, (size_t)full) != 0)
        return 0;
    return rest == 0 || ((net->addr[full] ^ a->addr[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

static int is_trusted(const char *s, size_t len, int *valid)
{
    struct net a;

    *valid = parse_addr(s, len, &a, 0) == 0;
    if (!*valid)
        return 0;
    for (int i = 0; i < trusted.n; i++)
        if (in_net(&trusted.net[i], &a))
            return 1;
    return 0;
}

static void copy(char *out, size_t n, const char *s, size_t len)
{
    if (n == 0)
        return;
    if (len >= n)
        len = n - 1;
    memcpy(out, s, len);
    out[len] = '\0';
}

void el_forwarded_client(const char *remote_addr, const char *xff, char *out, size_t n)
{
    const char *end;
    int valid;

    if (remote_addr == NULL || *remote_addr == '\0') {
        copy(out, n, "-", 1);
        return;
    }
    copy(out, n, remote_addr, strlen(remote_addr));
    if (xff == NULL || trusted.n == 0 || !is_trusted(remote_addr, strlen(remote_addr), &valid))
        return;
    /* Walk X-Forwarded-For from the right: each trusted hop vouches for the
     * one before it. */
    end = xff + strlen(xff);
    while (end > xff) {
        const char *start = end, *s, *e;

        while (start > xff && start[-1] != ',')
            start--;
        for (s = start; s < end && (*s == ' ' || *s == '\t'); s++)
            ;
        for (e = end; e > s && (e[-1] == ' ' || e[-1] == '\t'); e--)
            ;
        if (e > s) {
            int trusted_hop = is_trusted(s, (size_t)(e - s), &valid);

            if (!valid)
                return; /* garbage: keep the last trusted hop's word */
            copy(out, n, s, (size_t)(e - s));
            if (!trusted_hop)
                return;
        }
        end = start > xff ? start - 1 : xff;
    }
}
