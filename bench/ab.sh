#!/usr/bin/env bash
# bench/ab.sh: two (or more) kiln binaries alternated run by run on the same
# command, so a machine whose speed drifts during the series (a shared host;
# the dentry cache a 100k-file build leaves, see below) drifts for all of
# them alike. Before each run PREP is evaluated (untimed); the command is
# `BIN ARGS...`. Prints each binary's median and minimum. Not a test.
#   BINS="/tmp/kiln-old target/release/kiln" bench/ab.sh 21 \
#     "date +%s%N > CTX/src/d05/f050.txt" --root STORE build -q -t IMG CTX
#
# With STORES (one store per binary, in the order of BINS) each binary runs
# with `--root` of its own store before ARGS: for binaries whose store
# formats differ (an older one cannot read a newer layer record, and would
# do all the work again). Make each store with its own binary first.
#   BINS="/tmp/kiln-old target/release/kiln" STORES="/tmp/s-old /tmp/s-new" \
#     bench/ab.sh 7 "date +%s%N > CTX/d05/s00/f50.txt" build -q -t IMG CTX
#
# This VM boots with dhash_entries=131072 ihash_entries=65536: after a few
# builds of the 100,000-file context the dentry cache holds millions of
# entries on those chains, and the same build runs up to 2x slower. Start a
# series with `sync; echo 2 > /proc/sys/vm/drop_caches` (root).
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,8p' "$0" >&2; exit 2; }
N=$1 PREP=$2
shift 2
read -r -a bins <<<"${BINS:?BINS: the binaries to alternate}"
read -r -a stores <<<"${STORES:-}"
if [ ${#stores[@]} -ne 0 ] && [ ${#stores[@]} -ne ${#bins[@]} ]; then
  echo "STORES: one store per binary of BINS" >&2
  exit 2
fi
declare -A times
for _ in $(seq 1 "$N"); do
  for i in "${!bins[@]}"; do
    b=${bins[$i]}
    root=()
    [ ${#stores[@]} -eq 0 ] || root=(--root "${stores[$i]}")
    eval "$PREP" >/dev/null 2>&1
    t0=$(date +%s%N)
    "$b" "${root[@]}" "$@" >/dev/null 2>&1 || { echo "$b $*: failed" >&2; exit 1; }
    t1=$(date +%s%N)
    times[$i]+="$(((t1 - t0) / 1000)) "
  done
done
for i in "${!bins[@]}"; do
  printf '%s%s %s\n' "${bins[$i]}" "${stores[$i]:+ (${stores[$i]})}" "$(tr ' ' '\n' <<<"${times[$i]}" | grep . | sort -n |
    awk '{t[NR] = $1} END {printf "median %.1f ms, min %.1f ms (%d runs)", t[int((NR + 1) / 2)] / 1000, t[1] / 1000, NR}')"
done
