/* fuzz/access_log.c -- what a client controls in the access log and the
 * client address: X-Forwarded-For (walked from a trusted proxy), the
 * request id, and the path and query written into the line. The input is
 * split at the first three NUL bytes into those four strings. Checks, not
 * just crashes: the line is bounded, ends with its only newline, and holds
 * no byte below 0x20 or from 0x7f up; the client address fits its buffer;
 * a request id is 1-64 characters of the id alphabet. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/forwarded.h"
#include "obs/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    char *buf = malloc(size + 4), *part[4], client[64], rid[EL_LOG_ID_LEN + 1], line[4096];
    struct el_access a = {0};
    size_t n, k = 0;

    if (buf == NULL)
        return 0;
    if (!ready) {
        struct el_err err = {0, ""};

        if (el_forwarded_setup("127.0.0.0/8, 10.0.0.0/8, ::1, fd00::/8", &err) != EL_OK)
            abort();
        ready = 1;
    }
    memcpy(buf, data, size);
    memset(buf + size, 0, 4);
    part[0] = buf;
    for (size_t i = 0; i < size && k < 3; i++)
        if (buf[i] == '\0')
            part[++k] = buf + i + 1;
    while (k < 3)
        part[++k] = buf + size; /* "" */

    el_forwarded_client("10.1.2.3", part[0], client, sizeof(client));
    if (strlen(client) >= sizeof(client))
        abort();
    {
        struct el_err err = {0, ""};
        (void)el_forwarded_check(part[0], &err);
    }
    el_log_request_id(part[1], rid);
    n = strlen(rid);
    if (n < 1 || n > EL_LOG_ID_LEN ||
        strspn(rid, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:@=+/-") != n)
        abort();

    a.wall_ms = 1764669722123;
    a.client = client;
    a.method = part[2];
    a.path = part[3];
    a.query = part[0];
    a.status = 200;
    a.layer = "L1";
    a.request_id = rid;
    n = el_log_format(&a, line, sizeof(line));
    if (n >= sizeof(line) || line[n - 1] != '\n' || memchr(line, '\n', n - 1) != NULL)
        abort();
    for (size_t i = 0; i + 1 < n; i++)
        if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] >= 0x7f)
            abort();
    free(buf);
    return 0;
}
