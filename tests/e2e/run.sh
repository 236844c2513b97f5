#!/bin/sh
# e2e/run.sh BUILD_DIR -- the end-to-end suites: every tests/e2e/test_*.py,
# each once against an SQLite store and once against MongoDB (the wire test
# server tests/mongo_server.py, or a real mongod when TEST_MONGO_URI is set
# and the suite accepts one), each run in a process of its own on a stack of
# its own (tests/e2e/harness.py: redis-server, responders and nginx on free
# ports). A new suite is a new file: nothing to register here. A suite (or a
# test) that does not apply to a store reports its tests as "not
# applicable"; they are counted in the closing line, never dropped.
#
# Prints every run's output, then one closing line
# "e2e: N passed, M failed, K not applicable"; exits non-zero on any
# failure. Extra arguments go to every run (e.g. -v, or a test name -- give
# E2E_SUITES too, a test exists in one suite only).
#   E2E_STORES="sqlite"      run one store only
#   E2E_SUITES="auth cluster" run these suites only (test_<name>.py)
#   EL_E2E_TIME_FACTOR=3     stretch every wait's deadline (sanitizer builds,
#                            loaded machines; default 1, see harness.py)
#   EL_E2E_KEEP=1            keep each run's temp dir (logs) and print its path
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [-v] [TEST...]" >&2; exit 2; }
B=$(cd "$1" 2>/dev/null && pwd) || { echo "e2e: no build directory $1" >&2; exit 2; }
shift
PY=/usr/bin/python3

if [ -n "${E2E_SUITES:-}" ]; then
    suites=$E2E_SUITES
else
    suites=$(cd "$HERE" && for f in test_*.py; do n=${f#test_}; echo "${n%.py}"; done)
fi
# A hung run must still end (the harness stops its children on SIGTERM);
# 600 s is far above a normal run (under a minute), stretched like the waits.
limit=$(awk -v f="${EL_E2E_TIME_FACTOR:-1}" 'BEGIN { printf "%d", 600 * (f < 1 ? 1 : f) }')

passed=0 failed=0 na=0
RES=$(mktemp "${TMPDIR:-/tmp}/elearn-e2e-result.XXXXXX")
trap 'rm -f "$RES"' EXIT
for suite in $suites; do
    [ -f "$HERE/test_$suite.py" ] || { echo "e2e: no suite $HERE/test_$suite.py" >&2; failed=$((failed + 1)); continue; }
    for store in ${E2E_STORES:-sqlite mongo}; do
        : >"$RES"
        EL_E2E_BUILD=$B EL_E2E_STORE=$store EL_E2E_RESULT=$RES \
            timeout "$limit" "$PY" "$HERE/test_$suite.py" "$@"
        rc=$?
        if read -r p f n _ <"$RES" 2>/dev/null && [ -n "${n:-}" ]; then
            :
        else
            p=0 f=1 n=0 # the harness itself failed before counting
        fi
        [ "$rc" -eq 0 ] || [ "$f" -gt 0 ] || f=1
        passed=$((passed + p))
        failed=$((failed + f))
        na=$((na + n))
    done
done
echo "e2e: $passed passed, $failed failed, $na not applicable"
[ "$failed" -eq 0 ]
