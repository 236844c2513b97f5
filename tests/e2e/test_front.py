#!/usr/bin/python3
"""test_front.py -- the FastCGI front as a client and an operator see it:
routing (404/405/413 as JSON, the static frontend), the request log (one
line per request, unforgeable), --check-config, kept-alive connections
with unread bodies, no stall with many kept-alive connections on two
workers, and SIGTERM finishing in-flight requests.

Runs on the harness's stack (harness.py); the keep-alive, stall and
SIGTERM tests start a responder of their own.
"""

import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time

from harness import (BUILD, CAN_STOP_DB, LOG_LINE, NEEDS_STOPPABLE_DB, ROOT, S, Case, main,
                     only_if, store_unavailable, unix_accepts, wait_until)


class T03Routing(Case):

    def test_unknown_path_is_404_json(self):
        for path in ('/api/nope', '/api/courses/%s/extra' % ('a' * 24), '/api/', '/api/course'):
            with self.subTest(path=path):
                self.assertJsonError(S.a.get(path), 404)

    def test_wrong_method_is_405_with_allow(self):
        cid = S.shared_ids[0]
        for path in ('/api/courses', '/api/courses/' + cid):
            with self.subTest(path=path):
                r = S.a.request('PUT', path, body=b'{}', headers={'Content-Type': 'application/json'})
                self.assertJsonError(r, 405)
                allow = [m.strip() for m in (r.header('allow') or '').split(',')]
                self.assertIn('GET', allow, r.headers)
                self.assertNotIn('PUT', allow)

    def test_body_over_1mib_is_413_json(self):
        # Under nginx's 2 MiB limit: the responder's own 413.
        r = S.a.request('POST', '/api/courses', body=b'x' * (1024 * 1024 + 1024),
                        headers={'Content-Type': 'application/json'})
        self.assertJsonError(r, 413)

    def test_body_over_2mib_is_413_json_from_nginx(self):
        r = S.a.request('POST', '/api/courses', body=b'x' * (3 * 1024 * 1024),
                        headers={'Content-Type': 'application/json'})
        self.assertJsonError(r, 413)

    def test_frontend_is_served(self):
        r = S.a.get('/')
        self.assertEqual(r.status, 200, r)
        self.assertIn(b'<html', r.body.lower())
        for f in ('/js/app.js', '/js/api.js', '/style.css'):
            with self.subTest(f=f):
                self.assertEqual(S.a.get(f).status, 200)


class T04RequestLog(Case):

    def test_one_line_per_request(self):
        cid = S.take_id()
        S.a.get('/api/courses/' + cid)
        S.a.get('/api/courses/' + cid)
        S.a.request('PUT', '/api/courses')
        want = [r'GET /courses/%s 200 MISS \d+us' % cid, r'GET /courses/%s 200 L1 \d+us' % cid,
                r'PUT /courses 405 - \d+us']

        def logged():
            lines = S.a.log_text().splitlines()
            return all(any(re.search(' %s ' % w, l) and LOG_LINE.match(l) for l in lines)
                       for w in want)
        wait_until(logged, 5, 'request log lines %s in %s' % (want, S.a.log))
        lines = [l for l in S.a.log_text().splitlines() if LOG_LINE.match(l)]
        self.assertGreater(len(lines), 10)

    def test_paths_cannot_forge_log_lines(self):
        # nginx decodes %0A and %0D in the path into PATH_INFO; the responder
        # must not log them raw, or a client can write lines of its own.
        S.a.get('/api/courses/x%0AGET%20/courses/forged%20200%20L1%201us%0D')
        S.a.get('/api/nope%0Dforged')
        after = 'GET /courses/%s 200 L1' % S.shared_ids[0]
        S.a.get('/api/courses/' + S.shared_ids[0])
        S.a.get('/api/courses/' + S.shared_ids[0])  # surely L1 now: a line to wait for
        wait_until(lambda: after in S.a.log_text(), 5, 'the request log')
        for line in re.split(r'[\r\n]', S.a.log_text()):
            # Each line is an access line or a module's message ("warm: ...").
            self.assertTrue(line == '' or re.match(r'[a-z-]+: ', line) or LOG_LINE.match(line),
                            'a request path wrote its own log line: %r' % line)


class T05Config(Case):

    def check(self, env_file=None, **over):
        argv = [os.path.join(BUILD, 'elearn-fcgi'), '--check-config']
        if env_file:
            argv[1:1] = ['--env-file', env_file]
        return subprocess.run(argv, env=S.env(**over), cwd=ROOT, capture_output=True,
                              text=True, timeout=20)

    def assertRejects(self, var, r):
        self.assertEqual(r.returncode, 2, r)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, 'one line on stderr: %r' % r.stderr)
        self.assertIn(var, lines[0])

    def test_valid(self):
        r = self.check()
        self.assertEqual(r.returncode, 0, r)

    def test_bad_values_name_the_variable(self):
        for var, val in (('JWT_SECRET', 'short'), ('JWT_SECRET', None), ('COURSE_TTL', 'abc'),
                         ('COURSE_TTL', '0'), ('COURSE_LIST_TTL', '86401'), ('WORKERS', '0'),
                         ('REDIS_TIMEOUT_MS', '5'), ('DB_TIMEOUT_MS', 'x'),
                         ('IDLE_TIMEOUT', '-1'), ('L1_MAX_BYTES', 'lots'),
                         ('DB_URI', 'postgres://nope')):
            with self.subTest(var=var, val=val):
                self.assertRejects(var, self.check(**{var: val}))

    def test_env_file(self):
        path = os.path.join(S.tmp, 'bad.env')
        with open(path, 'w') as f:
            f.write('# comment\n\nexport COURSE_TTL="abc"\n')
        self.assertRejects('COURSE_TTL', self.check(env_file=path))
        # The environment wins over the file.
        self.assertEqual(self.check(env_file=path, COURSE_TTL='60').returncode, 0)
        # The shipped example is valid (JWT_SECRET, empty there, comes from
        # the environment).
        r = self.check(env_file=os.path.join(ROOT, 'conf/elearn.env.example'))
        self.assertEqual(r.returncode, 0, r)
        self.assertRejects('JWT_SECRET', self.check(
            env_file=os.path.join(ROOT, 'conf/elearn.env.example'), JWT_SECRET=None))


class T06KeepAlive(Case):
    """A request whose body the handler never reads, then a GET on the same
    client connection -- and so on the same kept-alive nginx->responder
    connection. A responder that left the body unread would take it for the
    next request."""

    def test_unread_bodies_do_not_break_the_connection(self):
        f = S.front('keep', WORKERS=1)
        try:
            cid = S.shared_ids[1]
            c = f.conn()
            for i in range(6):
                with self.subTest(round=i):
                    r = f.request('PUT', '/api/courses/' + cid, body=b'{' * (100 * 1024), conn=c)
                    self.assertJsonError(r, 405)
                    self.assertCourse(f.get('/api/courses/' + cid, conn=c), cid)
                    r = f.request('GET', '/api/courses/' + cid, body=b'y' * 5000, conn=c)
                    self.assertCourse(r, cid)
                    r = f.request('POST', '/api/courses', body=b'z' * (1024 * 1024 + 10), conn=c)
                    self.assertJsonError(r, 413)
                    self.assertCourse(f.get('/api/courses/' + cid, conn=c), cid)
            c.close()
            bad = [l for l in f.log_text().splitlines()
                   if not LOG_LINE.match(l) and re.search(r'protocol|error|\bfail(ed|s|ure)?\b', l, re.I)]
            self.assertEqual(bad, [], 'responder log')
            self.assertEqual(f.nginx_errors(), [], 'nginx error log')
            self.assertEqual(f.stop(), 0)
        finally:
            f.stop()


class T07StallFreedom(Case):

    def test_workers_2_with_many_keepalive_connections(self):
        f = S.front('stall', WORKERS=2)
        try:
            cid = S.shared_ids[2]
            statuses = []
            errors = []
            lock = threading.Lock()

            def client(n):
                c = f.conn(timeout=20)
                got = []
                try:
                    for i in range(n):
                        path = '/api/courses/' + cid if i % 4 else '/api/courses?page_size=3'
                        got.append(f.get(path, conn=c).status)
                except Exception as e:  # noqa: BLE001 -- reported below
                    with lock:
                        errors.append(repr(e))
                finally:
                    c.close()
                with lock:
                    statuses.extend(got)

            # Round 1 leaves nginx holding many idle upstream connections;
            # round 2 must still be served by the two worker threads.
            t0 = time.monotonic()
            for rnd in range(2):
                threads = [threading.Thread(target=client, args=(25,), daemon=True)
                           for _ in range(32)]
                for t in threads:
                    t.start()
                deadline = time.monotonic() + 60
                for t in threads:
                    t.join(max(0.1, deadline - time.monotonic()))
                self.assertFalse(any(t.is_alive() for t in threads),
                                 'round %d stalled: clients still waiting after 60 s' % rnd)
            elapsed = time.monotonic() - t0
            self.assertEqual(errors, [])
            self.assertEqual(len(statuses), 2 * 32 * 25)
            self.assertEqual(set(statuses), {200})
            self.assertLess(elapsed, 60)
        finally:
            f.stop()


class T08Sigterm(Case):

    @only_if(CAN_STOP_DB, NEEDS_STOPPABLE_DB)
    def test_sigterm_finishes_in_flight_requests_and_exits_0(self):
        f = S.front('term', WORKERS=4)
        stop = threading.Event()
        statuses = []
        slow = {}

        def hammer():
            c = f.conn(timeout=10)
            try:
                while not stop.is_set():
                    try:
                        statuses.append(f.get('/api/courses/' + S.shared_ids[3], conn=c).status)
                    except (OSError, http.client.HTTPException):
                        c.close()
                        c = f.conn(timeout=10)
                        time.sleep(0.01)
            finally:
                c.close()

        def slow_request(cid):
            try:
                slow['resp'] = f.get('/api/courses/' + cid, timeout=15)
            except Exception as e:  # noqa: BLE001
                slow['error'] = repr(e)

        try:
            self.assertCourse(f.get('/api/courses/' + S.shared_ids[3]), S.shared_ids[3])
            hammers = [threading.Thread(target=hammer, daemon=True) for _ in range(3)]
            for t in hammers:
                t.start()
            wait_until(lambda: len(statuses) > 20, 10, 'requests flowing')
            # An uncached read held in flight by an unavailable store (it
            # ends with 503 at the store timeout, ~1.5 s).
            with store_unavailable():
                cid = S.take_id()
                st = threading.Thread(target=slow_request, args=(cid,), daemon=True)
                st.start()
                # In a worker thread, waiting for the store, once it holds
                # the course's fill lease in Redis (taken right before the
                # store query, lib/cache/tiered.c).
                wait_until(lambda: S.redis_has('lease:course:' + cid) or not st.is_alive(), 10,
                           'the uncached read to take its fill lease')
                self.assertTrue(st.is_alive(), 'the uncached read ended before SIGTERM: %r' % slow)
                t0 = time.monotonic()
                f.proc.send_signal(signal.SIGTERM)
                try:
                    rc = f.proc.wait(5.5)
                except subprocess.TimeoutExpired:
                    rc = None
                took = time.monotonic() - t0
                st.join(15)
            stop.set()
            for t in hammers:
                t.join(10)
            self.assertEqual(rc, 0, 'exit status after SIGTERM (None = still running after 5 s)')
            self.assertLess(took, 5.0)
            self.assertNotIn('error', slow, slow)
            self.assertIn(slow['resp'].status, (200, 503),
                          'the in-flight request must be finished, not dropped: %r' % slow)
            self.assertTrue(set(statuses) <= {200, 502}, set(statuses))
            self.assertIn(200, statuses)
            self.assertFalse(unix_accepts(f.sock), 'the socket still accepts connections')
        finally:
            stop.set()
            f.stop()


ORDER = [T03Routing, T04RequestLog, T05Config, T06KeepAlive, T07StallFreedom, T08Sigterm]

if __name__ == '__main__':
    sys.exit(main(ORDER))
