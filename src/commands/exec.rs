//! `kiln exec`: flags into a [`containers::exec::ExecRequest`].

use anyhow::Result;
use containers::exec::{self, ExecRequest, Outcome};
use containers::options;

use crate::context::Ctx;
use crate::exit::{from_containers, Status};

#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// Run in the background (the output is discarded)
    #[arg(short, long)]
    pub detach: bool,
    /// Keep standard input open (without it the process reads /dev/null)
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
    pub env_file: Vec<std::path::PathBuf>,
    /// User: name|uid[:group|gid] (default: the container's)
    #[arg(short, long, value_name = "USER")]
    pub user: Option<String>,
    /// Working directory inside the container (default: the container's)
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Give the process every capability
    #[arg(long)]
    pub privileged: bool,
    /// The container's name or ID
    pub container: String,
    /// Command and arguments
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

pub fn run(ctx: &Ctx, args: ExecArgs) -> Result<Status> {
    let req = ExecRequest {
        container: args.container,
        command: args.command,
        env: options::env(&args.env_file, &args.env)?,
        user: args.user,
        workdir: args.workdir,
        terminal: args.tty,
        interactive: args.interactive,
        detach: args.detach,
        privileged: args.privileged,
        fds: None,
    };
    let store = ctx.store()?;
    match exec::exec(&store, &req).map_err(from_containers)? {
        Outcome::Exited(s) => Ok(Status::External(s.code())),
        Outcome::Detached => Ok(Status::Success),
    }
}
