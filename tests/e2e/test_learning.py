#!/usr/bin/python3
"""test_learning.py -- the API the browser app needs (issue 12), end to
end on two responders (a and b) sharing Redis and the store:

  - drafts: not in the public catalogue, 404 to everyone but their
    instructor and admins (who read them uncached, X-Cache: BYPASS), never
    leaked by a cached copy, and visible everywhere the moment they are
    published;
  - GET /courses?instructor_id=me (own courses with drafts), and another
    instructor's id (published only, unless the caller is an admin);
  - DELETE /courses/{id}/enroll and GET /users/me/enrollments;
  - POST /courses/{id}/modules, DELETE /courses/{id}/modules/{module_id}
    and the duration rule;
  - PUT /courses/{id}/rating: enrolled only, replace, exact under 100
    concurrent raters, top_rated follows.

Runs on the harness's stack (harness.py) with its shared accounts.
"""

import http.client
import os
import sys
import threading

from harness import (STORE, S, AuthCase, account, client_address, course_body, fetch, main,
                     only_if, request_parts, token_of, wait_until)


def tag():
    return os.urandom(4).hex()


def soon(test, what):
    """Another responder learns of a write through the bus, within
    milliseconds: await the condition (deadline 5 s), never sleep."""
    def ok():
        try:
            test()
            return True
        except AssertionError:
            return False
    wait_until(ok, 5, what, interval=0.005)
    test()


class T40Drafts(AuthCase):

    def create(self, who='instructor', **over):
        r = self.call(S.a, 'POST', '/api/courses', course_body(tag(), **over), token=token_of(who))
        self.assertEqual(r.status, 201, r)
        return r.json()

    def public_ids(self, front, qs=''):
        r = front.get('/api/courses?page_size=100&category=e2e-tests' + qs)
        self.assertEqual(r.status, 200, r)
        return [c['_id'] for c in r.json()['items']]

    def test_draft_is_private_until_published(self):
        c = self.create(published=False)
        cid, path = c['_id'], '/api/courses/' + c['_id']
        self.assertFalse(c['published'])
        for f in (S.a, S.b):
            with self.subTest(front=f.name):
                # Anonymous, a student and another instructor: 404, twice
                # (the second from a cache, which must not hold the draft).
                for _ in range(2):
                    self.assertJsonError(f.get(path), 404)
                for who in ('student', 'instructor2'):
                    self.assertJsonError(self.call(f, 'GET', path, token=token_of(who)), 404)
                self.assertNotIn(cid, self.public_ids(f))
                # Its instructor and an admin read it, uncached.
                for who in ('instructor', 'admin'):
                    r = self.call(f, 'GET', path, token=token_of(who))
                    got = self.assertCourse(r, cid)
                    self.assertEqual((got['published'], r.layer), (False, 'BYPASS'), r)
                    self.assertIn('private', r.header('cache-control') or '')
        # Redis holds nothing for it or a cached 404 (an empty value, with
        # the version guard's "#<revision>:" header: lib/cache/redis.h).
        self.assertRegex(S.redis_cli('GET', 'course:' + cid).stdout.strip(), r'^(#\d+:)?$')
        # Nobody can enroll in a draft.
        self.assertJsonError(self.call(S.a, 'POST', path + '/enroll', token=token_of('student')), 404)

        # Publish on a: b serves it at once (its cached 404 is gone).
        r = self.call(S.a, 'PATCH', path, {'published': True}, token=token_of('instructor'))
        self.assertEqual((r.status, r.json()['published']), (200, True), r)
        for f in (S.a, S.b):
            soon(lambda: (self.assertTrue(self.assertCourse(f.get(path), cid)['published']),
                          self.assertIn(cid, self.public_ids(f))), 'published on ' + f.name)
        # Unpublish on b: gone for the public on a at once.
        r = self.call(S.b, 'PATCH', path, {'published': False}, token=token_of('admin'))
        self.assertEqual(r.status, 200, r)
        for f in (S.a, S.b):
            soon(lambda: (self.assertJsonError(f.get(path), 404),
                          self.assertNotIn(cid, self.public_ids(f))), 'unpublished on ' + f.name)

    def test_my_teaching_lists_drafts(self):
        draft, pub = self.create(published=False), self.create(published=True)
        other = self.create('instructor2', published=False)
        me = account('instructor').id
        r = self.call(S.b, 'GET', '/api/courses?instructor_id=me&page_size=100',
                      token=token_of('instructor'))
        self.assertEqual((r.status, r.layer), (200, 'BYPASS'), r)
        ids = [c['_id'] for c in r.json()['items']]
        self.assertIn(draft['_id'], ids)
        self.assertIn(pub['_id'], ids)
        self.assertNotIn(other['_id'], ids)
        self.assertTrue(all(c['instructor_id'] == me for c in r.json()['items']))
        # Read-your-writes: a course made just now is listed at once.
        fresh = self.create(published=False)
        r = self.call(S.b, 'GET', '/api/courses?instructor_id=me&page_size=100',
                      token=token_of('instructor'))
        self.assertIn(fresh['_id'], [c['_id'] for c in r.json()['items']])
        # Another instructor's id: the public view, drafts left out.
        for who in (None, 'student', 'instructor2'):
            with self.subTest(who=who):
                r = self.call(S.a, 'GET', '/api/courses?page_size=100&instructor_id=' + me,
                              token=token_of(who) if who else None)
                self.assertEqual(r.status, 200, r)
                ids = [c['_id'] for c in r.json()['items']]
                self.assertIn(pub['_id'], ids)
                self.assertNotIn(draft['_id'], ids)
        # An admin sees anyone's drafts.
        r = self.call(S.a, 'GET', '/api/courses?page_size=100&instructor_id=' + me,
                      token=token_of('admin'))
        self.assertIn(draft['_id'], [c['_id'] for c in r.json()['items']])
        # "me" needs a caller; bad ids are refused by name.
        self.assertUnauthorized(self.call(S.a, 'GET', '/api/courses?instructor_id=me'))
        self.assertNamesField(self.call(S.a, 'GET', '/api/courses?instructor_id=nope'),
                              'instructor_id')


class T41MyLearning(AuthCase):

    def test_enroll_list_unenroll(self):
        s = self.new_student('learn')
        tok = self.login(s)['access_token']
        ids = [S.take_id() for _ in range(3)]
        before = {cid: S.a.get('/api/courses/' + cid).json()['enrollment_count'] for cid in ids}
        for cid in ids:
            r = self.call(S.a, 'POST', '/api/courses/%s/enroll' % cid, token=tok)
            self.assertEqual(r.status, 200, r)
        r = self.call(S.b, 'GET', '/api/users/me/enrollments', token=tok)
        self.assertEqual((r.status, r.layer), (200, 'BYPASS'), r)
        page = r.json()
        self.assertEqual((page['total'], page['page'], page['page_size']), (3, 1, 12))
        self.assertEqual({c['_id'] for c in page['items']}, set(ids))
        at = [c['enrolled_at'] for c in page['items']]
        self.assertEqual(at, sorted(at, reverse=True))  # newest first
        for c in page['items']:
            self.assertNotIn('modules', c)
            self.assertRegex(c['enrolled_at'], r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$')
        r = self.call(S.b, 'GET', '/api/users/me/enrollments?page=2&page_size=2', token=tok)
        self.assertEqual((r.json()['total'], len(r.json()['items'])), (3, 1))

        # Unenroll on b: the count goes down everywhere, the list shrinks.
        r = self.call(S.b, 'DELETE', '/api/courses/%s/enroll' % ids[0], token=tok)
        self.assertEqual((r.status, r.json()), (200, {'enrollment_count': before[ids[0]]}), r)
        for f in (S.a, S.b):
            soon(lambda: self.assertEqual(f.get('/api/courses/' + ids[0]).json()
                                          ['enrollment_count'], before[ids[0]]), 'the count')
        r = self.call(S.a, 'GET', '/api/users/me/enrollments', token=tok)
        self.assertEqual(r.json()['total'], 2)
        self.assertJsonError(self.call(S.a, 'DELETE', '/api/courses/%s/enroll' % ids[0],
                                       token=tok), 404)

    def test_bad_requests(self):
        tok = token_of('student')
        self.assertUnauthorized(self.call(S.a, 'GET', '/api/users/me/enrollments'))
        self.assertUnauthorized(self.call(S.a, 'DELETE', '/api/courses/%s/enroll' % S.ids[0]))
        self.assertNamesField(self.call(S.a, 'GET', '/api/users/me/enrollments?page_size=0',
                                        token=tok), 'page_size')
        self.assertJsonError(self.call(S.a, 'GET', '/api/users/me/enrollments?sort_by=recent',
                                       token=tok), 422, 'sort_by')
        self.assertJsonError(self.call(S.a, 'DELETE', '/api/courses/xyz/enroll', token=tok), 422)


class T42Modules(AuthCase):

    def test_add_remove_and_duration(self):
        r = self.call(S.a, 'POST', '/api/courses', course_body(tag()), token=token_of('instructor'))
        c = r.json()
        cid, path = c['_id'], '/api/courses/%s/modules' % c['_id']
        self.assertEqual(S.b.get('/api/courses/' + cid).json()['duration_minutes'], 35)
        body = {'title': 'Third <b>step</b>', 'content': 'More.', 'duration_minutes': 20}
        for who in ('student', 'instructor2'):
            self.assertJsonError(self.call(S.a, 'POST', path, body, token=token_of(who)), 403)
        r = self.call(S.a, 'POST', path, body, token=token_of('instructor'))
        self.assertEqual(r.status, 201, r)
        got = r.json()
        self.assertEqual([m['title'] for m in got['modules']],
                         ['First steps', 'Next steps', 'Third <b>step</b>'])
        self.assertEqual(got['modules'][-1]['order'], 3)
        self.assertEqual(got['duration_minutes'], 55)
        soon(lambda: self.assertEqual(S.b.get('/api/courses/' + cid).json(), got), 'b')
        # Reorder: the new module first (module PATCH of order).
        new_id = got['modules'][-1]['_id']
        r = self.call(S.b, 'PATCH', '%s/%s' % (path, new_id), {'order': 1},
                      token=token_of('instructor'))
        self.assertEqual(r.status, 200, r)
        r = self.call(S.b, 'PATCH', '%s/%s' % (path, got['modules'][0]['_id']), {'order': 2},
                      token=token_of('instructor'))
        self.assertEqual([m['_id'] for m in r.json()['modules']][0], new_id)
        # A module's duration changes the course's.
        r = self.call(S.a, 'PATCH', '%s/%s' % (path, new_id), {'duration_minutes': 5},
                      token=token_of('admin'))
        self.assertEqual(r.json()['duration_minutes'], 40)
        # Remove one on b; a sees it at once.
        r = self.call(S.b, 'DELETE', '%s/%s' % (path, new_id), token=token_of('instructor'))
        self.assertEqual(r.status, 200, r)
        self.assertEqual((len(r.json()['modules']), r.json()['duration_minutes']), (2, 35))
        soon(lambda: self.assertEqual(S.a.get('/api/courses/' + cid).json(), r.json()), 'a')
        self.assertJsonError(self.call(S.b, 'DELETE', '%s/%s' % (path, new_id),
                                       token=token_of('instructor')), 404)
        # Strict bodies, field named.
        for bad, field in (({'title': 'x', 'content': 'y'}, 'duration_minutes'),
                           (dict(body, duration_minutes=-1), 'duration_minutes'),
                           (dict(body, order=0), 'order'), (dict(body, extra=1), 'extra')):
            with self.subTest(field=field):
                r = self.call(S.a, 'POST', path, bad, token=token_of('instructor'))
                self.assertJsonError(r, 422, field)
        self.assertJsonError(self.call(S.a, 'DELETE', '%s/nope' % path,
                                       token=token_of('instructor')), 422)


class T43Ratings(AuthCase):

    def test_rate_replace_and_rules(self):
        r = self.call(S.a, 'POST', '/api/courses', course_body(tag()), token=token_of('instructor'))
        cid = r.json()['_id']
        path = '/api/courses/%s/rating' % cid
        s = self.new_student('rater')
        tok = self.login(s)['access_token']
        self.assertJsonError(self.call(S.a, 'PUT', path, {'stars': 4}, token=tok), 403)
        self.assertEqual(self.call(S.a, 'POST', '/api/courses/%s/enroll' % cid, token=tok).status,
                         200)
        for bad in ({'stars': 0}, {'stars': 6}, {'stars': 4.5}, {'stars': '4'}, {}, {'x': 1}):
            with self.subTest(body=bad):
                self.assertJsonError(self.call(S.a, 'PUT', path, bad, token=tok), 422)
        r = self.call(S.a, 'PUT', path, {'stars': 4}, token=tok)
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()['rating'], r.json()['rating_count']), (4.0, 1))
        r = self.call(S.b, 'PUT', path, {'stars': 2}, token=tok)  # replaces
        self.assertEqual((r.json()['rating'], r.json()['rating_count']), (2.0, 1))
        for f in (S.a, S.b):
            soon(lambda: self.assertEqual((lambda g: (g['rating'], g['rating_count']))(
                f.get('/api/courses/' + cid).json()), (2.0, 1)), 'the rating on ' + f.name)
        self.assertUnauthorized(self.call(S.a, 'PUT', path, {'stars': 3}))

    @only_if(STORE == 'sqlite', 'its 100 accounts cost 200 password hashes: run once; '
             'tests/store/test_store.c rates with 100 concurrent raters on both stores')
    def test_100_concurrent_raters_exact(self):
        r = self.call(S.a, 'POST', '/api/courses',
                      course_body(tag(), category='e2e-rated'), token=token_of('instructor'))
        cid = r.json()['_id']
        top = '/api/courses?category=e2e-rated&sort_by=top_rated&page_size=100'
        self.assertEqual(S.b.get(top).status, 200)  # a cached list to invalidate
        n = 100
        tokens = [None] * n

        failures = []

        def learner(i):
            # Each learner from an address of its own: registration and
            # login are throttled per address.
            src = client_address()

            def call(method, path, body=None, token=None):
                b, h = request_parts(body, None, token)
                conn = http.client.HTTPConnection('127.0.0.1', S.a.port, timeout=15,
                                                  source_address=(src, 0))
                try:
                    return fetch(S.a.port, method, path, body=b, headers=h, conn=conn)
                finally:
                    conn.close()
            email = 'e2e-crowd-%d-%s@example.com' % (i, tag())
            steps = [call('POST', '/api/auth/register',
                          {'email': email, 'password': 'pw-crowd-12345', 'name': 'Crowd'})]
            steps.append(call('POST', '/api/auth/login',
                              {'email': email, 'password': 'pw-crowd-12345'}))
            if steps[-1].status == 200:
                tokens[i] = steps[-1].json()['access_token']
                steps.append(call('POST', '/api/courses/%s/enroll' % cid, token=tokens[i]))
            if [r.status for r in steps] != [201, 200, 200]:
                failures.append((i, steps))

        def learners(k):
            for i in range(k, n, 4):
                learner(i)
        threads = [threading.Thread(target=learners, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(failures, [])
        results = [None] * n
        go = threading.Barrier(20)

        def rate(k):
            go.wait()
            for i in range(k, n, 20):
                front = (S.a, S.b)[i % 2]
                results[i] = self.call(front, 'PUT', '/api/courses/%s/rating' % cid,
                                       {'stars': 1 + i % 5}, token=tokens[i]).status
        threads = [threading.Thread(target=rate, args=(k,)) for k in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(results, [200] * n)
        want = 3.0  # (1+2+3+4+5) * 20 / 100
        for f in (S.a, S.b):
            def check():
                got = f.get('/api/courses/' + cid).json()
                self.assertEqual((got['rating'], got['rating_count']), (want, n))
                items = f.get(top).json()['items']
                self.assertEqual({c['_id']: c['rating'] for c in items}[cid], want)
            soon(check, 'the average on ' + f.name)


ORDER = [T40Drafts, T41MyLearning, T42Modules, T43Ratings]

if __name__ == '__main__':
    sys.exit(main(ORDER))
