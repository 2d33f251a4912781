//! The container's filesystem, built by the child before pivot_root: the
//! root mount, the spec's mounts (targets resolved inside the rootfs with
//! openat2), /dev, then masked and read-only paths after the pivot.
//! Same rules as the parent module: syscalls only, no allocation.

use super::{fail, ChildFds, Step};
use crate::plan::{MountOp, Plan, Target};
use crate::rootfs::RootMount;
use crate::sys::{self, errno, Errno};
use libc::{c_int, c_ulong};
use std::ffi::CStr;
use std::ptr::null;

pub(super) fn setup_root(plan: &Plan, fds: &ChildFds) {
    let target = plan.root.target();
    match &plan.root {
        RootMount::Overlay { data, chdir, .. } => {
            if let Some(dir) = chdir {
                // SAFETY: valid C string.
                if unsafe { libc::chdir(dir.as_ptr()) } != 0 {
                    fail(fds, Step::OverlayMount, 0, errno());
                }
            }
            try_step!(
                fds,
                Step::OverlayMount,
                0,
                sys::mount(
                    c"overlay".as_ptr(),
                    target.as_ptr(),
                    c"overlay".as_ptr(),
                    0,
                    data.as_ptr()
                )
            );
        }
        RootMount::Bind { path } => {
            try_step!(
                fds,
                Step::RootMount,
                0,
                sys::mount(
                    path.as_ptr(),
                    path.as_ptr(),
                    null(),
                    libc::MS_BIND | libc::MS_REC,
                    null()
                )
            );
        }
    }
    // SAFETY: open with a valid C string.
    let root = unsafe {
        libc::open(
            target.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if root < 0 {
        fail(fds, Step::OpenRoot, 0, errno());
    }
    let mut dev_tmpfs = false;
    for (i, m) in plan.mounts.iter().enumerate() {
        mount_one(root, m, plan, fds, i);
        dev_tmpfs |= m.dev;
    }
    if dev_tmpfs {
        try_step!(fds, Step::Devices, 0, populate_dev(root, plan.dev_core));
        try_step!(fds, Step::Devices, 1, extra_devices(root, &plan.devices));
    }
    // SAFETY: fchdir to the root fd, then pivot_root(".", ".") stacks the old
    // root on top of the new one, and a lazy unmount of "." drops it.
    unsafe {
        if libc::fchdir(root) != 0 {
            fail(fds, Step::PivotRoot, 0, errno());
        }
    }
    try_step!(fds, Step::PivotRoot, 0, sys::pivot_root(c".", c"."));
    // The old root must not propagate the unmount back to the host.
    try_step!(
        fds,
        Step::PivotRoot,
        1,
        sys::mount(
            null(),
            c".".as_ptr(),
            null(),
            libc::MS_SLAVE | libc::MS_REC,
            null()
        )
    );
    // SAFETY: umount2/chdir with constant strings.
    unsafe {
        if libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0 {
            fail(fds, Step::PivotRoot, 2, errno());
        }
        if libc::chdir(c"/".as_ptr()) != 0 {
            fail(fds, Step::PivotRoot, 3, errno());
        }
    }
    sys::close(root);
    for (i, (path, value)) in plan.sysctls.iter().enumerate() {
        try_step!(fds, Step::Sysctl, i, write_file(path, value.to_bytes()));
    }
    for (i, p) in plan.masked.iter().enumerate() {
        try_step!(fds, Step::Masked, i, mask_path(p));
    }
    for (i, p) in plan.readonly_paths.iter().enumerate() {
        try_step!(fds, Step::ReadonlyPath, i, readonly_path(p));
    }
    if plan.readonly_root {
        try_step!(fds, Step::ReadonlyRoot, 0, remount_readonly(c"/", 0));
    }
}

fn mount_one(root: c_int, m: &MountOp, plan: &Plan, fds: &ChildFds, i: usize) {
    let fd = try_step!(
        fds,
        Step::MountTarget,
        i,
        ensure_in_root(root, m.dest.to_bytes(), m.target)
    );
    let target = sys::fd_path(fd);
    let src = m.source.as_ref().map_or(null(), |s| s.as_ptr());
    let fstype = m.fstype.as_ref().map_or(null(), |s| s.as_ptr());
    let data = m.data.as_ref().map_or(null(), |s| s.as_ptr());
    let mut res = sys::mount(src, target.as_ptr(), fstype, m.flags, data);
    let mut sysfs_bound = false;
    if res == Err(libc::EPERM) && m.sysfs {
        res = sys::mount(
            c"/sys".as_ptr(),
            target.as_ptr(),
            null(),
            libc::MS_BIND | libc::MS_REC,
            null(),
        );
        sysfs_bound = true;
    }
    if res == Err(libc::EINVAL) && m.devpts && plan.userns {
        // gid=5 is not mapped in a rootless namespace; retry without it.
        res = sys::mount(
            src,
            target.as_ptr(),
            fstype,
            m.flags,
            c"newinstance,ptmxmode=0666,mode=0620".as_ptr(),
        );
    }
    try_step!(fds, Step::Mount, i, res);
    sys::close(fd);
    let recursive_ro = sysfs_bound || m.recursive_ro;
    let remount = if sysfs_bound {
        m.flags | libc::MS_RDONLY
    } else {
        m.remount_flags & !libc::MS_REC
    };
    if remount == 0 && m.propagation == 0 && !recursive_ro {
        return;
    }
    // The O_PATH fd names the directory under the new mount; reopen to get
    // the mount itself before changing its flags or propagation.
    let fd = try_step!(
        fds,
        Step::Mount,
        i,
        sys::open_in_root(root, m.dest.as_c_str(), libc::O_PATH, 0)
    );
    let target = sys::fd_path(fd);
    if remount != 0 {
        // Bind mounts ignore most flags until remounted; keep the flags the
        // kernel locked (nodev, nosuid, ...) in user namespaces.
        try_step!(fds, Step::Mount, i, remount_bind(target.as_cstr(), remount));
    }
    if recursive_ro {
        try_step!(
            fds,
            Step::Mount,
            i,
            sys::make_readonly_recursive(target.as_cstr())
        );
    }
    if m.propagation != 0 {
        try_step!(
            fds,
            Step::Mount,
            i,
            sys::mount(null(), target.as_ptr(), null(), m.propagation, null())
        );
    }
    sys::close(fd);
}

fn statvfs_flags(path: &CStr) -> Result<c_ulong, Errno> {
    // SAFETY: statvfs fills the struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return Err(errno());
    }
    let mut f = 0;
    for (st_flag, ms) in [
        (libc::ST_RDONLY, libc::MS_RDONLY),
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if st.f_flag & st_flag != 0 {
            f |= ms;
        }
    }
    Ok(f)
}

fn remount_bind(target: &CStr, flags: c_ulong) -> Result<(), Errno> {
    let current = statvfs_flags(target)?;
    let f = (flags | current) & !(libc::MS_REC | libc::MS_BIND);
    let f = if flags & libc::MS_RDONLY == 0 {
        f & !libc::MS_RDONLY
    } else {
        f
    };
    sys::mount(
        null(),
        target.as_ptr(),
        null(),
        libc::MS_BIND | libc::MS_REMOUNT | f,
        null(),
    )
}

fn remount_readonly(target: &CStr, extra: c_ulong) -> Result<(), Errno> {
    remount_bind(target, extra | libc::MS_RDONLY)
}

/// Opens `rel` under `root` (as O_PATH), creating missing directories and,
/// for file targets, an empty file.
fn ensure_in_root(root: c_int, rel: &[u8], target: Target) -> Result<c_int, Errno> {
    let mut p = sys::PathBuf::new();
    p.push_bytes(rel)?;
    match sys::open_in_root(root, p.as_cstr(), libc::O_PATH, 0) {
        Ok(fd) => return Ok(fd),
        Err(libc::ENOENT) => {}
        Err(e) => return Err(e),
    }
    let mut start = 0;
    while start < rel.len() {
        let end = rel[start..]
            .iter()
            .position(|&c| c == b'/')
            .map_or(rel.len(), |i| start + i);
        let last = end == rel.len();
        let mut prefix = sys::PathBuf::new();
        prefix.push_bytes(&rel[..end])?;
        match sys::open_in_root(root, prefix.as_cstr(), libc::O_PATH, 0) {
            Ok(fd) => sys::close(fd),
            Err(libc::ENOENT) => {
                let parent = if start == 0 {
                    // SAFETY: dup of a valid fd.
                    unsafe { libc::fcntl(root, libc::F_DUPFD_CLOEXEC, 0) }
                } else {
                    let mut pp = sys::PathBuf::new();
                    pp.push_bytes(&rel[..start - 1])?;
                    sys::open_in_root(root, pp.as_cstr(), libc::O_PATH | libc::O_DIRECTORY, 0)?
                };
                let mut name = sys::PathBuf::new();
                name.push_bytes(&rel[start..end])?;
                // SAFETY: creating an entry relative to a directory fd.
                let rc = unsafe {
                    if last && target == Target::File {
                        let fd = libc::openat(
                            parent,
                            name.as_ptr(),
                            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                            0o644,
                        );
                        if fd >= 0 {
                            libc::close(fd);
                            0
                        } else {
                            -1
                        }
                    } else {
                        libc::mkdirat(parent, name.as_ptr(), 0o755)
                    }
                };
                let e = errno();
                sys::close(parent);
                if rc != 0 && e != libc::EEXIST {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
        start = end + 1;
    }
    sys::open_in_root(root, p.as_cstr(), libc::O_PATH, 0)
}

/// mkdir -p for an absolute path in the (already pivoted) container.
pub(super) fn mkdir_all(_dirfd: c_int, path: &[u8]) -> Result<(), Errno> {
    let mut p = sys::PathBuf::new();
    for (i, &c) in path.iter().enumerate() {
        if c == b'/' && i > 0 {
            // SAFETY: p is NUL-terminated.
            let rc = unsafe { libc::mkdir(p.as_ptr(), 0o755) };
            if rc != 0 && errno() != libc::EEXIST {
                return Err(errno());
            }
        }
        p.push_bytes(&[c])?;
    }
    // SAFETY: p is NUL-terminated.
    let rc = unsafe { libc::mkdir(p.as_ptr(), 0o755) };
    if rc != 0 && errno() != libc::EEXIST {
        return Err(errno());
    }
    Ok(())
}

const DEVICES: [(&CStr, u32, u32); 6] = [
    (c"null", 1, 3),
    (c"zero", 1, 5),
    (c"full", 1, 7),
    (c"random", 1, 8),
    (c"urandom", 1, 9),
    (c"tty", 5, 0),
];

const DEV_LINKS: [(&CStr, &CStr); 6] = [
    (c"/proc/self/fd", c"fd"),
    (c"/proc/self/fd/0", c"stdin"),
    (c"/proc/self/fd/1", c"stdout"),
    (c"/proc/self/fd/2", c"stderr"),
    (c"pts/ptmx", c"ptmx"),
    (c"/proc/kcore", c"core"),
];

/// The spec's own devices (`--device`): made with mknod, which needs
/// CAP_MKNOD in the host's user namespace (no bind fallback: the spec
/// names no host node to bind).
fn extra_devices(root: c_int, devices: &[crate::plan::ExtraDevice]) -> Result<(), Errno> {
    if devices.is_empty() {
        return Ok(());
    }
    let dev = sys::open_in_root(root, c"dev", libc::O_PATH | libc::O_DIRECTORY, 0)?;
    for d in devices {
        for p in &d.parents {
            // SAFETY: mkdirat relative to the container's /dev tmpfs.
            let rc = unsafe { libc::mkdirat(dev, p.as_ptr(), 0o755) };
            if rc != 0 && errno() != libc::EEXIST {
                let e = errno();
                sys::close(dev);
                return Err(e);
            }
        }
        // SAFETY: mknodat/fchmodat/fchownat relative to /dev, valid strings.
        let rc = unsafe {
            let mut rc = libc::mknodat(dev, d.name.as_ptr(), d.mode, d.rdev);
            // One of the runtime's own nodes: the spec's replaces it.
            if rc != 0 && errno() == libc::EEXIST && libc::unlinkat(dev, d.name.as_ptr(), 0) == 0 {
                rc = libc::mknodat(dev, d.name.as_ptr(), d.mode, d.rdev);
            }
            if rc == 0 {
                libc::fchmodat(dev, d.name.as_ptr(), d.mode & 0o777, 0);
                libc::fchownat(
                    dev,
                    d.name.as_ptr(),
                    d.uid,
                    d.gid,
                    libc::AT_SYMLINK_NOFOLLOW,
                );
            }
            rc
        };
        if rc != 0 {
            let e = errno();
            sys::close(dev);
            return Err(e);
        }
    }
    sys::close(dev);
    Ok(())
}

fn populate_dev(root: c_int, core: bool) -> Result<(), Errno> {
    let dev = sys::open_in_root(root, c"dev", libc::O_PATH | libc::O_DIRECTORY, 0)?;
    for (name, major, minor) in DEVICES {
        // SAFETY: mknodat relative to the fresh /dev tmpfs.
        let rc = unsafe {
            libc::mknodat(
                dev,
                name.as_ptr(),
                libc::S_IFCHR | 0o666,
                libc::makedev(major, minor),
            )
        };
        if rc != 0 {
            let e = errno();
            if e != libc::EPERM {
                sys::close(dev);
                return Err(e);
            }
            // No mknod in a user namespace: bind the host's node instead.
            let mut host = sys::PathBuf::new();
            host.push_bytes(b"/dev/")?;
            host.push_bytes(name.to_bytes())?;
            // SAFETY: creating an empty file to bind over.
            let fd = unsafe {
                libc::openat(
                    dev,
                    name.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o666,
                )
            };
            if fd < 0 {
                let e = errno();
                sys::close(dev);
                return Err(e);
            }
            let target = sys::fd_path(fd);
            let r = sys::mount(
                host.as_ptr(),
                target.as_ptr(),
                null(),
                libc::MS_BIND,
                null(),
            );
            sys::close(fd);
            if let Err(e) = r {
                sys::close(dev);
                return Err(e);
            }
        } else {
            // SAFETY: undo the umask on the new node.
            unsafe { libc::fchmodat(dev, name.as_ptr(), 0o666, 0) };
        }
    }
    for (target, name) in DEV_LINKS {
        if !core && name == c"core" {
            continue;
        }
        // SAFETY: symlinkat with constant strings.
        let rc = unsafe { libc::symlinkat(target.as_ptr(), dev, name.as_ptr()) };
        if rc != 0 && errno() != libc::EEXIST {
            let e = errno();
            sys::close(dev);
            return Err(e);
        }
    }
    sys::close(dev);
    Ok(())
}

fn write_file(path: &CStr, value: &[u8]) -> Result<(), Errno> {
    // SAFETY: open/close on a valid path; the fd is ours.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(errno());
    }
    let r = sys::write_all(fd, value);
    sys::close(fd);
    r
}

fn mask_path(p: &CStr) -> Result<(), Errno> {
    // SAFETY: stat into a local.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::stat(p.as_ptr(), &mut st) } != 0 {
        let e = errno();
        return if e == libc::ENOENT { Ok(()) } else { Err(e) };
    }
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        sys::mount(
            c"tmpfs".as_ptr(),
            p.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_RDONLY,
            null(),
        )
    } else {
        sys::mount(
            c"/dev/null".as_ptr(),
            p.as_ptr(),
            null(),
            libc::MS_BIND,
            null(),
        )
    }
}

fn readonly_path(p: &CStr) -> Result<(), Errno> {
    match sys::mount(
        p.as_ptr(),
        p.as_ptr(),
        null(),
        libc::MS_BIND | libc::MS_REC,
        null(),
    ) {
        Err(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
        Ok(()) => {}
    }
    remount_readonly(p, 0)
}
