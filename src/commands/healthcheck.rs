//! `kiln healthcheck run` (podman's): one probe of a running container,
//! counted in its health state as the monitor's probes are.

use anyhow::Result;
use containers::health::{self, Status as HealthStatus};
use containers::Containers;

use crate::context::Ctx;
use crate::exit::{from_containers, Status};

#[derive(clap::Subcommand, Debug)]
#[command(defer = true)] // as `cli::Command`'s
pub enum HealthcheckCommand {
    /// Run a container's health check once: exit 0 when it passes, else
    /// print "unhealthy" (or "starting", in the start period) and exit 1
    Run(RunArgs),
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The container's name or ID
    pub container: String,
}

pub fn run(ctx: &Ctx, cmd: HealthcheckCommand) -> Result<Status> {
    let HealthcheckCommand::Run(args) = cmd;
    let store = ctx.store()?;
    let c = Containers::new(&store)
        .container(&args.container)
        .map_err(from_containers)?;
    if !c.is_running() {
        return Err(from_containers(containers::Error::Invalid(format!(
            "container {} is not running",
            c.name
        ))));
    }
    let h = health::probe(&store, &c).map_err(from_containers)?;
    let passed = h.log.last().is_some_and(|r| r.exit_code == 0);
    if passed {
        return Ok(Status::Success);
    }
    let shown = match h.status {
        HealthStatus::Starting => "starting",
        _ => "unhealthy",
    };
    outln!("{shown}");
    Ok(Status::External(1))
}
