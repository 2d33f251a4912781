//! Runs the process of an OCI runtime spec inside Linux namespaces. Knows
//! nothing of images or Dockerfiles: a spec and a rootfs in, an exit status out.
//!
//! ```no_run
//! use runner::{spec, user, RunOptions, Rootfs};
//! # fn main() -> Result<(), runner::RunError> {
//! let layers = vec!["/var/lib/kiln/layers/a".into(), "/var/lib/kiln/layers/b".into()];
//! // Image USER → numeric ids, from the image's own /etc/passwd and /etc/group.
//! let u = user::resolve(&layers, "nobody")?;
//! let spec = spec::build(&spec::SpecParams {
//!     args: vec!["sh".into(), "-c".into(), "echo hi".into()],
//!     uid: u.uid,
//!     gid: u.gid,
//!     additional_gids: u.additional_gids,
//!     home: Some(u.home),
//!     hostname: Some("0123456789ab".into()),
//!     ..Default::default()
//! })?;
//! let dir = std::path::PathBuf::from("/var/lib/kiln/containers/0123456789ab");
//! let rootfs = Rootfs::Overlay { lower: layers, upper: dir.join("upper"), work: dir.join("work") };
//! let code = match runner::run(&spec, &RunOptions::new("0123456789ab", &dir, rootfs)) {
//!     Ok(status) => status.code(), // the container's code, 128+N if killed by signal N
//!     Err(e) => e.exit_code(),     // 125, or 126/127 when the program cannot run
//! };
//! # let _ = code; Ok(()) }
//! ```
//!
//! Threads: the container child is created with a fork-like `clone` and only
//! makes syscalls on data prepared before it (see `child/`), so calling
//! [`run`] from a multi-threaded process is safe; no re-exec entry point is
//! needed. Signal forwarding, though, blocks the forwarded signals in the
//! *calling thread* only: for docker-like behaviour call [`run`] from the
//! main thread before other threads start (the kiln CLI does).
//!
//! Not mounted by default: docker's `/sys/fs/cgroup` (a spec that asks for a
//! cgroup mount gets the host's tree bound read-only).

mod bpf;
mod caps;
mod cgroup;
mod child;
mod devices;
mod error;
mod etc;
mod external;
mod idmap;
pub mod inroot;
mod join;
mod plan;
mod process;
mod rootfs;
pub mod seccomp;
pub mod spec;
mod sys;
mod tty;
pub mod user;

pub use caps::{
    bounding as bounding_capabilities, number as capability_number,
    DOCKER_DEFAULT as DOCKER_DEFAULT_CAPS,
};
pub use error::{ExitStatus, RunError};
pub use etc::rewrite_network as rewrite_etc_network;
pub use idmap::{rootless_default as rootless_id_maps, IdMap, IdMaps};
pub use join::{check_executable, exec, resolve_user, ExecOptions};
pub use oci_spec::runtime::Spec;
pub use rootfs::{distinct_layers, readonly_overlay_data, writable_overlay_data, Rootfs};
pub use tty::RawMode;

/// The directory in the bundle the copy fallback
/// ([`RunOptions::copy_fallback`]) runs the container on: while it exists,
/// the container's writes are there and not in its upper directory.
pub const COPY_ROOTFS_DIR: &str = "rootfs-copy";

use std::os::fd::OwnedFd;
use std::path::PathBuf;

/// Which runtime executes the spec.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Runtime {
    /// kiln's own namespace runtime.
    #[default]
    Builtin,
    /// An OCI runtime binary such as `/usr/sbin/runc`, run as
    /// `RUNTIME run -b BUNDLE ID` on a `config.json` written into the bundle.
    External(PathBuf),
}

/// Whose /etc files a container gets (with [`RunOptions::etc_files`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EtcStyle {
    /// docker run's: /etc/hosts, /etc/hostname and /etc/resolv.conf.
    #[default]
    Docker,
    /// A BuildKit RUN step's: its own /etc/hosts (localhost and the
    /// hostname) and /etc/resolv.conf, but no /etc/hostname (the image's
    /// own, if it has one, shows).
    BuildKit,
}

/// The /etc files of a container in a network namespace set up by a
/// network backend (with [`EtcStyle::Docker`]); with [`EtcStyle::BuildKit`]
/// only its host lines are used (`kiln build --add-host`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcNetwork {
    /// Lines appended to the localhost entries of /etc/hosts (the
    /// container's own address and name).
    pub hosts: String,
    /// The whole of /etc/resolv.conf.
    pub resolv_conf: String,
}

/// Where the container's standard streams go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stdio {
    /// The caller's own stdin/stdout/stderr (or a pty when
    /// `process.terminal` is set).
    #[default]
    Inherit,
    /// These descriptors become the container's 0, 1 and 2. They stay owned
    /// by the caller.
    Fds {
        stdin: i32,
        stdout: i32,
        stderr: i32,
    },
}

/// Called with the container's pid once its namespaces exist (and its
/// user namespace is mapped), before its program starts: a user-mode
/// network (slirp4netns) configures the new network namespace here.
#[derive(Clone)]
pub struct BeforeStart(pub std::sync::Arc<dyn Fn(i32) -> Result<(), String> + Send + Sync>);

impl std::fmt::Debug for BeforeStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BeforeStart")
    }
}

fn print_warning(msg: &str) {
    eprintln!("WARNING: {msg}");
}

/// How to run a spec.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Container id: names cgroups and the external runtime's container.
    pub id: String,
    /// The container's own directory: holds the overlay mount point
    /// (`merged/`), `/etc` files, `config.json` and the copy fallback.
    pub bundle: PathBuf,
    pub rootfs: Rootfs,
    pub runtime: Runtime,
    pub stdio: Stdio,
    /// Write and mount /etc/hosts, /etc/hostname and /etc/resolv.conf.
    pub etc_files: bool,
    pub etc_style: EtcStyle,
    /// The network backend's hosts entries and resolver, when it set up
    /// the container's network namespace.
    pub etc_network: Option<EtcNetwork>,
    /// Do not tie the container's life to the caller's (no parent-death
    /// signal); use [`spawn`] and [`Container::detach`].
    pub detach: bool,
    /// Id maps for a user namespace when the spec has none; by default the
    /// caller's subuid/subgid ranges ([`rootless_id_maps`]).
    pub id_maps: Option<IdMaps>,
    /// Mount the overlay with `volatile`: the upper directory is never
    /// synced. Without it the overlay's unmount (at the container's exit,
    /// which waits for it) syncs the whole filesystem of the upper
    /// directory: cheap on an idle disk, but 30-200 ms for a `/bin/true`
    /// where other processes write to that filesystem. Writes may be lost
    /// on a host crash: for build steps and `--rm` runs. Default: off (as
    /// docker).
    pub overlay_volatile: bool,
    /// When the overlay mount fails, run on a copy of the layers instead
    /// (`bundle/rootfs-copy`). The container's writes then land in that
    /// copy, not in the upper directory: a caller that takes the upper
    /// directory as the container's changes (a build step's layer) must
    /// turn this off, or the changes would be lost without an error.
    /// Default: on.
    pub copy_fallback: bool,
    /// Receives non-fatal problems (limits that could not be applied, the
    /// copy fallback, ...). Defaults to printing `WARNING: ...` on stderr.
    pub warn: fn(&str),
    /// See [`BeforeStart`] (kiln's own runtime only).
    pub before_start: Option<BeforeStart>,
}

impl RunOptions {
    pub fn new(id: impl Into<String>, bundle: impl Into<PathBuf>, rootfs: Rootfs) -> Self {
        RunOptions {
            id: id.into(),
            bundle: bundle.into(),
            rootfs,
            runtime: Runtime::Builtin,
            stdio: Stdio::Inherit,
            etc_files: true,
            etc_style: EtcStyle::Docker,
            etc_network: None,
            detach: false,
            id_maps: None,
            overlay_volatile: false,
            copy_fallback: true,
            warn: print_warning,
            before_start: None,
        }
    }
}

enum Waiter {
    Builtin {
        pty: Option<OwnedFd>,
        io: (i32, i32),
    },
    External,
}

/// A started container. Dropping it without [`Container::wait`] or
/// [`Container::detach`] kills it.
pub struct Container {
    child: process::Child,
    block: Option<process::SignalBlock>,
    waiter: Waiter,
    cgroup: cgroup::Cgroup,
}

impl Container {
    /// The container's init as seen from the host (the runtime's pid for
    /// an external runtime).
    pub fn pid(&self) -> i32 {
        self.child.pid
    }

    /// Waits for the container to exit, forwarding SIGHUP, SIGINT, SIGQUIT,
    /// SIGTERM, SIGUSR1, SIGUSR2 and SIGCONT to it meanwhile (and proxying
    /// the pty in terminal mode).
    ///
    /// Call it on the thread that called [`spawn`]: if the container's
    /// init makes itself traced (`PTRACE_TRACEME`), its tracer is that
    /// thread, and only that thread can release its ptrace stops.
    pub fn wait(mut self) -> Result<ExitStatus, RunError> {
        let block = self.block.take().unwrap_or_else(process::SignalBlock::new);
        let res = match std::mem::replace(&mut self.waiter, Waiter::External) {
            Waiter::Builtin { pty: Some(m), io } => {
                tty::wait_with_pty(&mut self.child, &block, m, io)
            }
            Waiter::Builtin { pty: None, .. } | Waiter::External => {
                process::wait_forwarding(&mut self.child, &block)
            }
        };
        drop(block);
        self.cgroup.remove();
        res
    }

    /// A copy of the master side of the container's pty (terminal mode,
    /// kiln's runtime), for a caller that resizes it while [`Container::wait`]
    /// copies its output.
    pub fn pty(&self) -> Option<OwnedFd> {
        match &self.waiter {
            Waiter::Builtin { pty: Some(m), .. } => m.try_clone().ok(),
            _ => None,
        }
    }

    /// Leaves the container running; the caller records the pid and reaps
    /// it (or lets init do so once the caller exits), then calls
    /// [`remove_cgroups`] with the container's id.
    pub fn detach(mut self) -> i32 {
        self.child.reaped = true;
        // The cgroups outlive this handle; the caller removes the container.
        self.cgroup = cgroup::Cgroup::default();
        self.child.pid
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if !self.child.reaped {
            // Killed and reaped before its cgroups are removed.
            process::kill_and_reap(self.child.pid);
            self.child.reaped = true;
        }
        self.cgroup.remove();
    }
}

/// Removes the cgroups of a detached container that has exited (they hold
/// its device rules and limits, and outlive [`Container::detach`]).
pub fn remove_cgroups(id: &str) {
    cgroup::Cgroup::of_detached(id).remove();
}

/// `pause` / `unpause`: freezes or thaws every process of the container
/// whose init is `pid` (its freezer cgroup).
pub fn freeze(pid: i32, frozen: bool) -> Result<(), RunError> {
    cgroup::freeze(pid, frozen)
}

/// Is the container whose init is `pid` paused?
pub fn is_paused(pid: i32) -> bool {
    cgroup::is_frozen(pid)
}

/// The host pids of every process in the container whose init is `pid`
/// (from its cgroup), for `top`.
pub fn container_pids(pid: i32) -> Result<Vec<i32>, RunError> {
    cgroup::pids_of(pid)
}

/// The memory usage and limit the container whose init is `pid` has in a
/// memory cgroup of its own, if it has one.
pub fn container_memory(pid: i32) -> Option<(u64, Option<u64>)> {
    cgroup::memory_of(pid)
}

/// A `kiln-<id>` cgroup with no process in it, under the runner's own
/// cgroup: what a killed runner (`kill -9` of `kiln run` or a build) leaves.
#[derive(Debug, Clone)]
pub struct EmptyCgroup {
    /// The container id the runner was given (`kiln-<id>` names the cgroup).
    pub id: String,
    pub path: PathBuf,
}

/// The empty `kiln-*` cgroups in every hierarchy. One may belong to a
/// container being started right now (its cgroup exists a moment before
/// its process is moved in): callers skip ids they know to be live, and the
/// runner makes a cgroup again if it vanishes before its process is in.
pub fn empty_cgroups() -> Vec<EmptyCgroup> {
    empty_cgroups_of(&|_| true)
}

/// [`empty_cgroups`] among those whose id `wanted` accepts (a store's own),
/// the others' files left unread.
pub fn empty_cgroups_of(wanted: &dyn Fn(&str) -> bool) -> Vec<EmptyCgroup> {
    cgroup::empty_kiln_dirs(wanted)
        .into_iter()
        .map(|(id, path)| EmptyCgroup { id, path })
        .collect()
}

/// Removes an empty cgroup; the kernel refuses (and this returns false)
/// once a process is in it.
pub fn remove_empty_cgroup(c: &EmptyCgroup) -> bool {
    std::fs::remove_dir(&c.path).is_ok()
}

/// Sends `signal` to a container's init (e.g. a detached container's pid).
pub fn kill(pid: i32, signal: i32) -> Result<(), RunError> {
    // SAFETY: kill(2) with plain integers.
    if unsafe { libc::kill(pid, signal) } != 0 {
        return Err(RunError::io(
            format!("kill {pid}"),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Starts the spec's process and returns once it has been exec'd (so exec
/// failures come back as [`RunError::NotFound`] / [`RunError::CannotExecute`]).
pub fn spawn(spec: &Spec, opts: &RunOptions) -> Result<Container, RunError> {
    let block = process::SignalBlock::new();
    let (child, waiter, cgroup) = match &opts.runtime {
        Runtime::Builtin => {
            let (child, pty, cg) = builtin_start(spec, opts)?;
            // In terminal mode the caller's streams are proxied to the pty.
            let io = match opts.stdio {
                Stdio::Inherit => (0, 1),
                Stdio::Fds { stdin, stdout, .. } => (stdin, stdout),
            };
            (child, Waiter::Builtin { pty, io }, cg)
        }
        Runtime::External(_) if opts.before_start.is_some() => {
            return Err(RunError::Unsupported(
                "a user-mode network (slirp4netns) with an external runtime".into(),
            ))
        }
        Runtime::External(bin) => {
            let child = external::start(bin, spec, opts)?;
            (child, Waiter::External, cgroup::Cgroup::default())
        }
    };
    if opts.detach {
        drop(block);
        return Ok(Container {
            child,
            block: None,
            waiter,
            cgroup,
        });
    }
    Ok(Container {
        child,
        block: Some(block),
        waiter,
        cgroup,
    })
}

/// Runs the spec to completion: [`spawn`] then [`Container::wait`].
pub fn run(spec: &Spec, opts: &RunOptions) -> Result<ExitStatus, RunError> {
    spawn(spec, opts)?.wait()
}

/// The spec with the runner's additions (the /etc files' mounts).
fn effective_spec(spec: &Spec, opts: &RunOptions) -> Result<Spec, RunError> {
    let mut spec = spec.clone();
    if opts.etc_files {
        rootfs::ensure_dir(&opts.bundle)?;
        let host_net = !spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|ns| {
                ns.iter()
                    .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Network)
            });
        let ro = spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false);
        let extra = etc::prepare(
            &opts.bundle,
            spec.hostname().as_deref(),
            host_net,
            ro,
            opts.etc_style,
            opts.etc_network.as_ref(),
        )?;
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        // BuildKit mounts its files before the step's own mounts, so a
        // mount of /etc (or of the file itself) covers them; docker's go
        // last.
        let at = match opts.etc_style {
            EtcStyle::BuildKit => mounts
                .iter()
                .position(|m| {
                    let d = m.destination().to_string_lossy();
                    let d = d.trim_end_matches('/');
                    d == "/etc" || d.starts_with("/etc/")
                })
                .unwrap_or(mounts.len()),
            EtcStyle::Docker => mounts.len(),
        };
        mounts.splice(at..at, extra);
        spec.set_mounts(Some(mounts));
    }
    Ok(spec)
}

/// The device rules for a container, and whether it may run without them.
#[derive(Clone, Copy)]
struct DeviceRules<'a> {
    rules: Option<&'a [devices::Rule]>,
    required: bool,
}

/// Whether this process is in the host's user namespace, where root can
/// make device nodes.
fn in_initial_user_ns() -> bool {
    std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|m| {
        m.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
    })
}

pub(crate) fn is_rootless() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() != 0 }
}

fn oom_score_adj(spec: &Spec) -> Option<i32> {
    spec.process().as_ref().and_then(|p| p.oom_score_adj())
}

fn spec_id_maps(spec: &Spec) -> Option<IdMaps> {
    let l = spec.linux().as_ref()?;
    let conv = |v: &Vec<oci_spec::runtime::LinuxIdMapping>| {
        v.iter()
            .map(|m| IdMap {
                container: m.container_id(),
                host: m.host_id(),
                size: m.size(),
            })
            .collect::<Vec<_>>()
    };
    let uid = conv(l.uid_mappings().as_ref()?);
    let gid = conv(l.gid_mappings().as_ref()?);
    Some(IdMaps { uid, gid })
}

fn builtin_start(
    spec: &Spec,
    opts: &RunOptions,
) -> Result<(process::Child, Option<OwnedFd>, cgroup::Cgroup), RunError> {
    let spec = effective_spec(spec, opts)?;
    let rootless = is_rootless();
    let mut limits =
        cgroup::Limits::from_spec(spec.linux().as_ref().and_then(|l| l.resources().as_ref()));
    if rootless && !limits.is_empty() {
        (opts.warn)("resource limits are not applied in rootless mode");
        limits = cgroup::Limits::default();
    }
    // Rootless containers get no device cgroup (the user cannot create
    // one): there mknod is refused by the kernel and every mount is nodev
    // in the user namespace, so only the host nodes bound in are reachable.
    // The same holds for root of a user namespace (kiln inside a rootless
    // container): there the rules are applied when the cgroup filesystem
    // allows it, and skipped when not.
    let devices_required = !rootless && in_initial_user_ns();
    let devices = if rootless {
        None
    } else {
        Some(devices::rules_from_spec(
            spec.linux()
                .as_ref()
                .and_then(|l| l.resources().as_ref())
                .and_then(|r| r.devices().as_deref()),
        )?)
    };
    let root = prepare_root(opts, false)?;
    let mut plan = plan::build(plan::PlanInputs {
        spec: &spec,
        root,
        rootless,
        detach: opts.detach,
        needs_parent_sync: !limits.is_empty()
            || devices.is_some()
            || opts.before_start.is_some()
            || oom_score_adj(&spec).is_some(),
    })?;
    plan.stdio = match opts.stdio {
        Stdio::Inherit => None,
        Stdio::Fds {
            stdin,
            stdout,
            stderr,
        } => Some([stdin, stdout, stderr]),
    };
    let id_maps = if plan.userns {
        Some(match spec_id_maps(&spec).or_else(|| opts.id_maps.clone()) {
            Some(m) => m,
            None if rootless => idmap::rootless_default(),
            None => {
                return Err(RunError::InvalidSpec(
                    "user namespace without uid/gid mappings".into(),
                ))
            }
        })
    } else {
        None
    };
    let devices = DeviceRules {
        rules: devices.as_deref(),
        required: devices_required,
    };
    match start_with(&plan, opts, id_maps.as_ref(), &limits, devices) {
        Err(RunError::Setup { step, source })
            if step == child::OVERLAY_STEP
                && opts.copy_fallback
                && matches!(opts.rootfs, Rootfs::Overlay { .. }) =>
        {
            (opts.warn)(&format!(
                "overlay mount failed ({source}); copying the layers instead"
            ));
            plan.root = prepare_root(opts, true)?;
            start_with(&plan, opts, id_maps.as_ref(), &limits, devices)
        }
        other => other,
    }
}

fn start_with(
    plan: &plan::Plan,
    opts: &RunOptions,
    id_maps: Option<&IdMaps>,
    limits: &cgroup::Limits,
    devices: DeviceRules<'_>,
) -> Result<(process::Child, Option<OwnedFd>, cgroup::Cgroup), RunError> {
    let mut cg = cgroup::Cgroup::default();
    let confined = !limits.is_empty() || devices.rules.is_some();
    let into = match confined {
        true => cg.prepare(&opts.id, limits, devices.rules),
        false => None,
    };
    let res = process::start(plan, into.as_ref(), |pid, placed| {
        if let Some(m) = id_maps {
            idmap::apply(pid, m)?;
        }
        if let Some(h) = &opts.before_start {
            (h.0)(pid).map_err(|e| RunError::Setup {
                step: "network".into(),
                source: std::io::Error::other(e),
            })?;
        }
        if let Some(adj) = plan.oom_score_adj {
            let path = format!("/proc/{pid}/oom_score_adj");
            std::fs::write(&path, adj.to_string())
                .map_err(|e| RunError::io(format!("write {path}"), e))?;
        }
        if confined {
            let warnings = match cg.apply(&opts.id, pid, limits, devices.rules, placed) {
                Err(_) if !devices.required => {
                    cg.remove();
                    cg.apply(&opts.id, pid, limits, None, false)?
                }
                other => other?,
            };
            for w in warnings {
                (opts.warn)(&format!("resource limit not applied: {w}"));
            }
        }
        Ok(())
    });
    match res {
        Ok(s) => Ok((s.child, s.pty_master, cg)),
        Err(e) => {
            cg.remove();
            Err(e)
        }
    }
}

/// The root mount for the child; `copy` forces the copy fallback.
fn prepare_root(opts: &RunOptions, copy: bool) -> Result<rootfs::RootMount, RunError> {
    match &opts.rootfs {
        Rootfs::Dir(d) => Ok(rootfs::RootMount::Bind {
            path: rootfs::cpath(&absolute(d)?)?,
        }),
        Rootfs::Overlay { lower, upper, work } => {
            rootfs::ensure_dir(upper)?;
            rootfs::ensure_dir(work)?;
            if copy {
                let dest = opts.bundle.join(COPY_ROOTFS_DIR);
                rootfs::flatten(lower, upper, &dest)?;
                return Ok(rootfs::RootMount::Bind {
                    path: rootfs::cpath(&absolute(&dest)?)?,
                });
            }
            let target = absolute(&opts.bundle.join("merged"))?;
            rootfs::ensure_dir(&target)?;
            let lower = rootfs::lowers_or_empty(lower, &absolute(&opts.bundle)?)?;
            let (data, chdir) = rootfs::overlay_data(&lower, upper, work, opts.overlay_volatile)?;
            Ok(rootfs::RootMount::Overlay {
                target: rootfs::cpath(&target)?,
                data: std::ffi::CString::new(data)
                    .map_err(|_| RunError::InvalidSpec("NUL in overlay path".into()))?,
                chdir: chdir.map(|c| rootfs::cpath(&c)).transpose()?,
            })
        }
    }
}

pub(crate) fn absolute(p: &std::path::Path) -> Result<PathBuf, RunError> {
    std::path::absolute(p).map_err(|e| RunError::io(format!("resolve {}", p.display()), e))
}
