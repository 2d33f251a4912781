//! A container's network namespace as a file: a new namespace bind-mounted
//! from `/proc/.../ns/net` onto an empty file under the store's run
//! directory, as podman and `ip netns add` do. The namespace lives as long
//! as the mount, before the container starts (netavark configures it) and
//! after it exits (netavark tears it down), whatever process holds it.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

fn cpath(p: &Path) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path with a NUL byte"))
}

/// [`create`], its failure as kiln's error naming the path.
pub fn make(path: &Path) -> crate::Result<()> {
    create(path).map_err(|e| {
        crate::Error::Invalid(format!(
            "creating network namespace {}: {e}",
            path.display()
        ))
    })
}

/// Creates a new network namespace held by a mount on `path`.
pub fn create(path: &Path) -> io::Result<()> {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d)?;
    }
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    let target = cpath(path)?;
    // A thread of its own moves into the new namespace and mounts it; the
    // rest of kiln stays where it is, and the thread ends right after.
    let res = std::thread::spawn(move || -> io::Result<()> {
        // SAFETY: unshare with a constant flag, in this thread only.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: gettid cannot fail.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) };
        let src = cpath(Path::new(&format!("/proc/self/task/{tid}/ns/net")))?;
        // SAFETY: NUL-terminated paths, no data.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    })
    .join()
    .unwrap_or_else(|_| Err(io::Error::other("the namespace thread panicked")));
    if res.is_err() {
        let _ = fs::remove_file(path);
    }
    res
}

/// Unmounts and removes `path`; one already gone is fine.
pub fn remove(path: &Path) -> io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: a NUL-terminated path. EINVAL: not mounted (a half-made one).
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        let e = io::Error::last_os_error();
        if !matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) {
            return Err(e);
        }
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
