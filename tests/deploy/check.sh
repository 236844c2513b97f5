#!/bin/sh
# deploy/check.sh BUILD_DIR -- the deployment artefacts, checked as an
# operator's machine would see them (run by `make test`, about 20 s):
#
#   1. `make deb` builds elearn_<VERSION>_<arch>.deb; lintian reports no
#      error; dpkg-deb -c / -f show the binaries, www/, the systemd units,
#      the conffiles in /etc/elearn and the docs;
#   2. it unpacks into a throwaway dpkg root (dpkg --root --unpack: the
#      package database there, not this machine's, records it and its
#      conffiles; no maintainer script runs);
#   3. in that root: the packaged units pass `systemd-analyze verify` with
#      no message at all, and `systemd-analyze security` rates
#      elearn@1.service 2.0 or better ("OK");
#   4. the packaged env file passes the packaged binary's --check-config;
#      the packaged nginx and Apache site files pass `nginx -t` and
#      `apache2 -t` (wrapped in a minimal main configuration), the
#      Prometheus scrape example `promtool check config`;
#   5. postinst, run in a scratch root as dpkg would run it after unpacking,
#      is valid shell (sh -n) and references the user it creates.
# Exit status non-zero with a line saying what failed.
set -eu
B=$(cd "$1" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/elearn-deploy.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "deploy-check: FAIL: $*" >&2; exit 1; }
ok() { echo "deploy-check: ok   $*"; }

# ---- 1. the package ------------------------------------------------------
DEB=$(sh "$ROOT/scripts/mkdeb.sh" "$B" "$T/out")
VERSION=$(cat "$ROOT/VERSION")
[ "$(basename "$DEB")" = "elearn_${VERSION}_$(dpkg --print-architecture).deb" ] || fail "name $DEB"
lintian --tag-display-limit 0 "$DEB" >"$T/lintian.txt" 2>&1 || true
if grep -q '^E:' "$T/lintian.txt"; then cat "$T/lintian.txt" >&2; fail "lintian errors"; fi
ok "$(basename "$DEB") built, lintian: $(grep -c '^E:' "$T/lintian.txt") errors, $(grep -c '^W:' "$T/lintian.txt") warnings"

dpkg-deb -c "$DEB" | awk '{print $6}' | sed 's|^\./|/|' >"$T/contents"
for f in /usr/bin/elearn-fcgi /usr/bin/elearnctl /usr/sbin/elearn-rolling-restart \
    /usr/share/elearn/www/index.html /usr/share/elearn/errors/502.json \
    /lib/systemd/system/elearn@.socket /lib/systemd/system/elearn@.service \
    /etc/elearn/elearn.env /etc/elearn/nginx-site.conf /etc/elearn/apache-site.conf \
    /etc/elearn/redis.conf /etc/logrotate.d/elearn \
    /usr/share/doc/elearn/README.Debian /usr/share/doc/elearn/copyright \
    /usr/share/doc/elearn/changelog.gz /usr/share/doc/elearn/examples/prometheus.yml; do
    grep -qx "$f" "$T/contents" || fail "$f is not in the package"
done
if dpkg-deb -c "$DEB" | awk '$2 != "root/root"' | grep -q .; then fail "files not owned by root"; fi
[ "$(dpkg-deb -f "$DEB" Package Version | tr '\n' ' ')" = "Package: elearn Version: $VERSION " ] ||
    fail "control Package/Version"
for lib in libc6 libhiredis libsqlite3; do
    dpkg-deb -f "$DEB" Depends | grep -q "$lib" || fail "Depends lacks $lib"
done
dpkg-deb -I "$DEB" conffiles >"$T/conffiles"
for f in /etc/elearn/elearn.env /etc/elearn/nginx-site.conf /etc/elearn/apache-site.conf \
    /etc/elearn/redis.conf /etc/logrotate.d/elearn; do
    grep -qx "$f" "$T/conffiles" || fail "$f is not a conffile"
done
ok "contents: binaries, www/, units, conffiles in /etc/elearn, docs; all root:root"

# ---- 2. unpack into a throwaway dpkg root ----------------------------------
R=$T/root
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates"
: >"$R/var/lib/dpkg/status"
dpkg --root="$R" --force-depends --force-not-root --unpack "$DEB" >"$T/dpkg.log" 2>&1 ||
    { cat "$T/dpkg.log" >&2; fail "dpkg --root --unpack"; }
dpkg --root="$R" -s elearn | grep -q '^Status: install ok unpacked' || fail "dpkg status in the root"
# Conffiles wait as *.dpkg-new until --configure (which would run postinst
# on this machine's behalf: not here).
[ -x "$R/usr/bin/elearn-fcgi" ] && [ -f "$R/etc/elearn/elearn.env.dpkg-new" ] ||
    fail "unpacked files missing"
E=$T/etc
mkdir -p "$E"
for f in elearn.env nginx-site.conf apache-site.conf; do cp "$R/etc/elearn/$f.dpkg-new" "$E/$f"; done
ok "unpacked into a throwaway dpkg root ($(dpkg --root="$R" -L elearn | wc -l) paths)"

# ---- 3. systemd ------------------------------------------------------------
# verify resolves dependencies against the root's units: give it the host's
# targets and slices next to ours.
cp -a /lib/systemd/system/*.target /lib/systemd/system/*.slice "$R/lib/systemd/system/" 2>/dev/null || true
systemd-analyze verify --man=no --root="$R" elearn@1.socket elearn@1.service >"$T/verify.txt" 2>&1 ||
    { cat "$T/verify.txt" >&2; fail "systemd-analyze verify"; }
[ ! -s "$T/verify.txt" ] || { cat "$T/verify.txt" >&2; fail "systemd-analyze verify printed warnings"; }
systemd-analyze security --offline=yes --root="$R" elearn@1.service >"$T/security.txt" 2>&1 || true
score=$(sed -n 's/.*Overall exposure level for elearn@1.service: \([0-9.]*\) \([A-Z]*\).*/\1 \2/p' "$T/security.txt")
[ -n "$score" ] || { cat "$T/security.txt" >&2; fail "no systemd-analyze security score"; }
awk -v s="${score% *}" 'BEGIN { exit !(s <= 2.0) }' || fail "systemd-analyze security: $score (want <= 2.0)"
ok "systemd-analyze verify: clean; security: $score"

# ---- 4. the packaged configuration -----------------------------------------
JWT_SECRET=deploy-check-0123456789abcdef0123456789 DATA_DIR=$T/data \
    "$R/usr/bin/elearn-fcgi" --env-file "$E/elearn.env" --check-config >/dev/null ||
    fail "the packaged elearn.env fails --check-config"
mkdir -p "$T/nginx/logs"
cat >"$T/nginx/nginx.conf" <<EOT
pid $T/nginx/nginx.pid;
error_log $T/nginx/logs/error.log;
events {}
http {
    include /etc/nginx/mime.types;
    client_body_temp_path $T/nginx/cb; fastcgi_temp_path $T/nginx/fc;
    proxy_temp_path $T/nginx/px; scgi_temp_path $T/nginx/sc; uwsgi_temp_path $T/nginx/uw;
    include $E/nginx-site.conf;
}
EOT
nginx -t -q -p "$T/nginx" -c "$T/nginx/nginx.conf" -e "$T/nginx/logs/error.log" >"$T/nginx.txt" 2>&1 ||
    { cat "$T/nginx.txt" >&2; fail "nginx -t on the packaged site file"; }
M=/usr/lib/apache2/modules
cat >"$T/apache.conf" <<EOT
ServerRoot /etc/apache2
ServerName localhost
Define APACHE_LOG_DIR $T
PidFile $T/apache.pid
ErrorLog $T/apache-error.log
LoadModule mpm_event_module $M/mod_mpm_event.so
LoadModule authz_core_module $M/mod_authz_core.so
LoadModule authz_host_module $M/mod_authz_host.so
LoadModule mime_module $M/mod_mime.so
LoadModule dir_module $M/mod_dir.so
LoadModule alias_module $M/mod_alias.so
LoadModule headers_module $M/mod_headers.so
LoadModule proxy_module $M/mod_proxy.so
LoadModule proxy_fcgi_module $M/mod_proxy_fcgi.so
Include $E/apache-site.conf
EOT
apache2 -t -f "$T/apache.conf" >"$T/apache.txt" 2>&1 ||
    { cat "$T/apache.txt" >&2; fail "apache2 -t on the packaged site file"; }
promtool check config "$R/usr/share/doc/elearn/examples/prometheus.yml" >"$T/promtool.txt" 2>&1 ||
    { cat "$T/promtool.txt" >&2; fail "promtool check config on the scrape example"; }
ok "packaged elearn.env passes --check-config; nginx -t, apache2 -t and promtool accept the site files and scrape example"

# ---- 5. maintainer scripts -------------------------------------------------
dpkg-deb -e "$DEB" "$T/control"
for s in postinst prerm postrm; do
    sh -n "$T/control/$s" || fail "$s is not valid shell"
done
grep -q 'adduser --system --group' "$T/control/postinst" || fail "postinst does not create the user"
ok "maintainer scripts parse; postinst creates the system user"
