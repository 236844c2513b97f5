/* fuzz/fcgi.c -- app/fcgi.c, the FastCGI parser, fed hostile bytes split at
 * points the input itself chooses, with every complete request answered
 * (el_fcgi_reply) the way the pool does. Small limits, so the 413/431 and
 * out_high paths are reached with small inputs. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/buf.h"
#include "fcgi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct el_fcgi_limits lim = {0};
    struct el_fcgi *f;
    struct el_buf out;
    size_t off = 1, step;

    if (size < 1)
        return 0;
    /* first byte: the write size the peer uses (0: all at once) */
    step = data[0] % 17;
    lim.params_max = 512;
    lim.params_count = 16;
    lim.body_max = 256;
    lim.drain_max = 1024;
    lim.out_high = 512;
    f = el_fcgi_new(&lim);
    el_buf_init(&out, 1u << 20);
    while (off < size && f) {
        size_t n = step && size - off > step ? step : size - off, used;
        struct el_fcgi_req *rq;
        int rc = el_fcgi_feed(f, data + off, n, &used, &out, &rq);

        off += used;
        if (rc == EL_FCGI_REQUEST) {
            size_t blen;
            const char *body = el_fcgi_body(rq, &blen);
            const char *path = el_fcgi_param(rq, "PATH_INFO");
            if (el_fcgi_reply(&out, rq, "Status: 200 OK\r\n\r\n", 18, body, blen) != 0)
                el_buf_reset(&out);
            (void)path;
            (void)el_fcgi_status(rq);
            el_fcgi_req_free(rq);
        } else if (rc == EL_FCGI_CLOSE) {
            break;
        } else if (used < n) {
            el_buf_reset(&out); /* the peer read its replies */
        }
    }
    el_buf_cleanup(&out);
    el_fcgi_free(f);
    return 0;
}
