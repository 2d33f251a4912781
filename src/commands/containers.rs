//! `kiln ps`, `rm`, `logs`, `stop`, `kill`.

use std::fs;
use std::io::{Read as _, Seek as _, Write as _};
use std::time::Duration;

use ::containers::{Container, State};
use anyhow::{bail, Context as _, Result};
use image_store::Store;

use super::ctr;
use crate::context::Ctx;
use crate::exit::Status;
use crate::format;

#[derive(clap::Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Only display container IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
}

#[derive(clap::Args, Debug)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// Follow log output until the container exits
    #[arg(short, long)]
    pub follow: bool,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(clap::Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(short, long = "time", default_value_t = 10, value_name = "SECS")]
    pub time: u64,
    /// Signal to send first (default: the image's STOPSIGNAL, else SIGTERM)
    #[arg(short, long, value_name = "SIGNAL")]
    pub signal: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct KillArgs {
    /// Signal to send
    #[arg(short, long, default_value = "KILL", value_name = "SIGNAL")]
    pub signal: String,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

fn since(t: Option<&str>) -> String {
    match format::parse_time(t) {
        Some(t) => format::human_duration(chrono::Utc::now() - t),
        None => "?".into(),
    }
}

fn status_text(c: &Container) -> String {
    if ctr::is_running(c) {
        return format!("Up {}", since(Some(&c.created)));
    }
    match c.state {
        State::Created => "Created".into(),
        State::Running => "Exited (unknown)".into(),
        State::Exited => format!(
            "Exited ({}) {} ago",
            c.exit_code.unwrap_or(-1),
            since(c.finished.as_deref())
        ),
    }
}

pub fn ps(ctx: &Ctx, args: PsArgs) -> Result<Status> {
    let store = ctx.store()?;
    // Best effort: a store this user cannot write is still listed.
    let _ = ::containers::Containers::new(&store).reap_orphans();
    let list: Vec<Container> = ::containers::Containers::new(&store)
        .containers()?
        .into_iter()
        .filter(|c| args.all || ctr::is_running(c))
        .collect();
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for c in &list {
            let id = if args.no_trunc {
                &c.id[..]
            } else {
                &c.id[..12]
            };
            writeln!(out, "{id}")?;
        }
        return Ok(Status::Success);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            let cmd = c.command.join(" ");
            vec![
                if args.no_trunc {
                    c.id.clone()
                } else {
                    c.id[..12].to_string()
                },
                c.image.clone(),
                format!(
                    "\"{}\"",
                    if args.no_trunc {
                        cmd
                    } else {
                        format::ellipsis(&cmd, 20)
                    }
                ),
                format::ago(Some(&c.created)),
                status_text(c),
                c.name.clone(),
            ]
        })
        .collect();
    write!(
        out,
        "{}",
        format::table(
            &[
                "CONTAINER ID",
                "IMAGE",
                "COMMAND",
                "CREATED",
                "STATUS",
                "NAMES"
            ],
            &rows
        )
    )?;
    Ok(Status::Success)
}

/// Waits for a killed container's init to go and for whoever ran it to
/// record that (or remove it, for `--rm`).
fn wait_stopped(store: &Store, c: &Container, timeout: Duration) -> bool {
    let pid = c.pid.unwrap_or(0);
    let gone = ctr::wait_until(timeout, || !ctr::alive(pid));
    if !gone {
        return false;
    }
    // The monitor or `kiln run` writes the exit code right after.
    ctr::wait_until(
        Duration::from_secs(2),
        || match ::containers::Containers::new(store).container(&c.id) {
            Ok(now) => now.state != State::Running,
            Err(_) => true,
        },
    );
    true
}

pub fn rm(ctx: &Ctx, args: RmArgs) -> Result<Status> {
    let store = ctx.store()?;
    // Best effort: a store this user cannot write is still listed.
    let _ = ::containers::Containers::new(&store).reap_orphans();
    let mut failed = false;
    for name in &args.containers {
        let res = (|| -> Result<()> {
            let c = ctr::find(&store, name)?;
            if ctr::is_running(&c) {
                if !args.force {
                    bail!(
                        "cannot remove container {name}: it is running (stop it first or use rm -f)"
                    );
                }
                let _ = ctr::signal(&store, &c, libc::SIGKILL);
                if !wait_stopped(&store, &c, Duration::from_secs(10)) {
                    bail!("container {name} did not stop after SIGKILL");
                }
            }
            // A detached container's monitor may still be writing.
            if let Ok(p) = fs::read_to_string(
                ::containers::Containers::new(&store)
                    .container_dir(&c.id)
                    .join(ctr::MONITOR_PID_FILE),
            ) {
                if let Ok(p) = p.trim().parse::<i32>() {
                    ctr::wait_until(Duration::from_secs(2), || !ctr::alive(p));
                }
            }
            ctr::remove_dir(&store, &c.id)
        })();
        match res {
            Ok(()) => outln!("{name}"),
            Err(e) => {
                eprintln!("kiln: {}", crate::exit::render(&e));
                failed = true;
            }
        }
    }
    if failed {
        return Ok(Status::External(1));
    }
    Ok(Status::Success)
}

pub fn logs(ctx: &Ctx, args: LogsArgs) -> Result<Status> {
    let store = ctx.store()?;
    let c = ctr::find(&store, &args.container)?;
    let path = ::containers::Containers::new(&store)
        .container_dir(&c.id)
        .join(ctr::LOG_FILE);
    let mut f = match fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!(
                "container {} has no log: only detached (-d) containers are logged",
                args.container
            )
        }
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let mut out = std::io::stdout().lock();
    std::io::copy(&mut f, &mut out)?;
    if args.follow {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let running = ::containers::Containers::new(&store)
                .container(&c.id)
                .map(|c| ctr::is_running(&c));
            let n = f.read(&mut buf)?;
            if n > 0 {
                out.write_all(&buf[..n])?;
                out.flush()?;
                continue;
            }
            if !matches!(running, Ok(true)) {
                break;
            }
            let pos = f.stream_position()?;
            std::thread::sleep(Duration::from_millis(100));
            f.seek(std::io::SeekFrom::Start(pos))?;
        }
    }
    out.flush()?;
    Ok(Status::Success)
}

fn each(names: &[String], mut f: impl FnMut(&str) -> Result<()>) -> Result<Status> {
    let mut failed = false;
    for name in names {
        match f(name) {
            Ok(()) => outln!("{name}"),
            Err(e) => {
                eprintln!("kiln: {}", crate::exit::render(&e));
                failed = true;
            }
        }
    }
    Ok(if failed {
        Status::External(1)
    } else {
        Status::Success
    })
}

pub fn stop(ctx: &Ctx, args: StopArgs) -> Result<Status> {
    let store = ctx.store()?;
    let first = args.signal.as_deref().map(ctr::parse_signal).transpose()?;
    each(&args.containers, |name| {
        let c = ctr::find(&store, name)?;
        if !ctr::is_running(&c) {
            return Ok(());
        }
        let sig = match first {
            Some(s) => s,
            None => store
                .resolve(&c.image_id.to_string())
                .ok()
                .and_then(|i| i.config.container_config().stop_signal)
                .map(|s| ctr::parse_signal(&s))
                .transpose()?
                .unwrap_or(libc::SIGTERM),
        };
        ctr::signal(&store, &c, sig)?;
        if !wait_stopped(&store, &c, Duration::from_secs(args.time)) {
            let _ = ctr::signal(&store, &c, libc::SIGKILL);
            if !wait_stopped(&store, &c, Duration::from_secs(10)) {
                bail!("container {name} did not stop after SIGKILL");
            }
        }
        Ok(())
    })
}

pub fn kill(ctx: &Ctx, args: KillArgs) -> Result<Status> {
    let store = ctx.store()?;
    let sig = ctr::parse_signal(&args.signal)?;
    each(&args.containers, |name| {
        let c = ctr::find(&store, name)?;
        ctr::signal(&store, &c, sig)
    })
}
