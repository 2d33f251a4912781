#!/usr/bin/env bash
# bench/api-run.sh: `docker run --rm busybox true` with the docker CLI
# through kiln's Engine API (`kiln system service`) against the same
# through podman's (`podman system service`), same run, same image (issue
# 20's goal: kiln <= 0.5x podman). Both on their default bridge network,
# then both with --network none (the API's own cost, without netavark).
# Root only.
#   KILN=target/release/kiln bench/api-run.sh
# Needs: docker (the CLI only), podman, busybox-static; hyperfine when
# installed, else a timed loop. podman gets explicit ulimits (see
# exec-latency.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${KILN:-$PWD/target/release/kiln}
W=${BENCH_DIR:-/tmp/kiln-bench-api}
RUNS=${RUNS:-30}
. bench/lib.sh
fresh_busybox_store "$W/store"
podman import "$W/busybox.tar" localhost/kiln-bench-busybox >/dev/null 2>&1
$K system service --time 0 "unix://$W/kiln.sock" &
KPID=$!
podman system service --time 0 "unix://$W/podman.sock" &
PPID_=$!
trap 'kill $KPID $PPID_ 2>/dev/null; wait $KPID $PPID_ 2>/dev/null; podman rmi localhost/kiln-bench-busybox >/dev/null' EXIT
for s in kiln podman; do
  for _ in $(seq 100); do [ -S "$W/$s.sock" ] && break; sleep 0.1; done
done
mkdir -p "$W/docker-config"
export DOCKER_CONFIG=$W/docker-config
ulimits="--ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
mean_ms() {
  local cmd=$1 i t0 t1
  for i in 1 2 3; do $cmd >/dev/null; done
  t0=$(date +%s%N)
  for i in $(seq "$RUNS"); do $cmd >/dev/null; done
  t1=$(date +%s%N)
  echo $(( (t1 - t0) / RUNS / 1000000 ))
}
for net in default none; do
  kiln_cmd="docker -H unix://$W/kiln.sock run --rm --network $net busybox true"
  podman_cmd="docker -H unix://$W/podman.sock run --rm --network $net $ulimits localhost/kiln-bench-busybox true"
  [ "$net" = default ] && {
    kiln_cmd="docker -H unix://$W/kiln.sock run --rm busybox true"
    podman_cmd="docker -H unix://$W/podman.sock run --rm $ulimits localhost/kiln-bench-busybox true"
  }
  if command -v hyperfine >/dev/null; then
    hyperfine -N --warmup 3 --runs "$RUNS" --export-markdown "$W/results-$net.md" \
      -n "kiln ($net)" "$kiln_cmd" -n "podman ($net)" "$podman_cmd"
    cat "$W/results-$net.md"
    continue
  fi
  k=$(mean_ms "$kiln_cmd")
  p=$(mean_ms "$podman_cmd")
  echo "docker run --rm (network: $net) busybox true, mean of $RUNS runs after 3 warmups:"
  echo "  kiln   (kiln system service):   ${k} ms"
  echo "  podman (podman system service): ${p} ms"
  awk -v k="$k" -v p="$p" 'BEGIN { printf "  kiln/podman: %.2fx\n", k / p }'
done
