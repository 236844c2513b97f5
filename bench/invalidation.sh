#!/bin/sh
# bench/invalidation.sh [BUILD_DIR] -- what invalidating every cached course
# list costs: elearn's generation bump against the original service's
# SCAN + DEL. Results go into their own section of
# docs/benchmarks-cluster.md (bench/mixed.sh writes another).
#
# A private redis-server (free port, temp dir) is filled by one Lua script
# with BENCH_LIST_KEYS (100 000) list pages `courses_list:<gen>:<sha1>`
# (generations 1-10, BENCH_VALUE_BYTES bytes each, PX 120000 as
# COURSE_LIST_TTL would set) and 20 000 other keys (`course:<id>`) that a
# real Redis holds too and a SCAN must step over. Three subscribers listen
# on elearn:cache, as three responder processes would. Then, timed by a
# Python client (stdlib sockets, one connection, RESP by hand):
#   (a) the generation bump, as app/courses.c does it: INCR
#       courses_list:gen, then PUBLISH elearn:cache "E1 <id> <seq> G <gen>"
#       -- two round trips; BENCH_BUMPS (1000) times;
#   (b) SCAN 0 MATCH courses_list:* COUNT 500 ... collecting keys and
#       DEL-ing them 500 at a time, until the cursor is back at 0; on a
#       fresh fill each of BENCH_SCAN_RUNS (3) times.
# Meanwhile a bystander client PINGs in a loop: its worst round trip is the
# stall every other Redis user (all the responders) sees.
#
# BUILD_DIR is accepted (and ignored) so `make bench` can call every bench
# script the same way.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. "$ROOT/bench/lib.sh"

KEYS=${BENCH_LIST_KEYS:-100000}
VALUE_BYTES=${BENCH_VALUE_BYTES:-4096}
BUMPS=${BENCH_BUMPS:-1000}
SCAN_RUNS=${BENCH_SCAN_RUNS:-3}
OUT=${BENCH_CLUSTER_OUT:-$ROOT/docs/benchmarks-cluster.md}

for c in redis-server redis-cli; do
    command -v "$c" >/dev/null || { echo "invalidation: $c is not installed" >&2; exit 1; }
done

bench_begin invalidation
PORT=$(free_port)
start_redis "$PORT" "$T/redis"
track

say "$KEYS list keys of $VALUE_BYTES bytes, $BUMPS bumps, $SCAN_RUNS SCAN+DEL runs"
/usr/bin/python3 - "$PORT" "$KEYS" "$VALUE_BYTES" "$BUMPS" "$SCAN_RUNS" >"$T/results" <<'EOF'
import socket, statistics, sys, threading, time

port, nkeys, vbytes, nbumps, nruns = (int(a) for a in sys.argv[1:])

# The fill: one Lua script, server side (keys spread over generations 1-10).
FILL = """
local payload = string.rep('x', tonumber(ARGV[2]))
for i = 1, tonumber(ARGV[1]) do
    redis.call('SET', 'courses_list:' .. (i % 10 + 1) .. ':' .. redis.sha1hex('page' .. i),
               payload, 'PX', 120000)
end
for i = 1, 20000 do
    redis.call('SET', 'course:' .. string.sub(redis.sha1hex('course' .. i), 1, 24), payload)
end
redis.call('SET', 'courses_list:gen', 10)
return redis.call('DBSIZE')
"""


def enc(*args):
    out = [b'*%d\r\n' % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b'$%d\r\n%s\r\n' % (len(a), a))
    return b''.join(out)


class Conn:
    def __init__(self):
        self.s = socket.create_connection(('127.0.0.1', port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.s.makefile('rb')

    def reply(self):
        line = self.f.readline()
        t, rest = line[:1], line[1:-2]
        if t in (b'+', b':'):
            return int(rest) if t == b':' else rest
        if t == b'-':
            raise RuntimeError(rest.decode())
        if t == b'$':
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        if t == b'*':
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise RuntimeError('bad reply %r' % line)

    def call(self, *args):
        self.s.sendall(enc(*args))
        return self.reply()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class Bystander:
    """PINGs in a loop on its own connection; keeps every round trip."""

    def __init__(self):
        self.c, self.rtts, self.stop = Conn(), [], threading.Event()
        self.t = threading.Thread(target=self.run)
        self.t.start()

    def run(self):
        while not self.stop.is_set():
            t0 = time.perf_counter()
            self.c.call('PING')
            self.rtts.append(time.perf_counter() - t0)

    def done(self):
        self.stop.set()
        self.t.join()
        return self.rtts


def subscriber(ready):
    c = Conn()
    c.call('SUBSCRIBE', 'elearn:cache')
    ready.release()
    try:
        while True:
            c.reply()
    except (OSError, RuntimeError, ValueError):
        pass


def fill(c):
    c.call('FLUSHALL')
    t0 = time.perf_counter()
    n = c.call('EVAL', FILL, 0, nkeys, vbytes)
    return n, time.perf_counter() - t0


def used_memory(c):
    info = c.call('INFO', 'memory').decode()
    return int(next(l.split(':')[1] for l in info.split('\r\n') if l.startswith('used_memory:')))


c = Conn()
ready = threading.Semaphore(0)
for _ in range(3):
    threading.Thread(target=subscriber, args=(ready,), daemon=True).start()
for _ in range(3):
    ready.acquire()

# (a) the generation bump
n, fill_s = fill(c)
mem_before = used_memory(c)
by = Bystander()
bumps = []
t_all = time.perf_counter()
for seq in range(1, nbumps + 1):
    t0 = time.perf_counter()
    gen = c.call('INCR', 'courses_list:gen')
    c.call('PUBLISH', 'elearn:cache', 'E1 0123456789abcdef %d G %d' % (seq, gen))
    bumps.append(time.perf_counter() - t0)
t_all = time.perf_counter() - t_all
ping_a = by.done()
dbsize_a = c.call('DBSIZE')
mem_after_a = used_memory(c)

# (b) SCAN MATCH + DEL in batches of 500, each run on a fresh fill
runs = []
for _ in range(nruns):
    fill(c)
    by = Bystander()
    t0 = time.perf_counter()
    cursor, batch, trips, deleted, worst = b'0', [], 0, 0, 0.0
    while True:
        t1 = time.perf_counter()
        cursor, keys = c.call('SCAN', cursor, 'MATCH', 'courses_list:*', 'COUNT', 500)
        worst = max(worst, time.perf_counter() - t1)
        trips += 1
        batch += [k for k in keys if k != b'courses_list:gen']
        while len(batch) >= 500 or (cursor == b'0' and batch):
            t1 = time.perf_counter()
            deleted += c.call('DEL', *batch[:500])
            worst = max(worst, time.perf_counter() - t1)
            trips += 1
            batch = batch[500:]
        if cursor == b'0':
            break
    total = time.perf_counter() - t0
    runs.append((total, trips, deleted, worst, by.done()))

mid = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
ping_b = [x for r in runs for x in r[4]]
print('fill_s=%.3f dbsize=%d' % (fill_s, n))
print('a_total_ms=%.3f a_mean_ms=%.4f a_p50_ms=%.4f a_p99_ms=%.4f a_max_ms=%.4f a_first_ms=%.4f'
      % (t_all * 1e3, 1e3 * t_all / nbumps, 1e3 * pct(bumps, 50), 1e3 * pct(bumps, 99),
         1e3 * max(bumps), 1e3 * bumps[0]))
print('a_ping_p50_ms=%.4f a_ping_max_ms=%.4f a_dbsize=%d a_mem_before=%d a_mem_after=%d'
      % (1e3 * pct(ping_a, 50), 1e3 * max(ping_a), dbsize_a, mem_before, mem_after_a))
print('b_ms=%s' % ','.join('%.1f' % (1e3 * r[0]) for r in runs))
print('b_median_ms=%.1f b_trips=%d b_deleted=%d b_worst_cmd_ms=%.3f'
      % (1e3 * mid[0], mid[1], mid[2], 1e3 * max(r[3] for r in runs)))
print('b_ping_p50_ms=%.4f b_ping_max_ms=%.4f' % (1e3 * pct(ping_b, 50), 1e3 * max(ping_b)))
EOF

# ---- report ----------------------------------------------------------------
get() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" "$T/results" | head -n 1; }
CPU=$(sed -n 's/^model name[[:space:]]*: *//p' /proc/cpuinfo | head -n 1)
REDIS_V=$(redis-server --version | sed 's/^Redis server v=\([^ ]*\).*/\1/')
MEM=$(awk '/^MemTotal:/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
mib() { awk -v b="$1" 'BEGIN { printf "%.0f MiB", b / 1048576 }'; }

SECTION=$T/section.md
cat >"$SECTION" <<EOF
## Invalidating every course list (bench/invalidation.sh)

Run on $(date -u '+%Y-%m-%d %H:%M UTC'): ${CPU:-unknown CPU}, $(nproc) cores, $MEM,
$(uname -sr); Redis $REDIS_V (private instance, no persistence); load average at
start $LOAD0.

- Redis holds $(get dbsize) keys: $KEYS cached list pages
  \`courses_list:<gen>:<sha1>\` of $VALUE_BYTES bytes (generations 1-10, PX 120000)
  and 20 000 \`course:<id>\` keys; three clients are subscribed to
  \`elearn:cache\` (three responders). One Python client over loopback times
  each step (its own overhead included); meanwhile another client PINGs in a
  loop, and its slowest round trip is the stall every other Redis user sees.
- **(a) generation bump** (elearn, app/courses.c \`el_app_bump_lists\`):
  \`INCR courses_list:gen\` + \`PUBLISH elearn:cache\` (two round trips),
  $BUMPS times. Old pages are never read again and expire by TTL.
- **(b) SCAN + DEL** (the original service): \`SCAN cursor MATCH
  courses_list:* COUNT 500\` until the cursor returns to 0, deleting the
  matches with \`DEL\` 500 keys at a time; $SCAN_RUNS runs, each on a fresh fill
  (median shown).

| | (a) generation bump | (b) SCAN + DEL in batches of 500 |
|---|---:|---:|
| time to invalidate every list | **$(get a_p50_ms) ms** (p50; p99 $(get a_p99_ms) ms, max $(get a_max_ms) ms) | **$(get b_median_ms) ms** (runs: $(get b_ms | sed "s/,/, /g") ms) |
| round trips | 2 | $(get b_trips) |
| keys deleted | 0 (they expire within COURSE_LIST_TTL) | $(get b_deleted) |
| slowest single command | - | $(get b_worst_cmd_ms) ms |
| bystander PING p50 / max meanwhile | $(get a_ping_p50_ms) / $(get a_ping_max_ms) ms | $(get b_ping_p50_ms) / $(get b_ping_max_ms) ms |
| Redis memory right after | $(mib "$(get a_mem_after)") (unchanged: $(mib "$(get a_mem_before)") before) | the deleted pages freed |

$(awk -v a="$(get a_p50_ms)" -v b="$(get b_median_ms)" 'BEGIN { if (a > 0) printf "The bump is about %.0f times faster here, and its cost does not grow with the number of cached pages; SCAN + DEL walks the whole keyspace (%s keys) whatever matches.", b / a, "'"$(get dbsize)"'" }')
The price of the bump is memory: the old generation's pages stay until their
TTL (at most COURSE_LIST_TTL + 10 %) instead of being freed at once.
EOF

splice_section "$OUT" invalidation "$SECTION"
say "wrote the invalidation section of $OUT"
cat "$SECTION"
