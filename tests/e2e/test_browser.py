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
import shutil
import subprocess
import sys

import openapi_check
from harness import (BUILD, ROOT, S, Case, account, fetch, free_port, main, only_if, scaled,
                     store_unavailable, wait_until)

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

    def journey(self, name, **extra):
        capture = os.path.join(S.tmp, 'api-%s.jsonl' % name)
        env = dict(os.environ, ELEARN_BROWSER_CONFIG=json.dumps(dict(config(), capture=capture,
                                                                      **extra)),
                   NODE_PATH=os.path.join(ROOT, 'node_modules'))
        r = subprocess.run(['node', JOURNEYS, name], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=scaled(180))
        out = r.stdout + r.stderr
        if r.returncode != 0:
            self.fail('journey %s failed (exit %d):\n%s' % (name, r.returncode, out[-6000:]))
        self.assertIn('journey %s ok' % name, out)
        self.check_captured(capture)
        for line in out.splitlines():
            if line.startswith('journey %s ok' % name):
                print('\n    ' + line, end=' ', flush=True)

    def check_captured(self, capture):
        """Every API response the journey's browser received matches the
        OpenAPI document -- except the gateway's own 502/504 (the API down),
        which nginx, not the API, answers."""
        with open(capture) as f:
            seen = [json.loads(line) for line in f]
        self.assertGreater(len(seen), 0, 'no API response captured')
        bad = []
        for r in seen:
            if r['status'] in (502, 504):
                continue
            p = openapi_check.problem(r['method'], r['path'], r['status'], r['type'],
                                      r['body'].encode())
            if p:
                bad.append(p)
        self.assertEqual(bad, [], 'API responses in the browser that the document does not '
                                  'describe')

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

    def test_database_down(self):
        """A cold course while the store cannot answer: the API's 503."""
        cid = S.take_id()
        config()  # accounts and fronts made while the store still answers
        with store_unavailable():
            self.journey('dbdown', cold=cid)

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


APACHE_MODULES = ('mpm_event', 'authz_core', 'authz_host', 'dir', 'mime', 'alias', 'headers',
                  'proxy', 'proxy_fcgi')


class T51Apache(Case):

    @only_if(shutil.which('apache2') is not None,
             'Apache httpd is not installed (conf/apache.conf is the alternative front end)')
    def test_apache_conf_sends_the_security_headers(self):
        """The shipped conf/apache.conf, its paths pointed at this tree, in
        a private httpd on a free port: the same headers as nginx."""
        d = os.path.join(S.tmp, 'apache')
        os.makedirs(d, exist_ok=True)
        port = free_port()
        with open(os.path.join(ROOT, 'conf', 'apache.conf')) as f:
            site = f.read()
        # conf/apache.conf is a template (@PORT@, @WWW@, @SOCKET@, @ERRORS@).
        for k, v in (('@PORT@', str(port)), ('@WWW@', os.path.join(ROOT, 'www')),
                     ('@SOCKET@', os.path.join(d, 'none.sock')),
                     ('@ERRORS@', os.path.join(ROOT, 'conf', 'errors')),
                     ('${APACHE_LOG_DIR}', d)):
            site = site.replace(k, v)
        self.assertNotRegex(site, r'@[A-Z]+@', 'a placeholder this test does not fill')
        with open(os.path.join(d, 'site.conf'), 'w') as f:
            f.write(site)
        main_conf = ['ServerRoot "%s"' % d, 'DefaultRuntimeDir "%s"' % d] + [
            'LoadModule %s_module /usr/lib/apache2/modules/mod_%s.so' % (m, m)
            for m in APACHE_MODULES] + [
            'TypesConfig /etc/mime.types', 'Listen 127.0.0.1:%d' % port,
            'PidFile %s/httpd.pid' % d, 'ErrorLog %s/error.log' % d, 'ServerName localhost',
            'Mutex file:%s default' % d, 'User nobody', 'Group nogroup',
            'Include %s/site.conf' % d]
        with open(os.path.join(d, 'main.conf'), 'w') as f:
            f.write('\n'.join(main_conf) + '\n')
        p = S.procs.start('apache2', ['apache2', '-f', os.path.join(d, 'main.conf'),
                                      '-D', 'FOREGROUND'], log=os.path.join(d, 'stderr.log'))
        try:
            def up():
                if p.poll() is not None:
                    raise AssertionError('apache2 exited: %s' % open(
                        os.path.join(d, 'stderr.log')).read()[-2000:])
                try:
                    return fetch(port, 'GET', '/', timeout=2).status == 200
                except OSError:
                    return False
            wait_until(up, 10, 'apache2 on :%d' % port)
            for path, csp in (('/', CSP), ('/js/app.js', CSP), ('/docs/', CSP.replace(
                    "style-src 'self'", "style-src 'self' 'unsafe-inline'"))):
                with self.subTest(path=path):
                    r = fetch(port, 'GET', path)
                    self.assertEqual(r.status, 200, r)
                    self.assertEqual(r.header('content-security-policy'), csp)
                    self.assertEqual(r.header('x-content-type-options'), 'nosniff')
                    self.assertEqual(r.header('referrer-policy'),
                                     'strict-origin-when-cross-origin')
                    self.assertEqual(r.header('x-frame-options'), 'DENY')
            # The API's answers are not the app's: no CSP there.
            self.assertIsNone(fetch(port, 'GET', '/api/health').header('content-security-policy'))
        finally:
            S.procs.stop(p)


ORDER = [T50Browser, T51Apache]

if __name__ == '__main__':
    sys.exit(main(ORDER))
