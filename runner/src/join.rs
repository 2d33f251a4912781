//! `exec`: runs a process of a spec inside a running container, joining
//! its init's cgroups and namespaces instead of making new ones. The
//! plan is built as for an init (the same capabilities, seccomp filter,
//! no_new_privs, rlimits and user), minus what only an init does (root,
//! mounts, hostname, sysctls); the device rules come with the cgroup.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use oci_spec::runtime::Spec;

use crate::child::{self, ChildFds, FAILURE_LEN};
use crate::error::RunError;
use crate::plan::{self, Plan};
use crate::process::{self, Child, Started};
use crate::rootfs::RootMount;
use crate::{cgroup, sys, Container, Stdio, Waiter};

/// How to run a process in a running container.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// The container's init as seen from the host.
    pub init_pid: i32,
    pub stdio: Stdio,
    /// Leave the process running when the caller exits (`exec -d`).
    pub detach: bool,
    /// Every capability (`exec --privileged`); the seccomp filter and the
    /// device rules stay the container's, as with docker.
    pub privileged: bool,
    /// Pass the signals the caller receives on to the process (an exec
    /// the user runs). Off for a health probe run beside a container's
    /// own waiter, whose signals they are.
    pub forward_signals: bool,
}

/// The namespaces `exec` enters, user first (it grants the rights to
/// enter the others), mount last (it changes the root).
const NAMESPACES: [&str; 7] = ["user", "cgroup", "ipc", "uts", "net", "pid", "mnt"];

/// Starts `spec`'s process inside the container whose init is
/// `opts.init_pid` and returns once it has been exec'd (so a missing or
/// non-executable program comes back as [`RunError::NotFound`] /
/// [`RunError::CannotExecute`]). Wait for it with [`Container::wait`].
pub fn exec(spec: &Spec, opts: &ExecOptions) -> Result<Container, RunError> {
    let block = match opts.forward_signals {
        true => process::SignalBlock::new(),
        false => process::SignalBlock::child_exits(),
    };
    let mut plan = plan_for(spec, opts.detach)?;
    if opts.privileged {
        // Every capability this process may hand on (its bounding set).
        let all = crate::caps::bounding()
            .iter()
            .filter_map(|n| crate::caps::number(n))
            .fold(0u64, |m, c| m | 1 << c);
        let ambient = plan.caps.map_or(0, |c| c.ambient);
        plan.caps = Some(crate::plan::CapSets {
            bounding: all,
            effective: all,
            permitted: all,
            inheritable: all,
            ambient,
        });
    }
    plan.stdio = match opts.stdio {
        Stdio::Inherit => None,
        Stdio::Fds {
            stdin,
            stdout,
            stderr,
        } => Some([stdin, stdout, stderr]),
    };
    let cgroups = cgroup::procs_files_of(opts.init_pid)?;
    let namespaces = open_namespaces(opts.init_pid)?;
    let started = start(&plan, &cgroups, &namespaces)?;
    let io = match opts.stdio {
        Stdio::Inherit => (0, 1),
        Stdio::Fds { stdin, stdout, .. } => (stdin, stdout),
    };
    Ok(Container {
        child: started.child,
        block: (!opts.detach).then_some(block),
        waiter: Waiter::Builtin {
            pty: started.pty_master,
            io,
        },
        cgroup: cgroup::Cgroup::default(),
    })
}

/// Resolves `user` (`name`, `uid`, `name:group`, ...) against the
/// running container's own `/etc/passwd` and `/etc/group`, read inside its
/// root (symlinks there cannot lead to the host's files).
pub fn resolve_user(init_pid: i32, user: &str) -> Result<crate::user::ResolvedUser, RunError> {
    let root_path = format!("/proc/{init_pid}/root");
    let root = std::fs::File::open(&root_path)
        .map_err(|e| RunError::io(format!("open {root_path}"), e))?;
    let read = |rel: &std::ffi::CStr| -> Option<String> {
        use std::io::Read as _;
        let fd = sys::open_in_root(root.as_raw_fd(), rel, libc::O_RDONLY, 0).ok()?;
        // SAFETY: a fresh descriptor owned here.
        let f = unsafe { std::fs::File::from_raw_fd(fd) };
        let mut s = String::new();
        // Account databases are small; a huge one is not read whole.
        f.take(16 << 20).read_to_string(&mut s).ok()?;
        Some(s)
    };
    let passwd = read(c"etc/passwd");
    let group = read(c"etc/group");
    crate::user::resolve_from(passwd.as_deref(), group.as_deref(), user)
}

/// Checks that `spec`'s program exists and is executable in the running
/// container, as the built-in runtime reports it: [`RunError::NotFound`]
/// (127) or [`RunError::CannotExecute`] (126). For runtimes whose own
/// failure says neither (runc exits 255 for both).
pub fn check_executable(init_pid: i32, spec: &Spec) -> Result<(), RunError> {
    use std::os::unix::fs::PermissionsExt as _;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| RunError::InvalidSpec("spec has no process".into()))?;
    let args = process.args().clone().unwrap_or_default();
    let arg0 = args.first().cloned().unwrap_or_default();
    let env = process.env().clone().unwrap_or_default();
    let root_path = format!("/proc/{init_pid}/root");
    let root = std::fs::File::open(&root_path)
        .map_err(|e| RunError::io(format!("open {root_path}"), e))?;
    let mut denied = None;
    for cand in plan::exec_candidates(&arg0, &env) {
        let mut path = cand.clone();
        if path.first() != Some(&b'/') {
            let mut p = process.cwd().as_os_str().as_encoded_bytes().to_vec();
            p.push(b'/');
            p.extend_from_slice(&path);
            path = p;
        }
        let Ok(c) = CString::new(path) else { continue };
        let Ok(fd) = sys::open_in_root(root.as_raw_fd(), &c, libc::O_PATH, 0) else {
            continue;
        };
        // SAFETY: a fresh descriptor owned here.
        let f = unsafe { std::fs::File::from_raw_fd(fd) };
        let Ok(md) = f.metadata() else { continue };
        if md.is_file() && md.permissions().mode() & 0o111 != 0 {
            return Ok(());
        }
        denied.get_or_insert(String::from_utf8_lossy(&cand).into_owned());
    }
    match denied {
        Some(path) => Err(RunError::CannotExecute {
            path,
            source: io::Error::from_raw_os_error(libc::EACCES),
        }),
        None => Err(RunError::NotFound { path: arg0 }),
    }
}

/// The init's plan without what only an init does.
fn plan_for(spec: &Spec, detach: bool) -> Result<Plan, RunError> {
    let mut spec = spec.clone();
    spec.set_mounts(None);
    spec.set_hostname(None);
    spec.set_hooks(None);
    if let Some(mut l) = spec.linux().clone() {
        l.set_namespaces(None)
            .set_sysctl(None)
            .set_masked_paths(None)
            .set_readonly_paths(None)
            .set_devices(None);
        spec.set_linux(Some(l));
    }
    if let Some(mut r) = spec.root().clone() {
        r.set_readonly(Some(false));
        spec.set_root(Some(r));
    }
    let mut plan = plan::build(plan::PlanInputs {
        spec: &spec,
        root: RootMount::Bind {
            path: CString::from(c"/"),
        },
        rootless: false,
        detach,
        needs_parent_sync: false,
    })?;
    plan.userns = false;
    plan.wait_for_parent = false;
    Ok(plan)
}

/// `/proc/<pid>/ns/*` for each namespace the init does not share with
/// this process.
fn open_namespaces(pid: i32) -> Result<Vec<OwnedFd>, RunError> {
    let mut out = Vec::new();
    for ns in NAMESPACES {
        let theirs = format!("/proc/{pid}/ns/{ns}");
        let Ok(target) = std::fs::read_link(&theirs) else {
            // A kernel without this namespace type.
            continue;
        };
        if std::fs::read_link(format!("/proc/self/ns/{ns}")).ok() == Some(target) {
            continue;
        }
        let f =
            std::fs::File::open(&theirs).map_err(|e| RunError::io(format!("open {theirs}"), e))?;
        out.push(OwnedFd::from(f));
    }
    Ok(out)
}

/// Clones the joining child, learns the pid of the process it cloned into
/// the container, and returns once that one has exec'd.
fn start(
    plan: &Plan,
    cgroups: &[std::fs::File],
    namespaces: &[OwnedFd],
) -> Result<Started, RunError> {
    let (err_r, err_w) = process::pipe().map_err(|e| RunError::io("pipe", e))?;
    let (pid_r, pid_w) = process::pipe().map_err(|e| RunError::io("pipe", e))?;
    let pty = if plan.terminal {
        Some(process::socketpair().map_err(|e| RunError::io("socketpair", e))?)
    } else {
        None
    };
    let join = child::JoinFds {
        cgroup_procs: cgroups.iter().map(|f| f.as_raw_fd()).collect(),
        namespaces: namespaces.iter().map(|f| f.as_raw_fd()).collect(),
        pid_write: pid_w.as_raw_fd(),
    };
    let fds = ChildFds {
        sync_read: -1,
        err_write: err_w.as_raw_fd(),
        // The init's network namespace is joined with the others.
        netns: -1,
        pty_sock: pty.as_ref().map_or(-1, |p| p.1.as_raw_fd()),
        // SAFETY: getpid cannot fail.
        parent: unsafe { libc::getpid() },
    };
    // SAFETY: a fork-like clone: the child runs child::run_join, which only
    // makes syscalls on data prepared above, and never returns.
    let first = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if first < 0 {
        return Err(RunError::io("clone", io::Error::last_os_error()));
    }
    if first == 0 {
        child::run_join(plan, &join, &fds);
    }
    drop(err_w);
    drop(pid_w);
    let pty_sock = pty.map(|(parent, child_end)| {
        drop(child_end);
        parent
    });
    let mut pid_buf = [0u8; 4];
    let got = sys::read_full(pid_r.as_raw_fd(), &mut pid_buf);
    // The first child exits right after the clone.
    drop(Child {
        pid: first as libc::pid_t,
        reaped: false,
    });
    let child = match got {
        Ok(4) => Some(Child {
            pid: i32::from_ne_bytes(pid_buf),
            reaped: false,
        }),
        _ => None,
    };
    let pty_master = match (&child, &pty_sock) {
        (Some(_), Some(s)) => match sys::recv_fd(s.as_raw_fd()) {
            // SAFETY: a fresh fd received from the child.
            Ok(Some(fd)) => Some(unsafe { OwnedFd::from_raw_fd(fd) }),
            Ok(None) => None,
            Err(e) => return Err(RunError::io("receive pty", io::Error::from_raw_os_error(e))),
        },
        _ => None,
    };
    let mut buf = [0u8; FAILURE_LEN];
    let n = sys::read_full(err_r.as_raw_fd(), &mut buf)
        .map_err(|e| RunError::io("read exec status", io::Error::from_raw_os_error(e)))?;
    if n == FAILURE_LEN {
        return Err(process::failure_error(plan, &buf));
    }
    let Some(child) = child.filter(|_| n == 0) else {
        return Err(RunError::Setup {
            step: "exec".into(),
            source: io::Error::other("the exec child exited without a status"),
        });
    };
    if plan.terminal && pty_master.is_none() {
        return Err(RunError::Setup {
            step: "terminal".into(),
            source: io::Error::other("no pty received"),
        });
    }
    Ok(Started { child, pty_master })
}
