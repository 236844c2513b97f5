/* libjwt.h -- reach the system's <jwt.h> (libjwt), which our own lib/jwt.h
 * shadows: the build puts lib/ first on the include path (-Ilib), so a plain
 * #include <jwt.h> finds ours. Include this one as <libjwt.h>; #include_next
 * then resumes the search after lib/ and finds libjwt's header. Only
 * lib/jwt.c and its tests need it: no libjwt type appears in lib/jwt.h. */
#ifndef EL_LIBJWT_H
#define EL_LIBJWT_H

#include_next <jwt.h>

#endif /* EL_LIBJWT_H */
