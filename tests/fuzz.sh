#!/bin/sh
# fuzz.sh FUZZ_BUILD_DIR SECONDS TARGET... -- run each libFuzzer target
# (build/fuzz/fuzz-<target>, from fuzz/<target>.c) for SECONDS, starting from
# its committed seed corpus fuzz/corpus/<target>/ (read only: new inputs go
# to a temp dir). Any crash, leak, sanitizer report or timeout fails the
# run; the input that caused it is kept and its path printed.
#   FUZZ_KEEP=1   keep the temp dir (the inputs found) and print its path
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 3 ] || { echo "usage: $0 FUZZ_BUILD_DIR SECONDS TARGET..." >&2; exit 2; }
B=$1 SECS=$2
shift 2
T=$(mktemp -d "${TMPDIR:-/tmp}/elearn-fuzz.XXXXXX")
failed=0
for t in "$@"; do
    mkdir -p "$T/$t"
    if "$B/fuzz-$t" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
        -max_len=70000 -artifact_prefix="$T/$t-" -print_final_stats=1 \
        "$T/$t" "$ROOT/fuzz/corpus/$t" >"$T/$t.log" 2>&1; then
        echo "fuzz $t: ok (${SECS}s, $(grep -o 'stat::number_of_executed_units: [0-9]*' "$T/$t.log" | tail -1 | cut -d' ' -f2) runs)"
    else
        failed=$((failed + 1))
        echo "fuzz $t: FAILED"
        tail -40 "$T/$t.log"
        ls "$T/$t-"* 2>/dev/null
        FUZZ_KEEP=1
    fi
done
if [ -n "${FUZZ_KEEP:-}" ]; then echo "fuzz: kept $T" >&2; else rm -rf "$T"; fi
[ "$failed" -eq 0 ]
