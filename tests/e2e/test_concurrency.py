#!/usr/bin/python3
"""test_concurrency.py -- concurrent writers on one course never leave a
stale copy in any cache (the version guard of lib/cache/tiered.h).

    EL_E2E_STORE=sqlite|mongo EL_E2E_BUILD=build \\
        /usr/bin/python3 tests/e2e/test_concurrency.py [-v] [TestName ...]

Normally run by tests/e2e/run.sh, once per store. Python 3 stdlib, plus
Debian's python3-pymongo (installed with python3-mockupdb) to read the
truth from the MongoDB test server.

The stack is the harness's (harness.py) with three responders a, b, c,
each behind an nginx of its own, one Redis, one store. With MongoDB it is
always the wire test server, started with --reply-jitter-ms: writes apply
one at a time but their acknowledgements reach the responders in another
order -- what a real server under load does, and what the test server's
one request queue would otherwise hide.

Each round brings a fresh course into every responder's L1, then sends 50
concurrent writes of one kind to it, spread over the three responders.
Afterwards every responder must serve exactly what the store holds (read
from the store itself: the SQLite file, or the test server through
pymongo), and Redis must hold the store's revision and those bytes. A stale
copy would stay until its TTL (minutes); the check waits for the bus to
propagate against a deadline, never a fixed sleep. EL_CONCURRENCY_ROUNDS
(default 20) sets the rounds per kind of write.
"""

import concurrent.futures
import datetime
import json
import os
import sqlite3
import sys
import types

import harness
from harness import STORE, Case, create_user, main, tail, tcp_open, token_of, wait_until
from harness import S

ROUNDS = int(os.environ.get('EL_CONCURRENCY_ROUNDS', '20'))
WRITERS = 50
JITTER_MS = 4
# A fresh course for every round (the harness keeps 4 ids for sharing).
harness.NCOURSES = max(harness.NCOURSES, 2 * ROUNDS + 4)


def start_jittered_mongo(self):
    """The harness's start_mongo, with write replies reordered."""
    log = os.path.join(self.tmp, 'mongo.log')
    self.mongo = self.procs.start('mongo_server.py', [
        harness.PY, os.path.join(harness.ROOT, 'tests/mongo_server.py'),
        '--port', str(self.mongo_port), '--reply-jitter-ms', str(JITTER_MS)], log=log)
    wait_until(lambda: tcp_open(self.mongo_port) or self.mongo.poll() is not None, 20,
               'mongo test server :%d' % self.mongo_port)
    if self.mongo.poll() is not None:
        raise RuntimeError('mongo test server exited:\n' + tail(log))


S.start_mongo = types.MethodType(start_jittered_mongo, S)
STUDENTS = []  # access tokens of WRITERS students


def setUpModule():
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        users = list(ex.map(lambda _: create_user('student', 'conc'), range(WRITERS)))

    def login(u):
        r = S.a.request('POST', '/api/auth/login', {'email': u.email, 'password': u.password})
        if r.status != 200:
            raise AssertionError('login failed: %r' % r)
        return r.json()['access_token']
    # Two logins at a time: more would queue on (or be refused by) the
    # password-hashing gate of a 2-core machine.
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        STUDENTS.extend(ex.map(login, users))
    token_of('admin')


def iso(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
        '%Y-%m-%dT%H:%M:%S.') + '%03dZ' % (ms % 1000)


_mongo = None


def store_truth(cid):
    """(title, enrollment_count, updated_at ISO, rev) as the store has them."""
    global _mongo
    if STORE == 'sqlite':
        db = sqlite3.connect('file:%s?mode=ro' % S.db_path, uri=True, timeout=5)
        try:
            row = db.execute('SELECT title, enrollment_count, updated_at, rev FROM courses'
                             ' WHERE id = ?', (cid,)).fetchone()
        finally:
            db.close()
        return (row[0], row[1], iso(row[2]), row[3])
    import bson
    import pymongo
    if _mongo is None:
        _mongo = pymongo.MongoClient('127.0.0.1', S.mongo_port, serverSelectionTimeoutMS=5000)
    d = _mongo[S.db_name].courses.find_one({'_id': bson.ObjectId(cid)})
    ms = int(d['updated_at'].replace(tzinfo=datetime.timezone.utc).timestamp() * 1000 + 0.5)
    return (d['title'], d['enrollment_count'], iso(ms), d['rev'])


def served(doc):
    return (doc['title'], doc['enrollment_count'], doc['updated_at'])


class Concurrency(Case):

    def round(self, cid, send):
        path = '/api/courses/' + cid
        for f in S.all:
            self.until_in_l1(f, cid)

        def one(i):
            return send(S.all[i % len(S.all)], path, i)
        with concurrent.futures.ThreadPoolExecutor(WRITERS) as ex:
            statuses = list(ex.map(one, range(WRITERS)))
        self.assertEqual(statuses, [200] * WRITERS)
        truth = store_truth(cid)
        last = {}

        def all_agree():
            for f in S.all:
                r = f.get(path)
                last[f.name] = (r.status, r.layer, r.json() if r.status == 200 else r.body)
                if r.status != 200 or served(r.json()) != truth[:3]:
                    return False
            return True
        try:
            wait_until(all_agree, 5, 'every responder to serve the store\'s version',
                       interval=0.01)
        except AssertionError as e:
            raise AssertionError('%s: store %r, served %r' % (
                e, truth, {k: (v[0], v[1], served(v[2]) if v[0] == 200 else v[2])
                           for k, v in last.items()}))
        # Redis holds the store's revision, and its bytes are what is served.
        v = S.redis_cli('GET', 'course:' + cid).stdout.rstrip('\n')
        self.assertTrue(v.startswith('#%d:' % truth[3]), 'Redis holds %r, the store rev %d' % (
            v[:40], truth[3]))
        self.assertEqual(served(json.loads(v.split(':', 1)[1])), truth[:3])
        return truth

    def test_50_concurrent_enrolls(self):
        for n in range(ROUNDS):
            cid = S.take_id()
            before = store_truth(cid)[1]

            def send(front, path, i):
                return front.request('POST', path + '/enroll', token=STUDENTS[i]).status
            truth = self.round(cid, send)
            self.assertEqual(truth[1], before + WRITERS, 'round %d' % n)

    def test_50_concurrent_patches(self):
        for n in range(ROUNDS):
            cid = S.take_id()
            tag = os.urandom(3).hex()

            def send(front, path, i):
                return front.request('PATCH', path, {'title': 'r%d-%s-w%d' % (n, tag, i)},
                                     token=S.admin_token).status
            truth = self.round(cid, send)
            self.assertTrue(truth[0].startswith('r%d-%s-' % (n, tag)), truth)


if __name__ == '__main__':
    sys.exit(main([Concurrency], fronts='abc', own_mongo=True, name='concurrency'))
