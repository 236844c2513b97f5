/* blob.h -- an immutable, reference-counted response: HTTP status, body
 * bytes and the strong ETag computed once when the blob is made.
 *
 * This is what L1 holds and what a cache hit writes to the client: a hit
 * takes a reference under a short lock, releases the lock and writes the
 * bytes -- no copy, no parse. Once made, a blob is never modified, so any
 * number of threads may read it while they hold a reference. */
#ifndef EL_BLOB_H
#define EL_BLOB_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define EL_ETAG_MAX 24 /* "\"" + 16 hex + "\"" + NUL, rounded up */

struct el_blob {
    atomic_uint refs;
    /* When these bytes were last known to be current (ms, el_now_ms): set
     * when made, moved forward when a revalidation finds them unchanged.
     * The one field that changes after creation; the bytes never do. */
    _Atomic uint64_t checked_ms;
    /* The document's revision in the store (0: not versioned). Set by the
     * maker before the blob is shared; caches refuse to replace a blob with
     * one of a lower version (tiered.h). */
    uint64_t version;
    int status;             /* 200 for a document, 404 for a cached miss */
    size_t len;             /* body length */
    char etag[EL_ETAG_MAX]; /* quoted, e.g. "\"9f86d081884c7d65\"" */
    char data[];            /* body, NUL-terminated for convenience */
};

/* Copy len bytes into a new blob with one reference (the caller's).
 * Returns NULL when out of memory. */
struct el_blob *el_blob_new(int status, const void *data, size_t len);

/* The same, with the ETag el_blob_new gave these very bytes and status
 * before (etag as it wrote it: '"' 16 hex '"'), not computed again: for
 * bytes kept elsewhere with their tag (lists.c's pages in Redis). An etag
 * of any other form is ignored and computed. */
struct el_blob *el_blob_new_tagged(int status, const void *data, size_t len, const char *etag);

/* Take another reference; returns b for chaining. b may be NULL. */
struct el_blob *el_blob_ref(struct el_blob *b);

/* Drop a reference; the last one frees the blob. b may be NULL. */
void el_blob_unref(struct el_blob *b);

/* Bytes the blob occupies in the heap (malloc_usable_size: header, body
 * and the allocator's rounding), for cache accounting. */
size_t el_blob_footprint(const struct el_blob *b);

#endif /* EL_BLOB_H */
