#!/bin/sh
# e2e/run.sh BUILD_DIR -- the end-to-end suites (tests/e2e/test_e2e.py, then
# tests/e2e/test_cluster.py: three responders behind one nginx upstream, then
# tests/e2e/test_concurrency.py: concurrent writers on one course),
# each once against an SQLite store and once against MongoDB (the wire test
# server tests/mongo_server.py, or a real mongod when TEST_MONGO_URI is set;
# the cluster suite always uses the test server).
#
# Each run starts and stops its own redis-server, responders and nginx on
# free ports (see the harness in each). Prints every run's output,
# then one closing line "e2e: N passed, M failed"; exits non-zero on any
# failure. Extra arguments go to every run (e.g. -v, or a test name).
#   E2E_STORES="sqlite"  run one store only
#   E2E_SUITES="cluster" run one suite only (e2e, cluster, concurrency; a test name given
#                        as an argument exists in one suite only)
#   EL_E2E_KEEP=1        keep each run's temp dir (logs) and print its path
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [-v] [TEST...]" >&2; exit 2; }
B=$(cd "$1" 2>/dev/null && pwd) || { echo "e2e: no build directory $1" >&2; exit 2; }
shift
PY=/usr/bin/python3

passed=0 failed=0
RES=$(mktemp "${TMPDIR:-/tmp}/elearn-e2e-result.XXXXXX")
trap 'rm -f "$RES"' EXIT
for suite in ${E2E_SUITES:-e2e cluster concurrency}; do
for store in ${E2E_STORES:-sqlite mongo}; do
    : >"$RES"
    # timeout: a hung run must still end (the harness stops its children on
    # SIGTERM); 600 s is far above a normal run (~1 min per store).
    EL_E2E_BUILD=$B EL_E2E_STORE=$store EL_E2E_RESULT=$RES \
        timeout 600 "$PY" "$HERE/test_$suite.py" "$@"
    rc=$?
    if read -r p f _ <"$RES" 2>/dev/null && [ -n "${p:-}" ]; then
        :
    else
        p=0 f=1 # the harness itself failed before counting
    fi
    [ "$rc" -eq 0 ] || [ "$f" -gt 0 ] || f=1
    passed=$((passed + p))
    failed=$((failed + f))
done
done
echo "e2e: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
