"""harness.py -- what every end-to-end suite (tests/e2e/test_*.py) shares:
the stack of real servers, waits, HTTP helpers, the store stoppers, test
accounts, and the run and its report. Python 3 stdlib only.

A suite is one file, tests/e2e/test_<area>.py, run by tests/e2e/run.sh
once per store in a process of its own:

    EL_E2E_STORE=sqlite|mongo EL_E2E_BUILD=build \\
        /usr/bin/python3 tests/e2e/test_<area>.py [-v] [TestClass[.test_name] ...]

It imports what it needs from here and ends with

    if __name__ == '__main__':
        sys.exit(main(ORDER))            # main(ORDER, fronts='abc', upstream=True) ...

where ORDER lists its TestCase classes in the order they run (destructive
ones last). main() starts the stack S, runs the tests, stops every process
it started, and reports. A suite that applies to one store only sets
STORES = ('sqlite',) at module level; a test that applies to some stores
only is decorated @only_if(cond, why). Either way the tests that do not
apply are listed as "not applicable" in the output and counted in the
report, never silently dropped (and never skipped: a skip is a failure).

The stack (S, class Stack), in a temp dir and on free ports:
  - a private redis-server (the shared L2);
  - the store: a fresh SQLite file, or the MongoDB wire test server
    tests/mongo_server.py (a real mongod when TEST_MONGO_URI is set, unless
    the suite needs the test server: own_mongo=True), seeded with NCOURSES
    courses by `elearnctl seed`;
  - responders (default a and b; spawn-fcgi -n, each on its own unix
    socket, same Redis, same store), each behind its own nginx rendered from
    the shipped conf/nginx.conf by render_nginx (tests/lib.sh); with
    upstream=True also one nginx whose upstream lists all of them (S.shared,
    the production shape).
Tests that need a responder of their own start one with S.front(name, **env).
Every process is stopped by its own pid: when the run ends, at exit, on
SIGTERM/SIGINT, and by PR_SET_PDEATHSIG if this interpreter dies.

Time. Every wait polls a condition against a deadline (wait_until); no
sleep stands in for a condition. Deadlines are multiplied by
EL_E2E_TIME_FACTOR (default 1; e.g. 3 for a sanitizer build or a heavily
loaded machine). The factor stretches how long a test waits for something
that will happen; it never loosens what a test asserts about latency.

Report. The last line of a run is "<suite>-<store>: P passed, F failed,
N not applicable"; with EL_E2E_RESULT set, "P F N" is also written to that
file for run.sh. A test with several failing subTests is one failed test;
a stack that fails to start is one failure.
"""

import atexit
import ctypes
import fcntl
import http.client
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.abspath(os.environ.get('EL_E2E_BUILD', os.path.join(ROOT, 'build')))
STORE = os.environ.get('EL_E2E_STORE', 'sqlite')
STORES = ('sqlite', 'mongo')
PY = '/usr/bin/python3'
JWT_SECRET = 'e2e-secret-0123456789abcdefghijklmnopqrstuv'  # 43 chars
NCOURSES = 40
# The database can be made unavailable by the tests: always for SQLite, and
# for MongoDB when it is our wire test server (not a real mongod).
CAN_STOP_DB = STORE == 'sqlite' or not os.environ.get('TEST_MONGO_URI')
NEEDS_STOPPABLE_DB = 'stops the database, which a real mongod (TEST_MONGO_URI) cannot be'


def _time_factor():
    raw = os.environ.get('EL_E2E_TIME_FACTOR', '1')
    try:
        f = float(raw)
    except ValueError:
        f = 0
    if not f >= 1:
        raise SystemExit('EL_E2E_TIME_FACTOR must be a number >= 1, not %r' % raw)
    return f


TIME_FACTOR = _time_factor()

# Every variable lib/core/config.c reads: scrubbed from the inherited
# environment so a developer's shell cannot change what the tests see.
CONFIG_VARS = ('DB_URI', 'MONGO_URI', 'REDIS_URL', 'JWT_SECRET', 'ACCESS_TOKEN_EXPIRE_MINUTES',
               'REFRESH_TOKEN_EXPIRE_DAYS', 'COURSE_TTL', 'COURSE_LIST_TTL', 'L1_MAX_BYTES',
               'WORKERS', 'REDIS_TIMEOUT_MS', 'DB_TIMEOUT_MS', 'IDLE_TIMEOUT', 'L1_MAX_STALE',
               'CACHE_WARM_MS', 'REQUEST_TIMEOUT', 'SEND_TIMEOUT', 'EVENT_THREADS', 'DATA_DIR',
               'STATE_DIRECTORY', 'LOG_FILE', 'ACCESS_LOG', 'TRUSTED_PROXIES', 'INSTANCE',
               'LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES')

OID = re.compile(r'^[0-9a-f]{24}$')
# "<UTC TIME> <CLIENT> <METHOD> <PATH[?QUERY]> <STATUS> <LAYER|-> <MICROS>us <BYTES>B <REQUEST ID>"
LOG_LINE = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \S+ ([A-Z]+) (\S+) (\d{3}) '
                      r'(L1|L2|MISS|STALE|-) (\d+)us \d+B \S+$')


# --------------------------------------------------------------------------
# Waiting and small utilities

def scaled(seconds):
    """A deadline in seconds, stretched by EL_E2E_TIME_FACTOR."""
    return seconds * TIME_FACTOR


def wait_until(pred, timeout, what, interval=0.02):
    """Poll pred() until it returns a true value (returned), or fail after
    timeout seconds (scaled by EL_E2E_TIME_FACTOR)."""
    timeout = scaled(timeout)
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError('timed out after %.1fs waiting for %s' % (timeout, what))
        time.sleep(interval)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def read_text(path):
    try:
        with open(path, 'rb') as f:
            return f.read().decode('utf-8', 'replace')
    except OSError:
        return ''


def tail(path, n=30):
    return '\n'.join(read_text(path).splitlines()[-n:])


def redis_ping(port):
    try:
        with socket.create_connection(('127.0.0.1', port), 0.5) as s:
            s.settimeout(0.5)
            s.sendall(b'PING\r\n')
            return s.recv(16).startswith(b'+PONG')
    except OSError:
        return False


def tcp_open(port):
    try:
        socket.create_connection(('127.0.0.1', port), 0.5).close()
        return True
    except OSError:
        return False


def unix_accepts(path):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.settimeout(0.5)
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


# --------------------------------------------------------------------------
# HTTP

class Resp:
    def __init__(self, status, headers, body, elapsed):
        self.status = status
        self.headers = headers  # lower-case name -> value
        self.body = body
        self.elapsed = elapsed

    def header(self, name):
        return self.headers.get(name.lower())

    @property
    def layer(self):
        return self.headers.get('x-cache')

    def json(self):
        return json.loads(self.body.decode('utf-8'))

    def __repr__(self):
        b = self.body[:300].decode('utf-8', 'replace')
        return '<%d X-Cache=%s %.3fs %r>' % (self.status, self.layer, self.elapsed, b)


def fetch(port, method, path, body=None, headers=None, conn=None, timeout=15):
    """One request; on conn (kept alive) when given, else on a new connection."""
    own = conn is None
    c = conn or http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        t0 = time.monotonic()
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        elapsed = time.monotonic() - t0
        hdrs = {}
        for k, v in r.getheaders():
            k = k.lower()
            hdrs[k] = hdrs[k] + ', ' + v if k in hdrs else v
        return Resp(r.status, hdrs, data, elapsed)
    finally:
        if own:
            c.close()


def request_parts(body=None, headers=None, token=None):
    """(body bytes, headers): a non-bytes body is sent as JSON; token as a
    Bearer Authorization."""
    h = {}
    if token is not None:
        h['Authorization'] = 'Bearer ' + token
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
        h['Content-Type'] = 'application/json'
    h.update(headers or {})
    return body, h


# --------------------------------------------------------------------------
# Processes

_libc = ctypes.CDLL(None, use_errno=True)


def _child_setup():
    # PR_SET_PDEATHSIG: SIGTERM the child if this interpreter dies without
    # cleaning up (even SIGKILL). Survives spawn-fcgi's exec of the responder.
    _libc.prctl(1, signal.SIGTERM, 0, 0, 0)


class Procs:
    """The processes this run started; stop() acts on one pid only."""

    def __init__(self):
        self.live = []  # (name, Popen)
        self.lock = threading.Lock()

    def start(self, name, argv, env=None, log=None):
        out = open(log, 'ab') if log else subprocess.DEVNULL
        try:
            p = subprocess.Popen(argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=subprocess.STDOUT,
                                 preexec_fn=_child_setup)
        finally:
            if log:
                out.close()
        with self.lock:
            self.live.append((name, p))
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=10):
        """Signal p (if still running), wait for it, SIGKILL after timeout
        (scaled). Returns its exit status."""
        if p.poll() is None:
            p.send_signal(sig)  # Popen checks it has not been reaped first
            try:
                p.wait(scaled(timeout))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        with self.lock:
            self.live = [(n, q) for n, q in self.live if q is not p]
        return p.returncode

    def stop_all(self):
        with self.lock:
            live = list(reversed(self.live))
        for _, p in live:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGCONT)  # in case a test left it stopped
                except OSError:
                    pass
            self.stop(p, timeout=8)


def start_nginx(stack, name, sockets, user=None):
    """nginx from conf/nginx.conf with one upstream server per socket;
    returns (port, prefix, Popen). Not yet known to answer. user: the
    workers' "user group" (render_nginx's EL_NGINX_USER), e.g. the
    production "www-data www-data"."""
    port = free_port()
    prefix = os.path.join(stack.tmp, 'nginx-' + name)
    env = dict(os.environ, EL_TESTS_DIR=os.path.join(ROOT, 'tests'))
    env.pop('EL_NGINX_USER', None)
    if user:
        env['EL_NGINX_USER'] = user
    subprocess.run(['sh', '-c', '. "$0"; render_nginx "$@"', os.path.join(ROOT, 'tests/lib.sh'),
                    os.path.join(ROOT, 'conf/nginx.conf'), prefix, str(port),
                    os.path.join(ROOT, 'www')] + list(sockets),
                   check=True, env=env)
    p = stack.procs.start('nginx ' + name,
                          ['nginx', '-p', prefix, '-c', os.path.join(prefix, 'nginx.conf'),
                           '-e', os.path.join(prefix, 'logs/error.log'), '-g', 'daemon off;'],
                          log=os.path.join(prefix, 'logs/stderr.log'))
    return port, prefix, p


class _Http:
    """Requests to one nginx port."""

    def get(self, path, headers=None, conn=None, timeout=15):
        return fetch(self.port, 'GET', path, headers=headers, conn=conn, timeout=timeout)

    def request(self, method, path, body=None, headers=None, conn=None, token=None, timeout=15):
        """A non-bytes body goes as JSON; token as a Bearer Authorization."""
        body, h = request_parts(body, headers, token)
        return fetch(self.port, method, path, body=body, headers=h, conn=conn, timeout=timeout)

    def conn(self, timeout=15):
        return http.client.HTTPConnection('127.0.0.1', self.port, timeout=timeout)

    def nginx_errors(self):
        text = read_text(os.path.join(self.prefix, 'logs/error.log'))
        return [l for l in text.splitlines() if re.search(r'\[(error|crit|alert|emerg)\]', l)]

    def wait_ready(self, what, responder=None):
        """Ready when a request makes the round trip through a responder
        (nginx's own 502 means the responder does not answer yet)."""
        def ready():
            if self.nginx.poll() is not None or (responder and responder.poll() is not None):
                return 'dead'
            try:
                r = self.get('/api/courses/000000000000000000000000', timeout=2)
                return r.status in (200, 404)
            except OSError:
                return False
        if wait_until(ready, 20, what) == 'dead':
            raise RuntimeError('%s died: nginx=%s responder=%s\n%s\n%s' % (
                what, self.nginx.poll(), responder and responder.poll(),
                tail(getattr(self, 'log', '')),
                tail(os.path.join(self.prefix, 'logs/error.log'))))


class Front(_Http):
    """One responder (spawn-fcgi -n elearn-fcgi on a unix socket) and one
    nginx in front of it, rendered from conf/nginx.conf."""

    def __init__(self, stack, name, **env):
        self.stack = stack
        self.name = name
        self.sock = os.path.join(stack.tmp, name + '.sock')
        self.log = os.path.join(stack.tmp, name + '.log')
        self.proc = None
        self.nginx = None
        self.start_responder(**env)
        self.port, self.prefix, self.nginx = start_nginx(stack, name, [self.sock])
        self.wait_ready('nginx :%d -> responder %s' % (self.port, name), self.proc)

    def start_responder(self, **env):
        try:
            os.unlink(self.sock)
        except FileNotFoundError:
            pass
        self.proc = self.stack.procs.start(
            'responder ' + self.name,
            ['spawn-fcgi', '-n', '-s', self.sock, '-M', '0600', '--',
             os.path.join(BUILD, 'elearn-fcgi')],
            env=self.stack.env(**env), log=self.log)
        wait_until(lambda: os.path.exists(self.sock) or self.proc.poll() is not None, 10,
                   'socket ' + self.sock)
        if self.proc.poll() is not None:
            raise RuntimeError('responder %s exited %s:\n%s' % (self.name, self.proc.returncode,
                                                                tail(self.log)))

    def log_text(self):
        return read_text(self.log)

    def log_count(self, needle):
        return self.log_text().count(needle)

    def stop(self):
        """Stop nginx and the responder; returns the responder's exit status."""
        if self.nginx:
            self.stack.procs.stop(self.nginx)
        if self.proc:
            return self.stack.procs.stop(self.proc)
        return None


class Upstream(_Http):
    """One nginx whose upstream lists several responders' sockets."""

    def __init__(self, stack, name, fronts):
        self.name = name
        self.port, self.prefix, self.nginx = start_nginx(stack, name, [f.sock for f in fronts])
        self.wait_ready('the upstream nginx %s :%d' % (name, self.port))


class Stack:
    """The servers of one run. Configured by main(), started before the
    first test, stopped after the last."""

    def __init__(self):
        self.procs = Procs()
        self.tmp = None
        self.redis = self.mongo = None
        self.redis_port = self.mongo_port = None
        self.db_path = self.db_uri = None
        self.ids, self.shared_ids, self.fronts, self.all = [], [], [], []
        self._list_seq = itertools.count()
        self.configure()

    def configure(self, fronts='ab', upstream=False, own_mongo=False, workers='4', name='e2e',
                  env=None):
        """fronts: the responders' names (S.a, S.b ...); upstream: also
        S.shared, one nginx over all of them; own_mongo: always the MongoDB
        test server, never TEST_MONGO_URI (for suites that freeze it or ask
        it for its counters); workers: WORKERS of every responder; env:
        more configuration for every responder."""
        self.env_extra = dict(env or {})
        self.front_names = fronts
        self.with_upstream = upstream
        self.own_mongo = own_mongo
        self.workers = str(workers)
        self.name = name
        self.db_name = 'elearn_' + re.sub(r'\W', '_', name)

    # -- configuration --
    def env(self, **over):
        """The responders' environment; a variable given as None is unset."""
        e = {k: v for k, v in os.environ.items() if k not in CONFIG_VARS}
        e.update(DB_URI=self.db_uri, REDIS_URL='redis://127.0.0.1:%d/0' % self.redis_port,
                 JWT_SECRET=JWT_SECRET, WORKERS=self.workers,
                 # Tests assert X-Cache transitions from a cold cache; a
                 # warming test turns it back on for its own responder.
                 CACHE_WARM_MS='0')
        for k, v in list(self.env_extra.items()) + list(over.items()):
            if v is None:
                e.pop(k, None)
            else:
                e[k] = str(v)
        return e

    # -- servers --
    def start(self):
        for tool in ('nginx', 'spawn-fcgi', 'redis-server', 'redis-cli'):
            if not shutil.which(tool):
                raise RuntimeError('%s is not installed (make deps)' % tool)
        for b in ('elearn-fcgi', 'elearnctl'):
            if not os.access(os.path.join(BUILD, b), os.X_OK):
                raise RuntimeError('%s/%s is missing (make)' % (BUILD, b))
        self.tmp = tempfile.mkdtemp(prefix='elearn-%s-%s-' % (self.name, STORE))
        self.redis_port = free_port()
        self.start_redis()
        if STORE == 'sqlite':
            self.db_path = os.path.join(self.tmp, self.name + '.db')
            self.db_uri = 'sqlite:' + self.db_path
        elif STORE == 'mongo':
            if os.environ.get('TEST_MONGO_URI') and not self.own_mongo:
                self.db_uri = os.environ['TEST_MONGO_URI']
            else:
                self.mongo_port = free_port()
                self.start_mongo()
                self.db_uri = 'mongodb://127.0.0.1:%d/%s' % (self.mongo_port, self.db_name)
        else:
            raise RuntimeError('EL_E2E_STORE must be sqlite or mongo, not %r' % STORE)
        self.seed()
        for n in self.front_names:
            setattr(self, n, self.front(n))
        self.all = list(self.fronts)
        if self.with_upstream:
            self.shared = Upstream(self, 'shared', self.all)
        r = self.all[0].get('/api/courses?page_size=100&sort_by=duration')
        if r.status != 200:
            raise RuntimeError('listing the seeded courses failed: %r' % r)
        ids = [c['_id'] for c in r.json()['items']]
        if len(ids) != NCOURSES:
            raise RuntimeError('expected %d seeded courses, got %d' % (NCOURSES, len(ids)))
        # A few ids any test may read; the rest are handed out one by one.
        self.shared_ids, self.ids = ids[:4], ids[4:]

    def start_redis(self):
        d = os.path.join(self.tmp, 'redis')
        os.makedirs(d, exist_ok=True)
        self.redis = self.procs.start('redis-server', [
            'redis-server', '--port', str(self.redis_port), '--bind', '127.0.0.1',
            '--dir', d, '--save', '', '--appendonly', 'no', '--daemonize', 'no',
            '--logfile', os.path.join(d, 'redis.log')])
        wait_until(lambda: redis_ping(self.redis_port), 10, 'redis-server :%d' % self.redis_port)

    def restart_redis(self):
        """Kill our redis-server (that pid only) and start a new, empty one
        on the same port."""
        self.procs.stop(self.redis, signal.SIGKILL)
        self.start_redis()

    def start_mongo(self):
        log = os.path.join(self.tmp, 'mongo.log')
        self.mongo = self.procs.start(
            'mongo_server.py', [PY, os.path.join(ROOT, 'tests/mongo_server.py'),
                                '--port', str(self.mongo_port)], log=log)
        wait_until(lambda: tcp_open(self.mongo_port) or self.mongo.poll() is not None, 20,
                   'mongo test server :%d' % self.mongo_port)
        if self.mongo.poll() is not None:
            raise RuntimeError('mongo test server exited:\n' + tail(log))

    def ctl(self, *args, stdin=None, timeout=120):
        """elearnctl with this run's environment (DB_URI, REDIS_URL)."""
        return subprocess.run([os.path.join(BUILD, 'elearnctl')] + list(args), input=stdin,
                              env=self.env(), cwd=ROOT, capture_output=True, text=True,
                              timeout=scaled(timeout))

    def seed(self):
        if STORE == 'mongo':
            r = self.ctl('reset', '--yes')
            if r.returncode != 0:
                raise RuntimeError('elearnctl reset failed: %s%s' % (r.stdout, r.stderr))
        r = self.ctl('seed', '--courses', str(NCOURSES), '--db', self.db_uri)
        if r.returncode != 0:
            raise RuntimeError('elearnctl seed failed (%d): %s%s' % (r.returncode, r.stdout,
                                                                      r.stderr))

    def front(self, name, **env):
        """A responder with an nginx of its own (env: config overrides)."""
        f = Front(self, name, **env)
        self.fronts.append(f)
        return f

    def redis_cli(self, *args):
        return subprocess.run(['redis-cli', '-p', str(self.redis_port)] + list(args),
                              capture_output=True, text=True, timeout=scaled(10))

    def redis_has(self, key):
        """Redis holds key (EXISTS)."""
        return self.redis_cli('EXISTS', key).stdout.strip() == '1'

    # -- test data --
    def take_id(self):
        """A seeded course id no test has read yet (cold in every layer)."""
        if not self.ids:
            raise AssertionError('the harness ran out of unread course ids; seed more')
        return self.ids.pop()

    def course_in_redis(self, front):
        """A seeded course id read on front only (its first read a MISS),
        once Redis holds it -- what a test that then reads it elsewhere
        relies on. A fill is cached nowhere when an invalidation arrived
        while it read, and not in Redis while front's Redis breaker is open
        (lib/cache/tiered.c): such a read is repeated. A copy front keeps in
        its L1 but Redis lacks would not be filled again: then another id."""
        cid, first = self.take_id(), [True]

        def held():
            nonlocal cid
            r = front.get('/api/courses/' + cid)
            if r.status != 200 or (first[0] and r.layer != 'MISS'):
                raise AssertionError('a cold course read on %s: %r' % (front.name, r))
            first[0] = False
            if self.redis_has('course:' + cid):
                return True
            if r.layer == 'L1':
                cid, first[0] = self.take_id(), True
            return False
        wait_until(held, 10, 'a course read on %s to be held by Redis' % front.name,
                   interval=0.1)
        return cid

    def fresh_list_query(self):
        """A list query no test has made yet (a new cache key)."""
        n = next(self._list_seq)
        return '/api/courses?sort_by=duration&difficulty=intermediate&page_size=%d&page=%d' % (
            1 + n % 100, 1 + n // 100)

    @property
    def admin_token(self):
        """An access token of the shared admin account."""
        return token_of('admin')

    def stop(self, failed=False):
        """Stop every process; with failed, first print the end of every
        log of the run (responders, nginx, Redis, the MongoDB server): the
        temp dir goes with the run, and CI keeps only the output."""
        self.procs.stop_all()
        if self.tmp is None:
            return
        if failed:
            self.print_logs()
        if os.environ.get('EL_E2E_KEEP'):
            print('e2e: kept', self.tmp, file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp = None

    def print_logs(self, n=40):
        for d, _, files in sorted(os.walk(self.tmp)):
            for f in sorted(files):
                path = os.path.join(d, f)
                if f.endswith('.log') and os.path.getsize(path) > 0:
                    print('--- last %d lines of %s' % (n, os.path.relpath(path, self.tmp)))
                    print(tail(path, n))
        sys.stdout.flush()


S = Stack()
atexit.register(S.procs.stop_all)


# --------------------------------------------------------------------------
# Making the store unavailable

class SqliteRecoveryLock:
    """Make a WAL-mode SQLite database unreadable for other processes, the
    way a crashed writer whose WAL index is being rebuilt does.

    A plain `BEGIN EXCLUSIVE` does not stop readers in WAL mode (readers
    never wait for the writer), and an exclusive lock on the database file
    cannot be had while the responder holds its connections open. What does
    stop every reader: the WAL index (the -shm file) shows two header copies
    that disagree, so a reader must run recovery, which needs the WAL write
    and recover locks (bytes 120 and 122 of the -shm file) -- which we hold.
    The reader then gets SQLITE_BUSY_RECOVERY, retries through its busy
    handler and fails with SQLITE_BUSY at its busy timeout: exactly "the
    database is unavailable". On exit the header and the locks are put back;
    a reader that raced in just runs recovery, SQLite's normal crash path."""

    WAL_WRITE_LOCK = 120
    WAL_RECOVER_LOCK = 122

    def __init__(self, db_path):
        self.shm = db_path + '-shm'

    def __enter__(self):
        if not os.path.exists(self.shm):
            raise AssertionError('%s is missing: is the database in WAL mode?' % self.shm)
        self.fd = os.open(self.shm, os.O_RDWR)
        try:
            wait_until(lambda: self._try_lock(self.WAL_WRITE_LOCK), 5, 'the WAL write lock')
            wait_until(lambda: self._try_lock(self.WAL_RECOVER_LOCK), 5, 'the WAL recover lock')
            self.orig = os.pread(self.fd, 48, 48)  # the second header copy
            if len(self.orig) != 48:
                raise AssertionError('%s has no WAL index header' % self.shm)
            os.pwrite(self.fd, bytes([self.orig[0] ^ 0xff]) + self.orig[1:], 48)
        except BaseException:
            os.close(self.fd)
            raise
        return self

    def _try_lock(self, off):
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, off)
            return True
        except OSError:
            return False

    def __exit__(self, *exc):
        try:
            os.pwrite(self.fd, self.orig, 48)
            fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, self.WAL_RECOVER_LOCK)
            fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, self.WAL_WRITE_LOCK)
        finally:
            os.close(self.fd)


class MongoStopped:
    """Freeze the MongoDB test server (SIGSTOP): connections stay open but
    nothing answers -- the harsher failure, a hang rather than a refusal."""

    def __enter__(self):
        os.kill(S.mongo.pid, signal.SIGSTOP)
        return self

    def __exit__(self, *exc):
        os.kill(S.mongo.pid, signal.SIGCONT)


def store_unavailable():
    """A context in which the store does not answer (see CAN_STOP_DB)."""
    if STORE == 'sqlite':
        return SqliteRecoveryLock(S.db_path)
    assert S.mongo is not None, 'a real mongod (TEST_MONGO_URI) cannot be stopped by the tests'
    return MongoStopped()


# --------------------------------------------------------------------------
# Accounts
#
# Accounts are made the two supported ways: students through
# POST /api/auth/register, instructors and admins with `elearnctl
# create-user --password-stdin` on this run's store. Role changes and
# deletions go through `elearnctl set-role` / `delete-user` with the run's
# REDIS_URL in their environment (S.env()), so the cached session is
# dropped as in production.
#
# Login throttling counts failures per email and per client address, and
# every client here is on loopback. So each AuthCase test talks from a
# loopback address of its own (127.0.x.y, never 127.0.0.1; nginx passes it
# on as REMOTE_ADDR): deliberate failures in one test never throttle
# another.

ACCESS_TTL_S = 15 * 60      # ACCESS_TOKEN_EXPIRE_MINUTES, default
REFRESH_TTL_S = 7 * 86400   # REFRESH_TOKEN_EXPIRE_DAYS, default

_addresses = itertools.count(2)


def client_address():
    """A loopback address no test has used yet (never 127.0.0.1)."""
    n = next(_addresses)
    return '127.0.%d.%d' % (n // 250, n % 250 + 1)


def unique_email(tag):
    return 'e2e-%s-%s@example.com' % (tag, os.urandom(4).hex())


class User:
    def __init__(self, uid, email, password, name, role):
        self.id, self.email, self.password, self.name, self.role = uid, email, password, name, role

    def public(self):
        return {'_id': self.id, 'email': self.email, 'name': self.name, 'role': self.role}


def elearnctl(*args, stdin=None):
    """elearnctl on this run's store, REDIS_URL = the run's Redis."""
    return S.ctl(*(list(args) + ['--db', S.db_uri]), stdin=stdin, timeout=60)


def create_user(role, tag=None):
    email = unique_email(tag or role)
    password = 'pw-' + os.urandom(8).hex()
    r = elearnctl('create-user', '--email', email, '--password-stdin', '--role', role,
                  stdin=password + '\n')
    if r.returncode != 0:
        raise AssertionError('elearnctl create-user failed (%d): %s%s' % (r.returncode, r.stdout,
                                                                          r.stderr))
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    if (doc.get('email'), doc.get('role')) != (email, role) or not OID.match(doc.get('_id', '')):
        raise AssertionError('elearnctl create-user printed %r' % doc)
    return User(doc['_id'], email, password, doc['name'], role)


_accounts = {}
_tokens = {}


def account(name):
    """A shared account made once per run: 'admin', 'instructor',
    'instructor2' or 'student' (an elearnctl user of that role). Tests never
    change these; the ones that do make users of their own."""
    if name not in _accounts:
        _accounts[name] = create_user(name.rstrip('0123456789'), name)
    return _accounts[name]


def token_of(name):
    """An access token of the shared account, from one login on the first
    responder."""
    if name not in _tokens:
        u = account(name)
        r = S.all[0].request('POST', '/api/auth/login', {'email': u.email, 'password': u.password})
        if r.status != 200:
            raise AssertionError('login of %s failed: %r' % (name, r))
        _tokens[name] = r.json()['access_token']
    return _tokens[name]


def summary(course):
    """A course as a list item shows it: the modules without their content
    (lib/model/course.h, el_course_summary_to_json)."""
    return dict(course, modules=[{k: v for k, v in m.items() if k != 'content'}
                                 for m in course['modules']])


def course_body(tag, **over):
    """A valid POST /api/courses body, in the category e2e-tests."""
    body = {'title': 'E2E course %s' % tag, 'description': 'Made by the e2e suite (%s).' % tag,
            'category': 'e2e-tests', 'difficulty': 'beginner', 'tags': ['e2e', tag[:32]],
            'modules': [{'title': 'First steps', 'content': 'Hello.', 'duration_minutes': 10},
                        {'title': 'Next steps', 'content': 'Again.', 'duration_minutes': 25}]}
    body.update(over)
    return body


# --------------------------------------------------------------------------
# Test cases

class Case(unittest.TestCase):
    maxDiff = 2000

    def assertJsonError(self, r, status, mentions=None):
        self.assertEqual(r.status, status, r)
        self.assertTrue((r.header('content-type') or '').startswith('application/json'), r)
        body = r.json()
        self.assertIsInstance(body, dict, r)
        self.assertIsInstance(body.get('detail'), str, r)
        self.assertTrue(body['detail'], r)
        if mentions:
            self.assertRegex(body['detail'], r'\b%s\b' % re.escape(mentions), r)
        return body

    def until_in_l1(self, front, what):
        """Read what (a course id, or a path) on front until front serves it
        from its L1. (A fill is cached nowhere when an invalidation -- a bus
        reset after a Redis outage, say -- arrived while it read:
        lib/cache/tiered.c.)"""
        path = what if what.startswith('/') else '/api/courses/' + what

        def in_l1():
            r = front.get(path)
            self.assertEqual(r.status, 200, r)
            return r.layer == 'L1'
        wait_until(in_l1, 5, '%s in the L1 of %s' % (path, front.name))

    def assertCourse(self, r, cid=None, layer=None):
        self.assertEqual(r.status, 200, r)
        self.assertTrue((r.header('content-type') or '').startswith('application/json'), r)
        if layer:
            self.assertEqual(r.layer, layer, r)
        c = r.json()
        if cid:
            self.assertEqual(c['_id'], cid)
        return c


class AuthCase(Case):
    """Requests from this test's own client address; auth assertions."""

    def setUp(self):
        self.src = client_address()

    def call(self, front, method, path, body=None, token=None, form=None, headers=None):
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            headers = dict({'Content-Type': 'application/x-www-form-urlencoded'},
                           **(headers or {}))
        body, h = request_parts(body, headers, token)
        conn = http.client.HTTPConnection('127.0.0.1', front.port, timeout=15,
                                          source_address=(self.src, 0))
        try:
            return fetch(front.port, method, path, body=body, headers=h, conn=conn)
        finally:
            conn.close()

    # -- accounts and tokens --
    def register(self, front, email, password, name='E2E Student'):
        return self.call(front, 'POST', '/api/auth/register',
                         {'email': email, 'password': password, 'name': name})

    def new_student(self, tag='student'):
        email, password = unique_email(tag), 'pw-' + os.urandom(8).hex()
        r = self.register(S.a, email, password, 'Student %s' % tag)
        self.assertEqual(r.status, 201, r)
        return User(r.json()['_id'], email, password, 'Student %s' % tag, 'student')

    def try_login(self, front, email, password):
        return self.call(front, 'POST', '/api/auth/login', {'email': email, 'password': password})

    def login(self, user, front=None):
        r = self.try_login(front or S.a, user.email, user.password)
        self.assertEqual(r.status, 200, r)
        return r.json()

    def refresh(self, front, refresh_token):
        return self.call(front, 'POST', '/api/auth/refresh', {'refresh_token': refresh_token})

    def me(self, front, token):
        return self.call(front, 'GET', '/api/auth/me', token=token)

    def logout(self, front, token):
        return self.call(front, 'DELETE', '/api/auth/logout', token=token)

    # -- assertions --
    def assertUnauthorized(self, r, msg=None):
        self.assertJsonError(r, 401)
        self.assertEqual((r.header('www-authenticate') or '').split(' ')[0], 'Bearer',
                         msg or r.headers)

    def assertMe(self, r, user, msg=None):
        self.assertEqual(r.status, 200, msg or r)
        self.assertEqual(r.json(), user.public(), msg)

    def assertPair(self, r):
        self.assertEqual(r.status, 200, r)
        p = r.json()
        self.assertEqual(set(p), {'access_token', 'refresh_token', 'token_type', 'expires_in'})
        self.assertEqual(p['token_type'], 'bearer')
        self.assertEqual(p['expires_in'], ACCESS_TTL_S)
        return p

    def assertNamesField(self, r, field):
        detail = self.assertJsonError(r, 422)['detail']
        self.assertRegex(detail, r'(^|\s)%s(:|$)' % re.escape(field), r)

    def assertRejectedEverywhere(self, token, what):
        for f in (S.a, S.b):
            self.assertUnauthorized(self.me(f, token), '%s on %s' % (what, f.name))

    def assertAcceptedEverywhere(self, token, user, what):
        for f in (S.a, S.b):
            self.assertMe(self.me(f, token), user, '%s on %s' % (what, f.name))


# --------------------------------------------------------------------------
# Tests that do not apply

_not_applicable = []  # (qualified test name, why)


def only_if(cond, why):
    """Define a test only where it applies: with cond false the method
    becomes None (unittest does not collect it) and is reported as "not
    applicable: why" -- listed and counted, never a silent gap nor a skip."""
    def deco(fn):
        if cond:
            return fn
        _not_applicable.append((fn.__qualname__, why))
        return None
    return deco


def _all_test_names(order):
    loader = unittest.TestLoader()
    return ['%s.%s' % (c.__name__, n) for c in order for n in loader.getTestCaseNames(c)]


def _selected(qualname, names):
    return not names or any(qualname == n or qualname.startswith(n + '.') for n in names)


# --------------------------------------------------------------------------
# The run

def _on_signal(signum, frame):
    # KeyboardInterrupt, not SystemExit: unittest records SystemExit as a
    # test error and goes on; KeyboardInterrupt ends the run.
    raise KeyboardInterrupt('signal %d' % signum)


def _report(suite, passed, failed, na, t0):
    print('%s-%s: %d passed, %d failed, %d not applicable (%.0f s)' % (
        suite, STORE, passed, failed, na, time.monotonic() - t0), flush=True)
    out = os.environ.get('EL_E2E_RESULT')
    if out:
        with open(out, 'w') as f:
            f.write('%d %d %d\n' % (passed, failed, na))


def _counts(result):
    """(passed, failed) of a unittest result. Count tests, not failures: a
    test with three failing subTests is one failed test. A
    setUpModule/setUpClass error counts as one failure."""
    bad = {getattr(t, 'test_case', t).id()
           for t, _ in result.failures + result.errors} | {
        t.id() for t in result.unexpectedSuccesses}
    real_bad = sum(1 for i in bad if i.count('.') >= 2)  # __main__.Class.test
    # Tests that do not apply are not defined (only_if), so a skip here is a
    # test that did not run: counted as a failure.
    failed = len(bad) + len(result.skipped)
    passed = max(0, result.testsRun - real_bad - len(result.skipped))
    return passed, failed


def main(order, **config):
    """Run the suite of the calling file (__main__): the classes of order,
    or the tests named on the command line, on a stack configured by
    config (see Stack.configure). Returns the exit status."""
    signal.signal(signal.SIGTERM, _on_signal)
    t0 = time.monotonic()
    suite_name = os.path.basename(sys.argv[0])[len('test_'):-len('.py')]
    verbosity = 2 if '-v' in sys.argv else 1
    names = [a for a in sys.argv[1:] if not a.startswith('-')]
    mod = sys.modules['__main__']
    print('== %s (%s store, build %s)' % (suite_name, STORE, BUILD), flush=True)

    stores = getattr(mod, 'STORES', STORES)
    if STORE not in stores:
        why = 'the suite applies to the %s store only' % ' and '.join(stores)
        na = [n for n in _all_test_names(order) if _selected(n, names)]
        for n in na:
            print('%s ... not applicable: %s' % (n, why), flush=True)
        _report(suite_name, 0, 0, len(na), t0)
        return 0

    na = [(n, why) for n, why in _not_applicable if _selected(n, names)]
    for n, why in na:
        print('%s ... not applicable: %s' % (n, why), flush=True)

    loader = unittest.TestLoader()
    if names:
        suite = loader.loadTestsFromNames(names, mod)
    else:
        suite = unittest.TestSuite(loader.loadTestsFromTestCase(c) for c in order)
    S.configure(**config)
    result = None  # a stack that did not start is a failed run: its logs are printed
    try:
        try:
            S.start()
        except BaseException:
            traceback.print_exc()
            print('%s: the stack did not start' % suite_name, flush=True)
            _report(suite_name, 0, 1, len(na), t0)
            return 1
        result = unittest.TextTestRunner(verbosity=verbosity, stream=sys.stdout).run(suite)
    finally:
        S.stop(failed=result is None or _counts(result)[1] > 0)
    passed, failed = _counts(result)
    _report(suite_name, passed, failed, len(na), t0)
    return 0 if failed == 0 and (result.testsRun > 0 or na) else 1
