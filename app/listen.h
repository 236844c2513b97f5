/* listen.h -- a listening socket handed over by systemd socket activation. */
#ifndef EL_LISTEN_H
#define EL_LISTEN_H

/* The sd_listen_fds(3) protocol without libsystemd: when LISTEN_PID is our
 * pid and LISTEN_FDS >= 1, fd 3 is the listening socket systemd opened for
 * us (elearn@.socket). Returns it (after checking it is a listening
 * socket, and unsetting LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES so children
 * do not take it for theirs), -1 when nothing was passed, -2 when what was
 * passed is unusable (message on stderr). */
int el_listen_inherited(void);

#endif /* EL_LISTEN_H */
