#!/usr/bin/python3
"""test_failures.py -- what breaks around the responders: revocations that
survive Redis restarts, flushes, deaths and hangs; Redis hung and dead
(the breaker keeps requests fast) and back; the database down (cached
reads served, uncached ones 503, never cached) and back; the MongoDB
server killed and restarted.

Runs on the harness's stack (harness.py), in ORDER; each test restores what
it broke.
"""

import os
import signal
import sys
import time

from harness import (CAN_STOP_DB, NEEDS_STOPPABLE_DB, STORE, S, AuthCase, Case, main, only_if,
                     store_unavailable, wait_until)



def redis_in_use_by_both():
    """True once A caches through Redis and B reads from it: a not-found
    course A has just looked up is an L2 hit on B. A course key, not a list
    key: list keys carry a process's list generation, which A's writes move
    and which this must not depend on."""
    missing = os.urandom(12).hex()
    ra = S.a.get('/api/courses/' + missing)
    rb = S.b.get('/api/courses/' + missing)
    return ra.status == 404 and rb.status == 404 and rb.layer == 'L2'


class T20RevocationAndRedis(AuthCase):
    """A revocation is never lost: not when Redis restarts empty, is
    flushed, dies or hangs, and not after it comes back. Destructive: runs
    before T09; each test leaves Redis up."""

    def two_logins(self, tag):
        u = self.new_student(tag)
        gone, kept = self.login(u), self.login(u, S.b)
        self.assertAcceptedEverywhere(gone['access_token'], u, 'before')
        self.assertAcceptedEverywhere(kept['access_token'], u, 'before')
        return u, gone, kept

    def assertStillRevoked(self, u, gone, kept, when):
        self.assertRejectedEverywhere(gone['access_token'], 'revoked token, ' + when)
        self.assertJsonError(self.refresh(S.a, gone['refresh_token']), 401)
        self.assertAcceptedEverywhere(kept['access_token'], u, 'other login, ' + when)

    def watch_until_redis_is_back(self, token, at_least=1.5):
        """Ask both responders about token over and over until Redis is in
        use by both again (and for at least at_least seconds); returns the
        answers that were not 401."""
        t0 = time.monotonic()
        bad = []
        while True:
            for f in (S.a, S.b):
                r = self.me(f, token)
                if r.status != 401:
                    bad.append('%.3fs %s %d %s' % (time.monotonic() - t0, f.name, r.status,
                                                   r.body[:60]))
            el = time.monotonic() - t0
            if el >= at_least and redis_in_use_by_both():
                return bad
            if el > 20:
                raise AssertionError('Redis not in use by both responders after 20 s')

    def restart_redis(self):
        S.procs.stop(S.redis, signal.SIGKILL)
        S.start_redis()

    def test_survives_a_redis_restart(self):
        u, gone, kept = self.two_logins('restart')
        # Revoked two ways: a logout, and a refresh-token reuse (its login).
        self.assertEqual(self.logout(S.a, gone['access_token']).status, 200)
        p1 = self.login(u)
        p2 = self.assertPair(self.refresh(S.a, p1['refresh_token']))
        self.assertJsonError(self.refresh(S.b, p1['refresh_token']), 401)
        self.restart_redis()  # a new, empty Redis on the same port
        bad = self.watch_until_redis_is_back(gone['access_token'])
        self.assertEqual(bad, [], 'a revoked token was accepted after the Redis restart')
        self.assertStillRevoked(u, gone, kept, 'after the Redis restart')
        self.assertRejectedEverywhere(p2['access_token'], 'reuse-revoked login after restart')

    def test_survives_flushall(self):
        u, gone, kept = self.two_logins('flush')
        self.assertEqual(self.logout(S.b, gone['access_token']).status, 200)
        p1 = self.login(u)
        p2 = self.assertPair(self.refresh(S.a, p1['refresh_token']))
        self.assertJsonError(self.refresh(S.a, p1['refresh_token']), 401)
        r = S.redis_cli('FLUSHALL')
        self.assertEqual(r.stdout.strip(), 'OK', r)
        self.assertStillRevoked(u, gone, kept, 'right after FLUSHALL')
        self.assertRejectedEverywhere(p2['access_token'], 'reuse-revoked login after FLUSHALL')
        self.assertStillRevoked(u, gone, kept, 'after FLUSHALL, again')

    def test_logout_while_redis_is_dead(self):
        u, gone, kept = self.two_logins('dead')
        S.procs.stop(S.redis, signal.SIGKILL)
        try:
            r = self.logout(S.a, gone['access_token'])
            self.assertEqual((r.status, r.json()), (200, {'message': 'Logged out successfully'}), r)
            self.assertStillRevoked(u, gone, kept, 'while Redis is dead')
        finally:
            S.start_redis()
        bad = self.watch_until_redis_is_back(gone['access_token'])
        self.assertEqual(bad, [], 'a revoked token was accepted after Redis came back')
        self.assertStillRevoked(u, gone, kept, 'after Redis came back')

    def test_logout_while_redis_hangs(self):
        """Redis frozen (SIGSTOP) during the logout, then resumed with all
        its old keys -- but maybe not the revocation it could not take in
        time. Whether a responder trusts the resumed Redis too early is a
        race, so: three rounds. In the first two Redis is resumed as soon as
        both responders have been asked; in the last the freeze lasts 2.5 s
        (the scenario, not a wait for something), long enough for the
        responders' Redis breakers to back off to their longest interval.
        Meanwhile only A is asked (its checks go to the store)."""
        for rnd, freeze in enumerate((0, 0, 2.5)):
            u, gone, kept = self.two_logins('hang%d' % rnd)
            os.kill(S.redis.pid, signal.SIGSTOP)
            try:
                t0 = time.monotonic()
                r = self.logout(S.a, gone['access_token'])
                self.assertEqual(r.status, 200, r)
                self.assertLess(r.elapsed, 1.5, r)
                self.assertStillRevoked(u, gone, kept, 'while Redis hangs')
                while time.monotonic() - t0 < freeze:
                    self.assertUnauthorized(self.me(S.a, gone['access_token']))
            finally:
                os.kill(S.redis.pid, signal.SIGCONT)
            bad = self.watch_until_redis_is_back(gone['access_token'])
            self.assertEqual(bad, [], 'round %d: a token revoked (on A) while Redis hung was '
                             'accepted after Redis resumed' % rnd)
            self.assertStillRevoked(u, gone, kept, 'after Redis resumed')


class T09RedisDown(Case):

    def fresh_course(self, front, layer):
        cid = S.take_id()
        r = front.get('/api/courses/' + cid)
        self.assertCourse(r, cid, layer)
        return cid, r

    def test_redis_down_then_back(self):
        warm = S.take_id()
        self.assertCourse(S.a.get('/api/courses/' + warm), warm, 'MISS')
        self.until_in_l1(S.a, warm)

        # 1. Redis hangs (SIGSTOP): every command would wait for its timeout
        #    until the breaker opens.
        os.kill(S.redis.pid, signal.SIGSTOP)
        try:
            self.assertCourse(S.a.get('/api/courses/' + warm), warm, 'L1')
            _, r = self.fresh_course(S.a, 'MISS')
            self.assertLess(r.elapsed, 1.0, r)
            times = []
            for _ in range(25):
                r = S.a.get(S.fresh_list_query())
                self.assertEqual((r.status, r.layer), (200, 'MISS'), r)
                times.append(r.elapsed)
            self.assertLess(max(times), 0.6, 'no request may wait long on a hung Redis: %s' % times)
            self.assertLess(sum(times[-10:]), 1.0, 'the breaker must make Redis cost ~nothing: %s'
                            % times)
        finally:
            os.kill(S.redis.pid, signal.SIGCONT)

        # 2. Redis dead (SIGKILL, only that pid).
        S.procs.stop(S.redis, signal.SIGKILL)
        self.assertCourse(S.a.get('/api/courses/' + warm), warm, 'L1')
        _, r = self.fresh_course(S.b, 'MISS')
        self.assertLess(r.elapsed, 1.0, r)
        times = []
        for _ in range(25):
            r = S.b.get(S.fresh_list_query())
            self.assertEqual(r.status, 200, r)
            times.append(r.elapsed)
        self.assertLess(max(times), 0.6, times)

        # 3. Redis back on the same port: used again without a restart.
        S.start_redis()

        # (A course key, not a list: list keys carry each process's list
        # generation, which course writes move.)
        wait_until(redis_in_use_by_both, 15,
                   'responder B to read what A wrote to the restarted Redis', interval=0.2)
        cid = S.course_in_redis(S.a)
        r1 = S.a.get('/api/courses/' + cid)
        r2 = S.b.get('/api/courses/' + cid)
        self.assertCourse(r2, cid, 'L2')
        self.assertEqual(r2.body, r1.body)


class T10DatabaseDown(Case):

    @only_if(CAN_STOP_DB, NEEDS_STOPPABLE_DB)
    def test_database_down_serves_cache_and_503(self):
        cached = S.course_in_redis(S.a)  # B's first read of it is an L2 hit
        self.until_in_l1(S.a, cached)
        list_q = S.fresh_list_query()
        self.assertEqual(S.a.get(list_q).status, 200)
        uncached = S.take_id()
        uncached_q = S.fresh_list_query()

        with store_unavailable():
            # Served from a cache: A's L1, or Redis when a bus reset (T09's
            # Redis restart, or a late heartbeat on a loaded machine) has
            # dropped A's L1 since it was warmed.
            r = S.a.get('/api/courses/' + cached)
            self.assertCourse(r, cached)
            self.assertIn(r.layer, ('L1', 'L2'), r)
            self.assertCourse(S.b.get('/api/courses/' + cached), cached, 'L2')
            r = S.a.get(list_q)
            self.assertEqual(r.status, 200, r)
            self.assertIn(r.layer, ('L1', 'L2'), r)
            for path in ('/api/courses/' + uncached, uncached_q):
                with self.subTest(path=path):
                    r = S.a.get(path, timeout=10)
                    self.assertJsonError(r, 503)
                    self.assertLess(r.elapsed, 3.0, r)
                    # A failure is not cached: ask again, still 503 (not 404).
                    r = S.b.get(path, timeout=10)
                    self.assertJsonError(r, 503)
                    self.assertLess(r.elapsed, 3.0, r)

        # Back: the same reads now succeed, from the store.
        def served(front, path):
            return lambda: front.get(path).status == 200
        for front in (S.a, S.b):
            wait_until(served(front, '/api/courses/' + uncached), 15,
                       'the store to answer again (%s)' % front.name, interval=0.2)
            wait_until(served(front, uncached_q), 15, 'lists again', interval=0.2)
        self.assertCourse(S.a.get('/api/courses/' + uncached), uncached)

    @only_if(STORE == 'mongo' and CAN_STOP_DB, 'kills and restarts the MongoDB test server')
    def test_mongo_server_killed_and_restarted(self):
        """The database process gone (connection refused rather than a
        hang), then a new one on the same port: the responders reconnect by
        themselves. Runs last: the test server keeps its data in memory, so
        the new one is seeded afresh (new ids)."""
        cached = S.take_id()
        self.assertCourse(S.a.get('/api/courses/' + cached), cached, 'MISS')
        self.until_in_l1(S.a, cached)
        q = S.fresh_list_query()

        S.procs.stop(S.mongo)
        r = S.a.get('/api/courses/' + cached)  # from a cache (see above)
        self.assertCourse(r, cached)
        self.assertIn(r.layer, ('L1', 'L2'), r)
        r = S.a.get(q, timeout=10)
        self.assertJsonError(r, 503)
        self.assertLess(r.elapsed, 3.0, r)

        S.start_mongo()
        S.seed()

        # Each responder's driver finds the new server on its own schedule
        # (a request before that is a 503, as above): wait for each.
        def back(front):
            r = front.get(S.fresh_list_query())
            return r.status == 200 and r.json()['total'] > 0
        for front in (S.a, S.b):
            wait_until(lambda: back(front), 15,
                       'responder %s to use the restarted database' % front.name, interval=0.2)
        r = S.b.get(q)
        self.assertEqual(r.status, 200, r)


# Destructive, in this order: T20 (Redis restarted, flushed, killed,
# frozen), then Redis down, then the database down; the MongoDB server
# killed last (its restart seeds new ids).
ORDER = [T20RevocationAndRedis, T09RedisDown, T10DatabaseDown]

if __name__ == '__main__':
    sys.exit(main(ORDER))
