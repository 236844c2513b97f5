#!/usr/bin/python3
"""test_sentinel.py -- auth state that no Redis event can undo, on real
Redis topologies on loopback:

  - eviction: a Redis under allkeys-lru evicts the bucket holding a
    revocation while other logins keep the auth path hot -> still 401;
  - the lost-write failover: replica paused, revoke, master killed, replica
    promoted by Sentinel -> 401 after the failover;
  - the stale master: master paused, Sentinel promotes the replica, old
    master resumed -> elearn follows the new master, and no revocation made
    through elearn is only on the old one;
  - the master killed under read load: no failed read, writes 503 at most
    during the failover and 2xx after it, coherence afterwards.

Each topology is 1 master + 1 replica + 3 sentinels (redis-server and
redis-server --sentinel, down-after-milliseconds 1000), started by the test
that uses it on free ports and stopped by pid; responders reach it with
REDIS_URL=redis-sentinel://.../mymaster/0. Every wait is a condition polled
against a deadline (harness.wait_until).
"""

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from harness import S, AuthCase, main, scaled, wait_until, free_port, course_body

MASTER_NAME = 'mymaster'


def cli(port, *args):
    r = subprocess.run(['redis-cli', '-p', str(port)] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=scaled(10))
    return r.stdout.strip()


def info(port, section):
    out = {}
    for line in cli(port, 'INFO', section).splitlines():
        if ':' in line:
            k, v = line.split(':', 1)
            out[k] = v.strip()
    return out


def fnv_bucket(s, n=64):
    """el_key_auth_bucket_index: FNV-1a 64 of the id, mod 64."""
    h = 0xcbf29ce484222325
    for c in s.encode():
        h = ((h ^ c) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h % n


def bucket_key(ident):
    return 'auth:{b%02d}' % fnv_bucket(ident)


def claims(token):
    part = token.split('.')[1]
    return json.loads(base64.urlsafe_b64decode(part + '=' * (-len(part) % 4)))


def pump(port, mib):
    """SET mib values of 1 MiB on the server at port (one pipeline)."""
    c = socket.create_connection(('127.0.0.1', port))
    v = b'p' * (1 << 20)
    c.sendall(b''.join(b'*3\r\n$3\r\nSET\r\n$7\r\npump:%02d\r\n$%d\r\n%s\r\n' % (
        i, len(v), v) for i in range(mib)))
    got = b''
    while got.count(b'\r\n') < mib:
        got += c.recv(65536)
    c.close()


class Redis:
    """One redis-server of a topology."""

    def __init__(self, name, *extra):
        self.name, self.port = name, free_port()
        self.dir = os.path.join(S.tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        self.extra = list(extra)
        self.proc = None
        self.start()

    def start(self):
        self.proc = S.procs.start('redis ' + self.name, [
            'redis-server', '--port', str(self.port), '--bind', '127.0.0.1', '--dir', self.dir,
            '--save', '', '--appendonly', 'no', '--daemonize', 'no',
            '--logfile', os.path.join(self.dir, 'redis.log')] + self.extra)
        wait_until(lambda: cli(self.port, 'PING') == 'PONG', 10, 'redis %s' % self.name)

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def kill(self):
        S.procs.stop(self.proc, signal.SIGKILL)


class Topology:
    """Master, replica, three sentinels."""

    def __init__(self, tag):
        self.master = Redis(tag + '-m')
        self.replica = Redis(tag + '-r', '--replicaof', '127.0.0.1', str(self.master.port),
                             '--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0')
        wait_until(lambda: info(self.replica.port, 'replication').get('master_link_status') == 'up',
                   10, 'replica linked')
        self.sentinels = []
        for i in range(3):
            port = free_port()
            d = os.path.join(S.tmp, '%s-s%d' % (tag, i))
            os.makedirs(d, exist_ok=True)
            conf = os.path.join(d, 'sentinel.conf')
            with open(conf, 'w') as f:
                f.write('port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n'
                        'sentinel monitor %s 127.0.0.1 %d 2\n'
                        'sentinel down-after-milliseconds %s 1000\n'
                        'sentinel failover-timeout %s 3000\n'
                        'sentinel parallel-syncs %s 1\n' % (
                            port, d, os.path.join(d, 'sentinel.log'), MASTER_NAME,
                            self.master.port, MASTER_NAME, MASTER_NAME, MASTER_NAME))
            p = S.procs.start('sentinel %s-%d' % (tag, i), ['redis-server', conf, '--sentinel'])
            self.sentinels.append((port, p))
        for port, _ in self.sentinels:
            wait_until(lambda: self.sentinel_view(port) == (1, 2), 20,
                       'sentinel :%d to know the replica and the other sentinels' % port)

    def sentinel_view(self, port):
        lines = cli(port, 'SENTINEL', 'master', MASTER_NAME).splitlines()
        kv = dict(zip(lines[0::2], lines[1::2]))
        try:
            return int(kv.get('num-slaves', -1)), int(kv.get('num-other-sentinels', -1))
        except ValueError:
            return None

    def url(self):
        return 'redis-sentinel://%s/%s/0' % (
            ','.join('127.0.0.1:%d' % p for p, _ in self.sentinels), MASTER_NAME)

    def master_port(self):
        """The master's port as the sentinels see it (None while unknown)."""
        for port, _ in self.sentinels:
            out = cli(port, 'SENTINEL', 'get-master-addr-by-name', MASTER_NAME).splitlines()
            if len(out) == 2:
                return int(out[1])
        return None

    def await_failover(self, to):
        wait_until(lambda: self.master_port() == to.port, 20,
                   'Sentinel to promote %s' % to.name)
        wait_until(lambda: info(to.port, 'replication').get('role') == 'master', 10,
                   '%s to be a master' % to.name)

    def stop(self):
        for _, p in self.sentinels:
            S.procs.stop(p)
        for r in (self.master, self.replica):
            if r.proc.poll() is None:
                try:
                    r.signal(signal.SIGCONT)
                except OSError:
                    pass
            S.procs.stop(r.proc)


def health(front):
    r = front.get('/api/health')
    return r.json()


def uses_master(front, port):
    h = health(front)
    t = h.get('redis_topology') or {}
    return t.get('master', '').endswith(':%d' % port) and h.get('revocations', {}).get('synced')


class SentinelCase(AuthCase):
    """A topology and two responders (x, y) on it, per test."""

    def setUp(self):
        super().setUp()
        self.topo = Topology(self._testMethodName[-8:])
        self.x = S.front('x' + self._testMethodName[-4:], REDIS_URL=self.topo.url())
        self.y = S.front('y' + self._testMethodName[-4:], REDIS_URL=self.topo.url())
        for f in (self.x, self.y):
            wait_until(lambda: uses_master(f, self.topo.master.port), 10,
                       '%s on the master, revocations synced' % f.name)

    def tearDown(self):
        for f in (self.x, self.y):
            f.stop()
            S.fronts.remove(f)
        self.topo.stop()

    def student_on(self, front, tag):
        u = self.new_student(tag)
        r = self.try_login(front, u.email, u.password)
        self.assertEqual(r.status, 200, r)
        return u, r.json()

    def me_everywhere(self, token):
        return [self.me(f, token).status for f in (self.x, self.y)]


class T01LostWriteFailover(SentinelCase):
    def test_revocation_survives_failover(self):
        topo = self.topo
        u, gone = self.student_on(self.x, 'lost')
        _, kept = self.student_on(self.x, 'kept')
        self.assertEqual(self.me_everywhere(gone['access_token']), [200, 200])
        # The replica stops taking anything; the master still lists it. 48
        # MiB of other writes fill the socket buffers between them, so what
        # comes next waits in the master's memory -- and dies with it.
        topo.replica.signal(signal.SIGSTOP)
        pump(topo.master.port, 48)
        r = self.logout(self.x, gone['access_token'])
        self.assertEqual(r.status, 200, r)
        jti = claims(gone['access_token'])['jti']
        self.assertEqual(self.me_everywhere(gone['access_token']), [401, 401])
        # The master dies with the revocation; the replica never had it.
        topo.master.kill()
        topo.replica.signal(signal.SIGCONT)
        # Lost: the replica about to be promoted never got it.
        self.assertEqual(cli(topo.replica.port, 'HEXISTS', bucket_key(jti), 'r:' + jti), '0')
        seen = []

        def after_failover():
            seen.extend(self.me_everywhere(gone['access_token']))
            return all(uses_master(f, topo.replica.port) for f in (self.x, self.y))
        wait_until(after_failover, 25, 'both responders on the promoted replica', interval=0.05)
        self.assertEqual(set(seen), {401}, 'the revoked token during the failover')
        self.assertEqual(self.me_everywhere(gone['access_token']), [401, 401])
        self.assertEqual(self.me_everywhere(kept['access_token']), [200, 200])
        # The new master was given the revocation back from the store.
        self.assertEqual(cli(topo.replica.port, 'HEXISTS', bucket_key(jti), 'r:' + jti), '1')
        self.assertEqual(len(cli(topo.replica.port, 'HGET', bucket_key(jti), '@sync')), 40)


class T02StaleMaster(SentinelCase):
    def test_paused_master_comes_back(self):
        topo = self.topo
        _, a = self.student_on(self.x, 'stale-a')
        _, b = self.student_on(self.x, 'stale-b')
        topo.master.signal(signal.SIGSTOP)
        topo.await_failover(topo.replica)
        wait_until(lambda: all(uses_master(f, topo.replica.port) for f in (self.x, self.y)), 20,
                   'both responders on the new master')
        self.assertEqual(self.logout(self.x, a['access_token']).status, 200)
        # The old master wakes up still believing it is the master.
        topo.master.signal(signal.SIGCONT)
        t_end = time.monotonic() + scaled(3)
        statuses = []
        while time.monotonic() < t_end:
            r = self.logout(self.y, b['access_token']) if not statuses else None
            if r is not None:
                statuses.append(r.status)
            self.assertEqual(self.me_everywhere(a['access_token']), [401, 401])
        self.assertEqual(statuses, [200])
        self.assertEqual(self.me_everywhere(b['access_token']), [401, 401])
        for tok in (a, b):
            jti = claims(tok['access_token'])['jti']
            # On the master Sentinel chose -- where every process looks.
            self.assertEqual(cli(topo.replica.port, 'HEXISTS', bucket_key(jti), 'r:' + jti), '1',
                             jti)
        # Settled: both on the new master, every bucket trusted again (the
        # old master rejoining as a replica may cost the new one a slow
        # moment, which a responder treats as an outage and re-copies).
        for f in (self.x, self.y):
            wait_until(lambda: uses_master(f, topo.replica.port), 10,
                       '%s on the new master, synced' % f.name)


class T03KillMasterUnderLoad(SentinelCase):
    def test_reads_never_fail(self):
        topo = self.topo
        admin = S.admin_token
        cids = [S.take_id() for _ in range(4)]
        for f in (self.x, self.y):
            for cid in cids:
                self.until_in_l1(f, cid)
        failures, reads, stop = [], [0], threading.Event()

        def reader(front):
            conn = None
            while not stop.is_set():
                for cid in cids:
                    r = front.get('/api/courses/' + cid)
                    reads[0] += 1
                    if r.status != 200:
                        failures.append((front.name, cid, r.status))
        threads = [threading.Thread(target=reader, args=(f,)) for f in (self.x, self.y)]
        for t in threads:
            t.start()
        try:
            topo.master.kill()
            writes = []

            def write_ok():
                r = self.x.request('PATCH', '/api/courses/' + cids[0],
                                   {'title': 'after failover %d' % len(writes)}, token=admin)
                writes.append(r.status)
                return r.status == 200 and uses_master(self.x, topo.replica.port)
            wait_until(write_ok, 25, 'a write after the failover', interval=0.1)
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(failures, [], 'failed reads during the failover')
        self.assertGreater(reads[0], 50)
        self.assertEqual(set(writes) - {200, 503}, set(), writes)
        # Coherence: a write through x is seen on y within the bus bound.
        wait_until(lambda: uses_master(self.y, topo.replica.port), 10, 'y on the new master')
        title = 'coherent %s' % os.urandom(4).hex()
        r = self.x.request('PATCH', '/api/courses/' + cids[1], {'title': title}, token=admin)
        self.assertEqual(r.status, 200, r)
        wait_until(lambda: self.y.get('/api/courses/' + cids[1]).json().get('title') == title, 2,
                   'the write seen on y')


class T04Eviction(AuthCase):
    """allkeys-lru on a small Redis: the bucket of a revocation is evicted
    while other logins keep the auth path hot."""

    def test_evicted_revocation_stays_401(self):
        red = Redis('lru', '--maxmemory', '3mb', '--maxmemory-policy', 'allkeys-lru',
                    '--maxmemory-samples', '10')
        f = S.front('lru', REDIS_URL='redis://127.0.0.1:%d/0' % red.port)
        try:
            wait_until(lambda: health(f).get('revocations', {}).get('synced'), 10,
                       'revocations synced')
            _, gone = self.student_on(f, 'ev-gone')
            _, hot = self.student_on(f, 'ev-hot')
            self.assertEqual(self.logout(f, gone['access_token']).status, 200)
            jti = claims(gone['access_token'])['jti']
            key = bucket_key(jti)
            self.assertEqual(cli(red.port, 'HEXISTS', key, 'r:' + jti), '1')
            filler = socket.create_connection(('127.0.0.1', red.port))
            value = b'x' * 1024
            n = [0]

            def evicted():
                batch = b''.join(b'*3\r\n$3\r\nSET\r\n$%d\r\nfill:%d\r\n$1024\r\n%s\r\n' % (
                    len(b'fill:%d' % i), i, value) for i in range(n[0], n[0] + 500))
                filler.sendall(batch)
                got = b''
                while got.count(b'\r\n') < 500:
                    got += filler.recv(65536)
                n[0] += 500
                # The hot login keeps its buckets recently used, as real
                # traffic keeps the markers it reads.
                self.assertEqual(self.me(f, hot['access_token']).status, 200)
                self.assertEqual(self.me(f, gone['access_token']).status, 401)
                return cli(red.port, 'EXISTS', key) == '0'
            wait_until(evicted, 30, 'the revocation bucket evicted', interval=0)
            filler.close()
            self.assertGreater(int(info(red.port, 'stats')['evicted_keys']), 0)
            self.assertEqual(self.me(f, gone['access_token']).status, 401)
            # Copied back from the store, with its marker, once a request
            # finds it missing. (Redis is still full: its LRU clock ticks
            # once a second, so the copy may be evicted again at once --
            # and is then copied again on the next request that needs it.)
            def copied_back():
                self.assertEqual(self.me(f, gone['access_token']).status, 401)
                return (cli(red.port, 'HEXISTS', key, 'r:' + jti) == '1' and
                        len(cli(red.port, 'HGET', key, '@sync')) == 40)
            wait_until(copied_back, 10, 'the bucket copied back', interval=0.05)
            self.assertEqual(self.me(f, gone['access_token']).status, 401)
            self.assertEqual(self.me(f, hot['access_token']).status, 200)
        finally:
            f.stop()
            S.fronts.remove(f)
            S.procs.stop(red.proc)

    student_on = SentinelCase.student_on


ORDER = [T04Eviction, T01LostWriteFailover, T02StaleMaster, T03KillMasterUnderLoad]

if __name__ == '__main__':
    sys.exit(main(ORDER, fronts='a', name='sentinel'))
