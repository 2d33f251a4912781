//! `kiln run`: an image's layers as overlay lowers, a spec from the image
//! config and the flags, the runner to execute it; `-d` hands the container
//! to a monitor (kiln re-executed in its own session, like conmon) that
//! waits for it and records its exit code.

use std::fs;
use std::io::{Read as _, Write as _};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};

use ::containers::{Container, State};
use anyhow::{anyhow, bail, Context as _, Result};
use image_store::Store;
use runner::spec::{MountSpec, Network, Resources, SpecParams};
use runner::{ExitStatus, Rootfs, RunError, RunOptions, Runtime};
use serde::{Deserialize, Serialize};

use super::ctr;
use crate::context::Ctx;
use crate::exit::{Status, WithCode};

/// `kiln run`'s arguments (boxed: the flags are many).
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Networking: `--network none` (the default: a new network namespace with only \
    loopback) or `--network host`. Docker's default bridge is not built; unprivileged \
    user-mode networking may come later."
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
    /// Bind mount a volume: HOST:CONTAINER[:ro|rw]
    #[arg(short, long = "volume", value_name = "HOST:CTR[:ro]")]
    pub volume: Vec<String>,
    /// Mount a tmpfs: PATH[:OPTIONS]
    #[arg(long, value_name = "PATH[:OPTS]")]
    pub tmpfs: Vec<String>,
    /// Mount the container's root filesystem read-only
    #[arg(long)]
    pub read_only: bool,
    /// Network: none (default) or host
    #[arg(long, value_name = "MODE", default_value = "none")]
    pub network: String,
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
    /// Maximum number of processes
    #[arg(long, value_name = "N")]
    pub pids_limit: Option<i64>,
    /// Number of CPUs (fractional)
    #[arg(long, value_name = "CPUS")]
    pub cpus: Option<f64>,
    /// Internal: run the monitor of a detached container
    #[arg(long, hide = true, value_name = "ID")]
    pub monitor: Option<String>,
    /// The image to run
    #[arg(required_unless_present = "monitor")]
    pub image: Option<String>,
    /// Command and arguments (replace the image's CMD)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// What the monitor of a detached container needs, beside `spec.json`.
#[derive(Serialize, Deserialize)]
struct Launch {
    lowers: Vec<PathBuf>,
    runtime: Option<PathBuf>,
    ready_fd: i32,
}

const SPEC_FILE: &str = "spec.json";
const LAUNCH_FILE: &str = "launch.json";

fn err125(msg: String) -> anyhow::Error {
    anyhow!(msg)
}

fn run_error(e: RunError) -> anyhow::Error {
    WithCode {
        code: e.exit_code(),
        message: e.to_string(),
    }
    .into()
}

/// docker's units: b, k, m, g (binary), optional trailing `b`.
fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').filter(|x| !x.is_empty()).unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| err125(format!("invalid size: {s:?}")))?;
    if n <= 0.0 {
        bail!("invalid size: {s:?}");
    }
    Ok((n * mult as f64) as i64)
}

fn env_key(e: &str) -> &str {
    e.split_once('=').map_or(e, |(k, _)| k)
}

fn set_env(env: &mut Vec<String>, entry: String) {
    let k = env_key(&entry).to_string();
    match env.iter_mut().find(|e| env_key(e) == k) {
        Some(slot) => *slot = entry,
        None => env.push(entry),
    }
}

/// `-e K=V`, or `-e K` taking the host's value (skipped when unset).
fn host_env(item: &str) -> Option<String> {
    if item.contains('=') {
        Some(item.to_string())
    } else {
        std::env::var(item).ok().map(|v| format!("{item}={v}"))
    }
}

fn build_env(image_env: &[String], args: &RunFlags) -> Result<Vec<String>> {
    let mut env: Vec<String> = image_env.to_vec();
    for f in &args.env_file {
        let text =
            fs::read_to_string(f).with_context(|| format!("reading env file {}", f.display()))?;
        for line in text.lines() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(e) = host_env(line) {
                set_env(&mut env, e);
            }
        }
    }
    for e in &args.env {
        if e.is_empty() || e.starts_with('=') {
            bail!("invalid environment variable: {e:?}");
        }
        if let Some(e) = host_env(e) {
            set_env(&mut env, e);
        }
    }
    Ok(env)
}

fn parse_volume(v: &str) -> Result<MountSpec> {
    let parts: Vec<&str> = v.split(':').collect();
    let (host, ctr, opts) = match parts.as_slice() {
        [h, c] => (*h, *c, ""),
        [h, c, o] => (*h, *c, *o),
        _ => bail!("invalid volume specification: {v:?} (want HOST:CONTAINER[:ro])"),
    };
    if !host.starts_with('/') {
        bail!(
            "invalid volume {v:?}: named volumes are not supported, the host path must be absolute"
        );
    }
    if !ctr.starts_with('/') {
        bail!("invalid volume {v:?}: the container path must be absolute");
    }
    let mut readonly = false;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => readonly = true,
            "rw" => readonly = false,
            "z" | "Z" | "rprivate" | "private" => {}
            _ => bail!("invalid volume {v:?}: unknown option {o:?}"),
        }
    }
    let source = PathBuf::from(host);
    if !source.exists() {
        // docker creates a missing host directory.
        fs::create_dir_all(&source)
            .with_context(|| format!("creating the volume directory {host}"))?;
    }
    Ok(MountSpec::Bind {
        source,
        destination: builder::config::clean_abs(ctr),
        readonly,
    })
}

fn parse_tmpfs(t: &str) -> Result<MountSpec> {
    let (path, opts) = t.split_once(':').unwrap_or((t, ""));
    if !path.starts_with('/') {
        bail!("invalid tmpfs {t:?}: the path must be absolute");
    }
    Ok(MountSpec::Tmpfs {
        destination: builder::config::clean_abs(path),
        options: opts
            .split(',')
            .filter(|o| !o.is_empty())
            .map(String::from)
            .collect(),
    })
}

/// Docker's ENTRYPOINT + CMD combination.
fn command_of(config: &image_store::ContainerConfig, args: &RunFlags) -> Result<Vec<String>> {
    let entrypoint: Vec<String> = match &args.entrypoint {
        Some(e) if e.is_empty() => Vec::new(),
        Some(e) => vec![e.clone()],
        None => config.entrypoint.clone().unwrap_or_default(),
    };
    let cmd: Vec<String> = if !args.command.is_empty() {
        args.command.clone()
    } else if args.entrypoint.is_some() {
        Vec::new()
    } else {
        config.cmd.clone().unwrap_or_default()
    };
    let all: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if all.is_empty() {
        bail!("no command specified: the image has no ENTRYPOINT or CMD and none was given");
    }
    Ok(all)
}

/// Mount points the image lacks go into the init layer (see [`ctr::INIT_DIR`]).
fn prepare_init_layer(dir: &Path, lowers: &[PathBuf], mounts: &[MountSpec]) -> Result<bool> {
    let init = dir.join(ctr::INIT_DIR);
    let mut made = false;
    let mut stub = |rel: &str, is_dir: bool| -> Result<()> {
        if !ctr::in_lowers(lowers, rel) {
            ctr::init_stub(&init, rel, is_dir)?;
            made = true;
        }
        Ok(())
    };
    for d in ["proc", "sys", "dev"] {
        stub(d, true)?;
    }
    for f in ["etc/hosts", "etc/hostname", "etc/resolv.conf"] {
        stub(f, false)?;
    }
    for m in mounts {
        match m {
            MountSpec::Bind {
                source,
                destination,
                ..
            } => stub(destination.trim_start_matches('/'), source.is_dir())?,
            MountSpec::Tmpfs { destination, .. } => {
                stub(destination.trim_start_matches('/'), true)?
            }
        }
    }
    Ok(made)
}

fn opts_for(id: &str, dir: &Path, lowers: Vec<PathBuf>, runtime: Option<&Path>) -> RunOptions {
    let mut o = RunOptions::new(
        id,
        dir,
        Rootfs::Overlay {
            lower: lowers,
            upper: dir.join("upper"),
            work: dir.join("work"),
        },
    );
    if let Some(r) = runtime {
        o.runtime = Runtime::External(r.to_path_buf());
    }
    o
}

pub fn run(ctx: &Ctx, args: RunArgs) -> Result<Status> {
    let args = *args.flags;
    if let Some(id) = &args.monitor {
        return monitor(ctx, id);
    }
    let image_name = args.image.clone().expect("clap requires IMAGE");
    // Checked before anything is resolved or unpacked: a bad name costs nothing.
    let name = args
        .name
        .as_deref()
        .map(::containers::container_name)
        .transpose()?;
    let network = match args.network.as_str() {
        "none" => Network::None,
        "host" => Network::Host,
        other => bail!(
            "unsupported network mode {other:?}: only none and host (user-mode networking may come later)"
        ),
    };
    if args.detach && (args.tty || args.interactive) {
        bail!("-d cannot be combined with -i or -t (attaching is not supported)");
    }
    if let Some(w) = &args.workdir {
        if !w.starts_with('/') {
            bail!("the working directory {w:?} is not absolute");
        }
    }
    let mut resources = Resources {
        pids: args.pids_limit,
        cpus: args.cpus,
        ..Default::default()
    };
    if let Some(m) = &args.memory {
        resources.memory_bytes = Some(parse_bytes(m)?);
    }
    let mut mounts = Vec::new();
    for v in &args.volume {
        mounts.push(parse_volume(v)?);
    }
    for t in &args.tmpfs {
        mounts.push(parse_tmpfs(t)?);
    }

    let store = ctx.store()?;
    // Best effort: `system check --repair` reports what is left.
    let _ = ::containers::Containers::new(&store).reap_orphans();
    // Held until the container is recorded (from then on `rmi` sees it in
    // use), so no `rmi` removes the image's layers while they are unpacked.
    let reader = store.reader_lock()?;
    let image = store.resolve_locked(&image_name)?;
    let mut lowers = store
        .unpacked_layers(&image)
        .with_context(|| format!("unpacking image {image_name}"))?;
    let config = image.config.container_config();
    let command = command_of(&config, &args)?;
    let env = build_env(config.env.as_deref().unwrap_or_default(), &args)?;
    let user_spec = args
        .user
        .clone()
        .or_else(|| config.user.clone())
        .unwrap_or_default();
    let user = runner::user::resolve(&lowers, &user_spec).map_err(|e| anyhow!(e))?;
    let cwd = args
        .workdir
        .clone()
        .or_else(|| config.working_dir.clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());

    let id = ctr::new_id()?;
    let hostname = args
        .hostname
        .clone()
        .unwrap_or_else(|| id[..12].to_string());
    let params = SpecParams {
        args: command.clone(),
        env,
        cwd,
        uid: user.uid,
        gid: user.gid,
        additional_gids: user.additional_gids,
        home: Some(user.home),
        hostname: Some(hostname),
        terminal: args.tty,
        readonly_rootfs: args.read_only,
        network,
        mounts: mounts.clone(),
        resources,
        ..Default::default()
    };
    let spec = runner::spec::build(&params).map_err(run_error)?;

    let mut rec = Container {
        id: id.clone(),
        name: String::new(),
        image_id: image.id().clone(),
        image: image_name,
        command,
        created: image_store::model::now(),
        state: State::Created,
        pid: None,
        exit_code: None,
        finished: None,
        auto_remove: args.rm,
        owner: Some(std::process::id() as i32),
    };
    let dir = ctr::create(&store, &mut rec, name)?;
    drop(reader);
    let result = (|| -> Result<Status> {
        if let Some(rt) = &args.runtime {
            fs::write(
                dir.join(ctr::RUNTIME_FILE),
                rt.as_os_str().as_encoded_bytes(),
            )
            .context("recording the runtime")?;
        }
        if prepare_init_layer(&dir, &lowers, &mounts)? {
            lowers.push(dir.join(ctr::INIT_DIR));
        }
        if args.detach {
            return start_detached(&store, &mut rec, &dir, &spec, lowers, &args);
        }
        run_foreground(&store, &mut rec, &dir, &spec, lowers, &args)
    })();
    if result.is_err() {
        if args.rm {
            let _ = ctr::remove_dir(&store, &id);
        } else {
            rec.state = State::Exited;
            rec.exit_code = Some(result.as_ref().err().map_or(125, crate::exit::code_of) as i32);
            rec.finished = Some(image_store::model::now());
            let _ = ctr::save(&store, &rec);
        }
    }
    result
}

fn finish(store: &Store, rec: &mut Container, status: Option<ExitStatus>) {
    if rec.auto_remove {
        let _ = ctr::remove_dir(store, &rec.id);
        return;
    }
    // `rm -f` may have removed the container meanwhile.
    if !::containers::Containers::new(store)
        .container_dir(&rec.id)
        .join("container.json")
        .exists()
    {
        return;
    }
    rec.state = State::Exited;
    rec.exit_code = Some(status.map_or(125, |s| s.code() as i32));
    rec.finished = Some(image_store::model::now());
    let _ = ctr::save(store, rec);
}

fn run_foreground(
    store: &Store,
    rec: &mut Container,
    dir: &Path,
    spec: &runner::Spec,
    lowers: Vec<PathBuf>,
    args: &RunFlags,
) -> Result<Status> {
    let mut opts = opts_for(&rec.id, dir, lowers, args.runtime.as_deref());
    // Without -i the container reads /dev/null, as with docker.
    let devnull;
    if !args.interactive && !args.tty {
        devnull = fs::File::open("/dev/null").context("opening /dev/null")?;
        opts.stdio = runner::Stdio::Fds {
            stdin: devnull.as_raw_fd(),
            stdout: 1,
            stderr: 2,
        };
    }
    let container = runner::spawn(spec, &opts).map_err(run_error)?;
    rec.state = State::Running;
    rec.pid = Some(container.pid());
    ctr::save(store, rec)?;
    let status = container.wait();
    match status {
        Ok(s) => {
            finish(store, rec, Some(s));
            Ok(Status::External(s.code()))
        }
        Err(e) => {
            finish(store, rec, None);
            Err(run_error(e))
        }
    }
}

/// Starts the monitor and waits only until it reports the container started
/// (or failed to: the exit code and message come back over a pipe).
fn start_detached(
    store: &Store,
    rec: &mut Container,
    dir: &Path,
    spec: &runner::Spec,
    lowers: Vec<PathBuf>,
    args: &RunFlags,
) -> Result<Status> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("creating a pipe");
    }
    // SAFETY: both descriptors were just created and are owned here.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let spec_json = serde_json::to_vec(spec).context("serializing the runtime spec")?;
    fs::write(dir.join(SPEC_FILE), spec_json).context("writing spec.json")?;
    let launch = Launch {
        lowers,
        runtime: args.runtime.clone(),
        ready_fd: wr.as_raw_fd(),
    };
    fs::write(
        dir.join(LAUNCH_FILE),
        serde_json::to_vec(&launch).expect("plain data"),
    )
    .context("writing launch.json")?;
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(ctr::LOG_FILE))
        .context("creating the log file")?;
    let exe = std::env::current_exe().context("finding the kiln executable")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--root")
        .arg(store.root())
        .args(["run", "--monitor", &rec.id])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().context("duplicating the log descriptor")?)
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
    let mut child = cmd.spawn().context("starting the container monitor")?;
    drop(wr);
    let mut answer = String::new();
    let _ = fs::File::from(rd).read_to_string(&mut answer);
    let line = answer.lines().next().unwrap_or("").to_string();
    if line == "ok" {
        outln!("{}", rec.id);
        // The monitor lives on in its own session; it is reparented to init
        // when kiln exits.
        std::mem::forget(child);
        return Ok(Status::Success);
    }
    let _ = child.wait();
    let (code, msg) = line
        .split_once(' ')
        .and_then(|(c, m)| Some((c.parse::<u8>().ok()?, m.to_string())))
        .unwrap_or((125, "the container monitor failed".to_string()));
    Err(WithCode { code, message: msg }.into())
}

/// The hidden `run --monitor ID`: stdout/stderr are the log file, in a
/// session of its own.
fn monitor(ctx: &Ctx, id: &str) -> Result<Status> {
    let store = ctx.store()?;
    let mut rec = ::containers::Containers::new(&store).container(id)?;
    let dir = ::containers::Containers::new(&store).container_dir(id);
    let spec: runner::Spec =
        serde_json::from_slice(&fs::read(dir.join(SPEC_FILE))?).context("reading spec.json")?;
    let launch: Launch =
        serde_json::from_slice(&fs::read(dir.join(LAUNCH_FILE))?).context("reading launch.json")?;
    // SAFETY: the fd was inherited from the parent for this purpose only.
    let mut ready = unsafe { fs::File::from_raw_fd(launch.ready_fd) };
    // SAFETY: setting FD_CLOEXEC on our own descriptor.
    unsafe { libc::fcntl(launch.ready_fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    let _ = fs::write(
        dir.join(ctr::MONITOR_PID_FILE),
        std::process::id().to_string(),
    );
    let opts = opts_for(&rec.id, &dir, launch.lowers, launch.runtime.as_deref());
    let container = match runner::spawn(&spec, &opts) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(ready, "{} {}", e.exit_code(), e);
            drop(ready);
            rec.state = State::Exited;
            rec.exit_code = Some(e.exit_code() as i32);
            rec.finished = Some(image_store::model::now());
            if rec.auto_remove {
                let _ = ctr::remove_dir(&store, &rec.id);
            } else {
                let _ = ctr::save(&store, &rec);
            }
            return Ok(Status::External(e.exit_code()));
        }
    };
    rec.state = State::Running;
    rec.pid = Some(container.pid());
    // From here the monitor, not the `kiln run` that started it, waits.
    rec.owner = Some(std::process::id() as i32);
    if let Err(e) = ctr::save(&store, &rec) {
        let _ = writeln!(ready, "125 {e:#}");
        return Err(e);
    }
    let _ = writeln!(ready, "ok");
    drop(ready);
    let status = container.wait();
    finish(&store, &mut rec, status.as_ref().ok().copied());
    let _ = std::io::stdout().flush();
    match status {
        Ok(s) => Ok(Status::External(s.code())),
        Err(e) => {
            eprintln!("kiln: {e}");
            Ok(Status::External(e.exit_code()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert_eq!(parse_bytes("2kb").unwrap(), 2048);
        assert!(parse_bytes("x").is_err());
    }
}
