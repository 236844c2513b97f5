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

import subprocess
import sys

from harness import Case, S, main

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
