//! `kiln run`'s lifecycle: [`create`] a container from an image (its
//! layers as overlay lowers, a spec from the image config and the
//! request, its record), then start it in the foreground
//! ([`Created::run_foreground`]) or hand it to a monitor
//! ([`Created::start_detached`]): kiln re-executed in its own session,
//! like conmon, which runs [`monitor`], waits for the container and
//! records its exit code.

use std::fs;
use std::io::{Read as _, Write as _};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use image_store::Store;
use runner::spec::{MountSpec, Network, Resources};
use runner::{ExitStatus, Rootfs, RunOptions};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layers::LayerStack;
use crate::logfile::{LogWriter, Pipes, Stream};
use crate::mountpoints::{self, MountPoints};
use crate::records::{Container, Containers, State};
use crate::restart::{self, Backoff, RestartPolicy, RunExit};
use crate::runtime::{self, RUNTIME_FILE};
use crate::spec::{self, ContainerSpec, Overrides, SpecError};

/// The container's log file (`-d`): entries of its stdout and stderr
/// lines in podman's k8s-file format ([`crate::logfile`]).
pub const LOG_FILE: &str = "ctr.log";
/// The log of containers run by an older kiln: raw stdout and stderr.
pub const LEGACY_LOG_FILE: &str = "container.log";
/// The monitor's own output (the runner's warnings, its failures).
pub const MONITOR_LOG_FILE: &str = "monitor.log";
/// The monitor's own pid (`-d`), so `rm -f` can wait for it.
pub const MONITOR_PID_FILE: &str = "monitor.pid";
/// The per-container layer above the image's (docker's "init layer"):
/// empty mount points the image lacks (see [`crate::mountpoints`]).
pub const INIT_DIR: &str = "init";
/// The container's OCI spec (for the monitor, `inspect`, and `exec`,
/// which starts its processes from it).
pub const SPEC_FILE: &str = "spec.json";
const LAUNCH_FILE: &str = "launch.json";

/// What `kiln run` asks for, flags already parsed.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    pub image: String,
    /// `--name` (checked with [`crate::container_name`]); else a random one.
    pub name: Option<String>,
    /// Replaces the image's ENTRYPOINT (and clears its CMD); empty: none.
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's CMD when not empty.
    pub command: Vec<String>,
    /// `KEY=VALUE` over the image's ENV (see [`crate::options::env`]).
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    /// Default: the short container ID.
    pub hostname: Option<String>,
    pub terminal: bool,
    /// Keep standard input (else the container reads /dev/null).
    pub interactive: bool,
    /// With `interactive`: the container reads end of file once the one
    /// client attached to its input closes it (docker's `StdinOnce`, what
    /// `docker run -i` asks for); else its input never ends.
    pub stdin_once: bool,
    pub readonly_rootfs: bool,
    pub network: Network,
    /// A netavark network (`--network bridge|NAME`, `-p`): with
    /// `network: None`, the container joins the namespace made for it.
    pub networking: Option<crate::network::NetworkRequest>,
    /// `--network container:NAME` (with `network: None`).
    pub network_container: Option<String>,
    pub mounts: Vec<MountSpec>,
    /// `-v`, `--mount` (binds, volumes, tmpfs), before `mounts`.
    pub volumes: Vec<crate::mountopts::MountRequest>,
    /// `--volumes-from C[:ro|rw]`.
    pub volumes_from: Vec<String>,
    pub resources: Resources,
    /// An external OCI runtime such as `/usr/sbin/runc`.
    pub runtime: Option<PathBuf>,
    /// `--rm`.
    pub auto_remove: bool,
    /// `--restart` (carried out by the monitor of a detached container).
    pub restart: RestartPolicy,
    /// `--label KEY=VALUE`, over the image's labels.
    pub labels: Vec<(String, String)>,
    /// `--health-*` / `--no-healthcheck` (see [`crate::health::HealthFlags`]),
    /// over the image's HEALTHCHECK.
    pub health: Option<image_store::model::Healthcheck>,
    /// Capabilities, `--security-opt`, `--ulimit`, `--shm-size`, `--init`.
    pub hardening: crate::security::Hardening,
    /// `--stop-signal` (over the image's STOPSIGNAL) and `--stop-timeout`
    /// (seconds), for `stop`.
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<i64>,
    /// `--log-opt KEY=VALUE` (checked by [`crate::logfile::Rotation::parse`]).
    pub log_opts: std::collections::BTreeMap<String, String>,
}

/// Whether the container in `dir` keeps standard input open (`-i`) and
/// whether it ends with its attached client's (`StdinOnce`), as its
/// `create` or run recorded them (false, false when unknown).
pub fn input_of(dir: &Path) -> (bool, bool) {
    fs::read(dir.join(LAUNCH_FILE))
        .ok()
        .and_then(|d| serde_json::from_slice::<Launch>(&d).ok())
        .map_or((false, false), |l| (l.interactive, l.stdin_once))
}

/// `--entrypoint VALUE` as an entrypoint: one word, or none for "".
pub fn entrypoint_flag(value: &str) -> Vec<String> {
    match value {
        "" => Vec::new(),
        e => vec![e.to_string()],
    }
}

/// What the monitor of a detached container needs, beside `spec.json`.
#[derive(Serialize, Deserialize)]
struct Launch {
    lowers: Vec<PathBuf>,
    runtime: Option<PathBuf>,
    ready_fd: i32,
    /// `create -i`: `start -a` keeps standard input.
    #[serde(default)]
    interactive: bool,
    /// [`RunRequest::stdin_once`].
    #[serde(default)]
    stdin_once: bool,
}

// `kiln create` / `start`: a container kept between the two.
mod standby;
pub use standby::{restart, start, wait, Start};

/// A recorded container, ready to start.
pub struct Created<'s> {
    containers: Containers<'s>,
    pub record: Container,
    pub dir: PathBuf,
    spec: runner::Spec,
    lowers: Vec<PathBuf>,
    runtime: Option<PathBuf>,
    interactive: bool,
    stdin_once: bool,
    networking: Option<crate::network::NetworkRequest>,
    exposed: Vec<(u16, crate::network::Proto)>,
    hostname: String,
}

/// Creates the container `req` describes: resolves and unpacks its image,
/// derives its spec, records it, and makes its init layer.
pub fn create<'s>(store: &'s Store, req: RunRequest) -> Result<Created<'s>> {
    // Checked before anything is resolved or unpacked: a bad name costs nothing.
    let name = req
        .name
        .as_deref()
        .map(crate::records::container_name)
        .transpose()?;
    let containers = Containers::new(store);
    // Best effort: `system check --repair` reports what is left.
    let _ = containers.reap_orphans();
    // Held until the container is recorded (from then on `rmi` sees it in
    // use), so no `rmi` removes the image's layers while they are unpacked.
    let reader = store.reader_lock()?;
    let image = store.resolve_locked(&req.image)?;
    let lowers = store.unpacked_layers(&image).map_err(|e| {
        Error::Invalid(format!(
            "unpacking image {}: {}",
            req.image,
            crate::error::chain(&e)
        ))
    })?;
    let config = image.config.container_config();
    let image_shell = config.shell.clone();
    if req.auto_remove && !req.restart.is_none() {
        return Err(Error::Invalid(
            "conflicting options: cannot specify both --restart and --rm".into(),
        ));
    }
    let mut labels = config.labels.clone().unwrap_or_default();
    labels.extend(req.labels);
    let command = spec::command(&config, req.entrypoint.as_deref(), &req.command)
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let shared = req
        .network_container
        .as_deref()
        .map(|c| crate::network::shared::target(store, c))
        .transpose()?;
    if let (Some(t), Some(_)) = (&shared, &req.hostname) {
        return Err(Error::Invalid(format!(
            "conflicting options: --hostname and --network container:{} (the host name is that container's)",
            t.name
        )));
    }
    let (entry, cmd) = spec::entrypoint_and_cmd(&config, req.entrypoint.as_deref(), &req.command);
    let id = crate::names::new_id()?;
    // `--link`: resolved now (the linked containers run now), into hosts
    // lines and environment variables that name this container.
    let mut networking = req.networking;
    let mut link_env = Vec::new();
    let mut picked_name = None;
    if let Some(net) = networking.as_mut().filter(|n| !n.links.is_empty()) {
        let linking = match name {
            Some(n) => n.to_string(),
            None => containers.free_name(&id)?,
        };
        for (n, a) in net.links.clone() {
            let l = crate::network::link::resolve(store, &net.network, &linking, (&n, &a))?;
            link_env.extend(l.env);
            net.dns.add_hosts.push(l.host);
        }
        picked_name = Some(linking);
    }
    let name = picked_name.as_deref().or(name);
    let overrides = Overrides {
        args: command.clone(),
        // The user's -e (and the image's ENV) win over the links', as docker.
        env: link_env.into_iter().chain(req.env).collect(),
        user: req.user,
        workdir: req.workdir,
        ..Default::default()
    };
    let mut derived =
        ContainerSpec::from_image(&config, &lowers, overrides).map_err(|e| match e {
            SpecError::Run(e) => Error::Run(e),
            e => Error::Invalid(e.to_string()),
        })?;
    let p = &mut derived.params;
    let hostname = req
        .hostname
        .or_else(|| shared.as_ref().and_then(|t| t.hostname.clone()))
        .unwrap_or_else(|| id[..12].to_string());
    p.hostname = Some(hostname.clone());
    p.terminal = req.terminal;
    p.readonly_rootfs = req.readonly_rootfs;
    p.network = req.network;
    p.resources = req.resources;
    p.seccomp_unconfined = req.hardening.seccomp_unconfined || req.hardening.privileged;
    // Volumes are made (and filled from the image) under the volumes
    // lock, held until the record names them.
    let image_volumes: Vec<String> = config
        .volumes
        .iter()
        .flat_map(|v| v.keys().cloned())
        .collect();
    let planned = crate::volumes::plan(
        store,
        &lowers,
        req.volumes,
        &req.volumes_from,
        &image_volumes,
    )?;
    // Binds and volumes first, then `--tmpfs`, as before volumes.
    p.mounts = planned.mounts.clone();
    p.mounts.extend(req.mounts);
    p.mounts.extend(req.hardening.init_mount());
    // slirp4netns configures the namespace the runner makes.
    if networking
        .as_ref()
        .is_some_and(|n| n.network != crate::network::slirp::MODE)
    {
        derived.params.netns = Some(crate::network::netns_path(store, &id));
    }
    if let Some(t) = &shared {
        derived.params.netns = Some(t.netns.clone());
    }
    let terminal = req.terminal;
    let spec = match derived
        .oci()
        .map_err(Error::from)
        .and_then(|mut s| req.hardening.apply(&mut s).map(|()| s))
        .map(|mut s| {
            if terminal {
                // A detached container's pty has no terminal to take its
                // size from: docker's 80x24.
                if let Some(mut p) = s.process().clone() {
                    let size = oci_spec::runtime::BoxBuilder::default()
                        .height(24u64)
                        .width(80u64)
                        .build()
                        .ok();
                    p.set_console_size(size);
                    s.set_process(Some(p));
                }
            }
            s
        }) {
        Ok(s) => s,
        Err(e) => {
            planned.discard(store);
            return Err(e);
        }
    };
    let exposed = config
        .exposed_ports
        .iter()
        .flat_map(|m| m.keys())
        .filter_map(|k| crate::network::ports::parse_expose(k).ok())
        .flatten()
        .collect();

    let mut record = Container {
        id: id.clone(),
        name: String::new(),
        image_id: image.id().clone(),
        image: req.image,
        command,
        created: image_store::model::now(),
        state: State::Created,
        pid: None,
        exit_code: None,
        finished: None,
        auto_remove: req.auto_remove,
        owner: Some(std::process::id() as i32),
        mounts: planned.records.clone(),
        restart_policy: req.restart,
        restart_count: 0,
        started: None,
        runs: Vec::new(),
        labels,
        healthcheck: crate::health::merge(config.healthcheck.as_ref(), req.health).map(|config| {
            crate::health::Check {
                config,
                shell: image_shell.unwrap_or_default(),
            }
        }),
        stop_signal: req.stop_signal,
        stop_timeout: req.stop_timeout,
        log_opts: req.log_opts,
        entrypoint: Some(entry),
        cmd: Some(cmd),
    };
    let dir = match containers.create(&mut record, name) {
        Ok(d) => d,
        Err(e) => {
            planned.discard(store);
            return Err(e);
        }
    };
    planned.done();
    drop(reader);
    if let Some(t) = &shared {
        if let Err(e) = crate::network::shared::record(&dir, t) {
            let _ = containers.remove(&record.id);
            return Err(e);
        }
    }
    let mut created = Created {
        containers,
        record,
        dir,
        spec,
        lowers,
        runtime: req.runtime,
        interactive: req.interactive || req.terminal,
        stdin_once: req.stdin_once,
        networking,
        exposed,
        hostname,
    };
    let prepared = created.prepare(&derived.params.mounts);
    if let Err(e) = prepared {
        created.failed(e.exit_code());
        return Err(e);
    }
    Ok(created)
}

impl Created<'_> {
    /// The spec, the runtime file and the init layer.
    fn prepare(&mut self, mounts: &[MountSpec]) -> Result<()> {
        let spec_json = serde_json::to_vec(&self.spec).expect("a spec serializes");
        let p = self.dir.join(SPEC_FILE);
        fs::write(&p, spec_json).map_err(Error::io(p))?;
        if let Some(rt) = &self.runtime {
            let p = self.dir.join(RUNTIME_FILE);
            fs::write(&p, rt.as_os_str().as_encoded_bytes()).map_err(Error::io(p))?;
        }
        let stack = LayerStack::new(self.lowers.clone());
        let stubs = MountPoints::missing(
            &stack,
            &mountpoints::CONTAINER_DIRS,
            &mountpoints::CONTAINER_FILES,
            mounts,
        );
        if !stubs.is_empty() {
            let init = self.dir.join(INIT_DIR);
            stubs.create_in(&init)?;
            self.lowers.push(init);
        }
        if let Some(net) = self
            .networking
            .as_ref()
            .filter(|n| n.network == crate::network::slirp::MODE)
        {
            crate::network::slirp::prepare(&self.dir, &self.hostname, net, &self.exposed)?;
        } else if let Some(net) = &self.networking {
            let who = crate::network::attach::Identity {
                id: &self.record.id,
                name: &self.record.name,
                hostname: &self.hostname,
                dir: &self.dir,
            };
            let a = crate::network::attach(self.containers.store(), who, net, &self.exposed)?;
            // What a later start sets up again (see network::plan).
            let plan = crate::network::plan::Plan {
                request: crate::network::NetworkRequest {
                    network: a.network,
                    ..net.clone()
                },
                exposed: self.exposed.clone(),
                hostname: self.hostname.clone(),
                connected: Vec::new(),
            };
            crate::network::plan::write(&self.dir, &plan)?;
        }
        Ok(())
    }

    /// Records a container that failed to start (or removes it, `--rm`).
    fn failed(&mut self, code: u8) {
        let _ = crate::network::detach(self.containers.store(), &self.dir);
        if self.record.auto_remove {
            let _ = crate::volumes::auto_remove(&self.containers, &self.record);
        } else {
            self.record.state = State::Exited;
            self.record.exit_code = Some(code as i32);
            self.record.finished = Some(image_store::model::now());
            let _ = self.containers.save(&self.record);
        }
    }

    /// Runs the container in the foreground and waits for it.
    pub fn run_foreground(mut self) -> Result<ExitStatus> {
        let res = self.foreground();
        if let Err(e) = &res {
            self.failed(e.exit_code());
        }
        res
    }

    fn foreground(&mut self) -> Result<ExitStatus> {
        let mut opts = options(
            &self.record.id,
            &self.dir,
            self.lowers.clone(),
            self.runtime.as_deref(),
        );
        let slirp = slirp_hook(self.containers.store(), &self.dir, &mut opts);
        // Without -i the container reads /dev/null, as with docker.
        let devnull;
        if !self.interactive {
            devnull = fs::File::open("/dev/null").map_err(Error::io("/dev/null"))?;
            opts.stdio = runner::Stdio::Fds {
                stdin: devnull.as_raw_fd(),
                stdout: 1,
                stderr: 2,
            };
        }
        let container = runner::spawn(&self.spec, &opts)?;
        self.record.state = State::Running;
        self.record.pid = Some(container.pid());
        self.record.started = Some(image_store::model::now());
        self.containers.save(&self.record)?;
        let health = crate::health::watch(self.containers.store(), &self.record);
        let status = container.wait();
        drop(slirp);
        if let Some(h) = health {
            h.end();
        }
        finish(
            &self.containers,
            &mut self.record,
            status.as_ref().ok().copied(),
        );
        Ok(status?)
    }

    /// Starts the monitor `monitor` (kiln's `run --monitor ID`, which calls
    /// [`monitor`]) in a session of its own with the log file as its
    /// output, and waits only until it reports the container started (or
    /// failed to: the exit code and message come back over a pipe).
    pub fn start_detached(self, monitor: Command) -> Result<Container> {
        let (record, child) = self.start_monitored(monitor, |_| {})?;
        // The monitor lives on in its own session; it is reparented to
        // init when kiln exits.
        std::mem::forget(child);
        Ok(record)
    }

    /// [`Created::start_detached`] for a long-lived caller (the Engine
    /// API server): the monitor is returned, to be waited for (its exit
    /// code is the container's), and `on_log` gets the log file's path
    /// once it exists, before the container can write to it (to follow
    /// it from its first line).
    pub fn start_monitored(
        mut self,
        monitor: Command,
        on_log: impl FnOnce(&Path),
    ) -> Result<(Container, std::process::Child)> {
        let res = self.detached(monitor, on_log);
        if let Err(e) = &res {
            self.failed(e.exit_code());
        }
        res.map(|child| (self.record, child))
    }

    fn detached(
        &mut self,
        mut cmd: Command,
        on_log: impl FnOnce(&Path),
    ) -> Result<std::process::Child> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(Error::io("pipe")(std::io::Error::last_os_error()));
        }
        // SAFETY: both descriptors were just created and are owned here.
        let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let launch = Launch {
            lowers: self.lowers.clone(),
            runtime: self.runtime.clone(),
            ready_fd: wr.as_raw_fd(),
            interactive: self.interactive,
            stdin_once: self.stdin_once,
        };
        let p = self.dir.join(LAUNCH_FILE);
        fs::write(&p, serde_json::to_vec(&launch).expect("plain data")).map_err(Error::io(p))?;
        let p = self.dir.join(LOG_FILE);
        fs::File::create(&p).map_err(Error::io(&p))?;
        on_log(&p);
        let p = self.dir.join(MONITOR_LOG_FILE);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .map_err(Error::io(&p))?;
        cmd.stdin(std::process::Stdio::null())
            .stdout(log.try_clone().map_err(Error::io(&p))?)
            .stderr(log);
        let wr_fd = wr.as_raw_fd();
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let flags = libc::fcntl(wr_fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(wr_fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::Invalid(format!("starting the container monitor: {e}")))?;
        drop(wr);
        let mut answer = String::new();
        let _ = fs::File::from(rd).read_to_string(&mut answer);
        let line = answer.lines().next().unwrap_or("").to_string();
        if line == "ok" {
            return Ok(child);
        }
        let _ = child.wait();
        let (code, message) = line
            .split_once(' ')
            .and_then(|(c, m)| Some((c.parse::<u8>().ok()?, m.to_string())))
            .unwrap_or((125, "the container monitor failed".to_string()));
        Err(Error::Failed { code, message })
    }
}

fn options(id: &str, dir: &Path, lowers: Vec<PathBuf>, runtime: Option<&Path>) -> RunOptions {
    let mut o = RunOptions::new(
        id,
        dir,
        Rootfs::Overlay {
            lower: lowers,
            upper: dir.join("upper"),
            work: dir.join("work"),
        },
    );
    o.runtime = runtime::from_path(runtime).runner();
    o.etc_network = network_etc(dir);
    o
}

/// For a container on slirp4netns: the runner starts it on the new
/// namespace; it lives in the returned slot until that is dropped (after
/// the container has ended).
fn slirp_hook(
    store: &Store,
    dir: &Path,
    opts: &mut RunOptions,
) -> Option<crate::network::slirp::Slot> {
    let id = dir.file_name()?.to_string_lossy().into_owned();
    let socket = crate::network::Networks::new(store)
        .run_dir()
        .join("slirp")
        .join(format!("{}.sock", &id[..12.min(id.len())]));
    let (hook, slot) = crate::network::slirp::hook(dir, socket)?;
    opts.before_start = Some(hook);
    Some(slot)
}

/// The container's /etc/hosts lines and resolv.conf: its network's, or
/// those of the container whose namespace it joins.
fn network_etc(dir: &Path) -> Option<runner::EtcNetwork> {
    crate::network::attachment(dir)
        .and_then(|a| a.runner_etc())
        .or_else(|| crate::network::shared::etc(dir))
        .or_else(|| {
            crate::network::slirp::state(dir).map(|s| runner::EtcNetwork {
                hosts: s.etc.hosts,
                resolv_conf: s.etc.resolv_conf,
            })
        })
}

/// Records how the container ended (or removes it, `--rm`).
fn finish(containers: &Containers, rec: &mut Container, status: Option<ExitStatus>) {
    let dir = containers.container_dir(&rec.id);
    if let Err(e) = crate::network::detach(containers.store(), &dir) {
        eprintln!(
            "kiln: WARNING: tearing down the network of {}: {e}",
            rec.name
        );
    }
    if rec.auto_remove {
        let _ = crate::volumes::auto_remove(containers, rec);
        return;
    }
    // `rm -f` may have removed the container meanwhile.
    if !containers
        .container_dir(&rec.id)
        .join("container.json")
        .exists()
    {
        return;
    }
    rec.state = State::Exited;
    rec.exit_code = Some(status.map_or(125, |s| s.code() as i32));
    rec.finished = Some(image_store::model::now());
    let _ = containers.save(rec);
}

/// The monitor of detached container `id` (kiln's hidden
/// `run --monitor ID`, whose standard output and error are the container's
/// log, in a session of its own): starts the container, tells the waiting
/// `kiln run` over the inherited pipe, waits, records the exit, and starts
/// it again as long as its restart policy says so ([`crate::restart`]).
/// Returns the container's last exit code (or the runner's for a failed
/// start).
pub fn monitor(store: &Store, id: &str) -> Result<u8> {
    let containers = Containers::new(store);
    let mut rec = containers.container(id)?;
    let dir = containers.container_dir(id);
    let read = |name: &str| {
        let p = dir.join(name);
        fs::read(&p).map_err(Error::io(&p))
    };
    let spec: runner::Spec =
        serde_json::from_slice(&read(SPEC_FILE)?).map_err(Error::json(dir.join(SPEC_FILE)))?;
    let launch: Launch =
        serde_json::from_slice(&read(LAUNCH_FILE)?).map_err(Error::json(dir.join(LAUNCH_FILE)))?;
    // SAFETY: the fd was inherited from the parent for this purpose only.
    let mut ready = Some(unsafe { fs::File::from_raw_fd(launch.ready_fd) });
    // SAFETY: setting FD_CLOEXEC on our own descriptor.
    unsafe { libc::fcntl(launch.ready_fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    let _ = fs::write(dir.join(MONITOR_PID_FILE), std::process::id().to_string());
    // A start clears the user's earlier stop.
    restart::clear_stop(&dir);
    let mut opts = options(&rec.id, &dir, launch.lowers, launch.runtime.as_deref());
    // One slirp4netns per run of the container (a restart starts another).
    let slirp = slirp_hook(store, &dir, &mut opts);
    let rotation = crate::logfile::Rotation::parse(&rec.log_opts)?;
    let log = LogWriter::open_rotated(&dir.join(LOG_FILE), rotation)?;
    // `-i`: standard input is a FIFO `kiln attach` writes into, held open
    // here so that the container never reads end of file (docker keeps
    // stdin open too), or read only (`StdinOnce`: it ends when its client
    // closes it); else /dev/null.
    let stdin = match (launch.interactive, launch.stdin_once) {
        (true, false) => crate::attach::open_stdin(&dir)?,
        (true, true) => crate::attach::open_stdin_once(&dir)?,
        (false, _) => fs::File::open("/dev/null").map_err(Error::io("/dev/null"))?,
    };
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let resizer = match terminal {
        true => Some(crate::attach::Resizer::start(&dir)?),
        false => None,
    };
    let mut backoff = Backoff::default();
    loop {
        // `network connect` may have changed the /etc files since.
        opts.etc_network = network_etc(&dir);
        let pipes = Pipes::new()?;
        let (stdout, stderr) = pipes.writers();
        opts.stdio = runner::Stdio::Fds {
            stdin: stdin.as_raw_fd(),
            stdout,
            stderr,
        };
        let spawned = runner::spawn(&spec, &opts);
        let pumps = pipes.start(&log, terminal);
        let container = match spawned {
            Ok(c) => c,
            Err(e) => {
                pumps.join();
                if let Some(mut r) = ready.take() {
                    let _ = writeln!(r, "{} {}", e.exit_code(), e);
                } else {
                    // A restart that failed: the log says why, the
                    // policy ends here.
                    log.message(
                        Stream::Stderr,
                        &format!("kiln: restarting the container: {e}"),
                    );
                }
                rec = reload(&containers, rec);
                rec.state = State::Exited;
                rec.pid = None;
                rec.exit_code = Some(e.exit_code() as i32);
                rec.finished = Some(image_store::model::now());
                let _ = crate::network::detach(store, &dir);
                if rec.auto_remove {
                    let _ = crate::volumes::auto_remove(&containers, &rec);
                } else if containers.container_dir(&rec.id).exists() {
                    let _ = containers.save(&rec);
                }
                return Ok(e.exit_code());
            }
        };
        let started = std::time::Instant::now();
        rec = reload(&containers, rec);
        rec.state = State::Running;
        rec.pid = Some(container.pid());
        rec.started = Some(image_store::model::now());
        // From here the monitor, not the `kiln run` that started it, waits.
        rec.owner = Some(std::process::id() as i32);
        if let Err(e) = containers.save(&rec) {
            if let Some(mut r) = ready.take() {
                let _ = writeln!(r, "125 {e}");
            }
            return Err(e);
        }
        if let Some(mut r) = ready.take() {
            let _ = writeln!(r, "ok");
        }
        let health = crate::health::watch(store, &rec);
        if let Some(r) = &resizer {
            r.set(container.pty());
        }
        let status = container.wait();
        if let Some(s) = &slirp {
            s.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
        if let Some(r) = &resizer {
            r.set(None);
        }
        if let Some(h) = health {
            h.end();
        }
        pumps.join();
        let code = match &status {
            Ok(s) => s.code(),
            Err(e) => {
                // The runner's failure goes into the container's log, as
                // any other output of the container.
                log.message(Stream::Stderr, &format!("kiln: {e}"));
                e.exit_code()
            }
        };
        rec = reload(&containers, rec);
        let finished = image_store::model::now();
        restart::push_run(
            &mut rec.runs,
            RunExit {
                started_at: rec.started.clone().unwrap_or_default(),
                finished_at: finished.clone(),
                exit_code: code as i32,
            },
        );
        let again = rec
            .restart_policy
            .should_restart(code as i32, rec.restart_count)
            && !restart::stop_requested(&dir)
            && containers
                .container_dir(&rec.id)
                .join("container.json")
                .exists();
        if !again {
            finish(&containers, &mut rec, status.as_ref().ok().copied());
            return Ok(code);
        }
        rec.state = State::Restarting;
        rec.pid = None;
        rec.exit_code = Some(code as i32);
        rec.finished = Some(finished);
        let _ = containers.save(&rec);
        if !restart::wait_before_restart(&dir, backoff.next(started.elapsed())) {
            rec = reload(&containers, rec);
            finish(&containers, &mut rec, status.as_ref().ok().copied());
            return Ok(code);
        }
        rec = reload(&containers, rec);
        rec.restart_count += 1;
        let _ = containers.save(&rec);
    }
}

/// The record as it is on disk now (others may have renamed or labelled
/// it), or `rec` if it cannot be read.
fn reload(containers: &Containers, rec: Container) -> Container {
    containers.load(&rec.id).unwrap_or(rec)
}
