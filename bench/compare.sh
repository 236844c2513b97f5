#!/bin/sh
# bench/compare.sh OLD_BUILD NEW_BUILD -- A/B two builds of elearn-fcgi on
# the rows of `make bench` that go past L1, in one run, alternating.
#
# A shared, noisy machine moves absolute req/s by tens of percent between
# runs minutes apart, so two `make bench` tables from different days cannot
# tell a 15 % regression from noise. This runs both builds side by side,
# each with its own redis-server, its own seeded SQLite file (seeded by its
# own elearnctl) and, per row, its own responder behind its own nginx
# rendered from this tree's conf/nginx.conf, and measures each row for both
# builds back to back, the order flipped on every repetition. The report is
# the ratio NEW / OLD per repetition (and its median), plus each build's
# ratio to nginx serving the same bytes from a file in the same repetition.
#
# Rows (wrk -t$THREADS -c$CONNS -d$DUR, keep-alive, through nginx):
#   static  nginx alone, the course bytes from a file (scale)
#   miss    GET course, L1_MAX_BYTES=0 REDIS_URL= (every request reads SQLite)
#   l2      GET course, L1_MAX_BYTES=0 (every request reads Redis)
#   l1      GET course, the default configuration
#   me      GET /api/auth/me with a student's token, default configuration
#   write   PATCH /api/courses/{id} (admin, a new description each time)
#
# Each row also gives the responder's CPU and context switches (all its
# threads) per request, which a loaded machine disturbs far less than req/s.
#
#   BENCH_DURATION=5s BENCH_REPS=5 BENCH_CONNECTIONS=64 BENCH_THREADS=2
#   WORKERS=4 BENCH_ROWS="static miss l2 l1 me write" BENCH_KEEP=1 (keep tmp)
#   BENCH_TSV=FILE (the raw results)
#   BENCH_PERF=1    the responder's system calls per request, by name
#                   (perf stat on the syscall tracepoints, over wrk's run)
#   BENCH_RECORD=1  a perf record profile per run in the kept tmp dir
#                   (BENCH_RECORD_CG=dwarf for call graphs without frame
#                   pointers)
# shellcheck disable=SC2154,SC2086 # per-build variables are set through eval; $_nw is a list of pids
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

[ $# -eq 2 ] || { echo "usage: $0 OLD_BUILD NEW_BUILD" >&2; exit 2; }
DUR=${BENCH_DURATION:-5s}
REPS=${BENCH_REPS:-5}
CONNS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2}
ROWS=${BENCH_ROWS:-static miss l2 l1 me write}
export WORKERS="${WORKERS:-4}"
export JWT_SECRET=bench-secret-0123456789abcdefghijklmnopqrstuvwxyz
unset L1_MAX_BYTES COURSE_TTL COURSE_LIST_TTL 2>/dev/null || true

bench_begin compare
ENV=$(command -v env)

# setup TAG BUILD -- redis, store, the three responders and their nginx.
setup() {
    _tag=$1 _b=$(cd "$2" && pwd)
    _rp=$(free_port)
    start_redis "$_rp" "$T/$_tag/redis"
    track
    _db="sqlite:$T/$_tag/bench.db"
    "$_b/elearnctl" seed --courses 200 --db "$_db" >"$T/$_tag/seed.log" 2>&1 ||
        { cat "$T/$_tag/seed.log" >&2; exit 1; }
    for _u in student:bench-user@example.com admin:bench-admin@example.com; do
        printf '%s\n' bench-password-0123 |
            "$_b/elearnctl" create-user --email "${_u#*:}" --password-stdin \
                --role "${_u%%:*}" --db "$_db" >>"$T/$_tag/user.log" 2>&1 ||
            { cat "$T/$_tag/user.log" >&2; exit 1; }
    done
    for _f in miss:"L1_MAX_BYTES=0 REDIS_URL=" l2:"L1_MAX_BYTES=0" l1:""; do
        _n=${_f%%:*}
        # shellcheck disable=SC2086 # the variables are words on purpose
        start_fcgi "$T/$_tag/$_n.sock" "$T/$_tag/$_n.log" "$ENV" DB_URI="$_db" \
            REDIS_URL="redis://127.0.0.1:$_rp/0" ${_f#*:} "$_b/elearn-fcgi"
        track
        eval "PID_${_tag}_$_n=$LAST_PID"
        _p=$(free_port)
        render_nginx "$ROOT/conf/nginx.conf" "$T/$_tag/ng-$_n" "$_p" "$ROOT/www" \
            "$T/$_tag/$_n.sock"
        start_nginx "$T/$_tag/ng-$_n" "$_p"
        track
        eval "NGX_${_tag}_$_n=$LAST_PID PORT_${_tag}_$_n=$_p"
    done
    eval "_p=\$PORT_${_tag}_l1"
    _ids=$(curl -fsS "http://127.0.0.1:$_p/api/courses?page_size=2&sort_by=popular" |
        $PY -c 'import json, sys; print(" ".join(c["_id"] for c in json.load(sys.stdin)["items"]))')
    eval "CID_$_tag=${_ids% *} WID_$_tag=${_ids#* }"
    for _r in student:bench-user@example.com admin:bench-admin@example.com; do
        _tok=$(curl -fsS -H 'Content-Type: application/json' \
            -d "{\"email\":\"${_r#*:}\",\"password\":\"bench-password-0123\"}" \
            "http://127.0.0.1:$_p/api/auth/login" |
            sed -n 's/^.*"access_token":"\([A-Za-z0-9_.-]*\)".*$/\1/p')
        [ -n "$_tok" ] || { say "$_tag: ${_r#*:} cannot log in"; exit 1; }
        eval "TOK_${_tag}_${_r%%:*}=$_tok"
    done
    _wid="" _adm=""
    eval "_wid=\$WID_$_tag _adm=\$TOK_${_tag}_admin"
    cat >"$T/$_tag/write.lua" <<LUA
local n = 0
function request()
    n = n + 1
    return wrk.format("PATCH", "/api/courses/$_wid",
        {["Authorization"] = "Bearer $_adm", ["Content-Type"] = "application/json"},
        '{"description":"Updated by bench/compare.sh, write ' .. n .. '."}')
end
LUA
    say "$_tag: $(sed -n 's/^.*"version":"\([^"]*\)".*$/\1/p' "$T/$_tag/seed.log" | head -n 1)" \
        "ready: course $(eval echo "\$CID_$_tag")" \
        "($(curl -fsS "http://127.0.0.1:$_p/api/courses/$(eval echo "\$CID_$_tag")" | wc -c) bytes)," \
        "write target $_wid"
}

mkdir -p "$T/old" "$T/new"
setup old "$1"
setup new "$2"
eval "_cq=/api/courses/\$CID_old"
curl -fsS "http://127.0.0.1:$PORT_old_l1$_cq" >"$T/old/ng-l1/static/static-bench.json"

# switches PID -- context switches (voluntary + involuntary) of all its threads:
# the wake-ups a request costs the responder.
switches() {
    cat /proc/"$1"/task/*/status 2>/dev/null |
        awk '/^(non)?voluntary_ctxt_switches:/ { t += $2 } END { print t + 0 }'
}
RES=$T/results.tsv
: >"$RES"

# run REP ROW TAG -- one wrk run, one line in $RES.
run() {
    _rep=$1 _row=$2 _tag=$3
    _front=$_row _rpid=- _tag0=$_tag
    [ "$_row" != static ] || _tag=old
    eval "_cid=\$CID_$_tag"
    set -- "/api/courses/$_cid"
    case $_row in
    static) _front=l1; set -- /static-bench.json ;;
    me) _front=l1; eval "set -- /api/auth/me -H \"Authorization: Bearer \$TOK_${_tag}_student\"" ;;
    write) _front=l1; set -- / -s "$T/$_tag/write.lua" ;;
    esac
    eval "_port=\$PORT_${_tag}_$_front _npid=\$NGX_${_tag}_$_front"
    [ "$_row" = static ] || eval "_rpid=\$PID_${_tag}_$_front"
    _url=$1; shift
    _nw=$(pgrep -P "$_npid" | tr '\n' ' ')
    _r0=$(ticks "$_rpid") _n0=$(ticks "$_npid" $_nw) _s0=$(switches "$_rpid")
    _perf=""
    if [ -n "${BENCH_PERF:-}" ] && [ "$_rpid" != - ]; then
        # system calls of the responder by name, over exactly wrk's run:
        # counting starts disabled and is switched on and off through
        # perf's control fifo, each switch acknowledged
        _perf=$T/perf-$_rep-$_row-$_tag.txt
        rm -f "$T/perf.ctl" "$T/perf.ack"
        mkfifo "$T/perf.ctl" "$T/perf.ack"
        perf stat -x, -e 'syscalls:sys_enter_*' -e context-switches -p "$_rpid" -o "$_perf" \
            -D -1 --control "fifo:$T/perf.ctl,$T/perf.ack" 2>/dev/null &
        _perfpid=$!
        exec 8>"$T/perf.ctl" 9<"$T/perf.ack"
        echo enable >&8
        read -r _ack <&9
    elif [ -n "${BENCH_RECORD:-}" ] && [ "$_rpid" != - ]; then
        # a call-graph profile of the responder (perf report -i FILE), kept
        # with BENCH_KEEP=1
        perf record -q -F 999 --call-graph "${BENCH_RECORD_CG:-fp}" -p "$_rpid" -o "$T/perf-$_rep-$_row-$_tag.data" \
            -- sleep "${DUR%s}" 2>/dev/null &
        _recpid=$!
    fi
    wrk -t"$THREADS" -c"$CONNS" -d"$DUR" --latency "$@" "http://127.0.0.1:$_port$_url" \
        >"$T/wrk.out" 2>&1 || { cat "$T/wrk.out" >&2; exit 1; }
    [ -z "${_recpid:-}" ] || { wait "$_recpid" || true; _recpid=""; }
    if [ -n "$_perf" ]; then
        echo disable >&8
        read -r _ack <&9
        exec 8>&- 9<&-
        kill -INT "$_perfpid"
        wait "$_perfpid" || true
        _reqs=$(awk '/ requests in / { print $1 }' "$T/wrk.out")
        awk -F, -v n="$_reqs" -v what="rep $_rep $_row $_tag" '
            $1 ~ /^[0-9]+$/ && $1 > 0 { e = $3; sub(/^syscalls:sys_enter_/, "", e); c[e] = $1
                                        if ($3 != "context-switches") t += $1 }
            END { printf "compare: %s per request: %.2f system calls:", what, t / n
                  for (e in c) if (c[e] / n >= 0.05) printf " %s %.2f", e, c[e] / n
                  printf "\n" }' "$_perf" >&2
    fi
    _r1=$(ticks "$_rpid") _n1=$(ticks "$_npid" $_nw) _s1=$(switches "$_rpid")
    [ "$_row" != static ] || _tag=$_tag0
    awk -v rep="$_rep" -v row="$_row" -v tag="$_tag" -v r0="$_r0" -v r1="$_r1" \
        -v n0="$_n0" -v n1="$_n1" -v s0="$_s0" -v s1="$_s1" -v tck="$TCK" -v static="$_rpid" "$WRK_AWK"'
        / requests in / { reqs = $1 }
        END {
            rus = (static == "-" || reqs == 0) ? "-" : sprintf("%.1f", (r1 - r0) * 1e6 / tck / reqs)
            nus = reqs == 0 ? "-" : sprintf("%.1f", (n1 - n0) * 1e6 / tck / reqs)
            sw = (static == "-" || reqs == 0) ? "-" : sprintf("%.2f", (s1 - s0) / reqs)
            printf "%d\t%s\t%s\t%.0f\t%.3f\t%.3f\t%s\t%s\t%d\t%s\n", rep, row, tag, rps, p50, p99,
                   rus, nus, bad, sw
        }' "$T/wrk.out" >>"$RES"
    tail -n 1 "$RES" | awk -F'\t' '{ printf "compare: rep %s %-6s %s %6s req/s p99 %s ms " \
        "CPU/req responder %s us nginx %s us switches/req %s non-2xx %s\n", $1, $2, $3, $4, $6, $7, $8, $10, $9 }' >&2
}

rep=1
while [ "$rep" -le "$REPS" ]; do
    for row in $ROWS; do
        if [ "$row" = static ]; then
            run "$rep" static -
        elif [ $((rep % 2)) -eq 1 ]; then
            run "$rep" "$row" old
            run "$rep" "$row" new
        else
            run "$rep" "$row" new
            run "$rep" "$row" old
        fi
    done
    rep=$((rep + 1))
done

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| row | rep | old req/s | new req/s | new ÷ old | old ÷ static | new ÷ static | old CPU us/req | new CPU us/req | old switches/req | new switches/req | old p99 ms | new p99 ms | non-2xx old/new |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
awk -F'\t' '
    $2 == "static" { st[$1] = $4; next }
    { k = $2 SUBSEP $1; v[k, $3] = $4; c[k, $3] = $7; p[k, $3] = $6; b[k, $3] = $9
      if (!(($2) in seen)) { seen[$2] = 1; order[++n] = $2 } sw[k, $3] = $10
      if ($1 > nrep) nrep = $1 }
    END {
        for (i = 1; i <= n; i++) {
            r = order[i]; m = 0
            for (rep = 1; rep <= nrep; rep++) {
                k = r SUBSEP rep
                q = v[k, "old"] > 0 ? v[k, "new"] / v[k, "old"] : 0
                ratios[r, ++m] = q
                printf "| %s | %s | %d | %d | %.2f | %s | %s | %s | %s | %s | %s | %.2f | %.2f | %d/%d |\n", r, rep,
                    v[k, "old"], v[k, "new"], q,
                    (st[rep] > 0 ? sprintf("%.2f", v[k, "old"] / st[rep]) : "-"),
                    (st[rep] > 0 ? sprintf("%.2f", v[k, "new"] / st[rep]) : "-"),
                    c[k, "old"], c[k, "new"], sw[k, "old"], sw[k, "new"], p[k, "old"], p[k, "new"], b[k, "old"], b[k, "new"]
            }
            cnt[r] = m
        }
        print ""
        print "| row | median new ÷ old | min | max |"
        print "|---|---:|---:|---:|"
        for (i = 1; i <= n; i++) {
            r = order[i]; m = cnt[r]
            for (a = 1; a <= m; a++) s[a] = ratios[r, a]
            for (a = 1; a <= m; a++) for (b2 = a + 1; b2 <= m; b2++)
                if (s[b2] < s[a]) { t = s[a]; s[a] = s[b2]; s[b2] = t }
            med = m % 2 ? s[(m + 1) / 2] : (s[m / 2] + s[m / 2 + 1]) / 2
            printf "| %s | %.2f | %.2f | %.2f |\n", r, med, s[1], s[m]
        }
    }' "$RES"
cp "$RES" "${BENCH_TSV:-/dev/null}" 2>/dev/null || true
