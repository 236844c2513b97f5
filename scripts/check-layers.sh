#!/bin/sh
# check-layers.sh -- no file in lib/ includes a header of a higher layer
# (make lint). The layers, lowest first:
#
#   core   el, buf, text, blob, config: no knowledge of anything else
#   http   json, form: parsing request bodies
#   model  oid, course, course_input, user: the documents
#   obs    stats, histogram: counters and their reports
#   store  the store interface and its SQLite and MongoDB drivers
#   cache  l1, key, redis, bus, tiered, cluster_stats: the layers above the store
#   auth   jwt, password, auth: sessions, built on all of the above
#
# A file may include its own layer and any lower one. An exception would be
# listed in ALLOWED, one "FILE HEADER  why" line each, with what is to be
# done about it; there are none. Any other upward include fails.
#
# A layer's testing.h (hooks for tests only) may be included by tests/ and
# by that layer's own files, never by another layer or the program.
set -u
cd "$(dirname "$0")/.."
LAYERS="core http model obs store cache auth"
ALLOWED="
"
rank() {
    i=0
    for l in $LAYERS; do
        [ "$l" = "$1" ] && { echo $i; return; }
        i=$((i + 1))
    done
    echo -1
}
bad=0
for f in lib/*/*.c lib/*/*.h; do
    own=$(echo "$f" | cut -d/ -f2)
    r_own=$(rank "$own")
    [ "$r_own" -ge 0 ] || { echo "layers: $f is in no known layer ($own)"; bad=1; continue; }
    for inc in $(sed -n 's/^#include "\([a-z_]*\/[a-z_]*\.h\)".*/\1/p' "$f"); do
        r_inc=$(rank "${inc%%/*}")
        [ "$r_inc" -ge 0 ] || { echo "layers: $f includes $inc, in no known layer"; bad=1; continue; }
        if [ "$r_inc" -gt "$r_own" ]; then
            if printf '%s\n' "$ALLOWED" | grep -q "^$f $inc "; then
                continue
            fi
            echo "layers: $f ($own) includes $inc, a higher layer"
            bad=1
        fi
    done
done
for f in lib/*/*.c lib/*/*.h app/*.c app/*.h bench/*.c fuzz/*.c; do
    [ -f "$f" ] || continue
    own=$(echo "$f" | cut -d/ -f2)
    for inc in $(sed -n 's/^#include "\([a-z_]*\)\/testing\.h".*/\1/p' "$f"); do
        if [ "${f%%/*}" != lib ] || [ "$inc" != "$own" ]; then
            echo "layers: $f includes $inc/testing.h, which is for tests only"
            bad=1
        fi
    done
done
[ "$bad" -eq 0 ] && echo "layers: every include goes down or sideways"
exit "$bad"
