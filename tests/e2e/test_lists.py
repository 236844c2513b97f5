#!/usr/bin/python3
"""test_lists.py -- course lists: items are summaries, pages are bounded.

    EL_E2E_STORE=sqlite|mongo EL_E2E_BUILD=build \\
        /usr/bin/python3 tests/e2e/test_lists.py [-v] [TestName ...]

Normally run by tests/e2e/run.sh, once per store, on the harness's stack
(harness.py; responders a and b).
"""

import json
import sys

from harness import S, Case, course_body, main, summary, token_of

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


if __name__ == '__main__':
    sys.exit(main([Lists], name='lists'))
