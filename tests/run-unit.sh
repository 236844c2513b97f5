#!/bin/sh
# run-unit.sh BIN -- run a CUnit binary against private servers.
#
# Starts a redis-server and the MongoDB wire test server (or uses a real
# mongod when TEST_MONGO_URI is set) on free loopback ports, runs BIN with
# their addresses in the environment, and stops exactly the processes it
# started, whatever happens (trap). Exit status is BIN's.
set -eu
BIN=$1
HERE=$(cd "$(dirname "$0")" && pwd)
EL_TESTS_DIR=$HERE
. "$HERE/lib.sh"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/elearn-unit.XXXXXX")
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

REDIS_PORT=$(free_port)
start_redis "$REDIS_PORT" "$TMP/redis"
PIDS="$PIDS $LAST_PID"

if [ -n "${TEST_MONGO_URI:-}" ]; then
    MONGO_URI=$TEST_MONGO_URI
else
    start_mongo_mock "$TMP/mongo"
    PIDS="$PIDS $LAST_PID"
    MONGO_URI=$LAST_URI
fi

echo "== $BIN (redis :$REDIS_PORT, mongo $MONGO_URI)"
set +e
EL_TEST_REDIS_PORT=$REDIS_PORT EL_TEST_MONGO_URI=$MONGO_URI EL_TEST_TMPDIR=$TMP \
    TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1 allocator_may_return_null=1 suppressions=$HERE/tsan.supp}" \
    ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1 allocator_may_return_null=1}" \
    "$BIN"
rc=$?
set -e
exit $rc
