# bench/lib.sh: sourced by the bench scripts (from the project root).
#
# Put BENCH_DIR on a journaled filesystem. ext4 without a journal (this
# VM's root filesystem) skips inodes deleted in the last 60 to 360 s when
# it allocates new ones, reading the inode table for each: every file or
# directory made after a large delete (these scripts' own `rm -rf` of the
# last run's store, or a test suite) then costs up to a millisecond, and
# `kiln run` measured 22 ms instead of 9 ms.
#
# fresh_busybox_store STORE: empties $W, makes $W/busybox.tar from the
# host's busybox-static (fixtures/make-busybox-rootfs.sh, as the tests do)
# and imports it into `kiln --root STORE` as busybox; sets K to that kiln.
fresh_busybox_store() {
  rm -rf "$W"
  mkdir -p "$W"
  fixtures/make-busybox-rootfs.sh "$W/rootfs" "$W/busybox.tar" >/dev/null
  K="$KILN --root $1"
  $K import "$W/busybox.tar" busybox >/dev/null
}

# small_context CTX BASE: the build-small context of
# ../shared/bench/w1-build-small.sh in CTX (20 directories x 100 files x
# 10,000 bytes of base64 text from an AES-CTR keystream seeded by the
# directory index, 200 of them excluded by .dockerignore) and its two-stage
# Dockerfile on image BASE.
small_context() {
  local ctx=$1 base=$2 i d ext
  rm -rf "$ctx"
  mkdir -p "$ctx"
  for i in $(seq 0 19); do
    case $i in
      18) d=$ctx/src/scratch ext=.tmp ;;
      19) d=$ctx/logs ext=.log ;;
      *) d=$ctx/src/d$(printf "%02d" "$i") ext=.txt ;;
    esac
    mkdir -p "$d"
    head -c $((1000000 / 100 * 99 / 4 * 3)) /dev/zero |
      openssl enc -aes-128-ctr -nosalt -K "$(printf '%032x' "$((i + 1))")" -iv 00000000000000000000000000000000 |
      base64 -w 99 | split -b 10000 -d -a 3 --additional-suffix="$ext" - "$d/f"
  done
  find "$ctx" -exec touch -h -d @1700000000 {} +
  printf 'logs/\n**/*.tmp\nDockerfile\n.dockerignore\n' >"$ctx/.dockerignore"
  cat >"$ctx/Dockerfile" <<DF
FROM $base AS gen
ENV BENCH_STAGE=gen LANG=C.UTF-8
WORKDIR /work
COPY . /work/
RUN mkdir -p /out \\
 && find /work -type f | sort > /out/manifest.txt \\
 && for i in \$(seq 1 200); do echo "generated file \$i" > /out/gen-\$i.txt; done \\
 && cat /work/src/d00/*.txt | sha256sum > /out/d00.sha256

FROM $base
ENV APP_HOME=/app
WORKDIR /app
COPY --from=gen /out /app/out
COPY --from=gen /work/src/d01 /app/d01
CMD ["ls", "/app"]
DF
}

# registry_config DIR PORT: DIR/config.yml for a docker-registry on
# 127.0.0.1:PORT keeping its blobs in DIR/storage (deletes allowed).
registry_config() {
  cat > "$1/config.yml" <<CFG
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $1/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$2
CFG
}

# start_registry DIR: a docker-registry on a free loopback port, its
# storage in DIR/storage (emptied), stopped when the script exits; sets
# PORT. Returns once it answers /v2/.
start_registry() {
  local dir=$1
  rm -rf "$dir/storage"
  mkdir -p "$dir/storage"
  PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  registry_config "$dir" "$PORT"
  setsid /usr/bin/docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
  REGISTRY_PID_FILE=$dir/pid
  trap 'kill "$(cat "$REGISTRY_PID_FILE")" 2>/dev/null || true' EXIT
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$PORT/v2/" >/dev/null && return 0; sleep 0.05; done
  echo "docker-registry did not answer on 127.0.0.1:$PORT (see $dir/registry.log)" >&2
  return 1
}
