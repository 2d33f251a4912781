#!/usr/bin/env bash
# bench/small-build.sh: the two-stage build of ../shared/bench/w1-build-small.sh
# (2,000 files of 10,000 bytes, 200 excluded by .dockerignore) in four cases,
# each with hyperfine: cold (--no-cache after rmi), warm (no change), touch
# (mtime of one file), edit (content of one file). Not a test.
#   KILN=target/release/kiln bench/small-build.sh
# Read User+System beside the wall-clock medians on a shared machine.
# Needs: hyperfine jq openssl busybox-static. Root (RUN).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
KILN=${KILN:-$PWD/target/release/kiln}
W=${BENCH_DIR:-/tmp/kiln-bench-small}
RUNS=${RUNS:-10}
CTX=$W/ctx
K="$KILN --root $W/store"
IMG=localhost/bench/small:latest

if [ ! -d "$W/store" ]; then
  mkdir -p "$W"
  fixtures/make-busybox-rootfs.sh "$W/rootfs" "$W/busybox.tar" >/dev/null
  $K import "$W/busybox.tar" localhost/busybox:latest >/dev/null
fi
small_context "$CTX" localhost/busybox:latest
EDIT_FILE=$CTX/src/d05/f050.txt
TOUCH_FILE=$CTX/src/d07/f070.txt
B="$K build -q -t $IMG -f $CTX/Dockerfile $CTX"
$B >/dev/null
hyperfine -N --runs "$RUNS" --export-json "$W/cold.json" \
  --prepare "$K rmi -f $IMG" -n cold "$K build -q --no-cache -t $IMG -f $CTX/Dockerfile $CTX"
hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$W/warm.json" -n warm "$B"
hyperfine -N --runs "$RUNS" --export-json "$W/touch.json" --prepare "touch $TOUCH_FILE" -n touch "$B"
hyperfine --runs "$RUNS" --export-json "$W/edit.json" --prepare "date +%s%N > $EDIT_FILE" -n edit "$B"
for c in cold warm touch edit; do
  jq -r '.results[] | "\(.command): median \(.median) s, user \(.user) s, system \(.system) s"' "$W/$c.json"
done
$K builder prune >/dev/null
