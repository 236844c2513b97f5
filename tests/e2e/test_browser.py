#!/usr/bin/python3
"""test_browser.py -- the browser app (www/) in real Chromium against the
real stack: nginx (the shipped conf/nginx.conf, security headers included)
in front of two responders a and b, Redis and the store.

Each test runs one journey of tests/browser/journeys.mjs with Node and
playwright-core driving Debian's /usr/bin/chromium (never a downloaded
browser); the journey gets the stack's addresses and accounts in
ELEARN_BROWSER_CONFIG, runs axe-core on every page it visits, fails on
console errors it did not provoke, and saves screenshots at 1280 and 375 px
into BUILD/screenshots/. The app does not depend on the store, so the suite
runs against SQLite only (the API's behaviour on both stores is
test_learning.py's).
"""

import json
import os
import subprocess
import sys

from harness import BUILD, ROOT, S, Case, account, main, scaled

STORES = ('sqlite',)
JOURNEYS = os.path.join(ROOT, 'tests', 'browser', 'journeys.mjs')
SHOTS = os.path.join(BUILD, 'screenshots')
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")

_down = []


def down_front():
    """An nginx whose responder is stopped: what the browser sees when the
    API is down (nginx's own 502)."""
    if not _down:
        f = S.front('down')
        S.procs.stop(f.proc)
        _down.append(f)
    return _down[0]


def config():
    acc = {n: {'email': account(n).email, 'password': account(n).password}
           for n in ('instructor', 'admin')}
    return dict(acc, a='http://127.0.0.1:%d' % S.a.port, b='http://127.0.0.1:%d' % S.b.port,
                down='http://127.0.0.1:%d' % down_front().port, shots=SHOTS)


class T50Browser(Case):

    def journey(self, name):
        env = dict(os.environ, ELEARN_BROWSER_CONFIG=json.dumps(config()),
                   NODE_PATH=os.path.join(ROOT, 'node_modules'))
        r = subprocess.run(['node', JOURNEYS, name], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=scaled(180))
        out = r.stdout + r.stderr
        if r.returncode != 0:
            self.fail('journey %s failed (exit %d):\n%s' % (name, r.returncode, out[-6000:]))
        self.assertIn('journey %s ok' % name, out)
        for line in out.splitlines():
            if line.startswith('journey %s ok' % name):
                print('\n    ' + line, end=' ', flush=True)

    def test_learner(self):
        self.journey('learner')

    def test_instructor(self):
        self.journey('instructor')

    def test_admin(self):
        self.journey('admin')

    def test_session_refresh_and_revocation(self):
        self.journey('session')

    def test_api_down_and_throttled(self):
        self.journey('down')

    def test_xss_inert(self):
        self.journey('xss')

    def test_api_reference(self):
        self.journey('docs')

    def test_keyboard_only(self):
        self.journey('keyboard')

    def test_security_headers(self):
        """The shipped nginx.conf sends them for the app and its assets."""
        for path in ('/', '/js/app.js', '/style.css', '/docs/'):
            with self.subTest(path=path):
                r = S.a.get(path)
                self.assertEqual(r.status, 200, r)
                csp = r.header('content-security-policy')
                if path == '/docs/':
                    self.assertEqual(csp, CSP.replace("style-src 'self'",
                                                      "style-src 'self' 'unsafe-inline'"))
                else:
                    self.assertEqual(csp, CSP)
                self.assertEqual(r.header('x-content-type-options'), 'nosniff')
                self.assertEqual(r.header('referrer-policy'), 'strict-origin-when-cross-origin')
                self.assertEqual(r.header('x-frame-options'), 'DENY')
        # No inline script anywhere in the app's pages.
        for path in ('/', '/docs/'):
            body = S.a.get(path).body.decode()
            for tag in body.split('<script')[1:]:
                self.assertRegex(tag, r'^[^>]*\bsrc=', 'an inline script in %s' % path)


ORDER = [T50Browser]

if __name__ == '__main__':
    sys.exit(main(ORDER))
