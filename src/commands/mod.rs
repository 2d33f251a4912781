//! One module per command; each turns parsed arguments into store calls and
//! output, and returns the exit status.

mod history;
mod images;
mod import;
mod inspect;
mod rmi;
mod save;

use anyhow::{bail, Result};

use crate::cli::{Cli, Command, ImageCommand};
use crate::context::Ctx;
use crate::exit::Status;

pub fn dispatch(cli: Cli) -> Result<Status> {
    let ctx = Ctx::new(cli.root);
    match cli.command {
        Command::Import(a) | Command::Image(ImageCommand::Import(a)) => import::run(&ctx, a),
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => images::run(&ctx, a),
        Command::Tag(a) | Command::Image(ImageCommand::Tag(a)) => images::tag(&ctx, a),
        Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => rmi::run(&ctx, a),
        Command::Image(ImageCommand::Prune(a)) => rmi::prune(&ctx, a),
        Command::Inspect(a) | Command::Image(ImageCommand::Inspect(a)) => inspect::run(&ctx, a),
        Command::History(a) | Command::Image(ImageCommand::History(a)) => history::run(&ctx, a),
        Command::Build(_) => not_yet("build"),
        Command::Run(_) => not_yet("run"),
        Command::Pull(_) => not_yet("pull"),
        Command::Push(_) => not_yet("push"),
        Command::Login(_) => not_yet("login"),
        Command::Logout(_) => not_yet("logout"),
        Command::Save(a) => save::save(&ctx, a),
        Command::Load(a) => save::load(&ctx, a),
        Command::Export(_) => not_yet("export"),
        Command::Commit(_) => not_yet("commit"),
        Command::Ps(_) => not_yet("ps"),
        Command::Rm(_) => not_yet("rm"),
    }
}

fn not_yet(cmd: &str) -> Result<Status> {
    bail!("`kiln {cmd}` is not built yet")
}
