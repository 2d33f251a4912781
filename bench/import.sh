#!/usr/bin/env bash
# bench/import.sh: `kiln import` against `podman import` of the same ~500 MB
# rootfs tarball, measured in one run with hyperfine. Not a test.
#   KILN=target/release/kiln bench/import.sh
# Needs: hyperfine podman busybox-static (apt-get install -y ...).
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${KILN:-$PWD/target/release/kiln}
W=${BENCH_DIR:-/tmp/kiln-bench-import}
SRC=${BIG_SRC:-/usr/lib/x86_64-linux-gnu}
TARGET_BYTES=${TARGET_BYTES:-500000000}
RUNS=${RUNS:-5}
mkdir -p "$W"

if [ ! -f "$W/rootfs.tar" ]; then
  fixtures/make-busybox-rootfs.sh "$W/rootfs"
  mkdir -p "$W/rootfs/usr/lib"
  # Sorted single-link regular files until TARGET_BYTES, as the peer harness does.
  total=0
  while IFS= read -r -d '' f; do
    size=$(stat -c %s "$f")
    rel=${f#"$SRC"/}
    mkdir -p "$W/rootfs/usr/lib/$(dirname "$rel")"
    cp -p "$f" "$W/rootfs/usr/lib/$rel"
    total=$((total + size))
    [ "$total" -ge "$TARGET_BYTES" ] && break
  done < <(find "$SRC" -type f -links 1 -print0 | sort -z)
  tar -C "$W/rootfs" -cf "$W/rootfs.tar" .
  rm -rf "$W/rootfs"
fi
bytes=$(stat -c %s "$W/rootfs.tar")
echo "rootfs tar: $bytes bytes"

P="podman --root $W/podman/root --runroot $W/podman/runroot --storage-driver overlay --tmpdir $W/podman/tmp --cgroup-manager cgroupfs --events-backend file"
mkdir -p "$W/podman/tmp"
hyperfine --warmup 1 --runs "$RUNS" --export-json "$W/import.json" \
  --prepare "$KILN --root $W/kiln rmi -f bench/import >/dev/null 2>&1; sync; true" \
  -n kiln "$KILN --root $W/kiln import $W/rootfs.tar bench/import" \
  --prepare "$P rmi -f bench/import >/dev/null 2>&1; sync; true" \
  -n podman "$P import -q $W/rootfs.tar bench/import"
jq -r '.results[] | "\(.command): median \(.median) s"' "$W/import.json"
jq -r '(.results[1].median / .results[0].median) as $r | "kiln is \($r * 100 | round / 100)x faster than podman"' "$W/import.json"
