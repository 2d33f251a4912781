#!/usr/bin/env bash
# bench/exec-latency.sh: `kiln exec C true` against `podman exec C true`
# into a running busybox container (issue 16's goal: kiln ≤ 0.2× podman).
# hyperfine -N, 3 warmups, 50 runs. Root only.
#   KILN=target/release/kiln bench/exec-latency.sh
# Needs: hyperfine podman busybox-static. podman gets explicit ulimits: its
# default RLIMIT_NOFILE (1048576) exceeds the hard limit of some hosts
# (this CI's is 20000), where `podman run` fails otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${KILN:-$PWD/target/release/kiln}
W=${BENCH_DIR:-/tmp/kiln-bench-exec}
RUNS=${RUNS:-50}
. bench/lib.sh
fresh_busybox_store "$W/store"
$K run -d --name kiln-bench-exec busybox sleep 100000 >/dev/null
podman import "$W/busybox.tar" localhost/kiln-bench-busybox >/dev/null
podman run -d --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
  --name kiln-bench-exec localhost/kiln-bench-busybox sleep 100000 >/dev/null
trap '$K rm -f kiln-bench-exec >/dev/null; podman rm -f kiln-bench-exec >/dev/null; podman rmi localhost/kiln-bench-busybox >/dev/null' EXIT
hyperfine -N --warmup 3 --runs "$RUNS" --export-markdown "$W/results.md" \
  -n kiln "$K exec kiln-bench-exec true" \
  -n podman "podman exec kiln-bench-exec true"
cat "$W/results.md"
