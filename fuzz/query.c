/* fuzz/query.c -- the course list query string (GET /courses?...), parsed
 * and digested as both the fast path and the handler do. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/course.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct el_course_query q;
    struct el_err err = {0};
    char digest[41];
    char *qs = malloc(size + 1);

    if (qs == NULL)
        return 0;
    memcpy(qs, data, size);
    qs[size] = '\0';
    if (el_course_query_parse(qs, &q, &err) == EL_OK)
        el_course_query_digest(&q, digest);
    free(qs);
    return 0;
}
