#!/usr/bin/python3
"""test_openapi.py -- the OpenAPI document (docs/openapi.json, served at
/api/openapi.json) matches the code both ways:

  - every route of app/router.c is in the document, and every operation in
    the document routes (no router 404 "Not Found" or 405);
  - responses to a walk through every operation -- successes and the
    errors a client can cause -- have a documented status and validate
    against their schema (python3-jsonschema, Draft 2020-12);
  - `redocly lint` (@redocly/cli from npm, package-lock.json) passes;
  - /docs/ serves the reference viewer (swagger-ui-dist from npm, copied to
    www/vendor/ by scripts/vendor.sh), nothing from the internet.
"""

import json
import os
import re
import subprocess
import sys

import openapi_check
from harness import ROOT, S, AuthCase, course_body, main, scaled, token_of

DOC_PATH = os.path.join(ROOT, 'docs', 'openapi.json')
METHODS = ('get', 'post', 'put', 'patch', 'delete')


def load_doc():
    with open(DOC_PATH, 'rb') as f:
        return json.loads(f.read())


def router_routes():
    """(METHOD, pattern) of every entry in app/router.c's table."""
    with open(os.path.join(ROOT, 'app', 'router.c')) as f:
        text = f.read()
    table = text[text.index('routes[] = {'):text.index('};', text.index('routes[] = {'))]
    return set(re.findall(r'\{"([A-Z]+)", "([^"]+)", handle_\w+\}', table))


class T60OpenAPI(AuthCase):

    @classmethod
    def setUpClass(cls):
        cls.doc = load_doc()
        cls.seen = set()

    def test_served_document_is_the_file(self):
        r = S.a.get('/api/openapi.json')
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.header('content-type').startswith('application/json'))
        with open(DOC_PATH, 'rb') as f:
            self.assertEqual(r.body, f.read())
        self.assertEqual(r.json()['openapi'], '3.1.0')

    def test_routes_both_ways(self):
        code = router_routes()
        self.assertGreater(len(code), 20)
        documented = {(m.upper(), p) for p, item in self.doc['paths'].items()
                      for m in item if m in METHODS}
        self.assertEqual(code - documented, set(), 'routes missing from the document')
        self.assertEqual(documented - code, set(), 'documented operations with no route')
        # And each documented operation reaches a handler.
        oid = '0123456789abcdef01234567'
        for method, path in sorted(documented):
            with self.subTest(op='%s %s' % (method, path)):
                r = self.call(S.a, method, '/api' + re.sub(r'\{[^}]+\}', oid, path))
                self.assertNotEqual(r.status, 405, r)
                if r.status == 404:
                    self.assertNotEqual(r.json().get('detail'), 'Not Found', r)

    def test_every_operation_documents_roles_and_errors(self):
        for path, item in self.doc['paths'].items():
            for m, op in item.items():
                with self.subTest(op='%s %s' % (m, path)):
                    self.assertIn('x-roles', op)
                    self.assertIn('Roles:', op['description'])
                    for code, resp in op['responses'].items():
                        if code.startswith(('4', '5')):
                            schema = resp['content']['application/json']['schema']
                            self.assertIn(schema.get('$ref'), ('#/components/schemas/Error',
                                                              '#/components/schemas/Health'))
                    if op.get('security') == [{'bearer': []}]:
                        self.assertIn('401', op['responses'])

    def check(self, r, method, path):
        """r must have a documented status and a body valid for it."""
        t = openapi_check.template(path)
        self.assertIsNotNone(t, 'no single template for %s' % path)
        self.seen.add((method, t, r.status))
        self.assertIsNone(openapi_check.problem(method, path, r.status, r.header('content-type'),
                                                r.body), r)
        return r

    def go(self, method, path, body=None, token=None, want=None, headers=None):
        if re.match(r'^/api/(health|metrics|cache/stats)$', path):
            # nginx lets only loopback's own address reach the operational
            # endpoints (conf/nginx.conf); this test's address is another.
            r = S.a.request(method, path, body, headers=headers, token=token)
        else:
            r = self.call(S.a, method, path, body, token=token, headers=headers)
        if want is not None:
            self.assertEqual(r.status, want, '%s %s: %r' % (method, path, r))
        return self.check(r, method, path)

    def test_responses_validate(self):
        ins, adm = token_of('instructor'), token_of('admin')
        stu = self.login(self.new_student('oas'))['access_token']
        cid = S.shared_ids[0]
        bad = '/api/courses/nope'
        # courses
        self.go('GET', '/api/courses?page_size=3', want=200)
        self.go('GET', '/api/courses?sort_by=nope', want=422)
        self.go('GET', '/api/courses?instructor_id=me', want=401)
        self.go('GET', '/api/courses?instructor_id=me', token=ins, want=200)
        r = self.go('GET', '/api/courses/' + cid, want=200)
        self.go('GET', '/api/courses/' + cid, headers={'If-None-Match': r.header('etag')},
                want=304)
        self.go('GET', '/api/courses/650000000000000000000000', want=404)
        self.go('GET', bad, want=422)
        self.go('POST', '/api/courses', course_body('oas'), token=stu, want=403)
        self.go('POST', '/api/courses', course_body('oas'), want=401)
        self.go('POST', '/api/courses', {'title': ''}, token=ins, want=422)
        c = self.go('POST', '/api/courses', course_body('oas', published=False), token=ins,
                    want=201).json()
        path = '/api/courses/' + c['_id']
        self.go('GET', path, want=404)
        self.go('GET', path, token=ins, want=200)
        self.go('PATCH', path, {'published': True}, token=ins, want=200)
        self.go('PATCH', path, {'nope': 1}, token=ins, want=422)
        self.go('PATCH', path, {'title': 'x'}, token=token_of('instructor2'), want=403)
        self.go('PATCH', '/api/courses/650000000000000000000000', {'title': 'x'}, token=adm,
                want=404)
        # modules
        m = self.go('POST', path + '/modules', {'title': 'M', 'content': 'c',
                                                'duration_minutes': 3}, token=ins, want=201)
        mid = m.json()['modules'][-1]['_id']
        self.go('POST', path + '/modules', {'title': 'M'}, token=ins, want=422)
        self.go('PATCH', path + '/modules/' + mid, {'order': 9}, token=ins, want=200)
        self.go('DELETE', path + '/modules/' + mid, token=ins, want=200)
        self.go('DELETE', path + '/modules/' + mid, token=ins, want=404)
        # learning
        self.go('POST', path + '/enroll', token=stu, want=200)
        self.go('POST', path + '/enroll', token=stu, want=409)
        self.go('PUT', path + '/rating', {'stars': 5}, token=stu, want=200)
        self.go('PUT', path + '/rating', {'stars': 5}, token=ins, want=403)
        self.go('PUT', path + '/rating', {'stars': 9}, token=stu, want=422)
        self.go('GET', '/api/users/me/enrollments', token=stu, want=200)
        self.go('GET', '/api/users/me/enrollments?page=0', token=stu, want=422)
        self.go('GET', '/api/users/me/enrollments', want=401)
        self.go('DELETE', path + '/enroll', token=stu, want=200)
        self.go('DELETE', path + '/enroll', token=stu, want=404)
        # auth
        email = 'e2e-oas-%s@example.com' % os.urandom(4).hex()
        self.go('POST', '/api/auth/register', {'email': email, 'password': 'pw-0123456789',
                                               'name': 'O A S'}, want=201)
        self.go('POST', '/api/auth/register', {'email': email, 'password': 'pw-0123456789',
                                               'name': 'O A S'}, want=409)
        self.go('POST', '/api/auth/register', {'email': email}, want=422)
        pair = self.go('POST', '/api/auth/login', {'email': email, 'password': 'pw-0123456789'},
                       want=200).json()
        self.go('POST', '/api/auth/login', {'email': email, 'password': 'wrong-password'},
                want=401)
        self.go('GET', '/api/auth/me', token=pair['access_token'], want=200)
        pair2 = self.go('POST', '/api/auth/refresh', {'refresh_token': pair['refresh_token']},
                        want=200).json()
        self.go('POST', '/api/auth/refresh', {'refresh_token': pair['refresh_token']}, want=401)
        self.go('DELETE', '/api/auth/logout', token=pair2['access_token'], want=401)  # reuse revoked it
        self.go('GET', '/api/auth/me', want=401)
        # cache, ops
        self.go('GET', '/api/cache/stats', token=adm, want=200)
        self.go('GET', '/api/cache/stats', token=stu, want=403)
        self.go('DELETE', '/api/cache/invalidate/' + cid, token=adm, want=200)
        self.go('DELETE', '/api/cache/invalidate/nope', token=adm, want=422)
        self.go('GET', '/api/health', want=200)
        self.go('GET', '/api/metrics', want=200)
        self.go('GET', '/api/openapi.json', want=200)
        self.go('DELETE', path, token=ins, want=403)
        self.go('DELETE', path, token=adm, want=204)
        # Every operation was seen at least once.
        ops = {(m.upper(), p) for p, item in self.doc['paths'].items() for m in item
               if m in METHODS}
        self.assertEqual(ops - {(m, p) for m, p, _ in self.seen}, set())

    def test_redocly_lint(self):
        env = dict(os.environ, REDOCLY_TELEMETRY='off', NO_UPDATE_NOTIFIER='1')
        r = subprocess.run([os.path.join(ROOT, 'node_modules', '.bin', 'redocly'), 'lint',
                            '--config', os.path.join(ROOT, 'redocly.yaml'), DOC_PATH],
                           cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=scaled(120))
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        self.assertIn('valid', r.stdout + r.stderr)

    def test_docs_viewer_is_local(self):
        r = S.a.get('/docs/')
        self.assertEqual(r.status, 200, r)
        page = r.body.decode()
        for src in re.findall(r'(?:src|href)="([^"]+)"', page):
            with self.subTest(src=src):
                self.assertFalse(re.match(r'^(https?:)?//', src), 'loads %s from elsewhere' % src)
                self.assertEqual(S.a.get(src).status, 200, src)
        self.assertIn('/vendor/swagger-ui/swagger-ui-bundle.js', page)


ORDER = [T60OpenAPI]

if __name__ == '__main__':
    sys.exit(main(ORDER))
