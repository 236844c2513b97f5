#!/usr/bin/python3
"""test_concurrency.py -- concurrent writers on one course never leave a
stale copy in any cache (the version guard of lib/cache/tiered.h).

    EL_E2E_STORE=sqlite|mongo EL_E2E_BUILD=build \\
        /usr/bin/python3 tests/e2e/test_concurrency.py [-v] [TestName ...]

Normally run by tests/e2e/run.sh (suite "concurrency"), once per store.

The cluster is test_cluster.py's (three responders, each with an nginx of
its own, one Redis, one store), imported from there; with MongoDB, the
wire test server runs with --reply-jitter-ms, so acknowledgements of
concurrent writes reach the responders in another order than the writes
were applied -- the interleaving that a real server under load shows and
that its one request queue would otherwise hide.

Each round warms the course into every responder's L1, then sends 50
concurrent writes of one kind to it, spread over the three responders;
afterwards every responder must serve exactly what the store holds (read
from the store itself: the SQLite file, or the test server through
pymongo), and Redis must hold the store's revision. A stale copy would stay
until its TTL (minutes); the check waits for the bus to propagate, against
a deadline, never a fixed sleep. EL_CONCURRENCY_ROUNDS (default 20) sets
the rounds per kind of write.
"""

import atexit
import concurrent.futures
import datetime
import json
import os
import signal
import sqlite3
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_cluster as tc  # noqa: E402  (the cluster harness)

ROUNDS = int(os.environ.get('EL_CONCURRENCY_ROUNDS', '20'))
WRITERS = 50
JITTER_MS = 4


class JitteredCluster(tc.Cluster):
    """test_cluster's Cluster, with write replies of the MongoDB test server
    reordered."""

    def start_mongo(self):
        log = os.path.join(self.tmp, 'mongo.log')
        self.mongo = self.procs.start('mongo_server.py', [
            tc.PY, os.path.join(tc.ROOT, 'tests/mongo_server.py'), '--port', str(self.mongo_port),
            '--reply-jitter-ms', str(JITTER_MS)], log=log)
        tc.wait_until(lambda: tc.tcp_open(self.mongo_port) or self.mongo.poll() is not None, 20,
                      'mongo test server :%d' % self.mongo_port)
        if self.mongo.poll() is not None:
            raise RuntimeError('mongo test server exited:\n' + tc.tail(log))


C = None
STUDENTS = []  # access tokens of WRITERS students


def setUpModule():
    global C
    tc.NCOURSES = 2 * ROUNDS + 2  # a fresh course for every round
    C = JitteredCluster()
    tc.C = C  # the helpers in test_cluster read their module's C
    try:
        C.start()
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            users = list(ex.map(lambda _: C.create_user('student'), range(WRITERS)))
        # Two logins at a time: more would queue on (or be refused by) the
        # password-hashing gate of a 2-core machine.
        with concurrent.futures.ThreadPoolExecutor(2) as ex:
            STUDENTS.extend(ex.map(C.login, users))
    except BaseException:
        C.stop()
        raise


def tearDownModule():
    if C:
        C.stop()


def iso(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
        '%Y-%m-%dT%H:%M:%S.') + '%03dZ' % (ms % 1000)


_mongo = None


def store_truth(cid):
    """(title, enrollment_count, updated_at ISO, rev) as the store has them."""
    global _mongo
    if tc.STORE == 'sqlite':
        db = sqlite3.connect('file:%s?mode=ro' % C.db_path, uri=True, timeout=5)
        try:
            row = db.execute('SELECT title, enrollment_count, updated_at, rev FROM courses'
                             ' WHERE id = ?', (cid,)).fetchone()
        finally:
            db.close()
        return (row[0], row[1], iso(row[2]), row[3])
    import bson
    import pymongo
    if _mongo is None:
        _mongo = pymongo.MongoClient('127.0.0.1', C.mongo_port, serverSelectionTimeoutMS=5000)
    d = _mongo[C.db_name].courses.find_one({'_id': bson.ObjectId(cid)})
    ms = int(d['updated_at'].replace(tzinfo=datetime.timezone.utc).timestamp() * 1000 + 0.5)
    return (d['title'], d['enrollment_count'], iso(ms), d['rev'])


def served(doc):
    return (doc['title'], doc['enrollment_count'], doc['updated_at'])


class Concurrency(tc.ClusterTest):

    def round(self, cid, send):
        path = '/api/courses/' + cid
        self.warm_everywhere(path)
        fronts = C.all

        def one(i):
            return send(fronts[i % len(fronts)], path, i)
        with concurrent.futures.ThreadPoolExecutor(WRITERS) as ex:
            statuses = list(ex.map(one, range(WRITERS)))
        self.assertEqual(statuses, [200] * WRITERS)
        truth = store_truth(cid)
        last = {}

        def all_agree():
            for f in fronts:
                r = f.get(path)
                last[f.name] = (r.status, r.layer, r.json() if r.status == 200 else r.body)
                if r.status != 200 or served(r.json()) != truth[:3]:
                    return False
            return True
        try:
            tc.wait_until(all_agree, 5, 'every responder to serve the store\'s version',
                          interval=0.01)
        except AssertionError as e:
            raise AssertionError('%s: store %r, served %r' % (
                e, truth, {k: (v[0], v[1], served(v[2]) if v[0] == 200 else v[2])
                           for k, v in last.items()}))
        # Redis holds the store's revision, and its bytes are what is served.
        v = C.redis_cli('GET', 'course:' + cid).stdout.rstrip('\n')
        self.assertTrue(v.startswith('#%d:' % truth[3]), 'Redis holds %r, the store rev %d' % (
            v[:40], truth[3]))
        self.assertEqual(served(json.loads(v.split(':', 1)[1])), truth[:3])
        return truth

    def test_50_concurrent_enrolls(self):
        for n in range(ROUNDS):
            cid = C.take_id()
            before = store_truth(cid)[1]

            def send(front, path, i):
                return front.request('POST', path + '/enroll', token=STUDENTS[i]).status
            truth = self.round(cid, send)
            self.assertEqual(truth[1], before + WRITERS, 'round %d' % n)

    def test_50_concurrent_patches(self):
        for n in range(ROUNDS):
            cid = C.take_id()
            tag = os.urandom(3).hex()

            def send(front, path, i):
                return front.request('PATCH', path, {'title': 'r%d-%s-w%d' % (n, tag, i)},
                                     token=C.admin_token).status
            truth = self.round(cid, send)
            self.assertTrue(truth[0].startswith('r%d-%s-' % (n, tag)), truth)


def main():
    signal.signal(signal.SIGTERM, tc._on_signal)
    verbosity = 2 if '-v' in sys.argv else 1
    names = [a for a in sys.argv[1:] if not a.startswith('-')]
    loader = unittest.TestLoader()
    if names:
        suite = loader.loadTestsFromNames(names, sys.modules[__name__])
    else:
        suite = loader.loadTestsFromTestCase(Concurrency)
    print('== concurrency (%s store, build %s)' % (tc.STORE, tc.BUILD), flush=True)
    t0 = time.monotonic()
    result = unittest.TextTestRunner(verbosity=verbosity, stream=sys.stdout).run(suite)
    bad = {getattr(t, 'test_case', t).id() for t, _ in result.failures + result.errors}
    real_bad = sum(1 for i in bad if i.count('.') >= 2)
    failed = len(bad) + len(result.skipped)
    passed = max(0, result.testsRun - real_bad - len(result.skipped))
    print('concurrency-%s: %d passed, %d failed (%.0f s)' % (tc.STORE, passed, failed,
                                                             time.monotonic() - t0), flush=True)
    out = os.environ.get('EL_E2E_RESULT')
    if out:
        with open(out, 'w') as f:
            f.write('%d %d\n' % (passed, failed))
    return 0 if failed == 0 and result.testsRun > 0 else 1


atexit.register(lambda: C and C.procs.stop_all())

if __name__ == '__main__':
    sys.exit(main())
