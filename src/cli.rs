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
}

#[derive(Subcommand, Debug)]
pub enum SystemCommand {
    /// Check the store's consistency (exit 1 when problems are found)
    Check(SystemCheckArgs),
    /// Serve the Docker Engine API (v1.41) for the docker CLI, compose and the SDKs
    Service(commands::system::ServiceArgs),
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
    /// Output format: `table` (default) or `json`
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
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
    /// Go-template-like field selection is not supported; only `json`
    #[arg(short, long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Only inspect objects of this type: image or container (default: a container, else an image)
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Option<String>,
    #[arg(required = true, value_name = "NAME")]
    pub images: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum ContainerCommand {
    /// Show low-level information on containers as JSON
    Inspect(InspectArgs),
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
    pub image: String,
}

#[derive(Subcommand, Debug)]
pub enum BuilderCommand {
    /// Remove the build cache: step records and the layers only they keep
    Prune(BuilderPruneArgs),
}

#[derive(Args, Debug)]
pub struct BuilderPruneArgs {
    /// Also empty the RUN --mount=type=cache mounts
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation (kiln never prompts)
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    pub all: bool,
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
