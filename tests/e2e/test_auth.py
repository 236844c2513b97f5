#!/usr/bin/python3
"""test_auth.py -- accounts and tokens: register, login (JSON and the
OAuth2 password form), crafted and malformed tokens, refresh-token
rotation and reuse, logout on every responder, role changes and user
deletion taking effect at once, and login throttling.

Runs on the harness's stack (harness.py). Accounts and the per-test client
addresses are the harness's (see "Accounts" there). Tokens are crafted
here with hmac/hashlib and the harness's JWT_SECRET: a correctly crafted
token must be accepted (the control), so each rejected variant differs
from an accepted token in one thing only.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import statistics
import sys
import threading
import time

from harness import (ACCESS_TTL_S, JWT_SECRET, OID, REFRESH_TTL_S, S, AuthCase, User, account,
                     client_address, course_body, elearnctl, main, token_of, unique_email)

HEX32 = re.compile(r'^[0-9a-f]{32}$')
OTHER_SECRET = 'not-the-e2e-secret-0123456789abcdefghijkl'


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode('ascii')


def unb64url(s):
    return base64.urlsafe_b64decode(s + '=' * (-len(s) % 4))


def b64url_json(obj):
    return b64url(json.dumps(obj, separators=(',', ':')).encode())


def hs(signing_input, secret=JWT_SECRET, digest=hashlib.sha256):
    return b64url(hmac.new(secret.encode(), signing_input.encode(), digest).digest())


def make_jwt(claims, header=None, secret=JWT_SECRET, digest=hashlib.sha256):
    """A compact JWT. digest=None leaves the signature empty (alg none)."""
    signing_input = '%s.%s' % (b64url_json(header or {'alg': 'HS256', 'typ': 'JWT'}),
                               b64url_json(claims))
    return signing_input + '.' + (hs(signing_input, secret, digest) if digest else '')


def jwt_parts(token):
    """(header, claims) of a token minted by the responder; its HS256
    signature must check out with JWT_SECRET."""
    h, p, sig = token.split('.')
    if not hmac.compare_digest(hs(h + '.' + p), sig):
        raise AssertionError('token signature does not verify with JWT_SECRET: %r' % token)
    return json.loads(unb64url(h)), json.loads(unb64url(p))


def claims_for(user, **over):
    """Access-token claims for user as the responder mints them; a claim
    given as None is left out."""
    now = int(time.time())
    c = {'iss': 'elearn', 'sub': user.id, 'role': user.role, 'jti': os.urandom(16).hex(),
         'sid': os.urandom(16).hex(), 'iat': now, 'exp': now + 600, 'typ': 'access'}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


class T11Register(AuthCase):

    def test_register_returns_the_public_user_as_a_student(self):
        email = unique_email('reg')
        r = self.register(S.a, email, 'a-long-password', 'Ann Example')
        self.assertEqual(r.status, 201, r)
        u = r.json()
        self.assertEqual(set(u), {'_id', 'email', 'name', 'role'})  # never the hash
        self.assertRegex(u['_id'], OID)
        self.assertEqual((u['email'], u['name'], u['role']), (email, 'Ann Example', 'student'))
        # The account works: it logs in, and /auth/me is the same user.
        user = User(u['_id'], email, 'a-long-password', 'Ann Example', 'student')
        tokens = self.login(user, S.b)
        self.assertAcceptedEverywhere(tokens['access_token'], user, 'the new account')

    def test_existing_email_is_409(self):
        u = self.new_student('dup')
        for front in (S.a, S.b):
            with self.subTest(front=front.name):
                self.assertJsonError(self.register(front, u.email, 'another-password'), 409)
        # The first account is untouched: its password still works.
        self.login(u)

    def test_password_of_10_characters_is_the_minimum(self):
        self.assertNamesField(self.register(S.a, unique_email('short'), '123456789'), 'password')
        self.assertEqual(self.register(S.a, unique_email('ten'), '1234567890').status, 201)

    def test_invalid_bodies_are_422_naming_the_field(self):
        good = {'email': unique_email('inv'), 'password': 'a-long-password', 'name': 'N'}
        cases = [
            (dict(good, email='not-an-email'), 'email'),
            (dict(good, email='two@@example.com'), 'email'),
            (dict(good, email=''), 'email'),
            ({k: v for k, v in good.items() if k != 'email'}, 'email'),
            ({k: v for k, v in good.items() if k != 'password'}, 'password'),
            ({k: v for k, v in good.items() if k != 'name'}, 'name'),
            (dict(good, name=''), 'name'),
            (dict(good, role='admin'), 'role'),                 # unknown field
            (dict(good, extra=1), 'extra'),
            (dict(good, email={'$ne': ''}), 'email'),           # wrong type / operator
            (dict(good, password=12345678901), 'password'),
            (dict(good, name=['N']), 'name'),
        ]
        for body, field in cases:
            with self.subTest(body=json.dumps(body)[:70]):
                self.assertNamesField(self.call(S.a, 'POST', '/api/auth/register', body), field)
        for raw in (b'', b'not json', b'[]', b'{"email":'):
            with self.subTest(raw=raw):
                self.assertJsonError(self.call(S.a, 'POST', '/api/auth/register', raw,
                                               headers={'Content-Type': 'application/json'}), 422)
        # None of them made an account (role=admin least of all).
        r = self.try_login(S.a, good['email'], good['password'])
        self.assertEqual(r.status, 401, r)


class T12Login(AuthCase):

    def test_json_login_issues_an_access_and_a_refresh_token(self):
        u = self.new_student('login')
        t0 = int(time.time())
        p = self.assertPair(self.try_login(S.a, u.email, u.password))
        hdr, acc = jwt_parts(p['access_token'])
        self.assertEqual(hdr['alg'], 'HS256')
        self.assertEqual((acc['iss'], acc['typ'], acc['sub'], acc['role']),
                         ('elearn', 'access', u.id, 'student'))
        self.assertRegex(acc['jti'], HEX32)
        self.assertRegex(acc['sid'], HEX32)
        self.assertTrue(t0 - 5 <= acc['iat'] <= t0 + 5, acc)
        self.assertEqual(acc['exp'] - acc['iat'], ACCESS_TTL_S)
        hdr, ref = jwt_parts(p['refresh_token'])
        self.assertEqual(hdr['alg'], 'HS256')
        self.assertEqual((ref['iss'], ref['typ'], ref['sub'], ref['sid']),
                         ('elearn', 'refresh', u.id, acc['sid']))
        self.assertNotEqual(ref['jti'], acc['jti'])
        self.assertEqual(ref['exp'] - ref['iat'], REFRESH_TTL_S)
        self.assertAcceptedEverywhere(p['access_token'], u, 'a fresh login')
        # A second login is a second login: another sid.
        p2 = self.login(u, S.b)
        self.assertNotEqual(jwt_parts(p2['access_token'])[1]['sid'], acc['sid'])

    def test_oauth2_password_form(self):
        u = self.new_student('form')
        r = self.call(S.b, 'POST', '/api/auth/login',
                      form={'username': u.email, 'password': u.password, 'grant_type': 'password'})
        p = self.assertPair(r)
        self.assertEqual(jwt_parts(p['access_token'])[1]['sub'], u.id)
        self.assertAcceptedEverywhere(p['access_token'], u, 'a form login')
        r = self.call(S.a, 'POST', '/api/auth/login',
                      form={'username': u.email, 'password': 'wrong-password'})
        self.assertEqual(self.assertJsonError(r, 401), {'detail': 'Invalid credentials'})
        r = self.call(S.a, 'POST', '/api/auth/login', form={'password': u.password})
        self.assertNamesField(r, 'username')
        r = self.call(S.a, 'POST', '/api/auth/login', form={'username': u.email})
        self.assertNamesField(r, 'password')

    def test_invalid_login_bodies_are_422(self):
        cases = [({'email': 'x@example.com'}, 'password'),
                 ({'password': 'a-long-password'}, 'email'),
                 ({'email': 'x@example.com', 'password': 'a-long-password', 'x': 1}, 'x'),
                 ({'email': {'$gt': ''}, 'password': 'a-long-password'}, 'email'),
                 ({'email': 'x@example.com', 'password': ['a']}, 'password')]
        for body, field in cases:
            with self.subTest(body=body):
                self.assertNamesField(self.call(S.a, 'POST', '/api/auth/login', body), field)

    def test_unknown_email_and_wrong_password_answer_alike(self):
        """The same status, body and headers, and the same work (timing
        within a factor of 2 of each other, medians of 8; skipping the
        password hash for an unknown email would make it ~20x faster)."""
        u = self.new_student('alike')
        # Untimed warm-up of the unknown-email path.
        self.assertUnauthorized(self.try_login(S.a, unique_email('nobody'), 'a-long-password'))
        wrong, unknown = [], []
        for _ in range(2):  # 4 failures per email, then a good login resets its count
            for _ in range(4):
                r1 = self.try_login(S.a, u.email, 'wrong-password-1')
                r2 = self.try_login(S.a, unique_email('nobody'), 'wrong-password-1')
                for r in (r1, r2):
                    self.assertUnauthorized(r)
                    self.assertEqual(r.json(), {'detail': 'Invalid credentials'})
                self.assertEqual(r1.body, r2.body)
                self.assertEqual(r1.header('www-authenticate'), r2.header('www-authenticate'))
                wrong.append(r1.elapsed)
                unknown.append(r2.elapsed)
            self.login(u)
        mw, mu = statistics.median(wrong), statistics.median(unknown)
        self.assertLess(max(mw, mu) / min(mw, mu), 2.0,
                        'median wrong password %.1f ms, unknown email %.1f ms' %
                        (mw * 1000, mu * 1000))

    def test_me(self):
        u = self.new_student('me')
        p = self.login(u)
        self.assertAcceptedEverywhere(p['access_token'], u, '/auth/me')
        admin = account('admin')
        self.assertAcceptedEverywhere(token_of('admin'), admin, 'the admin')


class T13Tokens(AuthCase):
    """What is not a valid access token is a 401 with WWW-Authenticate:
    Bearer, on every responder and every protected endpoint."""

    def protected(self, cid, mid):
        return [('GET', '/api/auth/me', None), ('DELETE', '/api/auth/logout', None),
                ('POST', '/api/courses', course_body('unauth')),
                ('PATCH', '/api/courses/' + cid, {'title': 'Hijacked'}),
                ('PATCH', '/api/courses/%s/modules/%s' % (cid, mid), {'title': 'Hijacked'}),
                ('DELETE', '/api/courses/' + cid, None),
                ('POST', '/api/courses/%s/enroll' % cid, None)]

    def test_missing_or_malformed_authorization(self):
        cid = S.take_id()
        before = self.assertCourse(S.a.get('/api/courses/' + cid), cid)
        mid = before['modules'][0]['_id']
        headers = [None, 'Basic dXNlcjpwYXNzd29yZA==', 'Bearer', 'Bearer ', 'Bearer abc',
                   'Bearer a.b', 'Bearer a.b.c', 'Bearer !!!.???.***', 'bearer',
                   token_of('admin')]  # an admin's token without the scheme
        for method, path, body in self.protected(cid, mid):
            for h in headers:
                with self.subTest(method=method, path=path, authorization=(h or '')[:20]):
                    r = self.call(S.a, method, path, body,
                                  headers={'Authorization': h} if h is not None else None)
                    self.assertUnauthorized(r)
        # Nothing was changed by any of them.
        after = self.assertCourse(S.a.get('/api/courses/' + cid), cid)
        self.assertEqual(after, before)

    def test_crafted_tokens(self):
        admin = account('admin')
        good = make_jwt(claims_for(admin))
        # The control: crafted the way the responder mints them, accepted.
        self.assertAcceptedEverywhere(good, admin, 'a correctly crafted token')
        now = int(time.time())
        h, p, _ = good.split('.')
        tampered = b64url_json(dict(json.loads(unb64url(p)), sub=account('student').id))
        bad = {
            'alg none, no signature': make_jwt(claims_for(admin),
                                               {'alg': 'none', 'typ': 'JWT'}, digest=None),
            'alg none, HS256 signature': make_jwt(claims_for(admin), {'alg': 'none', 'typ': 'JWT'}),
            'alg HS512': make_jwt(claims_for(admin), {'alg': 'HS512', 'typ': 'JWT'},
                                  digest=hashlib.sha512),
            'alg HS384': make_jwt(claims_for(admin), {'alg': 'HS384', 'typ': 'JWT'},
                                  digest=hashlib.sha384),
            'alg RS256': make_jwt(claims_for(admin), {'alg': 'RS256', 'typ': 'JWT'}),
            'another secret': make_jwt(claims_for(admin), secret=OTHER_SECRET),
            'expired': make_jwt(claims_for(admin, iat=now - 1200, exp=now - 600)),
            'expired just now': make_jwt(claims_for(admin, iat=now - 600, exp=now - 1)),
            'typ refresh': make_jwt(claims_for(admin, typ='refresh')),
            'no typ': make_jwt(claims_for(admin, typ=None)),
            'another issuer': make_jwt(claims_for(admin, iss='not-elearn')),
            'no exp': make_jwt(claims_for(admin, exp=None)),
            'exp as a string': make_jwt(claims_for(admin, exp=str(now + 600))),
            'no jti': make_jwt(claims_for(admin, jti=None)),
            'tampered payload': '%s.%s.%s' % (h, tampered, good.split('.')[2]),
            'signature cut short': good[:-4],
            'oversized (3 KB, correctly signed)': make_jwt(claims_for(admin, pad='x' * 3000)),
            'unsigned (two parts)': good.rsplit('.', 1)[0],
            'four parts': good + '.' + good.split('.')[2],
        }
        cid = S.shared_ids[0]
        for what, tok in bad.items():
            with self.subTest(token=what):
                self.assertRejectedEverywhere(tok, what)
                # A write endpoint says the same (401, not 403 or 422).
                self.assertUnauthorized(self.call(S.a, 'POST', '/api/courses', course_body('c'),
                                                  token=tok))
                self.assertUnauthorized(self.call(S.b, 'DELETE', '/api/courses/' + cid,
                                                  token=tok))
        self.assertCourse(S.a.get('/api/courses/' + cid), cid)

    def test_refresh_and_access_tokens_are_not_interchangeable(self):
        u = self.new_student('typ')
        p = self.login(u)
        self.assertRejectedEverywhere(p['refresh_token'], 'a refresh token as Bearer')
        for front in (S.a, S.b):
            r = self.refresh(front, p['access_token'])
            self.assertJsonError(r, 401)
        # Each still works for what it is.
        self.assertAcceptedEverywhere(p['access_token'], u, 'the access token')
        self.assertPair(self.refresh(S.a, p['refresh_token']))

    def test_token_of_a_user_that_never_existed(self):
        ghost = User(os.urandom(12).hex(), 'ghost@example.com', '', 'Ghost', 'admin')
        self.assertRejectedEverywhere(make_jwt(claims_for(ghost)), 'a token for no user')


class T14Refresh(AuthCase):

    def test_rotation(self):
        u = self.new_student('rot')
        p1 = self.login(u)
        p2 = self.assertPair(self.refresh(S.a, p1['refresh_token']))
        self.assertNotEqual(p2['access_token'], p1['access_token'])
        self.assertNotEqual(p2['refresh_token'], p1['refresh_token'])
        c1, c2 = jwt_parts(p1['refresh_token'])[1], jwt_parts(p2['refresh_token'])[1]
        self.assertEqual((c2['sub'], c2['sid'], c2['typ']), (u.id, c1['sid'], 'refresh'))
        self.assertNotEqual(c2['jti'], c1['jti'])
        self.assertEqual(jwt_parts(p2['access_token'])[1]['sid'], c1['sid'])
        self.assertAcceptedEverywhere(p2['access_token'], u, 'the rotated access token')
        # Rotation on the other responder, from the rotated token.
        p3 = self.assertPair(self.refresh(S.b, p2['refresh_token']))
        self.assertAcceptedEverywhere(p3['access_token'], u, 'the twice-rotated access token')

    def test_reuse_revokes_the_whole_login(self):
        u = self.new_student('reuse')
        p1 = self.login(u)
        p2 = self.assertPair(self.refresh(S.a, p1['refresh_token']))
        p3 = self.assertPair(self.refresh(S.b, p2['refresh_token']))
        other = self.login(u, S.b)  # another login of the same user
        self.assertAcceptedEverywhere(p3['access_token'], u, 'before the reuse')
        # p1's refresh token comes back: someone holds a copy.
        self.assertJsonError(self.refresh(S.a, p1['refresh_token']), 401)
        for name, p in (('p1', p1), ('p2', p2), ('p3', p3)):
            self.assertRejectedEverywhere(p['access_token'],
                                          'access token %s after the reuse' % name)
        for front in (S.b, S.a):
            self.assertJsonError(self.refresh(front, p3['refresh_token']), 401)
        # Another login of the user is another family: untouched.
        self.assertAcceptedEverywhere(other['access_token'], u, 'the other login')
        self.assertPair(self.refresh(S.a, other['refresh_token']))

    def test_concurrent_refreshes_only_one_wins(self):
        u = self.new_student('race')
        p = self.login(u)
        barrier = threading.Barrier(4)
        statuses = []
        lock = threading.Lock()

        def go(front):
            barrier.wait(10)
            r = self.refresh(front, p['refresh_token'])
            with lock:
                statuses.append(r.status)
        threads = [threading.Thread(target=go, args=(f,), daemon=True)
                   for f in (S.a, S.b, S.a, S.b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        self.assertEqual(sorted(statuses), [200, 401, 401, 401])

    def test_invalid_refresh_requests(self):
        admin = account('admin')
        for what, tok in (('garbage', 'abc'), ('alg none', make_jwt(
                claims_for(admin, typ='refresh'), {'alg': 'none', 'typ': 'JWT'}, digest=None)),
                ('another secret', make_jwt(claims_for(admin, typ='refresh'), secret=OTHER_SECRET)),
                ('never issued', make_jwt(claims_for(admin, typ='refresh')))):
            with self.subTest(token=what):
                self.assertJsonError(self.refresh(S.a, tok), 401)
        for body, field in (({}, 'refresh_token'), ({'refresh_token': 5}, 'refresh_token'),
                            ({'refresh_token': 'abc', 'extra': 1}, 'extra')):
            with self.subTest(body=body):
                self.assertNamesField(self.call(S.a, 'POST', '/api/auth/refresh', body), field)


class T15Logout(AuthCase):

    def test_logout_revokes_on_every_responder_at_once(self):
        u = self.new_student('logout')
        p = self.login(u)
        other = self.login(u, S.b)
        self.assertAcceptedEverywhere(p['access_token'], u, 'before logout')
        r = self.logout(S.a, p['access_token'])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {'message': 'Logged out successfully'})
        # The very next request, on B first, then A: no waiting.
        for front in (S.b, S.a):
            self.assertUnauthorized(self.me(front, p['access_token']), front.name)
        self.assertUnauthorized(self.logout(S.b, p['access_token']))
        # The login's refresh token is revoked too.
        self.assertJsonError(self.refresh(S.b, p['refresh_token']), 401)
        # The user's other login is not affected.
        self.assertAcceptedEverywhere(other['access_token'], u, 'the other login')
        self.assertPair(self.refresh(S.a, other['refresh_token']))

    def test_logout_of_a_rotated_login(self):
        u = self.new_student('logout2')
        p1 = self.login(u)
        p2 = self.assertPair(self.refresh(S.a, p1['refresh_token']))
        r = self.logout(S.b, p2['access_token'])
        self.assertEqual(r.status, 200, r)
        self.assertRejectedEverywhere(p2['access_token'], 'the logged-out token')
        self.assertJsonError(self.refresh(S.a, p2['refresh_token']), 401)


class T16UserChanges(AuthCase):
    """elearnctl set-role and delete-user take effect on the next request on
    every responder (the tokens still carry the old role)."""

    def ctl_ok(self, *args):
        r = elearnctl(*args)
        self.assertEqual(r.returncode, 0, '%s%s' % (r.stdout, r.stderr))

    def test_set_role(self):
        u = self.new_student('role')
        tok = self.login(u)['access_token']
        self.assertAcceptedEverywhere(tok, u, 'as a student')
        for front in (S.a, S.b):
            self.assertJsonError(self.call(front, 'POST', '/api/courses', course_body('role'),
                                           token=tok), 403)

        self.ctl_ok('set-role', '--email', u.email, '--role', 'instructor')
        u.role = 'instructor'
        self.assertAcceptedEverywhere(tok, u, 'promoted to instructor')
        r = self.call(S.b, 'POST', '/api/courses', course_body('role'), token=tok)
        self.assertEqual(r.status, 201, r)
        cid = r.json()['_id']
        self.assertEqual(r.json()['instructor_id'], u.id)

        self.ctl_ok('set-role', '--email', u.email, '--role', 'student')
        for front in (S.a, S.b):  # the first request on each after the change
            self.assertJsonError(self.call(front, 'PATCH', '/api/courses/' + cid,
                                           {'title': 'Not any more'}, token=tok), 403)

        self.ctl_ok('set-role', '--email', u.email, '--role', 'admin')
        r = self.call(S.b, 'DELETE', '/api/courses/' + cid, token=tok)
        self.assertEqual(r.status, 204, r)

    def test_delete_user(self):
        u = self.new_student('deleted')
        p = self.login(u)
        self.assertAcceptedEverywhere(p['access_token'], u, 'before deletion')
        self.ctl_ok('delete-user', '--email', u.email)
        self.assertRejectedEverywhere(p['access_token'], 'after deletion')
        self.assertJsonError(self.refresh(S.a, p['refresh_token']), 401)
        r = self.try_login(S.b, u.email, u.password)
        self.assertEqual(self.assertJsonError(r, 401), {'detail': 'Invalid credentials'})


class T19LoginThrottling(AuthCase):
    """More than 5 failures for one email, or 20 from one client address, in
    15 minutes: 429 with Retry-After, even with the right password. Each
    test uses client addresses of its own (see client_address)."""

    def assertThrottled(self, r):
        self.assertJsonError(r, 429)
        ra = r.header('retry-after') or ''
        self.assertRegex(ra, r'^\d+$', r.headers)
        self.assertTrue(1 <= int(ra) <= 15 * 60, ra)

    def test_per_email(self):
        u = self.new_student('throttle')
        bystander = self.new_student('bystander')
        for i in range(5):
            front = (S.a, S.b)[i % 2]
            r = self.try_login(front, u.email, 'wrong-password-%d' % i)
            self.assertEqual(self.assertJsonError(r, 401), {'detail': 'Invalid credentials'}, i)
        # The 6th attempt, right password and all: refused, on both.
        self.assertThrottled(self.try_login(S.a, u.email, u.password))
        self.assertThrottled(self.try_login(S.b, u.email, u.password))
        # From another address too: the count is the email's.
        self.src = client_address()
        self.assertThrottled(self.try_login(S.a, u.email, u.password))
        # Another email from the first address is not affected (5 < 20).
        self.login(bystander)

    def test_per_address(self):
        u = self.new_student('addr')
        for i in range(20):  # 20 different unknown emails, none reaches 5
            r = self.try_login((S.a, S.b)[i % 2], unique_email('spray'), 'wrong-password')
            self.assertEqual(r.status, 401, (i, r))
        self.assertThrottled(self.try_login(S.a, u.email, u.password))
        self.assertThrottled(self.try_login(S.b, u.email, u.password))
        self.src = client_address()
        self.login(u)  # the same user from elsewhere


ORDER = [T11Register, T12Login, T13Tokens, T14Refresh, T15Logout, T16UserChanges,
         T19LoginThrottling]

if __name__ == '__main__':
    sys.exit(main(ORDER))
