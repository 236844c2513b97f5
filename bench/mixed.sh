#!/bin/sh
# bench/mixed.sh BUILD_DIR -- a mixed read/write workload against a cluster:
# three responders behind one nginx upstream, sharing one Redis and one
# SQLite store. Results go into their own section of
# docs/benchmarks-cluster.md (bench/invalidation.sh writes another).
#
# The workload (wrk + a Lua script written below), per request:
#   5 %   PATCH /api/courses/{id} as an admin (a new description)
#   10 %  GET /api/courses?sort_by=S&page=P, S one of 4 orders, P in 1..3
#   85 %  GET /api/courses/{id}
# Course ids (reads and writes) are Zipf-distributed over the 200 seeded
# courses (rank r has weight 1/r^s, s = BENCH_ZIPF_S).
#
# Measured: throughput and latency (wrk), X-Cache of every response (the
# Lua script), and from the cluster counters (the Redis hash the processes
# flush their stats into, i.e. what GET /cache/stats reports as "cluster"):
# hits per layer and store queries. A warm-up run comes first and is not
# counted: the counters are read after it and after the measured run; the
# responders are stopped before the second read, and a stopping responder
# flushes its last counts, so nothing is missing.
#
#   BENCH_MIXED_DURATION=30s  BENCH_WARMUP=5s  BENCH_CONNECTIONS=64
#   BENCH_THREADS=2  BENCH_ZIPF_S=1.0  WORKERS=4
#   BENCH_CLUSTER_OUT=docs/benchmarks-cluster.md  BENCH_KEEP=1 (keep temp dir)
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. "$ROOT/bench/lib.sh"

[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
B=$(cd "$1" && pwd)
DUR=${BENCH_MIXED_DURATION:-30s}
WARMUP=${BENCH_WARMUP:-5s}
CONNS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2}
ZIPF_S=${BENCH_ZIPF_S:-1.0}
WORKERS=${WORKERS:-4}
NCOURSES=200
OUT=${BENCH_CLUSTER_OUT:-$ROOT/docs/benchmarks-cluster.md}

for f in elearn-fcgi elearnctl; do
    [ -x "$B/$f" ] || { echo "mixed: $B/$f is missing (make)" >&2; exit 1; }
done
for c in wrk nginx spawn-fcgi redis-server redis-cli curl; do
    command -v "$c" >/dev/null || { echo "mixed: $c is not installed (make deps)" >&2; exit 1; }
done

bench_begin mixed
RESPONDERS=""

# ---- servers ---------------------------------------------------------------
REDIS_PORT=$(free_port)
start_redis "$REDIS_PORT" "$T/redis"
track
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }

export DB_URI="sqlite:$T/bench.db"
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export JWT_SECRET=mixed-bench-secret-0123456789abcdefghijklmnop
export WORKERS CACHE_WARM_MS=0
unset L1_MAX_BYTES COURSE_TTL COURSE_LIST_TTL L1_MAX_STALE 2>/dev/null || true
"$B/elearnctl" seed --courses "$NCOURSES" --db "$DB_URI" >"$T/seed.log" 2>&1 ||
    { cat "$T/seed.log" >&2; exit 1; }
EMAIL="mixed-admin-$$@example.com"
PASSWORD="pw-mixed-$$-$(date +%s)"
echo "$PASSWORD" | "$B/elearnctl" create-user --email "$EMAIL" --password-stdin --role admin \
    --db "$DB_URI" >"$T/user.log" 2>&1 || { cat "$T/user.log" >&2; exit 1; }

SOCKS=""
for n in 1 2 3; do
    start_fcgi "$T/r$n.sock" "$T/r$n.log" "$B/elearn-fcgi"
    track
    RESPONDERS="$RESPONDERS $LAST_PID"
    SOCKS="$SOCKS $T/r$n.sock"
done
PORT=$(free_port)
# shellcheck disable=SC2086 # one argument per socket
render_nginx "$ROOT/conf/nginx.conf" "$T/nginx" "$PORT" "$ROOT/www" $SOCKS
start_nginx "$T/nginx" "$PORT"
NGINX_PID=$LAST_PID
track
URL="http://127.0.0.1:$PORT"

# ---- the workload ----------------------------------------------------------
TOKEN=$(curl -fsS -H 'Content-Type: application/json' \
    -d "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}" "$URL/api/auth/login" |
    sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[ -n "$TOKEN" ] || { say "cannot log in as the admin"; exit 1; }
: >"$T/ids"
for page in 1 2; do
    curl -fsS "$URL/api/courses?sort_by=duration&page_size=100&page=$page" |
        /usr/bin/python3 -c 'import json,sys; print("\n".join(c["_id"] for c in json.load(sys.stdin)["items"]))' \
        >>"$T/ids"
done
[ "$(wc -l <"$T/ids")" -eq "$NCOURSES" ] || { say "expected $NCOURSES course ids"; exit 1; }

{
    printf 'local ids = {'
    sed 's/.*/"&",/' "$T/ids" | tr -d '\n'
    printf '}\nlocal token = "%s"\nlocal zipf_s = %s\n' "$TOKEN" "$ZIPF_S"
    cat <<'EOF'
local sorts = {"recent", "popular", "top_rated", "duration"}
local threads = {}
local cdf = {}

function setup(thread)
    table.insert(threads, thread)
    thread:set("tid", #threads)
end

function init(args)
    math.randomseed(tid * 7919 + os.time())
    local total, acc = 0, 0
    for i = 1, #ids do total = total + 1 / i ^ zipf_s end
    for i = 1, #ids do
        acc = acc + 1 / i ^ zipf_s / total
        cdf[i] = acc
    end
    cdf[#ids] = 1
    writes, lists, courses = 0, 0, 0
    l1, l2, miss, stale, none, bad = 0, 0, 0, 0, 0, 0
end

local function zipf()
    local u, lo, hi = math.random(), 1, #cdf
    while lo < hi do
        local mid = math.floor((lo + hi) / 2)
        if cdf[mid] < u then lo = mid + 1 else hi = mid end
    end
    return ids[lo]
end

function request()
    local r = math.random(100)
    if r <= 5 then
        writes = writes + 1
        return wrk.format("PATCH", "/api/courses/" .. zipf(),
            {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"},
            '{"description":"Updated by bench/mixed.sh, write ' .. tid .. "-" .. writes .. '."}')
    elseif r <= 15 then
        lists = lists + 1
        return wrk.format("GET", "/api/courses?sort_by=" .. sorts[math.random(#sorts)] ..
            "&page=" .. math.random(3))
    end
    courses = courses + 1
    return wrk.format("GET", "/api/courses/" .. zipf())
end

function response(status, headers, body)
    local x = headers["X-Cache"] or headers["x-cache"]
    if status >= 400 then bad = bad + 1 end
    if x == "L1" then l1 = l1 + 1
    elseif x == "L2" then l2 = l2 + 1
    elseif x == "MISS" then miss = miss + 1
    elseif x == "STALE" then stale = stale + 1
    else none = none + 1 end
end

function done(summary, latency, requests)
    local t = {writes = 0, lists = 0, courses = 0, l1 = 0, l2 = 0, miss = 0, stale = 0,
               none = 0, bad = 0}
    for _, th in ipairs(threads) do
        for k, _ in pairs(t) do t[k] = t[k] + (th:get(k) or 0) end
    end
    io.write(string.format("MIXED requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f " ..
        "errors=%d writes=%d lists=%d courses=%d x_l1=%d x_l2=%d x_miss=%d x_stale=%d " ..
        "x_none=%d bad=%d\n",
        summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
        latency:percentile(50) / 1000, latency:percentile(99) / 1000,
        summary.errors.connect + summary.errors.read + summary.errors.write +
        summary.errors.timeout, t.writes, t.lists, t.courses, t.l1, t.l2, t.miss, t.stale,
        t.none, t.bad))
end
EOF
} >"$T/mixed.lua"

# cluster_counters FILE -- the cluster hash as "field value" lines.
cluster_counters() {
    rcli HGETALL stats:cluster | paste - - | sort >"$1"
}

say "warm-up ($WARMUP, not counted)"
wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -s "$T/mixed.lua" "$URL" >"$T/warmup.out" 2>&1 ||
    { cat "$T/warmup.out" >&2; exit 1; }
# One flush interval (1 s) with no traffic: every process has flushed its
# warm-up counts into the cluster hash.
sleep 1.5
cluster_counters "$T/before"

say "measured run ($DUR, $CONNS connections, $THREADS wrk threads)"
wrk -t"$THREADS" -c"$CONNS" -d"$DUR" --latency -s "$T/mixed.lua" "$URL" >"$T/wrk.out" 2>&1 ||
    { cat "$T/wrk.out" >&2; exit 1; }
grep -q '^MIXED ' "$T/wrk.out" || { cat "$T/wrk.out" >&2; exit 1; }

# Stop the responders (each flushes its last counts), then read the hash.
stop_pid "$NGINX_PID" 10
for p in $RESPONDERS; do stop_pid "$p" 10; done
cluster_counters "$T/after"

# ---- report ----------------------------------------------------------------
CPU=$(sed -n 's/^model name[[:space:]]*: *//p' /proc/cpuinfo | head -n 1)
NGINX_V=$(nginx -v 2>&1 | sed 's/^nginx version: //')
REDIS_V=$(redis-server --version | sed 's/^Redis server v=\([^ ]*\).*/\1/')
WRK_V=$(wrk -v 2>&1 | head -n 1 | awk '{ print $2 }')
MEM=$(awk '/^MemTotal:/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)

SECTION=$T/section.md
{
    cat <<EOF
## Mixed workload on a cluster (bench/mixed.sh)

Run on $(date -u '+%Y-%m-%d %H:%M UTC'): ${CPU:-unknown CPU}, $(nproc) cores, $MEM,
$(uname -sr); nginx $NGINX_V, Redis $REDIS_V, wrk $WRK_V; load average at start $LOAD0.

- Three responders (\`WORKERS=$WORKERS\` each, default TTLs, \`CACHE_WARM_MS=0\`)
  behind **one** nginx upstream (conf/nginx.conf, \`keepalive 32\`), one
  Redis, one SQLite store with $NCOURSES seeded courses; all on one machine
  over loopback, wrk included (its CPU use is part of every number).
- wrk \`-t$THREADS -c$CONNS -d$DUR\` after an uncounted $WARMUP warm-up; per
  request 5 % \`PATCH /courses/{id}\` (admin token, new description), 10 %
  list pages (\`sort_by\` one of recent/popular/top_rated/duration, page
  1-3), 85 % \`GET /courses/{id}\`; ids Zipf-distributed over the $NCOURSES
  courses (s = $ZIPF_S). A write replaces the course (and its list
  summary) in the writer's L1 and in Redis and drops it from the other
  processes' L1; a description edit moves only the search generation
  (app/lists.c), so list pages without a search term stay cached.
- Layers are the cluster counters (the Redis hash behind GET /cache/stats
  "cluster"), read after the warm-up and after the run (the responders
  stopped first: a stopping responder flushes its last counts).

EOF
    awk -v before="$T/before" '
        BEGIN { while ((getline line < before) > 0) { split(line, f, "\t"); b[f[1]] = f[2] } }
        { split($0, f, "\t"); d[f[1]] = f[2] - b[f[1]] }
        END {
            for (k in d) printf "%s %d\n", k, d[k]
        }' "$T/after" | sort >"$T/delta"
    sed -n 's/^MIXED //p' "$T/wrk.out" | tr ' ' '\n' | sed 's/=/ /' >"$T/client"
    awk '
        FNR == NR { c[$1] = $2; next }
        { d[$1] = $2 }
        function pct(a, b) { return b > 0 ? sprintf("%.1f %%", 100 * a / b) : "-" }
        function row(name, key,    l1, l2, miss, stale, n) {
            l1 = d[key ":l1"] + 0; l2 = d[key ":l2"] + 0; miss = d[key ":miss"] + 0
            stale = d[key ":stale"] + 0; n = l1 + l2 + miss + stale
            printf "| %s | %d | %s | %s | %s | %s |\n", name, n, pct(l1, n), pct(l2, n),
                   pct(miss, n), pct(stale, n)
            tl1 += l1; tl2 += l2; tmiss += miss; tstale += stale
        }
        END {
            printf "| | |\n|---|---:|\n"
            printf "| requests | %d in %.1f s |\n", c["requests"], c["seconds"]
            printf "| throughput | **%.0f req/s** |\n", c["rps"]
            printf "| latency p50 / p99 | %.2f ms / %.2f ms |\n", c["p50_ms"], c["p99_ms"]
            printf "| writes / list reads / course reads (client) | %d / %d / %d |\n",
                   c["writes"], c["lists"], c["courses"]
            printf "| HTTP errors (status >= 400) / socket errors | %d / %d |\n", c["bad"],
                   c["errors"]
            printf "| store queries (all, writes included) | %d |\n", d["store:queries"]
            printf "| **requests that reached the store** | **%s** (store queries / requests) |\n",
                   pct(d["store:queries"], c["requests"])
            printf "| reads served from the store (MISS / reads) | %s |\n\n",
                   pct(d["courses:miss"] + d["courses_list:miss"],
                       c["lists"] + c["courses"])
            printf "Hit ratio per layer (cluster counters, reads only):\n\n"
            printf "| reads of | count | L1 | L2 | store (MISS) | STALE |\n"
            printf "|---|---:|---:|---:|---:|---:|\n"
            row("course", "courses")
            row("list page", "courses_list")
            n = tl1 + tl2 + tmiss + tstale
            printf "| all | %d | %s | %s | %s | %s |\n\n", n, pct(tl1, n), pct(tl2, n),
                   pct(tmiss, n), pct(tstale, n)
            printf "X-Cache as the client saw it: L1 %d, L2 %d, MISS %d, STALE %d, none (writes) %d.\n\n",
                   c["x_l1"], c["x_l2"], c["x_miss"], c["x_stale"], c["x_none"]
            printf "Reading it: course reads do not reach the store -- a write caches the new\n"
            printf "version in the writer'"'"'s L1 and in Redis and tells the other processes to drop\n"
            printf "theirs, so they re-read it from L2 (the L2 share of course reads). The writes\n"
            printf "here (%.0f/s) change descriptions: they move only the search generation\n", c["writes"] / c["seconds"]
            printf "(app/lists.c), so list pages without a search term stay cached and their\n"
            printf "items come from the summaries each write rewrites. The store queries left\n"
            printf "are the writes themselves.\n"
        }' "$T/client" "$T/delta"
} >"$SECTION"

splice_section "$OUT" mixed "$SECTION"
say "wrote the mixed section of $OUT"
cat "$SECTION"
