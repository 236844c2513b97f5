#!/bin/sh
# mkdeb.sh BUILD_DIR OUT_DIR -- build elearn_<VERSION>_<arch>.deb with
# dpkg-deb from the built binaries and the shipped files (what `make deb`
# runs). No debhelper: the tree below is the whole package.
#
#   /usr/bin/elearn-fcgi, /usr/bin/elearnctl      stripped
#   /usr/sbin/elearn-rolling-restart              zero-downtime restart
#   /usr/share/elearn/www/                        the browser frontend
#   /usr/share/elearn/errors/                     Apache's JSON error bodies
#   /lib/systemd/system/elearn@.socket, @.service socket activation
#   /etc/elearn/elearn.env                        conffile (DB_URI=sqlite:elearn.db)
#   /etc/elearn/nginx-site.conf                   conffile: conf/nginx.conf's site part
#   /etc/elearn/apache-site.conf                  conffile: conf/apache.conf filled in
#   /etc/elearn/redis.conf                        conffile
#   /etc/logrotate.d/elearn                       conffile
#   /usr/share/doc/elearn/README.Debian, copyright, changelog.gz,
#   examples/prometheus.yml                       per-process scrape fragment
#
# postinst creates the system user elearn and a random JWT secret in
# /etc/elearn/secret.env (not a conffile: it is per machine).
set -eu
B=$(cd "$1" && pwd)
mkdir -p "$2"
OUT=$(cd "$2" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VERSION=$(cat "$ROOT/VERSION")
ARCH=$(dpkg --print-architecture)
PKG=$OUT/pkg
DEB=$OUT/elearn_${VERSION}_${ARCH}.deb

for f in "$B/elearn-fcgi" "$B/elearnctl"; do
    [ -x "$f" ] || { echo "mkdeb: $f is missing (run make first)" >&2; exit 1; }
done
rm -rf "$PKG"
mkdir -p "$PKG/DEBIAN" "$PKG/usr/bin" "$PKG/usr/sbin" "$PKG/usr/share/elearn" \
    "$PKG/lib/systemd/system" "$PKG/etc/elearn" "$PKG/etc/logrotate.d" \
    "$PKG/usr/share/doc/elearn"

# ---- files -----------------------------------------------------------------
install -m 0755 "$B/elearn-fcgi" "$B/elearnctl" "$PKG/usr/bin/"
strip --strip-unneeded --remove-section=.comment --remove-section=.note \
    "$PKG/usr/bin/elearn-fcgi" "$PKG/usr/bin/elearnctl"
install -m 0755 "$ROOT/scripts/elearn-rolling-restart" "$PKG/usr/sbin/"
cp -R "$ROOT/www" "$PKG/usr/share/elearn/www"
cp -R "$ROOT/conf/errors" "$PKG/usr/share/elearn/errors"
install -m 0644 "$ROOT/conf/elearn@.socket" "$ROOT/conf/elearn@.service" "$PKG/lib/systemd/system/"
# The secret comes from secret.env, written by postinst.
sed -e 's|^DB_URI=.*|DB_URI=sqlite:elearn.db|' \
    -e 's|^#   sqlite:PATH .*|#   sqlite:PATH          an embedded SQLite file (relative: under /var/lib/elearn)|' \
    "$ROOT/conf/elearn.env.example" >"$PKG/etc/elearn/elearn.env"
# nginx: the site part of conf/nginx.conf (between the markers, without the
# benchmark's location), for /etc/nginx/sites-available.
awk '/# ---- site begin/ {on = 1; next} /# ---- site end/ {on = 0}
     /# ---- bench only begin/ {skip = 1} /# ---- bench only end/ {skip = 0; next}
     on && !skip' "$ROOT/conf/nginx.conf" |
    sed -e 's|127\.0\.0\.1:@PORT@|80|' \
        -e 's|@UPSTREAM@|server unix:/run/elearn/1.sock;\n        server unix:/run/elearn/2.sock;|' \
        -e 's|@SOCKDIR@|/run/elearn|g' -e 's|@WWW@|/usr/share/elearn/www|g' |
    { echo "# elearn site for Debian's nginx: ln -s /etc/elearn/nginx-site.conf /etc/nginx/sites-enabled/elearn"
      echo "# Generated from conf/nginx.conf (the tested template); one server line per elearn@N.socket."
      cat; } >"$PKG/etc/elearn/nginx-site.conf"
sed -e 's|@PORT@|80|g' -e 's|@WWW@|/usr/share/elearn/www|g' \
    -e 's|@SOCKET@|/run/elearn/1.sock|g' -e 's|@ERRORS@|/usr/share/elearn/errors|g' \
    "$ROOT/conf/apache.conf" >"$PKG/etc/elearn/apache-site.conf"
install -m 0644 "$ROOT/conf/redis.conf" "$PKG/etc/elearn/redis.conf"
install -m 0644 "$ROOT/conf/logrotate" "$PKG/etc/logrotate.d/elearn"
if grep -q '@[A-Z]*@' "$PKG/etc/elearn/nginx-site.conf" "$PKG/etc/elearn/apache-site.conf"; then
    echo "mkdeb: a placeholder was left unfilled" >&2
    exit 1
fi

install -m 0644 "$ROOT/conf/README.Debian" "$PKG/usr/share/doc/elearn/README.Debian"
install -D -m 0644 "$ROOT/conf/prometheus.yml" "$PKG/usr/share/doc/elearn/examples/prometheus.yml"
cat >"$PKG/usr/share/doc/elearn/copyright" <<EOT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: elearn
Comment: Built from the elearn source tree; no licence has been chosen for
 the project yet: ask its maintainers before redistributing.

Files: *
Copyright: the elearn authors
License: unspecified
 No licence has been granted yet.
EOT
DATE=$(date -R -u -d "@$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)")
printf 'elearn (%s) unstable; urgency=medium\n\n  * Built from commit %s.\n\n -- elearn maintainers <elearn@example.org>  %s\n' \
    "$VERSION" "$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)" "$DATE" |
    gzip -9n >"$PKG/usr/share/doc/elearn/changelog.gz"

find "$PKG" -type d -exec chmod 0755 {} +
find "$PKG/usr/share" "$PKG/etc" "$PKG/lib" -type f -exec chmod 0644 {} +

# ---- control ---------------------------------------------------------------
# Shared-library dependencies as dpkg-shlibdeps computes them (it wants a
# debian/control next to it: give it a throwaway one).
SHL=$OUT/shlibs
rm -rf "$SHL"
mkdir -p "$SHL/debian"
printf 'Source: elearn\n\nPackage: elearn\nArchitecture: any\n' >"$SHL/debian/control"
DEPENDS=$(cd "$SHL" && dpkg-shlibdeps -O "$PKG/usr/bin/elearn-fcgi" "$PKG/usr/bin/elearnctl" 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p')
rm -rf "$SHL"
[ -n "$DEPENDS" ] || { echo "mkdeb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
SIZE=$(du -sk --exclude=DEBIAN "$PKG" | cut -f1)

cat >"$PKG/DEBIAN/control" <<EOT
Package: elearn
Version: $VERSION
Architecture: $ARCH
Maintainer: elearn maintainers <elearn@example.org>
Installed-Size: $SIZE
Depends: $DEPENDS, adduser
Recommends: nginx | apache2, redis-server
Section: web
Priority: optional
Homepage: https://example.org/elearn
Description: e-learning REST API served as a FastCGI responder pool
 elearn serves courses, enrolments and accounts as a JSON REST API from a
 long-lived FastCGI responder behind nginx or Apache, with a multi-level
 cache (in-process, Redis) in front of SQLite or MongoDB.
 .
 The package runs each responder process as the system user elearn under
 systemd socket activation (elearn@N.socket), so restarts drop no request.
EOT
cat >"$PKG/DEBIAN/conffiles" <<EOT
/etc/elearn/elearn.env
/etc/elearn/nginx-site.conf
/etc/elearn/apache-site.conf
/etc/elearn/redis.conf
/etc/logrotate.d/elearn
EOT
cat >"$PKG/DEBIAN/postinst" <<'EOT'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if ! getent passwd elearn >/dev/null; then
        adduser --system --group --home /var/lib/elearn --no-create-home \
            --gecos "elearn responder" elearn >/dev/null
    fi
    # The configuration may hold passwords (REDIS_URL, DB_URI): readable
    # by root and the responder only.
    chown root:elearn /etc/elearn/elearn.env
    chmod 0640 /etc/elearn/elearn.env
    if [ ! -e /etc/elearn/secret.env ]; then
        umask 077
        printf 'JWT_SECRET=%s\n' "$(tr -dc 'A-Za-z0-9' </dev/urandom | head -c 48)" \
            >/etc/elearn/secret.env
        chown root:elearn /etc/elearn/secret.env
        chmod 0640 /etc/elearn/secret.env
    fi
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null 2>&1 || true
    fi
fi
exit 0
EOT
cat >"$PKG/DEBIAN/prerm" <<'EOT'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop 'elearn@*.socket' 'elearn@*.service' >/dev/null 2>&1 || true
fi
exit 0
EOT
cat >"$PKG/DEBIAN/postrm" <<'EOT'
#!/bin/sh
set -e
if [ "$1" = purge ]; then
    rm -f /etc/elearn/secret.env
    rmdir /etc/elearn 2>/dev/null || true
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
EOT
chmod 0755 "$PKG/DEBIAN/postinst" "$PKG/DEBIAN/prerm" "$PKG/DEBIAN/postrm"
(cd "$PKG" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort |
    xargs md5sum) >"$PKG/DEBIAN/md5sums"
chmod 0644 "$PKG/DEBIAN/md5sums" "$PKG/DEBIAN/control" "$PKG/DEBIAN/conffiles"

dpkg-deb --root-owner-group -Zxz --build "$PKG" "$DEB" >/dev/null
rm -rf "$PKG"
echo "$DEB"
