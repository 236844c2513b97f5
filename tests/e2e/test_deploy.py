#!/usr/bin/python3
"""test_deploy.py -- elearn deployed as an operator deploys it (issue 11):

  T01 nginx as shipped, non-root: workers run as www-data, the responder's
      socket is group www-data mode 0660; nginx serves, another user cannot
      connect; /api/health, /api/metrics, /api/cache/stats only from
      loopback; per-process /metrics/NAME; `promtool check metrics`; the
      request id is nginx's $request_id, in the header and the log.
  T02 logs: the access line's fields, X-Forwarded-For only from
      TRUSTED_PROXIES, LOG_FILE reopened on SIGHUP (logrotate), SIGHUP
      never kills, ACCESS_LOG=off.
  T03 configuration: --check-config --connect (one line per check),
      unknown env-file keys, a relative sqlite path under DATA_DIR.
  T04 socket activation and zero-downtime restarts: the responder takes its
      listening socket as fd 3 (LISTEN_FDS/LISTEN_PID, as systemd passes
      it); under wrk load on a cached course and a stream of course writes,
      the responder is replaced twice the way `systemctl restart
      elearn@N` does it (SIGTERM, wait, start again on the same held
      socket): no failed request, no lost write.

SQLite only: nothing here depends on the store.
"""

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

from harness import (BUILD, PY, ROOT, S, Case, _Http, _child_setup, course_body, fetch, main,
                     read_text, scaled, start_nginx, tail, token_of, wait_until)

STORES = ('sqlite',)

WWW_DATA = 33  # uid and gid of www-data on Debian


def run_dir():
    """S.tmp/run: sockets that nginx's www-data workers must reach. mkdtemp
    made S.tmp 0700; they need to traverse it (not list it)."""
    os.chmod(S.tmp, 0o711)
    d = os.path.join(S.tmp, 'run')
    os.makedirs(d, mode=0o755, exist_ok=True)
    return d


def connect_as(uid, gid, path):
    """Try to connect to a unix socket as another user; returns 'ok' or the
    errno name."""
    code = ('import socket,sys,errno\n'
            's=socket.socket(socket.AF_UNIX)\n'
            'try:\n s.connect(sys.argv[1]); print("ok")\n'
            'except OSError as e: print(errno.errorcode[e.errno])\n')
    r = subprocess.run(['setpriv', '--reuid=%d' % uid, '--regid=%d' % gid, '--clear-groups',
                        PY, '-c', code, path], capture_output=True, text=True, timeout=scaled(10))
    return r.stdout.strip() or r.stderr.strip()


def children_uids(pid):
    """uids of the processes whose parent is pid."""
    out = []
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open('/proc/%s/status' % d) as f:
                st = f.read()
        except OSError:
            continue
        if re.search(r'^PPid:\s+%d$' % pid, st, re.M):
            out.append(int(re.search(r'^Uid:\s+(\d+)', st, re.M).group(1)))
    return out


class Responder:
    """A responder of this suite's own: under spawn-fcgi (socket mode and
    group as given), or socket-activated on a socket held by the test."""

    def __init__(self, name, sock, log, env):
        self.name, self.sock, self.log, self.env, self.proc = name, sock, log, env, None

    def spawn(self, mode='0660', group='www-data'):
        try:
            os.unlink(self.sock)
        except FileNotFoundError:
            pass
        self.proc = S.procs.start('responder ' + self.name,
                                  ['spawn-fcgi', '-n', '-s', self.sock, '-M', mode, '-G', group,
                                   '--', os.path.join(BUILD, 'elearn-fcgi')],
                                  env=self.env, log=self.log)
        wait_until(lambda: os.path.exists(self.sock) or self.proc.poll() is not None, 10,
                   'socket ' + self.sock)
        if self.proc.poll() is not None:
            raise RuntimeError('responder %s exited:\n%s' % (self.name, tail(self.log)))
        return self

    def activate(self, listen_fd):
        """What systemd does for elearn@N.service: fd 3 is the listening
        socket, LISTEN_FDS=1, LISTEN_PID = the pid that runs the responder
        (the launcher execs it, keeping its pid)."""
        launcher = ('import os,sys\n'
                    'os.dup2(int(sys.argv[1]), 3)\n'
                    'os.environ["LISTEN_FDS"] = "1"\n'
                    'os.environ["LISTEN_PID"] = str(os.getpid())\n'
                    'os.execv(sys.argv[2], sys.argv[2:])\n')
        out = open(self.log, 'ab')
        try:
            p = subprocess.Popen([PY, '-c', launcher, str(listen_fd),
                                  os.path.join(BUILD, 'elearn-fcgi')],
                                 env=self.env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, pass_fds=(listen_fd,),
                                 preexec_fn=_child_setup)
        finally:
            out.close()
        with S.procs.lock:
            S.procs.live.append(('responder ' + self.name, p))
        self.proc = p
        return self

    def log_text(self):
        return read_text(self.log)

    def access_lines(self):
        return [l for l in self.log_text().splitlines() if re.match(r'^\d{4}-\d\d-\d\dT', l)]


class NginxFront(_Http):
    """nginx rendered from conf/nginx.conf over the given sockets; user:
    its workers' "user group"."""

    def __init__(self, name, sockets, user=None):
        self.name = name
        self.port, self.prefix, self.nginx = start_nginx(S, name, sockets, user=user)


def get_from(port, path, src, headers=None):
    """GET from a client address of our own (127.x.y.z)."""
    import http.client
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=scaled(15), source_address=(src, 0))
    try:
        return fetch(port, 'GET', path, headers=headers, conn=c)
    finally:
        c.close()


# --------------------------------------------------------------------------

class T01NginxAsWwwData(Case):
    """conf/nginx.conf with its workers as www-data and the socket as the
    systemd unit makes it (group www-data, 0660)."""

    @classmethod
    def setUpClass(cls):
        d = run_dir()
        cls.r = Responder('www', os.path.join(d, 'www.sock'), os.path.join(S.tmp, 'www.log'),
                          S.env(INSTANCE='deploy-www')).spawn('0660', 'www-data')
        cls.n = NginxFront('www', [cls.r.sock], user='www-data www-data')
        cls.n.wait_ready('nginx (www-data) -> responder www', cls.r.proc)

    def test_workers_are_www_data_and_serve(self):
        uids = children_uids(self.n.nginx.pid)
        self.assertTrue(uids, 'nginx has no worker processes')
        self.assertEqual(set(uids), {WWW_DATA}, 'nginx workers run as www-data')
        cid = S.shared_ids[0]
        r = self.n.get('/api/courses/' + cid)
        self.assertCourse(r, cid)

    def test_socket_is_www_data_0660_and_closed_to_others(self):
        st = os.stat(self.r.sock)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        self.assertEqual(st.st_gid, WWW_DATA)
        self.assertEqual(connect_as(WWW_DATA, WWW_DATA, self.r.sock), 'ok')
        self.assertEqual(connect_as(65534, 65534, self.r.sock), 'EACCES')  # nobody

    def test_operational_endpoints_loopback_only(self):
        for path in ('/api/health', '/api/metrics', '/api/cache/stats'):
            with self.subTest(path=path):
                r = get_from(self.n.port, path, '127.0.0.1')
                self.assertIn(r.status, (200, 401), r)  # cache/stats: admin token still needed
                r = get_from(self.n.port, path, '127.0.0.9')
                self.assertJsonError(r, 403, 'allowed from configured addresses')
                self.assertEqual(r.header('content-type'), 'application/json')
        # The API itself is for everyone.
        self.assertEqual(get_from(self.n.port, '/api/courses?page_size=1', '127.0.0.9').status, 200)

    def test_metrics_pass_promtool_and_name_the_process(self):
        self.n.get('/api/courses/' + S.shared_ids[0])
        self.n.get('/api/courses/nope')
        r = self.n.get('/api/metrics')
        self.assertEqual(r.status, 200, r)
        text = r.body.decode()
        p = subprocess.run(['promtool', 'check', 'metrics'], input=text, capture_output=True,
                           text=True, timeout=scaled(30))
        self.assertEqual(p.returncode, 0, 'promtool check metrics:\n%s%s' % (p.stdout, p.stderr))
        self.assertIn('elearn_instance_info{elearn_instance="deploy-www",pid="%d"} 1'
                      % self.r.proc.pid, text)
        self.assertRegex(text, r'elearn_build_info\{version="[^"]+",commit="[^"]+"\} 1')
        self.assertRegex(text, r'process_start_time_seconds \d{10}\.\d{3}')
        self.assertRegex(text, r'elearn_requests_total\{route="/courses/\{id\}",method="GET",'
                               r'code="2xx"\} [1-9]')
        self.assertRegex(text, r'elearn_requests_total\{route="/courses/\{id\}",method="GET",'
                               r'code="4xx"\} [1-9]')

    def test_per_process_metrics(self):
        r = self.n.get('/metrics/www')
        self.assertEqual(r.status, 200, r)
        self.assertIn('elearn_instance="deploy-www"', r.body.decode())
        self.assertJsonError(self.n.get('/metrics/nosuch'), 502)
        self.assertJsonError(get_from(self.n.port, '/metrics/www', '127.0.0.9'), 403)

    def test_request_id_is_nginx_and_logged(self):
        r = self.n.get('/api/courses/' + S.shared_ids[1])
        rid = r.header('x-request-id')
        self.assertRegex(rid or '', r'^[0-9a-f]{32}$')
        wait_until(lambda: any(l.endswith(' ' + rid) for l in self.r.access_lines()), 5,
                   'the access line with request id ' + rid)


class T02Logs(Case):

    @classmethod
    def setUpClass(cls):
        cls.logfile = os.path.join(S.tmp, 'logs', 'access.log')
        os.makedirs(os.path.dirname(cls.logfile), exist_ok=True)
        cls.f = S.front('logs', LOG_FILE=cls.logfile, TRUSTED_PROXIES='127.0.0.1, ::1')

    def lines(self, path=None):
        return read_text(path or self.logfile).splitlines()

    def line_of(self, rid, path=None):
        return wait_until(lambda: next((l for l in self.lines(path) if l.endswith(' ' + rid)),
                                       None), 5, 'the access line of request ' + rid)

    def test_fields(self):
        path = '/api/courses?page_size=3&search=a%20b&sort_by=popular'
        r = self.f.get(path, headers={'X-Forwarded-For': '198.51.100.1, 203.0.113.9'})
        self.assertEqual(r.status, 200, r)
        rid = r.header('x-request-id')
        line = self.line_of(rid)
        m = re.match(r'^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z (\S+) (\S+) (\S+) (\d{3}) (\S+) '
                     r'(\d+)us (\d+)B (\S+)$', line)
        self.assertTrue(m, line)
        ts = time.mktime(time.strptime(m.group(1)[:19], '%Y-%m-%dT%H:%M:%S')) - time.timezone
        self.assertLess(abs(ts - time.time()), 120, 'a UTC timestamp: %s' % line)
        self.assertEqual(m.group(2), '203.0.113.9')  # from a trusted proxy (nginx on loopback)
        self.assertEqual(m.group(3), 'GET')
        self.assertEqual(m.group(4), '/courses?page_size=3&search=a%20b&sort_by=popular')
        self.assertEqual(m.group(5), '200')
        self.assertIn(m.group(6), ('MISS', 'L1', 'L2'))
        self.assertEqual(int(m.group(8)), len(r.body))
        self.assertEqual(m.group(9), rid)

    def test_forwarded_for_ignored_without_trust(self):
        f = S.front('logs-untrusted')
        try:
            r = f.get('/api/courses?page_size=1', headers={'X-Forwarded-For': '203.0.113.9'})
            rid = r.header('x-request-id')
            line = wait_until(lambda: next((l for l in f.log_text().splitlines()
                                            if l.endswith(' ' + rid)), None), 5, 'the line')
            self.assertEqual(line.split(' ')[1], '127.0.0.1', line)
        finally:
            f.stop()

    def test_sighup_reopens_the_log_and_never_kills(self):
        r = self.f.get('/api/courses?page_size=2')
        before = r.header('x-request-id')
        self.line_of(before)
        rotated = self.logfile + '.1'
        os.rename(self.logfile, rotated)  # what logrotate does ...
        for _ in range(3):  # ... then postrotate's SIGHUP (more than once: never fatal)
            os.kill(self.f.proc.pid, signal.SIGHUP)
        wait_until(lambda: os.path.exists(self.logfile), 5, 'the responder to reopen LOG_FILE')
        self.assertIsNone(self.f.proc.poll(), 'SIGHUP ended the responder')
        r = self.f.get('/api/courses?page_size=2')
        self.assertEqual(r.status, 200, r)
        after = r.header('x-request-id')
        self.line_of(after)
        self.assertTrue(any(l.endswith(' ' + before) for l in self.lines(rotated)))
        self.assertFalse(any(l.endswith(' ' + after) for l in self.lines(rotated)))
        self.assertIn('SIGHUP received', read_text(self.logfile))
        self.assertIsNone(self.f.proc.poll())

    def test_access_log_off(self):
        logfile = os.path.join(S.tmp, 'logs', 'quiet.log')
        f = S.front('quiet', LOG_FILE=logfile, ACCESS_LOG='off')
        try:
            for _ in range(3):
                self.assertEqual(f.get('/api/courses?page_size=1').status, 200)
            text = read_text(logfile)
            self.assertIn('elearn-fcgi: pid', text)  # start-up lines stay
            self.assertNotRegex(text, r'(?m)^\d{4}-\d\d-\d\dT', 'no access lines')
        finally:
            self.assertEqual(f.stop(), 0)


class T03Config(Case):

    def check(self, *args, env_file=None, **over):
        argv = [os.path.join(BUILD, 'elearn-fcgi'), '--check-config'] + list(args)
        if env_file:
            argv += ['--env-file', env_file]
        return subprocess.run(argv, env=S.env(**over), cwd=ROOT, capture_output=True, text=True,
                              timeout=scaled(30))

    def test_connect_all_ok(self):
        r = self.check('--connect')
        self.assertEqual(r.returncode, 0, r)
        lines = r.stdout.strip().splitlines()
        for want in ('store reachable', 'store writable', 'store version: SQLite',
                     'redis redis://127.0.0.1', 'redis writable', 'redis version: Redis'):
            self.assertTrue(any(l.startswith('ok ') and want in l for l in lines),
                            '%r in %r' % (want, lines))

    def test_connect_reports_each_failure(self):
        dead = socket.socket()
        dead.bind(('127.0.0.1', 0))  # bound, not listening: connection refused
        try:
            r = self.check('--connect', REDIS_URL='redis://127.0.0.1:%d/0' % dead.getsockname()[1],
                           REDIS_TIMEOUT_MS='200')
        finally:
            dead.close()
        self.assertEqual(r.returncode, 1, r)
        self.assertRegex(r.stdout, r'(?m)^FAIL redis redis://127\.0\.0\.1:\d+/0 reachable')
        self.assertRegex(r.stdout, r'(?m)^ok   store writable')  # the store still checked
        r = self.check('--connect', DB_URI='sqlite:/proc/elearn-nope/x.db')
        self.assertEqual(r.returncode, 1, r)
        self.assertRegex(r.stdout, r'(?m)^FAIL store sqlite:/proc/elearn-nope/x\.db')

    def test_unknown_key_names_the_closest(self):
        path = os.path.join(S.tmp, 'typo.env')
        with open(path, 'w') as f:
            f.write('# settings\nCOURSE_TTL=60\nWORKER=8\n')
        r = self.check(env_file=path)
        self.assertEqual(r.returncode, 2, r)
        self.assertEqual(r.stderr.strip(),
                         'elearn-fcgi: WORKER: unknown variable in %s:3 (did you mean WORKERS?)'
                         % path)

    def test_relative_sqlite_path_under_data_dir(self):
        data = os.path.join(S.tmp, 'data')
        os.makedirs(os.path.join(data, 'sub'), exist_ok=True)
        # elearnctl resolves it the same way: it seeds the file the
        # responder will open, whatever its working directory.
        r = subprocess.run([os.path.join(BUILD, 'elearnctl'), 'seed', '--courses', '2'],
                           env=S.env(DB_URI='sqlite:sub/rel.db', DATA_DIR=data, REDIS_URL=''),
                           cwd='/', capture_output=True, text=True, timeout=scaled(60))
        self.assertEqual(r.returncode, 0, r)
        self.assertTrue(os.path.getsize(os.path.join(data, 'sub', 'rel.db')) > 0)
        r = self.check('--connect', DB_URI='sqlite:sub/rel.db', DATA_DIR=data, REDIS_URL='')
        self.assertEqual(r.returncode, 0, r)
        self.assertIn('DB_URI sqlite:sub/rel.db is sqlite:%s/sub/rel.db' % data, r.stdout)
        self.assertTrue(os.path.exists(os.path.join(data, 'sub', 'rel.db')))


class T04SocketActivation(Case):
    """The listening socket is held outside the responder (systemd's
    elearn@N.socket; here this test holds it) and passed as fd 3."""

    @classmethod
    def setUpClass(cls):
        d = run_dir()
        cls.path = os.path.join(d, 'act.sock')
        cls.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        cls.listener.bind(cls.path)
        os.chmod(cls.path, 0o660)
        cls.listener.listen(1024)
        cls.gen = 0
        cls.current = cls.start_one()
        cls.n = NginxFront('act', [cls.path])
        cls.n.wait_ready('nginx -> socket-activated responder', cls.current.proc)

    @classmethod
    def tearDownClass(cls):
        cls.listener.close()

    @classmethod
    def start_one(cls):
        cls.gen += 1
        return Responder('act%d' % cls.gen, cls.path,
                         os.path.join(S.tmp, 'act%d.log' % cls.gen),
                         S.env(INSTANCE='act%d' % cls.gen, WORKERS='4')).activate(
                             cls.listener.fileno())

    @classmethod
    def restart(cls):
        """systemctl restart elearn@N: SIGTERM, wait for the exit, start a
        new process on the same (held) socket."""
        old = cls.current
        rc = S.procs.stop(old.proc, timeout=15)
        if rc != 0:
            raise AssertionError('the old responder exited %s:\n%s' % (rc, tail(old.log)))
        cls.current = cls.start_one()
        return old

    def test_serves_on_the_inherited_socket(self):
        r = self.n.get('/metrics/act')
        self.assertEqual(r.status, 200, r)
        self.assertIn('elearn_instance="act%d"' % self.gen, r.body.decode())
        self.assertIsNone(self.current.proc.poll())

    def test_sockets_not_meant_for_us_are_refused(self):
        exe = os.path.join(BUILD, 'elearn-fcgi')
        # LISTEN_PID names another process (a parent that got them): not
        # ours; with no --listen and no socket on fd 0 that is an error.
        r = subprocess.run([exe], env=S.env(LISTEN_FDS='1', LISTEN_PID='1'),
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=scaled(30))
        self.assertEqual(r.returncode, 1, r)
        self.assertIn('fd 0 is not a listening socket', r.stderr)
        # Ours, but fd 3 is no listening socket.
        path = os.path.join(S.tmp, 'not-a-socket')
        with open(path, 'w') as f:
            f.write('x')
        fd = os.open(path, os.O_RDONLY)
        try:
            log = os.path.join(S.tmp, 'act-bad.log')
            p = Responder('act-bad', path, log, S.env()).activate(fd).proc
            self.assertEqual(p.wait(scaled(30)), 1)
            self.assertIn('fd 3 from systemd is not a listening socket', read_text(log))
        finally:
            os.close(fd)

    def test_two_restarts_under_load_lose_nothing(self):
        cid = S.shared_ids[2]
        self.assertEqual(self.n.get('/api/courses/' + cid).status, 200)
        token = token_of('instructor')
        stop = threading.Event()
        writes, failures = [], []

        def writer(k):
            c = None
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    c = c or self.n_conn()
                    r = fetch(self.n.port, 'POST', '/api/courses',
                              body=json.dumps(course_body('restart-%d-%d' % (k, i))).encode(),
                              headers={'Authorization': 'Bearer ' + token,
                                       'Content-Type': 'application/json'}, conn=c)
                    if r.status == 201:
                        writes.append(r.json()['_id'])
                    else:
                        failures.append(r)
                except OSError as e:
                    failures.append(e)
                    c = None
        threads = [threading.Thread(target=writer, args=(k,)) for k in range(2)]
        wrk = subprocess.Popen(['wrk', '-t2', '-c16', '-d120s',
                                'http://127.0.0.1:%d/api/courses/%s' % (self.n.port, cid)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            for t in threads:
                t.start()
            served = []
            for round_ in range(2):
                cur = self.current
                # Under load on this process (reads and writes) ...
                wait_until(lambda: len(cur.access_lines()) > 200 and len(writes) > 5 * (round_ + 1),
                           30, 'load on responder %s' % cur.name, interval=0.05)
                old = self.restart()
                served.append(len(old.access_lines()))
            cur = self.current
            wait_until(lambda: len(cur.access_lines()) > 200, 30, 'load on the last responder')
            n_writes = len(writes)
            wait_until(lambda: len(writes) > n_writes + 5, 30, 'writes on the last responder')
        finally:
            stop.set()
            for t in threads:
                t.join(scaled(30))
            wrk.send_signal(signal.SIGINT)  # wrk prints its summary and exits
            try:
                out = wrk.communicate(timeout=scaled(30))[0]
            except subprocess.TimeoutExpired:
                wrk.kill()
                out = wrk.communicate()[0]
        m = re.search(r'(\d+) requests in', out)
        self.assertTrue(m, out)
        reads = int(m.group(1))
        self.assertNotIn('Non-2xx', out, out)
        self.assertNotIn('Socket errors', out, out)
        if failures:
            logs = '\n'.join('--- %s\n%s' % (os.path.basename(f), tail(f, 15)) for f in
                             [os.path.join(S.tmp, 'act%d.log' % g) for g in range(1, self.gen + 1)]
                             + [os.path.join(self.n.prefix, 'logs/error.log')])
            self.fail('failed writes: %r\n%s' % (failures, logs))
        # Every acknowledged write is in the store (read past the caches:
        # a fresh responder would also answer from Redis, so ask the store).
        listed = set()
        page = 1
        while True:
            r = self.n.get('/api/courses?category=e2e-tests&page_size=100&page=%d&sort_by=duration'
                           % page)
            self.assertEqual(r.status, 200, r)
            items = r.json()['items']
            listed.update(c['_id'] for c in items)
            if len(items) < 100:
                break
            page += 1
        self.assertEqual(set(writes) - listed, set(), 'acknowledged writes missing')
        for i in writes[::max(1, len(writes) // 20)]:
            self.assertEqual(self.n.get('/api/courses/' + i).status, 200)
        print('\n    restart under load: %d reads (wrk), %d writes, 0 failed; requests served '
              'by the replaced processes: %s' % (reads, len(writes), served), file=sys.stderr)

    def n_conn(self):
        import http.client
        return http.client.HTTPConnection('127.0.0.1', self.n.port, timeout=scaled(15))


ORDER = [T01NginxAsWwwData, T02Logs, T03Config, T04SocketActivation]

if __name__ == '__main__':
    sys.exit(main(ORDER, fronts='a', name='deploy'))
