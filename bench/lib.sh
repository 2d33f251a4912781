# bench/lib.sh: sourced by the bench scripts (from the project root).
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
