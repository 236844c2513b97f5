#!/usr/bin/python3
"""mongo_server.py -- a MongoDB wire-protocol test server (test infrastructure).

    /usr/bin/python3 tests/mongo_server.py --port PORT [--replset NAME] [--verbose]

Listens on 127.0.0.1:PORT, prints one "ready" line to stderr once it accepts
connections, and serves until SIGTERM or SIGINT, then exits 0.

Key design decision: nothing here speaks BSON or parses queries by hand.
MockupDB (python3-mockupdb) owns the wire protocol -- OP_MSG with document
sequences, legacy OP_QUERY for libmongoc's first handshake, OP_REPLY -- and
reads every client socket in its own thread; mongomock (python3-mongomock)
is the query engine. This file only maps each command libmongoc sends to a
mongomock call and shapes the reply the way mongod 5.0 (wire version 13)
would. All requests go through one queue to the single handler loop in the
main thread, so mongomock is never entered concurrently and per-command
counters need no lock.

Besides the real commands it answers two of its own:
    {elearnStats: 1}  ->  {ok: 1, total: n, find: n, aggregate: n, ...}
                          (commands answered since start or the last reset;
                           the elearn* commands themselves are not counted)
    {elearnReset: 1}  ->  zero the counters
so tests can assert how many queries a code path sends to the store, and,
to test what a client sends and how it copes with a replica set:
    {elearnLog: 1}    ->  {ok: 1, log: [{cmd, coll, writeConcern,
                          readPreference}, ...]} (the last 500 commands
                          since start or the last reset, elearn* and
                          handshakes left out)
    {elearnFailWrites: n, code: c[, writeConcernError: true]}
                      ->  the next n writes (insert, update, delete,
                          findAndModify) fail with code c -- 10107
                          NotWritablePrimary as during an election -- and
                          are not applied; with writeConcernError they are
                          applied and then answered with a
                          writeConcernError (code c, e.g. 64, a majority
                          that did not acknowledge in time)

With --replset NAME it answers hello as a member of replica set NAME
(setName, hosts, primary, me, setVersion, electionId), by default the
primary of a set of one, so a client given replicaSet=NAME in its URI runs
replica-set discovery and monitoring against it. With --members A,B and
--primary A, several servers form one set (each holds its own data): a
non-primary refuses writes (10107 NotWritablePrimary) and reads (13435),
and {elearnSetPrimary: "host:port"} sent to every member holds an
"election".

--reply-jitter-ms N delays each reply to a write (insert, update, delete,
findAndModify) by a random 0..N ms, sent from a timer thread while the loop
goes on: writes still apply one at a time, in arrival order, but their
acknowledgements reach the clients in another order -- as a real server's
would under load. Tests of what clients do after a write use it to
interleave concurrent writers (the single queue alone would hide races).

Unknown commands get {ok: 0, code: 59, codeName: "CommandNotFound"}; what
mongomock cannot do (arrayFilters, text indexes, ...) gets code 115,
"CommandNotSupported", so a test fails loudly rather than silently.
"""

import argparse
import collections
import datetime
import random
import signal
import sys
import threading
import traceback

from bson.int64 import Int64
import mockupdb
import mongomock
import mongomock.filtering
import pymongo.errors
from bson.objectid import ObjectId



def election_id(term):
    """The electionId of the term-th primary: later terms compare greater."""
    return ObjectId('7fffffff%016x' % term)

MAX_WIRE_VERSION = 13  # MongoDB 5.0: what libmongoc 1.23 needs to talk OP_MSG
MAX_BSON_OBJECT_SIZE = 16 * 1024 * 1024
MAX_MESSAGE_SIZE_BYTES = 48000000
MAX_WRITE_BATCH_SIZE = 100000


class CommandError(Exception):
    """A command failure answered as {ok: 0, code, codeName, errmsg}."""

    def __init__(self, code, code_name, errmsg):
        super().__init__(errmsg)
        self.code = code
        self.code_name = code_name
        self.errmsg = errmsg


class Shutdown(Exception):
    """Raised from the signal handler to leave the request loop."""


def cursor_reply(ns, docs):
    # The whole result goes in firstBatch with cursor id 0: the client never
    # needs a getMore, and the server keeps no cursor state.
    return {'cursor': {'id': Int64(0), 'ns': ns, 'firstBatch': list(docs)}}


def sort_spec(sort):
    """A BSON sort document ({a: 1, b: -1}) as mongomock's list of pairs."""
    if not sort:
        return None
    return [(k, int(v)) for k, v in sort.items()]


def is_operator_update(u):
    return isinstance(u, dict) and len(u) > 0 and all(k.startswith('$') for k in u)


def write_error(index, exc):
    code = getattr(exc, 'code', None) or 2
    return {'index': index, 'code': code, 'errmsg': str(exc)}


WRITES = ('insert', 'update', 'delete', 'findandmodify')
RETRYABLE_CODES = (6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436)


class Handler:
    """Answers one command at a time against a mongomock client."""

    def __init__(self, replset=None, me=None, members=None, primary=None):
        self.client = mongomock.MongoClient()
        self.counts = collections.Counter()
        self.replset, self.me = replset, me
        self.members = members or [me]
        self.primary = primary or me
        self.term = 1
        self.log = collections.deque(maxlen=500)
        self.fail_writes = 0
        self.fail_code = 10107
        self.fail_wce = False
        self.commands = {
            'hello': self.hello,
            'ismaster': self.hello,
            'ping': lambda db, doc: {},
            'buildinfo': self.build_info,
            'endsessions': lambda db, doc: {},
            'find': self.find,
            'getmore': self.get_more,
            'killcursors': self.kill_cursors,
            'aggregate': self.aggregate,
            'count': self.count,
            'insert': self.insert,
            'update': self.update,
            'delete': self.delete,
            'findandmodify': self.find_and_modify,
            'createindexes': self.create_indexes,
            'listindexes': self.list_indexes,
            'drop': self.drop,
            'dropdatabase': self.drop_database,
            'listcollections': self.list_collections,
            'listdatabases': self.list_databases,
            'elearnstats': self.elearn_stats,
            'elearnreset': self.elearn_reset,
            'elearnlog': lambda db, doc: {'log': list(self.log)},
            'elearnfailwrites': self.elearn_fail_writes,
            'elearnsetprimary': self.elearn_set_primary,
        }

    # -- dispatch ---------------------------------------------------------

    def answer(self, name, dbname, doc):
        """The reply document for command `name` (ok defaults to 1)."""
        key = name.lower()
        fn = self.commands.get(key)
        if not key.startswith('elearn'):
            self.counts['total'] += 1
            # Counted under the name the client sent, with isMaster and
            # ismaster folded together since drivers use both spellings.
            self.counts['isMaster' if key == 'ismaster' else name] += 1
        if fn is None:
            raise CommandError(59, 'CommandNotFound', "no such command: '%s'" % name)
        if not key.startswith('elearn') and key not in ('hello', 'ismaster', 'ping',
                                                         'buildinfo', 'endsessions'):
            rp = doc.get('$readPreference')
            self.log.append({'cmd': name, 'coll': str(doc.get(name)),
                             'writeConcern': doc.get('writeConcern'),
                             'readPreference': rp.get('mode') if isinstance(rp, dict) else None})
        wce = None
        if self.replset and self.primary != self.me and (
                key in WRITES or key in ('find', 'aggregate', 'count', 'getmore')):
            # A secondary: no writes, and no reads without secondaryOk
            # (elearn reads from the primary only).
            if key in WRITES:
                raise CommandError(10107, 'NotWritablePrimary', 'not primary')
            raise CommandError(13435, 'NotPrimaryNoSecondaryOk', 'not primary and secondaryOk=false')
        if key in WRITES and self.fail_writes > 0:
            self.fail_writes -= 1
            if not self.fail_wce:
                raise CommandError(self.fail_code, 'NotWritablePrimary'
                                   if self.fail_code == 10107 else 'Injected',
                                   'injected by elearnFailWrites')
            wce = {'code': self.fail_code, 'codeName': 'WriteConcernFailed',
                   'errmsg': 'waiting for replication timed out (injected)',
                   'errInfo': {'wtimeout': True}}
        try:
            reply = fn(self.client[dbname], doc)
            if wce is not None:
                reply = dict(reply, writeConcernError=wce)
            return reply
        except CommandError:
            raise
        except pymongo.errors.OperationFailure as e:
            code = e.code or 2
            raise CommandError(code, 'DuplicateKey' if code == 11000 else 'BadValue', str(e))
        except NotImplementedError as e:
            raise CommandError(115, 'CommandNotSupported', 'mongomock: %s' % e)

    def coll(self, db, doc, name):
        coll = doc.get(name)
        if not isinstance(coll, str) or not coll:
            raise CommandError(73, 'InvalidNamespace', 'collection name must be a string')
        return db[coll]

    # -- server state -----------------------------------------------------

    def hello(self, db, doc):
        reply = collections.OrderedDict()
        if next(iter(doc)).lower() == 'hello':
            reply['isWritablePrimary'] = True
        else:
            reply['ismaster'] = True
        if doc.get('helloOk'):
            reply['helloOk'] = True
        reply.update([
            ('maxBsonObjectSize', MAX_BSON_OBJECT_SIZE),
            ('maxMessageSizeBytes', MAX_MESSAGE_SIZE_BYTES),
            ('maxWriteBatchSize', MAX_WRITE_BATCH_SIZE),
            ('localTime', datetime.datetime.utcnow()),
            ('logicalSessionTimeoutMinutes', 30),
            ('minWireVersion', 0),
            ('maxWireVersion', MAX_WIRE_VERSION),
            ('readOnly', False),
        ])
        if self.replset:
            writable = self.primary == self.me
            if 'isWritablePrimary' in reply:
                reply['isWritablePrimary'] = writable
            else:
                reply['ismaster'] = writable
            reply.update([
                ('setName', self.replset), ('setVersion', 1), ('hosts', list(self.members)),
                ('primary', self.primary), ('me', self.me), ('secondary', not writable),
                ('lastWrite', {'lastWriteDate': datetime.datetime.utcnow()}),
            ])
            if writable:
                reply['electionId'] = election_id(self.term)
        return reply

    def elearn_set_primary(self, db, doc):
        """An election: host is the primary from now on (send to every
        member, so they all agree)."""
        host = doc.get('elearnSetPrimary')
        if host not in self.members:
            raise CommandError(2, 'BadValue', 'not a member: %r' % host)
        if host != self.primary:
            self.primary = host
            self.term += 1
        return {}

    def elearn_fail_writes(self, db, doc):
        self.fail_writes = int(doc.get('elearnFailWrites') or 0)
        self.fail_code = int(doc.get('code') or 10107)
        self.fail_wce = bool(doc.get('writeConcernError'))
        return {}

    def build_info(self, db, doc):
        return {'version': '5.0.0', 'versionArray': [5, 0, 0, 0], 'gitVersion': 'mongo_server.py',
                'bits': 64, 'maxBsonObjectSize': MAX_BSON_OBJECT_SIZE,
                'storageEngines': ['mongomock']}

    def elearn_stats(self, db, doc):
        reply = collections.OrderedDict(total=0)
        reply.update(sorted(self.counts.items()))
        return reply

    def elearn_reset(self, db, doc):
        self.counts.clear()
        self.log.clear()
        return {}

    # -- reads ------------------------------------------------------------

    def find(self, db, doc):
        coll = self.coll(db, doc, 'find')
        projection = doc.get('projection') or None
        cur = coll.find(doc.get('filter') or {}, projection)
        sort = sort_spec(doc.get('sort'))
        if sort:
            cur = cur.sort(sort)
        if doc.get('skip'):
            cur = cur.skip(int(doc['skip']))
        if doc.get('limit'):
            cur = cur.limit(abs(int(doc['limit'])))
        return cursor_reply('%s.%s' % (db.name, coll.name), cur)

    def get_more(self, db, doc):
        # Every cursor this server opens is exhausted in its first batch.
        raise CommandError(43, 'CursorNotFound', 'cursor id %s not found' % doc.get('getMore'))

    def kill_cursors(self, db, doc):
        ids = list(doc.get('cursors') or [])
        return {'cursorsKilled': [], 'cursorsNotFound': ids, 'cursorsAlive': [],
                'cursorsUnknown': []}

    def aggregate(self, db, doc):
        coll = self.coll(db, doc, 'aggregate')
        pipeline = doc.get('pipeline')
        if not isinstance(pipeline, list):
            raise CommandError(14, 'TypeMismatch', "'pipeline' must be an array")
        return cursor_reply('%s.%s' % (db.name, coll.name), coll.aggregate(pipeline))

    def count(self, db, doc):
        coll = self.coll(db, doc, 'count')
        kwargs = {}
        if doc.get('skip'):
            kwargs['skip'] = int(doc['skip'])
        if doc.get('limit'):
            kwargs['limit'] = abs(int(doc['limit']))
        return {'n': coll.count_documents(doc.get('query') or {}, **kwargs)}

    # -- writes -----------------------------------------------------------

    def insert(self, db, doc):
        coll = self.coll(db, doc, 'insert')
        ordered = doc.get('ordered', True)
        n, errors = 0, []
        for i, d in enumerate(doc.get('documents') or []):
            try:
                coll.insert_one(d)
                n += 1
            except pymongo.errors.PyMongoError as e:
                # DuplicateKeyError carries code 11000, which libmongoc
                # reports to the caller as the write error's code.
                errors.append(write_error(i, e))
                if ordered:
                    break
        reply = {'n': n}
        if errors:
            reply['writeErrors'] = errors
        return reply

    def update(self, db, doc):
        coll = self.coll(db, doc, 'update')
        ordered = doc.get('ordered', True)
        n = n_modified = 0
        upserted, errors = [], []
        for i, spec in enumerate(doc.get('updates') or []):
            q, u = spec.get('q') or {}, spec.get('u')
            upsert, multi = bool(spec.get('upsert')), bool(spec.get('multi'))
            try:
                if is_operator_update(u):
                    kwargs = {'upsert': upsert}
                    if spec.get('arrayFilters') is not None:
                        kwargs['array_filters'] = spec['arrayFilters']
                    fn = coll.update_many if multi else coll.update_one
                    res = fn(q, u, **kwargs)
                elif isinstance(u, dict):
                    if multi:
                        raise CommandError(9, 'FailedToParse', 'multi update requires $ operators')
                    res = coll.replace_one(q, u, upsert=upsert)
                else:
                    raise CommandError(9, 'FailedToParse', 'pipeline updates are not supported')
            except (pymongo.errors.PyMongoError, CommandError) as e:
                errors.append(write_error(i, e))
                if ordered:
                    break
                continue
            n += res.matched_count
            n_modified += res.modified_count
            if res.upserted_id is not None:
                n += 1
                upserted.append({'index': i, '_id': res.upserted_id})
        reply = {'n': n, 'nModified': n_modified}
        if upserted:
            reply['upserted'] = upserted
        if errors:
            reply['writeErrors'] = errors
        return reply

    def delete(self, db, doc):
        coll = self.coll(db, doc, 'delete')
        n = 0
        for spec in doc.get('deletes') or []:
            q = spec.get('q') or {}
            if spec.get('limit'):
                n += coll.delete_one(q).deleted_count
            else:
                n += coll.delete_many(q).deleted_count
        return {'n': n}

    def find_and_modify(self, db, doc):
        # Done as find + write by _id: requests are handled one at a time,
        # so nothing can slip in between, and the pre-image, post-image and
        # lastErrorObject come out exactly as mongod reports them.
        coll = self.coll(db, doc, 'findAndModify')
        query = doc.get('query') or {}
        sort = sort_spec(doc.get('sort'))
        fields = doc.get('fields') or None
        update = doc.get('update')
        existing = coll.find_one(query, sort=sort)
        if doc.get('remove'):
            if existing is None:
                return {'lastErrorObject': {'n': 0}, 'value': None}
            value = coll.find_one({'_id': existing['_id']}, fields)
            coll.delete_one({'_id': existing['_id']})
            return {'lastErrorObject': {'n': 1}, 'value': value}
        if not isinstance(update, dict):
            raise CommandError(9, 'FailedToParse', 'findAndModify needs remove or update')
        op = coll.update_one if is_operator_update(update) else coll.replace_one
        if existing is None:
            if not doc.get('upsert'):
                return {'lastErrorObject': {'n': 0, 'updatedExisting': False}, 'value': None}
            res = op(query, update, upsert=True)
            value = coll.find_one({'_id': res.upserted_id}, fields) if doc.get('new') else None
            return {'lastErrorObject': {'n': 1, 'updatedExisting': False,
                                        'upserted': res.upserted_id}, 'value': value}
        before = coll.find_one({'_id': existing['_id']}, fields)
        # The write repeats the query, pinned to the document found: a
        # positional update ("modules.$.title") takes its element from the
        # query's array match. By _id alone mongomock would silently change
        # the first element, where mongod would refuse.
        target = dict(query)
        target['_id'] = existing['_id']
        op(target, update)
        value = coll.find_one({'_id': existing['_id']}, fields) if doc.get('new') else before
        return {'lastErrorObject': {'n': 1, 'updatedExisting': True}, 'value': value}

    # -- indexes and namespaces -------------------------------------------

    def create_indexes(self, db, doc):
        coll = self.coll(db, doc, 'createIndexes')
        created = coll.name not in db.list_collection_names()
        before = len(coll.index_information()) if not created else 1
        for spec in doc.get('indexes') or []:
            key = spec.get('key')
            if not isinstance(key, dict) or not key:
                raise CommandError(67, 'CannotCreateIndex', 'index key must be a document')
            kwargs = {k: spec[k] for k in ('unique', 'sparse', 'expireAfterSeconds',
                                           'partialFilterExpression') if k in spec}
            if 'name' in spec:
                kwargs['name'] = spec['name']
            try:
                coll.create_index(list(key.items()), **kwargs)
            except pymongo.errors.DuplicateKeyError as e:
                raise CommandError(11000, 'DuplicateKey', str(e))
            except pymongo.errors.OperationFailure as e:
                raise CommandError(86, 'IndexKeySpecsConflict', str(e))
        return {'createdCollectionAutomatically': created, 'numIndexesBefore': before,
                'numIndexesAfter': len(coll.index_information())}

    def list_indexes(self, db, doc):
        coll = self.coll(db, doc, 'listIndexes')
        if coll.name not in db.list_collection_names():
            raise CommandError(26, 'NamespaceNotFound', 'ns does not exist: %s.%s'
                               % (db.name, coll.name))
        docs = []
        for name, info in sorted(coll.index_information().items()):
            d = collections.OrderedDict([('v', 2), ('key', collections.OrderedDict(info['key'])),
                                         ('name', name)])
            d.update((k, v) for k, v in info.items() if k not in ('v', 'key'))
            docs.append(d)
        return cursor_reply('%s.$cmd.listIndexes.%s' % (db.name, coll.name), docs)

    def drop(self, db, doc):
        coll = self.coll(db, doc, 'drop')
        if coll.name not in db.list_collection_names():
            raise CommandError(26, 'NamespaceNotFound', 'ns not found')
        nindexes = len(coll.index_information())
        coll.drop()
        return {'ns': '%s.%s' % (db.name, coll.name), 'nIndexesWas': nindexes}

    def drop_database(self, db, doc):
        self.client.drop_database(db.name)
        return {'dropped': db.name}

    def list_collections(self, db, doc):
        docs = [{'name': n, 'type': 'collection', 'options': {}, 'info': {'readOnly': False}}
                for n in sorted(db.list_collection_names())]
        flt = doc.get('filter') or {}
        docs = [d for d in docs if mongomock.filtering.filter_applies(flt, d)]
        if doc.get('nameOnly'):
            docs = [{'name': d['name'], 'type': d['type']} for d in docs]
        return cursor_reply('%s.$cmd.listCollections' % db.name, docs)

    def list_databases(self, db, doc):
        names = self.client.list_database_names()
        return {'databases': [{'name': n, 'sizeOnDisk': 0, 'empty': False} for n in names],
                'totalSize': 0}


WRITE_COMMANDS = frozenset(('insert', 'update', 'delete', 'findandmodify'))


def send_reply(request, reply):
    try:
        request.replies(reply)
    except OSError as e:
        print('mongo_server: client went away: %s' % e, file=sys.stderr, flush=True)


def serve_one(handler, request, verbose, jitter_ms=0):
    """Answer one request from the queue; a broken client socket is logged,
    never fatal."""
    if not request.is_command:
        # libmongoc never sends legacy reads or writes to wire version 13;
        # answer what expects an answer and drop the rest.
        if isinstance(request, mockupdb.OpGetMore):
            request.replies(flags=mockupdb.REPLY_FLAGS['CursorNotFound'])
        elif isinstance(request, mockupdb.OpQuery):
            request.fail('legacy OP_QUERY reads are not supported')
        return
    name, doc, dbname = request.command_name, request.doc, request.namespace or 'admin'
    try:
        reply = handler.answer(name, dbname, doc)
    except CommandError as e:
        reply = {'ok': 0, 'code': e.code, 'codeName': e.code_name, 'errmsg': e.errmsg}
        # As mongod 4.4+ does: a write sent as a retryable write (it has a
        # txnNumber) that failed in a way worth retrying is labelled so;
        # drivers retry only labelled errors.
        if e.code in RETRYABLE_CODES and 'txnNumber' in doc:
            reply['errorLabels'] = ['RetryableWriteError']
    except Exception as e:  # a bug here must not take the server down
        traceback.print_exc()
        reply = {'ok': 0, 'code': 1, 'codeName': 'InternalError', 'errmsg': repr(e)}
    if verbose:
        print('%s.%s -> %r' % (dbname, name, reply), file=sys.stderr, flush=True)
    if isinstance(request, mockupdb.OpMsg) and request.flags & mockupdb.OP_MSG_FLAGS['moreToCome']:
        return  # unacknowledged (w:0): the client reads no reply
    if jitter_ms > 0 and name.lower() in WRITE_COMMANDS:
        # One reply per client connection is outstanding at a time (libmongoc
        # does not pipeline), so a timer thread may send it.
        t = threading.Timer(random.uniform(0, jitter_ms) / 1000.0, send_reply, (request, reply))
        t.daemon = True
        t.start()
        return
    request.replies(reply)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--port', type=int, required=True)
    ap.add_argument('--replset', metavar='NAME',
                    help='answer hello as a member of replica set NAME')
    ap.add_argument('--members', metavar='HOST:PORT,...',
                    help='the set\'s members (default: this server alone)')
    ap.add_argument('--primary', metavar='HOST:PORT', help='the primary (default: this server)')
    ap.add_argument('--verbose', action='store_true')
    ap.add_argument('--reply-jitter-ms', type=float, default=0,
                    help='delay each write reply by a random 0..N ms (interleaving)')
    args = ap.parse_args()

    def on_signal(signum, frame):
        # Once: a second signal during shutdown must not interrupt stop().
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise Shutdown()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    me = '127.0.0.1:%d' % args.port
    handler = Handler(args.replset, me, args.members.split(',') if args.members else None,
                      args.primary)
    # mockupdb binds ('localhost', port) restricted to IPv4: 127.0.0.1.
    server = mockupdb.MockupDB(port=args.port, request_timeout=10 ** 9)
    server.run()
    print('ready', file=sys.stderr, flush=True)
    try:
        while True:
            try:
                request = server.receives()
            except OSError as e:
                # A client that timed out closed its socket while its
                # request was queued: drop it, keep serving the others.
                print('mongo_server: client went away: %s' % e, file=sys.stderr, flush=True)
                continue
            if request is None:
                break
            try:
                serve_one(handler, request, args.verbose, args.reply_jitter_ms)
            except OSError as e:
                print('mongo_server: client went away: %s' % e, file=sys.stderr, flush=True)
    except Shutdown:
        pass
    finally:
        server.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
