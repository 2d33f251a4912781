#!/usr/bin/env bash
# bench/parallel-stages.sh: a Dockerfile with three independent stages, each
# a RUN that takes a second (sleep) and writes a file, and a final stage
# copying from all three. kiln runs the three at once; buildah runs stages
# one after another unless told `--jobs` (measured both ways). Both build with no cache from the
# same busybox rootfs (kiln import / podman import). hyperfine, 1 warmup,
# 5 runs. Root only.
#   KILN=target/release/kiln bench/parallel-stages.sh
# Needs: hyperfine buildah podman busybox-static.
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${KILN:-$PWD/target/release/kiln}
W=${BENCH_DIR:-/tmp/kiln-bench-parallel}
RUNS=${RUNS:-5}
. bench/lib.sh
fresh_busybox_store "$W/kiln"
mkdir -p "$W/ctx"
P="--root $W/c/root --runroot $W/c/run --storage-driver overlay"
podman $P import "$W/busybox.tar" localhost/busybox:latest >/dev/null

{
  for s in a b c; do
    printf 'FROM localhost/busybox:latest AS %s\nRUN sleep 1 && echo %s > /%s\n\n' "$s" "$s" "$s"
  done
  printf 'FROM localhost/busybox:latest\n'
  for s in a b c; do printf 'COPY --from=%s /%s /%s\n' "$s" "$s" "$s"; done
} > "$W/ctx/Dockerfile"

cmds=(-n kiln "$K build -q --no-cache $W/ctx"
      -n buildah "buildah $P bud -q --no-cache --layers --isolation chroot $W/ctx"
      -n buildah-jobs3 "buildah $P bud -q --no-cache --layers --isolation chroot --jobs 3 $W/ctx")
hyperfine --warmup 1 --runs "$RUNS" --export-markdown "$W/results.md" "${cmds[@]}"
cat "$W/results.md"
