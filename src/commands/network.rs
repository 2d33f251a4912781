//! `kiln network create|ls|inspect|rm|prune|connect|disconnect`: flags into
//! [`containers::network::Networks`] calls.

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use cli_format::rows::networks;
use cli_format::Format;
use containers::filters::NetworkFilters;
use containers::network::{ConnectRequest, CreateRequest, NetworkDef, Networks};

use crate::context::Ctx;
use crate::exit::{from_containers, Status};

#[derive(clap::Subcommand, Debug)]
#[command(defer = true)] // as `cli::Command`'s
pub enum NetworkCommand {
    /// Create a network (a bridge with its own subnet and name resolution)
    Create(CreateArgs),
    /// List networks
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Show networks as JSON
    Inspect(InspectArgs),
    /// Remove networks
    #[command(alias = "remove")]
    Rm(NamesArgs),
    /// Remove every network no container uses
    Prune,
    /// Connect a container to one more network
    Connect(ConnectArgs),
    /// Disconnect a container from a network it was connected to
    Disconnect(DisconnectArgs),
}

#[derive(clap::Args, Debug)]
pub struct ConnectArgs {
    /// Another name the container is found by on the network
    #[arg(long, value_name = "NAME")]
    pub alias: Vec<String>,
    /// IPv4 address on the network
    #[arg(long, value_name = "IP")]
    pub ip: Option<String>,
    pub network: String,
    pub container: String,
}

#[derive(clap::Args, Debug)]
pub struct DisconnectArgs {
    /// Disconnect even if tearing the interface down fails
    #[arg(short, long)]
    pub force: bool,
    pub network: String,
    pub container: String,
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// IPv4 subnet in CIDR form (default: a free /24 of 10.78.0.0/16)
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<String>,
    /// Gateway address (default: the subnet's first address)
    #[arg(long, value_name = "IP")]
    pub gateway: Option<String>,
    /// No route out of the network
    #[arg(long)]
    pub internal: bool,
    /// Set a label: KEY=VALUE
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Driver: only bridge
    #[arg(short, long, default_value = "bridge")]
    pub driver: String,
    pub name: String,
}

#[derive(clap::Args, Debug)]
pub struct LsArgs {
    /// Only the IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't truncate the IDs
    #[arg(long)]
    pub no_trunc: bool,
    /// Filter: driver=, id=, label=KEY[=VALUE], name=, scope=, type=custom|builtin, dangling=true|false
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// Format the output: `table`, `table TEMPLATE`, `json` or a Go template
    /// (fields .ID .Name .Driver .Scope .Internal .Labels .CreatedAt .Subnet)
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Format the output with a Go template, or `json`
    #[arg(short, long, value_name = "FORMAT")]
    pub format: Option<String>,
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct NamesArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
}

pub fn run(ctx: &Ctx, cmd: NetworkCommand) -> Result<Status> {
    let store = ctx.store()?;
    // These take the network lock themselves.
    match cmd {
        NetworkCommand::Connect(a) => {
            let ip =
                a.ip.map(|ip| {
                    ip.parse()
                        .map_err(|_| anyhow!("invalid --ip {ip:?}: not an IPv4 address"))
                })
                .transpose()?;
            let req = ConnectRequest {
                network: a.network,
                aliases: a.alias,
                ip,
            };
            containers::network::connect(&store, &a.container, req).map_err(from_containers)?;
            return Ok(Status::Success);
        }
        NetworkCommand::Disconnect(a) => {
            containers::network::disconnect(&store, &a.container, &a.network, a.force)
                .map_err(from_containers)?;
            return Ok(Status::Success);
        }
        _ => {}
    }
    let nets = Networks::new(&store);
    let lock = nets.lock().map_err(from_containers)?;
    match cmd {
        NetworkCommand::Create(a) => {
            if a.driver != "bridge" {
                return Err(anyhow!(
                    "network driver {:?} is not supported: only bridge",
                    a.driver
                ));
            }
            let subnet = a
                .subnet
                .map(|s| s.parse())
                .transpose()
                .map_err(|e: String| anyhow!(e))?;
            let gateway = a
                .gateway
                .map(|g| {
                    g.parse()
                        .map_err(|_| anyhow!("invalid gateway {g:?}: not an IPv4 address"))
                })
                .transpose()?;
            let mut labels = BTreeMap::new();
            for l in &a.label {
                let (k, v) = l.split_once('=').unwrap_or((l, ""));
                if k.is_empty() {
                    return Err(anyhow!("invalid label {l:?}: want KEY=VALUE"));
                }
                labels.insert(k.to_string(), v.to_string());
            }
            let req = CreateRequest {
                name: a.name,
                subnet,
                gateway,
                internal: a.internal,
                labels,
            };
            let n = nets.create(&lock, req).map_err(from_containers)?;
            outln!("{}", n.id);
        }
        NetworkCommand::Ls(a) => {
            let format =
                Format::parse_rows(a.format.as_deref(), networks::DEFAULT, networks::ROW_TYPE)?;
            let filters = NetworkFilters::parse(&a.filter).map_err(from_containers)?;
            let mut all = nets.list(&lock).map_err(from_containers)?;
            all.retain(|n| {
                filters.accepts(n, || {
                    !containers::network::attach::users(&store, &n.name).is_empty()
                })
            });
            if a.quiet {
                for n in &all {
                    match a.no_trunc {
                        true => outln!("{}", n.id),
                        false => outln!("{}", &n.id[..12]),
                    }
                }
                return Ok(Status::Success);
            }
            let rows: Vec<_> = all.iter().map(|n| networks::row(n, a.no_trunc)).collect();
            out!("{}", format.render(&rows, networks::HEADERS)?);
        }
        NetworkCommand::Inspect(a) => {
            let format = a.format.as_deref().map(|f| Format::parse(Some(f), f));
            let format = format.transpose()?;
            let mut out = Vec::new();
            for name in &a.names {
                let n = nets.get(&lock, name).map_err(from_containers)?;
                out.push(inspect_json(
                    &n,
                    containers::network::attach::users(&store, &n.name),
                ));
            }
            match format {
                Some(f) => out!("{}", f.render(&out, &[])?),
                None => outln!("{}", serde_json::to_string_pretty(&out)?),
            }
        }
        NetworkCommand::Rm(a) => {
            for name in &a.names {
                let n = nets.remove(&lock, name).map_err(from_containers)?;
                outln!("{}", n.name);
            }
        }
        NetworkCommand::Prune => {
            let gone = nets.prune(&lock).map_err(from_containers)?;
            if !gone.is_empty() {
                outln!("Deleted Networks:");
                for n in gone {
                    outln!("{n}");
                }
            }
        }
        NetworkCommand::Connect(_) | NetworkCommand::Disconnect(_) => unreachable!("handled above"),
    }
    Ok(Status::Success)
}

/// docker's `network inspect` shape, the fields kiln has.
fn inspect_json(n: &NetworkDef, users: Vec<String>) -> serde_json::Value {
    serde_json::json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Driver": n.driver,
        "Internal": n.internal,
        "EnableDNS": n.dns,
        "NetworkInterface": n.interface,
        "IPAM": {"Config": [{"Subnet": n.subnet.to_string(), "Gateway": n.gateway.to_string()}]},
        "Labels": n.labels,
        "Containers": users,
    })
}
