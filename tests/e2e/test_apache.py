#!/usr/bin/python3
"""test_apache.py -- elearn behind Debian's apache2 (mod_proxy_fcgi,
enablereuse=on), configured by the shipped conf/apache.conf filled in by
substitution (@PORT@, @WWW@, @SOCKET@, @ERRORS@), as the production setup
runs it: Apache's children as www-data, the responder's socket group
www-data mode 0660.

A part of the end-to-end scenarios, through Apache instead of nginx:
reads (X-Cache, ETag, 304), errors as JSON (404, 405, 422, 413 from the
responder and from Apache, 503 with the responder down), auth (Bearer
pass-through: register, login, /auth/me, logout), writes (create, patch,
enrol), bodies with and without Content-Length (chunked), the
operational endpoints' allow-list, Apache's request id in the responder's
log, and a wrk run on kept-alive (reused) backend connections with no
non-2xx.

SQLite only: the store is not what is tested here.
"""

import http.client
import json
import os
import re
import shutil
import subprocess
import sys

from harness import (ROOT, S, AuthCase, Case, _Http, course_body, fetch, free_port, main,
                     read_text, scaled, tail, token_of, unique_email, wait_until)
from test_deploy import Responder, get_from, run_dir

STORES = ('sqlite',)

MODULES = ('mpm_event', 'authz_core', 'authz_host', 'mime', 'dir', 'alias', 'headers', 'proxy',
           'proxy_fcgi', 'unique_id')


class Apache(_Http):
    """apache2 -DFOREGROUND on a wrapper configuration (the modules, a
    port, pid and log files in the run's temp dir, User www-data) that
    includes conf/apache.conf rendered for this run."""

    def __init__(self, name, sock):
        self.name = name
        self.port = free_port()
        self.prefix = os.path.join(S.tmp, 'apache-' + name)
        os.makedirs(os.path.join(self.prefix, 'logs'), exist_ok=True)
        with open(os.path.join(ROOT, 'conf/apache.conf')) as f:
            site = f.read()
        for k, v in (('@PORT@', str(self.port)), ('@WWW@', os.path.join(ROOT, 'www')),
                     ('@SOCKET@', sock), ('@ERRORS@', os.path.join(ROOT, 'conf/errors'))):
            site = site.replace(k, v)
        if re.search(r'@[A-Z]+@', site):
            raise RuntimeError('conf/apache.conf has a placeholder this test does not fill')
        with open(os.path.join(self.prefix, 'elearn.conf'), 'w') as f:
            f.write(site)
        mods = ''.join('LoadModule %s_module /usr/lib/apache2/modules/mod_%s.so\n' % (m, m)
                       for m in MODULES)
        with open(os.path.join(self.prefix, 'httpd.conf'), 'w') as f:
            f.write('''ServerRoot /etc/apache2
ServerName localhost
Listen 127.0.0.1:%(port)d
PidFile %(p)s/apache.pid
DefaultRuntimeDir %(p)s
Mutex file:%(p)s default
ErrorLog %(p)s/logs/error.log
LogLevel warn
Define APACHE_LOG_DIR %(p)s/logs
User www-data
Group www-data
%(mods)s
TypesConfig /etc/mime.types
StartServers 1
ServerLimit 2
ThreadsPerChild 32
MaxRequestWorkers 64
MinSpareThreads 8
MaxSpareThreads 48
Include %(p)s/elearn.conf
''' % {'port': self.port, 'p': self.prefix, 'mods': mods})
        self.nginx = S.procs.start('apache2 ' + name,
                                   ['apache2', '-f', os.path.join(self.prefix, 'httpd.conf'),
                                    '-DFOREGROUND'],
                                   log=os.path.join(self.prefix, 'logs/stderr.log'))

    def nginx_errors(self):  # the harness's name for "the web server's error log"
        text = read_text(os.path.join(self.prefix, 'logs/error.log'))
        return [l for l in text.splitlines() if re.search(r':(error|crit|alert|emerg)\]', l)]


def chunked_request(port, method, path, body, headers, chunk=65536):
    """A request whose body goes with Transfer-Encoding: chunked (so the
    responder sees no CONTENT_LENGTH)."""
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=scaled(15))
    try:
        c.putrequest(method, path)
        for k, v in headers.items():
            c.putheader(k, v)
        c.putheader('Transfer-Encoding', 'chunked')
        c.endheaders()
        for i in range(0, len(body), chunk):
            part = body[i:i + chunk]
            c.send(b'%x\r\n%s\r\n' % (len(part), part))
        c.send(b'0\r\n\r\n')
        r = c.getresponse()
        data = r.read()
        from harness import Resp
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, data, 0)
    finally:
        c.close()


def setUpModule():
    global R, A
    d = run_dir()
    R = Responder('apache', os.path.join(d, 'apache.sock'), os.path.join(S.tmp, 'apache.log'),
                  S.env(INSTANCE='apache')).spawn('0660', 'www-data')
    A = Apache('main', R.sock)
    A.wait_ready('apache2 :%d -> responder' % A.port, R.proc)


class T01Reads(Case):

    def test_course_layers_etag_304(self):
        cid = S.take_id()
        r1 = A.get('/api/courses/' + cid)
        self.assertCourse(r1, cid, 'MISS')
        r2 = A.get('/api/courses/' + cid)
        self.assertCourse(r2, cid, 'L1')
        etag = r2.header('etag')
        self.assertTrue(etag)
        r3 = A.get('/api/courses/' + cid, headers={'If-None-Match': etag})
        self.assertEqual(r3.status, 304, r3)
        self.assertEqual(r3.body, b'')

    def test_list_and_query_string(self):
        r = A.get('/api/courses?page_size=5&sort_by=popular')
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.json()['items']), 5)
        self.assertJsonError(A.get('/api/courses?page_size=0'), 422, 'page_size')

    def test_errors_are_json(self):
        self.assertJsonError(A.get('/api/courses/' + 'f' * 24), 404)
        self.assertJsonError(A.get('/api/courses/not-an-id'), 422)
        self.assertJsonError(A.get('/api/nowhere'), 404)
        r = A.request('PUT', '/api/courses', body=b'{}')
        self.assertJsonError(r, 405)
        self.assertIn('GET', r.header('allow') or '')

    def test_keepalive_connection_reused(self):
        """Many requests over one client connection, so over Apache's
        reused backend connections: every answer right."""
        c = A.conn()
        try:
            for i in range(60):
                cid = S.shared_ids[i % 4]
                self.assertCourse(A.get('/api/courses/' + cid, conn=c), cid)
                self.assertJsonError(A.get('/api/courses/bad%d' % i, conn=c), 422)
        finally:
            c.close()


class T02Auth(AuthCase):

    def test_bearer_reaches_the_responder(self):
        email, password = unique_email('apache'), 'pw-' + os.urandom(8).hex()
        r = self.register(A, email, password, 'Apache Student')
        self.assertEqual(r.status, 201, r)
        r = self.try_login(A, email, password)
        self.assertEqual(r.status, 200, r)
        tok = r.json()['access_token']
        r = self.me(A, tok)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()['email'], email)
        self.assertUnauthorized(self.me(A, 'not-a-token'))
        r = self.call(A, 'GET', '/api/auth/me')
        self.assertUnauthorized(r)
        self.assertEqual(self.logout(A, tok).status, 200)
        self.assertUnauthorized(self.me(A, tok))


class T03Writes(Case):

    def test_create_patch_enrol(self):
        tok = token_of('instructor')
        r = A.request('POST', '/api/courses', course_body('apache'), token=tok)
        self.assertEqual(r.status, 201, r)
        cid = r.json()['_id']
        r = A.request('PATCH', '/api/courses/' + cid, {'title': 'Patched via Apache'}, token=tok)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(A.get('/api/courses/' + cid).json()['title'], 'Patched via Apache')
        r = A.request('POST', '/api/courses/%s/enroll' % cid, token=token_of('student'))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()['enrollment_count'], 1)

    def test_body_limits(self):
        tok = token_of('instructor')
        big = b'{"title":"' + b'x' * (1536 * 1024) + b'"}'  # 1.5 MiB: the responder's 413
        r = A.request('POST', '/api/courses', big, token=tok,
                      headers={'Content-Type': 'application/json'})
        self.assertJsonError(r, 413)
        huge = b'x' * (3 * 1024 * 1024)  # over LimitRequestBody: Apache's own 413
        r = A.request('POST', '/api/courses', huge, token=tok,
                      headers={'Content-Type': 'application/json'})
        self.assertJsonError(r, 413)

    def test_bodies_without_content_length(self):
        """Chunked request bodies reach the responder without
        CONTENT_LENGTH: it must read them to the end of FCGI_STDIN, and
        refuse one over 1 MiB."""
        u = token_of('instructor')
        body = json.dumps(course_body('apache-chunked')).encode()
        r = chunked_request(A.port, 'POST', '/api/courses', body,
                            {'Authorization': 'Bearer ' + u, 'Content-Type': 'application/json'})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json()['title'], 'E2E course apache-chunked')
        big = b'{"title":"' + b'x' * (1536 * 1024) + b'"}'
        r = chunked_request(A.port, 'POST', '/api/courses', big,
                            {'Authorization': 'Bearer ' + u, 'Content-Type': 'application/json'})
        self.assertJsonError(r, 413)


class T04Operations(Case):

    def test_ops_endpoints_loopback_only(self):
        self.assertEqual(get_from(A.port, '/api/health', '127.0.0.1').status, 200)
        self.assertEqual(get_from(A.port, '/api/metrics', '127.0.0.1').status, 200)
        for path in ('/api/health', '/api/metrics', '/api/cache/stats'):
            with self.subTest(path=path):
                self.assertJsonError(get_from(A.port, path, '127.0.0.9'), 403,
                                     'allowed from configured addresses')
        self.assertEqual(get_from(A.port, '/api/courses?page_size=1', '127.0.0.9').status, 200)

    def test_request_id_from_apache(self):
        r = A.get('/api/courses/' + S.shared_ids[0])
        rid = r.header('x-request-id')
        # mod_unique_id's id (not one the responder made up: 32 hex digits).
        self.assertTrue(rid and not re.fullmatch(r'[0-9a-f]{32}', rid), rid)
        wait_until(lambda: any(l.endswith(' ' + rid) for l in R.access_lines()), 5,
                   'the access line with request id ' + rid)

    def test_wrk_on_reused_connections(self):
        if not shutil.which('wrk'):
            raise AssertionError('wrk is not installed (make deps)')
        cid = S.shared_ids[1]
        A.get('/api/courses/' + cid)
        p = subprocess.run(['wrk', '-t2', '-c16', '-d2s',
                            'http://127.0.0.1:%d/api/courses/%s' % (A.port, cid)],
                           capture_output=True, text=True, timeout=scaled(60))
        self.assertEqual(p.returncode, 0, p)
        self.assertRegex(p.stdout, r'\d+ requests in')
        self.assertNotIn('Non-2xx', p.stdout, p.stdout)
        self.assertNotIn('Socket errors', p.stdout, p.stdout)
        self.assertEqual(A.nginx_errors(), [], 'Apache error log')


class T05ResponderDown(Case):
    """Last: stops the responder."""

    def test_503_json_when_the_responder_is_down(self):
        self.assertEqual(S.procs.stop(R.proc), 0)
        try:
            os.unlink(R.sock)
        except FileNotFoundError:
            pass
        r = A.get('/api/courses/' + S.shared_ids[0])
        self.assertJsonError(r, 503)
        # The other error documents Apache may serve are JSON too.
        for code in (403, 413, 502, 503, 504):
            with open(os.path.join(ROOT, 'conf/errors/%d.json' % code)) as f:
                self.assertIsInstance(json.load(f).get('detail'), str)


ORDER = [T01Reads, T02Auth, T03Writes, T04Operations, T05ResponderDown]

if __name__ == '__main__':
    sys.exit(main(ORDER, fronts='a', name='apache'))
