//! Running a spec through an external OCI runtime (runc, crun): write
//! `config.json` into the bundle and `RUNTIME run -b BUNDLE ID`.
//!
//! An overlay rootfs is mounted in a private mount namespace of the runtime
//! process itself (unshare + rprivate before exec), so nothing leaks onto the
//! host and the mount disappears with the runtime.

use crate::error::RunError;
use crate::inroot::Root;
use crate::plan::exec_candidates;
use crate::process::Child;
use crate::rootfs::{self, Rootfs};
use crate::{absolute, effective_spec, RunOptions, Stdio};
use oci_spec::runtime::{RootBuilder, Spec};
use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// What a path lookup inside the (possibly layered) rootfs found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    Executable,
    NotExecutable,
    Missing,
}

/// Finds `path` in the container's root, following symlinks inside the
/// container's view (never out of it: [`crate::inroot`]).
fn lookup(root: &Root, path: &str) -> Lookup {
    let Ok(md) = root
        .lookup(Path::new(path), true)
        .and_then(|f| f.metadata())
    else {
        return Lookup::Missing;
    };
    if md.is_file() && md.permissions().mode() & 0o111 != 0 {
        Lookup::Executable
    } else {
        Lookup::NotExecutable
    }
}

/// An external runtime reports exec failures as its own exit 1; resolve the
/// program first so 126/127 agree with the built-in runtime.
fn precheck(spec: &Spec, root: &Root) -> Result<(), RunError> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| RunError::InvalidSpec("spec has no process".into()))?;
    let args = process.args().clone().unwrap_or_default();
    let arg0 = args
        .first()
        .ok_or_else(|| RunError::InvalidSpec("process.args is empty".into()))?;
    let env = process.env().clone().unwrap_or_default();
    let cwd = process.cwd().to_string_lossy().to_string();
    let mut saw_noexec = None;
    for cand in exec_candidates(arg0, &env) {
        let cand = String::from_utf8_lossy(&cand).to_string();
        let full = if cand.starts_with('/') {
            cand.clone()
        } else {
            format!("{cwd}/{cand}")
        };
        match lookup(root, &full) {
            Lookup::Executable => return Ok(()),
            Lookup::NotExecutable => saw_noexec = saw_noexec.or(Some(cand)),
            Lookup::Missing => {}
        }
    }
    match saw_noexec {
        Some(path) => Err(RunError::CannotExecute {
            path,
            source: std::io::Error::from_raw_os_error(libc::EACCES),
        }),
        None => Err(RunError::NotFound { path: arg0.clone() }),
    }
}

fn cstr(s: &str) -> Result<CString, RunError> {
    CString::new(s).map_err(|_| RunError::InvalidSpec("NUL byte in a path".into()))
}

pub(crate) fn start(runtime: &Path, spec: &Spec, opts: &RunOptions) -> Result<Child, RunError> {
    if opts.detach {
        return Err(RunError::Unsupported(
            "detached containers with an external runtime".into(),
        ));
    }
    if crate::is_rootless() {
        return Err(RunError::Unsupported(
            "an external runtime without root (use the built-in runtime)".into(),
        ));
    }
    let bundle = absolute(&opts.bundle)?;
    rootfs::ensure_dir(&bundle)?;
    let mut spec = effective_spec(spec, opts)?;
    let ro = spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false);
    // Overlay: (target, data, chdir) to mount before exec.
    let (root_path, overlay, root) = match &opts.rootfs {
        Rootfs::Dir(d) => (absolute(d)?, None, Root::dir(&absolute(d)?)),
        Rootfs::Overlay { lower, upper, work } => {
            rootfs::ensure_dir(upper)?;
            rootfs::ensure_dir(work)?;
            let target = bundle.join("merged");
            rootfs::ensure_dir(&target)?;
            let lower = &rootfs::lowers_or_empty(lower, &bundle)?;
            let (data, chdir) = rootfs::overlay_data(lower, upper, work, opts.overlay_volatile)?;
            let mut dirs = lower.clone();
            dirs.push(upper.clone());
            (
                target.clone(),
                Some((
                    rootfs::cpath(&target)?,
                    cstr(&data)?,
                    chdir.map(|c| rootfs::cpath(&c)).transpose()?,
                )),
                Root::layers(&dirs),
            )
        }
    };
    let root = root.map_err(|e| RunError::io(format!("open {}", root_path.display()), e))?;
    precheck(&spec, &root)?;
    spec.set_root(Some(
        RootBuilder::default()
            .path(root_path)
            .readonly(ro)
            .build()
            .map_err(|e| RunError::InvalidSpec(e.to_string()))?,
    ));
    let config = bundle.join("config.json");
    let json =
        serde_json::to_vec_pretty(&spec).map_err(|e| RunError::InvalidSpec(e.to_string()))?;
    std::fs::write(&config, json)
        .map_err(|e| RunError::io(format!("write {}", config.display()), e))?;

    let mut cmd = Command::new(runtime);
    cmd.arg("run").arg("-b").arg(&bundle).arg(&opts.id);
    if let Stdio::Fds {
        stdin,
        stdout,
        stderr,
    } = opts.stdio
    {
        let dup = |fd: i32| -> Result<std::process::Stdio, RunError> {
            // SAFETY: borrowing a caller-owned fd to duplicate it.
            let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            let owned = b
                .try_clone_to_owned()
                .map_err(|e| RunError::io("dup stdio", e))?;
            Ok(std::process::Stdio::from(owned))
        };
        cmd.stdin(dup(stdin)?)
            .stdout(dup(stdout)?)
            .stderr(dup(stderr)?);
    }
    if let Some((target, data, chdir)) = overlay {
        let back =
            rootfs::cpath(&std::env::current_dir().map_err(|e| RunError::io("current dir", e))?)?;
        // SAFETY: the closure runs in the forked child before exec and only
        // makes syscalls on strings prepared here.
        unsafe {
            cmd.pre_exec(move || {
                let fail = || Err(std::io::Error::last_os_error());
                if libc::unshare(libc::CLONE_NEWNS) != 0 {
                    return fail();
                }
                if libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) != 0
                {
                    return fail();
                }
                if let Some(d) = &chdir {
                    if libc::chdir(d.as_ptr()) != 0 {
                        return fail();
                    }
                }
                if libc::mount(
                    c"overlay".as_ptr(),
                    target.as_ptr(),
                    c"overlay".as_ptr(),
                    0,
                    data.as_ptr().cast(),
                ) != 0
                {
                    return fail();
                }
                if libc::chdir(back.as_ptr()) != 0 {
                    return fail();
                }
                Ok(())
            });
        }
    }
    let child = cmd.spawn().map_err(|e| RunError::External {
        runtime: runtime.display().to_string(),
        message: e.to_string(),
    })?;
    Ok(Child {
        pid: child.id() as i32,
        reaped: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_follows_symlinks_across_layers() {
        let t = tempfile::tempdir().unwrap();
        let (low, up) = (t.path().join("low"), t.path().join("up"));
        std::fs::create_dir_all(low.join("bin")).unwrap();
        std::fs::create_dir_all(up.join("bin")).unwrap();
        std::fs::write(low.join("bin/busybox"), "x").unwrap();
        std::fs::set_permissions(
            low.join("bin/busybox"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::os::unix::fs::symlink("/bin/busybox", up.join("bin/sh")).unwrap();
        std::fs::write(up.join("bin/data"), "x").unwrap();
        let roots = Root::layers(&[low, up]).unwrap();
        assert_eq!(lookup(&roots, "/bin/sh"), Lookup::Executable);
        assert_eq!(lookup(&roots, "/bin/data"), Lookup::NotExecutable);
        assert_eq!(lookup(&roots, "/bin/nope"), Lookup::Missing);
    }

    #[test]
    fn lookup_stays_in_the_root() {
        let t = tempfile::tempdir().unwrap();
        let host = t.path().join("host");
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(host.join("prog"), "x").unwrap();
        std::fs::set_permissions(host.join("prog"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let (low, up) = (t.path().join("low"), t.path().join("up"));
        std::fs::create_dir_all(&low).unwrap();
        std::fs::create_dir_all(up.join("d")).unwrap();
        // The lower layer's `d` is a link to the host; the upper's `d`, a
        // directory, hides it.
        std::os::unix::fs::symlink(&host, low.join("d")).unwrap();
        std::os::unix::fs::symlink(&host, low.join("e")).unwrap();
        let root = Root::layers(&[low, up]).unwrap();
        assert_eq!(lookup(&root, "/d/prog"), Lookup::Missing);
        assert_eq!(lookup(&root, "/e/prog"), Lookup::Missing);
    }
}
