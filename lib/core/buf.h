/* buf.h -- one growable byte buffer with a mandatory size cap (after curl's
 * dynbuf). Every string and JSON body elearn builds goes through it.
 *
 * The buffer is always NUL-terminated (data[len] == 0) once anything has been
 * appended. A failed append (cap exceeded: EL_ETOOBIG, out of memory:
 * EL_ENOMEM) frees the contents and leaves the buffer empty, so a caller
 * that ignores a status cannot go on with half a document; the next append
 * fails too, with the same code, until el_buf_reset(). */
#ifndef EL_BUF_H
#define EL_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "core/el.h"

struct el_buf {
    char *data; /* NULL until the first append */
    size_t len; /* bytes used, excluding the terminating NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* hard cap on len */
    int failed; /* 0, or the code of the append that failed; see above */
};

/* Initialise caller storage with cap max (bytes of content). */
void el_buf_init(struct el_buf *b, size_t max);
/* Free the contents; the buffer can be reused after el_buf_init(). */
void el_buf_cleanup(struct el_buf *b);
/* Empty the buffer, keep the allocation and clear a failure. */
void el_buf_reset(struct el_buf *b);

int el_buf_add(struct el_buf *b, const void *data, size_t len) EL_WUR;
int el_buf_adds(struct el_buf *b, const char *s) EL_WUR;
int el_buf_addf(struct el_buf *b, const char *fmt, ...) EL_WUR
    __attribute__((format(printf, 2, 3)));
int el_buf_vaddf(struct el_buf *b, const char *fmt, va_list ap) EL_WUR;

/* Hand the contents over: returns the heap string (caller frees with free())
 * and its length in *len; the buffer is left empty. NULL when empty. */
char *el_buf_take(struct el_buf *b, size_t *len);

#endif /* EL_BUF_H */
