#!/usr/bin/python3
"""test_l1off.py -- the cache layers each work without the one above them:
a responder with L1 disabled (L1_MAX_BYTES=0) serves course and list reads
from Redis (X-Cache: L2) once filled, and the same bytes as a responder
with L1; one with neither L1 nor Redis serves them from the store.

    EL_E2E_STORE=sqlite EL_E2E_BUILD=build \\
        /usr/bin/python3 tests/e2e/test_l1off.py [-v] [TestName ...]

The harness's stack with responder a (default), and two more started by
the test as make bench runs them: nol1 (L1_MAX_BYTES=0) and storeonly
(L1_MAX_BYTES=0, REDIS_URL="": the store only).
"""

import os
import signal
import subprocess
import sys

from harness import Case, S, course_body, main, token_of, wait_until

QUERIES = ('/api/courses?sort_by=popular', '/api/courses?page=2&page_size=5&sort_by=recent',
           '/api/courses?category=programming')


class LayersAlone(Case):

    @classmethod
    def setUpClass(cls):
        cls.b = S.front('nol1', L1_MAX_BYTES='0')
        cls.c = S.front('storeonly', L1_MAX_BYTES='0', REDIS_URL='')

    @classmethod
    def tearDownClass(cls):
        cls.b.stop()
        cls.c.stop()

    def test_lists_without_l1_come_from_l2(self):
        for q in QUERIES:
            ref = S.a.get(q)
            self.assertEqual(ref.status, 200, ref)
            first = self.b.get(q)
            self.assertEqual(first.status, 200, first)
            again = self.b.get(q)
            self.assertEqual((again.status, again.layer), (200, 'L2'), again)
            self.assertEqual(again.json(), ref.json(), q)

    def test_lists_without_l1_under_load(self):
        # make bench's "GET list, L2 hit (L1 off)": 64 kept-alive connections.
        q = QUERIES[0]
        ref = self.b.get(q)
        self.assertEqual(ref.status, 200, ref)
        out = subprocess.run(['wrk', '-t2', '-c64', '-d2s',
                              'http://127.0.0.1:%d%s' % (self.b.port, q)],
                             capture_output=True, text=True, timeout=60).stdout
        self.assertNotIn('Non-2xx', out, out)
        self.assertNotIn('Socket errors', out, out)
        self.assertEqual(self.b.get(q).json(), ref.json())

    def stored_page(self, course_id, page_size):
        """The key and value of the assembled page kept in Redis
        (course_page:*, app/lists.c) of the first page of size page_size
        that lists course_id, or (None, None)."""
        head = '"page":1,"page_size":%d,' % page_size
        for key in S.redis_cli('--scan', '--pattern', 'course_page:*').stdout.split():
            v = S.redis_cli('GET', key).stdout[:-1]  # redis-cli adds a newline
            if head in v and course_id in v.split('\n', 1)[-1]:
                return key, v
        return None, None

    def newest_on_b(self, tag, page_size):
        """A course created now (by an instructor, on A) and the first page
        of the recent list of page_size, once the L1-off responder lists it
        first there."""
        r = S.a.request('POST', '/api/courses', course_body(tag), token=token_of('instructor'))
        self.assertEqual(r.status, 201, r)
        c = r.json()
        q = '/api/courses?sort_by=recent&page_size=%d' % page_size
        wait_until(lambda: self.b.get(q).json()['items'][0]['_id'] == c['_id'], 5,
                   'the new course first on the L1-off responder')
        return c, q

    def test_list_page_kept_in_redis(self):
        """Without L1 a list page is read back from Redis as it was stored
        (course_page:*: the assembled page, stamped with its ids page and
        the summaries epoch) -- shown by altering the stored bytes, which
        are then served as they are -- and is never served again once a
        write, on another process or on this one, changes a summary on it:
        the next read answers what the store does, at once."""
        admin = token_of('admin')
        c, q = self.newest_on_b('rpage', 3)
        for n, writer in enumerate((S.a, self.b)):
            self.assertEqual(self.b.get(q).status, 200)
            key, value = self.stored_page(c['_id'], 3)
            self.assertIsNotNone(key, 'no course_page:* in Redis for %s' % q)
            self.assertIn(c['title'], value)
            altered = value.replace(c['title'], c['title'].upper())
            S.redis_cli('SET', key, altered)
            served = self.b.get(q)
            self.assertEqual((served.status, served.layer), (200, 'L2'), served)
            self.assertIn(c['title'].upper().encode(), served.body,
                          'the page kept in Redis was not what was served')
            # A module title is in the summary, and moves no list generation:
            # only the stamp can tell the stored page is out of date.
            r = writer.request('PATCH', '/api/courses/%s/modules/%s' % (
                c['_id'], c['modules'][0]['_id']), {'title': 'Renamed %d' % n}, token=admin)
            self.assertEqual(r.status, 200, r)
            after, truth = self.b.get(q), self.c.get(q)
            self.assertEqual(truth.status, 200, truth)
            self.assertIn(b'Renamed %d' % n, truth.body)
            self.assertEqual(after.body, truth.body,
                             'a page stored before a write on %s was served after it' % writer.name)

    def test_stored_page_not_served_after_a_write_redis_missed(self):
        """A write made while Redis hangs (SIGSTOP) cannot move the
        summaries epoch that stamps the pages kept in Redis: the writer
        owes the move and makes it once Redis answers again (after its
        replay has cleaned the keys it could not write). So the page stored
        before the write is not served after Redis resumes -- within the
        replay's few seconds, not the page's COURSE_LIST_TTL (120 s), which
        is what serving it by the unchanged stamp would take."""
        admin = token_of('admin')
        c, q = self.newest_on_b('hungpage', 4)
        stored = self.b.get(q)
        self.assertEqual((stored.status, stored.layer), (200, 'L2'), stored)
        epoch = S.redis_cli('GET', 'course_summary_epoch').stdout.strip()
        self.assertTrue(epoch.isdigit(), epoch)
        os.kill(S.redis.pid, signal.SIGSTOP)
        try:
            r = S.a.request('PATCH', '/api/courses/%s/modules/%s' % (
                c['_id'], c['modules'][0]['_id']), {'title': 'Renamed while Redis hung'},
                token=admin)
            self.assertEqual(r.status, 200, r)
        finally:
            os.kill(S.redis.pid, signal.SIGCONT)
        truth = self.c.get(q)
        self.assertEqual(truth.status, 200, truth)
        self.assertIn(b'Renamed while Redis hung', truth.body)
        # B's own breaker may have opened during the hang too (its
        # housekeeping found Redis silent): it then answers from the store
        # (MISS, already the new title) until its retry, while A's owed
        # move waits for A's retry. So wait for what only the epoch makes
        # true: B reading Redis again and not finding the old page there.
        def b_serves_the_write_from_redis():
            r = self.b.get(q)
            return r.layer == 'L2' and r.body == truth.body

        wait_until(b_serves_the_write_from_redis, 10,
                   'the L1-off responder to serve the write from Redis, not the page stored '
                   'before it')
        wait_until(lambda: S.redis_cli('GET', 'course_summary_epoch').stdout.strip() != epoch, 10,
                   'the writer to make the summaries epoch move it owed')

    def test_course_without_l1_comes_from_l2(self):
        cid = S.take_id()
        ref = S.a.get('/api/courses/' + cid)
        self.assertEqual(ref.status, 200, ref)
        self.b.get('/api/courses/' + cid)
        again = self.b.get('/api/courses/' + cid)
        self.assertEqual((again.status, again.layer), (200, 'L2'), again)
        self.assertEqual(again.body, ref.body)

    def test_store_only(self):
        for q in QUERIES + ('/api/courses/' + S.take_id(),):
            r = self.c.get(q)
            self.assertEqual((r.status, r.layer), (200, 'MISS'), (q, r))
            self.assertEqual(r.json(), S.a.get(q).json(), q)


if __name__ == '__main__':
    sys.exit(main([LayersAlone], fronts='a', name='l1off'))
