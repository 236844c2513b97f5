#!/bin/sh
# vendor.sh -- copy the browser libraries the app serves from npm's
# node_modules/ (installed by scripts/deps.sh from package-lock.json) into
# www/vendor/, so nginx and Apache serve them as plain files: no build step,
# nothing loaded from the internet. Idempotent.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SRC=$ROOT/node_modules/swagger-ui-dist
DST=$ROOT/www/vendor/swagger-ui
[ -f "$SRC/swagger-ui-bundle.js" ] || { echo "vendor: $SRC is missing: run 'make deps'" >&2; exit 1; }
mkdir -p "$DST"
for f in swagger-ui-bundle.js swagger-ui.css LICENSE; do
    cmp -s "$SRC/$f" "$DST/$f" 2>/dev/null || cp "$SRC/$f" "$DST/$f"
done
