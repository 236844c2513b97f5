#!/usr/bin/python3
"""test_lists.py -- course lists: items are summaries, pages are bounded,
and pages assembled from the list cache are what the store answers.

    EL_E2E_STORE=sqlite|mongo EL_E2E_BUILD=build \\
        /usr/bin/python3 tests/e2e/test_lists.py [-v] [TestName ...]

Normally run by tests/e2e/run.sh, once per store, on the harness's stack
(harness.py; responders a and b) plus a responder u with no cache at all
(REDIS_URL empty, L1_MAX_BYTES=0): its list pages come from one store query
each, serialized by the same code -- the uncached truth the cached pages of
a and b are compared with, byte for byte, after every write of a random
sequence (app/lists.c). A responder n without L1 (L1_MAX_BYTES=0) writes
and reads too: its pages come from the assembled pages kept in Redis.
"""

import os
import random
import sys

from harness import S, Case, course_body, main, summary, token_of, wait_until

QUERIES = ['', 'sort_by=popular&page_size=7', 'sort_by=top_rated&page_size=5&page=2',
           'sort_by=duration&page_size=10', 'category=e2e-tests&sort_by=recent',
           'difficulty=advanced&sort_by=duration', 'search=lst&sort_by=popular',
           'search=e2e&page_size=100', 'sort_by=recent&page=3&page_size=4']
ROUNDS = 4  # of each kind of write

MODULES = 45
CONTENT = 20000  # characters: the input limit of a module's content


class Lists(Case):

    def test_large_course_small_pages(self):
        """A course of about 1 MB (45 modules at the content limit) is
        served whole by GET /courses/{id}, but list pages carry its summary:
        the home page stays a few KB, and the largest page is served."""
        body = course_body('big', modules=[
            {'title': 'Module %d' % i, 'content': chr(ord('a') + i % 26) * CONTENT,
             'duration_minutes': 10} for i in range(MODULES)])
        r = S.a.request('POST', '/api/courses', body, token=token_of('instructor'))
        self.assertEqual(r.status, 201, r)
        c = r.json()
        full = S.b.get('/api/courses/' + c['_id'])
        self.assertEqual(full.json(), c)
        self.assertGreater(len(full.body), MODULES * CONTENT)
        for front in (S.a, S.b):
            home = front.get('/api/courses')
            self.assertEqual(home.status, 200, home)
            items = home.json()['items']
            self.assertEqual(items[0], summary(c))  # the newest first
            self.assertEqual(len(items[0]['modules']), MODULES)
            self.assertLess(len(home.body), 64 * 1024, 'home page %d bytes' % len(home.body))
            big = front.get('/api/courses?page_size=100&search=big')
            self.assertEqual(big.status, 200, big)
            self.assertIn(summary(c), big.json()['items'])
            self.assertNotIn(b'"content"', big.body)

    def test_memo(self):
        """A list page read again on one responder comes from its memo of
        assembled pages (GET /cache/stats "l1"."list_memo_hits" counts it),
        byte for byte the page it assembled. (That the memo never serves a
        page a write has changed is ListCache's random-writes oracle.)"""
        admin = token_of('admin')

        def hits():
            r = S.a.request('GET', '/api/cache/stats', token=admin)
            self.assertEqual(r.status, 200, r)
            return r.json()['l1']['list_memo_hits']
        path = '/api/courses?sort_by=popular&page_size=3'
        first = S.a.get(path)
        self.assertEqual(first.status, 200, first)
        before = hits()

        def served_from_memo():
            # Two reads back to back: the memo lives L1_MAX_STALE at most.
            for _ in range(2):
                r = S.a.get(path)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.body, first.body)
            return hits() > before
        wait_until(served_from_memo, 10, 'a list page served from the memo')


class ListCache(Case):
    """Random writes -- create, delete, patch of each list-relevant field and
    of others, module patch, enroll -- each followed by every query on a, b
    and n (the writer and other processes; n without L1) until all answer
    what u does; the writer must answer it at once (a page memoised before
    the write, or kept in Redis, must not)."""

    @classmethod
    def setUpClass(cls):
        cls.u = S.front('u', REDIS_URL='', L1_MAX_BYTES=0)
        cls.n = S.front('n', L1_MAX_BYTES=0)
        cls.fronts = (S.a, S.b, cls.n)

    @classmethod
    def tearDownClass(cls):
        cls.u.stop()
        cls.n.stop()

    def agree(self, what, writer):
        for q in QUERIES:
            path = '/api/courses' + ('?' + q if q else '')
            truth = [None]
            # The writer reads its own write at once (its caches and
            # generations are updated before it answers): no page it had
            # assembled before the write (lists.c's memo) may answer.
            mine, now = writer.get(path), self.u.get(path)
            self.assertEqual(mine.body, now.body, '%s: %s on the writer (%s) at once' % (
                what, path, mine.layer))

            def same():
                truth[0] = self.u.get(path)
                self.assertEqual(truth[0].status, 200, truth[0])
                return all(f.get(path).body == truth[0].body for f in self.fronts)
            try:
                wait_until(same, 5, '%s: %s cached == uncached' % (what, path), interval=0.02)
            except AssertionError:
                got = {f.name: f.get(path) for f in self.fronts}
                raise AssertionError('%s: %s\nuncached %s\n%s' % (
                    what, path, truth[0].body[:600], '\n'.join(
                        '%s (%s) %s' % (n, r.layer, r.body[:600]) for n, r in got.items())))

    def test_random_writes(self):
        seed = int.from_bytes(os.urandom(4), 'big')
        rnd = random.Random(seed)
        admin, inst = token_of('admin'), token_of('instructor')
        mine = []
        for q in QUERIES:  # every list cached everywhere before the writes
            for f in self.fronts:
                f.get('/api/courses' + ('?' + q if q else ''))
        # Every kind of write several times, in a random order (the seed is
        # in the failure message).
        kinds = ['create', 'delete', 'title', 'category', 'duration', 'description', 'tags',
                 'module', 'enroll'] * ROUNDS
        rnd.shuffle(kinds)
        for n, kind in enumerate(kinds):
            f = rnd.choice(self.fronts)
            if kind == 'create' or not mine:
                r = f.request('POST', '/api/courses', course_body(
                    'lst%d' % n, difficulty=rnd.choice(['beginner', 'advanced'])), token=inst)
                self.assertEqual(r.status, 201, r)
                mine.append(r.json())
                kind = 'create'
            elif kind == 'delete':
                c = mine.pop(rnd.randrange(len(mine)))
                r = f.request('DELETE', '/api/courses/' + c['_id'], token=admin)
                self.assertEqual(r.status, 204, r)
            elif kind == 'module':
                c = rnd.choice(mine)
                r = f.request('PATCH', '/api/courses/%s/modules/%s' % (
                    c['_id'], c['modules'][0]['_id']), {'title': 'M%d' % n}, token=admin)
                self.assertEqual(r.status, 200, r)
            elif kind == 'enroll':
                c = rnd.choice(mine)
                r = f.request('POST', '/api/courses/%s/enroll' % c['_id'],
                              token=self.student(n))
                self.assertEqual(r.status, 200, r)
            else:
                c = rnd.choice(mine)
                body = {'title': {'title': 'lst renamed %d' % n},
                        'category': {'category': rnd.choice(['e2e-tests', 'other'])},
                        'duration': {'duration_minutes': rnd.randrange(1, 500)},
                        'description': {'description': 'now with lst %d' % n},
                        'tags': {'tags': ['lst', 't%d' % n]}}[kind]
                r = f.request('PATCH', '/api/courses/' + c['_id'], body, token=admin)
                self.assertEqual(r.status, 200, r)
            self.agree('seed %d, write %d (%s on %s)' % (seed, n, kind, f.name), f)

    def student(self, n):
        from harness import create_user
        u = create_user('student', 'lst%d' % n)
        r = S.a.request('POST', '/api/auth/login', {'email': u.email, 'password': u.password})
        self.assertEqual(r.status, 200, r)
        return r.json()['access_token']


if __name__ == '__main__':
    sys.exit(main([Lists, ListCache], name='lists'))
