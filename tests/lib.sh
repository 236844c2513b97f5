# lib.sh -- shell helpers shared by the test and run scripts (sourced; the
# caller sets EL_TESTS_DIR to the tests/ folder first).
#
# Each start_* function starts one server in the background, waits until it
# answers (polling its readiness with a deadline -- never a fixed sleep),
# and leaves its pid in LAST_PID so the caller can stop exactly it.

PY=/usr/bin/python3   # Debian's interpreter: it has mockupdb and mongomock

# A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
free_port() {
    $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_for SECONDS CMD... -- run CMD until it succeeds or time runs out.
wait_for() {
    _deadline=$(( $(date +%s) + $1 )); shift
    while ! "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$_deadline" ] || return 1
        sleep 0.05
    done
}

# start_redis PORT DIR
start_redis() {
    mkdir -p "$2"
    redis-server --port "$1" --bind 127.0.0.1 --dir "$2" --save "" --appendonly no \
        --daemonize no --logfile "$2/redis.log" &
    LAST_PID=$!
    wait_for 10 redis-cli -p "$1" ping || { echo "redis-server did not start on :$1" >&2; cat "$2/redis.log" >&2; return 1; }
}

# start_mongo_mock DIR -- sets LAST_PID and LAST_URI.
start_mongo_mock() {
    mkdir -p "$1"
    _port=$(free_port)
    $PY "$EL_TESTS_DIR/mongo_server.py" --port "$_port" >"$1/mongo.log" 2>&1 &
    LAST_PID=$!
    LAST_URI="mongodb://127.0.0.1:$_port/elearn_test"
    wait_for 20 $PY -c "import socket; socket.create_connection(('127.0.0.1', $_port), 1)" \
        || { echo "mongo test server did not start" >&2; cat "$1/mongo.log" >&2; return 1; }
}

# ---------------------------------------------------------------------------
# nginx + spawn-fcgi helpers (scripts/run.sh, bench/run.sh, tests/e2e).

# port_free PORT -- true when nothing listens on 127.0.0.1:PORT.
port_free() {
    $PY -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1])))' "$1" 2>/dev/null
}

# alive PID -- true while PID runs (a zombie, exited but not yet reaped by
# this shell, counts as gone).
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    _st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
    [ -n "$_st" ] && [ "$_st" != Z ]
}

# wait_alive SECONDS PID CMD... -- like wait_for, but gives up at once when
# PID is gone (the server we wait for died: no point waiting).
wait_alive() {
    _deadline=$(( $(date +%s) + $1 )); _pid=$2; shift 2
    while ! "$@" >/dev/null 2>&1; do
        alive "$_pid" || return 1
        [ "$(date +%s)" -lt "$_deadline" ] || return 1
        sleep 0.05
    done
}

# stop_pid PID [SECONDS] -- SIGTERM PID, wait up to SECONDS (default 10) for
# it to exit, then SIGKILL it; reap it when it is our child. Only ever the
# given pid.
stop_pid() {
    [ -n "$1" ] || return 0
    # Already gone (and maybe reaped): nothing to stop. `|| true` keeps a
    # failing wait from ending a caller running under set -e.
    kill -TERM "$1" 2>/dev/null || { wait "$1" 2>/dev/null || true; return 0; }
    _deadline=$(( $(date +%s) + ${2:-10} ))
    while alive "$1" && [ "$(date +%s)" -lt "$_deadline" ]; do sleep 0.05; done
    if alive "$1"; then
        echo "pid $1 did not stop within ${2:-10}s; killing it" >&2
        kill -KILL "$1" 2>/dev/null || true
    fi
    wait "$1" 2>/dev/null || true
}

# render_nginx TEMPLATE PREFIX PORT WWW SOCKET... -- render conf/nginx.conf
# into PREFIX/nginx.conf with one `server unix:SOCKET;` line per SOCKET
# (SOCKDIR: the first one's directory) and create PREFIX's logs/, tmp/ and
# static/ folders. Run as root, it puts `user root;` first so the workers
# can open sockets made with -M 0600 (as a normal user nginx would only warn
# that `user` is meaningless); EL_NGINX_USER="www-data www-data" puts that
# user instead (the production setup: socket group www-data, mode 0660).
render_nginx() {
    _tpl=$1 _prefix=$2 _port=$3 _www=$4; shift 4
    _ups=""
    for _s in "$@"; do
        _ups="${_ups:+$_ups
        }server unix:$_s;"
    done
    mkdir -p "$_prefix/logs" "$_prefix/tmp" "$_prefix/static"
    {
        if [ -n "${EL_NGINX_USER:-}" ]; then
            echo "user $EL_NGINX_USER;"
        elif [ "$(id -u)" -eq 0 ]; then
            echo "user root;"
        fi
        EL_R_PREFIX=$_prefix EL_R_PORT=$_port EL_R_WWW=$_www EL_R_UPS=$_ups \
        EL_R_SOCKDIR=$(dirname "${1:-/run/elearn/x}") awk '
            function rep(s, from, to,    i, r) {
                r = ""
                while ((i = index(s, from)) > 0) {
                    r = r substr(s, 1, i - 1) to
                    s = substr(s, i + length(from))
                }
                return r s
            }
            {
                $0 = rep($0, "@PREFIX@", ENVIRON["EL_R_PREFIX"])
                $0 = rep($0, "@PORT@", ENVIRON["EL_R_PORT"])
                $0 = rep($0, "@WWW@", ENVIRON["EL_R_WWW"])
                $0 = rep($0, "@UPSTREAM@", ENVIRON["EL_R_UPS"])
                $0 = rep($0, "@SOCKDIR@", ENVIRON["EL_R_SOCKDIR"])
                print
            }' "$_tpl"
    } >"$_prefix/nginx.conf"
}

# start_nginx PREFIX PORT -- run nginx on PREFIX/nginx.conf (rendered by
# render_nginx) in the foreground as our child; wait until it answers.
start_nginx() {
    nginx -p "$1" -c "$1/nginx.conf" -e "$1/logs/error.log" -g 'daemon off;' \
        2>>"$1/logs/stderr.log" &
    LAST_PID=$!
    wait_alive 10 "$LAST_PID" curl -s -o /dev/null "http://127.0.0.1:$2/" || {
        echo "nginx did not start on :$2" >&2
        cat "$1/logs/stderr.log" "$1/logs/error.log" >&2 2>/dev/null
        return 1
    }
}

# start_fcgi SOCKET LOG PROGRAM [ARGS...] -- spawn-fcgi -n: PROGRAM runs
# with the listening socket as fd 0 and LAST_PID is PROGRAM's own pid (with
# -n spawn-fcgi execs it). stdout+stderr go to LOG. Waits until the socket
# exists; whether the program serves is checked through nginx.
start_fcgi() {
    _sock=$1 _log=$2; shift 2
    mkdir -p "$(dirname "$_sock")"
    rm -f "$_sock"
    spawn-fcgi -n -s "$_sock" -M 0600 -- "$@" >>"$_log" 2>&1 &
    LAST_PID=$!
    wait_alive 10 "$LAST_PID" test -S "$_sock" || {
        echo "$1 did not start on $_sock" >&2
        tail -n 20 "$_log" >&2
        return 1
    }
}
