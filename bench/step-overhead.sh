#!/usr/bin/env bash
# bench/step-overhead.sh: the fixed cost of a RUN step, as
# ../shared/bench/w7-step-overhead.sh measures it: FROM busybox + $STEPS (50)
# steps `RUN echo $i > /f$i`, empty context; cold (--no-cache) and warm (all
# cached), hyperfine; then where one cold build's time goes, by syscall
# (strace -f -c; counts are what to compare across machines and loads).
#   KILN=target/release/kiln bench/step-overhead.sh
# The machine is often shared: read the User+System CPU figures beside the
# wall-clock medians. Needs: hyperfine strace busybox-static. Root (RUN).
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${KILN:-$PWD/target/release/kiln}
W=${BENCH_DIR:-/tmp/kiln-bench-steps}
STEPS=${STEPS:-50}
RUNS=${RUNS:-10}
. bench/lib.sh
fresh_busybox_store "$W/store"
mkdir -p "$W/ctx"
{
  echo "FROM localhost/busybox:latest"
  for i in $(seq 1 "$STEPS"); do echo "RUN echo $i > /f$i"; done
} > "$W/Dockerfile"
build="$K build -q -t steps -f $W/Dockerfile $W/ctx"
hyperfine -N --warmup 1 --runs "$RUNS" --export-markdown "$W/results.md" \
  -n cold "$build --no-cache" -n warm "$build"
cat "$W/results.md"
echo "per step (cold): median above / $STEPS"
if command -v strace >/dev/null; then
  strace -f -c -o "$W/strace.txt" $build --no-cache >/dev/null
  echo "strace -f -c of one cold build (top 15 by time):"
  head -n 17 "$W/strace.txt"
fi
