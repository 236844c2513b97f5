#!/usr/bin/python3
"""test_writes.py -- the course writes: who may create, patch, patch a
module, delete and enroll; strict input (422 naming the field, bad ids
rejected before any query); and read-your-writes on the responder that
wrote, for the course and the cached lists.

Runs on the harness's stack (harness.py), with the harness's shared
accounts (admin, instructor, instructor2, student).
"""

import os
import sys

from harness import (CAN_STOP_DB, NEEDS_STOPPABLE_DB, OID, S, AuthCase, account, course_body, main,
                     only_if, store_unavailable, summary, token_of)


class T17CourseWrites(AuthCase):

    def create(self, who='instructor', front=None, **over):
        r = self.call(front or S.a, 'POST', '/api/courses',
                      course_body(os.urandom(3).hex(), **over), token=token_of(who))
        self.assertEqual(r.status, 201, r)
        return r.json()

    def test_create_needs_an_instructor_or_an_admin(self):
        body = course_body('create', published=False)
        self.assertJsonError(self.call(S.a, 'POST', '/api/courses', body,
                                       token=token_of('student')), 403)
        for who in ('instructor', 'admin'):
            with self.subTest(who=who):
                r = self.call(S.a, 'POST', '/api/courses', body, token=token_of(who))
                self.assertEqual(r.status, 201, r)
                c = r.json()
                self.assertRegex(c['_id'], OID)
                self.assertEqual(c['instructor_id'], account(who).id)
                for k in ('title', 'description', 'category', 'difficulty', 'tags', 'published'):
                    self.assertEqual(c[k], body[k], k)
                self.assertEqual((c['enrollment_count'], c['rating_count']), (0, 0))
                self.assertEqual(c['duration_minutes'], 35)  # the modules' sum
                self.assertEqual([m['title'] for m in c['modules']], ['First steps', 'Next steps'])
                self.assertEqual([m['order'] for m in c['modules']], [1, 2])
                for m in c['modules']:
                    self.assertRegex(m['_id'], OID)
                for k in ('created_at', 'updated_at'):
                    self.assertRegex(c[k], r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$')

    def test_patch_by_its_instructor_or_an_admin(self):
        c = self.create('instructor')
        path = '/api/courses/' + c['_id']
        for who in ('instructor2', 'student'):
            with self.subTest(who=who):
                self.assertJsonError(self.call(S.a, 'PATCH', path, {'title': 'Not yours'},
                                               token=token_of(who)), 403)
        r = self.call(S.a, 'PATCH', path, {'title': 'Owner edit'}, token=token_of('instructor'))
        self.assertEqual((r.status, r.json()['title']), (200, 'Owner edit'), r)
        r = self.call(S.a, 'PATCH', path, {'difficulty': 'advanced', 'tags': ['x']},
                      token=token_of('admin'))
        self.assertEqual(r.status, 200, r)
        got = r.json()
        self.assertEqual((got['title'], got['difficulty'], got['tags']),
                         ('Owner edit', 'advanced', ['x']))
        self.assertEqual(got['instructor_id'], account('instructor').id)  # not the admin's
        self.assertJsonError(self.call(S.a, 'PATCH', '/api/courses/' + os.urandom(12).hex(),
                                       {'title': 'x'}, token=token_of('admin')), 404)

    def test_module_patch(self):
        c = self.create('instructor')
        m0, m1 = c['modules'][0]['_id'], c['modules'][1]['_id']
        path = '/api/courses/%s/modules/%s' % (c['_id'], m1)
        for who in ('instructor2', 'student'):
            with self.subTest(who=who):
                self.assertJsonError(self.call(S.a, 'PATCH', path, {'title': 'Not yours'},
                                               token=token_of(who)), 403)
        r = self.call(S.a, 'PATCH', path, {'title': 'Renamed module', 'duration_minutes': 40},
                      token=token_of('instructor'))
        self.assertEqual(r.status, 200, r)
        got = {m['_id']: m for m in r.json()['modules']}
        self.assertEqual((got[m1]['title'], got[m1]['duration_minutes']), ('Renamed module', 40))
        self.assertEqual(got[m0]['title'], 'First steps')
        r = self.call(S.a, 'PATCH', path, {'content': 'By the admin.'}, token=token_of('admin'))
        self.assertEqual(r.status, 200, r)
        for p in ('/api/courses/%s/modules/%s' % (c['_id'], os.urandom(12).hex()),
                  '/api/courses/%s/modules/%s' % (os.urandom(12).hex(), m1)):
            with self.subTest(path=p):
                self.assertJsonError(self.call(S.a, 'PATCH', p, {'title': 'x'},
                                               token=token_of('admin')), 404)

    def test_delete_is_for_admins(self):
        c = self.create('instructor')
        path = '/api/courses/' + c['_id']
        for who in ('instructor', 'student'):  # not even its own instructor
            with self.subTest(who=who):
                self.assertJsonError(self.call(S.a, 'DELETE', path, token=token_of(who)), 403)
        self.assertCourse(S.a.get(path), c['_id'])
        r = self.call(S.a, 'DELETE', path, token=token_of('admin'))
        self.assertEqual((r.status, r.body), (204, b''), r)
        self.assertJsonError(self.call(S.a, 'DELETE', path, token=token_of('admin')), 404)

    def test_enroll_once(self):
        c = self.create('instructor')
        path = '/api/courses/%s/enroll' % c['_id']
        s1 = self.new_student('enr1')
        s2 = self.new_student('enr2')
        t1, t2 = self.login(s1)['access_token'], self.login(s2)['access_token']
        r = self.call(S.a, 'POST', path, token=t1)
        self.assertEqual((r.status, r.json()), (200, {'enrollment_count': 1}), r)
        for front in (S.a, S.b):
            self.assertJsonError(self.call(front, 'POST', path, token=t1), 409)
        r = self.call(S.b, 'POST', path, token=t2)
        self.assertEqual((r.status, r.json()), (200, {'enrollment_count': 2}), r)
        # Any user, instructors included.
        r = self.call(S.a, 'POST', path, token=token_of('instructor2'))
        self.assertEqual((r.status, r.json()), (200, {'enrollment_count': 3}), r)
        self.assertJsonError(self.call(S.a, 'POST', '/api/courses/%s/enroll' % os.urandom(12).hex(),
                                       token=t1), 404)

    def test_strict_input_is_422_naming_the_field(self):
        cat = 'e2e-rejected-' + os.urandom(4).hex()
        base = course_body('strict', category=cat)
        m = {'title': 'M', 'content': 'C', 'duration_minutes': 5}
        create = [
            (dict(base, unknown=1), 'unknown'),
            (dict(base, instructor_id=account('instructor2').id), 'instructor_id'),
            (dict(base, enrollment_count=1000), 'enrollment_count'),
            (dict(base, _id=os.urandom(12).hex()), '_id'),
            (dict(base, **{'$set': {'title': 'x'}}), '$set'),
            (dict(base, title={'$ne': ''}), 'title.$ne'),
            (dict(base, modules=[dict(m, **{'$where': '1'})]), 'modules[0].$where'),
            (dict(base, title=5), 'title'),
            (dict(base, title=''), 'title'),
            (dict(base, description=None), 'description'),
            (dict(base, category='Not A Slug'), 'category'),
            (dict(base, difficulty='expert'), 'difficulty'),
            (dict(base, tags='e2e'), 'tags'),
            (dict(base, tags=[1]), 'tags[0]'),
            (dict(base, duration_minutes='30'), 'duration_minutes'),
            (dict(base, published='yes'), 'published'),
            (dict(base, modules={'title': 'x'}), 'modules'),
            (dict(base, modules=[dict(m, order='1')]), 'modules[0].order'),
            (dict(base, modules=[m, {k: v for k, v in m.items() if k != 'title'}]),
             'modules[1].title'),
            ({k: v for k, v in base.items() if k != 'title'}, 'title'),
        ]
        tok = token_of('instructor')
        for body, field in create:
            with self.subTest(create=field):
                self.assertNamesField(self.call(S.a, 'POST', '/api/courses', body, token=tok),
                                      field)
        for raw in (b'', b'null', b'[]', b'{"title": "x",}', b'{"title": "a", "title": "b"}'):
            with self.subTest(raw=raw):
                self.assertJsonError(self.call(S.a, 'POST', '/api/courses', raw, token=tok,
                                               headers={'Content-Type': 'application/json'}), 422)
        # Nothing was made by any of them.
        r = S.a.get('/api/courses?category=' + cat)
        self.assertEqual((r.status, r.json()['total']), (200, 0), r)

        c = self.create('instructor')
        before = self.assertCourse(S.a.get('/api/courses/' + c['_id']), c['_id'])
        patch = [({'instructor_id': account('instructor2').id}, 'instructor_id'),
                 ({'enrollment_count': 5}, 'enrollment_count'), ({'_id': c['_id']}, '_id'),
                 ({'modules': []}, 'modules'), ({'title': 'ok', '$inc': {'rating': 1}}, '$inc'),
                 ({'title': ['x']}, 'title'), ({'duration_minutes': -1}, 'duration_minutes'),
                 ({'published': 1}, 'published'), ({'rating': 5}, 'rating')]
        for body, field in patch:
            with self.subTest(patch=field):
                self.assertNamesField(self.call(S.a, 'PATCH', '/api/courses/' + c['_id'], body,
                                                token=tok), field)
        self.assertJsonError(self.call(S.a, 'PATCH', '/api/courses/' + c['_id'], {}, token=tok),
                             422)
        mpath = '/api/courses/%s/modules/%s' % (c['_id'], c['modules'][0]['_id'])
        for body, field in (({'foo': 1}, 'foo'), ({'_id': c['_id']}, '_id'),
                            ({'order': 'x'}, 'order'), ({'title': {'$set': 'x'}}, 'title.$set'),
                            ({'duration_minutes': 1.5}, 'duration_minutes')):
            with self.subTest(module_patch=field):
                self.assertNamesField(self.call(S.a, 'PATCH', mpath, body, token=tok), field)
        self.assertJsonError(self.call(S.a, 'PATCH', mpath, {}, token=tok), 422)
        # The course is as it was.
        self.assertEqual(self.assertCourse(S.a.get('/api/courses/' + c['_id'])), before)

    def bad_id_requests(self, cid, mid):
        for bad in ('xyz', 'a' * 23, 'a' * 25, 'g' * 24):
            yield 'PATCH', '/api/courses/' + bad, {'title': 'x'}, 'admin'
            yield 'DELETE', '/api/courses/' + bad, None, 'admin'
            yield 'POST', '/api/courses/%s/enroll' % bad, None, 'student'
            yield 'PATCH', '/api/courses/%s/modules/%s' % (bad, mid), {'title': 'x'}, 'admin'
            yield 'PATCH', '/api/courses/%s/modules/%s' % (cid, bad), {'title': 'x'}, 'admin'

    def test_bad_ids_are_422(self):
        c = self.create('instructor')
        for method, path, body, who in self.bad_id_requests(c['_id'], c['modules'][0]['_id']):
            with self.subTest(method=method, path=path):
                self.assertJsonError(self.call(S.a, method, path, body, token=token_of(who)), 422)

    @only_if(CAN_STOP_DB, NEEDS_STOPPABLE_DB)
    def test_bad_ids_are_422_before_any_query(self):
        """With the store unavailable, a bad id is still a quick 422: no
        query was tried. (A good id in the same request is a 503, so the
        store really was unavailable.)"""
        c = self.create('instructor')
        for who in ('admin', 'student'):  # validated sessions, cached in Redis
            self.assertEqual(self.me(S.a, token_of(who)).status, 200)
        with store_unavailable():
            for method, path, body, who in self.bad_id_requests(c['_id'], c['modules'][0]['_id']):
                with self.subTest(method=method, path=path):
                    r = self.call(S.a, method, path, body, token=token_of(who))
                    self.assertJsonError(r, 422)
                    self.assertLess(r.elapsed, 0.5, r)
            r = self.call(S.a, 'PATCH', '/api/courses/' + c['_id'], {'title': 'x'},
                          token=token_of('admin'))
            self.assertJsonError(r, 503)


class T18ReadYourWrites(AuthCase):
    """After a write returns on A, the next read on A shows it -- the
    course and the lists -- although both were cached (L1) before it.
    (That B's L1 is fresh too is test_cluster.py's T01Coherence.)"""

    def cached(self, path):
        """GET path on A until it is served from A's L1 (twice is enough);
        returns the body."""
        S.a.get(path)
        r = S.a.get(path)
        self.assertEqual((r.status, r.layer), (200, 'L1'), r)
        return r.json()

    def test_create(self):
        recent = '/api/courses?sort_by=recent&page_size=5'
        before = self.cached(recent)
        tag = os.urandom(4).hex()
        search = '/api/courses?search=' + tag
        self.assertEqual(self.cached(search)['total'], 0)
        r = self.call(S.a, 'POST', '/api/courses', course_body(tag), token=token_of('instructor'))
        self.assertEqual(r.status, 201, r)
        c = r.json()
        self.assertEqual(self.assertCourse(S.a.get('/api/courses/' + c['_id']), c['_id']), c)
        after = S.a.get(recent).json()
        self.assertEqual(after['total'], before['total'] + 1)
        self.assertEqual(after['items'][0], summary(c))
        found = S.a.get(search).json()
        self.assertEqual((found['total'], [i['_id'] for i in found['items']]), (1, [c['_id']]))

    def test_patch(self):
        cid = S.take_id()
        path = '/api/courses/' + cid
        before = self.cached(path)
        by_duration = '/api/courses?sort_by=duration&page_size=100'
        self.cached(by_duration)
        tag = os.urandom(4).hex()
        search = '/api/courses?search=' + tag
        self.assertEqual(self.cached(search)['total'], 0)
        r = self.call(S.a, 'PATCH', path, {'title': 'Renamed %s' % tag, 'duration_minutes': 9999},
                      token=token_of('admin'))
        self.assertEqual(r.status, 200, r)
        patched = r.json()
        self.assertEqual((patched['title'], patched['duration_minutes']),
                         ('Renamed %s' % tag, 9999))
        self.assertGreater(patched['updated_at'], before['updated_at'])
        self.assertEqual(patched['created_at'], before['created_at'])
        self.assertEqual(self.assertCourse(S.a.get(path), cid), patched)
        found = S.a.get(search).json()
        self.assertEqual((found['total'], found['items']), (1, [summary(patched)]))
        items = S.a.get(by_duration).json()['items']
        self.assertIn(summary(patched), items)
        self.assertEqual([i['_id'] for i in items],
                         [i['_id'] for i in sorted(items, key=lambda i: (i['duration_minutes'],
                                                                         i['_id']))])

    def test_module_patch(self):
        cid = S.take_id()
        path = '/api/courses/' + cid
        before = self.cached(path)
        listing = '/api/courses?sort_by=top_rated&page_size=100'
        self.cached(listing)
        mid = before['modules'][-1]['_id']
        r = self.call(S.a, 'PATCH', '%s/modules/%s' % (path, mid), {'title': 'Module renamed'},
                      token=token_of('admin'))
        self.assertEqual(r.status, 200, r)
        patched = r.json()
        self.assertEqual(patched['modules'][-1]['title'], 'Module renamed')
        self.assertEqual(patched['modules'][:-1], before['modules'][:-1])
        self.assertEqual(self.assertCourse(S.a.get(path), cid), patched)
        items = {i['_id']: i for i in S.a.get(listing).json()['items']}
        self.assertEqual(items[cid], summary(patched))

    def test_delete(self):
        r = self.call(S.a, 'POST', '/api/courses', course_body('del'), token=token_of('instructor'))
        self.assertEqual(r.status, 201, r)
        cid = r.json()['_id']
        path = '/api/courses/' + cid
        self.cached(path)
        recent = '/api/courses?sort_by=recent&page_size=100'
        before = self.cached(recent)
        self.assertIn(cid, [i['_id'] for i in before['items']])
        r = self.call(S.a, 'DELETE', path, token=token_of('admin'))
        self.assertEqual(r.status, 204, r)
        self.assertEqual(self.assertJsonError(S.a.get(path), 404), {'detail': 'Course not found'})
        after = S.a.get(recent).json()
        self.assertEqual(after['total'], before['total'] - 1)
        self.assertNotIn(cid, [i['_id'] for i in after['items']])

    def test_enroll(self):
        cid = S.take_id()
        path = '/api/courses/' + cid
        before = self.cached(path)
        popular = '/api/courses?sort_by=popular&page_size=100'
        self.cached(popular)
        s = self.new_student('ryw')
        r = self.call(S.a, 'POST', path + '/enroll', token=self.login(s)['access_token'])
        n = before['enrollment_count'] + 1
        self.assertEqual((r.status, r.json()), (200, {'enrollment_count': n}), r)
        self.assertEqual(self.assertCourse(S.a.get(path), cid)['enrollment_count'], n)
        items = S.a.get(popular).json()['items']
        self.assertEqual({i['_id']: i['enrollment_count'] for i in items}[cid], n)
        self.assertEqual([i['_id'] for i in items],
                         [i['_id'] for i in sorted(items, key=lambda i: (-i['enrollment_count'],
                                                                         i['_id']))])


ORDER = [T17CourseWrites, T18ReadYourWrites]

if __name__ == '__main__':
    sys.exit(main(ORDER))
