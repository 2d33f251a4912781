#!/usr/bin/env bash
# demo.sh: set up a fresh Debian 12 machine and run kiln end to end.
# Installs what it needs, builds kiln, makes a busybox rootfs from the host's
# busybox-static, imports it, lists and inspects it.
set -euo pipefail
cd "$(dirname "$0")"

need=()
for pkg in busybox-static skopeo umoci docker-registry curl netavark aardvark-dns iptables; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q && apt-get install -y -q --no-install-recommends "${need[@]}"
fi

echo "==> building kiln (release)"
cargo build --release --jobs 2
KILN="$PWD/target/release/kiln"
work=$(mktemp -d /tmp/kiln-demo.XXXXXX)
export KILN_ROOT="$work/store"
reg_pid=
cleanup() {
  [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

echo "==> making a busybox rootfs"
fixtures/make-busybox-rootfs.sh "$work/rootfs"

echo "==> tar -C rootfs -c . | kiln import - busybox:latest"
tar -C "$work/rootfs" -c . | "$KILN" import -m "busybox from the demo" - busybox:latest

echo "==> kiln images"
"$KILN" images
echo "==> kiln tag busybox demo/busybox:1.0"
"$KILN" tag busybox demo/busybox:1.0
"$KILN" images
echo "==> kiln history busybox"
"$KILN" history busybox
echo "==> kiln inspect busybox (excerpt)"
# Through a file: `head` closing the pipe early ends kiln with 141 (as it
# ends docker), which `set -o pipefail` would count as a failure.
"$KILN" inspect busybox > "$work/inspect.json"
head -n 20 "$work/inspect.json"
echo "==> skopeo reads kiln's store directly"
skopeo inspect --raw "oci:$KILN_ROOT:localhost/busybox:latest"
echo
echo "==> kiln rmi demo/busybox:1.0"
"$KILN" rmi demo/busybox:1.0

echo "==> kiln build -t demo/hello examples/hello"
"$KILN" build -t demo/hello examples/hello
echo "==> the same build again: every step comes from the cache"
time "$KILN" build -q -t demo/hello examples/hello
"$KILN" history demo/hello
if [ "$(id -u)" = 0 ]; then
  echo "==> kiln run --rm busybox sh -c 'echo pid \$\$ on \$(hostname)'"
  "$KILN" run --rm busybox sh -c 'echo pid $$ on $(hostname)'
  echo "==> kiln run --name demo ... ; kiln commit demo busybox:changed"
  "$KILN" run --name demo busybox sh -c 'echo hello > /greeting; rm /bin/vi'
  "$KILN" commit -m "add a greeting" demo busybox:changed
  "$KILN" run --rm busybox:changed cat /greeting
  echo "==> kiln export demo | tar t | grep -E '^(greeting|bin/vi)\$'"
  "$KILN" export demo | tar t | grep -E '^(greeting|bin/vi)$'
  echo "==> kiln run -d, ps, logs, stop, rm"
  "$KILN" run -d --name bg busybox sh -c 'echo started; exec sleep 60'
  sleep 0.5
  "$KILN" ps
  "$KILN" logs bg
  "$KILN" stop -t 1 bg
  "$KILN" ps -a
  "$KILN" rm bg demo
fi
echo "==> push to a private registry (Debian's docker-registry on a free loopback port)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/registry.yml" <<YML
version: 0.1
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
reg_pid=$!
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
"$KILN" push --tls-verify=false demo/hello "127.0.0.1:$port/demo/hello:1.0"
echo "==> pushing again sends nothing new"
time "$KILN" push -q --tls-verify=false demo/hello "127.0.0.1:$port/demo/hello:1.0"
skopeo inspect --tls-verify=false "docker://127.0.0.1:$port/demo/hello:1.0" | head -n 8
echo "==> rmi, pull it back"
"$KILN" rmi demo/hello
"$KILN" pull --tls-verify=false "127.0.0.1:$port/demo/hello:1.0"
if [ "$(id -u)" = 0 ]; then
  "$KILN" run --rm "127.0.0.1:$port/demo/hello:1.0"
fi
echo "==> done"
