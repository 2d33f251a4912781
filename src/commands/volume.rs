//! `kiln volume create|ls|inspect|rm|prune`: flags into
//! [`containers::volumes`] calls.

use std::collections::BTreeMap;
use std::io::Write as _;

use anyhow::{bail, Result};
use containers::volumes::{Volume, Volumes};

use crate::context::Ctx;
use crate::exit::{from_containers, Status};
use crate::format;

#[derive(clap::Subcommand, Debug)]
pub enum VolumeCommand {
    /// Create a volume
    Create(CreateArgs),
    /// List volumes
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Show volumes as JSON
    Inspect(NamesArgs),
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
    /// Filter: dangling=true|false, name=SUBSTRING, label=KEY[=VALUE]
    #[arg(short, long, value_name = "FILTER")]
    pub filter: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct NamesArgs {
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
            let filters = a
                .filter
                .iter()
                .map(|f| VolumeFilter::parse(f))
                .collect::<Result<Vec<_>>>()?;
            let mut list = vols.list().map_err(from_containers)?;
            if !filters.is_empty() {
                let used = vols.used().map_err(from_containers)?;
                list.retain(|v| filters.iter().all(|f| f.matches(v, used.contains(&v.name))));
            }
            let mut out = std::io::stdout().lock();
            if a.quiet {
                for v in &list {
                    writeln!(out, "{}", v.name)?;
                }
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|v| vec!["local".to_string(), v.name.clone()])
                    .collect();
                write!(out, "{}", format::table(&["DRIVER", "VOLUME NAME"], &rows))?;
            }
        }
        VolumeCommand::Inspect(a) => {
            let mut all = Vec::new();
            for n in &a.names {
                let v = vols.find(n).map_err(from_containers)?;
                all.push(inspect_json(&vols, &v));
            }
            outln!("{}", serde_json::to_string_pretty(&all)?);
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

/// One `volume ls --filter`.
enum VolumeFilter {
    Dangling(bool),
    Name(String),
    Label(String, Option<String>),
}

impl VolumeFilter {
    fn parse(f: &str) -> Result<VolumeFilter> {
        let Some((k, v)) = f.split_once('=') else {
            bail!("invalid filter {f:?}: want KEY=VALUE");
        };
        Ok(match k {
            "dangling" => match v {
                "true" | "1" => VolumeFilter::Dangling(true),
                "false" | "0" => VolumeFilter::Dangling(false),
                _ => bail!("invalid filter {f:?}: dangling is true or false"),
            },
            "name" => VolumeFilter::Name(v.to_string()),
            "label" => match v.split_once('=') {
                Some((l, val)) => VolumeFilter::Label(l.to_string(), Some(val.to_string())),
                None => VolumeFilter::Label(v.to_string(), None),
            },
            _ => bail!("invalid filter {f:?}: only dangling, name and label are supported"),
        })
    }

    fn matches(&self, v: &Volume, used: bool) -> bool {
        match self {
            VolumeFilter::Dangling(d) => *d != used,
            VolumeFilter::Name(n) => v.name.contains(n.as_str()),
            VolumeFilter::Label(k, val) => match (v.labels.get(k), val) {
                (Some(got), Some(want)) => got == want,
                (Some(_), None) => true,
                (None, _) => false,
            },
        }
    }
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
