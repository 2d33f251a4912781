#!/usr/bin/env bash
# bench/network-latency.sh: start-to-exit latency of /bin/true in the
# busybox image on a container network: `kiln run --rm` on the default
# bridge (netavark) and with --network none, against `podman run --rm` with
# its default network (netavark too) from a private podman store, in the
# same run. RUNS runs each after 3 warmups, interleaved; prints mean and
# median in ms. Root only (both bridges are the host's).
#   KILN=target/release/kiln bench/network-latency.sh
# Needs: podman netavark aardvark-dns busybox-static python3. podman gets
# explicit ulimits, as in exec-latency.sh: its defaults exceed a low hard
# limit (this CI's is 20000), where `podman run` fails otherwise. podman
# runs runc (RUNTIME): its default crun refuses hosts with hybrid cgroups.
# Measuring an older kiln: remove the bridge keepers first (`ip link del
# kkXXXXXXXX`, see containers/src/network/keeper.rs), which it does not
# make but would profit from.
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${KILN:-$PWD/target/release/kiln}
W=${BENCH_DIR:-/tmp/kiln-bench-net}
RUNS=${RUNS:-30}
RUNTIME=${RUNTIME:-runc}
. bench/lib.sh
# podman keeps its storage's overlay mounted after it exits.
umount -l "$W/podman/overlay" 2>/dev/null || true
fresh_busybox_store "$W/store"
P="podman --root $W/podman --runroot $W/podman-run --storage-driver overlay --runtime $RUNTIME"
$P import "$W/busybox.tar" localhost/busybox:latest >/dev/null
python3 - "$RUNS" "$K" "$P" <<'PY'
import shlex, statistics, subprocess, sys, time
runs, k, p = int(sys.argv[1]), sys.argv[2], sys.argv[3]
cmds = {
    "kiln bridge": f"{k} run --rm busybox /bin/true",
    "kiln none": f"{k} run --rm --network none busybox /bin/true",
    "podman bridge": f"{p} run --rm --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 localhost/busybox:latest /bin/true",
}
times = {n: [] for n in cmds}
for i in range(runs + 3):
    for n, c in cmds.items():
        t = time.perf_counter()
        subprocess.run(shlex.split(c), check=True, stdout=subprocess.DEVNULL)
        if i >= 3:
            times[n].append((time.perf_counter() - t) * 1000)
for n, v in times.items():
    print(f"{n:14s} mean {statistics.mean(v):7.1f} ms  median {statistics.median(v):7.1f} ms  (n={len(v)})")
PY
umount -l "$W/podman/overlay" 2>/dev/null || true
