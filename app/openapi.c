/* openapi.c -- GET /openapi.json: the OpenAPI 3.1 document of this API.
 *
 * The document is docs/openapi.json, written by hand next to the code and
 * checked against the router both ways by tests/e2e/test_openapi.py. It is
 * built into the binary (.incbin), so the responder serves exactly the
 * document of its own version and needs no file at run time. */
#include <string.h>

#include "handlers.h"

__asm__(".section .rodata\n"
        ".global el_openapi_doc\n"
        ".type el_openapi_doc, @object\n"
        "el_openapi_doc:\n"
        ".incbin \"docs/openapi.json\"\n"
        ".global el_openapi_end\n"
        "el_openapi_end:\n"
        ".byte 0\n"
        ".previous\n");

extern const char el_openapi_doc[];
extern const char el_openapi_end[];

int handle_openapi(const struct el_request *req, struct el_response *res)
{
    (void)req;
    /* The two symbols bound one object the linker made (ld -r -b binary). */
    // cppcheck-suppress comparePointers
    if (el_buf_add(&res->body, el_openapi_doc, (size_t)(el_openapi_end - el_openapi_doc)) != EL_OK)
        return el_response_error(res, 503, "Server out of memory, try again");
    el_response_header(res, "Cache-Control", "public, max-age=300");
    return 200;
}
