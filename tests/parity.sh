#!/usr/bin/env bash
# tests/parity.sh: every case of fixtures/parity/ built by the reference
# Docker (BuildKit) and by kiln, compared by ../shared/refdocker/diff-build.sh.
#
#   ../shared/refdocker/start.sh           # once: a private dockerd on a unix socket
#   cargo build --release -j2
#   tests/parity.sh [CASE...]              # all cases by default
#   ../shared/refdocker/stop.sh
#
# Cases with a `tag` file (images later cases build FROM) go first. Set
# REFDOCKER to where refdocker lives (default: ../shared/refdocker from the
# project root, then /work/shared/refdocker). Exit status: diff-build.sh's
# (1 if any case is DIFF).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
ref=${REFDOCKER:-}
if [ -z "$ref" ]; then
  for c in "$root/../shared/refdocker" /work/shared/refdocker; do
    [ -x "$c/diff-build.sh" ] && { ref=$c; break; }
  done
fi
[ -n "$ref" ] && [ -x "$ref/diff-build.sh" ] || { echo "parity.sh: no refdocker (set REFDOCKER)" >&2; exit 2; }
export KILN=${KILN:-$root/target/release/kiln}
if [ $# -gt 0 ]; then
  cases=(); for c in "$@"; do cases+=("fixtures/parity/$c"); done
else
  parents=(); rest=()
  for d in fixtures/parity/*/; do
    d=${d%/}
    if [ -f "$d/tag" ]; then parents+=("$d"); else rest+=("$d"); fi
  done
  cases=("${parents[@]}" "${rest[@]}")
fi
SHOW_HISTORY=${SHOW_HISTORY:-diff} "$ref/diff-build.sh" "${cases[@]}"
