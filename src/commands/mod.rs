//! One module per command; each turns parsed arguments into store calls and
//! output, and returns the exit status.

pub mod build;
pub mod commit;
pub mod containers;
pub mod cp;
pub mod exec;
pub mod export;
pub mod healthcheck;
mod history;
mod images;
mod import;
mod inspect;
pub mod login;
pub mod network;
pub mod port;
pub mod pull;
pub mod push;
mod rmi;
pub mod run;
mod save;
pub mod search;
mod shell;
pub mod standby;
pub mod stats;
pub mod system;
pub mod volume;

use anyhow::Result;

use crate::cli::{BuilderCommand, Cli, Command, ImageCommand, SystemCommand};
use crate::context::Ctx;
use crate::exit::Status;

pub fn dispatch(cli: Cli) -> Result<Status> {
    let ctx = Ctx::new(cli.root);
    let command = cli.command.canonical();
    // Commands that run no container: on SIGINT/SIGTERM they remove their
    // temp files and exit 130/143. (The runner forwards those signals to
    // containers, so `run` and `build` keep the default.)
    if matches!(
        command,
        Command::Import(_)
            | Command::Image(_)
            | Command::Tag(_)
            | Command::Rmi(_)
            | Command::Pull(_)
            | Command::Push(_)
            | Command::Save(_)
            | Command::Load(_)
            | Command::Builder(_)
            | Command::System(SystemCommand::Check(_))
    ) {
        image_store::fsutil::exit_cleanly_on_signals();
    }
    match command {
        Command::Import(a) => import::run(&ctx, a),
        Command::Images(a) => images::run(&ctx, a),
        Command::Tag(a) => images::tag(&ctx, a),
        Command::Rmi(a) => rmi::run(&ctx, a),
        Command::Image(ImageCommand::Prune(a)) => rmi::prune(&ctx, a),
        Command::Image(_) | Command::Container(_) => {
            unreachable!("Command::canonical maps the other management commands")
        }
        Command::Inspect(a) => inspect::run(&ctx, a),
        Command::History(a) => history::run(&ctx, a),
        Command::Build(a) => build::run(&ctx, *a),
        Command::Builder(BuilderCommand::Prune(a)) => build::prune(&ctx, a),
        Command::Run(a) => run::run(&ctx, a),
        Command::Exec(a) => exec::run(&ctx, a),
        Command::Create(a) => standby::create(&ctx, a),
        Command::Start(a) => standby::start(&ctx, a),
        Command::Wait(a) => standby::wait(&ctx, a),
        Command::Restart(a) => standby::restart(&ctx, a),
        Command::Rename(a) => standby::rename(&ctx, a),
        Command::Pause(a) => standby::pause(&ctx, a, true),
        Command::Unpause(a) => standby::pause(&ctx, a, false),
        Command::Top(a) => standby::top(&ctx, a),
        Command::Stats(a) => stats::run(&ctx, a),
        Command::Ps(a) => containers::ps(&ctx, a),
        Command::Port(a) => port::run(&ctx, a),
        Command::Network(a) => network::run(&ctx, a),
        Command::Rm(a) => containers::rm(&ctx, a),
        Command::Logs(a) => containers::logs(&ctx, a),
        Command::Attach(a) => containers::attach(&ctx, a),
        Command::Stop(a) => containers::stop(&ctx, a),
        Command::Kill(a) => containers::kill(&ctx, a),
        Command::Export(a) => export::run(&ctx, a),
        Command::Commit(a) => commit::run(&ctx, a),
        Command::Cp(a) => cp::cp(&ctx, a),
        Command::Diff(a) => cp::diff(&ctx, a),
        Command::Pull(a) => pull::run(&ctx, a),
        Command::Push(a) => push::run(&ctx, a),
        Command::Login(a) => login::login(&ctx, a),
        Command::Logout(a) => login::logout(&ctx, a),
        Command::Save(a) => save::save(&ctx, a),
        Command::Load(a) => save::load(&ctx, a),
        Command::System(SystemCommand::Check(a)) => system::check(&ctx, a),
        Command::System(SystemCommand::Service(a)) => system::service(&ctx, a),
        Command::System(SystemCommand::Df(a)) => system::df(&ctx, a),
        Command::System(SystemCommand::Prune(a)) => system::prune(&ctx, a),
        Command::System(SystemCommand::Info(a)) | Command::Info(a) => system::info(&ctx, a),
        Command::Version(a) => system::version(&ctx, a),
        Command::Search(a) => search::run(&ctx, a),
        Command::Completion(a) => shell::completion(a),
        Command::Man(a) => shell::man(a),
        Command::Volume(c) => volume::run(&ctx, c),
        Command::Healthcheck(c) => healthcheck::run(&ctx, c),
    }
}
