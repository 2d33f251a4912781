//! The busybox root filesystem the tests run: made from the host's static
//! busybox (Debian busybox-static) by `fixtures/make-busybox-rootfs.sh`, the
//! one script the demo and the benchmarks use too, so there is a single
//! definition of what the test image holds.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn script() -> PathBuf {
    crate::fixtures().join("make-busybox-rootfs.sh")
}

fn make(dest: &Path, tar: Option<&Path>) -> Result<(), String> {
    let mut cmd = Command::new(script());
    cmd.arg(dest);
    if let Some(tar) = tar {
        cmd.arg(tar);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("run {}: {e}", script().display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "make-busybox-rootfs.sh failed (is busybox-static installed?): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Builds the busybox rootfs in `dest` (replacing whatever is there):
/// `/bin/busybox`, one symlink per applet, passwd/group with root, daemon
/// and nobody, and world-writable `/tmp` and `/var/tmp`.
pub fn rootfs(dest: &Path) -> Result<(), String> {
    make(dest, None)
}

static TAR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();

/// A deterministic tarball of the busybox rootfs (sorted, mtime 0, owner 0),
/// made once per test binary, for `kiln import`.
pub fn tar() -> &'static Path {
    &TAR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let tar = dir.path().join("busybox-rootfs.tar");
        if let Err(e) = make(&dir.path().join("rootfs"), Some(&tar)) {
            panic!("{e}");
        }
        (dir, tar)
    })
    .1
}

/// Appends every entry of the busybox tarball to `b` (links as links), for
/// tests that build a layer of busybox plus files of their own.
pub fn append_to<W: Write>(b: &mut tar::Builder<W>) {
    let mut bb = tar::Archive::new(std::fs::File::open(tar()).expect("open busybox tar"));
    for e in bb.entries().unwrap() {
        let mut e = e.unwrap();
        let mut h = e.header().clone();
        let path = e.path().unwrap().into_owned();
        if h.entry_type().is_symlink() || h.entry_type().is_hard_link() {
            let link = e.link_name().unwrap().unwrap().into_owned();
            b.append_link(&mut h, &path, &link).unwrap();
        } else {
            b.append_data(&mut h, &path, &mut e).unwrap();
        }
    }
}
