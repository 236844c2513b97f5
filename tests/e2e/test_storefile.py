#!/usr/bin/python3
"""test_storefile.py -- the store refuses to lie: an SQLite file deleted or
moved under a running responder stops it acknowledging writes and turns
/health's "db" to "down" until the file is back; no acknowledged write is
lost (lib/store/store_sqlite.c, file_check).

    EL_E2E_STORE=sqlite EL_E2E_BUILD=build \\
        /usr/bin/python3 tests/e2e/test_storefile.py [-v] [TestName ...]

SQLite only (a MongoDB server owns its files). The harness's stack with one
responder a. Writers create courses as fast as they can while the file is
unlinked (a hard link keeps the data, as a backup would) and later put
back; afterwards the responder is restarted, and every course that got a
201 must be there. Waits poll conditions against deadlines.
"""

import os
import sys
import threading
import time

from harness import Case, S, course_body, main, token_of, wait_until

STORES = ('sqlite',)
WRITERS = 4


class StoreFile(Case):

    def health_db(self):
        r = S.a.get('/api/health')
        return r.json().get('db')

    def test_unlink_under_write_load(self):
        token = token_of('admin')
        log = []  # (sent, answered, status, id or response), monotonic times
        stop = threading.Event()
        lock = threading.Lock()

        def writer(k):
            conn = S.a.conn()
            n = 0
            while not stop.is_set():
                n += 1
                t0 = time.monotonic()
                r = S.a.request('POST', '/api/courses', course_body('sf%d-%d' % (k, n)),
                                token=token, conn=conn)
                with lock:
                    log.append((t0, time.monotonic(), r.status,
                                r.json()['_id'] if r.status == 201 else r))
            conn.close()

        def count(status):
            with lock:
                return sum(1 for e in log if e[2] == status)
        threads = [threading.Thread(target=writer, args=(k,)) for k in range(WRITERS)]
        for t in threads:
            t.start()
        keep = S.db_path + '.keep'
        try:
            wait_until(lambda: count(201) >= 20, 20, 'writes acknowledged before the unlink')
            os.link(S.db_path, keep)  # the data survives, as in a backup
            os.unlink(S.db_path)
            wait_until(lambda: self.health_db() == 'down', 10, '/health db: down')
            t_down = time.monotonic()
            wait_until(lambda: count(503) >= 20, 20, 'writes refused while the file is gone')
            t_back = time.monotonic()
            os.rename(keep, S.db_path)
            wait_until(lambda: self.health_db() == 'up', 10, '/health db: up again')
            n = count(201)
            wait_until(lambda: count(201) >= n + 10, 20, 'writes acknowledged again')
        finally:
            stop.set()
            for t in threads:
                t.join()
            if os.path.exists(keep) and not os.path.exists(S.db_path):
                os.rename(keep, S.db_path)
        self.assertEqual([e for e in log if e[2] not in (201, 503)], [])
        for e in log:
            if e[2] == 503:
                self.assertJsonError(e[3], 503)
        # Sent after /health said down, answered before the file was back:
        # every one refused, none acknowledged.
        self.assertEqual([e for e in log if e[0] > t_down and e[1] < t_back and e[2] == 201], [])
        S.procs.stop(S.a.proc)
        S.a.start_responder()
        S.a.wait_ready('responder a after the restart', S.a.proc)
        acked = [e[3] for e in log if e[2] == 201]
        missing = [cid for cid in acked if S.a.get('/api/courses/' + cid).status != 200]
        self.assertEqual(missing, [], '%d of %d acknowledged writes lost' % (len(missing),
                                                                              len(acked)))


if __name__ == '__main__':
    sys.exit(main([StoreFile], fronts='a', name='storefile'))
