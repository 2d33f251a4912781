#!/usr/bin/env bash
# bench/push-pull.sh: `kiln push` / `kiln pull` of the ~500 MB image (made
# with bench/import.sh's rootfs tarball) against a docker-registry on a free
# loopback port, with hyperfine. Not a test.
#   KILN=target/release/kiln bench/push-pull.sh
# Cases: push-cold (registry emptied before each run; the compressed layer
# is already remembered after the warmup), push-warm (registry has every
# blob), pull-cold (after `kiln rmi`).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
KILN=${KILN:-$PWD/target/release/kiln}
W=${BENCH_DIR:-/tmp/kiln-bench-pushpull}
RUNS=${RUNS:-5}
TAR=${BIG_TAR:-/tmp/kiln-bench-import/rootfs.tar}
[ -f "$TAR" ] || bench/import.sh >/dev/null
rm -rf "$W"; mkdir -p "$W/storage"
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
registry_config "$W" "$PORT"
cat > "$W/start.sh" <<SH
#!/usr/bin/env bash
# (re)starts the registry with empty storage
if [ -f $W/pid ]; then kill \$(cat $W/pid) 2>/dev/null || true
  while kill -0 \$(cat $W/pid) 2>/dev/null; do sleep 0.02; done; fi
rm -rf $W/storage; mkdir -p $W/storage
setsid /usr/bin/docker-registry serve $W/config.yml >$W/registry.log 2>&1 < /dev/null &
echo \$! > $W/pid
for _ in \$(seq 200); do curl -sf http://127.0.0.1:$PORT/v2/ >/dev/null && exit 0; sleep 0.05; done
exit 1
SH
chmod +x "$W/start.sh"
stop() { kill "$(cat "$W/pid")" 2>/dev/null || true; }
trap stop EXIT
"$W/start.sh"
K="$KILN --root $W/store"
IMG=127.0.0.1:$PORT/bench/big:latest
$K import "$TAR" "$IMG" >/dev/null
hyperfine -w 1 -r "$RUNS" --export-json "$W/push-cold.json" -p "$W/start.sh" -n push-cold "$K push -q --tls-verify=false $IMG"
hyperfine -w 1 -r "$RUNS" --export-json "$W/push-warm.json" -n push-warm "$K push -q --tls-verify=false $IMG"
hyperfine -w 1 -r "$RUNS" --export-json "$W/pull-cold.json" -p "$K rmi -f $IMG" -n pull-cold "$K pull -q --tls-verify=false $IMG"
