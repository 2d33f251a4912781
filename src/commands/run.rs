//! `kiln run`: flags into a [`containers::run::RunRequest`]; the library
//! creates the container and runs it in the foreground or hands it to a
//! monitor (`-d`), which is this command again with `--monitor ID`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use containers::health::HealthFlags;
use containers::network::NetworkFlags;
use containers::restart::RestartPolicy;
use containers::run::{self, RunRequest};
use containers::security::{self, Hardening};
use containers::{mountopts, options};
use runner::spec::Resources;

use crate::context::Ctx;
use crate::exit::{from_containers, Status};

// `kiln run`'s arguments (boxed: the flags are many). A plain comment: a
// doc comment would become the help text of `run` and `create`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Networking: `--network bridge` (the default as root, as docker's: an address \
    on kiln's default bridge, NAT out), `--network NAME` (a user network from `kiln network \
    create`: containers resolve each other by name and alias), both set up by netavark, with \
    `-p`, `-P`, `--expose`, `--network-alias`, `--ip`, `--dns*` and `--add-host`; `--network none` (a new network namespace \
    with only loopback; the default when not root in the host's user namespace, since \
    unprivileged networks are not built yet) or `--network host`."
)]
pub struct RunArgs {
    #[command(flatten)]
    pub flags: Box<RunFlags>,
}

#[derive(clap::Args, Debug)]
pub struct RunFlags {
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Run in the background and print the container ID
    #[arg(short, long)]
    pub detach: bool,
    /// Keep standard input open (without it the container's stdin is /dev/null)
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal
    #[arg(short, long)]
    pub tty: bool,
    /// Set an environment variable (KEY=VALUE, or KEY to take the host's value)
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read environment variables from a file (KEY=VALUE lines)
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// User: name|uid[:group|gid]
    #[arg(short, long, value_name = "USER")]
    pub user: Option<String>,
    /// Override the image's ENTRYPOINT (also clears its CMD)
    #[arg(long, value_name = "CMD")]
    pub entrypoint: Option<String>,
    /// Mount a volume: /CTR (anonymous), NAME:/CTR[:ro] (named) or /HOST:/CTR[:ro] (bind)
    #[arg(short, long = "volume", value_name = "[SRC:]CTR[:ro]")]
    pub volume: Vec<String>,
    /// Mount: type=bind|volume|tmpfs,source=…,target=…[,readonly]
    #[arg(long = "mount", value_name = "SPEC")]
    pub mount: Vec<String>,
    /// Mount the volumes and binds of another container: CONTAINER[:ro|rw]
    #[arg(long, value_name = "CONTAINER[:ro|rw]")]
    pub volumes_from: Vec<String>,
    /// Mount a tmpfs: PATH[:OPTIONS]
    #[arg(long, value_name = "PATH[:OPTS]")]
    pub tmpfs: Vec<String>,
    /// Mount the container's root filesystem read-only
    #[arg(long)]
    pub read_only: bool,
    /// Network: bridge (default as root), none (default otherwise), host, or a user network's name
    #[arg(long, value_name = "MODE")]
    pub network: Option<String>,
    /// Publish a container's port(s) to the host: [IP:][HOSTPORT:]CONTAINERPORT[/tcp|udp]
    #[arg(short, long = "publish", value_name = "PORTS")]
    pub publish: Vec<String>,
    /// Publish every exposed port (image EXPOSE and --expose) to a free host port
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    /// Expose a port or a range of ports: PORT[-PORT][/tcp|udp]
    #[arg(long, value_name = "PORT")]
    pub expose: Vec<String>,
    /// Another name the container has on a user network
    #[arg(long, value_name = "ALIAS")]
    pub network_alias: Vec<String>,
    /// The container's IPv4 address on a user network
    #[arg(long, value_name = "IP")]
    pub ip: Option<String>,
    /// A DNS server for the container
    #[arg(long, value_name = "IP")]
    pub dns: Vec<String>,
    /// A DNS search domain for the container
    #[arg(long, value_name = "DOMAIN")]
    pub dns_search: Vec<String>,
    /// A resolver option (resolv.conf's options)
    #[arg(long, value_name = "OPT")]
    pub dns_option: Vec<String>,
    /// An /etc/hosts entry: HOST:IP (IP may be host-gateway)
    #[arg(long, value_name = "HOST:IP")]
    pub add_host: Vec<String>,
    /// Link to a running container on the same network: NAME[:ALIAS] (docker's legacy links)
    #[arg(long, value_name = "NAME[:ALIAS]")]
    pub link: Vec<String>,
    /// The container's MAC address on its network
    #[arg(long, value_name = "MAC")]
    pub mac_address: Option<String>,
    /// Container host name (default: the short container ID)
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Name of the container
    #[arg(long)]
    pub name: Option<String>,
    /// Run with an external OCI runtime such as /usr/sbin/runc
    #[arg(long, value_name = "PATH")]
    pub runtime: Option<PathBuf>,
    /// Memory limit (e.g. 512m, 1g)
    #[arg(short, long, value_name = "BYTES")]
    pub memory: Option<String>,
    /// Memory plus swap limit (e.g. 1g), -1 for unlimited swap; needs --memory
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit (e.g. 256m)
    #[arg(long, value_name = "BYTES")]
    pub memory_reservation: Option<String>,
    /// CPU shares (relative weight; docker's default is 1024)
    #[arg(short = 'c', long, value_name = "N")]
    pub cpu_shares: Option<u64>,
    /// CPUs the container may use (e.g. 0-2,4)
    #[arg(long, value_name = "CPUS")]
    pub cpuset_cpus: Option<String>,
    /// Maximum number of processes
    #[arg(long, value_name = "N")]
    pub pids_limit: Option<i64>,
    /// A resource limit: NAME=SOFT[:HARD] (nofile, nproc, core, …)
    #[arg(long, value_name = "NAME=SOFT[:HARD]", allow_hyphen_values = true)]
    pub ulimit: Vec<String>,
    /// Size of /dev/shm (e.g. 128m; default 64m)
    #[arg(long, value_name = "BYTES")]
    pub shm_size: Option<String>,
    /// Add a capability (e.g. NET_ADMIN, or ALL)
    #[arg(long, value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability (e.g. CHOWN, or ALL)
    #[arg(long, value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Security options: no-new-privileges, seccomp=unconfined
    #[arg(long, value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Give the container every capability and host device, no seccomp filter, no masked paths
    #[arg(long)]
    pub privileged: bool,
    /// Add a host device to the container: HOST[:CONTAINER][:PERMS] (PERMS of r, w, m)
    #[arg(long, value_name = "HOST[:CTR][:PERMS]")]
    pub device: Vec<String>,
    /// Run a tiny init (tini) as pid 1 that reaps zombies and forwards signals
    #[arg(long)]
    pub init: bool,
    /// Log option of a detached container: max-size=SIZE, max-file=N (rotation)
    #[arg(long, value_name = "KEY=VALUE")]
    pub log_opt: Vec<String>,
    /// Signal that stop sends first (default: the image's STOPSIGNAL, else SIGTERM)
    #[arg(long, value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Seconds stop waits before SIGKILL (default 10)
    #[arg(long, value_name = "SECS")]
    pub stop_timeout: Option<i64>,
    /// Number of CPUs (fractional)
    #[arg(long, value_name = "CPUS")]
    pub cpus: Option<f64>,
    /// Restart policy: no, on-failure[:N], always, unless-stopped (needs -d)
    #[arg(long, value_name = "POLICY", default_value = "no")]
    pub restart: String,
    /// Set a label on the container (KEY=VALUE)
    #[arg(short, long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Command the health check runs (with /bin/sh -c, or the image's SHELL)
    #[arg(long, value_name = "CMD")]
    pub health_cmd: Option<String>,
    /// Time between health checks (ms|s|m|h), default 30s
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub health_interval: Option<String>,
    /// Longest time one health check may run (ms|s|m|h), default 30s
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub health_timeout: Option<String>,
    /// Failures in a row that make the container unhealthy, default 3
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub health_retries: Option<i64>,
    /// Time to start before failed checks count (ms|s|m|h), default 0s
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub health_start_period: Option<String>,
    /// Disable any health check the image sets
    #[arg(long)]
    pub no_healthcheck: bool,
    /// Internal: run the monitor of a detached container
    #[arg(long, hide = true, value_name = "ID")]
    pub monitor: Option<String>,
    /// The image to run, then the command and its arguments (replacing the
    /// image's CMD). One list, so that flags end at the image as with docker:
    /// `run busybox -c 1` passes `-c 1` to the container.
    #[arg(
        value_name = "IMAGE [COMMAND]",
        required_unless_present = "monitor",
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub image_and_command: Vec<String>,
}

pub(crate) fn request(mut args: RunFlags) -> Result<RunRequest> {
    let mut words = std::mem::take(&mut args.image_and_command).into_iter();
    let image = words.next();
    let command: Vec<String> = words.collect();
    // Checked first: a bad name costs nothing.
    if let Some(n) = &args.name {
        containers::container_name(n)?;
    }
    let choice = containers::network::from_flags(NetworkFlags {
        mode: args.network.as_deref(),
        publish: &args.publish,
        publish_all: args.publish_all,
        expose: &args.expose,
        aliases: &args.network_alias,
        ip: args.ip.as_deref(),
        dns: &args.dns,
        dns_search: &args.dns_search,
        dns_options: &args.dns_option,
        add_hosts: &args.add_host,
        links: &args.link,
        mac: args.mac_address.as_deref(),
    })?;
    if args.detach && args.tty && args.runtime.is_some() {
        bail!("-d -t with --runtime: an external runtime's terminal needs the caller's; only kiln's own runtime keeps a pty for a detached container");
    }
    let restart = RestartPolicy::parse(&args.restart)?;
    if args.rm && !restart.is_none() {
        bail!("conflicting options: cannot specify both --restart and --rm");
    }
    if !args.detach && !restart.is_none() {
        bail!(
            "--restart needs -d: kiln has no daemon, the detached container's monitor restarts it"
        );
    }
    let health = HealthFlags {
        cmd: args.health_cmd,
        interval: args.health_interval,
        timeout: args.health_timeout,
        start_period: args.health_start_period,
        retries: args.health_retries,
        none: args.no_healthcheck,
    }
    .config()?;
    let labels = args.label.iter().map(|l| options::parse_label(l));
    let labels = labels.collect::<Result<_, _>>()?;
    if let Some(w) = &args.workdir {
        options::check_workdir(w)?;
    }
    let mut resources = Resources {
        pids: args.pids_limit,
        cpus: args.cpus,
        ..Default::default()
    };
    if let Some(m) = &args.memory {
        resources.memory_bytes = Some(options::parse_bytes(m)?);
    }
    if let Some(sw) = &args.memory_swap {
        let Some(m) = resources.memory_bytes else {
            bail!("--memory-swap needs --memory (the limit of memory plus swap)");
        };
        let sw = match sw.trim() {
            "-1" => -1,
            s => options::parse_bytes(s)?,
        };
        if sw != -1 && sw < m {
            bail!("--memory-swap must be at least --memory");
        }
        resources.memory_swap = Some(sw);
    }
    if let Some(r) = &args.memory_reservation {
        resources.memory_reservation = Some(options::parse_bytes(r)?);
    }
    if let Some(sh) = args.cpu_shares {
        if !(2..=262_144).contains(&sh) {
            bail!("--cpu-shares {sh}: must be between 2 and 262144");
        }
        resources.cpu_shares = Some(sh);
    }
    if let Some(set) = &args.cpuset_cpus {
        options::check_cpuset(set)?;
        resources.cpuset_cpus = Some(set.clone());
    }
    let mut hardening = Hardening {
        cap_add: security::parse_caps("--cap-add", &args.cap_add)?,
        cap_drop: security::parse_caps("--cap-drop", &args.cap_drop)?,
        ulimits: args
            .ulimit
            .iter()
            .map(|u| security::parse_ulimit(u))
            .collect::<Result<_, _>>()?,
        shm_size: args
            .shm_size
            .as_deref()
            .map(options::parse_bytes)
            .transpose()?,
        init: args.init.then(security::find_init).transpose()?,
        devices: args
            .privileged
            .then(security::host_devices)
            .unwrap_or_default()
            .into_iter()
            .map(Ok)
            .chain(args.device.iter().map(|d| security::parse_device(d)))
            .collect::<Result<_, _>>()?,
        privileged: args.privileged,
        ..Default::default()
    };
    for o in &args.security_opt {
        security::parse_security_opt(&mut hardening, o)?;
    }
    if let Some(sig) = &args.stop_signal {
        containers::control::parse_signal(sig)?;
    }
    let mut log_opts = std::collections::BTreeMap::new();
    for o in &args.log_opt {
        let Some((k, v)) = o.split_once('=') else {
            bail!("invalid --log-opt {o:?}: want KEY=VALUE");
        };
        log_opts.insert(k.to_string(), v.to_string());
    }
    containers::logfile::Rotation::parse(&log_opts)?;
    if args.stop_timeout.is_some_and(|t| t < 0) {
        bail!("--stop-timeout cannot be negative");
    }
    let mounts = args
        .tmpfs
        .iter()
        .map(|t| options::parse_tmpfs(t))
        .collect::<Result<_, _>>()?;
    let v = args.volume.iter().map(|v| mountopts::parse_v(v));
    let m = args.mount.iter().map(|m| mountopts::parse_mount(m));
    let volumes = v.chain(m).collect::<Result<_, _>>()?;
    for f in &args.volumes_from {
        mountopts::parse_volumes_from(f)?;
    }
    Ok(RunRequest {
        image: image.expect("clap requires IMAGE"),
        name: args.name,
        entrypoint: args.entrypoint.as_deref().map(run::entrypoint_flag),
        command,
        env: options::env(&args.env_file, &args.env)?,
        user: args.user,
        workdir: args.workdir,
        hostname: args.hostname,
        terminal: args.tty,
        interactive: args.interactive,
        // `kiln attach` may come and go: the input stays open.
        stdin_once: false,
        readonly_rootfs: args.read_only,
        network: choice.network,
        networking: choice.request,
        network_container: choice.container,
        mounts,
        volumes,
        volumes_from: args.volumes_from,
        resources,
        runtime: args.runtime,
        auto_remove: args.rm,
        restart,
        labels,
        health,
        hardening,
        stop_signal: args.stop_signal,
        stop_timeout: args.stop_timeout,
        log_opts,
    })
}

pub fn run(ctx: &Ctx, args: RunArgs) -> Result<Status> {
    let args = *args.flags;
    if let Some(id) = &args.monitor {
        let code = run::monitor(&ctx.store()?, id).map_err(from_containers)?;
        return Ok(Status::External(code));
    }
    let detach = args.detach;
    let request = request(args)?;
    let store = ctx.store()?;
    let created = run::create(&store, request).map_err(from_containers)?;
    if !detach {
        let status = created.run_foreground().map_err(from_containers)?;
        return Ok(Status::External(status.code()));
    }
    let monitor = monitor_command(&store, &created.record.id)?;
    let rec = created.start_detached(monitor).map_err(from_containers)?;
    outln!("{}", rec.id);
    Ok(Status::Success)
}

/// The monitor of detached container `id`: this program again, as
/// `run --monitor ID`.
pub(crate) fn monitor_command(
    store: &image_store::Store,
    id: &str,
) -> Result<std::process::Command> {
    let exe = std::env::current_exe()?;
    let mut monitor = std::process::Command::new(exe);
    monitor.arg("--root").arg(store.root());
    monitor.args(["run", "--monitor", id]);
    Ok(monitor)
}
