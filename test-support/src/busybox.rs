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

static TAR: OnceLock<PathBuf> = OnceLock::new();

/// A deterministic tarball of the busybox rootfs (sorted, mtime 0, owner 0),
/// for `kiln import`. Made once per machine, not per test binary: a
/// `TempDir` held in a static is never dropped, so each test binary used
/// to leave its own 4 MB copy in the temp directory. The file is named
/// after what it is made from (the script, and the busybox it copies), and
/// a new one is renamed into place whole, so concurrent test binaries
/// either find a complete file or make their own and replace it with the
/// same bytes.
pub fn tar() -> &'static Path {
    TAR.get_or_init(|| {
        let busybox = std::env::var_os("BUSYBOX").unwrap_or_else(|| "/bin/busybox".into());
        let script_text = std::fs::read(script()).expect("read make-busybox-rootfs.sh");
        let bb = std::fs::metadata(&busybox)
            .map(|m| {
                use std::os::unix::fs::MetadataExt;
                format!("{}:{}:{}", m.len(), m.mtime(), m.ino())
            })
            .unwrap_or_default();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&(&script_text, &busybox, bb), &mut h);
        let name = format!(
            "kiln-test-busybox-{:016x}.tar",
            std::hash::Hasher::finish(&h)
        );
        let path = std::env::temp_dir().join(name);
        if path.is_file() {
            return path;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let tar = dir.path().join("busybox-rootfs.tar");
        if let Err(e) = make(&dir.path().join("rootfs"), Some(&tar)) {
            panic!("{e}");
        }
        std::fs::rename(&tar, &path)
            .unwrap_or_else(|e| panic!("rename {} to {}: {e}", tar.display(), path.display()));
        path
    })
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
