#!/usr/bin/env bash
# bench/first-run.sh: the first `kiln run` of an image just pulled or
# imported, whose layer is unpacked then: a busybox rootfs plus FILES small
# files (default 50,000 of 60 to 160 bytes, in 500 directories). Not a test.
#   KILN=target/release/kiln bench/first-run.sh
# Cases, hyperfine with the store made again before each run (untimed):
#   pulled   -- `kiln pull` from a docker-registry on a free loopback port
#               (a gzip layer: inflated while it is unpacked);
#   imported -- `kiln import` of the rootfs tar (an uncompressed layer).
# Both time `run --rm --network none IMG true` (through a shell: the
# PREPs are pipelines). To compare two builds of
# kiln, run bench/ab.sh with the same PREP (see the commands printed).
# Needs: hyperfine docker-registry busybox-static python3 curl. Root (run).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
KILN=${KILN:-$PWD/target/release/kiln}
W=${BENCH_DIR:-/tmp/kiln-bench-firstrun}
RUNS=${RUNS:-7}
FILES=${FILES:-50000}
rm -rf "$W"
mkdir -p "$W"
fixtures/make-busybox-rootfs.sh "$W/rootfs" "$W/busybox.tar" >/dev/null
python3 - "$W/rootfs" "$FILES" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "data", "d%03d" % (i // 100))
    if i % 100 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%02d.txt" % (i % 100)), "w") as f:
        f.write(("file %d " % i) * (6 + i % 12) + "\n")
PY
tar -C "$W/rootfs" --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner \
  -cf "$W/rootfs.tar" .

start_registry "$W"

IMG=127.0.0.1:$PORT/bench/many:latest
$KILN --root "$W/src" import "$W/rootfs.tar" "$IMG" >/dev/null
$KILN --root "$W/src" push -q --tls-verify=false "$IMG" >/dev/null
S=$W/store
pulled="rm -rf $S && $KILN --root $S pull -q --tls-verify=false $IMG >/dev/null && sync"
imported="rm -rf $S && $KILN --root $S import $W/rootfs.tar $IMG >/dev/null && sync"
run="$KILN --root $S run --rm --network none $IMG true"
echo "PREP pulled:   $pulled"
echo "PREP imported: $imported"
echo "command:       $run"
hyperfine -r "$RUNS" --export-json "$W/pulled.json" -p "$pulled" -n pulled "$run"
hyperfine -r "$RUNS" --export-json "$W/imported.json" -p "$imported" -n imported "$run"
