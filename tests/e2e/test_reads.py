#!/usr/bin/python3
"""test_reads.py -- the public reads: one course through the cache layers
(MISS, then L1, then L2 on the other responder; ETags, cached not-found,
invalid ids) and the course list (defaults, sort orders, pagination,
filters, search, invalid parameters, its cache layers).

Runs on the harness's stack (harness.py): responders A and B, one Redis,
the store seeded with NCOURSES courses; nothing here writes, so totals are
the seeded ones. See harness.py for how to run it.
"""

import os
import re
import sys
import urllib.parse

from harness import NCOURSES, OID, S, Case, main


class T01CourseCache(Case):

    def test_miss_then_l1_then_l2_on_the_other_responder(self):
        cid = S.take_id()
        r1 = S.a.get('/api/courses/' + cid)
        self.assertCourse(r1, cid, 'MISS')
        self.assertTrue(r1.header('etag'), r1)
        r2 = S.a.get('/api/courses/' + cid)
        self.assertCourse(r2, cid, 'L1')
        self.assertEqual(r2.body, r1.body)
        self.assertEqual(r2.header('etag'), r1.header('etag'))
        # Responder B shares the Redis: its first read is an L2 hit.
        r3 = S.b.get('/api/courses/' + cid)
        self.assertCourse(r3, cid, 'L2')
        self.assertEqual(r3.body, r1.body)
        self.assertEqual(r3.header('etag'), r1.header('etag'))
        self.assertCourse(S.b.get('/api/courses/' + cid), cid, 'L1')

    def test_course_document_shape(self):
        c = self.assertCourse(S.a.get('/api/courses/' + S.take_id()))
        for k in ('_id', 'title', 'description', 'category', 'difficulty', 'tags',
                  'instructor_id', 'duration_minutes', 'rating', 'rating_count',
                  'enrollment_count', 'published', 'created_at', 'updated_at', 'modules'):
            self.assertIn(k, c)
        self.assertRegex(c['_id'], OID)
        self.assertIn(c['difficulty'], ('beginner', 'intermediate', 'advanced'))
        self.assertIsInstance(c['tags'], list)
        self.assertIsInstance(c['modules'], list)
        self.assertTrue(c['modules'], 'seeded courses have modules')
        for m in c['modules']:
            for k in ('_id', 'title', 'content', 'duration_minutes', 'order'):
                self.assertIn(k, m)

    def test_if_none_match(self):
        cid = S.take_id()
        path = '/api/courses/' + cid
        etag = S.a.get(path).header('etag')
        self.assertTrue(etag)
        # L1 path
        r = S.a.get(path, {'If-None-Match': etag})
        self.assertEqual(r.status, 304, r)
        self.assertEqual(r.body, b'')
        self.assertEqual(r.layer, 'L1')
        self.assertEqual(r.header('etag'), etag)
        # L2 path (first read on B)
        r = S.b.get(path, {'If-None-Match': etag})
        self.assertEqual(r.status, 304, r)
        self.assertEqual(r.body, b'')
        self.assertEqual(r.layer, 'L2')
        # A list of tags, one matching
        r = S.a.get(path, {'If-None-Match': '"nope", ' + etag})
        self.assertEqual(r.status, 304, r)
        # Wrong ETag: the full body
        r = S.a.get(path, {'If-None-Match': '"0000-not-it"'})
        self.assertCourse(r, cid, 'L1')

    def test_not_found_is_cached(self):
        missing = os.urandom(12).hex()
        self.assertNotIn(missing, S.ids)
        r = S.a.get('/api/courses/' + missing)
        self.assertEqual(self.assertJsonError(r, 404), {'detail': 'Course not found'})
        self.assertEqual(r.layer, 'MISS')
        r = S.a.get('/api/courses/' + missing)
        self.assertEqual(self.assertJsonError(r, 404), {'detail': 'Course not found'})
        self.assertEqual(r.layer, 'L1', 'a second read of a missing id must come from cache')
        r = S.b.get('/api/courses/' + missing)
        self.assertJsonError(r, 404)
        self.assertEqual(r.layer, 'L2', 'the cached not-found is shared through Redis')

    def test_invalid_id_is_422(self):
        for bad in ('xyz', 'a' * 23, 'a' * 25, 'g' * 24, '0' * 23 + '%20', '0' * 23 + '%C3%A9'):
            with self.subTest(id=bad):
                self.assertJsonError(S.a.get('/api/courses/' + bad), 422)

    def test_uppercase_hex_id_is_valid(self):
        cid = S.take_id()
        r = S.a.get('/api/courses/' + cid.upper())
        self.assertIn(r.status, (200, 404), r)
        if r.status == 200:
            self.assertEqual(r.json()['_id'].lower(), cid)


class T02CourseList(Case):

    @classmethod
    def setUpClass(cls):
        r = S.a.get('/api/courses?page_size=100')
        if r.status != 200:
            raise RuntimeError('GET /api/courses?page_size=100: %r' % r)
        cls.all = r.json()['items']

    def get_list(self, qs, front=None):
        r = (front or S.a).get('/api/courses' + ('?' + qs if qs else ''))
        self.assertEqual(r.status, 200, r)
        self.assertTrue((r.header('content-type') or '').startswith('application/json'), r)
        self.assertIn(r.layer, ('L1', 'L2', 'MISS'))
        self.assertTrue(r.header('etag'), r)
        return r.json()

    def test_defaults(self):
        p = self.get_list('')
        self.assertEqual((p['total'], p['page'], p['page_size']), (NCOURSES, 1, 12))
        self.assertEqual(len(p['items']), 12)

    def test_sort_orders(self):
        keys = {
            'recent': lambda items: sorted(sorted(items, key=lambda c: c['_id']),
                                           key=lambda c: c['created_at'], reverse=True),
            'popular': lambda items: sorted(items, key=lambda c: (-c['enrollment_count'], c['_id'])),
            'top_rated': lambda items: sorted(items, key=lambda c: (-c['rating'], c['_id'])),
            'duration': lambda items: sorted(items, key=lambda c: (c['duration_minutes'], c['_id'])),
        }
        for sort, order in keys.items():
            with self.subTest(sort_by=sort):
                items = self.get_list('sort_by=%s&page_size=100' % sort)['items']
                self.assertEqual(len(items), NCOURSES)
                self.assertEqual([c['_id'] for c in items], [c['_id'] for c in order(items)])
        # recent is the default
        self.assertEqual([c['_id'] for c in self.get_list('page_size=30')['items']],
                         [c['_id'] for c in self.get_list('sort_by=recent&page_size=30')['items']])

    def test_pagination(self):
        full = self.get_list('sort_by=popular&page_size=100')['items']
        p = self.get_list('sort_by=popular&page_size=15&page=2')
        self.assertEqual((p['total'], p['page'], p['page_size']), (NCOURSES, 2, 15))
        self.assertEqual([c['_id'] for c in p['items']], [c['_id'] for c in full[15:30]])
        p = self.get_list('sort_by=popular&page_size=15&page=3')
        self.assertEqual([c['_id'] for c in p['items']], [c['_id'] for c in full[30:]])
        p = self.get_list('sort_by=popular&page_size=15&page=9')
        self.assertEqual((p['total'], len(p['items'])), (NCOURSES, 0))

    def test_filters(self):
        cat = self.all[0]['category']
        p = self.get_list('category=%s&page_size=100' % urllib.parse.quote(cat))
        self.assertTrue(all(c['category'] == cat for c in p['items']), p)
        self.assertEqual(p['total'], sum(c['category'] == cat for c in self.all))
        self.assertEqual(len(p['items']), p['total'])
        for diff in ('beginner', 'intermediate', 'advanced'):
            with self.subTest(difficulty=diff):
                p = self.get_list('difficulty=%s&page_size=100' % diff)
                self.assertTrue(all(c['difficulty'] == diff for c in p['items']))
                self.assertEqual(p['total'], sum(c['difficulty'] == diff for c in self.all))
        diff = self.all[0]['difficulty']
        p = self.get_list('difficulty=%s&category=%s&page_size=100' %
                          (diff, urllib.parse.quote(cat)))
        self.assertEqual(p['total'], sum(c['difficulty'] == diff and c['category'] == cat
                                         for c in self.all))
        self.assertGreaterEqual(p['total'], 1)
        p = self.get_list('category=no-such-category-e2e')
        self.assertEqual((p['total'], p['items']), (0, []))

    def test_search_is_case_insensitive(self):
        words = [w for c in self.all for w in re.findall(r'[A-Za-z]{5,}', c['title'])]
        self.assertTrue(words, 'seeded titles have words')
        word = words[0]

        def hits(c):
            hay = [c['title'], c['description']] + list(c['tags'])
            return any(word.lower() in h.lower() for h in hay)
        expect = sum(hits(c) for c in self.all)
        totals = []
        for w in (word.lower(), word.upper(), word):
            p = self.get_list('search=%s&page_size=100' % w)
            self.assertTrue(all(hits(c) for c in p['items']), (w, p))
            totals.append(p['total'])
        self.assertEqual(totals, [expect] * 3)
        self.assertGreaterEqual(expect, 1)

    def test_search_is_literal(self):
        # Regex and LIKE metacharacters match themselves, nothing more.
        for raw in ('.*', '%', '_', '(', '\\', '"', "'", '[a-z]+', '$where', 'a.c'):
            with self.subTest(search=raw):
                p = self.get_list('page_size=100&search=' + urllib.parse.quote(raw, safe=''))
                expect = [c['_id'] for c in self.all
                          if any(raw.lower() in h.lower()
                                 for h in [c['title'], c['description']] + list(c['tags']))]
                self.assertEqual(sorted(c['_id'] for c in p['items']), sorted(expect))
                self.assertEqual(p['total'], len(expect))

    def test_invalid_parameters(self):
        cases = [('page=0', 'page'), ('page=-1', 'page'), ('page=abc', 'page'),
                 ('page_size=0', 'page_size'), ('page_size=101', 'page_size'),
                 ('page_size=abc', 'page_size'), ('difficulty=expert', 'difficulty'),
                 ('sort_by=x', 'sort_by'), ('unknown=1', 'unknown'),
                 ('page=1&page=2', 'page')]
        for qs, param in cases:
            with self.subTest(qs=qs[:40]):
                self.assertJsonError(S.a.get('/api/courses?' + qs), 422, mentions=param)

    def test_list_cache_layers(self):
        qs = 'sort_by=top_rated&page_size=7&page=2'
        r1 = S.a.get('/api/courses?' + qs)
        self.assertEqual((r1.status, r1.layer), (200, 'MISS'), r1)
        r2 = S.a.get('/api/courses?' + qs)
        self.assertEqual((r2.status, r2.layer), (200, 'L1'), r2)
        self.assertEqual(r2.body, r1.body)
        self.assertEqual(r2.header('etag'), r1.header('etag'))
        # The same page spelled differently is the same cache entry.
        r3 = S.a.get('/api/courses?page=2&page_size=7&sort_by=top_rated')
        self.assertEqual((r3.status, r3.layer, r3.body), (200, 'L1', r1.body), r3)
        r4 = S.b.get('/api/courses?' + qs)
        self.assertEqual((r4.status, r4.layer, r4.body), (200, 'L2', r1.body), r4)
        r5 = S.a.get('/api/courses?' + qs, {'If-None-Match': r1.header('etag')})
        self.assertEqual((r5.status, r5.body), (304, b''), r5)


ORDER = [T01CourseCache, T02CourseList]

if __name__ == '__main__':
    sys.exit(main(ORDER))
