/* oid.h -- MongoDB ObjectIds in hex, the ids of every course, module and
 * user in either store: the one place they are checked and made. */
#ifndef EL_OID_H
#define EL_OID_H

#define EL_OID_HEX 25 /* 24 hex digits + NUL */

/* 1 if s is exactly 24 lowercase or uppercase hex digits (a MongoDB
 * ObjectId in hex), else 0. */
int el_oid_valid(const char *s);

/* A fresh ObjectId-style id in hex: 4-byte time, 5 random bytes, 3-byte
 * counter, as MongoDB makes them. Thread-safe. */
void el_oid_new(char out[EL_OID_HEX]);

#endif /* EL_OID_H */
