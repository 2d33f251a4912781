//! `kiln ps`, `rm`, `logs`, `stop`, `kill`: flags into
//! [`containers::control`] calls, and `ps`'s table.

use std::io::Write as _;
use std::time::Duration;

use anyhow::Result;
use cli_format::rows::ps;
use cli_format::Format;
use containers::control;
use containers::filters::Filters;
use containers::logfile::{self, LogOptions};
use containers::Container;

use crate::context::Ctx;
use crate::exit::{from_containers, Status};

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
    /// Filter: id=, name=, label=KEY[=VALUE], status=, health=, exited=,
    /// ancestor=, before=, since=, volume=, network= (repeatable)
    #[arg(short, long = "filter", value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// Format the output: `table`, `table TEMPLATE`, `json` or a Go template
    /// (fields .ID .Image .Command .CreatedAt .RunningFor .Ports .State
    /// .Status .Names .Labels .Mounts .Networks)
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    pub force: bool,
    /// Also remove the container's anonymous volumes
    #[arg(short, long)]
    pub volumes: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// Follow log output until the container exits
    #[arg(short, long)]
    pub follow: bool,
    /// Show logs since a time (2013-01-02T13:23:37Z), Unix seconds, or a duration back from now (42m)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Show logs up to a time (same forms as --since)
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Show timestamps (RFC 3339 with nanoseconds)
    #[arg(short, long)]
    pub timestamps: bool,
    /// Number of lines to show from the end of the logs, or `all`
    #[arg(short = 'n', long, value_name = "N", default_value = "all")]
    pub tail: String,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(clap::Args, Debug)]
pub struct AttachArgs {
    /// Pass the signals kiln receives (SIGINT, SIGTERM, …) on to the container
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub sig_proxy: bool,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(clap::Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before killing the container (default: its --stop-timeout, else 10)
    #[arg(short, long = "time", value_name = "SECS")]
    pub time: Option<u64>,
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

pub fn ps(ctx: &Ctx, args: PsArgs) -> Result<Status> {
    let store = ctx.store()?;
    let format = Format::parse_rows(args.format.as_deref(), ps::DEFAULT, ps::ROW_TYPE)?;
    let mut filters = Filters::parse(&args.filter).map_err(from_containers)?;
    let everything = control::list(&store, true).map_err(from_containers)?;
    filters
        .resolve(&store, &everything)
        .map_err(from_containers)?;
    let all = args.all || filters.implies_all();
    let list: Vec<Container> = everything
        .into_iter()
        .filter(|c| control::shown(c, all))
        .filter(|c| filters.accepts(&store, c))
        .collect();
    let id = |c: &Container| match args.no_trunc {
        true => c.id.clone(),
        false => c.id[..12].to_string(),
    };
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for c in &list {
            writeln!(out, "{}", id(c))?;
        }
        return Ok(Status::Success);
    }
    let rows: Vec<serde_json::Value> = list
        .iter()
        .map(|c| {
            let ports: Vec<String> = containers::network::published(&store, c)
                .iter()
                .map(|m| m.to_string())
                .collect();
            let networks = containers::network::names(&store, c);
            ps::row(&store, c, &ports, &networks, args.no_trunc)
        })
        .collect();
    write!(out, "{}", format.render(&rows, ps::HEADERS)?)?;
    Ok(Status::Success)
}

/// Runs `f` on each name, printing the name on success and the error
/// otherwise; exit 1 if any failed.
fn each(names: &[String], mut f: impl FnMut(&str) -> containers::Result<()>) -> Result<Status> {
    let mut failed = false;
    for name in names {
        match f(name) {
            Ok(()) => outln!("{name}"),
            Err(e) => {
                eprintln!("kiln: {}", crate::exit::render(&from_containers(e)));
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

pub fn rm(ctx: &Ctx, args: RmArgs) -> Result<Status> {
    let store = ctx.store()?;
    // Best effort: a store this user cannot write is still listed.
    let _ = containers::Containers::new(&store).reap_orphans();
    each(&args.containers, |name| {
        control::remove_with_volumes(&store, name, args.force, args.volumes)
    })
}

pub fn attach(ctx: &Ctx, args: AttachArgs) -> Result<Status> {
    let store = ctx.store()?;
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let code =
        containers::attach::attach(&store, &args.container, args.sig_proxy, &mut out, &mut err)
            .map_err(from_containers)?;
    Ok(Status::External(code.clamp(0, 255) as u8))
}

pub fn logs(ctx: &Ctx, args: LogsArgs) -> Result<Status> {
    let now = chrono::Utc::now();
    let time = |t: &Option<String>| t.as_deref().map(|t| logfile::parse_time(t, now));
    let tail = match args.tail.as_str() {
        "all" => None,
        // docker: a negative count is all of it.
        n if n.starts_with('-') && n[1..].parse::<u64>().is_ok() => None,
        n => Some(n.parse::<usize>().map_err(|_| {
            anyhow::anyhow!("invalid --tail {n:?}: want a number of lines or `all`")
        })?),
    };
    let opts = LogOptions {
        follow: args.follow,
        since: time(&args.since).transpose().map_err(from_containers)?,
        until: time(&args.until).transpose().map_err(from_containers)?,
        timestamps: args.timestamps,
        tail,
        parts: false,
        poll: None,
    };
    let store = ctx.store()?;
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    control::logs(&store, &args.container, &opts, &mut out, &mut err).map_err(from_containers)?;
    Ok(Status::Success)
}

pub fn stop(ctx: &Ctx, args: StopArgs) -> Result<Status> {
    let store = ctx.store()?;
    let signal = args.signal.as_deref().map(control::parse_signal);
    let signal = signal.transpose().map_err(from_containers)?;
    let time = args.time.map(Duration::from_secs);
    each(&args.containers, |name| {
        control::stop(&store, name, signal, time)
    })
}

pub fn kill(ctx: &Ctx, args: KillArgs) -> Result<Status> {
    let store = ctx.store()?;
    let signal = control::parse_signal(&args.signal).map_err(from_containers)?;
    each(&args.containers, |name| control::kill(&store, name, signal))
}
