#!/usr/bin/env bash
# bench/startup.sh: what every kiln command pays before its work, against
# /bin/true: `kiln --version`, `kiln ps -a` and `kiln images` on a store
# holding busybox. `OLD=path/to/kiln` adds another binary's three rows, for
# a before/after in one run. hyperfine -N, 5 warmups, 200 runs. Not a test.
#   KILN=target/release/kiln [OLD=/tmp/kiln-old] bench/startup.sh
# Needs: hyperfine busybox-static.
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${KILN:-$PWD/target/release/kiln}
W=${BENCH_DIR:-/tmp/kiln-bench-startup}
RUNS=${RUNS:-200}
. bench/lib.sh
fresh_busybox_store "$W/store"
cmds=(-n true /bin/true)
for bin in "$KILN" ${OLD:+"$OLD"}; do
  tag=$([ "$bin" = "$KILN" ] && echo new || echo old)
  k="$bin --root $W/store"
  cmds+=(-n "$tag --version" "$k --version" -n "$tag ps -a" "$k ps -a" -n "$tag images" "$k images")
done
hyperfine -N --warmup 5 --runs "$RUNS" --export-markdown "$W/results.md" "${cmds[@]}" >/dev/null
cat "$W/results.md"
