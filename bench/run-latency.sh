#!/usr/bin/env bash
# bench/run-latency.sh: start-to-exit latency of /bin/true in the busybox
# image, as ../shared/bench/w5-run-latency.sh measures it: `kiln run --rm`
# against `runc run -b BUNDLE` (and crun when installed) on an `umoci unpack`ed
# bundle of the same image. hyperfine -N, 3 warmups, 50 runs. Root only.
#   KILN=target/release/kiln bench/run-latency.sh
# Needs: hyperfine umoci runc busybox-static (crun optional; on a hybrid
# cgroup host it runs in a private mount namespace, see below).
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${KILN:-$PWD/target/release/kiln}
W=${BENCH_DIR:-/tmp/kiln-bench-run}
RUNS=${RUNS:-50}
. bench/lib.sh
fresh_busybox_store "$W/store"
$K run --rm --network none localhost/busybox:latest /bin/true   # unpacks the layer once

umoci unpack --image "$W/store:localhost/busybox:latest" "$W/bundle" >/dev/null
# /bin/true, no terminal, as the shared harness does.
python3 - "$W/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["args"] = ["/bin/true"]
c["process"]["terminal"] = False
json.dump(c, open(p, "w"))
PY

# --network none: the runc bundle gets a new network namespace with only
# lo, so that is the like-for-like case (the default bridge adds netavark).
cmds=(-n kiln "$K run --rm --network none localhost/busybox:latest /bin/true"
      -n runc "runc run -b $W/bundle kiln-bench-runc")
crun_v1=false
crun_cmd="crun run -b $W/bundle kiln-bench-crun"
if command -v crun >/dev/null; then
  if $crun_cmd >/dev/null 2>&1; then
    cmds+=(-n crun "$crun_cmd")
  else
    # crun refuses a hybrid cgroup host whose cgroup2 mount has controllers
    # ("cgroups in hybrid mode not supported"): it is timed as
    # ../shared/bench/w5 times it (crun-bundle-v1ns), in a mount namespace
    # of its own with /sys/fs/cgroup/unified unmounted there only.
    crun_v1=true
  fi
fi
hyperfine -N --warmup 3 --runs "$RUNS" --export-markdown "$W/results.md" "${cmds[@]}"
cat "$W/results.md"
if $crun_v1; then
  unshare -m sh -c "mount --make-rprivate / && umount /sys/fs/cgroup/unified &&
    hyperfine -N --warmup 3 --runs $RUNS --export-markdown $W/crun-v1ns.md \
      -n crun-v1ns '$crun_cmd'" >/dev/null
  cat "$W/crun-v1ns.md"
fi
