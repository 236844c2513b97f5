/* fuzz/course_input.c -- the JSON bodies of course writes: create, patch,
 * module patch, module create, rating (the first byte picks which). */
#include <stdint.h>
#include <string.h>

#include "model/course.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct el_err err = {0};
    const char *json;

    if (size < 1)
        return 0;
    json = (const char *)data + 1;
    size--;
    switch (data[0] % 5) {
    case 0: {
        struct el_course c;
        if (el_course_create_parse(json, size, &c, &err) == EL_OK)
            el_course_cleanup(&c);
        break;
    }
    case 1: {
        struct el_course_patch p;
        if (el_course_patch_parse(json, size, &p, &err) == EL_OK)
            el_course_patch_cleanup(&p);
        break;
    }
    case 2: {
        struct el_module_patch p;
        if (el_module_patch_parse(json, size, &p, &err) == EL_OK)
            el_module_patch_cleanup(&p);
        break;
    }
    case 3: {
        struct el_module m;
        if (el_module_create_parse(json, size, &m, &err) == EL_OK)
            el_module_cleanup(&m);
        break;
    }
    default: {
        int stars;
        (void)el_rating_parse(json, size, &stars, &err);
        break;
    }
    }
    return 0;
}
