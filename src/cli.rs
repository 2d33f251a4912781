//! The command line, docker-compatible in names, flags and defaults.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands;

#[derive(Parser, Debug)]
#[command(
    name = "kiln",
    version,
    about = "Build container images from Dockerfiles, store them, move them and run them",
    propagate_version = true
)]
pub struct Cli {
    /// Store root (default: $KILN_ROOT, /var/lib/kiln for root, else $XDG_DATA_HOME/kiln)
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
// Each subcommand's flags are made only when it is the one invoked:
// building all of them is most of a short command's start-up.
#[command(defer = true)]
pub enum Command {
    /// Create an image from a rootfs tarball (plain, gzip, zstd, bzip2 or xz)
    Import(ImportArgs),
    /// List images
    Images(ImagesArgs),
    /// Create a tag TARGET that refers to SOURCE
    Tag(TagArgs),
    /// Remove one or more images
    Rmi(RmiArgs),
    /// Show low-level information on images as JSON
    Inspect(InspectArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCommand),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Build an image from a Dockerfile
    Build(Box<commands::build::BuildArgs>),
    /// Manage the build cache
    #[command(subcommand)]
    Builder(BuilderCommand),
    /// Run a command in a new container
    Run(commands::run::RunArgs),
    /// Run a command in a running container
    Exec(commands::exec::ExecArgs),
    /// Create a new container (as `run` does) without starting it
    Create(commands::run::RunArgs),
    /// Start created or stopped containers
    Start(commands::standby::StartArgs),
    /// Block until containers stop, then print their exit codes
    Wait(commands::standby::NamesArgs),
    /// Stop and start containers again
    Restart(commands::standby::RestartArgs),
    /// Rename a container
    Rename(commands::standby::RenameArgs),
    /// Pause all processes within containers (cgroup freezer)
    Pause(commands::standby::NamesArgs),
    /// Unpause all processes within containers
    Unpause(commands::standby::NamesArgs),
    /// Display the running processes of a container
    Top(commands::standby::TopArgs),
    /// Display containers' resource usage (CPU, memory, network, block I/O, pids)
    Stats(commands::stats::StatsArgs),
    /// List containers
    Ps(commands::containers::PsArgs),
    /// List a container's published ports
    Port(commands::port::PortArgs),
    /// Manage networks
    #[command(subcommand)]
    Network(commands::network::NetworkCommand),
    /// Remove containers
    Rm(commands::containers::RmArgs),
    /// Show the output of a detached container
    Logs(commands::containers::LogsArgs),
    /// Stream a running detached container's output until it stops (exit status: the container's)
    Attach(commands::containers::AttachArgs),
    /// Stop running containers (SIGTERM, then SIGKILL after a grace period)
    Stop(commands::containers::StopArgs),
    /// Send a signal to running containers
    Kill(commands::containers::KillArgs),
    /// Export a container's filesystem as a tar archive
    Export(commands::export::ExportArgs),
    /// Create a new image from a container's changes
    Commit(commands::commit::CommitArgs),
    /// Copy files between a container and the host
    Cp(commands::cp::CpArgs),
    /// Show a container's changes to its image's files (A added, C changed, D deleted)
    Diff(commands::cp::DiffArgs),
    /// Pull an image from a registry
    Pull(commands::pull::PullArgs),
    /// Push an image to a registry
    Push(commands::push::PushArgs),
    /// Log in to a registry
    Login(commands::login::LoginArgs),
    /// Log out from a registry
    Logout(commands::login::LogoutArgs),
    /// Save images to a tar archive (docker-archive or oci-archive)
    Save(SaveArgs),
    /// Load images from a tar archive (docker-archive or oci-archive, optionally compressed)
    Load(LoadArgs),
    /// Manage the store
    #[command(subcommand)]
    System(SystemCommand),
    /// Manage volumes
    #[command(subcommand)]
    Volume(commands::volume::VolumeCommand),
    /// Run containers' health checks
    #[command(subcommand)]
    Healthcheck(commands::healthcheck::HealthcheckCommand),
    /// Print a shell completion script: bash, zsh or fish
    Completion(CompletionArgs),
    /// Write man pages (kiln.1, kiln-run.1, …) into DIR
    Man(ManArgs),
    /// Search a registry's repositories (its catalog), or Docker Hub
    Search(commands::search::SearchArgs),
    /// Show kiln's version (client and engine: one binary)
    Version(FormatArgs),
    /// Show what the store holds and how kiln runs containers
    Info(FormatArgs),
}

#[derive(Args, Debug)]
pub struct CompletionArgs {
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Directory to write the pages into (made if missing)
    pub dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct FormatArgs {
    /// Format the output with a Go template, or `json`
    #[arg(short, long, value_name = "FORMAT")]
    pub format: Option<String>,
}

#[derive(Subcommand, Debug)]
#[command(defer = true)] // as `cli::Command`'s
pub enum SystemCommand {
    /// Check the store's consistency (exit 1 when problems are found)
    Check(SystemCheckArgs),
    /// Serve the Docker Engine API (v1.41) for the docker CLI, compose and the SDKs
    Service(commands::system::ServiceArgs),
    /// Show disk usage: images, containers, volumes, build cache
    Df(DfArgs),
    /// Remove stopped containers, unused networks, dangling (or with -a
    /// unused) images and the build cache; with --volumes anonymous volumes
    Prune(SystemPruneArgs),
    /// Show what the store holds and how kiln runs containers
    Info(FormatArgs),
}

#[derive(Args, Debug)]
pub struct DfArgs {
    /// One row per image, container, volume and build cache record
    #[arg(short, long)]
    pub verbose: bool,
    /// Format the output: `table`, `table TEMPLATE`, `json` or a Go template
    /// (fields .Type .TotalCount .Active .Size .Reclaimable .SizeBytes .ReclaimableBytes;
    /// with -v a template runs once on the lists .Images .Containers .Volumes .BuildCache)
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct SystemPruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Also remove anonymous volumes no container uses
    #[arg(long)]
    pub volumes: bool,
    /// Do not prompt for confirmation (kiln never prompts)
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct SystemCheckArgs {
    /// Remove what is dangling or corrupt (images whose blobs are missing or
    /// corrupt, stale temp files, partial layers, dangling cache records)
    #[arg(short, long)]
    pub repair: bool,
    /// Print only the problems, not the summary
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Subcommand, Debug)]
#[command(defer = true)] // as `cli::Command`'s
pub enum ImageCommand {
    /// Remove unused images
    Prune(PruneArgs),
    /// List images
    #[command(visible_alias = "list")]
    Ls(ImagesArgs),
    /// Remove one or more images
    Rm(RmiArgs),
    /// Show low-level information on images as JSON
    Inspect(InspectArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Create a tag TARGET that refers to SOURCE
    Tag(TagArgs),
    /// Create an image from a rootfs tarball
    Import(ImportArgs),
    /// Pull an image from a registry
    Pull(commands::pull::PullArgs),
    /// Push an image to a registry
    Push(commands::push::PushArgs),
    /// Save images to a tar archive
    Save(SaveArgs),
    /// Load images from a tar archive
    Load(LoadArgs),
    /// Build an image from a Dockerfile
    Build(Box<commands::build::BuildArgs>),
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Apply a Dockerfile instruction to the image (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR)
    #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
    pub changes: Vec<String>,
    /// Commit message for the imported image
    #[arg(short, long)]
    pub message: Option<String>,
    /// Print only the image ID (the default output already is)
    #[arg(short, long)]
    pub quiet: bool,
    /// Rootfs tarball: a file, `-` for standard input, or an http(s) URL
    pub source: String,
    /// Name of the new image, REPOSITORY[:TAG]
    pub reference: Option<String>,
}

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Show all images (by default intermediate build images are hidden)
    #[arg(short, long)]
    pub all: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Format the output: `table`, `table TEMPLATE`, `json` or a Go template
    /// (fields .ID .Repository .Tag .Digest .CreatedSince .CreatedAt .Size)
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Filter: dangling=true|false, label=KEY[=VALUE], reference=PATTERN,
    /// before=IMAGE, since=IMAGE (repeatable)
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// Only images whose name matches REPOSITORY[:TAG]
    pub reference: Option<String>,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    pub source: String,
    pub target: String,
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Remove the image even if it has several repositories or is in use
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format the output with a Go template (`{{.Id}}`, `{{json .Config}}`), or `json`
    #[arg(short, long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Only inspect objects of this type: image or container (default: a container, else an image)
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Option<String>,
    #[arg(required = true, value_name = "NAME")]
    pub images: Vec<String>,
}

#[derive(Subcommand, Debug)]
#[command(defer = true)] // as `cli::Command`'s
pub enum ContainerCommand {
    /// Show low-level information on containers as JSON
    Inspect(InspectArgs),
    /// List containers
    #[command(visible_aliases = ["ps", "list"])]
    Ls(commands::containers::PsArgs),
    /// Remove containers
    #[command(visible_alias = "remove")]
    Rm(commands::containers::RmArgs),
    /// Run a command in a new container
    Run(commands::run::RunArgs),
    /// Create a new container without starting it
    Create(commands::run::RunArgs),
    /// Start created or stopped containers
    Start(commands::standby::StartArgs),
    /// Stop running containers
    Stop(commands::containers::StopArgs),
    /// Stop and start containers again
    Restart(commands::standby::RestartArgs),
    /// Send a signal to running containers
    Kill(commands::containers::KillArgs),
    /// Show the output of a container
    Logs(commands::containers::LogsArgs),
    /// Run a command in a running container
    Exec(commands::exec::ExecArgs),
    /// Copy files between a container and the host
    Cp(commands::cp::CpArgs),
    /// Show a container's changes to its image's files
    Diff(commands::cp::DiffArgs),
    /// Export a container's filesystem as a tar archive
    Export(commands::export::ExportArgs),
    /// Create a new image from a container's changes
    Commit(commands::commit::CommitArgs),
    /// List a container's published ports
    Port(commands::port::PortArgs),
    /// Rename a container
    Rename(commands::standby::RenameArgs),
    /// Pause all processes within containers
    Pause(commands::standby::NamesArgs),
    /// Unpause all processes within containers
    Unpause(commands::standby::NamesArgs),
    /// Display the running processes of a container
    Top(commands::standby::TopArgs),
    /// Display containers' resource usage
    Stats(commands::stats::StatsArgs),
    /// Block until containers stop, then print their exit codes
    Wait(commands::standby::NamesArgs),
    /// Follow a running container's output (and feed its input)
    Attach(commands::containers::AttachArgs),
}

impl Command {
    /// docker's management commands (`image pull`, `container ls`) as the
    /// top-level commands they stand for.
    pub fn canonical(self) -> Command {
        use ContainerCommand as C;
        match self {
            Command::Image(ImageCommand::Pull(a)) => Command::Pull(a),
            Command::Image(ImageCommand::Push(a)) => Command::Push(a),
            Command::Image(ImageCommand::Save(a)) => Command::Save(a),
            Command::Image(ImageCommand::Load(a)) => Command::Load(a),
            Command::Image(ImageCommand::Build(a)) => Command::Build(a),
            Command::Image(ImageCommand::Ls(a)) => Command::Images(a),
            Command::Image(ImageCommand::Rm(a)) => Command::Rmi(a),
            Command::Image(ImageCommand::Inspect(a)) => Command::Inspect(InspectArgs {
                kind: Some("image".into()),
                ..a
            }),
            Command::Image(ImageCommand::History(a)) => Command::History(a),
            Command::Image(ImageCommand::Tag(a)) => Command::Tag(a),
            Command::Image(ImageCommand::Import(a)) => Command::Import(a),
            Command::Container(c) => match c {
                C::Inspect(a) => Command::Inspect(InspectArgs {
                    kind: Some("container".into()),
                    ..a
                }),
                C::Ls(a) => Command::Ps(a),
                C::Rm(a) => Command::Rm(a),
                C::Run(a) => Command::Run(a),
                C::Create(a) => Command::Create(a),
                C::Start(a) => Command::Start(a),
                C::Stop(a) => Command::Stop(a),
                C::Restart(a) => Command::Restart(a),
                C::Kill(a) => Command::Kill(a),
                C::Logs(a) => Command::Logs(a),
                C::Exec(a) => Command::Exec(a),
                C::Cp(a) => Command::Cp(a),
                C::Diff(a) => Command::Diff(a),
                C::Export(a) => Command::Export(a),
                C::Commit(a) => Command::Commit(a),
                C::Port(a) => Command::Port(a),
                C::Rename(a) => Command::Rename(a),
                C::Pause(a) => Command::Pause(a),
                C::Unpause(a) => Command::Unpause(a),
                C::Top(a) => Command::Top(a),
                C::Stats(a) => Command::Stats(a),
                C::Wait(a) => Command::Wait(a),
                C::Attach(a) => Command::Attach(a),
            },
            c => c,
        }
    }
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Print sizes and dates in a human readable format
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
    pub human: bool,
    /// Format the output: `table`, `table TEMPLATE`, `json` or a Go template
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    pub image: String,
}

#[derive(Subcommand, Debug)]
#[command(defer = true)] // as `cli::Command`'s
pub enum BuilderCommand {
    /// Remove the build cache: step records and the layers only they keep
    Prune(BuilderPruneArgs),
}

#[derive(Args, Debug)]
pub struct BuilderPruneArgs {
    /// Also empty the RUN --mount=type=cache mounts
    #[arg(short, long)]
    pub all: bool,
    /// Only records of steps first run before a time: until=TIMESTAMP|DURATION (24h, 30m)
    #[arg(long, value_name = "until=TIME")]
    pub filter: Vec<String>,
    /// Keep the newest records whose layers fit in SIZE (1GB, 500MB, 10kB, bytes)
    #[arg(long, value_name = "SIZE")]
    pub keep_storage: Option<String>,
    /// Do not prompt for confirmation (kiln never prompts)
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Only images created before a time (until=TIMESTAMP|DURATION) or with
    /// (label=KEY[=VALUE]) or without (label!=KEY[=VALUE]) a label
    #[arg(long, value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation (kiln never prompts)
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Write to FILE instead of standard output
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// docker-archive (default) or oci-archive
    #[arg(long, default_value = "docker-archive", value_name = "FORMAT")]
    pub format: String,
    /// Compress the archive with gzip
    #[arg(long)]
    pub compress: bool,
    /// Print nothing (accepted for podman compatibility)
    #[arg(short, long)]
    pub quiet: bool,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read from FILE instead of standard input
    #[arg(short, long, value_name = "FILE")]
    pub input: Option<std::path::PathBuf>,
    /// Print only the loaded image IDs
    #[arg(short, long)]
    pub quiet: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own checks of every (deferred) subcommand's definitions.
    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }

    /// A subcommand's flags are built when it runs (`defer`), after its
    /// help text was set: a doc comment on an `Args` struct it shares then
    /// replaces that text, and the commands sharing it read alike.
    #[test]
    fn each_command_keeps_its_own_help_text() {
        fn check(cmd: &mut clap::Command, path: &str) {
            cmd.build();
            let mut seen = std::collections::HashMap::new();
            for sub in cmd.get_subcommands_mut() {
                let name = format!("{path} {}", sub.get_name());
                let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
                assert!(!about.is_empty(), "`{name}` has no help text");
                if let Some(other) = seen.insert(about.clone(), name.clone()) {
                    panic!("`{name}` and `{other}` both read {about:?}");
                }
                check(sub, &name);
            }
        }
        check(&mut super::Cli::command(), "kiln");
    }
}
