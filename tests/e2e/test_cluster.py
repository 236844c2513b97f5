#!/usr/bin/python3
"""test_cluster.py -- elearn as a cluster: three responder processes behind
one nginx upstream, sharing one Redis and one store, driven over HTTP.

    EL_E2E_STORE=sqlite|mongo EL_E2E_BUILD=build \\
        /usr/bin/python3 tests/e2e/test_cluster.py [-v] [TestClass[.test_name] ...]

Normally run by tests/e2e/run.sh after test_e2e.py, once per store. Python
3 stdlib, plus Debian's python3-pymongo (a dependency of python3-mockupdb,
which the MongoDB test server needs anyway) to ask the test server for its
per-command counts.

What it checks is the coherence design of lib/cache/bus.h and lib/cache/tiered.c across
processes: writes and admin invalidations reach every process's L1, how fast
(measured), concurrent cold misses across the cluster make one store query
(also when a lease holder died), a bus reconnect drops L1, Redis can die
under load without a failed read, a stopped database leaves cached reads
served and /health degraded, the cluster counters are the sum of the
processes', and start-up warming.

The harness (class Cluster, started by setUpModule) puts in a temp dir, on
free ports:
  - a private redis-server;
  - the store: a fresh SQLite file, or the MongoDB wire test server
    tests/mongo_server.py, seeded with 40 courses by `elearnctl seed`;
  - three responders a, b, c (spawn-fcgi -n, each on its own unix socket);
  - one nginx per responder (to address each process, and so its L1, on its
    own) and one nginx whose upstream lists all three sockets -- the
    production shape -- every one rendered from the shipped conf/nginx.conf
    by render_nginx (tests/lib.sh).
The helpers below copy the few from test_e2e.py needed here (kept
separate so that suite can change without breaking this one). Every process
is stopped by its own pid: in tearDownModule, at exit, on SIGTERM/SIGINT,
and by PR_SET_PDEATHSIG if this interpreter dies.

Tests run in the order of ORDER, the destructive ones (Redis restarted,
killed under load; the database stopped) after the others; the warming test
starts a fourth responder of its own. Every wait polls a condition against
a deadline.
"""

import atexit
import collections
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
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.abspath(os.environ.get('EL_E2E_BUILD', os.path.join(ROOT, 'build')))
STORE = os.environ.get('EL_E2E_STORE', 'sqlite')
PY = '/usr/bin/python3'
JWT_SECRET = 'cluster-secret-0123456789abcdefghijklmnopq'  # 42 chars
NCOURSES = 40
LEASE_MS = 2000         # el_tiered_opts.lease_ms default (lib/cache/tiered.c)
L1_MAX_STALE_MS = 1000  # L1_MAX_STALE default
# Worker threads per responder. With 4, at most 4 of the 100 concurrent
# requests per responder are inside its read path at once (the rest queue);
# EL_CLUSTER_WORKERS=32 makes the stampede harsher.
WORKERS = os.environ.get('EL_CLUSTER_WORKERS', '4')

CONFIG_VARS = ('DB_URI', 'MONGO_URI', 'REDIS_URL', 'JWT_SECRET', 'ACCESS_TOKEN_EXPIRE_MINUTES',
               'REFRESH_TOKEN_EXPIRE_DAYS', 'COURSE_TTL', 'COURSE_LIST_TTL', 'L1_MAX_BYTES',
               'WORKERS', 'REDIS_TIMEOUT_MS', 'DB_TIMEOUT_MS', 'IDLE_TIMEOUT', 'L1_MAX_STALE',
               'CACHE_WARM_MS')

RESUBSCRIBED = 'bus: dropping L1 (subscribed to elearn:cache)'
SUB_LOST = 'bus: subscription lost'


# --------------------------------------------------------------------------
# Small utilities (as in test_e2e.py)

def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, what, interval=0.02):
    """Poll pred() until it returns a true value (returned), or fail."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError('timed out after %.1fs waiting for %s' % (timeout, what))
        time.sleep(interval)


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


_libc = ctypes.CDLL(None, use_errno=True)


def _child_setup():
    _libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


class Resp:
    def __init__(self, status, headers, body, elapsed):
        self.status, self.headers, self.body, self.elapsed = status, headers, body, elapsed

    def header(self, name):
        return self.headers.get(name.lower())

    @property
    def layer(self):
        return self.headers.get('x-cache')

    def json(self):
        return json.loads(self.body.decode('utf-8'))

    def __repr__(self):
        return '<%d X-Cache=%s %.3fs %r>' % (self.status, self.layer, self.elapsed,
                                             self.body[:300].decode('utf-8', 'replace'))


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
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, data, elapsed)
    finally:
        if own:
            c.close()


class Procs:
    """The processes this run started; stop() acts on one pid only."""

    def __init__(self):
        self.live = []
        self.lock = threading.Lock()

    def start(self, name, argv, env=None, log=None):
        out = open(log, 'ab') if log else subprocess.DEVNULL
        try:
            p = subprocess.Popen(argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, preexec_fn=_child_setup)
        finally:
            if log:
                out.close()
        with self.lock:
            self.live.append((name, p))
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=10):
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout)
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


# --------------------------------------------------------------------------
# The harness

def render_and_start_nginx(cl, name, sockets):
    """nginx from conf/nginx.conf with one upstream line per socket; returns
    (port, prefix, Popen)."""
    port = free_port()
    prefix = os.path.join(cl.tmp, 'nginx-' + name)
    subprocess.run(['sh', '-c', '. "$0"; render_nginx "$@"', os.path.join(ROOT, 'tests/lib.sh'),
                    os.path.join(ROOT, 'conf/nginx.conf'), prefix, str(port),
                    os.path.join(ROOT, 'www')] + list(sockets),
                   check=True, env=dict(os.environ, EL_TESTS_DIR=os.path.join(ROOT, 'tests')))
    p = cl.procs.start('nginx ' + name,
                       ['nginx', '-p', prefix, '-c', os.path.join(prefix, 'nginx.conf'),
                        '-e', os.path.join(prefix, 'logs/error.log'), '-g', 'daemon off;'],
                       log=os.path.join(prefix, 'logs/stderr.log'))
    return port, prefix, p


class Responder:
    """One elearn-fcgi process (spawn-fcgi -n) with an nginx of its own."""

    def __init__(self, cl, name, **env):
        self.cl, self.name = cl, name
        self.sock = os.path.join(cl.tmp, name + '.sock')
        self.log = os.path.join(cl.tmp, name + '.log')
        self.proc = cl.procs.start('responder ' + name,
                                   ['spawn-fcgi', '-n', '-s', self.sock, '-M', '0600', '--',
                                    os.path.join(BUILD, 'elearn-fcgi')],
                                   env=cl.env(**env), log=self.log)
        wait_until(lambda: os.path.exists(self.sock) or self.proc.poll() is not None, 10,
                   'socket ' + self.sock)
        if self.proc.poll() is not None:
            raise RuntimeError('responder %s exited %s:\n%s' % (name, self.proc.returncode,
                                                                tail(self.log)))
        self.port, self.prefix, self.nginx = render_and_start_nginx(cl, name, [self.sock])
        wait_ready(self, 'nginx :%d -> responder %s' % (self.port, name))

    def get(self, path, headers=None, conn=None, timeout=15):
        return fetch(self.port, 'GET', path, headers=headers, conn=conn, timeout=timeout)

    def request(self, method, path, body=None, token=None, conn=None):
        h = {}
        if token:
            h['Authorization'] = 'Bearer ' + token
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            h['Content-Type'] = 'application/json'
        return fetch(self.port, method, path, body=body, headers=h, conn=conn)

    def conn(self, timeout=15):
        return http.client.HTTPConnection('127.0.0.1', self.port, timeout=timeout)

    def log_count(self, needle):
        return read_text(self.log).count(needle)

    def stop(self):
        self.cl.procs.stop(self.nginx)
        return self.cl.procs.stop(self.proc)


def wait_ready(front, what):
    """Ready when a request makes the round trip through a responder."""
    def ready():
        if front.nginx.poll() is not None:
            return 'dead'
        try:
            return fetch(front.port, 'GET', '/api/courses/000000000000000000000000',
                         timeout=2).status in (200, 404)
        except OSError:
            return False
    if wait_until(ready, 20, what) == 'dead':
        raise RuntimeError('%s: nginx died\n%s' % (what, tail(os.path.join(
            front.prefix, 'logs/error.log'))))


class Shared:
    """The one nginx whose upstream lists every responder."""

    def __init__(self, cl, responders):
        self.port, self.prefix, self.nginx = render_and_start_nginx(
            cl, 'shared', [r.sock for r in responders])
        wait_ready(self, 'the shared upstream nginx :%d' % self.port)

    def get(self, path, conn=None, timeout=15):
        return fetch(self.port, 'GET', path, conn=conn, timeout=timeout)

    def conn(self, timeout=15):
        return http.client.HTTPConnection('127.0.0.1', self.port, timeout=timeout)


class Cluster:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix='elearn-cluster-%s-' % STORE)
        self.procs = Procs()
        self.redis = self.mongo = None
        self.ids = []
        self.admin_token = None

    def env(self, **over):
        e = {k: v for k, v in os.environ.items() if k not in CONFIG_VARS}
        e.update(DB_URI=self.db_uri, REDIS_URL='redis://127.0.0.1:%d/0' % self.redis_port,
                 JWT_SECRET=JWT_SECRET, WORKERS=WORKERS, CACHE_WARM_MS='0')
        for k, v in over.items():
            e[k] = str(v)
        return e

    def start(self):
        for tool in ('nginx', 'spawn-fcgi', 'redis-server', 'redis-cli'):
            if not shutil.which(tool):
                raise RuntimeError('%s is not installed (make deps)' % tool)
        self.redis_port = free_port()
        self.start_redis()
        if STORE == 'sqlite':
            self.db_path = os.path.join(self.tmp, 'cluster.db')
            self.db_uri = 'sqlite:' + self.db_path
        elif STORE == 'mongo':
            self.mongo_port = free_port()
            self.start_mongo()
            self.db_name = 'elearn_cluster'
            self.db_uri = 'mongodb://127.0.0.1:%d/%s' % (self.mongo_port, self.db_name)
        else:
            raise RuntimeError('EL_E2E_STORE must be sqlite or mongo, not %r' % STORE)
        r = self.ctl('seed', '--courses', str(NCOURSES), '--db', self.db_uri)
        if r.returncode != 0:
            raise RuntimeError('elearnctl seed failed: %s%s' % (r.stdout, r.stderr))
        self.a, self.b, self.c = (Responder(self, n) for n in 'abc')
        self.all = [self.a, self.b, self.c]
        self.shared = Shared(self, self.all)
        r = self.a.get('/api/courses?page_size=100&sort_by=duration')
        if r.status != 200 or r.json()['total'] != NCOURSES:
            raise RuntimeError('listing the seeded courses failed: %r' % r)
        self.ids = [c['_id'] for c in r.json()['items']]
        self.admin_token = self.login(self.create_user('admin'))

    def start_redis(self):
        d = os.path.join(self.tmp, 'redis')
        os.makedirs(d, exist_ok=True)
        self.redis = self.procs.start('redis-server', [
            'redis-server', '--port', str(self.redis_port), '--bind', '127.0.0.1', '--dir', d,
            '--save', '', '--appendonly', 'no', '--daemonize', 'no',
            '--logfile', os.path.join(d, 'redis.log')])
        wait_until(lambda: redis_ping(self.redis_port), 10, 'redis-server :%d' % self.redis_port)

    def start_mongo(self):
        log = os.path.join(self.tmp, 'mongo.log')
        self.mongo = self.procs.start('mongo_server.py', [
            PY, os.path.join(ROOT, 'tests/mongo_server.py'), '--port', str(self.mongo_port)],
            log=log)
        wait_until(lambda: tcp_open(self.mongo_port) or self.mongo.poll() is not None, 20,
                   'mongo test server :%d' % self.mongo_port)
        if self.mongo.poll() is not None:
            raise RuntimeError('mongo test server exited:\n' + tail(log))

    def ctl(self, *args, stdin=None):
        return subprocess.run([os.path.join(BUILD, 'elearnctl')] + list(args), input=stdin,
                              env=self.env(), cwd=ROOT, capture_output=True, text=True,
                              timeout=120)

    def create_user(self, role):
        email = 'cluster-%s-%s@example.com' % (role, os.urandom(4).hex())
        password = 'pw-' + os.urandom(8).hex()
        r = self.ctl('create-user', '--email', email, '--password-stdin', '--role', role,
                     '--db', self.db_uri, stdin=password + '\n')
        if r.returncode != 0:
            raise RuntimeError('elearnctl create-user failed: %s%s' % (r.stdout, r.stderr))
        return email, password

    def login(self, user):
        r = self.a.request('POST', '/api/auth/login', {'email': user[0], 'password': user[1]})
        if r.status != 200:
            raise RuntimeError('login failed: %r' % r)
        return r.json()['access_token']

    def take_id(self):
        """A seeded course id no test has read yet (cold in every layer)."""
        if not self.ids:
            raise AssertionError('ran out of unread course ids; seed more')
        return self.ids.pop()

    def redis_cli(self, *args):
        return subprocess.run(['redis-cli', '-p', str(self.redis_port)] + list(args),
                              capture_output=True, text=True, timeout=10)

    def restart_redis(self):
        """Kill our redis-server (that pid only) and start a new, empty one
        on the same port."""
        self.procs.stop(self.redis, signal.SIGKILL)
        self.start_redis()

    def stop(self):
        self.procs.stop_all()
        if os.environ.get('EL_E2E_KEEP'):
            print('cluster: kept', self.tmp, file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


C = None


def setUpModule():
    global C
    C = Cluster()
    try:
        C.start()
    except BaseException:
        C.stop()
        raise


def tearDownModule():
    if C:
        C.stop()


atexit.register(lambda: C and C.procs.stop_all())


# --------------------------------------------------------------------------
# Counting store queries and reading the counters

_mongo_client = None


def mongo_command(name):
    """Run one of the test server's own commands ({elearnStats: 1} ...)."""
    global _mongo_client
    import pymongo  # Debian's python3-pymongo, installed with python3-mockupdb
    if _mongo_client is None:
        _mongo_client = pymongo.MongoClient('127.0.0.1', C.mongo_port,
                                            serverSelectionTimeoutMS=5000)
    return _mongo_client.admin.command(name)


def cache_stats(front):
    r = front.request('GET', '/api/cache/stats', token=C.admin_token)
    if r.status != 200:
        raise AssertionError('GET /cache/stats on %s: %r' % (front.name, r))
    return r.json()


class StoreQueries:
    """Counts the store queries made between begin() and count().

    MongoDB: the test server's own count of `find` commands (one per course
    read), reset by begin(). SQLite: the sum over the three responders of
    GET /cache/stats "process"."store"."queries". Asking for the stats
    needs an admin session, which the first time may itself query the store
    (session, revocations): begin() asks each responder until two rounds
    agree, and count() checks that asking again changes nothing, so the
    asking is never counted as a query."""

    def __init__(self, fronts=None):
        self.fronts = fronts or C.all

    def _sqlite_total(self):
        return sum(cache_stats(f)['process']['store']['queries'] for f in self.fronts)

    def begin(self):
        if STORE == 'mongo':
            mongo_command('elearnReset')
            self.base = 0
        else:
            prev = [None]

            def stable():
                cur = self._sqlite_total()
                same = cur == prev[0]
                prev[0] = cur
                return same
            wait_until(stable, 10, 'the store query counters to stand still')
            self.base = prev[0]

    def count(self):
        if STORE == 'mongo':
            return mongo_command('elearnStats').get('find', 0) - self.base
        n = self._sqlite_total()
        again = self._sqlite_total()
        if again != n:
            raise AssertionError('reading the stats queries the store (%d then %d): cannot '
                                 'count' % (n, again))
        return n - self.base


LAYER_FIELDS = ('l1_hits', 'l2_hits', 'misses', 'stale')


def served(section, kind):
    """Reads of one cache type counted in a stats section."""
    return sum(section[kind][f] for f in LAYER_FIELDS)


# --------------------------------------------------------------------------
# Making the store unavailable (as in test_e2e.py)

class SqliteRecoveryLock:
    """Make a WAL-mode SQLite database unreadable for other processes: the
    WAL index header copies disagree, so every reader must run recovery,
    which needs the WAL write and recover locks -- which we hold. Readers
    get SQLITE_BUSY at their busy timeout. (See test_e2e.py for the full
    story.)"""

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
            self.orig = os.pread(self.fd, 48, 48)
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
    """Freeze the MongoDB test server (SIGSTOP): nothing answers."""

    def __enter__(self):
        os.kill(C.mongo.pid, signal.SIGSTOP)
        return self

    def __exit__(self, *exc):
        os.kill(C.mongo.pid, signal.SIGCONT)


def store_unavailable():
    return SqliteRecoveryLock(C.db_path) if STORE == 'sqlite' else MongoStopped()


def set_title_behind_the_cache(cid, title):
    """Change a course in the store directly, as another tool would: no
    cache hears of it."""
    if STORE == 'sqlite':
        db = sqlite3.connect(C.db_path, timeout=10)
        try:
            with db:
                n = db.execute('UPDATE courses SET title = ? WHERE id = ?', (title, cid)).rowcount
        finally:
            db.close()
    else:
        import bson
        global _mongo_client
        mongo_command('ping')
        n = _mongo_client[C.db_name]['courses'].update_one(
            {'_id': bson.ObjectId(cid)}, {'$set': {'title': title}}).matched_count
    if n != 1:
        raise AssertionError('course %s not found in the store' % cid)


# --------------------------------------------------------------------------
# Concurrency helper

def concurrent_gets(targets, timeout=20):
    """One GET per (port, path) in targets, each from its own thread and
    connection, all released at once by a barrier after connecting. Returns
    [(Resp or exception, seconds from release to answer)] in target order."""
    n = len(targets)
    barrier = threading.Barrier(n + 1)
    out = [None] * n

    def one(i, port, path):
        conn = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
        try:
            conn.connect()
            barrier.wait(timeout)
            t0 = time.monotonic()
            try:
                r = fetch(port, 'GET', path, conn=conn)
            except Exception as e:  # recorded, asserted by the caller
                r = e
            out[i] = (r, time.monotonic() - t0)
        except Exception as e:
            out[i] = (e, 0.0)
        finally:
            conn.close()
    threads = [threading.Thread(target=one, args=(i, p, q)) for i, (p, q) in enumerate(targets)]
    for t in threads:
        t.start()
    barrier.wait(timeout)
    for t in threads:
        t.join(timeout + 5)
    return out


# --------------------------------------------------------------------------
# Tests

def course_body(tag, **over):
    body = {'title': 'Cluster course %s' % tag, 'description': 'Made by test_cluster (%s).' % tag,
            'category': 'cluster-tests', 'difficulty': 'beginner', 'tags': ['cluster', tag],
            'modules': [{'title': 'First', 'content': 'Hello.', 'duration_minutes': 10},
                        {'title': 'Second', 'content': 'Again.', 'duration_minutes': 20}]}
    body.update(over)
    return body


class ClusterTest(unittest.TestCase):
    maxDiff = 2000

    def write(self, front, method, path, body=None, expect=200):
        r = front.request(method, path, body, token=C.admin_token)
        self.assertEqual(r.status, expect, '%s %s on %s: %r' % (method, path, front.name, r))
        return r

    def warm_everywhere(self, path):
        """Read path on every responder until each serves it from its own
        L1; returns the body (the same everywhere)."""
        bodies = set()
        for f in C.all:
            def in_l1():
                r = f.get(path)
                self.assertIn(r.status, (200, 404), r)
                return r if r.layer == 'L1' else None
            bodies.add(wait_until(in_l1, 5, '%s in the L1 of %s' % (path, f.name)).body)
        self.assertEqual(len(bodies), 1, 'the responders disagree about %s' % path)
        return bodies.pop()

    def until_everywhere(self, path, pred, what, timeout=3.0):
        """Poll path on every responder until pred(resp) holds on each."""
        for f in C.all:
            last = [None]

            def ok():
                last[0] = f.get(path)
                return pred(last[0])
            try:
                wait_until(ok, timeout, '%s on %s' % (what, f.name), interval=0.005)
            except AssertionError as e:
                raise AssertionError('%s; last answer %r' % (e, last[0]))


class T01Coherence(ClusterTest):
    """After every write endpoint, and after an admin invalidation, every
    responder serves the new version although each had the old one in its
    L1. The writer rotates over a, b and c."""

    RECENT = '/api/courses?sort_by=recent&page_size=100'

    def items(self, r):
        return {i['_id']: i for i in r.json()['items']} if r.status == 200 else {}

    def test_post_course(self):
        before = json.loads(self.warm_everywhere(self.RECENT))
        c = self.write(C.a, 'POST', '/api/courses', course_body('post'), expect=201).json()
        self.until_everywhere(
            self.RECENT, lambda r: r.status == 200 and r.json()['items'][0] == c and
            r.json()['total'] == before['total'] + 1, 'the new course first in the list')
        self.until_everywhere('/api/courses/' + c['_id'],
                              lambda r: r.status == 200 and r.json() == c, 'the new course')

    def test_patch_course(self):
        cid = C.take_id()
        path = '/api/courses/' + cid
        old = json.loads(self.warm_everywhere(path))
        self.warm_everywhere(self.RECENT)
        title = 'Patched %s' % os.urandom(4).hex()
        new = self.write(C.b, 'PATCH', path, {'title': title}).json()
        self.assertEqual((new['title'], new['_id']), (title, cid))
        self.assertNotEqual(new, old)
        self.until_everywhere(path, lambda r: r.status == 200 and r.json() == new,
                              'the patched course')
        self.until_everywhere(self.RECENT, lambda r: self.items(r).get(cid) == new,
                              'the patched course in the list')

    def test_patch_module(self):
        cid = C.take_id()
        path = '/api/courses/' + cid
        old = json.loads(self.warm_everywhere(path))
        self.warm_everywhere(self.RECENT)
        mid = old['modules'][0]['_id']
        title = 'Module %s' % os.urandom(4).hex()
        new = self.write(C.c, 'PATCH', '%s/modules/%s' % (path, mid), {'title': title}).json()
        self.assertEqual(new['modules'][0]['title'], title)
        self.until_everywhere(path, lambda r: r.status == 200 and r.json() == new,
                              'the course with the patched module')
        self.until_everywhere(self.RECENT, lambda r: self.items(r).get(cid) == new,
                              'the patched module in the list')

    def test_delete_course(self):
        c = self.write(C.a, 'POST', '/api/courses', course_body('del'), expect=201).json()
        path = '/api/courses/' + c['_id']
        self.warm_everywhere(path)
        self.warm_everywhere(self.RECENT)
        self.write(C.b, 'DELETE', path, expect=204)
        self.until_everywhere(
            path, lambda r: r.status == 404 and r.json() == {'detail': 'Course not found'},
            '404 for the deleted course')
        self.until_everywhere(self.RECENT, lambda r: r.status == 200 and
                              c['_id'] not in self.items(r), 'the list without it')

    def test_enroll(self):
        cid = C.take_id()
        path = '/api/courses/' + cid
        old = json.loads(self.warm_everywhere(path))
        popular = '/api/courses?sort_by=popular&page_size=100'
        self.warm_everywhere(popular)
        r = self.write(C.c, 'POST', path + '/enroll')
        n = old['enrollment_count'] + 1
        self.assertEqual(r.json(), {'enrollment_count': n})
        self.until_everywhere(path, lambda r: r.status == 200 and
                              r.json()['enrollment_count'] == n, 'the new enrollment count')
        self.until_everywhere(popular, lambda r: r.status == 200 and
                              self.items(r)[cid]['enrollment_count'] == n,
                              'the new enrollment count in the popular list')

    def test_admin_invalidate(self):
        """The store changes behind the cache's back: every responder keeps
        serving its cached copy -- until an admin invalidates the course on
        one of them."""
        cid = C.take_id()
        path = '/api/courses/' + cid
        old = json.loads(self.warm_everywhere(path))
        self.warm_everywhere(self.RECENT)
        title = 'Behind the cache %s' % os.urandom(4).hex()
        set_title_behind_the_cache(cid, title)
        for f in C.all:  # the control: the cache really holds the old copy
            r = f.get(path)
            self.assertEqual((r.status, r.layer, r.json()), (200, 'L1', old), f.name)
        r = self.write(C.a, 'DELETE', '/api/cache/invalidate/' + cid)
        self.assertEqual(r.json(), {'message': 'Cache cleared for course %s' % cid})
        self.until_everywhere(path, lambda r: r.status == 200 and r.json()['title'] == title,
                              'the store\'s version after the invalidation')
        self.until_everywhere(self.RECENT, lambda r: self.items(r).get(cid, {}).get('title') ==
                              title, 'the store\'s version in the list')


class T02Propagation(ClusterTest):
    """How long after a write returns on one responder another serves the
    new version (its L1 held the old one): 30 writes, rotating over the
    three (writer, reader) pairs; the reader is polled as fast as one
    kept-alive connection allows."""

    ROUNDS = 30

    def test_propagation_delay_p99_under_50ms(self):
        cid = C.take_id()
        path = '/api/courses/' + cid
        self.warm_everywhere(path)
        pairs = [(C.a, C.b), (C.b, C.c), (C.c, C.a)]
        wconns = {f.name: f.conn() for f in C.all}
        rconns = {f.name: f.conn() for f in C.all}
        delays, polls = [], []
        try:
            for i in range(self.ROUNDS):
                writer, reader = pairs[i % 3]
                # Precondition: the reader serves the current version from L1.
                r = wait_until(lambda: (lambda r: r if r.layer == 'L1' else None)(
                    reader.get(path, conn=rconns[reader.name])), 5, 'L1 on ' + reader.name)
                title = 'Propagation %d %s' % (i, os.urandom(3).hex())
                self.assertNotEqual(r.json()['title'], title)
                w = writer.request('PATCH', path, {'title': title}, token=C.admin_token,
                                   conn=wconns[writer.name])
                t0 = time.monotonic()
                self.assertEqual(w.status, 200, w)
                n = 0
                while True:
                    r = reader.get(path, conn=rconns[reader.name])
                    n += 1
                    self.assertEqual(r.status, 200, r)
                    if r.json()['title'] == title:
                        break
                    if time.monotonic() - t0 > 5:
                        self.fail('round %d: %s still serves the old version 5 s after the '
                                  'write on %s: %r' % (i, reader.name, writer.name, r))
                delays.append((time.monotonic() - t0) * 1000)
                polls.append(n)
        finally:
            for c in list(wconns.values()) + list(rconns.values()):
                c.close()
        delays.sort()
        p50 = statistics.median(delays)
        p99 = delays[min(len(delays) - 1, int(round(0.99 * (len(delays) - 1))))]
        print('\n    propagation over %d writes: p50 %.2f ms, p99 %.2f ms, max %.2f ms '
              '(reads per round: max %d)' % (len(delays), p50, p99, delays[-1], max(polls)),
              flush=True)
        self.assertLess(p99, 50.0, 'propagation delays (ms): %s' % ['%.1f' % d for d in delays])


class T03ClusterStats(ClusterTest):
    """The "cluster" section of GET /cache/stats is the sum of the three
    processes' "process" sections, once each has flushed (every second).
    Runs before any Redis restart: the Redis hash then holds exactly what
    these three processes have flushed since they started."""

    FIELDS = [(kind, f) for kind in ('courses', 'courses_list') for f in LAYER_FIELDS]

    def snapshot(self):
        return {f.name: cache_stats(f) for f in C.all}

    def test_cluster_is_the_sum_of_the_processes(self):
        before = self.snapshot()
        ids = [C.take_id() for _ in range(3)]
        reads = {}
        for k, f in enumerate(C.all):
            # On each: a MISS or L2 then L1 hits for three courses, two lists.
            for cid in ids:
                for _ in range(k + 2):
                    self.assertEqual(f.get('/api/courses/' + cid).status, 200)
            for q in ('sort_by=top_rated&page_size=3', 'sort_by=duration&page_size=4'):
                for _ in range(2):
                    self.assertEqual(f.get('/api/courses?' + q).status, 200)
            reads[f.name] = (3 * (k + 2), 4)
        after = self.snapshot()
        for f in C.all:
            p0, p1 = before[f.name]['process'], after[f.name]['process']
            self.assertEqual((served(p1, 'courses') - served(p0, 'courses'),
                              served(p1, 'courses_list') - served(p0, 'courses_list')),
                             reads[f.name], 'reads counted by %s' % f.name)

        last = {}

        def summed():
            snap = self.snapshot()
            want = {(k, fl): sum(snap[n]['process'][k][fl] for n in snap)
                    for k, fl in self.FIELDS}
            want['store', 'queries'] = sum(snap[n]['process']['store']['queries'] for n in snap)
            for n in snap:
                cl = snap[n]['cluster']
                got = None if cl is None else {(k, fl): cl[k][fl] for k, fl in self.FIELDS}
                if got is not None:
                    got['store', 'queries'] = cl['store']['queries']
                last[n] = (got, want)
                if got != want:
                    return False
            return True
        try:
            wait_until(summed, 6, 'every responder\'s "cluster" section to equal the sum of '
                       'the "process" sections', interval=0.2)
        except AssertionError as e:
            diff = {n: {'%s.%s' % key: (g.get(key) if g else None, w[key]) for key in w
                        if (g.get(key) if g else None) != w[key]}
                    for n, (g, w) in last.items()}
            raise AssertionError('%s; differing fields as (cluster, sum of processes): %s' %
                                 (e, diff))


class T04Stampede(ClusterTest):
    """Cold misses for one course on four responders at once -- 100 per
    responder, each on its own connection -- make exactly one store query:
    single flight in each process, the fill lease across them (the issue's
    measured goal: 4 processes x 100 requests, 1 query)."""

    PER_RESPONDER = 100

    def test_400_concurrent_cold_misses_one_store_query(self):
        fourth = Responder(C, 'stampede4')
        try:
            self.stampede(C.all + [fourth])
        finally:
            fourth.stop()

    def stampede(self, fronts):
        cid = C.take_id()
        path = '/api/courses/' + cid
        q = StoreQueries(fronts)
        q.begin()
        out = concurrent_gets([(f.port, path) for f in fronts for _ in range(self.PER_RESPONDER)])
        bad = [r for r, _ in out if not isinstance(r, Resp) or r.status != 200]
        self.assertEqual(bad, [], 'failed reads in the stampede')
        bodies = {r.body for r, _ in out}
        self.assertEqual(len(bodies), 1, 'different bodies for one course')
        self.assertEqual(json.loads(bodies.pop())['_id'], cid)
        layers = collections.Counter(r.layer for r, _ in out)
        n = q.count()
        print('\n    stampede: %d requests, store queries %d, X-Cache %s, slowest %.0f ms' % (
            len(out), n, dict(layers), 1000 * max(t for _, t in out)), flush=True)
        self.assertEqual(n, 1, 'store queries for %d concurrent cold reads of one course'
                         % len(out))
        # The test's own validity: more reads reached the miss path (L2 or
        # the store) than there are processes, so both the single flight in
        # a process and the lease across them had misses to collapse.
        self.assertGreater(layers['MISS'] + layers['L2'], len(fronts), layers)


class T05LeaseHolderDeath(ClusterTest):
    """A lease taken by a "holder" that then died (we take it in Redis
    ourselves and never fill): requests on every responder wait for it,
    then one process takes the lease over and queries the store once; all
    succeed within the lease time plus a margin."""

    def test_dead_lease_holder(self):
        cid = C.take_id()
        path = '/api/courses/' + cid
        q = StoreQueries()
        q.begin()
        r = C.redis_cli('SET', 'lease:course:' + cid, 'dead-holder', 'NX', 'PX', '1500')
        self.assertEqual(r.stdout.strip(), 'OK', r)
        t0 = time.monotonic()
        out = concurrent_gets([(f.port, path) for f in C.all for _ in range(20)])
        total = time.monotonic() - t0
        bad = [r for r, _ in out if not isinstance(r, Resp) or r.status != 200]
        self.assertEqual(bad, [], 'failed reads behind a dead lease holder')
        self.assertEqual(len({r.body for r, _ in out}), 1)
        times = sorted(t for _, t in out)
        n = q.count()
        print('\n    dead lease holder: %d requests answered in %.2f-%.2f s, store queries %d'
              % (len(out), times[0], times[-1], n), flush=True)
        # Nobody went around the lease while it was held...
        self.assertGreater(times[0], 1.4, 'a request was answered while the lease was held')
        # ...and nobody waited much beyond it.
        self.assertLess(total, LEASE_MS / 1000 + 2.0, 'answers took %.2f s' % total)
        self.assertEqual(n, 1, 'store queries after the lease holder died')


class T06RedisRestart(ClusterTest):
    """Redis restarted (our redis-server killed, a new empty one on the same
    port): every responder's subscriber reconnects and drops its L1
    (invalidations sent while it was away are lost to it). And a write made
    just after the restart still reaches every responder, although right
    after a restart each process's first Redis command (the heartbeat the
    bus sends on resubscribing) fails on its old connection and opens the
    process's Redis breaker for 250 ms: a write in that window cannot
    announce itself nor update Redis, and the others must learn of it
    anyway (bus.h: "a loss is always detected")."""

    def restart_redis_and_resubscribe(self):
        n0 = {f.name: f.log_count(RESUBSCRIBED) for f in C.all}
        C.restart_redis()
        for f in C.all:
            wait_until(lambda: f.log_count(RESUBSCRIBED) > n0[f.name], 10,
                       '%s to log "%s" again' % (f.name, RESUBSCRIBED))

    @staticmethod
    def breaker_open(f, since):
        """f's Redis breaker is open, as its log tells: a "redis: down"
        line after offset since, and no "redis: up" after it."""
        text = read_text(f.log)[since:]
        down = text.rfind('redis: down')
        return down >= 0 and text.rfind('redis: up') < down

    def write_in_writer_outage(self, act, happened, before=lambda: None):
        """Call before(), then freeze Redis (SIGSTOP: nothing answers, the
        writer's first command times out and its breaker opens, so the
        rest of the write's Redis work -- the new version, the
        announcement, the generation -- cannot happen), run act(what
        before returned) (one write on a), and let Redis go on.
        happened(result) confirms the write really missed Redis."""
        state = before()
        self.since = {f.name: len(read_text(f.log)) for f in C.all}
        os.kill(C.redis.pid, signal.SIGSTOP)
        try:
            result = act(state)
        finally:
            os.kill(C.redis.pid, signal.SIGCONT)
        self.assertTrue(happened(result), 'the write did not miss Redis')
        return result

    def test_redis_restart_drops_l1_everywhere(self):
        cid = C.take_id()
        path = '/api/courses/' + cid
        body = self.warm_everywhere(path)
        self.restart_redis_and_resubscribe()
        for f in C.all:
            r = f.get(path)
            self.assertEqual(r.status, 200, r)
            self.assertIn(r.layer, ('L2', 'MISS'), '%s served a pre-restart L1 copy' % f.name)
            self.assertEqual(r.body, body)

    def test_write_that_missed_the_bus_reaches_everyone(self):
        """b and c hold the course and a list in L1 (read after they
        resubscribed); a's write cannot be announced. The lost messages used
        up sequence numbers: once a is heard again, b and c must drop their
        L1."""
        recent = '/api/courses?sort_by=recent&page_size=100'

        def before():
            cid = C.take_id()
            path = '/api/courses/' + cid
            for f in (C.b, C.c):
                for p in (path, recent):
                    f.get(p)
                    r = f.get(p)
                    self.assertEqual((r.status, r.layer), (200, 'L1'), r)
            return path

        def act(path):
            lost0 = C.a.log_count('not announced')
            new = self.write(C.a, 'PATCH', path, {'title': 'Unannounced %s' %
                                                    os.urandom(4).hex()}).json()
            return path, new, C.a.log_count('not announced') > lost0
        path, new, _ = self.write_in_writer_outage(act, lambda res: res[2], before)
        cid = new['_id']
        self.until_everywhere(path, lambda r: r.status == 200 and r.json() == new,
                              'the course written while its announcement failed', timeout=5)
        self.until_everywhere(recent, lambda r: r.status == 200 and
                              {i['_id']: i for i in r.json()['items']}.get(cid) == new,
                              'the list after that write', timeout=5)

    def test_write_that_missed_redis_leaves_no_old_copy_in_l2(self):
        """A peer filled Redis with the course just before the write (done
        here with redis-cli: the very bytes, key and TTL such a fill
        writes); a's own SET of the new version fails. b and c have nothing
        in L1 (read before the restart, dropped on resubscribing): they
        must not be served the old copy from L2 for its TTL."""
        def before():
            cid = C.take_id()
            old = C.c.get('/api/courses/' + cid)
            self.assertEqual(old.status, 200, old)
            r = C.redis_cli('SET', 'course:' + cid, old.body.decode(), 'PX', '300000')
            self.assertEqual(r.stdout.strip(), 'OK', r)
            return cid, old

        def act(state):
            cid, old = state
            new = self.write(C.a, 'PATCH', '/api/courses/' + cid,
                             {'title': 'Missed Redis %s' % os.urandom(4).hex()}).json()
            return cid, new, C.a.log_count('not announced')
        # Redis was frozen through the whole write: its SET of the new
        # version never went out (the breaker had opened on the first
        # command), so Redis kept the old copy until the replay.
        cid, new, _ = self.write_in_writer_outage(act, lambda res: res[2] > 0, before)
        # Readers that come after b's and c's own breakers have closed
        # again (before that they go to the store, by luck right).
        for f in (C.b, C.c):
            wait_until(lambda: not self.breaker_open(f, self.since[f.name]), 5,
                       '%s to use Redis again' % f.name)
        self.until_everywhere('/api/courses/' + cid, lambda r: r.status == 200 and
                              r.json() == new, 'the written course, not the old copy in Redis',
                              timeout=5)


class T07RedisDiesUnderLoad(ClusterTest):
    """Reads through the shared upstream from several kept-alive clients
    while Redis is killed and restarted: every single answer is a 200."""

    THREADS = 6

    def test_redis_killed_and_restarted_under_load(self):
        ids = [C.take_id() for _ in range(4)]
        for cid in ids[:2]:
            self.warm_everywhere('/api/courses/' + cid)  # in L1: revalidated while Redis is out
        paths = ['/api/courses/' + cid for cid in ids] + [
            '/api/courses?sort_by=popular', '/api/courses?sort_by=recent&page_size=5&page=2']
        stop = threading.Event()
        lock = threading.Lock()
        done = [0]
        failures = []
        layers = collections.Counter()

        def load(k):
            conn = C.shared.conn(timeout=10)
            i = k
            while not stop.is_set():
                path = paths[i % len(paths)]
                i += 1
                try:
                    r = C.shared.get(path, conn=conn)
                    ok = r.status == 200
                except Exception as e:
                    r, ok = e, False
                    conn.close()
                    conn = C.shared.conn(timeout=10)
                with lock:
                    done[0] += 1
                    if ok:
                        layers[r.layer] += 1
                    else:
                        failures.append('%s -> %r' % (path, r))
            conn.close()

        def requests_done():
            with lock:
                return done[0]

        served0 = {f.name: read_text(f.log).count('GET /courses') for f in C.all}
        lost0 = {f.name: f.log_count(SUB_LOST) for f in C.all}
        sub0 = {f.name: f.log_count(RESUBSCRIBED) for f in C.all}
        threads = [threading.Thread(target=load, args=(k,)) for k in range(self.THREADS)]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: requests_done() >= 200, 20, '200 reads before the kill')
            C.procs.stop(C.redis, signal.SIGKILL)
            t_kill, n_kill = time.monotonic(), requests_done()
            for f in C.all:
                wait_until(lambda: f.log_count(SUB_LOST) > lost0[f.name], 10,
                           '%s to notice Redis is gone' % f.name)
            # The outage lasts past L1_MAX_STALE, so cached reads go the
            # revalidation path too (the scenario, not a wait for an event).
            wait_until(lambda: requests_done() >= n_kill + 300 and
                       time.monotonic() - t_kill > 1.5 * L1_MAX_STALE_MS / 1000, 20,
                       '300 reads with Redis dead')
            C.start_redis()
            for f in C.all:
                wait_until(lambda: f.log_count(RESUBSCRIBED) > sub0[f.name], 10,
                           '%s to resubscribe' % f.name)
            n_back = requests_done()
            wait_until(lambda: requests_done() >= n_back + 300, 20, '300 reads after the restart')
        finally:
            stop.set()
            for t in threads:
                t.join(15)
        print('\n    under load: %d reads, X-Cache %s, failed %d' % (
            done[0], dict(layers), len(failures)), flush=True)
        self.assertEqual(failures[:20], [], '%d of %d reads failed' % (len(failures), done[0]))
        for f in C.all:
            self.assertGreater(read_text(f.log).count('GET /courses'), served0[f.name],
                               'responder %s got none of the load' % f.name)


class T08DatabaseDown(ClusterTest):
    """The store stopped: what is cached is still served on every
    responder (L1, L2, or STALE), /health says "degraded" with "db":"down";
    after the store is back, "ok" again."""

    def health(self):
        out = {}

        def one(f):
            out[f.name] = f.get('/api/health', timeout=10)
        ts = [threading.Thread(target=one, args=(f,)) for f in C.all]
        for t in ts:
            t.start()
        for t in ts:
            t.join(15)
        return out

    def test_cached_reads_and_health_while_the_store_is_down(self):
        everywhere, on_a = C.take_id(), C.take_id()
        self.warm_everywhere('/api/courses/' + everywhere)
        self.assertEqual(C.a.get('/api/courses/' + on_a).status, 200)  # Redis has it
        lst = '/api/courses?sort_by=top_rated&page_size=6'
        self.warm_everywhere(lst)
        # Earlier tests restarted Redis: a responder's breaker may still be
        # waiting out its retry interval (up to 2 s). Start from all "ok".
        wait_until(lambda: all((r.status, r.json().get('status'), r.json().get('db')) ==
                               (200, 'ok', 'up') for r in self.health().values()), 10,
                   '/health "ok" everywhere before the store goes down', interval=0.1)
        with store_unavailable():
            for f in C.all:
                for path in ('/api/courses/' + everywhere, '/api/courses/' + on_a, lst):
                    r = f.get(path, timeout=10)
                    self.assertEqual(r.status, 200, '%s %s: %r' % (f.name, path, r))
                    self.assertIn(r.layer, ('L1', 'L2', 'STALE'), '%s %s' % (f.name, path))
            for f, r in self.health().items():
                self.assertEqual(r.status, 200, '%s: %r' % (f, r))
                h = r.json()
                self.assertEqual((h.get('status'), h.get('db'), h.get('redis')),
                                 ('degraded', 'down', 'up'), '%s: %r' % (f, r))
        for f in C.all:
            def ok():
                r = f.get('/api/health', timeout=10)
                return r.status == 200 and r.json().get('status') == 'ok'
            wait_until(ok, 15, '/health "ok" on %s after the store is back' % f.name,
                       interval=0.1)
        r = C.a.get('/api/courses/' + C.take_id())
        self.assertEqual((r.status, r.layer), (200, 'MISS'), r)


class T09Warming(ClusterTest):
    """A responder started with CACHE_WARM_MS=3000 warms the first page of
    recent, popular and top_rated and their courses, and serves the
    popular page from L1 on its very first request for it."""

    seq = itertools.count(1)

    def test_warming(self):
        d = Responder(C, 'warm%d' % next(self.seq), CACHE_WARM_MS=3000)  # a fresh log
        try:
            m = wait_until(lambda: re.search(r'^warm: (\d+) lists and (\d+) course reads',
                                             read_text(d.log), re.M), 10,
                           'the warm log line of the new responder')
            total = C.a.get('/api/courses?page_size=1').json()['total']
            self.assertEqual((int(m.group(1)), int(m.group(2))), (3, 3 * min(12, total)),
                             m.group(0))
            r = d.get('/api/courses?sort_by=popular')
            self.assertEqual((r.status, r.layer), (200, 'L1'), r)
            self.assertEqual(r.body, C.b.get('/api/courses?sort_by=popular').body)
            first = r.json()['items'][0]['_id']
            r = d.get('/api/courses/' + first)
            self.assertEqual((r.status, r.layer), (200, 'L1'), r)
        finally:
            d.stop()


ORDER = [T01Coherence, T02Propagation, T03ClusterStats, T04Stampede, T05LeaseHolderDeath,
         T06RedisRestart, T07RedisDiesUnderLoad, T08DatabaseDown, T09Warming]


def _on_signal(signum, frame):
    raise KeyboardInterrupt('signal %d' % signum)


def main():
    signal.signal(signal.SIGTERM, _on_signal)
    verbosity = 2 if '-v' in sys.argv else 1
    names = [a for a in sys.argv[1:] if not a.startswith('-')]
    loader = unittest.TestLoader()
    if names:
        suite = loader.loadTestsFromNames(names, sys.modules[__name__])
    else:
        suite = unittest.TestSuite(loader.loadTestsFromTestCase(c) for c in ORDER)
    print('== cluster (%s store, build %s)' % (STORE, BUILD), flush=True)
    t0 = time.monotonic()
    result = unittest.TextTestRunner(verbosity=verbosity, stream=sys.stdout).run(suite)
    bad = {getattr(t, 'test_case', t).id() for t, _ in result.failures + result.errors} | {
        t.id() for t in result.unexpectedSuccesses}
    real_bad = sum(1 for i in bad if i.count('.') >= 2)
    failed = len(bad) + len(result.skipped)
    passed = max(0, result.testsRun - real_bad - len(result.skipped))
    print('cluster-%s: %d passed, %d failed (%.0f s)' % (STORE, passed, failed,
                                                         time.monotonic() - t0), flush=True)
    out = os.environ.get('EL_E2E_RESULT')
    if out:
        with open(out, 'w') as f:
            f.write('%d %d\n' % (passed, failed))
    return 0 if failed == 0 and result.testsRun > 0 else 1


if __name__ == '__main__':
    sys.exit(main())
