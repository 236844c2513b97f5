#!/bin/sh
# run.sh -- what `make run` does after installing and building: serve elearn
# on http://127.0.0.1:$PORT/ with nginx -> spawn-fcgi responder -> Redis ->
# the store, all children of this script, until Ctrl-C.
#
# Environment (all optional):
#   PORT        nginx port, default 8080
#   DB_URI      the store; default sqlite:var/elearn.db (seeded with 200
#               demo courses when empty)
#   REDIS_URL   used when it answers PING; "" switches L2 off; unset means
#               127.0.0.1:6379 if a Redis answers there, else a private
#               redis-server (conf/redis.conf) under var/redis
#   JWT_SECRET  default: var/jwt_secret, generated once (48 random chars)
#   ENV_FILE    passed to the responder as --env-file (the environment wins)
#   BUILD_DIR   default build
#   WORKERS, COURSE_TTL, ... any other variable of conf/elearn.env.example
#               is passed through to the responder.
#
# Stops exactly the processes it started, by pid, on Ctrl-C, on SIGTERM and
# when any of them dies. Works as root and as a normal user.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
EL_TESTS_DIR=$ROOT/tests
. "$ROOT/tests/lib.sh"

B=$(cd "${BUILD_DIR:-build}" 2>/dev/null && pwd) || B=$ROOT/${BUILD_DIR:-build}
PORT=${PORT:-8080}
VAR=$ROOT/var
SOCK=$VAR/run/elearn.sock

die() {
    echo "run: $*" >&2
    exit 1
}

for f in "$B/elearn-fcgi" "$B/elearnctl"; do
    [ -x "$f" ] || die "$f is missing: run 'make' first"
done
for c in nginx spawn-fcgi redis-server redis-cli curl; do
    command -v "$c" >/dev/null 2>&1 || die "$c is not installed: run 'make deps'"
done
case $PORT in
'' | *[!0-9]*) die "PORT must be a number (got '$PORT')" ;;
esac
port_free "$PORT" || die "port $PORT is already in use on 127.0.0.1; choose another: PORT=8081 make run"

# ---- stop what we started, and only that --------------------------------
NGINX_PID="" FCGI_PID="" REDIS_PID="" SLEEP_PID=""
cleanup() {
    trap - EXIT INT TERM
    [ -z "$SLEEP_PID" ] || kill "$SLEEP_PID" 2>/dev/null || true
    [ -z "$NGINX_PID$FCGI_PID$REDIS_PID" ] || echo "run: stopping" >&2
    stop_pid "$NGINX_PID" 10
    stop_pid "$FCGI_PID" 10
    stop_pid "$REDIS_PID" 10
    NGINX_PID="" FCGI_PID="" REDIS_PID=""
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$VAR/run" "$VAR/log" "$VAR/redis" "$VAR/nginx"

# ---- JWT secret ----------------------------------------------------------
if [ -z "${JWT_SECRET:-}" ]; then
    if [ ! -s "$VAR/jwt_secret" ]; then
        (umask 077 && LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 48 >"$VAR/jwt_secret")
        chmod 600 "$VAR/jwt_secret"
        echo "run: generated $VAR/jwt_secret" >&2
    fi
    JWT_SECRET=$(cat "$VAR/jwt_secret")
fi
export JWT_SECRET

# ---- Redis (L2) ----------------------------------------------------------
redis_ok() {
    [ "$(timeout 3 redis-cli --no-auth-warning -u "$1" ping 2>/dev/null)" = PONG ]
}
start_private_redis() {
    rport=6390
    port_free "$rport" || rport=$(free_port)
    redis-server "$ROOT/conf/redis.conf" --port "$rport" --bind 127.0.0.1 \
        --dir "$VAR/redis" --daemonize no --logfile "$VAR/log/redis.log" &
    REDIS_PID=$!
    wait_alive 10 "$REDIS_PID" redis-cli -p "$rport" ping ||
        { tail -n 20 "$VAR/log/redis.log" >&2; die "redis-server did not start on :$rport"; }
    REDIS_URL=redis://127.0.0.1:$rport/0
    echo "run: started redis-server on :$rport (log var/log/redis.log)" >&2
}
if [ "${REDIS_URL+set}" = set ] && [ -z "$REDIS_URL" ]; then
    echo "run: REDIS_URL is empty: L2 cache disabled" >&2
elif [ -n "${REDIS_URL:-}" ]; then
    if redis_ok "$REDIS_URL"; then
        echo "run: using Redis at $REDIS_URL" >&2
    else
        echo "run: REDIS_URL=$REDIS_URL does not answer PING; starting a private redis-server" >&2
        start_private_redis
    fi
elif redis_ok redis://127.0.0.1:6379/0; then
    REDIS_URL=redis://127.0.0.1:6379/0
    echo "run: using the Redis already on 127.0.0.1:6379" >&2
else
    start_private_redis
fi
export REDIS_URL

# ---- store ---------------------------------------------------------------
export DB_URI="${DB_URI:-sqlite:var/elearn.db}"
"$B/elearnctl" seed --courses 200 --if-empty || die "seeding $DB_URI failed"

# ---- demo accounts ----------------------------------------------------------
# One learner, one instructor and one admin, made once per store with
# random passwords kept in var/demo_credentials (mode 600) and printed below,
# so every role's work can be tried in the browser at once.
DEMO=$VAR/demo_credentials
if [ ! -s "$DEMO" ] || ! grep -q "^# $DB_URI\$" "$DEMO"; then
    (umask 077 && echo "# $DB_URI" >"$DEMO.new")
    for role in student instructor admin; do
        pw=$(LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 16)
        email=demo-$role@elearn.example
        if printf '%s\n' "$pw" | "$B/elearnctl" create-user --email "$email" --role "$role" \
            --name "Demo $role" --password-stdin >/dev/null 2>&1; then
            echo "$role $email $pw" >>"$DEMO.new"
        fi
    done
    if [ "$(wc -l <"$DEMO.new")" -gt 1 ]; then
        mv "$DEMO.new" "$DEMO"
    else
        rm -f "$DEMO.new" # the accounts exist already (made by an earlier run)
    fi
fi

# ---- responder -------------------------------------------------------------
set -- "$B/elearn-fcgi"
[ -z "${ENV_FILE:-}" ] || set -- "$@" --env-file "$ENV_FILE"
"$@" --check-config || die "bad configuration (see the line above)"
# The responder's request log goes to the terminal: one line per request
# with the cache layer that served it.
mkdir -p "$(dirname "$SOCK")"
rm -f "$SOCK"
spawn-fcgi -n -s "$SOCK" -M 0600 -- "$@" &
FCGI_PID=$!
wait_alive 10 "$FCGI_PID" test -S "$SOCK" || die "the responder did not start"

# ---- nginx -----------------------------------------------------------------
render_nginx "$ROOT/conf/nginx.conf" "$VAR/nginx" "$PORT" "$ROOT/www" "$SOCK"
nginx -p "$VAR/nginx" -c "$VAR/nginx/nginx.conf" -e "$VAR/nginx/logs/error.log" \
    -g 'daemon off;' &
NGINX_PID=$!

api_ok() {
    curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/api/courses"
}
if ! wait_alive 30 "$NGINX_PID" api_ok; then
    alive "$NGINX_PID" || { tail -n 20 "$VAR/nginx/logs/error.log" >&2 2>/dev/null; die "nginx did not start"; }
    alive "$FCGI_PID" || die "the responder exited"
    curl -sS --max-time 2 "http://127.0.0.1:$PORT/api/courses" >&2 || true
    die "http://127.0.0.1:$PORT/api/courses did not answer 200 within 30 s"
fi

cat >&2 <<EOF

  elearn is up:  http://127.0.0.1:$PORT/          (browser frontend)
                 http://127.0.0.1:$PORT/api/courses
                 http://127.0.0.1:$PORT/docs/     (API reference)
  store $DB_URI, L2 ${REDIS_URL:-off}, nginx log var/nginx/logs/error.log
  Stop with Ctrl-C (or kill $$): stops nginx, the responder and any Redis this started.

EOF
if [ -s "$DEMO" ] && grep -q "^# $DB_URI\$" "$DEMO"; then
    echo "  Demo accounts (role, email, password; kept in var/demo_credentials):" >&2
    grep -v '^#' "$DEMO" | sed 's/^/    /' >&2
    echo >&2
fi

# Stay in the foreground until a signal or until one of ours dies. The sleep
# runs in the background so a SIGTERM to this shell is handled at once.
while alive "$NGINX_PID" && alive "$FCGI_PID" && { [ -z "$REDIS_PID" ] || alive "$REDIS_PID"; }; do
    sleep 1 &
    SLEEP_PID=$!
    wait "$SLEEP_PID" || true
    SLEEP_PID=""
done
alive "$NGINX_PID" || echo "run: nginx exited" >&2
alive "$FCGI_PID" || echo "run: the responder exited" >&2
[ -z "$REDIS_PID" ] || alive "$REDIS_PID" || echo "run: redis-server exited" >&2
exit 1
