//! The child of `kiln exec`: joins a running container instead of making
//! one. Same rules as the parent module (syscalls only, no allocation).
//!
//! setns into a PID namespace only places the caller's *children* in it,
//! so this first child enters the cgroups and namespaces and then clones
//! the process that will exec, with `CLONE_PARENT` so that it is the
//! runner's own child (the runner waits for it and forwards signals to it
//! as to an init). The first child reports the second's pid and exits.

use super::{fail, new_session, process_setup, reset_signals, ChildFds, Step};
use crate::plan::Plan;
use crate::sys::{self, errno};
use libc::c_int;

/// Descriptors the parent opened for the join, all close-on-exec.
pub(crate) struct JoinFds {
    /// The container init's `cgroup.procs` files: writing `0` moves the
    /// writer in, and the process cloned afterwards inherits them.
    pub cgroup_procs: Vec<c_int>,
    /// `/proc/<init>/ns/*`, in the order to enter them (user first).
    pub namespaces: Vec<c_int>,
    /// Where the exec'd process's pid (as the runner sees it) is written.
    pub pid_write: c_int,
}

/// Entry point of the first child. Never returns.
pub(crate) fn run(plan: &Plan, join: &JoinFds, fds: &ChildFds) -> ! {
    for (i, fd) in join.cgroup_procs.iter().enumerate() {
        try_step!(fds, Step::CgroupJoin, i, sys::write_all(*fd, b"0"));
    }
    for (i, fd) in join.namespaces.iter().enumerate() {
        // SAFETY: setns on a namespace descriptor the parent opened.
        if unsafe { libc::setns(*fd, 0) } != 0 {
            fail(fds, Step::Setns, i, errno());
        }
    }
    // SAFETY: a fork-like clone; the child only runs `joined`, which
    // makes syscalls on data prepared by the parent, and never returns.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid < 0 {
        fail(fds, Step::Fork, 0, errno());
    }
    if pid == 0 {
        sys::close(join.pid_write);
        joined(plan, fds);
    }
    let _ = sys::write_all(join.pid_write, &(pid as i32).to_ne_bytes());
    // SAFETY: leaving the first child; its job is done.
    unsafe { libc::_exit(0) }
}

/// The process that execs, inside every namespace of the container.
fn joined(plan: &Plan, fds: &ChildFds) -> ! {
    reset_signals();
    if plan.kill_on_parent_death {
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
        // The runner is outside the container's PID namespace: getppid()
        // is 0 while it lives; 1 or another pid would mean it died.
        // SAFETY: getppid cannot fail.
        if unsafe { libc::getppid() } != 0 && unsafe { libc::getppid() } != fds.parent {
            // SAFETY: exiting the child.
            unsafe { libc::_exit(125) };
        }
    }
    new_session();
    process_setup(plan, fds)
}
