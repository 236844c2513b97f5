/* testing.h -- what the auth layer exposes to its tests only. Included by
 * tests/ and by the auth modules that define these; never by the program
 * (scripts/check-layers.sh refuses it elsewhere). */
#ifndef EL_AUTH_TESTING_H
#define EL_AUTH_TESTING_H

/* The password gate, each read at the moment of the call: callers inside
 * it -- hashing plus waiting for a slot, at most 2 * slots -- and of those
 * the ones waiting; for tests that must know the gate is full. */
int el_password_inflight(void);
int el_password_waiting(void);

#endif /* EL_AUTH_TESTING_H */
