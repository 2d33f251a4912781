//! Files of an unpacked or checked-out context, opened as if its root
//! were `/`: its symlinks and `..` cannot reach the host's files (a
//! Dockerfile that is a symlink to /etc/shadow reads nothing).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, Mode, OFlags, ResolveFlags};

fn open_flags(root: &Path, rel: &str, flags: OFlags) -> io::Result<File> {
    let root = rfs::open(
        root,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let fd = rfs::openat2(
        &root,
        rel,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?;
    Ok(File::from(fd))
}

/// `rel` under `root` opened for reading; a regular file only.
pub(super) fn open(root: &Path, rel: &str) -> io::Result<File> {
    let f = open_flags(root, rel, OFlags::RDONLY)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(f)
}

/// The directory `rel` under `root`, resolved inside it, as a path that
/// stays inside it (symlinks resolved).
pub(super) fn dir(root: &Path, rel: &str) -> io::Result<PathBuf> {
    let f = open_flags(root, rel, OFlags::DIRECTORY | OFlags::RDONLY)?;
    let real = std::fs::read_link(format!("/proc/self/fd/{}", {
        use std::os::fd::AsRawFd;
        f.as_raw_fd()
    }))?;
    let canon_root = std::fs::canonicalize(root)?;
    if !real.starts_with(&canon_root) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "outside the context",
        ));
    }
    Ok(real)
}
