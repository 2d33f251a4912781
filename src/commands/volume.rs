//! `kiln volume create|ls|inspect|rm|prune`: flags into
//! [`containers::volumes`] calls.

use std::collections::BTreeMap;
use std::io::Write as _;

use anyhow::{bail, Result};
use cli_format::rows::volumes;
use cli_format::Format;
use containers::filters::VolumeFilters;
use containers::volumes::{Volume, Volumes};

use crate::context::Ctx;
use crate::exit::{from_containers, Status};

#[derive(clap::Subcommand, Debug)]
#[command(defer = true)] // as `cli::Command`'s
pub enum VolumeCommand {
    /// Create a volume
    Create(CreateArgs),
    /// List volumes
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Show volumes as JSON
    Inspect(InspectArgs),
    /// Remove volumes (refused while a container uses them)
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove volumes no container uses (anonymous ones only, unless --all)
    Prune(PruneArgs),
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// Set a label: KEY=VALUE
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Only the local driver exists
    #[arg(short, long, default_value = "local")]
    pub driver: String,
    /// Name of the volume (default: a random one)
    pub name: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct LsArgs {
    /// Only display volume names
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter: dangling=true|false, name=SUBSTRING, label=KEY[=VALUE], driver=local
    #[arg(short, long, value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Format the output: `table`, `table TEMPLATE`, `json` or a Go template
    /// (fields .Name .Driver .Scope .Mountpoint .Labels .Links)
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Format the output with a Go template, or `json`
    #[arg(short, long, value_name = "FORMAT")]
    pub format: Option<String>,
    #[arg(required = true, value_name = "VOLUME")]
    pub names: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct RmArgs {
    /// Do not fail on volumes that do not exist (volumes in use are still kept)
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true, value_name = "VOLUME")]
    pub names: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation (kiln never prompts)
    #[arg(short, long)]
    pub force: bool,
}

pub fn run(ctx: &Ctx, cmd: VolumeCommand) -> Result<Status> {
    let store = ctx.store()?;
    let vols = Volumes::new(&store);
    match cmd {
        VolumeCommand::Create(a) => {
            if a.driver != "local" {
                bail!("unsupported volume driver {:?}: only local", a.driver);
            }
            let mut labels = BTreeMap::new();
            for l in &a.label {
                let (k, v) = l.split_once('=').unwrap_or((l, ""));
                if k.is_empty() {
                    bail!("invalid label {l:?}: want KEY=VALUE");
                }
                labels.insert(k.to_string(), v.to_string());
            }
            let name = match a.name {
                Some(n) => n,
                None => containers::names::new_id().map_err(from_containers)?,
            };
            let v = vols.create(&name, labels).map_err(from_containers)?;
            outln!("{}", v.name);
        }
        VolumeCommand::Ls(a) => {
            let format =
                Format::parse_rows(a.format.as_deref(), volumes::DEFAULT, volumes::ROW_TYPE)?;
            let filters = VolumeFilters::parse(&a.filter).map_err(from_containers)?;
            let mut list = vols.list().map_err(from_containers)?;
            let users = |v: &Volume| vols.users(&v.name).map(|u| u.len()).unwrap_or(0);
            list.retain(|v| filters.accepts(v, || users(v) > 0));
            let mut out = std::io::stdout().lock();
            if a.quiet {
                for v in &list {
                    writeln!(out, "{}", v.name)?;
                }
            } else {
                let rows: Vec<_> = list
                    .iter()
                    .map(|v| volumes::row(v, &vols.data_dir(&v.name), users(v)))
                    .collect();
                write!(out, "{}", format.render(&rows, volumes::HEADERS)?)?;
            }
        }
        VolumeCommand::Inspect(a) => {
            let format = a.format.as_deref().map(|f| Format::parse(Some(f), f));
            let format = format.transpose()?;
            let mut all = Vec::new();
            for n in &a.names {
                let v = vols.find(n).map_err(from_containers)?;
                all.push(inspect_json(&vols, &v));
            }
            match format {
                Some(f) => outln!("{}", f.render(&all, &[])?.trim_end_matches('\n')),
                None => outln!("{}", serde_json::to_string_pretty(&all)?),
            }
        }
        VolumeCommand::Rm(a) => {
            let mut failed = false;
            for n in &a.names {
                match vols.remove(n, a.force) {
                    Ok(()) => outln!("{n}"),
                    Err(e) => {
                        eprintln!("kiln: {}", crate::exit::render(&from_containers(e)));
                        failed = true;
                    }
                }
            }
            if failed {
                return Ok(Status::External(1));
            }
        }
        VolumeCommand::Prune(a) => {
            let gone = vols.prune(a.all).map_err(from_containers)?;
            if !gone.is_empty() {
                outln!("Deleted Volumes:");
                for n in &gone {
                    outln!("{n}");
                }
            }
        }
    }
    Ok(Status::Success)
}

/// docker's `volume inspect` object.
fn inspect_json(vols: &Volumes, v: &Volume) -> serde_json::Value {
    serde_json::json!({
        "CreatedAt": v.created,
        "Driver": "local",
        "Labels": v.labels,
        "Mountpoint": vols.data_dir(&v.name),
        "Name": v.name,
        "Options": {},
        "Scope": "local",
    })
}
