#!/usr/bin/env bash
# bench/big-context.sh: the 100,000-file context of ../shared/bench/w8-big-context.sh
# (d00..d09/s00..s99/f00..f99.txt, ~50 bytes each, mtime @1700000000) built by
#   FROM localhost/busybox:latest / COPY . /ctx / RUN find /ctx | wc -l
# in four cases, each with hyperfine: cold (--no-cache after rmi), warm (no
# change), touch (mtime of one file), edit (content of one file); then
# first (into an empty store) with /usr/bin/time for its peak RSS. Not a test.
#   KILN=target/release/kiln bench/big-context.sh
# The machine is often shared: read the User+System CPU figures beside the
# wall-clock medians. Needs: hyperfine busybox-static time. Root (RUN).
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${KILN:-$PWD/target/release/kiln}
W=${BENCH_DIR:-/tmp/kiln-bench-bigctx}
FILES=${CTX_FILES:-100000}
RUNS=${RUNS:-5}
CTX=$W/ctx
K="$KILN --root $W/store"
IMG=localhost/bench/bigctx:latest

path_of() { printf 'd%02d/s%02d/f%02d.txt' $(($1 / 10000)) $(($1 / 100 % 100)) $(($1 % 100)); }
content_of() { printf 'file %06d of the w8 context: %s\n' "$1" "$(path_of "$1")"; }
EDIT_FILE=$CTX/$(path_of $((FILES / 2 + 50)))
TOUCH_FILE=$CTX/$(path_of $((FILES * 7 / 10 + 70)))

if [ ! -f "$W/.complete-$FILES" ]; then
  rm -rf "$W"
  mkdir -p "$CTX"
  awk -v n="$FILES" -v ctx="$CTX" \
    'BEGIN {for (i = 0; i < n; i += 100) printf "%s/d%02d/s%02d\n", ctx, int(i / 10000), int(i / 100) % 100}' | xargs mkdir -p
  awk -v n="$FILES" -v ctx="$CTX" 'BEGIN {
      for (i = 0; i < n; i++) {
        p = sprintf("d%02d/s%02d/f%02d.txt", int(i / 10000), int(i / 100) % 100, i % 100)
        f = ctx "/" p
        printf "file %06d of the w8 context: %s\n", i, p > f
        close(f)
      }}'
  find "$CTX" -exec touch -h -d @1700000000 {} +
  printf 'FROM localhost/busybox:latest\nCOPY . /ctx\nRUN find /ctx | wc -l\n' >"$W/Dockerfile"
  fixtures/make-busybox-rootfs.sh "$W/rootfs" "$W/busybox.tar" >/dev/null
  $K import "$W/busybox.tar" localhost/busybox:latest >/dev/null
  touch "$W/.complete-$FILES"
fi
# Put back the pristine content and mtime of the two files the cases change.
for n in $((FILES / 2 + 50)) $((FILES * 7 / 10 + 70)); do
  f=$CTX/$(path_of "$n")
  content_of "$n" >"$f"
  touch -h -d @1700000000 "$f"
done

B="$K build -q -t $IMG -f $W/Dockerfile $CTX"
$B >/dev/null # the stat index and the cached steps, as the shared harness has them
hyperfine -N --runs "$RUNS" --export-json "$W/cold.json" \
  --prepare "$K rmi -f $IMG" -n cold "$K build -q --no-cache -t $IMG -f $W/Dockerfile $CTX"
hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$W/warm.json" -n warm "$B"
hyperfine -N --runs "$RUNS" --export-json "$W/touch.json" \
  --prepare "touch $TOUCH_FILE" -n touch "$B"
hyperfine --runs "$RUNS" --export-json "$W/edit.json" \
  --prepare "date +%s%N > $EDIT_FILE" -n edit "$B"
for c in cold warm touch edit; do
  jq -r '.results[] | "\(.command): median \(.median) s, user \(.user) s, system \(.system) s"' "$W/$c.json"
done
# first: a build into a store that has never seen the context (no stat
# index, no earlier layer to link from), with its peak RSS (bound: 100 MB).
F=$W/first-store
for _ in 1 2; do
  rm -rf "$F"
  $KILN --root "$F" import "$W/busybox.tar" localhost/busybox:latest >/dev/null
  /usr/bin/time -f "first: %e s wall, user %U s, system %S s, peak RSS %M KB" \
    $KILN --root "$F" build -q --no-cache -t $IMG -f "$W/Dockerfile" "$CTX" >/dev/null
done
rm -rf "$F"
# Every edit leaves a layer the cache keeps: forget them so the store does
# not grow run after run.
$K builder prune >/dev/null
