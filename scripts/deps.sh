#!/bin/sh
# deps.sh -- install the Debian packages elearn needs, only those missing,
# then the npm packages of package-lock.json (the browser app's libraries
# and its test tools: Playwright drives Debian's chromium, never a
# downloaded browser) and copy the served ones into www/vendor/.
# Idempotent: when everything is present it runs no apt or npm command.
set -eu

PKGS="build-essential pkg-config libfcgi-dev libhiredis-dev libmongoc-dev libbson-dev
libjson-c-dev libjwt-dev libargon2-dev libcunit1-dev libsqlite3-dev libssl-dev
nginx-light spawn-fcgi redis-server python3 python3-mockupdb python3-mongomock
wrk curl clang libclang-rt-14-dev chromium python3-jsonschema
apache2 prometheus lintian systemd dpkg-dev binutils clang-format"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
# Node.js and npm: Debian's packages unless a node is already installed
# (NodeSource's nodejs includes npm and conflicts with Debian's npm).
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
npm_step() {
    # playwright-core and @redocly/cli (versions chosen for it) need
    # Node.js 18 or later: Debian 12's.
    major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
    if [ "$major" -lt 18 ]; then
        echo "deps: Node.js $(node --version 2>/dev/null) is too old: the browser tests need 18 or later" >&2
        exit 1
    fi
    stamp=$ROOT/node_modules/.elearn-lock
    if ! cmp -s "$ROOT/package-lock.json" "$stamp" 2>/dev/null; then
        echo "deps: npm ci (package-lock.json)" >&2
        (cd "$ROOT" && SCARF_ANALYTICS=false npm ci --no-audit --no-fund --ignore-scripts \
            --loglevel=error)
        cp "$ROOT/package-lock.json" "$stamp"
    fi
    sh "$ROOT/scripts/vendor.sh"
}
if [ -z "$missing" ]; then
    npm_step
    exit 0
fi

echo "deps: installing:$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# Several installs may run at once (parallel builds, CI beside a session):
# wait for the dpkg lock instead of failing on it.
APT_LOCK="-o DPkg::Lock::Timeout=600"
# shellcheck disable=SC2086
$SUDO apt-get $APT_LOCK update -qq
# shellcheck disable=SC2086
$SUDO apt-get $APT_LOCK install -y -qq --no-install-recommends $missing
npm_step
