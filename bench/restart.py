#!/usr/bin/python3
"""restart.py -- failed requests while the responder is restarted under load,
before and after socket activation (the figures in docs/benchmarks.md).

    EL_E2E_BUILD=build /usr/bin/python3 bench/restart.py [SECONDS]

For each way of restarting, one nginx (conf/nginx.conf) in front of one
responder, wrk (2 threads, 16 connections) on a cached course plus two
threads writing courses (POST), and the responder restarted twice:

  spawn-fcgi   what README said before: SIGTERM, then spawn-fcgi again (the
               socket is removed and made anew: nothing listens meanwhile)
  held socket  what elearn@.socket does: the socket stays open outside the
               responder; SIGTERM (the old process drains), then a new one
               on the same socket (as `systemctl restart elearn@1`)

Prints a Markdown table. Uses the e2e harness (tests/e2e/harness.py) for
the servers; every process it starts is stopped by pid.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'tests', 'e2e'))

from harness import S, course_body, fetch, token_of, wait_until  # noqa: E402
from test_deploy import NginxFront, Responder, run_dir  # noqa: E402


def load(n, cid, token, seconds, restart):
    stop = threading.Event()
    ok, bad = [0], [0]

    def writer(k):
        i = 0
        while not stop.is_set():
            i += 1
            try:
                r = fetch(n.port, 'POST', '/api/courses',
                          body=json.dumps(course_body('bench-%d-%d' % (k, i))).encode(),
                          headers={'Authorization': 'Bearer ' + token,
                                   'Content-Type': 'application/json'})
                if r.status == 201:
                    ok[0] += 1
                else:
                    bad[0] += 1
            except OSError:
                bad[0] += 1
    wrk = subprocess.Popen(['wrk', '-t2', '-c16', '-d%ds' % seconds,
                            'http://127.0.0.1:%d/api/courses/%s' % (n.port, cid)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    threads = [threading.Thread(target=writer, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for when in (seconds / 3.0, seconds / 3.0):
        time.sleep(when)  # a benchmark's schedule, not a wait for a condition
        restart()
    out = wrk.communicate()[0]
    stop.set()
    for t in threads:
        t.join()
    for line in out.splitlines():
        if 'Non-2xx' in line or 'Socket errors' in line or 'Latency' in line:
            print('   ', line.strip(), file=sys.stderr)
    reqs = int(re.search(r'(\d+) requests in', out).group(1))
    non2xx = int((re.search(r'Non-2xx or 3xx responses: (\d+)', out) or [0, 0])[1])
    errs = re.search(r'Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)', out)
    sock = sum(int(x) for x in errs.groups()) if errs else 0
    return reqs, non2xx + sock, ok[0], bad[0]


def main():
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    S.configure(fronts='a', name='bench-restart')
    S.start()
    rows = []
    try:
        d = run_dir()
        cid = S.shared_ids[0]
        token = token_of('instructor')

        # before: spawn-fcgi, SIGTERM, spawn-fcgi again
        r = Responder('sf', os.path.join(d, 'sf.sock'), os.path.join(S.tmp, 'sf.log'),
                      S.env()).spawn('0660', 'www-data')
        n = NginxFront('sf', [r.sock])
        n.wait_ready('nginx sf', r.proc)

        def restart_sf():
            S.procs.stop(r.proc, timeout=15)
            r.spawn('0660', 'www-data')
        rows.append(('SIGTERM + spawn-fcgi again (before)',) + load(n, cid, token, seconds,
                                                                  restart_sf))

        # after: the socket held outside the responder
        path = os.path.join(d, 'held.sock')
        ls = socket.socket(socket.AF_UNIX)
        ls.bind(path)
        ls.listen(1024)
        cur = [Responder('held', path, os.path.join(S.tmp, 'held.log'), S.env()).activate(
            ls.fileno())]
        n2 = NginxFront('held', [path])
        n2.wait_ready('nginx held', cur[0].proc)

        def restart_held():
            S.procs.stop(cur[0].proc, timeout=15)
            cur[0] = Responder('held', path, os.path.join(S.tmp, 'held.log'),
                               S.env()).activate(ls.fileno())
        rows.append(('socket held (elearn@.socket), drain (after)',) + load(n2, cid, token,
                                                                           seconds, restart_held))
    finally:
        S.stop()
    print('| restart method (2 restarts in %d s) | reads (wrk) | failed reads | writes | '
          'failed writes |' % seconds)
    print('|---|---:|---:|---:|---:|')
    for name, reqs, fails, w, wf in rows:
        print('| %s | %d | %d | %d | %d |' % (name, reqs, fails, w, wf))


if __name__ == '__main__':
    main()
