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
