//! `kiln exec`: another process in a running container, started from the
//! container's own spec (`spec.json`, written when it was created), so it
//! gets the same capabilities, seccomp profile, no_new_privs, rlimits and
//! (through the container's cgroup) device rules as the init. Only the
//! command, and on request the user, working directory, environment
//! additions and terminal, differ; `--privileged` adds every capability.
//!
//! kiln's runner joins the init's namespaces and cgroups
//! ([`runner::exec`]); a container run by an external runtime gets that
//! runtime's `exec`.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use image_store::Store;
use oci_spec::runtime::{Capabilities, Capability};
use runner::ExitStatus;

use crate::error::{Error, Result};
use crate::records::{Container, Containers};
use crate::run::SPEC_FILE;
use crate::runtime::{self, RUNTIME_FILE};
use crate::spec::set_env;

mod captured;
pub use captured::{captured, Captured};

/// What `kiln exec` asks for, flags already parsed.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    /// The container's name or (prefix of its) ID.
    pub container: String,
    pub command: Vec<String>,
    /// `KEY=VALUE`, over the container's environment.
    pub env: Vec<String>,
    /// Default: the container's user.
    pub user: Option<String>,
    /// Default: the container's working directory.
    pub workdir: Option<String>,
    pub terminal: bool,
    /// Keep standard input (else the process reads /dev/null).
    pub interactive: bool,
    /// Start it and return (`-d`): its output is discarded.
    pub detach: bool,
    pub privileged: bool,
    /// The process's stdin, stdout and stderr when the caller has its own
    /// (the Engine API's pipes); else this process's (or /dev/null).
    pub fds: Option<[std::os::fd::RawFd; 3]>,
}

/// How an exec ended: the process's status, or started and left running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Exited(ExitStatus),
    Detached,
}

/// Runs `req`'s command in its container and (unless `detach`) waits for it.
pub fn exec(store: &Store, req: &ExecRequest) -> Result<Outcome> {
    exec_with(store, req, |_| {})
}

/// [`exec`], telling `started` once the process runs, with a handle on
/// its pty when it has one (`terminal`): the Engine API resizes it through
/// [`crate::attach::set_pty_size`]. Not called for a container of an
/// external runtime, which keeps the pty to itself.
pub fn exec_with(
    store: &Store,
    req: &ExecRequest,
    started: impl FnOnce(Option<std::os::fd::OwnedFd>),
) -> Result<Outcome> {
    let p = prepare(store, req)?;
    if let Some(rt) = &p.external {
        runner::check_executable(p.init, &p.spec)?;
        return external(rt, &p.container, &p.dir, &p.spec, req);
    }
    let devnull = fs::File::open("/dev/null").map_err(Error::io("/dev/null"))?;
    let null = devnull.as_raw_fd();
    let stdio = match (req.detach, req.interactive) {
        (false, _) if req.fds.is_some() => {
            let [stdin, stdout, stderr] = req.fds.expect("checked");
            runner::Stdio::Fds {
                stdin,
                stdout,
                stderr,
            }
        }
        (true, _) => runner::Stdio::Fds {
            stdin: null,
            stdout: null,
            stderr: null,
        },
        (false, true) => runner::Stdio::Inherit,
        (false, false) => runner::Stdio::Fds {
            stdin: null,
            stdout: 1,
            stderr: 2,
        },
    };
    let opts = runner::ExecOptions {
        init_pid: p.init,
        stdio,
        detach: req.detach,
        privileged: req.privileged,
        // The caller's own signals are not the process's when the caller
        // serves others (the Engine API passes its own pipes).
        forward_signals: req.fds.is_none(),
    };
    let process = runner::exec(&p.spec, &opts)?;
    if req.detach {
        process.detach();
        return Ok(Outcome::Detached);
    }
    started(process.pty());
    Ok(Outcome::Exited(process.wait()?))
}

/// An exec about to start: the container, its running init and the spec
/// of the new process.
pub(crate) struct Prepared {
    pub container: Container,
    pub dir: PathBuf,
    pub init: i32,
    pub spec: runner::Spec,
    /// The container's external runtime, if it has one.
    pub external: Option<PathBuf>,
}

/// Checks `req` against its container and derives the process's spec.
pub(crate) fn prepare(store: &Store, req: &ExecRequest) -> Result<Prepared> {
    if req.command.is_empty() || req.command[0].is_empty() {
        return Err(Error::Invalid("exec needs a command to run".into()));
    }
    if let Some(w) = &req.workdir {
        crate::options::check_workdir(w)?;
    }
    let containers = Containers::new(store);
    let c = containers.container(&req.container)?;
    let dir = containers.container_dir(&c.id);
    let not_running = || Error::Invalid(format!("container {} is not running", c.name));
    if !c.is_running() {
        return Err(not_running());
    }
    let init = runtime::of_dir(&dir).init_pid(&c).ok_or_else(not_running)?;
    // A process joining a frozen cgroup would freeze before it ran.
    if runner::is_paused(init) {
        return Err(Error::Invalid(format!(
            "container {} is paused: unpause it before exec",
            c.name
        )));
    }
    let p = dir.join(SPEC_FILE);
    let data = match fs::read(&p) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Invalid(format!(
                "container {} was created by an older kiln without a spec.json; exec needs one",
                c.name
            )))
        }
        Err(e) => return Err(Error::io(p)(e)),
    };
    let mut spec: runner::Spec = serde_json::from_slice(&data).map_err(Error::json(&p))?;
    let user = req
        .user
        .as_deref()
        .map(|u| runner::resolve_user(init, u))
        .transpose()?;
    let mut process = spec
        .process()
        .clone()
        .ok_or_else(|| Error::Invalid(format!("container {}'s spec has no process", c.name)))?;
    let mut env = process.env().clone().unwrap_or_default();
    for e in &req.env {
        set_env(&mut env, e.clone());
    }
    process
        .set_args(Some(req.command.clone()))
        .set_env(Some(env))
        .set_terminal(Some(req.terminal))
        .set_console_size(None);
    if let Some(w) = &req.workdir {
        process.set_cwd(PathBuf::from(crate::options::clean_abs(w)));
    }
    if let Some(u) = user {
        let mut su = process.user().clone();
        su.set_uid(u.uid)
            .set_gid(u.gid)
            .set_additional_gids(Some(u.additional_gids));
        process.set_user(su);
    }
    spec.set_process(Some(process));
    let external = fs::read_to_string(dir.join(RUNTIME_FILE))
        .ok()
        .map(|rt| PathBuf::from(rt.trim()));
    Ok(Prepared {
        container: c,
        dir,
        init,
        spec,
        external,
    })
}

/// `RUNTIME exec --process FILE [-d] ID`: the runtime reads the process
/// (with the container's capabilities, rlimits, no_new_privs) from the
/// file and applies the container's seccomp profile and cgroups itself.
fn external(
    bin: &Path,
    c: &Container,
    dir: &Path,
    spec: &runner::Spec,
    req: &ExecRequest,
) -> Result<Outcome> {
    let mut process = spec.process().clone().expect("set by exec");
    if req.privileged {
        let all: Capabilities = runner::bounding_capabilities()
            .iter()
            .filter_map(|n| serde_json::from_value::<Capability>(n.to_string().into()).ok())
            .collect();
        let mut caps = process.capabilities().clone().unwrap_or_default();
        caps.set_bounding(Some(all.clone()))
            .set_effective(Some(all.clone()))
            .set_permitted(Some(all.clone()))
            .set_inheritable(Some(all));
        process.set_capabilities(Some(caps));
    }
    let file = tempfile_in(dir, &process)?;
    let mut cmd = Command::new(bin);
    cmd.arg("exec").arg("--process").arg(file.path());
    if req.detach {
        cmd.arg("-d");
    }
    cmd.arg(&c.id);
    if let (Some(fds), false) = (req.fds, req.detach) {
        // Duplicates: the caller keeps its own.
        let io = |fd| {
            // SAFETY: the caller's descriptor stays open for this call.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            fd.try_clone_to_owned()
                .map(std::process::Stdio::from)
                .map_err(Error::io("exec stdio"))
        };
        cmd.stdin(io(fds[0])?)
            .stdout(io(fds[1])?)
            .stderr(io(fds[2])?);
    } else if !req.interactive || req.detach {
        cmd.stdin(std::process::Stdio::null());
    }
    if req.detach {
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
    }
    let status = cmd
        .status()
        .map_err(|e| Error::Runtime(format!("running {}: {e}", bin.display())))?;
    if req.detach {
        return match status.success() {
            true => Ok(Outcome::Detached),
            false => Err(Error::Runtime(format!(
                "{} exec {} failed",
                bin.display(),
                c.id
            ))),
        };
    }
    use std::os::unix::process::ExitStatusExt as _;
    Ok(Outcome::Exited(match status.signal() {
        Some(s) => ExitStatus::Signaled(s),
        None => ExitStatus::Exited(status.code().unwrap_or(125)),
    }))
}

/// The process description for the external runtime, removed on drop.
struct ProcessFile(PathBuf);

impl ProcessFile {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ProcessFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn tempfile_in(dir: &Path, process: &oci_spec::runtime::Process) -> Result<ProcessFile> {
    let p = dir.join(format!("exec-{}.json", std::process::id()));
    let data = serde_json::to_vec(process).expect("a process serializes");
    fs::write(&p, data).map_err(Error::io(&p))?;
    Ok(ProcessFile(p))
}
