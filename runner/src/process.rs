//! Parent side of the built-in runtime: clone the child with its namespaces,
//! map ids, wait for exec, then forward signals and reap.

use crate::child::{self, ChildFds, Step, FAILURE_LEN};
use crate::error::{ExitStatus, RunError};
use crate::plan::Plan;
use crate::sys;
use libc::c_int;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Signals the runner passes on to the container's init.
pub(crate) const FORWARDED: [c_int; 8] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCONT,
];

pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh fds owned by us.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub(crate) fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair fills two fds.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh fds owned by us.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Blocks the forwarded signals and SIGCHLD in the calling thread so they
/// can be read from a signalfd; restores the old mask on drop.
pub(crate) struct SignalBlock {
    old: libc::sigset_t,
    pub set: libc::sigset_t,
}

impl SignalBlock {
    pub(crate) fn new() -> Self {
        // SAFETY: sigset manipulation on locals.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in FORWARDED {
                libc::sigaddset(&mut set, s);
            }
            libc::sigaddset(&mut set, libc::SIGCHLD);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            SignalBlock { old, set }
        }
    }

    /// SIGCHLD alone: a waiter that forwards nothing (the signals the
    /// thread already blocks stay blocked, for another waiter to read).
    pub(crate) fn child_exits() -> Self {
        // SAFETY: sigset manipulation on locals.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGCHLD);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            SignalBlock { old, set }
        }
    }
}

impl Drop for SignalBlock {
    fn drop(&mut self) {
        // SAFETY: restoring the mask saved in new().
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// A cloned container child. Dropping it without `wait` kills and reaps it.
pub(crate) struct Child {
    pub pid: libc::pid_t,
    pub reaped: bool,
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            kill_and_reap(self.pid);
        }
    }
}

pub(crate) struct Started {
    pub child: Child,
    pub pty_master: Option<OwnedFd>,
}

/// `struct clone_args` of clone3(2), up to `cgroup` (Linux 5.7).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// A fork-like clone (no new stack) with `flags`: with `cgroup`, by
/// clone3 straight into that cgroup (see [`crate::cgroup::Cgroup::prepare`]),
/// else, or where clone3 cannot do that, by clone. Returns the pid (0 in
/// the child) and whether the child started in `cgroup`.
///
/// # Safety
/// As fork: the child must only make async-signal-safe calls.
unsafe fn clone_child(flags: c_int, cgroup: Option<&OwnedFd>) -> (libc::c_long, bool) {
    if let Some(cg) = cgroup {
        let args = CloneArgs {
            flags: flags as u32 as u64 | CLONE_INTO_CGROUP,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: cg.as_raw_fd() as u64,
            ..Default::default()
        };
        // SAFETY: args is a valid clone_args of the size given; stack 0
        // makes the child run on a copy of this stack, as fork.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        if pid >= 0 {
            return (pid, true);
        }
        // ENOSYS, E2BIG, EINVAL: no clone3 or no CLONE_INTO_CGROUP here;
        // ENODEV/ENOENT: the cgroup was removed meanwhile. The caller moves
        // the child in instead; any other error comes again below.
    }
    // SAFETY: a fork-like clone, as above.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    (pid, false)
}

/// Clones the child (into `cgroup` where it can), lets `before_go` (id
/// maps, cgroups; told whether the child is in `cgroup` already) act on
/// its pid, and returns once the container's program has been exec'd.
pub(crate) fn start(
    plan: &Plan,
    cgroup: Option<&OwnedFd>,
    before_go: impl FnOnce(libc::pid_t, bool) -> Result<(), RunError>,
) -> Result<Started, RunError> {
    let io_err = |what: &str| {
        let e = io::Error::last_os_error();
        RunError::io(what.to_string(), e)
    };
    let (sync_r, sync_w) = pipe().map_err(|e| RunError::io("pipe", e))?;
    let (err_r, err_w) = pipe().map_err(|e| RunError::io("pipe", e))?;
    let pty = if plan.terminal {
        Some(socketpair().map_err(|e| RunError::io("socketpair", e))?)
    } else {
        None
    };
    // Opened here, not in the child: the child only makes the setns call.
    let netns = match &plan.join_netns {
        Some(p) => {
            // SAFETY: a NUL-terminated path; the descriptor is owned below.
            let fd = unsafe { libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
            if fd < 0 {
                return Err(io_err(&format!(
                    "open network namespace {}",
                    p.to_string_lossy()
                )));
            }
            // SAFETY: just opened, owned from here.
            Some(unsafe { OwnedFd::from_raw_fd(fd) })
        }
        None => None,
    };
    let fds = ChildFds {
        netns: netns.as_ref().map_or(-1, |f| f.as_raw_fd()),
        sync_read: sync_r.as_raw_fd(),
        err_write: err_w.as_raw_fd(),
        pty_sock: pty.as_ref().map_or(-1, |p| p.1.as_raw_fd()),
        // SAFETY: getpid cannot fail.
        parent: unsafe { libc::getpid() },
    };
    // SAFETY: a fork-like clone (no new stack): the child runs child::run,
    // which only makes syscalls on data prepared above, and never returns.
    let (pid, placed) = unsafe { clone_child(plan.clone_flags, cgroup) };
    if pid < 0 {
        return Err(io_err("clone with new namespaces"));
    }
    if pid == 0 {
        child::run(plan, &fds);
    }
    let child = Child {
        pid: pid as libc::pid_t,
        reaped: false,
    };
    drop(sync_r);
    drop(err_w);
    let pty_sock = pty.map(|(parent, child_end)| {
        drop(child_end);
        parent
    });
    if plan.wait_for_parent {
        before_go(child.pid, placed)?;
        sys::write_all(sync_w.as_raw_fd(), b"G")
            .map_err(|e| RunError::io("start container", io::Error::from_raw_os_error(e)))?;
    }
    drop(sync_w);

    let pty_master = match &pty_sock {
        Some(s) => match sys::recv_fd(s.as_raw_fd()) {
            // SAFETY: a fresh fd received from the child.
            Ok(Some(fd)) => Some(unsafe { OwnedFd::from_raw_fd(fd) }),
            Ok(None) => None,
            Err(e) => return Err(RunError::io("receive pty", io::Error::from_raw_os_error(e))),
        },
        None => None,
    };

    let mut buf = [0u8; FAILURE_LEN];
    let n = sys::read_full(err_r.as_raw_fd(), &mut buf)
        .map_err(|e| RunError::io("read container status", io::Error::from_raw_os_error(e)))?;
    if n == 0 {
        if plan.terminal && pty_master.is_none() {
            return Err(RunError::Setup {
                step: "terminal".into(),
                source: io::Error::other("no pty received"),
            });
        }
        return Ok(Started { child, pty_master });
    }
    if n != FAILURE_LEN {
        return Err(RunError::Setup {
            step: "unknown".into(),
            source: io::Error::other("container child exited without a status"),
        });
    }
    Err(failure_error(plan, &buf))
}

pub(crate) fn failure_error(plan: &Plan, buf: &[u8; FAILURE_LEN]) -> RunError {
    let (step, idx, errno) = child::decode_failure(buf);
    let source = io::Error::from_raw_os_error(errno);
    let idx = idx as usize;
    let Some(step) = step else {
        return RunError::Setup {
            step: "unknown step".into(),
            source,
        };
    };
    let step_text = match step {
        Step::Exec => {
            let path = plan
                .exec_candidates
                .get(idx)
                .map(|c| c.to_string_lossy().into_owned())
                .unwrap_or_default();
            let arg0 = plan
                .argv
                .first()
                .map(|c| c.to_string_lossy().into_owned())
                .unwrap_or_default();
            return match errno {
                libc::ENOENT | libc::ENOTDIR => RunError::NotFound { path: arg0 },
                libc::EACCES | libc::ENOEXEC | libc::EISDIR | libc::ETXTBSY | libc::EPERM => {
                    RunError::CannotExecute { path, source }
                }
                _ => RunError::CannotExecute { path, source },
            };
        }
        Step::Mount | Step::MountTarget => {
            let dest = plan
                .mounts
                .get(idx)
                .map(|m| m.display.clone())
                .unwrap_or_default();
            format!(
                "{} {dest}",
                if step == Step::Mount {
                    "mount"
                } else {
                    "create mount point"
                }
            )
        }
        Step::Masked => format!("mask {:?}", plan.masked.get(idx)),
        Step::Sysctl => format!("sysctl {:?}", plan.sysctls.get(idx).map(|s| &s.0)),
        Step::ReadonlyPath => format!("make {:?} read-only", plan.readonly_paths.get(idx)),
        Step::Workdir | Step::Chdir => format!("working directory {}", plan.cwd.to_string_lossy()),
        Step::OverlayMount => child::OVERLAY_STEP.to_string(),
        Step::SetUid => format!("setuid {}", plan.uid),
        Step::SetGid => format!("setgid {}", plan.gid),
        Step::Rlimit => format!("rlimit #{idx}"),
        Step::Capabilities => format!("capabilities (cap {idx})"),
        Step::CgroupNs => "cgroup namespace".to_string(),
        Step::CgroupJoin => format!("join the container's cgroup #{idx}"),
        Step::Setns => format!("join the container's namespace #{idx}"),
        Step::Fork => "fork into the container".to_string(),
        Step::JoinNetns => format!(
            "join network namespace {}",
            plan.join_netns
                .as_deref()
                .map_or_else(String::new, |p| p.to_string_lossy().into_owned())
        ),
        other => format!("{other:?}"),
    };
    RunError::Setup {
        step: step_text,
        source,
    }
}

pub(crate) fn signalfd(block: &SignalBlock) -> Result<OwnedFd, RunError> {
    // SAFETY: signalfd on a valid mask.
    let fd = unsafe { libc::signalfd(-1, &block.set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
    if fd < 0 {
        return Err(RunError::io("signalfd", io::Error::last_os_error()));
    }
    // SAFETY: a fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads pending signals: forwards them to `pid` and reports whether a
/// SIGCHLD arrived. SIGWINCH goes to `on_winch` instead when given.
pub(crate) fn drain_signals(sfd: c_int, pid: libc::pid_t, on_winch: Option<&dyn Fn()>) -> bool {
    let mut chld = false;
    loop {
        // SAFETY: signalfd_siginfo is plain data.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: reading one record into info.
        let n = unsafe { libc::read(sfd, &mut info as *mut _ as *mut libc::c_void, size) };
        if n != size as isize {
            return chld;
        }
        let sig = info.ssi_signo as c_int;
        if sig == libc::SIGCHLD {
            chld = true;
        } else if sig == libc::SIGWINCH {
            if let Some(f) = on_winch {
                f();
            }
        } else {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid, sig) };
        }
    }
}

pub(crate) fn try_reap(child: &mut Child) -> Option<ExitStatus> {
    loop {
        let mut st = 0;
        // SAFETY: waitpid on our child.
        let r = unsafe { libc::waitpid(child.pid, &mut st, libc::WNOHANG) };
        if r == child.pid {
            if libc::WIFSTOPPED(st) {
                release_traced(child.pid, st);
                continue;
            }
            child.reaped = true;
            return Some(ExitStatus::from_wait(st));
        } else if r < 0 {
            child.reaped = true;
            return Some(ExitStatus::Exited(255));
        }
        return None;
    }
}

/// Kills our child and waits until it is gone (not merely stopped).
pub(crate) fn kill_and_reap(pid: libc::pid_t) {
    // SAFETY: signalling and reaping our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        loop {
            let mut st = 0;
            let r = libc::waitpid(pid, &mut st, 0);
            if r < 0 && sys::errno() == libc::EINTR {
                continue;
            }
            if r == pid && libc::WIFSTOPPED(st) {
                continue;
            }
            break;
        }
    }
}

/// The container's init is the runner's child, so a `ptrace(PTRACE_TRACEME)`
/// there makes the runner its tracer: each signal it then receives stops it
/// and is reported to waitpid as a stop (not an exit). Let it go on as if it
/// had no tracer: detach, delivering the signal it stopped for. The SIGTRAP
/// the kernel sends a tracee on exec (as SI_USER) would not exist untraced,
/// so it is dropped.
fn release_traced(pid: libc::pid_t, status: c_int) {
    let mut sig = libc::WSTOPSIG(status);
    if sig == libc::SIGTRAP {
        // SAFETY: siginfo_t is plain data filled by PTRACE_GETSIGINFO.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: the tracee is stopped; the kernel writes into info.
        let rc = unsafe {
            libc::ptrace(
                libc::PTRACE_GETSIGINFO,
                pid,
                std::ptr::null_mut::<libc::c_void>(),
                &mut info as *mut libc::siginfo_t,
            )
        };
        if rc == 0 && info.si_code == libc::SI_USER {
            sig = 0;
        }
    }
    // SAFETY: detaching a stopped tracee; failure (it was killed meanwhile)
    // leaves nothing to do.
    unsafe {
        libc::ptrace(
            libc::PTRACE_DETACH,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            sig as libc::c_long as *mut libc::c_void,
        )
    };
}

/// A pidfd that becomes readable when `pid` exits.
///
/// SIGCHLD alone is not enough once several threads wait for containers:
/// the signal is process-wide and does not queue, so one waiter can consume
/// (or another thread can discard) the only notice of another's exit.
pub(crate) struct ExitWatch {
    fd: Option<OwnedFd>,
}

impl ExitWatch {
    pub(crate) fn new(pid: libc::pid_t) -> Self {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        ExitWatch {
            // SAFETY: a fresh fd owned by us.
            fd: (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as c_int) }),
        }
    }

    /// For poll: the pidfd, or -1 (ignored) without one.
    pub(crate) fn raw(&self) -> c_int {
        self.fd.as_ref().map_or(-1, |f| f.as_raw_fd())
    }

    /// Poll timeout: forever with a pidfd, else a short tick so an exit
    /// whose SIGCHLD went elsewhere is still noticed.
    pub(crate) fn timeout(&self) -> c_int {
        if self.fd.is_some() {
            -1
        } else {
            50
        }
    }
}

/// Waits for the child while forwarding signals (no terminal).
pub(crate) fn wait_forwarding(
    child: &mut Child,
    block: &SignalBlock,
) -> Result<ExitStatus, RunError> {
    let sfd = signalfd(block)?;
    let exit = ExitWatch::new(child.pid);
    loop {
        if let Some(st) = try_reap(child) {
            return Ok(st);
        }
        let mut pfds = [sys::pollin(sfd.as_raw_fd()), sys::pollin(exit.raw())];
        let rc = sys::poll(&mut pfds, exit.timeout());
        if rc < 0 && sys::errno() != libc::EINTR {
            return Err(RunError::io("poll", io::Error::last_os_error()));
        }
        drain_signals(sfd.as_raw_fd(), child.pid, None);
    }
}
