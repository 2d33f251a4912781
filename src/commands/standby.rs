//! `kiln create`, `start`, `wait`, `restart`, `rename`, `pause`,
//! `unpause`, `top`: flags into containers-crate calls.

use std::time::Duration;

use anyhow::{bail, Result};
use containers::run::{self, Start};
use containers::{freeze, Containers};

use crate::commands::run::{monitor_command, request, RunArgs};
use crate::context::Ctx;
use crate::exit::{from_containers, Status};

#[derive(clap::Args, Debug)]
pub struct StartArgs {
    /// Attach standard output and error and wait for the container (exit
    /// with its code)
    #[arg(short, long)]
    pub attach: bool,
    /// Attach standard input (for containers created with -i)
    #[arg(short, long)]
    pub interactive: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct NamesArgs {
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct RestartArgs {
    /// Seconds to wait before killing the container (default: its --stop-timeout, else 10)
    #[arg(short, long = "time", value_name = "SECS")]
    pub time: Option<u64>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct RenameArgs {
    pub container: String,
    pub new_name: String,
}

#[derive(clap::Args, Debug)]
pub struct TopArgs {
    pub container: String,
    /// Options for ps (default: -ef)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_options: Vec<String>,
}

pub fn create(ctx: &Ctx, args: RunArgs) -> Result<Status> {
    let flags = *args.flags;
    if flags.detach || flags.monitor.is_some() {
        bail!("create does not take -d: a created container is started with `kiln start`");
    }
    if flags.tty && flags.runtime.is_some() {
        bail!("create -t with --runtime: an external runtime's terminal needs the caller's, and `start` runs the container under a monitor (kiln's own runtime keeps a pty there)");
    }
    let req = request(flags)?;
    let store = ctx.store()?;
    let created = run::create(&store, req).map_err(from_containers)?;
    let rec = created.keep().map_err(from_containers)?;
    outln!("{}", rec.id);
    Ok(Status::Success)
}

pub fn start(ctx: &Ctx, args: StartArgs) -> Result<Status> {
    let store = ctx.store()?;
    if args.attach || args.interactive {
        if args.containers.len() > 1 {
            bail!("start -a/-i attaches to one container at a time");
        }
        let name = &args.containers[0];
        return match run::start(&store, name, args.interactive).map_err(from_containers)? {
            Start::Running => bail!("container {name} is already running"),
            Start::Ready(c) => {
                let status = c.run_foreground().map_err(from_containers)?;
                Ok(Status::External(status.code()))
            }
        };
    }
    each(&args.containers, |name| {
        match run::start(&store, name, false).map_err(from_containers)? {
            Start::Running => Ok(()),
            Start::Ready(c) => {
                let monitor = monitor_command(&store, &c.record.id)?;
                c.start_detached(monitor).map_err(from_containers)?;
                Ok(())
            }
        }
    })
}

pub fn wait(ctx: &Ctx, args: NamesArgs) -> Result<Status> {
    let store = ctx.store()?;
    let mut failed = false;
    for name in &args.containers {
        match run::wait(&store, name) {
            Ok(code) => outln!("{code}"),
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

pub fn restart(ctx: &Ctx, args: RestartArgs) -> Result<Status> {
    let store = ctx.store()?;
    let timeout = args.time.map(Duration::from_secs);
    each(&args.containers, |name| {
        match run::restart(&store, name, timeout).map_err(from_containers)? {
            run::Start::Running => {}
            run::Start::Ready(c) => {
                let cmd = monitor_command(&store, &c.record.id)?;
                c.start_detached(cmd).map_err(from_containers)?;
            }
        }
        Ok(())
    })
}

pub fn rename(ctx: &Ctx, args: RenameArgs) -> Result<Status> {
    let store = ctx.store()?;
    Containers::new(&store)
        .rename(&args.container, &args.new_name)
        .map_err(from_containers)?;
    Ok(Status::Success)
}

pub fn pause(ctx: &Ctx, args: NamesArgs, frozen: bool) -> Result<Status> {
    let store = ctx.store()?;
    each(&args.containers, |name| {
        freeze::freeze(&store, name, frozen).map_err(from_containers)
    })
}

pub fn top(ctx: &Ctx, args: TopArgs) -> Result<Status> {
    let store = ctx.store()?;
    let top =
        containers::top::top(&store, &args.container, &args.ps_options).map_err(from_containers)?;
    outln!("{}", top.header);
    for r in &top.rows {
        outln!("{r}");
    }
    Ok(Status::Success)
}

/// Runs `f` on each name, printing the name on success (as docker does).
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
