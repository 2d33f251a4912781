#!/usr/bin/env bash
# bench/big-copy.sh: the ~500 MB COPY of ../shared/bench/w2-build-big.sh (a
# sorted prefix of /usr/lib/x86_64-linux-gnu's single-link files), built
#   FROM localhost/busybox:latest / COPY data/ /data/
# with --no-cache after rmi (cold), against the sha256 of the layer tar it
# makes with openssl (w6's sha256 case; the goal: cold <= 1.3x that). Not a test.
#   KILN=target/release/kiln bench/big-copy.sh
# Read User+System beside the wall-clock medians on a shared machine.
# Needs: hyperfine jq openssl busybox-static.
set -euo pipefail
cd "$(dirname "$0")/.."

KILN=${KILN:-$PWD/target/release/kiln}
W=${BENCH_DIR:-/tmp/kiln-bench-bigcopy}
SRC=${BIG_SRC:-/usr/lib/x86_64-linux-gnu}
TARGET_BYTES=${TARGET_BYTES:-500000000}
RUNS=${RUNS:-5}
IMG=localhost/bench/bigcopy:latest

if [ ! -f "$W/.complete" ]; then
  rm -rf "$W"
  mkdir -p "$W/ctx/data"
  find "$SRC" -type f -links 1 -printf '%s\t%p\n' | LC_ALL=C sort -t$'\t' -k2 |
    awk -F'\t' -v t="$TARGET_BYTES" 's < t {print $2; s += $1}' | sed 's|^/||' |
    tar -C / --no-recursion -cf - -T - | tar -C "$W/ctx/data" -xf -
  printf 'FROM localhost/busybox:latest\nCOPY data/ /data/\n' >"$W/ctx/Dockerfile"
  fixtures/make-busybox-rootfs.sh "$W/rootfs" "$W/busybox.tar" >/dev/null
  $KILN --root "$W/store" import "$W/busybox.tar" localhost/busybox:latest >/dev/null
  touch "$W/.complete"
fi
K="$KILN --root $W/store"
$K build -q -t $IMG -f "$W/ctx/Dockerfile" "$W/ctx" >/dev/null
layer=$($K inspect $IMG | jq -r '.[0].RootFS.Layers[-1]' | sed 's/^sha256://')
blob=$W/store/blobs/sha256/$layer
echo "layer tar: $(stat -c %s "$blob") bytes"
hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$W/sha.json" -n sha256 "openssl dgst -sha256 $blob"
hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$W/cold.json" \
  --prepare "$K rmi -f $IMG" -n cold "$K build -q --no-cache -t $IMG -f $W/ctx/Dockerfile $W/ctx"
for c in sha cold; do
  jq -r '.results[] | "\(.command): median \(.median) s, user \(.user) s, system \(.system) s"' "$W/$c.json"
done
jq -n --slurpfile a "$W/cold.json" --slurpfile b "$W/sha.json" \
  '"cold / sha256: \($a[0].results[0].median / $b[0].results[0].median)"' -r
