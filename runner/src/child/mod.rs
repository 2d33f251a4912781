//! The container child: runs between `clone` and `execve`.
//!
//! The parent may be multi-threaded, so this code must not allocate or take
//! locks (another thread may have held them at clone time). It only reads the
//! prepared [`Plan`], makes syscalls and reports a failure as a fixed-size
//! [`Failure`] record on the error pipe, whose write end is close-on-exec: EOF
//! there means the exec succeeded.

use crate::plan::Plan;
use crate::sys::{self, errno, Errno};
use libc::{c_int, c_ulong};
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
    Seccomp,
    Chdir,
    Exec,
    CgroupNs,
    CgroupJoin,
    Setns,
    Fork,
    JoinNetns,
}

impl Step {
    pub(crate) fn from_u32(v: u32) -> Option<Step> {
        use Step::*;
        const ALL: [Step; 32] = [
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
            Seccomp,
            Chdir,
            Exec,
            CgroupNs,
            CgroupJoin,
            Setns,
            Fork,
            JoinNetns,
        ];
        ALL.iter().copied().find(|s| *s as u32 == v)
    }
}

const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;

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
    /// The network namespace to join, or -1.
    pub netns: c_int,
    /// The runner's pid, to notice it died before the death signal was armed.
    pub parent: libc::pid_t,
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

// After the macro: textual scoping makes it visible inside.
mod fs;
mod join;
use fs::{mkdir_all, setup_root};
pub(crate) use join::{run as run_join, JoinFds};

/// Entry point of the cloned child. Never returns.
pub(crate) fn run(plan: &Plan, fds: &ChildFds) -> ! {
    reset_signals();
    if plan.kill_on_parent_death {
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
        // Without a new pid namespace, a changed parent means the runner died
        // before the death signal was armed. (Inside one, getppid() is 0.)
        // SAFETY: getppid cannot fail.
        let ppid = unsafe { libc::getppid() };
        if ppid != fds.parent && ppid != 0 {
            // SAFETY: exiting the child.
            unsafe { libc::_exit(125) };
        }
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
            sys::setresgid(0);
            sys::setresuid(0);
        }
    }
    if plan.cgroupns {
        // SAFETY: unshare with a constant flag.
        if unsafe { libc::unshare(libc::CLONE_NEWCGROUP) } != 0 {
            fail(fds, Step::CgroupNs, 0, errno());
        }
    }
    // Before /sys is mounted, so that it shows the joined namespace.
    if fds.netns >= 0 {
        // SAFETY: setns on a descriptor the parent opened.
        if unsafe { libc::setns(fds.netns, libc::CLONE_NEWNET) } != 0 {
            fail(fds, Step::JoinNetns, 0, errno());
        }
    }
    new_session();

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
    // Docker creates a missing working directory, as root, before switching user.
    try_step!(
        fds,
        Step::Workdir,
        0,
        mkdir_all(libc::AT_FDCWD, plan.cwd.to_bytes())
    );
    process_setup(plan, fds)
}

/// A new session keyring and session (both an init and an exec'd process
/// get them).
fn new_session() {
    // A fresh anonymous session keyring: otherwise the container shares
    // the runner's (or uid 0's user-session keyring), and a container
    // whose seccomp profile lets keyctl through could read or plant keys
    // there. Best effort, as runc: kernels without keys or a user out of
    // key quota (rootless) keep the old behaviour.
    // SAFETY: keyctl with integer arguments and a null name.
    unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    // A new session: tty-generated signals reach the container only via the
    // parent's forwarding, as with docker.
    // SAFETY: setsid has no arguments.
    unsafe { libc::setsid() };
}

/// What an init and an exec'd process both do once inside the container:
/// limits, standard streams, seccomp, identity, working directory, exec.
fn process_setup(plan: &Plan, fds: &ChildFds) -> ! {
    for (i, (res, lim)) in plan.rlimits.iter().enumerate() {
        // SAFETY: valid rlimit pointer.
        if unsafe { libc::setrlimit(*res as _, lim) } != 0 {
            fail(fds, Step::Rlimit, i, errno());
        }
    }
    if plan.terminal {
        try_step!(fds, Step::Terminal, 0, setup_terminal(plan, fds.pty_sock));
    } else if let Some(stdio) = &plan.stdio {
        try_step!(fds, Step::Stdio, 0, redirect_stdio(stdio));
    }
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: do it
    // while the capabilities are still there (as runc does).
    if let (Some(f), false) = (&plan.seccomp, plan.no_new_privs) {
        try_step!(fds, Step::Seccomp, 0, install_seccomp(f));
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
    if let (Some(f), true) = (&plan.seccomp, plan.no_new_privs) {
        try_step!(fds, Step::Seccomp, 0, install_seccomp(f));
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
        if sys::setgroups(&plan.groups) != 0 && !(plan.userns && plan.groups.is_empty()) {
            fail(fds, Step::Groups, 0, errno());
        }
        if sys::setresgid(plan.gid) != 0 {
            fail(fds, Step::SetGid, 0, errno());
        }
        if sys::setresuid(plan.uid) != 0 {
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

fn install_seccomp(f: &crate::seccomp::Filter) -> Result<(), Errno> {
    let prog = libc::sock_fprog {
        len: f.prog.len() as libc::c_ushort,
        filter: f.prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prog points at the plan's instructions for the call's duration.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            f.flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        return Err(errno());
    }
    Ok(())
}

fn exec(plan: &Plan, fds: &ChildFds) -> ! {
    // Descriptors the runner's caller left open must not reach the
    // container: mark everything above stdio close-on-exec.
    // SAFETY: close_range only changes descriptor flags.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
        )
    };
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
