#!/usr/bin/env bash
# bench/small-build.sh: the two-stage build of ../shared/bench/w1-build-small.sh
# (2,000 files of 10,000 bytes, 200 excluded by .dockerignore) in four cases,
# each with hyperfine: cold (--no-cache after rmi), warm (no change), touch
# (mtime of one file), edit (content of one file). Not a test.
#   KILN=target/release/kiln bench/small-build.sh
# Read User+System beside the wall-clock medians on a shared machine.
# Needs: hyperfine jq openssl busybox-static. Root (RUN).
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${KILN:-$PWD/target/release/kiln}
W=${BENCH_DIR:-/tmp/kiln-bench-small}
RUNS=${RUNS:-10}
CTX=$W/ctx
K="$KILN --root $W/store"
IMG=localhost/bench/small:latest

# 20 directories x 100 files x 10,000 bytes of base64 text from an AES-CTR
# keystream seeded by the directory index, as the shared harness makes them.
stream() {
  head -c $(($2 / 100 * 99 / 4 * 3)) /dev/zero |
    openssl enc -aes-128-ctr -nosalt -K "$(printf '%032x' "$1")" -iv 00000000000000000000000000000000 |
    base64 -w 99
}
make_context() {
  rm -rf "$CTX"
  mkdir -p "$CTX"
  local i d ext
  for i in $(seq 0 19); do
    case $i in
      18) d=$CTX/src/scratch ext=.tmp ;;
      19) d=$CTX/logs ext=.log ;;
      *) d=$CTX/src/d$(printf "%02d" "$i") ext=.txt ;;
    esac
    mkdir -p "$d"
    stream "$((i + 1))" 1000000 | split -b 10000 -d -a 3 --additional-suffix="$ext" - "$d/f"
  done
  find "$CTX" -exec touch -h -d @1700000000 {} +
  printf 'logs/\n**/*.tmp\nDockerfile\n.dockerignore\n' >"$CTX/.dockerignore"
  cat >"$CTX/Dockerfile" <<'DF'
FROM localhost/busybox:latest AS gen
ENV BENCH_STAGE=gen LANG=C.UTF-8
WORKDIR /work
COPY . /work/
RUN mkdir -p /out \
 && find /work -type f | sort > /out/manifest.txt \
 && for i in $(seq 1 200); do echo "generated file $i" > /out/gen-$i.txt; done \
 && cat /work/src/d00/*.txt | sha256sum > /out/d00.sha256

FROM localhost/busybox:latest
ENV APP_HOME=/app
WORKDIR /app
COPY --from=gen /out /app/out
COPY --from=gen /work/src/d01 /app/d01
CMD ["ls", "/app"]
DF
}
if [ ! -d "$W/store" ]; then
  mkdir -p "$W"
  fixtures/make-busybox-rootfs.sh "$W/rootfs" "$W/busybox.tar" >/dev/null
  $K import "$W/busybox.tar" localhost/busybox:latest >/dev/null
fi
make_context
EDIT_FILE=$CTX/src/d05/f050.txt
TOUCH_FILE=$CTX/src/d07/f070.txt
B="$K build -q -t $IMG -f $CTX/Dockerfile $CTX"
$B >/dev/null
hyperfine -N --runs "$RUNS" --export-json "$W/cold.json" \
  --prepare "$K rmi -f $IMG" -n cold "$K build -q --no-cache -t $IMG -f $CTX/Dockerfile $CTX"
hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$W/warm.json" -n warm "$B"
hyperfine -N --runs "$RUNS" --export-json "$W/touch.json" --prepare "touch $TOUCH_FILE" -n touch "$B"
hyperfine --runs "$RUNS" --export-json "$W/edit.json" --prepare "date +%s%N > $EDIT_FILE" -n edit "$B"
for c in cold warm touch edit; do
  jq -r '.results[] | "\(.command): median \(.median) s, user \(.user) s, system \(.system) s"' "$W/$c.json"
done
$K builder prune >/dev/null
