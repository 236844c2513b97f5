#!/usr/bin/python3
"""test_fcgi.py -- the responder's FastCGI front, attacked directly on its
socket (no web server in between), as any local user with access to it
could: the byte sequences that crashed, leaked, froze or spun the libfcgi
front (issue 8), the record splits and pipelining web servers really do,
slow and non-reading peers, and descriptor exhaustion.

    EL_E2E_BUILD=build /usr/bin/python3 tests/e2e/test_fcgi.py [-v] [Test...]

Normally run by tests/e2e/run.sh (suite "fcgi", one store: the framing
does not depend on it). Python 3 stdlib only. The responder runs with
--listen on a unix socket in a temp dir, an SQLite store seeded with
elearnctl, Redis off (REDIS_URL=""), REQUEST_TIMEOUT=2 and SEND_TIMEOUT=2 so
the deadlines are seen quickly; the main one with EVENT_THREADS=2. Every wait polls a condition against a
deadline; processes are stopped by pid.
"""

import http.client
import json
import os
import re
import select
import signal
import socket
import struct
import sys
import threading
import time
import unittest

from harness import (BUILD, ROOT, S, free_port, main, read_text, scaled, tcp_open,
                     wait_until)

# The framing does not depend on the store: one run.
STORES = ('sqlite',)

# FastCGI 1.0 (the constants of <fastcgi.h>)
BEGIN, ABORT, END, PARAMS, STDIN, STDOUT, STDERR, DATA, GET_VALUES, GET_VALUES_RESULT, \
    UNKNOWN_TYPE = range(1, 12)
RESPONDER, AUTHORIZER, FILTER = 1, 2, 3
REQUEST_COMPLETE, CANT_MPX_CONN, OVERLOADED, UNKNOWN_ROLE = range(4)


# --------------------------------------------------------------------------
# A FastCGI client

def record(rtype, rid, content=b'', padding=None):
    if padding is None:
        padding = (8 - len(content) % 8) % 8
    return struct.pack('>BBHHBB', 1, rtype, rid, len(content), padding, 0) + content + \
        b'\0' * padding


def nv_len(n):
    return bytes([n]) if n < 128 else struct.pack('>I', n | 0x80000000)


def nv(name, value):
    name, value = name.encode(), value.encode()
    return nv_len(len(name)) + nv_len(len(value)) + name + value


def begin(rid, role=RESPONDER, keep=True):
    return record(BEGIN, rid, struct.pack('>HB5x', role, 1 if keep else 0))


def request(path, rid=1, method='GET', query='', body=None, content_length=True, keep=True,
            extra=None):
    """The records of one request, as a list (one bytes per record)."""
    params = {'REQUEST_METHOD': method, 'PATH_INFO': path, 'QUERY_STRING': query,
              'REMOTE_ADDR': '127.0.0.9'}
    if body is not None:
        params['CONTENT_TYPE'] = 'application/json'
        if content_length:
            params['CONTENT_LENGTH'] = str(len(body))
    params.update(extra or {})
    recs = [begin(rid, keep=keep),
            record(PARAMS, rid, b''.join(nv(k, v) for k, v in params.items())),
            record(PARAMS, rid)]
    body = body or b''
    for i in range(0, len(body), 65535):
        recs.append(record(STDIN, rid, body[i:i + 65535]))
    recs.append(record(STDIN, rid))
    return recs


class Conn:
    """One connection to the responder, reading whole records."""

    def __init__(self, path, timeout=10):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.buf = b''

    def send(self, data):
        self.s.sendall(data)

    def _fill(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError('connection closed by the responder')
            self.buf += chunk

    def read_record(self):
        self._fill(8)
        _, rtype, rid, clen, plen, _ = struct.unpack('>BBHHBB', self.buf[:8])
        self._fill(8 + clen + plen)
        content = self.buf[8:8 + clen]
        self.buf = self.buf[8 + clen + plen:]
        return rtype, rid, content

    def response(self, rid=1):
        """(status, headers, body, protocol_status) of request rid."""
        out = b''
        while True:
            rtype, r, content = self.read_record()
            if r != rid:
                raise AssertionError('record for id %d while reading %d' % (r, rid))
            if rtype == STDOUT:
                out += content
            elif rtype == END:
                proto = content[4]
                break
            elif rtype != STDERR:
                raise AssertionError('unexpected record type %d' % rtype)
        head, _, body = out.partition(b'\r\n\r\n')
        headers = {}
        for line in head.decode().split('\r\n'):
            if ':' in line:
                k, v = line.split(':', 1)
                headers[k.strip().lower()] = v.strip()
        status = int(headers.get('status', '0 x').split()[0]) if headers else 0
        return status, headers, body, proto

    def closed(self, timeout):
        """True when the responder closes within timeout (reading and
        dropping whatever it still sends)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                if not self.s.recv(65536):
                    return True
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
        return False

    def hung_up(self, timeout):
        """True when the responder closes within timeout, seen without
        reading (a peer that never reads must not be helped along)."""
        p = select.poll()
        p.register(self.s, select.POLLRDHUP | select.POLLHUP)
        return bool(p.poll(timeout * 1000))

    def close(self):
        self.s.close()


def get(path, sock, query='', timeout=10):
    c = Conn(sock, timeout)
    try:
        c.send(b''.join(request(path, query=query)))
        return c.response()
    finally:
        c.close()


# --------------------------------------------------------------------------
# The responder

def proc_cpu_s(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def proc_rss_kib(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


class Responder:
    """A responder on a unix socket of its own, listening itself (--listen),
    optionally under a command prefix (prlimit); no nginx in front."""

    def __init__(self, name, env=None, prefix=(), tcp_port=None):
        self.sock = os.path.join(S.tmp, name + '.sock')
        self.log = os.path.join(S.tmp, name + '.log')
        self.tcp_port = tcp_port
        listen = '127.0.0.1:%d' % tcp_port if tcp_port else 'unix:' + self.sock
        e = dict(REQUEST_TIMEOUT='2', SEND_TIMEOUT='2')
        e.update(env or {})
        self.p = S.procs.start('responder ' + name,
                               list(prefix) + [os.path.join(BUILD, 'elearn-fcgi'),
                                               '--listen', listen],
                               env=S.env(**e), log=self.log)
        self.pid = self.p.pid
        wait_until(self._ready, 20, 'the responder on ' + listen)

    def _ready(self):
        if self.p.poll() is not None:
            raise AssertionError('responder exited %s:\n%s' % (self.p.returncode, self.text()))
        try:
            if self.tcp_port:
                socket.create_connection(('127.0.0.1', self.tcp_port), 1).close()
                return True
            return get('/health', self.sock, timeout=2)[0] == 200
        except OSError:
            return False

    def alive(self):
        return self.p.poll() is None

    def text(self):
        return read_text(self.log)

    def stop(self):
        return S.procs.stop(self.p)


R = None
IDS = []


def setUpModule():
    global R
    # two event threads sharing the listener: the handoffs between them and
    # the workers are exercised too (the other responders here use one)
    R = Responder('main', env={'EVENT_THREADS': '2'})
    status, _, body, _ = get('/courses', R.sock, query='page_size=100')
    assert status == 200, (status, body)
    IDS.extend(c['_id'] for c in json.loads(body)['items'])


def tearDownModule():
    rc = R.stop() if R else 0
    text = R.text() if R else ''
    # After everything above, a clean stop: exit 0 and (in a sanitizer
    # build) no report of any kind.
    if rc != 0 or 'Sanitizer' in text or 'runtime error' in text:
        raise AssertionError('responder exited %s:\n%s' % (rc, text[-3000:]))


class FcgiCase(unittest.TestCase):
    def assertHealthy(self):
        self.assertTrue(R.alive(), R.text()[-2000:])
        self.assertEqual(get('/health', R.sock)[0], 200)


# --------------------------------------------------------------------------

class F01Crashes(FcgiCase):
    def test_huge_param_lengths_close_only_that_connection(self):
        # The 26-byte libfcgi abort: name and value lengths 0x7ffffffe.
        other = Conn(R.sock)
        other.send(begin(1) + record(PARAMS, 1, nv('PATH_INFO', '/health')))  # in flight
        c = Conn(R.sock)
        c.send(begin(1) + record(PARAMS, 1, struct.pack('>II', 0xfffffffe, 0xfffffffe) + b'ab')
               + record(PARAMS, 1))
        self.assertTrue(c.closed(5))
        c.close()
        # the other connection's request is still served
        other.send(record(PARAMS, 1) + record(STDIN, 1))
        self.assertEqual(other.response()[0], 200)
        other.close()
        self.assertHealthy()

    def test_get_values_answered_exactly(self):
        # FCGI_MPXS_CONNS four times smashed libfcgi's stack; the valid
        # reply leaked uninitialised bytes. One answer, every byte known.
        c = Conn(R.sock)
        c.send(record(GET_VALUES, 0, nv('FCGI_MPXS_CONNS', '') * 4))
        self.assertEqual(c.read_record(),
                         (GET_VALUES_RESULT, 0, b'\x0f\x01FCGI_MPXS_CONNS0'))
        self.assertEqual(c.buf, b'')
        # all three known names, plus an unknown one that is left out
        c.send(record(GET_VALUES, 0, nv('FCGI_MAX_CONNS', '') + nv('X_UNKNOWN', '') +
                      nv('FCGI_MAX_REQS', '') + nv('FCGI_MPXS_CONNS', '')))
        rtype, rid, content = c.read_record()
        self.assertEqual((rtype, rid), (GET_VALUES_RESULT, 0))
        self.assertIn(b'FCGI_MPXS_CONNS0', content)
        self.assertIn(b'FCGI_MAX_CONNS', content)
        self.assertIn(b'FCGI_MAX_REQS', content)
        self.assertNotIn(b'X_UNKNOWN', content)
        c.close()
        self.assertHealthy()

    def test_unknown_management_records_do_not_leak(self):
        # libfcgi leaked ~61 MiB for 8 MB of these. Send 8 MB, read every
        # UNKNOWN_TYPE reply, and look at the resident size.
        n = 8 * 1024 * 1024 // 16
        c = Conn(R.sock, timeout=60)
        got = []

        def reader():
            k = 0
            try:
                while k < n:
                    rtype, rid, content = c.read_record()
                    if (rtype, rid, content[:1]) != (UNKNOWN_TYPE, 0, b'\x2a'):
                        break
                    k += 1
            except (OSError, EOFError):
                pass
            got.append(k)

        rss0 = proc_rss_kib(R.pid)
        t = threading.Thread(target=reader)
        t.start()
        one = record(42, 0, b'12345678')  # 16 bytes
        chunk = one * 4096
        for _ in range(n // 4096):
            c.send(chunk)
        t.join(60)
        self.assertEqual(got, [n])
        c.close()
        grew = proc_rss_kib(R.pid) - rss0
        self.assertLess(grew, 8 * 1024, 'resident size grew by %d KiB' % grew)
        self.assertHealthy()


class F02Protocol(FcgiCase):
    def test_other_roles_are_refused(self):
        c = Conn(R.sock)
        for rid, role in ((3, AUTHORIZER), (4, FILTER)):
            c.send(begin(rid, role=role) + record(PARAMS, rid, nv('PATH_INFO', '/health')) +
                   record(PARAMS, rid) + record(STDIN, rid) + record(DATA, rid))
            rtype, r, content = c.read_record()
            self.assertEqual((rtype, r, content[4]), (END, rid, UNKNOWN_ROLE))
        # the connection still serves a responder request
        c.send(b''.join(request('/health', rid=5)))
        self.assertEqual(c.response(5)[0], 200)
        c.close()

    def test_multiplexing_is_refused(self):
        c = Conn(R.sock)
        c.send(begin(1) + record(PARAMS, 1, nv('REQUEST_METHOD', 'GET') +
                                 nv('PATH_INFO', '/health')))
        c.send(begin(2) + record(PARAMS, 2, nv('PATH_INFO', '/health')) + record(PARAMS, 2) +
               record(STDIN, 2))
        rtype, r, content = c.read_record()
        self.assertEqual((rtype, r, content[4]), (END, 2, CANT_MPX_CONN))
        c.send(record(PARAMS, 1) + record(STDIN, 1))
        self.assertEqual(c.response(1)[0], 200)
        c.close()

    def test_abort_ends_the_request(self):
        c = Conn(R.sock)
        c.send(begin(1) + record(PARAMS, 1, nv('PATH_INFO', '/health')) +
               record(ABORT, 1))
        rtype, r, content = c.read_record()
        self.assertEqual((rtype, r, content[4]), (END, 1, REQUEST_COMPLETE))
        # kept (FCGI_KEEP_CONN): the next request on it works
        c.send(b''.join(request('/health', rid=1)))
        self.assertEqual(c.response()[0], 200)
        c.close()
        # without FCGI_KEEP_CONN the responder closes after the END_REQUEST
        c = Conn(R.sock)
        c.send(begin(1, keep=False) + record(ABORT, 1))
        self.assertEqual(c.read_record()[0], END)
        self.assertTrue(c.closed(5))
        c.close()

    def test_violations_close_the_connection(self):
        for bad in (b'\x02' + record(BEGIN, 1, b'\0\1\1\0\0\0\0\0')[1:],  # version 2
                    begin(0),                                            # null id
                    begin(1) + record(STDIN, 1, b'x'),                   # body before params end
                    record(END, 1, b'\0' * 8)):                          # ours to send
            c = Conn(R.sock)
            c.send(bad)
            self.assertTrue(c.closed(5), bad)
            c.close()
        self.assertHealthy()

    def test_no_keep_conn_closes_after_the_response(self):
        c = Conn(R.sock)
        c.send(b''.join(request('/health', keep=False)))
        self.assertEqual(c.response()[0], 200)
        self.assertTrue(c.closed(5))
        c.close()


class F03Framing(FcgiCase):
    def test_records_split_like_apache(self):
        # Apache sends the empty STDIN of a body-less request in a write of
        # its own; libfcgi read it as the next request (1 in ~700 503s).
        # Here every record, and some single bytes, go in separate writes,
        # 100 requests on one kept connection.
        c = Conn(R.sock)
        for i in range(100):
            recs = request('/courses/' + IDS[i % len(IDS)])
            if i % 10 == 0:
                for b in b''.join(recs):
                    c.send(bytes([b]))
            else:
                for r in recs:
                    c.send(r)
            status, _, body, _ = c.response()
            self.assertEqual(status, 200)
            self.assertEqual(json.loads(body)['_id'], IDS[i % len(IDS)])
        c.close()

    def test_body_without_content_length(self):
        # Apache's chunked uploads: no CONTENT_LENGTH, the body ends at the
        # empty STDIN. Read in full and handled (not 411, not 400).
        body = json.dumps({'email': 'nobody@example.com', 'password': 'x' * 12}).encode()
        c = Conn(R.sock)
        recs = request('/auth/login', method='POST', body=body, content_length=False)
        for r in recs:
            c.send(r)
        status, _, resp, _ = c.response()
        self.assertEqual(status, 401, resp)
        # over the 1 MiB limit: 413, and the connection stays usable
        big = b'{"a":"' + b'x' * (1 << 20) + b'"}'
        c.send(b''.join(request('/courses', method='POST', body=big, content_length=False)))
        status, _, resp, _ = c.response()
        self.assertEqual(status, 413, resp)
        c.send(b''.join(request('/health')))
        self.assertEqual(c.response()[0], 200)
        c.close()

    def test_pipelined_requests_answered_in_order(self):
        # libfcgi answered 1 of 200.
        c = Conn(R.sock, timeout=30)
        want = [IDS[i % len(IDS)] for i in range(200)]
        c.send(b''.join(b''.join(request('/courses/' + i)) for i in want))
        for i in want:
            status, _, body, _ = c.response()
            self.assertEqual(status, 200)
            self.assertEqual(json.loads(body)['_id'], i)
        c.close()


class F04SlowPeers(FcgiCase):
    def test_slow_and_non_reading_peers_do_not_delay_health(self):
        # 16 peers that send one byte and stop, 16 that send a request's
        # headers without its end, 16 that pipeline requests and never
        # read: libfcgi pinned all 16 workers. /health must be answered
        # while every one of them is still connected (they hold nothing),
        # and the deadlines (REQUEST_TIMEOUT, SEND_TIMEOUT: 4 s here) must
        # then close each of them.
        r = Responder('slowpeers', env={'REQUEST_TIMEOUT': '4', 'SEND_TIMEOUT': '4'})
        peers, stuffers = [], []
        try:
            for i in range(16):
                c = Conn(r.sock)
                c.send(b'\x01')
                peers.append(c)
            for i in range(16):
                c = Conn(r.sock)
                c.send(begin(1) + record(PARAMS, 1, nv('PATH_INFO', '/health')) +
                       record(PARAMS, 1))
                peers.append(c)
            for i in range(16):
                c = Conn(r.sock)
                c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                c.s.setblocking(False)
                req = b''.join(request('/courses', query='page_size=100'))
                try:
                    for _ in range(200):
                        c.s.send(req)
                except BlockingIOError:
                    pass  # the responder stopped reading us: as intended
                c.s.setblocking(True)
                stuffers.append(c)
            worst = 0.0
            for _ in range(5):
                t0 = time.monotonic()
                self.assertEqual(get('/health', r.sock, timeout=scaled(10))[0], 200)
                worst = max(worst, time.monotonic() - t0)
            # A few ms is the design. The machine is shared, so the
            # assertion is about order, not a tight margin: every answer
            # came while all 48 peers were still connected, i.e. well
            # before any deadline could have freed something for it.
            still = [c for c in peers + stuffers if not c.hung_up(0)]
            self.assertEqual(len(still), 48, 'worst /health %.3f s' % worst)
            for c in peers:
                self.assertTrue(c.closed(scaled(15)), 'a slow peer was never closed')
            for c in stuffers:
                self.assertTrue(c.hung_up(scaled(15)), 'a non-reading peer was never closed')
            self.assertEqual(get('/health', r.sock)[0], 200)
        finally:
            for c in peers + stuffers:
                c.close()
            self.assertEqual(r.stop(), 0, r.text()[-2000:])


class F05Descriptors(FcgiCase):
    def test_descriptor_exhaustion_backs_off(self):
        # At the fd limit the listener stays readable: libfcgi's front spun
        # at 98 % of a core writing 8.4 million log lines in 6 s.
        r = Responder('fdlimit', env={'REDIS_URL': ''},
                      prefix=('prlimit', '--nofile=48:48', '--'))
        conns = []
        try:
            for _ in range(80):
                s = socket.socket(socket.AF_UNIX)
                s.settimeout(5)
                s.connect(r.sock)  # lands in the backlog once fds run out
                conns.append(s)
            wait_until(lambda: 'accept' in r.text(), 10, 'the descriptor-limit log line')
            cpu0, t0 = proc_cpu_s(r.pid), time.monotonic()
            lines0 = r.text().count('\n')
            time.sleep(2)  # the measurement window itself, not a wait for a condition
            cpu = (proc_cpu_s(r.pid) - cpu0) / (time.monotonic() - t0)
            self.assertLess(cpu, 0.3, 'CPU share %.2f at the descriptor limit' % cpu)
            self.assertLessEqual(r.text().count('\n') - lines0, 2, r.text()[-2000:])
            self.assertTrue(r.alive())
            for s in conns:
                s.close()
            conns = []
            # service resumes once descriptors are free
            wait_until(lambda: get('/health', r.sock, timeout=2)[0] == 200, 20,
                       '/health after descriptors freed')
        finally:
            for s in conns:
                s.close()
            self.assertEqual(r.stop(), 0, r.text()[-2000:])

    def test_sighup_survived_sigterm_drains_and_exits_0(self):
        r = Responder('sigterm')
        c = Conn(r.sock)
        c.send(b''.join(request('/health')))
        self.assertEqual(c.response()[0], 200)
        # SIGHUP is not a stop (log rotation sends it): still serving after
        r.p.send_signal(signal.SIGHUP)
        c.send(b''.join(request('/health')))
        self.assertEqual(c.response()[0], 200)
        self.assertTrue(r.alive())
        slow = Conn(r.sock)
        slow.send(record(GET_VALUES, 0, nv('FCGI_MPXS_CONNS', '')))
        self.assertEqual(slow.read_record()[0], GET_VALUES_RESULT)  # accepted and read
        slow.send(begin(1) + record(PARAMS, 1, nv('PATH_INFO', '/health')))  # arriving
        r.p.send_signal(signal.SIGTERM)

        def refused():
            try:
                socket.socket(socket.AF_UNIX).connect(r.sock)
                return False
            except OSError:
                return True
        wait_until(refused, 5, 'new connections refused after SIGTERM')
        # The kept connection goes on being served until its peer closes it
        # (the web server decides when it will not write into it again) ...
        c.send(b''.join(request('/health')))
        self.assertEqual(c.response()[0], 200)
        # ... and the request that was arriving is finished.
        slow.send(record(PARAMS, 1) + record(STDIN, 1))
        self.assertEqual(slow.response()[0], 200)
        self.assertTrue(r.alive())
        # A second SIGTERM ends the drain: every connection closed, exit 0.
        r.p.send_signal(signal.SIGTERM)
        self.assertTrue(c.closed(5))
        self.assertTrue(slow.closed(5))
        self.assertEqual(r.p.wait(scaled(15)), 0, r.text()[-2000:])
        r.stop()
        c.close()
        slow.close()

    def test_sigterm_exits_once_the_peers_close(self):
        r = Responder('sigterm2')
        c = Conn(r.sock)
        c.send(b''.join(request('/health')))
        self.assertEqual(c.response()[0], 200)
        r.p.send_signal(signal.SIGTERM)
        wait_until(lambda: 'stopping' in r.text(), 5, 'the stop to begin')
        self.assertTrue(r.alive())  # draining: our connection is still open
        c.close()  # the web server closes it: nothing left, exit 0
        self.assertEqual(r.p.wait(scaled(10)), 0, r.text()[-2000:])
        r.stop()


class F06Apache(FcgiCase):
    """Apache httpd with mod_proxy_fcgi, configured with the ProxyPass and
    <Location "/api/"> of the shipped conf/apache.conf (the socket replaced
    by a TCP address Apache's user can reach): the web server whose habits
    broke the libfcgi front."""

    @classmethod
    def setUpClass(cls):
        rport, cls.port = free_port(), free_port()
        cls.r = Responder('apache-backend', tcp_port=rport)
        shipped = read_text(os.path.join(ROOT, 'conf/apache.conf'))
        proxy = re.search(r'^\s*ProxyPass\s.*$', shipped, re.M).group(0)
        # the socket (a path, or @SOCKET@ in the template) becomes our TCP port
        proxy = re.sub(r'unix:[^|"]*\|fcgi://localhost/', 'fcgi://127.0.0.1:%d/' % rport, proxy)
        if 'fcgi://127.0.0.1:%d/' % rport not in proxy:
            raise AssertionError('conf/apache.conf: no unix:...|fcgi://localhost/ '
                                 'in its ProxyPass: %s' % proxy)
        location = re.search(r'^\s*<Location "/api/">.*?</Location>', shipped,
                             re.S | re.M).group(0)
        d = os.path.join(S.tmp, 'apache')
        os.makedirs(d, exist_ok=True)
        mods = '/usr/lib/apache2/modules/'
        conf = '\n'.join([
            'ServerRoot "%s"' % d, 'ServerName localhost', 'Listen 127.0.0.1:%d' % cls.port,
            'PidFile "%s/apache.pid"' % d, 'ErrorLog "%s/error.log"' % d,
            'DefaultRuntimeDir "%s"' % d, 'Mutex file:%s default' % d,
            'LoadModule mpm_event_module %smod_mpm_event.so' % mods,
            'LoadModule authz_core_module %smod_authz_core.so' % mods,
            'LoadModule proxy_module %smod_proxy.so' % mods,
            'LoadModule proxy_fcgi_module %smod_proxy_fcgi.so' % mods,
            'LoadModule headers_module %smod_headers.so' % mods,
            'User www-data', 'Group www-data', 'KeepAlive On',
            'MaxKeepAliveRequests 0', 'LimitRequestBody 2097152',
            proxy, location, ''])
        with open(os.path.join(d, 'apache.conf'), 'w') as f:
            f.write(conf)
        cls.httpd = S.procs.start('apache2', ['apache2', '-f', os.path.join(d, 'apache.conf'),
                                              '-DFOREGROUND'],
                                  log=os.path.join(d, 'stderr.log'))
        wait_until(lambda: cls.httpd.poll() is not None or tcp_open(cls.port), 20,
                   'apache2 on :%d' % cls.port)
        if cls.httpd.poll() is not None:
            raise AssertionError('apache2 exited:\n%s%s' % (
                read_text(os.path.join(d, 'stderr.log')), read_text(os.path.join(d, 'error.log'))))

    @classmethod
    def tearDownClass(cls):
        S.procs.stop(cls.httpd)
        cls.r.stop()

    def test_kept_connections_never_503(self):
        # Apache sends the empty FCGI_STDIN of a body-less request in a
        # write of its own; with enablereuse=on libfcgi took it for the next
        # request (~1 in 700 answered 503). 1000 requests over kept-alive
        # client and backend connections: every one a 200 with its course.
        c = http.client.HTTPConnection('127.0.0.1', self.port, timeout=scaled(10))
        statuses = {}
        for i in range(1000):
            cid = IDS[i % len(IDS)]
            c.request('GET', '/api/courses/' + cid)
            r = c.getresponse()
            body = r.read()
            statuses[r.status] = statuses.get(r.status, 0) + 1
            if r.status == 200:
                self.assertEqual(json.loads(body)['_id'], cid)
        c.close()
        self.assertEqual(statuses, {200: 1000})

    def test_chunked_bodies(self):
        # A chunked upload reaches the responder without CONTENT_LENGTH: read
        # to its end (a login that fails on its merits, not 400/411), and
        # 413 over 1 MiB.
        def chunks(data, n=1000):
            for i in range(0, len(data), n):
                yield data[i:i + n]
        body = json.dumps({'email': 'nobody@example.com', 'password': 'x' * 12}).encode()
        c = http.client.HTTPConnection('127.0.0.1', self.port, timeout=scaled(10))
        c.request('POST', '/api/auth/login', body=chunks(body), encode_chunked=True,
                  headers={'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked'})
        r = c.getresponse()
        resp = r.read()
        self.assertEqual(r.status, 401, resp)
        self.assertIn('detail', json.loads(resp))  # the responder's answer, not Apache's
        big = b'{"title":"' + b'x' * (1 << 20) + b'"}'
        c.request('POST', '/api/courses', body=chunks(big, 65536), encode_chunked=True,
                  headers={'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked'})
        r = c.getresponse()
        resp = r.read()
        self.assertEqual(r.status, 413, resp)
        self.assertIn('1 MiB', json.loads(resp)['detail'])  # the responder's limit
        c.close()


ORDER = [F01Crashes, F02Protocol, F03Framing, F04SlowPeers, F05Descriptors, F06Apache]

if __name__ == '__main__':
    sys.exit(main(ORDER, fronts='a', name='fcgi'))
