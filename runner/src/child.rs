//! The container child: runs between `clone` and `execve`.
//!
//! The parent may be multi-threaded, so this code must not allocate or take
//! locks (another thread may have held them at clone time). It only reads the
//! prepared [`Plan`], makes syscalls and reports a failure as a fixed-size
//! [`Failure`] record on the error pipe, whose write end is close-on-exec: EOF
//! there means the exec succeeded.

use crate::plan::{MountOp, Plan, Target};
use crate::rootfs::RootMount;
use crate::sys::{self, errno, Errno};
use libc::{c_int, c_ulong};
use std::ffi::CStr;
use std::ptr::null;

/// The step that failed, sent to the parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Step {
    Sync = 1,
    Propagation,
    RootMount,
    OverlayMount,
    OpenRoot,
    MountTarget,
    Mount,
    Devices,
    PivotRoot,
    Sysctl,
    Masked,
    ReadonlyPath,
    ReadonlyRoot,
    Hostname,
    Loopback,
    Rlimit,
    Workdir,
    Stdio,
    Terminal,
    Capabilities,
    Groups,
    SetGid,
    SetUid,
    NoNewPrivs,
    Chdir,
    Exec,
}

impl Step {
    pub(crate) fn from_u32(v: u32) -> Option<Step> {
        use Step::*;
        const ALL: [Step; 26] = [
            Sync,
            Propagation,
            RootMount,
            OverlayMount,
            OpenRoot,
            MountTarget,
            Mount,
            Devices,
            PivotRoot,
            Sysctl,
            Masked,
            ReadonlyPath,
            ReadonlyRoot,
            Hostname,
            Loopback,
            Rlimit,
            Workdir,
            Stdio,
            Terminal,
            Capabilities,
            Groups,
            SetGid,
            SetUid,
            NoNewPrivs,
            Chdir,
            Exec,
        ];
        ALL.iter().copied().find(|s| *s as u32 == v)
    }
}

/// How the parent names an overlay failure, to fall back to copying.
pub(crate) const OVERLAY_STEP: &str = "overlay mount";

/// A failure record: step, index into the plan's list for that step, errno.
pub(crate) const FAILURE_LEN: usize = 12;

pub(crate) fn decode_failure(b: &[u8; FAILURE_LEN]) -> (Option<Step>, u32, Errno) {
    let w = |i: usize| [b[i], b[i + 1], b[i + 2], b[i + 3]];
    (
        Step::from_u32(u32::from_ne_bytes(w(0))),
        u32::from_ne_bytes(w(4)),
        i32::from_ne_bytes(w(8)),
    )
}

pub(crate) struct ChildFds {
    pub sync_read: c_int,
    pub err_write: c_int,
    pub pty_sock: c_int,
}

fn fail(fds: &ChildFds, step: Step, index: usize, err: Errno) -> ! {
    let mut b = [0u8; FAILURE_LEN];
    b[0..4].copy_from_slice(&(step as u32).to_ne_bytes());
    b[4..8].copy_from_slice(&(index as u32).to_ne_bytes());
    b[8..12].copy_from_slice(&err.to_ne_bytes());
    let _ = sys::write_all(fds.err_write, &b);
    // SAFETY: leaving the child without running any parent-owned destructors.
    unsafe { libc::_exit(125) }
}

macro_rules! try_step {
    ($fds:expr, $step:expr, $idx:expr, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(err) => fail($fds, $step, $idx, err),
        }
    };
}

/// Entry point of the cloned child. Never returns.
pub(crate) fn run(plan: &Plan, fds: &ChildFds) -> ! {
    reset_signals();
    if plan.kill_on_parent_death {
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    }
    if plan.wait_for_parent {
        let mut b = [0u8; 1];
        match sys::read_full(fds.sync_read, &mut b) {
            Ok(1) if b[0] == b'G' => {}
            // The parent aborted (or died): nothing left to do.
            Ok(_) => unsafe { libc::_exit(125) },
            Err(e) => fail(fds, Step::Sync, 0, e),
        }
    }
    sys::close(fds.sync_read);
    if plan.userns {
        // Become root of the new user namespace now that it is mapped.
        // SAFETY: plain id syscalls.
        unsafe {
            libc::setresgid(0, 0, 0);
            libc::setresuid(0, 0, 0);
        }
    }
    // A new session: tty-generated signals reach the container only via the
    // parent's forwarding, as with docker.
    // SAFETY: setsid has no arguments.
    unsafe { libc::setsid() };

    try_step!(
        fds,
        Step::Propagation,
        0,
        sys::mount(null(), c"/".as_ptr(), null(), plan.root_propagation, null())
    );
    setup_root(plan, fds);

    if let Some(h) = &plan.hostname {
        // SAFETY: valid buffer and length.
        let rc = unsafe { libc::sethostname(h.as_ptr(), h.as_bytes().len()) };
        if rc != 0 {
            fail(fds, Step::Hostname, 0, errno());
        }
    }
    if plan.loopback_up {
        try_step!(fds, Step::Loopback, 0, loopback_up());
    }
    for (i, (res, lim)) in plan.rlimits.iter().enumerate() {
        // SAFETY: valid rlimit pointer.
        if unsafe { libc::setrlimit(*res as _, lim) } != 0 {
            fail(fds, Step::Rlimit, i, errno());
        }
    }
    // Docker creates a missing working directory, as root, before switching user.
    try_step!(
        fds,
        Step::Workdir,
        0,
        mkdir_all(libc::AT_FDCWD, plan.cwd.to_bytes())
    );
    if plan.terminal {
        try_step!(fds, Step::Terminal, 0, setup_terminal(plan, fds.pty_sock));
    } else if let Some(stdio) = &plan.stdio {
        try_step!(fds, Step::Stdio, 0, redirect_stdio(stdio));
    }
    set_identity(plan, fds);
    // SAFETY: chdir with a valid C string.
    if unsafe { libc::chdir(plan.cwd.as_ptr()) } != 0 {
        fail(fds, Step::Chdir, 0, errno());
    }
    if plan.no_new_privs {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            fail(fds, Step::NoNewPrivs, 0, errno());
        }
    }
    if let Some(mask) = plan.umask {
        // SAFETY: umask cannot fail.
        unsafe { libc::umask(mask as libc::mode_t) };
    }
    exec(plan, fds)
}

fn reset_signals() {
    // SAFETY: sigset manipulation on a local and resetting dispositions; Rust
    // ignores SIGPIPE by default and an ignored signal stays ignored over exec.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in 1..32 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

fn setup_root(plan: &Plan, fds: &ChildFds) {
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
    let remount = if sysfs_bound {
        m.flags | libc::MS_RDONLY
    } else {
        m.remount_flags & !libc::MS_REC
    };
    if remount == 0 && m.propagation == 0 {
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
fn mkdir_all(_dirfd: c_int, path: &[u8]) -> Result<(), Errno> {
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

fn loopback_up() -> Result<(), Errno> {
    // SAFETY: an ioctl on a throwaway socket with a zeroed ifreq.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err(errno());
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        ifr.ifr_name[0] = b'l' as libc::c_char;
        ifr.ifr_name[1] = b'o' as libc::c_char;
        ifr.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        let rc = libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr);
        let e = errno();
        libc::close(s);
        if rc != 0 {
            return Err(e);
        }
    }
    Ok(())
}

/// Opens a pty from the container's own devpts, makes it the controlling
/// terminal and stdio, and hands the master to the parent.
fn setup_terminal(plan: &Plan, sock: c_int) -> Result<(), Errno> {
    // SAFETY: plain fd syscalls on fds this function owns.
    unsafe {
        let master = libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if master < 0 {
            return Err(errno());
        }
        let unlock: c_int = 0;
        if libc::ioctl(master, libc::TIOCSPTLCK, &unlock) != 0 {
            return Err(errno());
        }
        let slave = libc::ioctl(master, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY);
        if slave < 0 {
            return Err(errno());
        }
        if let Some(ws) = &plan.winsize {
            libc::ioctl(slave, libc::TIOCSWINSZ, ws);
        }
        if libc::ioctl(slave, libc::TIOCSCTTY, 0) != 0 {
            return Err(errno());
        }
        for fd in 0..3 {
            if libc::dup2(slave, fd) < 0 {
                return Err(errno());
            }
        }
        if slave > 2 {
            libc::close(slave);
        }
        sys::send_fd(sock, master)?;
        libc::close(master);
        libc::close(sock);
    }
    Ok(())
}

/// Moves the caller's descriptors onto 0, 1, 2 (via high copies first, so a
/// descriptor that is already one of 0..2 is not clobbered).
fn redirect_stdio(fds: &[c_int; 3]) -> Result<(), Errno> {
    let mut high = [-1; 3];
    for (i, fd) in fds.iter().enumerate() {
        // SAFETY: duplicating caller-owned descriptors.
        high[i] = unsafe { libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 10) };
        if high[i] < 0 {
            return Err(errno());
        }
    }
    for (i, fd) in high.iter().enumerate() {
        // SAFETY: dup2 onto the standard descriptors.
        if unsafe { libc::dup2(*fd, i as c_int) } < 0 {
            return Err(errno());
        }
        sys::close(*fd);
    }
    Ok(())
}

fn set_identity(plan: &Plan, fds: &ChildFds) {
    // SAFETY: prctl/setgroups/setres*id with valid arguments.
    unsafe {
        if let Some(caps) = &plan.caps {
            // Keep the permitted set across the uid change; it is cut below.
            libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0);
            for cap in 0..=plan.last_cap {
                if caps.bounding & (1u64 << cap) == 0
                    && libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) != 0
                    && errno() != libc::EINVAL
                {
                    fail(fds, Step::Capabilities, cap as usize, errno());
                }
            }
        }
        // setgroups is denied in a user namespace mapped without newgidmap.
        if libc::setgroups(plan.groups.len(), plan.groups.as_ptr()) != 0
            && !(plan.userns && plan.groups.is_empty())
        {
            fail(fds, Step::Groups, 0, errno());
        }
        if libc::setresgid(plan.gid, plan.gid, plan.gid) != 0 {
            fail(fds, Step::SetGid, 0, errno());
        }
        if libc::setresuid(plan.uid, plan.uid, plan.uid) != 0 {
            fail(fds, Step::SetUid, 0, errno());
        }
        if let Some(caps) = &plan.caps {
            try_step!(
                fds,
                Step::Capabilities,
                64,
                sys::capset(caps.effective, caps.permitted, caps.inheritable)
            );
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as c_ulong,
                0,
                0,
                0,
            );
            for cap in 0..=plan.last_cap {
                if caps.ambient & (1u64 << cap) != 0 {
                    // Ambient raises fail unless also permitted+inheritable;
                    // runc ignores those failures too.
                    libc::prctl(
                        libc::PR_CAP_AMBIENT,
                        libc::PR_CAP_AMBIENT_RAISE as c_ulong,
                        cap as c_ulong,
                        0,
                        0,
                    );
                }
            }
        }
    }
}

fn exec(plan: &Plan, fds: &ChildFds) -> ! {
    // Like execvp: remember EACCES but keep looking; report the most telling errno.
    let mut best_err = libc::ENOENT;
    let mut best_idx = 0;
    for (i, path) in plan.exec_candidates.iter().enumerate() {
        // SAFETY: NUL-terminated argv/envp arrays prepared by the parent.
        unsafe {
            libc::execve(
                path.as_ptr(),
                plan.argv_ptrs.as_ptr(),
                plan.env_ptrs.as_ptr(),
            )
        };
        let e = errno();
        match e {
            libc::ENOENT | libc::ENOTDIR => {}
            libc::EACCES => {
                best_err = e;
                best_idx = i;
            }
            _ => fail(fds, Step::Exec, i, e),
        }
    }
    fail(fds, Step::Exec, best_idx, best_err)
}
