#!/usr/bin/env bash
# bench/cache-export.sh: the registry build cache (`--cache-to/--cache-from
# type=registry`) on the build-small workload (as ../shared/bench's w1:
# 2 stages, ~18 MB of context text), against a docker-registry on a free
# loopback port.
# Not a test; run as root (RUN steps), once:
#   KILN=target/release/kiln bench/cache-export.sh
# Prints:
# - machine A, empty store, `--cache-to mode=max`: build time, the export
#   time kiln reports (what is left after the last step: layers are
#   compressed and uploaded while the build runs), export / (build without
#   it), and the whole build+export against a cold build without export;
# - machine B, empty store (same base), `--cache-from`: its fully cached
#   build, against A's warm local rebuild and a `kiln pull` of the final
#   image on an empty store (the download of the final layers).
# BuildKit is not compared here: the reference engine (../shared/refdocker)
# has no registry of its own on loopback wired for cache export.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
KILN=${KILN:-$PWD/target/release/kiln}
W=${BENCH_DIR:-/tmp/kiln-bench-cache}
fresh_busybox_store "$W/a"
start_registry "$W"

# The build-small workload of ../shared/bench/w1-build-small.sh.
CTX=$W/ctx
small_context "$CTX" busybox

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
CACHE=127.0.0.1:$PORT/bench/cache:max
KA="$KILN --root $W/a"
$KA save -o "$W/bb.tar" busybox

# A: cold build, then the same cold build with the export.
$KILN --root "$W/a0" load -i "$W/bb.tar" >/dev/null
t=$(now); $KILN --root "$W/a0" build -q "$CTX" >/dev/null; plain=$(since "$t")
t=$(now)
$KA build --progress plain --tls-verify=false --cache-to "type=registry,ref=$CACHE,mode=max" \
  -t "127.0.0.1:$PORT/bench/img:1" "$CTX" 2>"$W/a.log" >/dev/null
with_export=$(since "$t")
export_s=$(sed -n 's/.*exported cache to .* in \([0-9.]*\)s$/\1/p' "$W/a.log")
t=$(now); $KA build -q "$CTX" >/dev/null; warm=$(since "$t")
$KA push -q --tls-verify=false "127.0.0.1:$PORT/bench/img:1"

# B: an empty store with the same base, everything from the registry.
$KILN --root "$W/b" load -i "$W/bb.tar" >/dev/null
t=$(now)
$KILN --root "$W/b" build --progress plain --tls-verify=false --cache-from "$CACHE" "$CTX" \
  2>"$W/b.log" >/dev/null
cached=$(since "$t")
hits=$(grep -c -- '--> Using cache' "$W/b.log" || true)
t=$(now); $KILN --root "$W/c" pull -q --tls-verify=false "127.0.0.1:$PORT/bench/img:1"; pull=$(since "$t")

printf 'A cold build (no export):            %6.3f s\n' "$plain"
printf 'A cold build + export (mode=max):    %6.3f s (export %s s)\n' "$with_export" "$export_s"
printf 'export (after the last step) / build: %5.1f %%\n' "$(echo "100 * $export_s / ($with_export - $export_s)" | bc -l)"
printf 'build+export / cold build:           %6.2f (uploads run beside the steps)\n' "$(echo "$with_export / $plain" | bc -l)"
printf 'A warm local rebuild:                %6.3f s\n' "$warm"
printf 'final image pull, empty store:       %6.3f s\n' "$pull"
printf 'B fully cached from the registry:    %6.3f s (%s steps hit)\n' "$cached" "$hits"
printf 'B / (2 x warm + pull):               %6.2f\n' "$(echo "$cached / (2 * $warm + $pull)" | bc -l)"
