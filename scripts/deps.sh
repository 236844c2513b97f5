#!/bin/sh
# deps.sh -- install the Debian packages elearn needs, only those missing.
# Idempotent: when everything is present it runs no apt command at all.
set -eu

PKGS="build-essential pkg-config libfcgi-dev libhiredis-dev libmongoc-dev libbson-dev
libjson-c-dev libjwt-dev libargon2-dev libcunit1-dev libsqlite3-dev libssl-dev
nginx-light spawn-fcgi redis-server python3 python3-mockupdb python3-mongomock
wrk curl clang libclang-rt-14-dev
apache2 prometheus lintian systemd dpkg-dev binutils"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

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
