/* listen.c -- systemd socket activation (see listen.h).
 *
 * Why socket activation: systemd holds the listening socket, not the
 * responder. Restarting the responder (a new binary, a new configuration)
 * closes nothing: connections that arrive meanwhile wait in the socket's
 * backlog and are accepted by the new process, while the old one finishes
 * what it has (SIGTERM drains). That is the zero-downtime restart. */
#include "listen.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SD_LISTEN_FDS_START 3

int el_listen_inherited(void)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    int on = 0, n;
    socklen_t len = sizeof(on);
    char *end;
    long v;

    if (pid == NULL || fds == NULL)
        return -1;
    v = strtol(pid, &end, 10);
    if (*end != '\0' || v != (long)getpid())
        return -1; /* meant for another process (our parent, say) */
    v = strtol(fds, &end, 10);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (*end != '\0' || v < 1) {
        fprintf(stderr, "elearn-fcgi: LISTEN_FDS=%s: no socket passed\n", fds);
        return -2;
    }
    n = (int)v;
    if (n > 1)
        fprintf(stderr,
                "elearn-fcgi: %d sockets passed, serving the first only "
                "(one ListenStream= per elearn@.socket)\n",
                n);
    if (getsockopt(SD_LISTEN_FDS_START, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) != 0 || !on) {
        fprintf(stderr, "elearn-fcgi: fd 3 from systemd is not a listening socket\n");
        return -2;
    }
    /* Not inherited by anything we might exec. */
    fcntl(SD_LISTEN_FDS_START, F_SETFD, FD_CLOEXEC);
    return SD_LISTEN_FDS_START;
}
